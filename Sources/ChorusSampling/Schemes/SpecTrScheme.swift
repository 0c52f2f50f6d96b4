import Foundation

/// `spectr`: SpecTr's K-SEQ for K i.i.d. drafts (Sun et al. 2023, "SpecTr: Fast Speculative
/// Decoding via Optimal Transport", arXiv 2310.15141; SAMPLING.md §1).
///
/// With `β(ρ) = Σ_y min(p(y), q(y)/ρ)` and `a(ρ) = 1 − (1 − β(ρ))^K`, ρ* ∈ [1, K] is the root of
/// `a(ρ) − ρ β(ρ)`. Drafts are tested in the order given: accept `X_k` with probability
/// `min(1, q(X_k)/(ρ* p(X_k)))`. If none passes, sample `norm((q − γ · min(p, q/ρ*))+)` with
/// `γ = a(ρ*)/β(ρ*)`. Acceptance `a(ρ*)`. K = 1 gives ρ* = 1, which is plain SD.
///
/// Only identical drafts are supported; `prepare` throws ``SamplingError/unsupported(scheme:reason:)``
/// otherwise.
public struct SpecTrScheme: SelectionScheme {
    public let name = "spectr"

    public init() {}

    public func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection {
        try checkLaws(target: target, drafts: drafts)
        guard drafts.areIdentical else {
            throw SamplingError.unsupported(
                scheme: "spectr",
                reason: "SpecTr needs identical drafts (K i.i.d. draws from one law); "
                    + "use specinfer or weighted-is for non-identical drafts")
        }
        return PreparedSpecTr(target: target, draft: drafts[0], draftCount: drafts.count)
    }
}

/// SpecTr K-SEQ prepared for one position.
///
/// Invariants: `1 ≤ rho ≤ K`, `acceptance = a(rho) ≤ rho · β(rho)` (so the residual is
/// non-negative before clamping), and `residual` is `(q − γ min(p, q/ρ*))+` with total
/// `residualMass ≈ 1 − acceptance`.
public struct PreparedSpecTr: PreparedSelection {
    public let target: TokenDistribution
    public let draft: TokenDistribution
    /// K, the number of i.i.d. drafts the scheme was prepared for.
    public let draftCount: Int
    /// ρ*, the root of `a(ρ) − ρβ(ρ)` on [1, K] (dimensionless, ≥ 1).
    public let rho: Double
    /// `β(ρ*)`: the probability that one draft passes its test.
    public let beta: Double
    /// `a(ρ*) = 1 − (1 − β(ρ*))^K`.
    public let acceptance: Double
    /// residual: [vocabularySize], unnormalised; `residualMass` is its total.
    let residual: [Double]
    let residualMass: Double

    init(target: TokenDistribution, draft: TokenDistribution, draftCount k: Int) {
        self.target = target
        self.draft = draft
        self.draftCount = k
        let rho = Self.solveRho(target: target, draft: draft, drafts: k)
        let beta = Self.beta(target: target, draft: draft, rho: rho)  // direct sum at the root
        let acceptance = 1 - pow(1 - beta, Double(k))
        self.rho = rho
        self.beta = beta
        self.acceptance = acceptance
        // β = 0 means disjoint supports: nothing is ever accepted (a = 0) and the residual is q.
        let gamma = beta > 0 ? acceptance / beta : 0
        var residual = [Double](repeating: 0, count: target.vocabularySize)
        var mass = 0.0
        let targetVector = target.probabilities, draftVector = draft.probabilities
        for y in 0..<target.vocabularySize {
            let q = targetVector[y]
            let r = q - gamma * min(draftVector[y], q / rho)
            // Tiny negatives are rounding (a ≤ ρβ is kept by the bisection): clamp to 0.
            if r > 0 {
                residual[y] = r
                mass += r
            }
        }
        self.residual = residual
        self.residualMass = mass
    }

    /// `β(ρ) = Σ_y min(p(y), q(y)/ρ)` over the draft's support.
    static func beta(target: TokenDistribution, draft: TokenDistribution, rho: Double) -> Double {
        var sum = 0.0
        let q = target.probabilities
        for (i, y) in draft.support.enumerated() { sum += min(draft.probability(atSupportIndex: i), q[y] / rho) }
        return sum
    }

