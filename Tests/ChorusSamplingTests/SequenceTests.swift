import Foundation
import Testing

@testable import ChorusSampling

// MARK: - Schemes under test

/// Every token-level scheme the sequence-level tests run. Adding a scheme is one line here.
let sequenceSchemes: [SchemeUnderTest] = [
    SchemeUnderTest(SingleDraftScheme()),
    SchemeUnderTest(UniformDraftScheme()),
    SchemeUnderTest(OptimalScheme()),
    SchemeUnderTest(SpecInferScheme()),
    SchemeUnderTest(WeightedImportanceScheme()),
]

struct SchemeUnderTest: Sendable, CustomTestStringConvertible {
    let scheme: any SelectionScheme
    init(_ scheme: any SelectionScheme) { self.scheme = scheme }
    var testDescription: String { scheme.name }
}

/// Test-only rule: pick a draft index uniformly (each of the K drafted tokens with probability
/// 1/K), so a token drafted m times is chosen with probability m/K and `p_I = (1/K) Σ_k p_k`.
/// Unlike `sd` it uses every draft and depends on multiplicity.
struct UniformDraftRule: SelectionRule {
    let selectedLaw: [Double]
    let allowDistinctOnly: Bool

    init(drafts: [TokenDistribution], distinctOnly: Bool = false) {
        var law = [Double](repeating: 0, count: drafts[0].vocabularySize)
        for d in drafts { for y in law.indices { law[y] += d[y] / Double(drafts.count) } }
        selectedLaw = law
        allowDistinctOnly = distinctOnly
    }

    func choose<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> Int {
        let options = allowDistinctOnly ? Array(Set(drafted)).sorted() : drafted
        return options[min(options.count - 1, Int(rng.nextUnit() * Double(options.count)))]
    }

    func selectionProbabilities(_ drafted: [Int]) -> [(token: Int, probability: Double)] {
        if allowDistinctOnly {
            let distinct = Array(Set(drafted)).sorted()
            return distinct.map { ($0, 1 / Double(distinct.count)) }
        }
        var counts: [Int: Int] = [:]
        for x in drafted { counts[x, default: 0] += 1 }
        return counts.keys.sorted().map { ($0, Double(counts[$0] ?? 0) / Double(drafted.count)) }
    }
}

/// Exact multi-draft scheme (canonical two-step with the uniform-index rule).
struct UniformDraftScheme: SelectionScheme {
    let name = "test-uniform-index"
    func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection {
        try checkLaws(target: target, drafts: drafts)
        return CanonicalSelection(rule: UniformDraftRule(drafts: drafts), target: target)
    }
}

/// Deliberately inexact control: chooses uniformly among the *distinct* drafted tokens (dropping
/// multiplicity) but runs step 2 with the multiplicity rule's `p_I`. The exactness checks must
/// reject it, which shows they can fail.
struct MultiplicityBlindScheme: SelectionScheme {
    let name = "test-multiplicity-blind"
    func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection {
        try checkLaws(target: target, drafts: drafts)
        return CanonicalSelection(rule: UniformDraftRule(drafts: drafts, distinctOnly: true), target: target)
    }
}

/// Like SpecTr: refuses non-identical draft laws.
struct IdenticalOnlyScheme: SelectionScheme {
    let name = "test-identical-only"
    func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection {
        guard drafts.areIdentical else {
            throw SamplingError.unsupported(scheme: name, reason: "needs identical drafts")
        }
        return try UniformDraftScheme().prepare(target: target, drafts: drafts)
    }
}

/// A buggy scheme whose outcome claims no draft matched although one did.
struct LyingScheme: SelectionScheme {
    let name = "test-lying"
    struct Prepared: PreparedSelection {
        let inner: any PreparedSelection
        var acceptance: Double { inner.acceptance }
        func select<R: RandomNumberGenerator>(_ drafted: [Int], using rng: inout R) -> SelectionOutcome {
            SelectionOutcome(token: drafted[0], accepted: true, matchedDrafts: [])
        }
        func law(given drafted: [Int]) -> SelectionLaw { inner.law(given: drafted) }
    }
    func prepare(target: TokenDistribution, drafts: [TokenDistribution]) throws -> any PreparedSelection {
        Prepared(inner: try SingleDraftScheme().prepare(target: target, drafts: drafts))
    }
}

