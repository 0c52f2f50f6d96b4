import Testing

@testable import ChorusSampling

/// The optimized `optimal` tables (records sorted in place as the rank tables, ranks found by binary
/// search, packed transfers, one stack pass for T* and S*, the top donor kept in registers) against
/// ``ReferenceQuantileKeys``, the construction as it was before: bit for bit the same p_I, acceptance,
/// optimum, S* and transfer count, and the same outcomes and RNG states for the same seeds — dense
/// and sparse draft laws, zeros in q and p, tied ratios, and K = 1…8. Any difference in the sort
/// order, the arithmetic or the key draws fails it.
@Suite struct OptimalReferenceTests {
    static func expectAgreement(
        target q: TokenDistribution, draft: TokenDistribution, k: Int, draws: Int, seed: UInt64
    ) throws {
        let prepared = OptimalSelection(target: q, draft: draft, drafts: k)  // the tables, K = 1 included
        let viaScheme = try OptimalScheme().prepare(target: q, drafts: Array(repeating: draft, count: k))
        #expect(k == 1 ? viaScheme is SingleDraftSelection : viaScheme is OptimalSelection)
        let reference = ReferenceQuantileKeys(target: q, draft: draft, k: k)
        let context = "n \(q.vocabularySize), support \(draft.support.count), K \(k)"
        #expect(prepared.acceptance.bitPattern == reference.acceptance.bitPattern, "\(context)")
        #expect(prepared.optimum.bitPattern == reference.optimum.bitPattern, "\(context)")
        #expect(prepared.sStarCount == reference.sStar, "\(context)")
        #expect(prepared.transferCount == reference.theta.count, "\(context)")
        let mismatched = (0..<q.vocabularySize).filter {
            prepared.selectedProbability($0).bitPattern != reference.selected($0).bitPattern
        }
        #expect(mismatched.isEmpty, "\(context): p_I differs at \(mismatched.prefix(5))")
        #expect(
            prepared.selectedLaw.map(\.bitPattern) == (0..<q.vocabularySize).map { reference.selected($0).bitPattern })
        var draftRNG = ChorusRandom(seed: seed)
        var fast = ChorusRandom(seed: seed &* 31 &+ 7), slow = fast
        var rejections = 0
        for _ in 0..<draws {
            let drafted = (0..<k).map { _ in draft.sample(using: &draftRNG) }
            let a = prepared.select(drafted, using: &fast)
            let b = reference.select(drafted, using: &slow)
            #expect(a == b, "\(context), drafted \(drafted)")
            #expect(fast == slow, "\(context): the two consumed different draws")
            if !a.accepted { rejections += 1 }
        }
        // Each draw rejects with probability 1 − P*: with 1 − P* > 0.05 and ≥ 200 draws, a run without a
        // rejection has probability < 0.95^200 ≈ 4e-5 (the seeds are fixed, so it cannot flicker).
        if draws >= 200, 1 - prepared.acceptance > 0.05 {
            #expect(rejections > 0, "\(context): the rejection path was not exercised")
        }
    }

    /// Small random laws with exact zeros in q and p, dense and sparse storage, K = 1…8.
    @Test func randomLawsMatchTheReference() throws {
        var gen = CaseGenerator(seed: 2026)
        for trial in 0..<60 {
            let n = gen.int(1...120)
            let q = gen.distribution(n: n, zeroChance: 0.3)
            let p = gen.distribution(n: n, zeroChance: 0.3)
            let draft = trial % 2 == 0 ? p : QuantizedDistribution(quantizing: p, totalBits: 12).distribution
            try Self.expectAgreement(target: q, draft: draft, k: 1 + trial % 8, draws: 200, seed: UInt64(trial))
        }
    }

    /// Tied ratios: p equal to q on part of the vocabulary (ratio exactly 1) and duplicated values, so
    /// the order among equal keys (support order) decides the tables.
    @Test func tiedRatiosMatchTheReference() throws {
        var gen = CaseGenerator(seed: 77)
        for trial in 0..<20 {
            let n = gen.int(2...200)
            let levels = [0.0, 1, 2, 3]
            let w = (0..<n).map { _ in levels[gen.int(0...3)] }
            let v = w.map { gen.int(0...2) == 0 ? levels[gen.int(0...3)] : $0 }
            guard w.contains(where: { $0 > 0 }), v.contains(where: { $0 > 0 }) else { continue }
            let q = try TokenDistribution(weights: w)
            let p = try TokenDistribution(weights: v)
            try Self.expectAgreement(target: q, draft: p, k: 2 + trial % 5, draws: 100, seed: UInt64(trial))
        }
    }

    /// The cell weights `(ā, U^K)` written out for K = 1, 2, 4, 8 against the general loops (r = K / 2^a
    /// odd: a Horner sum of r terms, then a doublings), bit for bit, on random bounds 0 ≤ L ≤ U ≤ 1
    /// (including L = 0, L = U and U = 1) and K = 1…16.
    @Test func cellWeightsMatchTheGeneralLoops() {
        func loops(k: Int, lower l: Double, upper u: Double) -> (Double, Double) {
            var r = k, a = 0
            while r % 2 == 0 {
                r /= 2
                a += 1
            }
            var h = 1.0, lPower = 1.0, uPower = u, lOdd = l
            for _ in 1..<max(r, 1) {
                lPower *= l
                h = u * h + lPower
                uPower *= u
                lOdd *= l
            }
            var mean = h
            for _ in 0..<a {
                mean *= uPower + lOdd
                uPower *= uPower
                lOdd *= lOdd
            }
            return (mean, uPower)
        }
        var rng = ChorusRandom(seed: 5)
        for trial in 0..<4000 {
            let a = rng.nextUnit(), b = rng.nextUnit()
            var (l, u) = (min(a, b), max(a, b))
            if trial % 10 == 0 { l = 0 }
            if trial % 10 == 1 { l = u }
            if trial % 10 == 2 { u = 1 }
            for k in 1...16 {
                let fast = CellWeightFactors(k: k).meanWeightAndPower(lower: l, upper: u)
                let slow = loops(k: k, lower: l, upper: u)
                #expect(fast.mean.bitPattern == slow.0.bitPattern, "K \(k), L \(l), U \(u)")
                #expect(fast.upperPower.bitPattern == slow.1.bitPattern, "K \(k), L \(l), U \(u)")
            }
        }
    }

    /// LM-like laws large enough for every path of the ratio sort (top-digit buckets above and below
    /// the insertion-sort limit), dense and quantized (sparse) drafts.
    @Test(arguments: [(20_000, 4), (6_000, 8), (3_000, 1)])
    func languageModelLikeLawsMatchTheReference(n: Int, k: Int) throws {
        var gen = CaseGenerator(seed: UInt64(n + k))
        let (q, logits) = gen.languageModelLike(n: n, temperature: 1)
        let (p, _) = gen.languageModelLike(n: n, temperature: 1, correlatedWith: logits)
        for draft in [p, QuantizedDistribution(quantizing: p, totalBits: 16).distribution] {
            try Self.expectAgreement(target: q, draft: draft, k: k, draws: 300, seed: UInt64(n))
        }
    }
}
