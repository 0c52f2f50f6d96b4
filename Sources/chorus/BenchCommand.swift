import ArgumentParser
import ChorusBench
import ChorusSampling
import Foundation

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks (outside the test suite).",
        subcommands: [
            BenchSweepCommand.self, BenchPlotCommand.self, BenchSelectionCommand.self, BenchModelCommand.self,
            BenchAcceptanceCommand.self, BenchAccuracyCommand.self, BenchTransportCommand.self,
            BenchQuantizationCommand.self, BenchServeCommand.self,
        ],
        defaultSubcommand: BenchSweepCommand.self
    )
}

/// `chorus bench selection`: the cost of one position's token-level selection (prepare + select) at
/// vocabulary scale, against the cost of one pass over the K + 1 distributions measured in the same run.
struct BenchSelectionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selection",
        abstract: "Time one position's selection per scheme at vocabulary scale.",
        discussion: """
            Distributions are LM-like: softmax of Gaussian logits (σ = 2) for the target, the draft's logits
            the target's plus Gaussian noise (σ = 1), at temperature 1 (--temperature sets both laws'). Build
            with -c release.
            """
    )

    @Option(name: .long, help: "Vocabulary size n.") var vocab = 32000
    @Option(name: .long, help: "Comma-separated draft counts K.") var drafts = "2,4,8"
    @Option(name: .long, help: "Comma-separated schemes (truncated-lp:S sets s).")
    var schemes = "sd,specinfer,spectr,truncated-lp:5,truncated-lp:15,weighted-is,optimal"
    @Option(name: .long, help: "Timed positions per point (after 3 warm-up runs).") var positions = 50
    @Option(name: .long, help: "Seed of the distributions and draws.") var seed: UInt64 = 1
    @Flag(name: .long, help: "Print JSON lines instead of a table.") var json = false
    @Flag(name: .long, help: "Also print the optimal scheme's build split (sort / scan / passes).") var split = false
    @Option(name: .long, help: "Quantize the draft law to integer masses summing to 2^BITS (as workers send it).")
    var quantize: Int?
    @Option(name: .long, help: "Temperature of both laws (below 1: peakier, LM-like supports once quantized).")
    var temperature = 1.0

    func run() throws {
        let counts = drafts.split(separator: ",").compactMap { Int($0) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 }) else { throw fail("--drafts: give counts ≥ 1") }
        guard vocab >= 2 else { throw fail("--vocab must be ≥ 2") }
        guard positions >= 1 else { throw fail("--positions must be ≥ 1") }
        guard temperature > 0, temperature.isFinite else { throw fail("--temperature must be > 0") }
        let specs: [(label: String, scheme: any SelectionScheme)] = try schemes.split(separator: ",").map { item in
            let parts = item.split(separator: ":")
            let name = String(parts[0])
            let s = parts.count > 1 ? Int(parts[1]) ?? SchemeCatalog.defaultTruncation : SchemeCatalog.defaultTruncation
            do {
                let scheme = try SchemeCatalog.scheme(named: name, truncation: s)
                // The build split is timed by a clock passed in (the sampling core reads none).
                if split, scheme is OptimalScheme {
                    return (String(item), OptimalScheme(stopwatch: { DispatchTime.now().uptimeNanoseconds }))
                }
                return (String(item), scheme)
            } catch { throw fail("\(error)") }
        }

        var rng = ChorusRandom(seed: seed)
        let gaussian = { () -> Double in
            let u1 = max(rng.nextUnit(), 1e-300), u2 = rng.nextUnit()
            return sqrt(-2 * log(u1)) * cos(2 * .pi * u2)
        }
        let targetLogits = (0..<vocab).map { _ in 2 * gaussian() }
        let draftLogits = targetLogits.map { $0 + gaussian() }
        let settings = SamplingSettings(temperature: temperature)
        let q = try TokenDistribution(logits: targetLogits, settings: settings)
        let full = try TokenDistribution(logits: draftLogits, settings: settings)
        let p = quantize.map { QuantizedDistribution(quantizing: full, totalBits: $0).distribution } ?? full

        if !json {
            print("selection benchmark: n = \(vocab), \(positions) positions per point, one thread, seed \(seed)")
            if let quantize {
                print("draft law quantized to 2^\(quantize): \(p.support.count) of \(full.support.count) tokens")
            }
            print(
                padded("scheme", 18) + padded("K", 4) + padded("wall µs", 12) + padded("CPU µs", 12)
                    + padded("one pass µs", 13)
                    + padded("ratio", 8) + "acceptance")
        }
        for k in counts {
            let laws = Array(repeating: p, count: k)
            let baseline = timeOnePass(target: q, drafts: laws)
            for spec in specs {
                var drawRNG = ChorusRandom(seed: seed &+ UInt64(k))
                var total: Duration = .zero
                var cpu = 0.0
                var acceptance = 0.0
                var sink = 0
                var splitTotals: (UInt64, UInt64, UInt64) = (0, 0, 0)
                for iteration in 0..<(positions + 3) {
                    let drafted = laws.map { $0.sample(using: &drawRNG) }
                    let start = ContinuousClock.now
                    let cpuStart = threadCPUMicroseconds()
                    let prepared: any PreparedSelection
                    do { prepared = try spec.scheme.prepare(target: q, drafts: laws) } catch {
                        throw fail("\(spec.label): \(error)")
                    }
                    let outcome = prepared.select(drafted, using: &drawRNG)
                    let elapsed = ContinuousClock.now - start
                    let cpuElapsed = threadCPUMicroseconds() - cpuStart
                    sink &+= outcome.token
                    acceptance = prepared.acceptance
                    if iteration >= 3 {
                        total += elapsed
                        cpu += cpuElapsed
                        if let o = prepared as? OptimalSelection {
                            let b = o.buildNanoseconds
                            splitTotals = (splitTotals.0 + b.sort, splitTotals.1 + b.scan, splitTotals.2 + b.passes)
                        }
                    }
                }
                let micros = microseconds(total) / Double(positions)
                let cpuMicros = cpu / Double(positions)
                if split, splitTotals.0 > 0 {
                    let d = Double(positions) * 1000
                    print(
                        "    \(spec.label) K = \(k) build split: sort \(fixed(Double(splitTotals.0) / d, 1)) µs, "
                            + "scan \(fixed(Double(splitTotals.1) / d, 1)) µs, passes \(fixed(Double(splitTotals.2) / d, 1)) µs"
                    )
                }
                if json {
                    print(
                        "{\"scheme\":\"\(spec.label)\",\"vocab\":\(vocab),\"drafts\":\(k),\"microsecondsPerPosition\":\(micros),\"cpuMicrosecondsPerPosition\":\(cpuMicros),"
                            + "\"onePassMicroseconds\":\(baseline),\"acceptance\":\(acceptance),\"checksum\":\(sink)}")
                } else {
                    print(
                        padded(spec.label, 18) + padded("\(k)", 4) + padded(fixed(micros, 1), 12)
                            + padded(fixed(cpuMicros, 1), 12)
                            + padded(fixed(baseline, 1), 13) + padded(fixed(cpuMicros / baseline, 2), 8)
                            + fixed(acceptance, 4))
                }
            }
        }
    }

    /// Median CPU time of one pass reading every stored entry of the K + 1 distributions (the floor any
    /// scheme that looks at all of them must pay), in microseconds: Σ_y min(q(y), p_1(y), …) over the dense
    /// vectors when every draft is dense; with sparse drafts, the target's n entries once and each draft's
    /// support (its stored values, each against the target's value there). Sparse drafts are never widened
    /// here, so the schemes timed after this find them as the coordinator does.
    func timeOnePass(target: TokenDistribution, drafts: [TokenDistribution]) -> Double {
        var samples: [Double] = []
        var sink = 0.0
        let sparse = drafts.contains(where: \.isSparse)
        for _ in 0..<21 {
            let start = threadCPUMicroseconds()
            var acc = 0.0
            let q = target.probabilities
            if sparse {
                for y in 0..<target.vocabularySize { acc += q[y] }
                for d in drafts {
                    for (y, value) in zip(d.support, d.supportProbabilities) { acc += min(q[y], value) }
                }
            } else {
                let vectors = drafts.map(\.probabilities)
                for y in 0..<target.vocabularySize {
                    var m = q[y]
                    for d in vectors { m = min(m, d[y]) }
                    acc += m
                }
            }
            sink += acc
            samples.append(threadCPUMicroseconds() - start)
        }
        if sink.isNaN { print("") }
        return samples.sorted()[samples.count / 2]
    }
}

func microseconds(_ d: Duration) -> Double {
    let (seconds, attoseconds) = d.components
    return Double(seconds) * 1e6 + Double(attoseconds) / 1e12
}

/// CPU time of the calling thread in microseconds (CLOCK_THREAD_CPUTIME_ID): less sensitive than
/// wall time to other processes on a shared machine.
func threadCPUMicroseconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
}
