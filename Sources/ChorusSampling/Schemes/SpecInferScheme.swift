import Foundation

/// `specinfer`: recursive rejection sampling over the drafts (Miao et al. 2023, "SpecInfer",
/// arXiv 2305.09781; SAMPLING.md §1).
///
/// `q_1 = q`. For k = 1..K: accept `X_k` with probability `min(1, q_k(X_k)/p_k(X_k))`; otherwise
/// continue with `q_{k+1} = norm((q_k − p_k)+)`. If every draft is rejected, sample `q_{K+1}`.
/// Exact for identical and non-identical drafts. Acceptance
/// `1 − Π_k (1 − Σ_y min(q_k(y), p_k(y)))`.
///
/// **Order**: drafts are tested in the order they are given (`drafts[0]` first). With
/// non-identical drafts the acceptance depends on that order; callers that want a different order
/// permute the drafts (and the drafted tokens) themselves.
public struct SpecInferScheme: SelectionScheme {
    public let name = "specinfer"

    public init() {}

    public func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection {
        try checkLaws(target: target, drafts: drafts)
        return PreparedSpecInfer(target: target, drafts: drafts)
    }
}

/// SpecInfer prepared for one position: the chain of residual targets `q_1..q_{J}`.
///
/// Invariant: `stageWeights[k] · stageScale[k]` is `q_{k+1}` (0-based), a probability vector over
/// the vocabulary; the weights are kept unnormalised (`(q_k − p_k)+`) so that each stage costs one
/// pass. The chain stops early at the first stage whose residual mass is 0 (`q_k = p_k`): that
/// stage accepts with certainty, so later stages are never reached and are not built.
public struct PreparedSpecInfer: PreparedSelection {
    public let target: TokenDistribution
    /// The draft laws in test order: [K].
    public let drafts: [TokenDistribution]
    /// stageWeights: [J][vocabularySize], J ≤ K + 1; `stageWeights[0]` is `q`.
    let stageWeights: [[Double]]
    /// stageScale[k] = 1 / (total of stageWeights[k]); stageMass[k] = that total.
    let stageScale: [Double]
    let stageMass: [Double]
    /// rejectionMass: [J'], `Σ_y (q_k(y) − p_k(y))+ = 1 − Σ_y min(q_k, p_k)` for each built stage
    /// that has a draft (k < K); a stage with mass 0 accepts with ratio 1 (no division by zero).
    let rejectionMass: [Double]
    public let acceptance: Double

    init(target: TokenDistribution, drafts: [TokenDistribution]) {
        self.target = target
        self.drafts = drafts
        let n = target.vocabularySize
        var stages: [[Double]] = [target.probabilities]
        var scales = [1.0]
        var totals = [1.0]
        var masses: [Double] = []
        var allRejected = 1.0
        for draft in drafts {
            guard let current = stages.last, let scale = scales.last else { break }
            var mass = 0.0
            // One pass: (q_k − p_k)+ with q_k = current · scale, and its total.
            let residual = [Double](unsafeUninitializedCapacity: n) { buffer, count in
                current.withUnsafeBufferPointer { c in
                    draft.probabilities.withUnsafeBufferPointer { p in
                        for y in 0..<n {
                            let r = max(c[y] * scale - p[y], 0)
                            buffer[y] = r
                            mass += r
                        }
                    }
                }
                count = n
            }
            masses.append(mass)
            allRejected *= mass
            if mass <= 0 { break }
            stages.append(residual)
            scales.append(1 / mass)
            totals.append(mass)
        }
        self.stageWeights = stages
        self.stageScale = scales
        self.stageMass = totals
        self.rejectionMass = masses
        self.acceptance = 1 - allRejected
    }

    /// Acceptance ratio of stage k for token x: `min(1, q_k(x)/p_k(x))`; 1 when the stage has no
    /// residual mass (then `q_k = p_k` and rounding must not cause a rejection).
    @inline(__always)
    func ratio(stage k: Int, token x: Int) -> Double {
        if rejectionMass[k] <= 0 { return 1 }
        let qx = stageWeights[k][x] * stageScale[k]
        let px = drafts[k].probabilities[x]
        // A token the draft cannot produce: never drafted, any ratio keeps exactness.
        guard px > 0 else { return qx > 0 ? 1 : 0 }
        return min(1, qx / px)
    }

    public func select<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> SelectionOutcome {
        let tested = min(drafted.count, rejectionMass.count)
        for k in 0..<tested {
            let x = drafted[k]
            let a = ratio(stage: k, token: x)
            if a >= 1 || rng.nextUnit() < a {
                return SelectionOutcome(token: x, accepted: true, drafted: drafted)
            }
        }
        // Every tested stage had positive mass (a zero-mass stage accepts), so q_{tested+1} was
        // built; it is q_{K+1} when all K drafted tokens were given.
        let y = sampleIndex(weights: stageWeights[tested], support: nil, total: stageMass[tested], using: &rng)
        return SelectionOutcome(token: y, accepted: false, drafted: drafted)
    }

    public func law(given drafted: [Int]) -> SelectionLaw {
        var output = [Double](repeating: 0, count: target.vocabularySize)
        var accepted = 0.0
        var remaining = 1.0
        let tested = min(drafted.count, rejectionMass.count)
        for k in 0..<tested {
            let x = drafted[k]
            let a = ratio(stage: k, token: x)
            output[x] += remaining * a
            accepted += remaining * a
            remaining *= 1 - a
            if remaining <= 0 { break }
        }
        if remaining > 0 {
            let last = stageWeights[tested], scale = stageScale[tested]
            for y in last.indices where last[y] > 0 { output[y] += remaining * last[y] * scale }
        }
        return SelectionLaw(output: output, acceptance: accepted)
    }
}
