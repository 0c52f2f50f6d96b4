import ChorusModel
import ChorusSampling
import ChorusWire
import Foundation
import Testing

@testable import ChorusCluster

/// A worker drafts its S sequences as rows of one forward pass per step (issue 1/4, "users of the engine"):
/// the drafts and their laws are exactly those of drafting each sequence alone, one token at a time.
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
            draftLength: 5, sequences: 3, sampling: settings, seed: 77, deadlineMilliseconds: 10_000)
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
}
