import ChorusCluster
import ChorusWire

/// What one HTTP generation request did: pure values, computed once by the server and handed to
/// every ``ServingMetricsSink`` (Prometheus, the status page, tests). Defines the vocabulary of the
/// metrics (vLLM's `spec_decode` names with the prefix `chorus:`).
public struct RequestRecord: Sendable, Equatable {
    /// How a request ended, the `outcome` label of `chorus:requests_total`.
    public enum Outcome: String, Sendable, CaseIterable {
        /// Finished: EOS, end of turn, a stop sequence, max_tokens or the context's end.
        case completed
        /// The client went away; its session was cancelled.
        case cancelled
        /// Refused before generating (bad request, 401, 413, too long).
        case rejected
        /// Refused by admission control (429/503).
        case overloaded
        /// The generation failed on the server.
        case failed
    }

    public var outcome: Outcome
    public var promptTokens = 0
    /// Tokens the session generated (the EOS or end-of-turn token included).
    public var generationTokens = 0
    /// The generation's statistics (draft positions, accepted tokens, rounds, drafts received).
    public var statistics = GenerationStatistics()
    /// acceptedAtPosition[i]: rounds whose draft position i was accepted.
    public var acceptedAtPosition: [Int] = []
    /// Every round (microseconds).
    public var rounds: [Coordinator.RoundRecord] = []
    /// From arrival to the first generated token; nil when none came.
    public var timeToFirstToken: Duration?
    /// One entry per generated token after the first: the gap since the previous update divided by
    /// the tokens that update brought (tokens of one round arrive together; those that arrive with the
    /// first token count 0).
    public var interTokenLatencies: [Duration] = []

    public init(outcome: Outcome) {
        self.outcome = outcome
    }

    /// `chorus:spec_decode_num_drafts_total`: rounds that verified a draft tree.
    public var roundsWithDrafts: Int { rounds.filter { $0.drafts > 0 }.count }
}

/// Totals over every request since the server started (pure; the status page and tests read it).
public struct ServingTotals: Sendable, Equatable {
    public var requests: [RequestRecord.Outcome: Int] = [:]
    public var promptTokens = 0
    public var generationTokens = 0
    public var numDrafts = 0
    public var numDraftTokens = 0
    public var numAcceptedTokens = 0
    public var acceptedPerPosition: [Int] = []
    public var rounds = 0

    public init() {}

    public mutating func add(_ r: RequestRecord) {
        requests[r.outcome, default: 0] += 1
        promptTokens += r.promptTokens
        generationTokens += r.generationTokens
        numDrafts += r.roundsWithDrafts
        numDraftTokens += r.statistics.draftedTokens
        numAcceptedTokens += r.statistics.acceptedDraftTokens
        rounds += r.rounds.count
        if acceptedPerPosition.count < r.acceptedAtPosition.count {
            acceptedPerPosition += Array(repeating: 0, count: r.acceptedAtPosition.count - acceptedPerPosition.count)
        }
        for (i, n) in r.acceptedAtPosition.enumerated() { acceptedPerPosition[i] += n }
    }
}

/// Where request records go. One Prometheus implementation (``PrometheusServingMetrics``), one in
/// memory (``ServingStatisticsRecorder``).
public protocol ServingMetricsSink: Sendable {
    func record(_ request: RequestRecord)
}
