/// `optimal`: the exact optimal multi-draft scheme for K i.i.d. drafts, by quantile keys
/// (`../shared/spec/OPTIMAL.md`; optimum from Khisti et al. 2025, SAMPLING.md §2).
///
/// Every drafted token draws a random *key* in [0, 1] from a measure `μ_y` built so that
/// `Σ_y p(y) μ_y` is uniform; the draft with the largest key is selected (step 1 of the canonical
/// decomposition) and single-draft speculative sampling then tests it against `q` with draft law
/// `p_I(y) = p(y) E_{μ_y}[K s^{K−1}]` (step 2). The measures are arranged (one sort, one prefix
/// scan, two stack passes) so that `Σ min(q, p_I)` equals the optimum
/// `P* = 1 + min_S [q(S) − p(S)^K]` exactly. Drafts must share one law; K = 1 is plain SD.
public struct OptimalScheme: SelectionScheme {
    public let name = "optimal"
    public init() {}

    public func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection {
        try checkLaws(target: target, drafts: drafts)
        guard drafts.areIdentical else {
            throw SamplingError.unsupported(
                scheme: name, reason: "quantile keys need identical drafts (one draft law); use weighted-is or specinfer")
        }
        return OptimalSelection(target: target, draft: drafts[0], drafts: drafts.count)
    }
}

/// The quantile-key construction for one position (OPTIMAL.md "Build"), in flat arrays.
///
/// Index spaces: *token ids* `0..<n`; *ranks* `0..<m` over the draft's support sorted by `q/p`
/// ascending. Rank j owns the cell `I_j = [c_j, c_{j+1}]` of width `p_j` (c = prefix sums of p).
/// A token's key measure is a mixture of uniform cells stored as
/// * donor lists: entries `(θ, cell, previous entry)`; a donor's measure after entry l is
///   `(1 − θ_l) μ^{(l−1)} + θ_l U(cell_l)`, its own cell at the bottom of the list;
/// * receiver mixtures: own weight on its own cell plus entries `(donor, donor's list head at the
///   time of the transfer, weight)`.
public struct OptimalSelection: PreparedSelection {
    public let vocabularySize: Int
    /// Number of drafts K.
    public let draftCount: Int
    /// The optimum `P*` from the sorted prefixes.
    public let optimum: Double
    /// `Σ min(q, p_I)`: equals `optimum` up to rounding.
    public let acceptance: Double
    /// Number of ranks in `S*` (the minimising prefix); ranks `≥ sStarCount` form `T*`.
    public let sStarCount: Int

    /// q: [n].
    let q: [Double]
    /// selected: [n], `p_I` by token id (0 off the draft's support).
    let selected: [Double]
    /// rankOf: [n], rank of a token or −1 when p = 0.
    let rankOf: [Int32]
    /// tokenAt: [m], token id at each rank.
    let tokenAt: [Int32]
    /// bounds: [m + 1], cell boundaries c_0 = 0 … c_m = 1.
    let bounds: [Double]
    let entryTheta: [Double]
    let entryCell: [Int32]
    let entryPrevious: [Int32]
    /// donorHead: [m], last list entry of each rank (−1: own cell only).
    let donorHead: [Int32]
    /// ownWeight: [m], weight of a receiver's own cell (1 for every other rank).
    let ownWeight: [Double]
    /// receiverStart, receiverEnd: [m], each receiver's range in the receiver entry arrays (empty
    /// for every other rank).
    let receiverStart: [Int32]
    let receiverEnd: [Int32]
    let receiverDonor: [Int32]
    let receiverSnapshot: [Int32]
    let receiverWeight: [Double]
    let residualMass: Double

    /// `p_I` as a dense vector: [n].
    public var selectedLaw: [Double] { selected }

