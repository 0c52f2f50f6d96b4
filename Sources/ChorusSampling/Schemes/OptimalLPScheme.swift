/// `optimal-lp`: the exact optimum of the canonical decomposition for small vocabularies
/// (Khisti et al. 2025, Theorem 1; SAMPLING.md §1): the selection rule β that maximises
/// `Σ_y min(q(y), p_I(y))`, found by solving the linear program
///
///     maximise Σ_y t_y   subject to   t_y ≤ q(y),   t_y ≤ p_I(y) = Σ_x P(x) β_y(x),
///                                     β_y(x) ≥ 0,   Σ_{y ∈ x} β_y(x) = 1 for every draft group x,
///
/// then selecting with that β and running single-draft speculative sampling against `p_I`
/// (``CanonicalSelection``). It works for identical and non-identical independent drafts.
///
/// The LP is solved with a dense two-phase simplex (our own, ``LinearProgram``), not a structural
/// shortcut such as the sorted-prefix formula; that is what makes it a reference for the other schemes.
///
/// Draft groups (``Grouping``): with `.tuple` every ordered tuple of drafted tokens with positive
/// probability has its own β (the LP as the paper writes it). With `.draftedSet` (the default) the
/// tuples with the same *set* of distinct tokens share one β. Both have the same optimum: `p_I` depends
/// on the β's of the tuples of one set only through their probability-weighted average, and that
/// average is itself a valid β for the set. (For identical drafts this is finer than the multiset
/// reduction, and also valid for non-identical drafts.) Within each group one token, the largest id,
/// is eliminated through `Σ β = 1`, so a group of two tokens is one variable in [0, 1] and the LP
/// has one row per draftable token plus one per group of ≥ 3 tokens.
///
/// `p_I` is recomputed from the β's of the solution (clamped to ≥ 0 and renormalised per group), not
/// taken from the t's, so the scheme is exact whatever the solver's rounding.
public struct OptimalLPScheme: SelectionScheme {
    public enum Grouping: Sendable, Equatable {
        /// One β per set of distinct drafted tokens.
        case draftedSet
        /// One β per ordered draft tuple.
        case tuple
    }

    public let name = "optimal-lp"
    public let grouping: Grouping
    /// The largest number of draft tuples with positive probability (`Π_k |support(p_k)|`) accepted.
    public let maxTuples: Int

    public init(grouping: Grouping = .draftedSet, maxTuples: Int = 2000) {
        self.grouping = grouping
        self.maxTuples = maxTuples
    }

    public func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection {
        try checkLaws(target: target, drafts: drafts)
        let rule = try OptimalLPRule(target: target, drafts: drafts, grouping: grouping, maxTuples: maxTuples)
        return CanonicalSelection(rule: rule, target: target)
    }
}

/// The optimal selection rule found by the LP of ``OptimalLPScheme``.
public struct OptimalLPRule: SelectionRule {
    /// β of one draft group: `probabilities[i]` on `tokens[i]` (distinct, ascending; sums to 1).
    struct Weights: Sendable {
        var tokens: [Int]
        var probabilities: [Double]
    }

    /// selectedLaw: [vocabularySize], `p_I` computed from the β's.
    public let selectedLaw: [Double]
    public let grouping: OptimalLPScheme.Grouping
    /// Draft tuples with positive probability.
    public let tupleCount: Int
    /// Draft groups (tuples or distinct sets) in the LP, including single-token ones.
    public let groupCount: Int
    /// The LP optimum `Σ t_y`; equals the canonical acceptance up to solver tolerance.
    public let programOptimum: Double
    /// Simplex iterations used.
    public let iterations: Int
    /// β per group key: the ordered tuple (`.tuple`) or the ascending distinct tokens (`.draftedSet`).
    let weights: [[Int]: Weights]

