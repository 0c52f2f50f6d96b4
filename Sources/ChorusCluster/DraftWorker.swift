import ChorusModel
import ChorusSampling
import ChorusWire

/// The worker's logic, without sockets: keeps one model session (KV cache) per generation session,
/// brings it up to the context the coordinator reports, and drafts sequences, each token with the
/// exact law it was drawn from (DESIGN.md "Data flow of one round").
///
/// Requests of several generation sessions that wait at the same moment are drafted together: every draft step
/// of all of them is ONE forward pass of the draft model, each session's sequences as rows on its own KV cache
/// (``LanguageModel/extendTrees(_:tokens:parents:)``), and the sessions drafting ahead step together in the same
/// way (`DraftWorker+Batch.swift`). A row's logits do not depend on the other rows, and each sequence draws from
/// its own generator, so a reply is token for token and law for law what the worker would send serving that
/// request alone.
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
        /// True: the requests of several sessions waiting at the same moment share each draft forward pass, and
        /// so do the sessions drafting ahead; false: one request (or one session's drafting-ahead step) per
        /// forward pass, in arrival order (`chorus worker --no-batch`, for comparisons). The replies are the same.
        public var batchSessions: Bool

        public init(
            workerID: String, sampling: SamplingSettings = .standard, sequences: Int = 1, maxSessions: Int = 32,
            aheadBranches: Int = 1, batchSessions: Bool = true
        ) {
            self.workerID = workerID
            self.sampling = sampling
            self.sequences = sequences
            self.maxSessions = maxSessions
            self.aheadBranches = aheadBranches
            self.batchSessions = batchSessions
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
        /// Forward passes spent drafting ahead, and the rows they scored (all sessions).
        public var aheadSteps = 0
        public var aheadRows = 0
        /// Forward passes spent on requests, and how many of them carried the rows of two sessions or more (their
        /// requests waited at the same moment).
        public var requestForwards = 0
        public var sharedForwards = 0
        /// Drafting-ahead forward passes that carried two sessions' rows or more.
        public var sharedAheadSteps = 0
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
        /// Nodes of the draft tree pending on `session` after `context` (nil: no tree). A reply's sequences stay
        /// pending after it, as the start of drafting ahead (`DraftWorker+Ahead.swift`).
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

        /// The rows of one draft step for `streams` on the pending tree: each stream holding logits draws its next
        /// token, then every stream still short of `length` needs that token scored. `extra` rows (token, parent)
        /// come first; the caller scores all the rows as an extension of the pending tree (one forward pass,
        /// possibly shared with other sessions) and hands the logits to ``absorb(_:logits:into:)``.
        func stepRows(
            _ streams: inout [DraftStream], length: Int, settings: SamplingSettings, extra: [(Int, Int)] = []
        ) throws -> Step {
            for i in streams.indices where streams[i].logits != nil && streams[i].tokens.count < length {
                try streams[i].draw(settings: settings)
            }
            let fed = streams.indices.filter { streams[$0].logits == nil && streams[$0].tokens.count < length }
            let rows = extra + fed.map { (streams[$0].tokens.last ?? 0, streams[$0].node) }
            return Step(rows: rows, fed: fed, extraCount: extra.count)
        }

        /// Takes a step's logits ([rows][vocab], scored as nodes `first`… of the tree, `first` the tree's size
        /// before the step): the fed streams' nodes and next logits. Returns the `extra` rows' logits.
        func absorb(_ step: Step, first: Int, logits: [[Float]], into streams: inout [DraftStream]) -> [[Float]] {
            for (k, i) in step.fed.enumerated() {
                streams[i].node = first + step.extraCount + k
                streams[i].path.append(streams[i].node)
                streams[i].logits = logits[step.extraCount + k]
            }
            return Array(logits[0..<step.extraCount])
        }
    }

    /// The rows one session adds to its pending tree in a draft step: `extraCount` extra rows, then one row per
    /// fed stream (indices into the streams).
    struct Step {
        var rows: [(token: Int, parent: Int)]
        var fed: [Int]
        var extraCount: Int
    }

    /// One draft sequence growing on the pending tree: its generator, tokens and their exact laws.
    struct DraftStream {
        var generator: ChorusRandom
        /// Tree node holding the last token scored (−1: the context's end).
        var node: Int
        /// Tree nodes of the tokens scored on the tree, in order: [tokens scored], those of `tokens`' start
        /// (every token but the last once drafted), so that drafting ahead builds on them.
        var path: [Int] = []
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
    /// Requests waiting for the next batch, and whether a loop is serving them (`DraftWorker+Batch.swift`).
    var waiting: [Waiting] = []
    var serving = false
    /// Whether the drafting-ahead loop runs, and (one session per step, without batching) whose turn is next.
    var aheadRunning = false
    var aheadTurn = 0

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
    public func handle(bytes: [UInt8], receivedAt: ContinuousClock.Instant = .now) async -> [UInt8] {
        let message: WireMessage
        do {
            message = try WireMessage.decode(bytes)
        } catch {
            counters.malformed += 1
            return WireMessage.error(ErrorReply(code: .malformed, message: "\(error)")).encoded()
        }
        switch message {
        case let .draftRequest(request):
            return await handle(request, receivedAt: receivedAt).encoded()
        case .describe:
            return WireMessage.register(registration).encoded()
        default:
            counters.malformed += 1
            return WireMessage.error(
                ErrorReply(code: .invalidRequest, message: "a worker serves draft and describe requests only")
            ).encoded()
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
