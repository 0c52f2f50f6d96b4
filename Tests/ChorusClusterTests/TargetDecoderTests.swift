import ChorusModel
import ChorusSampling
import ChorusTestSupport
import Foundation
import Testing

@testable import ChorusCluster

/// The CLI's model loading and plain target decoding, now library facades (`LoadedModel`, `TargetDecoder`).
@Suite struct TargetDecoderTests {
    @Test func greedyDecodingIsPlainGreedyAndStopsWhereAsked() throws {
        let model = try tableModel(n: 12, seed: 5, contextLength: 16, name: "t")
        let reference = try plainGreedy(model, prompt: [1, 2], count: 10)
        var rng = ChorusRandom(seed: 1)
        let decoder = TargetDecoder(model: model, settings: .greedy, stopToken: nil)
        let result = try decoder.generate(prompt: [1, 2], maxTokens: 10, rng: &rng)
        #expect(result.tokens == reference)
        #expect(result.finishReason == "length")
        // Stop token: the text ends with it.
        let stop = reference[3]
        let first = try #require(reference.firstIndex(of: stop))
        var seen: [Int] = []
        let stopped = try TargetDecoder(model: model, settings: .greedy, stopToken: stop)
            .generate(prompt: [1, 2], maxTokens: 10, rng: &rng) { seen.append($0) }
        #expect(stopped.tokens == Array(reference[...first]))
        #expect(stopped.finishReason == "eos")
        #expect(seen == stopped.tokens)
        // The context (16) ends the generation: prompt 2 + at most 14 tokens.
        let long = try decoder.generate(prompt: [1, 2], maxTokens: 100, rng: &rng)
        #expect(long.finishReason == "context")
        #expect(long.tokens.count == 14)
        #expect(throws: ModelError.self) {
            try decoder.generate(prompt: Array(repeating: 1, count: 16), maxTokens: 1, rng: &rng)
        }
        #expect(throws: ModelError.self) { try decoder.generate(prompt: [], maxTokens: 1, rng: &rng) }
    }

    @Test func loadingNamesTheFileOnFailureAndSummarisesTheModel() throws {
        let path = WorkerBatchTests.shippedModel("chorus-kjv-target-f32.gguf")
        let loaded = try LoadedModel.load(path, threads: 1)
        #expect(loaded.summary.contains("6 layers, d 288, vocabulary 2048"))
        #expect(loaded.tokenizer.encode("And God said", addSpecial: true).count > 1)
        do {
            _ = try LoadedModel.load("/nonexistent/model.gguf", threads: 1)
            Issue.record("a missing file loaded")
        } catch {
            #expect("\(error)".contains("/nonexistent/model.gguf"))
        }
    }
}
