/// Settings for `NNGReplyServer`.
public struct NNGServerOptions: Sendable, Hashable {
    /// Largest request body accepted, in bytes (NNG_OPT_RECVMAXSZ, plus 64 bytes for the
    /// protocol header). NNG closes a connection that announces a larger message; the server
    /// itself keeps serving. Default 64 MiB.
    public var receiveLimit: Int
    /// Requests handled at the same time: one REP context (nng_ctx(5)) per slot, each running a
    /// receive → handle → send loop. Default 8.
    public var concurrency: Int
    /// How long sending one reply may wait for a slow peer before the reply is dropped.
    public var sendTimeout: Duration
    /// Certificates for `tls+tcp://` addresses; required for them, rejected for the others.
    public var tls: TLSSettings?

    public init(
        receiveLimit: Int = 64 << 20, concurrency: Int = 8, sendTimeout: Duration = .seconds(5),
        tls: TLSSettings? = nil
    ) {
        self.receiveLimit = receiveLimit
        self.concurrency = concurrency
        self.sendTimeout = sendTimeout
        self.tls = tls
    }
}
