import Testing

@testable import ChorusSampling

@Suite struct LinearProgramTests {
    /// Throws unless `error` is a ``SamplingError/linearProgram(_:)`` whose message contains `fragment`.
    private func expectLPError(containing fragment: String, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected a linear-program error containing “\(fragment)”")
        } catch let SamplingError.linearProgram(message) {
            #expect(message.contains(fragment), "message: \(message)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    /// Hillier & Lieberman's Wyndor Glass problem: max 3x + 5y, x ≤ 4, 2y ≤ 12, 3x + 2y ≤ 18 → (2, 6), 36.
    @Test func wyndorGlass() throws {
        var lp = LinearProgram(objective: [3, 5])
        lp.addRow([1, 0], .lessOrEqual, 4)
        lp.addRow([0, 2], .lessOrEqual, 12)
        lp.addRow([3, 2], .lessOrEqual, 18)
        let solution = try lp.maximize()
        #expect(abs(solution.objective - 36) < 1e-12)
        #expect(maxAbsDifference(solution.x, [2, 6]) < 1e-12)
    }

    /// A diet-style minimisation that needs phase 1 (≥ rows): min 2x + 3y, x + y ≥ 4, x + 3y ≥ 6 → (3, 1), 9.
    @Test func minimisationWithGreaterOrEqualRows() throws {
        var lp = LinearProgram(objective: [-2, -3])
        lp.addRow([1, 1], .greaterOrEqual, 4)
        lp.addRow([1, 3], .greaterOrEqual, 6)
        lp.addRow([1, 0], .lessOrEqual, 10)
        let solution = try lp.maximize()
        #expect(abs(solution.objective + 9) < 1e-12)
        #expect(maxAbsDifference(solution.x, [3, 1]) < 1e-12)
    }

    /// Equality rows, one of them redundant (its artificial stays basic at zero), and a negative
    /// right-hand side that must be flipped: x + 2y = 4, 3x + y = 7, 2x + 4y = 8, −x ≤ −1 → (2, 1).
    @Test func equalityRowsWithRedundancy() throws {
        var lp = LinearProgram(objective: [1, 1])
        lp.addRow([1, 2], .equal, 4)
        lp.addRow([3, 1], .equal, 7)
        lp.addRow([2, 4], .equal, 8)
        lp.addRow([-1, 0], .lessOrEqual, -1)
        let solution = try lp.maximize()
        #expect(abs(solution.objective - 3) < 1e-12)
        #expect(maxAbsDifference(solution.x, [2, 1]) < 1e-12)
    }

    /// Upper bounds handled by bound flips: the fractional knapsack max 10a + 7b + 3c,
    /// 4a + 5b + 3c ≤ 7, 0 ≤ a, b, c ≤ 1 → a = 1, b = 0.6, c = 0, value 14.2 (Dantzig 1957).
    @Test func fractionalKnapsackWithBounds() throws {
        var lp = LinearProgram(objective: [10, 7, 3], upperBounds: [1, 1, 1])
        lp.addRow([4, 5, 3], .lessOrEqual, 7)
        let solution = try lp.maximize()
        #expect(abs(solution.objective - 14.2) < 1e-12)
        #expect(maxAbsDifference(solution.x, [1, 0.6, 0]) < 1e-12)
        // No rows at all: every variable at its bound where the objective is positive.
        let boxOnly = try LinearProgram(objective: [1, -1, 2], upperBounds: [0.5, 3, 0.25]).maximize()
        #expect(maxAbsDifference(boxOnly.x, [0.5, 0, 0.25]) == 0)
    }

    /// Beale's (1955) example, on which Dantzig's rule with naive tie-breaking cycles forever
    /// (Chvátal 1983, ch. 3): min −¾x₁ + 20x₂ − ½x₃ + 6x₄ with two degenerate rows at the origin.
    /// Optimum −5/4 at (1, 0, 1, 0). Solved once with x₃ ≤ 1 as a row and once as a bound.
    @Test func bealeCyclingExampleTerminates() throws {
        let c: [Double] = [0.75, -20, 0.5, -6]
        var asRow = LinearProgram(objective: c)
        asRow.addRow([0.25, -8, -1, 9], .lessOrEqual, 0)
        asRow.addRow([0.5, -12, -0.5, 3], .lessOrEqual, 0)
        asRow.addRow([0, 0, 1, 0], .lessOrEqual, 1)
        var asBound = LinearProgram(objective: c, upperBounds: [.infinity, .infinity, 1, .infinity])
        asBound.addRow([0.25, -8, -1, 9], .lessOrEqual, 0)
        asBound.addRow([0.5, -12, -0.5, 3], .lessOrEqual, 0)
        for lp in [asRow, asBound] {
            let solution = try lp.maximize()
            #expect(abs(solution.objective - 1.25) < 1e-12)
            #expect(maxAbsDifference(solution.x, [1, 0, 1, 0]) < 1e-12)
        }
    }

    /// A highly degenerate vertex: many rows tight at the optimum (1, 1).
    @Test func degenerateVertex() throws {
        var lp = LinearProgram(objective: [1, 1])
        lp.addRow([1, 0], .lessOrEqual, 1)
        lp.addRow([0, 1], .lessOrEqual, 1)
        lp.addRow([1, 1], .lessOrEqual, 2)
        lp.addRow([2, 2], .lessOrEqual, 4)
        lp.addRow([1, -1], .lessOrEqual, 0)
        lp.addRow([-1, 1], .lessOrEqual, 0)
        lp.addRow([1, 1], .greaterOrEqual, 0)
        let solution = try lp.maximize()
        #expect(abs(solution.objective - 2) < 1e-12)
        #expect(maxAbsDifference(solution.x, [1, 1]) < 1e-12)
    }

    @Test func infeasibleProgramThrows() {
        expectLPError(containing: "infeasible") {
            var lp = LinearProgram(objective: [1, 1])
            lp.addRow([1, 1], .lessOrEqual, 1)
            lp.addRow([1, 1], .greaterOrEqual, 2)
            _ = try lp.maximize()
        }
        // Infeasible through a bound: x ≤ 1 as a bound, x ≥ 2 as a row.
        expectLPError(containing: "infeasible") {
            var lp = LinearProgram(objective: [1], upperBounds: [1])
            lp.addRow([1], .greaterOrEqual, 2)
            _ = try lp.maximize()
        }
    }

    @Test func unboundedProgramThrows() {
        expectLPError(containing: "unbounded") {
            var lp = LinearProgram(objective: [1, 0])
            lp.addRow([1, -1], .lessOrEqual, 1)
            _ = try lp.maximize()
        }
    }

    @Test func malformedOrOversizedProgramThrows() {
        expectLPError(containing: "coefficients") {
            var lp = LinearProgram(objective: [1, 0])
            lp.addRow([1], .lessOrEqual, 1)
            _ = try lp.maximize()
        }
        expectLPError(containing: "exceeds the solver's limit") {
            // 1500 rows × (1500 + 1500 slack) columns = 4.5 M entries > 4 M. The rows share one buffer.
            let n = 1500
            let row = [Double](repeating: 1, count: n)
            var lp = LinearProgram(objective: row)
            for _ in 0..<n { lp.addRow(row, .lessOrEqual, 1) }
            _ = try lp.maximize()
        }
    }

    /// Random two-variable programs against brute force over every vertex (intersections of two
    /// constraint lines, axes included): the simplex optimum equals the best feasible vertex.
    @Test func randomTwoVariableProgramsMatchVertexEnumeration() throws {
        var rng = ChorusRandom(seed: 7)
        func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * rng.nextUnit() }
        for _ in 0..<200 {
            let c = [uniform(-1, 2), uniform(-1, 2)]
            // Rows a·x ≤ b with b > 0 (origin feasible) plus a box x, y ≤ 5 so the optimum is finite.
            var lines: [([Double], Double)] = [([1, 0], 5), ([0, 1], 5), ([-1, 0], 0), ([0, -1], 0)]
            var lp = LinearProgram(objective: c)
            lp.addRow([1, 0], .lessOrEqual, 5)
            lp.addRow([0, 1], .lessOrEqual, 5)
            for _ in 0..<Int(rng.next() % 5) {
                let a = [uniform(-1, 2), uniform(-1, 2)], b = uniform(0.5, 4)
                lp.addRow(a, .lessOrEqual, b)
                lines.append((a, b))
            }
            var best = -Double.infinity
            for i in lines.indices {
                for j in lines.indices where j > i {
                    let (a1, b1) = lines[i], (a2, b2) = lines[j]
                    let det = a1[0] * a2[1] - a1[1] * a2[0]
                    if abs(det) < 1e-9 { continue }
                    let x = (b1 * a2[1] - a1[1] * b2) / det, y = (a1[0] * b2 - b1 * a2[0]) / det
                    if lines.allSatisfy({ $0.0[0] * x + $0.0[1] * y <= $0.1 + 1e-9 }) {
                        best = max(best, c[0] * x + c[1] * y)
                    }
                }
            }
            let solution = try lp.maximize()
            #expect(abs(solution.objective - best) < 1e-9)
        }
    }
}
