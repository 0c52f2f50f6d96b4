import ArgumentParser
import ChorusCluster
import ChorusModel
import ChorusSampling
import ChorusServer
import Foundation
import Logging
import ServiceLifecycle

/// `chorus worker`: a draft worker serving its draft model over NNG.
struct WorkerCommand: ConfiguredCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a draft worker: a draft model serving draft requests over NNG.",
        discussion: "Flags override the `worker:` section of --config. Stops cleanly on SIGINT/SIGTERM."
    )

    @Option(name: .long, help: "YAML config file (section `worker:`).") var config: String?
    @Option(
        name: .long, help: "Address to listen on (default tcp://127.0.0.1:7101; other hosts need --key-file or TLS).")
    var listen: String?
    @Option(name: .long, help: "Draft model (GGUF).") var model: String?
    @Option(name: .long, help: "Draft temperature (default 1).") var temperature: Double?
    @Option(name: .customLong("top-k"), help: "Top-k of the draft law (0 = off).") var topK: Int?
    @Option(name: .customLong("top-p"), help: "Top-p of the draft law (1 = off).") var topP: Double?
    @Option(name: .long, help: "Sequences drafted per request (default 1).") var sequences: Int?
    @Option(
        name: .customLong("ahead-branches"),
        help: "Likely next contexts drafted ahead while the coordinator verifies (default 1; 0 = off).")
    var aheadBranches: Int?
    @Option(
        name: .customLong("pin-cpu"), help: "Pin the worker to this CPU (benchmarks: keep it off the target's core).")
    var pinCPU: Int?
    @Flag(
        name: .customLong("no-batch"),
        help:
            "Draft each request in forward passes of its own (default: requests of sessions waiting together share them)."
    )
    var noBatch = false
    @Option(name: .long, help: "Coordinator endpoint to register with, e.g. tcp://coordinator:7100.") var register:
        String?
    @Option(name: .long, help: "Address the coordinator should dial (default: --listen).") var advertise: String?
    @Option(name: .long, help: "Worker name in logs (default: hostname:port).") var id: String?
    @Option(name: .long, help: "Threads for the draft model.") var threads: Int?
    @Option(name: .long, help: "fast (the engine, default) or reference (Float32 copies, slow).") var precision:
        Precision?
    @OptionGroup var security: SecurityOptions

    func resolved() throws -> WorkerConfiguration {
        var c = try WorkerConfiguration(file: config)
        if let listen { c.listen = listen }
        if let model { c.model = model }
        if let temperature { c.temperature = temperature }
        if let topK { c.topK = topK }
        if let topP { c.topP = topP }
        if let sequences { c.sequences = sequences }
        if let aheadBranches { c.aheadBranches = aheadBranches }
        if let register { c.register = register }
        if let advertise { c.advertise = advertise }
        if let id { c.id = id }
        if let threads { c.threads = threads }
        if let precision { c.precision = precision.rawValue }
        try security.apply(to: &c)
        guard c.model != nil else {
            throw ConfigurationError("give the draft model: --model FILE (or `model:` in the config)")
        }
        guard (1...64).contains(c.sequences) else { throw ConfigurationError("--sequences must be in 1…64") }
        guard (0...64).contains(c.aheadBranches) else { throw ConfigurationError("--ahead-branches must be in 0…64") }
        if let pinCPU, pinCPU < 0 { throw ConfigurationError("--pin-cpu must be ≥ 0") }
        guard c.threads >= 1 else { throw ConfigurationError("--threads must be ≥ 1") }
        try SamplingSettings(temperature: c.temperature, topK: c.topK, topP: c.topP).validate()
        try ClusterNetwork.validate(address: c.listen)
        if let r = c.register { try ClusterNetwork.validate(address: r) }
        let security = try clusterSecurity(tls: c.tls, keyFile: c.keyFile, insecure: c.insecure)
        try security.check(c.listen, .listen)
        if let r = c.register { try security.check(r, .register) }
        return c
    }

    func run() async throws {
        let c = try resolved()
        let log = ClusterLog(component: "worker")
        if let pinCPU { try CPUAffinity.pinProcess(toCPU: pinCPU) }
        let loaded = try loadModel(
            c.model ?? "", threads: c.threads, precision: Precision(rawValue: c.precision) ?? .fast)
        let name = c.id ?? "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
        let sampling = SamplingSettings(temperature: c.temperature, topK: c.topK, topP: c.topP)
        log.info(
            "configuration: id \(name), listen \(c.listen), advertise \(c.advertise ?? "the bound address"), model \(c.model ?? ""), "
                + "\(sampling), \(c.sequences) sequence(s), \(c.aheadBranches) branch(es) ahead, sessions \(noBatch ? "one per forward" : "batched"), threads \(c.threads), register \(c.register ?? "off"), "
                + "TLS \(c.tls == nil ? "off" : "on")")
        let security = try clusterSecurity(tls: c.tls, keyFile: c.keyFile, insecure: c.insecure)
        log.info("authentication: \(security.summary)")
        let worker = DraftWorker(
            model: loaded.model,
            configuration: .init(
                workerID: name, sampling: sampling, sequences: c.sequences, aheadBranches: c.aheadBranches,
                batchSessions: !noBatch))
        let service: WorkerService
        do {
            service = try await WorkerService(
                worker: worker, listen: c.listen, network: .nng(security, log: log), register: c.register,
                advertise: c.advertise, log: log)
        } catch {
            throw fail("cannot listen on \(c.listen): \(error)")
        }
        log.info("worker \(name): listening on \(service.address)")
        let signal = await waitForTerminationSignal()
        log.info("signal \(signal): shutting down")
        service.close()
        let counters = await worker.counters
        log.info(
            "served \(counters.served) requests in \(counters.requestForwards) forward passes (\(counters.sharedForwards) shared by sessions), "
                + "\(counters.aheadHits) drafted ahead in \(counters.aheadSteps) steps of \(counters.aheadRows) rows (\(counters.sharedAheadSteps) shared), \(counters.expired) expired, "
                + "\(counters.contextMismatches) context resets, \(counters.malformed) malformed)")
    }
}

