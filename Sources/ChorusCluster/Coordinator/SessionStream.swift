import ChorusModel
import ChorusWire
import Synchronization

/// One generation's output as clients see it: the tokens, their text, the statistics and how it
/// ended. The round loop publishes; clients read an update from any token on, or follow
/// ``changes()`` (an `AsyncStream` that ends when the generation does). Thread-safe, so clients wait
/// without holding the coordinator.
public final class SessionStream: Sendable {
    struct State {
        var tokens: [Int] = []
        var decoder: Tokenizer.StreamingDecoder?
        /// UTF-8 of the text so far, and its length after each token: textOffsets: [tokens.count + 1].
        var text: [UInt8] = []
        var textOffsets: [Int] = [0]
        var statistics = GenerationStatistics()
        var finishReason: String?
        var error: String?
        var subscribers: [Int: AsyncStream<Void>.Continuation] = [:]
        var nextSubscriber = 0
    }

    public let session: UInt64
    private let state: Mutex<State>

    init(session: UInt64, tokenizer: Tokenizer?) {
        self.session = session
        state = Mutex(State(decoder: tokenizer.map { Tokenizer.StreamingDecoder(tokenizer: $0) }))
    }

    public var isFinished: Bool { state.withLock { $0.finishReason != nil } }
    /// Why the generation failed, if it did.
    public var error: String? { state.withLock { $0.error } }

    /// Appends a round's tokens (possibly none) and the statistics after it.
    func publish(_ tokens: [Int], statistics: GenerationStatistics) {
        let subscribers = state.withLock { s in
            for t in tokens {
                if var decoder = s.decoder {
                    s.text += Array(decoder.append(t).utf8)
                    s.decoder = decoder
                }
                s.tokens.append(t)
                s.textOffsets.append(s.text.count)
            }
            s.statistics = statistics
            return Array(s.subscribers.values)
        }
        for subscriber in subscribers { subscriber.yield() }
    }

    /// Ends the stream: the decoder's held bytes become text, and every follower's stream ends.
    func finish(reason: String, statistics: GenerationStatistics, error: String? = nil) {
        let subscribers = state.withLock { s in
            if var decoder = s.decoder {
                s.text += Array(decoder.finish().utf8)
                s.decoder = nil
                s.textOffsets[s.textOffsets.count - 1] = s.text.count
            }
            s.statistics = statistics
            s.finishReason = reason
            s.error = error
            defer { s.subscribers = [:] }
            return Array(s.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }

    /// Yields once per publish (coalesced when the reader is behind) and ends when the generation
    /// ends; already finished: ends at once.
    public func changes() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let key: Int? = state.withLock { s in
            guard s.finishReason == nil else { return nil }
            s.nextSubscriber += 1
            s.subscribers[s.nextSubscriber] = continuation
            return s.nextSubscriber
        }
        guard let key else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: key) }
        }
        return stream
    }

    /// Returns when there are tokens beyond `from`, the generation has ended, or `timeout` has passed.
    func wait(beyond from: Int, timeout: Duration, clock: ClusterClock) async {
        let changes = changes()
        guard !hasNews(beyond: from) else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in changes where self.hasNews(beyond: from) { return }
            }
            group.addTask { try? await clock.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    func hasNews(beyond from: Int) -> Bool {
        state.withLock { $0.tokens.count > from || $0.finishReason != nil }
    }

    /// Tokens and text from token `from` on (clamped to what exists), with the statistics so far.
    public func update(from: Int) -> GenerateUpdate {
        state.withLock { s in
            let from = max(0, min(from, s.tokens.count))
            let start = s.textOffsets[from]
            let end = s.finishReason != nil ? s.text.count : s.textOffsets[s.tokens.count]
            return GenerateUpdate(
                session: session, from: from, tokens: Array(s.tokens[from...]),
                text: String(decoding: s.text[start..<max(start, end)], as: UTF8.self),
                done: s.finishReason != nil, finishReason: s.finishReason ?? "", statistics: s.statistics)
        }
    }
}
