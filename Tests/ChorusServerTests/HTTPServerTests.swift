import ChorusCluster
import ChorusServer
import ChorusTestSupport
import Foundation
import Testing

/// The HTTP server over real loopback HTTP, a coordinator on the shipped target and in-process
/// draft workers.
@Suite(.serialized) struct HTTPServerTests {
    static let prompt = "In the beginning God created"

    /// A non-streamed completion, then the same request streamed: the events end with `[DONE]`, and
    /// their text adds up to the non-streamed text (same seed, same workers answering every round).
    @Test func streamedCompletionEqualsTheNonStreamedOne() async throws {
        let f = try await ServerFixture.start()
        let request =
            #"{"prompt": "\#(Self.prompt)", "max_tokens": 40, "seed": 11, "temperature": 0.9, "ignore_eos": true"#
        let whole = try #require(await f.post("/v1/completions", request + "}"))
        #expect(whole.status == 200)
        #expect(whole.headers["content-type"] == "application/json")
        let json = try #require(whole.json)
        #expect(json["object"] as? String == "text_completion")
        #expect(json["model"] as? String == "chorus-kjv-target")
        let choice = try #require((json["choices"] as? [[String: Any]])?.first)
        let text = try #require(choice["text"] as? String)
        #expect(!text.isEmpty)
        #expect(choice["finish_reason"] as? String == "length")
        let usage = try #require(json["usage"] as? [String: Int])
        #expect(usage["prompt_tokens"] == f.tokenizer.encode(Self.prompt, addSpecial: true).count)
        #expect(usage["completion_tokens"] == 40)
        #expect(usage["total_tokens"] == usage["prompt_tokens"]! + 40)
        let timings = try #require(json["timings"] as? [String: Any])
        let drafted = try #require(timings["draft_n"] as? Int)
        let accepted = try #require(timings["draft_n_accepted"] as? Int)
        #expect(drafted > 0, "the workers' drafts were verified")
        #expect(accepted > 0 && accepted <= drafted)
        let rounds = try #require(timings["rounds"] as? Int)
        #expect((timings["block_efficiency"] as? Double ?? 0) == Double(40) / Double(rounds))
        #expect((timings["accepted_per_position"] as? [Int])?.reduce(0, +) ?? -1 >= accepted)

        let streamed = try #require(await f.post("/v1/completions", request + #", "stream": true}"#))
        #expect(streamed.status == 200)
        #expect(streamed.headers["content-type"] == "text/event-stream")
        let events = streamed.events
        #expect(events.last == "[DONE]")
        let chunks = events.dropLast().compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(chunks.count == events.count - 1, "every event before [DONE] is a JSON chunk")
        let pieces = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }
        #expect(pieces.joined() == text)
        #expect(chunks.count > 2, "the text came in several events")
        let last = try #require(chunks.last)
        #expect((last["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "length")
        #expect((last["timings"] as? [String: Any])?["draft_n"] as? Int == drafted)
        await f.stop()
    }

    /// Stop sequences cut the text (non-streamed and streamed alike) and finish with `stop`.
    @Test func stopSequencesCutTheText() async throws {
        let f = try await ServerFixture.start(workers: 1)
        let base = #"{"prompt": "\#(Self.prompt)", "max_tokens": 48, "seed": 3, "ignore_eos": true"#
        let free = try #require(await f.post("/v1/completions", base + "}")?.json)
        let text = try #require(((free["choices"] as? [[String: Any]])?.first?["text"] as? String))
        // A stop sequence taken from the middle of the free text: the answer must end just before it.
        let words = text.split(separator: " ")
        try #require(words.count > 4)
        let stop = " " + words[words.count / 2]
        let cut = String(text[..<text.range(of: stop)!.lowerBound])
        // The word goes into the request as a JSON string (it may hold quotes or backslashes).
        let quoted = String(decoding: try JSONEncoder().encode(stop), as: UTF8.self)
        let stopped = try #require(await f.post("/v1/completions", base + #", "stop": ["zzzz", \#(quoted)]}"#)?.json)
        let choice = try #require((stopped["choices"] as? [[String: Any]])?.first)
        #expect(choice["text"] as? String == cut)
        #expect(choice["finish_reason"] as? String == "stop")
        let streamed = try #require(
            await f.post("/v1/completions", base + #", "stop": \#(quoted), "stream": true}"#))
        let pieces = streamed.events.dropLast().compactMap {
            ((try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["choices"] as? [[String: Any]])?
                .first?["text"] as? String
        }
        #expect(pieces.joined() == cut)
        #expect(streamed.events.last == "[DONE]")
        await f.stop()
    }

    /// Chat through a template (Zephyr's markers are plain text in the KJV vocabulary, `</s>` is EOS),
    /// and a clear 400 when the model has no template.
    @Test func chatCompletionsUseTheTemplateAndSayWhenThereIsNone() async throws {
        let zephyr = """
            {% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + \
            eos_token }}{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + message['content'] + \
            eos_token }}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}{% endfor %}
            """
        let f = try await ServerFixture.start(chatTemplate: zephyr, workers: 1)
        let body = #"{"messages": [{"role": "user", "content": "Who made the light?"}], "max_tokens": 12, "seed": 2}"#
        let reply = try #require(await f.post("/v1/chat/completions", body))
        #expect(reply.status == 200)
        let json = try #require(reply.json)
        #expect(json["object"] as? String == "chat.completion")
        let message = try #require((json["choices"] as? [[String: Any]])?.first?["message"] as? [String: String])
        #expect(message["role"] == "assistant")
        #expect(message["content"] != nil)
        let rendered = try ChatTemplate(family: .zephyr).render([
            ChatMessage(role: "user", content: "Who made the light?")
        ])
        var expected = [f.tokenizer.bos!] + f.tokenizer.encode("<|user|>\nWho made the light?", addSpecial: false)
        expected += [f.tokenizer.eos!] + f.tokenizer.encode("\n<|assistant|>\n", addSpecial: false)
        #expect(rendered.joinedText() == "<|user|>\nWho made the light?</s>\n<|assistant|>\n")
        #expect((json["usage"] as? [String: Int])?["prompt_tokens"] == expected.count)
        let streamed = try #require(
            await f.post("/v1/chat/completions", String(body.dropLast()) + #", "stream": true}"#))
        let first = try #require(streamed.events.first)
        #expect(first.contains(#""role":"assistant""#))
        #expect(first.contains("chat.completion.chunk"))
        await f.stop()

        let plain = try await ServerFixture.start(workers: 0)
        let refused = try #require(await plain.post("/v1/chat/completions", body))
        #expect(refused.status == 400)
        #expect(refused.errorMessage?.contains("no chat template") == true)
        #expect(refused.errorMessage?.contains("/v1/completions") == true)
        await plain.stop()
    }

    /// 400s say what is wrong: bad JSON, a mistyped field, an unknown field, a prompt longer than the
    /// context (both numbers), an unknown model; unknown routes are 404 in the same JSON shape.
    @Test func badRequestsGetClearErrors() async throws {
        let f = try await ServerFixture.start(workers: 0)
        let badJSON = try #require(await f.post("/v1/completions", "{\"prompt\": "))
        #expect(badJSON.status == 400)
        #expect(badJSON.errorMessage?.contains("not valid JSON") == true)
        #expect((badJSON.json?["error"] as? [String: Any])?["type"] as? String == "invalid_request_error")
        let mistyped = try #require(await f.post("/v1/completions", #"{"prompt": "a", "max_tokens": "ten"}"#))
        #expect(mistyped.status == 400)
        #expect(mistyped.errorMessage?.contains("max_tokens") == true)
        let unknown = try #require(await f.post("/v1/completions", #"{"prompt": "a", "tempreature": 1}"#))
        #expect(unknown.status == 400)
        #expect(unknown.errorMessage?.contains("tempreature") == true)
        let many = try #require(await f.post("/v1/completions", #"{"prompt": "a", "n": 2}"#))
        #expect(many.status == 400)
        let long = String(repeating: "and the earth ", count: f.contextLength)
        let tooLong = try #require(await f.post("/v1/completions", #"{"prompt": "\#(long)"}"#))
        #expect(tooLong.status == 400)
        let promptTokens = f.tokenizer.encode(long, addSpecial: true).count
        #expect(tooLong.errorMessage?.contains("\(promptTokens) tokens") == true)
        #expect(tooLong.errorMessage?.contains("\(f.contextLength)") == true)
        #expect((tooLong.json?["error"] as? [String: Any])?["code"] as? String == "context_length_exceeded")
        let otherModel = try #require(await f.post("/v1/completions", #"{"prompt": "a", "model": "gpt-4"}"#))
        #expect(otherModel.status == 404)
        #expect(otherModel.errorMessage?.contains("chorus-kjv-target") == true)
        let noRoute = try #require(await f.get("/v2/nothing"))
        #expect(noRoute.status == 404)
        #expect(noRoute.errorMessage?.contains("/v2/nothing") == true)
        await f.stop()
    }

    /// 413 beyond the body limit; 401 without the bearer key or with a wrong one, 200 with it; the
    /// open endpoints stay open.
    @Test func bodyLimitAndAPIKey() async throws {
        var options = HTTPServerOptions()
        options.limits.maxBodyBytes = 2048
        options.apiKey = "s3cret-key"
        let f = try await ServerFixture.start(options: options, workers: 0)
        let auth = ["Authorization": "Bearer s3cret-key"]
        let big = #"{"prompt": "\#(String(repeating: "x", count: 4096))"}"#
        let tooLarge = try #require(await f.post("/v1/completions", big, headers: auth))
        #expect(tooLarge.status == 413)
        #expect(tooLarge.errorMessage?.contains("2048") == true)
        let small = #"{"prompt": "And God said", "max_tokens": 3}"#
        let anonymous = try #require(await f.post("/v1/completions", small))
        #expect(anonymous.status == 401)
        #expect((anonymous.json?["error"] as? [String: Any])?["type"] as? String == "authentication_error")
        let wrong = try #require(
            await f.post("/v1/completions", small, headers: ["Authorization": "Bearer s3cret-kex"]))
        #expect(wrong.status == 401)
        let models = try #require(await f.get("/v1/models"))
        #expect(models.status == 401)
        let allowed = try #require(await f.post("/v1/completions", small, headers: auth))
        #expect(allowed.status == 200)
        #expect(try #require(await f.get("/health")).status == 200)
        await f.stop()
    }

    /// With one slot and no queue, a second request while the first streams gets 429 with
    /// Retry-After; a client that disconnects mid-stream cancels its session.
    @Test func admissionLimitAndDisconnectCancels() async throws {
        var options = HTTPServerOptions()
        options.limits.maxActiveSessions = 1
        options.limits.maxQueuedRequests = 0
        let f = try await ServerFixture.start(options: options, workers: 1)
        let maxTokens = f.contextLength - 16
        let body = #"{"prompt": "And God said", "max_tokens": \#(maxTokens), "ignore_eos": true, "stream": true}"#
        let first = try #require(HTTPStreamingConnection(port: f.port, path: "/v1/completions", body: body))
        #expect(await first.read(until: "\"text\""))
        let refused = try #require(await f.post("/v1/completions", #"{"prompt": "And", "max_tokens": 2}"#))
        #expect(refused.status == 429)
        #expect(refused.headers["retry-after"] == "1")
        #expect((refused.json?["error"] as? [String: Any])?["code"] as? String == "queue_full")
        // The session id is in the chunk's id (`cmpl-HEX`).
        let hex = try #require(first.text.firstMatch(of: /"id":"cmpl-([0-9a-f]+)"/)?.1)
        let session = try #require(UInt64(hex, radix: 16))
        first.close()
        let ended = await eventually(within: .seconds(60)) {
            await f.coordinator.stream(session: session)?.isFinished == true
        }
        #expect(ended)
        let update = try #require(await f.coordinator.stream(session: session)?.update(from: 0))
        #expect(update.finishReason == "cancelled")
        #expect(update.tokens.count < maxTokens, "the generation stopped early")
        // The slot is free again.
        let after = await eventually(within: .seconds(30)) {
            await f.post("/v1/completions", #"{"prompt": "And", "max_tokens": 2}"#)?.status == 200
        }
        #expect(after)
        let metrics = try #require(await f.get("/metrics")).text
        #expect(metricValue(metrics, "chorus:requests_total", labels: #"outcome="cancelled""#) == 1)
        #expect(metricValue(metrics, "chorus:requests_total", labels: #"outcome="overloaded""#) == 1)
        await f.stop()
    }

    /// `/metrics` after one request holds the counters with the values the response reported;
    /// `/health` and `/v1/models` describe the server.
    @Test func metricsMatchTheResponseAndHealthReportsWorkers() async throws {
        let f = try await ServerFixture.start()
        let health = try #require(await f.get("/health"))
        #expect(health.status == 200)
        #expect((health.json?["workers"] as? [String: Int]) == ["ready": 2, "configured": 2])
        let models = try #require(await f.get("/v1/models")?.json)
        #expect(((models["data"] as? [[String: Any]])?.first?["id"] as? String) == "chorus-kjv-target")

        let body = #"{"prompt": "\#(Self.prompt)", "max_tokens": 30, "seed": 5, "ignore_eos": true}"#
        let reply = try #require(await f.post("/v1/completions", body))
        let json = try #require(reply.json, "\(reply.status) \(reply.headers) \(reply.text)")
        let usage = try #require(json["usage"] as? [String: Int])
        let timings = try #require(json["timings"] as? [String: Any])
        let text = try #require(await f.get("/metrics")).text
        #expect(metricValue(text, "chorus:prompt_tokens_total") == Double(usage["prompt_tokens"]!))
        #expect(metricValue(text, "chorus:generation_tokens_total") == Double(usage["completion_tokens"]!))
        #expect(metricValue(text, "chorus:spec_decode_num_draft_tokens_total") == Double(timings["draft_n"] as! Int))
        #expect(
            metricValue(text, "chorus:spec_decode_num_accepted_tokens_total")
                == Double(timings["draft_n_accepted"] as! Int))
        let rounds = timings["rounds"] as! Int
        // One request alone: every round asked for drafts (the draft gate acts only with several sessions).
        #expect(timings["rounds_not_drafted"] as? Int == 0)
        #expect(metricValue(text, "chorus:rounds_not_drafted_total") == 0)
        let numDrafts = try #require(metricValue(text, "chorus:spec_decode_num_drafts_total"))
        #expect(numDrafts > 0 && numDrafts <= Double(rounds))
        let perPosition = try #require(timings["accepted_per_position"] as? [Int])
        #expect(!perPosition.isEmpty)
        for (i, n) in perPosition.enumerated() {
            #expect(
                metricValue(text, "chorus:spec_decode_num_accepted_tokens_per_pos_total", labels: "position=\"\(i)\"")
                    == Double(n))
        }
        #expect(metricValue(text, "chorus:requests_total", labels: #"outcome="completed""#) == 1)
        #expect(metricValue(text, "chorus:time_to_first_token_seconds_count") == 1)
        #expect(
            metricValue(text, "chorus:inter_token_latency_seconds_count") == Double(usage["completion_tokens"]! - 1))
        let statuses = await f.coordinator.workerStatuses
        for w in statuses {
            #expect(metricValue(text, "chorus:worker_state", labels: #"worker="\#(w.address)",state="ready""#) == 1)
            #expect(
                metricValue(text, "chorus:worker_replies_used_total", labels: #"worker="\#(w.address)""#)
                    == Double(w.repliesUsed))
            let replies = try #require(
                metricValue(text, "chorus:worker_request_seconds_count", labels: #"worker="\#(w.address)""#))
            #expect(replies >= Double(w.repliesUsed), "every used reply was timed")
        }
        await f.stop()
    }

    /// The status page is served and its event stream sends snapshots with the workers and totals.
    @Test func statusPageAndItsEvents() async throws {
        let f = try await ServerFixture.start(workers: 1)
        _ = await f.post("/v1/completions", #"{"prompt": "And God said", "max_tokens": 10, "seed": 1}"#)
        let page = try #require(await f.get("/"))
        #expect(page.status == 200)
        #expect(page.text.contains("EventSource(\"status/events\")"))
        let connection = try #require(
            HTTPStreamingConnection(port: f.port, path: "/status/events", body: nil))
        #expect(await connection.read(until: "data: {"))
        #expect(await connection.read(until: "}\n\n"))
        #expect(connection.text.contains("text/event-stream"))
        connection.close()
        let snapshot = try #require(await f.get("/status")?.json)
        #expect((snapshot["workers"] as? [[String: Any]])?.first?["state"] as? String == "ready")
        #expect((snapshot["requests"] as? [String: Int])?["completed"] == 1)
        #expect((snapshot["recent_rounds"] as? [Any])?.isEmpty == false)
        await f.stop()
    }
}
