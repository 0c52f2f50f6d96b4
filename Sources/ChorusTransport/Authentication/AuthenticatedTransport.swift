/// A `DraftTransportConnector` whose transports seal every request and open every reply with a
/// ``MessageAuthenticator``: a reply that fails the check is dropped and the request fails with
/// `.unauthenticated`, which callers count as a miss, like a timeout.
public struct AuthenticatedConnector: DraftTransportConnector {
    public let inner: any DraftTransportConnector
    public let authenticator: MessageAuthenticator

    public init(wrapping inner: any DraftTransportConnector, authenticator: MessageAuthenticator) {
        self.inner = inner
        self.authenticator = authenticator
    }

    public func connect(to address: TransportAddress) throws(TransportError) -> any DraftTransport {
        AuthenticatedTransport(inner: try inner.connect(to: address), authenticator: authenticator)
    }
}

/// One worker (or coordinator) reached through ``AuthenticatedConnector``.
public struct AuthenticatedTransport: DraftTransport {
    let inner: any DraftTransport
    let authenticator: MessageAuthenticator

    public var address: TransportAddress { inner.address }

    public func request(_ message: [UInt8], timeout: Duration) async throws(TransportError) -> [UInt8] {
        let (sealed, nonce) = authenticator.sealRequest(message)
        let reply = try await inner.request(sealed, timeout: timeout)
        switch authenticator.openReply(reply, to: nonce) {
        case .success(let body):
            return body
        case .failure(let failure):
            authenticator.countRejected(request: false)
            throw .unauthenticated(failure)
        }
    }

    public func close() { inner.close() }
}

extension MessageAuthenticator {
    /// Wraps `inner` so that its transports authenticate every exchange.
    public func connector(wrapping inner: any DraftTransportConnector) -> AuthenticatedConnector {
        AuthenticatedConnector(wrapping: inner, authenticator: self)
    }

    /// A server's handler behind the key: a request that fails the check (no envelope, bad tag, stale,
    /// replayed) never reaches `handler` and is reported to `onReject`, which may return an unsealed
    /// refusal to send back (nil: no reply, and the client sees a timeout as for a lost message); the
    /// server keeps serving. Replies are sealed to the request's nonce.
    public func guarding(
        _ handler: @escaping RequestHandler,
        onReject: @escaping @Sendable (AuthenticationFailure, ReceivedRequest) -> [UInt8]? = { _, _ in nil }
    ) -> RequestHandler {
        { request in
            switch openRequest(request.body) {
            case .failure(let failure):
                countRejected(request: true)
                return onReject(failure, request)
            case .success(let (body, nonce)):
                var inner = request
                inner.body = body
                guard let reply = await handler(inner) else { return nil }
                return sealReply(reply, to: nonce)
            }
        }
    }
}
