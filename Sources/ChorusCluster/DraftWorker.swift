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

        public init(workerID: String, sampling: SamplingSettings = .standard, sequences: Int = 1, maxSessions: Int = 32)
        {
            self.workerID = workerID
            self.sampling = sampling
            self.sequences = sequences
            self.maxSessions = maxSessions
        }
    }

    /// Counters for logs and tests.
    public struct Counters: Sendable, Equatable {
        public var served = 0
        public var expired = 0
        public var contextMismatches = 0
        public var malformed = 0
        public var evicted = 0
    }

    final class Entry {
        let session: any LanguageModelSession
        /// The tokens whose KV the session holds, in order.
        var context: [Int] = []
        /// Logits after the last context token (nil when the context is empty or unknown).
        var lastLogits: [Float]?
        var lastUsed: UInt64 = 0

        init(session: any LanguageModelSession) { self.session = session }
    }

    public let configuration: Configuration
    let model: any LanguageModel
    var sessions: [UInt64: Entry] = [:]
    var clock: UInt64 = 0
    public private(set) var counters = Counters()

    /// How the worker describes itself (to `describe` requests and at registration).
    public private(set) var registration: Registration

    /// Sets the address the coordinator should dial (known once the socket is bound).
    public func advertise(_ address: String) { registration.address = address }

    public init(model: any LanguageModel, configuration: Configuration, advertisedAddress: String = "") {
        self.model = model
        self.configuration = configuration
        let identity = model.identity
        registration = Registration(
            workerID: configuration.workerID, address: advertisedAddress,
            model: ModelDescriptor(
                name: identity.name, fileHash: identity.fileHash, vocabularyHash: identity.vocabularyHash,
                vocabularySize: identity.vocabularySize),
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
            let reply = try draft(request)
            counters.served += 1
            var result = reply
            result.draftMicroseconds = UInt64(max(0, (ContinuousClock.now - started).microseconds))
            return .draftReply(result)
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

    func draft(_ request: DraftRequest) throws -> DraftReply {
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

        let settings = request.useWorkerSampling ? configuration.sampling : request.sampling
        let count = request.sequences == 0 ? configuration.sequences : request.sequences
        // Sequence s draws from its own generator, fixed by (seed, s) before anything is drafted.
        var generators = (0..<count).map { ChorusRandom(seed: request.seed).derived(UInt64($0)) }
        var sequences = [[Int]](repeating: [], count: count)
        var laws = [[WireDistribution]](repeating: [], count: count)
        /// One token of sequence s from `logits`, with the exact law it was drawn from: the compact exact law
        /// (issue 13), integer masses over 2^20, drawn from exactly (integer sampling) and sent as it is, so the
        /// coordinator verifies against this law.
        func draw(_ s: Int, _ logits: [Float]) throws {
            let law = try QuantizedDistribution(logits: logits, settings: settings)
            sequences[s].append(law.sample(using: &generators[s]))
            laws[s].append(WireDistribution(law))
        }
        if count * (length - 1) <= model.contextLength - context.count {
            // All sequences as rows of one forward pass per step: they grow as branches of one tree hanging off
            // the context (extendTree), so each weight is read once per step for all of them. A row's logits
            // equal decoding that sequence alone, so the drafts are those of the loop below.
            var logits = [[Float]](repeating: baseLogits, count: count)
            var nodes = [Int](repeating: -1, count: count)
            _ = try session.scoreTree(tokens: [], parents: [])
            for position in 0..<length {
                for s in 0..<count { try draw(s, logits[s]) }
                guard position < length - 1 else { break }
                logits = try session.extendTree(tokens: sequences.map { $0[position] }, parents: nodes)
                nodes = (0..<count).map { position * count + $0 }
            }
        } else {
            // Near the end of the context there is no room for every branch at once: one sequence at a time.
            for s in 0..<count {
                var logits = baseLogits
                for position in 0..<length {
                    try draw(s, logits)
                    if position < length - 1 { logits = try session.append([sequences[s][position]]) }
                }
                try session.rollback(to: context.count)
            }
        }
        try session.rollback(to: context.count)
        return DraftReply(
            session: request.session, round: request.round, workerID: configuration.workerID, sequences: sequences,
            distributions: laws, draftMicroseconds: 0)
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
