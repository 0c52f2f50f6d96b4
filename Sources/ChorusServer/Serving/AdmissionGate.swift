/// Admission control: at most `maxActive` generations run at once and at most `maxQueued` wait for a
/// slot, in arrival order. A request beyond both is refused at once (429 with `Retry-After`), so a
/// client is never left hanging; one that waits longer than `queueTimeout` gets 503.
public actor AdmissionGate {
    public let maxActive: Int
    public let maxQueued: Int
    public let queueTimeout: Duration
    public private(set) var active = 0
    var waiters: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
    var nextWaiter = 0

    /// - Parameters: maxActive ≥ 1 concurrent generations; maxQueued ≥ 0 waiting requests.
    public init(maxActive: Int, maxQueued: Int, queueTimeout: Duration = .seconds(60)) {
        precondition(maxActive >= 1 && maxQueued >= 0, "admission limits: maxActive ≥ 1, maxQueued ≥ 0")
        self.maxActive = maxActive
        self.maxQueued = maxQueued
        self.queueTimeout = queueTimeout
    }

    public var queued: Int { waiters.count }

    /// A slot for one generation; call ``release()`` exactly once when it ends.
    /// - Throws: ``ServerError`` 429 (`queue_full`) when the queue is full, 503 (`queue_timeout`) after
    ///   waiting `queueTimeout`, both with `Retry-After`.
    public func acquire() async throws(ServerError) {
        if active < maxActive, waiters.isEmpty {
            active += 1
            return
        }
        guard waiters.count < maxQueued else {
            throw ServerError(
                status: 429, type: "rate_limit_error", code: "queue_full",
                message: "the server is busy: \(active) generation(s) running (the limit) and \(waiters.count) "
                    + "waiting (the queue's limit); retry later",
                retryAfterSeconds: 1)
        }
        nextWaiter += 1
        let id = nextWaiter
        let timeout = queueTimeout
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.expire(id)
        }
        let admitted = await withCheckedContinuation { waiters.append((id, $0)) }
        timer.cancel()
        guard admitted else {
            throw ServerError(
                status: 503, type: "server_error", code: "queue_timeout",
                message: "waited \(timeout) for a free generation slot; the server is overloaded, retry later",
                retryAfterSeconds: 5)
        }
    }

    /// Frees a slot: the longest-waiting request takes it.
    public func release() {
        if waiters.isEmpty {
            active = max(0, active - 1)
        } else {
            waiters.removeFirst().continuation.resume(returning: true)
        }
    }

    func expire(_ id: Int) {
        guard let i = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: i).continuation.resume(returning: false)
    }
}