    public init(target: TokenDistribution, draft: TokenDistribution, drafts k: Int) {
        let n = target.vocabularySize
        vocabularySize = n
        draftCount = k
        let q = target.probabilities
        self.q = q
        let p = draft.probabilities

        // 1. Sort the draft's support by q/p ascending (q = 0 first; ties harmless).
        let support = draft.support
        let m = support.count
        let keys = support.map { Float(q[$0] / p[$0]) }
        let order = radixSortedIndices(keys)
        var tokenAt = [Int32](repeating: 0, count: m)
        var rankOf = [Int32](repeating: -1, count: n)
        var pr = [Double](repeating: 0, count: m)
        var qr = [Double](repeating: 0, count: m)
        for j in 0..<m {
            let t = support[Int(order[j])]
            tokenAt[j] = Int32(t)
            rankOf[t] = Int32(j)
            pr[j] = p[t]
            qr[j] = q[t]
        }

        // Prefix sums in float64; c_m clamped to 1. k* = argmin_j (Q_j − c_j^K).
        var bounds = [Double](repeating: 0, count: m + 1)
        var best = 0.0
        var kStar = 0
        var prefixQ = 0.0
        for j in 0..<m {
            bounds[j + 1] = bounds[j] + pr[j]
            prefixQ += qr[j]
            let value = prefixQ - power(bounds[j + 1], k)
            if value < best {
                best = value
                kStar = j + 1
            }
        }
        bounds[m] = 1

        // 2. Greedy vertex: rank j owns U(I_j); mean weight ā_j = Σ_t c_{j+1}^t c_j^{K−1−t}.
        var meanWeight = [Double](repeating: 0, count: m)
        var x = [Double](repeating: 0, count: m)
        for j in 0..<m {
            meanWeight[j] = cellMeanWeight(lower: bounds[j], upper: bounds[j + 1], k: k)
            x[j] = pr[j] * meanWeight[j]
        }

        var entryTheta: [Double] = []
        var entryCell: [Int32] = []
        var entryPrevious: [Int32] = []
        var donorHead = [Int32](repeating: -1, count: m)
        var ownWeight = [Double](repeating: 1, count: m)
        var receiverStart = [Int32](repeating: 0, count: m)
        var receiverDonor: [Int32] = []
        var receiverSnapshot: [Int32] = []
        var receiverWeight: [Double] = []
        var receiverEnd = [Int32](repeating: 0, count: m)
        var stack: [Int] = []
        entryTheta.reserveCapacity(2 * m)
        entryCell.reserveCapacity(2 * m)
        entryPrevious.reserveCapacity(2 * m)

        /// Moves mass `d` of `x` between receiver j and donor i by mixing `θ` of U(I_j) into the donor.
        func transfer(receiver j: Int, donor i: Int, theta rawTheta: Double) {
            let theta = min(max(rawTheta, 0), 1)
            receiverDonor.append(Int32(i))
            receiverSnapshot.append(donorHead[i])
            let omega = theta * pr[i] / pr[j]
            receiverWeight.append(omega)
            ownWeight[j] -= omega
            entryTheta.append(theta)
            entryCell.append(Int32(j))
            entryPrevious.append(donorHead[i])
            donorHead[i] = Int32(entryTheta.count - 1)
        }

        // 3. T* pass, ascending: tokens over their target (excess) give cell mass to donors with slack.
        var receiverEntries = 0
        for j in kStar..<m {
            if x[j] <= qr[j] {
                if x[j] < qr[j] { stack.append(j) }
                continue
            }
            var excess = x[j] - qr[j]
            receiverStart[j] = Int32(receiverEntries)
            while excess > 0, let i = stack.last {
                let slack = qr[i] - x[i]
                let d = min(slack, excess)
                let a = x[i] / pr[i]
                transfer(receiver: j, donor: i, theta: d / (pr[i] * (meanWeight[j] - a)))
                receiverEntries += 1
                if slack <= excess {
                    x[i] = qr[i]
                    stack.removeLast()
                } else {
                    x[i] += d
                }
                excess -= d
            }
            x[j] = qr[j] + max(excess, 0)
            receiverEnd[j] = Int32(receiverEntries)
        }
        // 4. S* pass, descending: tokens under their target (deficit) take from donors with surplus.
        stack.removeAll(keepingCapacity: true)
        for j in stride(from: kStar - 1, through: 0, by: -1) {
            if x[j] >= qr[j] {
                if x[j] > qr[j] { stack.append(j) }
                continue
            }
            var deficit = qr[j] - x[j]
            receiverStart[j] = Int32(receiverEntries)
            while deficit > 0, let i = stack.last {
                let surplus = x[i] - qr[i]
                let d = min(surplus, deficit)
                let a = x[i] / pr[i]
                transfer(receiver: j, donor: i, theta: d / (pr[i] * (a - meanWeight[j])))
                receiverEntries += 1
                if surplus <= deficit {
                    x[i] = qr[i]
                    stack.removeLast()
                } else {
                    x[i] -= d
                }
                deficit -= d
            }
            x[j] = qr[j] - max(deficit, 0)
            receiverEnd[j] = Int32(receiverEntries)
        }
        for j in 0..<m { ownWeight[j] = max(ownWeight[j], 0) }

        var selected = [Double](repeating: 0, count: n)
        var acceptance = 0.0
        var residual = 0.0
        for j in 0..<m { selected[Int(tokenAt[j])] = x[j] }
        for y in 0..<n {
            acceptance += min(q[y], selected[y])
            residual += max(q[y] - selected[y], 0)
        }
        self.optimum = 1 + best
        self.sStarCount = kStar
        self.acceptance = acceptance
        self.residualMass = residual
        self.selected = selected
        self.rankOf = rankOf
        self.tokenAt = tokenAt
        self.bounds = bounds
        self.entryTheta = entryTheta
        self.entryCell = entryCell
        self.entryPrevious = entryPrevious
        self.donorHead = donorHead
        self.ownWeight = ownWeight
        self.receiverStart = receiverStart
        self.receiverEnd = receiverEnd
        self.receiverDonor = receiverDonor
        self.receiverSnapshot = receiverSnapshot
        self.receiverWeight = receiverWeight
    }

    // MARK: Run time

