import ArgumentParser
import ChorusCluster
import ChorusModel
import ChorusSampling
import Foundation

/// `chorus generate`: plain autoregressive generation with a local model, or text from a coordinator.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text with a local model (--model) or through a coordinator (--coordinator).",
        discussion: """
            Tokens are streamed to standard output as they are produced; statistics go to standard error.
            With --model this is plain target sampling (the baseline speculation is compared with).
            """
    )

    @Option(name: .long, help: "A GGUF model file to run locally.") var model: String?
    @Option(name: .long, help: "A coordinator to ask, e.g. tcp://127.0.0.1:7100.") var coordinator: String?
    @Option(name: .long, help: "The prompt text.") var prompt: String
    @Option(name: [.customShort("n"), .long], help: "Tokens to generate.") var tokens = 64
    @Option(name: .long, help: "Sampling temperature (0 = greedy).") var temperature = 1.0
    @Option(name: .customLong("top-k"), help: "Keep the k most probable tokens (0 = off).") var topK = 0
    @Option(name: .customLong("top-p"), help: "Nucleus mass (1 = off).") var topP = 1.0
    @Option(name: .long, help: "Seed (the same seed reproduces the text).") var seed: UInt64?
    @Option(name: .long, help: "Threads for the local model.") var threads = 1
    @Option(name: .long, help: "fast (the engine, default) or reference (Float32 copies, slow).") var precision =
        Precision.fast
    @Flag(name: .long, help: "Do not stop at the end-of-sequence token.") var ignoreEOS = false
    @Option(name: .long, help: "Seconds to wait for the coordinator.") var timeout = 60.0
    @OptionGroup var security: SecurityOptions

    var settings: SamplingSettings { SamplingSettings(temperature: temperature, topK: topK, topP: topP) }

    func validate() throws {
        guard (model == nil) != (coordinator == nil) else {
            throw ValidationError("give exactly one of --model FILE or --coordinator ADDRESS")
        }
        guard tokens >= 1 else { throw ValidationError("-n must be ≥ 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be ≥ 1") }
        do { try settings.validate() } catch { throw ValidationError("\(error)") }
        do {
            let tls = try security.tls()
            if tls != nil || security.keyFile != nil || security.insecure, coordinator == nil {
                throw ConfigurationError(
                    "--tls-cert, --tls-key, --tls-ca, --key-file and --insecure are for --coordinator")
            }
            if let coordinator {
                try clusterSecurity(tls: tls, keyFile: security.keyFile, insecure: security.insecure)
                    .check(coordinator, .dial)
            }
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() async throws {
        if let model {
            try runLocal(modelPath: model)
        } else if let coordinator {
            try await runRemote(coordinator: coordinator)
        }
    }

    func runLocal(modelPath: String) throws {
        let loaded = try loadModel(modelPath, threads: threads, precision: precision)
        let tokenizer = loaded.tokenizer
        let promptTokens = tokenizer.encode(prompt, addSpecial: true)
        guard !promptTokens.isEmpty else { throw fail("the prompt encodes to no tokens") }
        guard promptTokens.count < loaded.model.contextLength else {
            throw fail(
                "the prompt has \(promptTokens.count) tokens; the model's context is \(loaded.model.contextLength)")
        }
        let seed = self.seed ?? UInt64.random(in: 0...UInt64.max)
        var rng = ChorusRandom(seed: seed)
        var decoder = Tokenizer.StreamingDecoder(tokenizer: tokenizer)
        FileHandleOutput.standardOutput.write(prompt)
        let result = try TargetDecoder(
            model: loaded.model, settings: settings, stopToken: ignoreEOS ? nil : tokenizer.eos
        ).generate(prompt: promptTokens, maxTokens: tokens, rng: &rng) { token in
            FileHandleOutput.standardOutput.write(decoder.append(token))
        }
        let produced = result.tokens.count
        let reason = result.finishReason
        let prefill = result.prefill
        FileHandleOutput.standardOutput.write(decoder.finish() + "\n")
        let seconds = microseconds(result.decoding) / 1e6
        FileHandleOutput.standardError.write(
            "generated \(produced) tokens in \(fixed(seconds, 3)) s: \(fixed(Double(produced) / max(seconds, 1e-9), 1)) tokens/s "
                + "(prompt \(promptTokens.count) tokens in \(fixed(microseconds(prefill) / 1000, 1)) ms; stop: \(reason); seed \(seed))\n"
        )
    }
}

extension GenerateCommand {
    /// Streams a generation from a coordinator and ends with the cluster's statistics.
    func runRemote(coordinator address: String) async throws {
        let client: CoordinatorClient
        do {
            let tls = try security.tls()
            let security = try clusterSecurity(tls: tls, keyFile: security.keyFile, insecure: security.insecure)
            client = try CoordinatorClient(address: address, network: .nng(security), timeout: .seconds(timeout))
        } catch {
            throw fail("\(address): \(error)")
        }
        defer { client.close() }
        FileHandleOutput.standardOutput.write(prompt)
        let last: GenerationUpdate
        do {
            last = try await client.generate(prompt: prompt, maxTokens: tokens, sampling: settings, seed: seed) {
                update in FileHandleOutput.standardOutput.write(update.text)
            }
        } catch {
            throw fail("\(address): \(error)")
        }
        FileHandleOutput.standardOutput.write("\n")
        let s = last.statistics
        FileHandleOutput.standardError.write(
            "generated \(s.generatedTokens) tokens in \(fixed(Double(s.elapsedMicroseconds) / 1e6, 3)) s: "
                + "\(fixed(s.tokensPerSecond, 1)) tokens/s, block efficiency \(fixed(s.blockEfficiency, 3)), "
                + "acceptance rate \(fixed(s.acceptanceRate, 3)), drafts per round \(fixed(s.draftsPerRound, 2)) "
                + "(\(s.targetForwards) target forwards; stop: \(last.finishReason))\n")
        for warning in s.warnings { FileHandleOutput.standardError.write("warning: \(warning)\n") }
    }
}

func loadModel(_ path: String, threads: Int, precision: Precision = .fast, quiet: Bool = false) throws -> LoadedModel {
    let start = ContinuousClock.now
    if !quiet { FileHandleOutput.standardError.write("loading \(path)…\n") }
    do {
        let loaded = try LoadedModel.load(path, threads: threads, precision: precision)
        if !quiet {
            FileHandleOutput.standardError.write(
                "loaded \(loaded.summary), in \(fixed(microseconds(ContinuousClock.now - start) / 1000, 0)) ms\n")
        }
        return loaded
    } catch {
        throw fail("\(error)")
    }
}
