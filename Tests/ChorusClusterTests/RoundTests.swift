import ChorusModel
import ChorusSampling
import ChorusTestSupport
import ChorusWire
import Foundation
import Testing

@testable import ChorusCluster

/// Drives one session through rounds with in-process workers (no sockets): the coordinator's round
/// logic and the workers' drafting, exactly as the services run them.
func runGeneration(
    session: GenerationSession, workers: [DraftWorker], draftLength: Int, workerSettings: [SamplingSettings],
    seed: UInt64
) async throws {
    var known = [Int](repeating: 0, count: workers.count)
    var round: UInt64 = 0
    while !session.isFinished {
        round += 1
        var drafts: [DraftSequence] = []
        let length = min(draftLength, session.usefulDraftLength)
        if length >= 1 {
            for (w, worker) in workers.enumerated() {
                let context = session.context
                let keep = min(known[w], context.count)
                let request = DraftRequest(
                    session: session.id, round: round, keepLength: keep, newTokens: Array(context[keep...]),
                    contextHash: ContextHash(context).value, draftLength: length, sequences: 2,
                    sampling: workerSettings[w], seed: seed &+ round &* 31 &+ UInt64(w), deadlineMilliseconds: 60_000)
                let reply = await worker.handle(request)
                guard case let .draftReply(r) = reply else {
                    Issue.record("worker \(w) answered \(reply)")
                    continue
                }
                known[w] = context.count
                for (tokens, laws) in zip(r.sequences, r.distributions) {
                    drafts.append(
                        DraftSequence(tokens: tokens, distributions: try laws.map { try $0.decoded() }, lawGroup: w))
                }
            }
        }
        try session.runRound(drafts: drafts)
    }
}

@Suite struct RoundTests {
    /// Greedy target: the cluster's text equals plain greedy decoding of the target, whatever the drafts.
    @Test func greedyEqualsPlainTargetDecoding() async throws {
        let target = try tableModel(n: 12, seed: 1, name: "target")
        let draftA = try tableModel(n: 12, seed: 2, name: "a")
        let draftB = try tableModel(n: 12, seed: 3, name: "b")
        let workers = [
            DraftWorker(model: draftA, configuration: .init(workerID: "a")),
            DraftWorker(model: draftB, configuration: .init(workerID: "b")),
        ]
        for scheme in ["optimal", "specinfer", "sd", "weighted-is"] {
            let session = try GenerationSession(
                id: 1, prompt: [3, 4], target: target, scheme: try SchemeCatalog.scheme(named: scheme),
                settings: .greedy, maxTokens: 30, stopTokens: [], seed: 9)
            try await runGeneration(
                session: session, workers: workers, draftLength: 3,
                workerSettings: [.init(temperature: 0.9), .init(temperature: 1.3)], seed: 5)
            var plain = [3, 4]
            let s = try target.makeSession()
            var logits = try s.append(plain)
            for _ in 0..<30 {
                let next = try TokenDistribution(logits: logits, settings: .greedy).support[0]
                plain.append(next)
                logits = try s.append([next])
            }
            #expect(session.context == plain, "scheme \(scheme)")
            #expect(session.statistics.generatedTokens == 30)
            #expect(session.statistics.blockEfficiency >= 1)
        }
    }

    /// Exactness through drafting, the wire encoding and verification: over many seeded generations
    /// the first two tokens follow the target's law. Chi-square over the 144 pairs (cells with expected
    /// count ≥ 5 kept, the rest pooled); threshold = the 1 − 1e-6 quantile, so the false-failure
    /// probability is about 1e-6.
    @Test func firstTwoTokensFollowTheTarget() async throws {
        let n = 12
        let target = try tableModel(n: n, seed: 11, name: "target")
        let draft = try tableModel(n: n, seed: 12, name: "draft")
        let worker = DraftWorker(model: draft, configuration: .init(workerID: "w"))
        let settings = SamplingSettings(temperature: 1)
        let runs = 6000
        var counts = [Int](repeating: 0, count: n * n)
        for run in 0..<runs {
            let session = try GenerationSession(
                id: UInt64(run), prompt: [5], target: target, scheme: OptimalScheme(), settings: settings,
                maxTokens: 2, stopTokens: [], seed: UInt64(run) &* 7919)
            try await runGeneration(
                session: session, workers: [worker, worker], draftLength: 2,
                workerSettings: [.init(temperature: 1), .init(temperature: 1)], seed: UInt64(run) &* 104_729)
            let g = session.generated
            counts[g[0] * n + g[1]] += 1
            #expect(session.statistics.warnings.isEmpty)  // drafts were used: nothing to warn about
            await worker.forget(session: UInt64(run))
        }
        let expected = try expectedPairCounts(target, after: 5, settings: settings, runs: runs)
        ChiSquareTest.expectFits(observed: counts, expected: expected)
    }

    @Test func noDraftsFallsBackToTargetSampling() async throws {
        let target = try tableModel(n: 8, seed: 21, name: "target")
        let session = try GenerationSession(
            id: 1, prompt: [1], target: target, scheme: OptimalScheme(), settings: .standard, maxTokens: 10,
            stopTokens: [], seed: 3)
        try await runGeneration(session: session, workers: [], draftLength: 3, workerSettings: [], seed: 1)
        #expect(session.generated.count == 10)
        #expect(session.statistics.targetForwards == 10)
        #expect(session.statistics.blockEfficiency == 1)
        #expect(session.statistics.warnings.count == 1)  // the client is told the target ran alone
    }

    @Test func workerRefusesWrongContextAndLateRequests() async throws {
        let draft = try tableModel(n: 8, seed: 31, name: "draft")
        let worker = DraftWorker(model: draft, configuration: .init(workerID: "w"))
        let good = DraftRequest(
            session: 1, round: 1, keepLength: 0, newTokens: [1, 2], contextHash: ContextHash([1, 2]).value,
            draftLength: 3,
            sequences: 2, sampling: .standard, seed: 1, deadlineMilliseconds: 1000)
        guard case let .draftReply(reply) = await worker.handle(good) else {
            Issue.record("expected drafts")
            return
        }
        #expect(reply.sequences.count == 2 && reply.sequences.allSatisfy { $0.count == 3 })
        // Same seed, same context: the same drafts (reproducible across processes).
        let again = DraftWorker(model: draft, configuration: .init(workerID: "w2"))
        guard case let .draftReply(replay) = await again.handle(good) else {
            Issue.record("expected drafts")
            return
        }
        #expect(replay.sequences == reply.sequences)

        var wrong = good
        wrong.round = 2
        wrong.keepLength = 2
        wrong.newTokens = [3]
        wrong.contextHash = ContextHash([1, 9, 3]).value
        guard case let .error(e) = await worker.handle(wrong) else {
            Issue.record("expected a context mismatch")
            return
        }
        #expect(e.code == .contextMismatch)

        var late = good
        late.session = 2
        late.deadlineMilliseconds = 1
        guard case let .error(expired) = await worker.handle(late, receivedAt: .now - .milliseconds(50)) else {
            Issue.record("expected a deadline error")
            return
        }
        #expect(expired.code == .deadlineExpired)

        let garbage = await worker.handle(bytes: [1, 2, 3, 4, 5, 6, 7])
        guard case let .error(malformed) = try WireMessage.decode(garbage) else {
            Issue.record("expected an error reply")
            return
        }
        #expect(malformed.code == .malformed)
        #expect(await worker.counters.malformed == 1)
    }
}
