import ChorusTestSupport
import ChorusTransport
import Testing

@Suite(
    "NNG tls+tcp with mutual certificates", .timeLimit(.minutes(1)),
    .enabled(if: TestCertificates.openssl != nil, "openssl CLI not found: TLS tests skipped (install openssl)"))
final class NNGTLSTests {
    /// A fresh throwaway PKI per test (Swift Testing makes one suite instance per test), removed
    /// again in `deinit` so no key material is left in the temporary directory.
    let certificates: TestCertificates

    init() async throws {
        certificates = try await TestCertificates.generate()
    }

    deinit {
        certificates.remove()
    }

    var serverTLS: TLSSettings {
        TLSSettings(
            certificateFile: certificates.serverCertificate, keyFile: certificates.serverKey,
            caFile: certificates.caCertificate, requirePeerCertificate: true)
    }

    func tlsServer(handled: Counter) throws -> NNGReplyServer {
        try NNGReplyServer(listeningOn: "tls+tcp://127.0.0.1:0", options: NNGServerOptions(tls: serverTLS)) {
            handled.increment()
            return Array("secure:") + $0.body
        }
    }

    @Test("a client with a certificate from the shared CA gets replies")
    func mutualRoundTrip() async throws {
        let handled = Counter()
        let server = try tlsServer(handled: handled)
        defer { server.close() }
        #expect(server.address.scheme == .tlsTCP)
        #expect((server.address.port ?? 0) > 0)
        let client = try NNGRequestClient(
            dialing: server.address,
            options: NNGClientOptions(
                tls: TLSSettings(
                    certificateFile: certificates.clientCertificate, keyFile: certificates.clientKey,
                    caFile: certificates.caCertificate)))
        defer { client.close() }
        let reply = try await within(.seconds(5)) { try await client.request(Array("hello"), timeout: .seconds(4)) }
        #expect(reply == Array("secure:hello"))
        let again = try await within(.seconds(5)) { try await client.request([1, 2, 3], timeout: .seconds(2)) }
        #expect(again == Array("secure:") + [1, 2, 3])
        #expect(handled.count == 2)
    }

    @Test(
        "clients without a trusted certificate, or not trusting the server, get no reply",
        arguments: ["no certificate", "certificate from another CA", "does not trust the server's CA"])
    func untrustedClients(_ kind: String) async throws {
        let handled = Counter()
        let server = try tlsServer(handled: handled)
        defer { server.close() }
        let settings: TLSSettings
        switch kind {
        case "no certificate":
            settings = TLSSettings(caFile: certificates.caCertificate)
        case "certificate from another CA":
            settings = TLSSettings(
                certificateFile: certificates.intruderCertificate, keyFile: certificates.intruderKey,
                caFile: certificates.caCertificate)
        default:
            settings = TLSSettings(
                certificateFile: certificates.clientCertificate, keyFile: certificates.clientKey,
                caFile: certificates.otherCACertificate)
        }
        let client = try NNGRequestClient(dialing: server.address, options: NNGClientOptions(tls: settings))
        defer { client.close() }
        let result = try await within(.seconds(5)) {
            await outcome(client, Array("let me in"), timeout: .milliseconds(800))
        }
        // The handshake fails, so no connection ever carries the request.
        #expect(result == .failure(.timedOut(after: .milliseconds(800))), "\(result)")
        #expect(handled.count == 0)

        // The server still serves a proper client.
        let trusted = try NNGRequestClient(
            dialing: server.address,
            options: NNGClientOptions(
                tls: TLSSettings(
                    certificateFile: certificates.clientCertificate, keyFile: certificates.clientKey,
                    caFile: certificates.caCertificate)))
        defer { trusted.close() }
        let reply = try await within(.seconds(5)) { try await trusted.request([7], timeout: .seconds(4)) }
        #expect(reply == Array("secure:") + [7])
    }

    @Test("unreadable certificate files and plain-TCP TLS mixes fail at construction with .tls")
    func configurationErrors() throws {
        let missing = TLSSettings(
            certificateFile: certificates.directory.path + "/missing.crt", keyFile: certificates.serverKey,
            caFile: certificates.caCertificate)
        #expect {
            _ = try NNGReplyServer(listeningOn: "tls+tcp://127.0.0.1:0", options: NNGServerOptions(tls: missing)) {
                $0.body
            }
        } throws: { error in
            guard case .tls(let detail) = error as? TransportError else { return false }
            return detail.contains("missing.crt")
        }
        #expect(throws: TransportError.self) {
            _ = try NNGReplyServer(listeningOn: "tls+tcp://127.0.0.1:0") { $0.body }
        }
        #expect(throws: TransportError.self) {
            _ = try NNGRequestClient(dialing: "tls+tcp://127.0.0.1:1")
        }
    }
}
