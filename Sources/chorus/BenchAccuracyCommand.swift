import ArgumentParser
import ChorusModel
import Foundation

/// `chorus bench accuracy`: how far the fast path's logits are from the Float32 reference, position by
/// position, on a real prompt — the fidelity figures of docs/benchmarks.md (issue 1/4's budget: ≤ 1.0 at every
/// position, ≤ 0.35 at the median position).
struct BenchAccuracyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accuracy",
        abstract: "Fast-path logits against the Float32 reference, per prompt position.",
        discussion: """
            Scores the prompt (BOS added as the model's metadata says) in one batch with both precisions and
            prints max |fast − reference| per position, the median position and the argmax agreement. The
            reference holds every weight as Float32: 4 bytes per parameter of memory.
            """
    )

    @Option(name: .long, help: "A GGUF model file.") var model = "models/chorus-kjv-target-f32.gguf"
    @Option(name: .long, help: "The prompt text.")
    var prompt =
        "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:\n        return n\n"
    @Option(name: .long, help: "Threads.") var threads = 1
    @Flag(name: .long, help: "One JSON object instead of text.") var json = false

    func run() throws {
        let fast = try loadModel(model, threads: threads, precision: .fast, quiet: true)
        let tokens = fast.tokenizer.encode(prompt, addSpecial: true)
        guard !tokens.isEmpty, tokens.count <= fast.model.contextLength else {
            throw fail("the prompt encodes to \(tokens.count) tokens; it must be 1…\(fast.model.contextLength)")
        }
        let chain = (0..<tokens.count).map { $0 - 1 }
        let ours = try fast.model.makeSession().scoreTree(tokens: tokens, parents: chain)
        let reference = try loadModel(model, threads: threads, precision: .reference, quiet: true)
        let exact = try reference.model.makeSession().scoreTree(tokens: tokens, parents: chain)
        var perPosition: [Double] = []
        var agree = 0
        for (a, b) in zip(ours, exact) {
            perPosition.append(zip(a, b).reduce(0) { max($0, Double(abs($1.0 - $1.1))) })
            if a.indices.max(by: { a[$0] < a[$1] }) == b.indices.max(by: { b[$0] < b[$1] }) { agree += 1 }
        }
        let sorted = perPosition.sorted()
        let medianDiff = sorted[sorted.count / 2], maxDiff = sorted.last ?? 0
        if json {
            print(
                "{\"model\":\"\(fast.model.identity.name)\",\"positions\":\(tokens.count),\"maxDifference\":\(maxDiff),"
                    + "\"medianPositionDifference\":\(medianDiff),\"positionZeroDifference\":\(perPosition[0]),"
                    + "\"argmaxAgreement\":\(Double(agree) / Double(tokens.count))}")
        } else {
            print("\(fast.model.identity.name): \(tokens.count) positions, \(fast.model.kernels) kernels")
            print(
                "  max |fast − reference| over positions: \(fixed(maxDiff, 4)); median position \(fixed(medianDiff, 4)); "
                    + "position 0 \(fixed(perPosition[0], 4)); argmax agreement \(agree)/\(tokens.count)")
        }
    }
}
