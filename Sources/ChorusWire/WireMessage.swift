import ChorusSampling

/// Protocol limits: counts above these are refused by the decoder.
public enum WireLimits {
    public static let vocabulary = 1 << 22
    public static let tokens = 1 << 20
    public static let draftLength = 64
    public static let sequences = 64
    public static let text = 1 << 20
}

/// A worker announcing itself to the coordinator's registration endpoint.
public struct Registration: Sendable, Equatable {
    public var workerID: String
    /// Where the worker's REP socket listens, as the coordinator should dial it.
    public var address: String
    public var model: ModelIdentity
    /// The worker's default sampling settings (a request may override them).
    public var sampling: SamplingSettings
    /// How many sequences the worker drafts per request by default.
    public var sequences: Int

    public init(workerID: String, address: String, model: ModelIdentity, sampling: SamplingSettings, sequences: Int) {
        self.workerID = workerID
        self.address = address
        self.model = model
        self.sampling = sampling
        self.sequences = sequences
    }
}

public struct RegistrationReply: Sendable, Equatable {
    public var accepted: Bool
    /// Why not, when refused (for example a vocabulary mismatch).
    public var reason: String

    public init(accepted: Bool, reason: String) {
        self.accepted = accepted
        self.reason = reason
    }
}

/// One round's request to a worker: bring the session's context up to date, then draft.
public struct DraftRequest: Sendable, Equatable {
    public var session: UInt64
    public var round: UInt64
    /// How many tokens of the worker's previous context for this session are still valid.
    public var keepLength: Int
    /// Tokens to append after the kept prefix (accepted tokens since the last round, or the whole
    /// context when `keepLength` is 0).
    public var newTokens: [Int]
    /// FNV-1a 64 of the whole context after appending (``ContextHash``): a worker whose cache
    /// disagrees answers ``WireErrorCode/contextMismatch`` instead of drafting from a wrong prefix.
    public var contextHash: UInt64
    /// Draft length L.
    public var draftLength: Int
    /// Number of sequences to draft; 0 asks for the worker's configured number.
    public var sequences: Int
    /// When true the worker drafts with its own configured settings and ignores `sampling`.
    public var useWorkerSampling: Bool
    public var sampling: SamplingSettings
    public var seed: UInt64
    /// The worker drops the request if it cannot start within this many milliseconds of receipt.
    public var deadlineMilliseconds: Int

    /// The seed of a worker's next request in the same session, when it answered this one: a fixed function of
    /// this request's seed, so the worker knows it before the round is verified and can draft ahead with exactly
    /// the randomness the next request will carry (DESIGN.md: "its randomness is fixed before the verification
    /// outcome is known"). Drafts made ahead are then the drafts a fresh request would make, token for token.
    public static func nextSeed(after seed: UInt64) -> UInt64 {
        var rng = ChorusRandom(seed: seed).derived(0x6E65_7874)  // "next"
        return rng.next()
    }

    public init(
        session: UInt64, round: UInt64, keepLength: Int, newTokens: [Int], contextHash: UInt64, draftLength: Int,
        sequences: Int, useWorkerSampling: Bool = false, sampling: SamplingSettings, seed: UInt64,
        deadlineMilliseconds: Int
    ) {
        self.session = session
        self.round = round
        self.keepLength = keepLength
        self.newTokens = newTokens
        self.contextHash = contextHash
        self.draftLength = draftLength
        self.sequences = sequences
        self.useWorkerSampling = useWorkerSampling
        self.sampling = sampling
        self.seed = seed
        self.deadlineMilliseconds = deadlineMilliseconds
    }
}

/// A worker's drafts: for every sequence its tokens and, for every position, the exact law the token
/// was drawn from.
public struct DraftReply: Sendable, Equatable {
    public var session: UInt64
    public var round: UInt64
    public var workerID: String
    /// sequences: [S][L] token ids.
    public var sequences: [[Int]]
    /// distributions: [S][L].
    public var distributions: [[WireDistribution]]
    /// Time the worker spent drafting, in microseconds.
    public var draftMicroseconds: UInt64
    /// True when the drafts were made ahead, while the previous round was being verified (a draft-ahead cache
    /// hit): the same tokens and laws a fresh draft with this request's seed gives, ready at once.
    public var fromDraftAhead: Bool

    public init(
        session: UInt64, round: UInt64, workerID: String, sequences: [[Int]], distributions: [[WireDistribution]],
        draftMicroseconds: UInt64, fromDraftAhead: Bool = false
    ) {
        self.session = session
        self.round = round
        self.workerID = workerID
        self.sequences = sequences
        self.distributions = distributions
        self.draftMicroseconds = draftMicroseconds
        self.fromDraftAhead = fromDraftAhead
    }
}

