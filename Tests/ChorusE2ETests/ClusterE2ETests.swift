import ChorusTestSupport
import ChorusTransport
import ChorusWire
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// End to end: separate `chorus` processes on loopback with the shipped models. Serialized (these
/// tests compare timing-sensitive statistics such as block efficiency, so they do not compete with
/// each other for the CPU); every process is SIGKILLed at the end of its test, also on failure.
@Suite("End to end", .serialized, .timeLimit(.minutes(5)))
struct E2ETests {
    /// Escapes an address for use in a log pattern.
    static func pattern(_ address: String) -> String { NSRegularExpression.escapedPattern(for: address) }

    /// Waits until the coordinator has logged `worker ADDRESS ready` for every address.
    static func waitReady(_ coordinator: Child, _ addresses: [String], within limit: Duration = .seconds(60))
        async throws
    {
        for address in addresses {
            _ = try await coordinator.waitForLog("worker \(pattern(address)) ready", within: limit)
        }
    }

    /// 200 greedy tokens through a coordinator and 3 worker processes (small, medium, small) equal plain
    /// target decoding, with block efficiency > 1; a worker SIGKILLed while a generation runs does not
    /// change the text.
    @Test func greedyClusterEqualsPlainDecodingAndSurvivesAKilledWorker() async throws {
        let processes = try ProcessSet("cluster")
        defer { processes.stopAll() }
        let coordinator = try processes.startCoordinator()
        let reference = try await Reference.text()  // computed while the coordinator loads its model
        let address = try await coordinator.listeningAddress()
        let started = try [("small-1", Models.small), ("medium", Models.medium), ("small-2", Models.small)].map {
            try processes.startWorker($0.0, model: $0.1, register: address)
        }
        var workers: [(child: Child, address: String)] = []
        for child in started { workers.append((child, try await child.listeningAddress())) }
        try await Self.waitReady(coordinator, workers.map(\.address))

        let full = try await processes.generate("greedy-200", greedyThrough(address, tokens: 200))
        #expect(full.status == 0, "\(full)")
        #expect(full.text == reference, "\(full)")
        #expect((full.blockEfficiency ?? 0) > 1, "\(full)")
        #expect(full.generatedTokens == 200)

        // Kill the medium worker as soon as the next generation has streamed its first tokens.
        let running = try processes.start("greedy-kill", ["generate"] + greedyThrough(address, tokens: 200))
        let streaming = await eventually(within: .seconds(60)) {
            running.output.count > Reference.prompt.count || !running.isRunning
        }
        #expect(streaming)
        #expect(running.isRunning, "the generation ended before the worker could be killed")
        workers[1].child.signal(SIGKILL)
        let status = await running.waitExit(within: .seconds(120))
        #expect(status == 0, "\(running.log)")
        #expect(running.output == reference, "\(running.log)")
        #expect(
            coordinator.logCount("worker \(Self.pattern(workers[1].address)) missed round") >= 1, "\(coordinator.log)")
        #expect(coordinator.isRunning)
        #expect(workers[0].child.isRunning && workers[2].child.isRunning)
    }

    /// Every worker stopped: the coordinator falls back to plain target sampling (block efficiency 1,
    /// same text); a worker started again registers and is used; a restarted coordinator (same port)
    /// learns about the running worker from its registration heartbeat and uses it.
    @Test func fallbackRecoveryAndCoordinatorRestart() async throws {
        let processes = try ProcessSet("restart")
        defer { processes.stopAll() }
        var coordinator = try processes.startCoordinator()
        _ = try await Reference.text()
        var address = try await coordinator.listeningAddress()
        let firstChild = try processes.startWorker("small", model: Models.small, register: address)
        let secondChild = try processes.startWorker("medium", model: Models.medium, register: address)
        let first = (firstChild, try await firstChild.listeningAddress())
        let second = (secondChild, try await secondChild.listeningAddress())
        try await Self.waitReady(coordinator, [first.1, second.1])

        // Stop both: one cleanly (SIGTERM), one brutally.
        first.0.signal(SIGTERM)
        second.0.signal(SIGKILL)
        #expect(await first.0.waitExit(within: .seconds(20)) == 0, "\(first.0.log)")
        await second.0.waitExit(within: .seconds(20))

        let alone = try await processes.generate("fallback", greedyThrough(address, tokens: 60))
        #expect(alone.status == 0, "\(alone)")
        #expect(try await Reference.matches(alone, tokens: 60), "\(alone)")
        #expect(alone.generatedTokens == 60)
        #expect(alone.blockEfficiency == 1, "\(alone)")

        // A worker comes back: it registers and drafts are used again.
        let back = try await processes.worker("small-back", model: Models.small, register: address)
        try await Self.waitReady(coordinator, [back.1])
        let recovered = try await processes.generate("recovered", greedyThrough(address, tokens: 60))
        #expect(recovered.status == 0, "\(recovered)")
        #expect(try await Reference.matches(recovered, tokens: 60), "\(recovered)")
        #expect((recovered.blockEfficiency ?? 0) > 1, "\(recovered)")

        // The coordinator dies and restarts on the same port: the worker's heartbeat (every 5 s)
        // registers it again.
        coordinator.signal(SIGKILL)
        await coordinator.waitExit(within: .seconds(20))
        (coordinator, address) = try await processes.coordinator("coordinator-restarted", listen: address)
        try await Self.waitReady(coordinator, [back.1], within: .seconds(30))
        let restarted = try await processes.generate("restarted", greedyThrough(address, tokens: 60))
        #expect(restarted.status == 0, "\(restarted)")
        #expect(try await Reference.matches(restarted, tokens: 60), "\(restarted)")
        #expect((restarted.blockEfficiency ?? 0) > 1, "\(restarted)")
        #expect(back.0.isRunning)
    }

    /// Random bytes, truncated and oversized frames over a raw TCP socket, and garbage payloads over a
    /// proper NNG REQ socket, to the coordinator's and a worker's port: error replies where a reply is
    /// possible, dropped connections otherwise; both processes keep serving.
    @Test func garbageToBothSockets() async throws {
        let processes = try ProcessSet("garbage")
        defer { processes.stopAll() }
        let coordinator = try processes.startCoordinator()
        _ = try await Reference.text()
        let address = try await coordinator.listeningAddress()
        let (worker, workerAddress) = try await processes.worker("small", model: Models.small, register: address)
        try await Self.waitReady(coordinator, [workerAddress])

        var rng = SplitMix64(state: 77)
        var malformedSentToWorker = 0
        for (label, target) in [("coordinator", address), ("worker", workerAddress)] {
            let tcpPort = try #require(port(of: target))
            let sent = try await Self.rawGarbage(port: tcpPort, label: label, rng: &rng)
            let viaNNG = try await Self.nngGarbage(address: target, label: label, rng: &rng)
            if label == "worker" { malformedSentToWorker = sent + viaNNG }
        }
        #expect(coordinator.isRunning && worker.isRunning)
        #expect(coordinator.logCount("malformed message dropped") >= 10, "\(coordinator.log)")

        // Both still serve: the coordinator a client, the worker the coordinator.
        let after = try await processes.generate("after-garbage", greedyThrough(address, tokens: 40))
        #expect(after.status == 0, "\(after)")
        #expect(try await Reference.matches(after, tokens: 40), "\(after)")
        #expect((after.blockEfficiency ?? 0) > 1, "\(after)")

        // The worker counted the garbage it answered (its shutdown summary).
        worker.signal(SIGTERM)
        #expect(await worker.waitExit(within: .seconds(20)) == 0)
        let malformed = try await worker.waitForLog(#"(\d+) malformed\)"#, within: .seconds(1))
        #expect((Int(malformed) ?? 0) >= malformedSentToWorker, "\(worker.log)")
    }

    /// Below NNG: returns how many application-level malformed requests got a reply.
    static func rawGarbage(port: Int, label: String, rng: inout SplitMix64) async throws -> Int {
        // Random bytes instead of the SP header: the connection is dropped.
        let random = try #require(RawSocket(port: port))
        random.write(rng.bytes(4096))
        #expect(random.peerClosed(), "\(label): random bytes did not close the connection")

        // A proper REQ handshake, then a frame announcing 2^40 bytes: over the receive limit, dropped.
        let oversized = try #require(RawSocket(port: port))
        oversized.write(SP.header(SP.req))
        #expect(oversized.read(8) == SP.header(SP.rep), "\(label): no REP header")
        oversized.write(SP.length(1 << 40) + rng.bytes(64))
        #expect(oversized.peerClosed(), "\(label): an oversized frame did not close the connection")

        // A frame cut short, then the connection closed: nothing to answer.
        let truncated = try #require(RawSocket(port: port, timeoutSeconds: 1))
        truncated.write(SP.header(SP.req))
        _ = truncated.read(8)
        truncated.write(SP.length(1000) + rng.bytes(10))
        #expect(truncated.read(8) == nil, "\(label): answered a truncated frame")

        // Well-framed requests whose bodies are garbage or cut-off Chorus messages: error replies.
        let framed = try #require(RawSocket(port: port, timeoutSeconds: 5))
        framed.write(SP.header(SP.req))
        #expect(framed.read(8) == SP.header(SP.rep))
        let cut = Array(
            WireMessage.generatePoll(GeneratePoll(session: 1, from: 0, waitMilliseconds: 0)).encoded().dropLast(3))
        let bodies: [[UInt8]] = [rng.bytes(100), [], Array(WireMessage.magic), cut, rng.bytes(5000)]
        for (i, body) in bodies.enumerated() {
            let id = UInt32(1000 + i)
            framed.write(SP.request(id: id, body: body))
            let length = try #require(framed.read(8), "\(label): no reply to garbage body \(i)")
            let size = length.reduce(0) { $0 << 8 | Int($1) }
            let reply = try #require(framed.read(size), "\(label): short reply")
            #expect(Array(reply[0..<4]) == SP.request(id: id, body: []).suffix(4), "\(label): wrong request id")
            guard case let .error(e) = try WireMessage.decode(Array(reply[4...])) else {
                Issue.record("\(label): garbage body \(i) got a non-error reply")
                continue
            }
            #expect(e.code == .malformed, "\(label): \(e)")
        }
        return bodies.count
    }

    /// Through a real NNG REQ socket: returns how many malformed requests were answered.
    static func nngGarbage(address: String, label: String, rng: inout SplitMix64) async throws -> Int {
        let client = try NNGRequestClient(dialing: address)
        var answered = 0
        func expectError(_ bytes: [UInt8], _ code: WireErrorCode, _ what: String) async throws {
            let reply = try await client.request(bytes, timeout: .seconds(10))
            guard case let .error(e) = try WireMessage.decode(reply) else {
                Issue.record("\(label): \(what) got a non-error reply")
                return
            }
            #expect(e.code == code, "\(label): \(what): \(e)")
        }
        for size in [1, 7, 64, 1000, 100_000, 4 << 20] {
            try await expectError(
                rng.bytes(min(size, 4096)) + [UInt8](repeating: 0x5A, count: max(0, size - 4096)), .malformed,
                "\(size) random bytes")
            answered += 1
        }
        let request = DraftRequest(
            session: 42, round: 1, keepLength: 0, newTokens: [1, 2, 3], contextHash: ContextHash([1, 2, 3]).value,
            draftLength: 4, sequences: 1, sampling: .standard, seed: 1, deadlineMilliseconds: 1000)
        let encoded = WireMessage.draftRequest(request).encoded()
        for cut in [5, 7, 20, encoded.count - 1] {
            try await expectError(Array(encoded[0..<cut]), .malformed, "draft request cut at \(cut)")
            answered += 1
        }
        try await expectError(encoded + [0, 0], .malformed, "trailing bytes")
        answered += 1
        // A message of the other side's protocol.
        let wrongKind =
            label == "worker"
            ? WireMessage.generateStart(GenerateStart(prompt: "x", maxTokens: 1, sampling: .standard, seed: nil))
            : WireMessage.draftRequest(request)
        try await expectError(wrongKind.encoded(), .invalidRequest, "a message it does not serve")
        answered += 1
        if label == "worker" {
            var stale = request
            stale.keepLength = 100
            try await expectError(WireMessage.draftRequest(stale).encoded(), .contextMismatch, "a stale context")
        }

        // Over the receive limit (64 MiB): NNG drops the connection; the request fails, no reply.
        let huge = [UInt8](repeating: 0xAB, count: (64 << 20) + 1024)
        do {
            let reply = try await client.request(huge, timeout: .seconds(10))
            Issue.record("\(label): an oversized request got a reply of \(reply.count) bytes")
        } catch {
            #expect(error != .cancelled)
        }
        // The same socket reconnects and is served again.
        try await expectError(rng.bytes(33), .malformed, "garbage after the oversized request")
        answered += 1
        // Closing the client must not hang (it did once, in nng_close, after this sequence): bounded.
        #expect(await closeWithin(.seconds(10), client), "\(label): NNGRequestClient.close() hung for 10 s")
        return answered
    }
}

/// Closes `client` on a thread of its own and waits at most `limit`: true when `close()` returned.
func closeWithin(_ limit: Duration, _ client: NNGRequestClient) async -> Bool {
    let finished = Flag()
    Thread {
        client.close()
        finished.set()
    }.start()
    return await eventually(within: limit) { finished.isSet }
}

/// A flag set from any thread.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
