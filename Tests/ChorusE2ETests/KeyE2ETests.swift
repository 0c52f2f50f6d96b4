import ChorusTestSupport
import Foundation
import Testing

extension E2ETests {
    /// The cluster key across real processes over NNG: a worker with another key can neither register nor
    /// serve the coordinator; a worker with the cluster's key registers and its drafts are used; a client
    /// needs the key too.
    @Suite("Cluster key")
    struct ClusterKey {
        /// `chorus keygen --out` into the test's directory.
        static func keygen(_ processes: ProcessSet, _ name: String) async throws -> String {
            let path = processes.directory.appendingPathComponent(name).path
            let child = try processes.start("keygen-\(name)", ["keygen", "--out", path])
            #expect(await child.waitExit(within: .seconds(30)) == 0, "\(child.log)")
            return path
        }

        @Test func onlyWorkersWithTheClusterKeyTakePart() async throws {
            let processes = try ProcessSet("key")
            defer { processes.stopAll() }
            let key = try await Self.keygen(processes, "cluster.key")
            let otherKey = try await Self.keygen(processes, "other.key")
            let coordinatorPort = try #require(freeLoopbackPort())
            let coordinatorAddress = "tcp://127.0.0.1:\(coordinatorPort)"

            // The intruder holds another key: it tries to register, and the coordinator is also told to dial it.
            let intruder = try processes.startWorker(
                "intruder", model: Models.small, register: coordinatorAddress,
                extra: ["--temperature", "0", "--key-file", otherKey])
            let intruderAddress = try await intruder.listeningAddress()
            let coordinator = try processes.startCoordinator(
                listen: coordinatorAddress, extra: ["--worker", intruderAddress, "--key-file", key])
            _ = try await Reference.text()
            let address = try await coordinator.listeningAddress()
            #expect(coordinator.logCount("authentication: cluster key") == 1, "\(coordinator.log)")

            let alone = try await processes.generate(
                "key-fallback", greedyThrough(address, tokens: 30, extra: ["--key-file", key]))
            #expect(alone.status == 0, "\(alone)")
            #expect(try await Reference.matches(alone, tokens: 30), "\(alone)")
            #expect(alone.blockEfficiency == 1, "\(alone)")

            let worker = try processes.startWorker(
                "worker", model: Models.medium, register: address, extra: ["--temperature", "0", "--key-file", key])
            let workerAddress = try await worker.listeningAddress()
            try await E2ETests.waitReady(coordinator, [workerAddress])
            let together = try await processes.generate(
                "key-cluster", greedyThrough(address, tokens: 40, extra: ["--key-file", key]))
            #expect(together.status == 0, "\(together)")
            #expect(try await Reference.matches(together, tokens: 40), "\(together)")
            #expect((together.blockEfficiency ?? 0) > 1, "\(together)")

            let intruderPattern = E2ETests.pattern(intruderAddress)
            #expect(intruder.isRunning)
            #expect(coordinator.logCount("worker \(intruderPattern) ready") == 0, "\(coordinator.log)")
            #expect(coordinator.logCount("registration of intruder") == 0, "\(coordinator.log)")
            #expect(intruder.logCount("registered with") == 0, "\(intruder.log)")
            // Each side says why: the coordinator drops the intruder's registrations, the intruder drops
            // the coordinator's describe requests (rate-limited lines), and the coordinator's probes fail.
            let said = await eventually(within: .seconds(30)) {
                coordinator.logCount("dropped a request on") >= 1 && intruder.logCount("dropped a request on") >= 1
            }
            #expect(said, "coordinator:\n\(coordinator.log)\nintruder:\n\(intruder.log)")
            #expect(coordinator.logCount("authentication tag does not match") >= 1, "\(coordinator.log)")
            #expect(worker.logCount("registered with") == 1, "\(worker.log)")

            // A client needs the key as well.
            let stranger = try await processes.generate(
                "key-stranger", greedyThrough(address, tokens: 5, extra: ["--key-file", otherKey, "--timeout", "3"]),
                within: .seconds(60))
            #expect(stranger.status != 0 && stranger.status != nil, "\(stranger)")
            #expect(stranger.generatedTokens == nil, "\(stranger)")
            // Without a key at all it is told why at once (a plain refusal), not at its deadline.
            let started = ContinuousClock.now
            let keyless = try await processes.generate(
                "key-none", greedyThrough(address, tokens: 5, extra: ["--timeout", "30"]), within: .seconds(60))
            #expect(keyless.status != 0 && keyless.status != nil, "\(keyless)")
            #expect(keyless.log.contains("--key-file"), "\(keyless)")
            #expect(ContinuousClock.now - started < .seconds(20), "\(keyless)")
        }
    }
}
