import ChorusTestSupport
import Foundation
import Testing

@testable import ChorusSampling

/// `optimal-lp` and `truncated-lp` (SAMPLING.md §1): exactness by enumeration, agreement with the
/// public vectors and with the theory of the optimum.
@Suite struct LPSchemeTests {
    /// One entry of `vectors/acceptance.json` (JSON field names in `CodingKeys`).
    private struct Vector: Decodable {
        var name: String
        var draftCount: Int
        var q: [Double]
        var drafts: [[Double]]
        var optimal: Double
        var truncatedS1: Double
        var truncatedS2: Double

        enum CodingKeys: String, CodingKey {
            case name, q, drafts, optimal
            case draftCount = "K"
            case truncatedS1 = "truncatedLP_s1"
            case truncatedS2 = "truncatedLP_s2"
        }
    }

    private struct VectorFile: Decodable { var vectors: [Vector] }

    /// `1 + min_S [q(S) − Π_k p_k(S)]` over every token set S (SAMPLING.md §2), by brute force over
    /// the 2^n subsets; S = ∅ gives 1. A reference written independently of the library.
    private func bruteForceOptimum(target q: TokenDistribution, drafts: [TokenDistribution]) -> Double {
        let n = q.vocabularySize
        var best = 0.0
        for mask in 1..<(1 << n) {
            var qS = 0.0
            var product = 1.0
            for p in drafts {
                var pS = 0.0
                for y in 0..<n where mask & (1 << y) != 0 { pS += p[y] }
                product *= pS
            }
            for y in 0..<n where mask & (1 << y) != 0 { qS += q[y] }
            best = min(best, qS - product)
        }
        return 1 + best
    }

    /// A random case: n ≤ 6, K ≤ 3, identical or not, with exact zeros in p and q.
    private func randomCase(_ gen: inout CaseGenerator, index: Int) -> (TokenDistribution, [TokenDistribution]) {
        let n = gen.int(2...6)
        let k = gen.int(1...3)
        let q = gen.distribution(n: n, zeroChance: 0.25)
        let identical = index % 2 == 0
        let first = gen.distribution(n: n, zeroChance: 0.25)
        let drafts = (0..<k).map { i in identical || i == 0 ? first : gen.distribution(n: n, zeroChance: 0.25) }
        return (q, drafts)
    }

    /// Exact enumeration: the output law is q and the closed-form acceptance is the enumerated one.
    private func expectExact(
        _ prepared: any PreparedSelection, target q: TokenDistribution,
        drafts: [TokenDistribution], _ label: String
    ) {
        let law = enumerate(prepared, drafts: drafts)
        let lawError = maxAbsDifference(law.output, q.probabilities)
        #expect(lawError < 1e-12, "\(label): law error \(lawError)")
        let acceptanceError = abs(law.acceptance - prepared.acceptance)
        #expect(acceptanceError < 1e-12, "\(label): acceptance \(prepared.acceptance) vs enumerated \(law.acceptance)")
        // An accepted token is a drafted one.
        #expect(law.inDrafts >= law.acceptance - 1e-12, "\(label)")
    }

