import Foundation

/// `optimal`: the exact optimal multi-draft scheme for K i.i.d. drafts, by quantile keys
/// (`../shared/spec/OPTIMAL.md`; optimum from Khisti et al. 2025, SAMPLING.md §2).
///
/// Every drafted token draws a random *key* in [0, 1] from a measure `μ_y` built so that
/// `Σ_y p(y) μ_y` is uniform; the draft with the largest key is selected (step 1 of the canonical
/// decomposition) and single-draft speculative sampling then tests it against `q` with draft law
/// `p_I(y) = p(y) E_{μ_y}[K s^{K−1}]` (step 2). The measures are arranged (one sort, one prefix
/// scan, two stack passes) so that `Σ min(q, p_I)` equals the optimum
/// `P* = 1 + min_S [q(S) − p(S)^K]` exactly. K = 1 is plain speculative sampling.
///
/// Drafts of several laws (different models or temperatures) are handled by
/// ``GroupedOptimalSelection``: exact, optimal within each group, not optimal across groups.
public struct OptimalScheme: SelectionScheme {
    public let name = "optimal"
    /// Read at the build's phase boundaries (benchmarks pass a clock in nanoseconds; nil: not timed,
    /// the sampling core reads no clock).
    public var stopwatch: (@Sendable () -> UInt64)?

    public init(stopwatch: (@Sendable () -> UInt64)? = nil) { self.stopwatch = stopwatch }

    public func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection {
        try checkLaws(target: target, drafts: drafts)
        if drafts.areIdentical {
            return OptimalSelection(target: target, draft: drafts[0], drafts: drafts.count, stopwatch: stopwatch)
        }
        return GroupedOptimalSelection(target: target, drafts: drafts)
    }
}

/// The quantile-key construction for one position (OPTIMAL.md "Build"), in flat buffers.
///
/// Index spaces: *token ids* `0..<n`; *ranks* `0..<m` over the draft's support sorted by `q/p`
/// ascending. Rank j owns the cell `I_j = [c_j, c_{j+1}]` of width `p_j` (c = prefix sums of p).
/// A token's key measure is a mixture of uniform cells stored as
/// * donor lists: entries `(θ, cell, previous entry)`; a donor's measure after entry l is
///   `(1 − θ_l) μ^{(l−1)} + θ_l U(cell_l)`, its own cell at the bottom of the list;
/// * receiver mixtures: own weight on its own cell plus entries `(donor, donor's list head at the
///   time of the transfer, weight)`.
/// Entry e is also transfer number e, in build order: receiver `entryCell[e]`, donor `receiverDonor[e]`.
public struct OptimalSelection: PreparedSelection {
    public let vocabularySize: Int
    /// Number of drafts K.
    public let draftCount: Int
    /// The optimum `P*` from the sorted prefixes.
    public var optimum: Double { tables.optimum }
    /// `Σ min(q, p_I)`: equals `optimum` up to rounding.
    public var acceptance: Double { tables.acceptance }
    /// Number of ranks in `S*` (the minimising prefix); ranks `≥ sStarCount` form `T*`.
    public var sStarCount: Int { tables.sStar }
    /// Number of mass transfers the two passes made (at most 2m).
    public var transferCount: Int { tables.entries }
    /// Where the build's time went, in nanoseconds: the ratio sort, the prefix scan (optimum and
    /// greedy vertex), and the two stack passes with the final acceptance sum. Zero without a stopwatch.
    public var buildNanoseconds: (sort: UInt64, scan: UInt64, passes: UInt64) { tables.split }

    let q: [Double]
    let tables: QuantileKeyTables

    public init(
        target: TokenDistribution, draft: TokenDistribution, drafts k: Int, stopwatch: (@Sendable () -> UInt64)? = nil
    ) {
        vocabularySize = target.vocabularySize
        draftCount = k
        q = target.probabilities
        tables = QuantileKeyTables(q: q, draft: draft, k: k, stopwatch: stopwatch)
    }

    /// `p_I` of a token (0 off the draft's support).
    @inline(__always)
    public func selectedProbability(_ token: Int) -> Double {
        let rank = tables.rank(of: token)
        return rank >= 0 ? tables.x[rank] : 0
    }

