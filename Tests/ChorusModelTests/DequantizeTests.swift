import Foundation
import Testing

@testable import ChorusModel

/// Dequantization checked three ways: hand-computed constants, per-element reference formulas over
/// blocks packed by test-side encoders (written from the documented layouts, in the encoding
/// direction), and the shipped F16 / Q8_0 files against the F32 file of the same model.
@Suite struct DequantizeTests {
    // MARK: Reference formulas

    /// IEEE 754 binary16 by its definition: sign, 5-bit exponent (bias 15), 10-bit fraction.
    static func halfValue(_ bits: UInt16) -> Double {
        let sign: Double = bits & 0x8000 == 0 ? 1 : -1
        let exponent = Int((bits >> 10) & 0x1F)
        let fraction = Double(bits & 0x3FF) / 1024
        switch exponent {
        case 0: return sign * fraction * pow(2, -14)
        case 31: return fraction == 0 ? sign * .infinity : .nan
        default: return sign * (1 + fraction) * pow(2, Double(exponent - 15))
        }
    }

    /// bfloat16 by its definition: sign, 8-bit exponent (bias 127), 7-bit fraction.
    static func bfloatValue(_ bits: UInt16) -> Double {
        let sign: Double = bits & 0x8000 == 0 ? 1 : -1
        let exponent = Int((bits >> 7) & 0xFF)
        let fraction = Double(bits & 0x7F) / 128
        switch exponent {
        case 0: return sign * fraction * pow(2, -126)
        case 255: return fraction == 0 ? sign * .infinity : .nan
        default: return sign * (1 + fraction) * pow(2, Double(exponent - 127))
        }
    }