    @inline(__always)
    func uniformKey<R: RandomNumberGenerator>(inCell j: Int, using rng: inout R) -> Double {
        let lo = bounds[j], hi = bounds[j + 1]
        return lo + rng.nextUnit() * (hi - lo)
    }

    /// A key from rank `owner`'s donor list as it stood with `head` as its last entry.
    func donorKey<R: RandomNumberGenerator>(owner: Int, head: Int32, using rng: inout R) -> Double {
        var l = Int(head)
        while l >= 0 {
            if rng.nextUnit() < entryTheta[l] { return uniformKey(inCell: Int(entryCell[l]), using: &rng) }
            l = Int(entryPrevious[l])
        }
        return uniformKey(inCell: owner, using: &rng)
    }

    /// A key drawn from the measure of the token at rank j.
    func key<R: RandomNumberGenerator>(rank j: Int, using rng: inout R) -> Double {
        let start = Int(receiverStart[j]), end = Int(receiverEnd[j])
        if start == end { return donorKey(owner: j, head: donorHead[j], using: &rng) }
        var u = rng.nextUnit()
        if u < ownWeight[j] { return uniformKey(inCell: j, using: &rng) }
        u -= ownWeight[j]
        for e in start..<end {
            if u < receiverWeight[e] || e == end - 1 {
                return donorKey(owner: Int(receiverDonor[e]), head: receiverSnapshot[e], using: &rng)
            }
            u -= receiverWeight[e]
        }
        return uniformKey(inCell: j, using: &rng)
    }

    /// Step 1: the drafted token with the largest key (each draft draws its own key).
    public func choose<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> Int {
        var bestToken = drafted[0]
        var bestKey = -1.0
        for token in drafted {
            let rank = Int(rankOf[token])
            guard rank >= 0 else { continue }  // never drafted under p; defensive
            let s = key(rank: rank, using: &rng)
            if s > bestKey {
                bestKey = s
                bestToken = token
            }
        }
        return bestToken
    }

    public func select<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> SelectionOutcome {
        let z = choose(drafted, using: &rng)
        let u = rng.nextUnit()
        let pz = selected[z]
        if residualMass <= 0 || pz <= 0 || u * pz < q[z] {
            return SelectionOutcome(token: z, accepted: true, drafted: drafted)
        }
        // Residual (q − p_I)+ lives on T* and off the draft's support.
        var v = rng.nextUnit() * residualMass
        var last = z
        for y in 0..<vocabularySize {
            let r = q[y] - selected[y]
            if r > 0 {
                last = y
                if v < r { return SelectionOutcome(token: y, accepted: false, drafted: drafted) }
                v -= r
            }
        }
        return SelectionOutcome(token: last, accepted: false, drafted: drafted)
    }
}

/// `x^k` for a small non-negative integer k by repeated squaring.
@inline(__always)
func power(_ x: Double, _ k: Int) -> Double {
    var result = 1.0, base = x, e = k
    while e > 0 {
        if e & 1 == 1 { result *= base }
        base *= base
        e >>= 1
    }
    return result
}

/// `E_{U[a,b]}[K s^{K−1}] = Σ_{t=0}^{K−1} b^t a^{K−1−t}` — never `(b^K − a^K)/(b − a)`, which cancels.
@inline(__always)
func cellMeanWeight(lower a: Double, upper b: Double, k: Int) -> Double {
    // Horner-like: h_i = b h_{i−1} + a^i gives Σ_{t=0}^{i} b^t a^{i−t}; multiplications only.
    var h = 1.0
    var aPower = 1.0
    for _ in 1..<max(k, 1) {
        aPower *= a
        h = b * h + aPower
    }
    return h
}

/// Indices that sort `keys` ascending (stable), by an LSD radix sort on the IEEE-754 bit patterns
/// (sign flipped for negatives so that the unsigned order is the numeric order), three 11-bit passes.
func radixSortedIndices(_ keys: [Float]) -> [Int32] {
    let m = keys.count
    var bits = [UInt32](repeating: 0, count: m)
    for i in 0..<m {
        let b = keys[i].bitPattern
        bits[i] = b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
    }
    var index = [Int32](repeating: 0, count: m)
    for i in 0..<m { index[i] = Int32(i) }
    var scratch = [Int32](repeating: 0, count: m)
    var counts = [Int](repeating: 0, count: 2048)
    for shift in stride(from: 0, to: 33, by: 11) {
        for i in 0..<2048 { counts[i] = 0 }
        for i in 0..<m { counts[Int((bits[Int(index[i])] >> UInt32(shift)) & 0x7FF)] += 1 }
        var total = 0
        for i in 0..<2048 {
            let c = counts[i]
            counts[i] = total
            total += c
        }
        for i in 0..<m {
            let digit = Int((bits[Int(index[i])] >> UInt32(shift)) & 0x7FF)
            scratch[counts[digit]] = index[i]
            counts[digit] += 1
        }
        swap(&index, &scratch)
    }
    return index
}
