/// Whether rounds ask for drafts while several sessions share the target (issue 12): measured, per number of
/// sessions running.
///
/// Why: with many sessions batched on one target the forward can be compute-bound, and then every drafted row
/// that is rejected is work taken from the other sessions. On the shipped models eight clients got 728–797
/// tokens/s with drafts and 1,102–1,238 without (docs/benchmarks.md §9); on a large memory-bound target the
/// drafts' rows are nearly free and speculation keeps paying. Where the line lies depends on the models and the
/// machine, so it is measured, not configured.
///
/// How: time runs in *epochs*, each with one mode (drafting or plain) for every session, at one level (the
/// number of sessions running, 2…``widest``; more count as ``widest``). An epoch lasts at least
/// ``rounds(level:)`` rounds and ``epochLength``; its aggregate rate (tokens published over its wall time) goes to
/// its mode's estimate at its level, a running mean that forgets old epochs. An epoch whose level changed
/// before it ended counts only if it had lasted half its rounds and half its time. The next epoch takes the faster mode, every ``exploreEvery``-th epoch at a
/// level the other one, and a mode with fewer than ``minimumEpochs`` epochs first. Whole epochs, not single
/// rounds, are compared because the sessions share forwards: one plain round among drafting ones pays for the
/// others' rows and would look slow whichever mode is better.
///
/// A session running alone always drafts: single-stream latency is what speculation is for, and a seeded run
/// alone reproduces token for token as before.
///
/// Exactness: the mode depends on earlier epochs' times and on how many sessions run, never on a round's draft
/// tokens. A round without drafts samples the target directly; one with drafts verifies draws from the laws
/// they carry. Either way each token follows the target's law.
struct DraftGate: Sendable {
    /// One mode's measured rate at one level.
    struct Estimate: Sendable, Equatable {
        /// Running mean of tokens per second over counted epochs.
        var rate = 0.0
        var epochs = 0
    }

    /// The mode in force: since `start`, at `level`, `tokens` published in `rounds` rounds.
    struct Epoch: Sendable, Equatable {
        var level: Int
        var drafting: Bool
        var start: Duration
        var tokens = 0
        var rounds = 0
    }

    static let widest = 16
    static let epochRounds = 16
    static let epochLength: Duration = .milliseconds(100)
    static let exploreEvery = 8
    static let minimumEpochs = 2
    /// Weight of a new epoch in its estimate.
    static let learning = 0.3

    private(set) var drafting: [Int: Estimate] = [:]
    private(set) var plain: [Int: Estimate] = [:]
    private(set) var epoch: Epoch?
    /// Epochs started per level (for exploring).
    private var started: [Int: Int] = [:]

    init() {}

    static func level(_ sessions: Int) -> Int { min(max(sessions, 1), widest) }

    /// Rounds an epoch lasts at least: ``epochRounds``, and four per session, so that the first round of each
    /// session after a switch (a worker catching up on the tokens it missed) is a small part of the epoch.
    static func rounds(level: Int) -> Int { max(epochRounds, 4 * level) }

    /// Whether a round starting `now` while `sessions` sessions run asks for drafts.
    mutating func shouldDraft(sessions: Int, now: Duration) -> Bool {
        let level = Self.level(sessions)
        guard level >= 2 else {
            close(now: now, counted: halfDone(now: now))
            return true
        }
        if let epoch, epoch.level == level {
            if epoch.rounds < Self.rounds(level: level) || now - epoch.start < Self.epochLength {
                return epoch.drafting
            }
            close(now: now, counted: true)
        } else {
            close(now: now, counted: halfDone(now: now))
        }
        let mode = nextMode(level: level)
        epoch = Epoch(level: level, drafting: mode, start: now)
        return mode
    }

    /// A round of the epoch in force finished with `tokens` published.
    mutating func record(tokens: Int) {
        guard epoch != nil else { return }
        epoch?.tokens += tokens
        epoch?.rounds += 1
    }

    /// The measured rates at `sessions` sessions: (drafting, plain), nil where nothing is measured yet.
    func rates(sessions: Int) -> (drafting: Double?, plain: Double?) {
        let level = Self.level(sessions)
        let d = drafting[level].flatMap { $0.epochs > 0 ? $0.rate : nil }
        let p = plain[level].flatMap { $0.epochs > 0 ? $0.rate : nil }
        return (d, p)
    }

    /// Whether the epoch in force has lasted half its rounds and half its time: cut short by a change of load
    /// (every round of it ran at its level), it still counts then, so that a load that keeps changing does not
    /// keep every epoch from counting.
    private func halfDone(now: Duration) -> Bool {
        guard let epoch else { return false }
        return 2 * epoch.rounds >= Self.rounds(level: epoch.level) && (now - epoch.start) * 2 >= Self.epochLength
    }

    private mutating func close(now: Duration, counted: Bool) {
        defer { epoch = nil }
        guard counted, let epoch, epoch.rounds > 0 else { return }
        let seconds = Double((now - epoch.start).microseconds) / 1e6
        guard seconds > 0 else { return }
        let rate = Double(epoch.tokens) / seconds
        func learn(_ e: inout Estimate) {
            e.rate = e.epochs == 0 ? rate : (1 - Self.learning) * e.rate + Self.learning * rate
            e.epochs += 1
        }
        if epoch.drafting {
            learn(&drafting[epoch.level, default: Estimate()])
        } else {
            learn(&plain[epoch.level, default: Estimate()])
        }
    }

    private mutating func nextMode(level: Int) -> Bool {
        let n = started[level, default: 0] + 1
        started[level] = n
        let d = drafting[level] ?? Estimate(), p = plain[level] ?? Estimate()
        if d.epochs < Self.minimumEpochs || p.epochs < Self.minimumEpochs { return d.epochs <= p.epochs }
        let best = d.rate >= p.rate
        return n % Self.exploreEvery == 0 ? !best : best
    }
}