// MARK: - Toy bigram models

/// A bigram model over n tokens: `rows[a]` is the law of the next token after `a`.
struct Bigram: Sendable {
    let rows: [TokenDistribution]
    var n: Int { rows.count }
    subscript(a: Int, b: Int) -> Double { rows[a][b] }

    init(rows: [[Double]]) throws { self.rows = try rows.map { try TokenDistribution(probabilities: $0) } }
    init(random gen: inout CaseGenerator, n: Int, zeroChance: Double) {
        rows = (0..<n).map { _ in gen.distribution(n: n, zeroChance: zeroChance) }
    }

    /// Probability of `tokens` after `root`: Π_t rows[prev][tokens[t]].
    func probability(of tokens: [Int], after root: Int) -> Double {
        var p = 1.0
        var prev = root
        for t in tokens {
            p *= self[prev, t]
            prev = t
        }
        return p
    }

    func sample<R: RandomNumberGenerator>(length: Int, after root: Int, using rng: inout R) -> [Int] {
        var result: [Int] = []
        var prev = root
        for _ in 0..<length {
            prev = rows[prev].sample(using: &rng)
            result.append(prev)
        }
        return result
    }
}

/// A sequence-level case: target bigram, one draft bigram per draft, and each draft's law group.
struct SequenceCase {
    let target: Bigram
    let draftModels: [Bigram]
    let lawGroups: [Int?]
    let root: Int
    let length: Int
    var n: Int { target.n }
    var k: Int { draftModels.count }

    /// The draft sequence draft `k` would send for `tokens`: each token with the draft model's law.
    func draft(_ k: Int, tokens: [Int]) -> DraftSequence {
        let prevs = [root] + tokens.dropLast()
        return DraftSequence(
            tokens: tokens, distributions: prevs.map { draftModels[k].rows[$0] }, lawGroup: lawGroups[k])
    }

    func tree(_ sequences: [[Int]]) throws -> DraftTree {
        try DraftTree(drafts: sequences.indices.map { draft($0, tokens: sequences[$0]) }, vocabularySize: n)
    }

    /// What the target model would return for the tree: per node, the law after its last token.
    func targets(for tree: DraftTree) -> [TokenDistribution] {
        tree.nodes.map { target.rows[$0.token ?? root] }
    }
}

/// The exact law of a round's tokens, marginalised over every K-tuple of draft sequences
/// (n^(K·L) tuples, each weighted by Π_k Π_t D_k[prev][tok]).
func exactRoundLaw(_ c: SequenceCase, scheme: any SelectionScheme) throws -> [[Int]: Double] {
    let verifier = TreeVerifier(scheme: scheme)
    let sequences = allTuples(n: c.n, k: c.length)
    let sequenceProbability = (0..<c.k).map { k in
        sequences.map { c.draftModels[k].probability(of: $0, after: c.root) }
    }
    var total: [[Int]: Double] = [:]
    for choice in allTuples(n: sequences.count, k: c.k) {
        var weight = 1.0
        for (k, s) in choice.enumerated() { weight *= sequenceProbability[k][s] }
        if weight == 0 { continue }
        let tree = try c.tree(choice.map { sequences[$0] })
        for (tokens, p) in try verifier.exactOutcomeLaw(tree: tree, targetDistributions: c.targets(for: tree)) {
            total[tokens, default: 0] += weight * p
        }
    }
    return total
}

/// Largest error, over completions y_1..y_{L+1}, of
/// Σ_m P(round = y_1..y_m) · Π_{t>m} T[y_{t−1}][y_t]  versus  Π_t T[y_{t−1}][y_t].
func sequenceExactnessError(_ law: [[Int]: Double], _ c: SequenceCase) -> Double {
    var worst = 0.0
    for completion in allTuples(n: c.n, k: c.length + 1) {
        var produced = 0.0
        for m in 1...(c.length + 1) {
            guard let p = law[Array(completion.prefix(m))] else { continue }
            let last = completion[m - 1]
            produced += p * c.target.probability(of: Array(completion.dropFirst(m)), after: last)
        }
        worst = max(worst, abs(produced - c.target.probability(of: completion, after: c.root)))
    }
    return worst
}

