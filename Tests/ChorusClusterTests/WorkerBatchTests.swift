import ChorusModel
import ChorusSampling
import ChorusWire
import Foundation
import Testing

@testable import ChorusCluster

/// A worker drafts its S sequences as rows of one forward pass per step (issue 1/4, "users of the engine"), and the
/// requests of several sessions waiting together as rows of one forward pass per step (issue 12): the drafts and
/// their laws are exactly those of drafting each sequence alone, one token at a time.
@Suite struct WorkerBatchTests {
    static func shippedModel(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("models/\(name)").path
    }

    @Test func batchedSequencesEqualSequencesDraftedAlone() async throws {
        let model = try TransformerModel(path: Self.shippedModel("chorus-kjv-draft-small-f32.gguf"), threads: 2)
        let worker = DraftWorker(model: model, configuration: .init(workerID: "w", sequences: 3))
        let context = [0, 297, 388, 387]
        let settings = SamplingSettings(temperature: 1.3)
        let request = DraftRequest(
            session: 1, round: 1, keepLength: 0, newTokens: context, contextHash: ContextHash(context).value,
            draftLength: 5, sequences: 3, sampling: settings, seed: 77, deadlineMilliseconds: 60_000)
        guard case let .draftReply(reply) = await worker.handle(request) else {
            Issue.record("expected drafts")
            return
        }
        #expect(reply.sequences.count == 3)
        // The same drafts, one sequence at a time through plain appends.
        for s in 0..<3 {
            var rng = ChorusRandom(seed: 77).derived(UInt64(s))
            let session = try model.makeSession()
            var logits = try session.append(context)
            var tokens: [Int] = []
            var laws: [WireDistribution] = []
            for position in 0..<5 {
                let law = try QuantizedDistribution(logits: logits, settings: settings)
                tokens.append(law.sample(using: &rng))
                laws.append(WireDistribution(law))
                if position < 4 { logits = try session.append([tokens[position]]) }
            }
            #expect(reply.sequences[s] == tokens, "sequence \(s)")
            #expect(reply.distributions[s] == laws, "laws of sequence \(s)")
        }
        #expect(Set(reply.sequences).count > 1)  // at T = 1.3 the three sequences differ
    }

    /// Drafts of `count` sequences of `length` tokens after `context` with `seed`, one sequence at a time through
    /// plain appends on a fresh session: the reference no batching touches.
    static func reference(
        _ model: any LanguageModel, context: [Int], seed: UInt64, count: Int, length: Int, settings: SamplingSettings
    ) throws -> (sequences: [[Int]], laws: [[WireDistribution]]) {
        var sequences: [[Int]] = []
        var laws: [[WireDistribution]] = []
        for s in 0..<count {
            var rng = ChorusRandom(seed: seed).derived(UInt64(s))
            let session = try model.makeSession()
            var logits = try session.append(context)
            var tokens: [Int] = []
            var sequenceLaws: [WireDistribution] = []
            for position in 0..<length {
                let law = try QuantizedDistribution(logits: logits, settings: settings)
                tokens.append(law.sample(using: &rng))
                sequenceLaws.append(WireDistribution(law))
                if position < length - 1 { logits = try session.append([tokens[position]]) }
            }
            sequences.append(tokens)
            laws.append(sequenceLaws)
        }
        return (sequences, laws)
    }

    /// Four sessions of one test: prompt, draft settings, sequences and draft length (the second prompt is
    /// longer than the catch-up a shared forward pass takes, so it is appended alone first).
    static let sessions: [(prompt: [Int], settings: SamplingSettings, count: Int, length: Int)] = [
        ([0, 297, 388, 387], SamplingSettings(temperature: 1.3), 2, 4),
        ([0] + (0..<(DraftWorker.sharedCatchUp + 5)).map { 30 + 7 * $0 }, SamplingSettings(temperature: 1), 1, 5),
        ([0, 11], SamplingSettings(temperature: 0.8, topK: 20), 3, 3),
        ([0, 5, 6, 7, 8, 9], SamplingSettings(temperature: 1, topP: 0.9), 2, 4),
    ]

    static func request(
        _ i: Int, round: UInt64, context: [Int], keep: Int, seed: UInt64, length: Int? = nil
    ) -> DraftRequest {
        let session = sessions[i]
        return DraftRequest(
            session: UInt64(100 + i), round: round, keepLength: keep, newTokens: Array(context[keep...]),
            contextHash: ContextHash(context).value, draftLength: length ?? session.length, sequences: session.count,
            sampling: session.settings, seed: seed, deadlineMilliseconds: 60_000)
    }

    static func drafts(_ message: WireMessage, _ what: String) throws -> DraftReply {
        guard case let .draftReply(reply) = message else {
            throw ModelError.invalidRequest("\(what): no drafts but \(message)")
        }
        return reply
    }

