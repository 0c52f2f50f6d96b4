import ChorusTestSupport
import Foundation

/// An HTTP/1.1 exchange as the tests see it: status, headers (names lowercased) and the body with any
/// chunked transfer encoding removed.
struct HTTPReply: Sendable {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object (nil when it is not one).
    var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] }

    /// `data:` payloads of a server-sent event stream, in order.
    var events: [String] {
        text.components(separatedBy: "\n\n").compactMap { block in
            block.hasPrefix("data: ") ? String(block.dropFirst(6)) : nil
        }
    }

    /// The OpenAI error message of an error body.
    var errorMessage: String? { (json?["error"] as? [String: Any])?["message"] as? String }
}

/// A tiny blocking HTTP client over a raw loopback socket (no client library): one request per
/// connection (`Connection: close`), read to the end. Runs off the cooperative pool.
enum HTTPTestClient {
    static func request(
        _ method: String, port: Int, path: String, body: String? = nil, headers: [String: String] = [:],
        timeoutSeconds: Int = 120
    ) async -> HTTPReply? {
        await offPool {
            guard let socket = RawSocket(port: port, timeoutSeconds: timeoutSeconds) else { return nil }
            socket.write(Array(head(method, path: path, body: body, headers: headers).utf8) + Array((body ?? "").utf8))
            var raw: [UInt8] = []
            while let chunk = socket.readSome() { raw += chunk }
            return parse(raw)
        }
    }

    static func head(_ method: String, path: String, body: String?, headers: [String: String]) -> String {
        var lines = ["\(method) \(path) HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        if let body {
            lines.append("Content-Length: \(body.utf8.count)")
            if headers["Content-Type"] == nil { lines.append("Content-Type: application/json") }
        }
        lines += headers.map { "\($0.key): \($0.value)" }
        return lines.joined(separator: "\r\n") + "\r\n\r\n"
    }

    /// Parses a whole response (status line, headers, body; chunked or by length).
    static func parse(_ raw: [UInt8]) -> HTTPReply? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = raw.firstRange(of: separator) else { return nil }
        let headText = String(decoding: raw[..<end.lowerBound], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        var body = Array(raw[end.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return HTTPReply(status: status, headers: headers, body: body)
    }

    /// Removes chunked transfer encoding (what arrived of it, if the stream was cut).
    static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        let crlf: [UInt8] = [13, 10]
        while i < bytes.count, let lineEnd = bytes[i...].firstRange(of: crlf) {
            let sizeText = String(decoding: bytes[i..<lineEnd.lowerBound], as: UTF8.self)
            guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16), size > 0 else { break }
            let start = lineEnd.upperBound
            out += bytes[start..<min(bytes.count, start + size)]
            i = start + size + 2
        }
        return out
    }
}

/// A streaming request the test reads piece by piece and may abandon (close) at any point.
final class HTTPStreamingConnection: @unchecked Sendable {
    let socket: RawSocket
    var received: [UInt8] = []

    /// POST `body` to `path`, or GET `path` when `body` is nil.
    init?(port: Int, path: String, body: String?, headers: [String: String] = [:]) {
        guard let socket = RawSocket(port: port, timeoutSeconds: 60) else { return nil }
        self.socket = socket
        let method = body == nil ? "GET" : "POST"
        socket.write(
            Array(HTTPTestClient.head(method, path: path, body: body, headers: headers).utf8) + Array((body ?? "").utf8)
        )
    }

    /// Reads until the raw bytes contain `marker` (true) or the stream ends (false).
    func read(until marker: String) async -> Bool {
        let pattern = Array(marker.utf8)
        return await offPool {
            while self.received.firstRange(of: pattern) == nil {
                guard let chunk = self.socket.readSome() else { return false }
                self.received += chunk
            }
            return true
        }
    }

    var text: String { String(decoding: received, as: UTF8.self) }
}

extension HTTPStreamingConnection {
    /// Abandons the request: the server sees the connection end.
    func close() { socket.shutdownBoth() }
}
