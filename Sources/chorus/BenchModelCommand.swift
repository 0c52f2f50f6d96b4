import ArgumentParser
import ChorusBench
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

            With --llama-bench PATH, llama.cpp's llama-bench runs on the same file with the same thread counts
            (tg = decode, pp16 = scoring 16 tokens in one batch) and the ratios Chorus ÷ llama.cpp are printed
            beside Chorus's figures: the side-by-side measurement docs/benchmarks.md records.
            """
    )

    @Option(name: .long, help: "Model file.") var model = "models/chorus-kjv-target-f32.gguf"
    @Option(name: .long, help: "Comma-separated thread counts.") var threads = "1,2"
    @Option(name: .long, help: "Comma-separated tree sizes.") var trees = "4,8,16,32"
    @Option(name: .long, help: "Prefix length before decoding / scoring.") var prefix = 64
    @Option(name: .long, help: "Decode steps timed.") var tokens = 128
    @Option(name: .long, help: "Repetitions per tree size.") var repeats = 30
    @Option(name: .long, help: "fast (the engine) or reference (Float32 copies).") var precision = Precision.fast
    @Option(name: .customLong("llama-bench"), help: "Path of llama.cpp's llama-bench, to measure it side by side.")
    var llamaBench: String?
    @Flag(name: .long, help: "JSON lines instead of a table.") var json = false

    func run() throws {
        let threadCounts = threads.split(separator: ",").compactMap { Int($0) }
        let sizes = trees.split(separator: ",").compactMap { Int($0) }
        guard !threadCounts.isEmpty, threadCounts.allSatisfy({ $0 >= 1 }) else { throw fail("--threads: counts ≥ 1") }
        guard sizes.allSatisfy({ $0 >= 1 }) else { throw fail("--trees: sizes ≥ 1") }
        for t in threadCounts {
            let loadStart = ContinuousClock.now
            let loaded = try loadModel(model, threads: t, precision: precision, quiet: true)
            let loadMilliseconds = microseconds(ContinuousClock.now - loadStart) / 1000
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
                    "\(m.identity.name), \(t) thread(s), \(m.precision.rawValue) precision, \(m.kernels) kernels: "
                        + "decode \(fixed(decode, 1)) µs/token = \(fixed(1e6 / decode, 1)) tokens/s "
                        + "(prefix \(prefix), median of \(tokens)); loaded in \(fixed(loadMilliseconds, 0)) ms")
            } else {
                print(
                    "{\"model\":\"\(m.identity.name)\",\"threads\":\(t),\"precision\":\"\(m.precision.rawValue)\",\"kernels\":\"\(m.kernels)\",\"decodeMicroseconds\":\(decode),\"tokensPerSecond\":\(1e6 / decode),\"loadMilliseconds\":\(loadMilliseconds)}"
                )
            }
            var tree16: Double?
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
                if size == 16 { tree16 = cost }
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
            let rss = ResidentMemory.current()
            let fileBytes = (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? nil
            if json {
                print(
                    "{\"model\":\"\(m.identity.name)\",\"threads\":\(t),\"residentBytes\":\(rss.current),\"peakResidentBytes\":\(rss.peak),\"fileBytes\":\(fileBytes ?? 0)}"
                )
            } else {
                print(
                    "  resident memory \(rss.current / 1_000_000) MB (peak \(rss.peak / 1_000_000) MB"
                        + (fileBytes.map { ", file \($0 / 1_000_000) MB" } ?? "") + ")")
            }
            if let llamaBench {
                let theirs = try LlamaBench.run(llamaBench, model: model, threads: t)
                let ours16 = tree16 ?? .nan
                if json {
                    print(
                        "{\"model\":\"\(m.identity.name)\",\"threads\":\(t),\"llamaDecodeTokensPerSecond\":\(theirs.decodeTokensPerSecond),\"llamaScore16Microseconds\":\(theirs.score16Microseconds),\"decodeRatio\":\((1e6 / decode) / theirs.decodeTokensPerSecond),\"score16Ratio\":\(theirs.score16Microseconds / ours16)}"
                    )
                } else {
                    let theirDecode = 1e6 / theirs.decodeTokensPerSecond
                    print(
                        "  llama.cpp, \(t) thread(s): decode \(fixed(theirs.decodeTokensPerSecond, 1)) tokens/s, "
                            + "16 tokens scored in \(fixed(theirs.score16Microseconds / 1000, 1)) ms "
                            + "(\(fixed(theirs.score16Microseconds / theirDecode, 2))× its decode step)")
                    print(
                        "  Chorus ÷ llama.cpp: decode \(fixed((1e6 / decode) / theirs.decodeTokensPerSecond, 2))×, "
                            + "16-token scoring "
                            + (tree16 == nil
                                ? "not measured (add 16 to --trees)"
                                : "\(fixed(theirs.score16Microseconds / ours16, 2))×")
                            + " (above 1: Chorus faster)"
                    )
                }
            }
        }
    }
}

/// llama.cpp's `llama-bench` on one file and thread count: tg (decode 64 tokens) and pp16 (16 tokens in one batch).
enum LlamaBench {
    struct Result {
        var decodeTokensPerSecond: Double
        var score16Microseconds: Double
    }

    static func run(_ path: String, model: String, threads: Int) throws -> Result {
        let arguments = ["-m", model, "-t", "\(threads)", "-p", "16", "-n", "64", "-r", "3", "-o", "json"]
        let run: (status: Int32, output: Data)
        do { run = try ChildProcesses.capture(path, arguments) } catch { throw fail("--llama-bench: \(error)") }
        guard run.status == 0, let rows = try? JSONSerialization.jsonObject(with: run.output) as? [[String: Any]]
        else { throw fail("llama-bench exited with \(run.status) or printed no JSON") }
        var result = Result(decodeTokensPerSecond: .nan, score16Microseconds: .nan)
        for row in rows {
            let prompt = row["n_prompt"] as? Int ?? 0, generated = row["n_gen"] as? Int ?? 0
            guard let rate = row["avg_ts"] as? Double else { continue }
            if generated > 0 && prompt == 0 { result.decodeTokensPerSecond = rate }
            if prompt == 16 && generated == 0 { result.score16Microseconds = 16 / rate * 1e6 }
        }
        guard result.decodeTokensPerSecond.isFinite, result.score16Microseconds.isFinite else {
            throw fail("llama-bench's JSON has no tg/pp16 rows")
        }
        return result
    }
}

/// Resident memory of this process (Linux: /proc/self/status VmRSS and VmHWM), in bytes.
enum ResidentMemory {
    static func current() -> (current: Int, peak: Int) {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
                let kilobytes = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
                return kilobytes * 1024
            }
            return 0
        }
        return (field("VmRSS"), field("VmHWM"))
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}
