/// Exact laws of the quantile-key construction, for tests and analysis (not the hot path).
extension OptimalSelection {
    /// The key measure of a token as weights over the m cells (`μ = Σ_c w[c] U(I_c)`); nil off the support.
    public func keyMeasure(token: Int) -> [Double]? {
        let rank = Int(rankOf[token])
        guard rank >= 0 else { return nil }
        let start = Int(receiverStart[rank]), end = Int(receiverEnd[rank])
        if start == end { return donorMeasure(owner: rank, head: donorHead[rank]) }
        var w = [Double](repeating: 0, count: tokenAt.count)
        w[rank] = ownWeight[rank]
        var left = 1 - ownWeight[rank]
        for e in start..<end {
            // The sampler gives whatever weight is left to the last entry; do the same here.
            let omega = e == end - 1 ? left : receiverWeight[e]
            left -= omega
            let donor = donorMeasure(owner: Int(receiverDonor[e]), head: receiverSnapshot[e])
            for c in w.indices { w[c] += omega * donor[c] }
        }
        return w
    }

    func donorMeasure(owner: Int, head: Int32) -> [Double] {
        var chain: [Int] = []
        var l = Int(head)
        while l >= 0 {
            chain.append(l)
            l = Int(entryPrevious[l])
        }
        var w = [Double](repeating: 0, count: tokenAt.count)
        w[owner] = 1
        for l in chain.reversed() {
            let theta = entryTheta[l]
            for c in w.indices { w[c] *= 1 - theta }
            w[Int(entryCell[l])] += theta
        }
        return w
    }

    /// `P(Z = y | drafted)` for each distinct drafted token: the probability that one of its drafts
    /// holds the largest key, integrated exactly cell by cell (keys are uniform within a cell, so
    /// each CDF is linear there and the integrand a polynomial of degree K − 1).
    public func selectionProbabilities(_ drafted: [Int]) -> [(token: Int, probability: Double)] {
        let measures = drafted.map { keyMeasure(token: $0) ?? [] }
        let live = measures.indices.filter { !measures[$0].isEmpty }
        guard !live.isEmpty else { return [(drafted[0], 1)] }
        var wins = [Double](repeating: 0, count: drafted.count)
        var cumulative = [Double](repeating: 0, count: drafted.count)
        for c in 0..<tokenAt.count {
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
        var result: [(token: Int, probability: Double)] = []
        for (i, token) in drafted.enumerated() where wins[i] > 0 {
            if let at = result.firstIndex(where: { $0.token == token }) {
                result[at].probability += wins[i]
            } else {
                result.append((token, wins[i]))
            }
        }
        return result
    }

    public func law(given drafted: [Int]) -> SelectionLaw {
        var output = [Double](repeating: 0, count: vocabularySize)
        var accept = 0.0
        for (z, beta) in selectionProbabilities(drafted) {
            let pz = selected[z]
            let a = residualMass <= 0 || pz <= 0 ? 1 : min(1, q[z] / pz)
            output[z] += beta * a
            accept += beta * a
            let reject = beta * (1 - a)
            guard reject > 0 else { continue }
            for y in 0..<vocabularySize {
                let r = q[y] - selected[y]
                if r > 0 { output[y] += reject * r / residualMass }
            }
        }
        return SelectionLaw(output: output, acceptance: accept)
    }
}
