/// One drafted continuation of the accepted prefix, with the exact law each token was drawn from.
///
/// The draft/verify contract (DESIGN.md, STYLE.md rule 3): `distributions[t]` is the distribution
/// the draft model *actually sampled* `tokens[t]` from (after temperature, top-k, top-p and any
/// quantisation), given the accepted prefix followed by `tokens[0..<t]`. Verification is exact
/// only if this is true.
public struct DraftSequence: Sendable, Equatable {
    /// tokens: [L], token ids in `0..<vocabularySize`; `tokens[0]` continues the accepted prefix.
    public var tokens: [Int]
    /// distributions: [L], `distributions[t]` is the law `tokens[t]` was drawn from.
    public var distributions: [TokenDistribution]
    /// Which draft law (draft model + sampling settings) produced this sequence, or nil if unknown.
    ///
    /// A promise by the caller: two drafts with the same non-nil `lawGroup` that agree on every
    /// token before position t drew their token at position t from the *same* distribution. The
    /// tree checks that promise (within ``DraftTree/lawTolerance``) and then hands the group's
    /// distributions to the scheme as one identical law, so schemes that need i.i.d. drafts (SpecTr)
    /// accept them even when two workers computed the law with slightly different rounding.
    public var lawGroup: Int?

    public init(tokens: [Int], distributions: [TokenDistribution], lawGroup: Int? = nil) {
        self.tokens = tokens
        self.distributions = distributions
        self.lawGroup = lawGroup
    }
}

/// K draft sequences of a common length L, continuing one accepted prefix, merged into a prefix
/// tree (SAMPLING.md §3: "shared prefixes once, tree attention"; SpecInfer, Miao et al. 2305.09781,
/// token trees).
///
/// Shapes and invariants:
/// * `nodes[0]` is the root: the accepted prefix, no token, depth 0, every draft passes through it.
/// * Nodes are in breadth-first order: depth is non-decreasing with the index, and every node's
///   parent has a smaller index (so a single forward pass can fill them in order). Children of a
///   node appear in the order their first draft appears in `drafts`.
/// * A node at depth d ≥ 1 stands for one distinct token sequence of length d; `Node.drafts` lists,
///   ascending, every draft whose first d tokens are that sequence. Multiplicity is kept: the three
///   drafts `[1,2]`, `[1,2]`, `[1,0]` give four nodes — root (3 drafts), `1` (3), `1,2` (2) and
///   `1,0` (1) — and the scheme at node `1` sees the tokens 2, 2, 0, not 2, 0.
/// * The model input for scoring is `nodes[1...]`'s tokens, each attending to its ancestors
///   (``attentionMask()``); the target law at node v is the law of the position *after* v.
public struct DraftTree: Sendable {
    /// One node of the tree.
    public struct Node: Sendable, Equatable {
        /// The token at this node; nil only for the root.
        public let token: Int?
        /// Index of the parent node; nil only for the root.
        public let parent: Int?
        /// 1-based position of `token` after the accepted prefix; 0 for the root.
        public let depth: Int
        /// Child node indices, in order of first appearance among the drafts.
        public internal(set) var children: [Int]
        /// Draft indices (into ``DraftTree/drafts``) passing through this node, ascending.
        /// Its count is the node's multiplicity.
        public let drafts: [Int]
    }

    /// Absolute tolerance, per token, on the difference between the distributions of two drafts in
    /// the same `lawGroup` at the same node.
    public static let lawTolerance = 1e-6

    /// nodes: [nodeCount], breadth-first, `nodes[0]` the root.
    public let nodes: [Node]
    /// drafts: [K], as given.
    public let drafts: [DraftSequence]
    /// L: the common length of every draft.
    public let length: Int
    public let vocabularySize: Int
    /// draftNodes: [K][L + 1], `draftNodes[k][d]` is the node draft k occupies at depth d
    /// (`draftNodes[k][0] == 0`).
    public let draftNodes: [[Int]]
    /// laws: [K][L], the distribution handed to schemes for draft k at position t + 1: the draft's own
    /// `distributions[t]`, except that drafts of one `lawGroup` sharing a node all get the
    /// distribution of the group's first draft there.
    let laws: [[TokenDistribution]]

    public var draftCount: Int { drafts.count }
    public var nodeCount: Int { nodes.count }

