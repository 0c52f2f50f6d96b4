/// What the HTTP server needs of a session beyond its stream: cancellation and the per-round record.
extension Coordinator {
    /// A session's rounds and per-position acceptance so far (for metrics and the status page).
    public struct SessionReport: Sendable, Equatable {
        /// Every round so far, in order (times in microseconds).
        public var rounds: [RoundRecord]
        /// acceptedAtPosition[i]: rounds whose draft position i was accepted (i from 0).
        public var acceptedAtPosition: [Int]
        public var isFinished: Bool
    }

    /// Asks a running session to stop: it ends after its current round with finish reason
    /// `cancelled` (its stream finishes then). Returns false for an unknown or finished session.
    @discardableResult
    public func cancel(session id: UInt64) -> Bool {
        guard let entry = sessions[id], !entry.session.isFinished else { return false }
        entry.cancelled = true
        return true
    }

    /// The rounds and per-position acceptance of a running or recently finished session.
    public func report(session id: UInt64) -> SessionReport? {
        guard let entry = sessions[id] else { return nil }
        return SessionReport(
            rounds: entry.rounds, acceptedAtPosition: entry.session.acceptedAtPosition,
            isFinished: entry.session.isFinished)
    }

    /// Sessions whose rounds are still running.
    public var activeSessionCount: Int { sessions.values.filter { !$0.session.isFinished }.count }
}
