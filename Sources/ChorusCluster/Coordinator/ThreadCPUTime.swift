#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// CPU time of the calling thread, for the coordinator's round statistics (how much of a round is the
/// coordinator's own work outside the target forward). Read only around synchronous stretches of
/// work, which run on one thread; not a clock for scheduling (that is ``ClusterClock``).
enum ThreadCPUTime {
    /// Microseconds of CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID).
    static func microseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}
