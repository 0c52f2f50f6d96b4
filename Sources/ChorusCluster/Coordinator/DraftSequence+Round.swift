import ChorusSampling

extension [DraftSequence] {
    /// Every draft cut to the shortest one's length, capped at `limit` (a tree needs one length).
    func trimmed(to limit: Int) -> [DraftSequence] {
        let length = Swift.min(map(\.tokens.count).min() ?? 0, limit)
        guard length >= 1 else { return [] }
        return map {
            DraftSequence(
                tokens: [Int]($0.tokens[0..<length]), distributions: [TokenDistribution]($0.distributions[0..<length]),
                lawGroup: $0.lawGroup)
        }
    }

    /// Why these drafts break the law-group promise (``DraftSequence/lawGroup``), or nil: two drafts of
    /// one group that agree on the tokens before position t must give the same law at t (within
    /// ``DraftTree/lawTolerance``, as ``DraftTree`` checks it).
    func lawGroupProblem() -> String? {
        for i in indices {
            for j in index(after: i)..<endIndex where self[i].lawGroup != nil && self[i].lawGroup == self[j].lawGroup {
                let common = Swift.min(self[i].tokens.count, self[j].tokens.count)
                for t in 0..<common {
                    let a = self[i].distributions[t]
                    let b = self[j].distributions[t]
                    guard a.agrees(with: b, within: DraftTree.lawTolerance) else {
                        return "sequences \(i) and \(j) share a prefix but not the law at position \(t + 1)"
                    }
                    if self[i].tokens[t] != self[j].tokens[t] { break }
                }
            }
        }
        return nil
    }

    /// True when every two drafts of different groups that share a prefix drew the next token from
    /// one law: what a scheme that needs identical drafts (SpecTr) can verify. Drafts of one group
    /// share their laws by the group's promise (the tree hands them over as one law).
    var haveIdenticalLaws: Bool {
        for i in indices {
            for j in index(after: i)..<endIndex where self[i].lawGroup == nil || self[i].lawGroup != self[j].lawGroup {
                for t in 0..<Swift.min(self[i].tokens.count, self[j].tokens.count) {
                    if self[i].distributions[t] != self[j].distributions[t] { return false }
                    if self[i].tokens[t] != self[j].tokens[t] { break }
                }
            }
        }
        return true
    }
}

extension SelectionScheme {
    /// Whether the scheme is defined for identical draft laws only (SpecTr), known before the target
    /// scores anything.
    var needsIdenticalDrafts: Bool { self is SpecTrScheme }
}
