/// The request checks every ``LanguageModelSession`` in this module shares, so that the transformer and the
/// in-memory table model accept and reject exactly the same calls with the same messages.
///
/// The contract (LanguageModel.swift):
/// * `append` needs at least one token; every token in 0..<vocabularySize; the cache must have room.
/// * `scoreTree`: `parents.count == tokens.count`, `parents[i]` in −1..<i (parents before children); every tree
///   node occupies one cache row until ``LanguageModelSession/keepTreePath(_:)``, so `length + tokens.count`
///   must fit in the context. While a tree is pending, `length` is still the prefix length.
/// * `extendTree` adds nodes to the pending tree (parents among its nodes or the new ones); the same room rule
///   counts every node of the tree.
/// * `keepTreePath(path)` is only valid directly after `scoreTree` or `extendTree`; `path[0]` is a root (parent −1) and each
///   next node is a child of the previous one. `keepTreePathAndBelow(path)` takes the same path and leaves the
///   path end's descendants pending (a tree after the longer prefix). Any other call (`append`, `scoreTree`, `rollback`) discards a
///   pending tree, as if `keepTreePath([])` had been called.
/// * `rollback(to:)` needs 0 ≤ to ≤ length.
enum SessionRules {
    static func checkTokens(_ tokens: [Int], vocabularySize: Int) throws(ModelError) {
        for (i, t) in tokens.enumerated() where t < 0 || t >= vocabularySize {
            throw ModelError.invalidRequest(
                "token \(t) at index \(i) is outside the vocabulary (valid ids: 0..<\(vocabularySize))")
        }
    }

    static func checkAppend(_ tokens: [Int], length: Int, vocabularySize: Int, contextLength: Int) throws(ModelError) {
        guard !tokens.isEmpty else {
            throw ModelError.invalidRequest("append needs at least one token (there are no logits to return otherwise)")
        }
        try checkTokens(tokens, vocabularySize: vocabularySize)
        try checkRoom(adding: tokens.count, to: length, contextLength: contextLength)
    }

    static func checkRoom(adding count: Int, to length: Int, contextLength: Int) throws(ModelError) {
        guard count <= contextLength - length else {
            throw ModelError.invalidRequest(
                "context full: \(count) new tokens after \(length) cached tokens exceed the context length \(contextLength); roll back or start a new session"
            )
        }
    }

    /// Checks a tree request and returns each node's depth (0 for a child of the prefix): [tokens.count].
    static func checkTree(
        tokens: [Int], parents: [Int], length: Int, vocabularySize: Int, contextLength: Int
    ) throws(ModelError) -> [Int] {
        guard parents.count == tokens.count else {
            throw ModelError.invalidRequest("scoreTree: \(tokens.count) tokens but \(parents.count) parents")
        }
        try checkTokens(tokens, vocabularySize: vocabularySize)
        try checkRoom(adding: tokens.count, to: length, contextLength: contextLength)
        var depths = [Int](repeating: 0, count: tokens.count)
        for (i, p) in parents.enumerated() {
            guard p >= -1, p < i else {
                throw ModelError.invalidRequest(
                    "scoreTree: parent of node \(i) is \(p); it must be −1 (the cached prefix) or an earlier node (0..<\(i))"
                )
            }
            depths[i] = p < 0 ? 0 : depths[p] + 1
        }
        return depths
    }

    /// Checks a tree extension and returns the new nodes' depths: a tree must be pending (`scoreTree`, possibly
    /// empty, started it); `parents[i]` is −1 (the prefix), a pending node, or an earlier new node, numbered
    /// after the pending ones (−1..<pending.count + i).
    static func checkExtension(
        tokens: [Int], parents: [Int], pending: [Int]?, pendingDepths: [Int], length: Int, vocabularySize: Int,
        contextLength: Int
    ) throws(ModelError) -> [Int] {
        guard let pending else {
            throw ModelError.invalidRequest("extendTree: no scored tree is pending (call scoreTree first, even empty)")
        }
        guard parents.count == tokens.count else {
            throw ModelError.invalidRequest("extendTree: \(tokens.count) tokens but \(parents.count) parents")
        }
        try checkTokens(tokens, vocabularySize: vocabularySize)
        try checkRoom(adding: pending.count + tokens.count, to: length, contextLength: contextLength)
        var depths = [Int](repeating: 0, count: tokens.count)
        for (i, p) in parents.enumerated() {
            let limit = pending.count + i
            guard p >= -1, p < limit else {
                throw ModelError.invalidRequest(
                    "extendTree: parent of new node \(i) is \(p); it must be −1 (the cached prefix) or an earlier node (0..<\(limit))"
                )
            }
            depths[i] = p < 0 ? 0 : (p < pending.count ? pendingDepths[p] : depths[p - pending.count]) + 1
        }
        return depths
    }

    /// Checks that `path` is a chain from a root child of the prefix downwards in the tree `parents`.
    static func checkPath(_ path: [Int], parents: [Int]?) throws(ModelError) {
        guard let parents else {
            throw ModelError.invalidRequest("keepTreePath: no scored tree is pending (call scoreTree first)")
        }
        var previous = -1
        for (k, node) in path.enumerated() {
            guard node >= 0, node < parents.count else {
                throw ModelError.invalidRequest(
                    "keepTreePath: path[\(k)] = \(node) is not a node of the scored tree (0..<\(parents.count))")
            }
            guard parents[node] == previous else {
                throw ModelError.invalidRequest(
                    "keepTreePath: node \(node) (path[\(k)]) has parent \(parents[node]), expected \(previous); a path must be a chain from a root child downwards"
                )
            }
            previous = node
        }
    }

    /// The pending tree left by ``LanguageModelSession/keepTreePathAndBelow(_:)`` after checking `path`
    /// (``checkPath(_:parents:)``): the descendants of the path's last node (every node for an empty path), in
    /// their old order (`kept`, old node numbers: increasing, each after every path node), and their parents
    /// renumbered among them (−1 for the last path node's children): [kept.count] each.
    static func subtree(below path: [Int], parents: [Int]?) throws(ModelError) -> (kept: [Int], parents: [Int]) {
        try checkPath(path, parents: parents)
        let parents = parents ?? []
        let end = path.last ?? -1
        // New number of each old node kept (nil: discarded); parents come before children, so one pass does.
        var renumbered = [Int?](repeating: nil, count: parents.count)
        var kept: [Int] = []
        var keptParents: [Int] = []
        for (node, parent) in parents.enumerated() {
            if parent == end {
                keptParents.append(-1)
            } else if parent >= 0, let p = renumbered[parent] {
                keptParents.append(p)
            } else {
                continue
            }
            renumbered[node] = kept.count
            kept.append(node)
        }
        return (kept, keptParents)
    }

    static func checkRollback(to target: Int, length: Int) throws(ModelError) {
        guard target >= 0, target <= length else {
            throw ModelError.invalidRequest("rollback to \(target) is outside 0...\(length) (the session's length)")
        }
    }
}
