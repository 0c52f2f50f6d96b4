import ChorusSampling

/// A tiny in-memory language model for tests: the logits after a token depend only on that token,
/// `logits = table[token]` (a first-order Markov chain over the vocabulary).
///
/// Its sessions follow exactly the contract of ``TransformerSession`` — the same checks (``SessionRules``),
/// the same `scoreTree` / `keepTreePath` / `rollback` semantics and error cases — so code written against
/// ``LanguageModel`` (draft workers, the coordinator's verification) can be tested without model files.
public final class TableLanguageModel: LanguageModel {
    public let identity: ModelIdentity
    public let vocabularySize: Int
    public let contextLength: Int
    /// [vocabularySize][vocabularySize]: row t holds the logits after token t.
    public let table: [[Float]]

    /// `table` must be square and non-empty; `contextLength` ≥ 1.
    public init(table: [[Float]], contextLength: Int, name: String = "table") throws(ModelError) {
        guard !table.isEmpty, table.allSatisfy({ $0.count == table.count }) else {
            throw ModelError.invalidRequest(
                "TableLanguageModel needs a square [vocabulary][vocabulary] table; got \(table.count) rows of lengths \(Set(table.map(\.count)).sorted())"
            )
        }
        guard contextLength >= 1 else {
            throw ModelError.invalidRequest("TableLanguageModel context length must be ≥ 1, got \(contextLength)")
        }
        self.table = table
        vocabularySize = table.count
        self.contextLength = contextLength
        // Identity: SHA-256 of the table's float bits; the vocabulary is just the ids 0..<n.
        var file = SHA256()
        for row in table { row.withUnsafeBytes { file.update($0) } }
        identity = ModelIdentity(
            name: name, fileHash: file.finalizeHex(),
            vocabularyHash: SHA256.hex(of: Array("table-vocabulary-\(table.count)".utf8)),
            vocabularySize: table.count)
    }

    public func makeSession() throws -> any LanguageModelSession {
        TableSession(model: self)
    }
}

/// A session of ``TableLanguageModel``: the cache is just the token list.
public final class TableSession: LanguageModelSession {
    public let model: TableLanguageModel
    /// The sequence, then (while a tree is pending) the tree's tokens in request order: mirrors the
    /// transformer's cache rows.
    private var rows: [Int] = []
    public private(set) var length = 0
    private var pendingTree: [Int]?
    private var pendingDepths: [Int] = []

    init(model: TableLanguageModel) {
        self.model = model
        rows.reserveCapacity(model.contextLength)
    }

    /// The tokens of the sequence: [length].
    public var tokens: [Int] { Array(rows[0..<length]) }

    public func append(_ tokens: [Int]) throws(ModelError) -> [Float] {
        try SessionRules.checkAppend(
            tokens, length: length, vocabularySize: model.vocabularySize, contextLength: model.contextLength)
        pendingTree = nil
        rows.removeSubrange(length...)
        rows += tokens
        length = rows.count
        return model.table[rows[length - 1]]
    }

    public func scoreTree(tokens: [Int], parents: [Int]) throws(ModelError) -> [[Float]] {
        pendingDepths = try SessionRules.checkTree(
            tokens: tokens, parents: parents, length: length, vocabularySize: model.vocabularySize,
            contextLength: model.contextLength)
        rows.removeSubrange(length...)
        rows += tokens
        pendingTree = parents
        return tokens.map { model.table[$0] }
    }

    public func extendTree(tokens: [Int], parents: [Int]) throws(ModelError) -> [[Float]] {
        _ = try SessionRules.checkExtension(
            tokens: tokens, parents: parents, pending: pendingTree, pendingDepths: pendingDepths, length: length,
            vocabularySize: model.vocabularySize, contextLength: model.contextLength)
        pendingTree = (pendingTree ?? []) + parents
        pendingDepths += parents.map { _ in 0 }  // depths do not change a table model's logits; kept for the count
        rows += tokens
        return tokens.map { model.table[$0] }
    }

    public func keepTreePath(_ path: [Int]) throws(ModelError) {
        try SessionRules.checkPath(path, parents: pendingTree)
        let kept = path.map { rows[length + $0] }
        rows.removeSubrange(length...)
        rows += kept
        length = rows.count
        pendingTree = nil
    }

    public func keepTreePathAndBelow(_ path: [Int]) throws(ModelError) -> [Int] {
        let (kept, parents) = try SessionRules.subtree(below: path, parents: pendingTree)
        let moved = (path + kept).map { rows[length + $0] }
        rows.removeSubrange(length...)
        rows += moved
        length += path.count
        pendingTree = parents
        pendingDepths = parents.map { _ in 0 }
        return kept
    }

    public func rollback(to target: Int) throws(ModelError) {
        try SessionRules.checkRollback(to: target, length: length)
        rows.removeSubrange(target...)
        length = target
        pendingTree = nil
    }
}
