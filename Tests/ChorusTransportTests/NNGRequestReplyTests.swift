import ChorusTestSupport
import ChorusTransport
import Testing

@Suite("NNG REQ/REP over loopback", .timeLimit(.minutes(1)))
struct NNGRequestReplyTests {
    @Test("a request gets its reply back byte for byte")
    func roundTrip() async throws {
        let server = try echoServer { request in request.body.reversed() }
        defer { server.close() }
        let port = try #require(server.address.port)
        #expect(port > 0)
        let client = try NNGRequestClient(dialing: server.address)
        defer { client.close() }
        let message: [UInt8] = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let reply = try await within(.seconds(5)) { try await client.request(message, timeout: .seconds(3)) }
        #expect(reply == message.reversed())
        let empty = try await within(.seconds(5)) { try await client.request([], timeout: .seconds(3)) }
        #expect(empty.isEmpty)
    }

    @Test("8 concurrent requests to one server are served in parallel, each with its own reply")
    func concurrentRequests() async throws {
        let server = try echoServer(options: NNGServerOptions(concurrency: 8)) { request in
            try? await Task.sleep(for: .milliseconds(200))
            return Array("reply:") + request.body
        }
        defer { server.close() }
        let client = try NNGRequestClient(dialing: server.address)
        defer { client.close() }
        _ = try await within(.seconds(5)) { try await client.request([], timeout: .seconds(3)) }  // connect

        let start = ContinuousClock.now
        let replies = try await within(.seconds(10)) {
            try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
                for index in 0..<8 {
                    group.addTask { (index, try await client.request(Array("r\(index)"), timeout: .seconds(5))) }
                }
                var replies: [Int: [UInt8]] = [:]
                for try await (index, reply) in group { replies[index] = reply }
                return replies
            }
        }
        let elapsed = ContinuousClock.now - start
        #expect(replies.count == 8)
        for index in 0..<8 { #expect(replies[index] == Array("reply:r\(index)")) }
        // Serial handling would take 8 × 200 ms = 1.6 s.
        #expect(elapsed < .milliseconds(1000), "8 requests took \(elapsed): the server did not overlap them")
    }

    @Test("fan-out to 3 workers: the slow one is cancelled at the deadline and its late reply never leaks")
    func fanOutWithStraggler() async throws {
        let slowRepliesSent = Counter()
        let fastA = try echoServer()
        let fastB = try echoServer()
        let slow = try echoServer { request in
            // round-1 takes 1 s; round-2 takes 0.9 s, so round-1's late reply reaches the client
            // while round-2 is still waiting for its own.
            try? await Task.sleep(for: request.body == Array("round-1") ? .seconds(1) : .milliseconds(900))
            slowRepliesSent.increment()
            return request.body
        }
        defer { [fastA, fastB, slow].forEach { $0.close() } }
        let clients = try [fastA, fastB, slow].map { try NNGRequestClient(dialing: $0.address) }
        defer { clients.forEach { $0.close() } }

        let start = ContinuousClock.now
        let results = try await within(.seconds(5)) {
            await withTaskGroup(of: (Int, Result<[UInt8], TransportError>).self) { group in
                for (index, client) in clients.enumerated() {
                    group.addTask { (index, await outcome(client, Array("round-1"), timeout: .seconds(5))) }
                }
                var results: [Int: Result<[UInt8], TransportError>] = [:]
                let deadline = ContinuousClock.now + .milliseconds(300)
                // The coordinator's pattern: take replies until the round deadline, then cancel.
                group.addTask {
                    try? await Task.sleep(until: deadline)
                    return (-1, .failure(.timedOut(after: .zero)))
                }
                for await (index, result) in group {
                    if index == -1 {
                        group.cancelAll()
                        continue
                    }
                    results[index] = result
                }
                return results
            }
        }
        let roundTime = ContinuousClock.now - start
        #expect(results[0] == .success(Array("round-1")))
        #expect(results[1] == .success(Array("round-1")))
        #expect(results[2] == .failure(.cancelled))
        #expect(roundTime < .milliseconds(800), "cancellation took \(roundTime): nng_aio_cancel did not stop the wait")

        // Same client, next round: must get round-2's reply, not the late round-1 reply.
        let next = try await within(.seconds(5)) {
            try await clients[2].request(Array("round-2"), timeout: .seconds(3))
        }
        #expect(next == Array("round-2"))
        #expect(slowRepliesSent.count == 2, "the slow worker should have sent the stale reply too")
    }

