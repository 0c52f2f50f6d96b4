import ChorusCluster
import ChorusWire
import Foundation

/// One generation of a sweep point, as the coordinator returned it, with what is needed to
/// reconstruct each round's draft length.
public struct BenchGeneration: Sendable {
    public var promptLength: Int
    public var maxTokens: Int
    /// The target's context length (rounds near the end of the context draft fewer positions).
    public var contextLength: Int
    /// The coordinator's draft length L.
    public var draftLength: Int
    public var statistics: GenerationStatistics
    public var rounds: [Coordinator.RoundRecord]
    /// acceptedAtPosition[i]: rounds whose draft position i + 1 was accepted.
    public var acceptedAtPosition: [Int]

    public init(
        promptLength: Int, maxTokens: Int, contextLength: Int, draftLength: Int, statistics: GenerationStatistics,
        rounds: [Coordinator.RoundRecord], acceptedAtPosition: [Int]
    ) {
        self.promptLength = promptLength
        self.maxTokens = maxTokens
        self.contextLength = contextLength
        self.draftLength = draftLength
        self.statistics = statistics
        self.rounds = rounds
        self.acceptedAtPosition = acceptedAtPosition
    }

    /// The draft positions each round offered: the coordinator asks for min(L, useful length) and the
    /// session verifies that many when drafts arrived (0 for rounds without drafts). Mirrors
    /// `GenerationSession.usefulDraftLength`.
    public var offeredPositions: [Int] {
        zip(rounds, requestedPositions).map { $0.drafts > 0 ? $1 : 0 }
    }

    /// The draft length the coordinator asked the workers for, per round (0: it asked nobody).
    public var requestedPositions: [Int] {
        var generated = 0
        var requested: [Int] = []
        for round in rounds {
            let treeRoom = contextLength - (promptLength + generated - 1)
            let useful = max(0, min(maxTokens - generated - 1, treeRoom - 2))
            requested.append(min(draftLength, useful))
            generated += round.tokens
        }
        return requested
    }
}

/// The statistics of a sweep point from its generations (DESIGN.md "Metrics vocabulary").
public enum BenchStatistics {
    /// Fills the result fields of `record` from `generations`; `baseline` is the plain-target rate
    /// (tokens per second) measured in the same run, 0 when unknown (then speedup stays 0).
    public static func fill(
        _ record: inout BenchRecord, generations: [BenchGeneration], baseline: Double, expectedDrafts: Int
    ) {
        var total = GenerationStatistics()
        var split = BenchRecord.TimeSplit()
        var requestBytes = 0
        var replyBytes = 0
        var draftTokens = 0
        var coordinatorCPU = 0.0
        var rounds = 0
        var roundsWithDrafts = 0
        var draftsUsed = 0
        var depthSum = 0
        var replies = 0
        var aheadHits = 0
        var roundsAsked = 0
        var accepted: [Int] = []
        var offered: [Int] = []
        for g in generations {
            let s = g.statistics
            total.generatedTokens += s.generatedTokens
            total.targetForwards += s.targetForwards
            total.draftedTokens += s.draftedTokens
            total.acceptedDraftTokens += s.acceptedDraftTokens
            total.draftsReceived += s.draftsReceived
            total.elapsedMicroseconds += s.elapsedMicroseconds
            for r in g.rounds {
                rounds += 1
                split.draftWait += Double(r.draftWait)
                split.workerDraft += Double(r.workerDraftTime)
                split.network += Double(max(0, r.draftWait - r.workerDraftTime))
                split.targetForward += Double(r.targetForward)
                split.verification += Double(r.verification)
                requestBytes += r.requestBytes
                replyBytes += r.replyBytes
                draftTokens += r.draftTokens
                coordinatorCPU += Double(r.coordinatorCPU)
                if r.drafts > 0 {
                    roundsWithDrafts += 1
                    draftsUsed += r.drafts
                    depthSum += r.depth
                }
                replies += r.replies
                aheadHits += r.aheadHits
            }
            for (i, n) in g.acceptedAtPosition.enumerated() {
                if accepted.count <= i { accepted.append(0) }
                accepted[i] += n
            }
            roundsAsked += g.requestedPositions.filter { $0 > 0 }.count
            for positions in g.offeredPositions {
                while offered.count < positions { offered.append(0) }
                for i in 0..<positions { offered[i] += 1 }
            }
        }
        record.generatedTokens = total.generatedTokens
        record.targetForwards = total.targetForwards
        record.draftedTokens = total.draftedTokens
        record.acceptedDraftTokens = total.acceptedDraftTokens
        record.blockEfficiency = total.blockEfficiency
        record.acceptanceRate = total.acceptanceRate
        record.perPositionAcceptance = offered.indices.map {
            offered[$0] == 0 ? 0 : Double($0 < accepted.count ? accepted[$0] : 0) / Double(offered[$0])
        }
        record.draftsPerRound = roundsWithDrafts == 0 ? 0 : Double(draftsUsed) / Double(roundsWithDrafts)
        record.draftAheadHitRate = replies == 0 ? 0 : Double(aheadHits) / Double(replies)
        record.meanVerifiedDepth = roundsWithDrafts == 0 ? 0 : Double(depthSum) / Double(roundsWithDrafts)
        record.tokensPerSecond = total.tokensPerSecond
        record.baselineTokensPerSecond = baseline
        record.speedup = speedup(rate: record.tokensPerSecond, baseline: baseline)
        if rounds > 0 {
            let n = Double(rounds)
            split.draftWait /= n
            split.workerDraft /= n
            split.network /= n
            split.targetForward /= n
            split.verification /= n
            split.round = Double(total.elapsedMicroseconds) / n
            split.other = max(0, split.round - split.draftWait - split.targetForward - split.verification)
            split.coordinatorCPU = coordinatorCPU / n
            record.bytes.requestPerRound = Double(requestBytes) / n
            record.bytes.replyPerRound = Double(replyBytes) / n
        }
        record.time = split
        record.bytes.total = requestBytes + replyBytes
        if draftTokens > 0 { record.bytes.perDraftedToken = Double(replyBytes) / Double(draftTokens) }
        record.bytes.perToken =
            total.generatedTokens == 0 ? 0 : Double(requestBytes + replyBytes) / Double(total.generatedTokens)
        if expectedDrafts > 0, roundsWithDrafts > 0, record.draftsPerRound < Double(expectedDrafts) - 1e-9 {
            record.warnings.append(
                "only \(String(format: "%.2f", record.draftsPerRound)) of \(expectedDrafts) drafts per round were used "
                    + "(late or failed workers, or a scheme that fell back to one worker's drafts)")
        }
        if expectedDrafts > 0, roundsWithDrafts < roundsAsked {
            record.warnings.append(
                "\(roundsAsked - roundsWithDrafts) of \(roundsAsked) rounds that asked for drafts got none")
        }
        let drafted = offered.reduce(0, +)
        if drafted != total.draftedTokens {
            record.warnings.append(
                "per-position denominators (\(drafted) positions) differ from the drafted tokens (\(total.draftedTokens))"
            )
        }
    }

    /// rate / baseline; 0 when the baseline is unknown.
    public static func speedup(rate: Double, baseline: Double) -> Double {
        baseline > 0 ? rate / baseline : 0
    }
}
