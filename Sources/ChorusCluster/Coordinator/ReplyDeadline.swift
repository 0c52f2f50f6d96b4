/// How long a round waits for draft replies (issue 11): learned from recent reply times, unless fixed.
///
/// Learned: twice the 90th percentile of the last 64 used replies' round-trip times, plus 5 ms, within
/// [10 ms, 10 s] (a miss costs the round its drafts, so the margin is generous); 2 s before any reply has been seen. A worker catching up on a long context (a new session's
/// prompt, or a cache it lost) needs more than a round's usual time: a request carrying more than
/// ``catchUpTokens`` new tokens may take 2 s plus 10 ms per token beyond what the deadline allows anyway, so
/// a first request is not cut off by a deadline learned on short rounds (and the worker not then asked for the
/// whole context again, round after round).
struct ReplyDeadline: Sendable {
    /// A fixed deadline (`--deadline-ms`), or nil to learn it.
    var fixed: Duration?
    /// Round-trip times of recent used replies, microseconds (a ring of `capacity`).
    private(set) var recent: [Int64] = []
    private var next = 0
    static let capacity = 64
    static let catchUpTokens = 16

    init(fixed: Duration?) { self.fixed = fixed }

    mutating func record(microseconds: Int64) {
        if recent.count < Self.capacity {
            recent.append(microseconds)
        } else {
            recent[next] = microseconds
            next = (next + 1) % Self.capacity
        }
    }

    /// The deadline of a round whose requests carry no long catch-up.
    var round: Duration {
        if let fixed { return fixed }
        guard !recent.isEmpty else { return .seconds(2) }
        let sorted = recent.sorted()
        let p90 = sorted[min(sorted.count - 1, (sorted.count * 9) / 10)]
        let learned = Duration.microseconds(p90 * 2) + .milliseconds(5)
        return min(max(learned, .milliseconds(10)), .seconds(10))
    }

    /// The deadline of one request that brings the worker `newTokens` tokens.
    func request(newTokens: Int) -> Duration {
        guard fixed == nil, newTokens > Self.catchUpTokens else { return round }
        return max(round, .seconds(2) + .milliseconds(10 * newTokens))
    }
}
