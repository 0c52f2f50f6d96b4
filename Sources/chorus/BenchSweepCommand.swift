import ArgumentParser
import ChorusBench
import ChorusCluster
import ChorusModel
import ChorusSampling
import Foundation

/// `chorus bench` (the default `bench` subcommand): a sweep over schemes, draft counts, draft lengths,
/// draft temperatures and draft mixes against a cluster it starts itself — worker processes on this
/// machine, or (`--hosts`) workers in network namespaces — with the coordinator in this process.
/// One JSON line per point (BenchRecord) to `--out`; a progress bar on standard error.
struct BenchSweepCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Measure block efficiency, token rate and the round's time split across a sweep.",
        discussion: """
            Local mode (default): starts draft-worker processes on 127.0.0.1 (K processes with --sequences \
            sequences each give K drafts) and a coordinator with the target in this process. Every point \
            generates --tokens tokens from each prompt of --prompts with fixed seeds and session ids, and \
            is compared with plain target decoding of the same prompts and seeds measured in the same run.

            --hosts 1,2,4,8: the same sweep with the workers in network namespaces (scripts/netns-cluster.sh, \
            needs root), each point spreading its K drafts over the hosts; --delay-ms adds link latency; the \
            coordinator and the workers are pinned to disjoint CPUs with taskset unless --no-pin.

            A live cluster (--coordinator ADDRESS) is not supported: a coordinator's scheme and draft \
            length are fixed when it starts, so a sweep needs coordinators of its own.

            See docs/benchmarks-cluster.md for every field of the results.
            """
    )

    @Option(
        name: .long, help: ArgumentHelp("Not supported: a live coordinator (see the discussion).", visibility: .hidden))
    var coordinator: String?
    @Option(name: .long, help: "Results file (JSON lines; default results/bench-DATE.jsonl).") var out: String?
    @Option(name: .long, help: "Prompts file, one prompt per line (default prompts/kjv.txt).") var prompts: String?
    @Option(name: .customLong("prompt-count"), help: "Use only the first N prompts.") var promptCount: Int?
    @Option(name: [.customShort("n"), .long], help: "Tokens generated per prompt.") var tokens = 64
    @Option(name: .long, help: "Comma-separated schemes.") var schemes =
        "sd,specinfer,spectr,truncated-lp,weighted-is,optimal"
    @Option(name: .long, help: "Comma-separated draft counts K (1…16).") var drafts = "1,2,4,8"
    @Option(name: .customLong("draft-lengths"), help: "Comma-separated draft lengths L.") var draftLengths = "4"
    @Option(name: .long, help: "Comma-separated draft temperatures.") var temperatures = "1.0"
    @Option(name: .long, help: "Comma-separated draft mixes: identical, temperature, model.") var mixes = "identical"
    @Option(name: .customLong("fixed-temperature"), help: "Draft 1's temperature in the temperature mix.")
    var fixedTemperature = 1.2
    @Option(name: .customLong("target-temperature"), help: "Target sampling temperature.") var targetTemperature = 1.0
    @Option(name: .long, help: "Target model file (default: the shipped chorus-kjv-target-f32.gguf).")
    var target: String?
    @Option(name: .long, help: "Primary draft model: small or medium (or a GGUF path).") var draft = "small"
    @Option(name: .customLong("second-draft"), help: "The other model of the model mix.") var secondDraft = "medium"
    @Option(name: .long, help: "Sequences per worker in local mode (K must be a multiple).") var sequences = 1
    @Option(name: .customLong("deadline-ms"), help: "Round deadline for worker replies (ms).") var deadlineMs = 5000
    @Option(name: .long, help: "Seed of the target's and the drafts' draws.") var seed: UInt64 = 1
    @Option(name: .customLong("truncation"), help: "truncated-lp's s.") var truncation = SchemeCatalog.defaultTruncation
    @Option(name: .long, help: "Directory with the chorus-kjv-*.gguf models.") var models: String?
    @Option(
        name: .customLong("baseline-every"),
        help: "Re-measure plain target decoding before every N measured points (0: only at the start and the end).")
    var baselineEvery = 1
    @Option(name: .customLong("max-workers"), help: "Local worker processes kept at most.") var maxWorkers = 12
    @Option(
        name: .customLong("ahead-branches"),
        help: "Branches each local worker drafts ahead (0 = off; default: the worker's default).")
    var aheadBranches: Int?
    @Option(name: .long, help: "Comma-separated emulated host counts (network namespaces; needs root).") var hosts:
        String?
    @Option(name: .customLong("delay-ms"), help: "With --hosts: added latency each way (ms).") var delayMs: Double?
    @Flag(name: .customLong("no-pin"), help: "With --hosts: do not pin the coordinator and the workers with taskset.")
    var noPin = false
    @Flag(
        name: .long,
        help: ArgumentHelp(
            "A small sweep (about 30 s in a release build): 4 prompts × 48 tokens, every scheme at K = 1, 2, 4 "
                + "with identical drafts, and the temperature mix at K = 2, 4."))
    var quick = false

    func validate() throws {
        if coordinator != nil {
            throw ValidationError(
                "--coordinator: measuring a live cluster is not supported (its scheme and draft length are fixed when "
                    + "it starts, and clients get no per-round timings); drop it to start a local cluster, or use --hosts"
            )
        }
        guard tokens >= 1 else { throw ValidationError("--tokens must be ≥ 1") }
        guard sequences >= 1 else { throw ValidationError("--sequences must be ≥ 1") }
        guard deadlineMs >= 1 else { throw ValidationError("--deadline-ms must be ≥ 1") }
        guard baselineEvery >= 0 else { throw ValidationError("--baseline-every must be ≥ 0") }
        guard maxWorkers >= 1 else { throw ValidationError("--max-workers must be ≥ 1") }
        if let aheadBranches, !(0...64).contains(aheadBranches) {
            throw ValidationError("--ahead-branches must be in 0…64")
        }
        if aheadBranches != nil, hosts != nil {
            throw ValidationError("--ahead-branches applies to local workers; the --hosts workers take their defaults")
        }
        if let promptCount, promptCount < 1 { throw ValidationError("--prompt-count must be ≥ 1") }
        _ = try axes()
        if let hosts {
            let counts = hosts.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 64 }) else {
                throw ValidationError("--hosts: give host counts in 1…64, e.g. 1,2,4,8")
            }
        } else if delayMs != nil {
            throw ValidationError("--delay-ms needs --hosts (the delay proxies sit on the emulated links)")
        }
        if let delayMs, !(delayMs >= 0) { throw ValidationError("--delay-ms must be ≥ 0") }
        guard SamplingSettings(temperature: targetTemperature).isValid else {
            throw ValidationError("--target-temperature must be finite and ≥ 0")
        }
    }

    /// The sweep's axes after --quick.
    struct Axes {
        var schemes: [String]
        var drafts: [Int]
        var lengths: [Int]
        var temperatures: [Double]
        var mixes: [DraftMix]
        var tokens: Int
        var promptCount: Int?
    }

    func axes() throws -> Axes {
        func list<T>(_ text: String, _ name: String, _ parse: (String) -> T?) throws -> [T] {
            let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let values = items.compactMap(parse)
            guard !items.isEmpty, values.count == items.count else {
                throw ValidationError("--\(name): cannot read '\(text)'")
            }
            return values
        }
        if quick {
            return Axes(
                schemes: ["sd", "specinfer", "spectr", "truncated-lp", "weighted-is", "optimal"], drafts: [1, 2, 4],
                lengths: [4], temperatures: [1.0], mixes: [.identical, .temperature], tokens: 48,
                promptCount: promptCount ?? 4)
        }
        let schemeList = try list(schemes, "schemes") { SchemeCatalog.names.contains($0) ? $0 : nil }
        let draftList = try list(drafts, "drafts") { Int($0).flatMap { (1...16).contains($0) ? $0 : nil } }
        let lengthList = try list(draftLengths, "draft-lengths") {
            Int($0).flatMap { (1...16).contains($0) ? $0 : nil }
        }
        let temperatureList = try list(temperatures, "temperatures") {
            Double($0).flatMap { $0 >= 0 && $0.isFinite ? $0 : nil }
        }
        let mixList = try list(mixes, "mixes") { DraftMix(rawValue: $0) }
        return Axes(
            schemes: schemeList, drafts: draftList, lengths: lengthList, temperatures: temperatureList, mixes: mixList,
            tokens: tokens, promptCount: promptCount)
    }

    func run() async throws {
        let axes = try axes()
        let directory = try modelsDirectory(models)
        let primary = try draftPath(draft, directory)
        let secondary = try draftPath(secondDraft, directory)
        let loaded = try loadModel(target ?? directory + "/chorus-kjv-target-f32.gguf", threads: 1, quiet: true)
        let promptTexts = try loadPrompts(prompts, limit: axes.promptCount)
        let promptTokens = promptTexts.map { loaded.tokenizer.encode($0, addSpecial: true) }
        if let long = promptTokens.first(where: { $0.count + axes.tokens >= loaded.model.contextLength }) {
            throw fail(
                "a prompt of \(long.count) tokens plus \(axes.tokens) generated exceeds the context of \(loaded.model.contextLength)"
            )
        }
        let outPath = out ?? defaultOutPath()
        try FileManager.default.createDirectory(
            at: URL(fileURLWithPath: outPath).deletingLastPathComponent(), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: outPath, contents: nil),
            let output = FileHandle(forWritingAtPath: outPath)
        else {
            throw fail("cannot write \(outPath)")
        }
        defer { try? output.close() }

        let runID = "\(Self.timestamp())-s\(seed)"
        let context = SweepContext(
            run: runID, output: output, primary: primary, secondary: secondary, fixedTemperature: fixedTemperature,
            targetTemperature: targetTemperature, prompts: promptTokens.count, tokens: axes.tokens, seed: seed,
            deadlineMs: deadlineMs, machine: Self.machine())
        // --hosts dials workers on this machine's private veth links (10.200.I.2), started --insecure by
        // scripts/netns-cluster.sh to measure the bare transport; local mode stays on loopback.
        let security = hosts == nil ? ClusterSecurity() : ClusterSecurity(insecure: true)
        var runner = BenchRunner(
            target: loaded.model, network: .nng(security), prompts: promptTokens, tokensPerPrompt: axes.tokens,
            targetSettings: SamplingSettings(temperature: targetTemperature), seed: seed,
            deadline: .milliseconds(deadlineMs))
        runner.truncation = truncation
        runner.baselineEvery = baselineEvery

        FileHandleOutput.standardError.write(
            "chorus bench: \(promptTokens.count) prompts × \(axes.tokens) tokens, \(Self.buildKind) build, "
                + "\(context.machine); results → \(outPath)\n")
        var failures = 0
        if let hosts {
            let counts = hosts.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            failures = try await runHosts(counts, axes: axes, runner: runner, context: context)
        } else {
            failures = try await runLocal(axes: axes, runner: runner, context: context, loaded: loaded)
        }
        // The file must read back as records.
        let text = try String(contentsOfFile: outPath, encoding: .utf8)
        let records = try BenchRecord.load(contentsOf: text)
        let measured = records.filter { $0.kind == .point }.count
        FileHandleOutput.standardError.write(
            "wrote \(records.count) records (\(measured) points) to \(outPath); plot with: chorus bench plot \(outPath)\n"
        )
        if failures > 0 { throw fail("\(failures) point(s) failed", code: 1) }
        if measured == 0, records.contains(where: { $0.kind == .skipped }) == false {
            throw fail("nothing was measured", code: 1)
        }
    }

    // MARK: Local mode

    func runLocal(axes: Axes, runner: BenchRunner, context: SweepContext, loaded: LoadedModel) async throws -> Int {
        let plan = BenchPlan(
            schemes: axes.schemes, drafts: axes.drafts, draftLengths: axes.lengths, temperatures: axes.temperatures,
            mixes: axes.mixes, sequencesPerWorker: sequences)
        let points = plan.points()
        let measured = points.filter { $0.skipReason == nil }.count
        let progress = BenchProgress(total: (measured + runner.baselines(measured)) * runner.prompts.count)
        let pool = try LocalWorkerPool(target: loaded.model, maxWorkers: maxWorkers, aheadBranches: aheadBranches)
        do {
            let failures = try await runner.sweep(points, records: context, progress: progress) { point in
                try await pool.acquire(
                    point.workerSpecs(
                        primary: context.primary, secondary: context.secondary, fixedTemperature: fixedTemperature))
            }
            // A second baseline shows how much the machine drifted during the sweep.
            _ = try await runner.measureBaseline(
                "plain target decoding (baseline, end of run)", records: context, progress: progress)
            progress.finish()
            await pool.shutdown()
            return failures
        } catch {
            await pool.shutdown()
            throw error
        }
    }
}

