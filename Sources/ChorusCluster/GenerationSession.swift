import ChorusModel
import ChorusSampling
import ChorusWire

/// One generation on the coordinator: the context, the target model's session and the verifier.
/// Rounds are pure functions of (context, drafts received, RNG): no sockets here, so the whole round
/// logic is tested with in-memory models.
///
/// Invariant: the target session's cache holds `context` except its last token, which is the root
/// of the next round's tree (the previous round's correction or bonus token).
public final class GenerationSession {
    public let id: UInt64
    public let promptLength: Int
    public private(set) var context: [Int]
    public let settings: SamplingSettings
    public let maxTokens: Int
    public let stopTokens: Set<Int>
    /// The generation's seed: the target's sampling and every draft request derive from it.
    public let seed: UInt64
    public private(set) var statistics = GenerationStatistics()
    /// Per-position acceptance: acceptedAtPosition[i] counts rounds whose draft position i was accepted.
    public private(set) var acceptedAtPosition: [Int] = []
    public private(set) var finishReason: String?
    let target: any LanguageModel
    /// The target's session (its KV cache and scratch), until ``releaseTarget()``.
    private var heldTargetSession: (any LanguageModelSession)?
    let verifier: TreeVerifier
    var rng: ChorusRandom
    let clock: ClusterClock

    /// What one round did.
    public struct Round: Sendable {
        /// Tokens appended to the context this round.
        public var tokens: [Int]
        public var acceptedDraftTokens: Int
        /// Draft positions offered (the tree's depth L; 0 when there were no drafts).
        public var draftPositions: Int
        public var draftsUsed: Int
        /// Time of the target forward pass and of the verification, in microseconds.
        public var targetMicroseconds: Int64
        public var verifyMicroseconds: Int64
        /// Thread CPU time of the verification (target laws of the walked nodes, schemes), microseconds.
        public var verifyCPUMicroseconds: Int64 = 0
    }

    public init(
        id: UInt64, prompt: [Int], target: any LanguageModel, scheme: any SelectionScheme, settings: SamplingSettings,
        maxTokens: Int, stopTokens: Set<Int>, seed: UInt64, clock: ClusterClock = .continuous
    ) throws {
        guard !prompt.isEmpty else { throw ModelError.invalidRequest("the prompt must have at least one token") }
        guard prompt.count < target.contextLength else {
            throw ModelError.invalidRequest(
                "the prompt has \(prompt.count) tokens; the target's context is \(target.contextLength)")
        }
        self.id = id
        self.promptLength = prompt.count
        self.context = prompt
        self.target = target
        self.settings = settings
        self.maxTokens = maxTokens
        self.stopTokens = stopTokens
        self.verifier = TreeVerifier(scheme: scheme)
        self.seed = seed
        self.rng = ChorusRandom(seed: seed)
        self.clock = clock
        heldTargetSession = try target.makeSession()
        if prompt.count > 1 { _ = try targetSession.append(Array(prompt.dropLast())) }
    }

    /// The target's session; an error once released.
    var targetSession: any LanguageModelSession {
        get throws(ModelError) {
            guard let session = heldTargetSession else {
                throw ModelError.invalidRequest("session \(id) has ended; its target state is released")
            }
            return session
        }
    }

    /// Drops the target's session, KV cache and scratch included, when the generation is over. The coordinator
    /// keeps finished sessions for late readers, who need only the text and the statistics; holding the caches
    /// made a serving coordinator grow by megabytes per request (`scripts/soak.sh`).
    public func releaseTarget() { heldTargetSession = nil }

    /// Whether the target's session is still held (for tests and the status of kept sessions).
    public var holdsTargetState: Bool { heldTargetSession != nil }

    public var generated: [Int] { Array(context[promptLength...]) }
    public var isFinished: Bool { finishReason != nil }

    /// Room left for one round's tree (root + nodes) in the target's context.
    public var treeRoom: Int { target.contextLength - (context.count - 1) }

