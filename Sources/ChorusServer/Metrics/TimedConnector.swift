import ChorusCluster
import ChorusTransport
import Metrics
import Synchronization

/// Wraps the coordinator's connector so that every request to a worker that gets a reply is timed
/// (`chorus:worker_request_seconds{worker}`: draft requests, and describe probes while a worker is
/// not ready), without touching the round loop. Failed requests are the registry's misses.
public struct TimedConnector: DraftTransportConnector {
    let base: any DraftTransportConnector
    let metrics: PrometheusServingMetrics
    let board: StatusBoard?

    /// - Parameter board: also feeds the status page's per-worker reply times, when given.
    public init(_ base: any DraftTransportConnector, metrics: PrometheusServingMetrics, board: StatusBoard? = nil) {
        self.base = base
        self.metrics = metrics
        self.board = board
    }

    public func connect(to address: TransportAddress) throws(TransportError) -> any DraftTransport {
        TimedTransport(
            base: try base.connect(to: address), timer: metrics.workerRequestTimer(address: address.url), board: board)
    }
}

struct TimedTransport: DraftTransport {
    let base: any DraftTransport
    let timer: Metrics.Timer
    let board: StatusBoard?

    var address: TransportAddress { base.address }

    func request(_ message: [UInt8], timeout: Duration) async throws(TransportError) -> [UInt8] {
        let start = ContinuousClock.now
        let reply = try await base.request(message, timeout: timeout)
        let elapsed = ContinuousClock.now - start
        timer.recordNanoseconds(elapsed.nanoseconds)
        board?.recordReply(worker: address.url, elapsed: elapsed)
        return reply
    }

    func close() { base.close() }
}

extension TimedConnector {
    /// The connector a coordinator dials workers with: `network`'s, timed into `metrics` and `board` when the
    /// HTTP face serves them (`timed`), as it is otherwise.
    public static func connector(
        for network: ClusterNetwork, timed: Bool, metrics: PrometheusServingMetrics, board: StatusBoard
    ) -> any DraftTransportConnector {
        timed ? TimedConnector(network.connector, metrics: metrics, board: board) : network.connector
    }
}
