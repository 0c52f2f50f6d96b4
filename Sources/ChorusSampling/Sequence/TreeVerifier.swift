/// What happened at one position of a verification walk.
public struct PositionStatistics: Sendable, Equatable {
    /// 1-based position after the accepted prefix (the depth of the token decided here).
    public var position: Int
    /// Drafts alive here (consistent with every token accepted before), counted with multiplicity.
    public var aliveDrafts: Int
    /// Distinct tokens among the alive drafts at this position.
    public var distinctTokens: Int
    /// The scheme's own verdict (``SelectionOutcome/accepted``): the output is a drafted token that
    /// passed its test. False for a recovered token, even one that happens to equal a drafted token.
    public var accepted: Bool
    /// Alive drafts whose token equals the output: the drafts alive at the next position
    /// (0 ends the walk with a correction token).
    public var matchedDrafts: Int

    public init(position: Int, aliveDrafts: Int, distinctTokens: Int, accepted: Bool, matchedDrafts: Int) {
        self.position = position
        self.aliveDrafts = aliveDrafts
        self.distinctTokens = distinctTokens
        self.accepted = accepted
        self.matchedDrafts = matchedDrafts
    }
}

/// The result of verifying one draft tree: the tokens the round produces.
///
/// Vocabulary (as vLLM's rejection sampler): tokens on the tree are *accepted*; the last token is
/// either a *correction* (recovered) token, when no draft agrees with it, or a *bonus* token sampled
/// from the target after all L drafted positions survived. So `tokens.count == acceptedCount + 1`,
/// between 1 and L + 1: the round's block efficiency.
///
/// Every random choice is in `tokens` and `positions`; everything else (`acceptedCount`, `bonus`,
/// `acceptedNodes`, `aliveDrafts`, `matchedDrafts`) is a function of `tokens` and the tree.
public struct VerificationOutcome: Sendable, Equatable {
    /// tokens: [acceptedCount + 1], the accepted drafted tokens then the correction or bonus token.
    /// Its law is exactly the target's law of the next `tokens.count` tokens (SAMPLING.md §3).
    public var tokens: [Int]
    /// Tokens taken from the tree: outputs that equal at least one alive draft's token. This counts
    /// outputs the scheme recovered but that coincide with a draft (``PositionStatistics/accepted``
    /// is false there); it is what block efficiency needs and, unlike the scheme's verdicts, a
    /// function of `tokens`.
    public var acceptedCount: Int
    /// True when all L positions were accepted and the last token is the bonus token.
    public var bonus: Bool
    /// acceptedNodes: [acceptedCount], the tree node of each accepted token (the path whose KV
    /// entries the target keeps).
    public var acceptedNodes: [Int]
    /// Drafts consistent with all of `tokens` except the last, ascending (all drafts when
    /// `acceptedCount` is 0; the drafts that reached the leaf when `bonus`).
    public var aliveDrafts: [Int]
    /// positions: [positions walked], one entry per drafted position where a scheme ran
    /// (`acceptedCount + 1` entries, or L when `bonus`).
    public var positions: [PositionStatistics]

    public init(
        tokens: [Int], acceptedCount: Int, bonus: Bool, acceptedNodes: [Int], aliveDrafts: [Int],
        positions: [PositionStatistics]
    ) {
        self.tokens = tokens
        self.acceptedCount = acceptedCount
        self.bonus = bonus
        self.acceptedNodes = acceptedNodes
        self.aliveDrafts = aliveDrafts
        self.positions = positions
    }

    /// Drafted positions where the scheme's verdict was "accepted".
    public var schemeAcceptances: Int { positions.count(where: \.accepted) }
}

