import ChorusTransport
import ChorusWire
import Synchronization

/// Where the cluster's sockets come from: NNG in production, an in-process network in tests. The
/// services (``WorkerService``, ``CoordinatorService``, ``CoordinatorClient``) take one, so the same
/// code runs over both and the command line never picks a transport itself.
///
/// The network also applies the cluster's ``ClusterSecurity``: it refuses to listen on or dial an
/// address others can reach without protection, and with a key it seals every request and reply
/// (``MessageAuthenticator``) — on NNG and in-process alike.
public struct ClusterNetwork: Sendable {
    /// A listening endpoint: the address actually bound (a port of 0 resolved) and how to stop it.
    public struct Listener: Sendable {
        public let address: TransportAddress
        let stop: @Sendable () -> Void

        public func close() { stop() }
    }

    /// Dials peers (workers for the coordinator, the coordinator for workers and clients): checked
    /// against ``security`` and, with a key, authenticated.
    public let connector: any DraftTransportConnector
    public let security: ClusterSecurity
    /// Seals and opens messages when ``security`` has a key.
    public let authenticator: MessageAuthenticator?
    let log: ClusterLog
    private let listener:
        @Sendable (TransportAddress, _ concurrency: Int, _ handler: @escaping RequestHandler) throws -> Listener

    /// NNG REQ/REP, with mutual TLS on `tls+tcp://` addresses when `security.tls` is given, and the
    /// cluster key on every message when `security.key` is. `log` gets the (rate-limited) lines about
    /// refused requests.
    public static func nng(_ security: ClusterSecurity = ClusterSecurity(), log: ClusterLog? = nil) -> ClusterNetwork {
        let settings = security.tls.map {
            TLSSettings(certificateFile: $0.certificate, keyFile: $0.key, caFile: $0.ca, requirePeerCertificate: true)
        }
        return ClusterNetwork(
            security: security, log: log, connector: NNGConnector(options: NNGClientOptions(tls: settings))
        ) { address, concurrency, handler in
            let server = try NNGReplyServer(
                listeningOn: address, options: NNGServerOptions(concurrency: concurrency, tls: settings),
                handler: handler)
            return Listener(address: server.address, stop: { server.close() })
        }
    }

    /// NNG with mutual TLS on `tls+tcp://` addresses when `tls` is given.
    public static func nng(tls: TLSConfiguration?) -> ClusterNetwork { nng(ClusterSecurity(tls: tls)) }

    /// An in-process network (tests): the same services, and the same security, without sockets.
    public static func inProcess<C: Clock>(
        _ network: InProcessNetwork<C>, security: ClusterSecurity = ClusterSecurity(), log: ClusterLog? = nil
    ) -> ClusterNetwork where C.Duration == Duration {
        ClusterNetwork(security: security, log: log, connector: network) { address, _, handler in
            let server = try network.listen(on: address, handler: handler)
            return Listener(address: server.address, stop: { server.close() })
        }
    }

    init(
        security: ClusterSecurity, log: ClusterLog?, connector: any DraftTransportConnector,
        listener: @escaping @Sendable (TransportAddress, Int, @escaping RequestHandler) throws -> Listener
    ) {
        self.security = security
        self.log = log ?? ClusterLog(component: "auth")
        let authenticator = security.key.map { MessageAuthenticator(key: $0) }
        self.authenticator = authenticator
        let checked = CheckedConnector(inner: connector, security: security)
        self.connector = authenticator.map { $0.connector(wrapping: checked) } ?? checked
        self.listener = listener
    }

    /// Listens on `address` (`tcp://host:0`: a free port) and answers requests with `handler`,
    /// `concurrency` at a time. With a key, requests that fail authentication never reach `handler`:
    /// they are dropped (no reply; a plain Chorus message gets ``refusal(_:_:)``) and logged, at most one
    /// line per 10 s.
    ///
    /// - Throws: ``ClusterSecurityError/unprotected(address:use:)`` for an address others can reach
    ///   without a key, TLS or `insecure`; `TransportError`s from the transport.
    public func listen(on address: String, concurrency: Int = 8, handler: @escaping RequestHandler) throws -> Listener {
        let parsed = try TransportAddress(address)
        try security.check(parsed, .listen)
        guard let authenticator else { return try listener(parsed, concurrency, handler) }
        let limiter = RejectionLog(log: log, address: address)
        return try listener(
            parsed, concurrency,
            authenticator.guarding(handler) { failure, request in
                limiter.note(failure, connection: request.connectionID)
                return Self.refusal(failure, request)
            }
        )
    }

    /// The answer to a refused request: a plain Chorus message (a peer without the key) gets a plain error
    /// saying so, so that it fails at once with the reason instead of at its deadline; anything else
    /// (a wrong key, a replay, garbage) gets nothing. The refusal is unauthenticated, like the request.
    static func refusal(_ failure: AuthenticationFailure, _ request: ReceivedRequest) -> [UInt8]? {
        guard failure == .notAuthenticated, request.body.starts(with: WireMessage.magic) else { return nil }
        return WireMessage.error(
            ErrorReply(
                code: .invalidRequest,
                message: "this endpoint authenticates every message with the cluster key: give this process the "
                    + "same --key-file (or `key_file:`) as the cluster")
        ).encoded()
    }

    /// Checks an address (`tcp://HOST:PORT`, `tls+tcp://…`, `ipc://…`, `inproc://…`) without
    /// opening anything: for a command's `validate()`.
    public static func validate(address: String) throws {
        _ = try TransportAddress(address)
    }

    /// A client of the peer at `address`.
    public func connect(to address: String) throws -> any DraftTransport {
        try connector.connect(to: TransportAddress(address))
    }
}

/// Refuses to dial an address that ``ClusterSecurity`` does not allow (for example a worker that
/// registered with a public address at a coordinator without a key).
struct CheckedConnector: DraftTransportConnector {
    let inner: any DraftTransportConnector
    let security: ClusterSecurity

    func connect(to address: TransportAddress) throws(TransportError) -> any DraftTransport {
        do {
            try security.check(address, .dial)
        } catch {
            throw .invalidConfiguration("\(error)")
        }
        return try inner.connect(to: address)
    }
}

/// Logs refused requests at most once per `interval`, counting the ones in between, so a peer with
/// the wrong key (or a flood) cannot fill the log.
final class RejectionLog: Sendable {
    private struct State {
        var lastLine: ContinuousClock.Instant?
        var suppressed = 0
    }

    let log: ClusterLog
    let address: String
    let interval: Duration
    private let state = Mutex(State())

    init(log: ClusterLog, address: String, interval: Duration = .seconds(10)) {
        self.log = log
        self.address = address
        self.interval = interval
    }

    func note(_ failure: AuthenticationFailure, connection: UInt32) {
        let now = ContinuousClock.now
        let suppressed = state.withLock { state -> Int? in
            if let last = state.lastLine, now - last < interval {
                state.suppressed += 1
                return nil
            }
            defer { state.suppressed = 0 }
            state.lastLine = now
            return state.suppressed
        }
        guard let suppressed else { return }
        let more = suppressed > 0 ? " (\(suppressed) more refused since the last line)" : ""
        log.warning("dropped a request on \(address) (connection \(connection)): \(failure)\(more)")
    }
}
