import ChorusSampling
import Testing

@testable import ChorusWire

let sampleMessages: [WireMessage] = {
    let law = try! TokenDistribution(probabilities: [0.5, 0.25, 0.125, 0.125])
    let sparse = try! TokenDistribution(support: [7], probabilities: [1], vocabularySize: 4096)
    let dense = WireDistribution(law)
    let sparseWire = WireDistribution(sparse)
    let quantized = WireDistribution(
        try! QuantizedDistribution(
            vocabularySize: 300, totalBits: 16, tokens: [0, 5, 130, 299], masses: [1, 40_000, 25_000, 535]))
    var stats = GenerationStatistics()
    stats.generatedTokens = 200
    stats.targetForwards = 80
    stats.draftedTokens = 400
    stats.acceptedDraftTokens = 130
    stats.draftsReceived = 240
    stats.elapsedMicroseconds = 1_234_567
    stats.repliesUsed = 90
    stats.draftAheadHits = 61
    stats.draftWaitMicroseconds = 45_678
    let model = ModelIdentity(name: "draft", fileHash: "ab12", vocabularyHash: "cd34", vocabularySize: 4)
    return [
        .register(
            Registration(
                workerID: "w1", address: "tcp://10.0.0.2:7101", model: model,
                sampling: .init(temperature: 0.8, topK: 40, topP: 0.95), sequences: 2)),
        .registerReply(RegistrationReply(accepted: false, reason: "vocabulary mismatch")),
        .draftRequest(
            DraftRequest(
                session: 9, round: 3, keepLength: 12, newTokens: [1, 2, 3], contextHash: ContextHash([1, 2, 3]).value,
                draftLength: 4, sequences: 2, sampling: .standard, seed: 42, deadlineMilliseconds: 250)),
        .draftReply(
            DraftReply(
                session: 9, round: 3, workerID: "w1", sequences: [[0, 1], [0, 2]],
                distributions: [[dense, dense], [dense, dense]], draftMicroseconds: 1500)),
        .draftReply(
            DraftReply(
                session: 1, round: 1, workerID: "w2", sequences: [[7]], distributions: [[sparseWire]],
                draftMicroseconds: 1)),
        .draftReply(
            DraftReply(
                session: 2, round: 7, workerID: "w3", sequences: [[5, 130], [299, 0]],
                distributions: [[quantized, quantized], [quantized, quantized]], draftMicroseconds: 900)),
        .error(ErrorReply(code: .contextMismatch, message: "context hash differs")),
        .generateStart(GenerateStart(prompt: "In the beginning", maxTokens: 64, sampling: .greedy, seed: nil)),
        .generateStart(GenerateStart(prompt: "café 🙂", maxTokens: 1, sampling: .standard, seed: 7)),
        .generateAccepted(GenerateAccepted(session: 5, promptTokens: 4, seed: 99)),
        .generatePoll(GeneratePoll(session: 5, from: 10, waitMilliseconds: 100)),
        .describe,
        .draftRequest(
            DraftRequest(
                session: 1, round: 1, keepLength: 0, newTokens: [4], contextHash: ContextHash([4]).value,
                draftLength: 2, sequences: 0, useWorkerSampling: true, sampling: .greedy, seed: 0,
                deadlineMilliseconds: 5)),
        .generateUpdate(
            GenerateUpdate(
                session: 5, from: 10, tokens: [5, 6], text: " God", done: true, finishReason: "length",
                statistics: stats)),
    ]
}()

@Suite struct WireTests {
    @Test func everyMessageRoundTrips() throws {
        for message in sampleMessages {
            let bytes = message.encoded()
            #expect(try WireMessage.decode(bytes) == message)
        }
    }

    @Test func sparseDistributionsTravelSparse() {
        let sparse = try! TokenDistribution(support: [7, 9], probabilities: [0.5, 0.5], vocabularySize: 4096)
        guard case .sparse = WireDistribution(sparse).storage else {
            Issue.record("a two-token law over 4096 tokens should be sparse")
            return
        }
    }

    /// Every proper prefix of every message is refused with a typed error (never a crash).
    @Test func everyTruncationIsATypedError() {
        for message in sampleMessages {
            let bytes = message.encoded()
            for cut in 0..<bytes.count {
                #expect(throws: WireError.self) { try WireMessage.decode(Array(bytes[0..<cut])) }
            }
            #expect(throws: WireError.trailingBytes(1)) { try WireMessage.decode(bytes + [0]) }
        }
    }