    /// `p_I` as a dense vector: [n] (built on request).
    public var selectedLaw: [Double] { (0..<vocabularySize).map(selectedProbability) }

    /// Step 1: the drafted token with the largest key (each draft draws its own key).
    public func choose<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> Int {
        var bestToken = drafted[0]
        var bestKey = -1.0
        for token in drafted {
            let rank = tables.rank(of: token)
            guard rank >= 0 else { continue }  // never drafted under p
            let s = tables.key(rank: rank, using: &rng)
            if s > bestKey {
                bestKey = s
                bestToken = token
            }
        }
        return bestToken
    }

    public func select<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> SelectionOutcome {
        let z = choose(drafted, using: &rng)
        return speculativeStep(z, drafted: drafted, using: &rng)
    }

    /// Step 2: accept z with probability `min(1, q_z / p_I(z))`, else draw from `(q − p_I)+`, which
    /// lives on T* and off the draft's support. Only the rejection path reads all of `q`, merged with
    /// the draft's support (no per-token look-up of `p_I`).
    func speculativeStep<R: RandomNumberGenerator>(
        _ z: Int, drafted: [Int], using rng: inout R
    ) -> SelectionOutcome {
        let u = rng.nextUnit()
        let xz = selectedProbability(z)
        if 1 - acceptance <= 0 || xz <= 0 || u * xz < q[z] {
            return SelectionOutcome(token: z, accepted: true, drafted: drafted)
        }
        let tables = tables
        let y = sampleResidual(target: q, support: tables.support, using: &rng) {
            tables.x[Int(tables.rankOfIndex[$0])]
        }
        return SelectionOutcome(token: y, accepted: false, drafted: drafted)
    }
}

/// Draws from `(q − x)+` normalised, where `x` is zero off the sorted token list `support` and
/// `x(support[i]) = selected(i)`: one merged scan for the mass, one for the draw, term by term the
/// arithmetic of a scan over a dense `x` (zeros off the support), so the same token. With no residual
/// mass (acceptance 1, where rounding alone rejects) the last positive term, as before.
func sampleResidual<R: RandomNumberGenerator>(
    target q: [Double], support: [Int], using rng: inout R, selected: (Int) -> Double
) -> Int {
    q.withUnsafeBufferPointer { q in
        support.withUnsafeBufferPointer { support in
            func residual(_ y: Int, _ i: inout Int) -> Double {
                while i < support.count, support[i] < y { i += 1 }
                return i < support.count && support[i] == y ? q[y] - selected(i) : q[y] - 0
            }
            var mass = 0.0
            var i = 0
            for y in 0..<q.count where q[y] > 0 { mass += max(residual(y, &i), 0) }
            var v = rng.nextUnit() * mass
            var last = 0
            i = 0
            for y in 0..<q.count where q[y] > 0 {
                let r = residual(y, &i)
                if r > 0 {
                    last = y
                    if v < r { return y }
                    v -= r
                }
            }
            return last
        }
    }
}

/// The flat tables of one quantile-key construction. Immutable once built (hence Sendable).
final class QuantileKeyTables: @unchecked Sendable {
    let n: Int
    let m: Int
    let k: Int
    private(set) var optimum = 1.0
    private(set) var acceptance = 0.0
    private(set) var sStar = 0
    private(set) var entries = 0
    private(set) var split: (sort: UInt64, scan: UInt64, passes: UInt64) = (0, 0, 0)
    /// The pooled block all tables live in.
    private let block: UnsafeMutableRawPointer
    private let blockBytes: Int