public enum WireErrorCode: UInt16, Sendable {
    case malformed = 1
    case contextMismatch = 2
    case deadlineExpired = 3
    case vocabularyMismatch = 4
    case internalError = 5
    case unknownSession = 6
    case busy = 7
    case invalidRequest = 8
}

public struct ErrorReply: Sendable, Equatable {
    public var code: WireErrorCode
    public var message: String

    public init(code: WireErrorCode, message: String) {
        self.code = code
        self.message = message
    }
}

/// A client asking the coordinator to generate text.
public struct GenerateStart: Sendable, Equatable {
    public var prompt: String
    public var maxTokens: Int
    public var sampling: SamplingSettings
    /// nil: the coordinator picks a seed (and reports it).
    public var seed: UInt64?

    public init(prompt: String, maxTokens: Int, sampling: SamplingSettings, seed: UInt64?) {
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.seed = seed
    }
}

public struct GenerateAccepted: Sendable, Equatable {
    public var session: UInt64
    public var promptTokens: Int
    public var seed: UInt64

    public init(session: UInt64, promptTokens: Int, seed: UInt64) {
        self.session = session
        self.promptTokens = promptTokens
        self.seed = seed
    }
}

/// Long-poll for a session's progress: tokens from index `from` on.
public struct GeneratePoll: Sendable, Equatable {
    public var session: UInt64
    public var from: Int
    /// How long the coordinator may hold the poll waiting for new tokens.
    public var waitMilliseconds: Int

    public init(session: UInt64, from: Int, waitMilliseconds: Int) {
        self.session = session
        self.from = from
        self.waitMilliseconds = waitMilliseconds
    }
}

/// Generation statistics (DESIGN.md "Metrics vocabulary").
public struct GenerationStatistics: Sendable, Equatable, Codable {
    enum CodingKeys: String, CodingKey {
        case generatedTokens, targetForwards, draftedTokens, acceptedDraftTokens, draftsReceived, elapsedMicroseconds
        case repliesUsed, draftAheadHits, draftWaitMicroseconds
        case draftReplyBytes, draftTokensReceived, coordinatorMicroseconds, roundsNotDrafted
    }

