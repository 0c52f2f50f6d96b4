/// Everything that can go wrong moving bytes between the coordinator and a worker.
///
/// Each case carries what a person needs to act on it, and `description` says what to do.
public enum TransportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Another socket already listens on `address` (NNG_EADDRINUSE).
    case addressInUse(String)
    /// `address` is not a URL this transport can dial or listen on.
    case invalidAddress(String, reason: String)
    /// No reply arrived before the request's deadline (NNG_ETIMEDOUT).
    case timedOut(after: Duration)
    /// The calling task was cancelled while the request was in flight (NNG_ECANCELED).
    case cancelled
    /// Options that cannot work, e.g. a non-positive receive limit; the message names the option.
    case invalidConfiguration(String)
    /// The client or server was closed, locally, before or during the operation (NNG_ECLOSED).
    case closed
    /// A request was larger than the client's configured send limit; nothing was sent.
    case messageTooLarge(size: Int, limit: Int)
    /// The connection carrying the request dropped before a reply came back.
    case connectionLost(String)
    /// TLS configuration or handshake failed: unreadable certificate, key or CA file, bad PEM.
    case tls(String)
    /// Any other NNG error: its numeric code and `nng_strerror` text.
    case nng(code: Int32, message: String)
    /// The reply failed the cluster key's check (``MessageAuthenticator``) and was dropped.
    case unauthenticated(AuthenticationFailure)

    public var description: String {
        switch self {
        case .addressInUse(let address):
            return "address \(address) is already in use: stop the other listener or choose another port"
        case .invalidAddress(let address, let reason):
            return "invalid transport address '\(address)': \(reason) "
                + "(expected tcp://host:port, tls+tcp://host:port, ipc:///path or inproc://name)"
        case .timedOut(let after):
            return "no reply within \(after): the peer is slow, down or unreachable; "
                + "check that it is running and listening, or raise the deadline"
        case .cancelled:
            return "request cancelled by the caller before a reply arrived"
        case .invalidConfiguration(let detail):
            return "invalid transport configuration: \(detail)"
        case .closed:
            return "transport is closed: create a new client or server to send more requests"
        case .messageTooLarge(let size, let limit):
            return "message of \(size) bytes exceeds the limit of \(limit) bytes: "
                + "raise the receive limit on both ends or send less"
        case .connectionLost(let detail):
            return "connection lost before the reply arrived (\(detail)): the peer may have restarted; retry"
        case .tls(let detail):
            return "TLS error: \(detail); check the certificate, key and CA files and that both ends trust the same CA"
        case .nng(let code, let message):
            return "nng error \(code): \(message)"
        case .unauthenticated(let failure):
            return "reply dropped: \(failure)"
        }
    }
}
