import ChorusModel
import ChorusSampling
import ChorusTransport
import ChorusWire
import Foundation
import Testing

@testable import ChorusCluster

/// The coordinator's service logic over the in-memory transport: membership, deadlines, faults.
@Suite struct CoordinatorTests {
    func cluster(
        workers count: Int, faults: [InProcessFaults] = [], options: Coordinator.Options = .init()
    ) async throws -> (Coordinator, InProcessNetwork<ContinuousClock>, [InProcessServer], TableLanguageModel) {
        let target = try tableModel(n: 10, seed: 41, name: "target")
        let network = InProcessNetwork()
        var servers: [InProcessServer] = []
        for w in 0..<count {
            let draft = try tableModel(n: 10, seed: 50 + UInt64(w), name: "draft\(w)")
            let worker = DraftWorker(model: draft, configuration: .init(workerID: "w\(w)", sequences: 2))
            let server = try network.listen(
                on: "inproc://w\(w)", faults: w < faults.count ? faults[w] : .none
            ) { request in await worker.handle(bytes: request.body) }
            servers.append(server)
        }
        let coordinator = Coordinator(
            target: target, tokenizer: nil, options: options, connector: network,
            log: ClusterLog(component: "test", minimum: .error))
        for w in 0..<count { try await coordinator.addWorker(address: "inproc://w\(w)") }
        return (coordinator, network, servers, target)
    }

    @Test func greedyThroughTheServiceEqualsPlainDecoding() async throws {
        let (coordinator, _, _, target) = try await cluster(workers: 3)
        let result = try await coordinator.generate(prompt: [1, 2], maxTokens: 40, settings: .greedy, seed: 1)
        var plain: [Int] = []
        let s = try target.makeSession()
        var logits = try s.append([1, 2])
        for _ in 0..<40 {
            let next = try TokenDistribution(logits: logits, settings: .greedy).support[0]
            plain.append(next)
            logits = try s.append([next])
        }
        #expect(result.tokens == plain)
        #expect(result.statistics.blockEfficiency > 1)
        #expect(result.statistics.draftsPerRound > 1)
        await coordinator.close()
    }
}
