/// Exact laws of the quantile-key construction, for tests and analysis (not the hot path).
extension QuantileKeyTables {
    /// The key measure of the token at `rank` as weights over the m cells (`μ = Σ_c w[c] U(I_c)`).
    func keyMeasure(rank: Int) -> [Double] {
        let received = receiverEntries(rank)
        if received.isEmpty { return donorMeasure(owner: rank, head: donorHead(rank)) }
        var w = [Double](repeating: 0, count: m)
        let own = ownWeight(rank)
        w[rank] = own
        var left = 1 - own
        for e in received {
            // The sampler gives whatever weight is left to the last entry; do the same here.
            let omega = e == received.upperBound - 1 ? left : receiverWeight(e)
            left -= omega
            let donor = donorMeasure(owner: Int(entries[e].donor), head: entries[e].previous)
            for c in w.indices { w[c] += omega * donor[c] }
        }
        return w
    }

    func donorMeasure(owner: Int, head: Int32) -> [Double] {
        var chain: [Int] = []
        var l = Int(head)
        while l >= 0 {
            chain.append(l)
            l = Int(entries[l].previous)
        }
        var w = [Double](repeating: 0, count: m)
        w[owner] = 1
        for l in chain.reversed() {
            let mix = theta(l)
            for c in w.indices { w[c] *= 1 - mix }
            w[Int(entries[l].cell)] += mix
        }
        return w
    }

    /// `E_{μ_j}[s^r]` for every rank j, in O(m + transfers): replay the transfers on the functional
    /// (each transfer mixes measures linearly, so it mixes their expectations the same way).
    func keyMoments(exponent r: Int) -> [Double] {
        var cellMean = [Double](repeating: 0, count: m)
        for j in 0..<m {
            cellMean[j] = cellMeanWeight(lower: bounds[j], upper: bounds[j + 1], k: r + 1) / Double(r + 1)
        }
        var b = cellMean
        for e in 0..<entryCount {
            let i = Int(entries[e].donor), j = Int(entries[e].cell)
            let mix = theta(e), omega = receiverWeight(e, theta: mix)
            let old = b[i]
            b[i] = (1 - mix) * old + mix * cellMean[j]
            b[j] += omega * (old - cellMean[j])
        }
        return b
    }
}

extension OptimalSelection {
    /// The key measure of a token as weights over the m cells, by rank; nil off the support.
    public func keyMeasure(token: Int) -> [Double]? {
        let rank = tables.rank(of: token)
        return rank >= 0 ? tables.keyMeasure(rank: rank) : nil
    }

    /// Token id at each rank: [m].
    public var tokensByRank: [Int] { (0..<tables.m).map { tables.support[Int(tables.records[$0].index)] } }

    /// `P(Z = y | drafted)` for each distinct drafted token: the probability that one of its drafts
    /// holds the largest key, integrated exactly cell by cell (keys are uniform within a cell, so
    /// each CDF is linear there and the integrand a polynomial of degree K − 1).
    public func selectionProbabilities(_ drafted: [Int]) -> [(token: Int, probability: Double)] {
        let measures = drafted.map { keyMeasure(token: $0) ?? [] }
        let live = measures.indices.filter { !measures[$0].isEmpty }
        guard !live.isEmpty else { return [(drafted[0], 1)] }
        var wins = [Double](repeating: 0, count: drafted.count)
        var cumulative = [Double](repeating: 0, count: drafted.count)
        for c in 0..<tables.m {
            for i in live where measures[i][c] > 0 {
                var poly: [Double] = [1]
                for l in live where l != i {
                    let a = cumulative[l], b = measures[l][c]
                    var next = [Double](repeating: 0, count: poly.count + 1)
                    for (d, coefficient) in poly.enumerated() {
                        next[d] += coefficient * a
                        next[d + 1] += coefficient * b
                    }
                    poly = next
                }
                var integral = 0.0
                for (d, coefficient) in poly.enumerated() { integral += coefficient / Double(d + 1) }
                wins[i] += measures[i][c] * integral
            }
            for i in live { cumulative[i] += measures[i][c] }
        }
        return mergeByToken(drafted, wins)
    }

    public func law(given drafted: [Int]) -> SelectionLaw {
        speculativeLaw(selection: selectionProbabilities(drafted), target: q, acceptance: acceptance) {
            selectedProbability($0)
        }
    }
}

/// Sums per-draft probabilities by token.
func mergeByToken(_ drafted: [Int], _ probabilities: [Double]) -> [(token: Int, probability: Double)] {
    var result: [(token: Int, probability: Double)] = []
    for (i, token) in drafted.enumerated() where probabilities[i] > 0 {
        if let at = result.firstIndex(where: { $0.token == token }) {
            result[at].probability += probabilities[i]
        } else {
            result.append((token, probabilities[i]))
        }
    }
    return result
}

/// The exact law of step 2 (speculative sampling of the selected token against `q` with draft law
/// `x`), given the selection probabilities of step 1. Matches `OptimalSelection.speculativeStep`.
func speculativeLaw(
    selection: [(token: Int, probability: Double)], target q: [Double], acceptance: Double,
    selected x: (Int) -> Double
) -> SelectionLaw {
    var output = [Double](repeating: 0, count: q.count)
    var accept = 0.0
    var residual = [Double](repeating: 0, count: q.count)
    var mass = 0.0
    for y in q.indices where q[y] > 0 {
        residual[y] = max(q[y] - x(y), 0)
        mass += residual[y]
    }
    for (z, beta) in selection {
        let pz = x(z)
        let a = 1 - acceptance <= 0 || pz <= 0 ? 1 : min(1, q[z] / pz)
        output[z] += beta * a
        accept += beta * a
        let reject = beta * (1 - a)
        guard reject > 0, mass > 0 else { continue }
        for y in q.indices where residual[y] > 0 { output[y] += reject * residual[y] / mass }
    }
    return SelectionLaw(output: output, acceptance: accept)
}
