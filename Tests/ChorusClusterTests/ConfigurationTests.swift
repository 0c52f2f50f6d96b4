import Foundation
import Testing

@testable import ChorusCluster

@Suite struct ConfigurationTests {
    /// Every shipped example config parses with the real parser.
    @Test func shippedExamplesParse() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("configs")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }
        #expect(files.count >= 3)
        for file in files {
            let config = try ClusterConfiguration(file: directory.appendingPathComponent(file).path)
            #expect(config.hasCoordinator || config.hasWorker, "\(file)")
        }
    }

    /// A command's section of a config file (`init(file:)`): the defaults without a file, the section's values and
    /// the keys both sections share (read by one reader) with one, and an error naming the file and the section when
    /// the file has only the other section.
    @Test func sectionOfAFile() throws {
        #expect(try WorkerConfiguration(file: nil) == WorkerConfiguration())
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("chorus-section-\(getpid()).yaml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
        worker:
          model: d.gguf
          listen: tcp://127.0.0.1:7201
          threads: 3
          precision: reference
          key_file: k
          insecure: true
          sequences: 2
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let worker = try WorkerConfiguration(file: path)
        #expect(worker.model == "d.gguf" && worker.listen == "tcp://127.0.0.1:7201" && worker.sequences == 2)
        #expect(worker.threads == 3 && worker.precision == "reference" && worker.keyFile == "k" && worker.insecure)
        #expect {
            try CoordinatorConfiguration(file: path)
        } throws: { "\($0)" == "\(path): no `coordinator:` section" }
    }

    /// The HTTP keys (issue 12): values, defaults, and a limit out of range named in the error.
    @Test func httpKeys() throws {
        let config = try ClusterConfiguration(
            yaml: """
                coordinator:
                  http: 127.0.0.1:8080
                  max_sessions: 2
                  api_key_file: /etc/chorus/key
                """)
        #expect(config.coordinator.http == "127.0.0.1:8080")
        #expect(config.coordinator.maxSessions == 2)
        #expect(config.coordinator.maxQueue == 16)
        #expect(config.coordinator.maxBodyBytes == 1 << 20)
        #expect(config.coordinator.apiKeyFile == "/etc/chorus/key")
        #expect(try ClusterConfiguration(yaml: "coordinator: {model: m}").coordinator.http == nil)
        #expect {
            try ClusterConfiguration(yaml: "coordinator: {max_queue: -1}")
        } throws: { "\($0)".contains("max_queue") }
    }

    @Test func valuesAndDefaults() throws {
        let config = try ClusterConfiguration(
            yaml: """
                coordinator:
                  model: models/t.gguf
                  workers: [tcp://a:7101, tcp://b:7101]
                  draft_length: 6
                  deadline_ms: 100
                worker:
                  model: models/d.gguf
                  temperature: 0.7
                  top_k: 40
                  tls: {certificate: c.pem, key: k.pem, ca: ca.pem}
                """)
        #expect(config.coordinator.workers == ["tcp://a:7101", "tcp://b:7101"])
        #expect(config.coordinator.draftLength == 6)
        #expect(config.coordinator.scheme == "optimal")
        #expect(config.worker.temperature == 0.7)
        #expect(config.worker.topK == 40)
        #expect(config.worker.tls == TLSConfiguration(certificate: "c.pem", key: "k.pem", ca: "ca.pem"))
    }

    @Test func typosAndBadValuesAreClearErrors() {
        func message(_ yaml: String) -> String {
            do {
                _ = try ClusterConfiguration(yaml: yaml, source: "test.yaml")
                return "no error"
            } catch { return "\(error)" }
        }
        #expect(message("coordinator:\n  draft_lenght: 4\n").contains("did you mean `draft_length`"))
        #expect(message("coordinator:\n  draft_length: four\n").contains("expected an integer"))
        #expect(message("coordinator:\n  draft_length: 0\n").contains("outside"))
        #expect(message("worker:\n  temperature: -1\n").contains("outside"))
        #expect(message("workers:\n  - x\n").contains("unknown section"))
        #expect(message("coordinator: [1, 2]\n").contains("expected a mapping"))
        #expect(message("worker:\n  tls: {certificate: c.pem}\n").contains("needs certificate, key and ca"))
        #expect(message(": : :\n").contains("test.yaml"))
    }
}
