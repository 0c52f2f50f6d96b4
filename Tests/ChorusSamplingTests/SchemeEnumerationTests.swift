import Foundation
import Testing

@testable import ChorusSampling

/// Exact enumeration of SpecInfer, SpecTr and weighted importance selection on random small cases
/// (SAMPLING.md §5): every tuple of drafted tokens, weighted by its probability, through the
/// scheme's exact conditional law.
@Suite struct SchemeEnumerationTests {
    static let tol = 1e-12

    /// A random case: n ≤ 6, K ≤ 3, identical or not, zeros in p and q.
    struct Case {
        var q: TokenDistribution
        var drafts: [TokenDistribution]
        var identical: Bool
    }

    static func randomCases(count: Int, seed: UInt64) -> [Case] {
        var gen = CaseGenerator(seed: seed)
        return (0..<count).map { i in
            let n = gen.int(2...6)
            let k = gen.int(1...3)
            let q = gen.distribution(n: n, zeroChance: 0.25)
            // Alternate identical / non-identical so both kinds are always covered.
            let identical = i % 2 == 0
            let first = gen.distribution(n: n, zeroChance: 0.25)
            let drafts =
                identical
                ? Array(repeating: first, count: k)
                : [first] + (1..<k).map { _ in gen.distribution(n: n, zeroChance: 0.25) }
            return Case(q: q, drafts: drafts, identical: identical || k == 1)
        }
    }

