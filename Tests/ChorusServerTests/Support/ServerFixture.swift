import ChorusCluster
import ChorusModel
import ChorusServer
import ChorusTestSupport
import ChorusTransport
import Logging
import ServiceLifecycle

/// A coordinator over the shipped target with in-process draft workers (the small and medium drafts),
/// and the HTTP server in front of it on a free loopback port: real HTTP, no NNG.
final class ServerFixture: Sendable {
    let server: ChorusHTTPServer
    let coordinator: Coordinator
    let tokenizer: Tokenizer
    let contextLength: Int
    let port: Int
    let group: ServiceGroup
    let task: Task<Void, Never>
    let workers: [ClusterNetwork.Listener]

    /// The target, loaded once per process (read-only; every session has its own cache).
    static let target: Result<(TransformerModel, Tokenizer), any Error> = Result {
        let gguf = try GGUFFile(path: Models.target)
        let tokenizer = try Tokenizer(gguf: gguf)
        return (try TransformerModel(gguf: gguf, tokenizer: tokenizer), tokenizer)
    }

    static func draft(_ path: String) throws -> TransformerModel {
        try TransformerModel(path: path)
    }

    /// - Parameters:
    ///   - workers: 0, 1 or 2 in-process workers (small, then medium draft).
    ///   - deadline: long by default, so every worker answers every round and a seeded generation is
    ///     the same each time.
    static func start(
        options: HTTPServerOptions = .init(), chatTemplate: String? = nil, workers count: Int = 2,
        deadline: Duration = .seconds(30)
    ) async throws -> ServerFixture {
        let (target, tokenizer) = try target.get()
        let network = InProcessNetwork()
        let metrics = PrometheusServingMetrics()
        let board = StatusBoard()
        let drafts = [Models.small, Models.medium]
        let id = UInt64.random(in: 0..<(1 << 40))
        var listeners: [ClusterNetwork.Listener] = []
        for i in 0..<count {
            let worker = DraftWorker(
                model: try draft(drafts[i]), configuration: .init(workerID: "w\(i)", sequences: 2),
                advertisedAddress: "inproc://http-\(id)-w\(i)")
            listeners.append(
                try ClusterNetwork.inProcess(network).listen(on: "inproc://http-\(id)-w\(i)") { request in
                    await worker.handle(bytes: request.body)
                })
        }
        var coordinatorOptions = Coordinator.Options()
        coordinatorOptions.deadline = deadline
        let coordinator = Coordinator(
            target: target, tokenizer: tokenizer, options: coordinatorOptions,
            connector: TimedConnector(network, metrics: metrics, board: board),
            log: ClusterLog(component: "test", minimum: .error))
        for i in 0..<count { try await coordinator.addWorker(address: "inproc://http-\(id)-w\(i)") }
        let ready = await eventually(within: .seconds(60)) {
            await coordinator.workerStatuses.filter { $0.state == .ready }.count == count
        }
        guard ready else { throw FixtureError("the in-process workers did not become ready") }
        var options = options
        options.host = "127.0.0.1"
        options.port = 0
        var logger = Logger(label: "test.http")
        logger.logLevel = .error
        let server = ChorusHTTPServer(
            coordinator: coordinator, tokenizer: tokenizer, chatTemplate: chatTemplate, modelID: "chorus-kjv-target",
            contextLength: target.contextLength, options: options, metrics: metrics, board: board, logger: logger)
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let app = server.application { port in portContinuation.yield(port) }
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
        let task = Task { _ = try? await group.run() }
        var port = 0
        for await p in portStream {
            port = p
            break
        }
        guard port > 0 else { throw FixtureError("the HTTP server did not report its port") }
        return ServerFixture(
            server: server, coordinator: coordinator, tokenizer: tokenizer, contextLength: target.contextLength,
            port: port, group: group, task: task, workers: listeners)
    }

    init(
        server: ChorusHTTPServer, coordinator: Coordinator, tokenizer: Tokenizer, contextLength: Int, port: Int,
        group: ServiceGroup, task: Task<Void, Never>, workers: [ClusterNetwork.Listener]
    ) {
        self.group = group
        self.server = server
        self.coordinator = coordinator
        self.tokenizer = tokenizer
        self.contextLength = contextLength
        self.port = port
        self.task = task
        self.workers = workers
    }

    func post(_ path: String, _ body: String, headers: [String: String] = [:]) async -> HTTPReply? {
        await HTTPTestClient.request("POST", port: port, path: path, body: body, headers: headers)
    }

    func get(_ path: String, headers: [String: String] = [:]) async -> HTTPReply? {
        await HTTPTestClient.request("GET", port: port, path: path, headers: headers)
    }

    /// Stops the server (graceful), the coordinator and the workers.
    func stop() async {
        server.beginShutdown()
        await coordinator.close()
        await group.triggerGracefulShutdown()
        await task.value
        for w in workers { w.close() }
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The value of a metric line `name{labels} value` in a Prometheus exposition (labels as written,
/// e.g. `position="0"`; nil labels: the line without braces).
func metricValue(_ exposition: String, _ name: String, labels: String? = nil) -> Double? {
    let prefix = labels.map { "\(name){\($0)} " } ?? "\(name) "
    for line in exposition.split(separator: "\n") where line.hasPrefix(prefix) {
        return Double(line.dropFirst(prefix.count))
    }
    return nil
}
