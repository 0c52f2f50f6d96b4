import ChorusModel
import ChorusSampling
import ChorusTestSupport
import ChorusTransport
import ChorusWire
import Testing

@testable import ChorusCluster

/// The three services over the in-process network (the same code as over NNG, no sockets).
@Suite struct ServiceTests {
    /// A 10-token SentencePiece vocabulary for the table models: BOS 1, no EOS (generations run to
    /// their length), `▁a` 3, `▁b` 4, letters 5…9.
    static func tokenizer() throws -> Tokenizer {
        try Tokenizer(
            sentencePieceTokens: ["<unk>", "<s>", "</s>", "▁a", "▁b", "a", "b", "c", "d", "e"], scores: nil, eos: nil)
    }

    static func worker(_ index: Int, sequences: Int = 2) throws -> DraftWorker {
        DraftWorker(
            model: try tableModel(n: 10, seed: 50 + UInt64(index), name: "draft\(index)"),
            configuration: .init(workerID: "w\(index)", sequences: sequences),
            advertisedAddress: "inproc://w\(index)")
    }

    @Test func workerServiceAnswersDescribeAndDraftRequests() async throws {
        let network = InProcessNetwork()
        let service = try await WorkerService(
            worker: try Self.worker(0, sequences: 3), listen: "inproc://w0", network: .inProcess(network),
            register: nil, log: ClusterLog(component: "test", minimum: .error))
        #expect(service.address.url == "inproc://w0")
        let client = network.client(for: service.address)
        guard
            case let .register(description) = try WireMessage.decode(
                try await client.request(WireMessage.describe.encoded(), timeout: .seconds(10)))
        else {
            Issue.record("describe was not answered with a registration")
            return
        }
        #expect(description.workerID == "w0")
        #expect(description.address == "inproc://w0")
        #expect(description.sequences == 3)
        let context = [1, 3, 4]
        let request = DraftRequest(
            session: 9, round: 1, keepLength: 0, newTokens: context, contextHash: ContextHash(context).value,
            draftLength: 4, sequences: 0, sampling: .standard, seed: 5, deadlineMilliseconds: 10_000)
        guard
            case let .draftReply(reply) = try WireMessage.decode(
                try await client.request(WireMessage.draftRequest(request).encoded(), timeout: .seconds(10)))
        else {
            Issue.record("the draft request was not answered with drafts")
            return
        }
        #expect(reply.session == 9 && reply.round == 1)
        #expect(reply.sequences.count == 3)
        #expect(reply.sequences.allSatisfy { $0.count == 4 })
        // Closed: the address is free again and requests no longer reach the worker.
        service.close()
        await #expect(throws: TransportError.self) {
            _ = try await client.request(WireMessage.describe.encoded(), timeout: .milliseconds(100))
        }
    }

    /// A worker started with `register` joins a coordinator by itself, at its advertised address.
    @Test func workerServiceRegistersWithTheCoordinatorService() async throws {
        let network = InProcessNetwork()
        let coordinator = Coordinator(
            target: try tableModel(n: 10, seed: 41, name: "target"), tokenizer: nil, options: .init(),
            connector: network, log: ClusterLog(component: "test", minimum: .error))
        let endpoint = try CoordinatorService(
            coordinator: coordinator, listen: "inproc://coordinator", network: .inProcess(network))
        let worker = try await WorkerService(
            worker: try Self.worker(0), listen: "inproc://w0", network: .inProcess(network),
            register: "inproc://coordinator", heartbeat: .milliseconds(50),
            log: ClusterLog(component: "test", minimum: .error))
        let joined = await eventually(within: .seconds(30)) {
            await coordinator.workerStatuses.contains { $0.address == "inproc://w0" && $0.state == .ready }
        }
        #expect(joined)
        #expect(await coordinator.workerStatuses.first?.workerID == "w0")
        worker.close()
        await endpoint.close()
    }

    /// A client's generation through the coordinator's endpoint equals plain greedy decoding of the
    /// target, and its streamed updates add up to the tokens and the text of the final answer.
    @Test func clientGenerationThroughTheServiceEqualsPlainDecoding() async throws {
        let network = InProcessNetwork()
        let tokenizer = try Self.tokenizer()
        let target = try tableModel(n: 10, seed: 41, name: "target")
        let workers = try (0..<2).map { i in
            try network.listen(on: "inproc://w\(i)") { [worker = try Self.worker(i)] request in
                await worker.handle(bytes: request.body)
            }
        }
        let coordinator = Coordinator(
            target: target, tokenizer: tokenizer, options: .init(), connector: network,
            log: ClusterLog(component: "test", minimum: .error))
        for i in 0..<2 { try await coordinator.addWorker(address: "inproc://w\(i)") }
        let ready = await eventually(within: .seconds(30)) {
            await coordinator.workerStatuses.allSatisfy { $0.state == .ready }
        }
        try #require(ready)
        let endpoint = try CoordinatorService(
            coordinator: coordinator, listen: "inproc://coordinator", network: .inProcess(network))
        let client = try CoordinatorClient(address: "inproc://coordinator", network: .inProcess(network))

        let prompt = tokenizer.encode("a b", addSpecial: true)
        #expect(prompt == [1, 3, 4])
        var streamed: [Int] = []
        var text = ""
        let last = try await client.generate(
            GenerateStart(prompt: "a b", maxTokens: 30, sampling: .greedy, seed: 1)
        ) { update in
            #expect(update.from == streamed.count, "updates continue where the last one ended")
            streamed += update.tokens
            text += update.text
        }
        #expect(last.done)
        #expect(last.finishReason == "length")
        #expect(streamed == (try plainGreedy(target, prompt: prompt, count: 30)))
        #expect(text == tokenizer.decode(streamed))
        #expect(last.statistics.generatedTokens == 30)
        #expect(last.statistics.blockEfficiency > 1, "the workers' drafts were used")
        client.close()
        await endpoint.close()
        for w in workers { w.close() }
    }

    /// The endpoint's refusals reach the client as errors that say why.
    @Test func clientSeesRefusals() async throws {
        let network = InProcessNetwork()
        let coordinator = Coordinator(
            target: try tableModel(n: 10, seed: 41, name: "target"), tokenizer: nil, options: .init(),
            connector: network, log: ClusterLog(component: "test", minimum: .error))
        let endpoint = try CoordinatorService(
            coordinator: coordinator, listen: "inproc://coordinator", network: .inProcess(network))
        let client = try CoordinatorClient(
            address: "inproc://coordinator", network: .inProcess(network), timeout: .seconds(10))
        await #expect {
            _ = try await client.generate(GenerateStart(prompt: "a", maxTokens: 3, sampling: .greedy, seed: 1)) { _ in }
        } throws: { error in
            guard case let .refused(message) = error as? CoordinatorClient.ClientError else { return false }
            return message.contains("no tokenizer")
        }
        client.close()
        await endpoint.close()
    }
}
