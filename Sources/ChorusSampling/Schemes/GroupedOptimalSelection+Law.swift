import Foundation

/// Exact law of the grouped composition, for tests and analysis (not the hot path).
extension GroupedOptimalSelection {
    /// `P(Z = y | drafted)`: the probability that a draft of token y holds the largest `v = s^{K_g}`.
    /// With L = lcm of the group sizes and `v = w^L`, every key is `s_l = w^{L/K_l}`, an integer power
    /// of w, so between the breakpoints `w = c^{K_l/L}` (cell bounds c) the integrand
    /// `d/dw F_i(w^{L/K_i}) · Π_{l≠i} F_l(w^{L/K_l})` is a polynomial; Gauss–Legendre with enough
    /// nodes integrates it exactly up to rounding.
    public func selectionProbabilities(_ drafted: [Int]) -> [(token: Int, probability: Double)] {
        struct Draft {
            var weights: [Double]  // cell weights of the key measure
            var cumulative: [Double]  // [m + 1]
            var bounds: [Double]  // [m + 1]
            var power: Int  // L / K_g
        }
        var lcm = 1
        for (i, _) in drafted.enumerated() { lcm = leastCommonMultiple(lcm, groupSize[groupOf[i]]) }
        var draftsInfo: [Draft?] = []
        for (i, token) in drafted.enumerated() {
            let selection = groups[groupOf[i]]
            guard let w = selection.keyMeasure(token: token) else {
                draftsInfo.append(nil)
                continue
            }
            var cumulative = [0.0]
            for x in w { cumulative.append(cumulative[cumulative.count - 1] + x) }
            let bounds = (0...selection.tables.m).map { selection.tables.bounds[$0] }
            draftsInfo.append(
                Draft(weights: w, cumulative: cumulative, bounds: bounds, power: lcm / groupSize[groupOf[i]]))
        }
        let live = draftsInfo.indices.filter { draftsInfo[$0] != nil }
        guard !live.isEmpty else { return [(drafted[0], 1)] }

        // Breakpoints in w.
        var breaks: Set<Double> = [0, 1]
        for l in live {
            guard let d = draftsInfo[l] else { continue }
            for c in d.bounds where c > 0 && c < 1 { breaks.insert(pow(c, 1 / Double(d.power))) }
        }
        let points = breaks.sorted()
        let degree = live.compactMap { draftsInfo[$0]?.power }.reduce(0, +)
        let (nodes, nodeWeights) = gaussLegendre(max(4, degree / 2 + 2))

        func cell(_ d: Draft, _ s: Double) -> Int {
            var lo = 0, hi = d.weights.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if d.bounds[mid] <= s { lo = mid } else { hi = mid - 1 }
            }
            return lo
        }
        func cdf(_ d: Draft, _ s: Double) -> Double {
            let c = cell(d, s)
            let width = d.bounds[c + 1] - d.bounds[c]
            return d.cumulative[c] + d.weights[c] * (width > 0 ? (s - d.bounds[c]) / width : 0)
        }
        func density(_ d: Draft, _ s: Double) -> Double {
            let c = cell(d, s)
            let width = d.bounds[c + 1] - d.bounds[c]
            return width > 0 ? d.weights[c] / width : 0
        }

        var wins = [Double](repeating: 0, count: drafted.count)
        for interval in 0..<(points.count - 1) {
            let a = points[interval], b = points[interval + 1]
            guard b > a else { continue }
            let half = (b - a) / 2, mid = (a + b) / 2
            for (node, weight) in zip(nodes, nodeWeights) {
                let w = mid + half * node
                for i in live {
                    guard let di = draftsInfo[i] else { continue }
                    let si = pow(w, Double(di.power))
                    var value = density(di, si) * Double(di.power) * pow(w, Double(di.power - 1))
                    for l in live where l != i {
                        guard let dl = draftsInfo[l] else { continue }
                        value *= cdf(dl, pow(w, Double(dl.power)))
                    }
                    wins[i] += weight * half * value
                }
            }
        }
        return mergeByToken(drafted, wins)
    }

    public func law(given drafted: [Int]) -> SelectionLaw {
        speculativeLaw(selection: selectionProbabilities(drafted), target: q, acceptance: acceptance) { selected($0) }
    }
}

func leastCommonMultiple(_ a: Int, _ b: Int) -> Int {
    var x = a, y = b
    while y != 0 { (x, y) = (y, x % y) }
    return a / x * b
}

/// Gauss–Legendre nodes and weights on [−1, 1] (Newton iteration on the Legendre polynomial from
/// the Chebyshev initial guesses; exact for polynomials of degree ≤ 2n − 1).
func gaussLegendre(_ n: Int) -> (nodes: [Double], weights: [Double]) {
    var nodes = [Double](repeating: 0, count: n)
    var weights = [Double](repeating: 0, count: n)
    for i in 0..<n {
        var x = cos(Double.pi * (Double(i) + 0.75) / (Double(n) + 0.5))
        var derivative = 0.0
        for _ in 0..<100 {
            var p0 = 1.0, p1 = x
            for k in 2...max(n, 2) {
                let p2 = ((2 * Double(k) - 1) * x * p1 - (Double(k) - 1) * p0) / Double(k)
                p0 = p1
                p1 = p2
            }
            let pn = n == 1 ? x : p1
            let pnMinus1 = n == 1 ? 1 : p0
            derivative = Double(n) * (x * pn - pnMinus1) / (x * x - 1)
            let step = pn / derivative
            x -= step
            if abs(step) < 1e-16 { break }
        }
        nodes[i] = x
        weights[i] = 2 / ((1 - x * x) * derivative * derivative)
    }
    return (nodes, weights)
}
