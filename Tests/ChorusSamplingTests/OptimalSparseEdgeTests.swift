import Foundation
import Testing

@testable import ChorusSampling

/// `optimal` on sparse draft laws (the quantized laws workers send) at the edges of the sparse path:
/// identical drafts, a support covering the whole vocabulary (stored sparse), K = 1, drafts with
/// disjoint supports, and target mass outside every support. Each case is checked by exact
/// enumeration (the output law is q to 1e-12; the acceptance is the closed-form optimum), and the
/// identical-draft cases also bit for bit against ``ReferenceQuantileKeys`` (tables and draws).
@Suite struct OptimalSparseEdgeTests {
    static let tol = 1e-12

    /// A sparse law on `tokens` with the given integer masses (summing to 2^bits).
    static func sparse(n: Int, bits: Int, _ pairs: [(Int32, UInt32)]) throws -> TokenDistribution {
        let law = try QuantizedDistribution(
            vocabularySize: n, totalBits: bits, tokens: pairs.map(\.0), masses: pairs.map(\.1))
        let distribution = law.distribution
        #expect(distribution.isSparse)
        return distribution
    }

    /// Enumerates the scheme on `drafts` and checks the marginal, the acceptance against the
    /// brute-force optimum (identical drafts only; the grouped composition is not optimal across
    /// groups), and that only drafted tokens are accepted.
    static func expectExact(target q: TokenDistribution, drafts: [TokenDistribution], label: String) throws {
        let prepared = try OptimalScheme().prepare(target: q, drafts: drafts)
        let law = enumerate(prepared, drafts: drafts)
        #expect(maxAbsDifference(law.output, q.probabilities) < tol, "\(label): marginal is not q")
        #expect(abs(law.acceptance - prepared.acceptance) < tol, "\(label): acceptance \(law.acceptance)")
        #expect(law.acceptance <= law.inDrafts + tol, "\(label): accepted a token that was not drafted")
        if drafts.areIdentical {
            let optimum = try OptimalAcceptance.nonIdentical(target: q, drafts: drafts)
            #expect(abs(prepared.acceptance - optimum) < tol, "\(label): \(prepared.acceptance) vs P* \(optimum)")
            try OptimalReferenceTests.expectAgreement(
                target: q, draft: drafts[0], k: drafts.count, draws: 200, seed: UInt64(label.count))
        }
    }

    /// Identical sparse drafts, K = 1…4, with target mass on tokens outside the support (they can
    /// only be reached through the residual) and a supported token the target gives no mass.
    @Test func identicalSparseDraftsAreExact() throws {
        let q = try TokenDistribution(probabilities: [0.3, 0, 0.25, 0.05, 0.4, 0])
        let p = try Self.sparse(n: 6, bits: 8, [(1, 64), (2, 32), (4, 160)])
        for k in 1...4 {
            try Self.expectExact(target: q, drafts: Array(repeating: p, count: k), label: "identical K \(k)")
        }
    }

    /// A support that covers every token, stored sparse (the sort then takes token = support index).
    @Test func supportCoveringEverythingIsExact() throws {
        let q = try TokenDistribution(probabilities: [0.1, 0.2, 0.3, 0.15, 0.25])
        let p = try Self.sparse(n: 5, bits: 10, [(0, 300), (1, 100), (2, 200), (3, 324), (4, 100)])
        #expect(p.support.count == 5)
        for k in [1, 2, 3] {
            try Self.expectExact(target: q, drafts: Array(repeating: p, count: k), label: "full cover K \(k)")
        }
    }

    /// One-token supports: K = 1 is plain speculative sampling (accept with q_x / p_x = q_x), and K
    /// identical one-token drafts can do no better.
    @Test func oneTokenSupport() throws {
        let q = try TokenDistribution(probabilities: [0.5, 0.2, 0.3])
        let p = try Self.sparse(n: 3, bits: 4, [(1, 16)])
        for k in [1, 3] {
            let prepared = try OptimalScheme().prepare(target: q, drafts: Array(repeating: p, count: k))
            #expect(abs(prepared.acceptance - 0.2) < Self.tol)
            try Self.expectExact(target: q, drafts: Array(repeating: p, count: k), label: "one token K \(k)")
        }
    }

    /// Drafts of different laws with disjoint supports (and a token neither covers): the grouped
    /// composition stays exact; and two drafts with one law each give the sum of the two overlaps.
    @Test func disjointSupportsAreExact() throws {
        let q = try TokenDistribution(probabilities: [0.2, 0.3, 0.1, 0.25, 0.15])
        let a = try Self.sparse(n: 5, bits: 6, [(0, 40), (1, 24)])
        let b = try Self.sparse(n: 5, bits: 6, [(3, 48), (4, 16)])
        try Self.expectExact(target: q, drafts: [a, b], label: "disjoint a b")
        try Self.expectExact(target: q, drafts: [a, a, b], label: "disjoint a a b")
        try Self.expectExact(target: q, drafts: [b, a, b], label: "disjoint b a b")
    }

    /// Identical drafts whose law equals the target's (ratio 1 on the support): P* = 1 for every K
    /// (q(S) ≥ q(S)^K), so the draft is accepted with certainty.
    @Test func draftEqualToTargetAcceptsAlways() throws {
        let p = try Self.sparse(n: 4, bits: 4, [(0, 4), (2, 8), (3, 4)])
        let q = try TokenDistribution(probabilities: p.probabilities)
        for k in [1, 2, 4] {
            let prepared = try OptimalScheme().prepare(target: q, drafts: Array(repeating: p, count: k))
            #expect(abs(prepared.acceptance - 1) < Self.tol, "K \(k): \(prepared.acceptance)")
            try Self.expectExact(target: q, drafts: Array(repeating: p, count: k), label: "equal K \(k)")
        }
    }
}
