import ArgumentParser
import ChorusSampling
import Foundation

/// `chorus bench acceptance`: what each scheme buys, in closed form, on LM-like laws at vocabulary
/// scale — the optimum P*, `optimal`, SpecTr, SpecInfer, SD (and the others on request).
struct BenchAcceptanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acceptance",
        abstract: "Closed-form acceptance of each scheme on LM-like laws at vocabulary scale (markdown table).",
        discussion: """
            Target: softmax of Gaussian logits (σ = 2) at temperature 1. Draft: the target's logits plus
            Gaussian noise (σ = --noise) at the draft temperature. Acceptance is the exact P(accepted) of each
            scheme, averaged over --cases independent laws.
            """
    )

    @Option(name: .long, help: "Vocabulary size n.") var vocab = 32000
    @Option(name: .long, help: "Comma-separated draft counts K.") var drafts = "2,4,8"
    @Option(name: .long, help: "Comma-separated draft temperatures.") var temperatures = "0.7,1.0,1.5"
    @Option(name: .long, help: "Comma-separated schemes.") var schemes = "optimal,spectr,specinfer,sd"
    @Option(name: .long, help: "Noise σ of the draft logits.") var noise = 1.0
    @Option(name: .long, help: "Independent laws averaged per cell.") var cases = 3
    @Option(name: .long, help: "Seed.") var seed: UInt64 = 1

    func run() throws {
        let ks = drafts.split(separator: ",").compactMap { Int($0) }
        let ts = temperatures.split(separator: ",").compactMap { Double($0) }
        let names = schemes.split(separator: ",").map(String.init)
        let selected = try names.map { name in
            do { return try SchemeCatalog.scheme(named: name) } catch { throw fail("\(error)") }
        }
        var rng = ChorusRandom(seed: seed)
        func gaussian() -> Double {
            let u1 = max(rng.nextUnit(), 1e-300), u2 = rng.nextUnit()
            return sqrt(-2 * log(u1)) * cos(2 * .pi * u2)
        }
        // The same laws for every cell of a row: draw target/draft logits once per case.
        let laws = (0..<cases).map { _ -> (target: [Double], draft: [Double]) in
            let target = (0..<vocab).map { _ in 2 * gaussian() }
            return (target, target.map { $0 + noise * gaussian() })
        }
        print("| draft T | K | P* | " + names.joined(separator: " | ") + " |")
        print("|---|---|---|" + names.map { _ in "---|" }.joined())
        for t in ts {
            for k in ks {
                var optimum = 0.0
                var sums = [Double](repeating: 0, count: names.count)
                for law in laws {
                    let q = try TokenDistribution(logits: law.target, settings: .standard)
                    let p = try TokenDistribution(logits: law.draft, settings: .init(temperature: t))
                    let pool = Array(repeating: p, count: k)
                    optimum += OptimalAcceptance.identical(target: q, draft: p, drafts: k)
                    for (i, scheme) in selected.enumerated() {
                        sums[i] += try scheme.prepare(target: q, drafts: pool).acceptance
                    }
                }
                let c = Double(cases)
                print(
                    "| \(t) | \(k) | \(fixed(optimum / c, 4)) | "
                        + sums.map { fixed($0 / c, 4) }.joined(separator: " | ") + " |")
            }
        }
        print("\nn = \(vocab), \(cases) law(s) per cell, draft noise σ = \(noise), seed \(seed)")
    }
}
