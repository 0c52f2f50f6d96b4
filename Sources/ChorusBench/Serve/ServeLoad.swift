import ChorusCluster
import Foundation
import Histogram

/// A load run against an OpenAI-compatible `/v1/completions` endpoint (`chorus bench serve`): `requests`
/// streaming requests, `concurrency` at a time (one client thread and connection each), prompts taken in turn.
public struct ServeLoadPlan: Sendable {
    /// `http://HOST:PORT` of the server.
    public var url: String
    /// The server's name in reports (`chorus`, `llama-server`).
    public var label: String
    /// The requests' `model` field; nil leaves it out (each server then uses the model it serves).
    public var model: String?
    public var prompts: [String]
    public var maxTokens = 64
    public var temperature = 1.0
    public var requests = 16
    public var concurrency = 1
    /// Sent as `Authorization: Bearer …` when set.
    public var apiKey: String?
    /// Longest silence of the server before a request counts as an error (`timeout`).
    public var timeout: Duration = .seconds(120)
    /// Generate `maxTokens` tokens even past end-of-sequence (both servers take `ignore_eos`), so that every
    /// request does the same work.
    public var ignoreEOS = true

    public init(url: String, label: String, prompts: [String]) {
        self.url = url
        self.label = label
        self.prompts = prompts
    }
}

/// p50 / p90 / p99 of one latency, in milliseconds (HdrHistogram, 3 significant digits).
public struct LatencyPercentiles: Codable, Sendable, Equatable {
    public var p50: Double
    public var p90: Double
    public var p99: Double
}

/// One load level's figures: what `chorus bench serve` prints and writes as a JSON line.
public struct ServeLoadResult: Codable, Sendable {
    public var server: String
    public var url: String
    public var concurrency: Int
    public var requests: Int
    public var completed: Int
    /// Failed requests by cause (`http 429`, `timeout`, `connect`, `stream error`, `no [DONE]`, …).
    public var errors: [String: Int]
    /// Wall time from the first request sent to the last one finished.
    public var seconds: Double
    /// Generated tokens of the completed requests (the servers' `usage`, else one per streamed chunk).
    public var completionTokens: Int
    /// Aggregate generation rate: completionTokens / seconds.
    public var tokensPerSecond: Double
    public var requestsPerSecond: Double
    /// Time to first token: request sent → first chunk with text.
    public var timeToFirstToken: LatencyPercentiles
    /// Inter-token latency per request: (last chunk − first chunk) / (tokens − 1).
    public var interTokenLatency: LatencyPercentiles
    /// Gaps between consecutive text chunks (a speculative server sends several tokens per chunk).
    public var interChunkGap: LatencyPercentiles
    /// Whole request, sent → [DONE].
    public var requestLatency: LatencyPercentiles
    public var tokensPerChunk: Double
}

/// What one request measured.
struct ServeRequestRecord: Sendable {
    var error: String?
    var tokens = 0
    var chunks = 0
    var firstToken: Duration?
    var lastToken: Duration?
    var gaps: [Duration] = []
    var total: Duration = .zero
}

