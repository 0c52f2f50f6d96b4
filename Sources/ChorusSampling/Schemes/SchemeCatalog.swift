/// Every token-level scheme by its command-line name.
public enum SchemeCatalog {
    /// Names in the order tables list them.
    public static let names = ["sd", "specinfer", "spectr", "optimal-lp", "truncated-lp", "weighted-is", "optimal"]

    /// The default truncation size `s` of `truncated-lp` (the paper's practical range is 5–15).
    public static let defaultTruncation = 5

    /// The scheme called `name`; `truncation` is `truncated-lp`'s `s`.
    public static func scheme(named name: String, truncation: Int = defaultTruncation) throws -> any SelectionScheme {
        switch name {
        case "sd": return SingleDraftScheme()
        case "specinfer": return SpecInferScheme()
        case "spectr": return SpecTrScheme()
        case "optimal": return OptimalScheme()
        case "optimal-lp": return OptimalLPScheme()
        case "truncated-lp": return TruncatedLPScheme(s: truncation)
        case "weighted-is": return WeightedImportanceScheme()
        default:
            throw SamplingError.unsupported(
                scheme: name, reason: "unknown scheme; known: \(names.joined(separator: ", "))")
        }
    }
}