    /// The draft's support (token ids ascending): index space of ``rankOfIndex``; ``rank(of:)`` finds a
    /// token here by binary search, so nothing of size n is kept.
    let support: [Int]
    /// rankOfIndex: [m], the rank of `support[i]`.
    let rankOfIndex: UnsafeMutablePointer<Int32>
    /// indexAt: [m], the support index at each rank (the token is `support[indexAt[j]]`; keeping the
    /// index, which the sorted records carry, spares the scan a random read of the support per rank);
    /// pr, qr: [m] p and q by rank; bounds: [m + 1]; x: [m] p_I by rank. (The cell weight ā_j is
    /// recomputed from the bounds where a pass needs it, for receivers only: one stream fewer to write.)
    let indexAt: UnsafeMutablePointer<Int32>
    let pr: UnsafeMutablePointer<Double>
    let qr: UnsafeMutablePointer<Double>
    let bounds: UnsafeMutablePointer<Double>
    let x: UnsafeMutablePointer<Double>
    /// Donor list entries: [2m].
    let entryTheta: UnsafeMutablePointer<Double>
    let entryCell: UnsafeMutablePointer<Int32>
    let entryPrevious: UnsafeMutablePointer<Int32>
    /// donorHead: [m]; ownWeight: [m]; receiverStart/End: [m].
    let donorHead: UnsafeMutablePointer<Int32>
    let ownWeight: UnsafeMutablePointer<Double>
    let receiverStart: UnsafeMutablePointer<Int32>
    let receiverEnd: UnsafeMutablePointer<Int32>
    /// Receiver entries, one per transfer: [2m].
    let receiverDonor: UnsafeMutablePointer<Int32>
    let receiverSnapshot: UnsafeMutablePointer<Int32>
    let receiverWeight: UnsafeMutablePointer<Double>

    /// Builds the tables for target `q: [n]` (dense) and the draft law, dense or sparse: only the
    /// draft's support and `q` at its tokens are read (O(m) memory and time beyond the sort).
    init(q: [Double], draft: TokenDistribution, k: Int, stopwatch: (@Sendable () -> UInt64)? = nil) {
        n = q.count
        support = draft.support
        m = support.count
        self.k = k
        // One pooled block holds every table (and the build's scratch), reused across positions.
        var layout = ScratchLayout()
        let oRank = layout.reserve(Int32.self, m)
        let oToken = layout.reserve(Int32.self, m)
        let oP = layout.reserve(Double.self, m)
        let oQ = layout.reserve(Double.self, m)
        let oBounds = layout.reserve(Double.self, m + 1)
        let oX = layout.reserve(Double.self, m)
        let oTheta = layout.reserve(Double.self, 2 * m)
        let oCell = layout.reserve(Int32.self, 2 * m)
        let oPrevious = layout.reserve(Int32.self, 2 * m)
        let oHead = layout.reserve(Int32.self, m)
        let oOwn = layout.reserve(Double.self, m)
        let oStart = layout.reserve(Int32.self, m)
        let oEnd = layout.reserve(Int32.self, m)
        let oDonor = layout.reserve(Int32.self, 2 * m)
        let oSnapshot = layout.reserve(Int32.self, 2 * m)
        let oWeight = layout.reserve(Double.self, 2 * m)
        let oStack = layout.reserve(Int32.self, m)
        let oKeys = layout.reserve(UInt32.self, m)
        let oRecords = layout.reserve(RatioRecord.self, m)
        let oLocal = layout.reserve(UInt64.self, 2 * m)
        let oCounts = layout.reserve(Int32.self, RatioSort.countsSize)
        blockBytes = layout.bytes
        let base = ScratchPool.take(bytes: layout.bytes)
        block = base
        func at<T>(_ offset: Int, _ type: T.Type) -> UnsafeMutablePointer<T> { carve(base, offset, type) }
        rankOfIndex = at(oRank, Int32.self)
        indexAt = at(oToken, Int32.self)
        pr = at(oP, Double.self)
        qr = at(oQ, Double.self)
        bounds = at(oBounds, Double.self)
        x = at(oX, Double.self)
        entryTheta = at(oTheta, Double.self)
        entryCell = at(oCell, Int32.self)
        entryPrevious = at(oPrevious, Int32.self)
        donorHead = at(oHead, Int32.self)
        ownWeight = at(oOwn, Double.self)
        receiverStart = at(oStart, Int32.self)
        receiverEnd = at(oEnd, Int32.self)
        receiverDonor = at(oDonor, Int32.self)
        receiverSnapshot = at(oSnapshot, Int32.self)
        receiverWeight = at(oWeight, Double.self)
        let scratch = RatioSort(
            keys: at(oKeys, UInt32.self), records: at(oRecords, RatioRecord.self), local: at(oLocal, UInt64.self),
            counts: at(oCounts, Int32.self))
        let stack = at(oStack, Int32.self)
        // 1. Sort the support by q/p ascending (q = 0 first; ties harmless), exactly by the float32
        //    ratio bits, ties in token order (``RatioSort``), with p and q carried along so nothing is
        //    gathered at random afterwards; a sparse draft law is read through its support only.
        let sortStarted = stopwatch?() ?? 0
        let values = draft.isSparse ? draft.supportProbabilities : []
        let dense = draft.isSparse ? [] : draft.probabilities
        q.withUnsafeBufferPointer { qb in
            support.withUnsafeBufferPointer { sb in
                values.withUnsafeBufferPointer { vb in
                    dense.withUnsafeBufferPointer { pb in
                        let sparse = draft.isSparse
                        scratch.sort(
                            count: m, q: qb, support: sb, dense: sparse ? nil : pb.baseAddress,
                            sparse: sparse ? vb.baseAddress : nil)
                    }
                }
            }
        }
        build(scratch: scratch, stack: stack, sortStarted: sortStarted, stopwatch: stopwatch)
    }

