import CNNG
import Foundation

/// The coordinator's REQ socket to one worker (nng_req(7)), with async/await requests.
///
/// * The dialer starts non-blocking (NNG_FLAG_NONBLOCK, nng_dialer_start(3)): NNG keeps
///   redialing in the background, so a worker that is not up yet, or restarts, is picked up
///   without any action here; a request sent meanwhile waits for the connection until its
///   deadline.
/// * Every request runs on its own REQ context (nng_ctx(5)), so requests may overlap, and a
///   cancelled one cannot disturb the next: REQ matches replies by a fresh request id, and once
///   a context's receive is aborted or the context closed, a late reply to it is discarded
///   (nng_req(7), "a new request ... any reply to the old request is discarded").
/// * NNG_OPT_REQ_RESENDTIME is infinite: NNG never repeats a request on its own, so a worker
///   never drafts the same round twice. The flip side (observed with nng 1.5.2): when the
///   connection carrying a request drops — the worker restarts, or closes the connection because
///   the request exceeded its receive limit — the request fails at once with `.connectionLost`
///   instead of being resent; the next request uses the new connection.
public final class NNGRequestClient: DraftTransport {
    public let address: TransportAddress
    public let options: NNGClientOptions
    private let socket: nng_socket
    /// Whether `close()` was called, the REQ contexts of the requests in flight (by id) and how many requests
    /// have not finished (released their aio) yet.
    private struct State {
        var closed = false
        var contexts: [UInt32: nng_ctx] = [:]
        var active = 0
    }
    private let state = Locked(State())

    /// Opens a REQ socket and starts dialing `address` in the background. Does not wait for the
    /// peer. Throws for a malformed address or bad TLS settings.
    public init(dialing address: TransportAddress, options: NNGClientOptions = .init()) throws(TransportError) {
        guard options.receiveLimit > 0, options.receiveLimit <= Int.max - spHeaderHeadroom else {
            throw .invalidConfiguration("receiveLimit must be positive and below Int.max - 64")
        }
        self.address = address
        self.options = options
        var socket = nng_socket()
        try check(nng_req0_open(&socket))
        self.socket = socket
        do {
            try Self.configure(socket: socket, address: address, options: options)
        } catch {
            nng_close(socket)
            throw error
        }
    }

    /// Convenience: parses `url` first.
    public convenience init(dialing url: String, options: NNGClientOptions = .init()) throws(TransportError) {
        try self.init(dialing: TransportAddress(url), options: options)
    }

    deinit { close() }

    private static func configure(
        socket: nng_socket, address: TransportAddress, options: NNGClientOptions
    ) throws(TransportError) {
        let infinite = chorus_nng_duration_infinite()
        try check(nng_socket_set_ms(socket, chorus_nng_opt_req_resendtime(), infinite))
        try check(nng_socket_set_size(socket, chorus_nng_opt_recvmaxsz(), options.receiveLimit + spHeaderHeadroom))
        try check(nng_socket_set_ms(socket, chorus_nng_opt_reconnmint(), options.reconnectMinimum.nngMilliseconds))
        try check(nng_socket_set_ms(socket, chorus_nng_opt_reconnmaxt(), options.reconnectMaximum.nngMilliseconds))

        var dialer = nng_dialer()
        try check(nng_dialer_create(&dialer, socket, address.url), address: address.url)
        try check(nng_dialer_set_ms(dialer, chorus_nng_opt_reconnmint(), options.reconnectMinimum.nngMilliseconds))
        try check(nng_dialer_set_ms(dialer, chorus_nng_opt_reconnmaxt(), options.reconnectMaximum.nngMilliseconds))
        try check(nng_dialer_set_size(dialer, chorus_nng_opt_recvmaxsz(), options.receiveLimit + spHeaderHeadroom))
        try NNGTLSConfiguration.attach(options.tls, for: address, server: false) {
            nng_dialer_set_ptr(dialer, chorus_nng_opt_tls_config(), $0)
        }
        // Non-blocking: NNG connects (and reconnects) in the background (nng_dialer_start(3)).
        try check(nng_dialer_start(dialer, chorus_nng_flag_nonblock()), address: address.url)
    }

