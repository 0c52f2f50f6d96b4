import Testing

@testable import ChorusModel

/// Continuous batching in the engine (issue 12, "many clients at once"): several sessions' trees scored as rows
/// of one forward pass (``TransformerModel/scoreTrees(_:tokens:parents:)``) give each session exactly the logits,
/// bit for bit, and the cache of scoring its tree alone, on the shipped models and the synthetic Q4_K/Q6_K model.
@Suite struct BatchedTreeTests {
    /// Four sessions at different lengths; per round, a tree for each (a branching tree, a chain, an empty tree,
    /// one node) and the path each keeps.
    static let prefixes = [[0, 11, 260], [0, 5], [0, 300, 41, 17, 99, 7, 8], [0]]
    static let rounds: [[(tokens: [Int], parents: [Int], path: [Int])]] = [
        [
            ([4, 9, 21, 33, 2, 70, 8], [-1, -1, 0, 0, 2, 1, 5], [0, 2, 4]),
            ([12, 13, 14], [-1, 0, 1], [0, 1]),
            ([], [], []),
            ([40], [-1], [0]),
        ],
        [
            ([6], [-1], []),
            ([15, 16, 17, 18], [-1, -1, 1, 2], [1, 2, 3]),
            ([50, 51, 52], [-1, 0, 0], [0, 2]),
            ([41, 42], [-1, -1], [1]),
        ],
    ]