public enum ServeLoad {
    /// Runs the plan; blocks until every request has finished or failed.
    public static func run(_ plan: ServeLoadPlan) -> ServeLoadResult {
        let board = RecordBoard(count: plan.requests)
        let group = DispatchGroup()
        let clock = ContinuousClock()
        let started = clock.now
        for _ in 0..<max(1, min(plan.concurrency, plan.requests)) {
            group.enter()
            let thread = Thread {
                while let index = board.take() {
                    board.put(index, request(plan, index: index, clock: clock))
                }
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        return summary(plan, records: board.records, seconds: seconds(clock.now - started))
    }

    /// The JSON body of request `index`: its prompt, a seed of its own, streaming with usage.
    static func body(_ plan: ServeLoadPlan, index: Int) -> [UInt8] {
        var object: [String: Any] = [
            "prompt": plan.prompts[index % plan.prompts.count], "max_tokens": plan.maxTokens,
            "temperature": plan.temperature, "stream": true, "stream_options": ["include_usage": true],
            "seed": index + 1, "ignore_eos": plan.ignoreEOS,
        ]
        if let model = plan.model { object["model"] = model }
        return [UInt8]((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }

    static func request(_ plan: ServeLoadPlan, index: Int, clock: ContinuousClock) -> ServeRequestRecord {
        var record = ServeRequestRecord()
        var splitter = EventLineSplitter()
        var done = false
        var usageTokens: Int?
        let sent = clock.now
        var headers: [(String, String)] = []
        if let key = plan.apiKey { headers.append(("Authorization", "Bearer \(key)")) }
        do {
            let status = try HTTPStream.post(
                url: plan.url, path: "/v1/completions", body: body(plan, index: index), headers: headers,
                timeout: plan.timeout
            ) { bytes throws(HTTPStreamError) in
                let now = clock.now - sent
                for event in splitter.feed(bytes) {
                    if event == "[DONE]" {
                        done = true
                        continue
                    }
                    guard let data = event.data(using: .utf8),
                        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
                    else { continue }
                    if object["error"] != nil { record.error = "stream error" }
                    if let usage = object["usage"] as? [String: Any], let n = usage["completion_tokens"] as? Int {
                        usageTokens = n
                    }
                    let choice = (object["choices"] as? [[String: Any]])?.first
                    if let text = choice?["text"] as? String, !text.isEmpty {
                        record.chunks += 1
                        if let last = record.lastToken { record.gaps.append(now - last) }
                        if record.firstToken == nil { record.firstToken = now }
                        record.lastToken = now
                    }
                }
            }
            if status != 200 {
                record.error = "http \(status)"
            } else if record.error == nil && !done {
                record.error = "no [DONE]"
            }
        } catch {
            record.error = error.kind
        }
        record.total = clock.now - sent
        record.tokens = usageTokens ?? record.chunks
        return record
    }

    static func summary(_ plan: ServeLoadPlan, records: [ServeRequestRecord], seconds: Double) -> ServeLoadResult {
        let completed = records.filter { $0.error == nil }
        var errors: [String: Int] = [:]
        for record in records { if let error = record.error { errors[error, default: 0] += 1 } }
        let tokens = completed.reduce(0) { $0 + $1.tokens }
        let chunks = completed.reduce(0) { $0 + $1.chunks }
        let perToken: [Duration] = completed.compactMap { r in
            guard let first = r.firstToken, let last = r.lastToken, r.tokens > 1 else { return nil }
            return (last - first) / (r.tokens - 1)
        }
        return ServeLoadResult(
            server: plan.label, url: plan.url, concurrency: plan.concurrency, requests: records.count,
            completed: completed.count, errors: errors, seconds: seconds, completionTokens: tokens,
            tokensPerSecond: seconds > 0 ? Double(tokens) / seconds : 0,
            requestsPerSecond: seconds > 0 ? Double(completed.count) / seconds : 0,
            timeToFirstToken: percentiles(completed.compactMap(\.firstToken)),
            interTokenLatency: percentiles(perToken),
            interChunkGap: percentiles(completed.flatMap(\.gaps)),
            requestLatency: percentiles(completed.map(\.total)),
            tokensPerChunk: chunks > 0 ? Double(tokens) / Double(chunks) : 0)
    }

    static func seconds(_ d: Duration) -> Double { Double(d.microseconds) / 1e6 }

    /// p50/p90/p99 in milliseconds through an HdrHistogram of microseconds (1 µs … 1 h, 3 digits).
    static func percentiles(_ samples: [Duration]) -> LatencyPercentiles {
        guard !samples.isEmpty else { return LatencyPercentiles(p50: .nan, p90: .nan, p99: .nan) }
        var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        for sample in samples {
            _ = histogram.record(UInt64(max(0, min(3_600_000_000, Double(sample.microseconds)))))
        }
        func ms(_ p: Double) -> Double { Double(histogram.valueAtPercentile(p)) / 1000 }
        return LatencyPercentiles(p50: ms(50), p90: ms(90), p99: ms(99))
    }
}

/// Hands out request indices to the client threads and keeps their records in request order.
final class RecordBoard: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private var slots: [ServeRequestRecord?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func take() -> Int? {
        lock.withLock {
            guard next < slots.count else { return nil }
            defer { next += 1 }
            return next
        }
    }

    func put(_ index: Int, _ record: ServeRequestRecord) { lock.withLock { slots[index] = record } }

    var records: [ServeRequestRecord] { lock.withLock { slots.compactMap { $0 } } }
}
