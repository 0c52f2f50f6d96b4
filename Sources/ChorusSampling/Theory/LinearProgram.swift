/// A small dense linear program, solved exactly enough for the selection schemes' LPs:
///
///     maximise cᵀx  subject to  aᵢᵀx (≤ | = | ≥) bᵢ  for every row i,   0 ≤ x ≤ u.
///
/// Shapes: `objective: [n]`, `upperBounds: [n]` (`.infinity` for none), each row's
/// `coefficients: [n]`. Upper bounds are handled by the simplex itself (bound flips), not as rows,
/// so an LP whose only constraints are a few coupling rows and many box bounds stays small.
///
/// Method: the two-phase primal simplex (Dantzig 1947; phase 1 minimises the sum of artificial
/// variables, as in Chvátal, *Linear Programming*, 1983, ch. 8) with Dantzig's upper-bounding technique
/// (Dantzig 1955; Chvátal ch. 8) on a dense tableau in `Double`. Pricing is Dantzig's largest
/// reduced cost; after a run of degenerate pivots it switches to Bland's smallest-index rule
/// (Bland 1977, "New finite pivoting rules for the simplex method"), which cannot cycle. The point
/// returned is checked against every original row and bound; residuals above `1e-9` (relative to the
/// row's scale) throw instead of returning a wrong answer.
struct LinearProgram: Sendable {
    enum Relation: Sendable { case lessOrEqual, equal, greaterOrEqual }

    struct Row: Sendable {
        /// coefficients: [variableCount].
        var coefficients: [Double]
        var relation: Relation
        var bound: Double
    }

    struct Solution: Sendable {
        /// x: [variableCount], feasible within the checked tolerance, clamped into its bounds.
        var x: [Double]
        /// cᵀx at `x`.
        var objective: Double
        /// Simplex iterations (pivots and bound flips) over both phases.
        var iterations: Int
    }

    /// objective: [variableCount], the c of `maximise cᵀx`.
    var objective: [Double]
    /// upperBounds: [variableCount], each ≥ 0; `.infinity` means unbounded above.
    var upperBounds: [Double]
    var rows: [Row] = []

    /// Largest dense tableau (rows × columns, including slack and artificial columns) we agree to build:
    /// 4 M doubles, 32 MB.
    static let maxTableauEntries = 4_000_000
    /// Tolerance of the final feasibility check on every row and bound (scaled by the row's magnitude).
    static let feasibilityTolerance = 1e-9

    var variableCount: Int { objective.count }

    init(objective: [Double], upperBounds: [Double]? = nil) {
        self.objective = objective
        self.upperBounds = upperBounds ?? [Double](repeating: .infinity, count: objective.count)
    }

    mutating func addRow(_ coefficients: [Double], _ relation: Relation, _ bound: Double) {
        rows.append(Row(coefficients: coefficients, relation: relation, bound: bound))
    }

    /// Solves the program. Throws ``SamplingError/linearProgram(_:)`` when it is malformed, too large,
    /// infeasible, unbounded, does not converge, or when the returned point fails the feasibility check.
    func maximize() throws -> Solution {
        let n = variableCount
        guard upperBounds.count == n else {
            throw SamplingError.linearProgram("\(upperBounds.count) upper bounds for \(n) variables")
        }
        for (j, u) in upperBounds.enumerated() where !(u >= 0) {
            throw SamplingError.linearProgram("upper bound of variable \(j) is \(u); bounds must be ≥ 0")
        }
        for (j, c) in objective.enumerated() where !c.isFinite {
            throw SamplingError.linearProgram("objective coefficient \(j) is \(c)")
        }
        for (i, row) in rows.enumerated() {
            guard row.coefficients.count == n else {
                throw SamplingError.linearProgram("row \(i) has \(row.coefficients.count) coefficients, expected \(n)")
            }
            guard row.bound.isFinite, row.coefficients.allSatisfy(\.isFinite) else {
                throw SamplingError.linearProgram("row \(i) has a non-finite coefficient or bound")
            }
        }
        var tableau = try Tableau(program: self)
        try tableau.run(phase: 1)
        try tableau.run(phase: 2)
        let x = tableau.structuralValues()
        return try checked(x, iterations: tableau.iterations)
    }