/// The state of a verification walk between two draws. Only ``TreeVerifier/start(_:)`` and
/// ``TreeVerifier/advance(_:in:output:accepted:)`` create states, so a state is always reachable.
public struct VerificationState: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        /// A scheme must choose the token at position `node.depth + 1` among the alive drafts.
        case selecting
        /// All L positions were accepted; a bonus token is drawn from the target law at `node`.
        case bonus
        /// The walk is over; see ``VerificationState/outcome``.
        case finished
    }

    public internal(set) var phase: Phase
    /// The tree node of the last accepted token (the root before any).
    public internal(set) var node: Int
    /// Drafts consistent with every token accepted so far, ascending. Equal to `nodes[node].drafts`.
    public internal(set) var alive: [Int]
    public internal(set) var tokens: [Int]
    public internal(set) var acceptedNodes: [Int]
    public internal(set) var positions: [PositionStatistics]

    /// The outcome, once `phase == .finished`.
    public var outcome: VerificationOutcome? {
        guard phase == .finished else { return nil }
        return VerificationOutcome(
            tokens: tokens, acceptedCount: acceptedNodes.count, bonus: positions.count < tokens.count,
            acceptedNodes: acceptedNodes, aliveDrafts: alive, positions: positions)
    }
}

/// The next random draw a walk needs.
public enum VerificationDraw: Sendable {
    /// Run the token-level scheme: `selection.select(drafted, …)` or, exactly,
    /// `selection.law(given: drafted)`. `drafted[i]` is the token of draft `drafts[i]` at this position.
    case select(selection: any PreparedSelection, drafted: [Int], drafts: [Int])
    /// Draw the bonus token from the target law at the leaf reached.
    case bonus(TokenDistribution)
    /// Nothing left to draw; the state holds the outcome.
    case finished(VerificationOutcome)
}

/// Sequence-level multi-draft verification over a draft tree (SAMPLING.md §3; the multi-path
/// procedure of SpecInfer, Miao et al. 2305.09781, and SpecTr, Sun et al. 2310.15141, with any
/// token-level scheme of Khisti et al. 2410.18234).
///
/// Position by position, with `alive` the drafts that agree with every token accepted so far:
/// 1. the alive drafts' tokens at this position, with multiplicity, go to the scheme, prepared with
///    the target law at the current node and each alive draft's law at this position;
/// 2. the output token is appended; only the drafts whose token equals it stay alive;
/// 3. no draft alive: stop (correction token). All L positions accepted: append a bonus token
///    drawn from the target law at the leaf.
///
/// Exactness: an alive draft's token at position t was drawn from its draft law given exactly the
/// accepted prefix, independently of everything the earlier selections used, so each step is a
/// token-level selection with independent drafts and outputs the target's conditional law.
///
/// The walk is factored into ``start(_:)``, ``nextDraw(_:in:targetDistributions:)`` and
/// ``advance(_:in:output:accepted:)``; ``verify(tree:targetDistributions:using:)`` samples through
/// them and ``exactOutcomeLaw(tree:targetDistributions:)`` branches over the same functions with
/// each scheme's exact conditional law, so tests of the latter test the former's logic.
public struct TreeVerifier: Sendable {
    public let scheme: any SelectionScheme

    public init(scheme: any SelectionScheme) {
        self.scheme = scheme
    }

    /// Verifies `tree` against the target.
    ///
    /// - Parameters:
    ///   - targetDistributions: [tree.nodeCount], `targetDistributions[v]` is the target's law of the
    ///     token after node v's path (the root's: the first new position).
    ///   - rng: consumed only by the schemes' `select` (once per position walked) and, after L accepted
    ///     positions, by one `TokenDistribution.sample` for the bonus token.
    /// - Throws: ``SamplingError/invalidDraftTree(_:)`` for a wrong number of target distributions or a
    ///   vocabulary mismatch; any error of `scheme.prepare` (e.g. a scheme that cannot handle
    ///   non-identical drafts); ``SamplingError/unsupported(scheme:reason:)`` when a scheme's
    ///   `matchedDrafts` disagrees with the tokens it was given (a scheme bug).
    public func verify<R: RandomNumberGenerator>(
        tree: DraftTree, targetDistributions: [TokenDistribution], using rng: inout R
    ) throws -> VerificationOutcome {
        try checkTargets(tree: tree, targetDistributions: targetDistributions)
        return try verify(tree: tree, targetLaw: { targetDistributions[$0] }, using: &rng)
    }

