/// The coordinator side of `InProcessNetwork`: a `DraftTransport` to one in-memory worker.
public final class InProcessClient<C: Clock>: DraftTransport where C.Duration == Duration {
    public let address: TransportAddress
    private let network: InProcessNetwork<C>
    private let isClosed = Locked(false)

    init(address: TransportAddress, network: InProcessNetwork<C>) {
        self.address = address
        self.network = network
    }

    public func close() {
        isClosed.withLock { $0 = true }
    }

    public func request(_ message: [UInt8], timeout: Duration) async throws(TransportError) -> [UInt8] {
        let clock = network.clock
        let deadline = clock.now.advanced(by: timeout)
        if isClosed.withLock({ $0 }) { throw .closed }
        if Task.isCancelled { throw .cancelled }

        // The exchange (find the worker, apply faults, run the handler) and the watchdog
        // (deadline, close, worker gone) race as unstructured tasks, so that a handler that
        // ignores cancellation cannot hold the caller past its deadline — as with NNG, where the
        // worker's handler runs on its own and a reply nobody waits for is discarded.
        let race = FirstOutcome()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                race.install(continuation)
                race.track(Task { race.offer(await self.exchange(message, deadline: deadline)) })
                race.track(Task { race.offer(await self.watch(deadline: deadline, timeout: timeout)) })
            }
        } onCancel: {
            race.offer(.failure(.cancelled))
        }
        if case .failure = result, isClosed.withLock({ $0 }) { throw .closed }
        return try result.get()
    }

    /// Returns nil when it has nothing to say (the race was already decided, or a dropped
    /// reply), so that the watchdog decides the outcome.
    private func exchange(_ message: [UInt8], deadline: C.Instant) async -> Result<[UInt8], TransportError>? {
        let clock = network.clock
        // Like a non-blocking NNG dial: wait for a server to appear at the address.
        var server = network.server(at: address)
        while server == nil {
            do {
                try await clock.sleep(for: network.pollInterval)
            } catch {
                return nil
            }
            server = network.server(at: address)
        }
        guard let server else { return nil }
        if message.count > server.receiveLimit {
            // NNG closes the connection on an oversized message; REQ without resend then fails.
            return .failure(.connectionLost("request of \(message.count) bytes exceeds the worker's limit"))
        }
        let faults = server.admit()
        if faults.delay > .zero {
            do {
                try await clock.sleep(for: faults.delay)
            } catch {
                return nil
            }
        }
        if let failure = faults.failure { return .failure(failure) }
        // The handler runs in its own task: giving up on the request does not cancel the worker.
        let handler = server.handler
        let handling = Task { await handler(ReceivedRequest(body: message, connectionID: 1)) }
        let reply = await handling.value
        if Task.isCancelled { return nil }
        if server.isClosed { return .failure(.connectionLost("worker closed before replying")) }
        guard let reply, !faults.dropsReplies else { return nil }
        return .success(reply)
    }

    /// Decides the outcome when the exchange does not: deadline, close, server gone, cancellation.
    private func watch(deadline: C.Instant, timeout: Duration) async -> Result<[UInt8], TransportError>? {
        let clock = network.clock
        let server = network.server(at: address)
        while true {
            if isClosed.withLock({ $0 }) { return .failure(.closed) }
            if let server, server.isClosed { return .failure(.connectionLost("worker closed before replying")) }
            let now = clock.now
            if now >= deadline { return .failure(.timedOut(after: timeout)) }
            let step = min(network.pollInterval, now.duration(to: deadline))
            do {
                try await clock.sleep(until: now.advanced(by: step), tolerance: nil)
            } catch {
                return .failure(.cancelled)
            }
        }
    }
}

/// Resumes one continuation with the first outcome offered; later offers are ignored, and the
/// racing tasks are cancelled once there is a winner.
private final class FirstOutcome: Sendable {
    typealias Outcome = Result<[UInt8], TransportError>

    private struct State {
        var continuation: CheckedContinuation<Outcome, Never>?
        var outcome: Outcome?
        var tasks: [Task<Void, Never>] = []
    }

    private let state = Locked(State())

    /// Installs the continuation, resuming it at once if an outcome (e.g. cancellation) came first.
    func install(_ continuation: CheckedContinuation<Outcome, Never>) {
        let ready = state.withLock { state -> Outcome? in
            if let outcome = state.outcome { return outcome }
            state.continuation = continuation
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    /// Keeps `task` to cancel when the race is decided (at once if it already is).
    func track(_ task: Task<Void, Never>) {
        let decided = state.withLock { state -> Bool in
            if state.outcome != nil { return true }
            state.tasks.append(task)
            return false
        }
        if decided { task.cancel() }
    }

    /// Offers an outcome; `nil` means "nothing to report" and is ignored.
    func offer(_ outcome: Outcome?) {
        guard let outcome else { return }
        let (continuation, tasks) = state.withLock {
            state -> (CheckedContinuation<Outcome, Never>?, [Task<Void, Never>]) in
            if state.outcome != nil { return (nil, []) }
            state.outcome = outcome
            defer {
                state.continuation = nil
                state.tasks = []
            }
            return (state.continuation, state.tasks)
        }
        continuation?.resume(returning: outcome)
        for task in tasks { task.cancel() }
    }
}
