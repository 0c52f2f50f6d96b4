import ArgumentParser
import ChorusModel
import ChorusSampling
import Foundation

/// `chorus bench model`: single-token decode speed and the cost of scoring draft trees in one
/// batched forward pass, relative to one decode step (issue 3/5's runtime benchmark).
struct BenchModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Decode tokens/s and tree-scoring cost relative to one decode step.",
        discussion: """
            For each thread count: decode a continuation one token at a time (median time per token over
            --tokens steps after a prompt of --prefix tokens), then score random draft trees of each size
            after the same prefix (median of --repeats; the tree is discarded each time). Build with -c release.
            """
    )

    @Option(name: .long, help: "Model file.") var model = "models/chorus-kjv-target-f32.gguf"
    @Option(name: .long, help: "Comma-separated thread counts.") var threads = "1,2"
    @Option(name: .long, help: "Comma-separated tree sizes.") var trees = "4,8,16,32"
    @Option(name: .long, help: "Prefix length before decoding / scoring.") var prefix = 64
    @Option(name: .long, help: "Decode steps timed.") var tokens = 128
    @Option(name: .long, help: "Repetitions per tree size.") var repeats = 30
    @Flag(name: .long, help: "JSON lines instead of a table.") var json = false

    func run() throws {
        let threadCounts = threads.split(separator: ",").compactMap { Int($0) }
        let sizes = trees.split(separator: ",").compactMap { Int($0) }
        guard !threadCounts.isEmpty, threadCounts.allSatisfy({ $0 >= 1 }) else { throw fail("--threads: counts ≥ 1") }
        guard sizes.allSatisfy({ $0 >= 1 }) else { throw fail("--trees: sizes ≥ 1") }
        for t in threadCounts {
            let loaded = try loadModel(model, threads: t, quiet: true)
            let m = loaded.model
            guard prefix + tokens + 1 < m.contextLength, prefix + (sizes.max() ?? 1) < m.contextLength else {
                throw fail("prefix + tokens must fit the context of \(m.contextLength)")
            }
            var rng = ChorusRandom(seed: 7)
            let prompt = (0..<prefix).map { _ in Int(rng.next() % UInt64(m.vocabularySize)) }
            let session = try m.makeSession()
            var logits = try session.append(prompt)
            var steps: [Double] = []
            for _ in 0..<tokens {
                let token = try TokenDistribution(logits: logits, settings: .greedy).support[0]
                let start = ContinuousClock.now
                logits = try session.append([token])
                steps.append(microseconds(ContinuousClock.now - start))
            }
            let decode = median(steps)
            try session.rollback(to: prefix)
            if !json {
                print(
                    "\(m.identity.name), \(t) thread(s): decode \(fixed(decode, 1)) µs/token = \(fixed(1e6 / decode, 1)) tokens/s (prefix \(prefix), median of \(tokens))"
                )
            } else {
                print(
                    "{\"model\":\"\(m.identity.name)\",\"threads\":\(t),\"decodeMicroseconds\":\(decode),\"tokensPerSecond\":\(1e6 / decode)}"
                )
            }
            for size in sizes {
                var samples: [Double] = []
                for _ in 0..<repeats {
                    // A random tree: node i's parent is a random earlier node or the prefix.
                    let parents = (0..<size).map { i in i == 0 ? -1 : Int(rng.next() % UInt64(i + 1)) - 1 }
                    let nodes = (0..<size).map { _ in Int(rng.next() % UInt64(m.vocabularySize)) }
                    let start = ContinuousClock.now
                    _ = try session.scoreTree(tokens: nodes, parents: parents)
                    samples.append(microseconds(ContinuousClock.now - start))
                    try session.rollback(to: prefix)
                }
                let cost = median(samples)
                if json {
                    print(
                        "{\"model\":\"\(m.identity.name)\",\"threads\":\(t),\"treeSize\":\(size),\"treeMicroseconds\":\(cost),\"relativeToDecode\":\(cost / decode)}"
                    )
                } else {
                    print(
                        "  tree of \(padded("\(size)", 3)) tokens: \(padded(fixed(cost, 1), 8)) µs = \(fixed(cost / decode, 2))× one decode step"
                    )
                }
            }
        }
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}
