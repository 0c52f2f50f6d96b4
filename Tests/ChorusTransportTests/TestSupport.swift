import ChorusTransport
import Testing

/// Runs a request and returns its outcome as a `Result`, so tests can assert on the error.
func outcome(
    _ client: any DraftTransport, _ message: [UInt8], timeout: Duration
) async -> Result<[UInt8], TransportError> {
    do {
        return .success(try await client.request(message, timeout: timeout))
    } catch {
        return .failure(error)
    }
}

/// An echo server on a system-chosen loopback port.
func echoServer(
    options: NNGServerOptions = .init(), scheme: String = "tcp",
    handler: RequestHandler? = nil
) throws -> NNGReplyServer {
    try NNGReplyServer(
        listeningOn: "\(scheme)://127.0.0.1:0", options: options,
        handler: handler ?? { request in request.body })
}

extension Array where Element == UInt8 {
    init(_ text: String) { self = Array(text.utf8) }
    var text: String { String(decoding: self, as: UTF8.self) }
}

/// A fixed test key (32 bytes).
func testKey(_ fill: UInt8 = 0x42) -> PresharedKey {
    // 32 bytes always satisfy the minimum length.
    (try? PresharedKey(bytes: [UInt8](repeating: fill, count: 32)))!
}

/// An authenticator under `testKey(fill)`.
func testAuthenticator(
    _ fill: UInt8 = 0x42, wallClock: @escaping @Sendable () -> Int64 = MessageAuthenticator.unixMilliseconds
) -> MessageAuthenticator {
    MessageAuthenticator(key: testKey(fill), wallClock: wallClock)
}
