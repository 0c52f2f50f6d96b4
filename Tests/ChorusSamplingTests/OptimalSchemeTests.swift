import Foundation
import Testing

@testable import ChorusSampling

/// The quantile-key scheme (OPTIMAL.md) by exact enumeration and at vocabulary scale.
@Suite struct OptimalSchemeTests {
    /// n ≤ 6, K ≤ 4, random laws with zeros in p and q: the output law is q, `P(Y ∈ drafts)` is the
    /// sorted-prefix optimum, and the selection marginals are the `p_I` the scheme reports.
    @Test func exactByEnumeration() throws {
        var gen = CaseGenerator(seed: 2026)
        for trial in 0..<200 {
            let n = gen.int(2...6), k = gen.int(1...4)
            let q = gen.distribution(n: n, zeroChance: 0.25)
            let p = gen.distribution(n: n, zeroChance: 0.25)
            let drafts = Array(repeating: p, count: k)
            // The tables for every K (the scheme itself takes K = 1 to SingleDraftSelection, tested below).
            let prepared = OptimalSelection(target: q, draft: p, drafts: k)
            let optimum = OptimalAcceptance.identical(target: q, draft: p, drafts: k)
            #expect(abs(prepared.optimum - optimum) < 1e-12, "trial \(trial)")
            #expect(abs(prepared.acceptance - optimum) < 1e-12, "trial \(trial)")

            let law = enumerate(prepared, drafts: drafts)
            #expect(maxAbsDifference(law.output, q.probabilities) < 1e-12, "trial \(trial): output law")
            #expect(abs(law.inDrafts - optimum) < 1e-12, "trial \(trial): P(Y in drafts)")
            #expect(abs(law.acceptance - optimum) < 1e-12, "trial \(trial): acceptance")

            var marginal = [Double](repeating: 0, count: n)
            for tuple in allTuples(n: n, k: k) {
                let weight = tuple.reduce(1.0) { $0 * p[$1] }
                guard weight > 0 else { continue }
                for (token, beta) in prepared.selectionProbabilities(tuple) { marginal[token] += weight * beta }
            }
            #expect(maxAbsDifference(marginal, prepared.selectedLaw) < 1e-12, "trial \(trial): p_I")
            // Key measures mix to the uniform law on [0, 1]: Σ_y p(y) μ_y = U.
            var mixture = [Double](repeating: 0, count: p.support.count)
            for y in p.support {
                let w = try #require(prepared.keyMeasure(token: y))
                for c in w.indices { mixture[c] += p[y] * w[c] }
            }
            let cellWidths = prepared.tokensByRank.map { p[$0] }
            #expect(maxAbsDifference(mixture, cellWidths) < 1e-12, "trial \(trial): Σ p μ = uniform")
        }
    }

    /// K = 1 is speculative sampling: the same acceptance and, for every drafted token, the same exact
    /// law of the output and of acceptance (not just the same averages).
    @Test func singleDraftIsSpeculativeSampling() throws {
        var gen = CaseGenerator(seed: 3)
        for trial in 0..<30 {
            let n = gen.int(2...6)
            let q = gen.distribution(n: n, zeroChance: 0.2), p = gen.distribution(n: n, zeroChance: 0.2)
            let prepared = try OptimalScheme().prepare(target: q, drafts: [p])
            let sd = try SingleDraftScheme().prepare(target: q, drafts: [p])
            #expect(abs(prepared.acceptance - sd.acceptance) < 1e-12)
            for x in p.support {
                let mine = prepared.law(given: [x])
                let reference = sd.law(given: [x])
                #expect(maxAbsDifference(mine.output, reference.output) < 1e-12, "trial \(trial), drafted \(x)")
                #expect(abs(mine.acceptance - reference.acceptance) < 1e-12, "trial \(trial), drafted \(x)")
            }
        }
    }