    @Test("a timed-out request does not poison the next one on the same client")
    func timeoutThenReuse() async throws {
        let server = try echoServer { request in
            if request.body == Array("slow") { try? await Task.sleep(for: .milliseconds(600)) }
            return request.body
        }
        defer { server.close() }
        let client = try NNGRequestClient(dialing: server.address)
        defer { client.close() }
        let start = ContinuousClock.now
        let first = try await within(.seconds(5)) { await outcome(client, Array("slow"), timeout: .milliseconds(200)) }
        let waited = ContinuousClock.now - start
        #expect(first == .failure(.timedOut(after: .milliseconds(200))))
        #expect(waited >= .milliseconds(190) && waited < .milliseconds(550))
        // Sent while the stale "slow" reply is still on its way (it arrives at ≈ 600 ms).
        let second = try await within(.seconds(5)) {
            try await client.request(Array("slow"), timeout: .seconds(3))
        }
        #expect(second == Array("slow"))
        let third = try await within(.seconds(5)) { try await client.request(Array("fast"), timeout: .seconds(3)) }
        #expect(third == Array("fast"))
    }

    @Test("a handler returning nil sends nothing: the client times out and the server keeps serving")
    func handlerDrops() async throws {
        let server = try echoServer { request in request.body == Array("drop") ? nil : request.body }
        defer { server.close() }
        let client = try NNGRequestClient(dialing: server.address)
        defer { client.close() }
        let dropped = try await within(.seconds(5)) {
            await outcome(client, Array("drop"), timeout: .milliseconds(150))
        }
        #expect(dropped == .failure(.timedOut(after: .milliseconds(150))))
        let kept = try await within(.seconds(5)) { try await client.request(Array("keep"), timeout: .seconds(3)) }
        #expect(kept == Array("keep"))
    }

    @Test("a client dialing before the worker is up succeeds once the worker starts")
    func workerStartsLate() async throws {
        let port = try #require(freeLoopbackPort())
        let address = try TransportAddress("tcp://127.0.0.1:\(port)")
        let client = try NNGRequestClient(dialing: address)
        defer { client.close() }
        let start = ContinuousClock.now
        let pending = Task { try await client.request(Array("early"), timeout: .seconds(5)) }
        try await Task.sleep(for: .milliseconds(300))
        let server = try NNGReplyServer(listeningOn: address) { request in Array("late:") + request.body }
        defer { server.close() }
        let reply = try await within(.seconds(6)) { try await pending.value }
        #expect(reply == Array("late:early"))
        #expect(ContinuousClock.now - start >= .milliseconds(300))
    }

    @Test("after a worker restarts on the same address the client reconnects by itself")
    func workerRestart() async throws {
        let first = try echoServer { _ in Array("first") }
        let address = first.address
        let client = try NNGRequestClient(dialing: address)
        defer { client.close() }
        let before = try await within(.seconds(5)) { try await client.request([1], timeout: .seconds(3)) }
        #expect(before == Array("first"))
        await first.shutdown()

        let second = try NNGReplyServer(listeningOn: address) { _ in Array("second") }
        defer { second.close() }
        let after = try await within(.seconds(6)) {
            // One retry: a request can race with NNG noticing the old connection is gone.
            switch await outcome(client, [2], timeout: .seconds(2)) {
            case .success(let reply): return reply
            case .failure: return try await client.request([3], timeout: .seconds(3))
            }
        }
        #expect(after == Array("second"))
    }

