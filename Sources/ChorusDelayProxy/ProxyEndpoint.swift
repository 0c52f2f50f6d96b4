import Foundation

#if canImport(Glibc)
    import Glibc

    let streamSocket = Int32(SOCK_STREAM.rawValue)
    let sendFlags = Int32(MSG_NOSIGNAL)
#elseif canImport(Darwin)
    import Darwin

    let streamSocket = SOCK_STREAM
    let sendFlags: Int32 = 0
#endif

/// A proxy failure a person can act on (the address, the port, the system's reason).
public struct ProxyError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `HOST:PORT` as given on the command line (`tcp://` prefix optional, IPv6 in brackets).
public struct ProxyEndpoint: Sendable {
    public var host: String
    public var port: UInt16

    public var display: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// `option` names the flag in error messages; `--forward` also refuses port 0 and a missing host.
    public init(parsing text: String, option: String) throws(ProxyError) {
        var rest = Substring(text)
        if let range = rest.range(of: "://") {
            let scheme = rest[..<range.lowerBound]
            guard scheme == "tcp" else {
                throw ProxyError(
                    "\(option) \(text): only tcp:// addresses can be proxied (got \(scheme)://); "
                        + "a tls+tcp stream passes through unchanged if you give its plain tcp://HOST:PORT")
            }
            rest = rest[range.upperBound...]
        }
        let hostPart: Substring
        let portPart: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") else {
                throw ProxyError("\(option) \(text): expected [IPV6]:PORT")
            }
            hostPart = rest[rest.index(after: rest.startIndex)..<close]
            portPart = rest[rest.index(close, offsetBy: 2)...]
        } else {
            guard let colon = rest.lastIndex(of: ":") else {
                throw ProxyError("\(option) \(text): expected HOST:PORT, e.g. 127.0.0.1:7201")
            }
            hostPart = rest[..<colon]
            portPart = rest[rest.index(after: colon)...]
        }
        guard let port = UInt16(portPart) else {
            throw ProxyError("\(option) \(text): port '\(portPart)' is not a number in 0…65535")
        }
        host = hostPart.isEmpty ? "*" : String(hostPart)
        self.port = port
        if option == "--forward" {
            guard port != 0 else { throw ProxyError("\(option) \(text): port 0 cannot be dialled") }
            guard host != "*" else { throw ProxyError("\(option) \(text): give the host to forward to") }
        }
    }

    /// Resolves with getaddrinfo; the first result wins (IPv4 and IPv6 both accepted).
    func resolve(passive: Bool) throws(ProxyError) -> ResolvedAddress {
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

func openListener(_ endpoint: ProxyEndpoint) throws(ProxyError) -> Int32 {
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

func numericHostPort(_ storage: inout sockaddr_storage, length: socklen_t) -> String? {
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

func errnoText() -> String { String(cString: strerror(errno)) }

/// Monotonic time in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
