import ChorusModel
import ChorusSampling
import ChorusTestSupport
import ChorusTransport
import ChorusWire
import Synchronization
import Testing

@testable import ChorusCluster

/// A model that counts the target's forward passes (`scoreTree` calls) of every session it makes.
final class ForwardCountingModel: LanguageModel {
    let base: any LanguageModel
    let forwards = Mutex(0)

    init(_ base: any LanguageModel) { self.base = base }

    var identity: ModelIdentity { base.identity }
    var vocabularySize: Int { base.vocabularySize }
    var contextLength: Int { base.contextLength }
    func makeSession() throws -> any LanguageModelSession { Session(try base.makeSession(), model: self) }

    final class Session: LanguageModelSession {
        let base: any LanguageModelSession
        let model: ForwardCountingModel
        init(_ base: any LanguageModelSession, model: ForwardCountingModel) {
            self.base = base
            self.model = model
        }
        var length: Int { base.length }
        func append(_ tokens: [Int]) throws -> [Float] { try base.append(tokens) }
        func scoreTree(tokens: [Int], parents: [Int]) throws -> [[Float]] {
            model.forwards.withLock { $0 += 1 }
            return try base.scoreTree(tokens: tokens, parents: parents)
        }
        func extendTree(tokens: [Int], parents: [Int]) throws -> [[Float]] {
            model.forwards.withLock { $0 += 1 }
            return try base.extendTree(tokens: tokens, parents: parents)
        }
        func keepTreePath(_ path: [Int]) throws { try base.keepTreePath(path) }
        func keepTreePathAndBelow(_ path: [Int]) throws -> [Int] { try base.keepTreePathAndBelow(path) }
        func rollback(to length: Int) throws { try base.rollback(to: length) }
    }
}

/// The coordinator's parts: the scheme's needs checked before the forward, the collector's checks,
/// the session stream.
@Suite struct CoordinatorPartsTests {
    /// SpecTr needs identical drafts; two workers with different draft models cannot both be used.
    /// The coordinator keeps one worker's drafts before scoring: one forward per round, never two,
    /// and the text is still the target's (greedy: plain decoding).
    @Test func schemeNeedsAreCheckedBeforeTheForward() async throws {
        let table = try tableModel(n: 10, seed: 41, name: "target")
        let target = ForwardCountingModel(table)
        let network = InProcessNetwork()
        var servers: [InProcessServer] = []
        for w in 0..<2 {
            let draft = try tableModel(n: 10, seed: 50 + UInt64(w), name: "draft\(w)")
            let worker = DraftWorker(model: draft, configuration: .init(workerID: "w\(w)", sequences: 2))
            servers.append(
                try network.listen(on: "inproc://w\(w)") { request in await worker.handle(bytes: request.body) })
        }
        var options = Coordinator.Options()
        options.scheme = SpecTrScheme()
        options.deadline = .seconds(10)
        let coordinator = Coordinator(
            target: target, tokenizer: nil, options: options, connector: network,
            log: ClusterLog(component: "test", minimum: .error))
        for w in 0..<2 { try await coordinator.addWorker(address: "inproc://w\(w)") }
        let ready = await eventually(within: .seconds(30)) {
            await coordinator.workerStatuses.allSatisfy { $0.state == .ready }
        }
        try #require(ready)
        let result = try await coordinator.generate(prompt: [1, 2], maxTokens: 30, settings: .greedy, seed: 3)
        await coordinator.close()
        for server in servers { server.close() }

        #expect(try result.tokens == plainGreedy(table, prompt: [1, 2], count: 30))
        // The session's target scored the prompt once (append) and each round exactly once.
        #expect(target.forwards.withLock { $0 } == result.rounds.count)
        #expect(result.statistics.targetForwards == result.rounds.count)
        // Rounds with drafts verified one worker's two sequences, not four.
        let drafted = result.rounds.filter { $0.drafts > 0 }
        #expect(!drafted.isEmpty)
        #expect(drafted.allSatisfy { $0.drafts == 2 })
    }

