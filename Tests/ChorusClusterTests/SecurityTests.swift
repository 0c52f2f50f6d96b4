import ChorusModel
import ChorusSampling
import ChorusTestSupport
import ChorusTransport
import ChorusWire
import Foundation
import Synchronization
import Testing

@testable import ChorusCluster

/// A worker that lies about its law (DESIGN.md "Security model"): it always drafts `token` and claims
/// it drew it with probability 1e-6, so min(1, p/q) = 1 and the coordinator always accepts it. It
/// describes itself with the target's vocabulary, so nothing but authentication keeps it out.
final class SteeringWorker: Sendable {
    let token: Int
    let target: ModelIdentity
    let address: String
    /// Draft requests it could read (it cannot read sealed ones).
    let draftRequestsRead = Mutex(0)

    init(token: Int, target: ModelIdentity, address: String) {
        self.token = token
        self.target = target
        self.address = address
    }

    var draftRequestCount: Int { draftRequestsRead.withLock { $0 } }

    func handle(_ request: ReceivedRequest) throws -> [UInt8] {
        let vocabulary = target.vocabularySize
        switch try WireMessage.decode(request.body) {
        case .describe:
            let model = ModelIdentity(
                name: "honest-looking", fileHash: "", vocabularyHash: target.vocabularyHash,
                vocabularySize: vocabulary)
            return WireMessage.register(
                Registration(workerID: "mallory", address: address, model: model, sampling: .standard, sequences: 1)
            ).encoded()
        case let .draftRequest(r):
            draftRequestsRead.withLock { $0 += 1 }
            var claimed = [Double](repeating: (1 - 1e-6) / Double(vocabulary - 1), count: vocabulary)
            claimed[token] = 1e-6
            let law = WireDistribution(try TokenDistribution(probabilities: claimed))
            return WireMessage.draftReply(
                DraftReply(
                    session: r.session, round: r.round, workerID: "mallory",
                    sequences: [[Int](repeating: token, count: r.draftLength)],
                    distributions: [[WireDistribution](repeating: law, count: r.draftLength)], draftMicroseconds: 1)
            ).encoded()
        default:
            return WireMessage.error(ErrorReply(code: .invalidRequest, message: "no")).encoded()
        }
    }
}

/// The steering attack and the defences against it, over the in-process network with the same
/// `ClusterNetwork` security layer NNG gets; the key file and the refusal to run unprotected.
@Suite(.timeLimit(.minutes(3)))
struct SecurityTests {
    static let vocabulary = 10
    static let prompt = [3]
    static let quiet = ClusterLog(component: "security-test", minimum: .error)

    static func target() throws -> TableLanguageModel { try tableModel(n: vocabulary, seed: 41, name: "target") }

    /// The target's law of the first generated token (temperature 1) after `prompt`.
    static func firstTokenLaw(_ target: TableLanguageModel) throws -> TokenDistribution {
        try TokenDistribution(logits: target.table[prompt[0]], settings: SamplingSettings(temperature: 1))
    }

    /// The possible token the target likes least: the attacker's choice.
    static func steeredToken(_ target: TableLanguageModel) throws -> Int {
        let law = try firstTokenLaw(target)
        return try #require((0..<vocabulary).filter { law[$0] > 0 }.min { law[$0] < law[$1] })
    }

    static func coordinator(_ target: TableLanguageModel, network: ClusterNetwork) -> Coordinator {
        var options = Coordinator.Options()
        options.draftLength = 1
        options.deadline = .seconds(5)
        options.probeInterval = .milliseconds(20)
        return Coordinator(target: target, tokenizer: nil, options: options, connector: network.connector, log: quiet)
    }

    /// First generated tokens of `runs` seeded two-token generations.
    static func firstTokens(_ coordinator: Coordinator, runs: Int) async throws -> [Int] {
        var counts = [Int](repeating: 0, count: vocabulary)
        for run in 0..<runs {
            let result = try await coordinator.generate(
                prompt: prompt, maxTokens: 2, settings: SamplingSettings(temperature: 1),
                seed: UInt64(run) &* 7919 &+ 1)
            counts[result.tokens[0]] += 1
        }
        return counts
    }

