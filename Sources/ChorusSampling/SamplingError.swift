/// Errors of the sampling core. Each case says what was wrong with the input and what to change.
public enum SamplingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A probability vector with a negative, infinite or NaN entry at `index`.
    case invalidProbability(index: Int, value: Double)
    /// A probability vector whose entries sum to `sum`, off from 1 by more than the tolerance.
    case notNormalized(sum: Double, tolerance: Double)
    /// An empty vocabulary, or a sparse entry outside `0..<vocabularySize`.
    case invalidSupport(String)
    /// Two distributions that must share a vocabulary do not (`expected` vs `found` tokens).
    case vocabularyMismatch(expected: Int, found: Int)
    /// Invalid logits or sampling settings (temperature, top-k, top-p).
    case invalidSamplingSettings(String)
    /// A scheme was asked for a case it does not support (for example SpecTr with non-identical drafts).
    case unsupported(scheme: String, reason: String)
    /// A scheme needs at least one draft.
    case noDrafts
    /// The exact linear program could not be solved (size limit, or numerical failure).
    case linearProgram(String)
    /// Inconsistent sequence-level input (draft tree, per-position distributions).
    case invalidDraftTree(String)

    public var description: String {
        switch self {
        case let .invalidProbability(index, value):
            return "probability at token \(index) is \(value); every entry must be finite and ≥ 0"
        case let .notNormalized(sum, tolerance):
            return "probabilities sum to \(sum), not 1 (tolerance \(tolerance))"
        case let .invalidSupport(message):
            return "invalid support: \(message)"
        case let .vocabularyMismatch(expected, found):
            return "vocabulary size mismatch: expected \(expected) tokens, found \(found)"
        case let .invalidSamplingSettings(message):
            return "invalid sampling settings: \(message)"
        case let .unsupported(scheme, reason):
            return "scheme \(scheme) cannot be used here: \(reason)"
        case .noDrafts:
            return "at least one draft distribution is needed"
        case let .linearProgram(message):
            return "linear program: \(message)"
        case let .invalidDraftTree(message):
            return "invalid draft tree: \(message)"
        }
    }
}
