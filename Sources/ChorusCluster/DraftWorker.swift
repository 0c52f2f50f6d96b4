import ChorusModel
import ChorusSampling
import ChorusWire

/// The worker's logic, without sockets: keeps one model session (KV cache) per generation session,
/// brings it up to the context the coordinator reports, and drafts sequences, each token with the
/// exact law it was drawn from (DESIGN.md "Data flow of one round").
///
/// Requests are served one at a time (the model is CPU-bound); the actor serialises them.
public actor DraftWorker {
    public struct Configuration: Sendable {
        public var workerID: String
        /// Used when a request asks for the worker's own settings.
        public var sampling: SamplingSettings
        public var sequences: Int
        /// Sessions kept before the least recently used one is evicted.
        public var maxSessions: Int
        /// Branches drafted ahead per session while the coordinator verifies (the likely outcomes of its round,
        /// each a possible next context); 0 turns drafting ahead off.
        public var aheadBranches: Int

        public init(
            workerID: String, sampling: SamplingSettings = .standard, sequences: Int = 1, maxSessions: Int = 32,
            aheadBranches: Int = 1
        ) {
            self.workerID = workerID
            self.sampling = sampling
            self.sequences = sequences
            self.maxSessions = maxSessions
            self.aheadBranches = aheadBranches
        }
    }

    /// Counters for logs and tests.
    public struct Counters: Sendable, Equatable {
        public var served = 0
        public var expired = 0
        public var contextMismatches = 0
        public var malformed = 0
        public var evicted = 0
        /// Requests answered from drafts made ahead, and requests that found drafts ahead for other contexts.
        public var aheadHits = 0
        public var aheadMisses = 0
        /// Forward passes spent drafting ahead.
        public var aheadSteps = 0
    }

    /// One generation session's state on this worker: its model session (KV cache), the context the cache holds,
    /// the pending draft tree and what is being drafted ahead (`DraftWorker+Ahead.swift`).
    final class Entry {
        let session: any LanguageModelSession
        /// The tokens whose KV the session holds, in order.
        var context: [Int] = []
        /// Logits after the last context token (nil when the context is empty or unknown).
        var lastLogits: [Float]?
        var lastUsed: UInt64 = 0
        /// Nodes of the draft tree pending on `session` after `context` (nil: no tree).
        var tree: Int?
        /// Drafts being made ahead for the likely next contexts (nil: none).
        var ahead: Ahead?
        /// The context and sequences of the last reply, to learn how much of a reply is accepted.
        var lastReply: (context: [Int], sequences: [[Int]])?
        /// Draft positions verified (up to and including the first rejection) and accepted, over the rounds seen:
        /// the per-position acceptance that ranks the branches worth drafting ahead.
        var positionsVerified = 0
        var positionsAccepted = 0

        init(session: any LanguageModelSession) { self.session = session }

        /// Estimated probability that a draft position is accepted given the ones before it were (Laplace's rule).
        var acceptance: Double { Double(positionsAccepted + 1) / Double(positionsVerified + 2) }

        /// Learns from a request's context how much of the last reply the coordinator accepted: the longest
        /// draft prefix it starts with, followed by one correction or bonus token.
        func observe(acceptedContext context: [Int]) {
            guard let last = lastReply, context.count > last.context.count,
                context[0..<last.context.count].elementsEqual(last.context)
            else { return }
            lastReply = nil
            let added = context[last.context.count...]
            let longest =
                last.sequences.map { s in zip(s, added.dropLast()).prefix(while: { $0 == $1 }).count }.max() ?? 0
            let offered = last.sequences.map(\.count).max() ?? 0
            positionsAccepted += longest
            positionsVerified += min(longest + 1, offered)
        }

        /// Starts an empty draft tree after `context`.
        func startTree() throws {
            _ = try session.scoreTree(tokens: [], parents: [])
            tree = 0
        }

        /// Drops the pending tree (and with it what was drafted ahead): the cache holds `context` again.
        func dropAhead() throws {
            ahead = nil
            if tree != nil {
                try session.rollback(to: context.count)
                tree = nil
            }
        }

        /// One draft step for `streams` on the pending tree: each stream holding logits draws its next token,
        /// then every stream still short of `length` has that token scored, all as rows of one forward pass.
        /// `extra` rows (token, parent) join the same pass; their logits are returned.
        @discardableResult
        func step(
            _ streams: inout [DraftStream], length: Int, settings: SamplingSettings, extra: [(Int, Int)] = []
        ) throws -> [[Float]] {
            for i in streams.indices where streams[i].logits != nil && streams[i].tokens.count < length {
                try streams[i].draw(settings: settings)
            }
            let fed = streams.indices.filter { streams[$0].logits == nil && streams[$0].tokens.count < length }
            let rows = extra + fed.map { (streams[$0].tokens.last ?? 0, streams[$0].node) }
            guard !rows.isEmpty, let first = tree else { return [] }
            let logits = try session.extendTree(tokens: rows.map(\.0), parents: rows.map(\.1))
            tree = first + rows.count
            for (k, i) in fed.enumerated() {
                streams[i].node = first + extra.count + k
                streams[i].logits = logits[extra.count + k]
            }
            return Array(logits[0..<extra.count])
        }
    }

    /// One draft sequence growing on the pending tree: its generator, tokens and their exact laws.
    struct DraftStream {
        var generator: ChorusRandom
        /// Tree node holding the last token scored (−1: the context's end).
        var node: Int
        /// Logits after `node`, from which the next token is drawn (nil: that token is not scored yet).
        var logits: [Float]?
        var tokens: [Int] = []
        var laws: [QuantizedDistribution] = []

        /// Sequence s of a request with `seed` draws from this generator, fixed before anything is drafted.
        static func generator(seed: UInt64, sequence s: Int) -> ChorusRandom {
            ChorusRandom(seed: seed).derived(UInt64(s))
        }

        /// Draws the next token from `logits` with the compact exact law (issue 13): integer masses over 2^20,
        /// drawn from exactly and sent as they are, so the coordinator verifies against this law.
        mutating func draw(settings: SamplingSettings) throws {
            guard let logits else { return }
            let law = try QuantizedDistribution(logits: logits, settings: settings)
            tokens.append(law.sample(using: &generator))
            laws.append(law)
            self.logits = nil
        }
    }

    public let configuration: Configuration
    let model: any LanguageModel
    var sessions: [UInt64: Entry] = [:]
    var clock: UInt64 = 0
    public internal(set) var counters = Counters()
    /// Numbers drafting-ahead plans, so a plan's background loop stops once a newer plan replaces it.
    var aheadGeneration: UInt64 = 0

    /// How the worker describes itself (to `describe` requests and at registration).
    public private(set) var registration: Registration

    /// Sets the address the coordinator should dial (known once the socket is bound).
    public func advertise(_ address: String) { registration.address = address }

    public init(model: any LanguageModel, configuration: Configuration, advertisedAddress: String = "") {
        self.model = model
        self.configuration = configuration
        registration = Registration(
            workerID: configuration.workerID, address: advertisedAddress, model: model.identity,
            sampling: configuration.sampling, sequences: configuration.sequences)
    }

    /// Decodes a request, serves it, and encodes the reply. Malformed bytes get an error reply
    /// (the process keeps serving).
    public func handle(bytes: [UInt8], receivedAt: ContinuousClock.Instant = .now) -> [UInt8] {
        let message: WireMessage
        do {
            message = try WireMessage.decode(bytes)
        } catch {
            counters.malformed += 1
            return WireMessage.error(ErrorReply(code: .malformed, message: "\(error)")).encoded()
        }
        switch message {
        case let .draftRequest(request):
            return handle(request, receivedAt: receivedAt).encoded()
        case .describe:
            return WireMessage.register(registration).encoded()
        default:
            counters.malformed += 1
            return WireMessage.error(
                ErrorReply(code: .invalidRequest, message: "a worker serves draft and describe requests only")
            ).encoded()
        }
    }

    /// Serves one draft request: a `.draftReply` or an `.error`.
    public func handle(_ request: DraftRequest, receivedAt: ContinuousClock.Instant = .now) -> WireMessage {
        if ContinuousClock.now - receivedAt > .milliseconds(request.deadlineMilliseconds) {
            counters.expired += 1
            return .error(
                ErrorReply(
                    code: .deadlineExpired, message: "request of round \(request.round) waited past its deadline"))
        }
        let started = ContinuousClock.now
        do {
            let (streams, fromDraftAhead) = try draft(request)
            counters.served += 1
            var reply = reply(request, streams, fromDraftAhead: fromDraftAhead)
            reply.draftMicroseconds = UInt64(max(0, (ContinuousClock.now - started).microseconds))
            planAhead(after: streams, request: request)
            return .draftReply(reply)
        } catch let error as WorkerFailure {
            if case .contextMismatch = error { counters.contextMismatches += 1 }
            return .error(error.reply)
        } catch {
            sessions[request.session] = nil
            return .error(ErrorReply(code: .internalError, message: "\(error)"))
        }
    }

    enum WorkerFailure: Error {
        case contextMismatch(String)
        case invalid(String)

        var reply: ErrorReply {
            switch self {
            case let .contextMismatch(m): return ErrorReply(code: .contextMismatch, message: m)
            case let .invalid(m): return ErrorReply(code: .invalidRequest, message: m)
            }
        }
    }

    /// Drafts a request's sequences (from what was drafted ahead when a branch matches), with their laws; true
    /// when they come from drafting ahead.
    func draft(_ request: DraftRequest) throws -> (streams: [DraftStream], fromDraftAhead: Bool) {
        let vocabulary = model.vocabularySize
        for t in request.newTokens where t >= vocabulary {
            throw WorkerFailure.invalid("token \(t) outside the worker's vocabulary of \(vocabulary)")
        }
        let entry = try entry(for: request.session)
        guard request.keepLength <= entry.context.count else {
            sessions[request.session] = nil
            throw WorkerFailure.contextMismatch(
                "worker holds \(entry.context.count) tokens of session \(request.session), asked to keep \(request.keepLength)"
            )
        }
        let context = Array(entry.context[0..<request.keepLength]) + request.newTokens
        guard ContextHash(context).value == request.contextHash else {
            sessions[request.session] = nil
            throw WorkerFailure.contextMismatch(
                "context hash differs for session \(request.session); resend the context")
        }
        guard !context.isEmpty else { throw WorkerFailure.invalid("empty context") }
        let room = model.contextLength - context.count
        let length = min(request.draftLength, room)
        guard length >= 1 else {
            throw WorkerFailure.invalid("context of \(context.count) tokens leaves no room to draft")
        }
        let settings = request.useWorkerSampling ? configuration.sampling : request.sampling
        let count = request.sequences == 0 ? configuration.sequences : request.sequences
        entry.observe(acceptedContext: context)

        // Drafted ahead? Then the drafts are those a fresh draft below would make (same seed, same logits).
        if let hit = try draftedAhead(
            entry, context: context, seed: request.seed, settings: settings, count: count,
            length: length)
        {
            counters.aheadHits += 1
            return (hit, true)
        }
        if entry.ahead != nil { counters.aheadMisses += 1 }
        try entry.dropAhead()

        // Bring the KV cache to `context`; keep the logits after its last token.
        let session = entry.session
        var baseLogits: [Float]
        if request.keepLength == entry.context.count, request.newTokens.isEmpty, let logits = entry.lastLogits,
            session.length == context.count
        {
            baseLogits = logits
        } else {
            let keep = min(request.keepLength, session.length)
            let reuse = request.newTokens.isEmpty ? max(keep - 1, 0) : keep
            try session.rollback(to: reuse)
            baseLogits = try session.append(Array(context[reuse...]))
        }
        entry.context = context
        entry.lastLogits = baseLogits

        // Sequence s draws from its own generator, fixed by (seed, s) before anything is drafted.
        var streams = (0..<count).map {
            DraftStream(
                generator: DraftStream.generator(seed: request.seed, sequence: $0), node: -1, logits: baseLogits)
        }
        if count * (length - 1) <= model.contextLength - context.count {
            // All sequences as rows of one forward pass per step: they grow as branches of one tree hanging off
            // the context (extendTree), so each weight is read once per step for all of them. A row's logits
            // equal decoding that sequence alone, so the drafts are those of the loop below.
            try entry.startTree()
            while streams.contains(where: { $0.tokens.count < length }) {
                try entry.step(&streams, length: length, settings: settings)
            }
        } else {
            // Near the end of the context there is no room for every branch at once: one sequence at a time.
            for s in 0..<count {
                for position in 0..<length {
                    try streams[s].draw(settings: settings)
                    if position < length - 1 { streams[s].logits = try session.append([streams[s].tokens[position]]) }
                }
                try session.rollback(to: context.count)
            }
        }
        try session.rollback(to: context.count)
        entry.tree = nil
        return (streams, false)
    }

    /// The reply carrying `streams`' tokens and laws (each cut to the request's length).
    func reply(_ request: DraftRequest, _ streams: [DraftStream], fromDraftAhead: Bool) -> DraftReply {
        DraftReply(
            session: request.session, round: request.round, workerID: configuration.workerID,
            sequences: streams.map(\.tokens), distributions: streams.map { $0.laws.map(WireDistribution.init) },
            draftMicroseconds: 0, fromDraftAhead: fromDraftAhead)
    }

    func entry(for id: UInt64) throws -> Entry {
        clock += 1
        if let existing = sessions[id] {
            existing.lastUsed = clock
            return existing
        }
        if sessions.count >= configuration.maxSessions,
            let oldest = sessions.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key
        {
            sessions[oldest] = nil
            counters.evicted += 1
        }
        let created = Entry(session: try model.makeSession())
        created.lastUsed = clock
        sessions[id] = created
        return created
    }

    /// Drops a session's cache, as a restarted worker would have lost it. The coordinator sends no
    /// such message: finished sessions' caches are evicted, least recently used, beyond `maxSessions`.
    public func forget(session id: UInt64) { sessions[id] = nil }

    public var sessionCount: Int { sessions.count }
}

extension Duration {
    /// Whole microseconds.
    public var microseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}
