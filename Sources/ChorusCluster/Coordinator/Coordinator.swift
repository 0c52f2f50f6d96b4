import ChorusModel
import ChorusSampling
import ChorusTransport
import ChorusWire

/// The coordinator (DESIGN.md "Data flow of one round"): holds the target model and runs each
/// generation's rounds. One round, top to bottom in ``runSession(_:)``: ask the ready workers for
/// drafts (``DraftCollector``), cut them to one length, check the scheme can take them, build the
/// tree once, score it with ONE target forward — shared with the other sessions ready at the same moment
/// (``TargetBatcher``) — and verify it (``GenerationSession``), and publish the tokens (``SessionStream``). Membership lives in ``WorkerRegistry``; the request endpoint in
/// `Coordinator+Endpoint.swift`.
///
/// Exactness does not depend on which workers answer: fewer drafts (a slow or dead worker) give a
/// smaller tree, no drafts give plain target sampling.
public actor Coordinator {
    public struct Options: Sendable {
        /// The token-level selection scheme (``SchemeCatalog/scheme(named:truncation:)`` from a name).
        public var scheme: any SelectionScheme = OptimalScheme()
        public var draftLength = 4
        /// How long a round waits for draft replies; nil: learned from recent reply times (``ReplyDeadline``).
        public var deadline: Duration?
        /// nil: each worker drafts with its own settings; otherwise every worker uses these.
        public var draftSampling: SamplingSettings?
        /// Verify each round to the depth that maximises expected tokens per second (``TreeSizer``), at most
        /// `draftLength`; false (default): always `draftLength` (workers draft `draftLength` either way). Off by
        /// default because the depth follows measured times, so a seeded run would no longer reproduce token for
        /// token; exact either way.
        public var adaptiveDepth = false
        /// Sessions whose rounds are ready at the same moment share one target forward (``TargetBatcher``); false:
        /// each round gets a forward of its own, one after another (for comparisons). Tokens are the same either way.
        public var batchTarget = true
        /// While several sessions run, measure whether rounds with drafts or without give more tokens per second
        /// and draft only when drafting pays (``DraftGate``); false: every round asks for drafts. A session alone
        /// always drafts.
        public var gateDrafting = true
        /// Sequences per worker per round; 0: each worker's own setting.
        public var sequencesPerWorker = 0
        /// How often a worker that missed a deadline is probed.
        public var probeInterval: Duration = .milliseconds(500)
        /// Finished sessions kept for late polls.
        public var finishedSessionsKept = 256

        public init() {}
    }

    public typealias WorkerStatus = ChorusCluster.WorkerStatus

    /// One round's timing, for benchmarks (microseconds).
    public struct RoundRecord: Sendable, Equatable {
        public var draftWait: Int64
        public var targetForward: Int64
        public var verification: Int64
        public var tokens: Int
        public var drafts: Int
        public var requestBytes: Int
        public var replyBytes: Int
        public var workerDraftTime: Int64
        /// Replies answered from drafts made ahead while the previous round was verified.
        public var aheadHits: Int = 0
        /// Replies used this round.
        public var replies: Int = 0
        /// The depth L verified and the tree's nodes (root included; 1 without drafts).
        public var depth: Int = 0
        public var nodes: Int = 1
        /// Drafted tokens (with laws) in the valid replies.
        public var draftTokens: Int = 0
        /// Coordinator thread CPU time outside the target forward: replies, tree, verification (µs).
        public var coordinatorCPU: Int64 = 0
        /// Sessions whose trees shared this round's target forward (``TargetBatcher``), this one included.
        public var batchedSessions: Int = 1
    }

    /// A running or recently finished generation.
    final class SessionEntry {
        let session: GenerationSession
        let stream: SessionStream
        var rounds: [RoundRecord] = []
        var warnedSingleGroup = false
        /// Said once per session when a round found no worker ready.
        var warnedNoWorkers = false
        /// Set by ``Coordinator/cancel(session:)``: the round loop stops before the next round.
        var cancelled = false
        /// The next round asks for no drafts because the draft gate chose plain rounds at this load.
        var notDrafting = false

        init(session: GenerationSession, stream: SessionStream) {
            self.session = session
            self.stream = stream
        }
    }

    public let options: Options
    let registry: WorkerRegistry
    let target: any LanguageModel
    let tokenizer: Tokenizer?
    let collector: DraftCollector
    /// Combines the target forwards of the sessions that are ready at the same moment.
    let batcher: TargetBatcher
    /// The round deadline, learned from the replies of every session.
    var deadline: ReplyDeadline
    /// The depth each round verifies, learned from the rounds of every session.
    var sizer = TreeSizer()
    /// Whether rounds draft while several sessions run, measured (``DraftGate``).
    var gate = DraftGate()
    /// The mode the gate last preferred at each level, for the log.
    var gatePreferred: [Int: Bool] = [:]
    /// Generations whose rounds are running.
    var running = 0
    let clock: ClusterClock
    let log: ClusterLog
    var sessions: [UInt64: SessionEntry] = [:]
    var finishedOrder: [UInt64] = []
    var nextSession: UInt64 = 1
    var closed = false

    public init(
        target: any LanguageModel, tokenizer: Tokenizer?, options: Options, connector: any DraftTransportConnector,
        clock: some Clock<Duration> = ContinuousClock(), log: ClusterLog = ClusterLog(component: "coordinator")
    ) {
        self.target = target
        self.tokenizer = tokenizer
        self.options = options
        self.clock = ClusterClock(clock)
        self.log = log
        registry = WorkerRegistry(
            target: target.identity, connector: connector, log: log, clock: self.clock,
            probeInterval: options.probeInterval, describeTimeout: max(options.deadline ?? .zero, .milliseconds(500)))
        deadline = ReplyDeadline(fixed: options.deadline)
        batcher = TargetBatcher(target: target, clock: self.clock, combine: options.batchTarget, log: log)
        collector = DraftCollector(
            vocabularySize: target.vocabularySize, sequencesPerWorker: options.sequencesPerWorker,
            draftSampling: options.draftSampling, clock: self.clock)
        nextSession = UInt64.random(in: 1...(1 << 40))
    }

    /// Adds a worker by address (static list); it gets requests once it has described itself.
    @discardableResult
    public func addWorker(address: String) async throws -> Int {
        try await registry.add(address: address)
    }

    public var workerStatuses: [WorkerStatus] {
        get async { await registry.statuses }
    }

    // MARK: Generation

    /// Starts a generation from token ids; returns its session id. Rounds run in the background.
    /// `stopTokens`: tokens that end the generation (kept as its last token); nil: the tokenizer's EOS.
    public func startSession(
        prompt: [Int], maxTokens: Int, settings: SamplingSettings, seed: UInt64, stopTokens: Set<Int>? = nil
    ) throws -> UInt64 {
        guard !closed else { throw ModelError.invalidRequest("the coordinator is shutting down") }
        guard maxTokens >= 1 else { throw ModelError.invalidRequest("max tokens must be ≥ 1") }
        try settings.validate()
        for t in prompt where t < 0 || t >= target.vocabularySize {
            throw ModelError.invalidRequest("prompt token \(t) outside the vocabulary")
        }
        let id = nextSession
        nextSession &+= 1
        let session = try GenerationSession(
            id: id, prompt: prompt, target: target, scheme: options.scheme, settings: settings, maxTokens: maxTokens,
            stopTokens: stopTokens ?? tokenizer?.eos.map { [$0] } ?? [], seed: seed, clock: clock)
        let entry = SessionEntry(session: session, stream: SessionStream(session: id, tokenizer: tokenizer))
        sessions[id] = entry
        Task { await self.runSession(entry) }
        return id
    }

    /// The output of a running or recently finished session.
    public func stream(session id: UInt64) -> SessionStream? { sessions[id]?.stream }

    /// Generates to the end in-process (benchmarks, demo, tests): the same rounds as for a client.
    public func generate(prompt: [Int], maxTokens: Int, settings: SamplingSettings, seed: UInt64) async throws
        -> (tokens: [Int], statistics: GenerationStatistics, rounds: [RoundRecord], acceptedAtPosition: [Int])
    {
        let id = try startSession(prompt: prompt, maxTokens: maxTokens, settings: settings, seed: seed)
        guard let entry = sessions[id] else { throw ModelError.invalidRequest("session vanished") }
        for await _ in entry.stream.changes() {}
        if let error = entry.stream.error { throw ModelError.invalidRequest(error) }
        return (entry.session.generated, entry.session.statistics, entry.rounds, entry.session.acceptedAtPosition)
    }

    /// The round loop of one generation. Round r + 1's requests go out the moment round r's tokens are known,
    /// before they are published: workers that drafted ahead answer at once (DESIGN.md "the pipelined round").
    func runSession(_ entry: SessionEntry) async {
        let session = entry.session
        let started = clock.now
        running += 1
        defer { running -= 1 }
        var round: UInt64 = 1
        var failure: String?
        var next: Task<DraftCollector.Collection, Never>? = requestDrafts(entry, round: round)
        while !session.isFinished {
            if closed || entry.cancelled {
                session.abort(closed ? "shutdown" : "cancelled")
                break
            }
            // 1. Drafts: every ready worker was asked for L tokens; valid replies by the deadline count.
            let roundStart = clock.now
            let collected = await next?.value ?? DraftCollector.Collection()
            if next == nil, entry.notDrafting { session.recordNotDrafted() }
            next = nil
            let draftWait = (clock.now - roundStart).microseconds
            for time in collected.replyTimes { deadline.record(microseconds: time) }
            // 2. One length, and drafts the scheme can take, before the target pays for a forward.
            let treeCPUStart = ThreadCPUTime.microseconds()
            var drafts = session.trimmed(collected.drafts)
            if options.scheme.needsIdenticalDrafts, !drafts.haveIdenticalLaws {
                drafts = onlyFirstGroup(drafts, entry)
            }
            if options.adaptiveDepth, let longest = drafts.first?.tokens.count {
                drafts = drafts.trimmed(to: sizer.length(drafts: drafts.count, limit: longest))
            }
            do {
                // 3. The tree, once; ONE target forward over it (shared with the other sessions ready now);
                // verification.
                let tree = drafts.isEmpty ? nil : try DraftTree(drafts: drafts, vocabularySize: target.vocabularySize)
                let prepared = try session.prepareRound(tree: tree)
                let treeCPU = ThreadCPUTime.microseconds() - treeCPUStart
                let scored = try await batcher.score(
                    .init(session: session.targetSession), tokens: prepared.tokens, parents: prepared.parents)
                let result = try session.completeRound(
                    prepared, logits: scored.logits, targetMicroseconds: scored.microseconds)
                let coordinatorCPU = collected.validationCPU + treeCPU + result.verifyCPUMicroseconds
                session.recordDraftTraffic(
                    replyBytes: collected.replyBytes, draftTokens: collected.draftTokens,
                    coordinatorMicroseconds: coordinatorCPU)
                sizer.record(
                    offered: result.draftPositions, acceptedCount: result.acceptedDraftTokens,
                    nodes: tree?.nodeCount ?? 1, forwardMicroseconds: result.targetMicroseconds,
                    roundMicroseconds: (clock.now - roundStart).microseconds)
                // 4. The next round's requests, then the tokens (and the correction or bonus token) to the clients.
                round += 1
                if !session.isFinished, !closed { next = requestDrafts(entry, round: round) }
                entry.rounds.append(
                    RoundRecord(
                        draftWait: draftWait, targetForward: result.targetMicroseconds,
                        verification: result.verifyMicroseconds, tokens: result.tokens.count,
                        drafts: result.draftsUsed, requestBytes: collected.requestBytes,
                        replyBytes: collected.replyBytes, workerDraftTime: collected.workerDraftTime,
                        aheadHits: collected.aheadHits, replies: collected.replyTimes.count,
                        depth: result.draftPositions, nodes: tree?.nodeCount ?? 1,
                        draftTokens: collected.draftTokens, coordinatorCPU: coordinatorCPU,
                        batchedSessions: scored.sessions))
                session.record(replies: collected.replyTimes.count, aheadHits: collected.aheadHits, wait: draftWait)
                session.setElapsed(clock.now - started)
                entry.stream.publish(result.tokens, statistics: session.statistics)
                gate.record(tokens: result.tokens.count)
            } catch {
                log.error("session \(session.id) round \(round) failed: \(error)")
                failure = "\(error)"
                session.abort("error: \(error)")
            }
            await Task.yield()
        }
        _ = await next?.value
        session.setElapsed(clock.now - started)
        session.releaseTarget()
        await registry.forget(session: session.id)
        finishedOrder.append(session.id)
        while finishedOrder.count > options.finishedSessionsKept {
            sessions[finishedOrder.removeFirst()] = nil
        }
        entry.stream.finish(reason: session.finishReason ?? "", statistics: session.statistics, error: failure)
    }

    /// Sessions kept (running or finished) and how many of them still hold their target state (KV cache).
    var keptSessions: (count: Int, holdingTargetState: Int) {
        (sessions.count, sessions.values.filter { $0.session.holdsTargetState }.count)
    }

    /// Sends round `round`'s draft requests to the ready workers (in the background) and records what became
    /// of each; nil when no draft position is useful.
    func requestDrafts(_ entry: SessionEntry, round: UInt64) -> Task<DraftCollector.Collection, Never>? {
        let session = entry.session
        let length = min(options.draftLength, session.usefulDraftLength)
        entry.notDrafting = false
        guard length >= 1 else { return nil }
        guard draftingPays() else {
            entry.notDrafting = true
            return nil
        }
        let request = DraftCollector.Request(
            session: session.id, round: round, context: session.context, seed: session.seed, length: length,
            deadline: deadline)
        return Task { await self.collect(request, for: entry) }
    }

    /// Whether the next round asks for drafts at the present load (``DraftGate``); says so in the log when the
    /// measured preference at a load changes.
    func draftingPays() -> Bool {
        guard options.gateDrafting else { return true }
        let draft = gate.shouldDraft(sessions: running, now: clock.now)
        let level = DraftGate.level(running)
        let (d, p) = gate.rates(sessions: running)
        if let d, let p, gatePreferred[level] != (d >= p) {
            gatePreferred[level] = d >= p
            log.info(
                "with \(level) sessions running, rounds with drafts measured \(Int(d)) tokens/s and without "
                    + "\(Int(p)): drafting \(d >= p ? "on" : "off") at this load (one epoch in "
                    + "\(DraftGate.exploreEvery) tries the other way)")
        }
        return draft
    }

    /// One round's fan-out and what became of each worker.
    func collect(_ request: DraftCollector.Request, for entry: SessionEntry) async -> DraftCollector.Collection {
        let workers = await registry.ready(session: request.session)
        if workers.isEmpty, !entry.warnedNoWorkers {
            let (_, known) = await registry.readiness()
            log.warning(
                "session \(request.session): no worker ready (\(known) known); its rounds use the target alone "
                    + "until one is")
            entry.warnedNoWorkers = true
        }
        let collected = await collector.collect(request, from: workers)
        await registry.record(collected.outcomes, session: request.session, round: request.round)
        return collected
    }

    /// A scheme that needs identical drafts (SpecTr) cannot mix workers: the first worker's drafts
    /// only, said once per session.
    func onlyFirstGroup(_ drafts: [DraftSequence], _ entry: SessionEntry) -> [DraftSequence] {
        if !entry.warnedSingleGroup {
            log.warning(
                "scheme \(options.scheme.name) needs identical drafts; session \(entry.session.id) verifies "
                    + "one worker's drafts per round")
            entry.warnedSingleGroup = true
        }
        return drafts.filter { $0.lawGroup == drafts.first?.lawGroup }
    }

    /// Stops accepting work; running sessions end after their current round.
    public func close() async {
        closed = true
        await registry.close()
    }
}
