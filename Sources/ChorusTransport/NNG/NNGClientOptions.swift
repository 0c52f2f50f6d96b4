/// Settings for `NNGRequestClient`.
public struct NNGClientOptions: Sendable, Hashable {
    /// Largest reply body accepted, in bytes (NNG_OPT_RECVMAXSZ, plus 64 bytes for the protocol
    /// header). A larger reply makes NNG drop the connection, and the request fails with
    /// `.connectionLost`. Default 64 MiB.
    public var receiveLimit: Int
    /// First delay before redialing a worker that is down or went away (NNG_OPT_RECONNMINT).
    public var reconnectMinimum: Duration
    /// The redial delay doubles after each failure up to this bound (NNG_OPT_RECONNMAXT).
    public var reconnectMaximum: Duration
    /// Largest request sent, in bytes; a larger one fails at once with `.messageTooLarge`
    /// instead of being sent. Set it to the workers' receive limit: a worker drops the connection
    /// on an oversized request, which would otherwise surface as `.connectionLost`. `nil`: no check.
    public var sendLimit: Int?
    /// Certificates for `tls+tcp://` addresses; required for them, rejected for the others.
    public var tls: TLSSettings?

    public init(
        receiveLimit: Int = 64 << 20, sendLimit: Int? = nil, reconnectMinimum: Duration = .milliseconds(50),
        reconnectMaximum: Duration = .seconds(1), tls: TLSSettings? = nil
    ) {
        self.receiveLimit = receiveLimit
        self.sendLimit = sendLimit
        self.reconnectMinimum = reconnectMinimum
        self.reconnectMaximum = reconnectMaximum
        self.tls = tls
    }
}
