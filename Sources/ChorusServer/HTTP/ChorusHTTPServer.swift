import ChorusCluster
import ChorusModel
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Where the HTTP server listens and who may use it.
public struct HTTPServerOptions: Sendable {
    public var host = "127.0.0.1"
    /// 0: a free port (``ChorusHTTPServer/run(onRunning:)`` reports it).
    public var port = 8080
    public var limits = ServingLimits()
    /// When set, `/v1/*` needs `Authorization: Bearer KEY` (401 otherwise). Never logged.
    public var apiKey: String?

    public init() {}

    /// Parses `HOST:PORT` (`[::1]:8080` for IPv6).
    public static func parseAddress(_ text: String) throws(ServerError) -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":") else {
            throw ServerError.badRequest("HTTP address `\(text)` must be HOST:PORT, e.g. 127.0.0.1:8080")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ServerError.badRequest("HTTP address `\(text)` must be HOST:PORT with a port in 0…65535")
        }
        return (host, port)
    }
}

/// The coordinator's HTTP face (DESIGN.md "Modules", `ChorusServer`): OpenAI-compatible completions
/// and chat with server-sent events, `/v1/models`, `/health`, Prometheus `/metrics`, and the live
/// status page (`/`, fed by `/status/events`). A Hummingbird application run as a swift-service-lifecycle
/// `Service`: graceful shutdown stops accepting connections and lets running responses end.
public final class ChorusHTTPServer: Sendable {
    public let service: CompletionService
    public let metrics: PrometheusServingMetrics
    public let board: StatusBoard
    public let options: HTTPServerOptions
    public let logger: Logger
    /// Set by ``beginShutdown()``: status streams end, so a graceful shutdown does not wait on them.
    let closing = Mutex(false)

    /// - Parameters:
    ///   - chatTemplate: the target GGUF's `tokenizer.chat_template` (nil: chat answers 400).
    ///   - metrics, board: the sinks; pass the ones the coordinator's ``TimedConnector`` feeds.
    public init(
        coordinator: Coordinator, tokenizer: Tokenizer, chatTemplate: String?, modelID: String,
        contextLength: Int, options: HTTPServerOptions, metrics: PrometheusServingMetrics = .init(),
        board: StatusBoard = .init(), logger: Logger = Logger(label: "chorus.http")
    ) {
        self.metrics = metrics
        self.board = board
        self.options = options
        self.logger = logger
        service = CompletionService(
            coordinator: coordinator, tokenizer: tokenizer, chatTemplate: chatTemplate, modelID: modelID,
            contextLength: contextLength, limits: options.limits, sinks: [metrics], board: board)
    }

    /// Ends status streams; call before a graceful shutdown.
    public func beginShutdown() { closing.withLock { $0 = true } }