/// What every record of one run shares, and where records go.
struct SweepContext: BenchRecordSink {
    var run: String
    var output: FileHandle
    var primary: String
    var secondary: String
    var fixedTemperature: Double
    var targetTemperature: Double
    var prompts: Int
    var tokens: Int
    var seed: UInt64
    var deadlineMs: Int
    var machine: String

    static func modelName(_ path: String) -> String {
        let file = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return file.replacingOccurrences(of: "chorus-kjv-", with: "")
    }

    func record(_ point: BenchPoint, kind: BenchRecord.Kind) -> BenchRecord {
        let perDraft = point.drafts > 0 && point.sequencesPerWorker > 0
        var record = BenchRecord(
            kind: kind, run: run, point: point,
            draftTemperatures: perDraft ? point.draftTemperatures(fixedTemperature: fixedTemperature) : [],
            draftModels: perDraft
                ? point.draftModels(primary: Self.modelName(primary), secondary: Self.modelName(secondary)) : [],
            targetTemperature: targetTemperature, prompts: prompts, tokensPerPrompt: tokens, seed: seed,
            build: BenchSweepCommand.buildKind, deadlineMilliseconds: deadlineMs)
        record.machine = machine
        return record
    }

    func write(_ record: BenchRecord) throws {
        output.write(Data((try record.jsonLine() + "\n").utf8))
    }
}

extension SamplingSettings {
    var isValid: Bool { (try? validate()) != nil }
}
