/// An in-memory stand-in for the network: workers register servers under addresses, and the
/// coordinator connects to them through the same `DraftTransportConnector` / `DraftTransport`
/// interface it uses for NNG — the `EmbeddedChannel` of this seam.
///
/// The failure behaviour mirrors what `NNGRequestClient` does over nng 1.5.2, so coordinator
/// tests see the errors production will see:
/// * no server at the address yet: the request waits for one, then fails with `.timedOut`;
/// * the server closes during a request, or the request exceeds its receive limit:
///   `.connectionLost`;
/// * the handler returns `nil` (or `dropsReplies`): `.timedOut` at the deadline;
/// * the calling task is cancelled: `.cancelled`; the client is closed: `.closed`.
///
/// Time is a parameter: pass any `Clock` whose duration is `Duration`; waiting for an absent
/// server polls it every `pollInterval` on that clock.
public final class InProcessNetwork<C: Clock>: DraftTransportConnector where C.Duration == Duration {
    let clock: C
    let pollInterval: Duration
    private let servers = Locked<[TransportAddress: InProcessServer]>([:])

    public init(clock: C, pollInterval: Duration = .milliseconds(2)) {
        self.clock = clock
        self.pollInterval = pollInterval
    }

    /// Registers a worker at `address`. Throws `.addressInUse` if one is registered there.
    public func listen(
        on address: TransportAddress, receiveLimit: Int = 64 << 20, faults: InProcessFaults = .none,
        handler: @escaping RequestHandler
    ) throws(TransportError) -> InProcessServer {
        let server = InProcessServer(
            address: address, receiveLimit: receiveLimit, faults: faults, handler: handler,
            onClose: { [weak self] server in self?.remove(server) })
        let added = servers.withLock { servers -> Bool in
            if servers[address] != nil { return false }
            servers[address] = server
            return true
        }
        guard added else { throw .addressInUse(address.url) }
        return server
    }

    /// Convenience: parses `url` first.
    public func listen(
        on url: String, receiveLimit: Int = 64 << 20, faults: InProcessFaults = .none,
        handler: @escaping RequestHandler
    ) throws(TransportError) -> InProcessServer {
        try listen(on: TransportAddress(url), receiveLimit: receiveLimit, faults: faults, handler: handler)
    }

    public func connect(to address: TransportAddress) throws(TransportError) -> any DraftTransport {
        client(for: address)
    }

    /// A client for `address`; like an NNG dial, it does not need the server to exist yet.
    public func client(for address: TransportAddress) -> InProcessClient<C> {
        InProcessClient(address: address, network: self)
    }

    /// The server registered at `address` now, if any.
    func server(at address: TransportAddress) -> InProcessServer? {
        servers.withLock { $0[address] }
    }

    private func remove(_ server: InProcessServer) {
        servers.withLock { servers in
            if servers[server.address] === server { servers[server.address] = nil }
        }
    }
}

extension InProcessNetwork where C == ContinuousClock {
    /// A network on the real monotonic clock.
    public convenience init() {
        self.init(clock: ContinuousClock())
    }
}

/// A worker registered on an `InProcessNetwork`.
public final class InProcessServer: Sendable {
    public let address: TransportAddress
    public let receiveLimit: Int
    let handler: RequestHandler
    private let state: Locked<State>
    private let onClose: @Sendable (InProcessServer) -> Void

    private struct State {
        var faults: InProcessFaults
        var closed = false
        var requestsReceived = 0
    }

    init(
        address: TransportAddress, receiveLimit: Int, faults: InProcessFaults, handler: @escaping RequestHandler,
        onClose: @escaping @Sendable (InProcessServer) -> Void
    ) {
        self.address = address
        self.receiveLimit = receiveLimit
        self.handler = handler
        self.state = Locked(State(faults: faults))
        self.onClose = onClose
    }

    /// The faults applied to requests that arrive from now on.
    public var faults: InProcessFaults {
        get { state.withLock { $0.faults } }
        set { state.withLock { $0.faults = newValue } }
    }

    /// How many requests reached this worker (including ones failed by injected faults).
    public var requestsReceived: Int { state.withLock { $0.requestsReceived } }

    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Unregisters the address; requests in flight fail with `.connectionLost`. Idempotent.
    public func close() {
        let wasOpen = state.withLock { state -> Bool in
            defer { state.closed = true }
            return !state.closed
        }
        if wasOpen { onClose(self) }
    }

    /// Called by a client for an accepted request: counts it and returns the current faults.
    func admit() -> InProcessFaults {
        state.withLock { state in
            state.requestsReceived += 1
            return state.faults
        }
    }
}
