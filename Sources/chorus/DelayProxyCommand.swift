import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc

    private let streamSocket = Int32(SOCK_STREAM.rawValue)
    private let sendFlags = Int32(MSG_NOSIGNAL)
#elseif canImport(Darwin)
    import Darwin

    private let streamSocket = SOCK_STREAM
    private let sendFlags: Int32 = 0
#endif

/// `chorus delay-proxy`: a user-space TCP proxy that adds a fixed one-way delay to every chunk it forwards.
///
/// The kernel on the development and CI machines has no `netem`, so emulated hosts (network namespaces
/// joined by veth pairs, `scripts/netns-cluster.sh`) get their cross-host latency from this proxy: the
/// coordinator dials the proxy, the proxy dials the worker. Each direction of each connection is a FIFO of
/// chunks stamped with the time they were read; a chunk is written once `delay` has passed since then, so
/// order is preserved and a request/reply round trip gains about 2 × delay.
struct DelayProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delay-proxy",
        abstract: "Forward TCP connections, delaying each direction by a fixed time.",
        discussion: """
            Every chunk read from one side is written to the other side --delay-ms milliseconds after it was \
            read (one way: a request/reply round trip gains about twice that). Order is preserved per \
            direction, half-closes are forwarded after the delay, and any number of connections run at once. \
            Stops on SIGINT/SIGTERM. Prints `delay-proxy: listening on tcp://HOST:PORT …` on stderr when \
            ready (with the real port when --listen asks for port 0).

            Example: chorus delay-proxy --listen tcp://127.0.0.1:7201 --forward 10.200.1.2:7101 --delay-ms 5
            """
    )

    @Option(name: .long, help: "Address to accept connections on: tcp://HOST:PORT or HOST:PORT (HOST * = all).")
    var listen: String

    @Option(name: .long, help: "Address to forward each connection to: tcp://HOST:PORT or HOST:PORT.")
    var forward: String

    @Option(name: .long, help: "One-way delay added to every chunk, in milliseconds (≥ 0, may be fractional).")
    var delayMs: Double

    @Option(name: .long, help: "Bytes that may wait in one direction before reading pauses.")
    var bufferBytes = 8 << 20

    @Flag(name: .long, help: "Log every connection's open and close on stderr.")
    var verbose = false

    func validate() throws {
        _ = try ProxyEndpoint(parsing: listen, option: "--listen")
        _ = try ProxyEndpoint(parsing: forward, option: "--forward")
        guard delayMs.isFinite, delayMs >= 0, delayMs <= 600_000 else {
            throw ValidationError("--delay-ms must be a number of milliseconds in 0…600000, got \(delayMs)")
        }
        guard bufferBytes >= 4096 else { throw ValidationError("--buffer-bytes must be ≥ 4096") }
    }

    func run() throws {
        let listenEndpoint = try ProxyEndpoint(parsing: listen, option: "--listen")
        let forwardEndpoint = try ProxyEndpoint(parsing: forward, option: "--forward")
        let target: ResolvedAddress
        let listener: Int32
        do {
            target = try forwardEndpoint.resolve(passive: false)
            listener = try openListener(listenEndpoint)
        } catch let error as ProxyError {
            throw fail(error.description, code: 1)
        }
        let stop = try StopSignal()
        let proxy = DelayProxy(
            target: target, delayNanoseconds: UInt64(delayMs * 1_000_000), bufferBytes: bufferBytes, verbose: verbose)

        FileHandleOutput.standardError.write(
            "delay-proxy: listening on tcp://\(boundAddress(listener, fallback: listenEndpoint)), forwarding to "
                + "\(forwardEndpoint.display) with \(formatDelay(delayMs)) ms one-way delay\n")

        var fds = [
            pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stop.readFD, events: Int16(POLLIN), revents: 0),
        ]
        acceptLoop: while true {
            let ready = poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                throw fail("poll failed: \(errnoText())", code: 1)
            }
            if fds[1].revents != 0 { break acceptLoop }
            if fds[0].revents != 0 {
                let client = accept(listener, nil, nil)
                if client < 0 {
                    if errno == EINTR || errno == EAGAIN || errno == ECONNABORTED { continue }
                    if errno == EMFILE || errno == ENFILE {
                        FileHandleOutput.standardError.write("delay-proxy: accept: \(errnoText()); pausing 100 ms\n")
                        usleep(100_000)
                        continue
                    }
                    throw fail("accept failed: \(errnoText())", code: 1)
                }
                proxy.start(client: client)
            }
        }
        close(listener)
        let open = proxy.abortAll()
        FileHandleOutput.standardError.write("delay-proxy: stopped (\(open) open connection(s) closed)\n")
    }

    /// The address the listener really bound (port 0 becomes the kernel's choice).
    private func boundAddress(_ fd: Int32, fallback: ProxyEndpoint) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard ok, let text = numericHostPort(&storage, length: length) else { return fallback.display }
        return text
    }

    private func formatDelay(_ ms: Double) -> String {
        ms == ms.rounded() ? String(Int(ms)) : String(ms)
    }
}

