@testable import ChorusSampling

/// The quantile-key construction of `optimal` as it was before the issue-13 rewrite of its tables
/// (main at 5997142), written plainly with arrays: a comparison sort by (float32 bits of q/p, support
/// index), the prefix scan, the T* and S* stack passes written out separately, per-rank measure
/// tables, an inverse map token → rank, and the key draws. Only the cell-weight formula
/// (``CellWeightFactors``) is shared with the library. The optimized tables must agree with it bit
/// for bit: same p_I, same acceptance, same transfers, and the same draws from the same seeds.
struct ReferenceQuantileKeys {
    let k: Int
    let q: [Double]
    var rankOf: [Int: Int] = [:]
    /// By rank: [m] (bounds [m + 1]).
    var p: [Double] = [], qr: [Double] = [], bounds: [Double] = [0], x: [Double] = []
    var optimum = 1.0, acceptance = 0.0, sStar = 0
    /// Per rank: donor-list head, own weight, receiver entries [start, end).
    var head: [Int] = [], own: [Double] = [], start: [Int] = [], end: [Int] = []
    /// Per transfer.
    var theta: [Double] = [], cell: [Int] = [], previous: [Int] = []
    var donor: [Int] = [], snapshot: [Int] = [], weight: [Double] = []

    init(target: TokenDistribution, draft: TokenDistribution, k: Int) {
        self.k = k
        q = target.probabilities
        let support = draft.support
        let values = support.map { draft[$0] }
        let keys = support.indices.map { Float(q[support[$0]] / values[$0]).bitPattern }
        let order = support.indices.sorted { keys[$0] != keys[$1] ? keys[$0] < keys[$1] : $0 < $1 }
        let m = order.count
        let factors = CellWeightFactors(k: k)
        var best = 0.0, prefixQ = 0.0
        for (j, i) in order.enumerated() {
            rankOf[support[i]] = j
            p.append(values[i])
            qr.append(q[support[i]])
            let lower = bounds[j]
            let upper = j == m - 1 ? 1 : lower + p[j]
            bounds.append(upper)
            prefixQ += qr[j]
            let (mean, upperPower) = factors.meanWeightAndPower(lower: lower, upper: upper)
            if prefixQ - upperPower < best {
                best = prefixQ - upperPower
                sStar = j + 1
            }
            x.append(p[j] * mean)
        }
        optimum = 1 + best
        head = Array(repeating: -1, count: m)
        own = Array(repeating: 1, count: m)
        start = Array(repeating: 0, count: m)
        end = Array(repeating: 0, count: m)
        var stack: [Int] = []
        // T*, ascending: excess goes to donors with slack.
        for j in sStar..<m where x[j] != qr[j] {
            if x[j] < qr[j] {
                stack.append(j)
                continue
            }
            var excess = x[j] - qr[j]
            let meanJ = factors.meanWeightAndPower(lower: bounds[j], upper: bounds[j + 1]).mean
            start[j] = theta.count
            while excess > 0, let i = stack.last {
                let slack = qr[i] - x[i]
                let d = min(slack, excess)
                transfer(receiver: j, donor: i, theta: d / (p[i] * (meanJ - x[i] / p[i])))
                if slack <= excess {
                    x[i] = qr[i]
                    stack.removeLast()
                } else {
                    x[i] += d
                }
                excess -= d
            }
            x[j] = qr[j] + max(excess, 0)
            end[j] = theta.count
        }
        // S*, descending: the mirror image.
        stack = []
        for j in stride(from: sStar - 1, through: 0, by: -1) where x[j] != qr[j] {
            if x[j] > qr[j] {
                stack.append(j)
                continue
            }
            var deficit = qr[j] - x[j]
            let meanJ = factors.meanWeightAndPower(lower: bounds[j], upper: bounds[j + 1]).mean
            start[j] = theta.count
            while deficit > 0, let i = stack.last {
                let surplus = x[i] - qr[i]
                let d = min(surplus, deficit)
                transfer(receiver: j, donor: i, theta: d / (p[i] * (x[i] / p[i] - meanJ)))
                if surplus <= deficit {
                    x[i] = qr[i]
                    stack.removeLast()
                } else {
                    x[i] -= d
                }
                deficit -= d
            }
            x[j] = qr[j] - max(deficit, 0)
            end[j] = theta.count
        }
        for j in 0..<m {
            own[j] = max(own[j], 0)
            acceptance += min(qr[j], x[j])
        }
    }

    private mutating func transfer(receiver j: Int, donor i: Int, theta rawTheta: Double) {
        let t = min(max(rawTheta, 0), 1)
        let omega = t * p[i] / p[j]
        donor.append(i)
        snapshot.append(head[i])
        weight.append(omega)
        own[j] -= omega
        theta.append(t)
        cell.append(j)
        previous.append(head[i])
        head[i] = theta.count - 1
    }

    func selected(_ token: Int) -> Double { rankOf[token].map { x[$0] } ?? 0 }

    func uniformKey<R: RandomNumberGenerator>(_ j: Int, _ rng: inout R) -> Double {
        bounds[j] + rng.nextUnit() * (bounds[j + 1] - bounds[j])
    }

    func donorKey<R: RandomNumberGenerator>(_ owner: Int, _ last: Int, _ rng: inout R) -> Double {
        var l = last
        while l >= 0 {
            if rng.nextUnit() < theta[l] { return uniformKey(cell[l], &rng) }
            l = previous[l]
        }
        return uniformKey(owner, &rng)
    }

    func key<R: RandomNumberGenerator>(_ j: Int, _ rng: inout R) -> Double {
        if start[j] == end[j] { return donorKey(j, head[j], &rng) }
        var u = rng.nextUnit()
        if u < own[j] { return uniformKey(j, &rng) }
        u -= own[j]
        for e in start[j]..<end[j] {
            if u < weight[e] || e == end[j] - 1 { return donorKey(donor[e], snapshot[e], &rng) }
            u -= weight[e]
        }
        return uniformKey(j, &rng)
    }

    /// Step 1 and step 2, drawing the residual by a scan over a dense p_I.
    func select<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> SelectionOutcome {
        var z = drafted[0], bestKey = -1.0
        for token in drafted {
            guard let j = rankOf[token] else { continue }
            let s = key(j, &rng)
            if s > bestKey {
                bestKey = s
                z = token
            }
        }
        let u = rng.nextUnit()
        let xz = selected(z)
        if 1 - acceptance <= 0 || xz <= 0 || u * xz < q[z] {
            return SelectionOutcome(token: z, accepted: true, drafted: drafted)
        }
        let residual = q.indices.map { q[$0] > 0 ? max(q[$0] - selected($0), 0) : 0 }
        var v = rng.nextUnit() * residual.reduce(0, +)
        var last = 0
        for y in q.indices where residual[y] > 0 {
            last = y
            if v < residual[y] { return SelectionOutcome(token: y, accepted: false, drafted: drafted) }
            v -= residual[y]
        }
        return SelectionOutcome(token: last, accepted: false, drafted: drafted)
    }
}
