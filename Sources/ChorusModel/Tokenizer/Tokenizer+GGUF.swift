/// Reading a tokenizer from GGUF metadata (llama.cpp `llama_vocab::impl::load`).
///
/// Keys and the defaults used when a key is absent (llama.cpp's):
///
/// | key | gpt2 | llama |
/// |---|---|---|
/// | `tokenizer.ggml.model` | required | required |
/// | `tokenizer.ggml.tokens` | required, strings | required, strings |
/// | `tokenizer.ggml.token_type` | all NORMAL | all NORMAL |
/// | `tokenizer.ggml.merges` | required, strings | ignored |
/// | `tokenizer.ggml.pre` | required (see below) | ignored |
/// | `tokenizer.ggml.scores` | ignored | all 0 |
/// | `tokenizer.ggml.bos_token_id` | 11 if in range, else none | 1 |
/// | `tokenizer.ggml.eos_token_id` | 11 if in range, else none | 2 |
/// | `tokenizer.ggml.unknown_token_id` | none | 0 |
/// | `tokenizer.ggml.add_bos_token` | false | true |
/// | `tokenizer.ggml.add_eos_token` | false | false |
/// | `tokenizer.ggml.add_space_prefix` | — | true |
///
/// Without `tokenizer.ggml.pre` llama.cpp falls back to its multi-pattern "default"
/// pre-tokenizer, which Chorus does not implement, so a missing `pre` is an error here.
/// Where llama.cpp only warns (a special id out of range) or tolerates (token_type or scores
/// longer than tokens), this reader throws: such a file is broken.
extension Tokenizer {
    public init(gguf: GGUFFile) throws(ModelError) {
        let modelName = try gguf.string("tokenizer.ggml.model")
        guard let model = Model(rawValue: modelName) else {
            throw ModelError.tokenizer(
                "tokenizer.ggml.model '\(modelName)' is not supported (supported: \(Model.supportedNames))")
        }
        let tokens = try Self.strings(gguf, "tokenizer.ggml.tokens")
        var types: [TokenType]?
        if gguf.metadata["tokenizer.ggml.token_type"] != nil {
            types = try Self.integers(gguf, "tokenizer.ggml.token_type").map {
                TokenType(rawValue: Int32(clamping: $0)) ?? .undefined
            }
        }
        func optionalID(_ key: String, default fallback: Int?) throws(ModelError) -> Int? {
            guard gguf.metadata[key] != nil else {
                // llama.cpp disables a default special id that is out of range.
                return fallback.flatMap { $0 < tokens.count ? $0 : nil }
            }
            return try gguf.integer(key)
        }
        func optionalBool(_ key: String, default fallback: Bool) throws(ModelError) -> Bool {
            gguf.metadata[key] == nil ? fallback : try gguf.bool(key)
        }

        switch model {
        case .gpt2:
            guard gguf.metadata["tokenizer.ggml.pre"] != nil else {
                throw ModelError.tokenizer(
                    "tokenizer.ggml.pre is missing (llama.cpp would use its 'default' pre-tokenizer, "
                        + "which Chorus does not implement; supported: \(PreTokenizer.supportedNames))")
            }
            let preName = try gguf.string("tokenizer.ggml.pre")
            guard let pre = PreTokenizer.named(preName) else {
                throw ModelError.tokenizer(
                    "tokenizer.ggml.pre '\(preName)' is not supported (supported: \(PreTokenizer.supportedNames))")
            }
            let merges = try Self.strings(gguf, "tokenizer.ggml.merges")
            try self.init(
                model: .gpt2, tokens: tokens, types: types, merges: merges, scores: nil, preTokenizer: pre,
                bos: try optionalID("tokenizer.ggml.bos_token_id", default: 11),
                eos: try optionalID("tokenizer.ggml.eos_token_id", default: 11),
                unknown: try optionalID("tokenizer.ggml.unknown_token_id", default: nil),
                addBOS: try optionalBool("tokenizer.ggml.add_bos_token", default: false),
                addEOS: try optionalBool("tokenizer.ggml.add_eos_token", default: false),
                addSpacePrefix: false)
        case .llama:
            var scores: [Float]?
            if let value = gguf.metadata["tokenizer.ggml.scores"] {
                guard case let .array(items) = value else {
                    throw ModelError.wrongMetadataType(
                        key: "tokenizer.ggml.scores", expected: "array of numbers", found: value.summary)
                }
                var out: [Float] = []
                out.reserveCapacity(items.count)
                for (i, item) in items.enumerated() {
                    guard let d = item.double else {
                        throw ModelError.wrongMetadataType(
                            key: "tokenizer.ggml.scores", expected: "array of numbers",
                            found: "\(item.summary) at index \(i)")
                    }
                    out.append(Float(d))
                }
                scores = out
            }
            try self.init(
                model: .llama, tokens: tokens, types: types, merges: [], scores: scores, preTokenizer: nil,
                bos: try optionalID("tokenizer.ggml.bos_token_id", default: 1),
                eos: try optionalID("tokenizer.ggml.eos_token_id", default: 2),
                unknown: try optionalID("tokenizer.ggml.unknown_token_id", default: 0),
                addBOS: try optionalBool("tokenizer.ggml.add_bos_token", default: true),
                addEOS: try optionalBool("tokenizer.ggml.add_eos_token", default: false),
                addSpacePrefix: try optionalBool("tokenizer.ggml.add_space_prefix", default: true))
        }
    }

    private static func strings(_ gguf: GGUFFile, _ key: String) throws(ModelError) -> [String] {
        try elements(gguf, key, expected: "array of strings") { $0.stringValue }
    }

    private static func integers(_ gguf: GGUFFile, _ key: String) throws(ModelError) -> [Int] {
        try elements(gguf, key, expected: "array of integers") { $0.integer }
    }

    /// Every element of the array at `key` through `value`; the first element it refuses is an error.
    private static func elements<T>(
        _ gguf: GGUFFile, _ key: String, expected: String, _ value: (GGUFValue) -> T?
    ) throws(ModelError) -> [T] {
        let items = try gguf.array(key)
        var out: [T] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            guard let v = value(item) else {
                throw ModelError.wrongMetadataType(key: key, expected: expected, found: "\(item.summary) at index \(i)")
            }
            out.append(v)
        }
        return out
    }
}