    /// Verifies `tree` against target laws built on demand: `targetLaw(v)` is called only for the nodes
    /// the walk reaches (at most L + 1 of them, each at most once), not for every node of the tree — at
    /// n = 151,936 a target law costs a softmax over the vocabulary, so the coordinator builds the
    /// laws of the accepted path only. Same draws, same outcome as
    /// ``verify(tree:targetDistributions:using:)`` with `targetDistributions[v] = targetLaw(v)`.
    ///
    /// - Throws: what `targetLaw` throws; ``SamplingError/invalidDraftTree(_:)`` when a law has another
    ///   vocabulary size; otherwise as ``verify(tree:targetDistributions:using:)``.
    public func verify<R: RandomNumberGenerator>(
        tree: DraftTree, targetLaw: (Int) throws -> TokenDistribution, using rng: inout R
    ) throws -> VerificationOutcome {
        var state = start(tree)
        while true {
            switch try nextDraw(state, in: tree, targetLaw: targetLaw) {
            case let .select(selection, drafted, drafts):
                let result = selection.select(drafted, using: &rng)
                let reported = result.matchedDrafts.map { $0 < drafts.count && $0 >= 0 ? drafts[$0] : -1 }.sorted()
                let expected = zip(drafts, drafted).filter { $0.1 == result.token }.map(\.0)
                guard reported == expected, !result.accepted || !expected.isEmpty else {
                    throw SamplingError.unsupported(
                        scheme: scheme.name,
                        reason: "at position \(tree.nodes[state.node].depth + 1) it output "
                            + "token \(result.token) (accepted: \(result.accepted)) with matched drafts "
                            + "\(result.matchedDrafts) for drafted tokens \(drafted)")
                }
                state = try advance(state, in: tree, output: result.token, accepted: result.accepted)
            case let .bonus(target):
                state = try advance(state, in: tree, output: target.sample(using: &rng), accepted: false)
            case let .finished(outcome):
                return outcome
            }
        }
    }

    /// The walk before any draw: at the root, every draft alive.
    public func start(_ tree: DraftTree) -> VerificationState {
        VerificationState(
            phase: .selecting, node: 0, alive: tree.nodes[0].drafts, tokens: [], acceptedNodes: [], positions: [])
    }

    /// The draw `state` needs next. For `.selecting` this prepares the scheme with the target law at
    /// `state.node` and the alive drafts' laws at the next position (the law-group laws of
    /// ``DraftTree/law(ofDraft:atPosition:)``, so drafts of one group are passed as identical).
    public func nextDraw(
        _ state: VerificationState, in tree: DraftTree, targetDistributions: [TokenDistribution]
    ) throws -> VerificationDraw {
        try nextDraw(state, in: tree) { try target(at: $0, tree: tree, targetDistributions: targetDistributions) }
    }

    /// ``nextDraw(_:in:targetDistributions:)`` with the target law of a node built on demand.
    func nextDraw(
        _ state: VerificationState, in tree: DraftTree, targetLaw: (Int) throws -> TokenDistribution
    ) throws -> VerificationDraw {
        func target(at node: Int, tree: DraftTree) throws -> TokenDistribution {
            let law = try targetLaw(node)
            guard law.vocabularySize == tree.vocabularySize else {
                throw SamplingError.invalidDraftTree(
                    "target distribution at node \(node) is over \(law.vocabularySize) tokens, the drafts over "
                        + "\(tree.vocabularySize)")
            }
            return law
        }
        switch state.phase {
        case .finished:
            guard let outcome = state.outcome else {
                throw SamplingError.invalidDraftTree("finished walk without an outcome")
            }
            return .finished(outcome)
        case .bonus:
            return .bonus(try target(at: state.node, tree: tree))
        case .selecting:
            let position = tree.nodes[state.node].depth + 1
            let q = try target(at: state.node, tree: tree)
            let drafted = state.alive.map { tree.drafts[$0].tokens[position - 1] }
            let laws = state.alive.map { tree.law(ofDraft: $0, atPosition: position) }
            let selection = try scheme.prepare(target: q, drafts: laws)
            return .select(selection: selection, drafted: drafted, drafts: state.alive)
        }
    }