    init(
        target: TokenDistribution, drafts: [TokenDistribution], grouping: OptimalLPScheme.Grouping,
        maxTuples: Int
    ) throws {
        let n = target.vocabularySize
        let supports = drafts.map(\.support)
        // Π_k |support(p_k)|, saturating instead of overflowing.
        var count = 1
        var saturated = false
        for support in supports {
            let (product, overflow) = count.multipliedReportingOverflow(by: support.count)
            if overflow { saturated = true } else { count = product }
        }
        guard !saturated, count <= maxTuples else {
            let got = saturated ? "more than \(Int.max)" : String(count)
            throw SamplingError.linearProgram(
                "optimal-lp supports at most \(maxTuples) draft tuples; got \(got)"
                    + " (the product of the drafts' support sizes)")
        }
        self.grouping = grouping
        tupleCount = count

        // Enumerate the tuples (an odometer over the supports) and merge them into groups in a
        // deterministic order, so the LP, hence the rule, is the same in every process.
        var keys: [[Int]] = []
        var groupIndex: [[Int]: Int] = [:]
        var mass: [Double] = []
        var digits = [Int](repeating: 0, count: drafts.count)
        for _ in 0..<count {
            var tuple = [Int](repeating: 0, count: drafts.count)
            var probability = 1.0
            for k in 0..<drafts.count {
                tuple[k] = supports[k][digits[k]]
                probability *= drafts[k][tuple[k]]
            }
            let key = grouping == .tuple ? tuple : distinctAscending(tuple)
            if let g = groupIndex[key] {
                mass[g] += probability
            } else {
                groupIndex[key] = keys.count
                keys.append(key)
                mass.append(probability)
            }
            var k = drafts.count - 1
            while k >= 0 {
                digits[k] += 1
                if digits[k] < supports[k].count { break }
                digits[k] = 0
                k -= 1
            }
        }
        groupCount = keys.count

        // Draftable tokens, each with a row t_y − p_I(y) ≤ 0 (constants moved to the right).
        var tokenRow = [Int](repeating: -1, count: n)
        var tokens: [Int] = []
        for y in 0..<n where drafts.contains(where: { $0[y] > 0 }) {
            tokenRow[y] = tokens.count
            tokens.append(y)
        }
        // Variables: per group, β of every distinct token but the last (β_last = 1 − Σ others);
        // then t_y per draftable token.
        var distinct: [[Int]] = []
        var firstVariable: [Int] = []
        var variableCount = 0
        for key in keys {
            let d = grouping == .tuple ? distinctAscending(key) : key
            distinct.append(d)
            firstVariable.append(variableCount)
            variableCount += d.count - 1
        }
        let betaCount = variableCount
        variableCount += tokens.count
        var objective = [Double](repeating: 0, count: variableCount)
        var upper = [Double](repeating: 1, count: variableCount)
        for (r, y) in tokens.enumerated() {
            objective[betaCount + r] = 1
            upper[betaCount + r] = target[y]
        }
        var program = LinearProgram(objective: objective, upperBounds: upper)
        var tokenRows = [[Double]](repeating: [Double](repeating: 0, count: variableCount), count: tokens.count)
        var constants = [Double](repeating: 0, count: tokens.count)
        for r in tokens.indices { tokenRows[r][betaCount + r] = 1 }
        for g in keys.indices {
            guard let last = distinct[g].last else { continue }
            let m = mass[g]
            let lastRow = tokenRow[last]
            constants[lastRow] += m
            for (i, y) in distinct[g].dropLast().enumerated() {
                let v = firstVariable[g] + i
                tokenRows[tokenRow[y]][v] -= m
                tokenRows[lastRow][v] += m
            }
            if distinct[g].count >= 3 {
                var row = [Double](repeating: 0, count: variableCount)
                for i in 0..<(distinct[g].count - 1) { row[firstVariable[g] + i] = 1 }
                program.addRow(row, .lessOrEqual, 1)
            }
        }
        for r in tokens.indices { program.addRow(tokenRows[r], .lessOrEqual, constants[r]) }
        let solution = try program.maximize()
        programOptimum = solution.objective
        iterations = solution.iterations

        var law = [Double](repeating: 0, count: n)
        var weights: [[Int]: Weights] = [:]
        for g in keys.indices {
            var beta = (0..<(distinct[g].count - 1)).map { max(0, solution.x[firstVariable[g] + $0]) }
            beta.append(max(0, 1 - beta.reduce(0, +)))
            let total = beta.reduce(0, +)
            for i in beta.indices { beta[i] /= total }
            for (i, y) in distinct[g].enumerated() { law[y] += mass[g] * beta[i] }
            weights[keys[g]] = Weights(tokens: distinct[g], probabilities: beta)
        }
        selectedLaw = law
        self.weights = weights
    }

    /// β for `drafted`. A tuple outside the drafts' supports (probability 0, so no part of `p_I`)
    /// selects its first token.
    func groupWeights(_ drafted: [Int]) -> Weights {
        let key = grouping == .tuple ? drafted : distinctAscending(drafted)
        if let w = weights[key] { return w }
        return Weights(tokens: drafted.isEmpty ? [] : [drafted[0]], probabilities: [1])
    }

    public func choose<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> Int {
        let w = groupWeights(drafted)
        let u = rng.nextUnit()
        var acc = 0.0
        var last = w.tokens.first ?? 0
        for (y, b) in zip(w.tokens, w.probabilities) where b > 0 {
            acc += b
            last = y
            if u < acc { return y }
        }
        return last
    }

    public func selectionProbabilities(_ drafted: [Int]) -> [(token: Int, probability: Double)] {
        let w = groupWeights(drafted)
        return zip(w.tokens, w.probabilities).map { (token: $0, probability: $1) }
    }
}

/// The distinct tokens of a tuple, ascending.
private func distinctAscending(_ tuple: [Int]) -> [Int] {
    var result = tuple.sorted()
    var write = 0
    for read in result.indices where read == 0 || result[read] != result[read - 1] {
        result[write] = result[read]
        write += 1
    }
    result.removeLast(result.count - write)
    return result
}