enum DraftMix: String, CaseIterable, Sendable {
    /// One draft model for every draft (one law group).
    case identical
    /// A different draft model per draft.
    case distinct
    /// Drafts 0 and 1 share a model; the rest each have their own.
    case mixed
}

struct SequenceConfig: Sendable, CustomTestStringConvertible {
    let k: Int, length: Int, mix: DraftMix, seed: UInt64
    var testDescription: String { "K=\(k) L=\(length) \(mix.rawValue)" }

    func makeCase() -> SequenceCase {
        var gen = CaseGenerator(seed: seed)
        let target = Bigram(random: &gen, n: 3, zeroChance: 0.25)
        var models: [Bigram] = []
        var groups: [Int?] = []
        for k in 0..<self.k {
            let shared = mix == .identical || (mix == .mixed && k == 1)
            if shared, let first = models.first {
                models.append(first)
                groups.append(0)
            } else {
                models.append(Bigram(random: &gen, n: 3, zeroChance: 0.25))
                groups.append(k)
            }
        }
        return SequenceCase(target: target, draftModels: models, lawGroups: groups, root: 0, length: length)
    }
}

let sequenceConfigs: [SequenceConfig] = [
    SequenceConfig(k: 2, length: 2, mix: .identical, seed: 11),
    SequenceConfig(k: 2, length: 2, mix: .distinct, seed: 12),
    SequenceConfig(k: 2, length: 3, mix: .identical, seed: 13),
    SequenceConfig(k: 2, length: 3, mix: .distinct, seed: 14),
    SequenceConfig(k: 3, length: 2, mix: .identical, seed: 15),
    SequenceConfig(k: 3, length: 2, mix: .mixed, seed: 16),
    SequenceConfig(k: 3, length: 3, mix: .identical, seed: 17),
    SequenceConfig(k: 3, length: 3, mix: .distinct, seed: 18),
]

// MARK: - Exactness by enumeration (SAMPLING.md §5)

@Suite struct SequenceExactnessTests {
    @Test(arguments: sequenceSchemes, sequenceConfigs)
    func roundReproducesTargetSequenceLaw(scheme: SchemeUnderTest, config: SequenceConfig) throws {
        let c = config.makeCase()
        // The case must exercise zeros, or the test would not cover them.
        #expect(
            c.target.rows.contains { $0.support.count < c.n }
                || c.draftModels.contains { $0.rows.contains { $0.support.count < c.n } })
        let law = try exactRoundLaw(c, scheme: scheme.scheme)
        #expect(abs(law.values.reduce(0, +) - 1) < 1e-12)
        #expect(law.keys.allSatisfy { (1...(c.length + 1)).contains($0.count) })
        #expect(sequenceExactnessError(law, c) < 1e-12)
    }

    /// The check has power: dropping multiplicity at token level breaks exactness visibly.
    @Test func multiplicityBlindSchemeIsRejected() throws {
        let c = SequenceConfig(k: 3, length: 2, mix: .identical, seed: 15).makeCase()
        let error = sequenceExactnessError(try exactRoundLaw(c, scheme: MultiplicityBlindScheme()), c)
        #expect(error > 1e-3)
    }

    /// A single draft with `sd`, L = 1: the round law in closed form. First token: accepted draft or
    /// residual, i.e. T[r][·]; a token equal to the draft token x is followed by a bonus.
    @Test func singleDraftSingleTokenClosedForm() throws {
        let target = try Bigram(rows: [[0.5, 0.3, 0.2], [0.1, 0.0, 0.9], [0.3, 0.3, 0.4]])
        let draft = try Bigram(rows: [[0.2, 0.2, 0.6], [1, 0, 0], [0.5, 0.5, 0]])
        let c = SequenceCase(target: target, draftModels: [draft], lawGroups: [nil], root: 0, length: 1)
        let law = try exactRoundLaw(c, scheme: SingleDraftScheme())
        // P(round = [y, b]) = P(X = y, Y = y) · T[y][b] = min(p(y), q(y)) · T[y][b];
        // P(round = [y]) = P(Y = y, X ≠ y) = q(y) − min(p(y), q(y)).
        for y in 0..<3 {
            let overlap = min(target[0, y], draft[0, y])
            #expect(abs((law[[y]] ?? 0) - (target[0, y] - overlap)) < 1e-15)
            for b in 0..<3 { #expect(abs((law[[y, b]] ?? 0) - overlap * target[y, b]) < 1e-15) }
        }
    }
}

