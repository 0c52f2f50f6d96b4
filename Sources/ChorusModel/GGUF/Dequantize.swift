/// Conversion of GGUF tensor data to Float32, block by block.
///
/// Block layouts follow ggml's `ggml-common.h` (as documented in the GGUF specification):
/// * Q8_0: `{ f16 d; i8 q[32] }`, value = d · q.
/// * Q4_0: `{ f16 d; u8 q[16] }`, element i < 16 is the low nibble of q[i], element i + 16 the high
///   nibble; value = d · (nibble − 8).
/// * Q4_K (super-block of 256): `{ f16 d; f16 dmin; u8 scales[12]; u8 q[128] }`; eight sub-blocks of
///   32 with 6-bit scale and min packed in `scales`; value = d·scale·nibble − dmin·min.
/// * Q6_K (256): `{ u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }`; 6-bit values (4 low bits in ql,
///   2 high bits in qh) minus 32, sixteen sub-blocks of 16 with int8 scales; value = d·scale·q.
public enum Dequantize {
    /// Decodes `count` elements (a whole number of blocks) of `type` from `source` into `destination`.
    public static func row(
        _ type: GGMLType, from source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
    ) {
        switch type {
        case .f32:
            // A byte copy: with a small `general.alignment` the source need not be 4-byte aligned.
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * MemoryLayout<Float>.size)
        case .f16:
            for i in 0..<count { destination[i] = half(source, at: 2 * i) }
        case .bf16:
            for i in 0..<count {
                let bits = UInt32(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) << 16
                destination[i] = Float(bitPattern: bits)
            }
        case .q8_0:
            for b in 0..<(count / 32) {
                let block = source + b * 34
                let d = half(block, at: 0)
                let q = (block + 2).assumingMemoryBound(to: Int8.self)
                let out = destination + b * 32
                for i in 0..<32 { out[i] = d * Float(q[i]) }
            }
        case .q4_0:
            for b in 0..<(count / 32) {
                let block = source + b * 18
                let d = half(block, at: 0)
                let q = (block + 2).assumingMemoryBound(to: UInt8.self)
                let out = destination + b * 32
                for i in 0..<16 {
                    out[i] = d * Float(Int(q[i] & 0x0F) - 8)
                    out[i + 16] = d * Float(Int(q[i] >> 4) - 8)
                }
            }
        case .q4_K:
            for b in 0..<(count / 256) {
                let block = source + b * 144
                let d = half(block, at: 0)
                let dmin = half(block, at: 2)
                let scales = (block + 4).assumingMemoryBound(to: UInt8.self)
                var q = (block + 16).assumingMemoryBound(to: UInt8.self)
                var out = destination + b * 256
                for pair in 0..<4 {
                    let (s1, m1) = scaleMinK4(2 * pair, scales)
                    let (s2, m2) = scaleMinK4(2 * pair + 1, scales)
                    let d1 = d * Float(s1), min1 = dmin * Float(m1)
                    let d2 = d * Float(s2), min2 = dmin * Float(m2)
                    for l in 0..<32 { out[l] = d1 * Float(q[l] & 0x0F) - min1 }
                    for l in 0..<32 { out[32 + l] = d2 * Float(q[l] >> 4) - min2 }
                    q += 32
                    out += 64
                }
            }
        case .q6_K:
            for b in 0..<(count / 256) {
                let block = source + b * 210
                var ql = block.assumingMemoryBound(to: UInt8.self)
                var qh = (block + 128).assumingMemoryBound(to: UInt8.self)
                var scales = (block + 192).assumingMemoryBound(to: Int8.self)
                let d = half(block, at: 208)
                var out = destination + b * 256
                for _ in 0..<2 {
                    for l in 0..<32 {
                        let s = l / 16
                        let q1 = Int(ql[l] & 0x0F) | (Int(qh[l] & 3) << 4)
                        let q2 = Int(ql[l + 32] & 0x0F) | (Int((qh[l] >> 2) & 3) << 4)
                        let q3 = Int(ql[l] >> 4) | (Int((qh[l] >> 4) & 3) << 4)
                        let q4 = Int(ql[l + 32] >> 4) | (Int((qh[l] >> 6) & 3) << 4)
                        out[l] = d * Float(scales[s]) * Float(q1 - 32)
                        out[l + 32] = d * Float(scales[s + 2]) * Float(q2 - 32)
                        out[l + 64] = d * Float(scales[s + 4]) * Float(q3 - 32)
                        out[l + 96] = d * Float(scales[s + 6]) * Float(q4 - 32)
                    }
                    out += 128
                    ql += 64
                    qh += 32
                    scales += 8
                }
            }
        }
    }

    /// IEEE half at a byte offset, as Float.
    @inline(__always)
    static func half(_ base: UnsafeRawPointer, at offset: Int) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }

    /// The j-th (0..<8) 6-bit scale and min of a Q4_K super-block.
    @inline(__always)
    static func scaleMinK4(_ j: Int, _ q: UnsafePointer<UInt8>) -> (UInt8, UInt8) {
        if j < 4 { return (q[j] & 63, q[j + 4] & 63) }
        return ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}
