import ChorusTestSupport
import Foundation
import Testing

@testable import ChorusDelayProxy

/// The delay proxy's parts: the per-direction FIFO of stamped chunks, address parsing, and one real
/// connection through the proxy on loopback.
@Suite struct DelayProxyTests {
    @Test func channelKeepsOrderStampsAndTheEndOfStream() {
        let channel = DelayedChannel(limit: 1 << 20)
        #expect(channel.push([1, 2], due: 10))
        #expect(channel.push([3], due: 20))
        channel.finish(due: 30)
        let items = (0..<3).compactMap { _ in channel.pop() }
        #expect(items.map(\.bytes) == [[1, 2], [3], nil])
        #expect(items.map(\.due) == [10, 20, 30])
    }

    /// A full channel makes the reader wait (backpressure) until the writer takes a chunk.
    @Test func fullChannelBlocksThePusherUntilAPop() async {
        let channel = DelayedChannel(limit: 4)
        #expect(channel.push([1, 2, 3, 4], due: 0))
        let pushed = Guarded(false)
        let pusher = Thread {
            _ = channel.push([5], due: 1)
            pushed.withLock { $0 = true }
        }
        pusher.start()
        try? await Task.sleep(for: .milliseconds(100))
        #expect(pushed.withLock { $0 } == false, "a push past the limit returned before any pop")
        #expect(channel.pop()?.bytes == [1, 2, 3, 4])
        #expect(await eventually(within: .seconds(10)) { pushed.withLock { $0 } })
        #expect(channel.pop()?.bytes == [5])
    }

    /// Abort wakes a waiting reader (nil) and refuses further pushes.
    @Test func abortWakesTheWriterAndRefusesPushes() async {
        let channel = DelayedChannel(limit: 16)
        let popped = Guarded<[UInt8]??>(.none)
        let done = Guarded(false)
        Thread {
            let item = channel.pop()
            popped.withLock { $0 = .some(item?.bytes ?? nil) }
            done.withLock { $0 = true }
        }.start()
        try? await Task.sleep(for: .milliseconds(50))
        channel.abort()
        #expect(await eventually(within: .seconds(10)) { done.withLock { $0 } })
        #expect(popped.withLock { $0 } == .some(nil))
        #expect(!channel.push([1], due: 0))
        #expect(channel.pop() == nil)
    }

    @Test func endpointsParseAndExplainMistakes() throws {
        let plain = try ProxyEndpoint(parsing: "tcp://127.0.0.1:7201", option: "--listen")
        #expect(plain.host == "127.0.0.1" && plain.port == 7201)
        let any = try ProxyEndpoint(parsing: ":0", option: "--listen")
        #expect(any.host == "*" && any.port == 0)
        let v6 = try ProxyEndpoint(parsing: "[::1]:9", option: "--forward")
        #expect(v6.display == "[::1]:9")
        for (text, fragment) in [
            ("ipc:///tmp/x:1", "only tcp://"), ("127.0.0.1", "HOST:PORT"), ("h:99999", "0…65535"),
            ("127.0.0.1:0", "port 0"),
        ] {
            #expect(throws: ProxyError.self) { try ProxyEndpoint(parsing: text, option: "--forward") }
            do {
                _ = try ProxyEndpoint(parsing: text, option: "--forward")
            } catch {
                #expect(error.description.contains(fragment), "\(text): \(error)")
            }
        }
    }

    /// One connection through the proxy to a loopback echo server: the bytes arrive unchanged, and
    /// the round trip takes at least twice the one-way delay (a lower bound: slowness never fails it).
    @Test func roundTripThroughTheProxyGainsTwiceTheDelay() async throws {
        let echo = try EchoServer()
        let server = try DelayProxyServer(
            listen: ProxyEndpoint(parsing: "127.0.0.1:0", option: "--listen"),
            forward: ProxyEndpoint(parsing: "127.0.0.1:\(echo.port)", option: "--forward"), delayMilliseconds: 40,
            log: { _ in })
        let port = try #require(Int(server.boundAddress.split(separator: ":").last ?? ""))
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        let stopFD = ends[0]
        Thread { _ = try? server.run(until: stopFD) }.start()
        defer {
            var byte: UInt8 = 1
            _ = write(ends[1], &byte, 1)
        }
        let elapsed = await offPool { () -> (bytes: [UInt8]?, seconds: Double) in
            guard let socket = RawSocket(port: port, timeoutSeconds: 10) else { return (nil, 0) }
            let start = ContinuousClock.now
            socket.write([7, 8, 9])
            let reply = socket.read(3)
            let d = ContinuousClock.now - start
            return (reply, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
        }
        #expect(elapsed.bytes == [7, 8, 9])
        #expect(elapsed.seconds >= 0.08, "round trip of \(elapsed.seconds) s through a 40 ms proxy")
        echo.stop()
    }
}

/// A one-connection-at-a-time TCP echo server on a loopback port, on its own thread.
final class EchoServer: @unchecked Sendable {
    let port: Int
    private let fd: Int32

    init() throws {
        let endpoint = try ProxyEndpoint(parsing: "127.0.0.1:0", option: "--listen")
        let listener = try openListener(endpoint)
        fd = listener
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        let text = numericHostPort(&storage, length: length) ?? ""
        port = Int(text.split(separator: ":").last ?? "") ?? 0
        Thread {
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 { return }
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { break }
                    _ = buffer.withUnsafeBytes { send(client, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }
                }
                close(client)
            }
        }.start()
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
