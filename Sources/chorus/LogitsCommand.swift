import ArgumentParser
import ChorusModel
import Foundation

/// `chorus logits`: the model's logits at every prompt position, in the fixtures' JSON shape.
struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits",
        abstract: "Print the logits for every prompt position (BOS added as the model's metadata says)."
    )

    @Option(name: .long, help: "A GGUF model file.") var model: String
    @Option(name: .long, help: "The prompt text.") var prompt: String
    @Option(name: .long, help: "Threads.") var threads = 1
    @Option(name: .long, help: "fast (the engine, default) or reference (Float32 copies, slow).") var precision =
        Precision.fast
    @Flag(name: .long, help: "Print {\"tokens\": [...], \"logits\": [[...], ...]} (the only format).") var json = false

    func run() throws {
        let loaded = try loadModel(model, threads: threads, precision: precision, quiet: true)
        let tokens = loaded.tokenizer.encode(prompt, addSpecial: true)
        guard !tokens.isEmpty else { throw fail("the prompt encodes to no tokens") }
        guard tokens.count <= loaded.model.contextLength else {
            throw fail("the prompt has \(tokens.count) tokens; the model's context is \(loaded.model.contextLength)")
        }
        let session = try loaded.model.makeSession()
        // A chain "tree": one batched forward returns the logits of every position.
        let logits = try session.scoreTree(tokens: tokens, parents: (0..<tokens.count).map { $0 - 1 })
        var out = "{\"tokens\": [" + tokens.map(String.init).joined(separator: ", ") + "], \"logits\": ["
        out += logits.map { row in "[" + row.map { "\($0)" }.joined(separator: ", ") + "]" }.joined(separator: ", ")
        out += "]}\n"
        FileHandleOutput.standardOutput.write(out)
    }
}
