#if canImport(Glibc)
    import Glibc
#endif

/// A plain TCP connection to 127.0.0.1:port that speaks whatever bytes the test writes, for feeding a
/// server garbage below NNG. Every read and write is bounded by a socket timeout.
public final class RawSocket {
    private let descriptor: Int32

    public init?(port: Int, timeoutSeconds: Int = 2) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard status == 0 else {
            close(fd)
            return nil
        }
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// Writes everything; false when the peer closed the connection first.
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    /// Reads exactly `count` bytes; nil on end of stream, error or timeout.
    public func read(_ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = bytes[offset...].withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            offset += n
        }
        return bytes
    }

    /// Closes both directions now (the peer sees the connection end), before the object goes away.
    public func shutdownBoth() {
        _ = shutdown(descriptor, Int32(SHUT_RDWR))
    }

    /// Reads what arrives next, at most `max` bytes; nil on end of stream, error or timeout.
    public func readSome(max: Int = 65536) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: max)
        while true {
            let n = bytes.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            return n > 0 ? Array(bytes[0..<n]) : nil
        }
    }

    /// True when the peer closes the connection (end of stream or a reset) before the socket timeout;
    /// whatever it sends first (such as its SP header) is read and ignored.
    public func peerClosed() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n > 0 { continue }
            return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
        }
    }
}

/// SP over TCP (nng_tcp(7), the scalability-protocols TCP mapping): an 8-byte connection header
/// `00 'S' 'P' 00 proto(16) 00 00`, then messages framed by a 64-bit big-endian length.
public enum SP {
    /// The REQ protocol number (nng_req(7)) and REP's.
    public static let req: UInt16 = 0x30
    public static let rep: UInt16 = 0x31

    public static func header(_ proto: UInt16) -> [UInt8] {
        [0x00, 0x53, 0x50, 0x00, UInt8(proto >> 8), UInt8(proto & 0xFF), 0, 0]
    }

    /// A 64-bit big-endian length prefix.
    public static func length(_ n: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: n >> (56 - 8 * UInt64($0))) }
    }

    /// A REQ message: the 32-bit request id (high bit set) then the body.
    public static func request(id: UInt32, body: [UInt8]) -> [UInt8] {
        let idBytes = (0..<4).map { UInt8(truncatingIfNeeded: (id | 0x8000_0000) >> (24 - 8 * UInt32($0))) }
        return length(UInt64(4 + body.count)) + idBytes + body
    }
}

/// A loopback TCP port that was free a moment ago (bound to 127.0.0.1:0, then released), for a
/// server whose address must be known before it starts.
public func freeLoopbackPort() -> Int? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer -> Bool in
            bind(fd, sockaddrPointer, length) == 0 && getsockname(fd, sockaddrPointer, &length) == 0
        }
    }
    return bound ? Int(UInt16(bigEndian: address.sin_port)) : nil
}

/// SplitMix64: a tiny seeded generator, so garbage is reproducible.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
    }
}
