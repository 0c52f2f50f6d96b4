import ChorusModel
import ChorusSampling
import ChorusWire

/// Serving several sessions at once (issue 12, "many clients at once", on the worker's side).
///
/// Requests join a queue. A request that finds the worker idle is served at once, alone (nothing waits for
/// company); the requests that arrive meanwhile — other generation sessions' rounds, usually released together by
/// the coordinator's batched target forward — are served together by the next batch: each is set up (its drafts
/// found among those made ahead, or its context brought into the cache), then every draft step of all of them
/// is ONE forward pass of the draft model, each session's rows extending its own pending tree on its own KV cache
/// (``LanguageModel/extendTrees(_:tokens:parents:)``). Drafting ahead runs between batches, all sessions' plans
/// stepping together in the same way.
///
/// Exactness. What a batch changes is which rows share a forward pass, never a row's arithmetic (the engine's
/// rows are independent) nor any draw: sequence s of a request draws from the generator fixed by (seed, s), in
/// the order of its own positions, whoever else is in the batch. A reply is therefore token for token and law
/// for law the one the worker sends serving that request alone (``Configuration/batchSessions`` false).
extension DraftWorker {
    /// A request waiting for the next batch.
    struct Waiting {
        let request: DraftRequest
        let receivedAt: ContinuousClock.Instant
        let reply: CheckedContinuation<WireMessage, Never>
    }

    /// A request being drafted in a batch: its session, what it asks for, and its sequences so far.
    final class Job {
        let request: DraftRequest
        let entry: Entry
        let context: [Int]
        let settings: SamplingSettings
        /// Sequences asked for, and tokens per sequence.
        let count: Int
        let length: Int
        let started: ContinuousClock.Instant
        var streams: [DraftStream] = []
        /// Context tokens still to bring into the cache before drafting starts: a chain of rows on the empty
        /// pending tree, scored in the batch's first forward pass.
        var catchUp: [Int] = []
        /// The branch drafted ahead that holds this request's drafts (nil: drafted afresh).
        var branch: Ahead.Branch?
        /// The step whose rows the current forward pass scores.
        var step: Step?

        init(
            request: DraftRequest, entry: Entry, context: [Int], settings: SamplingSettings, count: Int, length: Int,
            started: ContinuousClock.Instant
        ) {
            self.request = request
            self.entry = entry
            self.context = context
            self.settings = settings
            self.count = count
            self.length = length
            self.started = started
        }

        var isDrafted: Bool { catchUp.isEmpty && streams.allSatisfy { $0.tokens.count >= length } }
    }

    /// Longest context catch-up scored as rows of a shared forward pass; a longer one (a new session's prompt)
    /// is appended alone, in chunks, before the batch (every row of a shared pass computes its logits).
    static let sharedCatchUp = 16

    /// Serves one draft request: a `.draftReply` or an `.error`. Requests of other sessions waiting at the same
    /// moment are drafted in the same forward passes. A request that finds the worker idle is served by its own
    /// task, with the requests already on their way; later ones wait for the next batch.
    public func handle(_ request: DraftRequest, receivedAt: ContinuousClock.Instant = .now) async -> WireMessage {
        guard !serving else {
            return await withCheckedContinuation { reply in
                waiting.append(Waiting(request: request, receivedAt: receivedAt, reply: reply))
            }
        }
        serving = true
        // Requests already on their way to the actor join this batch.
        await Task.yield()
        let others = nextBatch(after: request.session)
        let replies = serve([(request, receivedAt)] + others.map { ($0.request, $0.receivedAt) })
        for (w, reply) in zip(others, replies.dropFirst()) { w.reply.resume(returning: reply) }
        if waiting.isEmpty {
            serving = false
            startDraftingAhead()
        } else {
            Task { await serveWaiting() }
        }
        return replies.first ?? .error(ErrorReply(code: .internalError, message: "request not served"))
    }

    /// Takes the waiting requests that join a batch: one per session, none of session `taken` (the batch's own
    /// request), and none at all without batching when the batch has its request.
    private func nextBatch(after taken: UInt64?) -> [Waiting] {
        var batch: [Waiting] = []
        var later: [Waiting] = []
        var sessionsInBatch: Set<UInt64> = taken.map { [$0] } ?? []
        for w in waiting {
            let fits = configuration.batchSessions || sessionsInBatch.isEmpty
            if fits, sessionsInBatch.insert(w.request.session).inserted { batch.append(w) } else { later.append(w) }
        }
        waiting = later
        return batch
    }

