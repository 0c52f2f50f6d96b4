import Foundation

/// `usage` of an OpenAI response: token counts of the prompt as the target saw it (after the chat
/// template and BOS) and of the generated tokens (the end-of-sequence token included when there was one).
public struct Usage: Codable, Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
    }
}

/// How the text was made (llama-server's `timings`, extended with the speculative statistics).
/// Times in milliseconds; counts over the whole generation.
public struct SpeculativeTimings: Codable, Sendable, Equatable {
    public var promptN: Int
    /// Starting the session: the prompt through the target (prefill), ms.
    public var promptMilliseconds: Double
    public var predictedN: Int
    /// From the session's start to its last token, ms.
    public var predictedMilliseconds: Double
    public var predictedPerSecond: Double
    /// Draft positions offered to the verifier (the tree's depth, summed over rounds).
    public var draftN: Int
    /// Draft tokens accepted.
    public var draftNAccepted: Int
    /// Draft sequences received in time, summed over rounds.
    public var drafts: Int
    /// Rounds, one target forward each.
    public var rounds: Int
    /// Rounds that asked for no drafts because, with several sessions running, the coordinator measured rounds
    /// without drafts to be faster at that load (the draft gate).
    public var roundsNotDrafted: Int
    /// Tokens per target forward.
    public var blockEfficiency: Double
    /// draft_n_accepted / draft_n (0 when nothing was drafted).
    public var acceptanceRate: Double
    /// acceptedPerPosition[i]: rounds whose draft position i (from 0) was accepted.
    public var acceptedPerPosition: [Int]
    /// Summed over rounds, ms: waiting for drafts, the target forward, verification.
    public var draftWaitMilliseconds: Double
    public var targetForwardMilliseconds: Double
    public var verificationMilliseconds: Double
    /// From the request's arrival to its first token, ms (queueing and prefill included).
    public var timeToFirstTokenMilliseconds: Double?

    enum CodingKeys: String, CodingKey {
        case promptN = "prompt_n"
        case promptMilliseconds = "prompt_ms"
        case predictedN = "predicted_n"
        case predictedMilliseconds = "predicted_ms"
        case predictedPerSecond = "predicted_per_second"
        case draftN = "draft_n"
        case draftNAccepted = "draft_n_accepted"
        case drafts
        case rounds
        case roundsNotDrafted = "rounds_not_drafted"
        case blockEfficiency = "block_efficiency"
        case acceptanceRate = "acceptance_rate"
        case acceptedPerPosition = "accepted_per_position"
        case draftWaitMilliseconds = "draft_wait_ms"
        case targetForwardMilliseconds = "target_forward_ms"
        case verificationMilliseconds = "verification_ms"
        case timeToFirstTokenMilliseconds = "time_to_first_token_ms"
    }
}

/// One choice of a completion (`text`) or chat completion (`message` / `delta`) response or chunk.
struct Choice: Encodable {
    var index = 0
    var text: String?
    var message: [String: String]?
    var delta: [String: String]?
    /// `stop` (EOS, end of turn or a stop sequence), `length` (max_tokens or the context); null while streaming.
    var finishReason: String?

    enum CodingKeys: String, CodingKey {
        case index, text, message, delta
        case finishReason = "finish_reason"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encodeIfPresent(text, forKey: .text)
        try c.encodeIfPresent(message, forKey: .message)
        try c.encodeIfPresent(delta, forKey: .delta)
        try c.encode(finishReason, forKey: .finishReason)  // null while streaming, as OpenAI
    }
}

/// A response body or an SSE chunk: `text_completion`, `chat.completion` or `chat.completion.chunk`.
struct CompletionBody: Encodable {
    var id: String
    var object: String
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?
    var timings: SpeculativeTimings?
    /// Said when the text came from the target alone (no drafts in any round).
    var warnings: [String]?

    func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? Array(encoder.encode(self))) ?? []
    }
}
