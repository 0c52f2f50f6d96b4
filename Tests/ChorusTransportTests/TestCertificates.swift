import ChorusTestSupport
import Foundation

/// A throwaway PKI made with the `openssl` CLI for the TLS tests: one CA signing a server and a
/// client certificate, and a second, unrelated CA signing an "intruder" client certificate.
/// Files live in a fresh temporary directory. EC P-256 keys keep generation fast.
struct TestCertificates: Sendable {
    let directory: URL

    var caCertificate: String { path("ca.crt") }
    var serverCertificate: String { path("server.crt") }
    var serverKey: String { path("server.key") }
    var clientCertificate: String { path("client.crt") }
    var clientKey: String { path("client.key") }
    var otherCACertificate: String { path("other-ca.crt") }
    var intruderCertificate: String { path("intruder.crt") }
    var intruderKey: String { path("intruder.key") }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The openssl executable, if installed.
    static let openssl: String? = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/opt/homebrew/bin/openssl"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Generates a fresh PKI off the cooperative thread pool (openssl takes a while and
    /// `Process.waitUntilExit` blocks). Call `remove()` when done.
    static func generate() async throws -> TestCertificates {
        try await offPool { Result { () throws(CertificateError) in try TestCertificates.make() } }.get()
    }

    /// Deletes the temporary directory and everything in it.
    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    struct CertificateError: Error, CustomStringConvertible {
        let description: String
    }

    private static func make() throws(CertificateError) -> TestCertificates {
        guard let openssl else { throw CertificateError(description: "openssl not found") }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("chorus-tls-\(UUID().uuidString)")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw CertificateError(description: "cannot create \(directory.path): \(error)")
        }
        let certificates = TestCertificates(directory: directory)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        func run(_ arguments: [String]) throws(CertificateError) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: openssl)
            process.arguments = arguments
            process.currentDirectoryURL = directory
            process.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            process.standardError = errors
            do {
                try process.run()
            } catch {
                throw CertificateError(description: "cannot run openssl: \(error)")
            }
            let message = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            if process.terminationStatus != 0 {
                throw CertificateError(
                    description: "openssl \(arguments.joined(separator: " ")) failed: "
                        + String(decoding: message, as: UTF8.self))
            }
        }
        func makeCA(_ name: String, subject: String) throws(CertificateError) {
            try run(
                ["req", "-x509", "-sha256", "-days", "1"] + ec
                    + ["-keyout", "\(name).key", "-out", "\(name).crt", "-subj", subject])
        }
        func makeLeaf(_ name: String, ca: String, subject: String, usage: String) throws(CertificateError) {
            try run(["req", "-new"] + ec + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", subject])
            // mbedTLS 2.28 matches the server name against DNS names only, so 127.0.0.1 is listed
            // as a DNS name as well as an IP address.
            let extensions =
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=\(usage)\n"
                + "subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1\n"
            let extensionFile = directory.appendingPathComponent("\(name).ext")
            do {
                try extensions.write(to: extensionFile, atomically: true, encoding: .utf8)
            } catch {
                throw CertificateError(description: "cannot write \(extensionFile.path): \(error)")
            }
            try run(
                [
                    "x509", "-req", "-sha256", "-days", "1", "-in", "\(name).csr", "-CA", "\(ca).crt", "-CAkey",
                    "\(ca).key", "-CAcreateserial", "-out", "\(name).crt", "-extfile", "\(name).ext",
                ])
        }
        try makeCA("ca", subject: "/CN=Chorus Test CA")
        try makeCA("other-ca", subject: "/CN=Some Other CA")
        try makeLeaf("server", ca: "ca", subject: "/CN=localhost", usage: "serverAuth")
        try makeLeaf("client", ca: "ca", subject: "/CN=chorus-coordinator", usage: "clientAuth")
        try makeLeaf("intruder", ca: "other-ca", subject: "/CN=intruder", usage: "clientAuth")
        return certificates
    }
}
