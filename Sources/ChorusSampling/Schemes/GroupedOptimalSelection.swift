/// `optimal` with drafts of several laws (workers with different models or temperatures).
///
/// Composition (documented in docs/optimal.md): group the drafts by law; within group g (K_g
/// drafts of law p_g) every draft draws its quantile key `s` from group g's optimal construction
/// against q (OPTIMAL.md), and is ranked by `v = s^{K_g}`. A group's best key `s_g` has
/// `P(s_g ≤ s) = s^{K_g}`, so `v_g` is uniform on [0, 1] for every group, and the draft with the
/// largest v is selected. The selected token's law is then, exactly,
/// `p_I(y) = Σ_g K_g p_g(y) E_{μ_{g,y}}[s^{K_g G − 1}]` (G groups): one draft of group g holds the
/// group's best key s (density `K_g s^{K_g−1}` times `p_g(y) μ_{g,y}`), and the G − 1 other groups'
/// uniform v's fall below `s^{K_g}`. Step 2 is speculative sampling against q with that `p_I`.
///
/// Exact for any drafts. Optimal when there is one group (it is then ``OptimalSelection``); across
/// groups it is a heuristic — the non-identical optimum `1 + min_S [q(S) − Π_k p_k(S)]` is reported
/// beside it by `chorus acceptance`.
public struct GroupedOptimalSelection: PreparedSelection {
    public let vocabularySize: Int
    /// groupOf: [K], the group of each draft (groups numbered by first appearance).
    public let groupOf: [Int]
    /// groupSize: [G].
    public let groupSize: [Int]
    public let acceptance: Double
    let groups: [OptimalSelection]
    let q: [Double]
    /// selected: [n], `p_I`.
    let selected: [Double]

    public init(target: TokenDistribution, drafts: [TokenDistribution]) {
        vocabularySize = target.vocabularySize
        q = target.probabilities
        var laws: [TokenDistribution] = []
        var groupOf: [Int] = []
        for d in drafts {
            if let g = laws.firstIndex(of: d) {
                groupOf.append(g)
            } else {
                groupOf.append(laws.count)
                laws.append(d)
            }
        }
        let sizes = laws.indices.map { g in groupOf.filter { $0 == g }.count }
        self.groupOf = groupOf
        groupSize = sizes
        groups = laws.indices.map { OptimalSelection(target: target, draft: laws[$0], drafts: sizes[$0]) }
        let groupCount = laws.count
        var selected = [Double](repeating: 0, count: target.vocabularySize)
        for (g, selection) in groups.enumerated() {
            let k = sizes[g]
            let moments = selection.tables.keyMoments(exponent: k * groupCount - 1)
            for j in 0..<selection.tables.m {
                let t = Int(selection.tables.tokenAt[j])
                selected[t] += Double(k) * selection.tables.pr[j] * moments[j]
            }
        }
        var acceptance = 0.0
        for y in selected.indices { acceptance += min(q[y], selected[y]) }
        self.selected = selected
        self.acceptance = acceptance
    }

    /// `p_I` as a dense vector: [n].
    public var selectedLaw: [Double] { selected }

    public func choose<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> Int {
        var bestToken = drafted[0]
        var bestKey = -1.0
        for (i, token) in drafted.enumerated() {
            let g = groupOf[i]
            let tables = groups[g].tables
            let rank = tables.rank(of: token)
            guard rank >= 0 else { continue }
            let v = power(tables.key(rank: rank, using: &rng), groupSize[g])
            if v > bestKey {
                bestKey = v
                bestToken = token
            }
        }
        return bestToken
    }

    public func select<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> SelectionOutcome {
        let z = choose(drafted, using: &rng)
        return speculativeOutcome(z, drafted: drafted, target: q, acceptance: acceptance, using: &rng) { selected[$0] }
    }
}
