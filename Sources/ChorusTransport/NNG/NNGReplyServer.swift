import CNNG

/// A worker's REP socket (nng_rep(7)): listens on an address and answers requests with a handler.
///
/// `options.concurrency` REP contexts each loop receive → handler → send, so that many requests
/// are served at once (several coordinators, or overlapping rounds). Malformed traffic — bad SP
/// headers, random bytes, messages over the receive limit — is dropped by NNG at the transport,
/// which closes that one connection; the contexts never see it and keep serving.
public final class NNGReplyServer: Sendable {
    /// The address actually listened on: for `tcp://host:0` the port the system chose.
    public let address: TransportAddress
    public let options: NNGServerOptions
    private let socket: nng_socket
    private let isClosed = Locked(false)
    private let loops = Locked<[Task<Void, Never>]>([])

    /// Opens a REP socket, listens on `address` and starts serving with `handler`.
    ///
    /// - Throws: `.addressInUse` when another socket listens there, `.invalidAddress`, `.tls`.
    public init(
        listeningOn address: TransportAddress, options: NNGServerOptions = .init(),
        handler: @escaping RequestHandler
    ) throws(TransportError) {
        guard options.receiveLimit > 0, options.receiveLimit <= Int.max - spHeaderHeadroom, options.concurrency > 0
        else {
            throw .invalidConfiguration("receiveLimit (below Int.max - 64) and concurrency must be positive")
        }
        self.options = options
        var socket = nng_socket()
        try check(nng_rep0_open(&socket))
        self.socket = socket
        var contexts: [nng_ctx] = []
        do {
            self.address = try Self.listen(socket: socket, address: address, options: options)
            for _ in 0..<options.concurrency {
                var context = nng_ctx()
                try check(nng_ctx_open(&context, socket))
                contexts.append(context)
            }
        } catch {
            nng_close(socket)
            throw error
        }
        let sendTimeout = options.sendTimeout.nngMilliseconds
        let tasks = contexts.map { context in
            Task.detached { await Self.serve(context: context, sendTimeout: sendTimeout, handler: handler) }
        }
        loops.withLock { $0 = tasks }
    }

    /// Convenience: parses `url` first.
    public convenience init(
        listeningOn url: String, options: NNGServerOptions = .init(), handler: @escaping RequestHandler
    ) throws(TransportError) {
        try self.init(listeningOn: TransportAddress(url), options: options, handler: handler)
    }

    deinit { close() }

    /// Creates, configures and starts the listener; returns the bound address.
    private static func listen(
        socket: nng_socket, address: TransportAddress, options: NNGServerOptions
    ) throws(TransportError) -> TransportAddress {
        try check(nng_socket_set_size(socket, chorus_nng_opt_recvmaxsz(), options.receiveLimit + spHeaderHeadroom))
        var listener = nng_listener()
        try check(nng_listener_create(&listener, socket, address.url), address: address.url)
        try check(nng_listener_set_size(listener, chorus_nng_opt_recvmaxsz(), options.receiveLimit + spHeaderHeadroom))
        try NNGTLSConfiguration.attach(options.tls, for: address, server: true) {
            nng_listener_set_ptr(listener, chorus_nng_opt_tls_config(), $0)
        }
        try check(nng_listener_start(listener, 0), address: address.url)
        guard address.port == 0 else { return address }
        // NNG_OPT_TCP_BOUND_PORT reports the port chosen for a ":0" listener (nng_tcp(7)).
        var port: Int32 = 0
        try check(nng_listener_get_int(listener, chorus_nng_opt_tcp_bound_port(), &port))
        return address.withPort(Int(port)) ?? address
    }

    /// One context's loop. Ends when the socket closes.
    private static func serve(context: nng_ctx, sendTimeout: nng_duration, handler: RequestHandler) async {
        defer { nng_ctx_close(context) }
        guard let aio = try? AsyncAIO() else { return }
        let forever = chorus_nng_duration_infinite()
        while true {
            let received = await aio.run(timeout: forever) { nng_ctx_recv(context, $0) }
            if received == NNGCode.closed || received == NNGCode.cancelled { return }
            guard received == 0, let message = nng_aio_get_msg(aio.aio) else {
                // Transient failure (e.g. out of memory): back off briefly rather than spin.
                try? await Task.sleep(for: .milliseconds(1))
                continue
            }
            nng_aio_set_msg(aio.aio, nil)
            let pipe = nng_pipe_id(nng_msg_get_pipe(message))
            let request = ReceivedRequest(
                body: NNGMessage.consume(message), connectionID: pipe > 0 ? UInt32(pipe) : 0)

            // nil: send nothing. The next receive on this REP context abandons the request.
            guard let replyBytes = await handler(request) else { continue }
            guard let reply = try? NNGMessage.make(replyBytes) else { continue }
            nng_aio_set_msg(aio.aio, reply)
            let sent = await aio.run(timeout: sendTimeout) { nng_ctx_send(context, $0) }
            if sent != 0 {
                // The reply was not taken (peer gone, timeout, closed): it is still ours to free.
                if let unsent = nng_aio_get_msg(aio.aio) { nng_msg_free(unsent) }
                nng_aio_set_msg(aio.aio, nil)
                if sent == NNGCode.closed { return }
            }
        }
    }

    /// Stops listening and closes all connections (nng_close(3)). Handlers already running finish,
    /// but their replies are dropped. Idempotent; the address is free again when this returns, unless nng_close
    /// hangs (it can in nng 1.5.2: ``NNGSocketClose``, waited for at most ``NNGSocketClose/wait``).
    public func close() {
        let wasOpen = isClosed.withLock { closed -> Bool in
            defer { closed = true }
            return !closed
        }
        if wasOpen { NNGSocketClose.close(socket, waits: true) }
    }

    /// Closes the server and waits until every context loop, including handlers in progress,
    /// has finished.
    public func shutdown() async {
        close()
        for task in loops.withLock({ $0 }) { await task.value }
    }
}
