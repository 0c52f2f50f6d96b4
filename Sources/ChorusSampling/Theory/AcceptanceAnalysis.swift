/// What `chorus acceptance` computes: for one target law and K draft laws, the theoretical optimum,
/// each scheme's closed-form acceptance and, optionally, a seeded simulation of the real sampling
/// code (draft tokens drawn from the draft laws, then the scheme's `select`).
public struct AcceptanceAnalysis: Sendable {
    public struct Empirical: Sendable, Equatable {
        /// Fraction of runs in which a drafted token was accepted.
        public var acceptance: Double
        /// distribution: [n], empirical law of the output token.
        public var distribution: [Double]
        /// Total-variation distance between `distribution` and the target.
        public var totalVariation: Double
        public var runs: Int
    }

    public struct SchemeResult: Sendable {
        public var name: String
        /// Closed-form `P(accepted)`.
        public var acceptance: Double
        public var empirical: Empirical?
        /// Extra facts a reader needs (ρ* of SpecTr, the truncated-LP guard), one phrase each.
        public var notes: [String]
    }

    public struct Skipped: Sendable {
        public var name: String
        public var reason: String
    }

    public let target: TokenDistribution
    public let drafts: [TokenDistribution]
    /// True when every draft has the same law.
    public let identical: Bool
    /// The optimum over all exact schemes; nil when it is too expensive (non-identical, large n).
    public let optimal: Double?
    /// Whether acceptance one is attainable (identical drafts only).
    public let acceptsWithCertainty: Bool?
    public private(set) var schemes: [SchemeResult] = []
    public private(set) var skipped: [Skipped] = []

    public init(target: TokenDistribution, drafts: [TokenDistribution]) throws {
        try checkLaws(target: target, drafts: drafts)
        self.target = target
        self.drafts = drafts
        identical = drafts.areIdentical
        if identical {
            optimal = OptimalAcceptance.identical(target: target, draft: drafts[0], drafts: drafts.count)
            acceptsWithCertainty = OptimalAcceptance.acceptsWithCertainty(
                target: target, draft: drafts[0], drafts: drafts.count)
        } else {
            optimal = try? OptimalAcceptance.nonIdentical(target: target, drafts: drafts)
            acceptsWithCertainty = nil
        }
    }

    /// Adds one scheme's result; a scheme that cannot handle these laws is recorded in `skipped`.
    /// With `simulate > 0`, runs the real sampling code `simulate` times from `ChorusRandom(seed:)`.
    public mutating func evaluate(_ scheme: any SelectionScheme, simulate runs: Int = 0, seed: UInt64 = 0) {
        let prepared: any PreparedSelection
        do {
            prepared = try scheme.prepare(target: target, drafts: drafts)
        } catch {
            skipped.append(Skipped(name: scheme.name, reason: "\(error)"))
            return
        }
        var result = SchemeResult(name: scheme.name, acceptance: prepared.acceptance, notes: notes(for: prepared))
        if runs > 0 { result.empirical = simulate(prepared, runs: runs, seed: seed) }
        schemes.append(result)
    }

    func notes(for prepared: any PreparedSelection) -> [String] {
        var notes: [String] = []
        if let spectr = prepared as? PreparedSpecTr { notes.append("ρ* = \(spectr.rho)") }
        if let truncated = prepared as? TruncatedLPSelection, truncated.usedSingleDraftGuard {
            notes.append(
                "guarded: the truncated LP reaches only \(truncated.unguardedAcceptance), below single-draft "
                    + "\(truncated.singleDraftAcceptance), so the first-draft rule is used")
        }
        if prepared is GroupedOptimalSelection {
            notes.append("drafts of several laws: optimal within each group, composed across groups (not optimal)")
        }
        return notes
    }

    func simulate(_ prepared: any PreparedSelection, runs: Int, seed: UInt64) -> Empirical {
        var rng = ChorusRandom(seed: seed)
        var counts = [Int](repeating: 0, count: target.vocabularySize)
        var accepted = 0
        var drafted = [Int](repeating: 0, count: drafts.count)
        for _ in 0..<runs {
            for k in drafts.indices { drafted[k] = drafts[k].sample(using: &rng) }
            let outcome = prepared.select(drafted, using: &rng)
            counts[outcome.token] += 1
            if outcome.accepted { accepted += 1 }
        }
        let distribution = counts.map { Double($0) / Double(runs) }
        var tv = 0.0
        for (e, q) in zip(distribution, target.probabilities) { tv += abs(e - q) }
        return Empirical(
            acceptance: Double(accepted) / Double(runs), distribution: distribution, totalVariation: tv / 2,
            runs: runs)
    }
}
