import ChorusBench
import ChorusCluster
import ChorusTestSupport
import ChorusWire
import Foundation
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// `chorus bench`'s library side: the results schema, the statistics computed from round records,
/// the sweep plan's rules, and the SVG and markdown the plot command writes.
@Suite struct BenchTests {
    static func record(
        kind: BenchRecord.Kind = .point, scheme: String = "optimal", drafts: Int = 2, mix: DraftMix = .identical,
        temperature: Double = 1.0, hosts: Int? = nil
    ) -> BenchRecord {
        var r = BenchRecord(
            kind: kind, run: "test-run",
            point: BenchPoint(
                scheme: scheme, drafts: drafts, workers: drafts, sequencesPerWorker: 1, draftLength: 4,
                mix: mix, draftTemperature: temperature),
            draftTemperatures: Array(repeating: temperature, count: drafts),
            draftModels: Array(repeating: "draft-small-f32", count: drafts), targetTemperature: 1, prompts: 3,
            tokensPerPrompt: 48, seed: 7, hosts: hosts, build: "release", deadlineMilliseconds: 5000)
        r.blockEfficiency = 1.5 + Double(drafts) * 0.25
        r.tokensPerSecond = 100 + Double(drafts) * 10 + Double(hosts ?? 0)
        r.time.draftWait = 3000
        r.time.workerDraft = 2000
        r.time.network = 1000
        r.time.targetForward = 4000
        r.time.verification = 500
        r.time.other = 100
        r.time.round = 7600
        return r
    }

    // MARK: Schema

