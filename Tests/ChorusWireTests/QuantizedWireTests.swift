import ChorusSampling
import Foundation
import Testing

@testable import ChorusWire

/// Wire form 2, the quantized draft law (issue 13): round trips, the strict decoder's refusals, and
/// the size at vocabulary scale.
@Suite struct QuantizedWireTests {
    /// A draft reply carrying one law, as bytes.
    static func reply(_ law: WireDistribution, token: Int) -> [UInt8] {
        WireMessage.draftReply(
            DraftReply(
                session: 1, round: 1, workerID: "w", sequences: [[token]], distributions: [[law]], draftMicroseconds: 0)
        ).encoded()
    }

    /// A draft reply whose law body (after vocabulary size and form byte 2) is written by `body`.
    static func handWritten(vocabulary: Int = 300, _ body: (inout WireWriter) -> Void) -> [UInt8] {
        var w = WireWriter()
        for b in WireMessage.magic { w.u8(b) }
        w.u16(WireMessage.version)
        w.u8(4)
        w.u64(1)
        w.u64(1)
        w.string("w")
        w.u32(UInt32(vocabulary))
        w.u32(1)
        w.tokens([0])
        w.u32(UInt32(vocabulary))
        w.u8(2)
        body(&w)
        w.u64(0)
        w.bool(false)  // not drafted ahead
        return w.bytes
    }

    @Test func quantizedLawsRoundTrip() throws {
        var rng = ChorusRandom(seed: 17)
        for trial in 0..<60 {
            let n = 1 + Int(rng.next() % 200_000)
            let logits = (0..<n).map { _ in Float(rng.nextUnit() * 24 - 12) }
            let bits = [1, 8, 16, 20, 24, 31][trial % 6]
            let law = try QuantizedDistribution(logits: logits, settings: .init(temperature: 0.8), totalBits: bits)
            let token = law.sample(using: &rng)
            let bytes = Self.reply(WireDistribution(law), token: token)
            guard case let .draftReply(reply) = try WireMessage.decode(bytes) else {
                Issue.record("wrong kind")
                continue
            }
            #expect(reply.distributions[0][0].quantized == law)
            #expect(try reply.distributions[0][0].decoded() == law.distribution)
            #expect(WireMessage.draftReply(reply).encoded() == bytes)
        }
        // Extremes: one token at the last id with the whole mass; every token of a small vocabulary.
        let last = try QuantizedDistribution(
            vocabularySize: 1 << 22, totalBits: 31, tokens: [(1 << 22) - 1], masses: [1 << 31])
        let all = try QuantizedDistribution(
            vocabularySize: 4, totalBits: 2, tokens: [0, 1, 2, 3], masses: [1, 1, 1, 1])
        for (law, token) in [(last, (1 << 22) - 1), (all, 2)] {
            let bytes = Self.reply(WireDistribution(law), token: token)
            guard case let .draftReply(reply) = try WireMessage.decode(bytes) else { continue }
            #expect(reply.distributions[0][0].quantized == law)
        }
    }

    /// The hand-written encoder agrees with the codec (so the refusals below test what they claim).
    @Test func handWrittenBodyMatchesTheCodec() throws {
        let law = try QuantizedDistribution(vocabularySize: 300, totalBits: 8, tokens: [0, 200], masses: [56, 200])
        let expected = Self.reply(WireDistribution(law), token: 0)
        let written = Self.handWritten { w in
            w.u8(8)
            w.varint(2)
            w.varint(1)
            w.varint(200)
            w.varint(56)
            w.varint(200)
        }
        #expect(written == expected)
        #expect(throws: Never.self) { try WireMessage.decode(written) }
    }

    @Test(arguments: [
        ("total bits 0", [0, 1, 1, 1] as [UInt32]),
        ("total bits 32", [32, 1, 1, 1 << 31]),
        ("no tokens", [8, 0]),
        ("more tokens than the total holds", [1, 3, 1, 1, 1, 1, 1, 1]),
        ("repeated token (gap 0)", [8, 2, 1, 0, 128, 128]),
        ("token outside the vocabulary", [8, 2, 1, 300, 128, 128]),
        ("token far outside the vocabulary", [8, 1, 1 << 31, 256]),
        ("zero mass", [8, 3, 1, 1, 1, 0, 128, 128]),
        ("mass above the total", [8, 2, 1, 1, 257, 1]),
        ("masses below the total", [8, 2, 1, 1, 128, 127]),
        ("masses above the total", [8, 2, 1, 1, 128, 129]),
        ("more tokens than bytes", [8, 200, 1, 256]),
    ])
    func strictDecoderRefuses(_ violation: String, _ fields: [UInt32]) {
        let bytes = Self.handWritten { w in
            w.u8(UInt8(fields[0]))
            for v in fields.dropFirst() { w.varint(v) }
        }
        #expect(throws: WireError.self, "\(violation)") { try WireMessage.decode(bytes) }
    }

