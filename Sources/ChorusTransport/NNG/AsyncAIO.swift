import CNNG

/// One `nng_aio` bridged to async/await: `run` starts an NNG operation and suspends until the
/// aio's completion callback reports its result.
///
/// NNG invokes the completion callback exactly once for every operation it accepted, whether it
/// succeeds, fails at once, times out or is cancelled (nng_aio(5)); that callback is the only
/// place a continuation is resumed, so each continuation is resumed exactly once. Task
/// cancellation calls `nng_aio_cancel`, which makes the pending operation complete with
/// NNG_ECANCELED (nng_aio_cancel(3)); a cancellation that arrives before the operation starts is
/// remembered and the operation is not started.
///
/// The aio is released with `nng_aio_reap` in `deinit`, because the last reference may be dropped
/// on NNG's callback thread and `nng_aio_free` would wait for that very callback to return
/// (nng_aio_reap(3): "safe to call from the aio's own callback").
///
/// `@unchecked Sendable`: the only stored mutable state is behind `state` (a `Locked`); `handle`
/// is written once in `init` before the object is shared, and the NNG functions called on it
/// from several threads (`nng_aio_cancel`, the start functions, `nng_aio_result`) are documented
/// as thread-safe. One operation runs at a time: callers await `run` before the next one.
final class AsyncAIO: @unchecked Sendable {
    private struct State {
        var continuation: CheckedContinuation<Int32, Never>?
        /// An operation was handed to NNG and its callback has not run yet.
        var pending = false
        /// The owning task was cancelled; no new operation may start.
        var cancelled = false
    }

    private let state = Locked(State())
    private var handle: OpaquePointer?

    init() throws(TransportError) {
        let context = Unmanaged.passUnretained(self).toOpaque()
        try check(nng_aio_alloc(&handle, asyncAIOCallback, context))
        if handle == nil { throw .nng(code: -1, message: "nng_aio_alloc returned no aio") }
    }

    deinit {
        if let handle { nng_aio_reap(handle) }
    }

    /// The aio, for `nng_aio_set_msg` / `nng_aio_get_msg` around an operation.
    var aio: OpaquePointer? { handle }

    /// Starts one operation with `start(aio)` (e.g. `nng_ctx_send(ctx, aio)`) bounded by
    /// `timeout` milliseconds (`nng_aio_set_timeout`), and returns NNG's result code:
    /// 0, or NNG_ETIMEDOUT, NNG_ECANCELED (task cancelled), NNG_ECLOSED, ...
    func run(timeout: nng_duration, _ start: (OpaquePointer) -> Void) async -> Int32 {
        guard let handle else { return NNGCode.closed }
        nng_aio_set_timeout(handle, timeout)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
                let mayStart = state.withLock { state -> Bool in
                    if state.cancelled { return false }
                    state.continuation = continuation
                    state.pending = true
                    return true
                }
                guard mayStart else {
                    continuation.resume(returning: NNGCode.cancelled)
                    return
                }
                start(handle)
                // A cancellation racing with `start` may have called nng_aio_cancel before NNG
                // registered the operation, which would be lost; cancel again now that it is.
                if state.withLock({ $0.cancelled }) { nng_aio_cancel(handle) }
            }
        } onCancel: {
            cancel()
        }
    }

    /// Marks the owner cancelled and aborts the pending operation, if any (nng_aio_cancel(3)).
    private func cancel() {
        let pending = state.withLock { state -> Bool in
            state.cancelled = true
            return state.pending
        }
        if pending, let handle { nng_aio_cancel(handle) }
    }

    /// Called on NNG's callback thread when the operation completes.
    fileprivate func complete() {
        guard let handle else { return }
        let result = nng_aio_result(handle)
        let continuation = state.withLock { state -> CheckedContinuation<Int32, Never>? in
            state.pending = false
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: result)
    }
}

/// The C completion callback shared by all `AsyncAIO`s; `context` is the unretained `AsyncAIO`,
/// kept alive by the task awaiting `run` until `complete` has resumed it.
private func asyncAIOCallback(_ context: UnsafeMutableRawPointer?) {
    guard let context else { return }
    Unmanaged<AsyncAIO>.fromOpaque(context).takeUnretainedValue().complete()
}
