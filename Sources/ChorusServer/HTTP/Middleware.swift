import Foundation
import Hummingbird
import Logging

extension ServerError: HTTPResponseError {
    public var status: HTTPResponse.Status { .init(code: statusCode) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfterSeconds { headers[.retryAfter] = "\(retryAfterSeconds)" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Every error becomes OpenAI's JSON shape with its status: ours (``ServerError``), the router's
/// (404, 405) and anything unexpected (500, logged).
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as ServerError {
            throw error
        } catch let error as HTTPError {
            let code = Int(error.status.code)
            let message =
                code == 404
                ? "no route \(request.method) \(request.uri.path); see GET /v1/models, POST /v1/completions, "
                    + "POST /v1/chat/completions, GET /health, GET /metrics"
                : error.body ?? error.status.reasonPhrase
            throw ServerError(
                status: code, type: code == 404 ? "not_found_error" : "invalid_request_error",
                code: code == 404 ? "not_found" : "http_\(code)", message: message)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw ServerError(
                status: 413, type: "invalid_request_error", code: "request_too_large",
                message: "the request body is too large")
        } catch {
            logger.error("\(request.method) \(request.uri.path) failed: \(error)")
            throw ServerError(status: 500, type: "server_error", code: "internal", message: "\(error)")
        }
    }
}

/// `Authorization: Bearer KEY` on `/v1/*` when a key is configured (compared in constant time).
/// `/health`, `/metrics` and the status page stay open: they carry counts, never text.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: [UInt8]?

    init(key: String?) { self.key = key.map { Array($0.utf8) } }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let key, request.uri.path.hasPrefix("/v1/") else { return try await next(request, context) }
        let given = request.headers[.authorization].map { Array($0.utf8) } ?? []
        let prefix = Array("Bearer ".utf8)
        guard given.count == prefix.count + key.count, Array(given.prefix(prefix.count)) == prefix,
            Self.equal(Array(given.dropFirst(prefix.count)), key)
        else {
            throw ServerError(
                status: 401, type: "authentication_error", code: "invalid_api_key",
                message: "this server needs an API key: send `Authorization: Bearer KEY`")
        }
        return try await next(request, context)
    }

    /// Equality whose time does not depend on where the first difference is.
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
