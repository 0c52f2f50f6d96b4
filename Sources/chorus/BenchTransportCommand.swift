import ArgumentParser
import ChorusBench

/// `chorus bench transport`: the NNG REQ/REP round trip on loopback (median and p99).
struct BenchTransportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport",
        abstract: "NNG REQ/REP round trip on loopback: median and p99 of sequential requests.")

    @Option(name: .long, help: "Requests timed (after 50 warm-up requests).") var requests = 1000
    @Option(name: .long, help: "Message size in bytes.") var bytes = 256

    func validate() throws {
        guard requests >= 1 else { throw ValidationError("--requests must be ≥ 1") }
        guard bytes >= 0 else { throw ValidationError("--bytes must be ≥ 0") }
    }

    func run() async throws {
        let latency = try await TransportLatency.measure(requests: requests, bytes: bytes)
        print(
            "NNG loopback REQ/REP round trip (\(bytes) B): median \(fixed(microseconds(latency.median), 1)) µs, "
                + "p99 \(fixed(microseconds(latency.p99), 1)) µs, n = \(latency.samples.count)")
    }
}
