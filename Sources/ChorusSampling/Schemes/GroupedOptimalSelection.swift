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
    /// `p_I` on the union of the groups' supports: selectedTokens ascending, selectedValues aligned
    /// (zero elsewhere). Nothing of size n is built for sparse draft laws.
    let selectedTokens: [Int]
    let selectedValues: [Double]

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
        // Each group's contribution K_g p_g(y) E[s^{K_g G − 1}] by support index, then a G-way merge of
        // the (ascending) supports; a token's terms are added in group order, as into a dense vector.
        let contributions: [[Double]] = groups.enumerated().map { g, selection in
            let tables = selection.tables
            let moments = tables.keyMoments(exponent: sizes[g] * groupCount - 1)
            var byIndex = [Double](repeating: 0, count: tables.m)
            for j in 0..<tables.m {
                let record = tables.records[j]
                byIndex[Int(record.index)] = Double(sizes[g]) * record.p * moments[j]
            }
            return byIndex
        }
        var cursor = [Int](repeating: 0, count: groupCount)
        var tokens: [Int] = []
        var values: [Double] = []
        var acceptance = 0.0
        while true {
            var next = Int.max
            for g in 0..<groupCount where cursor[g] < groups[g].tables.m {
                next = min(next, groups[g].tables.support[cursor[g]])
            }
            if next == Int.max { break }
            var value = 0.0
            for g in 0..<groupCount where cursor[g] < groups[g].tables.m && groups[g].tables.support[cursor[g]] == next
            {
                value += contributions[g][cursor[g]]
                cursor[g] += 1
            }
            tokens.append(next)
            values.append(value)
            acceptance += min(q[next], value)
        }
        selectedTokens = tokens
        selectedValues = values
        self.acceptance = acceptance
    }

    /// `p_I` of a token (0 off the drafts' supports): a binary search.
    func selected(_ token: Int) -> Double {
        var lo = 0, hi = selectedTokens.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if selectedTokens[mid] < token { lo = mid + 1 } else { hi = mid }
        }
        return lo < selectedTokens.count && selectedTokens[lo] == token ? selectedValues[lo] : 0
    }

    /// `p_I` as a dense vector: [n] (built on request).
    public var selectedLaw: [Double] {
        var dense = [Double](repeating: 0, count: vocabularySize)
        for (t, v) in zip(selectedTokens, selectedValues) { dense[t] = v }
        return dense
    }

    public func choose<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> Int {
        draftWithLargestKey(drafted) { k, token in
            let g = groupOf[k]
            let tables = groups[g].tables
            let rank = tables.rank(of: token)
            return rank >= 0 ? power(tables.key(rank: rank, using: &rng), groupSize[g]) : nil
        }
    }

    public func select<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> SelectionOutcome {
        let z = choose(drafted, using: &rng)
        let (tokens, values) = (selectedTokens, selectedValues)
        return speculativeOutcome(
            z, drafted: drafted, target: q, acceptance: acceptance, selected: selected(z), using: &rng
        ) { rng in
            sampleResidual(target: q, support: tokens, using: &rng) { values[$0] }
        }
    }
}