    /// Without a key (the attacker's address allowed by `insecure`), the lying worker is admitted and
    /// its token comes first in every generation, although the target gives it p < 0.1. Under the
    /// target's law, 190 or more of 200 would have probability below 1e-150; the attack makes it
    /// certain (the test could only fail if the attacker missed more than 10 rounds of 5 s).
    @Test func steeringSucceedsWithoutAKey() async throws {
        let target = try Self.target()
        let x = try Self.steeredToken(target)
        #expect(try Self.firstTokenLaw(target)[x] < 0.1)
        let raw = InProcessNetwork()
        let address = "tcp://10.66.0.1:7101"
        let attacker = SteeringWorker(token: x, target: target.identity, address: address)
        let server = try raw.listen(on: address) { request in try? attacker.handle(request) }
        defer { server.close() }
        let network = ClusterNetwork.inProcess(raw, security: ClusterSecurity(insecure: true), log: Self.quiet)
        let coordinator = Self.coordinator(target, network: network)
        try await coordinator.addWorker(address: address)
        #expect(await eventually { await coordinator.workerStatuses.first?.state == .ready })

        let counts = try await Self.firstTokens(coordinator, runs: 200)
        #expect(counts[x] >= 190, "steered token \(x) came first \(counts[x]) times of 200: \(counts)")
        #expect(attacker.draftRequestCount >= 190)
        await coordinator.close()
    }

    /// With a cluster key the attacker (who does not hold it) is never admitted: it cannot read the
    /// coordinator's describe requests nor answer them acceptably, so it never gets a draft request and
    /// none of its replies is used. An honest worker with the key is used, and the first token follows
    /// the target's law: chi-square over the 10 tokens at the 1 − 1e-6 quantile (false-failure
    /// probability about 1e-6), and the steered token's count within its bounds.
    @Test func steeringFailsWithAKey() async throws {
        let target = try Self.target()
        let x = try Self.steeredToken(target)
        let key = try PresharedKey(bytes: Array(repeating: 0x5c, count: 32))
        let raw = InProcessNetwork()
        let network = ClusterNetwork.inProcess(raw, security: ClusterSecurity(key: key), log: Self.quiet)
        // The attacker listens on the same network, without the key.
        let attacker = SteeringWorker(token: x, target: target.identity, address: "inproc://mallory")
        let server = try raw.listen(on: "inproc://mallory") { request in try? attacker.handle(request) }
        defer { server.close() }
        let honest = try await WorkerService(
            worker: DraftWorker(
                model: try tableModel(n: Self.vocabulary, seed: 42, name: "draft"),
                configuration: .init(workerID: "honest"), advertisedAddress: "inproc://honest"),
            listen: "inproc://honest", network: network, register: nil, log: Self.quiet)
        defer { honest.close() }
        let coordinator = Self.coordinator(target, network: network)
        try await coordinator.addWorker(address: "inproc://mallory")
        try await coordinator.addWorker(address: "inproc://honest")
        #expect(
            await eventually {
                await coordinator.workerStatuses.first { $0.address == "inproc://honest" }?.state == .ready
            })

        let runs = 3000
        let counts = try await Self.firstTokens(coordinator, runs: runs)
        let statuses = await coordinator.workerStatuses
        let mallory = try #require(statuses.first { $0.address == "inproc://mallory" })
        let good = try #require(statuses.first { $0.address == "inproc://honest" })
        #expect(mallory.state != .ready)
        #expect(mallory.repliesUsed == 0)
        #expect(attacker.draftRequestCount == 0)
        #expect(server.requestsReceived > 0, "the coordinator did try to describe the attacker")
        #expect(good.repliesUsed >= runs / 2, "the honest keyed worker's drafts were used")

