/// A tokenizer rebuilt from a GGUF file's `tokenizer.ggml.*` metadata, matching llama.cpp's
/// `llama_vocab` token for token.
///
/// Two algorithms (GGUF `tokenizer.ggml.model`):
/// * `gpt2` — byte-level BPE: the text is split by a ``PreTokenizer`` pattern, each word's UTF-8
///   bytes start as single-byte tokens, and merges are applied by rank (llama.cpp
///   `llm_tokenizer_bpe_session`).
/// * `llama` — SentencePiece-style BPE: spaces become U+2581, a leading space is added, and the
///   adjacent pair whose concatenation is the highest-scoring token is merged repeatedly; leftover
///   characters fall back to `<0xXX>` byte tokens (llama.cpp `llm_tokenizer_spm_session`).
///
/// Invariants: token ids are `0..<vocabularySize`; token texts are distinct byte strings;
/// every merge's two parts and their concatenation are tokens. Values are immutable and `Sendable`,
/// so one tokenizer can serve any number of concurrent callers.
///
/// Text is encoded as plain text: the text of a control or user-defined token inside it is not
/// recognised as that token (llama.cpp with `parse_special = false` still splits user-defined
/// tokens out first; the shipped vocabulary has none).
public struct Tokenizer: Sendable {
    /// GGUF `tokenizer.ggml.model`.
    public enum Model: String, Sendable, CaseIterable {
        case gpt2
        case llama

        static let supportedNames = "gpt2 (byte-level BPE), llama (SentencePiece BPE)"
    }

    /// GGUF `tokenizer.ggml.token_type` (llama.cpp `llama_token_type`). Values outside 0…6 read as
    /// `.undefined`, as in llama.cpp.
    public enum TokenType: Int32, Sendable, CaseIterable {
        case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public let model: Model
    /// The split pattern (`gpt2` models only).
    public let preTokenizer: PreTokenizer?
    /// texts: [vocabularySize] as stored in the file (byte-level or U+2581-escaped), except that
    /// an empty text is replaced by `[EMPTY_<id>]` as llama.cpp does.
    let texts: [String]
    /// types: [vocabularySize].
    public let tokenTypes: [TokenType]
    /// pieces: [vocabularySize], the raw bytes each token stands for when decoding (empty for
    /// control, unknown, unused and undefined tokens).
    let pieces: [[UInt8]]
    /// Exact byte lookup of a token text (Swift `String` equality is canonical equivalence, which
    /// would conflate distinct tokens such as precomposed and decomposed `é`).
    let idsByText: [[UInt8]: Int32]
    /// byteTokens: [256], the token for each raw byte (byte-level symbol for `gpt2`, `<0xXX>` for
    /// `llama`), or -1.
    let byteTokens: [Int32]
    /// `gpt2`: (left id << 32 | right id) → merge. Rank = line index in `tokenizer.ggml.merges`.
    let merges: [UInt64: Merge]
    /// scores: [vocabularySize] (`llama` only; empty otherwise).
    let scores: [Float]

    public let bos: Int?
    public let eos: Int?
    /// Emitted for bytes that have no token at all (byte fallback impossible); nil = drop them.
    public let unknown: Int?
    /// Whether `encode(_:addSpecial: true)` prepends ``bos`` / appends ``eos``.
    public let addBOS: Bool
    public let addEOS: Bool
    /// `llama` only: prepend a space to the text before encoding (and drop it when decoding).
    public let addSpacePrefix: Bool
    /// SHA-256 (lowercase hex) of the vocabulary: u32le(token count), then per id in order
    /// u32le(UTF-8 length) ‖ UTF-8 text ‖ i32le(token type). Two models can exchange token ids iff
    /// these agree (merges and scores only change how text is split, not what an id means).
    public let vocabularyHash: String

    struct Merge: Sendable {
        var rank: Int32
        var result: Int32
    }

    public var vocabularySize: Int { texts.count }

    /// The stored text of a token (byte-level or U+2581-escaped form), or nil if out of range.
    public func tokenText(_ token: Int) -> String? {
        texts.indices.contains(token) ? texts[token] : nil
    }

    public func tokenType(_ token: Int) -> TokenType? {
        tokenTypes.indices.contains(token) ? tokenTypes[token] : nil
    }

    /// The id of the token whose stored text is exactly `text`.
    public func token(forText text: String) -> Int? {
        idsByText[Array(text.utf8)].map(Int.init)
    }

    // MARK: Construction

    /// A byte-level BPE (`gpt2`) tokenizer from its arrays.
    ///
    /// - Parameters:
    ///   - tokens: [V] token texts in the GPT-2 byte-to-Unicode alphabet.
    ///   - types: [V], or nil for all `.normal` (llama.cpp's default when the key is absent).
    ///   - merges: ranked merges, each `"left right"` split at the first space after the first byte.
    /// - Throws: ``ModelError/tokenizer(_:)`` for duplicate tokens, length mismatches, merges whose
    ///   parts or result are not tokens, and special ids out of range.
    public init(
        bytePairTokens tokens: [String], types: [TokenType]? = nil, merges: [String],
        preTokenizer: PreTokenizer = .gpt2, bos: Int?, eos: Int?, unknown: Int? = nil,
        addBOS: Bool = false, addEOS: Bool = false
    ) throws(ModelError) {
        try self.init(
            model: .gpt2, tokens: tokens, types: types, merges: merges, scores: nil, preTokenizer: preTokenizer,
            bos: bos, eos: eos, unknown: unknown, addBOS: addBOS, addEOS: addEOS, addSpacePrefix: false)
    }

