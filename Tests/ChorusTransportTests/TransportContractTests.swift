import ChorusTestSupport
import ChorusTransport
import Testing

/// The `DraftTransport` contract, run over real NNG and over `InProcessNetwork`, each bare and behind
/// the cluster key (`MessageAuthenticator` sealing requests and replies), so that coordinator tests
/// written against the in-memory transport mean the same thing in production, with or without a key.
enum TransportKind: String, CaseIterable, CustomTestStringConvertible {
    case nng
    case inMemory
    case nngWithKey
    case inMemoryWithKey

    var testDescription: String { rawValue }

    /// A running worker: its address, a way to stop it, and the connector that reaches it.
    struct Worker {
        let address: TransportAddress
        let close: @Sendable () -> Void
        let connector: any DraftTransportConnector
    }

    func startWorker(_ handler: @escaping RequestHandler) throws -> Worker {
        switch self {
        case .nngWithKey, .inMemoryWithKey:
            // Each side has its own authenticator, as two processes would.
            let bare = try (self == .nngWithKey ? TransportKind.nng : .inMemory).startWorker(
                testAuthenticator().guarding(handler))
            return Worker(
                address: bare.address, close: bare.close,
                connector: testAuthenticator().connector(wrapping: bare.connector))
        case .nng:
            let server = try echoServer(handler: handler)
            return Worker(address: server.address, close: { server.close() }, connector: NNGConnector())
        case .inMemory:
            let network = InProcessNetwork()
            let server = try network.listen(on: "inproc://worker-0", handler: handler)
            return Worker(address: server.address, close: { server.close() }, connector: network)
        }
    }
}

@Suite("DraftTransport contract", .timeLimit(.minutes(1)))
struct TransportContractTests {
    @Test("round trip", arguments: TransportKind.allCases)
    func roundTrip(_ kind: TransportKind) async throws {
        let worker = try kind.startWorker { Array("re:") + $0.body }
        defer { worker.close() }
        let client = try worker.connector.connect(to: worker.address)
        defer { client.close() }
        let reply = try await within(.seconds(5)) { try await client.request([1, 2], timeout: .seconds(3)) }
        #expect(reply == Array("re:") + [1, 2])
    }

    @Test(
        "cancelled request: prompt .cancelled, and the late reply does not reach the next request",
        arguments: TransportKind.allCases)
    func cancelThenReuse(_ kind: TransportKind) async throws {
        let worker = try kind.startWorker { request in
            try? await Task.sleep(for: request.body == [1] ? .milliseconds(500) : .milliseconds(400))
            return request.body
        }
        defer { worker.close() }
        let client = try worker.connector.connect(to: worker.address)
        defer { client.close() }
        let start = ContinuousClock.now
        let first = Task { await outcome(client, [1], timeout: .seconds(5)) }
        try await Task.sleep(for: .milliseconds(150))
        first.cancel()
        let cancelled = try await within(.seconds(3)) { await first.value }
        #expect(cancelled == .failure(.cancelled))
        #expect(ContinuousClock.now - start < .milliseconds(450))
        // [2]'s reply comes at ≈ 150 + 400 ms, after [1]'s late one at ≈ 500 ms.
        let second = try await within(.seconds(5)) { try await client.request([2], timeout: .seconds(3)) }
        #expect(second == [2])
    }

    @Test("no reply: .timedOut at the deadline", arguments: TransportKind.allCases)
    func dropTimesOut(_ kind: TransportKind) async throws {
        let worker = try kind.startWorker { _ in nil }
        defer { worker.close() }
        let client = try worker.connector.connect(to: worker.address)
        defer { client.close() }
        let start = ContinuousClock.now
        let result = try await within(.seconds(5)) { await outcome(client, [1], timeout: .milliseconds(200)) }
        let waited = ContinuousClock.now - start
        #expect(result == .failure(.timedOut(after: .milliseconds(200))))
        #expect(waited >= .milliseconds(190) && waited < .milliseconds(800))
    }

    @Test("worker closes mid-request: .connectionLost before the deadline", arguments: TransportKind.allCases)
    func workerClosesMidRequest(_ kind: TransportKind) async throws {
        let worker = try kind.startWorker { request in
            try? await Task.sleep(for: .milliseconds(400))
            return request.body
        }
        let client = try worker.connector.connect(to: worker.address)
        defer { client.close() }
        _ = try await within(.seconds(5)) { await outcome(client, [0], timeout: .seconds(2)) }  // connected
        let start = ContinuousClock.now
        let pending = Task { await outcome(client, [1], timeout: .seconds(3)) }
        try await Task.sleep(for: .milliseconds(100))
        worker.close()
        let result = try await within(.seconds(5)) { await pending.value }
        #expect(result == .failure(.connectionLost(result.lostDetail)), "\(result)")
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    @Test("client closed mid-request: .closed, and .closed afterwards", arguments: TransportKind.allCases)
    func clientClosesMidRequest(_ kind: TransportKind) async throws {
        let worker = try kind.startWorker { request in
            try? await Task.sleep(for: .seconds(1))
            return request.body
        }
        defer { worker.close() }
        let client = try worker.connector.connect(to: worker.address)
        let pending = Task { await outcome(client, [1], timeout: .seconds(3)) }
        try await Task.sleep(for: .milliseconds(100))
        client.close()
        let result = try await within(.seconds(5)) { await pending.value }
        #expect(result == .failure(.closed))
        let after = try await within(.seconds(5)) { await outcome(client, [2], timeout: .seconds(1)) }
        #expect(after == .failure(.closed))
    }
}

extension Result where Failure == TransportError {
    /// The detail of a `.connectionLost` failure, so tests can match the case.
    var lostDetail: String {
        if case .failure(.connectionLost(let detail)) = self { return detail }
        return ""
    }
}
