import ChorusModel
import ChorusWire

/// The coordinator's request endpoint: clients start and poll generations, workers register.
extension Coordinator {
    /// Serves one message of the coordinator's REP endpoint. Malformed input gets an error reply.
    public func handle(bytes: [UInt8]) async -> [UInt8] {
        let message: WireMessage
        do {
            message = try WireMessage.decode(bytes)
        } catch {
            log.warning("malformed message dropped: \(error)")
            return WireMessage.error(ErrorReply(code: .malformed, message: "\(error)")).encoded()
        }
        switch message {
        case let .register(registration):
            return WireMessage.registerReply(await registry.register(registration)).encoded()
        case let .generateStart(request):
            do {
                return WireMessage.generateAccepted(try start(request)).encoded()
            } catch {
                return WireMessage.error(ErrorReply(code: .invalidRequest, message: "\(error)")).encoded()
            }
        case let .generatePoll(poll):
            return await self.poll(poll).encoded()
        default:
            return WireMessage.error(
                ErrorReply(code: .invalidRequest, message: "the coordinator does not serve this message")
            ).encoded()
        }
    }

    /// Starts a generation from text (needs the tokenizer).
    func start(_ request: GenerateStart) throws -> GenerateAccepted {
        guard let tokenizer else { throw ModelError.invalidRequest("this coordinator has no tokenizer") }
        let prompt = tokenizer.encode(request.prompt, addSpecial: true)
        let seed = request.seed ?? UInt64.random(in: 0...UInt64.max)
        let id = try startSession(prompt: prompt, maxTokens: request.maxTokens, settings: request.sampling, seed: seed)
        return GenerateAccepted(session: id, promptTokens: prompt.count, seed: seed)
    }

    /// Answers a client's poll: tokens from `from` on, waiting up to `waitMilliseconds` (at most 30 s)
    /// for news.
    func poll(_ request: GeneratePoll) async -> WireMessage {
        guard let stream = sessions[request.session]?.stream else {
            return .error(
                ErrorReply(
                    code: .unknownSession,
                    message: "no session \(request.session) (finished long ago, or never started)"))
        }
        if request.waitMilliseconds > 0 {
            let wait = Duration.milliseconds(min(request.waitMilliseconds, 30_000))
            await stream.wait(beyond: max(0, request.from), timeout: wait, clock: clock)
        }
        return .generateUpdate(stream.update(from: request.from))
    }
}
