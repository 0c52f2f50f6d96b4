import ChorusSampling
import Foundation

/// What a client asks for, from either endpoint: the prompt (text, token ids or chat messages) and
/// OpenAI's generation fields, plus the extensions `top_k` and `ignore_eos`.
public struct CompletionRequest: Sendable, Equatable {
    public enum Prompt: Sendable, Equatable {
        case text(String)
        case tokens([Int])
        case chat([ChatMessage])
    }

    public var model: String?
    public var prompt: Prompt
    /// nil: up to the context's end.
    public var maxTokens: Int?
    public var temperature: Double = 1
    public var topP: Double = 1
    public var topK: Int = 0
    public var seed: UInt64?
    /// Stop sequences (at most 4, none empty): the text ends before the first one that appears.
    public var stop: [String] = []
    public var stream = false
    /// Keep generating after EOS (and the chat end-of-turn token) until `max_tokens`.
    public var ignoreEOS = false
    /// `stream_options.include_usage`: a last chunk carrying `usage` before `[DONE]`.
    public var includeUsageInStream = false

    public var sampling: SamplingSettings { SamplingSettings(temperature: temperature, topK: topK, topP: topP) }

    /// Fields read by both endpoints.
    static let commonKeys: Set<String> = [
        "model", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "stream", "ignore_eos",
        "stream_options",
    ]
    /// OpenAI fields accepted only at their no-op value (`user` at any value): anything else would be
    /// a silent change of meaning.
    static let noOpValues: [String: @Sendable (JSONValue) -> Bool] = [
        "user": { _ in true },
        "n": { $0 == .integer(1) },
        "presence_penalty": { $0 == .integer(0) || $0 == .number(0) },
        "frequency_penalty": { $0 == .integer(0) || $0 == .number(0) },
        "logprobs": { $0 == .null || $0 == .bool(false) },
        "echo": { $0 == .bool(false) },
    ]

    /// Parses a request body of `/v1/completions` (`chat: false`) or `/v1/chat/completions`.
    /// - Throws: ``ServerError`` 400 naming the field: not JSON, not an object, a missing or mistyped
    ///   field, an out-of-range value, or a field this server does not implement.
    public init(json body: [UInt8], chat: Bool) throws(ServerError) {
        let parsed: JSONValue
        do {
            parsed = try JSONDecoder().decode(JSONValue.self, from: Data(body))
        } catch {
            throw ServerError.badRequest("the request body is not valid JSON (\(JSONValue.describe(error)))")
        }
        guard case let .object(object) = parsed else {
            throw ServerError.badRequest("the request body must be a JSON object")
        }
        let r = FieldReader(object: object)
        let promptKey = chat ? "messages" : "prompt"
        for key in object.keys.sorted() where !Self.commonKeys.contains(key) && key != promptKey {
            if let isNoOp = Self.noOpValues[key], let value = object[key] {
                if isNoOp(value) { continue }
                throw ServerError.badRequest("`\(key)` is supported only at its default value", code: "unsupported")
            }
            let hint =
                key == "messages"
                ? " (chat messages go to /v1/chat/completions)"
                : key == "prompt" ? " (a plain prompt goes to /v1/completions)" : ""
            throw ServerError.badRequest("unknown field `\(key)`\(hint)", code: "unknown_field")
        }
        model = try r.string("model")
        prompt = chat ? .chat(try r.messages()) : try r.prompt()
        maxTokens = try r.int("max_tokens", in: 1...Int(Int32.max))
        temperature = try r.double("temperature", in: 0...100) ?? temperature
        topP = try r.double("top_p", in: Double.leastNonzeroMagnitude...1) ?? topP
        topK = try r.int("top_k", in: 0...Int(Int32.max)) ?? topK
        if let s = try r.int("seed", in: Int.min...Int.max) { seed = UInt64(bitPattern: Int64(s)) }
        stop = try r.stop()
        stream = try r.bool("stream") ?? false
        ignoreEOS = try r.bool("ignore_eos") ?? false
        if let options = r.value("stream_options") {
            guard case let .object(dictionary) = options else {
                throw ServerError.badRequest("`stream_options` must be an object")
            }
            let o = FieldReader(object: dictionary, path: "stream_options.")
            includeUsageInStream = try o.bool("include_usage") ?? false
        }
    }
}

/// Typed reads of a JSON object's fields, each error naming the field.
struct FieldReader {
    let object: [String: JSONValue]
    var path = ""