    /// How many draft positions are still useful (tokens left to generate minus the bonus).
    public var usefulDraftLength: Int { max(0, min(maxTokens - generated.count - 1, treeRoom - 2)) }

    /// Cuts the drafts that arrived to one length: the shortest, and no more than is still useful.
    /// The one place drafts are trimmed (the collector only checks they are not too long).
    public func trimmed(_ drafts: [DraftSequence]) -> [DraftSequence] {
        drafts.trimmed(to: usefulDraftLength)
    }

    /// Runs one round: trims `drafts`, builds their tree and verifies it (``runRound(tree:)``).
    @discardableResult
    public func runRound(drafts: [DraftSequence]) throws -> Round {
        let drafts = trimmed(drafts)
        return try runRound(
            tree: drafts.isEmpty ? nil : DraftTree(drafts: drafts, vocabularySize: target.vocabularySize))
    }

    /// A round's target work, prepared by ``prepareRound(tree:)``: the rows the target scores (the root, then the
    /// tree's nodes; only the root when there is no tree to verify) and the tree they came from.
    public struct PreparedRound: Sendable {
        /// Tokens and parents of the rows, as ``LanguageModelSession/scoreTree(tokens:parents:)`` takes them.
        public let tokens: [Int]
        public let parents: [Int]
        /// The drafts' tree; nil: the target samples one token.
        let tree: DraftTree?
    }

    /// Runs one round on a tree of drafts (each worker's sequences one law group): ONE target forward
    /// over the tree, then the verifier. No tree, or one that does not fit the context: the target
    /// samples one token. The same as ``prepareRound(tree:)``, the target scoring its rows, and
    /// ``completeRound(_:logits:targetMicroseconds:)``; the coordinator does the middle step for several
    /// sessions in one batched forward.
    ///
    /// - Throws: `ModelError.invalidRequest` for a tree deeper than ``usefulDraftLength``; the
    ///   model's and the verifier's errors (a scheme that cannot take these drafts: check
    ///   ``SelectionScheme/needsIdenticalDrafts`` first, the forward is paid by then).
    @discardableResult
    public func runRound(tree: DraftTree?) throws -> Round {
        let prepared = try prepareRound(tree: tree)
        let start = clock.now
        let logits = try targetSession.scoreTree(tokens: prepared.tokens, parents: prepared.parents)
        return try completeRound(prepared, logits: logits, targetMicroseconds: (clock.now - start).microseconds)
    }

    /// The rows one round asks of the target (see ``runRound(tree:)`` for the errors).
    public func prepareRound(tree: DraftTree?) throws -> PreparedRound {
        precondition(!isFinished, "round on a finished session")
        let root = context[context.count - 1]
        if let tree, tree.length > usefulDraftLength {
            throw ModelError.invalidRequest("a tree of depth \(tree.length); at most \(usefulDraftLength) is useful")
        }
        guard let tree, tree.nodeCount <= treeRoom else {
            return PreparedRound(tokens: [root], parents: [-1], tree: nil)
        }
        var tokens = [root]
        var parents = [-1]
        for node in tree.nodes.dropFirst() {
            tokens.append(node.token ?? root)
            parents.append(node.parent ?? 0)
        }
        return PreparedRound(tokens: tokens, parents: parents, tree: tree)
    }

