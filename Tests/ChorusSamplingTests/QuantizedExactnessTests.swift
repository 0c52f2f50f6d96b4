import Foundation
import Testing

@testable import ChorusSampling

/// Exactness when drafts are drawn from quantized laws q̂ (issue 13): the schemes the coordinator
/// uses (`optimal`, `specinfer`, `sd`) verify against the same q̂, so the output law is the target's.
/// Coarse totals (2^2 … 2^10) make q̂ far from the model's law, so a scheme that silently used the
/// unquantized law would show.
@Suite struct QuantizedExactnessTests {
    static let tol = 1e-12

    /// n ≤ 6, K ≤ 4: exact enumeration over every draft tuple with drafts from q̂.
    @Test func enumerationThroughTheCoordinatorSchemes() throws {
        var gen = CaseGenerator(seed: 4242)
        var coarse = 0
        for trial in 0..<150 {
            let n = gen.int(2...6), k = gen.int(1...4)
            let bits = [2, 3, 4, 6, 10][trial % 5]
            let q = gen.distribution(n: n, zeroChance: 0.25)
            let p = gen.distribution(n: n, zeroChance: 0.25)
            let pHat = QuantizedDistribution(quantizing: p, totalBits: bits).distribution
            if pHat != p { coarse += 1 }
            let identical = Array(repeating: pHat, count: k)
            let label = "trial \(trial) n \(n) K \(k) 2^\(bits)"

            // optimal: the output law is q and the acceptance is the optimum for q̂.
            let optimal = try OptimalScheme().prepare(target: q, drafts: identical)
            let optimum = OptimalAcceptance.identical(target: q, draft: pHat, drafts: k)
            let optimalLaw = enumerate(optimal, drafts: identical)
            #expect(maxAbsDifference(optimalLaw.output, q.probabilities) < Self.tol, "\(label) optimal law")
            #expect(abs(optimalLaw.acceptance - optimum) < Self.tol, "\(label) optimal acceptance")
            #expect(abs(optimal.acceptance - optimum) < Self.tol, "\(label) optimal closed form")

            // specinfer: identical and non-identical quantized drafts (different totals per draft).
            let mixed = (0..<k).map { j in
                QuantizedDistribution(quantizing: gen.distribution(n: n, zeroChance: 0.25), totalBits: bits + j)
                    .distribution
            }
            for drafts in [identical, mixed] {
                let specInfer = try SpecInferScheme().prepare(target: q, drafts: drafts)
                let law = enumerate(specInfer, drafts: drafts)
                #expect(maxAbsDifference(law.output, q.probabilities) < Self.tol, "\(label) specinfer law")
                #expect(abs(law.acceptance - specInfer.acceptance) < Self.tol, "\(label) specinfer acceptance")
            }
            // optimal with several quantized laws (the grouped composition).
            let grouped = try OptimalScheme().prepare(target: q, drafts: mixed)
            let groupedLaw = enumerate(grouped, drafts: mixed)
            #expect(maxAbsDifference(groupedLaw.output, q.probabilities) < Self.tol, "\(label) grouped law")

            // sd: one draft; acceptance Σ min(q, q̂).
            let sd = try SingleDraftScheme().prepare(target: q, drafts: [pHat])
            let sdLaw = enumerate(sd, drafts: [pHat])
            #expect(maxAbsDifference(sdLaw.output, q.probabilities) < Self.tol, "\(label) sd law")
            let overlap = zip(q.probabilities, pHat.probabilities).map { min($0, $1) }.reduce(0, +)
            #expect(abs(sdLaw.acceptance - overlap) < Self.tol, "\(label) sd acceptance")
        }
        // The quantization really changed most laws.
        #expect(coarse > 100)
    }

    /// Sequence level: whole rounds on toy bigram models whose draft rows are quantized to 2^3, through
    /// the tree verifier with `optimal` and `specinfer` (every tuple of draft sequences enumerated).
    @Test(arguments: [
        SequenceConfig(k: 2, length: 2, mix: .identical, seed: 31),
        SequenceConfig(k: 2, length: 3, mix: .distinct, seed: 32),
        SequenceConfig(k: 3, length: 2, mix: .mixed, seed: 33),
    ])
    func roundsWithQuantizedDraftsReproduceTheTarget(config: SequenceConfig) throws {
        let base = config.makeCase()
        let models = try base.draftModels.map { model in
            try Bigram(
                rows: model.rows.map { QuantizedDistribution(quantizing: $0, totalBits: 3).distribution.probabilities })
        }
        #expect(zip(models, base.draftModels).contains { $0.rows != $1.rows }, "quantization changed nothing")
        let c = SequenceCase(
            target: base.target, draftModels: models, lawGroups: base.lawGroups, root: base.root, length: base.length)
        for scheme: any SelectionScheme in [OptimalScheme(), SpecInferScheme()] {
            let law = try exactRoundLaw(c, scheme: scheme)
            #expect(abs(law.values.reduce(0, +) - 1) < Self.tol)
            #expect(sequenceExactnessError(law, c) < Self.tol, "\(scheme.name)")
        }
    }

