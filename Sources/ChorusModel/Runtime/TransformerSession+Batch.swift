import CChorusEngine

/// Whose rows a forward pass of ``TransformerSession/fastBlocks(rows:of:)`` carries.
enum BatchRows {
    /// The session's own new tokens (a chain, a tree or an extension of its pending tree).
    case session
    /// Row i is one new token of session i (``TransformerModel/appendBatch(_:tokens:)``).
    case tokens([TransformerSession])
    /// Several sessions' trees, one after another (``TransformerModel/scoreTrees(_:tokens:parents:)``).
    case trees([TreeSegment])
}

/// One session's tree within a batch of trees: request `request` of the call, rows start..<start+count of the
/// forward pass, after the `treeOffset` nodes its pending tree already holds (0 for a new tree); its mask of
/// count × (treeOffset + count) entries at `maskStart` in the scratch mask.
struct TreeSegment {
    let request: Int
    let session: TransformerSession
    let start: Int
    let count: Int
    let treeOffset: Int
    let maskStart: Int
}

extension TransformerModel {
    /// Appends one token to each of several sessions of this model in one forward pass: their rows share every
    /// weight read (a worker's S draft sequences, several clients' sessions). Returns each session's logits,
    /// [sessions.count][vocab]. Each session's logits and cache afterwards are bit-identical to
    /// `session.append([token])` on that session alone (fast precision; in reference precision the sessions
    /// are appended one after another, with the same result as doing so by hand).
    ///
    /// Throws ``ModelError/invalidRequest(_:)`` when a session belongs to another model, appears twice, or
    /// cannot take the token (out of vocabulary, context full); then no session has changed.
    public func appendBatch(_ sessions: [any LanguageModelSession], tokens: [Int]) throws(ModelError) -> [[Float]] {
        guard sessions.count == tokens.count else {
            throw ModelError.invalidRequest("appendBatch: \(sessions.count) sessions but \(tokens.count) tokens")
        }
        var batch: [TransformerSession] = []
        var seen: Set<ObjectIdentifier> = []
        for (session, token) in zip(sessions, tokens) {
            guard let t = session as? TransformerSession, t.model === self else {
                throw ModelError.invalidRequest("appendBatch: a session of another model")
            }
            guard seen.insert(ObjectIdentifier(t)).inserted else {
                throw ModelError.invalidRequest("appendBatch: the same session twice")
            }
            try SessionRules.checkAppend(
                [token], length: t.length, vocabularySize: config.vocabularySize, contextLength: config.contextLength)
            batch.append(t)
        }
        guard let first = batch.first else { return [] }
        if precision == .reference {
            var out: [[Float]] = []
            for (session, token) in zip(batch, tokens) { out.append(try session.append([token])) }
            return out
        }
        let n = batch.count, d = config.embeddingLength, v = config.vocabularySize
        let s = first.scratch
        s.reserve(rows: n)
        for i in 0..<n {
            Dequantize.row(
                tokenEmbedding.type, from: tokenEmbedding.data + tokens[i] * tokenEmbedding.rowBytes, count: d,
                into: s.x + i * d)
            s.positions[i] = batch[i].length
        }
        first.fastBlocks(rows: n, of: .tokens(batch))
        Kernels.rmsNorm(s.xb, s.x, outputNorm, rows: n, dim: d, epsilon: config.rmsEpsilon)
        first.project(s.logits, s.xb, output, rows: n, quantize: true)
        for session in batch {
            session.length += 1
            session.pendingTree = nil
        }
        return (0..<n).map { Array(UnsafeBufferPointer(start: s.logits + $0 * v, count: v)) }
    }

    /// Scores one tree on each of several sessions of this model in ONE forward pass: every weight block is read
    /// once for all the trees' rows (continuous batching of clients on the coordinator). Session i's tree is
    /// `tokens[i]` with `parents[i]`, as in ``TransformerSession/scoreTree(tokens:parents:)``; its rows attend
    /// its own cache and its own ancestors only. Returns each session's tree logits,
    /// [sessions.count][tokens[i].count][vocab], bit-identical to `scoreTree` on that session alone (fast
    /// precision: a row's arithmetic does not depend on the other rows of the call; in reference precision the
    /// trees are scored one after another). Each session then has its tree pending, as after `scoreTree`.
    ///
    /// Throws ``ModelError/invalidRequest(_:)`` when a session belongs to another model or appears twice, or a
    /// tree is not valid for its session (``TransformerSession/scoreTree(tokens:parents:)``); then no session
    /// has changed.
    public func scoreTrees(_ sessions: [any LanguageModelSession], tokens: [[Int]], parents: [[Int]])
        throws(ModelError) -> [[[Float]]]
    {
        let (batch, depths) = try checkedTrees("scoreTrees", sessions, tokens: tokens, parents: parents) {
            (t, i) throws(ModelError) -> [Int] in
            try SessionRules.checkTree(
                tokens: tokens[i], parents: parents[i], length: t.length, vocabularySize: config.vocabularySize,
                contextLength: config.contextLength)
        }
        if precision == .reference || batch.count == 1 {
            var out: [[[Float]]] = []
            for (i, session) in batch.enumerated() {
                out.append(try session.scoreTree(tokens: tokens[i], parents: parents[i]))
            }
            return out
        }
        return forwardTrees(batch, tokens: tokens, parents: parents, depths: depths, extending: false)
    }

