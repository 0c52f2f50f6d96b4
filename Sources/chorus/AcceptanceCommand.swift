import ArgumentParser
import ChorusSampling
import Foundation

/// `chorus acceptance`: every scheme's exact acceptance for given laws, the optimum, and a seeded
/// simulation of the real sampling code.
struct AcceptanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acceptance",
        abstract: "Closed-form and simulated acceptance of every multi-draft scheme.",
        discussion: """
            Give the target law and one draft law (repeated --drafts K times: identical drafts), or
            --draft several times (non-identical drafts). Probabilities are comma-separated and must
            sum to 1 within 1e-6. Bad input exits with code 2.

            Example: chorus acceptance --target 0.2,0.3,0.5 --draft 0.5,0.3,0.2 --drafts 2 --simulate 100000 --seed 1
            """
    )

    @Option(name: .long, help: "Target distribution q, comma-separated.")
    var target: String

    @Option(name: .long, help: "A draft distribution p (repeat for non-identical drafts).")
    var draft: [String] = []

    @Option(name: .long, help: "Number of identical drafts K when one --draft is given.")
    var drafts: Int?

    @Option(name: .long, help: "Scheme name, or 'all' (\(SchemeCatalog.names.joined(separator: ", "))).")
    var scheme: String = "all"

    @Option(name: .long, help: "truncated-lp's s: how many top-ranked tokens get free LP weights.")
    var truncation: Int = SchemeCatalog.defaultTruncation

    @Option(name: .long, help: "Run the real sampling code N times per scheme.")
    var simulate: Int = 0

    @Option(name: .long, help: "Seed of the simulation (the same seed reproduces it on any machine).")
    var seed: UInt64 = 0

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    func run() throws {
        let analysis: AcceptanceAnalysis
        do {
            analysis = try makeAnalysis()
        } catch let error as ExitCode {
            throw error
        } catch {
            throw fail("\(error)")
        }
        if json {
            try printJSON(analysis)
        } else {
            printTable(analysis)
        }
    }

    func parseDistribution(_ text: String, what: String) throws -> TokenDistribution {
        var values: [Double] = []
        for field in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = field.trimmingCharacters(in: .whitespaces)
            guard let v = Double(trimmed) else { throw fail("\(what): '\(trimmed)' is not a number") }
            values.append(v)
        }
        do {
            return try TokenDistribution(probabilities: values)
        } catch {
            throw fail("\(what) is not a distribution: \(error)")
        }
    }

    func makeAnalysis() throws -> AcceptanceAnalysis {
        guard !draft.isEmpty else { throw fail("give at least one --draft") }
        guard simulate >= 0 else { throw fail("--simulate must be ≥ 0") }
        guard truncation >= 1 else { throw fail("--truncation must be ≥ 1") }
        let q = try parseDistribution(target, what: "--target")
        var laws = try draft.enumerated().map { try parseDistribution($1, what: "--draft #\($0 + 1)") }
        if let k = drafts {
            guard k >= 1 else { throw fail("--drafts must be ≥ 1") }
            if laws.count == 1 {
                laws = Array(repeating: laws[0], count: k)
            } else if laws.count != k {
                throw fail("--drafts \(k) but \(laws.count) --draft laws were given; give one law or \(k)")
            }
        }
        for (i, p) in laws.enumerated() where p.vocabularySize != q.vocabularySize {
            throw fail("--draft #\(i + 1) has \(p.vocabularySize) entries but --target has \(q.vocabularySize)")
        }
        let names = scheme == "all" ? SchemeCatalog.names : [scheme]
        let schemes = try names.map { name in
            do { return try SchemeCatalog.scheme(named: name, truncation: truncation) } catch { throw fail("\(error)") }
        }
        var analysis = try AcceptanceAnalysis(target: q, drafts: laws)
        for s in schemes { analysis.evaluate(s, simulate: simulate, seed: seed) }
        if scheme != "all", let skipped = analysis.skipped.first { throw fail(skipped.reason) }
        return analysis
    }

    struct JSONReport: Encodable {
        struct Scheme: Encodable {
            struct Empirical: Encodable {
                var acceptance: Double
                var distribution: [Double]
                var totalVariation: Double
                var runs: Int
            }
            var name: String
            var acceptance: Double
            var empirical: Empirical?
            var notes: [String]?
        }
        struct Skipped: Encodable {
            var name: String
            var reason: String
        }
        var optimal: Double?
        var acceptsWithCertainty: Bool?
        var drafts: Int
        var identical: Bool
        var schemes: [Scheme]
        var skipped: [Skipped]?
    }

    func printJSON(_ analysis: AcceptanceAnalysis) throws {
        let report = JSONReport(
            optimal: analysis.optimal, acceptsWithCertainty: analysis.acceptsWithCertainty,
            drafts: analysis.drafts.count, identical: analysis.identical,
            schemes: analysis.schemes.map { s in
                JSONReport.Scheme(
                    name: s.name, acceptance: s.acceptance,
                    empirical: s.empirical.map {
                        .init(
                            acceptance: $0.acceptance, distribution: $0.distribution,
                            totalVariation: $0.totalVariation, runs: $0.runs)
                    },
                    notes: s.notes.isEmpty ? nil : s.notes)
            },
            skipped: analysis.skipped.isEmpty ? nil : analysis.skipped.map { .init(name: $0.name, reason: $0.reason) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(report)
        FileHandleOutput.standardOutput.write(String(decoding: data, as: UTF8.self) + "\n")
    }

    func printTable(_ analysis: AcceptanceAnalysis) {
        let n = analysis.target.vocabularySize
        func show(_ d: TokenDistribution) -> String {
            n <= 12 ? d.probabilities.map { fixed($0, 4) }.joined(separator: " ") : "\(n) tokens"
        }
        var out = "target q: \(show(analysis.target))\n"
        if analysis.identical {
            out += "drafts:   \(analysis.drafts.count) × p = \(show(analysis.drafts[0])) (identical)\n"
        } else {
            for (i, p) in analysis.drafts.enumerated() { out += "draft \(i + 1):  \(show(p))\n" }
        }
        if let optimal = analysis.optimal {
            out += "optimum over all exact schemes P* = \(fixed(optimal))"
            if let certain = analysis.acceptsWithCertainty {
                out += "   acceptance one attainable: \(certain ? "yes" : "no")"
            }
            out += "\n"
        } else {
            out += "optimum: not computed (non-identical drafts with more than 24 tokens)\n"
        }
        out += "\n"
        let simulated = analysis.schemes.contains { $0.empirical != nil }
        var header = padded("scheme", 14) + padded("acceptance", 12)
        if simulated {
            header += padded("empirical", 12) + padded("TV(output, q)", 15)
            if n <= 12 { header += "empirical output law" }
        }
        out += header + "\n"
        for s in analysis.schemes {
            var line = padded(s.name, 14) + padded(fixed(s.acceptance), 12)
            if let e = s.empirical {
                line += padded(fixed(e.acceptance), 12) + padded(fixed(e.totalVariation, 5), 15)
                if n <= 12 { line += e.distribution.map { fixed($0, 4) }.joined(separator: " ") }
            }
            out += line + "\n"
            for note in s.notes { out += "    \(note)\n" }
        }
        for s in analysis.skipped { out += padded(s.name, 14) + "skipped: \(s.reason)\n" }
        if simulated, let runs = analysis.schemes.first?.empirical?.runs {
            out += "\nempirical: \(runs) seeded runs of the real sampling code per scheme (seed \(seed))\n"
        }
        FileHandleOutput.standardOutput.write(out)
    }
}
