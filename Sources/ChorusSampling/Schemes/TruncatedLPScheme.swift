/// `truncated-lp`: the paper's practical importance-sampling scheme (Khisti et al. 2025, §4;
/// SAMPLING.md §1 "Truncated LP"), an instance of the canonical two-step scheme.
///
/// K = 2 with laws `a` (first) and `b` (second), identical or not: rank the tokens by
/// `q(i) − a(i) b(i)` descending (ties: lower token id first). The top `s` form Ω1, the rest Ω2.
/// A pair with one token in Ω1 selects that token; a pair inside Ω2 selects the better-ranked one;
/// a pair of two distinct Ω1 tokens selects the better-ranked one with a free weight `w`, one weight
/// per *unordered* pair (ordered weights reach exactly the same laws `p_I`, since only the total mass
/// a pair sends to each token matters). The weights maximise `Σ_{k∈Ω1} min(q(k), p_I(k))` through a
/// small LP in `s(s−1)/2 + s` variables and `s` rows (``LinearProgram``); `p_I` on Ω2 does not depend
/// on them and follows in O(n) from suffix sums over the ranking. Cost per pair: one O(n) radix
/// ranking, O(n) sums and the small LP; never an O(n)-sized LP.
///
/// K > 2: a tournament. The winner of drafts 1..k, whose law is the `p_I` of the previous stage, meets
/// draft k+1 in a new K = 2 stage (re-ranked, new LP) with laws (`p_I so far`, `p_{k+1}`). Because the
/// drafts are independent, the winner so far is independent of the next draft, so the last stage's law
/// is the exact `p_I` of the whole rule.
///
/// Guard: with small s the truncated rule can fall below single-draft sampling (p = q uniform over
/// three tokens, s = 1: 7/9 against 1). With `guardWithSingleDraft` the prepared selection compares its
/// acceptance with `Σ min(p_1, q)` and, when lower, uses the first-draft rule instead; the choice is
/// made from the laws alone, so it is still exact, and it is reported in
/// ``TruncatedLPSelection/usedSingleDraftGuard``.
public struct TruncatedLPScheme: SelectionScheme {
    public let name = "truncated-lp"
    /// Size of Ω1 (≥ 1); values above the vocabulary size mean the whole vocabulary.
    public let s: Int
    public let guardWithSingleDraft: Bool

    public init(s: Int, guardWithSingleDraft: Bool = true) {
        self.s = s
        self.guardWithSingleDraft = guardWithSingleDraft
    }

    public func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection {
        try prepareTruncated(target: target, drafts: drafts)
    }

    /// The concrete prepared selection (for callers that want the guard's report).
    public func prepareTruncated(
        target: TokenDistribution, drafts: [TokenDistribution]
    ) throws -> TruncatedLPSelection {
        try checkLaws(target: target, drafts: drafts)
        guard s >= 1 else { throw SamplingError.unsupported(scheme: name, reason: "s must be ≥ 1, got \(s)") }
        let rule = try TruncatedLPRule(target: target, drafts: drafts, s: s)
        return TruncatedLPSelection(rule: rule, target: target, firstDraft: drafts[0], guarded: guardWithSingleDraft)
    }
}

/// A prepared `truncated-lp` selection: the tournament rule, or the first-draft rule when the guard
/// found the tournament worse than single-draft sampling.
public struct TruncatedLPSelection: PreparedSelection {
    enum Active: Sendable {
        case truncated(CanonicalSelection<TruncatedLPRule>)
        case singleDraft(CanonicalSelection<FirstDraftRule>)
    }

    /// The tournament rule (always built, whether or not it is used).
    public let rule: TruncatedLPRule
    /// `Σ min(q, p_I)` of the tournament rule, before the guard.
    public let unguardedAcceptance: Double
    /// `Σ min(q, p_1)`: single-draft sampling on the first draft.
    public let singleDraftAcceptance: Double
    /// True when the guard replaced the tournament by the first-draft rule.
    public let usedSingleDraftGuard: Bool
    let active: Active

