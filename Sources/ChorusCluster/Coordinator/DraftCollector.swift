import ChorusSampling
import ChorusTransport
import ChorusWire

/// One round's fan-out: sends the draft request to every ready worker, keeps the valid replies that
/// arrive before the round's deadline (``ReplyDeadline``; late requests time out) and before the straggler cut
/// (``stragglerCutoff(firstReply:)``), and returns their sequences as ``DraftSequence``s, one law group per
/// worker. Validation happens here, once, so the round loop builds its tree from drafts that are known to fit.
///
/// Stragglers (issue 11: "a worker that is consistently late gets fewer drafts, not a stalled round"). The
/// learned deadline follows the replies it uses, so one slow worker among fast ones would teach it to wait for
/// the slow one every round. So, with a learned deadline (a fixed `--deadline-ms` waits for every worker up to
/// it, as asked), once the first worker has answered the others get until ``stragglerCutoff(firstReply:)``; a
/// request still out then is cancelled and counts as late
/// (``WorkerRegistry/record(_:session:round:)``: late twice in a row, the worker is skipped until a probe answers,
/// with a growing back-off), so a worker that is consistently late drafts in fewer rounds and never holds one up.
/// Exactness: when a reply arrives depends on the worker's speed and load, not on the tokens it drew (they come
/// from generators fixed by the request's seed), so keeping the replies that arrive in time, as the deadline
/// already does, keeps each a draw from the law it carries.
struct DraftCollector: Sendable {
    /// The straggler cut: how long after sending a round waits for more replies once one has arrived after
    /// `firstReply` — twice that time plus 10 ms (replies up to twice as slow as the fastest are kept, and a
    /// millisecond of scheduling noise never cuts one).
    static func stragglerCutoff(firstReply: Duration) -> Duration { firstReply * 2 + .milliseconds(10) }

    var vocabularySize: Int
    /// Sequences per worker per round; 0: each worker's own setting.
    var sequencesPerWorker: Int
    /// nil: each worker drafts with its own settings; otherwise every worker uses these.
    var draftSampling: SamplingSettings?
    /// The coordinator's clock: the straggler cut sleeps on it.
    var clock: ClusterClock

    /// What one round asks for.
    struct Request: Sendable {
        var session: UInt64
        var round: UInt64
        /// The accepted context (prompt and generated tokens).
        var context: [Int]
        /// The generation's seed; each worker's draft seed derives from it.
        var seed: UInt64
        /// L: tokens per sequence (replies may be shorter, never longer).
        var length: Int
        /// How long each worker's reply may take.
        var deadline: ReplyDeadline
    }

    /// A round's drafts, what happened to each worker, and the traffic.
    struct Collection: Sendable {
        var drafts: [DraftSequence] = []
        var outcomes: [(address: String, outcome: WorkerRegistry.Outcome)] = []
        var requestBytes = 0
        var replyBytes = 0
        /// The longest drafting time a worker reported, in microseconds.
        var workerDraftTime: Int64 = 0
        /// Replies answered from drafts made ahead (draft-ahead cache hits).
        var aheadHits = 0
        /// Round-trip times of the used replies, microseconds (what the deadline learns from).
        var replyTimes: [Int64] = []
        /// Drafted tokens (each with its law) in the valid replies.
        var draftTokens = 0
        /// Thread CPU time spent decoding and checking the replies, in microseconds.
        var validationCPU: Int64 = 0
    }

    /// The seed of worker `i`'s draft request in a round, from the generation's seed (not the session
    /// id), so a seeded generation drafts the same tokens every time the same workers answer.
    static func draftSeed(_ seed: UInt64, round: UInt64, worker i: Int) -> UInt64 {
        var rng = ChorusRandom(seed: seed).derived(round &* 1024 &+ UInt64(i))
        return rng.next()
    }

    func collect(_ request: Request, from workers: [WorkerRegistry.Worker]) async -> Collection {
        var collection = Collection()
        guard !workers.isEmpty else { return collection }
        let hash = ContextHash(request.context).value
        let requests = workers.enumerated().map { i, worker in draftRequest(request, to: worker, index: i, hash: hash) }
        let messages = requests.map { WireMessage.draftRequest($0).encoded() }
        let clock = clock
        let answers = await withTaskGroup(of: Answer?.self) { group in
            for (i, worker) in workers.enumerated() {
                let bytes = messages[i]
                let timeout = request.deadline.request(newTokens: requests[i].newTokens.count)
                group.addTask { await Answer.ask(worker.transport, bytes, timeout: timeout, index: i) }
            }
            var collected: [Answer] = []
            var cutting = false
            var cut = false
            for await answer in group {
                guard var answer else {  // the straggler cut: the requests still out are cancelled
                    if collected.count < workers.count {
                        cut = true
                        group.cancelAll()
                    }
                    continue
                }
                if cut, case .failure(.cancelled) = answer.result {
                    answer.result = .failure(.timedOut(after: answer.elapsed))  // late, as a deadline miss
                }
                collected.append(answer)
                if collected.count == workers.count {
                    group.cancelAll()  // the cut's timer, if any
                } else if !cutting, request.deadline.fixed == nil, case .success = answer.result {
                    cutting = true
                    let wait = Self.stragglerCutoff(firstReply: answer.elapsed) - answer.elapsed
                    group.addTask {
                        try? await clock.sleep(for: wait)
                        return nil
                    }
                }
            }
            return collected.sorted { $0.index < $1.index }
        }
        collection.requestBytes = messages.reduce(0) { $0 + $1.count }
        for answer in answers {
            let worker = workers[answer.index]
            switch answer.result {
            case let .failure(error):
                collection.outcomes.append((worker.address, .missed(error)))
            case let .success(bytes):
                collection.replyBytes += bytes.count
                let cpuStart = ThreadCPUTime.microseconds()
                defer { collection.validationCPU += ThreadCPUTime.microseconds() - cpuStart }
                switch validate(bytes, group: worker.group, request: request) {
                case let .success((drafts, micros, ahead)):
                    collection.outcomes.append(
                        (worker.address, .used(context: request.context, seed: requests[answer.index].seed)))
                    collection.drafts += drafts
                    collection.draftTokens += drafts.reduce(0) { $0 + $1.tokens.count }
                    collection.workerDraftTime = max(collection.workerDraftTime, micros)
                    if ahead { collection.aheadHits += 1 }
                    collection.replyTimes.append(answer.elapsed.microseconds)
                case let .failure(problem):
                    collection.outcomes.append((worker.address, .dropped(problem.message)))
                }
            }
        }
        return collection
    }

