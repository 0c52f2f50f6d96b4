import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// SIGINT/SIGTERM turned into a readable pipe (the self-pipe trick), so the accept loop can poll for it.
nonisolated(unsafe) private var stopPipeWriteFD: Int32 = -1

public struct StopSignal: Sendable {
    public let readFD: Int32

    public init() throws(ProxyError) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw ProxyError("cannot create a pipe: \(errnoText())") }
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

/// `chorus delay-proxy`'s engine: a user-space TCP proxy that adds a fixed one-way delay to every
/// chunk it forwards.
///
/// The kernel on the development and CI machines has no `netem`, so emulated hosts (network
/// namespaces joined by veth pairs, `scripts/netns-cluster.sh`) get their cross-host latency from
/// this proxy: the coordinator dials the proxy, the proxy dials the worker. Each direction of each
/// connection is a FIFO of chunks stamped with the time they were read (``DelayedChannel``); a chunk
/// is written once `delay` has passed since then, so order is preserved and a request/reply round
/// trip gains about 2 × delay.
public final class DelayProxyServer: @unchecked Sendable {
    /// The address the listener really bound (port 0 becomes the kernel's choice).
    public let boundAddress: String
    private let listener: Int32
    private let proxy: DelayProxy
    private let log: @Sendable (String) -> Void

    /// Resolves `forward` and listens on `listen`; `log` gets one line per event (no newline).
    public init(
        listen: ProxyEndpoint, forward: ProxyEndpoint, delayMilliseconds: Double, bufferBytes: Int = 8 << 20,
        verbose: Bool = false, log: @escaping @Sendable (String) -> Void
    ) throws(ProxyError) {
        let target = try forward.resolve(passive: false)
        let fd = try openListener(listen)
        listener = fd
        self.log = log
        proxy = DelayProxy(
            target: target, delayNanoseconds: UInt64(delayMilliseconds * 1_000_000), bufferBytes: bufferBytes,
            verbose: verbose, log: log)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        boundAddress = ok ? numericHostPort(&storage, length: length) ?? listen.display : listen.display
    }

    /// Accepts and forwards connections until `stopFD` becomes readable; then closes the listener and
    /// every open connection and returns how many were open.
    public func run(until stopFD: Int32) throws(ProxyError) -> Int {
        var fds = [
            pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0),
        ]
        acceptLoop: while true {
            let ready = poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                throw ProxyError("poll failed: \(errnoText())")
            }
            if fds[1].revents != 0 { break acceptLoop }
            if fds[0].revents != 0 {
                let client = accept(listener, nil, nil)
                if client < 0 {
                    if errno == EINTR || errno == EAGAIN || errno == ECONNABORTED { continue }
                    if errno == EMFILE || errno == ENFILE {
                        log("delay-proxy: accept: \(errnoText()); pausing 100 ms")
                        usleep(100_000)
                        continue
                    }
                    throw ProxyError("accept failed: \(errnoText())")
                }
                proxy.start(client: client)
            }
        }
        close(listener)
        return proxy.abortAll()
    }
}

/// All open connections; each runs two directions, each direction a reader and a writer thread.
final class DelayProxy: @unchecked Sendable {
    let target: ResolvedAddress
    let delayNanoseconds: UInt64
    let bufferBytes: Int
    let verbose: Bool
    let log: @Sendable (String) -> Void
    private let lock = NSLock()
    private var connections: [Int: ProxyConnection] = [:]
    private var nextID = 1

    init(
        target: ResolvedAddress, delayNanoseconds: UInt64, bufferBytes: Int, verbose: Bool,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.target = target
        self.log = log
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
                log(
                    "delay-proxy: connection \(id): cannot connect to \(target.display): \(errnoText())")
                if server >= 0 { close(server) }
                close(client)
                return
            }
            setNoDelay(server)
            let connection = ProxyConnection(id: id, client: client, server: server, proxy: self)
            lock.withLock { connections[id] = connection }
            if verbose { log("delay-proxy: connection \(id) open") }
            connection.run()
        }
        thread.start()
    }

    func finished(_ connection: ProxyConnection) {
        lock.withLock { _ = connections.removeValue(forKey: connection.id) }
        if verbose { log("delay-proxy: connection \(connection.id) closed") }
    }

    /// Shuts every open connection down; returns how many there were.
    func abortAll() -> Int {
        let open = lock.withLock { Array(connections.values) }
        for connection in open { connection.abort() }
        return open.count
    }
}

func setNoDelay(_ fd: Int32) {
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}

/// One accepted connection and its dialled counterpart.
final class ProxyConnection: @unchecked Sendable {
    let id: Int
    let client: Int32
    let server: Int32
    /// Strong: a connection's threads may outlive the server that accepted it (they end after abortAll).
    let proxy: DelayProxy
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

func sleepNanoseconds(_ ns: UInt64) {
    var request = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
