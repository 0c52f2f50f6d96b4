import ChorusCluster
import Foundation
import Synchronization

/// The live figures behind the status page (`GET /`, fed by `GET /status/events`): request totals,
/// the recent rounds with their time split, the token rate, and each worker's recent reply times.
/// Thread-safe; written by request handlers and the timed connector, read once a second per viewer.
public final class StatusBoard: ServingMetricsSink {
    /// A round as the page shows it: when it ended (seconds since the board started) and its record.
    struct TimedRound {
        var at: Double
        var record: Coordinator.RoundRecord
    }

    struct State {
        var totals = ServingTotals()
        var rounds: [TimedRound] = []
        /// Per worker address: reply times in milliseconds, newest last (at most ``keptReplies``).
        var replies: [String: [Double]] = [:]
    }

    let state = Mutex(State())
    let started = ContinuousClock.now
    static let keptRounds = 200
    static let keptReplies = 100
    /// The window of the token rate, seconds.
    static let rateWindow = 10.0

    public init() {}

    var now: Double {
        let (s, a) = (ContinuousClock.now - started).components
        return Double(s) + Double(a) / 1e18
    }

    public func record(_ request: RequestRecord) {
        state.withLock { $0.totals.add(request) }
    }

    /// Rounds as they happen (the server adds each session's new rounds after every update).
    func recordRounds(_ rounds: some Sequence<Coordinator.RoundRecord>) {
        let at = now
        state.withLock { s in
            s.rounds += rounds.map { TimedRound(at: at, record: $0) }
            if s.rounds.count > Self.keptRounds { s.rounds.removeFirst(s.rounds.count - Self.keptRounds) }
        }
    }

    func recordReply(worker: String, elapsed: Duration) {
        let (s, a) = elapsed.components
        let ms = Double(s) * 1000 + Double(a) / 1e15
        state.withLock { st in
            st.replies[worker, default: []].append(ms)
            if st.replies[worker]!.count > Self.keptReplies { st.replies[worker]!.removeFirst() }
        }
    }

    /// What the page shows, as JSON-ready values.
    func snapshot(workers: [WorkerStatus], active: Int, queued: Int) -> StatusSnapshot {
        state.withLock { s in
            let t = now
            let recent = s.rounds.filter { t - $0.at <= Self.rateWindow }
            let span = min(Self.rateWindow, max(t, 1e-3))
            return StatusSnapshot(
                uptimeSeconds: t,
                activeRequests: active, queuedRequests: queued,
                requests: Dictionary(uniqueKeysWithValues: s.totals.requests.map { ($0.key.rawValue, $0.value) }),
                promptTokens: s.totals.promptTokens, generationTokens: s.totals.generationTokens,
                numDraftTokens: s.totals.numDraftTokens, numAcceptedTokens: s.totals.numAcceptedTokens,
                acceptanceRate: s.totals.numDraftTokens == 0
                    ? 0 : Double(s.totals.numAcceptedTokens) / Double(s.totals.numDraftTokens),
                acceptedPerPosition: s.totals.acceptedPerPosition,
                acceptanceAtPosition: s.totals.acceptedPerPosition.map {
                    s.totals.numDrafts == 0 ? 0 : Double($0) / Double(s.totals.numDrafts)
                },
                tokensPerSecond: Double(recent.reduce(0) { $0 + $1.record.tokens }) / span,
                recentRounds: s.rounds.suffix(60).map {
                    .init(
                        draftWaitMs: Double($0.record.draftWait) / 1000,
                        targetForwardMs: Double($0.record.targetForward) / 1000,
                        verificationMs: Double($0.record.verification) / 1000, tokens: $0.record.tokens,
                        drafts: $0.record.drafts)
                },
                workers: workers.map { w in
                    let times = s.replies[w.address] ?? []
                    let sorted = times.sorted()
                    return .init(
                        address: w.address, id: w.workerID, state: PrometheusServingMetrics.stateName(w.state),
                        repliesUsed: w.repliesUsed, misses: w.failures, lastReplyMs: times.last,
                        medianReplyMs: sorted.isEmpty ? nil : sorted[sorted.count / 2], recentReplyMs: times.suffix(30))
                })
        }
    }
}

/// One status update (the JSON of each `GET /status/events` event). Times in milliseconds.
struct StatusSnapshot: Encodable {
    struct Round: Encodable {
        var draftWaitMs: Double
        var targetForwardMs: Double
        var verificationMs: Double
        var tokens: Int
        var drafts: Int
    }
    struct Worker: Encodable {
        var address: String
        var id: String?
        var state: String
        var repliesUsed: Int
        var misses: Int
        var lastReplyMs: Double?
        var medianReplyMs: Double?
        var recentReplyMs: [Double]
    }
    var uptimeSeconds: Double
    var activeRequests: Int
    var queuedRequests: Int
    var requests: [String: Int]
    var promptTokens: Int
    var generationTokens: Int
    var numDraftTokens: Int
    var numAcceptedTokens: Int
    var acceptanceRate: Double
    var acceptedPerPosition: [Int]
    /// Accepted at position i per round with drafts.
    var acceptanceAtPosition: [Double]
    /// Tokens generated over the last 10 s, per second.
    var tokensPerSecond: Double
    var recentRounds: [Round]
    var workers: [Worker]

    func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return (try? Array(encoder.encode(self))) ?? []
    }
}