        let law = try Self.firstTokenLaw(target)
        let expected = (0..<Self.vocabulary).map { law[$0] * Double(runs) }
        let test = ChiSquareTest(observed: counts, expected: expected)
        #expect(test.impossibleObserved == 0)
        let threshold = test.threshold(z: ChiSquareTest.zOneInAMillion)
        #expect(test.statistic < threshold, "chi2 \(test.statistic) over \(threshold): \(counts) vs \(expected)")
        // The steered token, on its own: within 5 standard deviations of its expected count.
        let sd = (Double(runs) * law[x] * (1 - law[x])).squareRoot()
        #expect(abs(Double(counts[x]) - expected[x]) < 5 * sd + 1, "token \(x): \(counts[x]) vs \(expected[x])")
        await coordinator.close()
    }

    /// Registration with a keyed coordinator needs the key: a worker with it registers and is used; a
    /// plain registration (no key) is refused with an error that names `--key-file`, a registration
    /// under another key is dropped unanswered, and the coordinator never lists either.
    @Test func registrationNeedsTheKey() async throws {
        let target = try Self.target()
        let key = try PresharedKey(bytes: Array(repeating: 0x17, count: 40))
        let raw = InProcessNetwork()
        let network = ClusterNetwork.inProcess(raw, security: ClusterSecurity(key: key), log: Self.quiet)
        let coordinator = Self.coordinator(target, network: network)
        let service = try CoordinatorService(coordinator: coordinator, listen: "inproc://coordinator", network: network)
        defer { Task { await service.close() } }

        let plain = raw.client(for: try TransportAddress("inproc://coordinator"))
        let registration = Registration(
            workerID: "mallory", address: "inproc://mallory",
            model: ModelIdentity(
                name: "m", fileHash: "", vocabularyHash: target.identity.vocabularyHash,
                vocabularySize: Self.vocabulary),
            sampling: .standard, sequences: 1)
        let answer = try await plain.request(WireMessage.register(registration).encoded(), timeout: .seconds(5))
        guard case let .error(refusal) = try WireMessage.decode(answer) else {
            Issue.record("a plain registration was answered with \(try WireMessage.decode(answer))")
            return
        }
        #expect(refusal.message.contains("--key-file"), "\(refusal.message)")

        let wrongKey = try PresharedKey(bytes: Array(repeating: 0x18, count: 40))
        let stranger = try ClusterNetwork.inProcess(raw, security: ClusterSecurity(key: wrongKey), log: Self.quiet)
            .connect(to: "inproc://coordinator")
        let refused: Result<[UInt8], TransportError>
        do {
            refused = .success(
                try await stranger.request(WireMessage.register(registration).encoded(), timeout: .milliseconds(300)))
        } catch {
            refused = .failure(error)
        }
        #expect(refused == .failure(.timedOut(after: .milliseconds(300))))
        #expect(await coordinator.workerStatuses.isEmpty)

        let honest = try await WorkerService(
            worker: DraftWorker(
                model: try tableModel(n: Self.vocabulary, seed: 42, name: "draft"),
                configuration: .init(workerID: "honest")),
            listen: "inproc://honest", network: network, register: "inproc://coordinator", log: Self.quiet)
        defer { honest.close() }
        #expect(await eventually { await coordinator.workerStatuses.first?.state == .ready })
        #expect(await coordinator.workerStatuses.map(\.address) == ["inproc://honest"])
    }

    /// Without a key, TLS or `insecure`, nothing listens on or dials an address other hosts can reach;
    /// the refusal says why and names `--insecure`. Loopback, `ipc://` and `inproc://` stay allowed.
    @Test func unprotectedNonLoopbackIsRefused() async throws {
        let raw = InProcessNetwork()
        let network = ClusterNetwork.inProcess(raw, log: Self.quiet)
        for address in ["tcp://0.0.0.0:7101", "tcp://10.0.0.5:7101", "tcp://worker1:7101"] {
            do {
                _ = try network.listen(on: address) { _ in nil }
                Issue.record("listened on \(address) without protection")
            } catch {
                let message = "\(error)"
                #expect(message.contains("--insecure"), "\(message)")
                #expect(message.contains("--key-file"), "\(message)")
                #expect(message.contains("refusing to listen on \(address)"), "\(message)")
            }
        }
        do {
            _ = try network.connect(to: "tcp://10.0.0.5:7101")
            Issue.record("dialed a remote address without protection")
        } catch {
            #expect("\(error)".contains("refusing to dial tcp://10.0.0.5:7101"), "\(error)")
            #expect("\(error)".contains("--insecure"), "\(error)")
        }
        // A coordinator without a key refuses to dial a registered worker's public address, too.
        let coordinator = Self.coordinator(try Self.target(), network: network)
        await #expect(throws: (any Error).self) { try await coordinator.addWorker(address: "tcp://10.0.0.5:7101") }
        await coordinator.close()

        for address in ["tcp://127.0.0.1:7101", "tcp://localhost:7102", "tcp://[::1]:7103", "inproc://w", "ipc:///x"] {
            let listener = try network.listen(on: address) { _ in nil }
            listener.close()
        }
        let key = try PresharedKey(bytes: Array(repeating: 1, count: 32))
        let tls = TLSConfiguration(certificate: "c.pem", key: "k.pem", ca: "ca.pem")
        let remote = try TransportAddress("tcp://10.0.0.5:7101")
        let remoteTLS = try TransportAddress("tls+tcp://10.0.0.5:7101")
        #expect(throws: Never.self) { try ClusterSecurity(key: key).check(remote, .listen) }
        #expect(throws: Never.self) { try ClusterSecurity(insecure: true).check(remote, .register) }
        #expect(throws: Never.self) { try ClusterSecurity(tls: tls).check(remoteTLS, .dial) }
        #expect(throws: ClusterSecurityError.unprotected(address: remote.url, use: .dial)) {
            try ClusterSecurity(tls: tls).check(remote, .dial)  // TLS covers tls+tcp:// only
        }
        #expect(throws: ClusterSecurityError.unprotected(address: remoteTLS.url, use: .register)) {
            try ClusterSecurity().check(remoteTLS, .register)  // tls+tcp:// without certificates
        }
    }
}

