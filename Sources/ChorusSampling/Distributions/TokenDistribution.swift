import Synchronization

/// A probability distribution over a vocabulary of `vocabularySize` tokens.
///
/// Invariants: every entry is finite and ≥ 0, the entries sum to 1 (renormalised at construction
/// after a tolerance check), and `support` lists exactly the tokens with positive probability in
/// ascending order.
///
/// Two storages, one law: *dense* (a vector of n entries: target laws from logits, O(1) look-up) and
/// *sparse* (only the support's values: the compact draft laws of issue 13, which at n = 151,936 hold a
/// few dozen tokens). Code on the hot path reads a law through its support (``supportProbabilities``,
/// ``probability(atSupportIndex:)``) and point look-ups (the subscript: O(1) dense, O(log m) sparse), so
/// a sparse draft law is never widened. ``probabilities`` (the dense vector) stays available for
/// code that needs it (theory tools, schemes that read every entry); for a sparse law it is built once,
/// on first use, and kept.
public struct TokenDistribution: Sendable, Equatable, CustomStringConvertible {
    /// Tokens with positive probability, ascending.
    public let support: [Int]
    public let vocabularySize: Int
    let storage: Storage

    enum Storage: Sendable {
        /// probabilities: [vocabularySize].
        case dense([Double])
        /// values: [support.count], `values[i]` on `support[i]`; `dense` caches the widened vector.
        case sparse(values: [Double], dense: DenseVectorCache)
    }

    /// True when only the support's values are stored.
    public var isSparse: Bool {
        if case .sparse = storage { return true }
        return false
    }

    /// True when a dense vector of n entries exists for this law: always for a dense law, and for a
    /// sparse one only once something asked for ``probabilities`` (tests check the coordinator never does).
    var hasDenseVector: Bool {
        switch storage {
        case .dense: return true
        case let .sparse(_, cache): return cache.isBuilt
        }
    }

    /// probabilities: [vocabularySize], summing to 1. O(1) for a dense law; for a sparse law the
    /// vector is built on first use (O(n), once) — hot paths use ``supportProbabilities`` instead.
    public var probabilities: [Double] {
        switch storage {
        case let .dense(values): return values
        case let .sparse(values, cache): return cache.vector(support: support, values: values, count: vocabularySize)
        }
    }

    /// supportProbabilities: [support.count], the probability of `support[i]`. O(1) for a sparse law,
    /// O(m) for a dense one.
    public var supportProbabilities: [Double] {
        switch storage {
        case let .dense(values): return support.map { values[$0] }
        case let .sparse(values, _): return values
        }
    }

    /// The probability of `support[i]`, O(1).
    public func probability(atSupportIndex i: Int) -> Double {
        switch storage {
        case let .dense(values): return values[support[i]]
        case let .sparse(values, _): return values[i]
        }
    }

    /// The position of `token` in ``support``, or nil when its probability is 0: a binary search, O(log m).
    public func supportIndex(of token: Int) -> Int? {
        var lo = 0, hi = support.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if support[mid] < token { lo = mid + 1 } else { hi = mid }
        }
        return lo < support.count && support[lo] == token ? lo : nil
    }

    public subscript(token: Int) -> Double {
        switch storage {
        case let .dense(values): return values[token]
        case let .sparse(values, _): return supportIndex(of: token).map { values[$0] } ?? 0
        }
    }

    /// Default tolerance on the sum of a probability vector given by a caller.
    public static let defaultTolerance = 1e-6

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
        var support: [Int] = []
        support.reserveCapacity(probabilities.count)
        for (i, v) in probabilities.enumerated() where v > 0 { support.append(i) }
        self.init(unchecked: probabilities, support: support)
    }

    /// Trusted construction when the caller also knows the support (ascending, exactly the positive
    /// entries), which skips the O(n) support scan.
    init(unchecked probabilities: [Double], support: [Int]) {
        self.support = support
        vocabularySize = probabilities.count
        storage = .dense(probabilities)
    }

    /// Trusted sparse construction: `values[i]` on `support[i]` (ascending, every value > 0, summing to
    /// 1 as the caller guarantees), zero elsewhere. O(m): nothing of size n is allocated.
    init(uncheckedSupport support: [Int], values: [Double], vocabularySize: Int) {
        self.support = support
        self.vocabularySize = vocabularySize
        storage = .sparse(values: values, dense: DenseVectorCache())
    }

    /// Draw one token by inverse CDF over `support` with one uniform from `rng` (the same arithmetic,
    /// hence the same token, for either storage).
    public func sample<R: RandomNumberGenerator>(using rng: inout R) -> Int {
        switch storage {
        case let .dense(values):
            return sampleIndex(weights: values, support: support, total: 1, using: &rng)
        case let .sparse(values, _):
            return support[sampleIndex(weights: values, support: nil, total: 1, using: &rng)]
        }
    }

    /// Equal laws: the same vocabulary, the same support and the same values on it, in O(support)
    /// rather than O(n) (off the support both are zero by the invariant), and O(1) for two copies of
    /// one law (shared storage). Schemes compare the draft laws of every position to find identical
    /// drafts, so at n = 151,936 this is the difference between a few comparisons and 1.2 MB per law.
    public static func == (lhs: TokenDistribution, rhs: TokenDistribution) -> Bool {
        guard lhs.vocabularySize == rhs.vocabularySize, lhs.support == rhs.support else { return false }
        switch (lhs.storage, rhs.storage) {
        case let (.dense(a), .dense(b)):
            if a.withUnsafeBufferPointer({ x in b.withUnsafeBufferPointer { x.baseAddress == $0.baseAddress } }) {
                return true
            }
            return a.withUnsafeBufferPointer { x in
                b.withUnsafeBufferPointer { y in lhs.support.allSatisfy { x[$0] == y[$0] } }
            }
        case let (.sparse(a, _), .sparse(b, _)):
            return a == b
        default:
            return lhs.support.indices.allSatisfy {
                lhs.probability(atSupportIndex: $0) == rhs.probability(atSupportIndex: $0)
            }
        }
    }

    /// True when both laws have the same support and differ by at most `tolerance` on every token of
    /// it, in O(support) (the law-group promise of ``DraftSequence/lawGroup``).
    public func agrees(with other: TokenDistribution, within tolerance: Double) -> Bool {
        guard vocabularySize == other.vocabularySize, support == other.support else { return false }
        return support.indices.allSatisfy {
            abs(probability(atSupportIndex: $0) - other.probability(atSupportIndex: $0)) <= tolerance
        }
    }

    public var description: String {
        if support.count <= 8 {
            return "TokenDistribution("
                + support.indices.map { "\(support[$0]): \(probability(atSupportIndex: $0))" }.joined(separator: ", ")
                + ")"
        }
        return "TokenDistribution(n: \(vocabularySize), support: \(support.count) tokens\(isSparse ? ", sparse" : ""))"
    }
}

/// The dense vector of a sparse law, built on first use and kept (thread-safe; laws are shared across
/// tasks). Only code that asks for ``TokenDistribution/probabilities`` pays for it.
final class DenseVectorCache: Sendable {
    private let vectorStorage = Mutex<[Double]?>(nil)

    var isBuilt: Bool { vectorStorage.withLock { $0 != nil } }

    func vector(support: [Int], values: [Double], count: Int) -> [Double] {
        vectorStorage.withLock { cached in
            if let cached { return cached }
            var dense = [Double](repeating: 0, count: count)
            for (t, v) in zip(support, values) { dense[t] = v }
            cached = dense
            return dense
        }
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