    /// Decodes JSON written before the later fields existed (they default to 0).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        generatedTokens = try c.decode(Int.self, forKey: .generatedTokens)
        targetForwards = try c.decode(Int.self, forKey: .targetForwards)
        draftedTokens = try c.decode(Int.self, forKey: .draftedTokens)
        acceptedDraftTokens = try c.decode(Int.self, forKey: .acceptedDraftTokens)
        draftsReceived = try c.decode(Int.self, forKey: .draftsReceived)
        elapsedMicroseconds = try c.decode(UInt64.self, forKey: .elapsedMicroseconds)
        repliesUsed = try c.decodeIfPresent(Int.self, forKey: .repliesUsed) ?? 0
        draftAheadHits = try c.decodeIfPresent(Int.self, forKey: .draftAheadHits) ?? 0
        draftWaitMicroseconds = try c.decodeIfPresent(UInt64.self, forKey: .draftWaitMicroseconds) ?? 0
        draftReplyBytes = try c.decodeIfPresent(Int.self, forKey: .draftReplyBytes) ?? 0
        draftTokensReceived = try c.decodeIfPresent(Int.self, forKey: .draftTokensReceived) ?? 0
        coordinatorMicroseconds = try c.decodeIfPresent(UInt64.self, forKey: .coordinatorMicroseconds) ?? 0
        roundsNotDrafted = try c.decodeIfPresent(Int.self, forKey: .roundsNotDrafted) ?? 0
    }

    public var generatedTokens: Int = 0
    /// Target forward passes (rounds).
    public var targetForwards: Int = 0
    public var draftedTokens: Int = 0
    public var acceptedDraftTokens: Int = 0
    /// Sum over rounds of the number of drafts that arrived in time.
    public var draftsReceived: Int = 0
    public var elapsedMicroseconds: UInt64 = 0
    /// Worker replies used, and how many of them came from drafting ahead (a draft-ahead cache hit).
    public var repliesUsed: Int = 0
    public var draftAheadHits: Int = 0
    /// Time the target sat idle waiting for drafts, summed over the rounds (microseconds).
    public var draftWaitMicroseconds: UInt64 = 0

    /// Bytes of the draft replies the coordinator received, and the drafted tokens they carried (each
    /// with its law; counted before the round trims the drafts to one length). Coordinator-side only:
    /// not sent to NNG clients (the wire form of these statistics is unchanged).
    public var draftReplyBytes: Int = 0
    public var draftTokensReceived: Int = 0
    /// Coordinator CPU time outside the target forward, in microseconds: decoding and checking the
    /// replies, building the tree, the target laws of the walked nodes and verification (thread CPU
    /// time of those stretches). Coordinator-side only.
    public var coordinatorMicroseconds: UInt64 = 0
    /// Rounds that asked for no drafts because, with several sessions running, rounds without drafts were
    /// measured to give more tokens per second at that load (the coordinator's draft gate). Coordinator-side only.
    public var roundsNotDrafted: Int = 0

    public init() {}

    /// Share of the used replies that were drafted ahead.
    public var draftAheadHitRate: Double { repliesUsed == 0 ? 0 : Double(draftAheadHits) / Double(repliesUsed) }

    /// Reply bytes per drafted token received (issue 13's "bytes per drafted token"); 0 without drafts.
    public var bytesPerDraftedToken: Double {
        draftTokensReceived == 0 ? 0 : Double(draftReplyBytes) / Double(draftTokensReceived)
    }

    /// Coordinator CPU time outside the target forward per round, in microseconds.
    public var coordinatorMicrosecondsPerRound: Double {
        targetForwards == 0 ? 0 : Double(coordinatorMicroseconds) / Double(targetForwards)
    }

    /// Tokens produced per target forward.
    public var blockEfficiency: Double { targetForwards == 0 ? 0 : Double(generatedTokens) / Double(targetForwards) }
    /// Accepted draft tokens per drafted token.
    public var acceptanceRate: Double { draftedTokens == 0 ? 0 : Double(acceptedDraftTokens) / Double(draftedTokens) }
    public var draftsPerRound: Double { targetForwards == 0 ? 0 : Double(draftsReceived) / Double(targetForwards) }
    public var tokensPerSecond: Double {
        elapsedMicroseconds == 0 ? 0 : Double(generatedTokens) / (Double(elapsedMicroseconds) / 1e6)
    }

    /// What a client should be told about how the text was made: that no round used a draft, and why (the
    /// coordinator chose plain rounds at this load, or no worker was ready or answered in time), so the text came
    /// from the target alone at plain decoding speed. Empty when drafts were used.
    public var warnings: [String] {
        guard targetForwards > 0, draftsReceived == 0 else { return [] }
        if roundsNotDrafted >= targetForwards {
            return [
                "no round of \(targetForwards) asked for drafts: with several sessions running, the coordinator "
                    + "measured rounds without drafts to give more tokens per second at this load (its log says "
                    + "when this changes; `--always-draft` turns the measurement off); this text is the target "
                    + "model's alone"
            ]
        }
        return [
            "no drafts were used in any of the \(targetForwards) rounds (no worker ready, or none answered in "
                + "time): this text is the target model's alone, at plain decoding speed; the coordinator's log "
                + "says why each worker is not ready"
        ]
    }
}

public struct GenerateUpdate: Sendable, Equatable {
    public var session: UInt64
    /// Index of the first token in `tokens` (the poll's `from`).
    public var from: Int
    public var tokens: [Int]
    /// Text of `tokens` (UTF-8 pieces held back until complete).
    public var text: String
    public var done: Bool
    /// Why generation stopped, when done ("length", "eos", "context", or an error).
    public var finishReason: String
    public var statistics: GenerationStatistics

    public init(
        session: UInt64, from: Int, tokens: [Int], text: String, done: Bool, finishReason: String,
        statistics: GenerationStatistics
    ) {
        self.session = session
        self.from = from
        self.tokens = tokens
        self.text = text
        self.done = done
        self.finishReason = finishReason
        self.statistics = statistics
    }
}

/// Every message of the Chorus protocol. Encoding: magic "CHRS", version (u16), kind (u8), body.
public enum WireMessage: Sendable, Equatable {
    case register(Registration)
    case registerReply(RegistrationReply)
    case draftRequest(DraftRequest)
    case draftReply(DraftReply)
    case error(ErrorReply)
    case generateStart(GenerateStart)
    case generateAccepted(GenerateAccepted)
    case generatePoll(GeneratePoll)
    case generateUpdate(GenerateUpdate)
    /// Asks a worker to describe itself; it answers with `.register`.
    case describe

    public static let magic: [UInt8] = [0x43, 0x48, 0x52, 0x53]
    /// 2: draft laws may travel quantized (``WireDistribution/Storage/quantized(_:)``, form 2).
    /// Both sides must speak the same version; the decoder refuses any other.
    public static let version: UInt16 = 3

    var kind: UInt8 {
        switch self {
        case .register: return 1
        case .registerReply: return 2
        case .draftRequest: return 3
        case .draftReply: return 4
        case .error: return 5
        case .generateStart: return 6
        case .generateAccepted: return 7
        case .generatePoll: return 8
        case .generateUpdate: return 9
        case .describe: return 10
        }
    }
}