    deinit {
        ScratchPool.give(block, bytes: blockBytes)
    }

    /// Steps 2–4 after step 1 (``RatioSort/sort(count:q:support:dense:sparse:)``, done by the caller).
    private func build(
        scratch: RatioSort, stack: UnsafeMutablePointer<Int32>, sortStarted t0: UInt64,
        stopwatch: (@Sendable () -> UInt64)?
    ) {
        let now = stopwatch ?? { 0 }
        let records = scratch.records
        let t1 = now()
        // 2. One fused scan in rank order (``RatioSort/forEachInOrder``): ranks, tokens, p and q by
        //    rank, prefix sums in float64 (c_m clamped to 1), k* = argmin_j (Q_j − c_j^K), and the
        //    greedy vertex — rank j owns U(I_j), ā_j = Σ_t c_{j+1}^t c_j^{K−1−t}, x_j = p_j ā_j.
        bounds[0] = 0
        var best = 0.0
        var kStar = 0
        var prefixQ = 0.0
        let factors = CellWeightFactors(k: k)
        var j = 0
        scratch.forEachInOrder(count: m) { r in
            let record = records[r]
            let i = Int(record.index)
            indexAt[j] = Int32(truncatingIfNeeded: i)
            rankOfIndex[i] = Int32(j)
            let pj = record.p, qj = record.q
            pr[j] = pj
            qr[j] = qj
            let lower = bounds[j]
            let upper = j == m - 1 ? 1 : lower + pj
            bounds[j + 1] = upper
            prefixQ += qj
            let (mean, upperPower) = factors.meanWeightAndPower(lower: lower, upper: upper)
            let value = prefixQ - upperPower
            if value < best {
                best = value
                kStar = j + 1
            }
            x[j] = pj * mean
            j += 1
        }
        optimum = 1 + best
        sStar = kStar
        let t2 = now()

        var top = 0
        var e = 0

        // Every rank is visited once by one of the passes below, before any transfer can touch it (a
        // receiver at its visit, donors after theirs): its measure starts empty there.
        @inline(__always) func startMeasure(_ j: Int) {
            donorHead[j] = -1
            ownWeight[j] = 1
            receiverStart[j] = 0
            receiverEnd[j] = 0
        }
        @inline(__always) func cellMeanWeight(_ j: Int) -> Double {
            factors.meanWeightAndPower(lower: bounds[j], upper: bounds[j + 1]).mean
        }

        // 3. T* pass, ascending: a token over its target (excess) mixes pieces of its own cell into
        //    donors with slack (last in, first out); the donor's old measure moves to the token.
        for j in kStar..<m {
            startMeasure(j)
            if x[j] <= qr[j] {
                if x[j] < qr[j] {
                    stack[top] = Int32(j)
                    top += 1
                }
                continue
            }
            var excess = x[j] - qr[j]
            let meanJ = cellMeanWeight(j)
            receiverStart[j] = Int32(e)
            while excess > 0, top > 0 {
                let i = Int(stack[top - 1])
                let slack = qr[i] - x[i]
                let d = min(slack, excess)
                let theta = d / (pr[i] * (meanJ - x[i] / pr[i]))
                record(transfer: e, receiver: j, donor: i, theta: theta)
                e += 1
                if slack <= excess {
                    x[i] = qr[i]
                    top -= 1
                } else {
                    x[i] += d
                }
                excess -= d
            }
            x[j] = qr[j] + max(excess, 0)
            receiverEnd[j] = Int32(e)
        }
        // 4. S* pass, descending: the mirror image; a token under its target (deficit) takes from
        //    donors with surplus.
        top = 0
        j = kStar - 1
        while j >= 0 {
            defer { j -= 1 }
            startMeasure(j)
            if x[j] >= qr[j] {
                if x[j] > qr[j] {
                    stack[top] = Int32(j)
                    top += 1
                }
                continue
            }
            var deficit = qr[j] - x[j]
            let meanJ = cellMeanWeight(j)
            receiverStart[j] = Int32(e)
            while deficit > 0, top > 0 {
                let i = Int(stack[top - 1])
                let surplus = x[i] - qr[i]
                let d = min(surplus, deficit)
                let theta = d / (pr[i] * (x[i] / pr[i] - meanJ))
                record(transfer: e, receiver: j, donor: i, theta: theta)
                e += 1
                if surplus <= deficit {
                    x[i] = qr[i]
                    top -= 1
                } else {
                    x[i] -= d
                }
                deficit -= d
            }
            x[j] = qr[j] - max(deficit, 0)
            receiverEnd[j] = Int32(e)
        }
        entries = e

        var acceptance = 0.0
        for j in 0..<m {
            ownWeight[j] = max(ownWeight[j], 0)
            acceptance += min(qr[j], x[j])
        }
        self.acceptance = acceptance
        split = (t1 - t0, t2 - t1, now() - t2)
    }

