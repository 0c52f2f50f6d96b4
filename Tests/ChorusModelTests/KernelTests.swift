import CChorusEngine
import Foundation
import Testing

@testable import ChorusModel

/// The engine's kernels, type by type: dequantization against gguf-py's reference dequantizers
/// (fixtures from `scripts/make-quant-fixtures.py`), every dot product against the Float32 product of
/// the dequantized weights, and the determinism the tree verifier relies on (a row's result does not
/// depend on how many rows share the call or on the thread count).
@Suite struct KernelTests {
    struct Fixture: Decodable {
        let id: UInt32
        let bytes: String
        let values: [Float]
    }

    static let fixtures: [String: Fixture] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/dequantize.json")
        guard let data = try? Data(contentsOf: url),
            let decoded = try? JSONDecoder().decode([String: Fixture].self, from: data)
        else { return [:] }
        return decoded
    }()

    static func hexBytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(hex.count / 2)
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return out
    }

    @Test func everyTypeHasAFixture() {
        #expect(Set(Self.fixtures.keys) == Set(GGMLType.allCases.map(\.name)))
    }

    @Test(arguments: GGMLType.allCases)
    func dequantizationMatchesTheGGUFReference(type: GGMLType) throws {
        let fixture = try #require(Self.fixtures[type.name])
        #expect(fixture.id == type.rawValue)
        let bytes = Self.hexBytes(fixture.bytes)
        #expect(bytes.count == type.rowBytes(fixture.values.count))
        var out = [Float](repeating: .nan, count: fixture.values.count)
        bytes.withUnsafeBytes { Dequantize.row(type, from: $0.baseAddress!, count: out.count, into: &out) }
        let mismatches = zip(out, fixture.values).enumerated().filter { $0.element.0 != $0.element.1 }
        #expect(
            mismatches.isEmpty,
            "\(type.name): \(mismatches.count) values differ, first \(mismatches.first.map { "\($0)" } ?? "")")
    }

    @Test(arguments: GGMLType.allCases)
    func singleElementsEqualTheDequantizedBlock(type: GGMLType) throws {
        let fixture = try #require(Self.fixtures[type.name])
        let bytes = Self.hexBytes(fixture.bytes)
        let element = try #require(type.traits.pointee.element)
        bytes.withUnsafeBytes { raw in
            for i in fixture.values.indices {
                let block = raw.baseAddress! + i / type.blockSize * type.blockBytes
                let value = element(block, Int32(i % type.blockSize))
                #expect(value == fixture.values[i], "\(type.name) element \(i)")
            }
        }
    }

    // MARK: Dot products

    /// Byte offsets of the f16 scale fields in one block of each quantized type.
    static let halfFields: [GGMLType: [Int]] = [
        .q4_0: [0], .q4_1: [0, 2], .q5_0: [0], .q5_1: [0, 2], .q8_0: [0], .q2_K: [80, 82], .q3_K: [108],
        .q4_K: [0, 2], .q5_K: [0, 2], .q6_K: [208],
    ]

    /// A random [rows][count] weight matrix of `type`: random bytes with finite scales for quantized types.
    static func randomWeights(_ type: GGMLType, rows: Int, count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        func gaussian() -> Float {
            let u = Double(rng.next() >> 11 | 1) / Double(1 << 53), v = Double(rng.next() >> 11) / Double(1 << 53)
            return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
        }
        let total = rows * count
        switch type {
        case .f32:
            return (0..<total).flatMap { _ in withUnsafeBytes(of: gaussian().bitPattern.littleEndian, Array.init) }
        case .f16:
            return (0..<total).flatMap { _ in
                withUnsafeBytes(of: Float16(gaussian()).bitPattern.littleEndian, Array.init)
            }
        case .bf16:
            return (0..<total).flatMap { _ in
                withUnsafeBytes(of: UInt16(gaussian().bitPattern >> 16).littleEndian, Array.init)
            }
        default:
            let blocks = total / type.blockSize
            var bytes = (0..<blocks * type.blockBytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            for b in 0..<blocks {
                for offset in halfFields[type] ?? [] {
                    let scale = Float16(Float(rng.next() % 1000 + 1) / 20_000 * (rng.next() % 2 == 0 ? 1 : -1))
                    let bits = scale.bitPattern
                    bytes[b * type.blockBytes + offset] = UInt8(bits & 0xFF)
                    bytes[b * type.blockBytes + offset + 1] = UInt8(bits >> 8)
                }
            }
            return bytes
        }
    }

    /// Activation rows with a large outlier in row 0 (as in Qwen2's residual stream at position 0).
    static func randomActivations(rows: Int, count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var x = (0..<rows * count).map { _ in Float(Int(rng.next() % 2001) - 1000) / 500 }
        x[7] = 900
        return x
    }

    /// y [rows][out] through the engine with kernels `isa` and a pool of `threads`.
    static func engineProduct(
        _ type: GGMLType, isa: Int32, weights: [UInt8], inDim: Int, outDim: Int, x: [Float], rows: Int, threads: Int
    ) -> [Float] {
        let pool = chorus_pool_create(Int32(threads))
        defer { chorus_pool_destroy(pool) }
        var y = [Float](repeating: .nan, count: rows * outDim)
        var q8 = [UInt8](repeating: 0, count: rows * chorus_q8_row_bytes(Int32(inDim)))
        weights.withUnsafeBytes { w in
            if type.dotsWithFloat {
                x.withUnsafeBytes { a in
                    chorus_matmul(
                        pool, isa, type.rawValue, w.baseAddress, Int32(inDim), Int32(outDim), a.baseAddress,
                        Int32(rows), &y, outDim)
                }
            } else {
                chorus_quantize_q8(x, Int32(rows), Int32(inDim), &q8)
                q8.withUnsafeBytes { a in
                    chorus_matmul(
                        pool, isa, type.rawValue, w.baseAddress, Int32(inDim), Int32(outDim), a.baseAddress,
                        Int32(rows), &y, outDim)
                }
            }
        }
        return y
    }

    /// The activations the kernel actually multiplies: x itself for float types, else its 8-bit blocks decoded.
    static func effectiveActivations(_ type: GGMLType, x: [Float], rows: Int, count: Int) -> [Double] {
        if type.dotsWithFloat { return x.map(Double.init) }
        var effective = Self.quantizedBlocks(x, rows: rows, count: count).flatMap { block in
            block.q.map { Double(block.d) * Double($0) }
        }
        for (r, outliers) in Self.outliers(x, rows: rows, count: count).enumerated() {
            for (index, value) in outliers { effective[r * count + index] = Double(value) }  // added exactly
        }
        return effective
    }

    static let isas: [Int32] = chorus_isa() >= 1 ? [0, 1] : [0]

    @Test(arguments: GGMLType.allCases)
    func dotProductsEqualTheProductOfDequantizedWeights(type: GGMLType) throws {
        let inDim = 512, outDim = 9, rows = 6
        let weights = Self.randomWeights(type, rows: outDim, count: inDim, seed: UInt64(type.rawValue) + 1)
        let x = Self.randomActivations(rows: rows, count: inDim, seed: 7)
        Self.expectTheProductOfDequantizedWeights(
            type, weights: weights, x: x, inDim: inDim, outDim: outDim, rows: rows)
    }

    /// Expects the engine's y = W·x, for every ISA, within Float32 accumulation (a few ulps of Σ|w·x| over the
    /// `inDim` terms) of the Float64 product of the dequantized weights with the activations the kernels multiply.
    static func expectTheProductOfDequantizedWeights(
        _ type: GGMLType, weights: [UInt8], x: [Float], inDim: Int, outDim: Int, rows: Int
    ) {
        var w = [Float](repeating: 0, count: outDim * inDim)
        weights.withUnsafeBytes { Dequantize.row(type, from: $0.baseAddress!, count: w.count, into: &w) }
        let a = Self.effectiveActivations(type, x: x, rows: rows, count: inDim)
        for isa in Self.isas {
            let y = Self.engineProduct(
                type, isa: isa, weights: weights, inDim: inDim, outDim: outDim, x: x, rows: rows, threads: 1)
            for r in 0..<rows {
                for o in 0..<outDim {
                    var exact = 0.0, magnitude = 0.0
                    for i in 0..<inDim {
                        exact += Double(w[o * inDim + i]) * a[r * inDim + i]
                        magnitude += abs(Double(w[o * inDim + i]) * a[r * inDim + i])
                    }
                    let error = abs(Double(y[r * outDim + o]) - exact)
                    #expect(
                        error <= 2e-6 * magnitude + 1e-9,
                        "\(type.name) isa \(isa) row \(r) out \(o): \(y[r * outDim + o]) vs \(exact)")
                }
            }
        }
    }

    /// Weights at the extremes of every quantized type (each quant byte 0xFF: the largest unsigned values, the
    /// largest 6-bit scales and minimums, Q6_K's scales −1; Q8_0's bytes 0x80 = −128) times activations ±127 in
    /// every position, in runs of one sign per 16 and per 32: the largest integer sums the AVX2 kernels form,
    /// which the 16-bit reduction of the 4-bit types (chorus_sum8_i16: 16 · 15 · 127 = 30,480 ≤ 32,767) must hold
    /// without wrapping. Checked against the product of the dequantized weights, as above.
    @Test(arguments: GGMLType.allCases.filter { !$0.dotsWithFloat })
    func extremeBlocksDoNotOverflow(type: GGMLType) throws {
        let inDim = 512, outDim = 3, rows = 3
        let rowBytes = try #require(type.rowBytes(inDim))
        var weights = [UInt8](repeating: type == .q8_0 ? 0x80 : 0xFF, count: outDim * rowBytes)
        for b in 0..<outDim * inDim / type.blockSize {
            for offset in Self.halfFields[type] ?? [] {
                let bits = Float16(0.01).bitPattern
                weights[b * type.blockBytes + offset] = UInt8(bits & 0xFF)
                weights[b * type.blockBytes + offset + 1] = UInt8(bits >> 8)
            }
        }
        // Row 0: all +1; row 1: all −1; row 2: signs alternating every 16.
        let x: [Float] = (0..<rows * inDim).map { i in
            let r = i / inDim, c = i % inDim
            return r == 0 ? 1 : (r == 1 ? -1 : (c / 16 % 2 == 0 ? 1 : -1))
        }
        let a = Self.effectiveActivations(type, x: x, rows: rows, count: inDim)
        #expect(a.allSatisfy { abs(abs($0) - 1) < 1e-6 })  // every value quantized to ±127
        Self.expectTheProductOfDequantizedWeights(
            type, weights: weights, x: x, inDim: inDim, outDim: outDim, rows: rows)
    }

    /// 5 rows (one call of the k-quant and float kernels), 7 (4 + 3), 17 (6 + 6 + 5; 16 + 1 for the blocks of 32).
    @Test(arguments: GGMLType.allCases, [5, 7, 17])
    func aRowsResultDoesNotDependOnItsNeighboursOrTheThreadCount(type: GGMLType, rows: Int) throws {
        let inDim = 512, outDim = 40
        let weights = Self.randomWeights(type, rows: outDim, count: inDim, seed: 99 + UInt64(type.rawValue))
        let x = Self.randomActivations(rows: rows, count: inDim, seed: 3)
        for isa in Self.isas {
            let together = Self.engineProduct(
                type, isa: isa, weights: weights, inDim: inDim, outDim: outDim, x: x, rows: rows, threads: 1)
            let twoThreads = Self.engineProduct(
                type, isa: isa, weights: weights, inDim: inDim, outDim: outDim, x: x, rows: rows, threads: 2)
            #expect(
                together.map(\.bitPattern) == twoThreads.map(\.bitPattern), "\(type.name) isa \(isa): 1 vs 2 threads")
            for r in 0..<rows {
                let alone = Self.engineProduct(
                    type, isa: isa, weights: weights, inDim: inDim, outDim: outDim,
                    x: Array(x[r * inDim..<(r + 1) * inDim]), rows: 1,
                    threads: 1)
                #expect(
                    alone.map(\.bitPattern) == together[r * outDim..<(r + 1) * outDim].map(\.bitPattern),
                    "\(type.name) isa \(isa) row \(r)")
            }
        }
    }

    /// Every block of `rows` rows of `count` activations, quantized, row by row: (values, scale, d·Σq, half sums).
    static func quantizedBlocks(_ x: [Float], rows: Int, count: Int) -> [(
        q: [Int8], d: Float, ds: Float, s0: Int, s1: Int
    )] {
        let rowBytes = chorus_q8_row_bytes(Int32(count))
        var buffer = [UInt8](repeating: 0, count: rows * rowBytes)
        chorus_quantize_q8(x, Int32(rows), Int32(count), &buffer)
        return buffer.withUnsafeBytes { raw in
            (0..<rows).flatMap { r in
                (0..<(count / 32)).map { b in
                    let block = chorus_q8_block(raw.baseAddress! + r * rowBytes, Int32(count), Int32(b))
                    let q = (0..<32).map { block.q[$0] }
                    return (q, block.d, block.ds, Int(block.s16.0), Int(block.s16.1))
                }
            }
        }
    }

    /// The AVX2 activation quantizer writes the portable one's bytes exactly (values, scales, sums, outliers), on
    /// rows built to hit its corners: ties at ½ after scaling (roundf rounds them away from zero), repeated
    /// largest magnitudes (the first is the one left out as an outlier), outliers, all-zero blocks, integers
    /// that scale to exactly ±127, and magnitudes spread over 2^20.
    @Test func quantizersAgreeByteForByte() {
        let count = 1536, rows = 24
        var rng = SplitMix64(seed: 41)
        let rowBytes = chorus_q8_row_bytes(Int32(count))
        for kind in 0..<6 {
            var x = (0..<rows * count).map { i -> Float in
                let u = Float(Int(rng.next() % 20001) - 10000) / 20000
                switch kind {
                case 0: return u
                case 1: return Float(Int(rng.next() % 9) - 4) * 0.5
                case 2: return i % 32 == 5 ? 3300 * u : u
                case 3: return rng.next() % 4 == 0 ? 0 : u * 1e-30
                case 4: return Float(Int(rng.next() % 255) - 127)
                default: return u * Float(1 << Int(rng.next() % 20))
                }
            }
            for i in 0..<count where kind % 2 == 0 { x[i] = 0 }  // a row of zeros
            var portable = [UInt8](repeating: 0xAB, count: rows * rowBytes)
            var avx2 = portable
            chorus_quantize_q8_isa(0, x, Int32(rows), Int32(count), &portable)
            chorus_quantize_q8_isa(1, x, Int32(rows), Int32(count), &avx2)
            #expect(portable == avx2, "kind \(kind)")
            if kind == 1 {  // the rows hit ties: some value times its block's inverse scale is exactly k + ½
                let blocks = Self.quantizedBlocks(x, rows: rows, count: count)
                let ties = blocks.enumerated().filter { b, block in
                    let inverse = 1 / block.d
                    let values = x[(32 * b)..<(32 * b + 32)]
                    return block.d > 0 && values.contains { ($0 * inverse).remainder(dividingBy: 1).magnitude == 0.5 }
                }
                #expect(ties.count > 10)
            }
        }
    }

    /// The outliers of each quantized row: (position, value) pairs.
    static func outliers(_ x: [Float], rows: Int, count: Int) -> [[(Int, Float)]] {
        let rowBytes = chorus_q8_row_bytes(Int32(count))
        var buffer = [UInt8](repeating: 0, count: rows * rowBytes)
        chorus_quantize_q8(x, Int32(rows), Int32(count), &buffer)
        return buffer.withUnsafeBytes { raw in
            (0..<rows).map { r in
                var indices = [Int32](repeating: 0, count: Int(CHORUS_Q8_OUTLIERS))
                var values = [Float](repeating: 0, count: Int(CHORUS_Q8_OUTLIERS))
                let n = chorus_q8_outliers(raw.baseAddress! + r * rowBytes, Int32(count), &indices, &values)
                return (0..<Int(n)).map { (Int(indices[$0]), values[$0]) }
            }
        }
    }

    @Test func outliersLeaveTheirBlockAndAreKeptExactly() {
        // Row 0: 900 at position 7 among values of magnitude ≤ 2, and 50 at 40 next to 10 (ratio 5: no outlier).
        var x = Self.randomActivations(rows: 2, count: 64, seed: 11)
        x[40] = 50
        x[41] = 10
        let found = Self.outliers(x, rows: 2, count: 64)
        #expect(found[0].count == 1 && found[0].first?.0 == 7 && found[0].first?.1 == 900)
        #expect(found[1].isEmpty)
        let blocks = Self.quantizedBlocks(x, rows: 2, count: 64)
        #expect(blocks[0].q[7] == 0)
        let others = x[0..<32].enumerated().filter { $0.offset != 7 }.map { abs($0.element) }.max() ?? 0
        #expect(abs(blocks[0].d - others / 127) <= 1e-7 * others)  // the scale of the rest, not of 900
    }

    @Test func activationBlocksKeepTheirSumsAndBound() {
        let x = Self.randomActivations(rows: 2, count: 64, seed: 11)
        let outlierPositions = Set(
            Self.outliers(x, rows: 2, count: 64).enumerated().flatMap { r, list in
                list.map { r * 64 + $0.0 }
            })
        #expect(outlierPositions == [7])
        for (b, block) in Self.quantizedBlocks(x, rows: 2, count: 64).enumerated() {
            let q = block.q
            #expect(block.s0 == q[0..<16].reduce(0) { $0 + Int($1) })
            #expect(block.s1 == q[16..<32].reduce(0) { $0 + Int($1) })
            #expect(block.ds == block.d * Float(block.s0 + block.s1))
            let source = x[32 * b..<32 * (b + 1)].enumerated().map {
                outlierPositions.contains(32 * b + $0.offset) ? 0 : $0.element
            }
            let amax = source.map(abs).max() ?? 0
            #expect(abs(block.d - amax / 127) <= 1e-7 * amax)
            for (i, v) in source.enumerated() {
                #expect(abs(Double(v) - Double(block.d) * Double(q[i])) <= Double(block.d) / 2 * 1.0001)
            }
        }
    }
}