    @Test func draftsAreTrimmedToTheShortestAndTheLimit() throws {
        let law = try TokenDistribution(probabilities: [0.5, 0.5])
        let a = DraftSequence(tokens: [0, 1, 0], distributions: [law, law, law], lawGroup: 0)
        let b = DraftSequence(tokens: [1, 1], distributions: [law, law], lawGroup: 1)
        #expect([a, b].trimmed(to: 5).map(\.tokens) == [[0, 1], [1, 1]])
        #expect([a, b].trimmed(to: 1).map(\.tokens) == [[0], [1]])
        #expect([a, b].trimmed(to: 0).isEmpty)
        #expect([DraftSequence]().trimmed(to: 3).isEmpty)
    }

    @Test func lawChecksSeeSharedPrefixesOnly() throws {
        let even = try TokenDistribution(probabilities: [0.5, 0.5])
        let skewed = try TokenDistribution(probabilities: [0.9, 0.1])
        // One group, same first token, different laws at position 2: a broken promise.
        let a = DraftSequence(tokens: [0, 1], distributions: [even, even], lawGroup: 0)
        let b = DraftSequence(tokens: [0, 0], distributions: [even, skewed], lawGroup: 0)
        #expect([a, b].lawGroupProblem() != nil)
        // Different first tokens: the laws after them may differ.
        let c = DraftSequence(tokens: [1, 0], distributions: [even, skewed], lawGroup: 0)
        #expect([a, c].lawGroupProblem() == nil)
        // Across groups: identical only if every shared position has one law.
        let d = DraftSequence(tokens: [0, 1], distributions: [even, even], lawGroup: 1)
        let e = DraftSequence(tokens: [0, 1], distributions: [skewed, even], lawGroup: 1)
        #expect([a, d].haveIdenticalLaws)
        #expect(![a, e].haveIdenticalLaws)
    }

    @Test func streamPublishesAndEnds() async throws {
        let stream = SessionStream(session: 7, tokenizer: nil)
        let changes = stream.changes()
        stream.publish([4, 5], statistics: GenerationStatistics())
        #expect(stream.update(from: 0).tokens == [4, 5])
        #expect(stream.update(from: 1).tokens == [5])
        #expect(stream.update(from: 9).from == 2)
        #expect(!stream.update(from: 0).done)
        stream.finish(reason: "length", statistics: GenerationStatistics())
        var seen = 0
        for await _ in changes { seen += 1 }
        #expect(seen >= 1)
        #expect(stream.update(from: 0).done)
        #expect(stream.update(from: 0).finishReason == "length")
        // A finished stream's changes end at once; a wait returns without sleeping its timeout.
        for await _ in stream.changes() { Issue.record("a finished stream yielded") }
        await stream.wait(beyond: 2, timeout: .seconds(3600), clock: .continuous)
    }

    /// No silent fallback (issue 1/4): a configured worker that never answers is logged with the reason, the
    /// session's rounds say they run on the target alone, and the result carries a warning for the client.
    @Test func aClusterWithoutReadyWorkersSaysSo() async throws {
        let table = try tableModel(n: 10, seed: 41, name: "target")
        let network = InProcessNetwork()
        let lines = Mutex<[String]>([])
        var options = Coordinator.Options()
        options.deadline = .milliseconds(200)
        options.probeInterval = .milliseconds(50)
        let coordinator = Coordinator(
            target: table, tokenizer: nil, options: options, connector: network,
            log: ClusterLog(component: "test", minimum: .warning) { line in lines.withLock { $0.append(line) } })
        try await coordinator.addWorker(address: "inproc://nobody")  // nothing listens there
        let logged = await eventually(within: .seconds(30)) {
            lines.withLock { $0.contains { $0.contains("worker inproc://nobody not ready: describe failed") } }
        }
        #expect(logged, "\(lines.withLock { $0 })")
        let result = try await coordinator.generate(prompt: [1, 2], maxTokens: 5, settings: .greedy, seed: 3)
        await coordinator.close()
        #expect(result.statistics.draftsReceived == 0)
        #expect(result.statistics.warnings.count == 1)
        #expect(result.statistics.warnings.first?.contains("no drafts were used") == true)
        let sessionLines = lines.withLock { $0.filter { $0.contains("no worker ready (1 known)") } }
        #expect(sessionLines.count == 1, "said once per session: \(sessionLines)")
        // The reason is logged once, not at every probe.
        #expect(lines.withLock { $0.filter { $0.contains("inproc://nobody not ready") }.count } == 1)
    }
}
