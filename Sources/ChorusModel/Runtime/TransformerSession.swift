import CBLAS
import CChorusEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One sequence on a ``TransformerModel``: a KV cache with rollback, and a batched forward pass over a chain
/// (``append(_:)``), a tree (``scoreTree(tokens:parents:)``) or more nodes of a pending tree
/// (``extendTree(tokens:parents:)``); several sessions also batch together (``TransformerModel/appendBatch(_:tokens:)``).
///
/// Cache layout: `keys`, `values`: [blocks][contextLength][kvHeads·hd]. Rows 0..<length hold the sequence; a
/// forward over n new tokens writes their rows at length..<length+n (in request order, whatever the tree
/// shape; after the pending tree's rows when extending it). Every row stores k after RoPE at the token's position, so moving a row (``keepTreePath(_:)``) is
/// valid exactly when it lands at the index equal to its position — which a kept root-to-node path does.
///
/// While a scored tree is pending, ``length`` is still the prefix length; the request rules shared with
/// ``TableSession`` are in `SessionRules`.
///
/// Scratch buffers are allocated per session and grown only when a batch larger than any before arrives, so
/// single-token decoding allocates nothing but the returned logits array.
public final class TransformerSession: LanguageModelSession {
    public let model: TransformerModel
    public internal(set) var length = 0
    /// Parents of the tree scored last, whose rows sit at length..<length+count; nil when none is pending.
    var pendingTree: [Int]?
    /// Depth of each pending tree node (0 for a child of the prefix): [pendingTree.count].
    var pendingDepths: [Int] = []
    /// Tree nodes already in the cache (rows length..<length+treeOffset) before the tokens of the forward pass
    /// under way: 0 except while ``extendTree(tokens:parents:)`` runs.
    private var treeOffset = 0

    /// [blocks][contextLength][kvWidth]
    let keys: UnsafeMutablePointer<Float>
    /// [blocks][contextLength][kvWidth]
    let values: UnsafeMutablePointer<Float>
    let scratch: ForwardScratch

    init(model: TransformerModel) {
        self.model = model
        let c = model.config
        let cacheFloats = c.blockCount * c.contextLength * c.kvWidth
        // calloc: zeroed pages that are never written (the unused end of a long context) cost no memory.
        keys = Self.zeroedFloats(cacheFloats)
        values = Self.zeroedFloats(cacheFloats)
        scratch = ForwardScratch(config: c, rows: min(16, c.contextLength), threads: model.threads)
    }

    deinit {
        free(keys)
        free(values)
    }

