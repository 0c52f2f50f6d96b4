import Foundation
import Testing

@testable import ChorusBench

#if canImport(Glibc)
    import Glibc
#endif

/// The load generator of `chorus bench serve`: its HTTP/SSE decoding and its accounting, against a stand-in
/// server whose answers are known.
struct ServeLoadTests {
    static let chunkedBody: [UInt8] = Array(
        "7\r\ndata: a\r\n5;ext=1\r\n\ndata\r\nB\r\n: {\"x\":1}\n\n\r\n0\r\nTrailer: t\r\n\r\nextra".utf8)

    @Test func chunkedBodiesDecodeInAnyPieces() throws {
        let expected = Array("data: a\ndata: {\"x\":1}\n\n".utf8)
        for piece in [1, 2, 3, 5, 7, 64] {
            var decoder = ChunkedDecoder()
            var body: [UInt8] = []
            var start = 0
            while start < Self.chunkedBody.count && !decoder.isFinished {
                let end = min(start + piece, Self.chunkedBody.count)
                body += try decoder.feed(Self.chunkedBody[start..<end])
                start = end
            }
            #expect(body == expected, "pieces of \(piece)")
            #expect(decoder.isFinished, "pieces of \(piece)")
        }
    }

    @Test func malformedChunksAreRefused() {
        for bad in ["zz\r\nabc\r\n", "3\r\nabcX\r\n", "123456789\r\n"] {
            var decoder = ChunkedDecoder()
            #expect(throws: HTTPStreamError.self, "\(bad)") { _ = try decoder.feed(Array(bad.utf8)) }
        }
    }

    @Test func eventLinesSplitAcrossPieces() {
        var splitter = EventLineSplitter()
        var events: [String] = []
        for byte in Array("data: {\"a\":1}\r\n\r\n: comment\nevent: x\ndata:[DONE]\n".utf8) {
            events += splitter.feed([byte])
        }
        #expect(events == ["{\"a\":1}", "[DONE]"])
    }

    /// 12 requests, 3 at a time: seeds ≡ 0 (mod 4) get a 429, seed 6 is cut after one chunk, the others stream
    /// three chunks of two tokens each, 20 ms apart.
    @Test func loadRunCountsTokensErrorsAndLatencies() throws {
        let server = try StandInServer { seed in
            if seed % 4 == 0 { return .refuse }
            return seed == 6 ? .cut : .stream(chunks: 3, gap: 0.02)
        }
        defer { server.stop() }
        var plan = ServeLoadPlan(url: "http://127.0.0.1:\(server.port)", label: "stand-in", prompts: ["p", "q"])
        plan.requests = 12
        plan.concurrency = 3
        plan.timeout = .seconds(10)
        let result = ServeLoad.run(plan)
        #expect(result.requests == 12)
        #expect(result.errors["http 429"] == 3)  // seeds 4, 8, 12
        #expect(result.errors["closed"] == 1)  // seed 6
        #expect(result.completed == 8)
        #expect(result.completionTokens == 8 * 6)  // the usage chunk's count, not the 3 chunks
        #expect(result.tokensPerChunk == 2)
        #expect(result.timeToFirstToken.p50 >= 0 && result.timeToFirstToken.p50 < 1000)
        // Two gaps of ≈ 20 ms between three chunks carrying 6 tokens: (last − first) / 5 ≈ 8 ms a token.
        #expect(result.interChunkGap.p50 >= 19 && result.interChunkGap.p50 < 200)
        #expect(result.interTokenLatency.p50 >= 7.5 && result.interTokenLatency.p50 < 80)
        #expect(result.requestLatency.p50 >= 39)
        #expect(result.tokensPerSecond > 0)
        #expect(server.bodies.allSatisfy { $0["stream"] as? Bool == true && $0["ignore_eos"] as? Bool == true })
    }

    @Test func anUnreachableServerIsAConnectError() {
        var plan = ServeLoadPlan(url: "http://127.0.0.1:1", label: "nobody", prompts: ["p"])
        plan.requests = 2
        let result = ServeLoad.run(plan)
        #expect(result.completed == 0)
        #expect(result.errors["connect"] == 2)
    }
}

/// A one-thread HTTP server on a free loopback port answering each POST by its JSON body's seed.
final class StandInServer: @unchecked Sendable {
    enum Answer {
        case refuse
        case cut
        case stream(chunks: Int, gap: Double)
    }

    let port: UInt16
    private let fd: Int32
    private let answer: (Int) -> Answer
    private let lock = NSLock()
    private var received: [[String: Any]] = []
    var bodies: [[String: Any]] { lock.withLock { received } }

    init(answer: @escaping (Int) -> Answer) throws {
        self.answer = answer
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw HTTPStreamError(kind: "test", detail: "cannot listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        Thread { self.serve() }.start()
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)) }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            Thread { self.handle(client) }.start()
        }
    }

    private func handle(_ client: Int32) {
        defer { close(client) }
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var body: [String: Any]?
        while body == nil {
            let n = recv(client, &buffer, buffer.count, 0)
            guard n > 0 else { return }
            request += buffer[0..<n]
            guard let end = HTTPStream.headerEnd(request) else { continue }
            let head = String(decoding: request[..<end], as: UTF8.self).lowercased()
            let length =
                head.components(separatedBy: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            if request.count - end >= length {
                body =
                    (try? JSONSerialization.jsonObject(with: Data(request[end..<(end + length)]))) as? [String: Any]
                    ?? [:]
            }
        }
        lock.withLock { received.append(body ?? [:]) }
        let seed = body?["seed"] as? Int ?? 0
        func write(_ text: String) {
            _ = Array(text.utf8).withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        func chunk(_ text: String) { write(String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n") }
        switch answer(seed) {
        case .refuse:
            let json = "{\"error\":{\"message\":\"busy\"}}"
            write(
                "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)"
            )
        case .cut:
            write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk("data: {\"choices\":[{\"text\":\"x\"}]}\n\n")
        case let .stream(chunks, gap):
            write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in 0..<chunks {
                if i > 0 { Thread.sleep(forTimeInterval: gap) }
                chunk("data: {\"choices\":[{\"text\":\"t\(i)\",\"finish_reason\":null}]}\n\n")
            }
            chunk("data: {\"choices\":[],\"usage\":{\"completion_tokens\":\(2 * chunks)}}\n\ndata: [DONE]\n\n")
            write("0\r\n\r\n")
        }
    }
}
