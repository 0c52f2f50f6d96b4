/// GPT-2's reversible byte ↔ Unicode mapping (OpenAI `encoder.py`, `bytes_to_unicode`; the same
/// table is llama.cpp's `unicode_byte_to_utf8`).
///
/// Byte-level BPE vocabularies store token text with every byte replaced by a printable code point:
/// the bytes `!`…`~` (33–126), `¡`…`¬` (161–172) and `®`…`ÿ` (174–255) stand for themselves; the
/// other 68 bytes (controls, space, DEL, NBSP, soft hyphen) map in increasing order to U+0100,
/// U+0101, …, so a space is `Ġ` (U+0120) and a newline `Ċ` (U+010A).
enum GPT2ByteLevel {
    /// scalar: [256], the code point standing for each byte.
    static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                table[b] = UInt32(b)
            } else {
                table[b] = next
                next += 1
            }
        }
        return table
    }()

    /// The inverse of ``byteToScalar``; nil for code points that stand for no byte.
    static func byte(for scalar: UInt32) -> UInt8? {
        if scalar < 256 {
            let b = Int(scalar)
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) { return UInt8(b) }
            return nil
        }
        return scalarToByteHigh[scalar]
    }

    private static let scalarToByteHigh: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() where s >= 256 { map[s] = UInt8(b) }
        return map
    }()

    /// UTF-8 of the code point standing for `byte` (the token text of a single-byte token).
    static func utf8(for byte: UInt8) -> [UInt8] {
        // Every table entry is below U+0200, so the scalar always exists.
        guard let scalar = Unicode.Scalar(byteToScalar[Int(byte)]) else { return [] }
        return Array(String(scalar).utf8)
    }

    /// Decodes the text of a byte-level token back to raw bytes. Code points that stand for no byte
    /// (not produced by the mapping; only possible in hand-edited vocabularies) are kept as their own
    /// UTF-8, where llama.cpp would write an `[UNK_BYTE_…]` marker.
    static func decode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            if let b = byte(for: scalar.value) {
                out.append(b)
            } else {
                out.append(contentsOf: String(scalar).utf8)
            }
        }
        return out
    }
}
