import CNNG

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Builds an `nng_tls_config` from `TLSSettings` (nng_tls_config(5)).
enum NNGTLSConfiguration {
    /// Allocates a config for a dialer (`server == false`) or a listener. The caller applies it
    /// with NNG_OPT_TLS_CONFIG, which takes its own reference (nng_tls_config_hold), and then
    /// releases this one with `nng_tls_config_free`.
    static func make(_ settings: TLSSettings, server: Bool) throws(TransportError) -> OpaquePointer {
        var config: OpaquePointer?
        let mode = server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT
        let allocated = nng_tls_config_alloc(&config, mode)
        guard allocated == 0, let config else {
            throw .tls("cannot create a TLS configuration (\(NNGCode.message(allocated))); is nng built with TLS?")
        }
        do {
            try apply(settings, to: config, server: server)
        } catch {
            nng_tls_config_free(config)
            throw error
        }
        return config
    }

    /// Gives a listener (`server`) or dialer of `address` its TLS configuration through `setConfig` (its
    /// `nng_listener_set_ptr` / `nng_dialer_set_ptr` with NNG_OPT_TLS_CONFIG, which takes its own reference):
    /// a `tls+tcp://` address needs `settings`, and every other address refuses them.
    static func attach(
        _ settings: TLSSettings?, for address: TransportAddress, server: Bool,
        setConfig: (UnsafeMutableRawPointer) -> Int32
    ) throws(TransportError) {
        switch (address.scheme, settings) {
        case (.tlsTCP, let settings?):
            let config = try make(settings, server: server)
            defer { nng_tls_config_free(config) }
            try check(setConfig(UnsafeMutableRawPointer(config)))
        case (.tlsTCP, nil):
            throw .tls("address \(address) is tls+tcp:// but no TLSSettings were given")
        case (_, .some):
            throw .invalidAddress(address.url, reason: "TLSSettings were given; use a tls+tcp:// address")
        case (_, nil):
            break
        }
    }

    private static func apply(_ settings: TLSSettings, to config: OpaquePointer, server: Bool) throws(TransportError) {
        if let caFile = settings.caFile {
            // nng_tls_config_ca_file loads PEM CA certificates (and CRLs) from a file.
            let result = nng_tls_config_ca_file(config, caFile)
            if result != 0 { throw .tls("cannot load CA file \(caFile): \(NNGCode.message(result))") }
        }
        switch (settings.certificateFile, settings.keyFile) {
        case (let certificateFile?, let keyFile?):
            // nng_tls_config_cert_key_file wants certificate and key in ONE file; we keep them
            // apart, so read both and hand the PEM text to nng_tls_config_own_cert.
            let certificate = try readPEM(certificateFile, what: "certificate")
            let key = try readPEM(keyFile, what: "private key")
            let result = nng_tls_config_own_cert(config, certificate, key, settings.keyPassword)
            if result != 0 {
                throw .tls("cannot use certificate \(certificateFile) with key \(keyFile): \(NNGCode.message(result))")
            }
        case (nil, nil):
            if server { throw .tls("a TLS listener needs certificateFile and keyFile") }
        default:
            throw .tls("certificateFile and keyFile must be given together")
        }
        if !server, let serverName = settings.serverName {
            let result = nng_tls_config_server_name(config, serverName)
            if result != 0 { throw .tls("cannot set server name \(serverName): \(NNGCode.message(result))") }
        }
        let mode: nng_tls_auth_mode
        if settings.requirePeerCertificate {
            if settings.caFile == nil { throw .tls("requirePeerCertificate needs caFile to verify the peer against") }
            mode = NNG_TLS_AUTH_MODE_REQUIRED
        } else {
            mode = NNG_TLS_AUTH_MODE_NONE
        }
        let result = nng_tls_config_auth_mode(config, mode)
        if result != 0 { throw .tls("cannot set the authentication mode: \(NNGCode.message(result))") }
    }

    /// Reads a PEM file as text; PEM is ASCII, and NNG wants a NUL-terminated string.
    private static func readPEM(_ path: String, what: String) throws(TransportError) -> String {
        guard let file = fopen(path, "rb") else {
            throw .tls("cannot open \(what) file \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > 1 << 20 { throw .tls("\(what) file \(path) is larger than 1 MiB; is it really PEM?") }
        }
        if ferror(file) != 0 { throw .tls("cannot read \(what) file \(path)") }
        guard !bytes.isEmpty, !bytes.contains(0) else { throw .tls("\(what) file \(path) is empty or not PEM text") }
        return String(decoding: bytes, as: UTF8.self)
    }
}