    @Test func publicVectorsAreReproduced() throws {
        let url = sharedDirectory().appendingPathComponent("vectors/acceptance.json")
        let file = try JSONDecoder().decode(VectorFile.self, from: Data(contentsOf: url))
        #expect(file.vectors.count >= 5)
        for v in file.vectors {
            let q = try TokenDistribution(probabilities: v.q)
            let drafts = try v.drafts.map { try TokenDistribution(probabilities: $0) }
            #expect(drafts.count == v.draftCount, "\(v.name)")
            let optimal = try OptimalLPScheme().prepare(target: q, drafts: drafts)
            #expect(
                abs(optimal.acceptance - v.optimal) < 1e-9,
                "\(v.name): optimal-lp \(optimal.acceptance) vs \(v.optimal)")
            for (s, expected) in [(1, v.truncatedS1), (2, v.truncatedS2)] {
                let truncated = try TruncatedLPScheme(s: s, guardWithSingleDraft: false).prepare(
                    target: q, drafts: drafts)
                #expect(
                    abs(truncated.acceptance - expected) < 1e-9,
                    "\(v.name): truncated-lp s=\(s) \(truncated.acceptance) vs \(expected)")
            }
        }
    }

    @Test func exactByEnumerationOnRandomCases() throws {
        var gen = CaseGenerator(seed: 2025)
        for index in 0..<64 {
            let (q, drafts) = randomCase(&gen, index: index)
            let n = q.vocabularySize
            let label = "case \(index) n=\(n) K=\(drafts.count) identical=\(drafts.areIdentical)"
            let optimal = try OptimalLPScheme().prepare(target: q, drafts: drafts)
            expectExact(optimal, target: q, drafts: drafts, "optimal-lp " + label)
            for s in Set([1, 2, 3, n]) {
                for guardOn in [false, true] {
                    let scheme = TruncatedLPScheme(s: s, guardWithSingleDraft: guardOn)
                    let prepared = try scheme.prepareTruncated(target: q, drafts: drafts)
                    expectExact(prepared, target: q, drafts: drafts, "truncated-lp s=\(s) guard=\(guardOn) " + label)
                    // p_I is a distribution and the guard's decision follows its report.
                    #expect(abs(prepared.rule.selectedLaw.reduce(0, +) - 1) < 1e-12, "\(label)")
                    let single = zip(q.probabilities, drafts[0].probabilities).map { min($0, $1) }.reduce(0, +)
                    #expect(prepared.usedSingleDraftGuard == (guardOn && prepared.unguardedAcceptance < single))
                    #expect(
                        abs(
                            prepared.acceptance
                                - (prepared.usedSingleDraftGuard ? single : prepared.unguardedAcceptance)) < 1e-12)
                    if guardOn { #expect(prepared.acceptance >= single - 1e-12, "\(label)") }
                }
            }
        }
    }

    @Test func optimalLPMatchesTheoryAndBoundsOtherSchemes() throws {
        var gen = CaseGenerator(seed: 77)
        for index in 0..<60 {
            let (q, drafts) = randomCase(&gen, index: index)
            let label = "case \(index) n=\(q.vocabularySize) K=\(drafts.count) identical=\(drafts.areIdentical)"
            let scheme = try OptimalLPScheme().prepare(target: q, drafts: drafts)
            let brute = bruteForceOptimum(target: q, drafts: drafts)
            #expect(abs(scheme.acceptance - brute) < 1e-9, "\(label): \(scheme.acceptance) vs brute force \(brute)")
            if drafts.areIdentical {
                let sorted = OptimalAcceptance.identical(target: q, draft: drafts[0], drafts: drafts.count)
                #expect(
                    abs(scheme.acceptance - sorted) < 1e-9, "\(label): \(scheme.acceptance) vs sorted prefix \(sorted)")
            }
            // The LP's own optimum agrees with the acceptance rebuilt from its β's.
            if let canonical = scheme as? CanonicalSelection<OptimalLPRule> {
                #expect(abs(canonical.rule.programOptimum - scheme.acceptance) < 1e-9, "\(label)")
            } else {
                Issue.record("optimal-lp should prepare a CanonicalSelection<OptimalLPRule>")
            }
            // The paper's per-tuple LP has the same optimum as the per-set one.
            let perTuple = try OptimalLPScheme(grouping: .tuple).prepare(target: q, drafts: drafts)
            #expect(abs(perTuple.acceptance - brute) < 1e-9, "\(label): per-tuple \(perTuple.acceptance)")
            // No exact scheme beats the optimum.
            let sd = try SingleDraftScheme().prepare(target: q, drafts: drafts)
            #expect(sd.acceptance <= brute + 1e-12, "\(label)")
            for s in [1, 2, q.vocabularySize] {
                for guardOn in [false, true] {
                    let truncated = try TruncatedLPScheme(s: s, guardWithSingleDraft: guardOn).prepare(
                        target: q, drafts: drafts)
                    #expect(
                        truncated.acceptance <= brute + 1e-12, "\(label) s=\(s): \(truncated.acceptance) > \(brute)")
                }
            }
        }
    }

    @Test func truncatedLPWithFullOmega1IsOptimalForTwoDrafts() throws {
        var gen = CaseGenerator(seed: 5)
        for index in 0..<40 {
            let n = gen.int(2...7)
            let q = gen.distribution(n: n, zeroChance: 0.2)
            let p1 = gen.distribution(n: n, zeroChance: 0.2)
            let p2 = index % 2 == 0 ? p1 : gen.distribution(n: n, zeroChance: 0.2)
            let truncated = try TruncatedLPScheme(s: n, guardWithSingleDraft: false).prepare(
                target: q, drafts: [p1, p2])
            let optimum = bruteForceOptimum(target: q, drafts: [p1, p2])
            #expect(abs(truncated.acceptance - optimum) < 1e-9, "case \(index): \(truncated.acceptance) vs \(optimum)")
        }
    }

    @Test func guardReplacesTruncatedRuleWhenWorseThanSingleDraft() throws {
        let uniform = TokenDistribution.uniform(vocabularySize: 3)
        let drafts = [uniform, uniform]
        let unguarded = try TruncatedLPScheme(s: 1, guardWithSingleDraft: false).prepareTruncated(
            target: uniform, drafts: drafts)
        #expect(abs(unguarded.acceptance - 7.0 / 9) < 1e-12)
        #expect(!unguarded.usedSingleDraftGuard)
        let guarded = try TruncatedLPScheme(s: 1).prepareTruncated(target: uniform, drafts: drafts)
        #expect(guarded.usedSingleDraftGuard)
        #expect(abs(guarded.acceptance - 1) < 1e-12)
        #expect(abs(guarded.unguardedAcceptance - 7.0 / 9) < 1e-12)
        #expect(abs(guarded.singleDraftAcceptance - 1) < 1e-12)
        expectExact(guarded, target: uniform, drafts: drafts, "guarded")
        // Through the protocol too: the scheme's `prepare` returns the same concrete value.
        let erased = try TruncatedLPScheme(s: 1).prepare(target: uniform, drafts: drafts)
        #expect((erased as? TruncatedLPSelection)?.usedSingleDraftGuard == true)
    }

    /// `choose` (the real sampling code) draws with the probabilities `selectionProbabilities` reports.
    /// Seeded Monte Carlo: 40 000 draws per tuple; each frequency must lie within 5 standard deviations,
    /// a false-failure probability below 1e-5 per comparison.
    @Test func chooseFollowsSelectionProbabilities() throws {
        let q = try TokenDistribution(probabilities: [0.4, 0.05, 0.25, 0.3])
        let drafts = [
            try TokenDistribution(probabilities: [0.1, 0.4, 0.3, 0.2]),
            try TokenDistribution(probabilities: [0.25, 0.25, 0.25, 0.25]),
            try TokenDistribution(probabilities: [0.3, 0.3, 0.1, 0.3]),
        ]
        let optimal = try OptimalLPRule(target: q, drafts: drafts, grouping: .draftedSet, maxTuples: 2000)
        let truncated = try TruncatedLPRule(target: q, drafts: drafts, s: 2)
        var rng = ChorusRandom(seed: 99)
        let draws = 40_000
        for tuple in [[0, 1, 2], [1, 0, 2], [2, 3, 1], [3, 3, 0], [1, 2, 3]] {
            let rules: [(String, any SelectionRule)] = [("optimal-lp", optimal), ("truncated-lp", truncated)]
            for (name, rule) in rules {
                var counts = [Int](repeating: 0, count: 4)
                for _ in 0..<draws { counts[rule.choose(tuple, using: &rng)] += 1 }
                let probabilities = rule.selectionProbabilities(tuple)
                #expect(abs(probabilities.map(\.probability).reduce(0, +) - 1) < 1e-12)
                var expected = [Double](repeating: 0, count: 4)
                for (token, p) in probabilities {
                    #expect(tuple.contains(token), "\(name) selected \(token) outside \(tuple)")
                    expected[token] += p
                }
                for y in 0..<4 {
                    let p = expected[y]
                    let sd = (p * (1 - p) / Double(draws)).squareRoot()
                    #expect(
                        abs(Double(counts[y]) / Double(draws) - p) <= 5 * sd + 1e-12,
                        "\(name) \(tuple): token \(y) frequency \(Double(counts[y]) / Double(draws)) vs \(p)")
                }
            }
        }
    }

    /// Larger vocabularies: the tournament's p_I stays a distribution, the scheme stays below the
    /// optimum, and with K = 4 identical drafts it beats single-draft sampling on LM-like laws.
    @Test func tournamentOnLargerVocabulary() throws {
        var gen = CaseGenerator(seed: 11)
        let (q, logits) = gen.languageModelLike(n: 300, temperature: 1)
        let (p, _) = gen.languageModelLike(n: 300, temperature: 1, correlatedWith: logits, noise: 0.7)
        let drafts = [TokenDistribution](repeating: p, count: 4)
        let optimum = OptimalAcceptance.identical(target: q, draft: p, drafts: 4)
        let sd = try SingleDraftScheme().prepare(target: q, drafts: drafts).acceptance
        for s in [1, 5, 15] {
            let prepared = try TruncatedLPScheme(s: s).prepareTruncated(target: q, drafts: drafts)
            #expect(prepared.rule.stages.count == 3)
            #expect(abs(prepared.rule.selectedLaw.reduce(0, +) - 1) < 1e-12)
            #expect(prepared.rule.selectedLaw.allSatisfy { $0 >= 0 })
            #expect(prepared.acceptance <= optimum + 1e-12)
            #expect(prepared.acceptance >= sd - 1e-12)
        }
    }

    @Test func clearErrorsForUnsupportedInput() throws {
        let p = TokenDistribution.uniform(vocabularySize: 50)
        do {
            _ = try OptimalLPScheme().prepare(target: p, drafts: [p, p])
            Issue.record("expected the tuple limit to trip (2500 tuples)")
        } catch let SamplingError.linearProgram(message) {
            #expect(message.contains("optimal-lp supports at most 2000 draft tuples; got 2500"), "\(message)")
        }
        #expect(throws: SamplingError.unsupported(scheme: "truncated-lp", reason: "s must be ≥ 1, got 0")) {
            _ = try TruncatedLPScheme(s: 0).prepare(target: p, drafts: [p, p])
        }
        #expect(throws: SamplingError.noDrafts) { _ = try TruncatedLPScheme(s: 2).prepare(target: p, drafts: []) }
        #expect(throws: SamplingError.noDrafts) { _ = try OptimalLPScheme().prepare(target: p, drafts: []) }
    }
}
