import ChorusTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

struct E2EFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A `chorus` (or other) child process whose standard output and error go to files in the test's
/// directory, so nothing blocks on a full pipe and the logs can be read while it runs.
final class Child {
    let name: String
    let process = Process()
    let outputPath: String
    let errorPath: String

    init(name: String, executable: String, arguments: [String], directory: URL) throws {
        self.name = name
        outputPath = directory.appendingPathComponent("\(name).out").path
        errorPath = directory.appendingPathComponent("\(name).log").path
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: outputPath)
        process.standardError = FileHandle(forWritingAtPath: errorPath)
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    var log: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

    /// Sends `signal` if the process still runs.
    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// Waits (bounded) for the process to exit; SIGKILLs it at the limit. Returns its status, or nil
    /// when it had to be killed.
    @discardableResult
    func waitExit(within limit: Duration) async -> Int32? {
        let start = ContinuousClock.now
        while process.isRunning, ContinuousClock.now - start < limit {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Waits (bounded) until the log contains a line matching `pattern`; returns its first capture
    /// group (or the whole match). Fails early when the process exits.
    func waitForLog(_ pattern: String, within limit: Duration = .seconds(60)) async throws -> String {
        let regex = try NSRegularExpression(pattern: pattern)
        let start = ContinuousClock.now
        while true {
            let text = log
            if let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) {
                let range = match.numberOfRanges > 1 ? match.range(at: 1) : match.range
                if let r = Range(range, in: text) { return String(text[r]) }
            }
            if !process.isRunning {
                throw E2EFailure(
                    "\(name) exited (status \(process.terminationStatus)) before logging /\(pattern)/:\n\(log)")
            }
            if ContinuousClock.now - start > limit {
                throw E2EFailure("\(name) did not log /\(pattern)/ within \(limit); log:\n\(log)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The address a coordinator or worker reports it listens on (waits for the line).
    func listeningAddress(within limit: Duration = .seconds(90)) async throws -> String {
        try await waitForLog(#"listening on (\S+)"#, within: limit)
    }

    /// Count of lines of the log matching `pattern`.
    func logCount(_ pattern: String) -> Int {
        guard let regex = try? NSRegularExpression(pattern: pattern) else { return 0 }
        let text = log
        return regex.numberOfMatches(in: text, range: NSRange(text.startIndex..., in: text))
    }
}

/// Every process a test started, in a fresh temporary directory; `stopAll()` (call it in a `defer`)
/// SIGKILLs whatever still runs, waits for it, and removes the directory.
final class ProcessSet {
    let directory: URL
    private(set) var children: [Child] = []
    private var counter = 0

    init(_ label: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "chorus-e2e-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Starts `chorus ARGUMENTS` (or `executable`), named `name` (log files NAME.out / NAME.log).
    @discardableResult
    func start(_ name: String, _ arguments: [String], executable: String? = nil) throws -> Child {
        counter += 1
        let child = try Child(
            name: "\(counter)-\(name)", executable: executable ?? chorusBinary().path, arguments: arguments,
            directory: directory)
        children.append(child)
        return child
    }

    /// Starts a coordinator with the shipped target on `listen` (it loads the model in the background;
    /// `listeningAddress` waits for it).
    func startCoordinator(
        _ name: String = "coordinator", listen: String = "tcp://127.0.0.1:0", extra: [String] = []
    ) throws -> Child {
        try start(name, ["coordinator", "--model", Models.target, "--listen", listen, "--deadline-ms", "2000"] + extra)
    }

    /// A coordinator with the shipped target on `listen`; returns it and its bound address.
    func coordinator(
        _ name: String = "coordinator", listen: String = "tcp://127.0.0.1:0", extra: [String] = []
    ) async throws -> (Child, String) {
        let child = try startCoordinator(name, listen: listen, extra: extra)
        return (child, try await child.listeningAddress())
    }

    /// Starts a worker with `model` on a system-chosen loopback port, registering with `register`.
    /// Greedy drafts by default (the greedy tests' target is greedy too; other laws are covered by the
    /// in-memory tests).
    func startWorker(
        _ name: String, model: String, register: String?, listen: String = "tcp://127.0.0.1:0",
        extra: [String] = ["--temperature", "0"]
    ) throws -> Child {
        var arguments = ["worker", "--model", model, "--listen", listen, "--id", name]
        if let register { arguments += ["--register", register] }
        return try start(name, arguments + extra)
    }

    /// A worker (see `startWorker`); returns it and the address it listens on.
    func worker(
        _ name: String, model: String, register: String?, listen: String = "tcp://127.0.0.1:0",
        extra: [String] = ["--temperature", "0"]
    ) async throws -> (Child, String) {
        let child = try startWorker(name, model: model, register: register, listen: listen, extra: extra)
        return (child, try await child.listeningAddress())
    }

    /// Runs `chorus generate …` to the end (bounded) and returns its result.
    func generate(_ name: String, _ arguments: [String], within limit: Duration = .seconds(120)) async throws
        -> Generation
    {
        let child = try start(name, ["generate"] + arguments)
        let status = await child.waitExit(within: limit)
        return Generation(status: status, text: child.output, log: child.log)
    }

    func stopAll() {
        for child in children where child.isRunning {
            kill(child.pid, SIGKILL)
        }
        for child in children { child.process.waitUntilExit() }
        // CHORUS_E2E_KEEP=1 keeps the logs for a look after the run.
        if ProcessInfo.processInfo.environment["CHORUS_E2E_KEEP"] == nil {
            try? FileManager.default.removeItem(at: directory)
        }
    }
}

/// What `chorus generate` printed.
struct Generation: CustomStringConvertible {
    /// nil: killed at the time limit.
    var status: Int32?
    var text: String
    var log: String

    /// The block efficiency printed at the end (nil if absent).
    var blockEfficiency: Double? { number(after: "block efficiency ") }
    var generatedTokens: Double? { number(after: "generated ") }
    var draftsPerRound: Double? { number(after: "drafts per round ") }

    private func number(after label: String) -> Double? {
        guard let range = log.range(of: label, options: .backwards) else { return nil }
        let digits = log[range.upperBound...].prefix { $0.isNumber || $0 == "." }
        return Double(digits)
    }

    var description: String {
        "status \(status.map(String.init) ?? "killed"), text \(text.debugDescription), log:\n\(log)"
    }
}

/// The prompt and the plain greedy decoding of the target every cluster generation is compared with,
/// computed once per test process by `chorus generate --model` (200 tokens).
enum Reference {
    static let prompt = "And God said"
    static let tokens = 200

    /// The reference text (computed on first use, without blocking a thread while it waits).
    static func text() async throws -> String { try await cache.get() }

    private static let cache = Cache()

    private actor Cache {
        var result: Result<String, E2EFailure>?

        func get() async throws -> String {
            if let result { return try result.get() }
            let computed = await compute()
            result = computed
            return try computed.get()
        }

        func compute() async -> Result<String, E2EFailure> {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "chorus-e2e-ref-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: directory) }
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                let child = try Child(
                    name: "plain", executable: chorusBinary().path,
                    arguments: [
                        "generate", "--model", Models.target, "--prompt", prompt, "-n", "\(tokens)", "--temperature",
                        "0",
                    ], directory: directory)
                let status = await child.waitExit(within: .seconds(120))
                guard status == 0, child.output.count > prompt.count + 100 else {
                    return .failure(E2EFailure("plain generation failed: \(child.log)"))
                }
                return .success(child.output)
            } catch {
                return .failure(E2EFailure("plain generation failed: \(error)"))
            }
        }
    }

    /// The greedy text of the first `n` tokens is a prefix of the 200-token text (the KJV text is
    /// ASCII, so a token prefix decodes to a text prefix); with the trailing newline removed.
    static func matches(_ generation: Generation, tokens n: Int) async throws -> Bool {
        let full = try await text()
        let produced = generation.text.hasSuffix("\n") ? String(generation.text.dropLast()) : generation.text
        if n == tokens { return generation.text == full }
        return produced.count > prompt.count && full.hasPrefix(produced)
    }
}

/// Arguments for a greedy generation through `coordinator`.
func greedyThrough(_ coordinator: String, tokens: Int, extra: [String] = []) -> [String] {
    [
        "--coordinator", coordinator, "--prompt", Reference.prompt, "-n", "\(tokens)", "--temperature", "0",
        "--timeout", "60",
    ]
        + extra
}

/// The TCP port of `tcp://host:port`.
func port(of address: String) -> Int? {
    address.split(separator: ":").last.flatMap { Int($0) }
}
