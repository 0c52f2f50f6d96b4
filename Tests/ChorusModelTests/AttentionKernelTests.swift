import CChorusEngine
import Foundation
import Testing

@testable import ChorusModel

/// The attention kernels (`chorus_attention`, `chorus_attention_batch`), portable and AVX2: against a float64
/// softmax attention, and the determinism the tree verifier relies on — a token's result is the same bit for bit
/// whether it is scored in a tree, in a chain, alone after the same prefix, in a batch of sessions, or by 1 or 2
/// threads.
@Suite struct AttentionKernelTests {
    /// One problem: a cache of `prefix + tree` positions, `rows` new tokens at its end, grouped-query heads.
    struct Problem {
        let heads: Int, kvHeads: Int, headDim: Int, prefix: Int, rows: Int
        let q: [Float]  // [rows][heads · headDim]
        let keys: [Float], values: [Float]  // [prefix + rows][kvHeads · headDim]
        /// mask[i][j] ≠ 0: new token i attends new token j (itself and its ancestors).
        let mask: [UInt8]

        var qStride: Int { heads * headDim }
        var kvStride: Int { kvHeads * headDim }

        init(heads: Int, kvHeads: Int, headDim: Int, prefix: Int, parents: [Int], seed: UInt64) {
            self.heads = heads
            self.kvHeads = kvHeads
            self.headDim = headDim
            self.prefix = prefix
            rows = parents.count
            var rng = SplitMix64(seed: seed)
            func values(_ n: Int, spread: Float) -> [Float] {
                (0..<n).map { _ in (Float(rng.next() % 20001) / 10000 - 1) * spread }
            }
            // Scores up to ≈ ±20: the softmax is peaked, and some weights underflow to 0.
            q = values(parents.count * heads * headDim, spread: 2.5)
            keys = values((prefix + parents.count) * kvHeads * headDim, spread: 1.5)
            self.values = values((prefix + parents.count) * kvHeads * headDim, spread: 1)
            var mask = [UInt8](repeating: 0, count: rows * rows)
            for i in 0..<rows {
                var j = i
                while j >= 0 {
                    mask[i * rows + j] = 1
                    j = parents[j]
                }
            }
            self.mask = mask
        }

        /// Positions (0..<prefix + rows) new token `row` attends, increasing.
        func attended(_ row: Int) -> [Int] {
            Array(0..<prefix) + (0..<rows).filter { mask[row * rows + $0] != 0 }.map { prefix + $0 }
        }

        /// Float64 attention of every new token: [rows][heads · headDim].
        func reference() -> [Double] {
            var out = [Double](repeating: 0, count: rows * qStride)
            let group = heads / kvHeads
            for row in 0..<rows {
                for h in 0..<heads {
                    let g = h / group
                    let positions = attended(row)
                    let scores = positions.map { p -> Double in
                        var dot = 0.0
                        for i in 0..<headDim {
                            let a = Double(q[row * qStride + h * headDim + i])
                            dot += a * Double(keys[p * kvStride + g * headDim + i])
                        }
                        return dot / Double(headDim).squareRoot()
                    }
                    let top = scores.max() ?? 0
                    let weights = scores.map { exp($0 - top) }
                    let total = weights.reduce(0, +)
                    for (w, p) in zip(weights, positions) {
                        for i in 0..<headDim {
                            let v = Double(values[p * kvStride + g * headDim + i])
                            out[row * qStride + h * headDim + i] += w / total * v
                        }
                    }
                }
            }
            return out
        }

        /// `chorus_attention` for new tokens `first..<first + count` (the ones before them a pending tree),
        /// with `isa` kernels on `threads` threads.
        func engine(isa: Int32, threads: Int = 1, first: Int = 0, count: Int? = nil) -> [Float] {
            let n = count ?? rows - first
            let pool = chorus_pool_create(Int32(threads))
            defer { chorus_pool_destroy(pool) }
            // The rows of the mask for these tokens, over the tree's nodes 0..<first + n.
            var sub = [UInt8](repeating: 0, count: n * (first + n))
            for i in 0..<n {
                for j in 0..<(first + n) { sub[i * (first + n) + j] = mask[(first + i) * rows + j] }
            }
            var out = [Float](repeating: .nan, count: n * qStride)
            var scratch = [Float](repeating: 0, count: 2 * threads * (prefix + rows))
            let queries = Array(q[(first * qStride)...])
            chorus_attention(
                pool, isa, queries, Int32(n), Int32(qStride), keys, values, Int32(kvStride), Int32(heads),
                Int32(kvHeads), Int32(headDim), Int32(prefix), Int32(first), sub, &out, Int32(qStride), &scratch)
            return out
        }
    }

    static let isas: [Int32] = chorus_isa() >= 1 ? [0, 1] : [0]
    /// Head sizes of real models (28, 32, 36: the shipped ones; 64, 128: Qwen2.5, Llama) and odd ones.
    static let shapes: [(heads: Int, kvHeads: Int, headDim: Int)] = [
        (4, 2, 28), (6, 2, 32), (8, 4, 36), (4, 4, 64), (2, 1, 128), (3, 3, 5), (2, 2, 72),
    ]
    /// A tree of seven nodes: a root, two children, grandchildren on both.
    static let parents = [-1, 0, 0, 1, 1, 2, 5]