    /// Serves the waiting requests, batch after batch, then lets drafting ahead run.
    private func serveWaiting() async {
        while true {
            // Requests already on their way to the actor join this batch.
            await Task.yield()
            let batch = nextBatch(after: nil)
            guard !batch.isEmpty else { break }
            let replies = serve(batch.map { ($0.request, $0.receivedAt) })
            for (w, reply) in zip(batch, replies) { w.reply.resume(returning: reply) }
        }
        serving = false
        startDraftingAhead()
    }

    /// Drafts a batch of requests of distinct sessions together; their replies, in order.
    func serve(_ requests: [(request: DraftRequest, receivedAt: ContinuousClock.Instant)]) -> [WireMessage] {
        var answers = [WireMessage?](repeating: nil, count: requests.count)
        var drafting: [(index: Int, job: Job)] = []
        for (i, r) in requests.enumerated() {
            switch begin(r.request, receivedAt: r.receivedAt) {
            case let .answered(message): answers[i] = message
            case let .drafting(job) where job.isDrafted: answers[i] = finish(job)
            case let .drafting(job): drafting.append((i, job))
            }
        }
        while !drafting.isEmpty {
            do {
                try forward(drafting.map(\.job))
            } catch {
                // Every request was checked, so the engine refuses none; should it, those requests fail and
                // their sessions start over (the coordinator drafts without them this round).
                for (i, job) in drafting {
                    sessions[job.request.session] = nil
                    answers[i] = .error(ErrorReply(code: .internalError, message: "\(error)"))
                }
                break
            }
            drafting = drafting.filter { i, job in
                guard job.isDrafted else { return true }
                answers[i] = finish(job)
                return false
            }
        }
        return answers.map { $0 ?? .error(ErrorReply(code: .internalError, message: "request not served")) }
    }

    /// What setting a request up gave: its answer already (an error, or drafts that need no forward pass left),
    /// or a job for the batch's forward passes.
    enum Begun {
        case answered(WireMessage)
        case drafting(Job)
    }

    /// Sets a request up: checks it, finds its drafts among those made ahead or brings its context into the
    /// cache (or lines up the catch-up rows for the batch's first forward pass), and starts its sequences.
    func begin(_ request: DraftRequest, receivedAt: ContinuousClock.Instant) -> Begun {
        let started = ContinuousClock.now
        if started - receivedAt > .milliseconds(request.deadlineMilliseconds) {
            counters.expired += 1
            return .answered(
                .error(
                    ErrorReply(
                        code: .deadlineExpired, message: "request of round \(request.round) waited past its deadline")))
        }
        do {
            return .drafting(try prepare(request, started: started))
        } catch let error as WorkerFailure {
            if case .contextMismatch = error { counters.contextMismatches += 1 }
            return .answered(.error(error.reply))
        } catch {
            sessions[request.session] = nil
            return .answered(.error(ErrorReply(code: .internalError, message: "\(error)")))
        }
    }