/// The key file: format, length and permissions.
@Suite struct ClusterKeyFileTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("chorus-key-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ contents: [UInt8], mode: mode_t = 0o600) throws -> String {
        let path = directory.appendingPathComponent(name).path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(contents)))
        #expect(chmod(path, mode) == 0)
        return path
    }

    func problem(_ path: String) -> String? {
        do {
            _ = try ClusterKeyFile.load(path)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func generatedKeysLoad() throws {
        let text = ClusterKeyFile.generate()
        #expect(text.count == 65 && text.hasSuffix("\n"))
        #expect(text != ClusterKeyFile.generate())
        let path = try write("generated.key", Array(text.utf8))
        let key = try ClusterKeyFile.load(path)
        let hexBytes = try ClusterKeyFile.parse(Array(text.uppercased().utf8), path: "upper")
        #expect(key == hexBytes)  // hex digits in either case, whitespace around them ignored
    }

    @Test func rawBytesAndLengths() throws {
        let raw = (0..<32).map { UInt8($0 * 7 % 256) }
        #expect(problem(try write("raw.key", raw)) == nil)
        #expect(problem(try write("short-raw.key", Array(raw.prefix(31))))?.contains("at least 32 bytes") == true)
        let shortHex = String(repeating: "ab", count: 31)
        #expect(problem(try write("short-hex.key", Array(shortHex.utf8)))?.contains("got 31") == true)
        #expect(problem(try write("odd-hex.key", Array((shortHex + "abc").utf8)))?.contains("odd number") == true)
        #expect(problem(directory.appendingPathComponent("missing.key").path)?.contains("cannot read") == true)
    }

    @Test func permissions() throws {
        let key = Array(ClusterKeyFile.generate().utf8)
        let world = try write("world.key", key, mode: 0o644)
        #expect(problem(world)?.contains("chmod 600 \(world)") == true)
        // Group-readable: refused unless root owns the file (then it is how a service group shares it).
        let group = try write("group.key", key, mode: 0o640)
        if getuid() == 0 {
            #expect(problem(group) == nil, "root-owned, mode 640")
            #expect(chown(group, 65534, 65534) == 0)
        }
        #expect(problem(group)?.contains("group") == true)
    }

    @Test func configurationKeys() throws {
        let config = try ClusterConfiguration(
            yaml: "coordinator:\n  key_file: /etc/chorus/cluster.key\n  insecure: false\n"
                + "worker:\n  key_file: /etc/chorus/cluster.key\n  insecure: true\n")
        #expect(config.coordinator.keyFile == "/etc/chorus/cluster.key")
        #expect(!config.coordinator.insecure)
        #expect(config.worker.insecure)
        #expect(throws: ConfigurationError.self) { try ClusterConfiguration(yaml: "worker:\n  insecure: maybe\n") }
    }
}
