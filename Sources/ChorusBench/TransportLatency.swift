import ChorusCluster
import ChorusTransport

/// The request/reply round trip of the cluster's network (`chorus bench transport`): an echo
/// endpoint and one client, sequential requests, the first ones discarded as warm-up. A figure, not a
/// test: Nagle/delayed-ACK stalls or a reconnect per request would show up as tens of milliseconds.
public struct TransportLatency: Sendable {
    /// Round trips in ascending order (warm-up dropped).
    public var samples: [Duration]

    public var median: Duration { samples[samples.count / 2] }
    public var p99: Duration { samples[min(samples.count - 1, samples.count * 99 / 100)] }

    /// Measures `requests` round trips of `bytes`-byte messages over `network` at `address`
    /// (`tcp://127.0.0.1:0`: a free loopback port), after `warmUp` unmeasured ones.
    public static func measure(
        network: ClusterNetwork = .nng(), address: String = "tcp://127.0.0.1:0", requests: Int = 1000,
        bytes: Int = 256, warmUp: Int = 50
    ) async throws -> TransportLatency {
        let server = try network.listen(on: address) { request in request.body }
        defer { server.close() }
        let client = try network.connector.connect(to: server.address)
        defer { client.close() }
        let message = [UInt8](repeating: 0xAB, count: bytes)
        let clock = ContinuousClock()
        var samples: [Duration] = []
        for i in 0..<(warmUp + requests) {
            let start = clock.now
            let reply = try await client.request(message, timeout: .seconds(2))
            if i >= warmUp { samples.append(clock.now - start) }
            guard reply == message else { throw ChildProcesses.Failure("the echo endpoint changed the message") }
        }
        return TransportLatency(samples: samples.sorted())
    }
}
