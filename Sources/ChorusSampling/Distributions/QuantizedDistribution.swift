import Foundation

/// A token law with fixed-point integer masses: token `tokens[i]` has probability
/// `masses[i] / 2^totalBits`, every other token probability 0.
///
/// This is the compact draft law of issue 13: the worker draws its token from *this* law (exact
/// integer sampling, ``sample(using:)``) and sends these integers; the coordinator verifies against
/// the same integers. Exactness therefore holds by construction, whatever the rounding that produced
/// the masses — the rounding only moves acceptance, never the output law.
///
/// Why a power-of-two total: `mass / 2^b` is exactly representable in a `Double` (b ≤ 31 < 53), and
/// so is every partial sum, so ``distribution`` is the quantized law *exactly* (it sums to 1 with no
/// rounding), every scheme that takes a ``TokenDistribution`` verifies against exactly the law the
/// token was drawn from, and an integer uniform in `[0, 2^b)` is the top b bits of one generator
/// output (no rejection, no modulo bias).
///
/// Invariants (checked by the throwing initialiser, kept by construction elsewhere): `tokens` strictly
/// ascending inside `0..<vocabularySize`, one mass each, every mass ≥ 1, masses summing to exactly
/// `2^totalBits`.
public struct QuantizedDistribution: Sendable, Equatable, Hashable, CustomStringConvertible {
    public let vocabularySize: Int
    /// b: the masses sum to `2^b`.
    public let totalBits: Int
    /// tokens: [m], strictly ascending.
    public let tokens: [Int32]
    /// masses: [m], each ≥ 1, summing to `2^totalBits`.
    public let masses: [UInt32]

    /// Allowed `totalBits`: masses and their total fit in a `UInt32`.
    public static let totalBitsRange = 1...31

    /// The shared total Chorus quantizes draft laws to: 2^20 keeps every token of probability
    /// ≥ 2^-21 ≈ 4.8e-7. Measured on Qwen2.5-Coder-1.5B's laws at T = 1 (99 positions of code,
    /// n = 151,936; issue 13): median 49 tokens and 139 bytes per law (p90 2.3 KB, max 76 KB, against
    /// 594 KiB as float32), mean Σ|p − p̂| = 7.6e-4, and acceptance against q = p lower by 3.8e-4
    /// (single draft) and 3.1e-4 (optimal, K = 4); 2^16 loses 1.6e-3, 2^24 costs 4× the bytes.
    public static let defaultTotalBits = 20

    /// `2^totalBits`.
    public var total: UInt64 { 1 << UInt64(totalBits) }

    /// Number of tokens with positive mass.
    public var supportCount: Int { tokens.count }

    /// A validated law; throws ``SamplingError/invalidSupport(_:)`` or ``SamplingError/notNormalized(sum:tolerance:)``
    /// naming the first violation.
    public init(vocabularySize: Int, totalBits: Int, tokens: [Int32], masses: [UInt32]) throws(SamplingError) {
        guard vocabularySize > 0 else { throw SamplingError.invalidSupport("empty vocabulary") }
        guard Self.totalBitsRange.contains(totalBits) else {
            throw SamplingError.invalidSupport("total 2^\(totalBits) outside 2^1…2^31")
        }
        guard tokens.count == masses.count else {
            throw SamplingError.invalidSupport("\(tokens.count) tokens but \(masses.count) masses")
        }
        var previous: Int32 = -1
        var sum: UInt64 = 0
        for (t, mass) in zip(tokens, masses) {
            guard t > previous, Int(t) < vocabularySize else {
                throw SamplingError.invalidSupport(
                    "tokens must ascend strictly inside the vocabulary of \(vocabularySize) (token \(t) after \(previous))"
                )
            }
            guard mass > 0 else { throw SamplingError.invalidSupport("token \(t) has mass 0 (leave it out)") }
            previous = t
            sum += UInt64(mass)
        }
        guard sum == UInt64(1) << UInt64(totalBits) else {
            throw SamplingError.notNormalized(sum: Double(sum) / Double(UInt64(1) << UInt64(totalBits)), tolerance: 0)
        }
        self.init(trusted: vocabularySize, totalBits: totalBits, tokens: tokens, masses: masses)
    }

    init(trusted vocabularySize: Int, totalBits: Int, tokens: [Int32], masses: [UInt32]) {
        self.vocabularySize = vocabularySize
        self.totalBits = totalBits
        self.tokens = tokens
        self.masses = masses
    }