    /// Checks a request against the session's cache and sets up its drafting (see ``begin(_:receivedAt:)``).
    private func prepare(_ request: DraftRequest, started: ContinuousClock.Instant) throws -> Job {
        let vocabulary = model.vocabularySize
        for t in request.newTokens where t >= vocabulary {
            throw WorkerFailure.invalid("token \(t) outside the worker's vocabulary of \(vocabulary)")
        }
        let entry = try entry(for: request.session)
        guard request.keepLength <= entry.context.count else {
            sessions[request.session] = nil
            throw WorkerFailure.contextMismatch(
                "worker holds \(entry.context.count) tokens of session \(request.session), asked to keep \(request.keepLength)"
            )
        }
        let context = Array(entry.context[0..<request.keepLength]) + request.newTokens
        guard ContextHash(context).value == request.contextHash else {
            sessions[request.session] = nil
            throw WorkerFailure.contextMismatch(
                "context hash differs for session \(request.session); resend the context")
        }
        guard !context.isEmpty else { throw WorkerFailure.invalid("empty context") }
        let room = model.contextLength - context.count
        let length = min(request.draftLength, room)
        guard length >= 1 else {
            throw WorkerFailure.invalid("context of \(context.count) tokens leaves no room to draft")
        }
        let settings = request.useWorkerSampling ? configuration.sampling : request.sampling
        let count = request.sequences == 0 ? configuration.sequences : request.sequences
        entry.observe(acceptedContext: context)
        let job = Job(
            request: request, entry: entry, context: context, settings: settings, count: count, length: length,
            started: started)

        // Drafted ahead? Then the drafts are those a fresh draft below would make (same seed, same logits); the
        // branch's streams finish on the plan's tree if they are short.
        if let branch = aheadBranch(
            entry, context: context, seed: request.seed, settings: settings, count: count, length: length)
        {
            counters.aheadHits += 1
            entry.ahead = nil
            job.branch = branch
            job.streams = branch.streams
            return job
        }
        if entry.ahead != nil { counters.aheadMisses += 1 }
        try entry.dropAhead()

        // Bring the KV cache to `context`; keep the logits after its last token.
        let session = entry.session
        let treeFits = count * (length - 1) <= model.contextLength - context.count
        let cachedLogits =
            request.keepLength == entry.context.count && request.newTokens.isEmpty
                && session.length == context.count ? entry.lastLogits : nil
        entry.context = context
        if let cachedLogits {
            entry.lastLogits = cachedLogits
        } else {
            let keep = min(request.keepLength, session.length)
            let reuse = request.newTokens.isEmpty ? max(keep - 1, 0) : keep
            try session.rollback(to: reuse)
            entry.lastLogits = nil
            let missing = Array(context[reuse...])
            if treeFits, missing.count <= Self.sharedCatchUp {
                // Scored in the batch's first forward pass, as a chain on the empty tree.
                try entry.startTree()
                job.catchUp = missing
                return job
            }
            entry.lastLogits = try session.append(missing)
        }
        let baseLogits = entry.lastLogits ?? []
        job.streams = Self.streams(seed: request.seed, count: count, logits: baseLogits)
        if treeFits {
            // All sequences as rows of one forward pass per step: they grow as branches of one tree hanging off
            // the context (extendTree), so each weight is read once per step for all of them (and for the other
            // sessions of the batch). A row's logits equal decoding that sequence alone.
            try entry.startTree()
        } else {
            // Near the end of the context there is no room for every branch at once: one sequence at a time, alone.
            for s in 0..<count {
                for position in 0..<length {
                    try job.streams[s].draw(settings: settings)
                    if position < length - 1 {
                        job.streams[s].logits = try session.append([job.streams[s].tokens[position]])
                    }
                }
                try session.rollback(to: context.count)
            }
        }
        return job
    }

    /// A request's sequences before anything is drafted: sequence s draws from its own generator, fixed by
    /// (seed, s), starting from `logits` (after the context).
    static func streams(seed: UInt64, count: Int, logits: [Float]) -> [DraftStream] {
        (0..<count).map {
            DraftStream(generator: DraftStream.generator(seed: seed, sequence: $0), node: -1, logits: logits)
        }
    }

    /// One forward pass for the jobs still drafting: catch-up chains, and one draft step of each other job (with
    /// batching off, the jobs are one). Each job's rows extend its own session's pending tree.
    private func forward(_ jobs: [Job]) throws {
        var parts: [(entry: Entry, rows: [(token: Int, parent: Int)])] = []
        for job in jobs {
            if !job.catchUp.isEmpty {
                parts.append((job.entry, job.catchUp.enumerated().map { ($1, $0 - 1) }))
            } else {
                let step = try job.entry.stepRows(&job.streams, length: job.length, settings: job.settings)
                job.step = step
                parts.append((job.entry, step.rows))
            }
        }
        let (firsts, logits) = try forward(parts)
        counters.requestForwards += 1
        if parts.filter({ !$0.rows.isEmpty }).count > 1 { counters.sharedForwards += 1 }
        for (k, job) in jobs.enumerated() {
            if !job.catchUp.isEmpty {
                // The chain is the context's end: keep it, then start the draft tree after it.
                try job.entry.session.keepTreePath(Array(job.catchUp.indices))
                job.entry.tree = nil
                job.catchUp = []
                let base = logits[k].last ?? []
                job.entry.lastLogits = base
                job.streams = Self.streams(seed: job.request.seed, count: job.count, logits: base)
                try job.entry.startTree()
            } else if let step = job.step {
                _ = job.entry.absorb(step, first: firsts[k], logits: logits[k], into: &job.streams)
                job.step = nil
            }
        }
    }

