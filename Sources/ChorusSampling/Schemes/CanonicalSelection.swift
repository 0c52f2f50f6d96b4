/// Step 1 of the canonical decomposition (Khisti et al. 2025, Theorem 1): a *selection rule* picks
/// one of the drafted tokens; its law over all draft outcomes is `p_I`.
public protocol SelectionRule: Sendable {
    /// selectedLaw: [vocabularySize], `p_I(y) = Σ_x P(x) β_y(x)`, computed exactly.
    var selectedLaw: [Double] { get }
    /// Pick the intermediate token Z among `drafted` with the rule's probabilities.
    func choose<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> Int
    /// `β(drafted)`: the probability of selecting each distinct drafted token (sums to 1).
    func selectionProbabilities(_ drafted: [Int]) -> [(token: Int, probability: Double)]
}

/// The canonical two-step scheme: select Z with a rule, then single-draft speculative sampling of Z
/// against `q` with draft law `p_I` — not `p` (SAMPLING.md §1). Exact for every rule; its acceptance
/// is `Σ_y min(q(y), p_I(y))`.
public struct CanonicalSelection<Rule: SelectionRule>: PreparedSelection {
    public let rule: Rule
    public let target: TokenDistribution
    /// residual: [vocabularySize], `(q − p_I)+`, unnormalised; `residualMass` is its total.
    let residual: [Double]
    let residualMass: Double
    public let acceptance: Double

    public init(rule: Rule, target: TokenDistribution) {
        self.rule = rule
        self.target = target
        let pI = rule.selectedLaw
        let n = target.vocabularySize
        var mass = 0.0
        var acceptance = 0.0
        // One branch-free pass: min(q, p_I) and (q − p_I)+.
        let residual = [Double](unsafeUninitializedCapacity: n) { buffer, count in
            target.probabilities.withUnsafeBufferPointer { q in
                pI.withUnsafeBufferPointer { x in
                    for y in 0..<n {
                        let r = max(q[y] - x[y], 0)
                        buffer[y] = r
                        mass += r
                        acceptance += min(q[y], x[y])
                    }
                }
            }
            count = n
        }
        self.residual = residual
        self.residualMass = mass
        self.acceptance = acceptance
    }

    /// `min(1, q(z) / p_I(z))`.
    @inline(__always)
    func acceptanceRatio(_ z: Int) -> Double {
        let pz = rule.selectedLaw[z]
        guard pz > 0 else { return 1 }
        return min(1, target.probabilities[z] / pz)
    }

    public func select<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> SelectionOutcome {
        let z = rule.choose(drafted, using: &rng)
        let u = rng.nextUnit()
        // With no residual mass p_I = q, so the ratio is 1 up to rounding: accept.
        if u < acceptanceRatio(z) || residualMass <= 0 {
            return SelectionOutcome(token: z, accepted: true, drafted: drafted)
        }
        let y = sampleIndex(weights: residual, support: nil, total: residualMass, using: &rng)
        return SelectionOutcome(token: y, accepted: false, drafted: drafted)
    }

    public func law(given drafted: [Int]) -> SelectionLaw {
        var output = [Double](repeating: 0, count: target.vocabularySize)
        var accept = 0.0
        for (z, beta) in rule.selectionProbabilities(drafted) where beta > 0 {
            let a = residualMass <= 0 ? 1 : acceptanceRatio(z)
            output[z] += beta * a
            accept += beta * a
            let reject = beta * (1 - a)
            if reject > 0 {
                for y in 0..<output.count where residual[y] > 0 { output[y] += reject * residual[y] / residualMass }
            }
        }
        return SelectionLaw(output: output, acceptance: accept)
    }
}

/// Rule of plain speculative sampling: always the first draft, so `p_I = p_1`.
public struct FirstDraftRule: SelectionRule {
    public let selectedLaw: [Double]
    public init(draft: TokenDistribution) { selectedLaw = draft.probabilities }
    public func choose<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> Int { drafted[0] }
    public func selectionProbabilities(_ drafted: [Int]) -> [(token: Int, probability: Double)] {
        [(drafted[0], 1)]
    }
}

/// `sd`: single-draft speculative sampling (Leviathan et al. 2023; Chen et al. 2023) on the first
/// draft; other drafts are ignored. Accept X with probability `min(1, q(X)/p(X))`, else sample
/// `(q − p)+` normalised. Acceptance `Σ min(p, q)`.
public struct SingleDraftScheme: SelectionScheme {
    public let name = "sd"
    public init() {}
    public func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection {
        try checkLaws(target: target, drafts: drafts)
        return CanonicalSelection(rule: FirstDraftRule(draft: drafts[0]), target: target)
    }
}
