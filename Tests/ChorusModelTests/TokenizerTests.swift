import Foundation
import Testing

@testable import ChorusModel

/// One entry of `shared/fixtures/tokenizer-chorus-kjv.json` (llama.cpp's output, ids without BOS).
private struct TokenizerFixture: Decodable {
    struct Case: Decodable {
        var text: String
        var tokens: [Int]
        var piecesHex: [String]
        var detokenized: String
        enum CodingKeys: String, CodingKey {
            case text, tokens, detokenized
            case piecesHex = "pieces_hex"
        }
    }
    var bosID: Int
    var eosID: Int
    var addBOS: Bool
    var cases: [Case]
    enum CodingKeys: String, CodingKey {
        case cases
        case bosID = "bos_id"
        case eosID = "eos_id"
        case addBOS = "add_bos"
    }
}

private func loadFixture() throws -> TokenizerFixture {
    let url = sharedDirectory().appendingPathComponent("fixtures").appendingPathComponent("tokenizer-chorus-kjv.json")
    return try JSONDecoder().decode(TokenizerFixture.self, from: Data(contentsOf: url))
}

private let shippedModels = [
    "chorus-kjv-target-f32.gguf", "chorus-kjv-target-f16.gguf", "chorus-kjv-target-q8_0.gguf",
    "chorus-kjv-draft-small-f32.gguf", "chorus-kjv-draft-medium-f32.gguf",
]

private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// Runs `body` and returns the message of the `.tokenizer` error it throws (nil if none or another case).
private func tokenizerMessage(_ body: () throws(ModelError) -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        if case let .tokenizer(message) = error { return message }
        return nil
    }
}

// MARK: - A minimal GGUF writer for malformed-metadata tests

private enum MetaValue {
    case string(String)
    case strings([String])
    case int32s([Int32])
    case float32s([Float])
    case uint32(UInt32)
    case bool(Bool)
}

private func writeGGUF(_ entries: [(String, MetaValue)]) throws -> String {
    var out: [UInt8] = []
    func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    func str(_ s: String) {
        u64(UInt64(s.utf8.count))
        out.append(contentsOf: s.utf8)
    }
    out.append(contentsOf: Array("GGUF".utf8))
    u32(3)
    u64(0)  // tensors
    u64(UInt64(entries.count))
    for (key, value) in entries {
        str(key)
        switch value {
        case let .string(s):
            u32(8)
            str(s)
        case let .strings(items):
            u32(9)
            u32(8)
            u64(UInt64(items.count))
            items.forEach(str)
        case let .int32s(items):
            u32(9)
            u32(5)
            u64(UInt64(items.count))
            items.forEach { u32(UInt32(bitPattern: $0)) }
        case let .float32s(items):
            u32(9)
            u32(6)
            u64(UInt64(items.count))
            items.forEach { u32($0.bitPattern) }
        case let .uint32(v):
            u32(4)
            u32(v)
        case let .bool(b):
            u32(7)
            out.append(b ? 1 : 0)
        }
    }
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("chorus-tokenizer-\(UUID().uuidString).gguf").path
    try Data(out).write(to: URL(fileURLWithPath: path))
    return path
}

private func withGGUF<T>(_ entries: [(String, MetaValue)], _ body: (GGUFFile) throws -> T) throws -> T {
    let path = try writeGGUF(entries)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(try GGUFFile(path: path))
}

/// A toy byte-level vocabulary: the single-byte symbols for `a b c d`, space (`Ġ`), plus merges.
private let toyByteTokens = ["a", "b", "c", "d", "Ġ", "ab", "bc", "Ġa", "<|bos|>"]

// MARK: - Tests

@Suite struct TokenizerTests {
    // MARK: llama.cpp ground truth on the shipped vocabulary

