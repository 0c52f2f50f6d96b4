/// One mass transfer of the stack passes: donor `donor` mixes `θ U(I_cell)` into its measure
/// (`(1 − θ) μ + θ U(I_cell)`), and receiver `cell` trades weight `ω = θ p_donor / p_cell` of its own
/// cell for the donor's measure as it stood before, whose last entry is `previous` (−1: none).
/// Entry e is transfer number e, in build order; a receiver's entries are consecutive.
///
/// θ itself is not stored: the entry keeps the two operands the pass had, the mass moved `d` and the
/// donor's `x` before the move, and ``QuantileKeyTables/theta(_:)`` evaluates
/// `θ = clamp(d / (p_donor · s (ā_cell − x / p_donor)), 0, 1)` from them when a key is drawn — the same
/// operations on the same values, so the same bits, but two divisions off the passes' critical path for
/// each of up to 2m transfers, while only K keys are drawn per position.
struct KeyEntry {
    /// The mass moved, `d > 0`.
    var mass: Double
    /// The donor's x just before the move.
    var donorX: Double
    var cell: Int32
    var previous: Int32
    var donor: Int32
}

/// The flat tables of one quantile-key construction (OPTIMAL.md "Build"). Immutable once built
/// (hence Sendable).
///
/// Index spaces: *support indices* `0..<m` into the draft's support (token ids ascending); *ranks*
/// `0..<m` over the support sorted by `q/p` ascending. Rank j owns the cell `I_j = [c_j, c_{j+1}]` of
/// width `p_j` (c = prefix sums of p). A token's key measure is a mixture of uniform cells:
/// * a donor's list of entries (``KeyEntry``), its own cell at the bottom: after entry l its measure
///   is `(1 − θ_l) μ^{(l−1)} + θ_l U(cell_l)`;
/// * a receiver's own cell with the weight its transfers left, plus, per transfer, the donor's list
///   as it stood then.
final class QuantileKeyTables: @unchecked Sendable {
    let n: Int
    let m: Int
    let k: Int
    private(set) var optimum = 1.0
    private(set) var acceptance = 0.0
    private(set) var sStar = 0
    private(set) var entryCount = 0
    private(set) var split: (sort: UInt64, scan: UInt64, passes: UInt64) = (0, 0, 0)
    /// The pooled block all tables live in.
    private let block: UnsafeMutableRawPointer
    private let blockBytes: Int

    /// The target q: [n] and the draft law, for a token's sort key (``rank(of:)``).
    let q: [Double]
    let draft: TokenDistribution
    /// The draft's support (token ids ascending): the index space of ``RatioRecord/index``.
    let support: [Int]
    /// records: [m] by rank — support index, sort key, p and q (the sort's records, put in rank order).
    let records: UnsafeMutablePointer<RatioRecord>
    /// bounds: [m + 1] cell bounds c_j; x: [m] p_I by rank (the greedy vertex p_j ā_j, then moved by
    /// the transfers).
    let bounds: UnsafeMutablePointer<Double>
    let x: UnsafeMutablePointer<Double>
    /// measure: [m] by rank: a donor's (or untouched rank's) last entry `h ≥ −1`, or a receiver's
    /// first entry e stored as `−2 − e`. A rank is one or the other, never both.
    let measure: UnsafeMutablePointer<Int32>
    /// entries: [2m] transfers, ``entryCount`` of them used.
    let entries: UnsafeMutablePointer<KeyEntry>

