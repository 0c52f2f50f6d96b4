/// A validated NNG endpoint URL.
///
/// Supported forms (see nng_tcp(7), nng_tls(7), nng_ipc(7), nng_inproc(7)):
/// `tcp://host:port`, `tls+tcp://host:port`, `ipc:///absolute/path` and `inproc://name`.
/// Port `0` is allowed for listeners: the system picks a free port, which the server reports.
public struct TransportAddress: Sendable, Hashable, CustomStringConvertible {
    /// The transport named by the URL scheme.
    public enum Scheme: String, Sendable, Hashable {
        case tcp
        case tlsTCP = "tls+tcp"
        case ipc
        case inproc
    }

    /// The transport this address uses.
    public let scheme: Scheme
    /// The full URL as given to NNG.
    public let url: String

    /// Parses and validates `url`, throwing `.invalidAddress` with the reason when it is malformed.
    public init(_ url: String) throws(TransportError) {
        guard let separator = url.firstRange(of: "://") else {
            throw .invalidAddress(url, reason: "missing '://'")
        }
        let schemeText = String(url[url.startIndex..<separator.lowerBound])
        let rest = String(url[separator.upperBound...])
        guard let scheme = Scheme(rawValue: schemeText) else {
            throw .invalidAddress(url, reason: "unsupported scheme '\(schemeText)'")
        }
        switch scheme {
        case .tcp, .tlsTCP:
            try Self.validateHostPort(rest, url: url)
        case .ipc, .inproc:
            if rest.isEmpty {
                throw .invalidAddress(url, reason: "empty \(scheme == .ipc ? "path" : "name")")
            }
        }
        self.scheme = scheme
        self.url = url
    }

    /// For TCP schemes: the port written in the URL (`0` means "let the system choose").
    public var port: Int? {
        guard scheme == .tcp || scheme == .tlsTCP, let colon = url.lastIndex(of: ":") else { return nil }
        return Int(url[url.index(after: colon)...])
    }

    /// The same address with its TCP port replaced, e.g. to publish the port a listener bound to.
    public func withPort(_ port: Int) -> TransportAddress? {
        guard self.port != nil, let colon = url.lastIndex(of: ":") else { return nil }
        return try? TransportAddress(String(url[..<colon]) + ":\(port)")
    }

    public var description: String { url }

    /// For TCP schemes: the host written in the URL, without IPv6 brackets (empty: all interfaces).
    public var host: String? {
        guard scheme == .tcp || scheme == .tlsTCP, let colon = url.lastIndex(of: ":"),
            let separator = url.firstRange(of: "://")
        else { return nil }
        var host = String(url[separator.upperBound..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host
    }

    /// Whether only this machine can reach the address: `inproc://` (this process), `ipc://` (a Unix
    /// socket, guarded by file permissions), and TCP on a loopback host — `localhost`, 127.0.0.0/8 or
    /// `::1`, written literally (other names are not resolved, so they count as remote). `0.0.0.0`, `::`
    /// and an empty host mean every interface: not local.
    public var isLocal: Bool {
        switch scheme {
        case .inproc, .ipc:
            return true
        case .tcp, .tlsTCP:
            guard let host = host?.lowercased() else { return false }
            if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
            let octets = host.split(separator: ".", omittingEmptySubsequences: false)
            guard octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) else { return false }
            return octets[0] == "127"
        }
    }

    private static func validateHostPort(_ hostPort: String, url: String) throws(TransportError) {
        guard let colon = hostPort.lastIndex(of: ":") else {
            throw .invalidAddress(url, reason: "missing ':port'")
        }
        let host = hostPort[..<colon]
        let portText = hostPort[hostPort.index(after: colon)...]
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw .invalidAddress(url, reason: "port '\(portText)' is not a number in 0...65535")
        }
        if host.isEmpty {
            // NNG accepts an empty host for listeners ("all interfaces"); dialers reject it later.
            return
        }
        if host.hasPrefix("[") != host.hasSuffix("]") {
            throw .invalidAddress(url, reason: "unbalanced brackets around an IPv6 host")
        }
        if host.contains(where: { $0 == "/" || $0 == " " }) {
            throw .invalidAddress(url, reason: "host '\(host)' contains '/' or a space")
        }
    }
}
