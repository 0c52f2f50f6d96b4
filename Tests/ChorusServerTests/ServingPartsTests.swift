import ChorusCluster
import ChorusSampling
import ChorusWire
import Testing

@testable import ChorusServer

/// The pure parts of serving: request parsing, stop sequences, admission, the statistics.
@Suite struct ServingPartsTests {
    func parse(_ json: String, chat: Bool = false) throws(ServerError) -> CompletionRequest {
        try CompletionRequest(json: Array(json.utf8), chat: chat)
    }

    @Test func requestFieldsAreParsedWithTheirTypes() throws {
        let r = try parse(
            #"{"model": "m", "prompt": "hi", "max_tokens": 5, "temperature": 0, "top_p": 0.5, "top_k": 3, "seed": -1, "#
                + #""stop": "\n", "stream": true, "ignore_eos": true, "stream_options": {"include_usage": true}, "#
                + #""user": "u", "n": 1}"#)
        #expect(r.model == "m")
        #expect(r.prompt == .text("hi"))
        #expect(r.maxTokens == 5)
        #expect(r.sampling == SamplingSettings(temperature: 0, topK: 3, topP: 0.5))
        #expect(r.seed == UInt64.max)
        #expect(r.stop == ["\n"])
        #expect(r.stream && r.ignoreEOS && r.includeUsageInStream)
        #expect(try parse(#"{"prompt": [1, 2, 3]}"#).prompt == .tokens([1, 2, 3]))
        #expect(try parse(#"{"prompt": "a", "stop": ["x", "y"]}"#).stop == ["x", "y"])
        let chat = try parse(
            #"{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}"#,
            chat: true)
        #expect(chat.prompt == .chat([ChatMessage(role: "user", content: "ab")]))
    }

    @Test func badFieldsAreNamed() {
        func message(_ json: String, chat: Bool = false) -> String {
            do {
                _ = try parse(json, chat: chat)
                return "accepted"
            } catch {
                return error.message
            }
        }
        #expect(message("[1]").contains("JSON object"))
        #expect(message(#"{"prompt": "a", "max_tokens": 0}"#).contains("`max_tokens` is 0"))
        #expect(message(#"{"prompt": "a", "max_tokens": 1.5}"#).contains("`max_tokens` must be an integer"))
        #expect(message(#"{"prompt": "a", "temperature": "hot"}"#).contains("`temperature` must be a number"))
        #expect(message(#"{"prompt": "a", "top_p": 0}"#).contains("more than 0"))
        #expect(message(#"{"prompt": "a", "stream": 1}"#).contains("`stream` must be true or false"))
        #expect(message(#"{"prompt": "a", "stop": ["", "x"]}"#).contains("must not be empty"))
        #expect(message(#"{"prompt": "a", "stop": 3}"#).contains("`stop` must be"))
        #expect(message(#"{"prompt": "a", "logprobs": 2}"#).contains("only at its default"))
        #expect(message(#"{"prompt": "a", "frobnicate": true}"#).contains("unknown field `frobnicate`"))
        #expect(message(#"{"messages": []}"#).contains("/v1/chat/completions"))
        #expect(message("{}").contains("`prompt` is required"))
        #expect(message(#"{"messages": [{"role": "user"}]}"#, chat: true).contains("messages[0].content"))
        #expect(message(#"{"prompt": ["a", "b"]}"#).contains("batch"))
    }

    /// The filter's output, however the text is split into pieces, is the text cut before the first
    /// stop sequence; nothing that could start a stop sequence is released early.
    @Test func stopSequenceFilterCutsAtTheFirstStopWhateverTheSplit() {
        let text = "And God said, Let there be light: and there was light."
        let stops = ["there was", "light:"]
        let expected = "And God said, Let there be "
        for size in 1...8 {
            var filter = StopSequenceFilter(stops: stops)
            var out = ""
            var index = text.startIndex
            while index < text.endIndex {
                let end = text.index(index, offsetBy: size, limitedBy: text.endIndex) ?? text.endIndex
                let released = filter.append(String(text[index..<end]))
                out += released
                #expect(!out.contains("light"), "no part of a stop sequence is released")
                index = end
            }
            out += filter.finish()
            #expect(out == expected, "pieces of \(size)")
            #expect(filter.stopped)
        }
        var none = StopSequenceFilter(stops: ["zz"])
        #expect(none.append("abz") == "ab")
        #expect(none.append("q") == "zq")
        #expect(none.append("z") == "")
        #expect(none.finish() == "z")
        #expect(!none.stopped)
    }

    @Test func admissionQueuesInOrderRefusesBeyondTheQueueAndTimesOut() async throws {
        let gate = AdmissionGate(maxActive: 1, maxQueued: 1, queueTimeout: .seconds(30))
        try await gate.acquire()
        let waiter = Task { try await gate.acquire() }
        let queued = await eventuallyTrue { await gate.queued == 1 }
        #expect(queued)
        await #expect {
            try await gate.acquire()
        } throws: { error in
            (error as? ServerError)?.statusCode == 429 && (error as? ServerError)?.retryAfterSeconds == 1
        }
        await gate.release()
        try await waiter.value
        #expect(await gate.active == 1)
        #expect(await gate.queued == 0)
        await gate.release()
        #expect(await gate.active == 0)

        let impatient = AdmissionGate(maxActive: 1, maxQueued: 4, queueTimeout: .milliseconds(50))
        try await impatient.acquire()
        await #expect {
            try await impatient.acquire()
        } throws: { ($0 as? ServerError)?.statusCode == 503 && ($0 as? ServerError)?.retryAfterSeconds != nil }
        #expect(await impatient.queued == 0)
    }

    @Test func totalsAddRecords() {
        var r = RequestRecord(outcome: .completed)
        r.promptTokens = 4
        r.generationTokens = 9
        r.statistics.draftedTokens = 12
        r.statistics.acceptedDraftTokens = 5
        r.acceptedAtPosition = [3, 2]
        r.rounds = [
            .made(
                draftWait: 1, targetForward: 2, verification: 3, tokens: 4, drafts: 2, requestBytes: 0, replyBytes: 0,
                workerDraftTime: 0),
            .made(
                draftWait: 1, targetForward: 2, verification: 3, tokens: 1, drafts: 0, requestBytes: 0, replyBytes: 0,
                workerDraftTime: 0),
        ]
        var totals = ServingTotals()
        totals.add(r)
        totals.add(r)
        totals.add(RequestRecord(outcome: .overloaded))
        #expect(totals.requests == [.completed: 2, .overloaded: 1])
        #expect(totals.numDrafts == 2, "rounds with drafts only")
        #expect(totals.numDraftTokens == 24 && totals.numAcceptedTokens == 10)
        #expect(totals.acceptedPerPosition == [6, 4])
        #expect(totals.promptTokens == 8 && totals.generationTokens == 18)
    }
}

/// Polls `condition` for up to 10 s.
func eventuallyTrue(_ condition: () async -> Bool) async -> Bool {
    for _ in 0..<1000 {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return false
}