    init(rule: TruncatedLPRule, target: TokenDistribution, firstDraft: TokenDistribution, guarded: Bool) {
        self.rule = rule
        var truncated = 0.0
        var single = 0.0
        for y in 0..<target.vocabularySize {
            truncated += min(target[y], rule.selectedLaw[y])
            single += min(target[y], firstDraft[y])
        }
        unguardedAcceptance = truncated
        singleDraftAcceptance = single
        usedSingleDraftGuard = guarded && truncated < single
        if usedSingleDraftGuard {
            active = .singleDraft(CanonicalSelection(rule: FirstDraftRule(draft: firstDraft), target: target))
        } else {
            active = .truncated(CanonicalSelection(rule: rule, target: target))
        }
    }

    public var acceptance: Double {
        switch active {
        case let .truncated(selection): return selection.acceptance
        case let .singleDraft(selection): return selection.acceptance
        }
    }

    public func select<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> SelectionOutcome {
        switch active {
        case let .truncated(selection): return selection.select(drafted, using: &rng)
        case let .singleDraft(selection): return selection.select(drafted, using: &rng)
        }
    }

    public func law(given drafted: [Int]) -> SelectionLaw {
        switch active {
        case let .truncated(selection): return selection.law(given: drafted)
        case let .singleDraft(selection): return selection.law(given: drafted)
        }
    }
}

/// The truncated-LP tournament rule: stage k (k = 1..K−1) lets the winner of drafts 1..k meet draft k+1.
public struct TruncatedLPRule: SelectionRule {
    /// selectedLaw: [vocabularySize], the exact `p_I` of the whole tournament.
    public let selectedLaw: [Double]
    /// stages: [K − 1].
    public let stages: [TruncatedLPStage]

    init(target: TokenDistribution, drafts: [TokenDistribution], s: Int) throws {
        var law = drafts[0].probabilities
        var stages: [TruncatedLPStage] = []
        stages.reserveCapacity(drafts.count - 1)
        for k in 1..<max(1, drafts.count) {
            let stage = try TruncatedLPStage(
                target: target.probabilities, first: law,
                second: drafts[k].probabilities, s: s, law: &law)
            stages.append(stage)
        }
        selectedLaw = law
        self.stages = stages
    }

    public func choose<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> Int {
        guard var winner = drafted.first else { return 0 }
        for (k, stage) in stages.enumerated() where k + 1 < drafted.count {
            let (better, worse, w) = stage.contest(winner, drafted[k + 1])
            winner = w >= 1 || rng.nextUnit() < w ? better : worse
        }
        return winner
    }

    public func selectionProbabilities(_ drafted: [Int]) -> [(token: Int, probability: Double)] {
        guard let first = drafted.first else { return [] }
        var current: [(token: Int, probability: Double)] = [(first, 1)]
        for (k, stage) in stages.enumerated() where k + 1 < drafted.count {
            var next: [(token: Int, probability: Double)] = []
            func add(_ token: Int, _ p: Double) {
                guard p > 0 else { return }
                if let i = next.firstIndex(where: { $0.token == token }) {
                    next[i].probability += p
                } else {
                    next.append((token, p))
                }
            }
            for (token, p) in current {
                let (better, worse, w) = stage.contest(token, drafted[k + 1])
                add(better, p * w)
                add(worse, p * (1 - w))
            }
            current = next
        }
        return current
    }
}

/// One K = 2 stage: laws `first` (the winner so far) and `second` (the next draft).
public struct TruncatedLPStage: Sendable {
    /// rank: [vocabularySize], position of each token in the ranking (0 = best).
    let rank: [Int32]
    /// |Ω1| = min(s, vocabularySize).
    public let omega1Size: Int
    /// weights: [omega1Size × omega1Size]; `weights[i * omega1Size + j]` (i < j, positions in the ranking)
    /// is the probability that the pair {rank i, rank j} selects the rank-i token.
    let weights: [Double]
    /// The Ω1 LP's optimum `Σ_{k∈Ω1} t_k`.
    public let omega1Objective: Double

