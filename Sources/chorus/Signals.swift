import Dispatch
import Foundation

/// Waits until SIGINT or SIGTERM arrives (the default handlers are replaced while waiting).
func waitForTerminationSignal() async -> Int32 {
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    let queue = DispatchQueue(label: "chorus.signals")
    return await withCheckedContinuation { continuation in
        let fired = ManagedAtomicFlag()
        var sources: [DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                if fired.set() {
                    for s in sources { s.cancel() }
                    continuation.resume(returning: number)
                }
            }
            source.resume()
            sources.append(source)
        }
        // Keep the sources alive until they fire.
        SignalSources.keep(sources)
    }
}

/// Set-once flag used from one serial queue.
final class ManagedAtomicFlag: @unchecked Sendable {
    private var value = false
    /// True the first time only (callers run on one serial queue).
    func set() -> Bool {
        if value { return false }
        value = true
        return true
    }
}

enum SignalSources {
    nonisolated(unsafe) static var retained: [DispatchSourceSignal] = []
    static func keep(_ sources: [DispatchSourceSignal]) { retained += sources }
}
