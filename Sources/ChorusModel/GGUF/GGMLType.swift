/// Tensor element types Chorus computes with, with ggml's block geometry
/// (ggml `ggml-common.h` block layouts; GGUF specification, "Tensor types").
public enum GGMLType: UInt32, CaseIterable, Sendable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q8_0 = 8
    case q4_K = 12
    case q6_K = 14
    case bf16 = 30

    /// Elements per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q8_0: return 32
        case .q4_K, .q6_K: return 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 2 + 16  // f16 scale, 32 × 4-bit
        case .q8_0: return 2 + 32  // f16 scale, 32 × int8
        case .q4_K: return 2 + 2 + 12 + 128  // d, dmin, 8 × 6-bit scale/min pairs, 256 × 4-bit
        case .q6_K: return 128 + 64 + 16 + 2  // ql, qh, 16 × int8 scales, d
        }
    }

    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .q4_0: return "Q4_0"
        case .q8_0: return "Q8_0"
        case .q4_K: return "Q4_K"
        case .q6_K: return "Q6_K"
        case .bf16: return "BF16"
        }
    }

    /// ggml's name for any type id (for error messages), or its number.
    public static func name(of raw: UInt32) -> String {
        if let t = GGMLType(rawValue: raw) { return t.name }
        let known: [UInt32: String] = [
            3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 13: "Q5_K", 15: "Q8_K",
            16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
            23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
        ]
        return known[raw] ?? "type \(raw)"
    }

    /// Bytes of a row of `count` elements; nil when `count` is not a whole number of blocks.
    public func rowBytes(_ count: Int) -> Int? {
        guard count % blockSize == 0 else { return nil }
        return count / blockSize * blockBytes
    }
}
