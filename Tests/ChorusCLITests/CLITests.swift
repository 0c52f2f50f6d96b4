import ChorusTestSupport
import Foundation
import Testing

struct RunResult {
    var status: Int32
    var output: String
    var error: String
}

/// Runs the binary to completion on threads of its own (never blocking the test runner's
/// cooperative threads), reading standard output and error concurrently.
func runChorus(_ arguments: [String]) async throws -> RunResult {
    let process = Process()
    process.executableURL = chorusBinary()
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    return await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            let errorBox = DataBox()
            let reader = Thread {
                errorBox.data = err.fileHandleForReading.readDataToEndOfFile()
                errorBox.done.signal()
            }
            reader.start()
            let outData = out.fileHandleForReading.readDataToEndOfFile()
            errorBox.done.wait()
            process.waitUntilExit()
            continuation.resume(
                returning: RunResult(
                    status: process.terminationStatus, output: String(decoding: outData, as: UTF8.self),
                    error: String(decoding: errorBox.data, as: UTF8.self)))
        }
    }
}

final class DataBox: @unchecked Sendable {
    var data = Data()
    let done = DispatchSemaphore(value: 0)
}

@Suite struct CLITests {
    /// `chorus acceptance --json` reproduces the public vector "reversed 3" (SAMPLING.md §4).
    @Test func acceptanceJSONReproducesAVector() async throws {
        let result = try await runChorus([
            "acceptance", "--target", "0.2,0.3,0.5", "--draft", "0.5,0.3,0.2", "--drafts", "2", "--json",
            "--simulate", "20000", "--seed", "3",
        ])
        #expect(result.status == 0, "\(result.error)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(abs((object["optimal"] as? Double ?? 0) - 0.86) < 1e-9)
        #expect(object["acceptsWithCertainty"] as? Bool == false)
        let schemes = try #require(object["schemes"] as? [[String: Any]])
        let byName = Dictionary(
            uniqueKeysWithValues: schemes.compactMap { s in (s["name"] as? String).map { ($0, s) } })
        let expected = [
            "sd": 0.7, "specinfer": 0.76, "spectr": 0.7913552872566003, "optimal": 0.86, "optimal-lp": 0.86,
        ]
        for (name, value) in expected {
            let acceptance = try #require(byName[name]?["acceptance"] as? Double, "\(name) missing")
            #expect(abs(acceptance - value) < 1e-9, "\(name)")
            let empirical = try #require(byName[name]?["empirical"] as? [String: Any])
            #expect((empirical["distribution"] as? [Double])?.count == 3)
        }
    }

    @Test func badInputExitsWithCodeTwo() async throws {
        for arguments in [
            ["acceptance", "--target", "0.2,0.3,0.6", "--draft", "0.5,0.3,0.2"],
            ["acceptance", "--target", "0.2,-0.3,1.1", "--draft", "0.5,0.3,0.2"],
            ["acceptance", "--target", "0.2,nan,0.8", "--draft", "0.5,0.3,0.2"],
            ["acceptance", "--target", "0.5,0.5", "--draft", "0.5,0.3,0.2"],
            ["acceptance", "--target", "0.5,0.5", "--draft", "0.5,0.5", "--scheme", "nope"],
        ] {
            let result = try await runChorus(arguments)
            #expect(result.status == 2, "\(arguments): \(result.status) \(result.error)")
            #expect(result.error.contains("error:"), "\(arguments)")
        }
    }

    /// The coordinator's HTTP flags are checked before anything starts (exit 64, usage; the message says what to fix).
    @Test func coordinatorHTTPFlagsAreValidated() async throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("chorus-empty-key-\(getpid())")
        try Data().write(to: empty)
        defer { try? FileManager.default.removeItem(at: empty) }
        let base = ["coordinator", "--model", Models.target]
        for (arguments, message) in [
            (["--http", "localhost"], "HOST:PORT"),
            (["--http", "127.0.0.1:70000"], "0…65535"),
            (["--api-key-file", empty.path], "give --http"),
            (["--http", "127.0.0.1:0", "--api-key-file", empty.path], "is empty"),
            (["--http", "127.0.0.1:0", "--api-key-file", "/nonexistent/key"], "cannot read the API key file"),
            (["--http", "127.0.0.1:0", "--max-sessions", "0"], "--max-sessions"),
        ] {
            let result = try await runChorus(base + arguments)
            #expect(result.status == 64, "\(arguments): \(result.status) \(result.error)")
            #expect(result.error.contains(message), "\(arguments): \(result.error)")
        }
    }

    /// `chorus logits --json` on the shipped target reproduces llama.cpp's fixture (F32: ≤ 1e-3).
    @Test func logitsMatchTheFixture() async throws {
        let root = repositoryRoot()
        let fixtureURL = root.deletingLastPathComponent().appendingPathComponent(
            "shared/fixtures/logits-p1-chorus-kjv-target-f32.json")
        let fixture = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: fixtureURL)) as? [String: Any])
        let result = try await runChorus([
            "logits", "--model", root.appendingPathComponent("models/chorus-kjv-target-f32.gguf").path,
            "--prompt", try #require(fixture["prompt"] as? String), "--json",
        ])
        #expect(result.status == 0, "\(result.error)")
        let ours = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect((ours["tokens"] as? [Int]) == (fixture["tokens"] as? [Int]))
        let a = try #require(ours["logits"] as? [[Double]]), b = try #require(fixture["logits"] as? [[Double]])
        #expect(a.count == b.count)
        var worst = 0.0
        for (x, y) in zip(a, b) { for (u, v) in zip(x, y) { worst = max(worst, abs(u - v)) } }
        #expect(worst <= 1e-3, "max abs diff \(worst)")
    }

    /// Greedy generation with the shipped target reproduces llama.cpp's sample in the model card.
    @Test func greedyGenerationMatchesLlamaCpp() async throws {
        let result = try await runChorus([
            "generate", "--model", repositoryRoot().appendingPathComponent("models/chorus-kjv-target-f32.gguf").path,
            "--prompt", "And God said", "-n", "24", "--temperature", "0",
        ])
        #expect(result.status == 0, "\(result.error)")
        #expect(
            result.output.hasPrefix(
                "And God said unto him, Thus saith the LORD, I will not go out of the land of Egypt"))
        #expect(result.error.contains("tokens/s"))
    }
}