/// `chorus coordinator`: the target model, verification, and the client endpoint.
struct CoordinatorCommand: ConfiguredCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the coordinator: the target model, verifying drafts from the workers.",
        discussion: "Flags override the `coordinator:` section of --config. Stops cleanly on SIGINT/SIGTERM."
    )

    @Option(name: .long, help: "YAML config file (section `coordinator:`).") var config: String?
    @Option(name: .long, help: "Target model (GGUF).") var model: String?
    @Option(name: .long, help: "A worker address to dial (repeat). Workers may also register.") var worker: [String] =
        []
    @Option(name: .long, help: "Token-level scheme (\(SchemeCatalog.names.joined(separator: ", "))); default optimal.")
    var scheme: String?
    @Option(name: .long, help: "truncated-lp's s.") var truncation: Int?
    @Option(name: .customLong("draft-length"), help: "Draft length L (default 4).") var draftLength: Int?
    @Flag(
        name: .customLong("adaptive-depth"),
        help: "Verify the depth that maximises tokens per second each round (default: the full draft length).")
    var adaptiveDepth = false
    @Flag(
        name: .customLong("always-draft"),
        help: "Every round asks for drafts (default: while several sessions run, only when that is measured faster).")
    var alwaysDraft = false
    @Flag(
        name: .customLong("no-batch"),
        help: "Give each session's round a target forward of its own (default: sessions ready together share one).")
    var noBatch = false
    @Option(
        name: .customLong("deadline-ms"),
        help: "Round deadline for worker replies, ms (default: learned from recent reply times).")
    var deadlineMs: Int?
    @Option(
        name: .long,
        help: "Address for clients and registrations (default tcp://127.0.0.1:7100; others need --key-file or TLS).")
    var listen: String?
    @Option(name: .long, help: "Threads for the target model.") var threads: Int?
    @Option(name: .long, help: "fast (the engine, default) or reference (Float32 copies, slow).") var precision:
        Precision?
    @OptionGroup var security: SecurityOptions
    @Option(name: .long, help: "Serve the OpenAI-compatible HTTP API on HOST:PORT (e.g. 127.0.0.1:8080).")
    var http: String?
    @Option(name: .customLong("max-sessions"), help: "HTTP: generations at once (default 4).") var maxSessions: Int?
    @Option(name: .customLong("max-queue"), help: "HTTP: requests waiting for a slot, beyond: 429 (default 16).")
    var maxQueue: Int?
    @Option(name: .customLong("max-body-bytes"), help: "HTTP: largest request body (default 1048576).")
    var maxBodyBytes: Int?
    @Option(name: .customLong("api-key-file"), help: "HTTP: file whose first line is the bearer key /v1/* needs.")
    var apiKeyFile: String?

    func resolved() throws -> CoordinatorConfiguration {
        var c = try CoordinatorConfiguration(file: config)
        if let model { c.model = model }
        if !worker.isEmpty { c.workers = worker }
        if let scheme { c.scheme = scheme }
        if let truncation { c.truncation = truncation }
        if let draftLength { c.draftLength = draftLength }
        if adaptiveDepth { c.adaptiveDepth = true }
        if alwaysDraft { c.alwaysDraft = true }
        if let deadlineMs { c.deadlineMilliseconds = deadlineMs }
        if let listen { c.listen = listen }
        if let threads { c.threads = threads }
        if let precision { c.precision = precision.rawValue }
        try security.apply(to: &c)
        if let http { c.http = http }
        if let maxSessions { c.maxSessions = maxSessions }
        if let maxQueue { c.maxQueue = maxQueue }
        if let maxBodyBytes { c.maxBodyBytes = maxBodyBytes }
        if let apiKeyFile { c.apiKeyFile = apiKeyFile }
        guard c.model != nil else {
            throw ConfigurationError("give the target model: --model FILE (or `model:` in the config)")
        }
        if let address = c.http {
            do { _ = try HTTPServerOptions.parseAddress(address) } catch { throw ConfigurationError(error.message) }
        }
        guard c.maxSessions >= 1 else { throw ConfigurationError("--max-sessions must be ≥ 1") }
        guard c.maxQueue >= 0 else { throw ConfigurationError("--max-queue must be ≥ 0") }
        guard c.maxBodyBytes >= 1024 else { throw ConfigurationError("--max-body-bytes must be ≥ 1024") }
        if c.http == nil, c.apiKeyFile != nil {
            throw ConfigurationError("--api-key-file protects the HTTP API: give --http HOST:PORT too")
        }
        if let file = c.apiKeyFile { _ = try readAPIKey(file) }
        guard SchemeCatalog.names.contains(c.scheme) else {
            throw ConfigurationError(
                "unknown scheme \(c.scheme); known: \(SchemeCatalog.names.joined(separator: ", "))")
        }
        guard (1...64).contains(c.draftLength) else { throw ConfigurationError("--draft-length must be in 1…64") }
        if let d = c.deadlineMilliseconds, d < 1 { throw ConfigurationError("--deadline-ms must be ≥ 1") }
        guard c.threads >= 1 else { throw ConfigurationError("--threads must be ≥ 1") }
        try ClusterNetwork.validate(address: c.listen)
        for w in c.workers { try ClusterNetwork.validate(address: w) }
        let security = try clusterSecurity(tls: c.tls, keyFile: c.keyFile, insecure: c.insecure)
        try security.check(c.listen, .listen)
        for w in c.workers { try security.check(w, .dial) }
        return c
    }

    func run() async throws {
        let c = try resolved()
        let log = ClusterLog(component: "coordinator")
        let loaded = try loadModel(
            c.model ?? "", threads: c.threads, precision: Precision(rawValue: c.precision) ?? .fast)
        log.info(
            "configuration: model \(c.model ?? ""), listen \(c.listen), scheme \(c.scheme), draft length \(c.draftLength) (\(c.adaptiveDepth ? "adaptive" : "fixed") depth), "
                + "deadline \(c.deadlineMilliseconds.map { "\($0) ms" } ?? "learned"), threads \(c.threads), workers \(c.workers.isEmpty ? "none (registration only)" : c.workers.joined(separator: " ")), "
                + "TLS \(c.tls == nil ? "off" : "on")")
        var options = Coordinator.Options()
        options.scheme = try SchemeCatalog.scheme(named: c.scheme, truncation: c.truncation)
        options.draftLength = c.draftLength
        options.adaptiveDepth = c.adaptiveDepth
        options.gateDrafting = !c.alwaysDraft
        options.batchTarget = !noBatch
        options.deadline = c.deadlineMilliseconds.map { .milliseconds($0) }
        let security = try clusterSecurity(tls: c.tls, keyFile: c.keyFile, insecure: c.insecure)
        log.info("authentication: \(security.summary)")
        let network = ClusterNetwork.nng(security, log: log)
        // With HTTP, worker round trips are timed for /metrics and the status page.
        let metrics = PrometheusServingMetrics()
        let board = StatusBoard()
        let connector = TimedConnector.connector(for: network, timed: c.http != nil, metrics: metrics, board: board)
        let coordinator = Coordinator(
            target: loaded.model, tokenizer: loaded.tokenizer, options: options, connector: connector, log: log)
        for address in c.workers { try await coordinator.addWorker(address: address) }
        let service: CoordinatorService
        do {
            service = try CoordinatorService(coordinator: coordinator, listen: c.listen, network: network)
        } catch {
            throw fail("cannot listen on \(c.listen): \(error)")
        }
        log.info("coordinator: listening on \(service.address)")
        let http = try c.http.map { address in
            try httpServer(address, c, loaded: loaded, coordinator: coordinator, metrics: metrics, board: board)
        }
        // The HTTP server runs as a swift-service-lifecycle service; the signal below shuts it down gracefully.
        let httpGroup = http.map { server in
            ServiceGroup(
                services: [server.application()], gracefulShutdownSignals: [], cancellationSignals: [],
                logger: server.logger)
        }
        let httpTask = httpGroup.map { group in
            Task {
                do { try await group.run() } catch { log.error("HTTP server stopped: \(error)") }
            }
        }
        let signal = await waitForTerminationSignal()
        log.info("signal \(signal): shutting down")
        http?.beginShutdown()
        // Running sessions end after their current round; then HTTP responses finish and the server stops.
        await service.close()
        await httpGroup?.triggerGracefulShutdown()
        await httpTask?.value
    }

    /// The HTTP server over `coordinator` (``ChorusHTTPServer``), logging to standard error.
    func httpServer(
        _ address: String, _ c: CoordinatorConfiguration, loaded: LoadedModel, coordinator: Coordinator,
        metrics: PrometheusServingMetrics, board: StatusBoard
    ) throws -> ChorusHTTPServer {
        let (host, port) = try HTTPServerOptions.parseAddress(address)
        var options = HTTPServerOptions()
        options.host = host
        options.port = port
        options.limits.maxActiveSessions = c.maxSessions
        options.limits.maxQueuedRequests = c.maxQueue
        options.limits.maxBodyBytes = c.maxBodyBytes
        options.apiKey = try c.apiKeyFile.map(readAPIKey)
        let modelID = URL(fileURLWithPath: c.model ?? "model").deletingPathExtension().lastPathComponent
        let logger = Logger(label: "chorus.http") { StreamLogHandler.standardError(label: $0) }
        return ChorusHTTPServer(
            coordinator: coordinator, tokenizer: loaded.tokenizer, chatTemplate: loaded.chatTemplate, modelID: modelID,
            contextLength: loaded.model.contextLength, options: options, metrics: metrics, board: board,
            logger: logger)
    }
}

