extension OptimalAcceptance {
    /// The largest number of *free* tokens ``nonIdentical(target:drafts:)`` enumerates (2^24 sets).
    public static let nonIdenticalFreeTokenLimit = 24

    /// `P* = 1 + min_S [q(S) − Π_k p_k(S)]` for K independent drafts `X_k ~ p_k` (SAMPLING.md §2;
    /// Khisti et al. 2025). A submodular minimisation with no single sort order, solved here by
    /// brute force over token sets.
    ///
    /// Reduction first: a token with `q = 0` only lowers the objective, so it is in the minimiser;
    /// a token no draft can produce only raises it, so it is out. The remaining *free* tokens (q > 0
    /// and some `p_k > 0`) are split into two halves whose subset sums are tabulated (each table
    /// entry is at most 12 additions, so no rounding drift), and every pair of half-subsets is
    /// scored: O(2^m · K) for m free tokens.
    ///
    /// For identical drafts it equals ``identical(target:draft:drafts:)``.
    /// Throws ``SamplingError/noDrafts``, ``SamplingError/vocabularyMismatch(expected:found:)``, and
    /// ``SamplingError/unsupported(scheme:reason:)`` when more than
    /// ``nonIdenticalFreeTokenLimit`` tokens are free.
    public static func nonIdentical(target q: TokenDistribution, drafts: [TokenDistribution]) throws -> Double {
        try checkLaws(target: q, drafts: drafts)
        let k = drafts.count
        var baseP = [Double](repeating: 0, count: k)
        var free: [Int] = []
        for y in 0..<q.vocabularySize {
            let drafted = drafts.contains { $0.probabilities[y] > 0 }
            if q.probabilities[y] == 0 {
                for i in 0..<k { baseP[i] += drafts[i].probabilities[y] }
            } else if drafted {
                free.append(y)
            }
        }
        guard free.count <= nonIdenticalFreeTokenLimit else {
            throw SamplingError.unsupported(
                scheme: "optimal (non-identical drafts)",
                reason: "brute force over token sets needs at most \(nonIdenticalFreeTokenLimit) tokens with "
                    + "q > 0 and some p_k > 0, found \(free.count); restrict the vocabulary or use the LP")
        }

        /// Subset sums of `tokens`: row `mask` holds `q(mask)` then `p_1(mask)..p_K(mask)`,
        /// flattened as [2^count][K + 1].
        func subsetSums(_ tokens: ArraySlice<Int>) -> [Double] {
            let tokens = Array(tokens)
            let width = k + 1
            var sums = [Double](repeating: 0, count: (1 << tokens.count) * width)
            for mask in 1..<(1 << tokens.count) {
                let low = mask.trailingZeroBitCount
                let rest = mask & (mask - 1)
                let y = tokens[low]
                sums[mask * width] = sums[rest * width] + q.probabilities[y]
                for i in 0..<k { sums[mask * width + 1 + i] = sums[rest * width + 1 + i] + drafts[i].probabilities[y] }
            }
            return sums
        }
        let half = free.count / 2
        let left = subsetSums(free[..<half])
        let right = subsetSums(free[half...])
        let width = k + 1
        // S = ∅ scores 0; every other candidate is the q = 0 tokens plus a set of free tokens.
        var best = 0.0
        for a in 0..<(left.count / width) {
            for b in 0..<(right.count / width) {
                var product = 1.0
                for i in 0..<k { product *= baseP[i] + left[a * width + 1 + i] + right[b * width + 1 + i] }
                let value = left[a * width] + right[b * width] - product
                if value < best { best = value }
            }
        }
        return 1 + best
    }
}