    @Test("a request above the server's receive limit is refused and the server keeps serving")
    func receiveLimit() async throws {
        let largestSeen = Guarded(0)
        let server = try echoServer(options: NNGServerOptions(receiveLimit: 1024)) { request in
            largestSeen.withLock { $0 = max($0, request.body.count) }
            return Array("ok")
        }
        defer { server.close() }
        let client = try NNGRequestClient(dialing: server.address)
        defer { client.close() }
        let start = ContinuousClock.now
        let tooLarge = try await within(.seconds(5)) {
            await outcome(client, [UInt8](repeating: 7, count: 4096), timeout: .seconds(2))
        }
        // NNG closes the connection that announced the oversized message; with resending off the
        // request fails at once rather than at its deadline.
        switch tooLarge {
        case .success: Issue.record("a 4096-byte request passed a 1024-byte receive limit")
        case .failure(let error): #expect(error == .connectionLost(error.detail), "\(error)")
        }
        #expect(ContinuousClock.now - start < .seconds(1))
        let fits = try await within(.seconds(5)) {
            try await client.request([UInt8](repeating: 1, count: 1000), timeout: .seconds(3))
        }
        #expect(fits == Array("ok"))
        #expect(largestSeen.withLock { $0 } == 1000)

        // With the workers' limit as its send limit, the client refuses before sending.
        let careful = try NNGRequestClient(dialing: server.address, options: NNGClientOptions(sendLimit: 1024))
        defer { careful.close() }
        let refused = await outcome(careful, [UInt8](repeating: 7, count: 1025), timeout: .seconds(2))
        #expect(refused == .failure(.messageTooLarge(size: 1025, limit: 1024)))
        let accepted = try await within(.seconds(5)) {
            try await careful.request([UInt8](repeating: 7, count: 1024), timeout: .seconds(3))
        }
        #expect(accepted == Array("ok"))
        #expect(largestSeen.withLock { $0 } == 1024)
    }

