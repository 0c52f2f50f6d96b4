import Foundation

/// `weighted-is`: weighted importance selection followed by SD against the exact `p_I`
/// (SAMPLING.md §1, "Weighted importance sampling"; Khisti et al. 2025, arXiv 2410.18234).
///
/// Step 1 picks one draft index i with probability `w(X_i) / Σ_j w(X_j)` (multiplicity counts: a
/// token drafted twice has twice the weight). Step 2 is ``CanonicalSelection``: SD of the selected
/// token against `q` with draft law `p_I`, the exact law of the selected token. Exact for any
/// weights; the weights only change the acceptance `Σ_y min(q(y), p_I(y))`.
///
/// **Weights.** With `p̄` the mean of the draft laws, token y gets the level
/// `b(y) = clamp(round(log2(q(y)/p̄(y))), −L, L)` and weight `w(y) = 2^b(y)` (`q = 0` gives −L;
/// tokens with `p̄ = 0` are never drafted and get level 0). L is ``levels`` (default 4: nine
/// weights from 1/16 to 16). Favouring tokens the target likes more than the drafts do moves
/// `p_I` towards `q`.
///
/// **Exact `p_I` without enumerating draft tuples.**
/// `p_I(y) = Σ_k p_k(y) · w(y) · E[1 / (w(y) + Σ_{j≠k} w(X_j))]`, and the sum over the other
/// drafts depends only on how many of them fall in each weight level. A dynamic programme over
/// the other K − 1 drafts carries the law of those level counts (at most C(K − 1 + 2L, 2L) count
/// vectors, 6435 for K = 8 and L = 4; vectors with the same total weight are merged since the
/// expectation only sees the total, so there are also at most (K − 1)·4^L + 1 states).
/// Cost O(n·K + K² · states · (2L + 1)); identical drafts share one programme. The same
/// construction is exact for any weight function with finitely many distinct values.
public struct WeightedImportanceScheme: SelectionScheme {
    public let name = "weighted-is"
    /// L: weights are `2^b` for integer `b ∈ −L...L`. Supported range 0...16 (0 selects a draft
    /// uniformly at random).
    public let levels: Int

    public static let supportedLevels = 0...16

    public init(levels: Int = 4) {
        self.levels = levels
    }

    public func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection {
        try checkLaws(target: target, drafts: drafts)
        guard Self.supportedLevels.contains(levels) else {
            throw SamplingError.unsupported(
                scheme: name,
                reason: "levels must be in \(Self.supportedLevels.lowerBound)...\(Self.supportedLevels.upperBound), "
                    + "got \(levels)")
        }
        let rule = WeightedImportanceRule(target: target, drafts: drafts, levels: levels)
        return CanonicalSelection(rule: rule, target: target)
    }
}

/// The selection rule of ``WeightedImportanceScheme`` with its exact selected-token law.
///
/// Invariants: `tokenLevel[y] ∈ −levels...levels`, `weight[y] = 2^tokenLevel[y]`, and
/// `selectedLaw` sums to 1 (up to rounding) and is the exact law of ``choose(_:using:)`` when
/// `X_k ~ drafts[k]` independently.
public struct WeightedImportanceRule: SelectionRule {
    /// L, as in ``WeightedImportanceScheme/levels``.
    public let levels: Int
    /// tokenLevel: [vocabularySize], the weight level b(y).
    public let tokenLevel: [Int]
    /// weight: [vocabularySize], `w(y) = 2^b(y)`.
    public let weight: [Double]
    /// selectedLaw: [vocabularySize], `p_I`.
    public let selectedLaw: [Double]

