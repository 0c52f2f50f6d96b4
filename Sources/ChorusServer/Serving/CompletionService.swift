import ChorusCluster
import ChorusModel
import ChorusSampling
import ChorusWire
import Synchronization

/// Admission limits and request size (flags `--max-sessions`, `--max-queue`, `--max-body-bytes`).
public struct ServingLimits: Sendable, Equatable {
    /// Generations running at once; more wait in the queue. Sessions take turns on the target, so
    /// more at once share its speed rather than add to it.
    public var maxActiveSessions = 4
    /// Requests waiting for a slot; beyond this: 429.
    public var maxQueuedRequests = 16
    /// How long a queued request waits before 503.
    public var queueTimeout: Duration = .seconds(60)
    /// Largest accepted request body, bytes; beyond this: 413.
    public var maxBodyBytes = 1 << 20

    public init() {}
}

/// The generation side of the HTTP server: turns a parsed request into prompt tokens (chat through
/// the model's template), admits it, runs it on the coordinator, cuts the text at stop sequences and
/// records what happened to every sink. The HTTP layer only moves bytes.
public final class CompletionService: Sendable {
    public let coordinator: Coordinator
    public let tokenizer: Tokenizer
    /// The recognised chat template, or why chat cannot be served.
    public let chatTemplate: Result<ChatTemplate, ChatTemplateError>
    /// The id clients name in `model` (and `/v1/models` lists).
    public let modelID: String
    /// The target's context, tokens.
    public let contextLength: Int
    public let gate: AdmissionGate
    let sinks: [any ServingMetricsSink]
    let board: StatusBoard

    public init(
        coordinator: Coordinator, tokenizer: Tokenizer, chatTemplate: String?, modelID: String, contextLength: Int,
        limits: ServingLimits, sinks: [any ServingMetricsSink], board: StatusBoard
    ) {
        self.coordinator = coordinator
        self.tokenizer = tokenizer
        self.chatTemplate = Result { () throws(ChatTemplateError) in try ChatTemplate(recognizing: chatTemplate) }
        self.modelID = modelID
        self.contextLength = contextLength
        gate = AdmissionGate(
            maxActive: limits.maxActiveSessions, maxQueued: limits.maxQueuedRequests, queueTimeout: limits.queueTimeout)
        self.sinks = sinks + [board]
        self.board = board
    }

    /// A request turned into what the coordinator runs.
    struct Prepared: Sendable {
        var request: CompletionRequest
        var prompt: [Int]
        var maxTokens: Int
        /// nil: the tokenizer's EOS; empty: none (`ignore_eos`).
        var stopTokens: Set<Int>?
    }

    func record(_ r: RequestRecord) {
        for sink in sinks { sink.record(r) }
    }

    /// Refusals before any generation count as `rejected` in the metrics.
    func rejected(_ error: ServerError) -> ServerError {
        var r = RequestRecord(outcome: .rejected)
        r.outcome = error.statusCode == 429 || error.statusCode == 503 ? .overloaded : .rejected
        record(r)
        return error
    }

    /// Tokens, the token budget and the stop tokens of a request.
    /// - Throws: ``ServerError`` 404 for another model's name, 400 for a prompt that is empty, has
    ///   token ids outside the vocabulary, or does not fit the context (both numbers given), and for
    ///   chat without a usable template.
    func prepare(_ request: CompletionRequest) throws(ServerError) -> Prepared {
        if let model = request.model, model != modelID {
            throw ServerError(
                status: 404, type: "invalid_request_error", code: "model_not_found",
                message: "model `\(model)` is not served here; this server serves `\(modelID)` (GET /v1/models)")
        }
        var prompt: [Int]
        var stopTokens: Set<Int>?
        switch request.prompt {
        case let .text(text):
            prompt = tokenizer.encode(text, addSpecial: true)
        case let .tokens(tokens):
            if let bad = tokens.first(where: { $0 < 0 || $0 >= tokenizer.vocabularySize }) {
                throw ServerError.badRequest(
                    "prompt token \(bad) is outside the vocabulary (0…\(tokenizer.vocabularySize - 1))")
            }
            prompt = tokens
        case let .chat(messages):
            let template: ChatTemplate
            let pieces: [PromptPiece]
            do throws(ChatTemplateError) {
                template = try chatTemplate.get()
                pieces = try template.render(messages)
            } catch {
                throw ServerError.badRequest(error.description, code: "chat_template")
            }
            prompt = try tokenizer.encode(pieces: pieces)
            var stops = Set(tokenizer.eos.map { [$0] } ?? [])
            if let end = template.endOfTurn, let id = tokenizer.token(forText: end) { stops.insert(id) }
            stopTokens = stops
        }
        guard !prompt.isEmpty else {
            throw ServerError.badRequest("the prompt is empty (and this vocabulary adds no BOS token)")
        }
        guard prompt.count < contextLength else {
            throw ServerError.badRequest(
                "the prompt has \(prompt.count) tokens; the model's context is \(contextLength) tokens, and at "
                    + "least one must be left to generate", code: "context_length_exceeded")
        }
        if request.ignoreEOS { stopTokens = [] }
        // OpenAI's completions default to 16 tokens; chat to the rest of the context.
        let chat = if case .chat = request.prompt { true } else { false }
        let maxTokens = request.maxTokens ?? (chat ? contextLength - prompt.count : 16)
        return Prepared(request: request, prompt: prompt, maxTokens: maxTokens, stopTokens: stopTokens)
    }

    /// Admits and starts a generation; the caller follows it with ``Generation/follow(emit:)``.
    /// - Throws: ``ServerError``: the refusals of ``prepare(_:)``, 429/503 from admission, 400 for
    ///   sampling settings the coordinator refuses, 503 while shutting down.
    public func start(_ request: CompletionRequest, arrival: ContinuousClock.Instant) async throws(ServerError)
        -> Generation
    {
        let prepared: Prepared
        do throws(ServerError) {
            prepared = try prepare(request)
            try await gate.acquire()
        } catch {
            throw rejected(error)
        }
        let ticket = AdmissionTicket(gate: gate)
        let started = ContinuousClock.now
        let seed = request.seed ?? UInt64.random(in: 0...UInt64.max)
        do {
            let id = try await coordinator.startSession(
                prompt: prepared.prompt, maxTokens: prepared.maxTokens, settings: request.sampling, seed: seed,
                stopTokens: prepared.stopTokens)
            guard let stream = await coordinator.stream(session: id) else {
                throw ServerError(status: 500, type: "server_error", code: "internal", message: "session vanished")
            }
            return Generation(
                service: self, prepared: prepared, session: id, stream: stream, ticket: ticket, arrival: arrival,
                promptTime: ContinuousClock.now - started)
        } catch {
            ticket.release()
            let message = "\(error)"
            if message.contains("shutting down") {
                throw rejected(
                    ServerError(
                        status: 503, type: "server_error", code: "shutting_down",
                        message: "the coordinator is shutting down", retryAfterSeconds: 5))
            }
            throw rejected(error as? ServerError ?? ServerError.badRequest(message))
        }
    }
}

/// A slot of the admission gate, released exactly once: by the generation when it ends, or when the
/// ticket is dropped (a response body that never ran).
final class AdmissionTicket: Sendable {
    let gate: AdmissionGate
    let released = Mutex(false)

    init(gate: AdmissionGate) { self.gate = gate }

    func release() {
        let first = released.withLock { done in
            defer { done = true }
            return !done
        }
        if first { Task { [gate] in await gate.release() } }
    }

    deinit { release() }
}