/// A proxy failure a person can act on (the address, the port, the system's reason).
struct ProxyError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `HOST:PORT` as given on the command line (`tcp://` prefix optional, IPv6 in brackets).
struct ProxyEndpoint {
    var host: String
    var port: UInt16

    var display: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    init(parsing text: String, option: String) throws {
        var rest = Substring(text)
        if let range = rest.range(of: "://") {
            let scheme = rest[..<range.lowerBound]
            guard scheme == "tcp" else {
                throw ValidationError(
                    "\(option) \(text): only tcp:// addresses can be proxied (got \(scheme)://); "
                        + "a tls+tcp stream passes through unchanged if you give its plain tcp://HOST:PORT")
            }
            rest = rest[range.upperBound...]
        }
        let hostPart: Substring
        let portPart: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") else {
                throw ValidationError("\(option) \(text): expected [IPV6]:PORT")
            }
            hostPart = rest[rest.index(after: rest.startIndex)..<close]
            portPart = rest[rest.index(close, offsetBy: 2)...]
        } else {
            guard let colon = rest.lastIndex(of: ":") else {
                throw ValidationError("\(option) \(text): expected HOST:PORT, e.g. 127.0.0.1:7201")
            }
            hostPart = rest[..<colon]
            portPart = rest[rest.index(after: colon)...]
        }
        guard let port = UInt16(portPart) else {
            throw ValidationError("\(option) \(text): port '\(portPart)' is not a number in 0…65535")
        }
        host = hostPart.isEmpty ? "*" : String(hostPart)
        self.port = port
        if option == "--forward" {
            guard port != 0 else { throw ValidationError("\(option) \(text): port 0 cannot be dialled") }
            guard host != "*" else { throw ValidationError("\(option) \(text): give the host to forward to") }
        }
    }

    /// Resolves with getaddrinfo; the first result wins (IPv4 and IPv6 both accepted).
    func resolve(passive: Bool) throws -> ResolvedAddress {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = streamSocket
        hints.ai_flags = passive ? AI_PASSIVE : 0
        var list: UnsafeMutablePointer<addrinfo>?
        let node: String? = host == "*" ? nil : host
        if node == nil { hints.ai_family = AF_INET }
        let status = getaddrinfo(node, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw ProxyError("cannot resolve \(display): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        return ResolvedAddress(first.pointee, display: display)
    }
}

/// One socket address from getaddrinfo, copied so it outlives the list.
struct ResolvedAddress: @unchecked Sendable {
    var family: Int32
    var storage = sockaddr_storage()
    var length: socklen_t
    var display: String

    init(_ info: addrinfo, display: String) {
        family = info.ai_family
        length = info.ai_addrlen
        self.display = display
        withUnsafeMutableBytes(of: &storage) { target in
            target.copyMemory(from: UnsafeRawBufferPointer(start: info.ai_addr, count: Int(info.ai_addrlen)))
        }
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}

private func openListener(_ endpoint: ProxyEndpoint) throws -> Int32 {
    let address = try endpoint.resolve(passive: true)
    let fd = socket(address.family, streamSocket, 0)
    guard fd >= 0 else { throw ProxyError("cannot create a socket for \(endpoint.display): \(errnoText())") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    let bound = address.withSockaddr { bind(fd, $0, $1) }
    guard bound == 0 else {
        let reason = errno
        close(fd)
        switch reason {
        case EADDRINUSE:
            throw ProxyError("cannot listen on \(endpoint.display): port \(endpoint.port) is already in use")
        case EADDRNOTAVAIL:
            throw ProxyError("cannot listen on \(endpoint.display): \(endpoint.host) is not an address of this host")
        case EACCES:
            throw ProxyError("cannot listen on \(endpoint.display): permission denied (ports below 1024 need root)")
        default:
            throw ProxyError("cannot listen on \(endpoint.display): \(String(cString: strerror(reason)))")
        }
    }
    guard listen(fd, 128) == 0 else {
        let text = errnoText()
        close(fd)
        throw ProxyError("cannot listen on \(endpoint.display): \(text)")
    }
    return fd
}

private func numericHostPort(_ storage: inout sockaddr_storage, length: socklen_t) -> String? {
    var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
    var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
    let status = withUnsafePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            getnameinfo(
                $0, length, &host, socklen_t(host.count), &service, socklen_t(service.count),
                NI_NUMERICHOST | NI_NUMERICSERV)
        }
    }
    guard status == 0 else { return nil }
    let h = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let s = String(decoding: service.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return h.contains(":") ? "[\(h)]:\(s)" : "\(h):\(s)"
}

private func errnoText() -> String { String(cString: strerror(errno)) }

/// Monotonic time in nanoseconds.
private func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// SIGINT/SIGTERM turned into a readable pipe (the self-pipe trick), so the accept loop can poll for it.
private nonisolated(unsafe) var stopPipeWriteFD: Int32 = -1

private struct StopSignal {
    let readFD: Int32

    init() throws {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw fail("cannot create a pipe: \(errnoText())", code: 1) }
        readFD = ends[0]
        stopPipeWriteFD = ends[1]
        let handler: @convention(c) (Int32) -> Void = { _ in
            var byte: UInt8 = 1
            _ = write(stopPipeWriteFD, &byte, 1)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        signal(SIGPIPE, SIG_IGN)
    }
}

/// All open connections; each runs two directions, each direction a reader and a writer thread.
final class DelayProxy: @unchecked Sendable {
    let target: ResolvedAddress
    let delayNanoseconds: UInt64
    let bufferBytes: Int
    let verbose: Bool
    private let lock = NSLock()
    private var connections: [Int: ProxyConnection] = [:]
    private var nextID = 1

    init(target: ResolvedAddress, delayNanoseconds: UInt64, bufferBytes: Int, verbose: Bool) {
        self.target = target
        self.delayNanoseconds = delayNanoseconds
        self.bufferBytes = bufferBytes
        self.verbose = verbose
    }

    /// Dials the target on a new thread (so a slow dial never blocks accepting) and starts forwarding.
    func start(client: Int32) {
        setNoDelay(client)
        let id = lock.withLock {
            defer { nextID += 1 }
            return nextID
        }
        let thread = Thread { [self] in
            let server = socket(target.family, streamSocket, 0)
            var connected = false
            if server >= 0 {
                connected = target.withSockaddr { address, length in
                    while true {
                        if connect(server, address, length) == 0 { return true }
                        if errno != EINTR { return false }
                    }
                }
            }
            guard connected else {
                FileHandleOutput.standardError.write(
                    "delay-proxy: connection \(id): cannot connect to \(target.display): \(errnoText())\n")
                if server >= 0 { close(server) }
                close(client)
                return
            }
            setNoDelay(server)
            let connection = ProxyConnection(id: id, client: client, server: server, proxy: self)
            lock.withLock { connections[id] = connection }
            if verbose { FileHandleOutput.standardError.write("delay-proxy: connection \(id) open\n") }
            connection.run()
        }
        thread.start()
    }

    func finished(_ connection: ProxyConnection) {
        lock.withLock { _ = connections.removeValue(forKey: connection.id) }
        if verbose { FileHandleOutput.standardError.write("delay-proxy: connection \(connection.id) closed\n") }
    }

    /// Shuts every open connection down; returns how many there were.
    func abortAll() -> Int {
        let open = lock.withLock { Array(connections.values) }
        for connection in open { connection.abort() }
        return open.count
    }
}

private func setNoDelay(_ fd: Int32) {
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}

/// One accepted connection and its dialled counterpart.
final class ProxyConnection: @unchecked Sendable {
    let id: Int
    let client: Int32
    let server: Int32
    unowned let proxy: DelayProxy
    private let lock = NSLock()
    private var runningDirections = 2
    /// Set (under `lock`) when both descriptors are closed, so `abort` never touches a reused number.
    private var closed = false
    private let upstream: DelayedChannel
    private let downstream: DelayedChannel

    init(id: Int, client: Int32, server: Int32, proxy: DelayProxy) {
        self.id = id
        self.client = client
        self.server = server
        self.proxy = proxy
        upstream = DelayedChannel(limit: proxy.bufferBytes)
        downstream = DelayedChannel(limit: proxy.bufferBytes)
    }

    func run() {
        startDirection(from: client, to: server, channel: upstream)
        startDirection(from: server, to: client, channel: downstream)
    }

    /// Tears both sockets down (wakes blocked reads and writes); queued bytes are dropped.
    func abort() {
        upstream.abort()
        downstream.abort()
        lock.withLock {
            guard !closed else { return }
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(server, Int32(SHUT_RDWR))
        }
    }

    private func startDirection(from source: Int32, to destination: Int32, channel: DelayedChannel) {
        let delay = proxy.delayNanoseconds
        let reader = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    let due = monotonicNanoseconds() + delay
                    if !channel.push(Array(buffer[0..<n]), due: due) { return }
                } else if n == 0 {
                    channel.finish(due: monotonicNanoseconds() + delay)
                    return
                } else if errno == EINTR {
                    continue
                } else {
                    abort()
                    return
                }
            }
        }
        let writer = Thread { [self] in
            defer { directionFinished() }
            while let item = channel.pop() {
                let now = monotonicNanoseconds()
                if item.due > now { sleepNanoseconds(item.due - now) }
                guard let bytes = item.bytes else {
                    shutdown(destination, Int32(SHUT_WR))
                    return
                }
                var offset = 0
                while offset < bytes.count {
                    let n = bytes.withUnsafeBytes {
                        send(destination, $0.baseAddress! + offset, $0.count - offset, sendFlags)
                    }
                    if n > 0 {
                        offset += n
                    } else if n < 0 && errno == EINTR {
                        continue
                    } else {
                        abort()
                        return
                    }
                }
            }
        }
        reader.start()
        writer.start()
    }

    private func directionFinished() {
        let last = lock.withLock {
            runningDirections -= 1
            guard runningDirections == 0 else { return false }
            closed = true
            close(client)
            close(server)
            return true
        }
        if last { proxy.finished(self) }
    }
}

