import Foundation
import Testing

@testable import ChorusSampling

/// A generator that returns a fixed list of outputs (for exact tests of integer sampling).
struct ScriptedRandom: RandomNumberGenerator {
    var outputs: [UInt64]
    var index = 0
    mutating func next() -> UInt64 {
        defer { index += 1 }
        return outputs[index]
    }
}

/// The compact draft law (issue 13): invariants of the quantizer, the exactness of its dense view and
/// of its integer sampler, and the strict validating initialiser.
@Suite struct QuantizedDistributionTests {
    /// Laws that exercise the quantizer: random with zeros, LM-like, near-uniform (fallback path), one-hot.
    static func laws() -> [TokenDistribution] {
        var gen = CaseGenerator(seed: 131)
        var result: [TokenDistribution] = []
        for _ in 0..<40 { result.append(gen.distribution(n: gen.int(1...60), zeroChance: 0.3)) }
        for t in [0.7, 1.0, 1.5] { result.append(gen.languageModelLike(n: 5000, temperature: t).distribution) }
        result.append(.uniform(vocabularySize: 300))
        result.append(.uniform(vocabularySize: 7))
        result.append(.oneHot(3, vocabularySize: 10))
        return result
    }

    @Test func quantizationKeepsTheInvariants() throws {
        for (index, law) in Self.laws().enumerated() {
            for bits in [1, 2, 4, 8, 12, 16, 20, 24, 31] {
                let label = "law \(index), 2^\(bits)"
                let quantized = QuantizedDistribution(quantizing: law, totalBits: bits)
                // The validating initialiser accepts exactly what the quantizer produced.
                let checked = try QuantizedDistribution(
                    vocabularySize: law.vocabularySize, totalBits: bits, tokens: quantized.tokens,
                    masses: quantized.masses)
                #expect(checked == quantized, "\(label)")
                #expect(quantized.masses.reduce(UInt64(0)) { $0 + UInt64($1) } == UInt64(1) << UInt64(bits))
                // Only tokens the law can produce; the arg-max always kept.
                #expect(quantized.tokens.allSatisfy { law[Int($0)] > 0 }, "\(label)")
                let argmax = law.support.max { law[$0] < law[$1] || (law[$0] == law[$1] && $0 > $1) } ?? 0
                #expect(quantized.mass(of: argmax) > 0, "\(label): arg-max dropped")
                // Every token keeps a mass within one unit of its rescaled value, or (common path) the
                // error is bounded by Σ|p − p̂| ≤ 2·(dropped mass) + m / total; the common path is
                // certain when m² + 3m ≤ 2·total (the arg-max then absorbs any residual).
                let total = Double(UInt64(1) << UInt64(bits))
                let m = Double(quantized.tokens.count)
                guard m * m + 3 * m <= 2 * total else { continue }
                #expect(law.support.allSatisfy { law[$0] * total < 1 || quantized.mass(of: $0) > 0 }, "\(label)")
                let dropped = law.support.filter { quantized.mass(of: $0) == 0 }.map { law[$0] }.reduce(0, +)
                let bound = 2 * dropped + Double(quantized.tokens.count) / total + 1e-12
                #expect(
                    quantized.l1Distance(to: law) <= bound,
                    "\(label): Σ|p − p̂| \(quantized.l1Distance(to: law)) > \(bound)")
            }
        }
    }

    @Test func fallbackKeepsTheLargestTokens() throws {
        // 300 equal tokens cannot each keep a mass at total 2^8: 256 tokens of mass 1 remain.
        let quantized = QuantizedDistribution(quantizing: .uniform(vocabularySize: 300), totalBits: 8)
        #expect(quantized.tokens.count == 256)
        #expect(quantized.masses.allSatisfy { $0 == 1 })
        // A head token and a flat tail of 399 tokens each worth 0.51 units: rounding gives 450 units,
        // the fallback apportions 256 by largest remainders and the head keeps its ⌊51.3⌋ = 51.
        var w = [Double](repeating: 1, count: 400)
        w[17] = 100
        let law = try TokenDistribution(weights: w)
        let q = QuantizedDistribution(quantizing: law, totalBits: 8)
        #expect(q.masses.reduce(0, +) == 256)
        #expect(q.mass(of: 17) == 51)
        #expect(q.tokens.count == 1 + 205)
        // Equal remainders: the lower ids win.
        #expect(q.tokens.prefix(3) == [0, 1, 2])
    }

    /// The dense view is the integer law exactly: entries `mass · 2^-b` bit for bit, summing to 1
    /// exactly in float64, with the quantized tokens as its support.
    @Test func distributionIsTheIntegerLawExactly() {
        for law in Self.laws() {
            for bits in [3, 16, 24, 31] {
                let quantized = QuantizedDistribution(quantizing: law, totalBits: bits)
                let dense = quantized.distribution
                #expect(dense.support == quantized.tokens.map { Int($0) })
                var sum = 0.0
                for y in 0..<dense.vocabularySize {
                    #expect(dense[y] == Double(quantized.mass(of: y)) / Double(UInt64(1) << UInt64(bits)))
                    #expect(quantized.probability(of: y) == dense[y])
                    sum += dense[y]
                }
                #expect(sum == 1)
                #expect(quantized.l1Distance(to: dense) == 0)
            }
        }
    }

    /// Integer sampling is exact: as the generator's top b bits run over all 2^b values (low bits
    /// arbitrary), token i comes out exactly `masses[i]` times, and one output is consumed per draw.
    @Test func integerSamplingIsExact() {
        var gen = CaseGenerator(seed: 9)
        for bits in [1, 3, 6, 10] {
            for _ in 0..<10 {
                let law = gen.distribution(n: gen.int(1...20), zeroChance: 0.3)
                let quantized = QuantizedDistribution(quantizing: law, totalBits: bits)
                let count = 1 << bits
                let noise = gen.rng.next() >> UInt64(bits)
                var rng = ScriptedRandom(outputs: (0..<count).map { UInt64($0) << UInt64(64 - bits) | noise })
                var hits = [Int: UInt32]()
                for _ in 0..<count { hits[quantized.sample(using: &rng), default: 0] += 1 }
                #expect(rng.index == count)
                for (t, mass) in zip(quantized.tokens, quantized.masses) { #expect(hits[Int(t)] == mass) }
                #expect(hits.count == quantized.tokens.count)
            }
        }
    }

    @Test func validatingInitialiserRejectsEveryViolation() {
        func attempt(_ n: Int, _ bits: Int, _ tokens: [Int32], _ masses: [UInt32]) -> Bool {
            (try? QuantizedDistribution(vocabularySize: n, totalBits: bits, tokens: tokens, masses: masses)) != nil
        }
        #expect(attempt(4, 2, [0, 3], [1, 3]))
        #expect(!attempt(0, 2, [], []), "empty vocabulary")
        #expect(!attempt(4, 0, [0], [1]), "total 2^0")
        #expect(!attempt(4, 32, [0], [1]), "total 2^32")
        #expect(!attempt(4, 2, [0, 3], [4]), "count mismatch")
        #expect(!attempt(4, 2, [3, 0], [1, 3]), "descending")
        #expect(!attempt(4, 2, [1, 1], [1, 3]), "repeated token")
        #expect(!attempt(4, 2, [0, 4], [1, 3]), "token outside the vocabulary")
        #expect(!attempt(4, 2, [-1, 2], [1, 3]), "negative token")
        #expect(!attempt(4, 2, [0, 1, 2], [0, 1, 3]), "zero mass")
        #expect(!attempt(4, 2, [0, 3], [1, 2]), "sum below the total")
        #expect(!attempt(4, 2, [0, 3], [2, 3]), "sum above the total")
        #expect(!attempt(4, 2, [], []), "empty support")
    }

    /// `==` compares the support and the values on it (O(support)); it agrees with comparing the dense
    /// vectors entry by entry.
    @Test func equalityIsDecidedOnTheSupport() throws {
        var gen = CaseGenerator(seed: 44)
        for _ in 0..<200 {
            let n = gen.int(1...8)
            let a = gen.distribution(n: n, zeroChance: 0.4)
            // Separate buffers with the same values; a copy with one entry moved; another law.
            let same = try TokenDistribution(probabilities: a.probabilities.map { $0 + 0 }, tolerance: 1e-9)
            let other = gen.distribution(n: n, zeroChance: 0.4)
            for b in [same, other, QuantizedDistribution(quantizing: a, totalBits: 3).distribution] {
                #expect((a == b) == (a.probabilities == b.probabilities && a.vocabularySize == b.vocabularySize))
            }
        }
        let negativeZero = try TokenDistribution(probabilities: [-0.0, 1, 0])
        #expect(negativeZero == TokenDistribution.oneHot(1, vocabularySize: 3))
        #expect(TokenDistribution.oneHot(1, vocabularySize: 3) != TokenDistribution.oneHot(1, vocabularySize: 4))
    }

    @Test func fromLogits() throws {
        var gen = CaseGenerator(seed: 21)
        let logits = (0..<3000).map { _ in Float(gen.gaussian() * 3) }
        for settings in [
            SamplingSettings.standard, .init(temperature: 0.6), .init(temperature: 1.3, topK: 40),
            .init(temperature: 1, topP: 0.9), .greedy, .init(topK: 1),
        ] {
            let law = try TokenDistribution(logits: logits, settings: settings)
            for bits in [12, 20] {
                let direct = try QuantizedDistribution(logits: logits, settings: settings, totalBits: bits)
                let viaLaw = QuantizedDistribution(quantizing: law, totalBits: bits)
                #expect(direct.totalBits == bits)
                // The fast path computes the softmax in another order: at most a unit per token apart.
                let total = Double(UInt64(1) << UInt64(bits))
                #expect(direct.l1Distance(to: viaLaw.distribution) <= 2 * Double(viaLaw.tokens.count + 2) / total)
                #expect(direct.tokens.allSatisfy { law[Int($0)] > 0 })
            }
        }
        let greedy = try QuantizedDistribution(logits: logits, settings: .greedy, totalBits: 16)
        #expect(greedy.tokens.count == 1 && greedy.masses == [1 << 16])
        #expect(Int(greedy.tokens[0]) == logits.indices.max { logits[$0] < logits[$1] })
        #expect(throws: SamplingError.self) { try QuantizedDistribution(logits: [Float.nan, 1], settings: .standard) }
        #expect(throws: SamplingError.self) { try QuantizedDistribution(logits: [], settings: .standard) }
    }
}
