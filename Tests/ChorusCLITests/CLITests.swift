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

/// `--key-file`, `--insecure` and `chorus keygen` from the command line: refusals happen in `validate()`,
/// before any model is loaded, with exit status 64 and a message that names the way out.
@Suite struct SecurityCLITests {
    static let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("chorus-cli-key-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    @Test(arguments: [
        (
            ["worker", "--model", "m.gguf", "--listen", "tcp://0.0.0.0:7101"],
            "refusing to listen on tcp://0.0.0.0:7101"
        ),
        (
            ["worker", "--model", "m.gguf", "--listen", "tcp://127.0.0.1:0", "--register", "tcp://10.1.2.3:7100"],
            "refusing to register with tcp://10.1.2.3:7100"
        ),
        (
            ["coordinator", "--model", "t.gguf", "--listen", "tcp://0.0.0.0:7100"],
            "refusing to listen on tcp://0.0.0.0:7100"
        ),
        (
            ["coordinator", "--model", "t.gguf", "--listen", "tcp://127.0.0.1:0", "--worker", "tcp://node1:7101"],
            "refusing to dial tcp://node1:7101"
        ),
        (
            ["generate", "--coordinator", "tcp://10.0.0.9:7100", "--prompt", "x"],
            "refusing to dial tcp://10.0.0.9:7100"
        ),
    ])
    func unprotectedAddressesAreRefused(_ arguments: [String], _ reason: String) async throws {
        let result = try await runChorus(arguments)
        #expect(result.status == 64, "\(arguments): \(result.status) \(result.error)")
        #expect(result.error.contains(reason), "\(result.error)")
        #expect(result.error.contains("--insecure"), "\(result.error)")
        #expect(result.error.contains("--key-file"), "\(result.error)")
    }

    /// The TLS flags are one group in every command that takes them: all three or none, checked before anything
    /// runs (a usage error, status 64), and a config file's missing section is named the same way.
    @Test(arguments: [
        ["worker", "--model", "m.gguf", "--tls-cert", "c.pem"],
        ["coordinator", "--model", "t.gguf", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
        ["generate", "--coordinator", "tls+tcp://127.0.0.1:7100", "--prompt", "x", "--tls-ca", "ca.pem"],
    ])
    func partialTLSFlagsAreRefused(_ arguments: [String]) async throws {
        let result = try await runChorus(arguments)
        #expect(result.status == 64, "\(arguments): \(result.status) \(result.error)")
        #expect(result.error.contains("TLS needs all of --tls-cert, --tls-key and --tls-ca"), "\(result.error)")
    }

    @Test func aConfigWithoutTheCommandsSectionIsRefused() async throws {
        let path = Self.directory.appendingPathComponent("worker-only.yaml").path
        try "worker:\n  model: d.gguf\n".write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await runChorus(["coordinator", "--config", path])
        #expect(result.status == 64, "\(result.status) \(result.error)")
        #expect(result.error.contains("\(path): no `coordinator:` section"), "\(result.error)")
    }

    /// `keygen --out` writes 64 hex digits with mode 600 and never overwrites; the key is accepted, a
    /// world-readable copy is refused with the command that fixes it.
    @Test func keygenAndKeyFilePermissions() async throws {
        let path = Self.directory.appendingPathComponent("cluster.key").path
        let made = try await runChorus(["keygen", "--out", path])
        #expect(made.status == 0, "\(made.error)")
        #expect(made.error.contains("fingerprint"))
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.count == 65 && text.allSatisfy { $0.isHexDigit || $0 == "\n" })
        let again = try await runChorus(["keygen", "--out", path])
        #expect(again.status != 0 && again.error.contains("never overwrites"), "\(again.error)")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == text)

        let printed = try await runChorus(["keygen"])
        #expect(printed.status == 0 && printed.output.count == 65 && printed.output != text)

        // A key makes the public address acceptable (validation passes; the model then fails to load).
        let keyed = try await runChorus(["worker", "--model", "/nonexistent.gguf", "--key-file", path])
        #expect(!keyed.error.contains("refusing"), "\(keyed.error)")
        #expect(!keyed.error.contains("cluster key file"), "\(keyed.error)")

        #expect(chmod(path, 0o644) == 0)
        let loose = try await runChorus(["worker", "--model", "m.gguf", "--key-file", path])
        #expect(loose.status == 64, "\(loose.error)")
        #expect(loose.error.contains("chmod 600 \(path)"), "\(loose.error)")

        // The default addresses are loopback: no key needed.
        for command in [["worker", "--model", "/nonexistent.gguf"], ["coordinator", "--model", "/nonexistent.gguf"]] {
            let plain = try await runChorus(command)
            #expect(!plain.error.contains("refusing"), "\(plain.error)")
            #expect(plain.error.contains("nonexistent"), "\(plain.error)")
        }

        // --insecure: validation passes without a key.
        let insecure = try await runChorus(["worker", "--model", "/nonexistent.gguf", "--insecure"])
        #expect(!insecure.error.contains("refusing"), "\(insecure.error)")
    }
}