private func sleepNanoseconds(_ ns: UInt64) {
    var request = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// A FIFO of chunks, each with the monotonic time it may be written; `nil` bytes mark end of stream.
final class DelayedChannel: @unchecked Sendable {
    struct Item {
        var bytes: [UInt8]?
        var due: UInt64
    }

    private let condition = NSCondition()
    private var items: [Item] = []
    private var head = 0
    private var queuedBytes = 0
    private var aborted = false
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Waits while more than `limit` bytes are queued; false once the channel was aborted.
    func push(_ bytes: [UInt8], due: UInt64) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while queuedBytes >= limit && !aborted { condition.wait() }
        guard !aborted else { return false }
        items.append(Item(bytes: bytes, due: due))
        queuedBytes += bytes.count
        condition.broadcast()
        return true
    }

    func finish(due: UInt64) {
        condition.lock()
        items.append(Item(bytes: nil, due: due))
        condition.broadcast()
        condition.unlock()
    }

    /// The next item in order, or nil once the channel was aborted.
    func pop() -> Item? {
        condition.lock()
        defer { condition.unlock() }
        while head == items.count && !aborted { condition.wait() }
        guard !aborted else { return nil }
        let item = items[head]
        head += 1
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        queuedBytes -= item.bytes?.count ?? 0
        condition.broadcast()
        return item
    }

    func abort() {
        condition.lock()
        aborted = true
        condition.broadcast()
        condition.unlock()
    }
}