    /// A SentencePiece-style (`llama`) tokenizer from its arrays.
    ///
    /// - Parameters:
    ///   - tokens: [V] token texts, spaces written as U+2581, byte tokens as `<0xXX>`.
    ///   - types: [V], or nil for all `.normal`. Byte tokens should be `.byte` to decode to their byte.
    ///   - scores: [V] merge priorities (higher merges first), or nil for all 0 (llama.cpp default).
    /// Defaults follow llama.cpp for `llama` vocabularies: BOS 1, EOS 2, UNK 0, add BOS, no EOS,
    /// add a space prefix.
    public init(
        sentencePieceTokens tokens: [String], types: [TokenType]? = nil, scores: [Float]?,
        bos: Int? = 1, eos: Int? = 2, unknown: Int? = 0, addBOS: Bool = true, addEOS: Bool = false,
        addSpacePrefix: Bool = true
    ) throws(ModelError) {
        try self.init(
            model: .llama, tokens: tokens, types: types, merges: [], scores: scores, preTokenizer: nil,
            bos: bos, eos: eos, unknown: unknown, addBOS: addBOS, addEOS: addEOS, addSpacePrefix: addSpacePrefix)
    }

    init(
        model: Model, tokens rawTokens: [String], types: [TokenType]?, merges mergeLines: [String], scores: [Float]?,
        preTokenizer: PreTokenizer?, bos: Int?, eos: Int?, unknown: Int?, addBOS: Bool, addEOS: Bool,
        addSpacePrefix: Bool
    ) throws(ModelError) {
        let count = rawTokens.count
        guard count > 0 else { throw ModelError.tokenizer("the vocabulary is empty") }
        guard count <= Int(Int32.max) else {
            throw ModelError.tokenizer("the vocabulary has \(count) tokens, too many")
        }
        let types = types ?? [TokenType](repeating: .normal, count: count)
        guard types.count == count else {
            throw ModelError.tokenizer("token_type has \(types.count) entries but there are \(count) tokens")
        }
        if let scores, scores.count != count {
            throw ModelError.tokenizer("scores has \(scores.count) entries but there are \(count) tokens")
        }
        for (name, id) in [("bos", bos), ("eos", eos), ("unknown", unknown)] {
            if let id, !(0..<count).contains(id) {
                throw ModelError.tokenizer("\(name) token id \(id) is outside the vocabulary (0..<\(count))")
            }
        }
        if addBOS && bos == nil { throw ModelError.tokenizer("add_bos_token is true but there is no BOS token") }
        if addEOS && eos == nil { throw ModelError.tokenizer("add_eos_token is true but there is no EOS token") }

        var texts: [String] = []
        texts.reserveCapacity(count)
        var ids: [[UInt8]: Int32] = [:]
        ids.reserveCapacity(count)
        for (i, raw) in rawTokens.enumerated() {
            let text = raw.isEmpty ? "[EMPTY_\(i)]" : raw
            if let previous = ids.updateValue(Int32(i), forKey: Array(text.utf8)) {
                throw ModelError.tokenizer("duplicate token in vocabulary: '\(text)' has ids \(previous) and \(i)")
            }
            texts.append(text)
        }

        var byteTokens = [Int32](repeating: -1, count: 256)
        var mergeTable: [UInt64: Merge] = [:]
        switch model {
        case .gpt2:
            for b in 0..<256 { byteTokens[b] = ids[GPT2ByteLevel.utf8(for: UInt8(b))] ?? -1 }
            mergeTable.reserveCapacity(mergeLines.count)
            for (rank, line) in mergeLines.enumerated() {
                let bytes = Array(line.utf8)
                // llama.cpp splits at `word.find(' ', 1)`: the first part is never empty.
                guard bytes.count >= 3, let space = bytes[1...].firstIndex(of: 0x20), space + 1 < bytes.count else {
                    throw ModelError.tokenizer("merge #\(rank) '\(line)' is not two tokens separated by a space")
                }
                let leftBytes = Array(bytes[..<space]), rightBytes = Array(bytes[(space + 1)...])
                func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }
                guard let left = ids[leftBytes] else {
                    throw ModelError.tokenizer(
                        "merge #\(rank) '\(line)': '\(text(leftBytes))' is not in the vocabulary")
                }
                guard let right = ids[rightBytes] else {
                    throw ModelError.tokenizer(
                        "merge #\(rank) '\(line)': '\(text(rightBytes))' is not in the vocabulary")
                }
                // HF `tokenizers` rejects such files too (MergeTokenOutOfVocabulary).
                guard let result = ids[leftBytes + rightBytes] else {
                    throw ModelError.tokenizer(
                        "merge #\(rank) '\(line)': the merged token '\(text(leftBytes + rightBytes))' "
                            + "is not in the vocabulary")
                }
                let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
                // A repeated pair keeps its first (best) rank, like llama.cpp's `bpe_ranks.emplace`.
                if mergeTable[key] == nil { mergeTable[key] = Merge(rank: Int32(rank), result: result) }
            }
        case .llama:
            // llama.cpp `byte_to_token`: `<0xXX>` (upper-case hex), else the one-byte text itself.
            let hex = Array("0123456789ABCDEF".utf8)
            for b in 0..<256 {
                let name: [UInt8] = [0x3C, 0x30, 0x78, hex[b >> 4], hex[b & 15], 0x3E]
                byteTokens[b] = ids[name] ?? (b < 0x80 ? ids[[UInt8(b)]] : nil) ?? -1
            }
        }

