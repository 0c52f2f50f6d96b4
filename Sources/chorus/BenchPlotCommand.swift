import ArgumentParser
import ChorusBench
import ChorusCluster
import Foundation

/// `chorus bench plot RESULTS…`: SVG charts and a markdown table from `chorus bench` results.
struct BenchPlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "SVG charts and a markdown table from chorus bench results.",
        discussion: """
            Writes, per (draft mix, L, draft temperature): block-efficiency-vs-K-….svg and time-split-….svg \
            (stacked bars, ms per round); token-rate-vs-hosts.svg (from --hosts runs, else against local \
            worker processes); and table.md (the paper-style block-efficiency table, then every point), which \
            is also printed. Several result files can be combined.
            """
    )

    @Argument(help: "Results files (JSON lines from chorus bench).") var results: [String]
    @Option(name: .long, help: "Output directory (default: results/plots).") var out = "results/plots"

    func validate() throws {
        guard !results.isEmpty else { throw ValidationError("give at least one results file") }
    }

    func run() throws {
        var records: [BenchRecord] = []
        for path in results {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw fail("cannot read \(path)")
            }
            do {
                records += try BenchRecord.load(contentsOf: text)
            } catch {
                throw fail("\(path): \(error)")
            }
        }
        guard !records.isEmpty else { throw fail("no records in \(results.joined(separator: ", "))") }
        let report = BenchReport(records: records)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var written: [String] = []
        for chart in report.charts() {
            let path = out + "/" + chart.name
            do {
                try chart.svg.write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                throw fail("cannot write \(path): \(error)")
            }
            written.append(path)
        }
        let markdown = report.markdown()
        let tablePath = out + "/table.md"
        do {
            try markdown.write(toFile: tablePath, atomically: true, encoding: .utf8)
        } catch {
            throw fail("cannot write \(tablePath): \(error)")
        }
        print(markdown)
        FileHandleOutput.standardError.write(
            "wrote \(written.count) charts and \(tablePath):\n" + written.map { "  \($0)\n" }.joined())
    }
}