    @Test(arguments: [0, 1, 13, 40])
    func matchesFloat64(prefix: Int) {
        for (i, shape) in Self.shapes.enumerated() {
            let problem = Problem(
                heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.headDim, prefix: prefix,
                parents: Self.parents, seed: UInt64(100 + i))
            let exact = problem.reference()
            for isa in Self.isas {
                let y = problem.engine(isa: isa)
                let worst = zip(y, exact).map { abs(Double($0) - $1) }.max() ?? .infinity
                #expect(worst < 2e-5, "isa \(isa) shape \(shape) prefix \(prefix): off by \(worst)")
            }
        }
    }

    /// Each token scored with the tree's earlier nodes as a pending tree (tree_offset), alone: the same bits as
    /// scoring the whole tree in one call; and with 2 threads.
    @Test func aTokenIsTheSameAloneInATreeAndOnTwoThreads() {
        for (i, shape) in Self.shapes.enumerated() {
            let problem = Problem(
                heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.headDim, prefix: 23,
                parents: Self.parents, seed: UInt64(200 + i))
            for isa in Self.isas {
                let whole = problem.engine(isa: isa)
                #expect(problem.engine(isa: isa, threads: 2).map(\.bitPattern) == whole.map(\.bitPattern))
                for row in 0..<problem.rows {
                    let alone = problem.engine(isa: isa, first: row, count: 1)
                    let slice = Array(whole[(row * problem.qStride)..<((row + 1) * problem.qStride)])
                    #expect(alone.map(\.bitPattern) == slice.map(\.bitPattern), "isa \(isa) shape \(shape) row \(row)")
                }
            }
        }
    }

    /// The last node of a chain in a tree equals the same token decoded after a prefix that holds the chain
    /// (sequential decoding): the kernel sees the same positions in the same order.
    @Test func aChainInATreeEqualsSequentialDecoding() {
        for (i, shape) in Self.shapes.enumerated() {
            let chain = Problem(
                heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.headDim, prefix: 17,
                parents: [-1, 0, 1, 2, 3], seed: UInt64(300 + i))
            for isa in Self.isas {
                let tree = chain.engine(isa: isa)
                let last = Array(tree[(4 * chain.qStride)...])
                let pool = chorus_pool_create(1)
                defer { chorus_pool_destroy(pool) }
                var out = [Float](repeating: .nan, count: chain.qStride)
                var scratch = [Float](repeating: 0, count: 2 * 22)
                // The same cache read as a prefix of 21 with one new token (the chain's last, at position 21).
                let q = Array(chain.q[(4 * chain.qStride)...])
                chorus_attention(
                    pool, isa, q, 1, Int32(chain.qStride), chain.keys, chain.values, Int32(chain.kvStride),
                    Int32(chain.heads), Int32(chain.kvHeads), Int32(chain.headDim), 21, 0, [1], &out,
                    Int32(chain.qStride), &scratch)
                #expect(out.map(\.bitPattern) == last.map(\.bitPattern), "isa \(isa) shape \(shape)")
            }
        }
    }

    /// A batch of sessions (each row its own cache and length) gives each row what it gets decoded alone.
    @Test func aBatchRowEqualsItsSessionAlone() {
        for (i, shape) in Self.shapes.enumerated() {
            let lengths = [0, 5, 31, 8]
            let sessions = lengths.enumerated().map { s, length in
                Problem(
                    heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.headDim, prefix: length,
                    parents: [-1], seed: UInt64(400 + 10 * i + s))
            }
            let qStride = sessions[0].qStride
            for isa in Self.isas {
                let pool = chorus_pool_create(1)
                defer { chorus_pool_destroy(pool) }
                let q = sessions.flatMap(\.q)
                var out = [Float](repeating: .nan, count: sessions.count * qStride)
                let stride = (lengths.max() ?? 0) + 1
                var scratch = [Float](repeating: 0, count: 2 * stride)
                let keyBuffers = sessions.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.keys.count) }
                let valueBuffers = sessions.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.values.count) }
                defer {
                    keyBuffers.forEach { $0.deallocate() }
                    valueBuffers.forEach { $0.deallocate() }
                }
                for (s, session) in sessions.enumerated() {
                    keyBuffers[s].initialize(from: session.keys, count: session.keys.count)
                    valueBuffers[s].initialize(from: session.values, count: session.values.count)
                }
                let keys: [UnsafePointer<Float>?] = keyBuffers.map { UnsafePointer($0) }
                let values: [UnsafePointer<Float>?] = valueBuffers.map { UnsafePointer($0) }
                chorus_attention_batch(
                    pool, isa, q, Int32(sessions.count), Int32(qStride), keys, values, lengths.map(Int32.init),
                    Int32(sessions[0].kvStride), Int32(shape.heads), Int32(shape.kvHeads), Int32(shape.headDim), &out,
                    Int32(qStride), &scratch, Int32(stride))
                for (s, session) in sessions.enumerated() {
                    let alone = session.engine(isa: isa)
                    let row = Array(out[(s * qStride)..<((s + 1) * qStride)])
                    #expect(row.map(\.bitPattern) == alone.map(\.bitPattern), "isa \(isa) shape \(shape) session \(s)")
                }
            }
        }
    }
}
