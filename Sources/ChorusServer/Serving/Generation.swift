import ChorusCluster
import ChorusWire

/// One admitted, running generation as the HTTP layer follows it.
public final class Generation: Sendable {
    let service: CompletionService
    let prepared: CompletionService.Prepared
    public let session: UInt64
    let stream: SessionStream
    let ticket: AdmissionTicket
    /// When the request arrived (TTFT counts from here: queueing and the prompt included).
    let arrival: ContinuousClock.Instant
    /// Starting the session: the prompt through the target.
    let promptTime: Duration

    init(
        service: CompletionService, prepared: CompletionService.Prepared, session: UInt64, stream: SessionStream,
        ticket: AdmissionTicket, arrival: ContinuousClock.Instant, promptTime: Duration
    ) {
        self.service = service
        self.prepared = prepared
        self.session = session
        self.stream = stream
        self.ticket = ticket
        self.arrival = arrival
        self.promptTime = promptTime
    }

    public var promptTokens: Int { prepared.prompt.count }

    /// How a generation ended, with everything a response reports.
    public struct Completion: Sendable {
        /// The whole text (cut before the first stop sequence).
        public var text: String
        /// `stop` (EOS, end of turn or a stop sequence) or `length` (max_tokens or the context's end).
        public var finishReason: String
        public var usage: Usage
        public var timings: SpeculativeTimings
        /// Said when the text came from the target alone.
        public var warnings: [String]
        public var record: RequestRecord
    }

    /// Follows the generation to its end: every piece of text that can be released (stop sequences
    /// held back until decided) goes to `emit` as it arrives.
    ///
    /// If `emit` throws (the client went away) or the calling task is cancelled, the session is
    /// cancelled (it ends after its current round), the request counts as `cancelled`, and the error
    /// is rethrown. The admission slot is released in every case.
    /// - Throws: `emit`'s error; ``ServerError`` 500 when the generation failed on the coordinator,
    ///   503 when the coordinator shut down during it.
    public func follow(emit: (String) async throws -> Void) async throws -> Completion {
        defer { ticket.release() }
        var record = RequestRecord(outcome: .completed)
        record.promptTokens = prepared.prompt.count
        var filter = StopSequenceFilter(stops: prepared.request.stop)
        var consumed = 0
        var text = ""
        var lastTokens = arrival
        var roundsSeen = 0
        let coordinator = service.coordinator
        let session = session

        /// Takes what is new in the stream: latency figures, released text, the rounds for the page.
        func drain() async throws {
            let update = stream.update(from: consumed)
            if !update.tokens.isEmpty {
                let now = ContinuousClock.now
                if record.timeToFirstToken == nil {
                    record.timeToFirstToken = now - arrival
                    // The first token of a round opens the latency series; the rest share the round's gap.
                    if update.tokens.count > 1 {
                        record.interTokenLatencies += Array(
                            repeating: .zero, count: update.tokens.count - 1)
                    }
                } else {
                    let gap = (now - lastTokens) / update.tokens.count
                    record.interTokenLatencies += Array(repeating: gap, count: update.tokens.count)
                }
                lastTokens = now
                consumed += update.tokens.count
            }
            let released = filter.append(update.text)
            if !released.isEmpty {
                text += released
                try await emit(released)
            }
            if let report = await coordinator.report(session: session), report.rounds.count > roundsSeen {
                service.board.recordRounds(report.rounds[roundsSeen...])
                roundsSeen = report.rounds.count
            }
        }

        do {
            try await withTaskCancellationHandler {
                for await _ in stream.changes() {
                    try Task.checkCancellation()
                    try await drain()
                    if filter.stopped { break }
                }
                if filter.stopped {
                    // Stop generating; the session ends after its current round.
                    await coordinator.cancel(session: session)
                    for await _ in stream.changes() {}
                } else {
                    try await drain()
                    let rest = filter.finish()
                    if !rest.isEmpty {
                        text += rest
                        try await emit(rest)
                    }
                }
            } onCancel: {
                Task { await coordinator.cancel(session: session) }
            }
        } catch {
            await coordinator.cancel(session: session)
            record.outcome = .cancelled
            await finishRecord(&record)
            service.record(record)
            throw error
        }
        let final = stream.update(from: consumed)
        await finishRecord(&record)
        let finishReason: String
        switch (filter.stopped, final.finishReason) {
        case (true, _), (false, "eos"): finishReason = "stop"
        case (false, "length"), (false, "context"): finishReason = "length"
        default:
            record.outcome = .failed
            service.record(record)
            if final.finishReason == "shutdown" {
                throw ServerError(
                    status: 503, type: "server_error", code: "shutting_down",
                    message: "the coordinator shut down during the generation", retryAfterSeconds: 5)
            }
            throw ServerError(
                status: 500, type: "server_error", code: "generation_failed",
                message: "the generation failed: \(stream.error ?? final.finishReason)")
        }
        service.record(record)
        let s = final.statistics
        return Completion(
            text: text, finishReason: finishReason,
            usage: Usage(
                promptTokens: prepared.prompt.count, completionTokens: s.generatedTokens,
                totalTokens: prepared.prompt.count + s.generatedTokens),
            timings: timings(record), warnings: s.warnings, record: record)
    }

    /// The statistics, rounds and per-position acceptance once the session has ended.
    func finishRecord(_ record: inout RequestRecord) async {
        for await _ in stream.changes() {}
        let final = stream.update(from: 0)
        record.statistics = final.statistics
        record.generationTokens = final.statistics.generatedTokens
        if let report = await service.coordinator.report(session: session) {
            record.rounds = report.rounds
            record.acceptedAtPosition = report.acceptedAtPosition
        }
    }

    func timings(_ r: RequestRecord) -> SpeculativeTimings {
        let s = r.statistics
        func ms(_ micros: Int64) -> Double { Double(micros) / 1000 }
        let predictedMs = Double(s.elapsedMicroseconds) / 1000
        return SpeculativeTimings(
            promptN: r.promptTokens, promptMilliseconds: promptTime.milliseconds, predictedN: s.generatedTokens,
            predictedMilliseconds: predictedMs, predictedPerSecond: s.tokensPerSecond, draftN: s.draftedTokens,
            draftNAccepted: s.acceptedDraftTokens, drafts: s.draftsReceived, rounds: s.targetForwards,
            roundsNotDrafted: s.roundsNotDrafted, blockEfficiency: s.blockEfficiency, acceptanceRate: s.acceptanceRate,
            acceptedPerPosition: r.acceptedAtPosition,
            draftWaitMilliseconds: ms(r.rounds.reduce(0) { $0 + $1.draftWait }),
            targetForwardMilliseconds: ms(r.rounds.reduce(0) { $0 + $1.targetForward }),
            verificationMilliseconds: ms(r.rounds.reduce(0) { $0 + $1.verification }),
            timeToFirstTokenMilliseconds: r.timeToFirstToken?.milliseconds)
    }
}

extension Duration {
    var milliseconds: Double {
        let (s, a) = components
        return Double(s) * 1000 + Double(a) / 1e15
    }
}
