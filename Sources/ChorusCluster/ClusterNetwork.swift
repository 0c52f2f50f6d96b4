import ChorusTransport

/// Where the cluster's sockets come from: NNG in production, an in-process network in tests. The
/// services (``WorkerService``, ``CoordinatorService``, ``CoordinatorClient``) take one, so the same
/// code runs over both and the command line never picks a transport itself.
public struct ClusterNetwork: Sendable {
    /// A listening endpoint: the address actually bound (a port of 0 resolved) and how to stop it.
    public struct Listener: Sendable {
        public let address: TransportAddress
        let stop: @Sendable () -> Void

        public func close() { stop() }
    }

    /// Dials peers (workers for the coordinator, the coordinator for workers and clients).
    public let connector: any DraftTransportConnector
    private let listener:
        @Sendable (TransportAddress, _ concurrency: Int, _ handler: @escaping RequestHandler) throws -> Listener

    /// NNG REQ/REP, with mutual TLS on `tls+tcp://` addresses when `tls` is given.
    public static func nng(tls: TLSConfiguration? = nil) -> ClusterNetwork {
        let settings = tls.map {
            TLSSettings(certificateFile: $0.certificate, keyFile: $0.key, caFile: $0.ca, requirePeerCertificate: true)
        }
        return ClusterNetwork(connector: NNGConnector(options: NNGClientOptions(tls: settings))) {
            address, concurrency, handler in
            let server = try NNGReplyServer(
                listeningOn: address, options: NNGServerOptions(concurrency: concurrency, tls: settings),
                handler: handler)
            return Listener(address: server.address, stop: { server.close() })
        }
    }

    /// An in-process network (tests): the same services without sockets.
    public static func inProcess<C: Clock>(_ network: InProcessNetwork<C>) -> ClusterNetwork
    where C.Duration == Duration {
        ClusterNetwork(connector: network) { address, _, handler in
            let server = try network.listen(on: address, handler: handler)
            return Listener(address: server.address, stop: { server.close() })
        }
    }

    init(
        connector: any DraftTransportConnector,
        listener: @escaping @Sendable (TransportAddress, Int, @escaping RequestHandler) throws -> Listener
    ) {
        self.connector = connector
        self.listener = listener
    }

    /// Listens on `address` (`tcp://host:0`: a free port) and answers requests with `handler`,
    /// `concurrency` at a time.
    public func listen(on address: String, concurrency: Int = 8, handler: @escaping RequestHandler) throws -> Listener {
        try listener(TransportAddress(address), concurrency, handler)
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