    @Test func fixtureStringsEncodeToLlamaCppIds() throws {
        let fixture = try loadFixture()
        #expect(fixture.cases.count == 25)
        #expect(fixture.addBOS == false)
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: modelPath("chorus-kjv-target-f32.gguf")))
        for c in fixture.cases {
            let ids = tokenizer.encode(c.text, addSpecial: false)
            #expect(ids == c.tokens, "encode(\(c.text.debugDescription))")
            #expect(ids.map { hex(tokenizer.piece($0)) } == c.piecesHex, "pieces of \(c.text.debugDescription)")
            #expect(tokenizer.decode(c.tokens) == c.detokenized, "decode of \(c.text.debugDescription)")
        }
    }

    @Test func addSpecialPrependsBOSOnly() throws {
        let fixture = try loadFixture()
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: modelPath("chorus-kjv-target-f32.gguf")))
        #expect(tokenizer.bos == fixture.bosID)
        #expect(tokenizer.eos == fixture.eosID)
        #expect(tokenizer.addBOS)
        #expect(!tokenizer.addEOS)
        #expect(tokenizer.vocabularySize == 2048)
        #expect(tokenizer.model == .gpt2)
        #expect(tokenizer.preTokenizer == .gpt2)
        for c in fixture.cases {
            #expect(tokenizer.encode(c.text) == [fixture.bosID] + c.tokens)
            // BOS and EOS are control tokens: they render as nothing.
            #expect(tokenizer.decode([fixture.bosID] + c.tokens + [fixture.eosID]) == c.text)
        }
        #expect(tokenizer.tokenType(0) == .control)
        #expect(tokenizer.tokenType(1) == .control)
        #expect(tokenizer.piece(0).isEmpty && tokenizer.piece(1).isEmpty)
        #expect(tokenizer.tokenText(0) == "<|bos|>")
        #expect(tokenizer.tokenText(2048) == nil)
    }

    @Test func shippedModelsShareOneVocabulary() throws {
        let text = try loadFixture().cases.map(\.text).joined(separator: "\n")
        var hashes: Set<String> = []
        var encodings: [[Int]] = []
        for name in shippedModels {
            let tokenizer = try Tokenizer(gguf: GGUFFile(path: modelPath(name)))
            hashes.insert(tokenizer.vocabularyHash)
            encodings.append(tokenizer.encode(text))
            #expect(tokenizer.vocabularyHash.count == 64)
            #expect(tokenizer.vocabularyHash.allSatisfy { "0123456789abcdef".contains($0) })
        }
        #expect(hashes.count == 1)
        #expect(Set(encodings).count == 1)
    }

    @Test func vocabularyHashSeesTextsAndTypes() throws {
        let merges = ["a b", "b c", "Ġ a"]
        let base = try Tokenizer(bytePairTokens: toyByteTokens, merges: merges, bos: nil, eos: nil)
        var renamed = toyByteTokens
        renamed[6] = "cb"
        let otherText = try Tokenizer(bytePairTokens: renamed, merges: ["a b", "Ġ a"], bos: nil, eos: nil)
        var types = [Tokenizer.TokenType](repeating: .normal, count: toyByteTokens.count)
        types[8] = .control
        let otherType = try Tokenizer(bytePairTokens: toyByteTokens, types: types, merges: merges, bos: nil, eos: nil)
        let sameVocabOtherMerges = try Tokenizer(bytePairTokens: toyByteTokens, merges: ["b c"], bos: nil, eos: nil)
        #expect(base.vocabularyHash != otherText.vocabularyHash)
        #expect(base.vocabularyHash != otherType.vocabularyHash)
        #expect(base.vocabularyHash == sameVocabOtherMerges.vocabularyHash)
    }

    @Test func decodeHandlesCutCharactersAndBadIds() throws {
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: modelPath("chorus-kjv-draft-small-f32.gguf")))
        let smile = tokenizer.encode("🙂", addSpecial: false)
        #expect(smile.count == 4)
        // Half a character: replacement character, no trap.
        #expect(tokenizer.decode(Array(smile.prefix(2))) == "\u{FFFD}")
        #expect(tokenizer.decodeBytes(Array(smile.prefix(2))) == [0xF0, 0x9F])
        #expect(tokenizer.decode([-1, 2048, 1 << 40]) == "")
        #expect(tokenizer.piece(-5) == [])

        var stream = Tokenizer.StreamingDecoder(tokenizer: tokenizer)
        let parts = smile.map { stream.append($0) }
        #expect(parts == ["", "", "", "🙂"])
        #expect(stream.finish() == "")

        // The streamed text equals the decoded text for every fixture string, token by token.
        for c in try loadFixture().cases {
            let ids = tokenizer.encode(c.text)
            var s = Tokenizer.StreamingDecoder(tokenizer: tokenizer)
            var text = ""
            for id in ids { text += s.append(id) }
            text += s.finish()
            #expect(text == tokenizer.decode(ids))
            #expect(text == c.text)
        }
        var cut = Tokenizer.StreamingDecoder(tokenizer: tokenizer)
        _ = cut.append(smile[0])
        #expect(cut.finish() == "\u{FFFD}")
    }

    @Test func longWordsAndUnusualTextRoundTrip() throws {
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: modelPath("chorus-kjv-target-q8_0.gguf")))
        let long = String(repeating: "abcdefghij", count: 2000)  // one 20 000-byte pre-token
        let ids = tokenizer.encode(long, addSpecial: false)
        #expect(ids.count < long.utf8.count)
        #expect(tokenizer.decode(ids) == long)
        let odd = "e\u{301} \u{00A0}\u{3000}x\u{200B}y\r\n\u{0}\u{7F}Ω 42\u{2028}z"
        #expect(tokenizer.decode(tokenizer.encode(odd)) == odd)
    }

    // MARK: Byte-level BPE on a toy vocabulary

    @Test func bytePairMergesFollowRankNotPosition() throws {
        // ids: a 0, b 1, c 2, d 3, Ġ 4, ab 5, bc 6, Ġa 7, <|bos|> 8
        let bcFirst = try Tokenizer(bytePairTokens: toyByteTokens, merges: ["b c", "a b"], bos: nil, eos: nil)
        #expect(bcFirst.encode("abc") == [0, 6])
        let abFirst = try Tokenizer(bytePairTokens: toyByteTokens, merges: ["a b", "b c"], bos: nil, eos: nil)
        #expect(abFirst.encode("abc") == [5, 2])
        // Equal ranks cannot happen, but equal pairs can: the leftmost merges first.
        #expect(abFirst.encode("ababab") == [5, 5, 5])
        // " a" is one pre-token (`Ġa`), then `b` is merged with nothing: "Ġ a" is not a merge here.
        #expect(abFirst.encode(" ab") == [4, 5])
        let withSpace = try Tokenizer(bytePairTokens: toyByteTokens, merges: ["Ġ a", "a b"], bos: nil, eos: nil)
        #expect(withSpace.encode(" ab") == [7, 1])
        // A byte with no symbol in the vocabulary is dropped (llama.cpp), or becomes `unknown`.
        #expect(abFirst.encode("abe") == [5])
        let withUnknown = try Tokenizer(bytePairTokens: toyByteTokens, merges: ["a b"], bos: nil, eos: nil, unknown: 3)
        #expect(withUnknown.encode("abe") == [5, 3])
    }

    @Test func bytePairSpecialTokens() throws {
        var types = [Tokenizer.TokenType](repeating: .normal, count: toyByteTokens.count)
        types[8] = .control
        let t = try Tokenizer(
            bytePairTokens: toyByteTokens, types: types, merges: ["a b"], bos: 8, eos: 8, addBOS: true, addEOS: true)
        #expect(t.encode("ab") == [8, 5, 8])
        #expect(t.encode("ab", addSpecial: false) == [5])
        #expect(t.encode("") == [8, 8])
        #expect(t.decode([8, 5, 8]) == "ab")
    }

    // MARK: Pre-tokenizers

    private func words(_ text: String, _ pre: PreTokenizer) -> [String] {
        let scalars = text.unicodeScalars.map(\.value)
        let classes = scalars.map(PreTokenizerClass.of)
        var out: [String] = []
        pre.split(scalars: scalars, classes: classes) { a, b in
            var s = String.UnicodeScalarView()
            for v in scalars[a..<b] { if let u = Unicode.Scalar(v) { s.append(u) } }
            out.append(String(s))
        }
        return out
    }

    @Test func gpt2PatternSplits() {
        #expect(words("abc 12345 def", .gpt2) == ["abc", " 12345", " def"])
        #expect(words("Hello,world", .gpt2) == ["Hello", ",", "world"])
        #expect(words("I'M here it's", .gpt2) == ["I", "'", "M", " here", " it", "'s"])
        #expect(words("a\n\n  b", .gpt2) == ["a", "\n\n ", " b"])
        #expect(words("x!!!\n\ny", .gpt2) == ["x", "!!!", "\n", "\n", "y"])
        #expect(words("end  ", .gpt2) == ["end", "  "])
        #expect(words("a \tb", .gpt2) == ["a", " ", "\t", "b"])
        #expect(words("café 中文", .gpt2) == ["café", " 中文"])
    }

    @Test func qwen2PatternSplits() {
        // Hand-derived from llama.cpp's QWEN2 regex (`llama-vocab.cpp`, LLAMA_VOCAB_PRE_TYPE_QWEN2):
        // `\p{N}` takes one digit; `[^\r\n\p{L}\p{N}]?\p{L}+` lets one punctuation, tab or space lead
        // a word; contractions are case-insensitive; `\s*[\r\n]+` ends at the last newline.
        #expect(words("abc 12345 def", .qwen2) == ["abc", " ", "1", "2", "3", "4", "5", " def"])
        #expect(words("Hello,world", .qwen2) == ["Hello", ",world"])
        #expect(words("I'M here it's", .qwen2) == ["I", "'M", " here", " it", "'s"])
        #expect(words("a\n\n  b", .qwen2) == ["a", "\n\n", " ", " b"])
        #expect(words("x!!!\n\ny", .qwen2) == ["x", "!!!\n\n", "y"])
        #expect(words("a\tb", .qwen2) == ["a", "\tb"])
        #expect(words("2024年", .qwen2) == ["2", "0", "2", "4", "年"])
        #expect(words(" !! x", .qwen2) == [" !!", " x"])
        #expect(words("end  ", .qwen2) == ["end", "  "])
        #expect(words("\n1", .qwen2) == ["\n", "1"])
    }

    @Test func qwen2PreTokenizerDrivesEncoding() throws {
        // With merge "1 2" available, gpt-2 keeps "12" together (one \p{N}+ word) but qwen2 splits digits.
        let tokens = ["1", "2", "12"]
        let gpt2 = try Tokenizer(bytePairTokens: tokens, merges: ["1 2"], preTokenizer: .gpt2, bos: nil, eos: nil)
        let qwen2 = try Tokenizer(bytePairTokens: tokens, merges: ["1 2"], preTokenizer: .qwen2, bos: nil, eos: nil)
        #expect(gpt2.encode("12") == [2])
        #expect(qwen2.encode("12") == [0, 1])
    }

    // MARK: SentencePiece BPE on a toy vocabulary

    /// <unk> 0, <s> 1, </s> 2, <0x00>…<0xFF> 3…258, then normal pieces with scores.
    private func toySentencePiece(byteFallback: Bool = true, addSpacePrefix: Bool = true) throws -> Tokenizer {
        var tokens = ["<unk>", "<s>", "</s>"]
        var types: [Tokenizer.TokenType] = [.unknown, .control, .control]
        var scores: [Float] = [0, 0, 0]
        if byteFallback {
            for b in 0..<256 {
                tokens.append(String(format: "<0x%02X>", b))
                types.append(.byte)
                scores.append(0)
            }
        }
        let normal: [(String, Float)] = [
            ("▁", -5), ("a", -5), ("b", -5), ("c", -5), ("ab", -1), ("bc", -0.1), ("▁a", -2), ("▁ab", -0.5),
        ]
        for (t, s) in normal {
            tokens.append(t)
            types.append(.normal)
            scores.append(s)
        }
        return try Tokenizer(sentencePieceTokens: tokens, types: types, scores: scores, addSpacePrefix: addSpacePrefix)
    }

    @Test func sentencePieceMergesByScore() throws {
        let t = try toySentencePiece()
        let id = { (s: String) in t.token(forText: s) ?? -1 }
        // "▁ab▁ab": "ab" (-1) merges first (leftmost of two), then "▁ab" (-0.5), then the second pair.
        #expect(t.encode("ab ab", addSpecial: false) == [id("▁ab"), id("▁ab")])
        #expect(t.encode("ab ab") == [1, id("▁ab"), id("▁ab")])
        // Without the prefix: "bc" (-0.1) beats "ab" (-1) although it is further right.
        let noPrefix = try toySentencePiece(addSpacePrefix: false)
        #expect(noPrefix.encode("abc", addSpecial: false) == [id("a"), id("bc")])
        #expect(t.encode("abc", addSpecial: false) == [id("▁a"), id("bc")])
        #expect(t.encode("", addSpecial: false) == [])
        #expect(t.encode("") == [1])
        #expect(t.decode(t.encode("ab ab")) == "ab ab")
        #expect(t.decode([1, id("▁ab"), id("▁ab"), 2]) == "ab ab")
    }

    @Test func sentencePieceByteFallback() throws {
        let t = try toySentencePiece()
        let id = { (s: String) in t.token(forText: s) ?? -1 }
        // "é" = C3 A9 is not a piece: "▁" then <0xC3> <0xA9>.
        #expect(t.encode("é", addSpecial: false) == [id("▁"), id("<0xC3>"), id("<0xA9>")])
        #expect(t.decode(t.encode("é")) == "é")
        #expect(t.piece(id("<0xC3>")) == [0xC3])
        // A leading space survives the round trip (only the added prefix is removed).
        #expect(t.encode(" x", addSpecial: false) == [id("▁"), id("▁"), id("<0x78>")])
        #expect(t.decode(t.encode(" x")) == " x")
        // Without byte tokens, each byte becomes <unk>.
        let noBytes = try toySentencePiece(byteFallback: false)
        #expect(noBytes.encode("é", addSpecial: false) == [noBytes.token(forText: "▁") ?? -1, 0, 0])
    }

    @Test func sentencePieceFromGGUFUsesLlamaDefaults() throws {
        let tokens = ["<unk>", "<s>", "</s>", "▁", "a", "b", "ab", "▁ab"]
        let t = try withGGUF([
            ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.tokens", .strings(tokens)),
            ("tokenizer.ggml.scores", .float32s([0, 0, 0, -3, -3, -3, -2, -1])),
            ("tokenizer.ggml.token_type", .int32s([2, 3, 3, 1, 1, 1, 1, 1])),
        ]) { try Tokenizer(gguf: $0) }
        #expect(t.model == .llama)
        #expect(t.bos == 1 && t.eos == 2 && t.unknown == 0)
        #expect(t.addBOS && !t.addEOS && t.addSpacePrefix)
        #expect(t.encode("ab") == [1, 7])
        #expect(t.encode("abab", addSpecial: false) == [7, 6])
        #expect(t.decode([1, 7, 6, 2]) == "abab")
    }

    // MARK: Malformed metadata

    private let goodBPE: [(String, MetaValue)] = [
        ("tokenizer.ggml.model", .string("gpt2")),
        ("tokenizer.ggml.pre", .string("gpt-2")),
        ("tokenizer.ggml.tokens", .strings(["a", "b", "ab"])),
        ("tokenizer.ggml.token_type", .int32s([1, 1, 1])),
        ("tokenizer.ggml.merges", .strings(["a b"])),
        ("tokenizer.ggml.bos_token_id", .uint32(0)),
        ("tokenizer.ggml.eos_token_id", .uint32(1)),
    ]

    private func replacing(_ key: String, with value: MetaValue?) -> [(String, MetaValue)] {
        var entries = goodBPE.filter { $0.0 != key }
        if let value { entries.append((key, value)) }
        return entries
    }

    @Test func wellFormedToyGGUFLoads() throws {
        let t = try withGGUF(goodBPE) { try Tokenizer(gguf: $0) }
        #expect(t.encode("abab") == [2, 2])  // add_bos absent: false for gpt2
        #expect(!t.addBOS)
    }

    @Test func missingTokensIsTyped() throws {
        #expect(throws: ModelError.missingMetadata(key: "tokenizer.ggml.tokens")) {
            try withGGUF(replacing("tokenizer.ggml.tokens", with: nil)) { try Tokenizer(gguf: $0) }
        }
        #expect(throws: ModelError.missingMetadata(key: "tokenizer.ggml.merges")) {
            try withGGUF(replacing("tokenizer.ggml.merges", with: nil)) { try Tokenizer(gguf: $0) }
        }
        #expect(throws: ModelError.missingMetadata(key: "tokenizer.ggml.model")) {
            try withGGUF(replacing("tokenizer.ggml.model", with: nil)) { try Tokenizer(gguf: $0) }
        }
    }

    @Test func wrongTypesAreTyped() throws {
        let err = try withGGUF(replacing("tokenizer.ggml.tokens", with: .int32s([1, 2, 3]))) { file in
            Result { () throws(ModelError) in try Tokenizer(gguf: file) }
        }
        guard case .failure(.wrongMetadataType(key: "tokenizer.ggml.tokens", _, _)) = err else {
            Issue.record("expected wrongMetadataType for tokens, got \(err)")
            return
        }
        #expect(
            throws: ModelError.wrongMetadataType(key: "tokenizer.ggml.pre", expected: "string", found: "an integer")
        ) {
            try withGGUF(replacing("tokenizer.ggml.pre", with: .uint32(2))) { try Tokenizer(gguf: $0) }
        }
    }

    @Test func mergeWithUnknownTokenIsRejected() throws {
        for merge in ["a x", "x b", "b a", "ab", "a "] {
            let message = try withGGUF(replacing("tokenizer.ggml.merges", with: .strings([merge]))) { file in
                tokenizerMessage { () throws(ModelError) in _ = try Tokenizer(gguf: file) }
            }
            #expect(message?.contains("merge #0") == true, "merge '\(merge)': \(message ?? "no error")")
        }
    }

    @Test func tokenTypeLengthMismatchIsRejected() throws {
        let message = try withGGUF(replacing("tokenizer.ggml.token_type", with: .int32s([1, 1]))) { file in
            tokenizerMessage { () throws(ModelError) in _ = try Tokenizer(gguf: file) }
        }
        #expect(message?.contains("token_type has 2 entries but there are 3 tokens") == true)
    }

    @Test func unsupportedModelAndPreAreNamed() throws {
        let model = try withGGUF(replacing("tokenizer.ggml.model", with: .string("bert"))) { file in
            tokenizerMessage { () throws(ModelError) in _ = try Tokenizer(gguf: file) }
        }
        #expect(model?.contains("'bert'") == true)
        #expect(model?.contains("gpt2") == true && model?.contains("llama") == true)
        let pre = try withGGUF(replacing("tokenizer.ggml.pre", with: .string("llama-bpe"))) { file in
            tokenizerMessage { () throws(ModelError) in _ = try Tokenizer(gguf: file) }
        }
        #expect(pre?.contains("'llama-bpe'") == true)
        #expect(pre?.contains("gpt-2") == true && pre?.contains("qwen2") == true)
        let missingPre = try withGGUF(replacing("tokenizer.ggml.pre", with: nil)) { file in
            tokenizerMessage { () throws(ModelError) in _ = try Tokenizer(gguf: file) }
        }
        #expect(missingPre?.contains("tokenizer.ggml.pre is missing") == true)
    }

    @Test func otherInconsistenciesAreRejected() throws {
        let badBOS = try withGGUF(replacing("tokenizer.ggml.bos_token_id", with: .uint32(3))) { file in
            tokenizerMessage { () throws(ModelError) in _ = try Tokenizer(gguf: file) }
        }
        #expect(badBOS?.contains("bos token id 3") == true)
        let duplicate = try withGGUF(replacing("tokenizer.ggml.tokens", with: .strings(["a", "b", "a"]))) { file in
            tokenizerMessage { () throws(ModelError) in _ = try Tokenizer(gguf: file) }
        }
        #expect(duplicate?.contains("duplicate token") == true)
        let empty = try withGGUF(replacing("tokenizer.ggml.tokens", with: .strings([]))) { file in
            tokenizerMessage { () throws(ModelError) in _ = try Tokenizer(gguf: file) }
        }
        #expect(empty != nil)
        var noBOS = replacing("tokenizer.ggml.bos_token_id", with: nil)
        noBOS.append(("tokenizer.ggml.add_bos_token", .bool(true)))
        // Default gpt2 BOS is 11, outside this 3-token vocabulary, so there is no BOS to add.
        let addWithoutBOS = try withGGUF(noBOS) { file in
            tokenizerMessage { () throws(ModelError) in _ = try Tokenizer(gguf: file) }
        }
        #expect(addWithoutBOS?.contains("add_bos_token is true") == true)
        let scores = try withGGUF([
            ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.tokens", .strings(["<unk>", "<s>", "</s>"])),
            ("tokenizer.ggml.scores", .float32s([0, 0])),
        ]) { file in tokenizerMessage { () throws(ModelError) in _ = try Tokenizer(gguf: file) } }
        #expect(scores?.contains("scores has 2 entries") == true)
    }

    // MARK: SHA-256 (FIPS 180-2 appendix B / NIST CSRC example vectors)

    @Test func sha256StandardVectors() {
        #expect(SHA256.hex(of: Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(of: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex(of: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(
            SHA256.hex(
                of: Array(
                    ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
                        + "klmnopqrlmnopqrsmnopqrstnopqrstu").utf8))
                == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
        #expect(
            SHA256.hex(of: [UInt8](repeating: 0x61, count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func sha256StreamingMatchesOneShot() {
        let message = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let expected = SHA256.hex(of: message)
        for chunk in [1, 3, 55, 56, 63, 64, 65, 128, 999] {
            var h = SHA256()
            var i = 0
            while i < message.count {
                h.update(Array(message[i..<min(i + chunk, message.count)]))
                i += chunk
            }
            #expect(h.finalizeHex() == expected, "chunk \(chunk)")
        }
        var million = SHA256()
        for _ in 0..<1000 { million.update([UInt8](repeating: 0x61, count: 1000)) }
        #expect(million.finalizeHex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func sha256OfShippedModelMatchesModelCard() throws {
        // shared/models/README.md lists each file's sha256.
        let file = try MappedFile(path: modelPath("chorus-kjv-draft-small-f32.gguf"))
        #expect(SHA256.hex(of: file.bytes) == "2a47ccef488551c6d7a6895fae31d5ccebbc63f95d9b72faa317e9e32e058eb1")
    }
}
