/// Look-ups and key draws on the built tables (the sampling side of ``QuantileKeyTables``).
extension QuantileKeyTables {
    /// The rank of `token`, or −1 when the draft cannot produce it (p = 0): its support index by
    /// binary search, then its rank by binary search of the records, which are in rank order, i.e.
    /// ascending by (sort key, support index); the key is recomputed from the token's q and p exactly
    /// as the sort computed it. O(log m); nothing of size m is kept for it.
    @inline(__always)
    func rank(of token: Int) -> Int {
        guard let i = m == n ? (token >= 0 && token < n ? token : nil) : draft.supportIndex(of: token) else {
            return -1
        }
        let key = ratioKey(q: q[token], p: draft.probability(atSupportIndex: i))
        let index = UInt32(i)
        var lo = 0, hi = m
        while lo < hi {
            let mid = (lo + hi) >> 1
            if records[mid].precedes(key: key, index: index) { lo = mid + 1 } else { hi = mid }
        }
        assert(lo < m && records[lo].index == index, "the records are the support in rank order")
        return lo
    }

    /// `p_I` by support index: [m] (the rejection path's merged scan reads it in token order).
    func selectedBySupportIndex() -> [Double] {
        var values = [Double](repeating: 0, count: m)
        for j in 0..<m { values[Int(records[j].index)] = x[j] }
        return values
    }

    /// The transfers whose receiver is rank j (consecutive entries; empty for a donor).
    func receiverEntries(_ j: Int) -> Range<Int> {
        let v = Int(measure[j])
        guard v <= -2 else { return 0..<0 }
        var end = -2 - v
        while end < entryCount, Int(entries[end].cell) == j { end += 1 }
        return (-2 - v)..<end
    }

    /// The last entry of rank j's donor list (−1: none; also −1 for a receiver).
    func donorHead(_ j: Int) -> Int32 { max(measure[j], -1) }

    /// The mixing weight θ of transfer e, evaluated from the operands the stack pass kept (``KeyEntry``):
    /// `clamp(d / (p_donor · s (ā_cell − x / p_donor)), 0, 1)` with s = +1 for a receiver in T* (rank
    /// ≥ |S*|), −1 in S*, and ā_cell recomputed from the cell's bounds — as the pass would have computed it.
    @inline(__always)
    func theta(_ e: Int) -> Double {
        let entry = entries[e]
        let j = Int(entry.cell)
        let s: Double = j >= sStar ? 1 : -1
        let p = records[Int(entry.donor)].p
        let meanJ = CellWeightFactors(k: k).meanWeightAndPower(lower: bounds[j], upper: bounds[j + 1]).mean
        return min(max(entry.mass / (p * (s * (meanJ - entry.donorX / p))), 0), 1)
    }

    /// Receiver weight of transfer e: `ω = θ p_donor / p_receiver` (`theta`: θ of e when already known).
    @inline(__always)
    func receiverWeight(_ e: Int, theta known: Double? = nil) -> Double {
        let entry = entries[e]
        return (known ?? theta(e)) * records[Int(entry.donor)].p / records[Int(entry.cell)].p
    }

    /// The weight a receiver keeps on its own cell: 1 less its transfers' weights, in transfer order,
    /// floored at 0 (1 for a rank that received nothing).
    func ownWeight(_ j: Int) -> Double {
        var own = 1.0
        for e in receiverEntries(j) { own -= receiverWeight(e) }
        return max(own, 0)
    }

    @inline(__always)
    func uniformKey<R: RandomNumberGenerator>(inCell j: Int, using rng: inout R) -> Double {
        let lo = bounds[j], hi = bounds[j + 1]
        return lo + rng.nextUnit() * (hi - lo)
    }

    /// A key from rank `owner`'s donor list as it stood with `head` as its last entry: walk back,
    /// taking entry l with probability θ_l, else fall through to the own cell.
    @inline(__always)
    func donorKey<R: RandomNumberGenerator>(owner: Int, head: Int32, using rng: inout R) -> Double {
        var l = Int(head)
        while l >= 0 {
            let entry = entries[l]
            if rng.nextUnit() < theta(l) { return uniformKey(inCell: Int(entry.cell), using: &rng) }
            l = Int(entry.previous)
        }
        return uniformKey(inCell: owner, using: &rng)
    }

    /// A key drawn from the measure of the token at rank j.
    func key<R: RandomNumberGenerator>(rank j: Int, using rng: inout R) -> Double {
        let received = receiverEntries(j)
        if received.isEmpty { return donorKey(owner: j, head: donorHead(j), using: &rng) }
        var u = rng.nextUnit()
        let own = ownWeight(j)
        if u < own { return uniformKey(inCell: j, using: &rng) }
        u -= own
        for e in received {
            // Whatever weight rounding leaves over goes to the last entry.
            let omega = receiverWeight(e)
            if u < omega || e == received.upperBound - 1 {
                let entry = entries[e]
                return donorKey(owner: Int(entry.donor), head: entry.previous, using: &rng)
            }
            u -= omega
        }
        return uniformKey(inCell: j, using: &rng)
    }
}