    /// Mass of `token` (0 off the support): a binary search, O(log m).
    public func mass(of token: Int) -> UInt32 {
        var lo = 0, hi = tokens.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if Int(tokens[mid]) < token { lo = mid + 1 } else { hi = mid }
        }
        return lo < tokens.count && Int(tokens[lo]) == token ? masses[lo] : 0
    }

    /// `P(token)`, exactly `mass / 2^totalBits`.
    public func probability(of token: Int) -> Double {
        Double(mass(of: token)) * scale
    }

    /// `2^-totalBits`, exact.
    var scale: Double { Double(sign: .plus, exponent: -totalBits, significand: 1) }

    /// Exact integer sampling: `r` = the top `totalBits` bits of one `rng.next()` (uniform on
    /// `[0, 2^b)`), then the token whose cumulative mass interval `[M_{i−1}, M_i)` holds r.
    /// `P(tokens[i]) = masses[i] / 2^b` exactly; one generator output is consumed.
    public func sample<R: RandomNumberGenerator>(using rng: inout R) -> Int {
        let r = rng.next() >> UInt64(64 - totalBits)
        var acc: UInt64 = 0
        for i in masses.indices {
            acc += UInt64(masses[i])
            if r < acc { return Int(tokens[i]) }
        }
        // Unreachable: the masses sum to 2^b > r.
        return Int(tokens[tokens.count - 1])
    }

    /// The same law as a ``TokenDistribution``, exactly: entries `mass · 2^-b` (exact doubles,
    /// summing to exactly 1), stored sparse — O(m), nothing of the vocabulary's size is allocated
    /// (the coordinator keeps draft laws in this form from the decoded reply to the verifier).
    public var distribution: TokenDistribution {
        let s = scale
        return TokenDistribution(
            uncheckedSupport: tokens.map { Int($0) }, values: masses.map { Double($0) * s },
            vocabularySize: vocabularySize)
    }

    /// The same law with its dense vector of n entries (for tools that want one; O(n)).
    public var denseDistribution: TokenDistribution {
        var dense = [Double](repeating: 0, count: vocabularySize)
        let s = scale
        for (t, mass) in zip(tokens, masses) { dense[Int(t)] = Double(mass) * s }
        return TokenDistribution(unchecked: dense, support: tokens.map { Int($0) })
    }

    /// `Σ_y |law(y) − self(y)|` (twice the total variation distance), in float64.
    public func l1Distance(to law: TokenDistribution) -> Double {
        var distance = 0.0
        var j = 0
        let s = scale
        for (index, y) in law.support.enumerated() {
            while j < tokens.count, Int(tokens[j]) < y {
                distance += Double(masses[j]) * s
                j += 1
            }
            if j < tokens.count, Int(tokens[j]) == y {
                distance += abs(law.probability(atSupportIndex: index) - Double(masses[j]) * s)
                j += 1
            } else {
                distance += law.probability(atSupportIndex: index)
            }
        }
        while j < tokens.count {
            distance += Double(masses[j]) * s
            j += 1
        }
        return distance
    }

    public var description: String {
        if tokens.count <= 8 {
            return "QuantizedDistribution(2^\(totalBits): "
                + zip(tokens, masses).map { "\($0): \($1)" }.joined(separator: ", ") + ")"
        }
        return "QuantizedDistribution(n: \(vocabularySize), 2^\(totalBits), support: \(tokens.count) tokens)"
    }
}

// MARK: - Quantizing

extension QuantizedDistribution {
    /// Quantizes `law` to masses summing to `2^totalBits`, in O(n) (no sort on the common path).
    ///
    /// Rule: a token is kept when its mass rounds to at least 1 (`p · 2^b ≥ 1/2`); the arg-max is
    /// always kept. The kept probabilities are rescaled to fill the total (the dropped tail's mass is
    /// spread proportionally, not dumped on one token) and rounded to nearest; the rounding residual
    /// (a few units, |residual| ≤ m/2) goes to the arg-max. When the arg-max cannot absorb a negative
    /// residual (only for near-uniform laws over about √(2·total) tokens or more) a sorted fallback
    /// apportions the total by largest remainders (Hamilton's method).
    ///
    /// Exactness never depends on this rule: whatever it produces is the law the token is drawn from
    /// and verified against. It only decides `Σ|p − p̂|`, hence the acceptance lost.
    public init(quantizing law: TokenDistribution, totalBits: Int = QuantizedDistribution.defaultTotalBits) {
        self.init(
            candidates: law.support, weights: law.supportProbabilities,
            vocabularySize: law.vocabularySize, totalBits: totalBits)
    }

    /// Quantizes non-negative finite weights (any positive total): `weights[i]` on `candidates[i]`
    /// (ascending token ids).
    init(candidates: [Int], weights w: [Double], vocabularySize n: Int, totalBits requestedBits: Int) {
        let b = min(max(requestedBits, Self.totalBitsRange.lowerBound), Self.totalBitsRange.upperBound)
        let total = Double(UInt64(1) << UInt64(b))
        var sum = 0.0
        var argmax = 0
        for i in w.indices {
            sum += w[i]
            if w[i] > w[argmax] { argmax = i }
        }
        // 1. Keep the tokens that round to a positive mass.
        let cut = 0.5 * sum / total
        var keptSum = 0.0
        var keptCount = 0
        for i in w.indices where w[i] >= cut || i == argmax {
            keptSum += w[i]
            keptCount += 1
        }
        // 2. Rescale to the total, round to nearest (at least 1).
        let factor = total / keptSum
        var tokens: [Int32] = []
        var masses: [UInt32] = []
        var keptWeights: [Double] = []
        tokens.reserveCapacity(keptCount)
        masses.reserveCapacity(keptCount)
        keptWeights.reserveCapacity(keptCount)
        var assigned: Int64 = 0
        var argmaxIndex = 0
        for i in w.indices where w[i] >= cut || i == argmax {
            let mass = max(1, min((w[i] * factor).rounded(.toNearestOrAwayFromZero), total))
            if i == argmax { argmaxIndex = tokens.count }
            tokens.append(Int32(candidates[i]))
            masses.append(UInt32(mass))
            keptWeights.append(w[i])
            assigned += Int64(mass)
        }
        // 3. The residual to the arg-max (almost always), else the fallback.
        let residual = Int64(total) - assigned
        if Int64(masses[argmaxIndex]) + residual >= 1 {
            masses[argmaxIndex] = UInt32(Int64(masses[argmaxIndex]) + residual)
        } else {
            Self.apportion(total: total, factor: factor, tokens: &tokens, masses: &masses, weights: keptWeights)
        }
        self.init(trusted: n, totalBits: b, tokens: tokens, masses: masses)
    }

