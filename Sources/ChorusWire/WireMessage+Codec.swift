import ChorusSampling

extension WireMessage {
    /// The message's bytes.
    public func encoded() -> [UInt8] {
        var w = WireWriter()
        for b in Self.magic { w.u8(b) }
        w.u16(Self.version)
        w.u8(kind)
        switch self {
        case let .register(m):
            w.string(m.workerID)
            w.string(m.address)
            m.model.encode(into: &w)
            m.sampling.encode(into: &w)
            w.u16(UInt16(clamping: m.sequences))
        case let .registerReply(m):
            w.bool(m.accepted)
            w.string(m.reason)
        case let .draftRequest(m):
            w.u64(m.session)
            w.u64(m.round)
            w.u32(UInt32(clamping: m.keepLength))
            w.tokens(m.newTokens)
            w.u64(m.contextHash)
            w.u16(UInt16(clamping: m.draftLength))
            w.u16(UInt16(clamping: m.sequences))
            w.bool(m.useWorkerSampling)
            m.sampling.encode(into: &w)
            w.u64(m.seed)
            w.u32(UInt32(clamping: m.deadlineMilliseconds))
        case let .draftReply(m):
            w.u64(m.session)
            w.u64(m.round)
            w.string(m.workerID)
            w.u32(UInt32(m.distributions.first?.first?.vocabularySize ?? 0))
            w.u32(UInt32(m.sequences.count))
            for (tokens, laws) in zip(m.sequences, m.distributions) {
                w.tokens(tokens)
                for law in laws { law.encode(into: &w) }
            }
            w.u64(m.draftMicroseconds)
            w.bool(m.fromDraftAhead)
        case let .error(m):
            w.u16(m.code.rawValue)
            w.string(m.message)
        case let .generateStart(m):
            w.string(m.prompt)
            w.u32(UInt32(clamping: m.maxTokens))
            m.sampling.encode(into: &w)
            w.bool(m.seed != nil)
            w.u64(m.seed ?? 0)
        case let .generateAccepted(m):
            w.u64(m.session)
            w.u32(UInt32(clamping: m.promptTokens))
            w.u64(m.seed)
        case let .generatePoll(m):
            w.u64(m.session)
            w.u32(UInt32(clamping: m.from))
            w.u32(UInt32(clamping: m.waitMilliseconds))
        case let .generateUpdate(m):
            w.u64(m.session)
            w.u32(UInt32(clamping: m.from))
            w.tokens(m.tokens)
            w.string(m.text)
            w.bool(m.done)
            w.string(m.finishReason)
            m.statistics.encode(into: &w)
        case .describe:
            break
        }
        return w.bytes
    }

