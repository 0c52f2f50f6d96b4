import ChorusWire
import Testing

@testable import ChorusCluster

/// The draft gate (``DraftGate``): whether rounds ask for drafts while several sessions run, from measured epochs.
@Suite struct DraftGateTests {
    /// Runs `epochs` epochs at `sessions` sessions from time `t` (ms): each epoch its rounds over ≈ 100 ms, publishing
    /// `drafting` tokens a round when the gate chose drafts and `plain` when not. Returns the modes chosen.
    static func run(
        _ gate: inout DraftGate, sessions: Int, epochs: Int, from t: inout Int, drafting: Int, plain: Int
    ) -> [Bool] {
        var modes: [Bool] = []
        for _ in 0..<epochs {
            var mode: Bool?
            for _ in 0..<DraftGate.rounds(level: sessions) {
                let chosen = gate.shouldDraft(sessions: sessions, now: .milliseconds(t))
                if let mode { #expect(chosen == mode, "the mode holds for a whole epoch") }
                mode = chosen
                gate.record(tokens: chosen ? drafting : plain)
                t += 100 / DraftGate.rounds(level: sessions) + 1
            }
            modes.append(mode ?? true)
        }
        return modes
    }

    @Test func aSessionAloneAlwaysDrafts() {
        var gate = DraftGate()
        for t in 0..<200 {
            let drafts = gate.shouldDraft(sessions: 1, now: .milliseconds(t * 50))
            #expect(drafts)
            gate.record(tokens: 1)
        }
        #expect(gate.epoch == nil)
        #expect(gate.drafting.isEmpty && gate.plain.isEmpty)
    }

    /// Both modes are measured first; then the faster one is kept, and one epoch in ``DraftGate/exploreEvery``
    /// tries the other.
    @Test(arguments: [true, false]) func keepsTheFasterModeAndExploresTheOther(draftingFaster: Bool) {
        var gate = DraftGate()
        var t = 0
        let (d, p) = draftingFaster ? (30, 10) : (10, 30)
        let first = Self.run(&gate, sessions: 4, epochs: 2 * DraftGate.minimumEpochs, from: &t, drafting: d, plain: p)
        #expect(first.filter { $0 }.count == DraftGate.minimumEpochs, "both modes measured: \(first)")
        let later = Self.run(&gate, sessions: 4, epochs: 4 * DraftGate.exploreEvery, from: &t, drafting: d, plain: p)
        let chosenFaster = later.filter { $0 == draftingFaster }.count
        #expect(chosenFaster == later.count - 4, "faster mode in all but the exploring epochs: \(later)")
        let rates = gate.rates(sessions: 4)
        let fast = draftingFaster ? rates.drafting : rates.plain
        let slow = draftingFaster ? rates.plain : rates.drafting
        #expect((fast ?? 0) > 2.5 * (slow ?? .infinity))
        // Other loads are measured on their own: eight sessions start from scratch.
        #expect(gate.rates(sessions: 8).drafting == nil && gate.rates(sessions: 8).plain == nil)
    }

    /// An epoch cut short by a change in the number of sessions counts only if it had run half its rounds and
    /// half its time (all of them at its level); a shorter one counts for nothing.
    @Test func anEpochCutByALoadChangeCountsOnlyOnceHalfDone() {
        var gate = DraftGate()
        var t = 0
        let rounds = DraftGate.rounds(level: 4)
        func epoch(_ n: Int, then sessions: Int) {
            for _ in 0..<n {
                _ = gate.shouldDraft(sessions: 4, now: .milliseconds(t))
                gate.record(tokens: 100)
                t += 10
            }
            _ = gate.shouldDraft(sessions: sessions, now: .milliseconds(t))
        }
        epoch(rounds / 2 - 1, then: 3)  // 7 rounds, 70 ms: too short
        #expect(gate.rates(sessions: 4).drafting == nil && gate.rates(sessions: 4).plain == nil)
        #expect(gate.epoch?.level == 3)
        epoch(rounds / 2, then: 1)  // 8 rounds, 80 ms: counts, as a drafting epoch (the first one at a load)
        #expect(gate.rates(sessions: 4).drafting == 10_000, "100 tokens a 10 ms round")
        #expect(gate.rates(sessions: 4).plain == nil)
        #expect(gate.epoch == nil)
        // More than `widest` sessions share the widest level.
        #expect(DraftGate.level(40) == DraftGate.widest)
    }

    /// A client whose every round skipped drafting is told so, and why, not that no worker was ready.
    @Test func aGenerationThatNeverDraftedSaysWhy() {
        var s = GenerationStatistics()
        s.targetForwards = 5
        s.generatedTokens = 5
        s.roundsNotDrafted = 5
        #expect(s.warnings.count == 1)
        #expect(s.warnings.first?.contains("measured rounds without drafts") == true)
        s.roundsNotDrafted = 2
        #expect(s.warnings.first?.contains("no drafts were used") == true)
        s.draftsReceived = 3
        #expect(s.warnings.isEmpty)
    }
}
