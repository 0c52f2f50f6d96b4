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

    /// The branches a worker drafts ahead for session 9, once it has drafted every one to the plan's length.
    static func finishedAhead(_ worker: DraftWorker) async throws -> [[Int]] {
        for _ in 0..<2000 {
            if let state = await worker.draftingAhead(session: 9), state.done { return state.suffixes }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw ModelError.invalidRequest("drafting ahead did not finish")
    }

    /// The reply's tree stays: drafting ahead scores only what drafting the reply did not (each distinct full
    /// sequence's last token) and the branches (each: its end token, then count·(length − 1) rows), after a
    /// fresh draft and after a hit alike. Re-scoring the reply's sequences, as before, costs count·(length − 1)
    /// rows more (fewer for shared prefixes), which this count tells apart for every case below.
    @Test(arguments: [(1, 1), (2, 1), (1, 3), (2, 3)])
    func draftingAheadScoresNoReplyTokenTwice(sequences: Int, branches: Int) async throws {
        let model = try #require(Self.model)
        let worker = DraftWorker(model: model, configuration: .init(workerID: "rows", aheadBranches: branches))
        let length = 4
        let first = try Self.drafts(
            await worker.handle(Self.request(round: 1, context: Self.context, keep: 0, seed: 77, sequences: sequences)))
        let suffixes = try await Self.finishedAhead(worker)
        #expect(suffixes.count == branches)
        let perBranch = 1 + sequences * (length - 1)
        let rows = await worker.counters.aheadRows
        #expect(rows == Set(first.sequences).count + branches * perBranch, "after a fresh draft")
        // A hit on the first branch: the drafts made on it stay pending below the new context.
        let next = Self.context + (suffixes.first ?? [])
        let seed = DraftRequest.nextSeed(after: 77)
        let hit = try Self.drafts(
            await worker.handle(
                Self.request(round: 2, context: next, keep: Self.context.count, seed: seed, sequences: sequences)))
        #expect(hit.fromDraftAhead)
        #expect(try await Self.finishedAhead(worker).count == branches)
        let after = await worker.counters.aheadRows
        #expect(after - rows == Set(hit.sequences).count + branches * perBranch, "after a hit")
    }

    /// A cached draft stays, token for token and law for law, what a fresh worker drafts for the same context and
    /// seed when the plan it came from was built on a kept tree: round 2 hits a branch of round 1's plan (its
    /// drafts kept below the new context) or misses it (drafted afresh), then round 3 asks for every branch of
    /// round 2's plan (bonus and corrections) and for a context no branch has.
    @Test(arguments: [1, 2])
    func hitsAfterAKeptTreeEqualDraftingOnRequest(sequences: Int) async throws {
        let model = try #require(Self.model)
        let seed2 = DraftRequest.nextSeed(after: 77)
        let seed3 = DraftRequest.nextSeed(after: seed2)
        func request(_ round: UInt64, _ context: [Int], keep: Int, seed: UInt64) -> DraftRequest {
            Self.request(round: round, context: context, keep: keep, seed: seed, sequences: sequences)
        }
        /// A worker that answered round 1, then round 2 for `context + suffix2`, and drafted ahead after both.
        func worker(after suffix2: [Int]) async throws -> (DraftWorker, DraftReply, [[Int]]) {
            let worker = DraftWorker(model: model, configuration: .init(workerID: "keep", aheadBranches: 8))
            _ = try Self.drafts(await worker.handle(request(1, Self.context, keep: 0, seed: 77)))
            _ = try await Self.finishedAhead(worker)
            let second = try Self.drafts(
                await worker.handle(request(2, Self.context + suffix2, keep: Self.context.count, seed: seed2)))
            return (worker, second, try await Self.finishedAhead(worker))
        }
        let (_, first, plan1) = try await Self.workerAhead(sequences: sequences)
        let bonus1 = try #require(plan1.first { $0.count == 5 }, "round 1's plan has a bonus branch")
        let correction1 = try #require(plan1.first { $0.count == 2 }, "and a correction after one accepted token")
        let absent1 = [(0..<2048).first { t in !plan1.contains([t]) && !first.sequences.contains { $0[0] == t } } ?? 0]
        var bonusHits = 0, correctionHits = 0
        for suffix2 in [bonus1, correction1, absent1] {
            let context2 = Self.context + suffix2
            let (_, second, plan2) = try await worker(after: suffix2)
            #expect(second.fromDraftAhead == (suffix2 != absent1), "round 2 for \(suffix2)")
            let reference2 = try await Self.fresh(context2, seed: seed2, length: 4, sequences: sequences)
            #expect(second.sequences == reference2.sequences && second.distributions == reference2.distributions)
            let absent3 = (0..<2048).first { t in !plan2.contains([t]) } ?? 0
            for suffix3 in plan2 + [[absent3]] {
                let (worker3, _, again) = try await worker(after: suffix2)
                #expect(again == plan2, "planning is deterministic")
                let context3 = context2 + suffix3
                let third = try Self.drafts(
                    await worker3.handle(request(3, context3, keep: context2.count, seed: seed3)))
                #expect(third.fromDraftAhead == (suffix3 != [absent3]), "round 3 for \(suffix2) then \(suffix3)")
                if third.fromDraftAhead, suffix3.count == 5 {
                    bonusHits += 1
                } else if third.fromDraftAhead {
                    correctionHits += 1
                }
                let reference3 = try await Self.fresh(context3, seed: seed3, length: 4, sequences: sequences)
                #expect(third.sequences == reference3.sequences, "\(suffix2) then \(suffix3)")
                #expect(third.distributions == reference3.distributions, "laws of \(suffix2) then \(suffix3)")
            }
        }
        #expect(bonusHits >= 1 && correctionHits >= 1, "round 3 hit bonus and correction branches")
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
