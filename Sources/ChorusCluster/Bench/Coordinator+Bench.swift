extension Coordinator {
    /// Makes the next session ids deterministic. Workers derive their draft seeds from the session id
    /// (and the round and worker index), so a benchmark that fixes the ids and the sampling seed
    /// reproduces every draw, as long as every worker answers every round.
    public func setNextSessionID(_ id: UInt64) {
        nextSession = id
    }
}

extension Coordinator.RoundRecord {
    /// A round's record built by hand (tests, replayed results). Times in microseconds.
    public static func made(
        draftWait: Int64, targetForward: Int64, verification: Int64, tokens: Int, drafts: Int, requestBytes: Int,
        replyBytes: Int, workerDraftTime: Int64
    ) -> Coordinator.RoundRecord {
        Coordinator.RoundRecord(
            draftWait: draftWait, targetForward: targetForward, verification: verification, tokens: tokens,
            drafts: drafts, requestBytes: requestBytes, replyBytes: replyBytes, workerDraftTime: workerDraftTime)
    }
}