    /// Decodes `count` elements with the library.
    static func decode(_ type: GGMLType, _ bytes: [UInt8], count: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: count)
        bytes.withUnsafeBytes { raw in Dequantize.row(type, from: raw.baseAddress!, count: count, into: &out) }
        return out
    }

    /// A half whose value is a random multiple of 2^-15 in [2^-5, 2^-4): all blocks' scales share
    /// one binade, so every product and difference below is exact in Float.
    static func randomScale(_ rng: inout SplitMix64, negative: Bool = false) -> UInt16 {
        let bits = UInt16((15 - 5) << 10) | UInt16(rng.next() & 0x3FF)
        return negative && rng.next() % 2 == 0 ? bits | 0x8000 : bits
    }

    // MARK: Test-side encoders (layout → bytes)

    /// Q8_0 block: half d, then 32 signed bytes.
    static func encodeQ8Block(d: UInt16, q: [Int8]) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(d)
        return out + q.map { UInt8(bitPattern: $0) }
    }

    /// Q4_0 block: half d, then 16 bytes; element i is in byte i mod 16, low nibble for i < 16.
    static func encodeQ4Block(d: UInt16, q: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(d)
        var qs = [UInt8](repeating: 0, count: 16)
        for (i, v) in q.enumerated() { qs[i % 16] |= i < 16 ? v : v << 4 }
        return out + qs
    }

    /// Q4_K super-block: half d, half dmin, 12 bytes holding eight 6-bit scales and eight 6-bit mins,
    /// 128 bytes of nibbles. Sub-blocks 0–3 keep scale and min in the low 6 bits of bytes 0–3 and
    /// 4–7; sub-blocks 4–7 keep their low 4 bits in the nibbles of bytes 8–11 (scale low, min high)
    /// and their top 2 bits in the top 2 bits of bytes 0–3 (scale) and 4–7 (min). Element i is a
    /// nibble of byte 32·(i / 64) + i mod 32, high for odd sub-blocks.
    static func encodeQ4KBlock(d: UInt16, dmin: UInt16, scales: [UInt8], mins: [UInt8], q: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(d)
        out.appendLE(dmin)
        var packed = [UInt8](repeating: 0, count: 12)
        for j in 0..<4 {
            packed[j] = scales[j] | (scales[j + 4] >> 4) << 6
            packed[j + 4] = mins[j] | (mins[j + 4] >> 4) << 6
            packed[j + 8] = (scales[j + 4] & 0x0F) | (mins[j + 4] & 0x0F) << 4
        }
        var qs = [UInt8](repeating: 0, count: 128)
        for (i, v) in q.enumerated() {
            let sub = i / 32
            qs[32 * (i / 64) + i % 32] |= sub % 2 == 0 ? v : v << 4
        }
        return out + packed + qs
    }

    /// Q6_K super-block: 128 bytes of low nibbles, 64 bytes of 2-bit high parts, 16 int8 scales (one
    /// per 16 elements), half d. Element i = 128·h + 32·g + l has its low 4 bits in nibble g / 2 of
    /// ql[64·h + 32·(g mod 2) + l] and its high 2 bits at bit 2·g of qh[32·h + l].
    static func encodeQ6KBlock(d: UInt16, scales: [Int8], q: [UInt8]) -> [UInt8] {
        var ql = [UInt8](repeating: 0, count: 128)
        var qh = [UInt8](repeating: 0, count: 64)
        for (i, v) in q.enumerated() {
            let (h, g, l) = (i / 128, (i % 128) / 32, i % 32)
            ql[64 * h + 32 * (g % 2) + l] |= (v & 0x0F) << (4 * (g / 2))
            qh[32 * h + l] |= (v >> 4) << (2 * g)
        }
        var out = ql + qh + scales.map { UInt8(bitPattern: $0) }
        out.appendLE(d)
        return out
    }

    // MARK: Hand-computed constants

    @Test func q8_0Constants() {
        var q = [Int8](repeating: 0, count: 32)
        q[0] = -128
        q[1] = -1
        q[3] = 1
        q[31] = 127
        var second = [Int8](repeating: 0, count: 32)
        second[5] = 3
        let bytes = Self.encodeQ8Block(d: 0x3800, q: q) + Self.encodeQ8Block(d: 0xC000, q: second)  // 0.5, -2
        #expect(bytes.count == 2 * GGMLType.q8_0.blockBytes)
        let out = Self.decode(.q8_0, bytes, count: 64)
        #expect(out[0] == -64 && out[1] == -0.5 && out[2] == 0 && out[3] == 0.5 && out[31] == 63.5)
        #expect(out[32 + 5] == -6 && out[32] == 0)
    }

    @Test func q4_0Constants() {
        var bytes: [UInt8] = [0x00, 0x40]  // d = 2
        bytes += [0x9F] + [UInt8](repeating: 0x88, count: 14) + [0x08]
        let out = Self.decode(.q4_0, bytes, count: 32)
        #expect(out[0] == 14)  // low nibble 15: (15 − 8)·2
        #expect(out[16] == 2)  // high nibble 9
        #expect(out[15] == 0 && out[31] == -16)
        #expect(out[1..<15].allSatisfy { $0 == 0 } && out[17..<31].allSatisfy { $0 == 0 })
    }

    @Test func q4_KConstantsIncludingPackedHighSubBlocks() {
        var bytes: [UInt8] = [0x00, 0x3C, 0x00, 0x38]  // d = 1, dmin = 0.5
        var scales = [UInt8](repeating: 0, count: 12)
        scales[0] = 0x05  // sub-block 0: scale 5
        scales[4] = 0x03  // sub-block 0: min 3
        scales[1] = 0xC1  // sub-block 1: scale 1; top bits 3 → sub-block 5's scale gets 48
        scales[5] = 0x82  // sub-block 1: min 2; top bits 2 → sub-block 5's min gets 32
        scales[9] = 0xA7  // sub-block 5: scale low 7, min low 10 → scale 55, min 42
        scales[3] = 0x40  // sub-block 3: scale 0; top bits 1 → sub-block 7's scale gets 16
        scales[7] = 0xC0  // sub-block 3: min 0; top bits 3 → sub-block 7's min gets 48
        scales[11] = 0x2F  // sub-block 7: scale low 15, min low 2 → scale 31, min 50
        var qs = [UInt8](repeating: 0, count: 128)
        qs[0] = 0x02  // element 0 (sub-block 0) = 2; element 32 (sub-block 1) = 0
        qs[64] = 0xF0  // element 128 (sub-block 4) = 0; element 160 (sub-block 5) = 15
        qs[95] = 0x10  // element 191 (sub-block 5) = 1
        qs[127] = 0x30  // element 255 (sub-block 7) = 3
        bytes += scales + qs
        #expect(bytes.count == GGMLType.q4_K.blockBytes)
        let out = Self.decode(.q4_K, bytes, count: 256)
        #expect(out[0] == 8.5)  // 1·5·2 − 0.5·3
        #expect(out[32] == -1)  // 1·1·0 − 0.5·2
        #expect(out[128] == 0)  // sub-block 4: scale 0, min 0
        #expect(out[160] == 804)  // 1·55·15 − 0.5·42
        #expect(out[191] == 34)  // 1·55·1 − 0.5·42
        #expect(out[161] == -21)
        #expect(out[192] == 0)  // sub-block 6: all zero
        #expect(out[224] == -25)  // sub-block 7: 1·31·0 − 0.5·50
        #expect(out[255] == 68)  // 1·31·3 − 0.5·50
    }

    @Test func q6_KConstantsIncludingHighBits() {
        var ql = [UInt8](repeating: 0, count: 128)
        var qh = [UInt8](repeating: 0, count: 64)
        var scales = [Int8](repeating: 0, count: 16)
        ql[0] = 0x01
        qh[0] = 0x02  // element 0: 1 | 2<<4 = 33
        scales[0] = 7
        ql[72] = 0xA0
        qh[40] = 0x34  // element 200: high nibble 10, bits 4–5 = 3 → 58; element 168: bits 2–3 = 1
        scales[12] = -3
        ql[104] = 0x0F  // element 168: 15 | 1<<4 = 31
        scales[10] = 100
        ql[127] = 0xF0
        qh[63] = 0xC0  // element 255: 15 | 3<<4 = 63
        scales[15] = -128
        var bytes = ql + qh + scales.map { UInt8(bitPattern: $0) }
        bytes += [0x00, 0x34]  // d = 0.25
        #expect(bytes.count == GGMLType.q6_K.blockBytes)
        let out = Self.decode(.q6_K, bytes, count: 256)
        #expect(out[0] == 1.75)  // 0.25·7·(33 − 32)
        #expect(out[1] == -56)  // 0.25·7·(0 − 32)
        #expect(out[200] == -19.5)  // 0.25·(−3)·(58 − 32)
        #expect(out[168] == -25)  // 0.25·100·(31 − 32)
        #expect(out[255] == -992)  // 0.25·(−128)·(63 − 32)
        #expect(out[16] == 0)  // scale 0
    }

    @Test func halfAndBFloatConstants() {
        let halves: [(UInt16, Float)] = [
            (0x3C00, 1), (0xC000, -2), (0x7BFF, 65504), (0x0001, 0x1p-24), (0x0400, 0x1p-14), (0x3555, 1365.0 / 4096),
            (0x7C00, .infinity), (0xFC00, -.infinity),
        ]
        var bytes: [UInt8] = []
        for (bits, _) in halves { bytes.appendLE(bits) }
        #expect(Self.decode(.f16, bytes, count: halves.count) == halves.map(\.1))
        let negativeZero = Self.decode(.f16, [0x00, 0x80], count: 1)[0]
        #expect(negativeZero == 0 && negativeZero.sign == .minus)
        #expect(Self.decode(.f16, [0x01, 0x7E], count: 1)[0].isNaN)

        let bfloats: [(UInt16, Float)] = [
            (0x3F80, 1), (0xC0A0, -5), (0x4049, 3.140625), (0x7F7F, 0x1.FEp127), (0x0001, 0x1p-133),
            (0x7F80, .infinity),
        ]
        bytes = []
        for (bits, _) in bfloats { bytes.appendLE(bits) }
        #expect(Self.decode(.bf16, bytes, count: bfloats.count) == bfloats.map(\.1))
    }

    // MARK: Random blocks against the reference formulas

    @Test func f16AndBF16MatchTheirDefinitionsForEveryBitPattern() {
        var bytes: [UInt8] = []
        for bits in 0...UInt16.max { bytes.appendLE(bits) }
        let half = Self.decode(.f16, bytes, count: 65536)
        let bfloat = Self.decode(.bf16, bytes, count: 65536)
        var halfMismatches = 0
        var bfloatMismatches = 0
        for bits in 0...UInt16.max {
            let i = Int(bits)
            let h = Self.halfValue(bits)
            if h.isNaN ? !half[i].isNaN : Double(half[i]) != h { halfMismatches += 1 }
            let b = Self.bfloatValue(bits)
            if b.isNaN ? !bfloat[i].isNaN : Double(bfloat[i]) != b { bfloatMismatches += 1 }
        }
        #expect(halfMismatches == 0)
        #expect(bfloatMismatches == 0)
    }

    @Test func q8_0RandomBlocks() {
        var rng = SplitMix64(seed: 80)
        let blocks = 5
        var bytes: [UInt8] = []
        var expected: [Double] = []
        for _ in 0..<blocks {
            let d = Self.randomScale(&rng, negative: true)
            let q = (0..<32).map { _ in Int8(truncatingIfNeeded: rng.next()) }
            bytes += Self.encodeQ8Block(d: d, q: q)
            expected += q.map { Self.halfValue(d) * Double($0) }
        }
        let out = Self.decode(.q8_0, bytes, count: 32 * blocks)
        #expect(out.map(Double.init) == expected)
    }

    @Test func q4_0RandomBlocks() {
        var rng = SplitMix64(seed: 40)
        let blocks = 5
        var bytes: [UInt8] = []
        var expected: [Double] = []
        for _ in 0..<blocks {
            let d = Self.randomScale(&rng, negative: true)
            let q = (0..<32).map { _ in UInt8(rng.next() % 16) }
            bytes += Self.encodeQ4Block(d: d, q: q)
            expected += q.map { Self.halfValue(d) * (Double($0) - 8) }
        }
        let out = Self.decode(.q4_0, bytes, count: 32 * blocks)
        #expect(out.map(Double.init) == expected)
    }

    @Test func q4_KRandomSuperBlocks() {
        var rng = SplitMix64(seed: 412)
        let blocks = 4
        var bytes: [UInt8] = []
        var expected: [Double] = []
        for b in 0..<blocks {
            let d = Self.randomScale(&rng)
            let dmin = Self.randomScale(&rng)
            // Block 0 uses the extreme 6-bit values so every packed bit is exercised.
            let scales = (0..<8).map { j in b == 0 ? UInt8(j % 2 == 0 ? 63 : 0) : UInt8(rng.next() % 64) }
            let mins = (0..<8).map { j in b == 0 ? UInt8(j % 2 == 0 ? 0 : 63) : UInt8(rng.next() % 64) }
            let q = (0..<256).map { _ in UInt8(rng.next() % 16) }
            bytes += Self.encodeQ4KBlock(d: d, dmin: dmin, scales: scales, mins: mins, q: q)
            for i in 0..<256 {
                let j = i / 32
                expected.append(
                    Self.halfValue(d) * Double(scales[j]) * Double(q[i]) - Self.halfValue(dmin) * Double(mins[j]))
            }
        }
        #expect(bytes.count == blocks * GGMLType.q4_K.blockBytes)
        let out = Self.decode(.q4_K, bytes, count: 256 * blocks)
        let wrong = (0..<out.count).filter { Double(out[$0]) != expected[$0] }
        #expect(wrong.isEmpty, "first wrong elements: \(wrong.prefix(8))")
        // The sub-blocks whose 6-bit values are split across bytes (4–7) are all covered.
        #expect(Set((0..<out.count).map { ($0 % 256) / 32 }) == Set(0..<8))
    }

    @Test func q6_KRandomSuperBlocks() {
        var rng = SplitMix64(seed: 614)
        let blocks = 4
        var bytes: [UInt8] = []
        var expected: [Double] = []
        for b in 0..<blocks {
            let d = Self.randomScale(&rng, negative: true)
            let scales = (0..<16).map { j in
                b == 0 ? Int8(j % 2 == 0 ? -128 : 127) : Int8(truncatingIfNeeded: rng.next())
            }
            // Block 0 alternates the extreme 6-bit values so every high bit is set somewhere.
            let q = (0..<256).map { i in b == 0 ? UInt8((i / 3) % 2 == 0 ? 63 : 0) : UInt8(rng.next() % 64) }
            bytes += Self.encodeQ6KBlock(d: d, scales: scales, q: q)
            for i in 0..<256 {
                expected.append(Self.halfValue(d) * Double(scales[i / 16]) * (Double(q[i]) - 32))
            }
        }
        #expect(bytes.count == blocks * GGMLType.q6_K.blockBytes)
        let out = Self.decode(.q6_K, bytes, count: 256 * blocks)
        let wrong = (0..<out.count).filter { Double(out[$0]) != expected[$0] }
        #expect(wrong.isEmpty, "first wrong elements: \(wrong.prefix(8))")
    }

    @Test func blockGeometryMatchesTheLayouts() {
        #expect(GGMLType.q8_0.blockBytes == Self.encodeQ8Block(d: 0, q: [Int8](repeating: 0, count: 32)).count)
        #expect(GGMLType.q4_0.blockBytes == Self.encodeQ4Block(d: 0, q: [UInt8](repeating: 0, count: 32)).count)
        #expect(
            GGMLType.q4_K.blockBytes
                == Self.encodeQ4KBlock(
                    d: 0, dmin: 0, scales: [UInt8](repeating: 0, count: 8), mins: [UInt8](repeating: 0, count: 8),
                    q: [UInt8](repeating: 0, count: 256)
                ).count)
        #expect(
            GGMLType.q6_K.blockBytes
                == Self.encodeQ6KBlock(
                    d: 0, scales: [Int8](repeating: 0, count: 16), q: [UInt8](repeating: 0, count: 256)
                ).count)
        #expect(GGMLType.q4_K.rowBytes(512) == 288 && GGMLType.q6_K.rowBytes(256) == 210)
        #expect(GGMLType.q8_0.rowBytes(288) == 9 * 34 && GGMLType.q8_0.rowBytes(100) == nil)
    }

    // MARK: Shipped files

    /// A tensor decoded row by row, as the runtime does.
    static func dequantized(_ file: GGUFFile, _ name: String) throws -> (info: GGUFFile.TensorInfo, values: [Float]) {
        let info = try #require(file.tensorInfo(name))
        let row = info.shape[0]
        let rowBytes = try #require(info.type.rowBytes(row))
        let rows = info.elementCount / row
        var out = [Float](repeating: .nan, count: info.elementCount)
        let data = file.data(of: info)
        out.withUnsafeMutableBufferPointer { dst in
            for r in 0..<rows {
                Dequantize.row(
                    info.type, from: data.baseAddress! + r * rowBytes, count: row, into: dst.baseAddress! + r * row)
            }
        }
        return (info, out)
    }

    static let comparedTensors = ["blk.0.attn_q.weight", "blk.5.ffn_down.weight", "token_embd.weight"]

    @Test(arguments: comparedTensors)
    func f16TargetMatchesF32WithinHalfPrecisionRounding(name: String) throws {
        let reference = try Self.dequantized(try GGUFFile(path: modelPath("chorus-kjv-target-f32.gguf")), name)
        let half = try Self.dequantized(try GGUFFile(path: modelPath("chorus-kjv-target-f16.gguf")), name)
        #expect(reference.info.type == .f32 && half.info.type == .f16)
        #expect(half.info.shape == reference.info.shape)
        var worst = 0.0
        var rounded = 0
        for (x, y) in zip(reference.values, half.values) {
            let error = abs(Double(y) - Double(x))
            // Round to nearest half: relative error ≤ 2⁻¹¹ for normal values, ≤ 2⁻²⁵ below.
            worst = max(worst, error / max(abs(Double(x)) * 0x1p-11, 0x1p-25))
            if error > 0 { rounded += 1 }
        }
        #expect(worst <= 1, "worst error \(worst) of the rounding bound")
        // The F16 file really was rounded (this is not the F32 tensor read twice).
        #expect(rounded > reference.values.count / 2)
    }

    @Test(arguments: comparedTensors)
    func q8_0TargetMatchesF32WithinHalfAStep(name: String) throws {
        let reference = try Self.dequantized(try GGUFFile(path: modelPath("chorus-kjv-target-f32.gguf")), name)
        let q8File = try GGUFFile(path: modelPath("chorus-kjv-target-q8_0.gguf"))
        let quantized = try Self.dequantized(q8File, name)
        #expect(quantized.info.type == .q8_0 && quantized.info.shape == reference.info.shape)
        let raw = Array(q8File.data(of: quantized.info))
        let blocks = reference.values.count / 32
        var failures: [String] = []
        var roundingMismatches = 0
        for b in 0..<blocks {
            let x = reference.values[(32 * b)..<(32 * b + 32)]
            // gguf-py's reference quantizer: d = max|x| / 127 (Float32), q = round(x / d), d stored as half.
            let d = Double(x.map { abs($0) }.max()! / 127)
            let dHalf = Self.halfValue(raw.readLE(UInt16.self, at: 34 * b))
            let q = (0..<32).map { Int8(bitPattern: raw[34 * b + 2 + $0]) }
            if d > 0 { #expect(q.map { abs(Int($0)) }.max() == 127, "block \(b)") }
            for i in 0..<32 {
                let xi = Double(x[x.startIndex + i])
                let yi = Double(quantized.values[32 * b + i])
                // Half a step, plus what storing d as a half moved this element.
                let bound = d / 2 + abs(d - dHalf) * Double(abs(Int(q[i]))) + 1e-6 * abs(xi)
                if abs(yi - xi) > bound { failures.append("block \(b) element \(i): \(yi) vs \(xi), bound \(bound)") }
                if d > 0 && Double(q[i]) != (xi / d).rounded() {
                    // Only a near-tie may round the other way (the quantizer works in Float32).
                    let fraction = abs(xi / d) - abs(xi / d).rounded(.down)
                    if abs(fraction - 0.5) > 1e-3 { roundingMismatches += 1 }
                }
            }
            // In terms of the stored scale alone.
            for i in 0..<32 {
                let error = abs(Double(quantized.values[32 * b + i]) - Double(x[x.startIndex + i]))
                if error > dHalf * (0.5 + 128.0 / 2048) + 1e-7 { failures.append("block \(b) element \(i) vs d16") }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) elements out of bounds, first: \(failures.prefix(3))")
        #expect(roundingMismatches == 0)
    }

    @Test func f32NormWeightsAreIdenticalInEveryTargetFile() throws {
        let reference = try Self.dequantized(
            try GGUFFile(path: modelPath("chorus-kjv-target-f32.gguf")), "blk.0.attn_norm.weight")
        for file in ["chorus-kjv-target-f16.gguf", "chorus-kjv-target-q8_0.gguf"] {
            let other = try Self.dequantized(try GGUFFile(path: modelPath(file)), "blk.0.attn_norm.weight")
            #expect(other.info.type == .f32)
            #expect(other.values == reference.values, "\(file)")
        }
    }
}