    public func request(_ message: [UInt8], timeout: Duration) async throws(TransportError) -> [UInt8] {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        if state.withLock({ $0.closed }) { throw .closed }
        if Task.isCancelled { throw .cancelled }
        if let limit = options.sendLimit, message.count > limit {
            throw .messageTooLarge(size: message.count, limit: limit)
        }

        var context = nng_ctx()
        try check(nng_ctx_open(&context, socket))
        let id = UInt32(bitPattern: nng_ctx_id(context))
        let registered = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.contexts[id] = context
            s.active += 1
            return true
        }
        guard registered else {
            nng_ctx_close(context)
            throw .closed
        }
        defer {
            // Whoever takes the context out of the table closes it: this request, or `close()` (which aborts
            // the operation in progress). `active` drops only now, after the aio is gone (see `exchange`).
            let mine = state.withLock { s -> Bool in
                s.active -= 1
                return s.contexts.removeValue(forKey: id) != nil
            }
            if mine { nng_ctx_close(context) }
        }
        return try await exchange(message, on: context, deadline: deadline, timeout: timeout)
    }

    /// Sends `message` on `context` and waits for the reply. The aio lives and dies inside this call, so when
    /// it returns NNG holds no operation of the request.
    private func exchange(_ message: [UInt8], on context: nng_ctx, deadline: ContinuousClock.Instant, timeout: Duration)
        async throws(TransportError) -> [UInt8]
    {
        let clock = ContinuousClock()
        // Contexts copy the socket's resend time when opened; set it again to be explicit.
        try check(nng_ctx_set_ms(context, chorus_nng_opt_req_resendtime(), chorus_nng_duration_infinite()))

        let aio = try AsyncAIO()
        let request = try NNGMessage.make(message)
        nng_aio_set_msg(aio.aio, request)
        let sendTimeout = (deadline - clock.now).nngMilliseconds
        let sent = await aio.run(timeout: sendTimeout) { nng_ctx_send(context, $0) }
        if sent != 0 {
            // On failure the message stays with the caller (nng_ctx_send(3)).
            if let unsent = nng_aio_get_msg(aio.aio) { nng_msg_free(unsent) }
            nng_aio_set_msg(aio.aio, nil)
            throw failure(sent, timeout: timeout)
        }

        let remaining = deadline - clock.now
        if remaining <= .zero { throw .timedOut(after: timeout) }
        let received = await aio.run(timeout: remaining.nngMilliseconds) { nng_ctx_recv(context, $0) }
        if received != 0 { throw failure(received, timeout: timeout) }
        guard let reply = nng_aio_get_msg(aio.aio) else {
            throw .nng(code: -1, message: "receive completed without a message")
        }
        nng_aio_set_msg(aio.aio, nil)
        return NNGMessage.consume(reply)
    }

    /// The error for a failed operation. A local `close()` wins over what NNG reports: closing
    /// the socket first closes its connections, and with resending disabled nng 1.5.2's REQ fails
    /// a request whose connection closed with NNG_ECONNRESET, which would read as a network fault.
    private func failure(_ code: Int32, timeout: Duration) -> TransportError {
        if state.withLock({ $0.closed }) { return .closed }
        return TransportError.fromNNG(code, address: address.url, timeout: timeout)
    }

    /// Closes the socket (nng_close(3)): requests in flight complete with `.closed`.
    ///
    /// In order: the contexts of the requests in flight are closed first (each aborts its operation with
    /// NNG_ECLOSED, nng_ctx_close(3)); the socket is closed once those requests have finished and released their
    /// aios, so nng never tears a socket down under operations still completing on it (nng 1.5.2 was seen to
    /// panic, "pthread_mutex_unlock: Invalid argument", closing a socket with requests in flight).
    ///
    /// nng_close itself runs through ``NNGSocketClose`` (it can block forever in nng 1.5.2): the caller waits for
    /// it at most ``NNGSocketClose/wait`` when no request was in flight, not at all otherwise (the requests finish
    /// on the caller's executor, which must not be blocked).
    public func close() {
        let closing = state.withLock { s -> (open: Bool, contexts: [nng_ctx]) in
            defer {
                s.closed = true
                s.contexts = [:]
            }
            return (!s.closed, Array(s.contexts.values))
        }
        guard closing.open else { return }
        for context in closing.contexts { nng_ctx_close(context) }
        let state = state
        NNGSocketClose.close(socket, waits: closing.contexts.isEmpty) {
            let giveUp = DispatchTime.now() + NNGSocketClose.wait
            while state.withLock({ $0.active }) > 0, DispatchTime.now() < giveUp { usleep(1000) }
        }
    }
}

/// Dials workers over NNG: the production `DraftTransportConnector`.
public struct NNGConnector: DraftTransportConnector {
    public var options: NNGClientOptions

    public init(options: NNGClientOptions = .init()) {
        self.options = options
    }

    public func connect(to address: TransportAddress) throws(TransportError) -> any DraftTransport {
        try NNGRequestClient(dialing: address, options: options)
    }
}