    /// The final feasibility check: every bound and every row within tolerance, else throw.
    private func checked(_ raw: [Double], iterations: Int) throws -> Solution {
        let tol = Self.feasibilityTolerance
        var x = raw
        for j in 0..<variableCount {
            let u = upperBounds[j]
            guard x[j].isFinite, x[j] >= -tol * max(1, u.isFinite ? u : 1), x[j] <= u + tol * max(1, u) else {
                throw SamplingError.linearProgram(
                    "solution violates the bounds of variable \(j): \(x[j]) ∉ [0, \(u)]")
            }
            x[j] = min(max(x[j], 0), u)
        }
        for (i, row) in rows.enumerated() {
            var lhs = 0.0
            var scale = abs(row.bound)
            for j in 0..<variableCount where row.coefficients[j] != 0 {
                lhs += row.coefficients[j] * x[j]
                scale = max(scale, abs(row.coefficients[j] * x[j]))
            }
            let residual: Double
            switch row.relation {
            case .lessOrEqual: residual = max(0, lhs - row.bound)
            case .greaterOrEqual: residual = max(0, row.bound - lhs)
            case .equal: residual = abs(lhs - row.bound)
            }
            guard residual <= tol * max(1, scale) else {
                throw SamplingError.linearProgram("solution violates row \(i) by \(residual) (tolerance \(tol))")
            }
        }
        var value = 0.0
        for j in 0..<variableCount { value += objective[j] * x[j] }
        return Solution(x: x, objective: value, iterations: iterations)
    }
}

/// The simplex tableau `B⁻¹A` with bounded variables (the solver's working state).
///
/// Columns: `0..<n` structural, then one slack or surplus per inequality row, then one artificial per
/// `≥` or `=` row. `values[i]` is the value of the basic variable of row i; a nonbasic variable sits
/// at 0 or, when `atUpper`, at its upper bound.
private struct Tableau {
    /// Reduced-cost tolerance: a column enters only when its reduced cost exceeds this.
    static let costTolerance = 1e-12
    /// Pivot tolerance on the (row-scaled) tableau entries.
    static let pivotTolerance = 1e-11
    /// Consecutive degenerate pivots after which pricing switches to Bland's rule.
    static let blandAfter = 25

    let m: Int
    let columns: Int
    let structural: Int
    let firstArtificial: Int
    /// entries: [m × columns], row-major.
    var entries: [Double]
    /// values: [m], basic variables' values.
    var values: [Double]
    /// basis: [m], the column basic in each row.
    var basis: [Int]
    /// rowOfColumn: [columns], the row where a column is basic, or -1.
    var rowOfColumn: [Int]
    var atUpper: [Bool]
    var upper: [Double]
    var cost: [Double]
    /// reducedCosts: [columns], `cost_j − c_Bᵀ B⁻¹ A_j` for the current phase.
    var reducedCosts: [Double]
    var excluded: [Bool]
    var iterations = 0
    let maxIterations: Int
    let phaseOneObjective: [Double]
    let phaseTwoObjective: [Double]
    let rhsScale: Double

