import ArgumentParser
import ChorusBench
import ChorusModel
import ChorusSampling
import Foundation

/// `chorus bench quantization`: what the compact draft law costs in acceptance on a real target/draft
/// pair (issue 13: "report Σ|q − q̂| and the acceptance change on the real pair"). Both models score
/// the same text (teacher forcing); at every position the draft's full law p (float64 softmax of its
/// logits) and the quantized law p̂ a worker actually draws from are compared with the target's law q:
/// `Σ|p − p̂|`, the bytes of p̂ on the wire, and the closed-form acceptance of single-draft sampling
/// (`Σ min(p, q)`) and of `optimal` with K identical drafts (`P*`), with p and with p̂ — exact values,
/// not estimates, so the change is not buried in sampling noise.
struct BenchQuantizationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantization",
        abstract: "Acceptance with the full draft law vs the quantized one, on a real model pair (closed form)."
    )

    @Option(name: .long, help: "Target GGUF model.") var target: String
    @Option(name: .long, help: "Draft GGUF model (same vocabulary).") var draft: String
    @Option(name: .long, help: "A text file; its first --positions tokens are scored.") var text: String
    @Option(name: .long, help: "Positions scored.") var positions = 128
    @Option(name: .long, help: "Comma-separated totals 2^BITS of the quantized law.") var bits = "16,20,24"
    @Option(name: .long, help: "K for the optimal scheme's P*.") var drafts = 4
    @Option(name: .long, help: "Draft and target temperature.") var temperature = 1.0
    @Option(name: .long, help: "Threads per model.") var threads = 1

    func validate() throws {
        guard positions >= 1, drafts >= 1, temperature > 0 else {
            throw ValidationError("--positions and --drafts must be ≥ 1, --temperature > 0")
        }
        guard !totals.isEmpty, totals.allSatisfy(QuantizedDistribution.totalBitsRange.contains) else {
            throw ValidationError("--bits: comma-separated values in 1…31")
        }
    }

    var totals: [Int] { bits.split(separator: ",").compactMap { Int($0) } }

    func run() throws {
        let targetModel = try loadModel(target, threads: threads, quiet: true)
        let draftModel = try loadModel(draft, threads: threads, quiet: true)
        guard targetModel.model.vocabularySize == draftModel.model.vocabularySize else {
            throw fail("the models have different vocabularies")
        }
        let source = try String(contentsOfFile: text, encoding: .utf8)
        let tokens = Array(targetModel.tokenizer.encode(source, addSpecial: true).prefix(positions))
        let chain = (0..<tokens.count).map { $0 - 1 }
        let targetLogits = try targetModel.model.makeSession().scoreTree(tokens: tokens, parents: chain)
        let draftLogits = try draftModel.model.makeSession().scoreTree(tokens: tokens, parents: chain)
        let settings = SamplingSettings(temperature: temperature)
        print(
            "\(targetModel.model.identity.name) / \(draftModel.model.identity.name): \(tokens.count) positions, "
                + "n = \(targetModel.model.vocabularySize), T = \(temperature), K = \(drafts)")
        print(
            "| total | median bytes | median support | mean Σ|p − p̂| | SD accept. (p) | SD change | "
                + "P* K=\(drafts) (p) | P* change | worst SD change | worst P* change |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        var laws: [(q: TokenDistribution, p: TokenDistribution, logits: [Float])] = []
        for (t, d) in zip(targetLogits, draftLogits) {
            laws.append(
                (
                    try TokenDistribution(logits: t, settings: settings),
                    try TokenDistribution(logits: d, settings: settings), d
                ))
        }
        let full = laws.map { law in
            (
                sd: singleDraftAcceptance(law.q, law.p),
                optimal: OptimalAcceptance.identical(target: law.q, draft: law.p, drafts: drafts)
            )
        }
        for b in totals {
            var bytes: [Int] = [], support: [Int] = []
            var distance = 0.0, sdChange = 0.0, optimalChange = 0.0, worstSD = 0.0, worstOptimal = 0.0
            for (law, exact) in zip(laws, full) {
                let quantized = try QuantizedDistribution(logits: law.logits, settings: settings, totalBits: b)
                let pHat = quantized.distribution
                bytes.append(quantized.wireByteCount)
                support.append(quantized.supportCount)
                distance += quantized.l1Distance(to: law.p)
                let sd = singleDraftAcceptance(law.q, pHat) - exact.sd
                let optimal = OptimalAcceptance.identical(target: law.q, draft: pHat, drafts: drafts) - exact.optimal
                sdChange += sd
                optimalChange += optimal
                if abs(sd) > abs(worstSD) { worstSD = sd }
                if abs(optimal) > abs(worstOptimal) { worstOptimal = optimal }
            }
            let count = Double(laws.count)
            let meanSD = full.map(\.sd).reduce(0, +) / count
            let meanOptimal = full.map(\.optimal).reduce(0, +) / count
            print(
                "| 2^\(b) | \(bytes.sorted()[bytes.count / 2]) | \(support.sorted()[support.count / 2]) | "
                    + "\(String(format: "%.2e", distance / count)) | \(fixed(meanSD, 4)) | "
                    + "\(String(format: "%+.5f", sdChange / count)) | \(fixed(meanOptimal, 4)) | "
                    + "\(String(format: "%+.5f", optimalChange / count)) | \(String(format: "%+.4f", worstSD)) | "
                    + "\(String(format: "%+.4f", worstOptimal)) |")
        }
    }

    /// `Σ_y min(p(y), q(y))` over the draft's support.
    func singleDraftAcceptance(_ q: TokenDistribution, _ p: TokenDistribution) -> Double {
        var sum = 0.0
        for (i, y) in p.support.enumerated() { sum += min(p.probability(atSupportIndex: i), q[y]) }
        return sum
    }
}
