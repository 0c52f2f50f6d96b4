import ChorusTestSupport
import Foundation
import Testing

/// A throwaway PKI made with the `openssl` CLI at test time: a cluster CA signing the coordinator's
/// and a worker's certificates (each usable as TLS server and client, since both sides listen and
/// dial), and an unrelated CA signing an intruder's. EC P-256 keeps it fast.
struct ClusterCertificates {
    let directory: URL

    static let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    var ca: String { path("ca.crt") }

    /// `--tls-cert/--tls-key/--tls-ca` for the certificate `name`, trusting `ca`.
    func flags(_ name: String, ca: String? = nil) -> [String] {
        ["--tls-cert", path("\(name).crt"), "--tls-key", path("\(name).key"), "--tls-ca", ca ?? self.ca]
    }

    init(in directory: URL) throws {
        self.directory = directory
        guard let openssl = Self.openssl else { throw E2EFailure("openssl not found") }
        func run(_ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: openssl)
            process.arguments = arguments
            process.currentDirectoryURL = directory
            process.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let message = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw E2EFailure(
                    "openssl \(arguments.joined(separator: " ")): \(String(decoding: message, as: UTF8.self))")
            }
        }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for (name, subject) in [("ca", "/CN=Chorus Cluster CA"), ("other-ca", "/CN=Another CA")] {
            try run(
                ["req", "-x509", "-sha256", "-days", "1"] + ec + [
                    "-keyout", "\(name).key", "-out", "\(name).crt", "-subj", subject,
                ])
        }
        for (name, ca) in [("coordinator", "ca"), ("worker", "ca"), ("intruder", "other-ca")] {
            try run(["req", "-new"] + ec + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(name)"])
            // mbedTLS matches the server name against DNS names, so 127.0.0.1 is a DNS name too.
            try
                ("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
                + "subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1\n").write(
                    to: directory.appendingPathComponent("\(name).ext"), atomically: true, encoding: .utf8)
            try run([
                "x509", "-req", "-sha256", "-days", "1", "-in", "\(name).csr", "-CA", "\(ca).crt", "-CAkey",
                "\(ca).key",
                "-CAcreateserial", "-out", "\(name).crt", "-extfile", "\(name).ext",
            ])
        }
    }
}

extension E2ETests {
    /// Mutual TLS (`tls+tcp://`): a worker whose certificate comes from another CA can neither register
    /// nor serve the coordinator (which falls back to plain decoding); a worker with a certificate from
    /// the cluster's CA registers and its drafts are used; a client needs a certificate too.
    @Suite(
        "Mutual TLS",
        .enabled(if: ClusterCertificates.openssl != nil, "openssl CLI not found: TLS end-to-end test skipped"))
    struct TLS {
        @Test func onlyWorkersWithTheClusterCertificateTakePart() async throws {
            let processes = try ProcessSet("tls")
            defer { processes.stopAll() }
            let certificates = try ClusterCertificates(in: processes.directory)
            let coordinatorPort = try #require(freeLoopbackPort())
            let coordinatorAddress = "tls+tcp://127.0.0.1:\(coordinatorPort)"

            // The intruder trusts the cluster CA, but its own certificate is from another CA. It tries to
            // register, and the coordinator is also told to dial it.
            let intruder = try processes.startWorker(
                "intruder", model: Models.small, register: coordinatorAddress, listen: "tls+tcp://127.0.0.1:0",
                extra: ["--temperature", "0"] + certificates.flags("intruder"))
            let intruderAddress = try await intruder.listeningAddress()
            let coordinator = try processes.startCoordinator(
                listen: coordinatorAddress, extra: ["--worker", intruderAddress] + certificates.flags("coordinator"))
            _ = try await Reference.text()
            let address = try await coordinator.listeningAddress()
            #expect(address == coordinatorAddress)
            let client = certificates.flags("coordinator")

            // Only the intruder: no drafts ever arrive; plain target decoding, exact.
            let alone = try await processes.generate("tls-fallback", greedyThrough(address, tokens: 30, extra: client))
            #expect(alone.status == 0, "\(alone)")
            #expect(try await Reference.matches(alone, tokens: 30), "\(alone)")
            #expect(alone.blockEfficiency == 1, "\(alone)")
            let intruderPattern = E2ETests.pattern(intruderAddress)
            // The coordinator dials it but never gets a describe answer through TLS: it never becomes
            // ready, so no round ever waits for it.
            #expect(coordinator.logCount("worker \(intruderPattern) ready") == 0, "\(coordinator.log)")
            #expect(coordinator.logCount("worker \(intruderPattern) added") == 1, "\(coordinator.log)")

            // A worker with a certificate from the cluster CA registers and is used.
            let worker = try processes.startWorker(
                "worker", model: Models.medium, register: address, listen: "tls+tcp://127.0.0.1:0",
                extra: ["--temperature", "0"] + certificates.flags("worker"))
            let workerAddress = try await worker.listeningAddress()
            try await E2ETests.waitReady(coordinator, [workerAddress])
            let together = try await processes.generate(
                "tls-cluster", greedyThrough(address, tokens: 40, extra: client))
            #expect(together.status == 0, "\(together)")
            #expect(try await Reference.matches(together, tokens: 40), "\(together)")
            #expect((together.blockEfficiency ?? 0) > 1, "\(together)")

            // By now the intruder has retried its registration several times (every second): never
            // admitted, never ready, and the coordinator never heard its registration.
            #expect(intruder.isRunning)
            #expect(coordinator.logCount("worker \(intruderPattern) ready") == 0, "\(coordinator.log)")
            #expect(coordinator.logCount("registration of intruder") == 0, "\(coordinator.log)")
            #expect(intruder.logCount("registered with") == 0, "\(intruder.log)")
            // Its first refused attempt is logged within its retry period (bounded wait: the cluster above may
            // finish before the intruder's first handshake has failed).
            let refused = await eventually(within: .seconds(30)) {
                intruder.logCount("coordinator \(E2ETests.pattern(address)) unreachable") >= 1
            }
            #expect(refused, "\(intruder.log)")
            #expect(worker.logCount("registered with") == 1, "\(worker.log)")

            // Clients need a certificate from the cluster CA as well.
            let stranger = try await processes.generate(
                "tls-stranger",
                greedyThrough(address, tokens: 5, extra: certificates.flags("intruder") + ["--timeout", "3"]),
                within: .seconds(60))
            #expect(stranger.status != 0 && stranger.status != nil, "\(stranger)")
            #expect(stranger.generatedTokens == nil, "\(stranger)")
        }
    }
}