    @Test func varintsMustBeShortestAndFit() throws {
        // 1 as a two-byte varint (0x81 0x00), a six-byte varint, and 2^32.
        let overlong = Self.handWritten { w in
            w.u8(8)
            w.u8(0x81)
            w.u8(0x00)
            w.varint(1)
            w.varint(256)
        }
        #expect(
            throws: WireError.invalidValue(field: "quantized support size", reason: "varint not in its shortest form")
        ) {
            try WireMessage.decode(overlong)
        }
        let sixBytes = Self.handWritten { w in
            w.u8(8)
            w.varint(1)
            w.varint(1)
            for _ in 0..<5 { w.u8(0x80) }
            w.u8(0x01)
        }
        #expect(throws: WireError.invalidValue(field: "quantized mass", reason: "varint longer than 5 bytes")) {
            try WireMessage.decode(sixBytes)
        }
        let tooBig = Self.handWritten { w in
            w.u8(8)
            w.varint(1)
            w.varint(1)
            for b: UInt8 in [0x80, 0x80, 0x80, 0x80, 0x10] { w.u8(b) }
        }
        #expect(throws: WireError.invalidValue(field: "quantized mass", reason: "varint 4294967296 above 2^32 − 1")) {
            try WireMessage.decode(tooBig)
        }
        // The writer's varint lengths at every boundary.
        for (value, length) in [
            (0, 1), (127, 1), (128, 2), (16383, 2), (16384, 3), (1 << 21, 4), (1 << 28, 5), (UInt32.max, 5),
        ]
            as [(UInt32, Int)]
        {
            var w = WireWriter()
            w.varint(value)
            #expect(w.bytes.count == length)
            var r = WireReader(w.bytes)
            #expect(try r.varint("v") == value)
        }
        let unknownForm = Self.handWritten { _ in }
        var bytes = unknownForm
        bytes[bytes.count - 9] = 3
        #expect(throws: WireError.self) { try WireMessage.decode(bytes) }
    }

    /// A drafted token the quantized law gives no mass is refused by the coordinator's check
    /// (`law[t] > 0` after decoding); the decoded law says so.
    @Test func decodedLawHasNoMassOffTheSupport() throws {
        let law = try QuantizedDistribution(vocabularySize: 10, totalBits: 4, tokens: [2, 7], masses: [6, 10])
        let decoded = try WireDistribution(law).decoded()
        #expect(decoded[3] == 0 && decoded[2] == 0.375 && decoded[7] == 0.625)
    }

    /// Random mutations of quantized replies: decoding throws a WireError or yields a message that
    /// re-encodes to the same bytes (one encoding per message); never a crash.
    @Test func mutatedQuantizedRepliesNeverCrash() throws {
        var rng = ChorusRandom(seed: 99)
        var seeds: [[UInt8]] = []
        for bits in [4, 12, 20] {
            let logits = (0..<5000).map { _ in Float(rng.nextUnit() * 16) }
            let law = try QuantizedDistribution(logits: logits, settings: .standard, totalBits: bits)
            seeds.append(Self.reply(WireDistribution(law), token: law.sample(using: &rng)))
        }
        var decoded = 0
        for _ in 0..<6000 {
            var bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
            // Mutate inside the law's body mostly (after the 40-byte header).
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let at = 30 + Int(rng.next() % UInt64(bytes.count - 30))
                bytes[at] = UInt8(truncatingIfNeeded: rng.next())
            }
            if rng.next() % 8 == 0 { bytes.removeLast(Int(rng.next() % UInt64(bytes.count))) }
            do {
                let message = try WireMessage.decode(bytes)
                decoded += 1
                #expect(message.encoded() == bytes)
            } catch {}
        }
        // Most mutations of a sum-checked body are refused.
        #expect(decoded < 3000)
    }

    /// Size at Qwen2.5's vocabulary (151,936) for a peaked LM-like law at T = 1: a bulk of Gaussian
    /// logits (σ = 2) under eight head tokens 14–19 above it (real laws of Qwen2.5-Coder-1.5B measured
    /// 139 B median, 2.3 KB p90 at 2^20). The size is exactly the format's (header, varint count,
    /// varint gaps and masses), under the issue's 16 KiB budget where the float form takes ≈ 594 KiB.
    @Test func sizeAtVocabularyScale() throws {
        var rng = ChorusRandom(seed: 3)
        func gaussian() -> Double {
            let u1 = max(rng.nextUnit(), 1e-300), u2 = rng.nextUnit()
            return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        }
        var logits = (0..<151_936).map { _ in Float(2 * gaussian()) }
        for i in 0..<8 { logits[Int(rng.next() % 151_936)] = Float(14 + 0.7 * Double(i)) }
        let law = try TokenDistribution(logits: logits, settings: .standard)
        let float = WireDistribution(law).encodedByteCount
        let quantized = QuantizedDistribution(quantizing: law)
        let compact = WireDistribution(quantized).encodedByteCount
        func varintLength(_ v: Int) -> Int { v < 1 << 7 ? 1 : v < 1 << 14 ? 2 : v < 1 << 21 ? 3 : v < 1 << 28 ? 4 : 5 }
        var expected = 4 + 1 + 1 + varintLength(quantized.supportCount)
        var previous = -1
        for (t, mass) in zip(quantized.tokens, quantized.masses) {
            expected += varintLength(Int(t) - previous) + varintLength(Int(mass))
            previous = Int(t)
        }
        #expect(compact == expected)
        #expect(float >= 151_936 * 4)
        #expect(quantized.supportCount > 100, "the law has a tail")
        #expect(compact <= 16 * 1024, "\(compact) bytes for \(quantized.supportCount) tokens")
        #expect(quantized.l1Distance(to: law) < 0.01)
    }
}
