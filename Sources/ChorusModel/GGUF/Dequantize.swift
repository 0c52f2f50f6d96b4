import CChorusEngine

/// Conversion of GGUF tensor data to Float32, block by block, through the engine's type table
/// (layouts in `Sources/CChorusEngine/quant_legacy.c` and `quant_k.c`; checked against gguf-py's
/// reference dequantizers by `KernelTests`).
public enum Dequantize {
    /// Decodes `count` elements (a whole number of blocks) of `type` from `source` into `destination`.
    /// The source need not be aligned.
    public static func row(
        _ type: GGMLType, from source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
    ) {
        precondition(count % type.blockSize == 0, "\(count) elements are not whole \(type.name) blocks")
        type.traits.pointee.dequantize(source, destination, Int32(count / type.blockSize))
    }
}
