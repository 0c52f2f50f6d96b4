import Foundation
import Testing

@testable import ChorusSampling

/// Seeded Monte Carlo of the real `select` code at n = 300 with LM-like laws (SAMPLING.md §5).
///
/// **Output law.** With N independent trials and empirical law q̂,
/// `E[TV(q̂, q)] = ½ Σ_y E|q̂(y) − q(y)| ≤ ½ Σ_y sqrt(q(y)(1 − q(y))/N)` (Jensen). TV is a function of
/// N independent trials that moves by at most 1/N when one trial changes, so McDiarmid gives
/// `P(TV − E[TV] ≥ t) ≤ exp(−2Nt²)`. With `t = sqrt(ln(1/δ)/(2N))` and δ = 1e-9 an exact scheme
/// fails the bound `½ Σ sqrt(q(1−q)/N) + t` with probability ≤ 1e-9 per check.
///
/// **Acceptance.** The accepted fraction is a mean of N independent Bernoulli(a) variables, so
/// Hoeffding gives `P(|â − a| ≥ t) ≤ 2 exp(−2Nt²)`; `t = sqrt(ln(2/δ)/(2N))`, δ = 1e-9.
///
/// Each configuration thus fails spuriously with probability ≤ 2e-9 (and, being seeded, it
/// either always passes or always fails).
@Suite struct MonteCarloTests {
    static let trials = 200_000
    static let n = 300
    static let k = 3
    static let delta = 1e-9

    struct Configuration: Sendable, CustomTestStringConvertible {
        var scheme: String
        var identical: Bool
        var seed: UInt64
        var testDescription: String { "\(scheme) \(identical ? "identical" : "non-identical")" }
    }

    static let configurations: [Configuration] = [
        .init(scheme: "sd", identical: true, seed: 1),
        .init(scheme: "specinfer", identical: true, seed: 2),
        .init(scheme: "specinfer", identical: false, seed: 3),
        .init(scheme: "spectr", identical: true, seed: 4),
        .init(scheme: "weighted-is", identical: true, seed: 5),
        .init(scheme: "weighted-is", identical: false, seed: 6),
    ]

    static func scheme(named name: String) -> any SelectionScheme {
        switch name {
        case "sd": return SingleDraftScheme()
        case "specinfer": return SpecInferScheme()
        case "spectr": return SpecTrScheme()
        default: return WeightedImportanceScheme()
        }
    }

    /// LM-like target and K drafts over n tokens for one configuration.
    static func laws(_ config: Configuration) throws -> (q: TokenDistribution, drafts: [TokenDistribution]) {
        var gen = CaseGenerator(seed: 1000 + config.seed)
        // Token ids are labels: relabel so that ids ascend as the target's logits descend. Exactness
        // does not depend on labels, and inverse-CDF draws then stop early, which keeps this debug
        // build test fast.
        let logits = gen.languageModelLike(n: n, temperature: 1).logits.sorted(by: >)
        let q = try TokenDistribution(logits: logits, settings: .init(temperature: 1))
        // Drafts: the target's logits plus noise, as a smaller model would give.
        let first = gen.languageModelLike(n: n, temperature: 1, correlatedWith: logits).distribution
        let drafts =
            config.identical
            ? Array(repeating: first, count: k)
            : [first]
                + (1..<k).map { _ in
                    gen.languageModelLike(n: n, temperature: 1, correlatedWith: logits).distribution
                }
        return (q, drafts)
    }

    struct Run {
        /// TV(empirical output law, q) and its bound (see the suite's comment).
        var tv: Double
        var tvBound: Double
        /// Accepted fraction and its Hoeffding half-width.
        var acceptanceRate: Double
        var acceptanceBound: Double
        /// Trials reported as accepted whose token matched no draft (must be 0).
        var acceptedUndrafted: Int
    }

    /// `trials` seeded runs of `prepared.select` on fresh drafts `X_j ~ drafts[j]`.
    static func run(
        _ prepared: any PreparedSelection, q: TokenDistribution, drafts: [TokenDistribution],
        seed: UInt64
    ) -> Run {
        var rng = ChorusRandom(seed: seed)
        var counts = [Int](repeating: 0, count: q.vocabularySize)
        var accepted = 0
        var drafted = [Int](repeating: 0, count: drafts.count)
        var acceptedUndrafted = 0
        for _ in 0..<trials {
            for j in drafts.indices { drafted[j] = drafts[j].sample(using: &rng) }
            let outcome = prepared.select(drafted, using: &rng)
            counts[outcome.token] += 1
            if outcome.accepted {
                accepted += 1
                if outcome.matchedDrafts.isEmpty { acceptedUndrafted += 1 }
            }
        }
        let total = Double(trials)
        var tv = 0.0
        var expectedTVBound = 0.0
        for y in 0..<q.vocabularySize {
            let qy = q[y]
            tv += abs(Double(counts[y]) / total - qy)
            expectedTVBound += (qy * (1 - qy) / total).squareRoot()
        }
        return Run(
            tv: tv / 2,
            tvBound: expectedTVBound / 2 + (log(1 / delta) / (2 * total)).squareRoot(),
            acceptanceRate: Double(accepted) / total,
            acceptanceBound: (log(2 / delta) / (2 * total)).squareRoot(),
            acceptedUndrafted: acceptedUndrafted)
    }