    init(program: LinearProgram) throws {
        let n = program.variableCount
        m = program.rows.count
        structural = n
        // Size check first, before copying any row.
        var slackCount = 0
        var artificialCount = 0
        for row in program.rows {
            let flipped = row.bound < 0
            let relation = row.relation
            if relation != .equal { slackCount += 1 }
            if relation == .equal || (relation == .greaterOrEqual) != flipped { artificialCount += 1 }
        }
        let (width, wideOverflow) = n.addingReportingOverflow(slackCount + artificialCount)
        let (entryCount, overflow) = m.multipliedReportingOverflow(by: width)
        guard !wideOverflow, !overflow, entryCount <= LinearProgram.maxTableauEntries else {
            throw SamplingError.linearProgram(
                "a \(m) × \(width) tableau exceeds the solver's limit of \(LinearProgram.maxTableauEntries) entries")
        }
        // Normalise each row: b ≥ 0 (flip the relation when negating), largest |coefficient| = 1.
        var normalised: [(coefficients: [Double], relation: LinearProgram.Relation, bound: Double)] = []
        normalised.reserveCapacity(m)
        for row in program.rows {
            var a = row.coefficients
            var b = row.bound
            var relation = row.relation
            if b < 0 {
                for j in a.indices { a[j] = -a[j] }
                b = -b
                switch relation {
                case .lessOrEqual: relation = .greaterOrEqual
                case .greaterOrEqual: relation = .lessOrEqual
                case .equal: break
                }
            }
            let scale = a.reduce(0) { max($0, abs($1)) }
            if scale > 0 {
                for j in a.indices { a[j] /= scale }
                b /= scale
            }
            normalised.append((a, relation, b))
        }
        columns = width
        firstArtificial = n + slackCount
        entries = [Double](repeating: 0, count: entryCount)
        values = [Double](repeating: 0, count: m)
        basis = [Int](repeating: 0, count: m)
        rowOfColumn = [Int](repeating: -1, count: columns)
        atUpper = [Bool](repeating: false, count: columns)
        upper = program.upperBounds + [Double](repeating: .infinity, count: slackCount + artificialCount)
        excluded = [Bool](repeating: false, count: columns)
        var slack = n
        var artificial = firstArtificial
        var totalRHS = 0.0
        for (i, row) in normalised.enumerated() {
            let base = i * columns
            for j in 0..<n { entries[base + j] = row.coefficients[j] }
            values[i] = row.bound
            totalRHS += row.bound
            switch row.relation {
            case .lessOrEqual:
                entries[base + slack] = 1
                basis[i] = slack
                slack += 1
            case .greaterOrEqual:
                entries[base + slack] = -1
                slack += 1
                entries[base + artificial] = 1
                basis[i] = artificial
                artificial += 1
            case .equal:
                entries[base + artificial] = 1
                basis[i] = artificial
                artificial += 1
            }
            rowOfColumn[basis[i]] = i
        }
        rhsScale = max(1, totalRHS)
        var phaseOne = [Double](repeating: 0, count: columns)
        for j in firstArtificial..<columns { phaseOne[j] = -1 }
        phaseOneObjective = phaseOne
        phaseTwoObjective = program.objective + [Double](repeating: 0, count: slackCount + artificialCount)
        cost = phaseOne
        reducedCosts = [Double](repeating: 0, count: columns)
        maxIterations = 50 * (m + columns) + 1000
    }

    /// Recomputes the reduced costs of the current objective from the tableau, O(m · columns).
    mutating func priceFromScratch() {
        for j in 0..<columns { reducedCosts[j] = cost[j] }
        for i in 0..<m {
            let cb = cost[basis[i]]
            if cb == 0 { continue }
            let base = i * columns
            for j in 0..<columns { reducedCosts[j] -= cb * entries[base + j] }
        }
    }

    /// Phase 1 drives the artificial variables to zero (or proves the program infeasible); phase 2
    /// fixes them at zero and maximises the real objective.
    mutating func run(phase: Int) throws {
        if phase == 1 {
            guard firstArtificial < columns else { return }
            cost = phaseOneObjective
        } else {
            cost = phaseTwoObjective
            for j in firstArtificial..<columns {
                upper[j] = 0
                excluded[j] = true
            }
        }
        priceFromScratch()
        try iterate()
        if phase == 1 {
            var infeasibility = 0.0
            for i in 0..<m where basis[i] >= firstArtificial { infeasibility += max(0, values[i]) }
            guard infeasibility <= LinearProgram.feasibilityTolerance * rhsScale else {
                throw SamplingError.linearProgram("infeasible: phase 1 leaves an artificial sum of \(infeasibility)")
            }
        }
    }

    mutating func iterate() throws {
        var degenerateRun = 0
        while true {
            let bland = degenerateRun >= Self.blandAfter
            guard let entering = chooseEntering(bland: bland) else { return }
            iterations += 1
            guard iterations <= maxIterations else {
                throw SamplingError.linearProgram("simplex did not converge within \(maxIterations) iterations")
            }
            let step = try step(entering: entering, bland: bland)
            degenerateRun = step > 1e-14 ? 0 : degenerateRun + 1
        }
    }

