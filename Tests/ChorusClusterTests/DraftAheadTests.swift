import ChorusModel
import ChorusSampling
import ChorusWire
import Foundation
import Testing

@testable import ChorusCluster

/// Drafting ahead (issue 11) changes when drafts are ready, never what they are: a request answered from a
/// branch drafted ahead gets, token for token and law for law, what a worker drafting on request sends.
@Suite struct DraftAheadTests {
    static let model: TransformerModel? = try? TransformerModel(
        path: WorkerBatchTests.shippedModel("chorus-kjv-draft-small-f32.gguf"), threads: 1)
    static let context = [0, 297, 388, 387]
    static let settings = SamplingSettings(temperature: 1.0)

    static func request(
        round: UInt64, context: [Int], keep: Int, seed: UInt64, length: Int = 4, sequences: Int = 2
    ) -> DraftRequest {
        DraftRequest(
            session: 9, round: round, keepLength: keep, newTokens: Array(context[keep...]),
            contextHash: ContextHash(context).value, draftLength: length, sequences: sequences, sampling: settings,
            seed: seed, deadlineMilliseconds: 60_000)
    }

    static func drafts(_ message: WireMessage) throws -> DraftReply {
        guard case let .draftReply(reply) = message else { throw ModelError.invalidRequest("no drafts: \(message)") }
        return reply
    }

    /// A worker that answered round 1 and finished drafting ahead; its branches.
    static func workerAhead(sequences: Int = 2) async throws -> (DraftWorker, DraftReply, [[Int]]) {
        let model = try #require(Self.model)
        let worker = DraftWorker(model: model, configuration: .init(workerID: "ahead", aheadBranches: 8))
        let first = try drafts(
            await worker.handle(request(round: 1, context: context, keep: 0, seed: 77, sequences: sequences)))
        for _ in 0..<2000 {
            if let state = await worker.draftingAhead(session: 9), state.done { return (worker, first, state.suffixes) }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw ModelError.invalidRequest("drafting ahead did not finish")
    }

    /// What a worker that does not draft ahead answers to a request for `context` (sent whole).
    static func fresh(_ context: [Int], seed: UInt64, length: Int, sequences: Int = 2) async throws -> DraftReply {
        let model = try #require(Self.model)
        let worker = DraftWorker(model: model, configuration: .init(workerID: "fresh", aheadBranches: 0))
        return try drafts(
            await worker.handle(
                request(round: 2, context: context, keep: 0, seed: seed, length: length, sequences: sequences)))
    }

    @Test func everyBranchDraftedAheadEqualsDraftingOnRequest() async throws {
        let (_, first, suffixes) = try await Self.workerAhead()
        #expect(suffixes.count == 8, "the plan has its 8 branches")
        // Corrections after each accepted prefix, and bonus tokens after whole sequences.
        #expect(suffixes.contains { $0.count == 1 })
        #expect(suffixes.contains { $0.count == 5 && first.sequences.contains(Array($0.prefix(4))) })
        let nextSeed = DraftRequest.nextSeed(after: 77)
        for (i, suffix) in suffixes.enumerated() {
            // A new worker per branch: a hit consumes the plan. Lengths: the plan's, shorter, and longer (the
            // branch is finished on its own).
            let length = [4, 2, 6][i % 3]
            let (worker, _, again) = try await Self.workerAhead()
            #expect(again == suffixes, "planning is deterministic")
            let next = Self.context + suffix
            let hit = try Self.drafts(
                await worker.handle(
                    Self.request(round: 2, context: next, keep: Self.context.count, seed: nextSeed, length: length)))
            #expect(hit.fromDraftAhead, "branch \(suffix) was drafted ahead")
            let reference = try await Self.fresh(next, seed: nextSeed, length: length)
            #expect(!reference.fromDraftAhead)
            #expect(hit.sequences == reference.sequences, "branch \(suffix), length \(length)")
            #expect(hit.distributions == reference.distributions, "laws of branch \(suffix), length \(length)")
            // The cache moved to the branch's context: round 3 drafts from it as a fresh worker would.
            let third = try Self.drafts(
                await worker.handle(
                    Self.request(
                        round: 3, context: next + [hit.sequences[0][0]], keep: next.count,
                        seed: DraftRequest.nextSeed(after: nextSeed), length: 3)))
            let thirdReference = try await Self.fresh(
                next + [hit.sequences[0][0]], seed: DraftRequest.nextSeed(after: nextSeed), length: 3)
            #expect(third.sequences == thirdReference.sequences)
            #expect(third.distributions == thirdReference.distributions)
        }
    }

    @Test func anotherContextOrSeedIsAMissDraftedAfresh() async throws {
        let (worker, _, suffixes) = try await Self.workerAhead()
        let nextSeed = DraftRequest.nextSeed(after: 77)
        // The right context with another seed: not the drafts the request asks for.
        let suffix = try #require(suffixes.first)
        let otherSeed = try Self.drafts(
            await worker.handle(
                Self.request(round: 2, context: Self.context + suffix, keep: Self.context.count, seed: 5)))
        #expect(!otherSeed.fromDraftAhead)
        let reference = try await Self.fresh(Self.context + suffix, seed: 5, length: 4)
        #expect(otherSeed.sequences == reference.sequences)
        #expect(otherSeed.distributions == reference.distributions)
        // A context no branch has.
        let (worker2, _, suffixes2) = try await Self.workerAhead()
        let absent = (0..<2048).first { t in !suffixes2.contains([t]) } ?? 0
        let miss = try Self.drafts(
            await worker2.handle(
                Self.request(round: 2, context: Self.context + [absent], keep: Self.context.count, seed: nextSeed)))
        #expect(!miss.fromDraftAhead)
        let missReference = try await Self.fresh(Self.context + [absent], seed: nextSeed, length: 4)
        #expect(miss.sequences == missReference.sequences)
        #expect(await worker2.counters.aheadMisses == 1)
    }
}
