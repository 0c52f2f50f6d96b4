import ArgumentParser
import ChorusCluster
import Foundation

/// `chorus keygen`: a new random cluster key (32 bytes as 64 hex digits) for `--key-file`.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make a cluster key for --key-file: 32 random bytes as 64 hex digits.",
        discussion: """
            With --out FILE the key is written to a new file with mode 600 (an existing file is never \
            overwritten); without it, to standard output (redirect it under `umask 077`). Copy the same file \
            to every coordinator, worker and client of the cluster over a channel you trust (scp, a secret \
            store, a Kubernetes Secret). See docs/deployment.md, "Security".
            """
    )

    @Option(name: .long, help: "Write the key to this new file (mode 600) instead of standard output.") var out: String?

    func run() throws {
        let key = ClusterKeyFile.generate()
        guard let out else {
            FileHandleOutput.standardOutput.write(key)
            return
        }
        let descriptor = open(out, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else {
            throw fail("cannot create \(out): \(String(cString: strerror(errno))) (keygen never overwrites a key)")
        }
        defer { close(descriptor) }
        let bytes = Array(key.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw fail("cannot write \(out): \(String(cString: strerror(errno)))") }
        let fingerprint = (try? ClusterKeyFile.load(out).fingerprint) ?? "?"
        FileHandleOutput.standardError.write("wrote a new cluster key to \(out) (fingerprint \(fingerprint))\n")
    }
}
