/// Faults an in-process worker injects into every request it receives, to test the
/// coordinator's deadlines and error handling without sockets.
public struct InProcessFaults: Sendable, Hashable {
    /// Added before the handler runs: a slow worker or a slow link.
    public var delay: Duration
    /// If set, the request fails with this error (after `delay`) and the handler is not called.
    public var failure: TransportError?
    /// If `true`, the handler runs but its reply is lost: the client times out.
    public var dropsReplies: Bool

    public init(delay: Duration = .zero, failure: TransportError? = nil, dropsReplies: Bool = false) {
        self.delay = delay
        self.failure = failure
        self.dropsReplies = dropsReplies
    }

    /// A well-behaved worker.
    public static let none = InProcessFaults()
}
