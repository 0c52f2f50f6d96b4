import ChorusCrypto
import ChorusTransport
import Foundation

/// Who may take part in the cluster (DESIGN.md "Security model"). A worker that lies about the law it
/// drafted from can force any token (claim q(x) tiny for a chosen x: x is always accepted), so only
/// authorised peers may join: on anything but loopback, every message carries an HMAC under the cluster
/// key, or the address is mutual TLS. Otherwise the processes refuse to listen, dial or register,
/// unless `insecure` says to run unprotected anyway.
public struct ClusterSecurity: Sendable {
    /// Mutual TLS for `tls+tcp://` addresses.
    public var tls: TLSConfiguration?
    /// The pre-shared key: when set, every request and reply is authenticated (``MessageAuthenticator``).
    public var key: PresharedKey?
    /// Run without authentication on addresses others can reach (`--insecure`).
    public var insecure: Bool

    public init(tls: TLSConfiguration? = nil, key: PresharedKey? = nil, insecure: Bool = false) {
        self.tls = tls
        self.key = key
        self.insecure = insecure
    }

    /// What a process does with an address, for the refusal message.
    public enum Use: String, Sendable {
        case listen = "listen on"
        case dial = "dial"
        case register = "register with"
    }

    /// Throws when `address` would be used without protection: not local (``TransportAddress/isLocal``),
    /// no key, not mutual TLS, and not `insecure`.
    public func check(_ address: TransportAddress, _ use: Use) throws(ClusterSecurityError) {
        if insecure || key != nil || address.isLocal { return }
        if address.scheme == .tlsTCP, tls != nil { return }
        throw .unprotected(address: address.url, use: use)
    }

    /// `check` for an address given as text (a malformed one is left to the address parser).
    public func check(_ address: String, _ use: Use) throws {
        guard let parsed = try? TransportAddress(address) else { return }
        try check(parsed, use)
    }

    /// One line for the start-up log.
    public var summary: String {
        var parts: [String] = []
        if let key { parts.append("cluster key \(key.fingerprint) (HMAC-SHA256 on every message)") }
        if tls != nil { parts.append("mutual TLS on tls+tcp:// addresses") }
        if parts.isEmpty {
            return insecure
                ? "NONE (--insecure): anyone who can reach these addresses can join and steer the output"
                : "none (loopback, ipc:// and inproc:// only)"
        }
        return parts.joined(separator: ", ")
    }
}

/// A security setting that cannot work, with what to do about it.
public enum ClusterSecurityError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `address` is reachable from other hosts and nothing authenticates its traffic.
    case unprotected(address: String, use: ClusterSecurity.Use)
    /// The key file cannot be used: unreadable, too short, or readable by others.
    case keyFile(path: String, problem: String)

    public var description: String {
        switch self {
        case let .unprotected(address, use):
            return "refusing to \(use.rawValue) \(address) without authentication: anyone who can reach it "
                + "could join the cluster and steer its output (a worker that lies about its draft law). "
                + "Give every process the same cluster key (--key-file FILE, or `key_file:` in the config; make "
                + "one with `chorus keygen --out FILE`), or use mutual TLS (tls+tcp:// with --tls-cert, --tls-key "
                + "and --tls-ca), or stay on loopback (127.0.0.1, ::1, localhost). To run unprotected anyway "
                + "(a private network you trust), pass --insecure (or `insecure: true`)."
        case let .keyFile(path, problem):
            return "cluster key file \(path): \(problem)"
        }
    }
}

/// Reads the cluster key from a file (`--key-file`, `key_file:`).
///
/// Format: either hexadecimal digits (at least 64, i.e. 32 bytes; surrounding whitespace ignored;
/// what `chorus keygen` writes), or any other content taken as raw bytes (at least 32). The file must
/// not be readable by others, nor by its group unless it is owned by root (mode 640 `root:chorus`
/// shares it with a service's group, as PostgreSQL allows for its TLS key); `chmod 600` is right
/// otherwise.
public enum ClusterKeyFile {
    public static func load(_ path: String) throws(ClusterSecurityError) -> PresharedKey {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw .keyFile(path: path, problem: "cannot read it (\(String(cString: strerror(errno))))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .keyFile(path: path, problem: "not a regular file") }
        let mode = info.st_mode & 0o777
        let octal = String(mode, radix: 8)
        if mode & 0o007 != 0 {
            throw .keyFile(
                path: path, problem: "mode \(octal) lets every user read the cluster key; run `chmod 600 \(path)`")
        }
        if mode & 0o070 != 0, info.st_uid != 0 {
            throw .keyFile(
                path: path,
                problem: "mode \(octal) lets its group read the cluster key; run `chmod 600 \(path)` (group read is "
                    + "allowed only for a file owned by root, e.g. root:chorus mode 640)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .keyFile(path: path, problem: "cannot read it (permission denied?)")
        }
        return try parse([UInt8](data), path: path)
    }

    /// The key in `contents` (see the type's comment for the format).
    public static func parse(_ contents: [UInt8], path: String) throws(ClusterSecurityError) -> PresharedKey {
        let trimmed = contents.drop { isSpace($0) }.reversed().drop { isSpace($0) }.reversed()
        let bytes: [UInt8]
        if !trimmed.isEmpty, trimmed.allSatisfy({ hexValue($0) != nil }) {
            guard trimmed.count.isMultiple(of: 2) else {
                throw .keyFile(path: path, problem: "an odd number (\(trimmed.count)) of hex digits")
            }
            let digits = Array(trimmed)
            bytes = stride(from: 0, to: digits.count, by: 2).map { i in
                (hexValue(digits[i]) ?? 0) << 4 | (hexValue(digits[i + 1]) ?? 0)
            }
        } else {
            bytes = contents
        }
        do {
            return try PresharedKey(bytes: bytes)
        } catch {
            throw .keyFile(path: path, problem: "\(error)")
        }
    }

    /// A new random key as `chorus keygen` writes it: 64 hex digits and a newline.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<PresharedKey.minimumLength).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return SHA256.hex(bytes) + "\n"
    }

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x0a || byte == 0x0d || byte == 0x09 }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