    /// ρ* by bisection on [1, K] of `f(ρ) = a(ρ) − ρβ(ρ)`: `f(1) = a(1) − β(1) ≥ 0` and
    /// `f(K) ≤ 0` (union bound). The upper end of the bracket always has `f ≤ 0`, and that end is
    /// returned, so `a(ρ*) ≤ ρ*β(ρ*)` and the residual stays non-negative. When `f(1) ≤ 0`
    /// (K = 1, p = q, or disjoint supports) ρ* = 1.
    ///
    /// β(ρ) is evaluated in O(log m) from one sort of the draft's support by `r = q/p`:
    /// `β(ρ) = Q(r < ρ)/ρ + P(r ≥ ρ)` (prefix sums of q and suffix sums of p along the order).
    static func solveRho(target: TokenDistribution, draft: TokenDistribution, drafts k: Int) -> Double {
        let beta = BetaFunction(target: target, draft: draft)
        func f(_ rho: Double) -> Double {
            let b = beta(rho)
            return (1 - pow(1 - b, Double(k))) - rho * b
        }
        if k <= 1 || f(1) <= 0 { return 1 }
        var lo = 1.0
        var hi = Double(k)
        for _ in 0..<100 {
            if hi - lo < 1e-15 { break }
            let mid = 0.5 * (lo + hi)
            if f(mid) <= 0 { hi = mid } else { lo = mid }
        }
        return hi
    }

    /// `β(ρ) = Σ_y min(p(y), q(y)/ρ)` as a function of ρ, from the support sorted by `q/p`.
    struct BetaFunction {
        /// ratios: [m + 1] ascending `q/p` (with a +∞ sentinel); prefixQ[j]: q of the first j; suffixP[j]: p from j on.
        let ratios: [Double]
        let prefixQ: [Double]
        let suffixP: [Double]

        init(target: TokenDistribution, draft: TokenDistribution) {
            let q = target.probabilities, p = draft.probabilities
            let order = supportSortedByRatio(q: q, p: p, support: draft.support)
            let m = order.count
            var ratios = [Double](repeating: .infinity, count: m + 1)
            var prefixQ = [Double](repeating: 0, count: m + 1)
            var suffixP = [Double](repeating: 0, count: m + 1)
            for j in 0..<m {
                let t = Int(order[j])
                ratios[j] = q[t] / p[t]
                prefixQ[j + 1] = prefixQ[j] + q[t]
            }
            for j in stride(from: m - 1, through: 0, by: -1) { suffixP[j] = suffixP[j + 1] + p[Int(order[j])] }
            self.ratios = ratios
            self.prefixQ = prefixQ
            self.suffixP = suffixP
        }

        func callAsFunction(_ rho: Double) -> Double {
            // j = number of ratios below ρ (the float32 sort can leave near-ties out of order; the
            // binary search then splits at a point within rounding of the exact one).
            var lo = 0, hi = ratios.count - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if ratios[mid] < rho { lo = mid + 1 } else { hi = mid }
            }
            return prefixQ[lo] / rho + suffixP[lo]
        }
    }

    /// `min(1, q(x)/(ρ* p(x)))`.
    @inline(__always)
    func ratio(_ x: Int) -> Double {
        let px = draft.probabilities[x]
        let qx = target.probabilities[x]
        // A token the draft cannot produce: never drafted, any ratio keeps exactness.
        guard px > 0 else { return qx > 0 ? 1 : 0 }
        return min(1, qx / (rho * px))
    }

    public func select<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> SelectionOutcome {
        for x in drafted {
            let a = ratio(x)
            if a >= 1 || rng.nextUnit() < a {
                return SelectionOutcome(token: x, accepted: true, drafted: drafted)
            }
        }
        // No residual mass (a(ρ*) = 1 up to rounding): the rejection branch has probability ~0;
        // fall back to q so the output is still a valid token.
        let y =
            residualMass > 0
            ? sampleIndex(weights: residual, support: nil, total: residualMass, using: &rng)
            : target.sample(using: &rng)
        return SelectionOutcome(token: y, accepted: false, drafted: drafted)
    }

    public func law(given drafted: [Int]) -> SelectionLaw {
        var output = [Double](repeating: 0, count: target.vocabularySize)
        var accepted = 0.0
        var remaining = 1.0
        for x in drafted {
            let a = ratio(x)
            output[x] += remaining * a
            accepted += remaining * a
            remaining *= 1 - a
            if remaining <= 0 { break }
        }
        if remaining > 0 {
            if residualMass > 0 {
                for y in residual.indices where residual[y] > 0 { output[y] += remaining * residual[y] / residualMass }
            } else {
                for y in target.support { output[y] += remaining * target.probabilities[y] }
            }
        }
        return SelectionLaw(output: output, acceptance: accepted)
    }
}
