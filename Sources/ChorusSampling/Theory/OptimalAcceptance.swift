import Foundation

/// Theory of the optimal multi-draft acceptance (Khisti et al. 2025; SAMPLING.md §2).
public enum OptimalAcceptance {
    /// Tokens ordered by `q/p` ascending, tokens with `p = 0` last (ties by token id), and the
    /// prefix sums along that order: the sets `S` that can minimise `q(S) − p(S)^K` are its prefixes.
    public struct SortedPrefixes: Sendable {
        /// order: [n] token ids.
        public let order: [Int]
        /// prefixQ[j], prefixP[j]: mass of the first j tokens, j = 0...n.
        public let prefixQ: [Double]
        public let prefixP: [Double]
    }

    public static func sortedPrefixes(target q: TokenDistribution, draft p: TokenDistribution) -> SortedPrefixes {
        let n = q.vocabularySize
        // Compare q_a/p_a < q_b/p_b as q_a p_b < q_b p_a (no division); p = 0 goes last.
        let order = (0..<n).sorted { a, b in
            let pa = p.probabilities[a], pb = p.probabilities[b]
            if (pa == 0) != (pb == 0) { return pb == 0 }
            if pa == 0 { return a < b }
            let lhs = q.probabilities[a] * pb, rhs = q.probabilities[b] * pa
            return lhs != rhs ? lhs < rhs : a < b
        }
        var prefixQ = [Double](repeating: 0, count: n + 1)
        var prefixP = [Double](repeating: 0, count: n + 1)
        for (j, t) in order.enumerated() {
            prefixQ[j + 1] = prefixQ[j] + q.probabilities[t]
            prefixP[j + 1] = prefixP[j] + p.probabilities[t]
        }
        return SortedPrefixes(order: order, prefixQ: prefixQ, prefixP: prefixP)
    }

    /// `P* = 1 + min_S [q(S) − p(S)^K]` for K i.i.d. drafts from `p`, in O(n log n):
    /// `min_j [Q_j + 1 − P_j^K]` over the sorted prefixes (j = 0 gives 1).
    public static func identical(target q: TokenDistribution, draft p: TokenDistribution, drafts k: Int) -> Double {
        let prefixes = sortedPrefixes(target: q, draft: p)
        var best = 0.0
        for j in 1..<prefixes.prefixQ.count {
            best = min(best, prefixes.prefixQ[j] - pow(prefixes.prefixP[j], Double(k)))
        }
        return 1 + best
    }

    /// Whether K i.i.d. drafts from `p` can be accepted with certainty (optimum = 1): iff
    /// `q(S) ≥ p(S)^K` for every set S (Theorem 2 for K = 2), tested on the sorted prefixes, which
    /// contain the minimiser. `tolerance` absorbs rounding in the prefix sums.
    public static func acceptsWithCertainty(
        target q: TokenDistribution, draft p: TokenDistribution, drafts k: Int, tolerance: Double = 1e-12
    ) -> Bool {
        let prefixes = sortedPrefixes(target: q, draft: p)
        for j in 1..<prefixes.prefixQ.count
        where prefixes.prefixQ[j] - pow(prefixes.prefixP[j], Double(k)) < -tolerance {
            return false
        }
        return true
    }
}
