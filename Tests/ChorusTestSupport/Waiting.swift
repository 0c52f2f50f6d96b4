import Foundation
import Synchronization

/// A test step that did not finish in time.
public struct TestTimeout: Error, CustomStringConvertible {
    public let step: String
    public let limit: Duration
    public var description: String { "\(step) did not finish within \(limit)" }
}

/// Runs `body` but returns (throwing ``TestTimeout``) after `limit` even if `body` ignores
/// cancellation, so a hang in the code under test fails the test instead of stalling the run. The
/// body is cancelled at the limit.
public func within<T: Sendable>(
    _ limit: Duration, _ step: String = "test step", _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let race = FirstResult(continuation)
        let work = Task {
            do { race.finish(.success(try await body())) } catch { race.finish(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: limit)
            race.finish(.failure(TestTimeout(step: step, limit: limit)))
            work.cancel()
        }
    }
}

/// Resumes a continuation with the first result offered; later ones are ignored.
final class FirstResult<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, any Error>?>

    init(_ continuation: CheckedContinuation<T, any Error>) { self.continuation = Mutex(continuation) }

    func finish(_ result: Result<T, any Error>) {
        let pending = continuation.withLock { c -> CheckedContinuation<T, any Error>? in
            defer { c = nil }
            return c
        }
        pending?.resume(with: result)
    }
}

/// Polls `condition` every 10 ms for at most `limit`; returns whether it became true.
public func eventually(within limit: Duration = .seconds(30), _ condition: () async -> Bool) async -> Bool {
    let start = ContinuousClock.now
    while ContinuousClock.now - start < limit {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return await condition()
}

/// Runs blocking work (processes, openssl, raw sockets) on its own thread, so that it never occupies
/// one of the few threads of Swift's cooperative pool that the tests' tasks need.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// A value shared between handlers, threads and the test, behind an `NSLock` (pthread-based, so
/// that ThreadSanitizer sees the synchronisation; `Synchronization.Mutex` is invisible to it on
/// Linux). `@unchecked Sendable`: `value` is only touched with the lock held.
public final class Guarded<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    public func withLock<Result>(_ body: (inout Value) -> Result) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// A thread-safe counter.
public final class Counter: Sendable {
    private let value = Guarded(0)
    public init() {}
    public func increment() { value.withLock { $0 += 1 } }
    public var count: Int { value.withLock { $0 } }
}
