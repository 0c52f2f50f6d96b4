import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What went wrong with one HTTP exchange of the load generator.
public struct HTTPStreamError: Error, CustomStringConvertible, Sendable {
    /// A short class for counting (`connect`, `timeout`, `closed`, `malformed`, `send`).
    public var kind: String
    public var detail: String
    public var description: String { "\(kind): \(detail)" }
}

/// Incremental decoder of HTTP/1.1 chunked transfer coding (RFC 9112 §7.1): bytes in, body bytes out, in
/// whatever pieces the socket delivers them. Chunk extensions and trailers are read and dropped.
public struct ChunkedDecoder: Sendable {
    enum State: Sendable { case size, data(Int), dataEnd, trailer, done }
    var state = State.size
    var line: [UInt8] = []

    public init() {}

    /// True once the last (zero-size) chunk and the trailer section have been read.
    public var isFinished: Bool {
        if case .done = state { return true }
        return false
    }

    /// The body bytes in `input`; throws on a malformed size line or a missing CRLF after a chunk.
    public mutating func feed(_ input: some Collection<UInt8>) throws(HTTPStreamError) -> [UInt8] {
        var body: [UInt8] = []
        var i = input.startIndex
        while i != input.endIndex {
            switch state {
            case .size, .trailer, .dataEnd:
                let byte = input[i]
                i = input.index(after: i)
                if byte != UInt8(ascii: "\n") {
                    line.append(byte)
                    guard line.count <= 4096 else {
                        throw HTTPStreamError(kind: "malformed", detail: "a chunk line over 4096 bytes")
                    }
                    continue
                }
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                defer { line.removeAll(keepingCapacity: true) }
                switch state {
                case .dataEnd:
                    guard line.isEmpty else {
                        throw HTTPStreamError(kind: "malformed", detail: "no CRLF after a chunk's data")
                    }
                    state = .size
                case .trailer:
                    if line.isEmpty { state = .done }
                default:
                    let digits = line.prefix { $0 != UInt8(ascii: ";") && $0 != UInt8(ascii: " ") }
                    guard !digits.isEmpty, digits.count <= 8,
                        let size = Int(String(decoding: digits, as: UTF8.self), radix: 16)
                    else {
                        throw HTTPStreamError(
                            kind: "malformed", detail: "chunk size line '\(String(decoding: line, as: UTF8.self))'")
                    }
                    state = size == 0 ? .trailer : .data(size)
                }
            case let .data(remaining):
                let available = input.distance(from: i, to: input.endIndex)
                let take = min(remaining, available)
                let end = input.index(i, offsetBy: take)
                body += input[i..<end]
                i = end
                state = remaining - take == 0 ? .dataEnd : .data(remaining - take)
            case .done:
                return body  // bytes after the end of the message are not ours
            }
        }
        return body
    }
}

/// Splits a server-sent-events body into the payloads of its `data:` lines (one event per line; the streams
/// measured here send one JSON object per event). Lines may arrive in any pieces.
public struct EventLineSplitter: Sendable {
    var pending: [UInt8] = []

    public init() {}

    public mutating func feed(_ bytes: some Collection<UInt8>) -> [String] {
        var events: [String] = []
        for byte in bytes {
            guard byte == UInt8(ascii: "\n") else {
                pending.append(byte)
                continue
            }
            if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
            let line = String(decoding: pending, as: UTF8.self)
            pending.removeAll(keepingCapacity: true)
            if line.hasPrefix("data:") {
                events.append(String(line.dropFirst(5).drop { $0 == " " }))
            }
        }
        return events
    }
}

