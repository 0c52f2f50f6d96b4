import ChorusModel
import ChorusSampling
import ChorusTestSupport
import ChorusWire
import Foundation
import Testing

@testable import ChorusCluster

/// Issue 13's round statistics, through a whole in-memory cluster: the bytes of the draft replies and the
/// drafted tokens they carried, and the coordinator's CPU time outside the target forward.
@Suite(.timeLimit(.minutes(2)))
struct RoundStatisticsTests {
    @Test func draftTrafficAndCoordinatorTimeAreCounted() async throws {
        let cluster = try await FaultCluster.make(
            target: try CoordinatorFaultTests.target(),
            workers: [
                .init(model: try CoordinatorFaultTests.draft(60)), .init(model: try CoordinatorFaultTests.draft(61)),
            ])
        #expect(await cluster.waitReady([0, 1]))
        let coordinator = cluster.coordinator
        let result = try await coordinator.generate(prompt: [1, 2], maxTokens: 24, settings: .standard, seed: 3)
        let statistics = result.statistics
        #expect(statistics.draftsReceived > 0)
        // Every round record's traffic adds up to the generation's.
        #expect(statistics.draftReplyBytes == result.rounds.reduce(0) { $0 + $1.replyBytes })
        #expect(statistics.draftTokensReceived == result.rounds.reduce(0) { $0 + $1.draftTokens })
        #expect(
            statistics.coordinatorMicroseconds == UInt64(result.rounds.reduce(0) { $0 + $1.coordinatorCPU }))
        // Two workers × two sequences × L = 4 tokens per full round, each with its quantized law: a
        // 10-token law costs a few bytes per token on the wire, plus the reply's header.
        #expect(statistics.draftTokensReceived >= statistics.draftsReceived)
        #expect(statistics.bytesPerDraftedToken > 2 && statistics.bytesPerDraftedToken < 200)
        #expect(result.rounds.allSatisfy { $0.coordinatorCPU >= 0 })
        #expect(statistics.coordinatorMicrosecondsPerRound >= 0)
        await cluster.close()
    }

    /// Statistics JSON written before the coordinator-side fields existed still decodes (they are 0).
    @Test func olderStatisticsJSONDecodes() throws {
        let old = Data(
            #"{"generatedTokens":5,"targetForwards":2,"draftedTokens":8,"acceptedDraftTokens":3,"draftsReceived":4,"elapsedMicroseconds":90}"#
                .utf8)
        let decoded = try JSONDecoder().decode(GenerationStatistics.self, from: old)
        #expect(decoded.generatedTokens == 5 && decoded.draftReplyBytes == 0 && decoded.coordinatorMicroseconds == 0)
        var full = decoded
        full.draftReplyBytes = 700
        full.draftTokensReceived = 7
        full.coordinatorMicroseconds = 40
        #expect(try JSONDecoder().decode(GenerationStatistics.self, from: JSONEncoder().encode(full)) == full)
        #expect(full.bytesPerDraftedToken == 100)
        #expect(full.coordinatorMicrosecondsPerRound == 20)
    }
}