    /// Ω1 tokens, best first.
    public var omega1: [Int] {
        var tokens = [Int](repeating: 0, count: omega1Size)
        for (token, r) in rank.enumerated() where Int(r) < omega1Size { tokens[Int(r)] = token }
        return tokens
    }

    /// q, a, b: [n]. On return `law` ([n]) is the law of this stage's winner (it may alias `a`).
    init(target q: [Double], first a: [Double], second b: [Double], s: Int, law: inout [Double]) throws {
        let n = q.count
        let order = rankDescending(target: q, first: a, second: b)
        var rank = [Int32](repeating: 0, count: n)
        for (r, token) in order.enumerated() { rank[Int(token)] = Int32(r) }
        let s = min(s, n)

        // Ω2, from the worst rank up: suffix masses of the tokens ranked below.
        var out = [Double](repeating: 0, count: n)
        var aBelow = 0.0
        var bBelow = 0.0
        var r = n - 1
        while r >= s {
            let k = Int(order[r])
            out[k] = a[k] * b[k] + a[k] * bBelow + b[k] * aBelow
            aBelow += a[k]
            bBelow += b[k]
            r -= 1
        }
        // Ω1: fixed part (pairs with itself or with Ω2), then the free pairs.
        let omega = (0..<s).map { Int(order[$0]) }
        var base = omega.map { k in a[k] * b[k] + a[k] * bBelow + b[k] * aBelow }
        var pairMass = [Double](repeating: 0, count: s * s)
        for i in 0..<s {
            for j in (i + 1)..<max(i + 1, s) {
                let u = omega[i], v = omega[j]
                pairMass[i * s + j] = a[u] * b[v] + a[v] * b[u]
            }
        }
        var weights = [Double](repeating: 1, count: s * s)
        var objective = 0.0
        if s >= 2 {
            // Variables: w for each pair with mass (probability of the better-ranked token), then t_k.
            var pairs: [(i: Int, j: Int)] = []
            for i in 0..<s {
                for j in (i + 1)..<s where pairMass[i * s + j] > 0 { pairs.append((i, j)) }
            }
            let count = pairs.count + s
            var program = LinearProgram(
                objective: [Double](repeating: 0, count: count),
                upperBounds: [Double](repeating: 1, count: count))
            for c in 0..<s {
                program.objective[pairs.count + c] = 1
                program.upperBounds[pairs.count + c] = q[omega[c]]
            }
            // Row c: t_c − p_I(c) ≤ 0, with p_I(c) = base_c + Σ_{j>c} m w + Σ_{i<c} m (1 − w).
            var rows = [[Double]](repeating: [Double](repeating: 0, count: count), count: s)
            var rhs = base
            for (v, pair) in pairs.enumerated() {
                let m = pairMass[pair.i * s + pair.j]
                rows[pair.i][v] = -m
                rows[pair.j][v] = m
                rhs[pair.j] += m
            }
            for c in 0..<s {
                rows[c][pairs.count + c] = 1
                program.addRow(rows[c], .lessOrEqual, rhs[c])
            }
            let solution = try program.maximize()
            objective = solution.objective
            for (v, pair) in pairs.enumerated() {
                let w = min(1, max(0, solution.x[v]))
                weights[pair.i * s + pair.j] = w
                let m = pairMass[pair.i * s + pair.j]
                base[pair.i] += m * w
                base[pair.j] += m * (1 - w)
            }
        } else if s == 1 {
            objective = min(q[omega[0]], base[0])
        }
        for c in 0..<s { out[omega[c]] = base[c] }
        law = out
        self.rank = rank
        self.omega1Size = s
        self.weights = weights
        self.omega1Objective = objective
    }

    /// The pair (x from the winner so far, y from the next draft): the better-ranked token, the other,
    /// and the probability `w` of selecting the better one (1 unless both are distinct Ω1 tokens).
    @inline(__always)
    func contest(_ x: Int, _ y: Int) -> (better: Int, worse: Int, w: Double) {
        if x == y { return (x, y, 1) }
        let rx = Int(rank[x]), ry = Int(rank[y])
        let (better, worse, rb, rw) = rx < ry ? (x, y, rx, ry) : (y, x, ry, rx)
        if rw >= omega1Size { return (better, worse, 1) }
        return (better, worse, weights[rb * omega1Size + rw])
    }
}