    @Test(arguments: configurations)
    func outputLawIsTargetAndAcceptanceIsClosedForm(_ config: Configuration) throws {
        let (q, drafts) = try Self.laws(config)
        let prepared = try Self.scheme(named: config.scheme).prepare(target: q, drafts: drafts)
        let result = Self.run(prepared, q: q, drafts: drafts, seed: config.seed)
        #expect(result.acceptedUndrafted == 0, "accepted tokens that match no draft")
        #expect(result.tv <= result.tvBound, "TV(empirical, q) = \(result.tv) > bound \(result.tvBound)")
        #expect(
            abs(result.acceptanceRate - prepared.acceptance) <= result.acceptanceBound,
            "acceptance \(result.acceptanceRate) vs closed form \(prepared.acceptance) (± \(result.acceptanceBound))")
        // The case is not degenerate: some drafts are rejected and some accepted.
        #expect(prepared.acceptance > 0.05 && prepared.acceptance < 0.999)
    }

    /// `optimal` with one draft is single-draft speculative sampling without the quantile-key tables
    /// (``SingleDraftSelection``): the real `select` code's output law is q and its acceptance the closed form
    /// Σ min(p, q), which is also what the tables give for K = 1 (and ``OptimalAcceptance`` for K = 1), on a
    /// dense and on a sparse (quantized) draft law; the sparse law is never widened. Same bounds as above:
    /// ≤ 2e-9 false-failure probability per law.
    @Test func optimalWithOneDraftIsSpeculativeSampling() throws {
        let (q, drafts) = try Self.laws(.init(scheme: "optimal", identical: true, seed: 8))
        let sparse = QuantizedDistribution(quantizing: drafts[0], totalBits: 12).distribution
        #expect(sparse.isSparse && sparse.support.count < q.vocabularySize)
        for (label, p) in [("dense", drafts[0]), ("sparse", sparse)] {
            let prepared = try OptimalScheme().prepare(target: q, drafts: [p])
            #expect(prepared is SingleDraftSelection, "\(label)")
            let closedForm = zip(p.support, p.supportProbabilities).reduce(0) { $0 + min(q[$1.0], $1.1) }
            #expect(abs(prepared.acceptance - closedForm) < 1e-12, "\(label)")
            let result = Self.run(prepared, q: q, drafts: [p], seed: 88)
            if label == "sparse" { #expect(!p.hasDenseVector, "the sparse draft law was widened") }
            #expect(abs(prepared.acceptance - OptimalSelection(target: q, draft: p, drafts: 1).acceptance) < 1e-12)
            #expect(abs(prepared.acceptance - OptimalAcceptance.identical(target: q, draft: p, drafts: 1)) < 1e-12)
            #expect(result.acceptedUndrafted == 0, "\(label)")
            #expect(result.tv <= result.tvBound, "\(label): TV \(result.tv) > bound \(result.tvBound)")
            #expect(
                abs(result.acceptanceRate - prepared.acceptance) <= result.acceptanceBound,
                "\(label): acceptance \(result.acceptanceRate) vs \(prepared.acceptance)")
            #expect(prepared.acceptance > 0.05 && prepared.acceptance < 0.999)
        }
    }

    /// Power check: the classic bug of SAMPLING.md §1 (step 2 uses the draft law p in place of
    /// p_I) must fail the same TV bound, so the test above can fail.
    @Test func harnessDetectsSchemeUsingDraftLawInsteadOfSelectedLaw() throws {
        let config = Configuration(scheme: "weighted-is", identical: true, seed: 5)
        let (q, drafts) = try Self.laws(config)
        let exact = try #require(
            try WeightedImportanceScheme().prepare(target: q, drafts: drafts)
                as? CanonicalSelection<WeightedImportanceRule>)
        let wrong = CanonicalSelection(rule: DraftLawMislabelledRule(inner: exact.rule, draft: drafts[0]), target: q)
        let result = Self.run(wrong, q: q, drafts: drafts, seed: 77)
        #expect(result.tv > result.tvBound, "a wrong scheme passed: TV \(result.tv) ≤ \(result.tvBound)")
    }
}

/// A deliberately wrong rule: selects like weighted importance but claims `p_I = p`.
struct DraftLawMislabelledRule: SelectionRule {
    var inner: WeightedImportanceRule
    var selectedLaw: [Double]
    init(inner: WeightedImportanceRule, draft: TokenDistribution) {
        self.inner = inner
        selectedLaw = draft.probabilities
    }
    func choose<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> Int {
        inner.choose(drafted, using: &rng)
    }
    func selectionProbabilities(_ drafted: [Int]) -> [(token: Int, probability: Double)] {
        inner.selectionProbabilities(drafted)
    }
}
