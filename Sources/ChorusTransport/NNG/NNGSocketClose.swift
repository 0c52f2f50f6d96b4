import CNNG
import Foundation

/// nng_close(3) that never holds its caller for long. nng 1.5.2 has been seen to block in `nng_close` forever (a
/// client after an oversized request dropped its connection and it reconnected, the E2E garbage test; a loopback
/// test's server closed while its client's close was stuck, which hung the whole test process). The close runs on
/// a thread of its own, after `before` (which may wait for the socket's operations to finish), and the caller waits
/// for it at most ``wait`` when `waits` is true, not at all otherwise: a stuck close costs one parked thread, never
/// the caller.
enum NNGSocketClose {
    /// How long a waiting caller waits for nng_close before it goes on.
    static let wait: DispatchTimeInterval = .seconds(5)

    static func close(_ socket: nng_socket, waits: Bool, before: @escaping @Sendable () -> Void = {}) {
        let done = DispatchSemaphore(value: 0)
        Thread {
            before()
            nng_close(socket)
            done.signal()
        }.start()
        if waits { _ = done.wait(timeout: .now() + wait) }
    }
}
