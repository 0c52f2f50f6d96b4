import ChorusModel
import ChorusSampling
import ChorusTransport
import ChorusWire
import Foundation

/// A draft worker on the network: a REP socket serving draft and describe requests, and optionally a
/// registration loop that announces the worker to a coordinator (and re-announces it periodically,
/// so a restarted coordinator learns about it again).
public final class WorkerService: Sendable {
    public let worker: DraftWorker
    public let address: TransportAddress
    let server: ClusterNetwork.Listener
    let registration: Task<Void, Never>?

    /// `advertise`: the address registered with the coordinator (default: the bound listen address,
    /// which resolves a port of 0).
    public init(
        worker: DraftWorker, listen: String, network: ClusterNetwork, register coordinator: String?,
        advertise: String? = nil, heartbeat: Duration = .seconds(5), log: ClusterLog
    ) async throws {
        self.worker = worker
        // As many requests at once as the worker keeps sessions: requests of sessions that wait together are
        // drafted in shared forward passes, so they must all reach the worker.
        let server = try network.listen(on: listen, concurrency: worker.configuration.maxSessions) { request in
            await worker.handle(bytes: request.body, receivedAt: .now)
        }
        self.server = server
        address = server.address
        await worker.advertise(advertise ?? server.address.url)
        guard let coordinator else {
            registration = nil
            return
        }
        let client = try network.connect(to: coordinator)
        registration = Task {
            let message = WireMessage.register(await worker.registration).encoded()
            var announced = false
            var warned = false
            while !Task.isCancelled {
                do {
                    let reply = try await client.request(message, timeout: .seconds(2))
                    switch try WireMessage.decode(reply) {
                    case let .registerReply(answer) where answer.accepted:
                        if !announced { log.info("registered with \(coordinator)") }
                        announced = true
                        warned = false
                    case let .registerReply(answer):
                        log.error("coordinator \(coordinator) refused this worker: \(answer.reason); not retrying")
                        client.close()
                        return
                    default:
                        log.warning("unexpected answer to registration from \(coordinator)")
                    }
                } catch {
                    // Say so once per outage, also when the first attempt fails (for example a TLS
                    // handshake the coordinator refuses), so a worker that never joins is not silent.
                    if announced || !warned {
                        log.warning("coordinator \(coordinator) unreachable (\(error)); will retry")
                    }
                    warned = true
                    announced = false
                }
                try? await Task.sleep(for: announced ? heartbeat : .seconds(1))
            }
            client.close()
        }
    }

    public func close() {
        registration?.cancel()
        server.close()
    }
}

/// The coordinator on the network: its REP endpoint for clients and registering workers.
public final class CoordinatorService: Sendable {
    public let coordinator: Coordinator
    public let address: TransportAddress
    let server: ClusterNetwork.Listener

    public init(coordinator: Coordinator, listen: String, network: ClusterNetwork) throws {
        self.coordinator = coordinator
        server = try network.listen(on: listen, concurrency: 32) { request in
            await coordinator.handle(bytes: request.body)
        }
        address = server.address
    }

    public func close() async {
        server.close()
        await coordinator.close()
    }
}

/// A client of a coordinator: starts a generation and long-polls its progress.
public struct CoordinatorClient: Sendable {
    let transport: any DraftTransport
    public let timeout: Duration

    public init(address: String, network: ClusterNetwork, timeout: Duration = .seconds(60)) throws {
        transport = try network.connect(to: address)
        self.timeout = timeout
    }

    public init(transport: any DraftTransport, timeout: Duration = .seconds(60)) {
        self.transport = transport
        self.timeout = timeout
    }

    public enum ClientError: Error, CustomStringConvertible {
        case refused(String)
        case unexpected(String)
        public var description: String {
            switch self {
            case let .refused(m): return "the coordinator refused: \(m)"
            case let .unexpected(m): return "unexpected answer: \(m)"
            }
        }
    }

    /// Streams a generation of `maxTokens` tokens after the text `prompt` (nil seed: the coordinator
    /// picks one); `onUpdate` gets every update. Returns the last one (done, with the statistics).
    public func generate(
        prompt: String, maxTokens: Int, sampling: SamplingSettings, seed: UInt64?,
        onUpdate: (GenerationUpdate) -> Void
    ) async throws -> GenerationUpdate {
        try await generate(
            GenerateStart(prompt: prompt, maxTokens: maxTokens, sampling: sampling, seed: seed), onUpdate: onUpdate)
    }

    /// Streams a generation: `onUpdate` gets every update (text and tokens since the last one).
    public func generate(_ request: GenerateStart, onUpdate: (GenerateUpdate) -> Void) async throws -> GenerateUpdate {
        let accepted: GenerateAccepted
        switch try WireMessage.decode(
            try await transport.request(WireMessage.generateStart(request).encoded(), timeout: timeout))
        {
        case let .generateAccepted(a): accepted = a
        case let .error(e): throw ClientError.refused(e.message)
        case let other: throw ClientError.unexpected("\(other)")
        }
        var from = 0
        while true {
            let poll = GeneratePoll(session: accepted.session, from: from, waitMilliseconds: 1000)
            let reply = try await transport.request(WireMessage.generatePoll(poll).encoded(), timeout: timeout)
            switch try WireMessage.decode(reply) {
            case let .generateUpdate(update):
                onUpdate(update)
                from = update.from + update.tokens.count
                if update.done { return update }
            case let .error(e): throw ClientError.refused(e.message)
            case let other: throw ClientError.unexpected("\(other)")
            }
        }
    }

    public func close() { transport.close() }
}

/// What a client sees of a generation after each poll: the tokens and text since the last update,
/// whether it is done and why, and the statistics so far.
public typealias GenerationUpdate = GenerateUpdate
