import ArgumentParser
import ChorusBench
import ChorusCluster
import ChorusModel
import ChorusSampling
import Foundation

/// `chorus demo`: a whole local cluster on the shipped models — worker processes, a coordinator —
/// generating text, compared with plain target decoding measured in the same run.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start a local cluster on the shipped models and generate text.",
        discussion: """
            Starts --workers draft-worker processes (alternating the small and medium drafts), a coordinator
            with the target in this process, and generates from the prompt twice: with the cluster and with
            the target alone. Prints both rates, the block efficiency and the acceptance rate.
            """
    )

    @Option(
        name: .long,
        help:
            "Number of worker processes (default: one per core beside the target's, at most 2; here \(defaultWorkers))."
    )
    var workers = defaultWorkers
    /// One worker per core the target does not use (workers sharing a core wait for each other), 1 to 2.
    static var defaultWorkers: Int { min(2, max(1, ProcessInfo.processInfo.activeProcessorCount - 1)) }
    @Option(name: .long, help: "Prompt text.") var prompt = "And God said"
    @Option(name: [.customShort("n"), .long], help: "Tokens to generate.") var tokens = 128
    @Option(name: .long, help: "Target (and draft) temperature; 0 is greedy.") var temperature = 1.0
    @Option(name: .long, help: "Seed.") var seed: UInt64 = 1
    @Option(name: .long, help: "Token-level scheme.") var scheme = "optimal"
    @Option(name: .customLong("draft-length"), help: "Draft length L.") var draftLength = 4
    @Option(name: .long, help: "Sequences per worker per round.") var sequences = 1
    @Option(name: .customLong("ahead-branches"), help: "Branches each worker drafts ahead (0 = off).")
    var aheadBranches = 1
    @Flag(
        name: .customLong("no-pin"),
        help: "Do not pin the coordinator to CPU 0 and the workers to CPU 1 (done when there are ≥ 2 CPUs).")
    var noPin = false
    @Option(name: .long, help: "Directory with the chorus-kjv-*.gguf models (default: ./models or beside the binary).")
    var models: String?

    func validate() throws {
        guard (1...16).contains(workers) else { throw ValidationError("--workers must be in 1…16") }
        guard tokens >= 1 else { throw ValidationError("-n must be ≥ 1") }
        guard SchemeCatalog.names.contains(scheme) else { throw ValidationError("unknown scheme \(scheme)") }
        guard (1...16).contains(draftLength) else { throw ValidationError("--draft-length must be in 1…16") }
        guard (0...64).contains(aheadBranches) else { throw ValidationError("--ahead-branches must be in 0…64") }
    }

    func run() async throws {
        let directory = try modelsDirectory(models)
        let targetPath = directory + "/chorus-kjv-target-f32.gguf"
        let drafts = ["chorus-kjv-draft-small-f32.gguf", "chorus-kjv-draft-medium-f32.gguf"].map {
            directory + "/" + $0
        }
        // Target and drafts on different cores, as on different machines; the target alone runs on the same core.
        let pin = !noPin && ProcessInfo.processInfo.activeProcessorCount >= 2
        if pin { try CPUAffinity.pinProcess(toCPU: 0) }
        let loaded = try loadModel(targetPath, threads: 1)
        let settings = SamplingSettings(temperature: temperature)
        let promptTokens = loaded.tokenizer.encode(prompt, addSpecial: true)

        // Baseline: the target alone, same settings and seed.
        // (Measured again after the cluster's run; the mean of the two is the baseline, so a machine whose speed
        // drifts during the demo does not favour either side.)
        let before = try plainDecode(loaded, prompt: promptTokens, settings: settings)

        var options = Coordinator.Options()
        options.scheme = try SchemeCatalog.scheme(named: scheme)
        options.draftLength = draftLength
        let log = ClusterLog(component: "coordinator", minimum: .warning)
        let network = ClusterNetwork.nng()
        let coordinator = Coordinator(
            target: loaded.model, tokenizer: loaded.tokenizer, options: options, connector: network.connector, log: log)
        let service = try CoordinatorService(coordinator: coordinator, listen: "tcp://127.0.0.1:0", network: network)
        var children: [Process] = []
        defer { ChildProcesses.stop(children) }
        FileHandleOutput.standardError.write(
            "starting \(workers) worker process(es), registering with \(service.address)…\n")
        for w in 0..<workers {
            children.append(
                try ChildProcesses.startChorus(
                    [
                        "worker", "--listen", "tcp://127.0.0.1:0", "--model", drafts[w % drafts.count], "--register",
                        service.address.url, "--temperature", "\(temperature)", "--sequences", "\(sequences)",
                        "--id", "demo-w\(w + 1)", "--ahead-branches", "\(aheadBranches)",
                    ] + (pin ? ["--pin-cpu", "1"] : [])))
        }
        let started = ContinuousClock.now
        while await coordinator.workerStatuses.filter({ $0.state == .ready }).count < workers {
            if ContinuousClock.now - started > .seconds(60) {
                throw fail("workers did not register within 60 s (is port binding allowed on 127.0.0.1?)")
            }
            if let dead = children.first(where: { !$0.isRunning }) {
                throw fail("a worker process exited with status \(dead.terminationStatus) before registering")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        FileHandleOutput.standardError.write(
            "\(workers) worker(s) ready; generating \(tokens) tokens (\(settings), scheme \(scheme), L = \(draftLength))\n\n"
        )

        let result = try await coordinator.generate(
            prompt: promptTokens, maxTokens: tokens, settings: settings, seed: seed)
        FileHandleOutput.standardOutput.write(prompt + loaded.tokenizer.decode(result.tokens) + "\n\n")
        let s = result.statistics
        let clusterRate = s.tokensPerSecond
        var report = "cluster:      \(s.generatedTokens) tokens, \(fixed(clusterRate, 1)) tokens/s, "
        report += "block efficiency \(fixed(s.blockEfficiency, 3)), acceptance rate \(fixed(s.acceptanceRate, 3)), "
        report += "drafts per round \(fixed(s.draftsPerRound, 2))\n"
        let after = try plainDecode(loaded, prompt: promptTokens, settings: settings)
        let baseline = (tokens: before.tokens, rate: (before.rate + after.rate) / 2)
        report += "target alone: \(baseline.tokens) tokens, \(fixed(baseline.rate, 1)) tokens/s "
        report += "(mean of \(fixed(before.rate, 1)) before and \(fixed(after.rate, 1)) after the cluster's run)\n"
        let speedup = clusterRate / max(baseline.rate, 1e-9)
        report += "speedup:      \(fixed(speedup, 2))× (same machine, same run)\n"
        report += timeSplit(result.rounds, elapsedMicroseconds: s.elapsedMicroseconds)
        if speedup < 1.2 {
            report += why(
                result.rounds, blockEfficiency: s.blockEfficiency, elapsedMicroseconds: s.elapsedMicroseconds,
                baselineRate: baseline.rate)
        }
        for warning in s.warnings { report += "warning: \(warning)\n" }
        FileHandleOutput.standardError.write(report)
        await service.close()
    }

    /// Where a round's time went, averaged over the rounds: what decides whether speculation pays.
    func timeSplit(_ rounds: [Coordinator.RoundRecord], elapsedMicroseconds: UInt64) -> String {
        guard !rounds.isEmpty else { return "" }
        let n = Double(rounds.count)
        func mean(_ key: KeyPath<Coordinator.RoundRecord, Int64>) -> Double {
            Double(rounds.reduce(0) { $0 + $1[keyPath: key] }) / n / 1000
        }
        let total = Double(elapsedMicroseconds) / n / 1000
        var line =
            "round (mean of \(rounds.count)): \(fixed(total, 2)) ms: waiting for drafts \(fixed(mean(\.draftWait), 2)) ms "
        line += "(workers drafted \(fixed(mean(\.workerDraftTime), 2)) ms), "
        line +=
            "target forward \(fixed(mean(\.targetForward), 2)) ms, verification \(fixed(mean(\.verification), 2)) ms; "
        let replies = rounds.reduce(0) { $0 + $1.replies }
        let hits = rounds.reduce(0) { $0 + $1.aheadHits }
        line +=
            "\(hits) of \(replies) replies drafted ahead; depth verified \(fixed(Double(rounds.reduce(0) { $0 + $1.depth }) / n, 2)) "
        line += "of \(draftLength)\n"
        return line
    }

    /// Why speculation paid little, from the round's measured parts: a round must cost less than the block
    /// efficiency times one plain decode step.
    func why(
        _ rounds: [Coordinator.RoundRecord], blockEfficiency: Double, elapsedMicroseconds: UInt64, baselineRate: Double
    ) -> String {
        guard !rounds.isEmpty, baselineRate > 0 else { return "" }
        let n = Double(rounds.count)
        let decode = 1000 / baselineRate
        let round = Double(elapsedMicroseconds) / n / 1000
        let wait = Double(rounds.reduce(0) { $0 + $1.draftWait }) / n / 1000
        let forward = Double(rounds.reduce(0) { $0 + $1.targetForward }) / n / 1000
        var line = "why:          a round takes \(fixed(round, 2)) ms and yields \(fixed(blockEfficiency, 2)) tokens; "
        line += "\(fixed(blockEfficiency, 2)) plain decode steps take \(fixed(blockEfficiency * decode, 2)) ms. "
        line += "The target's tree costs \(fixed(forward / decode, 2))× one decode step"
        line += " and waiting for drafts \(fixed(100 * wait / max(round, 1e-9), 0)) % of the round"
        line += " (see docs/benchmarks.md §6)\n"
        return line
    }

    func plainDecode(_ loaded: LoadedModel, prompt: [Int], settings: SamplingSettings) throws -> (
        tokens: Int, rate: Double
    ) {
        var rng = ChorusRandom(seed: seed)
        let result = try TargetDecoder(model: loaded.model, settings: settings, stopToken: loaded.tokenizer.eos)
            .generate(prompt: prompt, maxTokens: tokens, rng: &rng)
        return (result.tokens.count, result.tokensPerSecond)
    }
}

/// Finds the shipped models: `explicit`, `$CHORUS_MODELS`, `./models`, or a `models/` directory above the binary.
func modelsDirectory(_ explicit: String?) throws -> String {
    let marker = "chorus-kjv-target-f32.gguf"
    var candidates: [String] = []
    if let explicit { candidates.append(explicit) }
    if let env = ProcessInfo.processInfo.environment["CHORUS_MODELS"] { candidates.append(env) }
    candidates.append(FileManager.default.currentDirectoryPath + "/models")
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<6 {
        candidates.append(directory.appendingPathComponent("models").path)
        directory = directory.deletingLastPathComponent()
    }
    for c in candidates where FileManager.default.fileExists(atPath: c + "/" + marker) { return c }
    throw fail(
        "cannot find the shipped models (\(marker)); looked in: \(candidates.joined(separator: ", ")); pass --models DIR"
    )
}
