import ArgumentParser
import ChorusDelayProxy
import Foundation

/// `chorus delay-proxy`: a user-space TCP proxy that adds a fixed one-way delay to every chunk it forwards.
///
/// The kernel on the development and CI machines has no `netem`, so emulated hosts (network namespaces
/// joined by veth pairs, `scripts/netns-cluster.sh`) get their cross-host latency from this proxy: the
/// coordinator dials the proxy, the proxy dials the worker. Each direction of each connection is a FIFO of
/// chunks stamped with the time they were read; a chunk is written once `delay` has passed since then, so
/// order is preserved and a request/reply round trip gains about 2 × delay.
struct DelayProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delay-proxy",
        abstract: "Forward TCP connections, delaying each direction by a fixed time.",
        discussion: """
            Every chunk read from one side is written to the other side --delay-ms milliseconds after it was \
            read (one way: a request/reply round trip gains about twice that). Order is preserved per \
            direction, half-closes are forwarded after the delay, and any number of connections run at once. \
            Stops on SIGINT/SIGTERM. Prints `delay-proxy: listening on tcp://HOST:PORT …` on stderr when \
            ready (with the real port when --listen asks for port 0).

            Example: chorus delay-proxy --listen tcp://127.0.0.1:7201 --forward 10.200.1.2:7101 --delay-ms 5
            """
    )

    @Option(name: .long, help: "Address to accept connections on: tcp://HOST:PORT or HOST:PORT (HOST * = all).")
    var listen: String

    @Option(name: .long, help: "Address to forward each connection to: tcp://HOST:PORT or HOST:PORT.")
    var forward: String

    @Option(name: .long, help: "One-way delay added to every chunk, in milliseconds (≥ 0, may be fractional).")
    var delayMs: Double

    @Option(name: .long, help: "Bytes that may wait in one direction before reading pauses.")
    var bufferBytes = 8 << 20

    @Flag(name: .long, help: "Log every connection's open and close on stderr.")
    var verbose = false

    func validate() throws {
        do {
            _ = try ProxyEndpoint(parsing: listen, option: "--listen")
            _ = try ProxyEndpoint(parsing: forward, option: "--forward")
        } catch { throw ValidationError(error.description) }
        guard delayMs.isFinite, delayMs >= 0, delayMs <= 600_000 else {
            throw ValidationError("--delay-ms must be a number of milliseconds in 0…600000, got \(delayMs)")
        }
        guard bufferBytes >= 4096 else { throw ValidationError("--buffer-bytes must be ≥ 4096") }
    }

    func run() throws {
        let server: DelayProxyServer
        let stop: StopSignal
        let target: ProxyEndpoint
        do {
            target = try ProxyEndpoint(parsing: forward, option: "--forward")
            server = try DelayProxyServer(
                listen: try ProxyEndpoint(parsing: listen, option: "--listen"), forward: target,
                delayMilliseconds: delayMs,
                bufferBytes: bufferBytes, verbose: verbose
            ) { FileHandleOutput.standardError.write($0 + "\n") }
            stop = try StopSignal()
        } catch {
            throw fail(error.description, code: 1)
        }
        FileHandleOutput.standardError.write(
            "delay-proxy: listening on tcp://\(server.boundAddress), forwarding to "
                + "\(target.display) with \(Self.formatDelay(delayMs)) ms one-way delay\n")
        let open: Int
        do { open = try server.run(until: stop.readFD) } catch { throw fail(error.description, code: 1) }
        FileHandleOutput.standardError.write("delay-proxy: stopped (\(open) open connection(s) closed)\n")
    }

    static func formatDelay(_ ms: Double) -> String {
        ms == ms.rounded() ? String(Int(ms)) : String(ms)
    }
}