    /// Checks shared by every scheme: exact marginal, closed-form acceptance, acceptance only on
    /// drafted tokens, and P(Y ∈ drafts) under the optimum.
    static func checkExact(
        _ prepared: any PreparedSelection, _ c: Case, optimum: Double, label: String
    ) {
        let law = enumerate(prepared, drafts: c.drafts)
        #expect(maxAbsDifference(law.output, c.q.probabilities) < tol, "\(label): marginal is not q")
        #expect(
            abs(law.acceptance - prepared.acceptance) < tol,
            "\(label): enumerated acceptance \(law.acceptance) vs closed form \(prepared.acceptance)")
        #expect(law.acceptance <= law.inDrafts + tol, "\(label): accepted a token that was not drafted")
        #expect(law.inDrafts <= optimum + tol, "\(label): P(Y ∈ drafts) \(law.inDrafts) above optimum \(optimum)")
    }

    @Test func randomCasesAreExact() throws {
        let cases = Self.randomCases(count: 160, seed: 2025)
        var identicalCount = 0
        var nonIdenticalCount = 0
        for (i, c) in cases.enumerated() {
            let k = c.drafts.count
            let optimum = try OptimalAcceptance.nonIdentical(target: c.q, drafts: c.drafts)
            if c.identical {
                identicalCount += 1
                let sorted = OptimalAcceptance.identical(target: c.q, draft: c.drafts[0], drafts: k)
                #expect(abs(sorted - optimum) < Self.tol, "case \(i): brute force \(optimum) vs sorted \(sorted)")
            } else {
                nonIdenticalCount += 1
            }

            let specInfer = try SpecInferScheme().prepare(target: c.q, drafts: c.drafts)
            Self.checkExact(specInfer, c, optimum: optimum, label: "case \(i) specinfer")
            // Closed form computed independently: 1 − Π_k (1 − Σ min(q_k, p_k)).
            var qk = c.q.probabilities
            var allRejected = 1.0
            for d in c.drafts {
                let overlap = zip(qk, d.probabilities).map { min($0, $1) }.reduce(0, +)
                allRejected *= 1 - overlap
                let residual = zip(qk, d.probabilities).map { max($0 - $1, 0) }
                let mass = residual.reduce(0, +)
                if mass <= 0 { break }
                qk = residual.map { $0 / mass }
            }
            #expect(abs(specInfer.acceptance - (1 - allRejected)) < Self.tol, "case \(i) specinfer formula")

            for levels in [0, 1, 4] {
                let prepared = try WeightedImportanceScheme(levels: levels).prepare(target: c.q, drafts: c.drafts)
                Self.checkExact(prepared, c, optimum: optimum, label: "case \(i) weighted-is L=\(levels)")
                let rule = try #require(prepared as? CanonicalSelection<WeightedImportanceRule>).rule
                #expect(abs(rule.selectedLaw.reduce(0, +) - 1) < Self.tol, "case \(i): Σ p_I ≠ 1")
                // p_I against the law of the selected token, enumerated over every draft tuple.
                var enumerated = [Double](repeating: 0, count: c.q.vocabularySize)
                for tuple in allTuples(n: c.q.vocabularySize, k: k) {
                    var weight = 1.0
                    for (j, x) in tuple.enumerated() { weight *= c.drafts[j][x] }
                    if weight == 0 { continue }
                    for (z, beta) in rule.selectionProbabilities(tuple) { enumerated[z] += weight * beta }
                }
                #expect(maxAbsDifference(enumerated, rule.selectedLaw) < Self.tol, "case \(i) L=\(levels): p_I")
                let closedForm = zip(c.q.probabilities, rule.selectedLaw).map { min($0, $1) }.reduce(0, +)
                #expect(abs(prepared.acceptance - closedForm) < Self.tol)
            }

            if c.identical {
                let prepared = try SpecTrScheme().prepare(target: c.q, drafts: c.drafts)
                Self.checkExact(prepared, c, optimum: optimum, label: "case \(i) spectr")
                let specTr = try #require(prepared as? PreparedSpecTr)
                #expect(specTr.rho >= 1 && specTr.rho <= Double(k))
                let beta = zip(c.drafts[0].probabilities, c.q.probabilities)
                    .map { min($0, $1 / specTr.rho) }.reduce(0, +)
                let a = 1 - pow(1 - beta, Double(k))
                #expect(abs(specTr.acceptance - a) < Self.tol, "case \(i): spectr acceptance is not a(ρ*)")
                #expect(a <= specTr.rho * beta + Self.tol, "case \(i): a(ρ*) > ρ*β(ρ*)")
                // The root: a(ρ*) = ρ*β(ρ*) unless ρ* = 1 (where a(1) ≤ β(1) forces equality too).
                #expect(abs(a - specTr.rho * beta) < 1e-9, "case \(i): ρ* is not a root")
            } else {
                #expect(throws: SamplingError.self) { try SpecTrScheme().prepare(target: c.q, drafts: c.drafts) }
            }
        }
        #expect(identicalCount >= 50 && nonIdenticalCount >= 50)
    }

    @Test func specTrRejectsNonIdenticalDraftsWithReason() throws {
        let q = try TokenDistribution(probabilities: [0.5, 0.5])
        let p1 = try TokenDistribution(probabilities: [0.9, 0.1])
        let p2 = try TokenDistribution(probabilities: [0.2, 0.8])
        do {
            _ = try SpecTrScheme().prepare(target: q, drafts: [p1, p2])
            Issue.record("SpecTr accepted non-identical drafts")
        } catch let SamplingError.unsupported(scheme, reason) {
            #expect(scheme == "spectr")
            #expect(reason.contains("identical"))
        }
    }

    @Test func specTrWithOneDraftIsSingleDraft() throws {
        var gen = CaseGenerator(seed: 11)
        for _ in 0..<30 {
            let n = gen.int(2...6)
            let q = gen.distribution(n: n), p = gen.distribution(n: n)
            let specTr = try #require(try SpecTrScheme().prepare(target: q, drafts: [p]) as? PreparedSpecTr)
            let sd = try SingleDraftScheme().prepare(target: q, drafts: [p])
            #expect(specTr.rho == 1)
            #expect(abs(specTr.acceptance - sd.acceptance) < Self.tol)
            for x in 0..<n where p[x] > 0 {
                #expect(maxAbsDifference(specTr.law(given: [x]).output, sd.law(given: [x]).output) < Self.tol)
            }
        }
    }

    /// Degenerate residuals: a stage with `q_k = p_k` has no residual mass and must accept with
    /// ratio 1 (no 0/0); disjoint supports accept nothing.
    @Test func degenerateResiduals() throws {
        let p = try TokenDistribution(probabilities: [0.5, 0.25, 0.25, 0])
        let other = try TokenDistribution(probabilities: [0, 0.1, 0.2, 0.7])
        // q = p_1: SpecInfer accepts the first draft with certainty whatever follows; with
        // identical drafts weighted-is gives every token weight 1, so p_I = p = q as well.
        for drafts in [[p, other], [p, p, p], [p]] {
            var schemes: [any SelectionScheme] = [SpecInferScheme()]
            if drafts.areIdentical { schemes += [WeightedImportanceScheme(), SpecTrScheme()] }
            for scheme in schemes {
                let prepared = try scheme.prepare(target: p, drafts: drafts)
                #expect(abs(prepared.acceptance - 1) < Self.tol, "\(scheme.name)")
                let law = enumerate(prepared, drafts: drafts)
                #expect(maxAbsDifference(law.output, p.probabilities) < Self.tol)
                #expect(abs(law.acceptance - 1) < Self.tol, "\(scheme.name)")
            }
        }
        // The second stage's residual target q_2 = norm((q − p_1)+) can hit zero mass too:
        // q = (p_1 + p_2)/2 with disjoint p_1, p_2 gives q_2 = p_2 exactly.
        let left = try TokenDistribution(probabilities: [0.5, 0.5, 0, 0])
        let right = try TokenDistribution(probabilities: [0, 0, 0.25, 0.75])
        let mixed = try TokenDistribution(probabilities: [0.25, 0.25, 0.125, 0.375])
        let chained = try SpecInferScheme().prepare(target: mixed, drafts: [left, right, left])
        #expect(chained.acceptance == 1)
        let chainedLaw = enumerate(chained, drafts: [left, right, left])
        #expect(maxAbsDifference(chainedLaw.output, mixed.probabilities) < Self.tol)
        #expect(abs(chainedLaw.acceptance - 1) < Self.tol)
        // Disjoint supports: nothing can be accepted.
        let q = try TokenDistribution(probabilities: [0, 0, 0, 1])
        let disjoint = try TokenDistribution(probabilities: [0.5, 0.5, 0, 0])
        for scheme in [SpecInferScheme() as any SelectionScheme, SpecTrScheme(), WeightedImportanceScheme()] {
            let prepared = try scheme.prepare(target: q, drafts: [disjoint, disjoint])
            #expect(prepared.acceptance == 0, "\(scheme.name)")
            let law = enumerate(prepared, drafts: [disjoint, disjoint])
            #expect(maxAbsDifference(law.output, q.probabilities) < Self.tol, "\(scheme.name)")
        }
        // p = q with SpecTr: ρ* = 1, acceptance 1, empty residual.
        let specTr = try #require(try SpecTrScheme().prepare(target: p, drafts: [p, p]) as? PreparedSpecTr)
        #expect(specTr.rho == 1)
        #expect(abs(specTr.acceptance - 1) < Self.tol)
    }

    /// With L = 0 every weight is 1: a uniformly random draft is selected, so `p_I` is the mean of
    /// the draft laws.
    @Test func weightedImportanceWithOneLevelSelectsUniformly() throws {
        var gen = CaseGenerator(seed: 5)
        for _ in 0..<20 {
            let n = gen.int(2...8)
            let q = gen.distribution(n: n)
            let drafts = (0..<3).map { _ in gen.distribution(n: n) }
            let prepared = try WeightedImportanceScheme(levels: 0).prepare(target: q, drafts: drafts)
            let rule = try #require(prepared as? CanonicalSelection<WeightedImportanceRule>).rule
            let mean = (0..<n).map { y in drafts.map { $0[y] }.reduce(0, +) / 3 }
            #expect(maxAbsDifference(rule.selectedLaw, mean) < Self.tol)
        }
        #expect(throws: SamplingError.self) {
            try WeightedImportanceScheme(levels: -1).prepare(
                target: .uniform(vocabularySize: 2), drafts: [.uniform(vocabularySize: 2)])
        }
    }

    /// `p_I` at K = 8 (the largest state space of the default design) still sums to 1.
    @Test func weightedImportanceLargeKSumsToOne() throws {
        var gen = CaseGenerator(seed: 8)
        let n = 40
        let q = gen.languageModelLike(n: n, temperature: 1).distribution
        let drafts = (0..<8).map { _ in gen.distribution(n: n, zeroChance: 0.1) }
        for ds in [drafts, Array(repeating: drafts[0], count: 8)] {
            let prepared = try WeightedImportanceScheme().prepare(target: q, drafts: ds)
            let rule = try #require(prepared as? CanonicalSelection<WeightedImportanceRule>).rule
            #expect(abs(rule.selectedLaw.reduce(0, +) - 1) < Self.tol)
            #expect(rule.selectedLaw.allSatisfy { $0 >= 0 })
        }
    }

    /// The non-identical brute force against an independent plain enumeration of all 2^n sets.
    @Test func nonIdenticalOptimumMatchesPlainEnumeration() throws {
        var gen = CaseGenerator(seed: 13)
        for _ in 0..<60 {
            let n = gen.int(1...9)
            let k = gen.int(1...4)
            let q = gen.distribution(n: n, zeroChance: 0.3)
            let drafts = (0..<k).map { _ in gen.distribution(n: n, zeroChance: 0.3) }
            var best = 0.0
            for mask in 0..<(1 << n) {
                var qs = 0.0
                var product = 1.0
                for y in 0..<n where mask & (1 << y) != 0 { qs += q[y] }
                for d in drafts {
                    var ps = 0.0
                    for y in 0..<n where mask & (1 << y) != 0 { ps += d[y] }
                    product *= ps
                }
                best = min(best, qs - product)
            }
            let fast = try OptimalAcceptance.nonIdentical(target: q, drafts: drafts)
            #expect(abs(fast - (1 + best)) < Self.tol)
        }
        let big = TokenDistribution.uniform(vocabularySize: 25)
        #expect(throws: SamplingError.self) { try OptimalAcceptance.nonIdentical(target: big, drafts: [big]) }
    }

    /// Theorem 2 (K = 2) and its K-draft form: certainty iff the identical optimum is 1.
    @Test func acceptsWithCertaintyAgreesWithOptimum() throws {
        var gen = CaseGenerator(seed: 99)
        var certainCount = 0
        for i in 0..<200 {
            let n = gen.int(2...7)
            let k = gen.int(1...3)
            let p = gen.distribution(n: n, zeroChance: 0.2)
            let q: TokenDistribution
            switch i % 4 {
            case 0: q = gen.distribution(n: n, zeroChance: 0.2)
            case 1: q = p  // p(S) ≥ p(S)^K: always certain
            default:
                // q = law of the smallest of K' ≤ K i.i.d. draws from p: q(S) ≥ P(all draws in S)
                // = p(S)^K' ≥ p(S)^K, so acceptance is certain.
                let draws = gen.int(1...k)
                var tail = 1.0
                var probabilities = [Double](repeating: 0, count: n)
                for y in 0..<n {
                    let next = tail - p[y]
                    probabilities[y] = max(0, pow(max(tail, 0), Double(draws)) - pow(max(next, 0), Double(draws)))
                    tail = next
                }
                q = try TokenDistribution(weights: probabilities)
            }
            let optimum = OptimalAcceptance.identical(target: q, draft: p, drafts: k)
            let certain = OptimalAcceptance.acceptsWithCertainty(target: q, draft: p, drafts: k)
            #expect(certain == (optimum >= 1 - 1e-12), "case \(i): certain \(certain), optimum \(optimum)")
            if i % 4 != 0 { #expect(certain, "case \(i): constructed certain case rejected") }
            if certain { certainCount += 1 }
            let brute = try OptimalAcceptance.nonIdentical(target: q, drafts: Array(repeating: p, count: k))
            #expect(abs(brute - optimum) < Self.tol)
        }
        #expect(certainCount >= 150)
    }
}