// MARK: - DraftTree

func expectTreeError(containing fragment: String, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected invalidDraftTree containing \"\(fragment)\", nothing thrown")
    } catch let SamplingError.invalidDraftTree(message) {
        #expect(message.contains(fragment), "message: \(message)")
    } catch {
        Issue.record("expected invalidDraftTree, got \(error)")
    }
}

@Suite struct DraftTreeTests {
    let u3 = TokenDistribution.uniform(vocabularySize: 3)

    func seq(_ tokens: [Int], group: Int? = nil) -> DraftSequence {
        DraftSequence(tokens: tokens, distributions: tokens.map { _ in .uniform(vocabularySize: 3) }, lawGroup: group)
    }

    @Test func mergesSharedPrefixesAndKeepsMultiplicity() throws {
        let tree = try DraftTree(drafts: [seq([1, 2]), seq([1, 2]), seq([1, 0])], vocabularySize: 3)
        #expect(tree.nodeCount == 4)
        #expect(tree.nodes.map(\.token) == [nil, 1, 2, 0])
        #expect(tree.nodes.map(\.depth) == [0, 1, 2, 2])
        #expect(tree.nodes.map(\.drafts.count) == [3, 3, 2, 1])
        #expect(tree.nodes.map(\.drafts) == [[0, 1, 2], [0, 1, 2], [0, 1], [2]])
        #expect(tree.parentIndices == [-1, 0, 1, 1])
        #expect(tree.nodes.map(\.children) == [[1], [2, 3], [], []])
        #expect(tree.draftNodes == [[0, 1, 2], [0, 1, 2], [0, 1, 3]])
        #expect(tree.ancestors(of: 3) == [0, 1])
        #expect(tree.tokens(to: 3) == [1, 0])
        #expect(tree.child(of: 1, token: 0) == 3)
        #expect(tree.child(of: 1, token: 1) == nil)
    }