    private static func zeroedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        guard let raw = calloc(max(count, 1), MemoryLayout<Float>.stride) else {
            preconditionFailure("cannot allocate a KV cache of \(count) floats")
        }
        return raw.assumingMemoryBound(to: Float.self)
    }

    public func append(_ tokens: [Int]) throws(ModelError) -> [Float] {
        let c = model.config
        try SessionRules.checkAppend(
            tokens, length: length, vocabularySize: c.vocabularySize, contextLength: c.contextLength)
        pendingTree = nil
        pendingDepths = []
        // A long prompt goes through in chunks, so the scratch stays small (a 152k vocabulary's logits are
        // 0.6 MB a row; activations, scores and logits for a 30k-token prompt in one pass would be tens of GB).
        // In fast precision a row's arithmetic does not depend on its chunk: the result is that of one pass.
        var start = 0
        while start < tokens.count {
            let end = min(start + Self.chunkRows, tokens.count)
            forward(Array(tokens[start..<end]), parents: nil, depths: nil, logitsForAllRows: false)
            length += end - start
            start = end
        }
        return Array(UnsafeBufferPointer(start: scratch.logits, count: c.vocabularySize))
    }

    /// Rows of one forward pass when appending a long prompt.
    static let chunkRows = 64

    public func scoreTree(tokens: [Int], parents: [Int]) throws(ModelError) -> [[Float]] {
        let c = model.config
        let depths = try SessionRules.checkTree(
            tokens: tokens, parents: parents, length: length, vocabularySize: c.vocabularySize,
            contextLength: c.contextLength)
        pendingTree = parents
        pendingDepths = depths
        guard !tokens.isEmpty else { return [] }
        forward(tokens, parents: parents, depths: depths, logitsForAllRows: true)
        let v = c.vocabularySize
        return (0..<tokens.count).map { Array(UnsafeBufferPointer(start: scratch.logits + $0 * v, count: v)) }
    }

    public func extendTree(tokens: [Int], parents: [Int]) throws(ModelError) -> [[Float]] {
        let c = model.config
        let pending = pendingTree
        let depths = try SessionRules.checkExtension(
            tokens: tokens, parents: parents, pending: pending, pendingDepths: pendingDepths, length: length,
            vocabularySize: c.vocabularySize, contextLength: c.contextLength)
        let earlier = pending ?? []
        guard !tokens.isEmpty else { return [] }
        treeOffset = earlier.count
        defer { treeOffset = 0 }
        forward(tokens, parents: earlier + parents, depths: depths, logitsForAllRows: true)
        pendingTree = earlier + parents
        pendingDepths += depths
        let v = c.vocabularySize
        return (0..<tokens.count).map { Array(UnsafeBufferPointer(start: scratch.logits + $0 * v, count: v)) }
    }

    public func keepTreePath(_ path: [Int]) throws(ModelError) {
        try SessionRules.checkPath(path, parents: pendingTree)
        moveTreeRows(path)
        length += path.count
        pendingTree = nil
    }

    public func keepTreePathAndBelow(_ path: [Int]) throws(ModelError) -> [Int] {
        let (kept, parents) = try SessionRules.subtree(below: path, parents: pendingTree)
        let depths = kept.map { pendingDepths[$0] - path.count }
        // The path's rows land at their positions; the kept nodes' rows follow in order. A tree row's key was
        // rotated at its position, not its row index, so it may sit at any row after the prefix.
        moveTreeRows(path + kept)
        length += path.count
        pendingTree = parents
        pendingDepths = depths
        return kept
    }

    /// Moves the rows of tree nodes `nodes` (increasing) to rows length, length + 1, … of every layer's cache.
    private func moveTreeRows(_ nodes: [Int]) {
        let c = model.config
        // nodes[k] ≥ k (increasing, from 0), so copying in increasing k never overwrites a source row that a
        // later step still reads.
        for (k, node) in nodes.enumerated() where node != k {
            for l in 0..<c.blockCount {
                let layer = l * c.contextLength
                let from = (layer + length + node) * c.kvWidth
                let to = (layer + length + k) * c.kvWidth
                (keys + to).update(from: keys + from, count: c.kvWidth)
                (values + to).update(from: values + from, count: c.kvWidth)
            }
        }
    }

    public func rollback(to target: Int) throws(ModelError) {
        try SessionRules.checkRollback(to: target, length: length)
        length = target
        pendingTree = nil
    }

    // MARK: Forward pass

    /// Runs the model over `tokens` (n of them, already validated), writing their K/V rows at
    /// length+treeOffset..<length+treeOffset+n and leaving logits in `scratch.logits`: [n][vocab] when
    /// `logitsForAllRows`, else only the last token's in row 0. `parents`/`depths` nil means a chain: token i is
    /// the child of i − 1. Otherwise `parents` covers the whole pending tree ([treeOffset + n], indices into it)
    /// and `depths` the new tokens.
    private func forward(_ tokens: [Int], parents: [Int]?, depths: [Int]?, logitsForAllRows: Bool) {
        let m = model
        let c = m.config
        let n = tokens.count
        let d = c.embeddingLength
        let s = scratch
        s.reserve(rows: n)

        // Embeddings, positions and the attention mask among the new tokens.
        let embedding = m.tokenEmbedding
        for i in 0..<n {
            Dequantize.row(
                embedding.type, from: embedding.data + tokens[i] * embedding.rowBytes, count: d, into: s.x + i * d)
            s.positions[i] = length + (depths?[i] ?? i)
        }
        s.reserveMask(rows: n, span: treeOffset + n)
        Self.buildMask(s.mask, count: n, treeOffset: treeOffset, parents: parents)

        switch m.precision {
        case .fast: fastBlocks(rows: n)
        case .reference: referenceBlocks(rows: n)
        }

        // Output head over the rows whose logits are wanted.
        let first = logitsForAllRows ? 0 : n - 1
        let rows = n - first
        Kernels.rmsNorm(s.xb, s.x + first * d, m.outputNorm, rows: rows, dim: d, epsilon: c.rmsEpsilon)
        project(s.logits, s.xb, m.output, rows: rows, quantize: true)
    }

    /// y [rows][outDim] = W x for x [rows][inDim]: the engine's kernels (fast) or OpenBLAS over Float32 copies
    /// (reference). `quantize` true marks a new input; false means the previous projection read the same x, so
    /// its 8-bit blocks in `scratch.q8` are reused when that projection made them.
    @inline(__always)
    func project(
        _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: WeightMatrix, rows n: Int,
        quantize: Bool
    ) {
        let m = model
        switch m.precision {
        case .reference:
            Kernels.matmul(y, x, w.floats, rows: n, inDim: w.inDim, outDim: w.outDim)
        case .fast:
            if w.type.dotsWithFloat {
                if quantize { scratch.q8Valid = false }  // a new input whose blocks nobody made yet
                chorus_matmul(
                    m.pool, m.isa, w.type.rawValue, w.data, Int32(w.inDim), Int32(w.outDim), x, Int32(n), y, w.outDim)
            } else {
                if quantize || !scratch.q8Valid {
                    chorus_quantize_q8(x, Int32(n), Int32(w.inDim), scratch.q8)
                    scratch.q8Valid = true
                }
                chorus_matmul(
                    m.pool, m.isa, w.type.rawValue, w.data, Int32(w.inDim), Int32(w.outDim), scratch.q8, Int32(n), y,
                    w.outDim)
            }
        }
    }

    /// The transformer blocks through the engine: row-independent kernels, attention summed per token over
    /// exactly the positions it sees (so tree rows equal sequential rows bit for bit).
    ///
    /// `rows` says whose the n rows are (``BatchRows``): this session's new tokens, one new token of each of
    /// several sessions, or several sessions' trees. In a batch each row's K/V go to its session's cache and it
    /// attends that session's cache only; the weights are read once for all rows.
    func fastBlocks(rows n: Int, of rows: BatchRows = .session) {
        let m = model
        let c = m.config
        let d = c.embeddingLength, qw = c.queryWidth, kvw = c.kvWidth, ff = c.feedForwardLength
        let s = scratch
        var lengths: [Int32] = []
        if case .tokens(let batch) = rows { lengths = batch.map { Int32($0.length) } }
        for (l, w) in m.blocks.enumerated() {
            let layer = l * c.contextLength * kvw
            let layerKeys = keys + layer  // [contextLength][kvw]
            let layerValues = values + layer  // [contextLength][kvw]
            // [n][kvw]: the new tokens' rows, in the cache (one session) or in scratch (a batch).
            let inCache: Bool
            if case .session = rows { inCache = true } else { inCache = false }
            let newKeys = inCache ? layerKeys + (length + treeOffset) * kvw : s.batchKeys
            let newValues = inCache ? layerValues + (length + treeOffset) * kvw : s.batchValues

            Kernels.rmsNorm(s.xb, s.x, w.attentionNorm, rows: n, dim: d, epsilon: c.rmsEpsilon)
            project(s.q, s.xb, w.query, rows: n, quantize: true)
            project(newKeys, s.xb, w.key, rows: n, quantize: false)
            project(newValues, s.xb, w.value, rows: n, quantize: false)
            if let b = w.queryBias { Kernels.addRows(s.q, b, rows: n, dim: qw) }
            if let b = w.keyBias { Kernels.addRows(newKeys, b, rows: n, dim: kvw) }
            if let b = w.valueBias { Kernels.addRows(newValues, b, rows: n, dim: kvw) }
            rotate(newKeys, rows: n)
            switch rows {
            case .session:
                chorus_attention(
                    m.pool, m.isa, s.q, Int32(n), Int32(qw), layerKeys, layerValues, Int32(kvw), Int32(c.headCount),
                    Int32(c.kvHeadCount), Int32(c.headDimension), Int32(length), Int32(treeOffset), s.mask,
                    s.attention, Int32(qw), s.attentionScratch)
            case .tokens(let batch):
                var rowKeys: [UnsafePointer<Float>?] = []
                var rowValues: [UnsafePointer<Float>?] = []
                for (i, session) in batch.enumerated() {
                    let at = layer + session.length * kvw
                    (session.keys + at).update(from: newKeys + i * kvw, count: kvw)
                    (session.values + at).update(from: newValues + i * kvw, count: kvw)
                    rowKeys.append(UnsafePointer(session.keys + layer))
                    rowValues.append(UnsafePointer(session.values + layer))
                }
                chorus_attention_batch(
                    m.pool, m.isa, s.q, Int32(n), Int32(qw), rowKeys, rowValues, lengths, Int32(kvw),
                    Int32(c.headCount), Int32(c.kvHeadCount), Int32(c.headDimension), s.attention, Int32(qw),
                    s.attentionScratch, Int32(c.contextLength + s.capacity))
            case .trees(let segments):
                // Each session's tree rows: the same call as scoring (or extending) that tree alone, on its own
                // cache, after the rows of its pending tree.
                for g in segments {
                    let at = layer + (g.session.length + g.treeOffset) * kvw
                    (g.session.keys + at).update(from: newKeys + g.start * kvw, count: g.count * kvw)
                    (g.session.values + at).update(from: newValues + g.start * kvw, count: g.count * kvw)
                    chorus_attention(
                        m.pool, m.isa, s.q + g.start * qw, Int32(g.count), Int32(qw), g.session.keys + layer,
                        g.session.values + layer, Int32(kvw), Int32(c.headCount), Int32(c.kvHeadCount),
                        Int32(c.headDimension), Int32(g.session.length), Int32(g.treeOffset), s.mask + g.maskStart,
                        s.attention + g.start * qw, Int32(qw), s.attentionScratch)
                }
            }
            project(s.xb, s.attention, w.attentionOutput, rows: n, quantize: true)
            if let b = w.attentionOutputBias { Kernels.addRows(s.xb, b, rows: n, dim: d) }
            Kernels.add(s.x, s.xb, count: n * d)

            Kernels.rmsNorm(s.xb, s.x, w.ffnNorm, rows: n, dim: d, epsilon: c.rmsEpsilon)
            project(s.gate, s.xb, w.gate, rows: n, quantize: true)
            project(s.up, s.xb, w.up, rows: n, quantize: false)
            Kernels.swiglu(s.gate, s.up, count: n * ff)
            project(s.xb, s.gate, w.down, rows: n, quantize: true)
            Kernels.add(s.x, s.xb, count: n * d)
        }
    }

    /// RoPE on the queries in `scratch.q` and the new keys, at each new token's position.
    func rotate(_ newKeys: UnsafeMutablePointer<Float>, rows n: Int) {
        let m = model
        let c = m.config
        let s = scratch
        let half = c.ropeDimensionCount / 2
        for i in 0..<n {
            let angles = s.positions[i] * half
            Kernels.rope(
                s.q + i * c.queryWidth, heads: c.headCount, headDim: c.headDimension, ropeDims: c.ropeDimensionCount,
                cos: m.ropeCos + angles, sin: m.ropeSin + angles, style: c.ropeStyle)
            Kernels.rope(
                newKeys + i * c.kvWidth, heads: c.kvHeadCount, headDim: c.headDimension,
                ropeDims: c.ropeDimensionCount, cos: m.ropeCos + angles, sin: m.ropeSin + angles, style: c.ropeStyle)
        }
    }

    /// The transformer blocks over Float32 copies through OpenBLAS: the reference.
    private func referenceBlocks(rows n: Int) {
        let m = model
        let c = m.config
        let d = c.embeddingLength, qw = c.queryWidth, kvw = c.kvWidth, ff = c.feedForwardLength
        let s = scratch
        for (l, w) in m.blocks.enumerated() {
            let layerKeys = keys + l * c.contextLength * kvw  // [contextLength][kvw]
            let layerValues = values + l * c.contextLength * kvw  // [contextLength][kvw]
            let newKeys = layerKeys + (length + treeOffset) * kvw  // [n][kvw], rows of the new tokens
            let newValues = layerValues + (length + treeOffset) * kvw  // [n][kvw]

            // Attention: q, k, v projections (k and v straight into the cache), RoPE, attention, output.
            Kernels.rmsNorm(s.xb, s.x, w.attentionNorm, rows: n, dim: d, epsilon: c.rmsEpsilon)
            Kernels.matmul(s.q, s.xb, w.query.floats, rows: n, inDim: d, outDim: qw)
            Kernels.matmul(newKeys, s.xb, w.key.floats, rows: n, inDim: d, outDim: kvw)
            Kernels.matmul(newValues, s.xb, w.value.floats, rows: n, inDim: d, outDim: kvw)
            if let b = w.queryBias { Kernels.addBias(s.q, b, rows: n, dim: qw) }
            if let b = w.keyBias { Kernels.addBias(newKeys, b, rows: n, dim: kvw) }
            if let b = w.valueBias { Kernels.addBias(newValues, b, rows: n, dim: kvw) }
            rotate(newKeys, rows: n)
            attention(rows: n, keys: layerKeys, values: layerValues)
            Kernels.matmul(s.xb, s.attention, w.attentionOutput.floats, rows: n, inDim: qw, outDim: d)
            if let b = w.attentionOutputBias { Kernels.addBias(s.xb, b, rows: n, dim: d) }
            cblas_saxpy(Int32(n * d), 1, s.xb, 1, s.x, 1)

            // SwiGLU feed-forward.
            Kernels.rmsNorm(s.xb, s.x, w.ffnNorm, rows: n, dim: d, epsilon: c.rmsEpsilon)
            Kernels.matmul(s.gate, s.xb, w.gate.floats, rows: n, inDim: d, outDim: ff)
            Kernels.matmul(s.up, s.xb, w.up.floats, rows: n, inDim: d, outDim: ff)
            Kernels.swiglu(s.gate, s.up, count: n * ff)
            Kernels.matmul(s.xb, s.gate, w.down.floats, rows: n, inDim: ff, outDim: d)
            cblas_saxpy(Int32(n * d), 1, s.xb, 1, s.x, 1)
        }
    }

    /// mask: [n][treeOffset + n], mask[i][j] = 1 when tree node j is new token i (node treeOffset + i) or one
    /// of its ancestors (tree attention); for a chain (parents nil) that is j ≤ i, the causal mask. `parents`
    /// covers the whole tree ([treeOffset + n]).
    static func buildMask(_ mask: UnsafeMutablePointer<UInt8>, count n: Int, treeOffset: Int, parents: [Int]?) {
        let span = treeOffset + n
        for i in 0..<n {
            let row = mask + i * span
            row.update(repeating: 0, count: span)
            var node = treeOffset + i
            while node >= 0 {
                row[node] = 1
                node = parents?[node] ?? (node - 1)
            }
        }
    }

    /// Masked multi-head attention of the n new tokens over the cache rows 0..<length+n of one layer.
    /// Reads `scratch.q` [n][heads·hd] (after RoPE) and `scratch.mask`; writes `scratch.attention` [n][heads·hd].
    /// Per head h, with g = h / groupSize its key/value head (GQA) and T = length + n:
    ///   scores [n][T] = q_h · K_gᵀ / sqrt(hd);  masked tree entries → −∞;  softmax per row;
    ///   attention_h [n][hd] = scores · V_g.
    private func attention(rows n: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>) {
        let c = model.config
        let s = scratch
        let hd = c.headDimension, qw = c.queryWidth, kvw = c.kvWidth
        let span = treeOffset + n
        let total = length + span
        let scale = 1 / Float(hd).squareRoot()
        for h in 0..<c.headCount {
            let g = h / c.groupSize
            let q = s.q + h * hd  // rows of stride qw
            let k = keys + g * hd  // rows of stride kvw
            let v = values + g * hd  // rows of stride kvw
            let out = s.attention + h * hd  // rows of stride qw
            if n == 1 {
                cblas_sgemv(
                    CblasRowMajor, CblasNoTrans, Int32(total), Int32(hd), scale, k, Int32(kvw), q, 1, 0, s.scores, 1)
            } else {
                cblas_sgemm(
                    CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(total), Int32(hd),
                    scale, q, Int32(qw), k, Int32(kvw), 0, s.scores, Int32(total))
            }
            for i in 0..<n {
                let row = s.scores + i * total
                let allowed = s.mask + i * span
                for j in 0..<span where allowed[j] == 0 { row[length + j] = -.infinity }
                Kernels.softmax(row, count: total)
            }
            if n == 1 {
                cblas_sgemv(
                    CblasRowMajor, CblasTrans, Int32(total), Int32(hd), 1, v, Int32(kvw), s.scores, 1, 0, out, 1)
            } else {
                cblas_sgemm(
                    CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(hd), Int32(total),
                    1, s.scores, Int32(total), v, Int32(kvw), 0, out, Int32(qw))
            }
        }
    }
}
