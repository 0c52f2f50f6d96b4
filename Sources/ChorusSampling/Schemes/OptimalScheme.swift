import Foundation

/// `optimal`: the exact optimal multi-draft scheme for K i.i.d. drafts, by quantile keys
/// (`../shared/spec/OPTIMAL.md`; optimum from Khisti et al. 2025, SAMPLING.md §2).
///
/// Every drafted token draws a random *key* in [0, 1] from a measure `μ_y` built so that
/// `Σ_y p(y) μ_y` is uniform; the draft with the largest key is selected (step 1 of the canonical
/// decomposition) and single-draft speculative sampling then tests it against `q` with draft law
/// `p_I(y) = p(y) E_{μ_y}[K s^{K−1}]` (step 2). The measures are arranged (one sort, one prefix
/// scan, two stack passes: ``QuantileKeyTables``) so that `Σ min(q, p_I)` equals the optimum
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
        if drafts.count == 1 { return SingleDraftSelection(target: target, draft: drafts[0]) }
        if drafts.areIdentical {
            return OptimalSelection(target: target, draft: drafts[0], drafts: drafts.count, stopwatch: stopwatch)
        }
        return GroupedOptimalSelection(target: target, drafts: drafts)
    }
}

/// `optimal` with one draft. With K = 1 the selection is the draft itself (p_I = p) and the optimum is
/// Σ min(p, q) (Khisti et al. 2025), so the scheme is single-draft speculative sampling (Leviathan et al. 2023):
/// accept z with probability `min(1, q_z / p_z)`, else draw from `(q − p)+`. Built without the quantile-key
/// tables (no keys to draw for one draft): the acceptance is one pass over the draft's support, and the residual
/// is drawn by ``sampleResidual(target:support:using:selected:)`` only on a rejection, as ``OptimalSelection``
/// does, so a sparse draft law is never widened. The output law is q exactly, as for every K.
public struct SingleDraftSelection: PreparedSelection {
    /// `Σ_y min(q(y), p(y))`, summed over the draft's support in ascending token order.
    public let acceptance: Double
    let q: [Double]
    let draft: TokenDistribution

    public init(target: TokenDistribution, draft: TokenDistribution) {
        q = target.probabilities
        self.draft = draft
        var acceptance = 0.0
        for (y, p) in zip(draft.support, draft.supportProbabilities) { acceptance += min(q[y], p) }
        self.acceptance = acceptance
    }

    public func select<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> SelectionOutcome {
        let z = drafted[0]
        let values = draft.supportProbabilities
        return speculativeOutcome(
            z, drafted: drafted, target: q, acceptance: acceptance, selected: draft[z], using: &rng
        ) { rng in sampleResidual(target: q, support: draft.support, using: &rng) { values[$0] } }
    }

    public func law(given drafted: [Int]) -> SelectionLaw {
        speculativeLaw(selection: [(drafted[0], 1)], target: q, acceptance: acceptance) { draft[$0] }
    }
}

/// `optimal` for K drafts of one law: the quantile-key tables of one position.
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
    public var transferCount: Int { tables.entryCount }
    /// Where the build's time went, in nanoseconds: the ratio sort (keys and the scatter into top-digit
    /// buckets), the prefix scan (each bucket sorted in cache; the optimum and the greedy vertex), and
    /// the two stack passes with the final acceptance sum. Zero without a stopwatch.
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
    public var selectedLaw: [Double] {
        var dense = [Double](repeating: 0, count: vocabularySize)
        for (i, value) in tables.selectedBySupportIndex().enumerated() { dense[tables.support[i]] = value }
        return dense
    }

    /// Step 1: the drafted token with the largest key (each draft draws its own key).
    public func choose<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> Int {
        let tables = tables
        return draftWithLargestKey(drafted) { _, token in
            let rank = tables.rank(of: token)
            return rank >= 0 ? tables.key(rank: rank, using: &rng) : nil  // nil: never drafted under p
        }
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
        let tables = tables
        return speculativeOutcome(
            z, drafted: drafted, target: q, acceptance: acceptance, selected: selectedProbability(z), using: &rng
        ) { rng in
            let selected = tables.selectedBySupportIndex()
            return sampleResidual(target: q, support: tables.support, using: &rng) { selected[$0] }
        }
    }
}

/// Step 1 of the quantile-key schemes: the drafted token whose draft drew the largest key.
/// `key(k, token)` draws draft k's key (nil: the draft could not have produced the token; such a draft
/// is skipped). The first drafted token if none has a key.
@inline(__always)
func draftWithLargestKey(_ drafted: [Int], key: (Int, Int) -> Double?) -> Int {
    var bestToken = drafted[0]
    var bestKey = -1.0
    for (k, token) in drafted.enumerated() {
        guard let s = key(k, token) else { continue }
        if s > bestKey {
            bestKey = s
            bestToken = token
        }
    }
    return bestToken
}

/// Step 2 of the quantile-key schemes: speculative sampling of the selected token z against `q` with
/// draft law `p_I` (`selected` = `p_I(z)`): accept with probability `min(1, q_z / p_I(z))` (always when
/// the acceptance is 1 or z is off `p_I`'s support), else a draw of `residual` from `(q − p_I)+`.
@inline(__always)
func speculativeOutcome<R: RandomNumberGenerator>(
    _ z: Int, drafted: [Int], target q: [Double], acceptance: Double, selected xz: Double, using rng: inout R,
    residual: (inout R) -> Int
) -> SelectionOutcome {
    let u = rng.nextUnit()
    if 1 - acceptance <= 0 || xz <= 0 || u * xz < q[z] {
        return SelectionOutcome(token: z, accepted: true, drafted: drafted)
    }
    return SelectionOutcome(token: residual(&rng), accepted: false, drafted: drafted)
}

/// Draws from `(q − x)+` normalised, where `x` is zero off the sorted token list `support` and
/// `x(support[i]) = selected(i)`: one scan for the mass, one for the draw, term by term the arithmetic
/// of a scan over a dense `x` (zeros off the support), so the same token. With no residual mass
/// (acceptance 1, where rounding alone rejects) the last positive term, as before.
///
/// Both scans run segment by segment: the tokens between two support tokens contribute only through
/// the target mass (their residual is q itself), so a segment is a plain loop over q with no merge
/// against the support; each support token then takes its `q − x`. Tokens with q = 0 add +0 to the
/// (non-negative) mass, which leaves it unchanged, and are never drawn.
func sampleResidual<R: RandomNumberGenerator>(
    target q: [Double], support: [Int], using rng: inout R, selected: (Int) -> Double
) -> Int {
    q.withUnsafeBufferPointer { q in
        support.withUnsafeBufferPointer { support in
            var mass = 0.0
            var start = 0
            for (i, t) in support.enumerated() {
                for y in start..<t { mass += q[y] }
                if q[t] > 0 { mass += max(q[t] - selected(i), 0) }
                start = t + 1
            }
            for y in start..<q.count { mass += q[y] }

            var v = rng.nextUnit() * mass
            var last = 0
            // One term of the draw; true when `y` is drawn.
            @inline(__always) func take(_ y: Int, _ r: Double) -> Bool {
                guard r > 0 else { return false }
                last = y
                if v < r { return true }
                v -= r
                return false
            }
            start = 0
            for (i, t) in support.enumerated() {
                for y in start..<t where take(y, q[y]) { return y }
                if q[t] > 0, take(t, q[t] - selected(i)) { return t }
                start = t + 1
            }
            for y in start..<q.count where take(y, q[y]) { return y }
            return last
        }
    }
}