/// The API key: the file's first line, trimmed; an empty or unreadable file is an error (never a
/// server without the key the operator asked for).
func readAPIKey(_ file: String) throws -> String {
    let text: String
    do {
        text = try String(contentsOfFile: file, encoding: .utf8)
    } catch {
        throw ConfigurationError("cannot read the API key file \(file): \(error.localizedDescription)")
    }
    let key = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
    guard !key.isEmpty else { throw ConfigurationError("the API key file \(file) is empty") }
    return key
}

/// A server command whose flags override a section of its `--config` file: `resolved()` merges and checks them,
/// and `validate()` runs it, so a bad setting fails with a usage message before `run()` has any side effect.
protocol ConfiguredCommand: AsyncParsableCommand {
    associatedtype Settings
    func resolved() throws -> Settings
}

extension ConfiguredCommand {
    func validate() throws {
        do { _ = try resolved() } catch { throw ValidationError("\(error)") }
    }
}

/// `--tls-cert`, `--tls-key`, `--tls-ca`, `--key-file` and `--insecure`, shared by the worker, the coordinator and
/// `generate --coordinator`.
struct SecurityOptions: ParsableArguments {
    @Option(name: .customLong("tls-cert"), help: "TLS certificate (PEM) for tls+tcp://.") var tlsCertificate: String?
    @Option(name: .customLong("tls-key"), help: "TLS private key (PEM).") var tlsKey: String?
    @Option(name: .customLong("tls-ca"), help: "CA certificate (PEM) that signs the peers.") var tlsCA: String?
    @Option(
        name: .customLong("key-file"),
        help: ArgumentHelp(
            "Cluster key file (make one with `chorus keygen --out FILE`, mode 600): every message carries an "
                + "HMAC under it. All processes of a cluster need the same key."))
    var keyFile: String?
    @Flag(
        name: .long,
        help: ArgumentHelp(
            "Listen, dial and register on addresses other hosts can reach without a key or mutual TLS. Anyone "
                + "who can reach them can then join and steer the output; for trusted private networks only."))
    var insecure = false

    /// The TLS files given on the command line: none, or all three.
    func tls() throws -> TLSConfiguration? {
        let given = [tlsCertificate, tlsKey, tlsCA].compactMap { $0 }
        if given.isEmpty { return nil }
        guard let tlsCertificate, let tlsKey, let tlsCA else {
            throw ConfigurationError("TLS needs all of --tls-cert, --tls-key and --tls-ca")
        }
        return TLSConfiguration(certificate: tlsCertificate, key: tlsKey, ca: tlsCA)
    }

    /// Lays these flags over a config file's settings.
    func apply(to c: inout some NodeConfiguration) throws {
        if let tls = try tls() { c.tls = tls }
        if let keyFile { c.keyFile = keyFile }
        if insecure { c.insecure = true }
    }
}

/// The cluster's security from the resolved settings: loads and checks the key file.
func clusterSecurity(tls: TLSConfiguration?, keyFile: String?, insecure: Bool) throws -> ClusterSecurity {
    ClusterSecurity(tls: tls, key: try keyFile.map { path in try ClusterKeyFile.load(path) }, insecure: insecure)
}
