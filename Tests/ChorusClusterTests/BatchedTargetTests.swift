import ChorusModel
import ChorusSampling
import ChorusTestSupport
import ChorusTransport
import Foundation
import Testing

@testable import ChorusCluster

/// Many clients at once (issue 12): the sessions ready at the same moment share one target forward
/// (``TargetBatcher``), and that changes no session's tokens.
@Suite struct BatchedTargetTests {
    /// The shipped q8_0 target on the coordinator and one in-process worker drafting with the small draft; a
    /// fixed, generous deadline so every round uses the worker's reply, whatever the timing, and every round
    /// drafting (no draft gate).
    static func cluster() async throws -> (Coordinator, [InProcessServer]) {
        let target = try TransformerModel(path: Models.path("chorus-kjv-target-q8_0.gguf"), threads: 2)
        let draft = try TransformerModel(path: Models.small, threads: 1)
        let network = InProcessNetwork()
        var options = Coordinator.Options()
        options.deadline = .seconds(20)
        options.draftLength = 3
        // Every round drafts: with the draft gate on, four sessions at once may be measured to go faster without
        // drafts and then draw other (equally exact) tokens than alone; this suite is about batching alone.
        options.gateDrafting = false
        let coordinator = Coordinator(
            target: target, tokenizer: nil, options: options, connector: network,
            log: ClusterLog(component: "batch-test", minimum: .error))
        let worker = DraftWorker(model: draft, configuration: .init(workerID: "w", sequences: 2))
        let server = try network.listen(on: "inproc://batch-w0") { request in await worker.handle(bytes: request.body) }
        try await coordinator.addWorker(address: "inproc://batch-w0")
        let ready = await eventually(within: .seconds(30)) {
            await coordinator.workerStatuses.first?.state == .ready
        }
        #expect(ready)
        return (coordinator, [server])
    }

    /// A finished session is kept for late readers without its KV cache: a serving coordinator's memory grew by
    /// megabytes per request until it released them (`scripts/soak.sh`).
    @Test func finishedSessionsReleaseTheirTargetState() async throws {
        let (coordinator, servers) = try await Self.cluster()
        defer { for server in servers { server.close() } }
        for seed in 1...3 as ClosedRange<UInt64> {
            let result = try await within(.seconds(120), "session \(seed)") {
                try await coordinator.generate(
                    prompt: [0, 297, 388], maxTokens: 12, settings: SamplingSettings(temperature: 1), seed: seed)
            }
            #expect(!result.tokens.isEmpty)
        }
        let kept = await coordinator.keptSessions
        #expect(kept.count == 3)
        #expect(kept.holdingTargetState == 0)
        await coordinator.close()
    }

    /// The strongest check: the batched logits are bit-identical to each tree scored alone, so a seeded session
    /// gives the same tokens alone and among three others whose rounds share its forwards. Temperature 1, so
    /// every token is a draw from the target's law through the verifier's RNG: any difference in a logit or in
    /// the order of RNG use would show.
    @Test func aSeededSessionGivesTheSameTokensAloneAndBatched() async throws {
        let (coordinator, servers) = try await Self.cluster()
        defer { for server in servers { server.close() } }
        let prompts = [[0, 297, 388, 387], [0, 11, 260], [0, 5, 300, 41], [0, 99]]
        let settings = SamplingSettings(temperature: 1)
        var alone: [[Int]] = []
        for (i, prompt) in prompts.enumerated() {
            let result = try await within(.seconds(120), "session \(i) alone") {
                try await coordinator.generate(prompt: prompt, maxTokens: 48, settings: settings, seed: UInt64(100 + i))
            }
            alone.append(result.tokens)
            #expect(result.rounds.allSatisfy { $0.batchedSessions == 1 }, "session \(i) ran alone")
        }
        let together = try await within(.seconds(240), "four sessions at once") {
            try await withThrowingTaskGroup(of: (Int, [Int], Int).self) { group in
                for (i, prompt) in prompts.enumerated() {
                    group.addTask {
                        let result = try await coordinator.generate(
                            prompt: prompt, maxTokens: 48, settings: settings, seed: UInt64(100 + i))
                        return (i, result.tokens, result.rounds.map(\.batchedSessions).max() ?? 0)
                    }
                }
                var out = [([Int], Int)](repeating: ([], 0), count: prompts.count)
                for try await (i, tokens, widest) in group { out[i] = (tokens, widest) }
                return out
            }
        }
        for i in prompts.indices { #expect(together[i].0 == alone[i], "session \(i)") }
        // The rounds really shared forwards (four sessions of 48 tokens each cannot all miss one another).
        #expect(together.contains { $0.1 > 1 }, "no round shared a forward: \(together.map(\.1))")
        await coordinator.close()
    }
}