/// Token ids ordered by `score(i) = q(i) − a(i) b(i)` descending, ties by lower id: `order[r]` is the
/// token at rank r. q, a, b: [n].
///
/// Exact, in near-linear time: a stable LSD radix sort (three passes of 11-bit digits, a pass skipped
/// when every key shares its digit) on the high 32 bits of the order-preserving bit pattern of each
/// score, then a comparison sort of each run of tokens that share those 32 bits (scores equal to about
/// 1e-6 relative; rare, and exact ties are already in id order). The radix passes are stable and start
/// from ascending ids, hence the tie rule. 32 000 tokens cost three linear passes instead of a full
/// comparison sort.
func rankDescending(target q: [Double], first a: [Double], second b: [Double]) -> [Int32] {
    let n = q.count
    @inline(__always) func score(_ i: Int) -> Double { q[i] - a[i] * b[i] }
    let digitBits = 11
    let buckets = 1 << digitBits
    let mask = UInt32(buckets - 1)
    let passes = 3
    var keys = [UInt32](repeating: 0, count: n)
    var keyScratch = [UInt32](repeating: 0, count: n)
    var order = [Int32](repeating: 0, count: n)
    var orderScratch = [Int32](repeating: 0, count: n)
    var histogram = [Int](repeating: 0, count: buckets * passes)
    keys.withUnsafeMutableBufferPointer { keys in
        histogram.withUnsafeMutableBufferPointer { histogram in
            for i in 0..<n {
                let key = descendingKey(score(i))
                keys[i] = key
                histogram[Int(key & mask)] += 1
                histogram[buckets + Int((key >> 11) & mask)] += 1
                histogram[2 * buckets + Int(key >> 22)] += 1
            }
        }
    }
    for i in 0..<n { order[i] = Int32(i) }
    for p in 0..<passes {
        let offset = p * buckets
        let shift = UInt32(p * digitBits)
        // A digit shared by every key leaves the order unchanged: skip the pass.
        if n == 0 || histogram[offset + Int((keys[0] >> shift) & mask)] == n { continue }
        histogram.withUnsafeMutableBufferPointer { histogram in
            var start = 0
            for d in 0..<buckets {
                let c = histogram[offset + d]
                histogram[offset + d] = start
                start += c
            }
            keys.withUnsafeBufferPointer { keys in
                order.withUnsafeBufferPointer { order in
                    keyScratch.withUnsafeMutableBufferPointer { keyOut in
                        orderScratch.withUnsafeMutableBufferPointer { orderOut in
                            for i in 0..<n {
                                let key = keys[i]
                                let slot = offset + Int((key >> shift) & mask)
                                let position = histogram[slot]
                                histogram[slot] = position + 1
                                keyOut[position] = key
                                orderOut[position] = order[i]
                            }
                        }
                    }
                }
            }
        }
        swap(&keys, &keyScratch)
        swap(&order, &orderScratch)
    }
    // Runs that share the high 32 bits: order them by the exact score, then id.
    var runStart = 0
    while runStart < n {
        var runEnd = runStart + 1
        while runEnd < n && keys[runEnd] == keys[runStart] { runEnd += 1 }
        if runEnd - runStart > 1 {
            order[runStart..<runEnd].sort { x, y in
                let sx = score(Int(x)), sy = score(Int(y))
                return sx != sy ? sx > sy : x < y
            }
        }
        runStart = runEnd
    }
    return order
}

/// The high 32 bits of an order-reversing map of doubles onto UInt64 (ascending map: negatives get all
/// bits flipped, others the sign bit set; then complemented). −0 is folded into +0.
@inline(__always)
private func descendingKey(_ value: Double) -> UInt32 {
    let bits = (value == 0 ? 0.0 : value).bitPattern
    let ascending = bits & (1 << 63) != 0 ? ~bits : bits | (1 << 63)
    return UInt32(truncatingIfNeeded: ~ascending >> 32)
}