    /// Adds nodes to the pending tree of each of several sessions of this model in ONE forward pass, as
    /// ``TransformerSession/extendTree(tokens:parents:)`` on each: session i's new nodes are `tokens[i]` with
    /// `parents[i]` (−1, a pending node, or an earlier new node); its rows attend its own cache, its pending
    /// tree's rows and its own ancestors only. This is how a draft worker grows the draft sequences of several
    /// generation sessions as rows of one forward per step. Returns each session's new nodes' logits,
    /// [sessions.count][tokens[i].count][vocab], bit-identical to `extendTree` on that session alone (fast
    /// precision: a row's arithmetic does not depend on the other rows of the call; in reference precision the
    /// sessions are extended one after another).
    ///
    /// Throws ``ModelError/invalidRequest(_:)`` when a session belongs to another model or appears twice, has no
    /// pending tree, or an extension is not valid for its session; then no session has changed.
    public func extendTrees(_ sessions: [any LanguageModelSession], tokens: [[Int]], parents: [[Int]])
        throws(ModelError) -> [[[Float]]]
    {
        let (batch, depths) = try checkedTrees("extendTrees", sessions, tokens: tokens, parents: parents) {
            (t, i) throws(ModelError) -> [Int] in
            try SessionRules.checkExtension(
                tokens: tokens[i], parents: parents[i], pending: t.pendingTree, pendingDepths: t.pendingDepths,
                length: t.length, vocabularySize: config.vocabularySize, contextLength: config.contextLength)
        }
        if precision == .reference || batch.count == 1 {
            var out: [[[Float]]] = []
            for (i, session) in batch.enumerated() {
                out.append(try session.extendTree(tokens: tokens[i], parents: parents[i]))
            }
            return out
        }
        return forwardTrees(batch, tokens: tokens, parents: parents, depths: depths, extending: true)
    }

    /// The sessions of a batch of trees, checked (this model's, each once, `check` passes on each) before any
    /// changes, and each tree's new nodes' depths from `check`: [sessions.count][tokens[i].count].
    private func checkedTrees(
        _ call: String, _ sessions: [any LanguageModelSession], tokens: [[Int]], parents: [[Int]],
        check: (TransformerSession, Int) throws(ModelError) -> [Int]
    ) throws(ModelError) -> (batch: [TransformerSession], depths: [[Int]]) {
        guard sessions.count == tokens.count, sessions.count == parents.count else {
            throw ModelError.invalidRequest(
                "\(call): \(sessions.count) sessions, \(tokens.count) token lists, \(parents.count) parent lists")
        }
        var batch: [TransformerSession] = []
        var depths: [[Int]] = []
        var seen: Set<ObjectIdentifier> = []
        for (i, session) in sessions.enumerated() {
            guard let t = session as? TransformerSession, t.model === self else {
                throw ModelError.invalidRequest("\(call): a session of another model")
            }
            guard seen.insert(ObjectIdentifier(t)).inserted else {
                throw ModelError.invalidRequest("\(call): the same session twice")
            }
            depths.append(try check(t, i))
            batch.append(t)
        }
        return (batch, depths)
    }

    /// One forward pass over several sessions' (checked) trees, one tree after another: new trees
    /// (`extending` false) or extensions of the pending ones. Leaves each session with its tree pending and
    /// returns each one's logits, [batch.count][tokens[i].count][vocab].
    private func forwardTrees(
        _ batch: [TransformerSession], tokens: [[Int]], parents: [[Int]], depths: [[Int]], extending: Bool
    ) -> [[[Float]]] {
        // Rows of every non-empty tree, one tree after another; each tree's mask after the previous one's. A
        // session's whole tree (pending nodes, then the new ones) is what its mask and `pendingTree` cover.
        var segments: [TreeSegment] = []
        var whole: [[Int]] = []
        var rows = 0, maskEntries = 0
        for (i, session) in batch.enumerated() {
            let earlier = extending ? session.pendingTree ?? [] : []
            whole.append(earlier + parents[i])
            guard !tokens[i].isEmpty else { continue }
            let count = tokens[i].count
            segments.append(
                TreeSegment(
                    request: i, session: session, start: rows, count: count, treeOffset: earlier.count,
                    maskStart: maskEntries))
            rows += count
            maskEntries += count * (earlier.count + count)
        }
        for (i, session) in batch.enumerated() {
            session.pendingTree = whole[i]
            session.pendingDepths = (extending ? session.pendingDepths : []) + depths[i]
        }
        guard let first = segments.first?.session else { return batch.map { _ in [] } }
        let d = config.embeddingLength, v = config.vocabularySize
        let s = first.scratch
        s.reserve(rows: rows)
        s.reserveMask(rows: 1, span: maskEntries)
        for g in segments {
            let i = g.request
            for (k, token) in tokens[i].enumerated() {
                Dequantize.row(
                    tokenEmbedding.type, from: tokenEmbedding.data + token * tokenEmbedding.rowBytes, count: d,
                    into: s.x + (g.start + k) * d)
                s.positions[g.start + k] = g.session.length + depths[i][k]
            }
            TransformerSession.buildMask(
                s.mask + g.maskStart, count: g.count, treeOffset: g.treeOffset, parents: whole[i])
        }
        first.fastBlocks(rows: rows, of: .trees(segments))
        Kernels.rmsNorm(s.xb, s.x, outputNorm, rows: rows, dim: d, epsilon: config.rmsEpsilon)
        first.project(s.logits, s.xb, output, rows: rows, quantize: true)
        var out: [[[Float]]] = Array(repeating: [], count: batch.count)
        for g in segments {
            out[g.request] = (g.start..<(g.start + g.count)).map {
                Array(UnsafeBufferPointer(start: s.logits + $0 * v, count: v))
            }
        }
        return out
    }
}