    /// Decodes one message; anything malformed is a ``WireError``.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> WireMessage {
        var r = WireReader(bytes)
        var magic: [UInt8] = []
        for _ in 0..<4 { magic.append(try r.u8("magic")) }
        guard magic == Self.magic else { throw WireError.badMagic(found: magic) }
        let version = try r.u16("version")
        guard version == Self.version else {
            throw WireError.unsupportedVersion(found: version, supported: Self.version)
        }
        let kind = try r.u8("kind")
        let message: WireMessage
        switch kind {
        case 1:
            let workerID = try r.string("worker id")
            let address = try r.string("address")
            let model = try ModelIdentity.decode(from: &r)
            let sampling = try SamplingSettings.decode(from: &r)
            let sequences = Int(try r.u16("sequences"))
            guard sequences >= 1, sequences <= WireLimits.sequences else {
                throw WireError.invalidValue(field: "sequences", reason: "\(sequences) (1…\(WireLimits.sequences))")
            }
            message = .register(
                Registration(
                    workerID: workerID, address: address, model: model, sampling: sampling, sequences: sequences))
        case 2:
            message = .registerReply(
                RegistrationReply(accepted: try r.bool("accepted"), reason: try r.string("reason")))
        case 3:
            let session = try r.u64("session")
            let round = try r.u64("round")
            let keep = Int(try r.u32("keep length"))
            let tokens = try r.tokens("new tokens", limit: WireLimits.tokens, vocabularySize: WireLimits.vocabulary)
            let hash = try r.u64("context hash")
            let length = Int(try r.u16("draft length"))
            guard length >= 1, length <= WireLimits.draftLength else {
                throw WireError.invalidValue(field: "draft length", reason: "\(length) (1…\(WireLimits.draftLength))")
            }
            let sequences = Int(try r.u16("sequences"))
            guard sequences <= WireLimits.sequences else {
                throw WireError.invalidValue(field: "sequences", reason: "\(sequences) (0…\(WireLimits.sequences))")
            }
            let useWorkerSampling = try r.bool("use worker sampling")
            let sampling = try SamplingSettings.decode(from: &r)
            let seed = try r.u64("seed")
            let deadline = Int(try r.u32("deadline"))
            message = .draftRequest(
                DraftRequest(
                    session: session, round: round, keepLength: keep, newTokens: tokens, contextHash: hash,
                    draftLength: length, sequences: sequences, useWorkerSampling: useWorkerSampling,
                    sampling: sampling, seed: seed,
                    deadlineMilliseconds: deadline))
        case 4:
            let session = try r.u64("session")
            let round = try r.u64("round")
            let worker = try r.string("worker id")
            let vocabulary = try r.vocabularySize()
            let count = try r.count("sequence count", limit: WireLimits.sequences, bytesEach: 4)
            guard count >= 1 else {
                throw WireError.invalidValue(field: "sequence count", reason: "a reply carries at least one sequence")
            }
            var sequences: [[Int]] = []
            var laws: [[WireDistribution]] = []
            var length: Int?
            for s in 0..<count {
                let tokens = try r.tokens("sequence \(s)", limit: WireLimits.draftLength, vocabularySize: vocabulary)
                guard !tokens.isEmpty, length == nil || length == tokens.count else {
                    throw WireError.invalidValue(
                        field: "sequence \(s)", reason: "sequences must be non-empty and of one length")
                }
                length = tokens.count
                var row: [WireDistribution] = []
                for _ in tokens { row.append(try WireDistribution.decode(from: &r, vocabularySize: vocabulary)) }
                sequences.append(tokens)
                laws.append(row)
            }
            let micros = try r.u64("draft time")
            let ahead = try r.bool("from draft-ahead")
            message = .draftReply(
                DraftReply(
                    session: session, round: round, workerID: worker, sequences: sequences, distributions: laws,
                    draftMicroseconds: micros, fromDraftAhead: ahead))
        case 5:
            let raw = try r.u16("error code")
            guard let code = WireErrorCode(rawValue: raw) else {
                throw WireError.invalidValue(field: "error code", reason: "\(raw)")
            }
            message = .error(ErrorReply(code: code, message: try r.string("error message")))
        case 6:
            let prompt = try r.string("prompt", limit: WireLimits.text)
            let maxTokens = Int(try r.u32("max tokens"))
            let sampling = try SamplingSettings.decode(from: &r)
            let hasSeed = try r.bool("has seed")
            let seed = try r.u64("seed")
            // One encoding per message: no seed is written as 0.
            guard hasSeed || seed == 0 else {
                throw WireError.invalidValue(field: "seed", reason: "a seed without has-seed")
            }
            message = .generateStart(
                GenerateStart(prompt: prompt, maxTokens: maxTokens, sampling: sampling, seed: hasSeed ? seed : nil))
        case 7:
            message = .generateAccepted(
                GenerateAccepted(
                    session: try r.u64("session"), promptTokens: Int(try r.u32("prompt tokens")),
                    seed: try r.u64("seed")))
        case 8:
            message = .generatePoll(
                GeneratePoll(
                    session: try r.u64("session"), from: Int(try r.u32("from")),
                    waitMilliseconds: Int(try r.u32("wait"))))
        case 9:
            let session = try r.u64("session")
            let from = Int(try r.u32("from"))
            let tokens = try r.tokens("tokens", limit: WireLimits.tokens, vocabularySize: WireLimits.vocabulary)
            let text = try r.string("text", limit: WireLimits.text)
            let done = try r.bool("done")
            let reason = try r.string("finish reason")
            let statistics = try GenerationStatistics.decode(from: &r)
            message = .generateUpdate(
                GenerateUpdate(
                    session: session, from: from, tokens: tokens, text: text, done: done, finishReason: reason,
                    statistics: statistics))
        case 10:
            message = .describe
        default:
            throw WireError.unknownKind(kind)
        }
        try r.finish()
        return message
    }
}

