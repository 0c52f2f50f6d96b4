import ChorusModel
import ChorusSampling
import ChorusTransport
import ChorusWire

/// The coordinator (DESIGN.md "Data flow of one round"): holds the target model and runs each
/// generation's rounds. One round, top to bottom in ``runSession(_:)``: ask the ready workers for
/// drafts (``DraftCollector``), cut them to one length, check the scheme can take them, build the
/// tree once, score it with ONE target forward and verify it (``GenerationSession``), and publish the
/// tokens (``SessionStream``). Membership lives in ``WorkerRegistry``; the request endpoint in
/// `Coordinator+Endpoint.swift`.
///
/// Exactness does not depend on which workers answer: fewer drafts (a slow or dead worker) give a
/// smaller tree, no drafts give plain target sampling.
public actor Coordinator {
    public struct Options: Sendable {
        /// The token-level selection scheme (``SchemeCatalog/scheme(named:truncation:)`` from a name).
        public var scheme: any SelectionScheme = OptimalScheme()
        public var draftLength = 4
        public var deadline: Duration = .milliseconds(250)
        /// nil: each worker drafts with its own settings; otherwise every worker uses these.
        public var draftSampling: SamplingSettings?
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
            probeInterval: options.probeInterval, describeTimeout: max(options.deadline, .milliseconds(500)))
        collector = DraftCollector(
            vocabularySize: target.vocabularySize, deadline: options.deadline,
            sequencesPerWorker: options.sequencesPerWorker, draftSampling: options.draftSampling)
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

    /// The round loop of one generation.
    func runSession(_ entry: SessionEntry) async {
        let session = entry.session
        let started = clock.now
        var round: UInt64 = 0
        var failure: String?
        while !session.isFinished {
            round += 1
            if closed || entry.cancelled {
                session.abort(closed ? "shutdown" : "cancelled")
                break
            }
            // 1. Drafts: every ready worker is asked for L tokens; valid replies by the deadline count.
            let roundStart = clock.now
            let length = min(options.draftLength, session.usefulDraftLength)
            var collected = DraftCollector.Collection()
            if length >= 1 {
                let workers = await registry.ready(session: session.id)
                if workers.isEmpty, !entry.warnedNoWorkers {
                    let (_, known) = await registry.readiness()
                    log.warning(
                        "session \(session.id): no worker ready (\(known) known); its rounds use the target alone "
                            + "until one is")
                    entry.warnedNoWorkers = true
                }
                collected = await collector.collect(
                    .init(
                        session: session.id, round: round, context: session.context, seed: session.seed, length: length),
                    from: workers)
                await registry.record(collected.outcomes, session: session.id, round: round)
            }
            let draftWait = (clock.now - roundStart).microseconds
            // 2. One length, and drafts the scheme can take, before the target pays for a forward.
            var drafts = session.trimmed(collected.drafts)
            if options.scheme.needsIdenticalDrafts, !drafts.haveIdenticalLaws {
                drafts = onlyFirstGroup(drafts, entry)
            }
            do {
                // 3. The tree, once; ONE target forward over it; verification.
                let tree = drafts.isEmpty ? nil : try DraftTree(drafts: drafts, vocabularySize: target.vocabularySize)
                let result = try session.runRound(tree: tree)
                entry.rounds.append(
                    RoundRecord(
                        draftWait: draftWait, targetForward: result.targetMicroseconds,
                        verification: result.verifyMicroseconds, tokens: result.tokens.count,
                        drafts: result.draftsUsed, requestBytes: collected.requestBytes,
                        replyBytes: collected.replyBytes, workerDraftTime: collected.workerDraftTime))
                session.setElapsed(clock.now - started)
                // 4. The accepted tokens (and the correction or bonus token) to the clients.
                entry.stream.publish(result.tokens, statistics: session.statistics)
            } catch {
                log.error("session \(session.id) round \(round) failed: \(error)")
                failure = "\(error)"
                session.abort("error: \(error)")
            }
            await Task.yield()
        }
        session.setElapsed(clock.now - started)
        await registry.forget(session: session.id)
        finishedOrder.append(session.id)
        while finishedOrder.count > options.finishedSessionsKept {
            sessions[finishedOrder.removeFirst()] = nil
        }
        entry.stream.finish(reason: session.finishReason ?? "", statistics: session.statistics, error: failure)
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
