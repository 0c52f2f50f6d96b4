/// The coordinator's connection to ONE draft worker: send request bytes, get reply bytes.
///
/// The coordinator holds one `DraftTransport` per worker and fans a round out with a task group:
///
///     try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
///         for (index, worker) in workers.enumerated() {
///             group.addTask { (index, try await worker.request(bytes, timeout: .milliseconds(50))) }
///         }
///         // take replies; after K replies or the deadline, group.cancelAll() cancels the rest
///     }
///
/// Cancelling the calling task cancels the request in flight (for NNG: `nng_aio_cancel`), and the
/// same transport is ready for the next round at once: a cancelled or timed-out request never
/// delivers its late reply to a later request.
///
/// Implementations: `NNGRequestClient` (REQ socket over real NNG) and `InProcessClient`
/// (in-memory, for coordinator tests).
public protocol DraftTransport: Sendable {
    /// The worker this transport talks to.
    var address: TransportAddress { get }

    /// Sends `message` and waits for its reply, at most `timeout` in total (connection wait,
    /// send and reply). Safe to call concurrently; each call is an independent request.
    ///
    /// - Throws: `.timedOut` at the deadline, `.cancelled` when the task is cancelled, `.closed`
    ///   after `close()`, and the other `TransportError`s for configuration and network faults.
    func request(_ message: [UInt8], timeout: Duration) async throws(TransportError) -> [UInt8]

    /// Stops the transport: requests in flight fail with `.closed` and later ones throw `.closed`.
    /// Idempotent.
    func close()
}

/// Creates `DraftTransport`s: the seam through which the coordinator dials its workers.
public protocol DraftTransportConnector: Sendable {
    /// Returns a transport for `address` without waiting for the peer: a worker that is not up
    /// yet is fine, requests wait for it (up to their deadline).
    func connect(to address: TransportAddress) throws(TransportError) -> any DraftTransport
}

/// One request as a worker's handler sees it.
public struct ReceivedRequest: Sendable {
    /// The request bytes exactly as the client sent them.
    public var body: [UInt8]
    /// Identifies the connection the request came on (the NNG pipe id; stable per connection,
    /// changes when the client reconnects). `0` when unknown.
    public var connectionID: UInt32

    public init(body: [UInt8], connectionID: UInt32 = 0) {
        self.body = body
        self.connectionID = connectionID
    }
}

/// A worker's request handler: returns the reply bytes, or `nil` to send nothing (the client then
/// sees `.timedOut` at its deadline).
public typealias RequestHandler = @Sendable (ReceivedRequest) async -> [UInt8]?
