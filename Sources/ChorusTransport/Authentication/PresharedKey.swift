import ChorusCrypto

/// The cluster's shared secret: every request and reply carries an HMAC-SHA256 tag made with it
/// (``MessageAuthenticator``). Anyone holding it can join the cluster, so it is never printed.
public struct PresharedKey: Sendable, Equatable, CustomStringConvertible {
    /// Fewer bytes than this are refused: 256 bits, the tag's strength (RFC 2104 §3 recommends a key
    /// at least as long as the hash output).
    public static let minimumLength = 32

    let bytes: [UInt8]

    /// - Throws: `.invalidConfiguration` when `bytes` is shorter than ``minimumLength``.
    public init(bytes: [UInt8]) throws(TransportError) {
        guard bytes.count >= Self.minimumLength else {
            throw .invalidConfiguration(
                "a cluster key needs at least \(Self.minimumLength) bytes (\(2 * Self.minimumLength) hex digits), "
                    + "got \(bytes.count); generate one with `chorus keygen`")
        }
        self.bytes = bytes
    }

    /// A short public fingerprint (the first 8 bytes of SHA-256 over the key, in hex), so two hosts can
    /// check in their logs that they hold the same key without showing it.
    public var fingerprint: String {
        var hasher = SHA256()
        hasher.update(Array("chorus-key-fingerprint".utf8))
        hasher.update(bytes)
        return SHA256.hex(Array(hasher.finalize().prefix(8)))
    }

    /// Never the key itself.
    public var description: String { "PresharedKey(fingerprint \(fingerprint))" }
}