    /// A nonbasic column whose move away from its bound improves the objective: the largest
    /// |reduced cost| (Dantzig), or the smallest index (Bland). Nil at optimality.
    func chooseEntering(bland: Bool) -> Int? {
        var best: Int? = nil
        var bestScore = 0.0
        for j in 0..<columns where rowOfColumn[j] < 0 && !excluded[j] && upper[j] > 0 {
            let d = reducedCosts[j]
            let score = atUpper[j] ? -d : d
            guard score > Self.costTolerance else { continue }
            if bland { return j }
            if score > bestScore {
                bestScore = score
                best = j
            }
        }
        return best
    }

    /// One simplex step with `entering`: ratio test over the basic variables' bounds and the entering
    /// variable's own bound, then a bound flip or a pivot. Returns the step length θ.
    mutating func step(entering j: Int, bland: Bool) throws -> Double {
        let direction: Double = atUpper[j] ? -1 : 1
        var theta = Double.infinity
        var leavingRow = -1
        var leavingPivot = 0.0
        for i in 0..<m {
            let delta = direction * entries[i * columns + j]
            let limit: Double
            if delta > Self.pivotTolerance {
                limit = max(0, values[i]) / delta
            } else if delta < -Self.pivotTolerance, upper[basis[i]].isFinite {
                limit = max(0, upper[basis[i]] - values[i]) / -delta
            } else {
                continue
            }
            let tie = abs(limit - theta) <= 1e-12 * max(1, theta)
            if leavingRow < 0 || (limit < theta && !tie) {
                theta = limit
                leavingRow = i
                leavingPivot = abs(delta)
            } else if tie {
                // Bland: smallest basic index leaves. Otherwise the largest pivot, for stability.
                theta = min(theta, limit)
                let better = bland ? basis[i] < basis[leavingRow] : abs(delta) > leavingPivot
                if better {
                    leavingRow = i
                    leavingPivot = abs(delta)
                }
            }
        }
        let flip = upper[j]
        if flip.isFinite && (leavingRow < 0 || flip <= theta) {
            // The entering variable reaches its other bound first: no basis change.
            for i in 0..<m {
                let a = entries[i * columns + j]
                if a != 0 { values[i] -= direction * a * flip }
            }
            atUpper[j].toggle()
            return flip
        }
        guard leavingRow >= 0 else {
            throw SamplingError.linearProgram("unbounded: column \(j) improves the objective without limit")
        }
        for i in 0..<m {
            let a = entries[i * columns + j]
            if a != 0 { values[i] -= direction * a * theta }
        }
        let leaving = basis[leavingRow]
        atUpper[leaving] = direction * entries[leavingRow * columns + j] < 0
        let enteringValue = direction > 0 ? theta : upper[j] - theta
        pivot(row: leavingRow, column: j)
        rowOfColumn[leaving] = -1
        basis[leavingRow] = j
        rowOfColumn[j] = leavingRow
        atUpper[j] = false
        values[leavingRow] = enteringValue
        return theta
    }

    /// Gauss–Jordan elimination of column `c` around `entries[r, c]`, reduced costs included.
    mutating func pivot(row r: Int, column c: Int) {
        let columns = self.columns
        let m = self.m
        entries.withUnsafeMutableBufferPointer { t in
            let base = r * columns
            let inverse = 1 / t[base + c]
            for k in 0..<columns { t[base + k] *= inverse }
            t[base + c] = 1
            for i in 0..<m where i != r {
                let other = i * columns
                let f = t[other + c]
                if f == 0 { continue }
                for k in 0..<columns {
                    let v = t[base + k]
                    if v != 0 { t[other + k] -= f * v }
                }
                t[other + c] = 0
            }
            reducedCosts.withUnsafeMutableBufferPointer { d in
                let f = d[c]
                if f != 0 {
                    for k in 0..<columns {
                        let v = t[base + k]
                        if v != 0 { d[k] -= f * v }
                    }
                }
                d[c] = 0
            }
        }
    }

    /// x: [structural], the current point.
    func structuralValues() -> [Double] {
        (0..<structural).map { j in
            let r = rowOfColumn[j]
            if r >= 0 { return values[r] }
            return atUpper[j] ? upper[j] : 0
        }
    }
}
