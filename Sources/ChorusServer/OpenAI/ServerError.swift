import Foundation

/// An HTTP error answered in OpenAI's shape: `{"error": {"message", "type", "code"}}` with ``status``,
/// and `Retry-After: retryAfterSeconds` when set. Every refusal of the server is one of these, so a
/// client always learns what to change.
public struct ServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// HTTP status code (400, 401, 404, 413, 429, 500, 503).
    public var statusCode: Int
    /// OpenAI's error `type`: `invalid_request_error`, `authentication_error`, `rate_limit_error`,
    /// `server_error`, `not_found_error`.
    public var type: String
    /// A short machine-readable code (`context_length_exceeded`, `queue_full`, …).
    public var code: String
    public var message: String
    public var retryAfterSeconds: Int?

    public init(status: Int, type: String, code: String, message: String, retryAfterSeconds: Int? = nil) {
        self.statusCode = status
        self.type = type
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { "\(statusCode) \(code): \(message)" }

    public static func badRequest(_ message: String, code: String = "invalid_request") -> ServerError {
        ServerError(status: 400, type: "invalid_request_error", code: code, message: message)
    }

    /// The JSON body (`{"error": {"code", "message", "type"}}`).
    public var body: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? Array(encoder.encode(["error": ["message": message, "type": type, "code": code]]))) ?? []
    }
}