    @Test func recordRoundTripsThroughOneJSONLine() throws {
        var r = Self.record(scheme: "truncated-lp", drafts: 3, mix: .temperature, temperature: 1.6, hosts: 4)
        r.delayMilliseconds = 2.5
        r.pinning = "taskset: coordinator on CPU 0, workers on CPU 1"
        r.machine = "2 CPUs"
        r.perPositionAcceptance = [0.9, 0.5, 0.25]
        r.bytes.perToken = 1234.5
        r.bytes.total = 99
        r.warnings = ["a \"quoted\" warning / with a slash"]
        r.skipReason = nil
        let line = try r.jsonLine()
        #expect(!line.contains("\n"))
        let back = try BenchRecord.decode(line: line)
        #expect(back == r)
        // The names documented in docs/benchmarks-cluster.md.
        let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        for key in [
            "schema", "kind", "scheme", "drafts", "draftLength", "blockEfficiency", "acceptanceRate",
            "perPositionAcceptance", "tokensPerSecond", "baselineTokensPerSecond", "speedup", "time", "bytes", "hosts",
        ] {
            #expect(object[key] != nil, "missing \(key)")
        }
        #expect(object["schema"] as? String == "chorus-bench/1")
        let time = try #require(object["time"] as? [String: Any])
        #expect(
            Set(time.keys) == [
                "draftWait", "workerDraft", "network", "targetForward", "verification", "other", "round",
            ])
    }

    @Test func loadingReportsTheBadLine() throws {
        let good = try Self.record().jsonLine()
        let records = try BenchRecord.load(contentsOf: good + "\n\n" + good + "\n")
        #expect(records.count == 2)
        #expect(throws: BenchError.self) { try BenchRecord.load(contentsOf: good + "\n{\"kind\": 3}\n") }
        do {
            _ = try BenchRecord.load(contentsOf: good + "\nnot json\n")
            Issue.record("a bad line was accepted")
        } catch let error as BenchError {
            #expect(error.description.hasPrefix("line 2:"))
        }
    }

    // MARK: Statistics

    /// Prompt of 5 tokens, 10 tokens to generate, L = 4: the rounds offer 4, 4 and then 1 position
    /// (only 1 useful position is left after 8 tokens).
    static func generation(drafts: [Int] = [2, 2, 2]) -> BenchGeneration {
        var statistics = GenerationStatistics()
        statistics.generatedTokens = 10
        statistics.targetForwards = 3
        statistics.draftedTokens = 9
        statistics.acceptedDraftTokens = 7
        statistics.draftsReceived = drafts.reduce(0, +)
        statistics.elapsedMicroseconds = 30_000
        let rounds = [
            Coordinator.RoundRecord.made(
                draftWait: 5000, targetForward: 2000, verification: 1000, tokens: 3, drafts: drafts[0],
                requestBytes: 100,
                replyBytes: 1000, workerDraftTime: 3000),
            Coordinator.RoundRecord.made(
                draftWait: 1000, targetForward: 2000, verification: 1000, tokens: 5, drafts: drafts[1],
                requestBytes: 50,
                replyBytes: 1000, workerDraftTime: 1500),
            Coordinator.RoundRecord.made(
                draftWait: 3000, targetForward: 5000, verification: 1000, tokens: 2, drafts: drafts[2],
                requestBytes: 50,
                replyBytes: 800, workerDraftTime: 1000),
        ]
        return BenchGeneration(
            promptLength: 5, maxTokens: 10, contextLength: 256, draftLength: 4, statistics: statistics, rounds: rounds,
            acceptedAtPosition: [3, 2, 1, 1])
    }

    @Test func offeredPositionsFollowTheTokenBudget() {
        let g = Self.generation()
        #expect(g.requestedPositions == [4, 4, 1])
        #expect(g.offeredPositions == [4, 4, 1])
        var near = g
        near.contextLength = 16  // 5 + 3 generated − 1 cached → room 8 − 2 for round 2
        #expect(near.requestedPositions == [4, 4, 1])
        near.contextLength = 12  // round 2: tree room 12 − 7 = 5, useful 3; round 3: no room
        #expect(near.requestedPositions == [4, 3, 0])
    }

    @Test func statisticsFromKnownRounds() {
        var r = Self.record()
        BenchStatistics.fill(&r, generations: [Self.generation()], baseline: 100, expectedDrafts: 2)
        #expect(r.generatedTokens == 10)
        #expect(r.targetForwards == 3)
        #expect(abs(r.blockEfficiency - 10.0 / 3) < 1e-12)
        #expect(abs(r.acceptanceRate - 7.0 / 9) < 1e-12)
        // Offered per position: [3, 2, 2, 2] rounds; accepted [3, 2, 1, 1].
        #expect(r.perPositionAcceptance == [1.0, 1.0, 0.5, 0.5])
        #expect(abs(r.tokensPerSecond - 10 / 0.03) < 1e-9)
        #expect(r.baselineTokensPerSecond == 100)
        #expect(abs(r.speedup - 10 / 0.03 / 100) < 1e-9)
        #expect(r.draftsPerRound == 2)
        #expect(r.warnings.isEmpty)
        // Means per round (µs); network per round is floored at 0 (round 2: 1000 − 1500).
        #expect(r.time.draftWait == 3000)
        #expect(abs(r.time.workerDraft - 5500.0 / 3) < 1e-9)
        #expect(abs(r.time.network - 4000.0 / 3) < 1e-9)  // (2000 + 0 + 2000) / 3
        #expect(r.time.targetForward == 3000)
        #expect(r.time.verification == 1000)
        #expect(r.time.round == 10_000)
        #expect(r.time.other == 3000)
        #expect(abs(r.bytes.requestPerRound - 200.0 / 3) < 1e-9)
        #expect(abs(r.bytes.replyPerRound - 2800.0 / 3) < 1e-9)
        #expect(r.bytes.total == 3000)
        #expect(r.bytes.perToken == 300)
        // Rounds made without the issue-13 fields: nothing to divide by, so no per-drafted-token figure.
        #expect(r.bytes.perDraftedToken == nil)
        #expect(r.time.coordinatorCPU == 0)
    }

    /// Bytes per drafted token and the coordinator's CPU time per round (issue 13).
    @Test func draftBytesAndCoordinatorTimePerRound() {
        var r = Self.record()
        var g = Self.generation()
        g.rounds = g.rounds.enumerated().map { i, round in
            var round = round
            round.draftTokens = 16
            round.coordinatorCPU = Int64(300 * (i + 1))
            return round
        }
        BenchStatistics.fill(&r, generations: [g], baseline: 100, expectedDrafts: 2)
        #expect(r.bytes.perDraftedToken == 2800.0 / 48)
        #expect(r.time.coordinatorCPU == 600)
        #expect(r.time.other == 3000)  // CPU time is part of the split above, not taken from "other"
        let decoded = try? BenchRecord.decode(line: try r.jsonLine())
        #expect(decoded?.bytes.perDraftedToken == r.bytes.perDraftedToken)
    }

    @Test func statisticsAggregateOverPromptsAndFlagMissingDrafts() {
        var r = Self.record()
        let short = Self.generation(drafts: [2, 1, 0])
        BenchStatistics.fill(&r, generations: [Self.generation(), short], baseline: 0, expectedDrafts: 2)
        #expect(r.generatedTokens == 20)
        #expect(abs(r.tokensPerSecond - 20 / 0.06) < 1e-9)
        #expect(r.speedup == 0)  // no baseline, no speedup
        // Rounds with drafts: 3 + 2; drafts 6 + 3.
        #expect(r.draftsPerRound == 9.0 / 5)
        #expect(r.warnings.contains { $0.contains("of 2 drafts per round") })
        #expect(r.warnings.contains { $0.contains("1 of 6 rounds that asked for drafts got none") })
    }

    @Test func speedupIsTheRatioOfRates() {
        #expect(BenchStatistics.speedup(rate: 150, baseline: 100) == 1.5)
        #expect(BenchStatistics.speedup(rate: 150, baseline: 0) == 0)
    }

    // MARK: Plan

    @Test func planRules() {
        let plan = BenchPlan(
            schemes: ["sd", "spectr", "optimal"], drafts: [1, 2, 3], draftLengths: [4], temperatures: [1.2],
            mixes: [.identical, .temperature], sequencesPerWorker: 1)
        let points = plan.points()
        // sd only at K = 1; non-identical mixes only from K = 2.
        #expect(points.filter { $0.scheme == "sd" }.map(\.drafts) == [1])
        #expect(points.filter { $0.mix == .temperature }.allSatisfy { $0.drafts >= 2 })
        let spectrMixed = points.filter { $0.scheme == "spectr" && $0.mix == .temperature }
        #expect(spectrMixed.count == 2)
        #expect(spectrMixed.allSatisfy { $0.skipReason?.contains("identical drafts") == true })
        #expect(points.filter { $0.mix == .identical }.allSatisfy { $0.skipReason == nil })
        let mixed = points.first { $0.scheme == "optimal" && $0.mix == .temperature && $0.drafts == 3 }!
        #expect(
            mixed.workerSpecs(primary: "s", secondary: "m", fixedTemperature: 1.0).map(\.temperature) == [
                1.0, 1.2, 1.2,
            ])
        #expect(mixed.draftTemperatures(fixedTemperature: 1.0) == [1.0, 1.2, 1.2])

        let hosted = BenchPlan(
            schemes: ["optimal"], drafts: [2, 3, 8], draftLengths: [4], temperatures: [1], mixes: [.identical], hosts: 2
        ).points()
        #expect(hosted.map(\.sequencesPerWorker) == [1, 0, 4])
        #expect(hosted[1].skipReason?.contains("does not split evenly over 2 hosts") == true)
        #expect(hosted.allSatisfy { $0.workers == 2 })
    }

    // MARK: Plot

    /// A small fixed results file: a baseline, two schemes at two K, a skipped point, a hosts run.
    static var fixedResults: String {
        var lines: [String] = []
        var baseline = record(kind: .baseline, scheme: "target", drafts: 0)
        baseline.tokensPerSecond = 120
        lines.append(try! baseline.jsonLine())
        for scheme in ["specinfer", "optimal"] {
            for k in [1, 2, 4] { lines.append(try! record(scheme: scheme, drafts: k).jsonLine()) }
        }
        var skipped = record(kind: .skipped, scheme: "spectr", drafts: 2, mix: .temperature)
        skipped.skipReason = "spectr needs identical drafts"
        lines.append(try! skipped.jsonLine())
        for h in [1, 2, 4] { lines.append(try! record(scheme: "optimal", drafts: 4, hosts: h).jsonLine()) }
        return lines.joined(separator: "\n") + "\n"
    }

    final class SVGCounter: NSObject, XMLParserDelegate {
        var root: String?
        var elements: [String: Int] = [:]
        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            if root == nil { root = name }
            elements[name, default: 0] += 1
        }
    }

    @Test func plotWritesParseableSVGAndATable() throws {
        let records = try BenchRecord.load(contentsOf: Self.fixedResults)
        let report = BenchReport(records: records)
        let charts = report.charts()
        let names = charts.map(\.name)
        #expect(names.contains("block-efficiency-vs-K-identical-L4-T1.0.svg"))
        #expect(names.contains("time-split-identical-L4-T1.0.svg"))
        #expect(names.contains("token-rate-vs-hosts.svg"))
        for chart in charts {
            let parser = XMLParser(data: Data(chart.svg.utf8))
            let counter = SVGCounter()
            parser.delegate = counter
            #expect(parser.parse(), "\(chart.name): \(String(describing: parser.parserError))")
            #expect(counter.root == "svg", "\(chart.name)")
            if chart.name.hasPrefix("block-efficiency") {
                #expect(counter.elements["polyline"] == 2)  // one line per scheme
                #expect(counter.elements["circle"] == 6)
            }
            if chart.name.hasPrefix("time-split") {
                // 9 points × 5 segments (all non-zero), plus the background and 5 legend swatches.
                #expect(counter.elements["rect"] == 9 * 5 + 1 + 5)
            }
            if chart.name == "token-rate-vs-hosts.svg" {
                #expect(counter.elements["circle"] == 3)
                #expect(chart.svg.contains("target alone"))
            }
        }
        let markdown = report.markdown()
        #expect(markdown.contains("| 1.0 | optimal | 1.750 | 2.000 | 2.500 |"))
        #expect(markdown.contains("spectr K=2 L=4 T=1.0 temperature: spectr needs identical drafts"))
    }

    @Test func svgEscapesText() throws {
        let svg = SVGChart.lines(
            title: "a < b & \"c\"", xLabel: "x", yLabel: "y", series: [.init(name: "<s>", points: [(1, 2), (2, 3)])])
        #expect(XMLParser(data: Data(svg.utf8)).parse())
        #expect(svg.contains("a &lt; b &amp; &quot;c&quot;"))
    }

    @Test func ticksAreRoundAndCoverTheRange() {
        #expect(SVGChart.ticks(low: 0, high: 10) == [0, 2, 4, 6, 8, 10])
        #expect(SVGChart.ticks(low: 0, high: 3.3) == [0, 1, 2, 3, 4])
        #expect(SVGChart.ticks(low: 0, high: 352) == [0, 100, 200, 300, 400])
    }
}
