import ChorusModel
import ChorusSampling
import ChorusTestSupport
import Foundation
import Testing

@testable import ChorusCluster

/// Pearson's chi-square goodness-of-fit test of observed counts against expected counts, shared by the
/// exactness tests (rounds without transport, and the whole coordinator + transport stack).
///
/// Cells with expected count ≥ 5 are kept, the others pooled into one cell; cells with expected count 0
/// are impossible outcomes and reported separately (any count there is a failure on its own).
struct ChiSquareTest {
    var statistic = 0.0
    var cells = 0
    /// Observations in cells whose expected count is 0.
    var impossibleObserved = 0

    var degreesOfFreedom: Int { cells - 1 }

    init(observed: [Int], expected: [Double]) {
        precondition(observed.count == expected.count, "one expected count per observed cell")
        var pooledObserved = 0.0
        var pooledExpected = 0.0
        for (o, e) in zip(observed, expected) {
            if e == 0 {
                impossibleObserved += o
            } else if e >= 5 {
                statistic += pow(Double(o) - e, 2) / e
                cells += 1
            } else {
                pooledObserved += Double(o)
                pooledExpected += e
            }
        }
        if pooledExpected > 0 {
            statistic += pow(pooledObserved - pooledExpected, 2) / pooledExpected
            cells += 1
        }
    }

    /// The chi-square quantile with `degreesOfFreedom` at 1 − α for the normal quantile `z` of 1 − α
    /// (Wilson–Hilferty approximation; z = 4.753 for α = 1e-6).
    func threshold(z: Double) -> Double {
        let k = Double(max(degreesOfFreedom, 1))
        return k * pow(1 - 2 / (9 * k) + z * sqrt(2 / (9 * k)), 3)
    }

    /// The normal quantile of 1 − 1e-6: a false-failure probability of about one in a million.
    static let zOneInAMillion = 4.753

    /// Records a test issue when an impossible pair was generated or the statistic exceeds the 1 − 1e-6
    /// quantile (false-failure probability about 1e-6).
    static func expectFits(
        observed: [Int], expected: [Double], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let test = ChiSquareTest(observed: observed, expected: expected)
        #expect(test.impossibleObserved == 0, "an impossible pair was generated", sourceLocation: sourceLocation)
        let threshold = test.threshold(z: zOneInAMillion)
        #expect(
            test.statistic < threshold,
            "chi2 \(test.statistic) over \(threshold) with \(test.degreesOfFreedom) degrees of freedom",
            sourceLocation: sourceLocation)
    }
}

/// Expected counts of the first two generated tokens `(a, b)` (index `a·n + b`) in `runs`
/// generations from a table model after `token`: `runs · q(a | token) · q(b | a)`.
func expectedPairCounts(
    _ target: TableLanguageModel, after token: Int, settings: SamplingSettings, runs: Int
) throws -> [Double] {
    let n = target.vocabularySize
    let first = try TokenDistribution(logits: target.table[token], settings: settings)
    var expected = [Double](repeating: 0, count: n * n)
    for a in 0..<n where first[a] > 0 {
        let second = try TokenDistribution(logits: target.table[a], settings: settings)
        for b in 0..<n { expected[a * n + b] = first[a] * second[b] * Double(runs) }
    }
    return expected
}

/// Counts of the first two tokens `(a, b)` (index `a·n + b`) of `runs` seeded generations of 3 tokens after
/// `prompt` through `coordinator`, `concurrency` at a time; run r has seed `seed(r)`. Expects every run to finish
/// within 90 s.
func firstTwoTokenCounts(
    _ coordinator: Coordinator, prompt: [Int], n: Int, settings: SamplingSettings, runs: Int, concurrency: Int = 8,
    seed: @escaping @Sendable (Int) -> UInt64
) async throws -> [Int] {
    let pairs = try await within(.seconds(90), "\(runs) generations") {
        try await withThrowingTaskGroup(of: [Int].self) { group in
            var pairs: [Int] = []
            for lane in 0..<concurrency {
                group.addTask {
                    var mine: [Int] = []
                    for run in stride(from: lane, to: runs, by: concurrency) {
                        let result = try await coordinator.generate(
                            prompt: prompt, maxTokens: 3, settings: settings, seed: seed(run))
                        mine.append(result.tokens[0] * n + result.tokens[1])
                    }
                    return mine
                }
            }
            for try await chunk in group { pairs += chunk }
            return pairs
        }
    }
    #expect(pairs.count == runs)
    var counts = [Int](repeating: 0, count: n * n)
    for p in pairs { counts[p] += 1 }
    return counts
}

/// The chi-square check of ``firstTwoTokenCounts(_:prompt:n:settings:runs:concurrency:seed:)`` against
/// ``expectedPairCounts(_:after:settings:runs:)``: the first two tokens of `runs` seeded generations after the
/// one-token `prompt` follow `target`'s law (false-failure probability about 1e-6, ``ChiSquareTest``).
func expectFirstTwoTokensFollow(
    _ target: TableLanguageModel, through coordinator: Coordinator, prompt: Int, settings: SamplingSettings,
    runs: Int, seed: @escaping @Sendable (Int) -> UInt64
) async throws {
    let counts = try await firstTwoTokenCounts(
        coordinator, prompt: [prompt], n: target.vocabularySize, settings: settings, runs: runs, seed: seed)
    let expected = try expectedPairCounts(target, after: prompt, settings: settings, runs: runs)
    ChiSquareTest.expectFits(observed: counts, expected: expected)
}
