import ChorusTestSupport
import ChorusTransport
import Testing

@Suite("InProcessNetwork", .timeLimit(.minutes(1)))
struct InProcessTransportTests {
    @Test("a client created before its worker registers is served once it does")
    func workerRegistersLate() async throws {
        let network = InProcessNetwork()
        let client = try network.connect(to: TransportAddress("inproc://late"))
        let pending = Task { try await client.request([5], timeout: .seconds(3)) }
        try await Task.sleep(for: .milliseconds(100))
        let server = try network.listen(on: "inproc://late") { $0.body + [6] }
        defer { server.close() }
        let reply = try await within(.seconds(5)) { try await pending.value }
        #expect(reply == [5, 6])
        #expect(server.requestsReceived == 1)
    }

    @Test("with no worker at all the request times out")
    func nobodyHome() async throws {
        let client = InProcessNetwork().client(for: try TransportAddress("inproc://nobody"))
        let result = try await within(.seconds(5)) { await outcome(client, [1], timeout: .milliseconds(100)) }
        #expect(result == .failure(.timedOut(after: .milliseconds(100))))
    }

    @Test("injected delay: a fan-out round cancels the slow worker and keeps the fast ones")
    func injectedDelayFanOut() async throws {
        let network = InProcessNetwork()
        let servers = try (0..<3).map { index in
            try network.listen(on: "inproc://w\(index)") { Array("w\(index):") + $0.body }
        }
        defer { servers.forEach { $0.close() } }
        servers[2].faults = InProcessFaults(delay: .seconds(2))
        let clients = try servers.map { try network.connect(to: $0.address) }
        let results = try await within(.seconds(5)) {
            await withTaskGroup(of: (Int, Result<[UInt8], TransportError>).self) { group in
                for (index, client) in clients.enumerated() {
                    group.addTask { (index, await outcome(client, [9], timeout: .seconds(5))) }
                }
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(150))
                    return (-1, .failure(.cancelled))
                }
                var results: [Int: Result<[UInt8], TransportError>] = [:]
                for await (index, result) in group {
                    if index == -1 { group.cancelAll() } else { results[index] = result }
                }
                return results
            }
        }
        #expect(results[0] == .success(Array("w0:") + [9]))
        #expect(results[1] == .success(Array("w1:") + [9]))
        #expect(results[2] == .failure(.cancelled))
        servers[2].faults = .none
        let next = try await within(.seconds(5)) { try await clients[2].request([10], timeout: .seconds(1)) }
        #expect(next == Array("w2:") + [10])
    }

    @Test("injected failure and dropped replies surface as the configured errors")
    func injectedFailures() async throws {
        let network = InProcessNetwork()
        let handled = Counter()
        let server = try network.listen(
            on: "inproc://faulty", faults: InProcessFaults(failure: .nng(code: 9, message: "boom"))
        ) {
            handled.increment()
            return $0.body
        }
        defer { server.close() }
        let client = network.client(for: server.address)
        let failed = try await within(.seconds(5)) { await outcome(client, [1], timeout: .seconds(1)) }
        #expect(failed == .failure(.nng(code: 9, message: "boom")))
        #expect(handled.count == 0)
        server.faults = InProcessFaults(dropsReplies: true)
        let dropped = try await within(.seconds(5)) { await outcome(client, [1], timeout: .milliseconds(100)) }
        #expect(dropped == .failure(.timedOut(after: .milliseconds(100))))
        #expect(handled.count == 1)
        #expect(server.requestsReceived == 2)
    }

    @Test("a handler that ignores cancellation cannot hold the caller past its deadline")
    func stubbornHandler() async throws {
        let network = InProcessNetwork()
        let finished = Counter()
        let server = try network.listen(on: "inproc://stubborn") { request in
            // Not cancellable: an unstructured sleeper resumes the handler after 600 ms.
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                Task.detached {
                    try? await Task.sleep(for: .milliseconds(600))
                    continuation.resume()
                }
            }
            finished.increment()
            return request.body
        }
        defer { server.close() }
        let client = network.client(for: server.address)
        let start = ContinuousClock.now
        let result = try await within(.seconds(5)) { await outcome(client, [1], timeout: .milliseconds(100)) }
        #expect(result == .failure(.timedOut(after: .milliseconds(100))))
        #expect(ContinuousClock.now - start < .milliseconds(450))
        #expect(finished.count == 0)
        // The worker still finishes its handler on its own, as an NNG worker would.
        try await Task.sleep(for: .milliseconds(700))
        #expect(finished.count == 1)
    }

    @Test("receive limit and duplicate addresses behave like NNG")
    func limitsAndAddresses() async throws {
        let network = InProcessNetwork()
        let server = try network.listen(on: "inproc://small", receiveLimit: 4) { $0.body }
        defer { server.close() }
        #expect(throws: TransportError.addressInUse("inproc://small")) {
            _ = try network.listen(on: "inproc://small") { $0.body }
        }
        let client = network.client(for: server.address)
        let tooLarge = try await within(.seconds(5)) { await outcome(client, [1, 2, 3, 4, 5], timeout: .seconds(1)) }
        #expect(tooLarge == .failure(.connectionLost(tooLarge.lostDetail)))
        let fits = try await within(.seconds(5)) { try await client.request([1, 2, 3, 4], timeout: .seconds(1)) }
        #expect(fits == [1, 2, 3, 4])
        server.close()
        // The address is free again after close.
        let again = try network.listen(on: "inproc://small") { _ in [0] }
        again.close()
    }
}