    /// Builds the tables for target `q: [n]` (dense) and the draft law, dense or sparse: only the
    /// draft's support and `q` at its tokens are read (O(m) memory and time beyond the sort).
    init(q: [Double], draft: TokenDistribution, k: Int, stopwatch: (@Sendable () -> UInt64)? = nil) {
        n = q.count
        self.q = q
        self.draft = draft
        support = draft.support
        m = support.count
        self.k = k
        // One pooled block holds every table (and the build's scratch), reused across positions.
        var layout = ScratchLayout()
        let oRecords = layout.reserve(RatioRecord.self, m)
        let oBounds = layout.reserve(Double.self, m + 1)
        let oX = layout.reserve(Double.self, m)
        let oMeasure = layout.reserve(Int32.self, m)
        let oEntries = layout.reserve(KeyEntry.self, 2 * m)
        let oStack = layout.reserve(Int32.self, m)
        let oLocal = layout.reserve(UInt64.self, 2 * m)
        let oBucket = layout.reserve(RatioRecord.self, m)
        let oCounts = layout.reserve(Int32.self, RatioSort.countsSize)
        blockBytes = layout.bytes
        let base = ScratchPool.take(bytes: layout.bytes)
        block = base
        func at<T>(_ offset: Int, _ type: T.Type) -> UnsafeMutablePointer<T> { carve(base, offset, type) }
        records = at(oRecords, RatioRecord.self)
        bounds = at(oBounds, Double.self)
        x = at(oX, Double.self)
        measure = at(oMeasure, Int32.self)
        entries = at(oEntries, KeyEntry.self)
        let sorter = RatioSort(
            records: records, local: at(oLocal, UInt64.self),
            bucket: at(oBucket, RatioRecord.self), counts: at(oCounts, Int32.self))
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
                        sorter.sort(
                            count: m, q: qb, support: sb, dense: sparse ? nil : pb.baseAddress,
                            sparse: sparse ? vb.baseAddress : nil)
                    }
                }
            }
        }
        build(sorter: sorter, stack: at(oStack, Int32.self), sortStarted: sortStarted, stopwatch: stopwatch)
    }

    deinit {
        ScratchPool.give(block, bytes: blockBytes)
    }

    /// Steps 2–4 after step 1 (``RatioSort/sort(count:q:support:dense:sparse:)``, done by the caller).
    private func build(
        sorter: RatioSort, stack: UnsafeMutablePointer<Int32>, sortStarted t0: UInt64,
        stopwatch: (@Sendable () -> UInt64)?
    ) {
        let now = stopwatch ?? { 0 }
        let t1 = now()
        // 2. One fused scan in rank order (``RatioSort/sortInPlace``): prefix sums in float64 (c_m
        //    clamped to 1), k* = argmin_j (Q_j − c_j^K), and the greedy vertex — rank j owns U(I_j),
        //    ā_j = Σ_t c_{j+1}^t c_j^{K−1−t}, x_j = p_j ā_j. (ā_j is not stored: ``theta(_:)``
        //    recomputes a receiver's from its bounds when a key is drawn.)
        bounds[0] = 0
        var best = 0.0
        var kStar = 0
        var prefixQ = 0.0
        let factors = CellWeightFactors(k: k)
        let m = m, bounds = bounds, x = x
        // The running bound stays in a register: reading back bounds[j] would put a store-to-load
        // forward on the prefix chain of every rank.
        var lower = 0.0
        sorter.sortInPlace(count: m) { j, record in
            let upper = j == m - 1 ? 1 : lower + record.p
            bounds[j + 1] = upper
            prefixQ += record.q
            let (mean, upperPower) = factors.meanWeightAndPower(lower: lower, upper: upper)
            let value = prefixQ - upperPower
            if value < best {
                best = value
                kStar = j + 1
            }
            x[j] = record.p * mean
            lower = upper
        }
        optimum = 1 + best
        sStar = kStar
        let t2 = now()

        // 3. T* pass, ascending: a token over its target (excess) mixes pieces of its own cell into
        //    donors with slack (last in, first out); the donor's old measure moves to the token.
        // 4. S* pass, descending: the mirror image; a token under its target (deficit) takes from
        //    donors with surplus.
        var e = 0
        stackPass(stride(from: kStar, to: m, by: 1), sign: 1, stack: stack, entry: &e)
        stackPass(stride(from: kStar - 1, through: 0, by: -1), sign: -1, stack: stack, entry: &e)
        entryCount = e

        var acceptance = 0.0
        for j in 0..<m { acceptance += min(records[j].q, x[j]) }
        self.acceptance = acceptance
        split = (t1 - t0, t2 - t1, now() - t2)
    }

    /// One stack pass over `ranks`. With `s = +1` (T*) a rank with `x > q` gives its excess, with
    /// `x < q` it waits on the stack as a donor with slack; with `s = −1` (S*) the same with every
    /// difference negated. Negating is exact and round-to-nearest is symmetric, so each quantity
    /// (`s (x − q)`, `s (q_i − x_i)`, `s (ā_j − x_i/p_i)`, `x_i + s d`) is bit for bit the one the
    /// mirrored pass computes directly. Every rank is visited once here before any transfer can touch
    /// it (a receiver at its visit, donors after theirs), so its measure starts empty here.
    private func stackPass(
        _ ranks: some Sequence<Int>, sign s: Double, stack: UnsafeMutablePointer<Int32>, entry e: inout Int
    ) {
        // The donor on top of the stack lives in registers (rank, p, q, x, list head) and is written
        // back when it leaves the top: consecutive receivers draw on the same donor, and its x would
        // otherwise round-trip through memory on the pass's critical path.
        var top = 0
        var donor = StackTop()
        for j in ranks {
            let pj = records[j].p, qj = records[j].q
            let xj = x[j]
            if s * xj <= s * qj {
                if xj != qj {
                    if top > 0 { donor.store(to: self) }
                    stack[top] = Int32(truncatingIfNeeded: j)
                    top += 1
                    donor = StackTop(rank: j, p: pj, q: qj, x: xj, head: -1)
                } else {
                    measure[j] = -1
                }
                continue
            }
            var need = s * (xj - qj)
            let first = e
            while need > 0, top > 0 {
                let room = s * (donor.q - donor.x)
                let d = min(room, need)
                entries[e] = KeyEntry(
                    mass: d, donorX: donor.x, cell: Int32(truncatingIfNeeded: j), previous: donor.head,
                    donor: Int32(truncatingIfNeeded: donor.rank))
                donor.head = Int32(truncatingIfNeeded: e)
                e += 1
                if room <= need {
                    donor.x = donor.q
                    donor.store(to: self)
                    top -= 1
                    if top > 0 { donor = StackTop(rank: Int(stack[top - 1]), from: self) }
                } else {
                    donor.x += s * d
                }
                need -= d
            }
            measure[j] = e > first ? Int32(truncatingIfNeeded: -2 - first) : -1
            x[j] = qj + s * max(need, 0)
        }
        if top > 0 { donor.store(to: self) }
    }
}

/// The donor on top of a stack pass's stack, cached: its rank, p, q, current x and donor-list head.
private struct StackTop {
    var rank = 0
    var p = 0.0
    var q = 0.0
    var x = 0.0
    var head: Int32 = -1

    init() {}

    init(rank: Int, p: Double, q: Double, x: Double, head: Int32) {
        self.rank = rank
        self.p = p
        self.q = q
        self.x = x
        self.head = head
    }

    /// Reloads a donor that was written back when another was pushed over it.
    init(rank: Int, from tables: QuantileKeyTables) {
        self.init(
            rank: rank, p: tables.records[rank].p, q: tables.records[rank].q, x: tables.x[rank],
            head: tables.measure[rank])
    }

    func store(to tables: QuantileKeyTables) {
        tables.x[rank] = x
        tables.measure[rank] = head
    }
}