extension ModelIdentity {
    func encode(into w: inout WireWriter) {
        w.string(name)
        w.string(fileHash)
        w.string(vocabularyHash)
        w.u32(UInt32(clamping: vocabularySize))
    }

    static func decode(from r: inout WireReader) throws(WireError) -> ModelIdentity {
        let name = try r.string("model name")
        let fileHash = try r.string("model file hash")
        let vocabularyHash = try r.string("vocabulary hash")
        let size = try r.vocabularySize()
        return ModelIdentity(name: name, fileHash: fileHash, vocabularyHash: vocabularyHash, vocabularySize: size)
    }
}

extension SamplingSettings {
    func encode(into w: inout WireWriter) {
        w.f64(temperature)
        w.u32(UInt32(clamping: topK))
        w.f64(topP)
    }

    static func decode(from r: inout WireReader) throws(WireError) -> SamplingSettings {
        let settings = SamplingSettings(
            temperature: try r.f64("temperature"), topK: Int(try r.u32("top-k")), topP: try r.f64("top-p"))
        do {
            try settings.validate()
        } catch {
            throw WireError.invalidValue(field: "sampling settings", reason: "\(error)")
        }
        return settings
    }
}

extension GenerationStatistics {
    func encode(into w: inout WireWriter) {
        for v in [generatedTokens, targetForwards, draftedTokens, acceptedDraftTokens, draftsReceived] {
            w.u64(UInt64(clamping: v))
        }
        w.u64(elapsedMicroseconds)
        w.u64(UInt64(clamping: repliesUsed))
        w.u64(UInt64(clamping: draftAheadHits))
        w.u64(draftWaitMicroseconds)
    }

    static func decode(from r: inout WireReader) throws(WireError) -> GenerationStatistics {
        var s = GenerationStatistics()
        func count(_ field: String) throws(WireError) -> Int {
            let v = try r.u64(field)
            guard v <= UInt64(Int32.max) else { throw WireError.invalidValue(field: field, reason: "\(v)") }
            return Int(v)
        }
        s.generatedTokens = try count("generated tokens")
        s.targetForwards = try count("target forwards")
        s.draftedTokens = try count("drafted tokens")
        s.acceptedDraftTokens = try count("accepted draft tokens")
        s.draftsReceived = try count("drafts received")
        s.elapsedMicroseconds = try r.u64("elapsed")
        s.repliesUsed = try count("replies used")
        s.draftAheadHits = try count("draft-ahead hits")
        s.draftWaitMicroseconds = try r.u64("draft wait")
        return s
    }
}

/// FNV-1a (64-bit) over token ids as little-endian u32: the context check of ``DraftRequest``.
public struct ContextHash: Sendable, Equatable {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    public init() {}

    public init(_ tokens: [Int]) { append(tokens) }

    public mutating func append(_ tokens: [Int]) {
        for t in tokens {
            var v = UInt32(truncatingIfNeeded: t)
            for _ in 0..<4 {
                value ^= UInt64(v & 0xFF)
                value &*= 0x0000_0100_0000_01B3
                v >>= 8
            }
        }
    }
}