    @Test func specificErrors() throws {
        var bytes = sampleMessages[0].encoded()
        bytes[0] = 0x58
        #expect(throws: WireError.badMagic(found: [0x58, 0x48, 0x52, 0x53])) { try WireMessage.decode(bytes) }
        bytes = sampleMessages[0].encoded()
        bytes[4] = 1
        #expect(throws: WireError.unsupportedVersion(found: 1, supported: 3)) { try WireMessage.decode(bytes) }
        bytes[4] = 2
        #expect(throws: WireError.unsupportedVersion(found: 2, supported: 3)) { try WireMessage.decode(bytes) }
        bytes[4] = 4
        #expect(throws: WireError.unsupportedVersion(found: 4, supported: 3)) { try WireMessage.decode(bytes) }
        bytes = sampleMessages[0].encoded()
        bytes[6] = 200
        #expect(throws: WireError.unknownKind(200)) { try WireMessage.decode(bytes) }

        // A drafted token outside the reply's vocabulary.
        let law = try TokenDistribution(probabilities: [0.5, 0.5])
        let bad = WireMessage.draftReply(
            DraftReply(
                session: 1, round: 1, workerID: "w", sequences: [[2]], distributions: [[WireDistribution(law)]],
                draftMicroseconds: 0))
        #expect(throws: WireError.self) { try WireMessage.decode(bad.encoded()) }

        // A negative probability, and a law that does not sum to 1.
        for values: [Float] in [[1.5, -0.5], [0.5, 0.2]] {
            let reply = WireMessage.draftReply(
                DraftReply(
                    session: 1, round: 1, workerID: "w", sequences: [[0]],
                    distributions: [[WireDistribution(vocabularySize: 2, storage: .dense(values))]],
                    draftMicroseconds: 0))
            #expect(throws: WireError.self) { try WireMessage.decode(reply.encoded()) }
        }

        // A negative temperature in a request.
        let request = WireMessage.draftRequest(
            DraftRequest(
                session: 1, round: 1, keepLength: 0, newTokens: [], contextHash: 0, draftLength: 1, sequences: 1,
                sampling: .init(temperature: -1), seed: 0, deadlineMilliseconds: 1))
        #expect(throws: WireError.self) { try WireMessage.decode(request.encoded()) }

        // A huge count is refused before any allocation.
        var w = WireWriter()
        for b in WireMessage.magic { w.u8(b) }
        w.u16(WireMessage.version)
        w.u8(9)
        w.u64(1)
        w.u32(0)
        w.u32(UInt32.max)
        #expect(throws: WireError.tooLarge(field: "tokens", count: Int(UInt32.max), limit: WireLimits.tokens)) {
            try WireMessage.decode(w.bytes)
        }
    }

    /// Seeded random mutations of valid messages: decoding either succeeds or throws a WireError.
    /// Mutated messages never crash the decoder, and the decoder is strict: whatever it accepts is the
    /// one encoding of what it returns (re-encoding gives the same bytes), so no two byte strings mean
    /// the same message and nothing is silently dropped or normalised.
    @Test func mutatedMessagesDecodeStrictlyOrNotAtAll() {
        var rng = ChorusRandom(seed: 2024)
        var decoded = 0
        for _ in 0..<20_000 {
            var bytes = sampleMessages[Int(rng.next() % UInt64(sampleMessages.count))].encoded()
            let flips = 1 + Int(rng.next() % 4)
            for _ in 0..<flips {
                let at = Int(rng.next() % UInt64(bytes.count))
                bytes[at] = UInt8(truncatingIfNeeded: rng.next())
            }
            if rng.next() % 4 == 0 { bytes.removeLast(Int(rng.next() % UInt64(bytes.count))) }
            guard let message = try? WireMessage.decode(bytes) else { continue }
            decoded += 1
            let again = message.encoded()
            #expect(again == bytes, "\(message) decoded from bytes it does not re-encode to")
            if again != bytes { return }
        }
        // Flipping bytes inside string or float payloads still decodes sometimes; headers mostly not.
        #expect(decoded > 0 && decoded < 20_000)
    }

    /// What the worker samples from is exactly what the coordinator decodes.
    @Test func canonicalDistributionIsSharedExactly() throws {
        var rng = ChorusRandom(seed: 5)
        for _ in 0..<50 {
            let n = 1 + Int(rng.next() % 3000)
            let logits = (0..<n).map { _ in rng.nextUnit() * 20 - 10 }
            let law = try TokenDistribution(
                logits: logits, settings: .init(temperature: 0.7, topK: Int(rng.next() % 50)))
            let (wire, workerLaw) = try WireDistribution.canonical(law)
            let message = WireMessage.draftReply(
                DraftReply(
                    session: 1, round: 1, workerID: "w", sequences: [[workerLaw.sample(using: &rng)]],
                    distributions: [[wire]], draftMicroseconds: 0))
            guard case let .draftReply(reply) = try WireMessage.decode(message.encoded()) else {
                Issue.record("wrong kind")
                continue
            }
            let coordinatorLaw = try reply.distributions[0][0].decoded()
            #expect(coordinatorLaw == workerLaw)
            #expect(coordinatorLaw[reply.sequences[0][0]] > 0)
            #expect(zip(coordinatorLaw.probabilities, law.probabilities).allSatisfy { abs($0 - $1) < 1e-6 })
        }
    }

    @Test func contextHashIsFNV1a() {
        // FNV-1a 64 of the bytes 01 00 00 00 (token 1 as little-endian u32), computed independently.
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b: UInt64 in [1, 0, 0, 0] {
            h ^= b
            h = h &* 0x0000_0100_0000_01B3
        }
        #expect(ContextHash([1]).value == h)
        #expect(ContextHash([1, 2]).value != ContextHash([2, 1]).value)
        var incremental = ContextHash([1])
        incremental.append([2])
        #expect(incremental == ContextHash([1, 2]))
    }
}
