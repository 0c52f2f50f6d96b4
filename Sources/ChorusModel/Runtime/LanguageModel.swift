import ChorusSampling

/// A causal language model as the cluster uses it (DESIGN.md "Modules"): sessions with a KV cache
/// that can be extended, rolled back, and asked to score a whole tree of drafted tokens at once.
public protocol LanguageModel: Sendable {
    var identity: ModelIdentity { get }
    var vocabularySize: Int { get }
    /// Maximum tokens a session can hold.
    var contextLength: Int { get }
    /// A fresh session with an empty cache.
    func makeSession() throws -> any LanguageModelSession
    /// Scores one tree on each of several distinct sessions of this model, as
    /// ``LanguageModelSession/scoreTree(tokens:parents:)`` on each: [sessions.count][tokens[i].count][vocab].
    /// A model that can batches them into one forward pass with the same logits; the default scores them one
    /// after another.
    func scoreTrees(_ sessions: [any LanguageModelSession], tokens: [[Int]], parents: [[Int]]) throws -> [[[Float]]]
    /// Extends the pending tree of each of several distinct sessions of this model, as
    /// ``LanguageModelSession/extendTree(tokens:parents:)`` on each: [sessions.count][tokens[i].count][vocab]
    /// (a draft worker's sequences for several generation sessions, one step each). A model that can batches
    /// them into one forward pass with the same logits; the default extends them one after another.
    func extendTrees(_ sessions: [any LanguageModelSession], tokens: [[Int]], parents: [[Int]]) throws -> [[[Float]]]
}

extension LanguageModel {
    public func scoreTrees(_ sessions: [any LanguageModelSession], tokens: [[Int]], parents: [[Int]]) throws
        -> [[[Float]]]
    {
        try oneByOne("scoreTrees", sessions, tokens, parents) { try $0.scoreTree(tokens: $1, parents: $2) }
    }

    public func extendTrees(_ sessions: [any LanguageModelSession], tokens: [[Int]], parents: [[Int]]) throws
        -> [[[Float]]]
    {
        try oneByOne("extendTrees", sessions, tokens, parents) { try $0.extendTree(tokens: $1, parents: $2) }
    }

    /// `each` on every session with its tokens and parents, one after another (the lists must be as long as
    /// `sessions`).
    private func oneByOne(
        _ name: String, _ sessions: [any LanguageModelSession], _ tokens: [[Int]], _ parents: [[Int]],
        _ each: (any LanguageModelSession, [Int], [Int]) throws -> [[Float]]
    ) throws -> [[[Float]]] {
        guard sessions.count == tokens.count, sessions.count == parents.count else {
            throw ModelError.invalidRequest(
                "\(name): \(sessions.count) sessions, \(tokens.count) token lists, \(parents.count) parent lists")
        }
        return try sessions.indices.map { try each(sessions[$0], tokens[$0], parents[$0]) }
    }
}

/// One sequence's state: the tokens in its cache, in order. Not thread-safe; one owner at a time.
public protocol LanguageModelSession: AnyObject {
    /// Number of tokens in the cache.
    var length: Int { get }
    /// Appends `tokens` to the cache and returns the logits after the last one: [vocabularySize].
    /// Throws ``ModelError/invalidRequest(_:)`` when a token is out of range or the context is full.
    func append(_ tokens: [Int]) throws -> [Float]
    /// Scores a tree of new tokens hanging off the cached prefix in one batched forward pass.
    /// `parents[i]` is the index of token i's parent among the new tokens, or −1 when its parent is the
    /// cached prefix; parents come before children. Token i attends to the prefix and its own ancestors
    /// (tree attention) and sits at position `length + depth(i)`, depth counted from 0.
    /// Returns logits for every new token: [tokens.count][vocabularySize]. The cache then holds the
    /// prefix plus the tree; call ``keepTreePath(_:)`` to keep one root-to-node path of it.
    func scoreTree(tokens: [Int], parents: [Int]) throws -> [[Float]]
    /// Adds nodes to the tree scored last (which may have been empty) in one batched forward pass and returns
    /// their logits: [tokens.count][vocabularySize]. Nodes are numbered after the tree's existing ones;
    /// `parents[i]` is −1 (the prefix), an existing node, or an earlier new node. A node's logits are those of
    /// decoding its root path after the prefix, as with ``scoreTree(tokens:parents:)``. This is how several
    /// sequences grow as rows of one forward per step (a worker's S drafts, drafting ahead on many branches).
    func extendTree(tokens: [Int], parents: [Int]) throws -> [[Float]]
    /// After ``scoreTree(tokens:parents:)`` (and any ``extendTree(tokens:parents:)``): keeps the tree nodes `path` (indices into that call's
    /// tokens, a chain from a root child downwards; may be empty) as the continuation of the prefix
    /// and discards the rest of the tree.
    func keepTreePath(_ path: [Int]) throws
    /// After ``scoreTree(tokens:parents:)`` (and any ``extendTree(tokens:parents:)``): keeps `path` as the
    /// continuation of the prefix, as ``keepTreePath(_:)`` does, and keeps the descendants of its last node (of
    /// the whole tree when `path` is empty) pending, as a tree after the new prefix: the last node's children
    /// become children of the prefix (parent −1), and the kept nodes are renumbered 0… in their old order. The
    /// rest of the tree is discarded. Returns the kept nodes' old numbers: new node k was node `kept[k]`. Their
    /// logits do not change, and nodes added later score as after ``scoreTree(tokens:parents:)`` of the kept
    /// tree (a worker keeps the drafts it made on a branch when that branch becomes the context).
    func keepTreePathAndBelow(_ path: [Int]) throws -> [Int]
    /// Forgets every token after the first `length` ones.
    func rollback(to length: Int) throws
}

extension LanguageModelSession {
    /// One token drawn from `logits` with `settings` (greedy at temperature 0), and the exact law it
    /// was drawn from.
    public func sample<R: RandomNumberGenerator>(
        from logits: [Float], settings: SamplingSettings, using rng: inout R
    ) throws -> (token: Int, law: TokenDistribution) {
        let law = try TokenDistribution(logits: logits, settings: settings)
        return (law.sample(using: &rng), law)
    }
}
