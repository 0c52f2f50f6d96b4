import Foundation

@testable import ChorusSampling

/// Exact enumeration of a token-level scheme (SAMPLING.md §5): sum the scheme's exact conditional
/// law over every tuple of drafted tokens, weighted by its probability under independent drafts.
struct EnumeratedLaw {
    /// output: [n], `P(Y = y)`.
    var output: [Double]
    /// `P(accepted)`.
    var acceptance: Double
    /// `P(Y ∈ {X_1..X_K})`.
    var inDrafts: Double
}

/// Every tuple in `0..<n` of length k (n^k of them), in lexicographic order.
func allTuples(n: Int, k: Int) -> [[Int]] {
    var result: [[Int]] = [[]]
    for _ in 0..<k { result = result.flatMap { t in (0..<n).map { t + [$0] } } }
    return result
}

func enumerate(_ prepared: any PreparedSelection, drafts: [TokenDistribution]) -> EnumeratedLaw {
    let n = drafts[0].vocabularySize
    var law = EnumeratedLaw(output: [Double](repeating: 0, count: n), acceptance: 0, inDrafts: 0)
    for tuple in allTuples(n: n, k: drafts.count) {
        var weight = 1.0
        for (k, x) in tuple.enumerated() { weight *= drafts[k][x] }
        if weight == 0 { continue }
        let conditional = prepared.law(given: tuple)
        law.acceptance += weight * conditional.acceptance
        for y in 0..<n {
            law.output[y] += weight * conditional.output[y]
            if tuple.contains(y) { law.inDrafts += weight * conditional.output[y] }
        }
    }
    return law
}

func maxAbsDifference(_ a: [Double], _ b: [Double]) -> Double {
    zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// Random test cases: distributions over n tokens, some with exact zeros, from a seeded generator.
struct CaseGenerator {
    var rng: ChorusRandom

    init(seed: UInt64) { rng = ChorusRandom(seed: seed) }

    /// A random distribution; with probability `zeroChance` each entry is forced to zero
    /// (at least one entry stays positive).
    mutating func distribution(n: Int, zeroChance: Double = 0.2) -> TokenDistribution {
        var w = (0..<n).map { _ in rng.nextUnit() < zeroChance ? 0 : -log(1 - rng.nextUnit()) }
        if w.allSatisfy({ $0 == 0 }) { w[Int(rng.next() % UInt64(n))] = 1 }
        return try! TokenDistribution(weights: w)
    }

    /// Softmax of Gaussian logits at a temperature: LM-like, heavy-headed distributions.
    mutating func languageModelLike(
        n: Int, temperature: Double, correlatedWith base: [Double]? = nil,
        noise: Double = 1
    ) -> (distribution: TokenDistribution, logits: [Double]) {
        var logits = [Double](repeating: 0, count: n)
        for i in 0..<n {
            let g = gaussian() * 2
            logits[i] = base.map { $0[i] + noise * gaussian() } ?? g
        }
        let d = try! TokenDistribution(logits: logits, settings: .init(temperature: temperature))
        return (d, logits)
    }

    mutating func gaussian() -> Double {
        let u1 = max(rng.nextUnit(), 1e-300), u2 = rng.nextUnit()
        return sqrt(-2 * log(u1)) * cos(2 * .pi * u2)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(rng.next() % UInt64(range.count))
    }
}

/// Draws tokens from a fixed law in O(log n) (a cumulative table and binary search), consuming one
/// uniform per draw like `TokenDistribution.sample`, for Monte Carlo tests at larger n.
struct CumulativeSampler {
    let cumulative: [Double]
    let law: TokenDistribution

    init(_ law: TokenDistribution) {
        self.law = law
        var acc = 0.0
        cumulative = law.probabilities.map {
            acc += $0; return acc
        }
    }

    func sample<R: RandomNumberGenerator>(using rng: inout R) -> Int {
        let u = rng.nextUnit() * cumulative[cumulative.count - 1]
        var lo = 0, hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] > u { hi = mid } else { lo = mid + 1 }
        }
        // Skip zero-probability entries that share the cumulative value.
        while law[lo] == 0, lo + 1 < cumulative.count { lo += 1 }
        return lo
    }
}