    @Test("garbage bytes and broken SP headers on the port do not stop the server")
    func garbageOnTheSocket() async throws {
        let handled = Counter()
        let server = try echoServer(options: NNGServerOptions(receiveLimit: 1 << 16)) { request in
            handled.increment()
            return Array("echo:") + request.body
        }
        defer { server.close() }
        let port = try #require(server.address.port)
        var random = SplitMix64(state: 42)
        let noise = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &random) }
        let hostileInputs: [[UInt8]] = [
            noise,  // no header at all
            Array(SP.header(SP.req).prefix(3)),  // truncated header
            SP.header(0x20) + noise,  // wrong protocol (PUB)
            SP.header(SP.req) + SP.length(1 << 40),  // absurd length
            SP.header(SP.req) + SP.length(100) + [1, 2, 3],  // truncated body
            SP.header(SP.req) + SP.length(3) + [9, 9, 9],  // no request id
            SP.header(SP.req) + noise,  // random lengths
        ]
        try await within(.seconds(10)) {
            for input in hostileInputs {
                let connected = await offPool { () -> Bool in
                    guard let connection = RawSocket(port: port) else { return false }
                    connection.write(input)
                    return true
                }
                #expect(connected, "cannot connect to 127.0.0.1:\(port)")
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(handled.count == 0, "none of the garbage should reach the handler")

        // A hand-framed, well-formed request on a raw socket is still answered...
        let rawReply = try await within(.seconds(5)) {
            await offPool { () -> [UInt8]? in
                guard let connection = RawSocket(port: port) else { return nil }
                let requestID: [UInt8] = [0x80, 0x00, 0x00, 0x2A]
                connection.write(SP.header(SP.req) + SP.length(7) + requestID + Array("raw"))
                guard let header = connection.read(8), header == SP.header(SP.rep),
                    let length = connection.read(8)
                else { return nil }
                let size = length.reduce(0) { $0 << 8 | Int($1) }
                guard size == 12, let body = connection.read(size) else { return nil }
                return body
            }
        }
        #expect(rawReply == [0x80, 0x00, 0x00, 0x2A] + Array("echo:raw"))

        // ...and so is a real client.
        let client = try NNGRequestClient(dialing: server.address)
        defer { client.close() }
        let reply = try await within(.seconds(5)) { try await client.request(Array("fine"), timeout: .seconds(3)) }
        #expect(reply == Array("echo:fine"))
    }

    @Test("closing the client while requests are in flight fails them with .closed, promptly")
    func closeClientInFlight() async throws {
        let server = try echoServer { request in
            try? await Task.sleep(for: .seconds(2))
            return request.body
        }
        defer { server.close() }
        let client = try NNGRequestClient(dialing: server.address)
        let start = ContinuousClock.now
        let results = try await within(.seconds(5)) {
            await withTaskGroup(of: Result<[UInt8], TransportError>.self) { group in
                for index in 0..<4 { group.addTask { await outcome(client, [UInt8(index)], timeout: .seconds(4)) } }
                try? await Task.sleep(for: .milliseconds(200))
                client.close()
                var results: [Result<[UInt8], TransportError>] = []
                for await result in group { results.append(result) }
                return results
            }
        }
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(results.count == 4)
        for result in results { #expect(result == .failure(.closed) || result == .failure(.cancelled), "\(result)") }
        let afterClose = await outcome(client, [9], timeout: .seconds(1))
        #expect(afterClose == .failure(.closed))
    }

    @Test("closing the server while handlers run drops their replies without crashing")
    func closeServerInFlight() async throws {
        let started = Counter()
        let finished = Counter()
        let server = try echoServer { request in
            started.increment()
            try? await Task.sleep(for: .milliseconds(600))
            finished.increment()
            return request.body
        }
        let client = try NNGRequestClient(dialing: server.address)
        defer { client.close() }
        _ = try await within(.seconds(5)) { await outcome(client, [0], timeout: .seconds(2)) }
        let inFlight = Task { await outcome(client, [1], timeout: .seconds(3)) }
        try await within(.seconds(5)) {
            while started.count < 2 { try await Task.sleep(for: .milliseconds(5)) }
        }
        try await within(.seconds(5)) { await server.shutdown() }
        #expect(finished.count == 2, "shutdown waits for the running handler")
        let result = try await within(.seconds(5)) { await inFlight.value }
        switch result {
        case .success: Issue.record("a reply arrived from a closed server")
        case .failure(let error): #expect(error == .connectionLost(error.detail), "\(error)")
        }
    }

    @Test("a task cancelled while the worker is unreachable stops waiting at once")
    func cancelWhileConnecting() async throws {
        let port = try #require(freeLoopbackPort())
        let client = try NNGRequestClient(dialing: "tcp://127.0.0.1:\(port)")
        defer { client.close() }
        let start = ContinuousClock.now
        let pending = Task { await outcome(client, [1], timeout: .seconds(5)) }
        try await Task.sleep(for: .milliseconds(100))
        pending.cancel()
        let result = try await within(.seconds(3)) { await pending.value }
        #expect(result == .failure(.cancelled))
        #expect(ContinuousClock.now - start < .seconds(1))
    }

    @Test("listening twice on one address fails with .addressInUse; bad URLs with .invalidAddress")
    func addressErrors() throws {
        let server = try echoServer()
        defer { server.close() }
        #expect(throws: TransportError.addressInUse(server.address.url)) {
            _ = try NNGReplyServer(listeningOn: server.address) { $0.body }
        }
        for bad in ["127.0.0.1:5555", "tcp://127.0.0.1", "tcp://127.0.0.1:99999", "udp://127.0.0.1:1", "inproc://"] {
            #expect(throws: TransportError.self) { _ = try TransportAddress(bad) }
        }
        #expect(throws: TransportError.self) {
            _ = try NNGRequestClient(dialing: server.address, options: NNGClientOptions(tls: TLSSettings()))
        }
        #expect {
            _ = try NNGReplyServer(listeningOn: "tcp://127.0.0.1:0", options: NNGServerOptions(concurrency: 0)) {
                $0.body
            }
        } throws: { error in
            guard case .invalidConfiguration = error as? TransportError else { return false }
            return true
        }
        #expect {
            _ = try NNGRequestClient(dialing: server.address, options: NNGClientOptions(receiveLimit: 0))
        } throws: { error in
            guard case .invalidConfiguration = error as? TransportError else { return false }
            return true
        }
    }

    @Test("ipc and inproc addresses work too")
    func otherTransports() async throws {
        let name = "chorus-test-\(UInt32.random(in: 0...UInt32.max))"
        for url in ["ipc:///tmp/\(name).sock", "inproc://\(name)"] {
            let server = try NNGReplyServer(listeningOn: url) { Array("via:") + $0.body }
            defer { server.close() }
            let client = try NNGRequestClient(dialing: url)
            defer { client.close() }
            let reply = try await within(.seconds(5)) { try await client.request([7], timeout: .seconds(3)) }
            #expect(reply == Array("via:") + [7])
        }
    }
}

extension TransportError {
    /// The detail string of `.connectionLost`, for equality checks in tests.
    var detail: String {
        if case .connectionLost(let detail) = self { return detail }
        return ""
    }
}