    @Test func breadthFirstOrderAndAttentionMask() throws {
        let tree = try DraftTree(
            drafts: [seq([0, 1, 2]), seq([2, 1, 0]), seq([0, 2, 2]), seq([0, 1, 1])], vocabularySize: 3)
        // Root, depth 1: 0, 2; depth 2: 0→1, 0→2, 2→1; depth 3: 0,1→2, 0,1→1, 0,2→2, 2,1→0.
        #expect(tree.nodes.map(\.depth) == [0, 1, 1, 2, 2, 2, 3, 3, 3, 3])
        #expect(tree.nodes.map(\.token) == [nil, 0, 2, 1, 2, 1, 2, 1, 2, 0])
        for (i, node) in tree.nodes.enumerated() {
            if let p = node.parent { #expect(p < i && tree.nodes[p].depth + 1 == node.depth) }
        }
        let mask = tree.attentionMask()
        for i in tree.nodes.indices {
            let visible = Set(tree.ancestors(of: i) + [i])
            for j in tree.nodes.indices { #expect(mask[i][j] == visible.contains(j)) }
        }
        #expect(tree.tokens(to: 8) == [0, 2, 2])
        for k in 0..<4 { #expect(tree.tokens(to: tree.draftNodes[k][3]) == tree.drafts[k].tokens) }
    }

    @Test func rejectsInvalidInput() throws {
        expectTreeError(containing: "no drafts") { _ = try DraftTree(drafts: [], vocabularySize: 3) }
        expectTreeError(containing: "empty") { _ = try DraftTree(drafts: [seq([])], vocabularySize: 3) }
        expectTreeError(containing: "draft 1 has 1 tokens") {
            _ = try DraftTree(drafts: [seq([1, 2]), seq([1])], vocabularySize: 3)
        }
        expectTreeError(containing: "1 distributions") {
            _ = try DraftTree(
                drafts: [DraftSequence(tokens: [1, 2], distributions: [u3])], vocabularySize: 3)
        }
        expectTreeError(containing: "token 3 outside") { _ = try DraftTree(drafts: [seq([1, 3])], vocabularySize: 3) }
        expectTreeError(containing: "token -1 outside") { _ = try DraftTree(drafts: [seq([-1])], vocabularySize: 3) }
        expectTreeError(containing: "distribution over 4 tokens") {
            _ = try DraftTree(
                drafts: [DraftSequence(tokens: [1], distributions: [.uniform(vocabularySize: 4)])], vocabularySize: 3)
        }
        expectTreeError(containing: "token 2 has probability 0") {
            let oneHot = TokenDistribution.oneHot(1, vocabularySize: 3)
            _ = try DraftTree(drafts: [DraftSequence(tokens: [1, 2], distributions: [u3, oneHot])], vocabularySize: 3)
        }
        // Same law group and prefix, different laws: the group promise is broken.
        let a = try TokenDistribution(probabilities: [0.2, 0.3, 0.5])
        let b = try TokenDistribution(probabilities: [0.3, 0.2, 0.5])
        expectTreeError(containing: "share law group 7") {
            _ = try DraftTree(
                drafts: [
                    DraftSequence(tokens: [1], distributions: [a], lawGroup: 7),
                    DraftSequence(tokens: [2], distributions: [b], lawGroup: 7),
                ], vocabularySize: 3)
        }
        // Different prefixes may have different laws within a group (position 2 after 1 vs after 2).
        _ = try DraftTree(
            drafts: [
                DraftSequence(tokens: [1, 0], distributions: [a, a], lawGroup: 7),
                DraftSequence(tokens: [2, 0], distributions: [a, b], lawGroup: 7),
            ], vocabularySize: 3)
    }

    @Test func lawGroupsMergeNearlyEqualLaws() throws {
        let a = try TokenDistribution(probabilities: [0.2, 0.3, 0.5])
        let nearlyA = try TokenDistribution(probabilities: [0.2 + 1e-9, 0.3, 0.5 - 1e-9])
        #expect(a != nearlyA)
        let drafts = [
            DraftSequence(tokens: [1], distributions: [a], lawGroup: 0),
            DraftSequence(tokens: [2], distributions: [nearlyA], lawGroup: 0),
        ]
        let tree = try DraftTree(drafts: drafts, vocabularySize: 3)
        #expect(tree.law(ofDraft: 1, atPosition: 1) == a)
        let target = [TokenDistribution](repeating: u3, count: tree.nodeCount)
        var rng = ChorusRandom(seed: 1)
        // A scheme that needs identical laws accepts the group …
        _ = try TreeVerifier(scheme: IdenticalOnlyScheme()).verify(tree: tree, targetDistributions: target, using: &rng)
        // … and its refusal propagates when the drafts make no such promise.
        let ungroupedDrafts = drafts.map { DraftSequence(tokens: $0.tokens, distributions: $0.distributions) }
        let ungrouped = try DraftTree(drafts: ungroupedDrafts, vocabularySize: 3)
        #expect(throws: SamplingError.unsupported(scheme: "test-identical-only", reason: "needs identical drafts")) {
            try TreeVerifier(scheme: IdenticalOnlyScheme()).verify(
                tree: ungrouped, targetDistributions: target, using: &rng)
        }
    }
}

// MARK: - The sampling path

@Suite struct TreeVerifierSamplingTests {
    @Test func rejectsWrongTargetsAndInconsistentSchemes() throws {
        let u = TokenDistribution.uniform(vocabularySize: 3)
        let tree = try DraftTree(
            drafts: [DraftSequence(tokens: [1, 2], distributions: [u, u])], vocabularySize: 3)
        var rng = ChorusRandom(seed: 3)
        let verifier = TreeVerifier(scheme: SingleDraftScheme())
        expectTreeError(containing: "2 target distributions for a tree of 3 nodes") {
            _ = try verifier.verify(tree: tree, targetDistributions: [u, u], using: &rng)
        }
        expectTreeError(containing: "over 4 tokens") {
            _ = try verifier.verify(tree: tree, targetDistributions: [u, u, .uniform(vocabularySize: 4)], using: &rng)
        }
        #expect(throws: SamplingError.self) {
            try TreeVerifier(scheme: LyingScheme()).verify(tree: tree, targetDistributions: [u, u, u], using: &rng)
        }
    }

    /// `sd` always rejects draft 0 (q gives its token 0 mass) and recovers token 1, which draft 1
    /// drafted: draft 1 stays alive, the token counts as taken from the tree, the scheme's verdict is
    /// "not accepted", and with L = 1 a bonus follows from the target law at draft 1's node.
    @Test func recoveredTokenEqualToADraftKeepsThatDraftAlive() throws {
        let u = TokenDistribution.uniform(vocabularySize: 3)
        let drafts = [
            DraftSequence(tokens: [0], distributions: [.oneHot(0, vocabularySize: 3)]),
            DraftSequence(tokens: [1], distributions: [u]),
        ]
        let tree = try DraftTree(drafts: drafts, vocabularySize: 3)
        let bonusLaw = TokenDistribution.oneHot(2, vocabularySize: 3)
        let targets = [TokenDistribution.oneHot(1, vocabularySize: 3), u, bonusLaw]
        let verifier = TreeVerifier(scheme: SingleDraftScheme())
        #expect(try verifier.exactOutcomeLaw(tree: tree, targetDistributions: targets) == [[1, 2]: 1])
        var rng = ChorusRandom(seed: 5)
        let outcome = try verifier.verify(tree: tree, targetDistributions: targets, using: &rng)
        let expected = VerificationOutcome(
            tokens: [1, 2], acceptedCount: 1, bonus: true, acceptedNodes: [2], aliveDrafts: [1],
            positions: [
                PositionStatistics(position: 1, aliveDrafts: 2, distinctTokens: 2, accepted: false, matchedDrafts: 1)
            ])
        #expect(outcome == expected)
        #expect(outcome.schemeAcceptances == 0)
    }

    /// Seeded runs are reproducible, and every sampled round is an outcome the exact law gives positive
    /// probability, with bookkeeping that agrees with the tree.
    @Test(arguments: sequenceSchemes)
    func seededVerifyIsReproducibleAndOnTheExactSupport(scheme: SchemeUnderTest) throws {
        let c = SequenceConfig(k: 3, length: 3, mix: .mixed, seed: 21).makeCase()
        let verifier = TreeVerifier(scheme: scheme.scheme)
        var draftRng = ChorusRandom(seed: 99)
        var bonusSeen = false
        var correctionSeen = false
        for round in 0..<200 {
            let sequences = (0..<c.k).map {
                c.draftModels[$0].sample(length: c.length, after: c.root, using: &draftRng)
            }
            let tree = try c.tree(sequences)
            let targets = c.targets(for: tree)
            var rng1 = ChorusRandom(seed: UInt64(round))
            var rng2 = ChorusRandom(seed: UInt64(round))
            let outcome = try verifier.verify(tree: tree, targetDistributions: targets, using: &rng1)
            #expect(outcome == (try verifier.verify(tree: tree, targetDistributions: targets, using: &rng2)))
            #expect(rng1 == rng2)

            let law = try verifier.exactOutcomeLaw(tree: tree, targetDistributions: targets)
            #expect((law[outcome.tokens] ?? 0) > 0, "sampled \(outcome.tokens), not a possible outcome")
            #expect(outcome.tokens.count == outcome.acceptedCount + 1)
            #expect(outcome.bonus == (outcome.acceptedCount == c.length))
            #expect(
                outcome.acceptedNodes.map { tree.nodes[$0].token }
                    == outcome.tokens.prefix(outcome.acceptedCount).map { $0 })
            #expect(outcome.positions.count == min(outcome.tokens.count, c.length))
            #expect(outcome.schemeAcceptances <= outcome.acceptedCount)
            for (i, stats) in outcome.positions.enumerated() {
                let prefix = Array(outcome.tokens.prefix(i))
                let alive = sequences.filter { Array($0.prefix(i)) == prefix }
                #expect(stats.position == i + 1)
                #expect(stats.aliveDrafts == alive.count)
                #expect(stats.distinctTokens == Set(alive.map { $0[i] }).count)
                #expect(stats.matchedDrafts == alive.filter { $0[i] == outcome.tokens[i] }.count)
                if stats.accepted { #expect(stats.matchedDrafts > 0) }
            }
            let consistent = sequences.indices.filter {
                Array(sequences[$0].prefix(outcome.acceptedCount))
                    == Array(outcome.tokens.prefix(outcome.acceptedCount))
            }
            #expect(outcome.aliveDrafts == consistent)
            bonusSeen = bonusSeen || outcome.bonus
            correctionSeen = correctionSeen || !outcome.bonus
        }
        #expect(bonusSeen && correctionSeen)
    }

    /// Monte Carlo of the real `verify()` (not the exact law): n = 3, K = 3 (two drafts share one
    /// draft model, the third has another), L = 2, 50 000 rounds, each with freshly sampled drafts.
    /// Compares the first token with T[r][·] and the first two tokens (the second drawn from
    /// T[y₁][·] when the round produced one token) with T[r][y₁]·T[y₁][y₂] by Pearson's χ² over
    /// the cells of positive probability, at the 1 − 10⁻⁶ quantile of χ²(cells − 1); cells of
    /// probability zero must stay empty. Every expected count is ≥ 2 500, so the χ² approximation is
    /// accurate; the false-failure probability is ≈ 2 · 10⁻⁶ per scheme (two tests, union bound).
    @Test(arguments: sequenceSchemes)
    func monteCarloMatchesTargetBigram(scheme: SchemeUnderTest) throws {
        let target = try Bigram(rows: [[0.5, 0.3, 0.2], [0.0, 0.6, 0.4], [0.25, 0.25, 0.5]])
        let modelA = try Bigram(rows: [[0.6, 0.4, 0.0], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]])
        let modelB = try Bigram(rows: [[0.1, 0.2, 0.7], [0.5, 0.0, 0.5], [1.0 / 3, 1.0 / 3, 1.0 / 3]])
        let c = SequenceCase(
            target: target, draftModels: [modelA, modelA, modelB], lawGroups: [0, 0, 1], root: 0, length: 2)
        let verifier = TreeVerifier(scheme: scheme.scheme)
        var rng = ChorusRandom(seed: 2025)
        let rounds = 50_000
        var first = [Int](repeating: 0, count: 3)
        var pairs = [Int](repeating: 0, count: 9)
        for _ in 0..<rounds {
            let sequences = (0..<c.k).map { c.draftModels[$0].sample(length: c.length, after: c.root, using: &rng) }
            let tree = try c.tree(sequences)
            let outcome = try verifier.verify(tree: tree, targetDistributions: c.targets(for: tree), using: &rng)
            let y1 = outcome.tokens[0]
            let y2 = outcome.tokens.count > 1 ? outcome.tokens[1] : target.rows[y1].sample(using: &rng)
            first[y1] += 1
            pairs[3 * y1 + y2] += 1
        }
        let firstExpected = (0..<3).map { target[c.root, $0] }
        let pairExpected = (0..<9).map { target[c.root, $0 / 3] * target[$0 / 3, $0 % 3] }
        for (observed, expected) in [(first, firstExpected), (pairs, pairExpected)] {
            var statistic = 0.0
            var cells = 0
            for (o, p) in zip(observed, expected) {
                if p == 0 {
                    #expect(o == 0, "a token sequence of target probability 0 was produced")
                    continue
                }
                let e = p * Double(rounds)
                #expect(e >= 2500)
                statistic += (Double(o) - e) * (Double(o) - e) / e
                cells += 1
            }
            #expect(statistic < chiSquareQuantile1e6[cells - 1], "χ² = \(statistic) over \(cells) cells")
        }
    }
}

/// chiSquareQuantile1e6[df]: the 1 − 10⁻⁶ quantile of χ² with df degrees of freedom
/// (scipy.stats.chi2.isf(1e-6, df)); index 0 unused.
let chiSquareQuantile1e6: [Double] = [
    .nan, 23.9281, 27.6310, 30.6648, 33.3768, 35.8882, 38.2583, 40.5218, 42.7009, 44.8109,
]