    /// Builds the tree, validating the input.
    ///
    /// Throws ``SamplingError/invalidDraftTree(_:)`` when there are no drafts, when drafts differ in
    /// length or are empty, when a draft has a different number of tokens and distributions, when a
    /// token lies outside `0..<vocabularySize` or a distribution has another vocabulary size, when a
    /// drafted token has probability 0 under the distribution it was supposedly drawn from, or when
    /// two drafts of one `lawGroup` at the same node have different distributions.
    public init(drafts: [DraftSequence], vocabularySize: Int) throws {
        guard vocabularySize > 0 else {
            throw SamplingError.invalidDraftTree("vocabulary size must be positive, got \(vocabularySize)")
        }
        guard let first = drafts.first else {
            throw SamplingError.invalidDraftTree("no drafts: a tree needs at least one draft sequence")
        }
        let length = first.tokens.count
        guard length > 0 else {
            throw SamplingError.invalidDraftTree("draft 0 is empty: every draft needs at least one token")
        }
        for (k, draft) in drafts.enumerated() {
            guard draft.tokens.count == length else {
                throw SamplingError.invalidDraftTree(
                    "draft \(k) has \(draft.tokens.count) tokens but draft 0 has \(length); all drafts need one length")
            }
            guard draft.distributions.count == length else {
                throw SamplingError.invalidDraftTree(
                    "draft \(k) has \(length) tokens but \(draft.distributions.count) distributions; need one per token"
                )
            }
            for (t, token) in draft.tokens.enumerated() {
                guard token >= 0, token < vocabularySize else {
                    throw SamplingError.invalidDraftTree(
                        "draft \(k), position \(t + 1): token \(token) outside the vocabulary 0..<\(vocabularySize)")
                }
                let law = draft.distributions[t]
                guard law.vocabularySize == vocabularySize else {
                    throw SamplingError.invalidDraftTree(
                        "draft \(k), position \(t + 1): distribution over \(law.vocabularySize) tokens, "
                            + "expected \(vocabularySize)")
                }
                guard law[token] > 0 else {
                    throw SamplingError.invalidDraftTree(
                        "draft \(k), position \(t + 1): token \(token) has probability 0 under the distribution "
                            + "it was drawn from; send the distribution actually sampled from")
                }
            }
        }

        // Breadth-first construction: the children of each node at depth d − 1 group its drafts by
        // their token at position d, in order of first appearance.
        var nodes = [Node(token: nil, parent: nil, depth: 0, children: [], drafts: Array(drafts.indices))]
        var draftNodes = [[Int]](repeating: [0], count: drafts.count)
        var level = [0]
        for depth in 1...length {
            var nextLevel: [Int] = []
            for parent in level {
                var childTokens: [Int] = []
                var childDrafts: [[Int]] = []
                for k in nodes[parent].drafts {
                    let token = drafts[k].tokens[depth - 1]
                    if let slot = childTokens.firstIndex(of: token) {
                        childDrafts[slot].append(k)
                    } else {
                        childTokens.append(token)
                        childDrafts.append([k])
                    }
                }
                for (token, members) in zip(childTokens, childDrafts) {
                    let index = nodes.count
                    nodes.append(Node(token: token, parent: parent, depth: depth, children: [], drafts: members))
                    nodes[parent].children.append(index)
                    for k in members { draftNodes[k].append(index) }
                    nextLevel.append(index)
                }
            }
            level = nextLevel
        }

        // Canonical laws: within a node, drafts of one law group share the first member's law.
        var laws = drafts.map(\.distributions)
        for node in nodes where node.depth < length {
            var representative: [Int: Int] = [:]
            for k in node.drafts {
                guard let group = drafts[k].lawGroup else { continue }
                guard let leader = representative[group] else {
                    representative[group] = k
                    continue
                }
                let a = drafts[leader].distributions[node.depth]
                let b = drafts[k].distributions[node.depth]
                guard a.agrees(with: b, within: DraftTree.lawTolerance) else {
                    throw SamplingError.invalidDraftTree(
                        "drafts \(leader) and \(k) share law group \(group) and the same prefix, but their "
                            + "distributions at position \(node.depth + 1) differ; give them different law groups")
                }
                laws[k][node.depth] = a
            }
        }

        self.nodes = nodes
        self.drafts = drafts
        self.length = length
        self.vocabularySize = vocabularySize
        self.draftNodes = draftNodes
        self.laws = laws
    }

    /// The distribution a scheme should see for `draft` at 1-based `position`: the draft's own, or its
    /// law group's shared one (see ``DraftSequence/lawGroup``).
    public func law(ofDraft draft: Int, atPosition position: Int) -> TokenDistribution {
        laws[draft][position - 1]
    }

    /// Strict ancestors of `node`, root first (empty for the root).
    public func ancestors(of node: Int) -> [Int] {
        var result: [Int] = []
        var current = nodes[node].parent
        while let p = current {
            result.append(p)
            current = nodes[p].parent
        }
        return result.reversed()
    }

    /// The tokens from the root to `node` (exclusive of the root, inclusive of `node`): [depth].
    public func tokens(to node: Int) -> [Int] {
        (ancestors(of: node) + [node]).compactMap { nodes[$0].token }
    }

    /// The child of `node` carrying `token`, if any.
    public func child(of node: Int, token: Int) -> Int? {
        nodes[node].children.first { nodes[$0].token == token }
    }

    /// parentIndices: [nodeCount], the parent of each node, −1 for the root (the layout tree-attention
    /// kernels take).
    public var parentIndices: [Int] { nodes.map { $0.parent ?? -1 } }

    /// Tree-attention mask: [nodeCount][nodeCount], `mask[i][j]` is true iff node j is node i or one
    /// of its ancestors. The root column stands for the whole accepted prefix, which every node sees.
    /// Because nodes are breadth-first, the mask is lower-triangular.
    public func attentionMask() -> [[Bool]] {
        var mask = [[Bool]](repeating: [Bool](repeating: false, count: nodes.count), count: nodes.count)
        for i in nodes.indices {
            mask[i][i] = true
            if let p = nodes[i].parent {
                // The parent's row is already complete (parents come first).
                for j in 0...p where mask[p][j] { mask[i][j] = true }
            }
        }
        return mask
    }
}