    /// Drafts of several laws: the grouped composition is exact (output law q, closed-form acceptance,
    /// selection marginals = p_I) and never beats the non-identical optimum.
    @Test func groupedCompositionIsExact() throws {
        var gen = CaseGenerator(seed: 77)
        let layouts: [[Int]] = [[0, 1], [0, 0, 1], [0, 1, 1, 0], [0, 1, 2], [0, 0, 0, 1], [0, 1, 2, 2]]
        for trial in 0..<60 {
            let n = gen.int(2...5)
            let layout = layouts[trial % layouts.count]
            let q = gen.distribution(n: n, zeroChance: 0.2)
            let laws = (0...(layout.max() ?? 0)).map { _ in gen.distribution(n: n, zeroChance: 0.2) }
            let drafts = layout.map { laws[$0] }
            let prepared = try OptimalScheme().prepare(target: q, drafts: drafts)
            let law = enumerate(prepared, drafts: drafts)
            #expect(maxAbsDifference(law.output, q.probabilities) < 1e-12, "trial \(trial): output law")
            #expect(abs(law.acceptance - prepared.acceptance) < 1e-12, "trial \(trial): acceptance")
            let optimum = try OptimalAcceptance.nonIdentical(target: q, drafts: drafts)
            #expect(law.inDrafts <= optimum + 1e-12, "trial \(trial)")
            if let grouped = prepared as? GroupedOptimalSelection {
                var marginal = [Double](repeating: 0, count: n)
                for tuple in allTuples(n: n, k: drafts.count) {
                    var weight = 1.0
                    for (k, x) in tuple.enumerated() { weight *= drafts[k][x] }
                    guard weight > 0 else { continue }
                    for (token, beta) in grouped.selectionProbabilities(tuple) { marginal[token] += weight * beta }
                }
                #expect(maxAbsDifference(marginal, grouped.selectedLaw) < 1e-12, "trial \(trial): p_I")
            }
        }
    }

    /// n = 32000, K = 2, 4, 8, LM-like laws at temperatures 0.7–1.5: Σ min(q, p_I) equals P* to 1e-9.
    @Test func reachesTheOptimumAtVocabularyScale() throws {
        var gen = CaseGenerator(seed: 11)
        for (caseIndex, temperature) in [0.7, 1.0, 1.5].enumerated() {
            let (q, logits) = gen.languageModelLike(n: 32000, temperature: 1)
            let (p, _) = gen.languageModelLike(n: 32000, temperature: temperature, correlatedWith: logits)
            for k in [2, 4, 8] {
                let prepared = try #require(
                    try OptimalScheme().prepare(target: q, drafts: Array(repeating: p, count: k)) as? OptimalSelection)
                let optimum = OptimalAcceptance.identical(target: q, draft: p, drafts: k)
                #expect(abs(prepared.acceptance - optimum) < 1e-9, "case \(caseIndex) K \(k)")
                #expect(abs(prepared.selectedLaw.reduce(0, +) - 1) < 1e-9)
            }
        }
    }

    /// Monte Carlo of the real sampler at n = 1000, K = 4: TV(empirical, q) stays under its bound.
    /// E[TV] ≤ ½ Σ_y sqrt(q_y(1 − q_y)/N) (Jensen); TV is a function of N independent runs with
    /// bounded differences 1/N, so McDiarmid gives P(TV ≥ E[TV] + t) ≤ exp(−2 N t²); t = sqrt(ln(1e9)/(2N))
    /// makes the false-failure probability ≤ 1e-9. Acceptance: Hoeffding with the same t.
    @Test func monteCarloAtN1000() throws {
        var gen = CaseGenerator(seed: 5)
        let (q, logits) = gen.languageModelLike(n: 1000, temperature: 1)
        let (p, _) = gen.languageModelLike(n: 1000, temperature: 1.2, correlatedWith: logits)
        let k = 4
        let drafts = Array(repeating: p, count: k)
        let prepared = try OptimalScheme().prepare(target: q, drafts: drafts)
        let runs = 200_000
        var rng = ChorusRandom(seed: 99)
        let sampler = CumulativeSampler(p)
        var counts = [Int](repeating: 0, count: 1000)
        var accepted = 0
        for _ in 0..<runs {
            let drafted = (0..<k).map { _ in sampler.sample(using: &rng) }
            let outcome = prepared.select(drafted, using: &rng)
            counts[outcome.token] += 1
            if outcome.accepted {
                accepted += 1
                #expect(drafted.contains(outcome.token))
            }
        }
        let t = sqrt(log(1e9) / (2 * Double(runs)))
        let expectedTV = 0.5 * q.probabilities.map { sqrt($0 * (1 - $0) / Double(runs)) }.reduce(0, +)
        let tv = 0.5 * zip(counts, q.probabilities).map { abs(Double($0) / Double(runs) - $1) }.reduce(0, +)
        #expect(tv <= expectedTV + t, "TV \(tv) over bound \(expectedTV + t)")
        #expect(abs(Double(accepted) / Double(runs) - prepared.acceptance) <= t)
    }
}