    /// Transfer e: donor i's measure becomes `(1 − θ) μ_i + θ U(I_j)`; receiver j trades weight
    /// `θ p_i / p_j` of its own cell for donor i's measure as it stood before (its list head now).
    @inline(__always)
    private func record(transfer e: Int, receiver j: Int, donor i: Int, theta rawTheta: Double) {
        let theta = min(max(rawTheta, 0), 1)
        let omega = theta * pr[i] / pr[j]
        receiverDonor[e] = Int32(i)
        receiverSnapshot[e] = donorHead[i]
        receiverWeight[e] = omega
        ownWeight[j] -= omega
        entryTheta[e] = theta
        entryCell[e] = Int32(j)
        entryPrevious[e] = donorHead[i]
        donorHead[i] = Int32(e)
    }

    /// The rank of `token`, or −1 when the draft cannot produce it (p = 0): a binary search of the
    /// support, O(log m).
    @inline(__always)
    func rank(of token: Int) -> Int {
        var lo = 0, hi = m
        while lo < hi {
            let mid = (lo + hi) >> 1
            if support[mid] < token { lo = mid + 1 } else { hi = mid }
        }
        return lo < m && support[lo] == token ? Int(rankOfIndex[lo]) : -1
    }

    // MARK: Keys

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
            // Whatever weight rounding leaves over goes to the last entry.
            if u < receiverWeight[e] || e == end - 1 {
                return donorKey(owner: Int(receiverDonor[e]), head: receiverSnapshot[e], using: &rng)
            }
            u -= receiverWeight[e]
        }
        return uniformKey(inCell: j, using: &rng)
    }
}