    /// One worker's answer to the round's request.
    struct Answer: Sendable {
        var index: Int
        var result: Result<[UInt8], TransportError>
        /// From sending the request to the answer (or the failure).
        var elapsed: Duration

        static func ask(_ transport: any DraftTransport, _ bytes: [UInt8], timeout: Duration, index: Int) async
            -> Answer
        {
            let sent = ContinuousClock.now
            do throws(TransportError) {
                let reply = try await transport.request(bytes, timeout: timeout)
                return Answer(index: index, result: .success(reply), elapsed: .now - sent)
            } catch {
                return Answer(index: index, result: .failure(error), elapsed: .now - sent)
            }
        }
    }

    /// The request for worker `i`: only the tokens its cache does not hold yet.
    func draftRequest(_ request: Request, to worker: WorkerRegistry.Worker, index i: Int, hash: UInt64) -> DraftRequest
    {
        let context = request.context
        let cached = worker.cachedContext
        let keep = cached.count <= context.count && Array(context[0..<cached.count]) == cached ? cached.count : 0
        return DraftRequest(
            session: request.session, round: request.round, keepLength: keep, newTokens: Array(context[keep...]),
            contextHash: hash, draftLength: request.length, sequences: sequencesPerWorker,
            useWorkerSampling: draftSampling == nil, sampling: draftSampling ?? .standard,
            seed: worker.nextSeed ?? Self.draftSeed(request.seed, round: request.round, worker: i),
            deadlineMilliseconds: Int(request.deadline.request(newTokens: context.count - keep).microseconds / 1000))
    }

    struct ReplyProblem: Error {
        var message: String
    }

    /// Validates one reply: the right session and round; sequences of 1…L tokens over the target's
    /// vocabulary, each with one law per token under which the token is possible; and sequences
    /// that share a prefix agree on the law after it (the promise of one law group, checked here
    /// with ``DraftTree/lawTolerance`` so the round's tree never fails on it).
    func validate(_ bytes: [UInt8], group: Int, request: Request) -> Result<
        ([DraftSequence], Int64, Bool), ReplyProblem
    > {
        let message: WireMessage
        do {
            message = try WireMessage.decode(bytes)
        } catch {
            return .failure(ReplyProblem(message: "malformed: \(error)"))
        }
        switch message {
        case let .error(e):
            return .failure(ReplyProblem(message: "worker error \(e.code): \(e.message)"))
        case let .draftReply(reply):
            guard reply.session == request.session, reply.round == request.round else {
                return .failure(ReplyProblem(message: "reply for session \(reply.session) round \(reply.round)"))
            }
            guard reply.sequences.count == reply.distributions.count else {
                return .failure(
                    ReplyProblem(
                        message: "\(reply.sequences.count) sequences with \(reply.distributions.count) law lists"))
            }
            var drafts: [DraftSequence] = []
            for (tokens, wires) in zip(reply.sequences, reply.distributions) {
                guard tokens.count >= 1, tokens.count <= request.length, wires.count == tokens.count else {
                    return .failure(
                        ReplyProblem(
                            message: "sequence of \(tokens.count) tokens with \(wires.count) laws, "
                                + "asked for \(request.length)"))
                }
                var laws: [TokenDistribution] = []
                for (t, wire) in zip(tokens, wires) {
                    guard wire.vocabularySize == vocabularySize, t >= 0, t < vocabularySize else {
                        return .failure(ReplyProblem(message: "token \(t) or law over \(wire.vocabularySize) tokens"))
                    }
                    // A quantized law decodes to a sparse law (its support only): no vector of n entries.
                    guard let law = try? wire.decoded(), law[t] > 0 else {
                        return .failure(ReplyProblem(message: "token \(t) is impossible under the law sent with it"))
                    }
                    laws.append(law)
                }
                drafts.append(DraftSequence(tokens: tokens, distributions: laws, lawGroup: group))
            }
            if let problem = drafts.lawGroupProblem() {
                return .failure(ReplyProblem(message: "inconsistent drafts: \(problem)"))
            }
            return .success((drafts, Int64(reply.draftMicroseconds), reply.fromDraftAhead))
        default:
            return .failure(ReplyProblem(message: "unexpected message kind"))
        }
    }
}
