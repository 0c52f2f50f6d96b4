/// Decoding: token ids → bytes → text.
///
/// Each token stands for a fixed byte string, its *piece* (llama.cpp `token_to_piece` with
/// `special = false`): byte-level tokens decode through the GPT-2 byte table, SentencePiece tokens
/// turn U+2581 back into spaces, `<0xXX>` byte tokens give their byte, user-defined tokens their
/// text, and control / unknown / unused tokens (BOS, EOS, …) nothing. A piece may end inside a UTF-8
/// character (`🙂` is four single-byte tokens here), so text is only formed from whole sequences of
/// pieces; ``StreamingDecoder`` does that incrementally.
///
/// Unlike llama.cpp's `llama_detokenize`, no `clean_spaces` post-processing (" ," → ",", …) is
/// applied: the text is exactly the concatenated pieces, so the streamed text and the decoded text
/// agree and decoding is lossless.
extension Tokenizer {
    /// The bytes `token` decodes to; empty for control tokens and for ids outside the vocabulary.
    public func piece(_ token: Int) -> [UInt8] {
        pieces.indices.contains(token) ? pieces[token] : []
    }

    /// The concatenated pieces. For `llama` tokenizers with ``addSpacePrefix``, the space that
    /// encoding prepended is removed from the first non-empty piece, so `decode(encode(s)) == s`.
    /// (llama.cpp removes it only when the first token is not BOS.)
    public func decodeBytes(_ tokens: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        var stripSpace = addSpacePrefix
        for token in tokens {
            let p = piece(token)
            guard !p.isEmpty else { continue }
            if stripSpace {
                stripSpace = false
                if p[0] == 0x20 {
                    out.append(contentsOf: p.dropFirst())
                    continue
                }
            }
            out.append(contentsOf: p)
        }
        return out
    }

    /// The text of `tokens`. Bytes that are not valid UTF-8 (for example a character cut in half at
    /// the end) become U+FFFD; this never traps.
    public func decode(_ tokens: [Int]) -> String {
        String(decoding: decodeBytes(tokens), as: UTF8.self)
    }

    /// Turns tokens into text as they arrive, holding back the bytes of a character that is not
    /// complete yet, so a multi-byte character split across tokens is never shown as U+FFFD.
    ///
    /// The concatenation of everything `append` and `finish` return equals `decode(allTokens)`.
    public struct StreamingDecoder: Sendable {
        private let tokenizer: Tokenizer
        /// Bytes of an incomplete trailing UTF-8 sequence (at most 3).
        private var held: [UInt8] = []
        private var stripSpace: Bool

        public init(tokenizer: Tokenizer) {
            self.tokenizer = tokenizer
            stripSpace = tokenizer.addSpacePrefix
        }

        /// The text that became complete with `token` (possibly empty).
        public mutating func append(_ token: Int) -> String {
            var p = tokenizer.piece(token)
            if p.isEmpty { return "" }
            if stripSpace {
                stripSpace = false
                if p[0] == 0x20 { p.removeFirst() }
            }
            held.append(contentsOf: p)
            let cut = Self.completePrefixLength(held)
            let text = String(decoding: held[..<cut], as: UTF8.self)
            held.removeFirst(cut)
            return text
        }

        /// Whatever is still held (an incomplete character, shown as U+FFFD).
        public mutating func finish() -> String {
            defer { held.removeAll() }
            return String(decoding: held, as: UTF8.self)
        }

        /// Length of the longest prefix that does not end inside a possibly incomplete UTF-8
        /// sequence. Invalid bytes are left in the prefix (they decode to U+FFFD either way).
        static func completePrefixLength(_ bytes: [UInt8]) -> Int {
            let n = bytes.count
            // Look back at most 3 bytes for the lead byte of the last sequence.
            var i = n - 1
            while i >= 0, i >= n - 3, bytes[i] & 0xC0 == 0x80 { i -= 1 }
            guard i >= 0 else { return n }
            let needed = Tokenizer.utf8Length(lead: bytes[i])
            return needed > 1 && i + needed > n ? i : n
        }
    }
}
