import ChorusBench
import ChorusCluster
import ChorusSampling
import ChorusTestSupport
import ChorusTransport
import Synchronization
import Testing

/// The sweep loop both `chorus bench` modes run (`BenchRunner.sweep`), against a draft worker on an in-process
/// network: which records it writes in which order, what each says about the setting, when it re-measures the
/// baseline, and how a point whose workers cannot be had is counted.
@Suite struct BenchSweepTests {
    /// Records kept in memory, stamped as the CLI stamps them (without its file).
    final class Records: BenchRecordSink, Sendable {
        let written = Mutex<[BenchRecord]>([])

        func record(_ point: BenchPoint, kind: BenchRecord.Kind) -> BenchRecord {
            BenchRecord(
                kind: kind, run: "sweep-test", point: point, draftTemperatures: [], draftModels: [],
                targetTemperature: 1, prompts: 2, tokensPerPrompt: 6, seed: 5, build: "debug",
                deadlineMilliseconds: 5000)
        }

        func write(_ record: BenchRecord) throws { written.withLock { $0.append(record) } }
    }

    /// What the loop reports, in order.
    final class Progress: BenchSweepProgress {
        let events = Mutex<[String]>([])
        func begin(_ label: String) { events.withLock { $0.append("begin \(label)") } }
        func advance() { events.withLock { $0.append("advance") } }
        func note(_ text: String) { events.withLock { $0.append("note \(text)") } }
        func finishItem(_ summary: String) { events.withLock { $0.append("finish") } }
    }

    struct NoWorkers: Error {}

    static func point(draftLength: Int, skipReason: String? = nil) -> BenchPoint {
        BenchPoint(
            scheme: "optimal", drafts: 1, workers: 1, sequencesPerWorker: 1, draftLength: draftLength,
            mix: .identical, draftTemperature: 1, skipReason: skipReason)
    }

    /// A measured point, a skipped one and one whose workers fail, with the baseline re-measured before every
    /// measured point: baseline, point, skipped, baseline, in that order, each carrying the stage's hosts, delay
    /// (points only) and pinning; the failure is counted and noted, and every generated prompt advances progress.
    @Test func oneStageWritesItsRecordsInOrder() async throws {
        let model = try tableModel(n: 12, seed: 3, name: "sweep")
        let raw = InProcessNetwork()
        let network = ClusterNetwork.inProcess(raw)
        let worker = DraftWorker(model: model, configuration: .init(workerID: "w1"))
        let service = try await WorkerService(
            worker: worker, listen: "tcp://127.0.0.1:7101", network: network, register: nil,
            log: ClusterLog(component: "sweep-test", minimum: .error))
        defer { service.close() }
        var runner = BenchRunner(
            target: model, network: network, prompts: [[1, 2], [3]], tokensPerPrompt: 6,
            targetSettings: SamplingSettings(temperature: 1), seed: 5, deadline: .seconds(5))
        runner.baselineEvery = 1

        let records = Records()
        let progress = Progress()
        let points = [
            Self.point(draftLength: 2), Self.point(draftLength: 3, skipReason: "not this one"),
            Self.point(draftLength: 4),
        ]
        let failures = try await runner.sweep(
            points, hosts: 2, delayMilliseconds: 1.5, pinning: "pinned", records: records, progress: progress
        ) { point in
            guard point.draftLength == 2 else { throw NoWorkers() }
            return [service.address.url]
        }

        #expect(failures == 1)
        let written = records.written.withLock { $0 }
        #expect(written.map(\.kind) == [.baseline, .point, .skipped, .baseline])
        #expect(written.allSatisfy { $0.hosts == 2 && $0.pinning == "pinned" })
        #expect(written.map(\.delayMilliseconds) == [nil, 1.5, 1.5, nil])
        #expect(written[0].scheme == "target" && written[0].speedup == 1 && written[0].generatedTokens == 12)
        let measured = written[1]
        #expect(measured.draftLength == 2 && measured.generatedTokens == 12 && measured.draftsPerRound == 1)
        #expect(measured.baselineTokensPerSecond == written[0].tokensPerSecond)
        #expect(written[2].skipReason == "not this one" && written[2].draftLength == 3)

        let events = progress.events.withLock { $0 }
        // Two prompts for each of the two baselines and the measured point; the warm-up does not count.
        #expect(events.filter { $0 == "advance" }.count == 6)
        #expect(events.contains { $0.hasPrefix("note skipped hosts=2 ") && $0.hasSuffix(": not this one") })
        #expect(events.contains { $0.hasPrefix("note FAILED hosts=2 ") })
        #expect(events.first == "begin hosts=2: plain target decoding (baseline)")
        #expect(runner.baselines(2) == 3)
    }
}
