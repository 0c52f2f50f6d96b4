/// Chooses how deep each round's tree is verified (issue 11, "trees sized per round"): the depth L that
/// maximises expected tokens per unit of round time, from running estimates of
///   * per-position acceptance ρ_i — the share of rounds that reached draft position i and accepted it
///     (Laplace's rule, so an unseen position counts as ½);
///   * the target's measured cost of scoring t tree nodes — a least-squares line through the mean forward time
///     at each node count seen (the engine's cost of t rows; memory-bound it is flat, compute-bound it grows);
///   * the rest of a round (waiting for drafts, verification, publishing), its running mean.
/// Expected tokens of depth L with K drafts: E(L) = 1 + Σ_{i ≤ L} Π_{j ≤ i} ρ_j; nodes t ≤ 1 + K·L.
///
/// Exactness: the depth is a function of earlier rounds only, never of this round's draft tokens, so cutting
/// the drafts to it is a choice made before the draft tokens are seen (as trimming to the shortest reply is):
/// the drafts stay draws from the laws they travel with, and the verifier's output law is the target's.
///
/// Every `exploreEvery`-th round goes one position deeper than the choice, so the estimates of deeper
/// positions stay fresh.
struct TreeSizer: Sendable {
    /// Positions reached (the round verified a draft of at least i + 1 tokens and accepted the first i) and
    /// accepted, per position i.
    private(set) var reached: [Int] = []
    private(set) var accepted: [Int] = []
    /// Forward time per node count: (sum of microseconds, rounds).
    private(set) var forward: [Int: (total: Double, count: Double)] = [:]
    /// Mean time of a round outside the target forward, microseconds (nil: no round yet).
    private(set) var overhead: Double?
    private(set) var rounds = 0
    static let exploreEvery = 10

    /// Acceptance estimate of position i (0-based).
    func acceptance(at i: Int) -> Double {
        let r = i < reached.count ? reached[i] : 0
        let a = i < accepted.count ? accepted[i] : 0
        return Double(a + 1) / Double(r + 2)
    }

    /// E(L): expected tokens from a round verifying `length` positions.
    func expectedTokens(length: Int) -> Double {
        var total = 1.0
        var survive = 1.0
        for i in 0..<length {
            survive *= acceptance(at: i)
            total += survive
        }
        return total
    }

    /// The target's expected forward time for `nodes` tree nodes, microseconds (nil: nothing measured yet).
    func forwardCost(nodes: Int) -> Double? {
        let points = forward.map { (Double($0.key), $0.value.total / $0.value.count) }
        guard !points.isEmpty else { return nil }
        if points.count == 1 {
            // One size seen: assume cost grows with nodes no faster than proportionally beyond it.
            let (t0, c0) = points[0]
            return Double(nodes) <= t0 ? c0 : c0 * Double(nodes) / t0
        }
        let n = Double(points.count)
        let mx = points.reduce(0) { $0 + $1.0 } / n
        let my = points.reduce(0) { $0 + $1.1 } / n
        let sxx = points.reduce(0) { $0 + ($1.0 - mx) * ($1.0 - mx) }
        let sxy = points.reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) }
        let slope = sxx > 0 ? max(0, sxy / sxx) : 0
        return max(1, my + slope * (Double(nodes) - mx))
    }

    /// The depth to verify this round with `drafts` drafts, at most `limit`.
    func length(drafts: Int, limit: Int) -> Int {
        guard limit > 1, drafts > 0, let overhead, forwardCost(nodes: 1) != nil else { return limit }
        var best = limit
        var bestRate = 0.0
        for length in 1...limit {
            let nodes = 1 + drafts * length
            let time = overhead + (forwardCost(nodes: nodes) ?? 0)
            let rate = expectedTokens(length: length) / max(time, 1)
            if rate > bestRate * (1 + 1e-9) {
                best = length
                bestRate = rate
            }
        }
        if (rounds + 1) % Self.exploreEvery == 0 { return min(best + 1, limit) }
        return best
    }

    /// Learns from a verified round: `offered` positions verified, the first `acceptedCount` accepted; a forward
    /// over `nodes` nodes took `forwardMicroseconds`, the whole round `roundMicroseconds`.
    mutating func record(
        offered: Int, acceptedCount: Int, nodes: Int, forwardMicroseconds: Int64, roundMicroseconds: Int64
    ) {
        rounds += 1
        if offered > 0 {
            let reachedPositions = min(acceptedCount + 1, offered)
            while reached.count < reachedPositions {
                reached.append(0)
                accepted.append(0)
            }
            for i in 0..<reachedPositions { reached[i] += 1 }
            for i in 0..<min(acceptedCount, offered) { accepted[i] += 1 }
        }
        // Running means that follow drift: old observations decay.
        let decay = 0.9
        forward = forward.mapValues { ($0.total * decay, $0.count * decay) }
        let previous = forward[nodes] ?? (0, 0)
        forward[nodes] = (previous.total + Double(forwardMicroseconds), previous.count + 1)
        let rest = Double(max(0, roundMicroseconds - forwardMicroseconds))
        overhead = overhead.map { decay * $0 + (1 - decay) * rest } ?? rest
    }
}