/// The support's token ids ordered by `q/p` ascending (q = 0 first; near-ties within float32
/// rounding in any order): a radix sort of (float32 ratio bits, index) pairs.
func supportSortedByRatio(q: [Double], p: [Double], support: [Int]) -> [Int32] {
    let m = support.count
    let packed = UnsafeMutablePointer<UInt64>.allocate(capacity: max(2 * m, 1))
    defer { packed.deallocate() }
    for i in 0..<m {
        let t = support[i]
        packed[i] = UInt64(Float(q[t] / p[t]).bitPattern) << 32 | UInt64(i)
    }
    radixSortHigh32(packed, scratch: packed + m, count: m)
    return (0..<m).map { Int32(support[Int(packed[$0] & 0xFFFF_FFFF)]) }
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

/// `ā = E_{U[L,U]}[K s^{K−1}] = Σ_{t=0}^{K−1} U^t L^{K−1−t}` and `U^K` with a short dependency chain:
/// with K = r·2^a (r odd), `U^K − L^K = (U^r − L^r) Π_{i<a} (U^{r2^i} + L^{r2^i})`, so
/// `ā = [Σ_{t<r} U^t L^{r−1−t}] · Π_{i<a} (U^{r2^i} + L^{r2^i})` — a product of sums of positive
/// terms: no cancellation (never `(U^K − L^K)/(U − L)`), and no K-long Horner chain.
struct CellWeightFactors {
    let oddPart: Int
    let doublings: Int

    init(k: Int) {
        var r = max(k, 1), a = 0
        while r % 2 == 0 {
            r /= 2
            a += 1
        }
        oddPart = r
        doublings = a
    }

    @inline(__always)
    func meanWeightAndPower(lower l: Double, upper u: Double) -> (mean: Double, upperPower: Double) {
        var h = 1.0, lPower = 1.0, uPower = u, lOdd = l
        var i = 1
        while i < oddPart {
            lPower *= l
            h = u * h + lPower
            uPower *= u
            lOdd *= l
            i += 1
        }
        var mean = h
        var d = 0
        while d < doublings {
            mean *= uPower + lOdd
            uPower *= uPower
            lOdd *= lOdd
            d += 1
        }
        return (mean, uPower)
    }
}

/// `E_{U[a,b]}[K s^{K−1}] = Σ_{t=0}^{K−1} b^t a^{K−1−t}` — never `(b^K − a^K)/(b − a)`, which cancels.
@inline(__always)
func cellMeanWeight(lower a: Double, upper b: Double, k: Int) -> Double {
    // h_i = b h_{i−1} + a^i gives Σ_{t=0}^{i} b^t a^{i−t}; multiplications only.
    var h = 1.0
    var aPower = 1.0
    var i = 1
    while i < k {
        aPower *= a
        h = b * h + aPower
        i += 1
    }
    return h
}

/// Sorts `values` ascending by their high 32 bits (stable), LSD radix with three 11-bit digits, given
/// the three digit histograms of the high half (`histograms`: [3 × 2048], bits 0–10, 11–21, 22–31;
/// turned into offsets here). Returns where the sorted values are: `scratch` (three passes).
func radixSortHigh32(
    _ values: UnsafeMutablePointer<UInt64>, scratch: UnsafeMutablePointer<UInt64>, count: Int,
    histograms counts: UnsafeMutablePointer<Int>
) -> UnsafeMutablePointer<UInt64> {
    for pass in 0..<3 {
        var total = 0
        for d in 0..<2048 {
            let c = counts[pass * 2048 + d]
            counts[pass * 2048 + d] = total
            total += c
        }
    }
    var source = values, destination = scratch
    var shift: UInt64 = 32
    for pass in 0..<3 {
        let offsets = counts + pass * 2048
        for i in 0..<count {
            let v = source[i]
            let digit = Int((v >> shift) & 0x7FF)
            destination[offsets[digit]] = v
            offsets[digit] += 1
        }
        swap(&source, &destination)
        shift += 11
    }
    return source
}

/// Sorts `values` ascending by their high 32 bits (stable), LSD radix with three 11-bit digits.
/// `scratch` must hold `count` values; the result ends in `values`.
func radixSortHigh32(_ values: UnsafeMutablePointer<UInt64>, scratch: UnsafeMutablePointer<UInt64>, count: Int) {
    // One read builds the three digit histograms (bits 32–42, 43–53, 54–63).
    let counts = UnsafeMutablePointer<Int>.allocate(capacity: 3 * 2048)
    defer { counts.deallocate() }
    counts.initialize(repeating: 0, count: 3 * 2048)
    for i in 0..<count {
        let v = values[i]
        counts[Int((v >> 32) & 0x7FF)] += 1
        counts[2048 + Int((v >> 43) & 0x7FF)] += 1
        counts[4096 + Int(v >> 54)] += 1
    }
    let source = radixSortHigh32(values, scratch: scratch, count: count, histograms: counts)
    // After three passes the sorted data is in `scratch`; copy back.
    values.update(from: source, count: count)
}