    /// Scores each part's rows as an extension of its entry's pending tree, all parts in one forward pass
    /// (distinct sessions). Returns each part's first new node and its rows' logits, [parts][rows][vocab].
    func forward(_ parts: [(entry: Entry, rows: [(token: Int, parent: Int)])]) throws
        -> (firsts: [Int], logits: [[[Float]]])
    {
        let firsts = parts.map { $0.entry.tree ?? 0 }
        let scored = parts.filter { !$0.rows.isEmpty }
        guard !scored.isEmpty else { return (firsts, parts.map { _ in [] }) }
        let logits = try model.extendTrees(
            scored.map(\.entry.session), tokens: scored.map { $0.rows.map(\.token) },
            parents: scored.map { $0.rows.map(\.parent) })
        var out: [[[Float]]] = []
        var next = logits.makeIterator()
        for (part, first) in zip(parts, firsts) {
            guard !part.rows.isEmpty else {
                out.append([])
                continue
            }
            part.entry.tree = first + part.rows.count
            out.append(next.next() ?? [])
        }
        return (firsts, out)
    }

    /// Ends a drafted job: the cache back to its context (or moved along the branch drafted ahead), the plan for
    /// drafting ahead after it, and the reply.
    private func finish(_ job: Job) -> WireMessage {
        let entry = job.entry
        var drafted = job.streams
        do {
            if let branch = job.branch {
                // The branch becomes the context; the drafts made on it stay pending below it (renumbered), for
                // drafting ahead to build on.
                let kept = try entry.session.keepTreePathAndBelow(branch.path)
                let renumbered = Dictionary(uniqueKeysWithValues: kept.enumerated().map { ($1, $0) })
                for i in drafted.indices {
                    drafted[i].path = drafted[i].path.compactMap { renumbered[$0] }
                    drafted[i].node = drafted[i].path.last ?? -1
                }
                entry.context = job.context
                entry.lastLogits = branch.logits
                entry.tree = kept.count
            }
            // Drafted afresh: the sequences' tree stays pending after the context (none when there was no room).
        } catch {
            sessions[job.request.session] = nil
            return .error(ErrorReply(code: .internalError, message: "\(error)"))
        }
        let streams = drafted.map { stream in
            var cut = stream
            cut.tokens = Array(stream.tokens.prefix(job.length))
            cut.laws = Array(stream.laws.prefix(job.length))
            cut.path = Array(stream.path.prefix(job.length - 1))
            return cut
        }
        counters.served += 1
        var reply = reply(job.request, streams, fromDraftAhead: job.branch != nil)
        reply.draftMicroseconds = UInt64(max(0, (ContinuousClock.now - job.started).microseconds))
        planAhead(after: streams, request: job.request)
        return .draftReply(reply)
    }

    /// Starts the drafting-ahead loop unless it runs.
    func startDraftingAhead() {
        guard !aheadRunning, !serving, sessions.values.contains(where: { $0.ahead.map { !$0.isDone } ?? false })
        else { return }
        aheadRunning = true
        Task(priority: .low) { await draftAhead() }
    }

    /// Drafts ahead while no request waits: each forward pass steps every session's unfinished plan (one
    /// session's, in turn, without batching), so requests get in between steps. A request that comes ends its
    /// session's plan (hit or miss, it plans anew).
    private func draftAhead() async {
        while !serving {
            let plans = sessions.sorted { $0.key < $1.key }.compactMap { id, entry in
                entry.ahead.flatMap { $0.isDone ? nil : (entry, $0) }
            }
            guard !plans.isEmpty else { break }
            let step: [(Entry, Ahead)]
            if configuration.batchSessions {
                step = plans
            } else {
                step = [plans[aheadTurn % plans.count]]
                aheadTurn &+= 1
            }
            aheadStep(step)
            await Task.yield()
        }
        aheadRunning = false
    }
}