    /// The field's value; nil when absent or JSON null.
    func value(_ key: String) -> JSONValue? {
        guard let v = object[key], v != .null else { return nil }
        return v
    }

    func string(_ key: String) throws(ServerError) -> String? {
        guard let v = value(key) else { return nil }
        guard case let .string(s) = v else { throw ServerError.badRequest("`\(path)\(key)` must be a string") }
        return s
    }

    func bool(_ key: String) throws(ServerError) -> Bool? {
        guard let v = value(key) else { return nil }
        guard case let .bool(b) = v else { throw ServerError.badRequest("`\(path)\(key)` must be true or false") }
        return b
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws(ServerError) -> Int? {
        guard let v = value(key) else { return nil }
        guard case let .integer(i) = v else { throw ServerError.badRequest("`\(path)\(key)` must be an integer") }
        guard range.contains(i) else {
            throw ServerError.badRequest(
                "`\(path)\(key)` is \(i); it must be in \(range.lowerBound)…\(range.upperBound)")
        }
        return i
    }

    func double(_ key: String, in range: ClosedRange<Double>) throws(ServerError) -> Double? {
        let d: Double
        switch value(key) {
        case nil: return nil
        case let .integer(i): d = Double(i)
        case let .number(x): d = x
        default: throw ServerError.badRequest("`\(path)\(key)` must be a number")
        }
        guard range.contains(d) else {
            let low = range.lowerBound == Double.leastNonzeroMagnitude ? "more than 0" : "at least \(range.lowerBound)"
            throw ServerError.badRequest("`\(path)\(key)` is \(d); it must be \(low) and at most \(range.upperBound)")
        }
        return d
    }

    /// `stop`: a string or an array of at most 4 non-empty strings.
    func stop() throws(ServerError) -> [String] {
        let list: [String]
        switch value("stop") {
        case nil: return []
        case let .string(s): list = [s]
        case let .array(items):
            list = items.compactMap { if case let .string(s) = $0 { s } else { nil } }
            guard list.count == items.count else { throw ServerError.badRequest("`stop` must hold only strings") }
        default: throw ServerError.badRequest("`stop` must be a string or an array of strings")
        }
        guard list.count <= 4 else { throw ServerError.badRequest("`stop` has \(list.count) sequences; at most 4") }
        guard !list.contains("") else { throw ServerError.badRequest("`stop` sequences must not be empty") }
        return list
    }

    /// `prompt`: a string, an array of one string, or a non-empty array of token ids.
    func prompt() throws(ServerError) -> CompletionRequest.Prompt {
        switch value("prompt") {
        case nil: throw ServerError.badRequest("`prompt` is required")
        case let .string(s): return .text(s)
        case let .array(items):
            if items.count == 1, case let .string(s) = items[0] { return .text(s) }
            let tokens = items.compactMap { if case let .integer(i) = $0 { i } else { nil } }
            if !items.isEmpty, tokens.count == items.count { return .tokens(tokens) }
            if items.count > 1, items.allSatisfy({ if case .string = $0 { true } else { false } }) {
                throw ServerError.badRequest("`prompt` with several strings (a batch) is not supported; send one")
            }
        default: break
        }
        throw ServerError.badRequest("`prompt` must be a string or an array of token ids")
    }

    /// `messages`: objects with `role` and `content` (a string, or text parts `{type: "text", text}`).
    func messages() throws(ServerError) -> [ChatMessage] {
        guard case let .array(list) = value("messages") else {
            throw ServerError.badRequest("`messages` is required and must be an array")
        }
        var messages: [ChatMessage] = []
        for (i, item) in list.enumerated() {
            guard case let .object(m) = item else { throw ServerError.badRequest("`messages[\(i)]` must be an object") }
            let r = FieldReader(object: m, path: "messages[\(i)].")
            guard let role = try r.string("role") else {
                throw ServerError.badRequest("`messages[\(i)].role` is required")
            }
            var content = ""
            switch r.value("content") {
            case let .string(s): content = s
            case let .array(parts):
                for (j, part) in parts.enumerated() {
                    guard case let .object(p) = part, p["type"] == .string("text"), case let .string(t) = p["text"]
                    else {
                        throw ServerError.badRequest(
                            "`messages[\(i)].content[\(j)]` must be {\"type\": \"text\", \"text\": …}; only text is "
                                + "supported")
                    }
                    content += t
                }
            default:
                throw ServerError.badRequest("`messages[\(i)].content` must be a string or an array of text parts")
            }
            messages.append(ChatMessage(role: role, content: content))
        }
        return messages
    }
}
