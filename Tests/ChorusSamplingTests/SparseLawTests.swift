import Foundation
import Testing

@testable import ChorusSampling

/// Issue 13, part 2: a quantized draft law stays sparse from the decoded reply to the verifier, and the
/// sparse storage changes nothing about the law, the acceptance or the draws.
@Suite struct SparseLawTests {
    /// A tree of sparse (quantized) draft laws, verified with `optimal` — drafts of one law (K = 4) and
    /// of two laws (the grouped composition) — never widens a draft law to a dense vector, at
    /// n = 151,936; and target laws are built only for the nodes the walk reaches, each once.
    @Test(arguments: [1, 2])
    func draftLawsStaySparseThroughTheVerifier(groups: Int) throws {
        let n = 151_936
        var gen = CaseGenerator(seed: 1300 + UInt64(groups))
        let (_, base) = gen.languageModelLike(n: n, temperature: 1)
        let laws = (0..<groups).map { _ in
            QuantizedDistribution(
                quantizing: gen.languageModelLike(n: n, temperature: 1, correlatedWith: base).distribution
            ).distribution
        }
        var rng = ChorusRandom(seed: 99)
        // Four drafts of L = 2; position 2's law is the same law again (what matters is its storage).
        let drafts = (0..<4).map { k -> DraftSequence in
            let law = laws[k % groups]
            return DraftSequence(
                tokens: [law.sample(using: &rng), law.sample(using: &rng)], distributions: [law, law],
                lawGroup: k % groups)
        }
        let tree = try DraftTree(drafts: drafts, vocabularySize: n)
        let targets = (0..<tree.nodeCount).map { _ in gen.languageModelLike(n: n, temperature: 1).distribution }
        var requested: [Int] = []
        for seed in 0..<20 as Range<UInt64> {
            var verifyRNG = ChorusRandom(seed: seed)
            requested = []
            let outcome = try TreeVerifier(scheme: OptimalScheme()).verify(
                tree: tree,
                targetLaw: { node in
                    requested.append(node)
                    return targets[node]
                }, using: &verifyRNG)
            let walked = [0] + outcome.acceptedNodes
            #expect(requested == Array(walked.prefix(requested.count)), "nodes asked for: \(requested)")
            #expect(Set(requested).count == requested.count)
            #expect(requested.count == outcome.positions.count + (outcome.bonus ? 1 : 0))
        }
        for draft in drafts {
            for law in draft.distributions {
                #expect(law.isSparse)
                #expect(!law.hasDenseVector)
            }
        }
    }

    /// The same law stored sparse or dense prepares bit-identical `optimal` tables and makes the same
    /// draws from the same seeds, including the rejection path (the residual merged with the support)
    /// and the grouped composition: the storage is invisible to exactness.
    @Test func sparseAndDenseStorageSelectAlike() throws {
        var gen = CaseGenerator(seed: 1313)
        for trial in 0..<30 {
            let n = gen.int(2...80)
            let q = gen.distribution(n: n, zeroChance: 0.3)
            let groups = 1 + trial % 3
            let sparse = (0..<groups).map { _ in
                QuantizedDistribution(quantizing: gen.distribution(n: n, zeroChance: 0.3), totalBits: 12).distribution
            }
            let dense = sparse.map { try! TokenDistribution(probabilities: $0.probabilities) }
            #expect(sparse.allSatisfy(\.isSparse) && !dense.contains(where: \.isSparse))
            let k = gen.int(groups...6)
            let pick = (0..<k).map { $0 % groups }
            let a = try OptimalScheme().prepare(target: q, drafts: pick.map { sparse[$0] })
            let b = try OptimalScheme().prepare(target: q, drafts: pick.map { dense[$0] })
            #expect(a.acceptance.bitPattern == b.acceptance.bitPattern)
            var draftRNG = ChorusRandom(seed: UInt64(trial))
            for draw in 0..<30 {
                let drafted = pick.map { sparse[$0].sample(using: &draftRNG) }
                var r1 = ChorusRandom(seed: UInt64(trial) &* 7919)
                var r2 = r1
                #expect(a.select(drafted, using: &r1) == b.select(drafted, using: &r2))
                #expect(r1 == r2)
                if draw % 6 == 0 { #expect(a.law(given: drafted) == b.law(given: drafted)) }
            }
        }
    }

    /// Sampling and point look-ups read a sparse law exactly as its dense twin.
    @Test func sparseStorageAnswersLikeDense() throws {
        var gen = CaseGenerator(seed: 17)
        for _ in 0..<30 {
            let n = gen.int(1...200)
            let sparse = QuantizedDistribution(quantizing: gen.distribution(n: n, zeroChance: 0.5), totalBits: 10)
                .distribution
            let dense = sparse.probabilities.withUnsafeBufferPointer { _ in
                try! TokenDistribution(probabilities: sparse.probabilities)
            }
            #expect(sparse == dense && dense == sparse)
            #expect(sparse.agrees(with: dense, within: 0))
            for y in 0..<n { #expect(sparse[y] == dense[y]) }
            var r1 = ChorusRandom(seed: UInt64(n)), r2 = r1
            for _ in 0..<20 { #expect(sparse.sample(using: &r1) == dense.sample(using: &r2)) }
        }
    }

    /// The fused softmax of float logits is bit for bit the general path's law (which widens the logits
    /// first), with -infinity logits and several temperatures.
    @Test func fusedSoftmaxIsBitIdentical() throws {
        var gen = CaseGenerator(seed: 23)
        for trial in 0..<20 {
            let n = gen.int(1...5000)
            var logits = (0..<n).map { _ in Float(gen.gaussian() * 4) }
            if trial % 3 == 0 { logits[gen.int(0...(n - 1))] = -.infinity }
            for temperature in [0.3, 1, 1.7] {
                let settings = SamplingSettings(temperature: temperature)
                let fused = try TokenDistribution(logits: logits, settings: settings)
                let general = try TokenDistribution(logits: logits.map(Double.init), settings: settings)
                #expect(fused.support == general.support)
                #expect(fused.probabilities.map(\.bitPattern) == general.probabilities.map(\.bitPattern))
            }
        }
    }
}
