/// The cluster's time source, passed in (STYLE.md rule 2): any `Clock<Duration>`, stored as elapsed
/// time since the clock value was made, so instants of different clocks never mix.
///
/// The coordinator reads it for round timings, backoff and long-poll waits; tests can pass a clock
/// that runs faster or is driven by hand.
public struct ClusterClock: Sendable {
    private let elapsed: @Sendable () -> Duration
    private let sleeper: @Sendable (Duration) async throws -> Void

    public init<C: Clock<Duration>>(_ clock: C) {
        let origin = clock.now
        elapsed = { origin.duration(to: clock.now) }
        sleeper = { try await clock.sleep(for: $0) }
    }

    /// `ContinuousClock`: wall time that keeps running while the machine sleeps.
    public static var continuous: ClusterClock { ClusterClock(ContinuousClock()) }

    /// Time since this value was made.
    public var now: Duration { elapsed() }

    /// Sleeps `duration` on this clock; throws `CancellationError` when the task is cancelled.
    public func sleep(for duration: Duration) async throws { try await sleeper(duration) }
}
