import ChorusTransport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A test step that did not finish in time.
struct TestTimeout: Error, CustomStringConvertible {
    let limit: Duration
    var description: String { "test step did not finish within \(limit)" }
}

/// Runs `body`, failing with `TestTimeout` after `limit` so that no test can hang. The body is
/// cancelled at the limit; every awaited call in this suite honours cancellation.
func within<T: Sendable>(
    _ limit: Duration, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TestTimeout(limit: limit) }
        return value
    }
}

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

/// A port that was free a moment ago (bound to 127.0.0.1:0 and released). Used only where a
/// test must know the port before the server exists.
func freeLoopbackPort() throws -> Int {
    let server = try echoServer()
    defer { server.close() }
    return try #require(server.address.port)
}

/// A value shared between handlers and the test, behind an `NSLock` (pthread-based, so that
/// ThreadSanitizer sees the synchronisation; `Synchronization.Mutex` is invisible to it on Linux).
/// `@unchecked Sendable`: `value` is only touched with the lock held.
final class Guarded<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) -> Result) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// A thread-safe counter for handlers.
final class Counter: Sendable {
    private let value = Guarded(0)
    func increment() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}

/// Runs blocking work (openssl, raw sockets) on its own thread, so that it never occupies one
/// of the few threads of Swift's cooperative pool that the NNG tests' tasks need.
func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

extension Array where Element == UInt8 {
    init(_ text: String) { self = Array(text.utf8) }
    var text: String { String(decoding: self, as: UTF8.self) }
}