    /// Waits until `worker` has drafted ahead for every session of the test (at most 60 s: a loaded machine).
    static func waitForDraftingAhead(_ worker: DraftWorker) async throws {
        for _ in 0..<12_000 {
            var done = true
            for i in sessions.indices {
                if let state = await worker.draftingAhead(session: UInt64(100 + i)), !state.done { done = false }
            }
            if done { return }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw ModelError.invalidRequest("drafting ahead did not finish")
    }

    /// Requests of four sessions served as one batch (every draft step one forward pass for all, drafting ahead
    /// stepping all sessions together) get, token for token and law for law, what a worker serving each request
    /// alone sends, and what plain one-token appends give, over three rounds: new prompts (one appended alone,
    /// three caught up in the shared forward), answers from drafts made ahead (hits), misses, a request that
    /// adds no token, and requests arriving concurrently through `handle`. The test fails if any row of a
    /// shared forward pass attends the wrong cache or position (its logits would differ), or if a draw depends
    /// on the batch.
    @Test func requestsOfSeveralSessionsDraftedTogetherEqualEachAlone() async throws {
        let model = try TransformerModel(path: Self.shippedModel("chorus-kjv-draft-small-f32.gguf"), threads: 2)
        let together = DraftWorker(model: model, configuration: .init(workerID: "w", aheadBranches: 4))
        let alone = DraftWorker(
            model: model, configuration: .init(workerID: "w", aheadBranches: 4, batchSessions: false))
        var contexts = Self.sessions.map(\.prompt)
        var seeds: [UInt64] = [11, 12, 13, 14]

        func check(_ replies: [DraftReply], _ requests: [DraftRequest], round: Int) throws {
            for (i, reply) in replies.enumerated() {
                let expected = try Self.reference(
                    model, context: contexts[i], seed: seeds[i], count: Self.sessions[i].count,
                    length: requests[i].draftLength, settings: Self.sessions[i].settings)
                #expect(reply.sequences == expected.sequences, "round \(round) session \(i)")
                #expect(reply.distributions == expected.laws, "laws, round \(round) session \(i)")
            }
        }

        // Round 1: whole prompts.
        let first = (0..<4).map { Self.request($0, round: 1, context: contexts[$0], keep: 0, seed: seeds[$0]) }
        let batched1 = try await together.serve(first.map { ($0, .now) }).map { try Self.drafts($0, "batched") }
        var alone1: [DraftReply] = []
        for r in first { alone1.append(try Self.drafts(await alone.handle(r), "alone")) }
        #expect(batched1.map(\.sequences) == alone1.map(\.sequences))
        #expect(batched1.map(\.distributions) == alone1.map(\.distributions))
        try check(batched1, first, round: 1)
        #expect(Set(batched1[0].sequences).count > 1)  // at T = 1.3 the two sequences differ
        let afterFirst = await together.counters
        #expect(afterFirst.sharedForwards >= 1, "the sessions' draft steps shared forward passes")
        #expect(afterFirst.requestForwards < (await alone.counters).requestForwards)

        // Round 2, once both workers drafted ahead: sessions 0 and 1 continue along a branch drafted ahead (hits),
        // session 2 along a context no branch has (a miss), session 3 repeats its context (no new token).
        try await Self.waitForDraftingAhead(together)
        try await Self.waitForDraftingAhead(alone)
        #expect((await together.counters).sharedAheadSteps >= 1, "drafting ahead stepped sessions together")
        for i in 0..<2 {
            let suffixes = try #require(await together.draftingAhead(session: UInt64(100 + i))?.suffixes)
            #expect(suffixes == (await alone.draftingAhead(session: UInt64(100 + i))?.suffixes))
            contexts[i] += try #require(suffixes.first)
        }
        let drafted = batched1[2].sequences[0][0]
        let branches2 = await together.draftingAhead(session: 102)?.suffixes ?? []
        let absent = (0..<model.vocabularySize).first { !branches2.contains([drafted, $0]) } ?? 0
        contexts[2] += [drafted, absent]
        seeds = seeds.map { DraftRequest.nextSeed(after: $0) }
        seeds[3] = 99
        let second = (0..<4).map {
            Self.request($0, round: 2, context: contexts[$0], keep: Self.sessions[$0].prompt.count, seed: seeds[$0])
        }
        let batched2 = try await together.serve(second.map { ($0, .now) }).map { try Self.drafts($0, "batched") }
        var alone2: [DraftReply] = []
        for r in second { alone2.append(try Self.drafts(await alone.handle(r), "alone")) }
        #expect(batched2.map(\.sequences) == alone2.map(\.sequences))
        #expect(batched2.map(\.distributions) == alone2.map(\.distributions))
        #expect(batched2.map(\.fromDraftAhead) == [true, true, false, false])
        try check(batched2, second, round: 2)

        // Round 3: the requests arrive concurrently (grouped as they reach the worker), without waiting for
        // drafting ahead, with a draft length other than the plans'.
        for i in 0..<4 { contexts[i] += [batched2[i].sequences[0][0]] }
        seeds = seeds.map { DraftRequest.nextSeed(after: $0) }
        let third = (0..<4).map {
            Self.request($0, round: 3, context: contexts[$0], keep: contexts[$0].count - 1, seed: seeds[$0], length: 3)
        }
        let batched3 = try await withThrowingTaskGroup(of: (Int, DraftReply).self) { group in
            for (i, r) in third.enumerated() {
                group.addTask { (i, try Self.drafts(await together.handle(r), "concurrent")) }
            }
            var replies = [DraftReply?](repeating: nil, count: third.count)
            for try await (i, reply) in group { replies[i] = reply }
            return replies.compactMap { $0 }
        }
        #expect(batched3.count == 4)
        try check(batched3, third, round: 3)
    }
}
