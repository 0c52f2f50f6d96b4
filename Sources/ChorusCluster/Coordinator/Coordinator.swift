import ChorusModel
import ChorusSampling
import ChorusTransport
import ChorusWire
import Foundation

/// The coordinator (DESIGN.md "Data flow of one round"): holds the target model, fans each round's
/// draft request out to every live worker, gathers the replies that arrive before the deadline,
/// verifies them against the target in one batched forward pass, and streams the result to clients.
///
/// Exactness does not depend on which workers answer: fewer drafts (a slow or dead worker) give a
/// smaller tree, no drafts give plain target sampling. Workers join by registering or from the
/// static list, and leave by failing to answer (they are probed and rejoin when they answer again).
public actor Coordinator {
    public struct Options: Sendable {
        public var scheme = "optimal"
        public var truncation = SchemeCatalog.defaultTruncation
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

    /// A worker as the coordinator sees it.
    public struct WorkerStatus: Sendable, Equatable {
        public enum State: Sendable, Equatable {
            /// Not described yet: used, and described in the background.
            case unknown
            case ready
            /// Missed a deadline or failed: skipped until a probe answers.
            case suspect
            /// Wrong vocabulary (or another permanent problem): never used.
            case refused(String)
        }
        public var address: String
        public var workerID: String?
        public var state: State
        public var repliesUsed: Int
        public var failures: Int
    }

    final class WorkerEntry {
        let address: String
        let transport: any DraftTransport
        let group: Int
        var registration: Registration?
        var state: WorkerStatus.State = .unknown
        /// Per session: the context this worker's cache is known to hold.
        var sentContext: [UInt64: [Int]] = [:]
        var repliesUsed = 0
        var failures = 0
        var probing = false
        /// Rounds missed in a row, and when the last one was: a worker that keeps missing the
        /// deadline waits longer (doubling, up to 8 s) before probes let it back in.
        var consecutiveMisses = 0
        var lastMiss: ContinuousClock.Instant?

        var backoff: Duration {
            guard consecutiveMisses > 1 else { return .zero }
            return min(.milliseconds(250) * (1 << min(consecutiveMisses - 2, 5)), .seconds(8))
        }

        init(address: String, transport: any DraftTransport, group: Int) {
            self.address = address
            self.transport = transport
            self.group = group
        }
    }

    final class SessionEntry {
        let session: GenerationSession
        var decoder: Tokenizer.StreamingDecoder?
        /// UTF-8 of the text so far, and its length after each generated token.
        var text: [UInt8] = []
        var textOffsets: [Int] = [0]
        var waiters: [CheckedContinuation<Void, Never>] = []
        var error: String?
        var rounds: [RoundRecord] = []
        var warnedSingleGroup = false

        init(session: GenerationSession, tokenizer: Tokenizer?) {
            self.session = session
            decoder = tokenizer.map { Tokenizer.StreamingDecoder(tokenizer: $0) }
        }
    }

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

    public let options: Options
    let target: any LanguageModel
    let tokenizer: Tokenizer?
    let scheme: any SelectionScheme
    let connector: any DraftTransportConnector
    let log: ClusterLog
    var workers: [WorkerEntry] = []
    var sessions: [UInt64: SessionEntry] = [:]
    var finishedOrder: [UInt64] = []
    var nextSession: UInt64 = 1
    var closed = false

    public init(
        target: any LanguageModel, tokenizer: Tokenizer?, options: Options, connector: any DraftTransportConnector,
        log: ClusterLog = ClusterLog(component: "coordinator")
    ) throws {
        self.target = target
        self.tokenizer = tokenizer
        self.options = options
        self.connector = connector
        self.log = log
        scheme = try SchemeCatalog.scheme(named: options.scheme, truncation: options.truncation)
        nextSession = UInt64.random(in: 1...(1 << 40))
    }

    // MARK: Membership

    /// Adds a worker by address (static list or registration); returns its index.
    @discardableResult
    public func addWorker(address: String) throws -> Int {
        if let existing = workers.firstIndex(where: { $0.address == address }) { return existing }
        let transport = try connector.connect(to: TransportAddress(address))
        let entry = WorkerEntry(address: address, transport: transport, group: workers.count)
        workers.append(entry)
        log.info("worker \(address) added")
        probe(entry)
        return workers.count - 1
    }

    public var workerStatuses: [WorkerStatus] {
        workers.map {
            WorkerStatus(
                address: $0.address, workerID: $0.registration?.workerID, state: $0.state, repliesUsed: $0.repliesUsed,
                failures: $0.failures)
        }
    }

    /// Checks a worker's model against the target: the vocabularies must be the same.
    func admissionProblem(_ registration: Registration) -> String? {
        let mine = target.identity
        if registration.model.vocabularySize != mine.vocabularySize {
            return "vocabulary of \(registration.model.vocabularySize) tokens, target has \(mine.vocabularySize)"
        }
        if !mine.vocabularyHash.isEmpty, registration.model.vocabularyHash != mine.vocabularyHash {
            return "vocabulary hash \(registration.model.vocabularyHash.prefix(12))… differs from the target's \(mine.vocabularyHash.prefix(12))…"
        }
        return nil
    }

    func admit(_ entry: WorkerEntry, _ registration: Registration) {
        entry.registration = registration
        if let problem = admissionProblem(registration) {
            if entry.state != .refused(problem) { log.error("worker \(entry.address) refused: \(problem)") }
            entry.state = .refused(problem)
        } else {
            if entry.state != .ready {
                log.info(
                    "worker \(entry.address) ready: \(registration.workerID), model \(registration.model.name), "
                        + "\(registration.sampling), \(registration.sequences) sequence(s)")
            }
            entry.state = .ready
        }
    }

    /// Describes a worker in the background; a suspect worker is probed until it answers.
    func probe(_ entry: WorkerEntry) {
        guard !entry.probing, !closed else { return }
        entry.probing = true
        let interval = options.probeInterval
        let address = entry.address
        Task { [weak self] in
            while let self {
                let done = await self.probeOnce(address: address)
                if done { break }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// One describe round trip; returns true when probing can stop.
    func probeOnce(address: String) async -> Bool {
        guard !closed, let entry = workers.first(where: { $0.address == address }) else { return true }
        if let last = entry.lastMiss, ContinuousClock.now - last < entry.backoff { return false }
        do {
            let reply = try await entry.transport.request(WireMessage.describe.encoded(), timeout: max(options.deadline, .milliseconds(500)))
            if case let .register(registration) = try WireMessage.decode(reply) {
                admit(entry, registration)
                entry.probing = false
                return true
            }
            log.warning("worker \(entry.address) answered describe with something else")
        } catch {
            log.debug("probe of \(entry.address) failed: \(error)")
        }
        if entry.state == .ready { entry.state = .suspect }
        return false
    }

    // MARK: The request endpoint (clients and registering workers)

    /// Serves one message of the coordinator's REP endpoint. Malformed input gets an error reply.
    public func handle(bytes: [UInt8]) async -> [UInt8] {
        let message: WireMessage
        do {
            message = try WireMessage.decode(bytes)
        } catch {
            log.warning("malformed message dropped: \(error)")
            return WireMessage.error(ErrorReply(code: .malformed, message: "\(error)")).encoded()
        }
        switch message {
        case let .register(registration):
            return register(registration).encoded()
        case let .generateStart(request):
            do {
                return WireMessage.generateAccepted(try start(request)).encoded()
            } catch {
                return WireMessage.error(ErrorReply(code: .invalidRequest, message: "\(error)")).encoded()
            }
        case let .generatePoll(poll):
            return await self.poll(poll).encoded()
        default:
            return WireMessage.error(ErrorReply(code: .invalidRequest, message: "the coordinator does not serve this message")).encoded()
        }
    }

    func register(_ registration: Registration) -> WireMessage {
        if let problem = admissionProblem(registration) {
            log.error("registration of \(registration.workerID) at \(registration.address) refused: \(problem)")
            return .registerReply(RegistrationReply(accepted: false, reason: problem))
        }
        do {
            let index = try addWorker(address: registration.address)
            admit(workers[index], registration)
            return .registerReply(RegistrationReply(accepted: true, reason: ""))
        } catch {
            return .registerReply(RegistrationReply(accepted: false, reason: "cannot dial \(registration.address): \(error)"))
        }
    }

    // MARK: Generation

    /// Starts a generation from text (needs the tokenizer).
    func start(_ request: GenerateStart) throws -> GenerateAccepted {
        guard let tokenizer else { throw ModelError.invalidRequest("this coordinator has no tokenizer") }
        let prompt = tokenizer.encode(request.prompt, addSpecial: true)
        let seed = request.seed ?? UInt64.random(in: 0...UInt64.max)
        let id = try startSession(prompt: prompt, maxTokens: request.maxTokens, settings: request.sampling, seed: seed)
        return GenerateAccepted(session: id, promptTokens: prompt.count, seed: seed)
    }

    /// Starts a generation from token ids; returns its session id. Rounds run in the background.
    public func startSession(prompt: [Int], maxTokens: Int, settings: SamplingSettings, seed: UInt64) throws -> UInt64 {
        guard !closed else { throw ModelError.invalidRequest("the coordinator is shutting down") }
        guard maxTokens >= 1 else { throw ModelError.invalidRequest("max tokens must be ≥ 1") }
        try settings.validate()
        for t in prompt where t < 0 || t >= target.vocabularySize {
            throw ModelError.invalidRequest("prompt token \(t) outside the vocabulary")
        }
        let id = nextSession
        nextSession &+= 1
        let session = try GenerationSession(
            id: id, prompt: prompt, target: target, scheme: scheme, settings: settings, maxTokens: maxTokens,
            stopTokens: tokenizer?.eos.map { [$0] } ?? [], seed: seed)
        let entry = SessionEntry(session: session, tokenizer: tokenizer)
        sessions[id] = entry
        Task { await self.runSession(id: id) }
        return id
    }

    /// Generates to the end in-process (benchmarks, demo, tests): the same rounds as for a client.
    public func generate(prompt: [Int], maxTokens: Int, settings: SamplingSettings, seed: UInt64) async throws
        -> (tokens: [Int], statistics: GenerationStatistics, rounds: [RoundRecord], acceptedAtPosition: [Int])
    {
        let id = try startSession(prompt: prompt, maxTokens: maxTokens, settings: settings, seed: seed)
        guard let entry = sessions[id] else { throw ModelError.invalidRequest("session vanished") }
        while !entry.session.isFinished { await wait(session: id) }
        if let error = entry.error { throw ModelError.invalidRequest(error) }
        return (entry.session.generated, entry.session.statistics, entry.rounds, entry.session.acceptedAtPosition)
    }

    func wait(session id: UInt64) async {
        guard let entry = sessions[id], !entry.session.isFinished else { return }
        await withCheckedContinuation { entry.waiters.append($0) }
    }

    func wakeAll(session id: UInt64) {
        if let entry = sessions[id] { notify(entry) }
    }

    func notify(_ entry: SessionEntry) {
        let waiters = entry.waiters
        entry.waiters = []
        for w in waiters { w.resume() }
    }

    func runSession(id: UInt64) async {
        guard let entry = sessions[id] else { return }
        let session = entry.session
        let started = ContinuousClock.now
        var round: UInt64 = 0
        while !session.isFinished {
            round += 1
            if closed {
                session.abort("shutdown")
                break
            }
            let roundStart = ContinuousClock.now
            let length = min(options.draftLength, session.usefulDraftLength)
            var gathered = Gathered()
            if length >= 1 { gathered = await gatherDrafts(session: session, length: length, round: round) }
            let draftWait = (ContinuousClock.now - roundStart).microseconds
            do {
                let result: GenerationSession.Round
                do {
                    result = try session.runRound(drafts: gathered.drafts)
                } catch SamplingError.unsupported(let name, let reason) where Set(gathered.drafts.map(\.group)).count > 1 {
                    // A scheme that needs identical drafts (spectr) cannot mix workers: use the first
                    // worker's drafts only, and say so.
                    if !entry.warnedSingleGroup {
                        log.warning("scheme \(name): \(reason); session \(session.id) verifies one worker's drafts per round")
                        entry.warnedSingleGroup = true
                    }
                    let first = gathered.drafts[0].group
                    result = try session.runRound(drafts: gathered.drafts.filter { $0.group == first })
                }
                for t in result.tokens { appendText(entry, token: t) }
                entry.rounds.append(
                    RoundRecord(
                        draftWait: draftWait, targetForward: result.targetMicroseconds,
                        verification: result.verifyMicroseconds, tokens: result.tokens.count,
                        drafts: result.draftsUsed, requestBytes: gathered.requestBytes, replyBytes: gathered.replyBytes,
                        workerDraftTime: gathered.workerDraftTime))
            } catch {
                log.error("session \(session.id) round \(round) failed: \(error)")
                entry.error = "\(error)"
                session.abort("error: \(error)")
            }
            session.setElapsed(ContinuousClock.now - started)
            notify(entry)
            await Task.yield()
        }
        if let decoder = entry.decoder {
            var d = decoder
            entry.text += Array(d.finish().utf8)
            entry.decoder = d
            if !entry.textOffsets.isEmpty { entry.textOffsets[entry.textOffsets.count - 1] = entry.text.count }
        }
        for w in workers { w.sentContext[session.id] = nil }
        finishedOrder.append(session.id)
        while finishedOrder.count > options.finishedSessionsKept {
            sessions[finishedOrder.removeFirst()] = nil
        }
        notify(entry)
    }

    func appendText(_ entry: SessionEntry, token: Int) {
        if var decoder = entry.decoder {
            entry.text += Array(decoder.append(token).utf8)
            entry.decoder = decoder
        }
        entry.textOffsets.append(entry.text.count)
    }

    /// The seed of worker `i`'s draft request in a round, from the generation's seed.
    func draftSeed(_ seed: UInt64, round: UInt64, worker i: Int) -> UInt64 {
        var rng = ChorusRandom(seed: seed).derived(round &* 1024 &+ UInt64(i))
        return rng.next()
    }

    /// One worker's answer to a round's request.
    struct WorkerAnswer: Sendable {
        var index: Int
        var result: Result<[UInt8], TransportError>

        static func ask(_ transport: any DraftTransport, _ bytes: [UInt8], timeout: Duration, index: Int) async -> WorkerAnswer {
            do throws(TransportError) {
                return WorkerAnswer(index: index, result: .success(try await transport.request(bytes, timeout: timeout)))
            } catch {
                return WorkerAnswer(index: index, result: .failure(error))
            }
        }
    }

    struct Gathered {
        var drafts: [(group: Int, sequence: [Int], laws: [TokenDistribution])] = []
        var requestBytes = 0
        var replyBytes = 0
        var workerDraftTime: Int64 = 0
    }

    /// Fans the round's request out to every usable worker and keeps the valid replies that arrive
    /// before the deadline; the rest are cancelled.
    func gatherDrafts(session: GenerationSession, length: Int, round: UInt64) async -> Gathered {
        // Only described workers: an unknown one is being probed, and would cost a whole deadline
        // if it is not there.
        let usable = workers.filter { $0.state == .ready }
        guard !usable.isEmpty else { return Gathered() }
        let context = session.context
        let hash = ContextHash(context).value
        var requests: [(WorkerEntry, [UInt8])] = []
        for (i, worker) in usable.enumerated() {
            let sent = worker.sentContext[session.id] ?? []
            let keep = sent.count <= context.count && Array(context[0..<sent.count]) == sent ? sent.count : 0
            let request = DraftRequest(
                session: session.id, round: round, keepLength: keep, newTokens: Array(context[keep...]),
                contextHash: hash, draftLength: length, sequences: options.sequencesPerWorker,
                useWorkerSampling: options.draftSampling == nil, sampling: options.draftSampling ?? .standard,
                // Derived from the generation's seed (not the session id), so a seeded generation
                // drafts the same tokens every time the same workers answer.
                seed: draftSeed(session.seed, round: round, worker: i),
                deadlineMilliseconds: Int(options.deadline.microseconds / 1000))
            requests.append((worker, WireMessage.draftRequest(request).encoded()))
        }
        let deadline = options.deadline
        let results = await withTaskGroup(of: WorkerAnswer.self) { group in
            for (i, pair) in requests.enumerated() {
                let transport = pair.0.transport
                let bytes = pair.1
                group.addTask { await WorkerAnswer.ask(transport, bytes, timeout: deadline, index: i) }
            }
            var collected: [WorkerAnswer] = []
            for await r in group { collected.append(r) }
            return collected
        }
        var gathered = Gathered()
        gathered.requestBytes = requests.reduce(0) { $0 + $1.1.count }
        for answer in results.sorted(by: { $0.index < $1.index }) {
            let worker = requests[answer.index].0
            let result = answer.result
            switch result {
            case let .failure(error):
                worker.failures += 1
                worker.consecutiveMisses += 1
                worker.lastMiss = .now
                worker.sentContext[session.id] = nil
                if worker.state == .ready || worker.state == .unknown {
                    log.warning("worker \(worker.address) missed round \(round) of session \(session.id): \(error)")
                    worker.state = .suspect
                    probe(worker)
                }
            case let .success(bytes):
                gathered.replyBytes += bytes.count
                switch accept(bytes, from: worker, session: session, round: round, length: length) {
                case let .success((drafts, micros)):
                    worker.consecutiveMisses = 0
                    worker.sentContext[session.id] = context
                    worker.repliesUsed += 1
                    gathered.drafts += drafts
                    gathered.workerDraftTime = max(gathered.workerDraftTime, micros)
                case let .failure(problem):
                    worker.failures += 1
                    worker.sentContext[session.id] = nil
                    log.warning("reply of \(worker.address) for round \(round) dropped: \(problem.message)")
                }
            }
        }
        return gathered
    }

    struct ReplyProblem: Error {
        var message: String
    }

    /// Validates one reply: the right session and round, sequences of the requested length over the
    /// target's vocabulary, every drafted token possible under the law sent with it.
    func accept(_ bytes: [UInt8], from worker: WorkerEntry, session: GenerationSession, round: UInt64, length: Int)
        -> Result<([(group: Int, sequence: [Int], laws: [TokenDistribution])], Int64), ReplyProblem>
    {
        let message: WireMessage
        do {
            message = try WireMessage.decode(bytes)
        } catch {
            return .failure(ReplyProblem(message: "malformed: \(error)"))
        }
        switch message {
        case let .error(e):
            return .failure(ReplyProblem(message: "worker error \(e.code): \(e.message)"))
        case let .draftReply(reply):
            guard reply.session == session.id, reply.round == round else {
                return .failure(ReplyProblem(message: "reply for session \(reply.session) round \(reply.round)"))
            }
            var drafts: [(group: Int, sequence: [Int], laws: [TokenDistribution])] = []
            for (tokens, wires) in zip(reply.sequences, reply.distributions) {
                guard tokens.count >= 1, tokens.count <= length else {
                    return .failure(ReplyProblem(message: "sequence of \(tokens.count) tokens, asked for \(length)"))
                }
                var laws: [TokenDistribution] = []
                for (t, wire) in zip(tokens, wires) {
                    guard wire.vocabularySize == target.vocabularySize else {
                        return .failure(ReplyProblem(message: "law over \(wire.vocabularySize) tokens"))
                    }
                    guard let law = try? wire.decoded(), law[t] > 0 else {
                        return .failure(ReplyProblem(message: "token \(t) is impossible under the law sent with it"))
                    }
                    laws.append(law)
                }
                drafts.append((worker.group, tokens, laws))
            }
            // The worker's sequences must agree on the law at every shared prefix.
            do {
                _ = try DraftTree(
                    drafts: drafts.map { DraftSequence(tokens: $0.sequence, distributions: $0.laws, lawGroup: $0.group) },
                    vocabularySize: target.vocabularySize)
            } catch {
                return .failure(ReplyProblem(message: "inconsistent drafts: \(error)"))
            }
            return .success((drafts, Int64(reply.draftMicroseconds)))
        default:
            return .failure(ReplyProblem(message: "unexpected message kind"))
        }
    }

    /// Answers a client's poll: tokens from `from` on, waiting up to `waitMilliseconds` for news.
    func poll(_ request: GeneratePoll) async -> WireMessage {
        guard let entry = sessions[request.session] else {
            return .error(ErrorReply(code: .unknownSession, message: "no session \(request.session) (finished long ago, or never started)"))
        }
        let from = max(0, min(request.from, entry.session.generated.count))
        if entry.session.generated.count <= from, !entry.session.isFinished, request.waitMilliseconds > 0 {
            let wait = Duration.milliseconds(min(request.waitMilliseconds, 30_000))
            let id = request.session
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.wait(session: id) }
                group.addTask { try? await Task.sleep(for: wait) }
                await group.next()
                group.cancelAll()
                // The waiter may still be registered: wake it so the task group can finish.
                await self.wakeAll(session: id)
            }
        }
        let generated = entry.session.generated
        let to = generated.count
        let start = entry.textOffsets[min(from, entry.textOffsets.count - 1)]
        let end = entry.session.isFinished ? entry.text.count : entry.textOffsets[min(to, entry.textOffsets.count - 1)]
        let text = String(decoding: entry.text[start..<max(start, end)], as: UTF8.self)
        return .generateUpdate(
            GenerateUpdate(
                session: entry.session.id, from: from, tokens: Array(generated[from..<to]), text: text,
                done: entry.session.isFinished, finishReason: entry.session.finishReason ?? "",
                statistics: entry.session.statistics))
    }

    /// Stops accepting work; running sessions end after their current round.
    public func close() {
        closed = true
        for w in workers { w.transport.close() }
        for entry in sessions.values { notify(entry) }
    }
}
