import CChorusEngine

// The cases keep ggml's type names (q4_0, q4_K, …), which are what users read in model cards and errors.
// swift-format-ignore: AlwaysUseLowerCamelCase
/// Tensor element types Chorus computes with: every type llama.cpp's common presets produce.
/// Block geometry, dequantization and dot products come from one table, the engine's
/// `chorus_traits` (ggml `ggml-common.h` block layouts; GGUF specification, "Tensor types").
public enum GGMLType: UInt32, CaseIterable, Sendable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q2_K = 10
    case q3_K = 11
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case bf16 = 30

    /// The engine's entry for this type (every case has one).
    var traits: UnsafePointer<chorus_type_traits> {
        guard let t = chorus_traits(rawValue) else { preconditionFailure("no engine traits for \(rawValue)") }
        return t
    }

    /// Elements per block.
    public var blockSize: Int { Int(traits.pointee.block_size) }

    /// Bytes per block.
    public var blockBytes: Int { Int(traits.pointee.block_bytes) }

    /// True when the engine dots this type with Float32 activations (F32, F16, BF16); quantized types
    /// dot with activations rounded to 8-bit blocks of 32.
    public var dotsWithFloat: Bool { traits.pointee.activation == Int32(CHORUS_ACT_F32.rawValue) }

    public var name: String { String(cString: traits.pointee.name) }

    /// ggml's name for any type id (for error messages), or its number.
    public static func name(of raw: UInt32) -> String {
        if let t = GGMLType(rawValue: raw) { return t.name }
        let known: [UInt32: String] = [
            9: "Q8_1", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S",
            22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
            34: "TQ1_0", 35: "TQ2_0",
        ]
        return known[raw] ?? "type \(raw)"
    }

    /// Bytes of a row of `count` elements; nil when `count` is not a whole number of blocks.
    public func rowBytes(_ count: Int) -> Int? {
        guard count % blockSize == 0 else { return nil }
        return count / blockSize * blockBytes
    }
}
