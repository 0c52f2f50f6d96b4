#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A value behind a pthread mutex; the transport's only lock.
///
/// Why not `Synchronization.Mutex`: on Linux it is built on futexes that ThreadSanitizer does
/// not see, so every access from two threads shows up as a (false) data race, and TSan could no
/// longer check the hand-off between NNG's callback threads and Swift tasks in `AsyncAIO`.
/// pthread mutexes are intercepted by TSan, so `swift test --sanitize=thread` stays meaningful.
///
/// `@unchecked Sendable`: `value` is only read or written inside `withLock`, with the mutex
/// held, and `Value` itself is `Sendable`.
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value. Do not call back into NNG from `body`.
    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
