extension Coordinator {
    /// Makes the next session ids deterministic (benchmark records name their sessions). Draft seeds
    /// derive from the generation's seed, not the session id.
    public func setNextSessionID(_ id: UInt64) {
        nextSession = id
    }
}

extension Coordinator.RoundRecord {
    /// A round's record built by hand (tests, replayed results). Times in microseconds.
    public static func made(
        draftWait: Int64, targetForward: Int64, verification: Int64, tokens: Int, drafts: Int, requestBytes: Int,
        replyBytes: Int, workerDraftTime: Int64, aheadHits: Int = 0, replies: Int = 0, depth: Int = 0, nodes: Int = 1,
        draftTokens: Int = 0, coordinatorCPU: Int64 = 0
    ) -> Coordinator.RoundRecord {
        Coordinator.RoundRecord(
            draftWait: draftWait, targetForward: targetForward, verification: verification, tokens: tokens,
            drafts: drafts, requestBytes: requestBytes, replyBytes: replyBytes, workerDraftTime: workerDraftTime,
            aheadHits: aheadHits, replies: replies, depth: depth, nodes: nodes, draftTokens: draftTokens,
            coordinatorCPU: coordinatorCPU)
    }
}