    @Test(arguments: EngineTests.shippedModels + ["synthetic"])
    func treesOfSeveralSessionsInOneForwardEqualEachTreeAlone(file: String) throws {
        let model = try TransformerModel(path: try EngineTests.path(file), threads: 2)
        func sessions() throws -> [any LanguageModelSession] {
            try Self.prefixes.map { prefix in
                let session = try model.makeSession()
                _ = try session.append(prefix)
                return session
            }
        }
        let batched = try sessions()
        let alone = try sessions()
        for (r, trees) in Self.rounds.enumerated() {
            // Through the protocol, as the coordinator calls it: the model's batched forward, not the default.
            let together = try (model as any LanguageModel).scoreTrees(
                batched, tokens: trees.map(\.tokens), parents: trees.map(\.parents))
            #expect(together.count == trees.count)
            for (i, tree) in trees.enumerated() {
                let expected = try alone[i].scoreTree(tokens: tree.tokens, parents: tree.parents)
                #expect(together[i].count == expected.count)
                for (row, logits) in expected.enumerated() {
                    #expect(
                        together[i][row].map(\.bitPattern) == logits.map(\.bitPattern),
                        "\(file) round \(r) session \(i) row \(row)")
                }
                try batched[i].keepTreePath(tree.path)
                try alone[i].keepTreePath(tree.path)
                #expect(batched[i].length == alone[i].length)
            }
        }
        // The caches after two batched rounds: the next token's logits are those of the sessions kept alone.
        for i in batched.indices {
            let token = 3 + i
            #expect(
                try batched[i].append([token]).map(\.bitPattern) == alone[i].append([token]).map(\.bitPattern),
                "\(file) session \(i) after the rounds")
        }
    }

    /// Tree extensions of several sessions in one forward pass (``TransformerModel/extendTrees(_:tokens:parents:)``,
    /// how a draft worker steps several sessions' draft sequences at once) equal extending each tree alone, bit
    /// for bit: pending trees of different sizes (empty, a chain, branches), new nodes under pending ones and
    /// under each other, a session without new nodes, over three steps; then the kept paths' caches.
    @Test(arguments: EngineTests.shippedModels + ["synthetic"])
    func treeExtensionsOfSeveralSessionsInOneForwardEqualEachAlone(file: String) throws {
        let model = try TransformerModel(path: try EngineTests.path(file), threads: 2)
        // Each session: its first tree, then three extensions (parents index the whole tree), and the path kept.
        let plans: [(first: (tokens: [Int], parents: [Int]), steps: [(tokens: [Int], parents: [Int])], path: [Int])] =
            [
                (([], []), [([4, 9], [-1, -1]), ([21, 33], [0, 1]), ([2], [2])], [0, 2, 4]),
                (([12, 13], [-1, 0]), [([14], [1]), ([], []), ([15, 16], [2, 2])], [0, 1, 2, 4]),
                (([40], [-1]), [([41, 42, 43], [0, 0, 2]), ([44], [-1]), ([45], [3])], [0, 2, 3]),
                (([], []), [([], []), ([7], [-1]), ([8, 9], [0, 1])], [0, 1, 2]),
            ]
        func sessions() throws -> [any LanguageModelSession] {
            try zip(Self.prefixes, plans).map { prefix, plan in
                let session = try model.makeSession()
                _ = try session.append(prefix)
                _ = try session.scoreTree(tokens: plan.first.tokens, parents: plan.first.parents)
                return session
            }
        }
        let batched = try sessions()
        let alone = try sessions()
        for step in 0..<3 {
            let together = try (model as any LanguageModel).extendTrees(
                batched, tokens: plans.map { $0.steps[step].tokens }, parents: plans.map { $0.steps[step].parents })
            #expect(together.count == plans.count)
            for (i, plan) in plans.enumerated() {
                let expected = try alone[i].extendTree(
                    tokens: plan.steps[step].tokens, parents: plan.steps[step].parents)
                #expect(together[i].count == expected.count)
                for (row, logits) in expected.enumerated() {
                    #expect(
                        together[i][row].map(\.bitPattern) == logits.map(\.bitPattern),
                        "\(file) step \(step) session \(i) row \(row)")
                }
            }
        }
        for (i, plan) in plans.enumerated() {
            try batched[i].keepTreePath(plan.path)
            try alone[i].keepTreePath(plan.path)
            let token = 3 + i
            #expect(
                try batched[i].append([token]).map(\.bitPattern) == alone[i].append([token]).map(\.bitPattern),
                "\(file) session \(i) after the kept path")
        }
        // Without a pending tree an extension is refused, batched or not, and no session changes.
        let fresh = try model.makeSession()
        _ = try fresh.append([0])
        #expect(throws: ModelError.self) {
            try model.extendTrees([fresh, batched[0]], tokens: [[1], []], parents: [[-1], []])
        }
        #expect(fresh.length == 1)
    }

    /// Bad batches are refused and change no session: a pending tree stays pending and every length stays.
    @Test func badBatchesChangeNoSession() throws {
        let model = try TransformerModel(path: try EngineTests.path("chorus-kjv-target-q8_0.gguf"))
        let a = try model.makeSession()
        let b = try model.makeSession()
        _ = try a.append([0, 7])
        _ = try b.append([0])
        _ = try a.scoreTree(tokens: [3, 4], parents: [-1, 0])
        let other = try TransformerModel(path: try EngineTests.path("chorus-kjv-target-q8_0.gguf")).makeSession()
        let v = model.vocabularySize
        let bad: [(String, [any LanguageModelSession], [[Int]], [[Int]])] = [
            ("same session twice", [a, a], [[1], [2]], [[-1], [-1]]),
            ("token outside the vocabulary", [a, b], [[1], [v]], [[-1], [-1]]),
            ("child before parent", [a, b], [[1], [1, 2]], [[-1], [1, -1]]),
            ("counts differ", [a, b], [[1]], [[-1], [-1]]),
            ("another model's session", [a, other], [[1], [2]], [[-1], [-1]]),
        ]
        for (what, sessions, tokens, parents) in bad {
            #expect(throws: ModelError.self, "\(what)") {
                try model.scoreTrees(sessions, tokens: tokens, parents: parents)
            }
        }
        #expect(a.length == 2 && b.length == 1)
        try a.keepTreePath([0, 1])  // the tree scored before the bad batches is still pending
        #expect(a.length == 4)
    }
}