    /// Hamilton's largest-remainder apportionment of `total` over the kept tokens (scaled values
    /// `v = w · factor`, `w[i]` the weight of `tokens[i]`): each token gets `⌊v⌋`, and the units left
    /// go one each to the largest remainders (ties: larger weight, then lower id); tokens left at 0
    /// are dropped. Every mass is within 1 of its value. Sorted, O(m log m): reached only when the
    /// arg-max cannot absorb the rounding residual (near-uniform laws over about √(2·total) tokens or more).
    private static func apportion(
        total: Double, factor: Double, tokens: inout [Int32], masses: inout [UInt32], weights w: [Double]
    ) {
        var assigned: Int64 = 0
        var remainders = [Double](repeating: 0, count: tokens.count)
        for i in tokens.indices {
            let v = w[i] * factor
            let floor = min(v.rounded(.down), total)
            masses[i] = UInt32(floor)
            remainders[i] = v - floor
            assigned += Int64(floor)
        }
        let order = tokens.indices.sorted { a, b in
            if remainders[a] != remainders[b] { return remainders[a] > remainders[b] }
            return w[a] != w[b] ? w[a] > w[b] : a < b
        }
        var left = Int64(total) - assigned
        var r = 0
        while left > 0 {
            masses[order[r % order.count]] += 1
            left -= 1
            r += 1
        }
        let keep = tokens.indices.filter { masses[$0] > 0 }
        if keep.count < tokens.count {
            tokens = keep.map { tokens[$0] }
            masses = keep.map { masses[$0] }
        }
    }

    /// The quantized law that sampling with `settings` draws from, given `logits: [vocabularySize]`:
    /// ``TokenDistribution/init(logits:settings:)`` (temperature, softmax, top-k, top-p), then
    /// ``init(quantizing:totalBits:)``.
    ///
    /// Without top-k/top-p a faster path skips the dense vector and most exponentials: a token with
    /// `(l − l_max)/T < −(b + 2) ln 2` has weight below `2^-(b+2)` of the arg-max's, hence probability
    /// below `2^-(b+2)`, and could never round to a positive mass; it is not a candidate. The cut
    /// then uses the candidates' total (≥ 1 − n·2^-(b+2) of the full one), which keeps at least the
    /// tokens the full rule keeps. Either way the result is the exact law the token is drawn from.
    public init(logits: [Float], settings: SamplingSettings, totalBits: Int = QuantizedDistribution.defaultTotalBits)
        throws
    {
        try settings.validate()
        let needsTruncation = settings.topK > 1 || settings.topP < 1
        guard settings.temperature > 0, settings.topK != 1, !needsTruncation else {
            self.init(quantizing: try TokenDistribution(logits: logits, settings: settings), totalBits: totalBits)
            return
        }
        guard !logits.isEmpty else { throw SamplingError.invalidSupport("empty logits") }
        var maxLogit = -Float.infinity
        var bad = false
        for v in logits {
            bad = bad || v.isNaN || v == .infinity
            maxLogit = max(maxLogit, v)
        }
        if bad, let i = logits.firstIndex(where: { $0.isNaN || $0 == .infinity }) {
            throw SamplingError.invalidSamplingSettings("logit \(i) is \(logits[i])")
        }
        guard maxLogit > -.infinity else { throw SamplingError.invalidSamplingSettings("every logit is -infinity") }
        let b = min(max(totalBits, Self.totalBitsRange.lowerBound), Self.totalBitsRange.upperBound)
        let invT = 1 / settings.temperature
        let m = Double(maxLogit)
        // Candidates: (l − m)/T ≥ −(b + 2) ln 2, i.e. l ≥ m − T (b + 2) ln 2 (in float64, so a logit
        // on the boundary is kept: erring toward candidates is always safe).
        let floor = m - settings.temperature * Double(b + 2) * M_LN2
        var candidates: [Int] = []
        var weights: [Double] = []
        for i in logits.indices where Double(logits[i]) >= floor {
            candidates.append(i)
            weights.append(exp((Double(logits[i]) - m) * invT))
        }
        self.init(candidates: candidates, weights: weights, vocabularySize: logits.count, totalBits: b)
    }
}
