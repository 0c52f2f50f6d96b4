#if canImport(Glibc)
    import Glibc
#endif

/// A plain TCP connection to 127.0.0.1 that speaks no SP protocol, for feeding a server garbage.
/// Reads and writes are bounded by SO_RCVTIMEO / SO_SNDTIMEO so a test cannot hang on them.
struct RawTCPConnection: ~Copyable {
    private let descriptor: Int32

    init?(port: Int, ioTimeoutSeconds: Int = 2) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var timeout = timeval(tv_sec: ioTimeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(descriptor)
            return nil
        }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Writes all of `bytes`; returns false if the peer closed the connection first.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written <= 0 { return false }
            offset += written
        }
        return true
    }

    /// Reads exactly `count` bytes, or returns nil on end of stream or timeout.
    func read(_ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let got = bytes[offset...].withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if got <= 0 { return nil }
            offset += got
        }
        return bytes
    }
}

/// The SP-over-TCP connection header (nng_tcp(7), the "SP TCP mapping" RFC):
/// 0x00 'S' 'P' 0x00, then the 16-bit protocol number, then two reserved zero bytes.
func spHeader(protocolNumber: UInt16) -> [UInt8] {
    [0x00, 0x53, 0x50, 0x00, UInt8(protocolNumber >> 8), UInt8(protocolNumber & 0xFF), 0x00, 0x00]
}

/// The REQ protocol number (nng_req(7): 0x30) and REP's (0x31).
let spProtocolREQ: UInt16 = 0x30
let spProtocolREP: UInt16 = 0x31

/// A 64-bit big-endian length prefix, as SP over TCP frames every message.
func bigEndian64(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
}

/// SplitMix64: a tiny seeded generator so garbage is reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