/// One HTTP/1.1 POST over a blocking socket (the load generator runs one thread per client connection):
/// sends `body`, reads the status line and headers, then the body — chunked, by Content-Length or to the
/// end of the connection — handing each piece to `onBody` as it arrives.
public enum HTTPStream {
    /// `url`: `http://HOST:PORT` (no TLS). Returns the status code.
    public static func post(
        url: String, path: String, body: [UInt8], headers: [(String, String)] = [], timeout: Duration,
        onBody: ([UInt8]) throws(HTTPStreamError) -> Void
    ) throws(HTTPStreamError) -> Int {
        let (host, port) = try hostAndPort(url)
        let fd = try connect(host: host, port: port, timeout: timeout)
        defer { close(fd) }
        var request = "POST \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nContent-Type: application/json\r\n"
        request += "Accept: text/event-stream\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        try send(fd, Array((request + "\r\n").utf8) + body)

        var buffer = [UInt8](repeating: 0, count: 65536)
        var head: [UInt8] = []
        var rest: [UInt8] = []
        while true {
            let n = try receive(fd, &buffer)
            guard n > 0 else {
                throw HTTPStreamError(kind: "closed", detail: "the connection closed before the headers")
            }
            head += buffer[0..<n]
            if let end = headerEnd(head) {
                rest = Array(head[end...])
                head = Array(head[..<end])
                break
            }
            guard head.count <= 65536 else { throw HTTPStreamError(kind: "malformed", detail: "headers over 64 KiB") }
        }
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = (lines.first ?? "").split(separator: " ")
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw HTTPStreamError(kind: "malformed", detail: "status line '\(lines.first ?? "")'")
        }
        var chunked = false
        var length: Int?
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let name = parts[0].lowercased(), value = parts[1].trimmingCharacters(in: .whitespaces).lowercased()
            if name == "transfer-encoding" { chunked = value.contains("chunked") }
            if name == "content-length" { length = Int(value) }
        }
        var decoder = ChunkedDecoder()
        var received = 0
        func deliver(_ bytes: [UInt8]) throws(HTTPStreamError) -> Bool {
            if chunked {
                let decoded = try decoder.feed(bytes)
                if !decoded.isEmpty { try onBody(decoded) }
                return decoder.isFinished
            }
            let wanted = length.map { min(bytes.count, $0 - received) } ?? bytes.count
            if wanted > 0 { try onBody(Array(bytes[0..<wanted])) }
            received += wanted
            return length.map { received >= $0 } ?? false
        }
        if !rest.isEmpty, try deliver(rest) { return status }
        while true {
            let n = try receive(fd, &buffer)
            if n == 0 {
                if chunked { throw HTTPStreamError(kind: "closed", detail: "the stream ended before its last chunk") }
                if let length, received < length {
                    throw HTTPStreamError(kind: "closed", detail: "\(received) of \(length) body bytes")
                }
                return status
            }
            if try deliver(Array(buffer[0..<n])) { return status }
        }
    }

    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4)
        where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    static func hostAndPort(_ url: String) throws(HTTPStreamError) -> (String, UInt16) {
        guard url.hasPrefix("http://") else {
            throw HTTPStreamError(kind: "malformed", detail: "'\(url)' is not an http://HOST:PORT address")
        }
        let rest = url.dropFirst("http://".count).split(separator: "/", maxSplits: 1).first ?? ""
        guard let colon = rest.lastIndex(of: ":"), let port = UInt16(rest[rest.index(after: colon)...]) else {
            return (String(rest), 80)
        }
        return (String(rest[..<colon]), port)
    }

    static func connect(host: String, port: UInt16, timeout: Duration) throws(HTTPStreamError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw HTTPStreamError(kind: "connect", detail: "cannot resolve \(host)")
        }
        defer { freeaddrinfo(list) }
        var errorText = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let a = entry {
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if fd >= 0 {
                var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                if Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { return fd }
                errorText = String(cString: strerror(errno))
                close(fd)
            }
            entry = a.pointee.ai_next
        }
        throw HTTPStreamError(kind: "connect", detail: "\(host):\(port): \(errorText)")
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) throws(HTTPStreamError) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw HTTPStreamError(kind: "send", detail: String(cString: strerror(errno))) }
            sent += n
        }
    }

    static func receive(_ fd: Int32, _ buffer: inout [UInt8]) throws(HTTPStreamError) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n >= 0 { return n }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                throw HTTPStreamError(kind: "timeout", detail: "nothing received within the timeout")
            }
            throw HTTPStreamError(kind: "closed", detail: String(cString: strerror(errno)))
        }
    }
}
