/// Pre-tokenization for byte-level BPE: splits text into "words" that BPE then encodes separately.
///
/// Each pattern is a hand-written scanner over Unicode scalars that reproduces the leftmost-first
/// semantics of the regex named by `tokenizer.ggml.pre` (the regexes are those in llama.cpp's
/// `llm_tokenizer_bpe`, `src/llama-vocab.cpp`). Character classes: `\p{L}` = general category L*,
/// `\p{N}` = N* (Nd, Nl, No), `\s` = the Unicode `White_Space` property, as in llama.cpp's
/// `unicode_cpt_flags` tables and the Rust `regex`/`onig` engines behind HF `tokenizers`.
public enum PreTokenizer: String, Sendable, CaseIterable {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    /// Contractions are case-sensitive. llama.cpp runs this through its hand-written
    /// `unicode_regex_split_custom_gpt2`, whose splits equal the regex's.
    case gpt2 = "gpt-2"
    /// Qwen2:
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// (llama.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2`). Digits are split one by one; a letter run may
    /// carry one leading non-letter, non-digit, non-newline character (a space, tab or punctuation).
    case qwen2 = "qwen2"

    /// The `tokenizer.ggml.pre` values llama.cpp maps to each pattern (`llama_vocab::impl::load`).
    /// Only names whose llama.cpp behaviour is exactly the pattern and nothing else are accepted.
    static func named(_ name: String) -> PreTokenizer? {
        switch name {
        case "gpt-2", "phi-2", "mpt", "olmo": return .gpt2
        case "qwen2", "deepseek-r1-qwen", "megrez", "stablelm2": return .qwen2
        default: return nil
        }
    }

    static let supportedNames = "gpt-2 (also phi-2, mpt, olmo), qwen2 (also deepseek-r1-qwen, megrez, stablelm2)"

    /// Calls `emit(start, end)` for consecutive half-open ranges of scalar indices covering
    /// `0..<classes.count`, in order, none empty.
    ///
    /// - Parameters:
    ///   - scalars: [n] code points of the text.
    ///   - classes: [n] ``PreTokenizerClass`` of each code point.
    func split(scalars: [UInt32], classes: [UInt8], emit: (Int, Int) -> Void) {
        switch self {
        case .gpt2: Self.splitGPT2(scalars, classes, emit)
        case .qwen2: Self.splitQwen2(scalars, classes, emit)
        }
    }

    /// Length of a contraction (`'s`, `'t`, `'m`, `'d`: 2; `'re`, `'ve`, `'ll`: 3) starting at
    /// `pos`, or 0. `foldCase` makes the letters case-insensitive (ASCII only, as in the patterns).
    @inline(__always)
    private static func contraction(_ s: [UInt32], _ pos: Int, foldCase: Bool) -> Int {
        let n = s.count
        guard s[pos] == 0x27, pos + 1 < n else { return 0 }
        func lower(_ c: UInt32) -> UInt32 { foldCase && c >= 0x41 && c <= 0x5A ? c + 0x20 : c }
        let a = lower(s[pos + 1])
        if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 { return 2 }  // s t m d
        guard pos + 2 < n else { return 0 }
        let b = lower(s[pos + 2])
        if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) { return 3 }  // re ve ll
        return 0
    }

    /// Length of the whitespace run at `pos` and, for `\s*[\r\n]+`, the end of its last CR/LF (or -1).
    @inline(__always)
    private static func whitespaceRun(_ s: [UInt32], _ c: [UInt8], _ pos: Int) -> (count: Int, newlineEnd: Int) {
        var p = pos
        var newlineEnd = -1
        while p < c.count, c[p] == PreTokenizerClass.whitespace {
            if s[p] == 0x0A || s[p] == 0x0D { newlineEnd = p + 1 }
            p += 1
        }
        return (p - pos, newlineEnd)
    }

    /// The scan both patterns share: at each position a contraction if one starts there (both patterns try the
    /// contractions first), else the piece `piece(pos)` ends (its end index, beyond `pos`); pieces are emitted in
    /// order until the text is covered.
    @inline(__always)
    private static func scan(_ s: [UInt32], foldCase: Bool, _ emit: (Int, Int) -> Void, piece: (Int) -> Int) {
        var pos = 0
        while pos < s.count {
            let k = contraction(s, pos, foldCase: foldCase)
            let end = k > 0 ? pos + k : piece(pos)
            emit(pos, end)
            pos = end
        }
    }

    private static func splitGPT2(_ s: [UInt32], _ c: [UInt8], _ emit: (Int, Int) -> Void) {
        let n = s.count
        scan(s, foldCase: false, emit) { pos in
            // ` ?X+` for X in {letter, number, other}: the optional space binds to the run after it.
            let spaced = s[pos] == 0x20 && pos + 1 < n
            let runClass = spaced ? c[pos + 1] : c[pos]
            if runClass != PreTokenizerClass.whitespace {
                var p = spaced ? pos + 1 : pos
                while p < n, c[p] == runClass { p += 1 }
                return p
            }
            // `\s+(?!\S)` leaves the last space of a run before a non-space to the next word;
            // `\s+` takes the rest (a single space, or a run reaching the end).
            let run = whitespaceRun(s, c, pos).count
            return run > 1 && pos + run < n ? pos + run - 1 : pos + run
        }
    }

    private static func splitQwen2(_ s: [UInt32], _ c: [UInt8], _ emit: (Int, Int) -> Void) {
        let n = s.count
        scan(s, foldCase: true, emit) { pos in
            let here = c[pos]
            let isNewline = s[pos] == 0x0A || s[pos] == 0x0D
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if here == PreTokenizerClass.letter
                || (here != PreTokenizerClass.number && !isNewline && pos + 1 < n
                    && c[pos + 1] == PreTokenizerClass.letter)
            {
                var p = pos + 1
                while p < n, c[p] == PreTokenizerClass.letter { p += 1 }
                return p
            }
            // `\p{N}`: one digit at a time.
            if here == PreTokenizerClass.number { return pos + 1 }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let spaced = s[pos] == 0x20 && pos + 1 < n && c[pos + 1] == PreTokenizerClass.other
            if here == PreTokenizerClass.other || spaced {
                var p = spaced ? pos + 1 : pos
                while p < n, c[p] == PreTokenizerClass.other { p += 1 }
                while p < n, s[p] == 0x0A || s[p] == 0x0D { p += 1 }
                return p
            }
            // Whitespace: `\s*[\r\n]+` (up to the run's last CR/LF), then `\s+(?!\S)`, then `\s+`.
            let (run, newlineEnd) = whitespaceRun(s, c, pos)
            if newlineEnd > 0 { return newlineEnd }
            if run > 1 && pos + run < n { return pos + run - 1 }
            return pos + max(run, 1)
        }
    }
}

/// The character classes the pre-tokenizer patterns distinguish. Exactly one per code point.
enum PreTokenizerClass {
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let whitespace: UInt8 = 3
    /// Neither letter, number nor whitespace (`[^\s\p{L}\p{N}]`).
    static let other: UInt8 = 4

    private static let ascii: [UInt8] = (0..<128).map { classifySlow(UInt32($0)) }

    @inline(__always)
    static func of(_ scalar: UInt32) -> UInt8 {
        scalar < 128 ? ascii[Int(scalar)] : classifySlow(scalar)
    }

    private static func classifySlow(_ value: UInt32) -> UInt8 {
        guard let scalar = Unicode.Scalar(value) else { return other }
        let properties = scalar.properties
        if properties.isWhitespace { return whitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        default: return other
        }
    }
}
