/// A probability distribution over a vocabulary of `vocabularySize` tokens.
///
/// Invariants: every entry is finite and ≥ 0, the entries sum to 1 (renormalised at construction
/// after a tolerance check), and `support` lists exactly the tokens with positive probability in
/// ascending order. The dense vector is always available (O(1) look-up, which every scheme needs);
/// `support` lets code that only cares about drawable tokens (top-k, top-p) skip the zeros.
public struct TokenDistribution: Sendable, Equatable, CustomStringConvertible {
    /// probabilities: [vocabularySize], summing to 1.
    public let probabilities: [Double]
    /// Tokens with positive probability, ascending.
    public let support: [Int]

    /// Default tolerance on the sum of a probability vector given by a caller.
    public static let defaultTolerance = 1e-6

    public var vocabularySize: Int { probabilities.count }

    @inlinable
    public subscript(token: Int) -> Double { probabilities[token] }

    /// A dense distribution. Entries must be finite and ≥ 0 and sum to 1 within `tolerance`;
    /// the stored vector is renormalised to sum to 1.
    public init(probabilities: [Double], tolerance: Double = TokenDistribution.defaultTolerance) throws {
        guard !probabilities.isEmpty else { throw SamplingError.invalidSupport("empty vocabulary") }
        var sum = 0.0
        for (i, v) in probabilities.enumerated() {
            guard v.isFinite, v >= 0 else { throw SamplingError.invalidProbability(index: i, value: v) }
            sum += v
        }
        guard abs(sum - 1) <= tolerance, sum > 0 else {
            throw SamplingError.notNormalized(sum: sum, tolerance: tolerance)
        }
        self.init(unchecked: probabilities.map { $0 / sum })
    }

    /// A distribution from non-negative weights (any positive total), normalised.
    public init(weights: [Double]) throws {
        var sum = 0.0
        for (i, v) in weights.enumerated() {
            guard v.isFinite, v >= 0 else { throw SamplingError.invalidProbability(index: i, value: v) }
            sum += v
        }
        guard sum > 0, sum.isFinite else { throw SamplingError.notNormalized(sum: sum, tolerance: .infinity) }
        self.init(unchecked: weights.map { $0 / sum })
    }

    /// A sparse distribution: `probabilities[i]` on token `support[i]`, zero elsewhere.
    /// Tokens must be distinct and inside `0..<vocabularySize`.
    public init(
        support tokens: [Int], probabilities values: [Double], vocabularySize: Int,
        tolerance: Double = TokenDistribution.defaultTolerance
    ) throws {
        guard vocabularySize > 0 else { throw SamplingError.invalidSupport("empty vocabulary") }
        guard tokens.count == values.count else {
            throw SamplingError.invalidSupport("\(tokens.count) tokens but \(values.count) probabilities")
        }
        var dense = [Double](repeating: 0, count: vocabularySize)
        var seen = [Bool](repeating: false, count: vocabularySize)
        for (t, v) in zip(tokens, values) {
            guard t >= 0, t < vocabularySize else {
                throw SamplingError.invalidSupport("token \(t) outside vocabulary of \(vocabularySize)")
            }
            guard !seen[t] else { throw SamplingError.invalidSupport("token \(t) listed twice") }
            seen[t] = true
            dense[t] = v
        }
        try self.init(probabilities: dense, tolerance: tolerance)
    }

    /// All mass on `token`.
    public static func oneHot(_ token: Int, vocabularySize: Int) -> TokenDistribution {
        var dense = [Double](repeating: 0, count: vocabularySize)
        dense[token] = 1
        return TokenDistribution(unchecked: dense)
    }

    /// The uniform distribution.
    public static func uniform(vocabularySize: Int) -> TokenDistribution {
        TokenDistribution(unchecked: [Double](repeating: 1 / Double(vocabularySize), count: vocabularySize))
    }

    /// Trusted construction from a vector the caller already normalised (internal use).
    @usableFromInline
    init(unchecked probabilities: [Double]) {
        self.probabilities = probabilities
        var support: [Int] = []
        support.reserveCapacity(probabilities.count)
        for (i, v) in probabilities.enumerated() where v > 0 { support.append(i) }
        self.support = support
    }

    /// Trusted construction when the caller also knows the support (ascending, exactly the positive
    /// entries) — the quantized law's conversion, which skips the O(n) support scan.
    init(unchecked probabilities: [Double], support: [Int]) {
        self.probabilities = probabilities
        self.support = support
    }

    /// Draw one token by inverse CDF over `support` with one uniform from `rng`.
    public func sample<R: RandomNumberGenerator>(using rng: inout R) -> Int {
        sampleIndex(weights: probabilities, support: support, total: 1, using: &rng)
    }

    /// Equal laws: the same vocabulary, the same support and the same values on it, in O(support)
    /// rather than O(n) (off the support both are zero by the invariant). Schemes compare the draft
    /// laws of every position to find identical drafts, so at n = 151,936 with sparse (quantized)
    /// laws this is the difference between a few hundred comparisons and 1.2 MB per law.
    public static func == (lhs: TokenDistribution, rhs: TokenDistribution) -> Bool {
        guard lhs.probabilities.count == rhs.probabilities.count, lhs.support == rhs.support else { return false }
        return lhs.probabilities.withUnsafeBufferPointer { a in
            rhs.probabilities.withUnsafeBufferPointer { b in
                lhs.support.allSatisfy { a[$0] == b[$0] }
            }
        }
    }

    public var description: String {
        if support.count <= 8 {
            return "TokenDistribution(" + support.map { "\($0): \(probabilities[$0])" }.joined(separator: ", ") + ")"
        }
        return "TokenDistribution(n: \(vocabularySize), support: \(support.count) tokens)"
    }
}

/// Inverse-CDF draw of an index with probability `weights[i] / total` over the listed `support`
/// (all of `weights` when `support` is nil). One uniform is consumed. Robust to rounding: a uniform
/// that falls past the accumulated total returns the last token with positive weight.
@inlinable
func sampleIndex<R: RandomNumberGenerator>(
    weights: [Double], support: [Int]?, total: Double, using rng: inout R
) -> Int {
    let u = rng.nextUnit() * total
    var acc = 0.0
    var last = -1
    if let support {
        for i in support where weights[i] > 0 {
            acc += weights[i]
            last = i
            if u < acc { return i }
        }
    } else {
        for i in weights.indices where weights[i] > 0 {
            acc += weights[i]
            last = i
            if u < acc { return i }
        }
    }
    return last
}