    public init(target: TokenDistribution, drafts: [TokenDistribution], levels: Int) {
        let n = target.vocabularySize
        let k = drafts.count
        let levelCount = 2 * levels + 1
        self.levels = levels

        // Levels from q / p̄: b = nearest integer to log2(q/p̄), read off the binary exponent and
        // significand of the ratio (x = m·2^e, m ∈ [1, 2): b = e, or e + 1 when m ≥ √2). Any
        // deterministic level assignment keeps the scheme exact; this one costs no logarithm.
        let identical = drafts.areIdentical
        let meanScale = 1 / Double(max(k, 1))
        var tokenLevel = [Int](repeating: 0, count: n)
        var weight = [Double](repeating: 0, count: n)
        let levelWeight = (0..<levelCount).map { exp2(Double($0 - levels)) }
        let vectors = (identical ? [drafts[0]] : drafts).map(\.probabilities)
        target.probabilities.withUnsafeBufferPointer { q in
            tokenLevel.withUnsafeMutableBufferPointer { level in
                weight.withUnsafeMutableBufferPointer { w in
                    for y in 0..<n {
                        var mean = 0.0
                        if identical {
                            mean = vectors[0][y]
                        } else {
                            for d in vectors { mean += d[y] }
                            mean *= meanScale
                        }
                        var b = 0
                        if mean > 0 {
                            if q[y] > 0 {
                                let ratio = q[y] / mean
                                b =
                                    ratio.significand >= 2.0.squareRoot()
                                    ? Int(ratio.exponent) + 1 : Int(ratio.exponent)
                                b = min(levels, max(-levels, b))
                            } else {
                                b = -levels
                            }
                        }
                        level[y] = b
                        w[y] = levelWeight[b + levels]
                    }
                }
            }
        }
        self.tokenLevel = tokenLevel
        self.weight = weight

        // levelMass[j][l] = P(X_j has level l).
        let levelMass: [[Double]] = (identical ? [drafts[0]] : drafts).map { d in
            var mass = [Double](repeating: 0, count: levelCount)
            for (i, y) in d.support.enumerated() { mass[tokenLevel[y] + levels] += d.probability(atSupportIndex: i) }
            return mass
        }

        // inverseMean[k][l] = E[1 / (w_l + Σ_{j≠k} w(X_j))].
        var inverseMean: [[Double]]
        if identical {
            let shared = Self.inverseMeans(
                others: Array(repeating: levelMass.first ?? [], count: max(k - 1, 0)), levelWeight: levelWeight)
            inverseMean = Array(repeating: shared, count: k)
        } else {
            inverseMean = []
            for i in 0..<k {
                var others = levelMass
                others.remove(at: i)
                inverseMean.append(Self.inverseMeans(others: others, levelWeight: levelWeight))
            }
        }

        var law = [Double](repeating: 0, count: n)
        if identical {
            // K identical terms: p_I(y) = K p(y) w(y) E[1/(w(y) + S)].
            let factor = inverseMean[0].enumerated().map { Double(k) * levelWeight[$0.offset] * $0.element }
            let p = drafts[0].probabilities
            for y in drafts[0].support { law[y] = p[y] * factor[tokenLevel[y] + levels] }
        } else {
            for (i, d) in drafts.enumerated() {
                for (index, y) in d.support.enumerated() {
                    let l = tokenLevel[y] + levels
                    law[y] += d.probability(atSupportIndex: index) * levelWeight[l] * inverseMean[i][l]
                }
            }
        }
        self.selectedLaw = law
    }

    /// `E[1 / (w_l + S)]` for every level l, where S is the total weight of independent drafts
    /// whose level laws are `others: [K−1][2L+1]`.
    ///
    /// The programme's state is the vector of level counts, encoded as its total weight in units
    /// of `2^−L` (an exact integer): count vectors with equal totals are merged, which is exact
    /// because the expectation depends on the total only.
    static func inverseMeans(others: [[Double]], levelWeight: [Double]) -> [Double] {
        let levelCount = levelWeight.count
        // Integer weight of level l in units of 2^−L: 2^l.
        let unit = (0..<levelCount).map { 1 << $0 }
        // States in insertion order (arrays, so the summation order and hence every bit of the
        // result is the same in every process; a dictionary only maps a total to its index).
        var totals: [Int] = [0]
        var probabilities: [Double] = [1]
        // Totals are integers below (K − 1)·2^(2L) + 1: index them densely when that is small
        // (the usual case), else by a dictionary.
        let maxTotal = others.count * (unit.last ?? 1)
        let dense = maxTotal < 1 << 20
        var slot = dense ? [Int](repeating: -1, count: maxTotal + 1) : []
        for mass in others {
            var nextTotals: [Int] = []
            var nextProbabilities: [Double] = []
            var index: [Int: Int] = [:]
            for (total, probability) in zip(totals, probabilities) {
                for l in 0..<levelCount where mass[l] > 0 {
                    let t = total + unit[l]
                    let existing = dense ? (slot[t] >= 0 ? slot[t] : nil) : index[t]
                    if let i = existing {
                        nextProbabilities[i] += probability * mass[l]
                    } else {
                        if dense { slot[t] = nextTotals.count } else { index[t] = nextTotals.count }
                        nextTotals.append(t)
                        nextProbabilities.append(probability * mass[l])
                    }
                }
            }
            if dense { for t in nextTotals { slot[t] = -1 } }
            totals = nextTotals
            probabilities = nextProbabilities
        }
        let scale = levelWeight[0]  // 2^−L
        var result = [Double](repeating: 0, count: levelCount)
        for l in 0..<levelCount {
            var sum = 0.0
            for (total, probability) in zip(totals, probabilities) {
                sum += probability / (levelWeight[l] + Double(total) * scale)
            }
            result[l] = sum
        }
        return result
    }

    public func choose<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> Int {
        var total = 0.0
        for x in drafted { total += weight[x] }
        let u = rng.nextUnit() * total
        var acc = 0.0
        for x in drafted {
            acc += weight[x]
            if u < acc { return x }
        }
        return drafted[drafted.count - 1]
    }

    public func selectionProbabilities(_ drafted: [Int]) -> [(token: Int, probability: Double)] {
        var total = 0.0
        for x in drafted { total += weight[x] }
        var result: [(token: Int, probability: Double)] = []
        for x in drafted {
            if let i = result.firstIndex(where: { $0.token == x }) {
                result[i].probability += weight[x] / total
            } else {
                result.append((x, weight[x] / total))
            }
        }
        return result
    }
}