    /// Verifies a prepared round against the target's `logits` for its rows ([rows][vocab], scored on
    /// ``targetSession``, which has them pending) and keeps the accepted path. `targetMicroseconds`: the
    /// forward's time, for the statistics.
    @discardableResult
    public func completeRound(_ prepared: PreparedRound, logits: [[Float]], targetMicroseconds: Int64) throws -> Round {
        precondition(!isFinished, "round on a finished session")
        var round = Round(
            tokens: [], acceptedDraftTokens: 0, draftPositions: 0, draftsUsed: 0,
            targetMicroseconds: targetMicroseconds, verifyMicroseconds: 0)
        guard logits.count == prepared.tokens.count else {
            throw ModelError.invalidRequest("the target scored \(logits.count) rows for \(prepared.tokens.count) nodes")
        }
        guard let tree = prepared.tree else {
            // No drafts (or no room): plain target sampling of one token.
            try targetSession.keepTreePath([0])
            let law = try TokenDistribution(logits: logits[0], settings: settings)
            round.tokens = [law.sample(using: &rng)]
            return finish(round)
        }
        let start = clock.now
        let cpuStart = ThreadCPUTime.microseconds()
        // The target law of a node is built when the walk reaches it, once (at most L + 1 of them).
        var targets: [Int: TokenDistribution] = [:]
        let settings = settings
        let outcome = try verifier.verify(
            tree: tree,
            targetLaw: { node in
                if let law = targets[node] { return law }
                let law = try TokenDistribution(logits: logits[node], settings: settings)
                targets[node] = law
                return law
            }, using: &rng)
        try targetSession.keepTreePath([0] + outcome.acceptedNodes)
        round.verifyMicroseconds = (clock.now - start).microseconds
        round.verifyCPUMicroseconds = ThreadCPUTime.microseconds() - cpuStart
        round.tokens = outcome.tokens
        round.acceptedDraftTokens = outcome.acceptedCount
        round.draftPositions = tree.length
        round.draftsUsed = tree.draftCount
        if acceptedAtPosition.count < tree.length {
            acceptedAtPosition += Array(repeating: 0, count: tree.length - acceptedAtPosition.count)
        }
        for i in 0..<outcome.acceptedCount { acceptedAtPosition[i] += 1 }
        return finish(round)
    }

    private func finish(_ round: Round) -> Round {
        var round = round
        // Respect the token budget and stop tokens: cut the round's tokens where generation ends.
        var kept: [Int] = []
        for t in round.tokens {
            if generated.count + kept.count >= maxTokens { break }
            kept.append(t)
            if stopTokens.contains(t) { break }
        }
        round.tokens = kept
        context += kept
        statistics.generatedTokens += kept.count
        statistics.targetForwards += 1
        statistics.draftedTokens += round.draftPositions
        statistics.acceptedDraftTokens += min(round.acceptedDraftTokens, kept.count)
        statistics.draftsReceived += round.draftsUsed
        if let last = kept.last, stopTokens.contains(last) {
            finishReason = "eos"
        } else if generated.count >= maxTokens {
            finishReason = "length"
        } else if context.count >= target.contextLength {
            finishReason = "context"
        }
        return round
    }

    /// Adds a round's draft traffic and the coordinator's CPU time outside the target forward to the
    /// statistics (the round loop knows the replies; ``runRound(tree:)`` the verification).
    public func recordDraftTraffic(replyBytes: Int, draftTokens: Int, coordinatorMicroseconds: Int64) {
        statistics.draftReplyBytes += replyBytes
        statistics.draftTokensReceived += draftTokens
        statistics.coordinatorMicroseconds += UInt64(max(0, coordinatorMicroseconds))
    }

    /// Counts a round's used replies, those drafted ahead, and how long the target waited for them.
    /// A round that asked for no drafts because the draft gate measured plain rounds faster at this load.
    public func recordNotDrafted() { statistics.roundsNotDrafted += 1 }

    public func record(replies: Int, aheadHits: Int, wait microseconds: Int64) {
        statistics.repliesUsed += replies
        statistics.draftAheadHits += aheadHits
        statistics.draftWaitMicroseconds += UInt64(max(0, microseconds))
    }

    /// Ends the session early (an error or a client that left).
    public func abort(_ reason: String) { finishReason = reason }

    /// Wall-clock time since the generation started.
    public func setElapsed(_ d: Duration) { statistics.elapsedMicroseconds = UInt64(max(0, d.microseconds)) }
}