    /// The single-step transition shared by sampling and exact enumeration: `output` is the token the
    /// pending draw produced (the scheme's Y with its verdict `accepted`, or the bonus token, for
    /// which `accepted` is ignored).
    ///
    /// After a selection: the output is appended and the drafts whose token equals it stay alive;
    /// none → finished (correction token); otherwise the walk moves to that child node, and after
    /// position L the next draw is the bonus. The next state depends on `accepted` only through
    /// ``PositionStatistics/accepted``.
    public func advance(
        _ state: VerificationState, in tree: DraftTree, output: Int, accepted: Bool
    ) throws -> VerificationState {
        guard output >= 0, output < tree.vocabularySize else {
            throw SamplingError.invalidSupport("output token \(output) outside vocabulary of \(tree.vocabularySize)")
        }
        var next = state
        switch state.phase {
        case .finished:
            throw SamplingError.invalidDraftTree("advance called on a finished verification walk")
        case .bonus:
            next.tokens.append(output)
            next.phase = .finished
        case .selecting:
            let position = tree.nodes[state.node].depth + 1
            let drafted = state.alive.map { tree.drafts[$0].tokens[position - 1] }
            let matched = zip(state.alive, drafted).filter { $0.1 == output }.map(\.0)
            next.tokens.append(output)
            next.positions.append(
                PositionStatistics(
                    position: position, aliveDrafts: state.alive.count, distinctTokens: Set(drafted).count,
                    accepted: accepted, matchedDrafts: matched.count))
            guard let child = tree.child(of: state.node, token: output) else {
                next.phase = .finished  // correction token; `alive` keeps the drafts it corrected
                return next
            }
            next.node = child
            next.alive = matched
            next.acceptedNodes.append(child)
            next.phase = position == tree.length ? .bonus : .selecting
        }
        return next
    }

    /// The exact law of the round's token sequence: for every possible `VerificationOutcome.tokens`,
    /// its probability, found by branching over each scheme's `law(given:)` and each bonus law with
    /// the same ``start(_:)``/``nextDraw(_:in:targetDistributions:)``/``advance(_:in:output:accepted:)``
    /// as ``verify(tree:targetDistributions:using:)`` (which samples them). Branches of probability 0
    /// are dropped. Cost: up to `n^(L+1)` leaves; for tests and theory tools on small vocabularies.
    ///
    /// The scheme's verdict is not part of the key (the conditional laws do not give its joint law with
    /// the token), so the branch states' ``PositionStatistics/accepted`` are not meaningful here.
    public func exactOutcomeLaw(
        tree: DraftTree, targetDistributions: [TokenDistribution]
    ) throws -> [[Int]: Double] {
        try checkTargets(tree: tree, targetDistributions: targetDistributions)
        var law: [[Int]: Double] = [:]
        func explore(_ state: VerificationState, _ probability: Double) throws {
            switch try nextDraw(state, in: tree, targetDistributions: targetDistributions) {
            case let .finished(outcome):
                law[outcome.tokens, default: 0] += probability
            case let .bonus(target):
                for y in target.support {
                    try explore(advance(state, in: tree, output: y, accepted: false), probability * target[y])
                }
            case let .select(selection, drafted, _):
                let conditional = selection.law(given: drafted)
                for (y, p) in conditional.output.enumerated() where p > 0 {
                    try explore(advance(state, in: tree, output: y, accepted: false), probability * p)
                }
            }
        }
        try explore(start(tree), 1)
        return law
    }

    func target(at node: Int, tree: DraftTree, targetDistributions: [TokenDistribution]) throws -> TokenDistribution {
        guard node >= 0, node < targetDistributions.count else {
            throw SamplingError.invalidDraftTree(
                "no target distribution for node \(node): got \(targetDistributions.count) for \(tree.nodeCount) nodes")
        }
        return targetDistributions[node]
    }

    func checkTargets(tree: DraftTree, targetDistributions: [TokenDistribution]) throws {
        guard targetDistributions.count == tree.nodeCount else {
            throw SamplingError.invalidDraftTree(
                "\(targetDistributions.count) target distributions for a tree of \(tree.nodeCount) nodes; "
                    + "need one per node, root first")
        }
        for (v, q) in targetDistributions.enumerated() where q.vocabularySize != tree.vocabularySize {
            throw SamplingError.invalidDraftTree(
                "target distribution at node \(v) is over \(q.vocabularySize) tokens, the drafts over "
                    + "\(tree.vocabularySize)")
        }
    }
}
