/// What one token-level selection produced.
///
/// Vocabulary (as in vLLM's rejection sampler): a drafted token that passes the scheme's test is
/// *accepted*; otherwise the output is a *recovered* (correction) token drawn from a residual law.
public struct SelectionOutcome: Sendable, Equatable {
    /// The output token Y; its law is exactly the target's, whatever the drafts were.
    public var token: Int
    /// True when Y is a drafted token that passed the scheme's acceptance test.
    public var accepted: Bool
    /// Indices (into the drafted tokens given) of every draft whose token equals Y. A recovered
    /// token can still equal a draft that was not the one tested; those drafts stay alive too.
    public var matchedDrafts: [Int]

    public init(token: Int, accepted: Bool, matchedDrafts: [Int]) {
        self.token = token
        self.accepted = accepted
        self.matchedDrafts = matchedDrafts
    }

    init(token: Int, accepted: Bool, drafted: [Int]) {
        var matched: [Int] = []
        for (i, x) in drafted.enumerated() where x == token { matched.append(i) }
        self.init(token: token, accepted: accepted, matchedDrafts: matched)
    }
}

/// The exact conditional law of one selection given the drafted tokens (used by enumeration tests
/// and by the theory tools, never on the hot path).
public struct SelectionLaw: Sendable, Equatable {
    /// output: [vocabularySize], `P(Y = y | drafted)`.
    public var output: [Double]
    /// `P(accepted | drafted)`.
    public var acceptance: Double

    public init(output: [Double], acceptance: Double) {
        self.output = output
        self.acceptance = acceptance
    }
}

/// A token-level multi-draft selection scheme (SAMPLING.md §1): given the target law `q` and the
/// draft laws `p_1..p_K`, it maps K drafted tokens `X_k ~ p_k` (independent) and fresh randomness
/// to one output token whose law is exactly `q`.
public protocol SelectionScheme: Sendable {
    /// The name used on the command line and in results (`sd`, `specinfer`, …).
    var name: String { get }
    /// Everything that depends only on the laws (not on the drafted tokens): residuals, `p_I`, LP
    /// solutions. Throws when the scheme does not support these drafts.
    func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection
}

/// A scheme prepared for one position's laws.
public protocol PreparedSelection: Sendable {
    /// The scheme's acceptance probability `P(accepted)` in closed form (what it achieves, exactly).
    var acceptance: Double { get }
    /// Select with the real sampling code. `drafted[k]` was drawn from `drafts[k]` of `prepare`.
    func select<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> SelectionOutcome
    /// The exact law of `select` given `drafted`.
    func law(given drafted: [Int]) -> SelectionLaw
}

extension Array where Element == TokenDistribution {
    /// True when every draft has the same law (the i.i.d. case).
    var areIdentical: Bool {
        guard let first else { return true }
        return allSatisfy { $0 == first }
    }
}

/// Checks shared by every scheme: at least one draft, one vocabulary.
func checkLaws(target: TokenDistribution, drafts: [TokenDistribution]) throws {
    guard !drafts.isEmpty else { throw SamplingError.noDrafts }
    for d in drafts where d.vocabularySize != target.vocabularySize {
        throw SamplingError.vocabularyMismatch(expected: target.vocabularySize, found: d.vocabularySize)
    }
}