        var pieces: [[UInt8]] = []
        pieces.reserveCapacity(count)
        for (i, text) in texts.enumerated() {
            pieces.append(Self.piece(text: text, type: types[i], model: model))
        }

        var hasher = SHA256()
        var header = UInt32(count).littleEndian
        withUnsafeBytes(of: &header) { hasher.update($0) }
        for (i, text) in texts.enumerated() {
            var length = UInt32(text.utf8.count).littleEndian
            withUnsafeBytes(of: &length) { hasher.update($0) }
            hasher.update(text)
            var type = types[i].rawValue.littleEndian
            withUnsafeBytes(of: &type) { hasher.update($0) }
        }

        self.model = model
        self.preTokenizer = model == .gpt2 ? (preTokenizer ?? .gpt2) : nil
        self.texts = texts
        self.tokenTypes = types
        self.pieces = pieces
        self.idsByText = ids
        self.byteTokens = byteTokens
        self.merges = mergeTable
        self.scores = model == .llama ? (scores ?? [Float](repeating: 0, count: count)) : []
        self.bos = bos
        self.eos = eos
        self.unknown = unknown
        self.addBOS = addBOS
        self.addEOS = addEOS
        self.addSpacePrefix = model == .llama && addSpacePrefix
        self.vocabularyHash = hasher.finalizeHex()
    }

    /// The bytes a token decodes to (llama.cpp `token_to_piece` with `special = false`).
    static func piece(text: String, type: TokenType, model: Model) -> [UInt8] {
        switch type {
        case .control, .unknown, .unused, .undefined:
            return []
        case .userDefined:
            return Array(text.utf8)
        case .byte:
            // `<0xXX>`; llama.cpp reads characters 3 and 4 as hex.
            let b = Array(text.utf8)
            if b.count == 6, b[0] == 0x3C, b[1] == 0x30, b[2] == 0x78, b[5] == 0x3E,
                let value = UInt8(String(decoding: b[3..<5], as: UTF8.self), radix: 16)
            {
                return [value]
            }
            return model == .gpt2 ? GPT2ByteLevel.decode(text) : Array(text.utf8)
        case .normal:
            switch model {
            case .gpt2: return GPT2ByteLevel.decode(text)
            case .llama:
                // U+2581 (E2 96 81) → space.
                var out: [UInt8] = []
                let b = Array(text.utf8)
                out.reserveCapacity(b.count)
                var i = 0
                while i < b.count {
                    if i + 2 < b.count, b[i] == 0xE2, b[i + 1] == 0x96, b[i + 2] == 0x81 {
                        out.append(0x20)
                        i += 3
                    } else {
                        out.append(b[i])
                        i += 1
                    }
                }
                return out
            }
        }
    }

    // MARK: Encoding

    /// Token ids for `text`.
    ///
    /// - Parameter addSpecial: prepend BOS when ``addBOS`` and append EOS when ``addEOS`` (both
    ///   from the metadata), as llama.cpp's `llama_tokenize(…, add_special)`.
    /// - Returns: ids in `0..<vocabularySize`.
    public func encode(_ text: String, addSpecial: Bool = true) -> [Int] {
        var output: [Int] = []
        output.reserveCapacity(text.utf8.count / 3 + 2)
        if addSpecial, addBOS, let bos { output.append(bos) }
        if !text.isEmpty {
            switch model {
            case .gpt2: encodeBytePair(text, into: &output)
            case .llama: encodeSentencePiece(text, into: &output)
            }
        }
        if addSpecial, addEOS, let eos { output.append(eos) }
        return output
    }

    /// Appends the fallback for a byte without a usable symbol: its byte token, else ``unknown``,
    /// else nothing (llama.cpp drops it).
    @inline(__always)
    func appendByteFallback(_ byte: UInt8, into output: inout [Int]) {
        let id = byteTokens[Int(byte)]
        if id >= 0 {
            output.append(Int(id))
        } else if let unknown {
            output.append(unknown)
        }
    }
}
