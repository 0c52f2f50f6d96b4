import ChorusCluster
import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// The Prometheus sink: request records and worker statuses as swift-metrics counters, gauges and
/// histograms in this server's own `PrometheusCollectorRegistry` (not the process-wide bootstrap, so
/// several servers in one process, as in the tests, keep separate counts). ``exposition()`` is the
/// `/metrics` body (Prometheus text format 0.0.4).
public final class PrometheusServingMetrics: ServingMetricsSink {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    let numDrafts: CoreMetrics.Counter
    let numDraftTokens: CoreMetrics.Counter
    let numAcceptedTokens: CoreMetrics.Counter
    /// Rounds the draft gate ran without drafts (several sessions, plain rounds measured faster at that load).
    let roundsNotDrafted: CoreMetrics.Counter
    let promptTokens: CoreMetrics.Counter
    let generationTokens: CoreMetrics.Counter
    let timeToFirstToken: Metrics.Timer
    let interTokenLatency: Metrics.Timer
    let requests: [RequestRecord.Outcome: CoreMetrics.Counter]
    let running: CoreMetrics.Gauge
    let waiting: CoreMetrics.Gauge
    /// Per position (label `position`, from 0), made on first use.
    let acceptedPerPosition = Mutex<[CoreMetrics.Counter]>([])
    /// Per worker address: what was last exported of its cumulative counts, and its metrics.
    let workers = Mutex<[String: WorkerMetrics]>([:])

    final class WorkerMetrics: Sendable {
        let state: [String: CoreMetrics.Gauge]
        let repliesUsed: CoreMetrics.Counter
        let misses: CoreMetrics.Counter
        let exported = Mutex<(used: Int, misses: Int)>((0, 0))

        init(address: String, factory: PrometheusMetricsFactory) {
            state = Dictionary(
                uniqueKeysWithValues: PrometheusServingMetrics.workerStates.map {
                    (
                        $0,
                        CoreMetrics.Gauge(
                            label: "chorus:worker_state", dimensions: [("worker", address), ("state", $0)],
                            factory: factory)
                    )
                })
            repliesUsed = CoreMetrics.Counter(
                label: "chorus:worker_replies_used_total", dimensions: [("worker", address)], factory: factory)
            misses = CoreMetrics.Counter(
                label: "chorus:worker_misses_total", dimensions: [("worker", address)], factory: factory)
        }
    }

    static let workerStates = ["unknown", "ready", "suspect", "refused"]

    /// Latency buckets (seconds): 1 ms … 30 s, for TTFT, inter-token latency and worker replies.
    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
        .milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(500), .seconds(1), .seconds(2),
        .seconds(5), .seconds(10), .seconds(30),
    ]

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.latencyBuckets
        self.factory = factory
        numDrafts = CoreMetrics.Counter(label: "chorus:spec_decode_num_drafts_total", factory: factory)
        numDraftTokens = CoreMetrics.Counter(label: "chorus:spec_decode_num_draft_tokens_total", factory: factory)
        numAcceptedTokens = CoreMetrics.Counter(label: "chorus:spec_decode_num_accepted_tokens_total", factory: factory)
        roundsNotDrafted = CoreMetrics.Counter(label: "chorus:rounds_not_drafted_total", factory: factory)
        promptTokens = CoreMetrics.Counter(label: "chorus:prompt_tokens_total", factory: factory)
        generationTokens = CoreMetrics.Counter(label: "chorus:generation_tokens_total", factory: factory)
        timeToFirstToken = Metrics.Timer(label: "chorus:time_to_first_token_seconds", factory: factory)
        interTokenLatency = Metrics.Timer(label: "chorus:inter_token_latency_seconds", factory: factory)
        running = CoreMetrics.Gauge(label: "chorus:requests_running", factory: factory)
        waiting = CoreMetrics.Gauge(label: "chorus:requests_waiting", factory: factory)
        requests = Dictionary(
            uniqueKeysWithValues: RequestRecord.Outcome.allCases.map {
                (
                    $0,
                    CoreMetrics.Counter(
                        label: "chorus:requests_total", dimensions: [("outcome", $0.rawValue)], factory: factory)
                )
            })
    }

    public func record(_ r: RequestRecord) {
        requests[r.outcome]?.increment()
        promptTokens.increment(by: r.promptTokens)
        generationTokens.increment(by: r.generationTokens)
        numDrafts.increment(by: r.roundsWithDrafts)
        numDraftTokens.increment(by: r.statistics.draftedTokens)
        numAcceptedTokens.increment(by: r.statistics.acceptedDraftTokens)
        roundsNotDrafted.increment(by: r.statistics.roundsNotDrafted)
        if let ttft = r.timeToFirstToken { timeToFirstToken.recordNanoseconds(ttft.nanoseconds) }
        for d in r.interTokenLatencies { interTokenLatency.recordNanoseconds(d.nanoseconds) }
        guard !r.acceptedAtPosition.isEmpty else { return }
        let counters = acceptedPerPosition.withLock { list in
            while list.count < r.acceptedAtPosition.count {
                list.append(
                    CoreMetrics.Counter(
                        label: "chorus:spec_decode_num_accepted_tokens_per_pos_total",
                        dimensions: [("position", "\(list.count)")], factory: factory))
            }
            return list
        }
        for (i, n) in r.acceptedAtPosition.enumerated() { counters[i].increment(by: n) }
    }

    /// Exports the workers' states and their cumulative counts (as counter increments since the last
    /// export), and the running and waiting requests. Called before every scrape.
    public func update(workers statuses: [WorkerStatus], active: Int, queued: Int) {
        running.record(active)
        waiting.record(queued)
        for status in statuses {
            let metrics = workers.withLock { table in
                if let m = table[status.address] { return m }
                let m = WorkerMetrics(address: status.address, factory: factory)
                table[status.address] = m
                return m
            }
            let current = Self.stateName(status.state)
            for (name, gauge) in metrics.state { gauge.record(name == current ? 1 : 0) }
            let (used, misses) = metrics.exported.withLock { last in
                defer { last = (max(last.used, status.repliesUsed), max(last.misses, status.failures)) }
                return (status.repliesUsed - last.used, status.failures - last.misses)
            }
            if used > 0 { metrics.repliesUsed.increment(by: used) }
            if misses > 0 { metrics.misses.increment(by: misses) }
        }
    }

    /// A histogram of one worker's request round trips (recorded by ``TimedConnector``).
    func workerRequestTimer(address: String) -> Metrics.Timer {
        Metrics.Timer(label: "chorus:worker_request_seconds", dimensions: [("worker", address)], factory: factory)
    }

    static func stateName(_ state: WorkerStatus.State) -> String {
        switch state {
        case .unknown: return "unknown"
        case .ready: return "ready"
        case .suspect: return "suspect"
        case .refused: return "refused"
        }
    }

    /// The `/metrics` body.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}
