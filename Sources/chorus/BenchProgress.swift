import ChorusBench
import Foundation
import Synchronization

/// A progress bar on standard error, updated in place on a terminal (one line per finished point
/// otherwise, so CI logs stay readable), with an ETA from the work done so far.
final class BenchProgress: BenchSweepProgress {
    struct State {
        var done = 0
        var total: Int
        var label = ""
        var lastDraw = ContinuousClock.now - .seconds(1)
    }

    let state: Mutex<State>
    let started = ContinuousClock.now
    let interactive: Bool

    /// `total`: work units (prompts generated) in the whole sweep.
    init(total: Int) {
        state = Mutex(State(total: max(total, 1)))
        interactive = isatty(2) == 1
    }

    /// Starts a new item (a point); draws at once.
    func begin(_ label: String) {
        state.withLock { $0.label = label }
        draw(force: true)
    }

    /// One more work unit (a prompt) is done.
    func advance() {
        state.withLock { $0.done += 1 }
        draw(force: false)
    }

    /// A line of text above the bar.
    func note(_ text: String) {
        if interactive { FileHandleOutput.standardError.write("\r\u{1B}[K") }
        FileHandleOutput.standardError.write(text + "\n")
        draw(force: true)
    }

    func finishItem(_ summary: String) {
        if interactive {
            note(summary)
        } else {
            let (done, total) = state.withLock { ($0.done, $0.total) }
            FileHandleOutput.standardError.write("[\(percent(done, total))] \(summary)  \(etaText(done, total))\n")
        }
    }

    func finish() {
        if interactive { FileHandleOutput.standardError.write("\r\u{1B}[K") }
    }

    func percent(_ done: Int, _ total: Int) -> String {
        String(format: "%3d%%", Int((Double(done) / Double(total) * 100).rounded(.down)))
    }

    func etaText(_ done: Int, _ total: Int) -> String {
        let elapsed = microseconds(ContinuousClock.now - started) / 1e6
        guard done > 0 else { return "elapsed \(Self.clock(elapsed))" }
        let remaining = elapsed / Double(done) * Double(total - done)
        return "elapsed \(Self.clock(elapsed)), ETA \(Self.clock(remaining))"
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600
            ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    func draw(force: Bool) {
        guard interactive else { return }
        let line: String? = state.withLock { s in
            let now = ContinuousClock.now
            guard force || now - s.lastDraw > .milliseconds(100) else { return nil }
            s.lastDraw = now
            let width = 28
            let filled = min(width, Int(Double(s.done) / Double(s.total) * Double(width)))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            var text = "\(bar) \(percent(s.done, s.total)) \(etaText(s.done, s.total))  \(s.label)"
            if text.count > 118 { text = String(text.prefix(117)) + "…" }
            return text
        }
        if let line { FileHandleOutput.standardError.write("\r\u{1B}[K" + line) }
    }
}
