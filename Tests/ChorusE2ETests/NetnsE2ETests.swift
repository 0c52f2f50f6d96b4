import ChorusTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Emulated hosts: network namespaces joined to the root namespace by veth pairs. Names and the
/// 10.231.X.0/24 block are unique to this run (so concurrent runs and `scripts/netns-cluster.sh`'s
/// chorus-wN / 10.200.0.0/16 are left alone); `teardown()` removes everything, also after a failure.
final class NetnsHosts {
    struct Host {
        var namespace: String
        var rootAddress: String
        var address: String
    }

    static let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Root, and `ip netns` works here.
    static var available: Bool {
        guard getuid() == 0, ip != nil else { return false }
        return (try? run(["netns", "list"])) != nil
    }

    private(set) var hosts: [Host] = []
    private var links: [String] = []

    /// Runs `ip ARGUMENTS` (bounded to 10 s); throws with its error output on failure.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        guard let ip else { throw E2EFailure("ip not found") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let start = Date()
        while process.isRunning, Date().timeIntervalSince(start) < 10 { usleep(5_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw E2EFailure("ip \(arguments.joined(separator: " ")) failed: \(message)")
        }
        return output
    }

    /// Creates `count` namespaces, each with a /30 link to the root namespace.
    init(count: Int) throws {
        let tag = String(UUID().uuidString.prefix(4)).lowercased()
        let used = try Self.run(["-o", "-4", "addr", "show"])
        guard let block = (1...250).shuffled().first(where: { !used.contains("10.231.\($0).") }) else {
            throw E2EFailure("no free 10.231.X.0/24 block")
        }
        do {
            for i in 1...count {
                let namespace = "chorus-e2e-\(tag)-\(i)"
                let rootLink = "ce\(tag)h\(i)", innerLink = "ce\(tag)n\(i)"
                let rootAddress = "10.231.\(block).\(4 * i + 1)", address = "10.231.\(block).\(4 * i + 2)"
                try Self.run(["netns", "add", namespace])
                hosts.append(Host(namespace: namespace, rootAddress: rootAddress, address: address))
                try Self.run(["link", "add", rootLink, "type", "veth", "peer", "name", innerLink])
                links.append(rootLink)
                try Self.run(["link", "set", innerLink, "netns", namespace])
                try Self.run(["addr", "add", "\(rootAddress)/30", "dev", rootLink])
                try Self.run(["link", "set", rootLink, "up"])
                try Self.run(["-n", namespace, "addr", "add", "\(address)/30", "dev", innerLink])
                try Self.run(["-n", namespace, "link", "set", innerLink, "up"])
                try Self.run(["-n", namespace, "link", "set", "lo", "up"])
            }
        } catch {
            teardown()
            throw error
        }
    }

    /// Process ids running inside `namespace`.
    static func pids(_ namespace: String) -> [Int32] {
        ((try? run(["netns", "pids", namespace])) ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

    /// Kills whatever still runs in the namespaces, deletes them (which deletes the veth pairs) and
    /// any root-side link left over. Idempotent.
    func teardown() {
        for host in hosts {
            for pid in Self.pids(host.namespace) { kill(pid, SIGKILL) }
            _ = try? Self.run(["netns", "delete", host.namespace])
        }
        for link in links { _ = try? Self.run(["link", "delete", link]) }
        hosts = []
        links = []
    }

    deinit { teardown() }
}

extension E2ETests {
    /// Two workers on emulated hosts (their own network namespaces, reached over veth links), the
    /// coordinator in the root namespace dialing them: greedy text equal to plain decoding.
    @Suite(
        "Multi-host in network namespaces",
        .enabled(
            if: NetnsHosts.available,
            "needs root and `ip netns` (iproute2) to create network namespaces; skipped here"))
    struct Netns {
        @Test func workersInTheirOwnNamespaces() async throws {
            let hosts = try NetnsHosts(count: 2)
            defer { hosts.teardown() }
            let processes = try ProcessSet("netns")
            defer { processes.stopAll() }
            let ip = try #require(NetnsHosts.ip)
            // The workers listen on their veth addresses, which other hosts could reach: the cluster key.
            let key = try await E2ETests.ClusterKey.keygen(processes, "cluster.key")
            let coordinator = try processes.startCoordinator(
                extra: hosts.hosts.flatMap { ["--worker", "tcp://\($0.address):7101"] } + ["--key-file", key])
            var workers: [Child] = []
            for (i, host) in hosts.hosts.enumerated() {
                workers.append(
                    try processes.start(
                        "ns-worker-\(i + 1)",
                        [
                            "netns", "exec", host.namespace, chorusBinary().path, "worker", "--listen",
                            "tcp://\(host.address):7101", "--model", i == 0 ? Models.small : Models.medium,
                            "--id", "ns-\(i + 1)", "--temperature", "0", "--key-file", key,
                        ], executable: ip))
            }
            _ = try await Reference.text()
            let address = try await coordinator.listeningAddress()
            for (i, host) in hosts.hosts.enumerated() {
                _ = try await workers[i].listeningAddress()
                // The worker really runs inside its namespace.
                #expect(NetnsHosts.pids(host.namespace).contains(workers[i].pid))
            }
            try await E2ETests.waitReady(coordinator, hosts.hosts.map { "tcp://\($0.address):7101" })

            let generation = try await processes.generate(
                "netns-greedy", greedyThrough(address, tokens: 100, extra: ["--key-file", key]))
            #expect(generation.status == 0, "\(generation)")
            #expect(try await Reference.matches(generation, tokens: 100), "\(generation)")
            #expect(generation.generatedTokens == 100)
            #expect((generation.blockEfficiency ?? 0) > 1, "\(generation)")
            // Both emulated hosts contributed drafts in most rounds (one sequence each).
            #expect((generation.draftsPerRound ?? 0) > 1.5, "\(generation)")
        }
    }
}
