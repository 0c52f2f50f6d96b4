/// Certificates for `tls+tcp://` endpoints (NNG's TLS transport, built on mbedTLS in Debian).
///
/// For mutual TLS give both ends a certificate and key signed by a CA the other end trusts,
/// set `caFile` to that CA, and keep `requirePeerCertificate` on. The files are PEM.
public struct TLSSettings: Sendable, Hashable {
    /// PEM certificate (chain) presented to the peer; `nil` presents none.
    public var certificateFile: String?
    /// PEM private key matching `certificateFile`.
    public var keyFile: String?
    /// Optional password protecting `keyFile`.
    public var keyPassword: String?
    /// PEM CA certificates used to verify the peer.
    public var caFile: String?
    /// Verify the peer and close the connection unless its certificate checks out against
    /// `caFile` (NNG_TLS_AUTH_MODE_REQUIRED). When `false` the peer is not verified at all
    /// (NNG_TLS_AUTH_MODE_NONE): encryption without authentication, for experiments only.
    /// (NNG's OPTIONAL mode is deliberately not offered: with mbedTLS it checks a certificate
    /// but keeps the connection even when the check fails.)
    public var requirePeerCertificate: Bool
    /// Client side: the name the server certificate must carry; defaults to the host in the URL.
    public var serverName: String?

    public init(
        certificateFile: String? = nil, keyFile: String? = nil, keyPassword: String? = nil,
        caFile: String? = nil, requirePeerCertificate: Bool = true, serverName: String? = nil
    ) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.keyPassword = keyPassword
        self.caFile = caFile
        self.requirePeerCertificate = requirePeerCertificate
        self.serverName = serverName
    }
}
