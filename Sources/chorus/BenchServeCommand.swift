import ArgumentParser
import ChorusBench
import Foundation

/// `chorus bench serve`: streaming load against an OpenAI-compatible server, optionally side by side with
/// llama.cpp's `llama-server` in the same run.
struct BenchServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Streaming load on an OpenAI-compatible /v1/completions endpoint: throughput, TTFT, ITL.",
        discussion: """
            For each concurrency level, sends --requests streaming completions (--max-tokens each, ignore_eos, a \
            seed per request, prompts from --prompts in turn), that many at a time, and reports the aggregate \
            tokens/s, time to first token, inter-token latency and errors (p50/p90/p99 from HdrHistogram). With \
            --llama-server URL the same load goes to llama.cpp's server at each level right after Chorus, so \
            both are measured in the same minutes. Start the servers first, for example \
            `chorus coordinator --model M --http 127.0.0.1:8080 …` and \
            `llama-server -m M -t 1 --parallel 8 --port 8081`.
            """)

    @Option(name: .long, help: "Chorus's HTTP address.") var url = "http://127.0.0.1:8080"
    @Option(name: .long, help: "Also load llama-server at this address, level by level.") var llamaServer: String?
    @Option(name: .long, help: "Comma-separated concurrency levels.") var concurrency = "1,2,4,8"
    @Option(name: .long, help: "Requests per level (default: 4 × the level, at least 8).") var requests: Int?
    @Option(name: .long, help: "File with one prompt per line (default: a few built-in prompts).") var prompts: String?
    @Option(name: .long, help: "Tokens per request.") var maxTokens = 64
    @Option(name: .long, help: "Sampling temperature.") var temperature = 1.0
    @Option(name: .long, help: "The requests' model field (default: left out; each server uses its own).")
    var model: String?
    @Option(name: .long, help: "File holding a bearer API key for Chorus's server.") var apiKeyFile: String?
    @Option(name: .long, help: "Seconds of server silence before a request fails.") var timeout = 120
    @Option(name: .long, help: "Write serve.jsonl and serve-*.svg into this directory.") var out: String?
    @Flag(name: .long, help: "JSON lines instead of a table.") var json = false

    static let builtInPrompts = [
        "And God said", "In the beginning", "And it came to pass", "Then answered the LORD",
        "def fibonacci(n):", "The quick brown fox", "Once upon a time", "Blessed are the",
    ]

    var levels: [Int] { concurrency.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        guard !levels.isEmpty, levels.count == concurrency.split(separator: ",").count, levels.allSatisfy({ $0 >= 1 })
        else {
            throw ValidationError("--concurrency must be positive integers separated by commas, got '\(concurrency)'")
        }
        if let requests, requests < 1 { throw ValidationError("--requests must be ≥ 1") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be ≥ 1") }
        guard timeout >= 1 else { throw ValidationError("--timeout must be ≥ 1 second") }
        for address in [url] + (llamaServer.map { [$0] } ?? []) where !address.hasPrefix("http://") {
            throw ValidationError("'\(address)' is not an http://HOST:PORT address")
        }
        if let prompts, !FileManager.default.isReadableFile(atPath: prompts) {
            throw ValidationError("cannot read the prompts file \(prompts)")
        }
    }

    func run() throws {
        var promptList = Self.builtInPrompts
        if let prompts {
            promptList = try String(contentsOfFile: prompts, encoding: .utf8).split(separator: "\n")
                .map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            guard !promptList.isEmpty else { throw ValidationError("\(prompts) holds no prompt") }
        }
        let key = try apiKeyFile.map {
            try String(contentsOfFile: $0, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var servers = [(label: "chorus", url: url, key: key)]
        if let llamaServer { servers.append((label: "llama-server", url: llamaServer, key: nil)) }
        if !json {
            print(
                "server        conc  done  errors  tok/s    req/s  TTFT p50/p90/p99 ms     ITL p50/p90/p99 ms    tok/chunk"
            )
        }
        var results: [ServeLoadResult] = []
        for level in levels {
            for server in servers {
                var plan = ServeLoadPlan(url: server.url, label: server.label, prompts: promptList)
                plan.model = model
                plan.maxTokens = maxTokens
                plan.temperature = temperature
                plan.concurrency = level
                plan.requests = requests ?? max(8, 4 * level)
                plan.apiKey = server.key
                plan.timeout = .seconds(timeout)
                let result = ServeLoad.run(plan)
                results.append(result)
                print(json ? Self.jsonLine(result) : Self.row(result))
            }
        }
        if let out { try write(results, to: out) }
        if results.allSatisfy({ $0.completed == 0 }) {
            throw ValidationError(
                "no request completed: is the server at \(url) running? (errors: \(results.first?.errors ?? [:]))")
        }
    }

    static func jsonLine(_ result: ServeLoadResult) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return (try? encoder.encode(result)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func row(_ r: ServeLoadResult) -> String {
        let errors = r.errors.isEmpty ? "0" : r.errors.map { "\($0.value) \($0.key)" }.sorted().joined(separator: ", ")
        let ttft =
            "\(fixed(r.timeToFirstToken.p50, 1))/\(fixed(r.timeToFirstToken.p90, 1))/\(fixed(r.timeToFirstToken.p99, 1))"
        let itl =
            "\(fixed(r.interTokenLatency.p50, 2))/\(fixed(r.interTokenLatency.p90, 2))/\(fixed(r.interTokenLatency.p99, 2))"
        return padded(r.server, 13) + " " + padded(String(r.concurrency), 5) + " "
            + padded("\(r.completed)/\(r.requests)", 5) + " " + padded(errors, 7) + " "
            + padded(fixed(r.tokensPerSecond, 1), 8)
            + " " + padded(fixed(r.requestsPerSecond, 2), 6) + " " + padded(ttft, 22) + " " + padded(itl, 21) + " "
            + fixed(r.tokensPerChunk, 2)
    }

    func write(_ results: [ServeLoadResult], to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try results.map(Self.jsonLine).joined(separator: "\n").appending("\n")
            .write(toFile: directory + "/serve.jsonl", atomically: true, encoding: .utf8)
        let labels = Array(Set(results.map(\.server))).sorted()
        func series(_ value: (ServeLoadResult) -> Double) -> [SVGChart.Series] {
            labels.map { label in
                SVGChart.Series(
                    name: label,
                    points: results.filter { $0.server == label }.map { (Double($0.concurrency), value($0)) })
            }
        }
        let charts = [
            ("serve-throughput.svg", "Aggregate throughput", "tokens/s", series(\.tokensPerSecond)),
            ("serve-ttft.svg", "Time to first token (p50)", "ms", series(\.timeToFirstToken.p50)),
            ("serve-itl.svg", "Inter-token latency (p50)", "ms", series(\.interTokenLatency.p50)),
        ]
        for (file, title, unit, lines) in charts {
            try SVGChart.lines(title: title, xLabel: "concurrent clients", yLabel: unit, series: lines)
                .write(toFile: directory + "/" + file, atomically: true, encoding: .utf8)
        }
        FileHandleOutput.standardError.write("wrote \(directory)/serve.jsonl and serve-*.svg\n")
    }
}