    /// Seeded Monte Carlo of the real code: drafts drawn by the integer sampler from q̂ (2^12, n = 300,
    /// LM-like, many tail tokens dropped), selection by `optimal` (K = 4) and `specinfer` (K = 3)
    /// against q̂. The TV and acceptance bounds are those of ``MonteCarloTests`` (McDiarmid and
    /// Hoeffding, δ = 1e-9 each): a correct implementation fails a check with probability ≤ 2e-9.
    @Test(arguments: ["optimal", "specinfer"])
    func monteCarloWithIntegerSampledDrafts(scheme name: String) throws {
        let (q, _, quantized) = try Self.monteCarloLaws(bits: 12)
        let k = name == "optimal" ? 4 : 3
        let laws = quantized.prefix(k).map(\.distribution)
        let scheme: any SelectionScheme = name == "optimal" ? OptimalScheme() : SpecInferScheme()
        let prepared = try scheme.prepare(
            target: q, drafts: name == "optimal" ? Array(repeating: laws[0], count: k) : laws)
        let samplers = name == "optimal" ? Array(repeating: quantized[0], count: k) : Array(quantized.prefix(k))
        let result = Self.run(prepared, q: q, samplers: samplers, seed: name == "optimal" ? 71 : 72)
        #expect(result.acceptedUndrafted == 0)
        #expect(result.tv <= result.tvBound, "TV \(result.tv) > bound \(result.tvBound)")
        #expect(abs(result.acceptance - prepared.acceptance) <= result.acceptanceBound)
        #expect(prepared.acceptance > 0.05 && prepared.acceptance < 0.999)
    }

    /// Power check: drawing from q̂ (2^4) but verifying against the unquantized law p — the bug the
    /// compact law must never have — fails the same TV bound.
    @Test func verifyingAgainstTheUnquantizedLawIsCaught() throws {
        let (q, unquantized, quantized) = try Self.monteCarloLaws(bits: 4)
        let wrong = try SingleDraftScheme().prepare(target: q, drafts: [unquantized[0]])
        let result = Self.run(wrong, q: q, samplers: [quantized[0]], seed: 73)
        #expect(result.tv > result.tvBound, "a wrong pairing passed: TV \(result.tv) ≤ \(result.tvBound)")
    }

    // MARK: Support

    static let n = 300
    static let trials = 200_000
    static let delta = 1e-9

    /// Target q and three draft laws over n = 300 (ids ascending as the target's logits descend, so
    /// inverse-CDF walks stop early): (q, the draft laws p, p quantized to 2^bits).
    static func monteCarloLaws(bits: Int) throws
        -> (q: TokenDistribution, unquantized: [TokenDistribution], quantized: [QuantizedDistribution])
    {
        var gen = CaseGenerator(seed: 5150)
        let logits = gen.languageModelLike(n: n, temperature: 1).logits.sorted(by: >)
        let q = try TokenDistribution(logits: logits, settings: .standard)
        let drafts = (0..<3).map { _ in gen.languageModelLike(n: n, temperature: 1, correlatedWith: logits).distribution
        }
        return (q, drafts, drafts.map { QuantizedDistribution(quantizing: $0, totalBits: bits) })
    }

    struct Run {
        var tv: Double
        var tvBound: Double
        var acceptance: Double
        var acceptanceBound: Double
        var acceptedUndrafted: Int
    }

    static func run(
        _ prepared: any PreparedSelection, q: TokenDistribution, samplers: [QuantizedDistribution], seed: UInt64
    ) -> Run {
        var rng = ChorusRandom(seed: seed)
        var counts = [Int](repeating: 0, count: q.vocabularySize)
        var accepted = 0
        var undrafted = 0
        var drafted = [Int](repeating: 0, count: samplers.count)
        for _ in 0..<trials {
            for j in samplers.indices { drafted[j] = samplers[j].sample(using: &rng) }
            let outcome = prepared.select(drafted, using: &rng)
            counts[outcome.token] += 1
            if outcome.accepted {
                accepted += 1
                if outcome.matchedDrafts.isEmpty { undrafted += 1 }
            }
        }
        let total = Double(trials)
        var tv = 0.0, expected = 0.0
        for y in 0..<q.vocabularySize {
            tv += abs(Double(counts[y]) / total - q[y])
            expected += (q[y] * (1 - q[y]) / total).squareRoot()
        }
        return Run(
            tv: tv / 2, tvBound: expected / 2 + (log(1 / delta) / (2 * total)).squareRoot(),
            acceptance: Double(accepted) / total, acceptanceBound: (log(2 / delta) / (2 * total)).squareRoot(),
            acceptedUndrafted: undrafted)
    }
}