    /// The Hummingbird application (a `Service`). `onRunning` gets the bound port.
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> Application<RouterResponder<BasicRequestContext>>
    {
        let router = Router(context: BasicRequestContext.self)
        router.middlewares.add(OpenAIErrorMiddleware(logger: logger))
        router.middlewares.add(APIKeyMiddleware(key: options.apiKey))
        router.get("/health") { _, _ in try await self.health() }
        router.get("/v1/models") { _, _ in self.models() }
        router.post("/v1/completions") { request, _ in try await self.complete(request, chat: false) }
        router.post("/v1/chat/completions") { request, _ in try await self.complete(request, chat: true) }
        router.get("/metrics") { _, _ in try await self.prometheus() }
        router.get("/") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: StatusPage.html)))
        }
        router.get("/status") { _, _ in
            Self.json(await self.statusSnapshot().encoded())
        }
        router.get("/status/events") { _, _ in self.statusEvents() }
        let logger = logger
        return Application(
            router: router,
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "chorus"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("HTTP: listening on \(channel.localAddress?.description ?? "?")")
                await onRunning(port)
            }, logger: logger)
    }

    // MARK: Endpoints

    func health() async throws -> Response {
        let workers = await service.coordinator.workerStatuses
        let object: [String: Any] = [
            "status": "ok", "model": service.modelID,
            "workers": ["ready": workers.filter { $0.state == .ready }.count, "configured": workers.count],
            "sessions": ["active": await service.gate.active, "queued": await service.gate.queued],
        ]
        return Self.json(try Array(JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])))
    }

    func models() -> Response {
        let object: [String: Any] = [
            "object": "list",
            "data": [
                [
                    "id": service.modelID, "object": "model", "created": 0, "owned_by": "chorus",
                    "context_length": service.contextLength,
                ]
            ],
        ]
        return Self.json((try? Array(JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))) ?? [])
    }

    func prometheus() async throws -> Response {
        metrics.update(
            workers: await service.coordinator.workerStatuses, active: await service.gate.active,
            queued: await service.gate.queued)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
    }

    /// The request body, at most ``ServingLimits/maxBodyBytes``.
    /// - Throws: ``ServerError`` 413 beyond the limit (by `Content-Length` or by what arrives).
    func body(of request: Request) async throws -> [UInt8] {
        let limit = options.limits.maxBodyBytes
        let tooLarge = ServerError(
            status: 413, type: "invalid_request_error", code: "request_too_large",
            message: "the request body is larger than this server's limit of \(limit) bytes")
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit { throw tooLarge }
        do {
            var buffer = try await request.body.collect(upTo: limit)
            return buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw tooLarge
        }
    }

    func complete(_ request: Request, chat: Bool) async throws -> Response {
        let arrival = ContinuousClock.now
        let parsed: CompletionRequest
        do {
            parsed = try CompletionRequest(json: try await body(of: request), chat: chat)
        } catch let error as ServerError {
            throw service.rejected(error)
        }
        let generation = try await service.start(parsed, arrival: arrival)
        let shape = ResponseShape(
            id: (chat ? "chatcmpl-" : "cmpl-") + String(generation.session, radix: 16), chat: chat,
            created: Int(Date().timeIntervalSince1970), model: service.modelID)
        logger.info(
            "session \(generation.session): \(chat ? "chat" : "completion"), \(generation.promptTokens) prompt tokens")
        guard parsed.stream else {
            let c = try await generation.follow { _ in }
            return Self.json(shape.final(c, streamed: false).encoded())
        }
        let logger = logger
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                if chat { try await writer.write(Self.event(shape.chunk(role: "assistant").encoded())) }
                do {
                    let c = try await generation.follow { text in
                        try await writer.write(Self.event(shape.chunk(text: text).encoded()))
                    }
                    try await writer.write(Self.event(shape.final(c, streamed: true).encoded()))
                    if parsed.includeUsageInStream {
                        try await writer.write(Self.event(shape.usageChunk(c.usage).encoded()))
                    }
                } catch let error as ServerError {
                    // Headers are sent: the error travels as an event (OpenAI's streaming error shape).
                    try await writer.write(Self.event(error.body))
                } catch {
                    logger.info("session \(generation.session): client gone (\(error)); cancelled")
                    throw error
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            })
    }

    func statusSnapshot() async -> StatusSnapshot {
        board.snapshot(
            workers: await service.coordinator.workerStatuses, active: await service.gate.active,
            queued: await service.gate.queued)
    }

    /// One status snapshot a second as server-sent events, until the client leaves or the server stops.
    func statusEvents() -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                try await withGracefulShutdownHandler {
                    while !self.closing.withLock({ $0 }) {
                        try await writer.write(Self.event(await self.statusSnapshot().encoded()))
                        try await Task.sleep(for: .seconds(1))
                    }
                } onGracefulShutdown: {
                    self.beginShutdown()
                }
                try await writer.finish(nil)
            })
    }

    // MARK: Encoding

    static func json(_ bytes: [UInt8]) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// One server-sent event: `data: JSON\n\n`.
    static func event(_ json: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes(json)
        buffer.writeString("\n\n")
        return buffer
    }
}

/// The parts every response and chunk of one request share.
struct ResponseShape: Sendable {
    var id: String
    var chat: Bool
    var created: Int
    var model: String

    func body(_ choices: [Choice], object: String? = nil) -> CompletionBody {
        CompletionBody(
            id: id, object: object ?? (chat ? "chat.completion.chunk" : "text_completion"), created: created,
            model: model, choices: choices)
    }

    func chunk(role: String) -> CompletionBody { body([Choice(delta: ["role": role, "content": ""])]) }

    func chunk(text: String) -> CompletionBody {
        body([chat ? Choice(delta: ["content": text]) : Choice(text: text)])
    }

    func usageChunk(_ usage: Usage) -> CompletionBody {
        var b = body([])
        b.usage = usage
        return b
    }

    /// The whole answer (`streamed: false`) or the last chunk: finish reason, usage, timings.
    func final(_ c: Generation.Completion, streamed: Bool) -> CompletionBody {
        var choice: Choice
        if streamed {
            choice = chat ? Choice(delta: [:]) : Choice(text: "")
        } else {
            choice = chat ? Choice(message: ["role": "assistant", "content": c.text]) : Choice(text: c.text)
        }
        choice.finishReason = c.finishReason
        var b = body([choice], object: streamed ? nil : (chat ? "chat.completion" : "text_completion"))
        b.usage = streamed ? nil : c.usage
        b.timings = c.timings
        b.warnings = c.warnings.isEmpty ? nil : c.warnings
        return b
    }
}
