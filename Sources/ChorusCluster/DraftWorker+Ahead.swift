import ChorusModel
import ChorusSampling
import ChorusWire
import Foundation

/// Drafting ahead (issue 11, DESIGN.md "Data flow of one round"): once a worker has replied for round r, it
/// drafts for round r + 1 while the coordinator verifies round r. The next context is the current one plus an
/// accepted prefix of a reply sequence plus one correction or bonus token; the worker drafts from the likeliest
/// of these *branches*, all as rows of one forward pass per step, on one tree hanging off the context:
///
///     context ─ s[0] ─ s[1] ─ … ─ s[L−1]          the reply's sequences, as drafted (only s[L−1] is new)
///            │      │              └ c ─ d ─ d …   bonus branch: every draft accepted, then c
///            │      └ c ─ d ─ d …                  correction branch: s[0] accepted, s[1] replaced by c
///            └ c ─ d ─ d …                         correction branch: s[0] replaced by c
///
/// The reply's sequences are the tree the reply was drafted on, left pending on the session: its nodes are
/// not scored again. After a hit, the drafts made on the branch stay pending below the new context
/// (``LanguageModelSession/keepTreePathAndBelow(_:)``) and the next plan builds on them in the same way.
///
/// Exactness. The next request's seed is ``DraftRequest/nextSeed(after:)`` of this one's, fixed before the
/// outcome is known, and a branch's sequences draw from exactly the generators a fresh draft with that seed
/// uses (``DraftWorker/DraftStream/generator(seed:sequence:)``). A branch's logits equal those of decoding its
/// path alone (the engine's tree rows are bit-identical to sequential ones, whichever step scored them and
/// wherever a kept row sits in the cache), so a branch whose context equals
/// the accepted context holds, token for token and law for law, the drafts a fresh request would get. A cache
/// hit therefore changes when the drafts are ready, never what they are: the output law, and a seeded run's
/// tokens, are those of drafting on request. Which branches are drafted depends on the reply's laws and the
/// acceptance seen so far, never on the branch generators' draws.
extension DraftWorker {
    /// What one session drafts ahead, after `base` (the context the reply was drafted from).
    final class Ahead {
        /// One possible next context: `base` + `suffix` (an accepted draft prefix and a correction or bonus).
        final class Branch {
            let suffix: [Int]
            /// Tree nodes of `suffix`, root to end: the path the KV cache keeps on a hit.
            var path: [Int]
            /// Logits after the suffix (nil until its last token is scored).
            var logits: [Float]?
            /// The next request's sequences drafted from this context (empty until `logits` arrive).
            var streams: [DraftStream] = []

            init(suffix: [Int], path: [Int]) {
                self.suffix = suffix
                self.path = path
            }
        }

        let base: [Int]
        /// The seed the next request will carry, and the settings and sequence count it is expected to ask for.
        let seed: UInt64
        let settings: SamplingSettings
        let count: Int
        /// Tokens drafted per sequence (the last request's draft length).
        let length: Int
        var branches: [Branch] = []
        /// Rows waiting for the next forward pass: (token, parent node, what the row is).
        var queued: [(token: Int, parent: Int, role: Role)] = []
        /// Bonus branches still to choose, once the reply sequences' last tokens are scored: their tree nodes.
        var bonusSlots = 0

        enum Role {
            /// The last token of a full reply sequence, whose other tokens sit at tree nodes `path` (root to
            /// end): its logits give the bonus branches.
            case sequenceEnd(sequence: [Int], path: [Int])
            /// The last token of branch i's suffix.
            case branchEnd(Int)
        }

        init(base: [Int], seed: UInt64, settings: SamplingSettings, count: Int, length: Int) {
            self.base = base
            self.seed = seed
            self.settings = settings
            self.count = count
            self.length = length
        }

        var isDone: Bool {
            queued.isEmpty && bonusSlots == 0
                && branches.allSatisfy { b in b.logits != nil && b.streams.allSatisfy { $0.tokens.count >= length } }
        }
    }

    /// Plans drafting ahead after a reply: the branches worth drafting, ranked by how likely the coordinator's
    /// verification ends in them, and the first forward's rows. The reply's sequences were drafted as a tree
    /// pending on the session (all but each sequence's last token scored), and that tree stays: the first
    /// forward scores only the full sequences' last tokens (their logits give the bonus branches) and the
    /// corrections' tokens, as children of the nodes already there. The drafting itself runs step by step in the
    /// background, between requests, all sessions' plans stepping together (`DraftWorker+Batch.swift`). Without
    /// a plan, the pending tree is dropped.
    func planAhead(after reply: [DraftStream], request: DraftRequest) {
        guard let entry = sessions[request.session] else { return }
        do {
            if configuration.aheadBranches > 0, let plan = plan(after: reply, request: request, entry: entry) {
                entry.ahead = plan
                startDraftingAhead()
            } else {
                try entry.dropAhead()
            }
        } catch {
            sessions[request.session] = nil  // cannot happen: the rollback is within the session's length
        }
    }

    /// The plan of ``planAhead(after:request:)`` on `entry`'s pending tree, nil when there is nothing to draft
    /// ahead (no tree, no room, nothing drafted).
    private func plan(after reply: [DraftStream], request: DraftRequest, entry: Entry) -> Ahead? {
        let sequences = reply.map(\.tokens)
        entry.lastReply = (entry.context, sequences)
        let length = sequences.first?.count ?? 0
        let count = sequences.count
        // Every sequence's tokens but the last must sit on the pending tree (not so when there was no room for
        // a tree and the sequences were drafted one at a time).
        guard length >= 1, count >= 1, let tree = entry.tree,
            reply.allSatisfy({ $0.tokens.count == length && $0.path.count == length - 1 })
        else { return nil }
        let plan = Ahead(
            base: entry.context, seed: DraftRequest.nextSeed(after: request.seed),
            settings: request.useWorkerSampling ? configuration.sampling : request.sampling, count: count,
            length: length)
        // The tree nodes of every scored reply prefix, root to end. A prefix drafted by several sequences sits
        // on the tree once per sequence: it takes the first one's chain whole (a chain of nodes of different
        // sequences would not be a path of the tree).
        var chains: [[Int]: [Int]] = [:]
        for stream in reply {
            for k in stream.path.indices where chains[Array(stream.tokens[0...k])] == nil {
                chains[Array(stream.tokens[0...k])] = Array(stream.path[0...k])
            }
        }
        /// The nodes of `prefix` (a scored reply prefix), root to end.
        func path(_ prefix: [Int]) -> [Int] { chains[prefix] ?? [] }
        // The full sequences' last tokens (each distinct sequence once).
        var full = Set<[Int]>()
        for sequence in sequences where full.insert(sequence).inserted {
            let prefix = path(Array(sequence.dropLast()))
            let role = Ahead.Role.sequenceEnd(sequence: sequence, path: prefix)
            plan.queued.append((sequence[length - 1], prefix.last ?? -1, role))
        }
        // Room in the context for the tree, its new rows and the branches (each: its end token, then
        // count·(length−1) rows).
        let room = model.contextLength - entry.context.count - tree - plan.queued.count
        let perBranch = 1 + count * (length - 1)
        let budget = min(configuration.aheadBranches, room / perBranch)
        guard budget >= 1 else { return nil }
        // Candidates: after a accepted positions of sequence s, correction c ≠ s[a], with odds
        // α^a (1 − α) · q_a(c) / (1 − q_a(s[a])) (the residual approximated by the draft law itself); and every
        // position accepted, then the bonus token (odds α^L · q_{L+1}(c)), chosen once its law is scored. The
        // bonus slots are those whose odds, with the last position's law as a stand-in for q_{L+1}, make the cut.
        let alpha = entry.acceptance
        var candidates: [(suffix: [Int], odds: Double)] = []
        var seen = Set<[Int]>()
        for stream in reply {
            let sequence = stream.tokens
            for (a, law) in stream.laws.enumerated() {
                let drafted = law.probability(of: sequence[a])
                let weight = pow(alpha, Double(a)) * (1 - alpha) / max(1 - drafted, 1e-9)
                for (token, p) in law.likeliest(budget + 1) where token != sequence[a] {
                    let suffix = Array(sequence[0..<a]) + [token]
                    if seen.insert(suffix).inserted { candidates.append((suffix, weight * p)) }
                }
            }
        }
        let bonusWeight = pow(alpha, Double(length))
        let stand = reply.first?.laws.last?.likeliest(budget) ?? []
        for (_, p) in stand { candidates.append(([], bonusWeight * p)) }
        candidates.sort { $0.odds > $1.odds }
        for candidate in candidates.prefix(budget) {
            guard !candidate.suffix.isEmpty else {
                plan.bonusSlots += 1
                continue
            }
            let prefix = path(Array(candidate.suffix.dropLast()))
            plan.branches.append(Ahead.Branch(suffix: candidate.suffix, path: prefix))
            plan.queued.append((candidate.suffix.last ?? 0, prefix.last ?? -1, .branchEnd(plan.branches.count - 1)))
        }
        return plan
    }

    /// One forward pass of drafting ahead for several sessions' plans (distinct sessions): in each, every branch
    /// stream draws its next token, and the queued rows (trie, branch ends, bonus ends) and the streams' new
    /// tokens are scored; all sessions' rows in the same pass. A plan whose step fails is dropped.
    func aheadStep(_ plans: [(entry: Entry, plan: Ahead)]) {
        var stepping: [(entry: Entry, plan: Ahead, queued: [Queued], streams: [DraftStream], step: Step)] = []
        for (entry, plan) in plans {
            guard entry.tree != nil else {
                entry.ahead = nil  // no tree to grow (cannot happen: a plan starts one)
                continue
            }
            // Queued rows name their parents by tree node, all of them nodes already scored.
            let queued = plan.queued
            plan.queued = []
            // All branches' streams step together: one list of streams, split back afterwards.
            var streams = plan.branches.flatMap(\.streams)
            do {
                let step = try entry.stepRows(
                    &streams, length: plan.length, settings: plan.settings, extra: queued.map { ($0.token, $0.parent) })
                stepping.append((entry, plan, queued, streams, step))
            } catch {
                try? entry.dropAhead()
            }
        }
        guard !stepping.isEmpty else { return }
        let scored: (firsts: [Int], logits: [[[Float]]])
        do {
            scored = try forward(stepping.map { ($0.entry, $0.step.rows) })
        } catch {
            for s in stepping { try? s.entry.dropAhead() }
            return
        }
        counters.aheadSteps += 1
        counters.aheadRows += stepping.reduce(0) { $0 + $1.step.rows.count }
        if stepping.filter({ !$0.step.rows.isEmpty }).count > 1 { counters.sharedAheadSteps += 1 }
        for (k, s) in stepping.enumerated() {
            var streams = s.streams
            let extra = s.entry.absorb(s.step, first: scored.firsts[k], logits: scored.logits[k], into: &streams)
            absorbAhead(s.plan, first: scored.firsts[k], queued: s.queued, logits: extra, streams: streams)
        }
    }

    typealias Queued = (token: Int, parent: Int, role: Ahead.Role)

    /// The rest of a drafting-ahead step once its rows are scored: the branch streams back in their branches,
    /// branch ends' logits and streams, and the bonus branches chosen after the full reply sequences.
    private func absorbAhead(_ plan: Ahead, first: Int, queued: [Queued], logits: [[Float]], streams: [DraftStream]) {
        var offset = 0
        for branch in plan.branches {
            let n = branch.streams.count
            branch.streams = Array(streams[offset..<(offset + n)])
            offset += n
        }
        var bonusSources: [(sequence: [Int], path: [Int], logits: [Float])] = []
        for (k, row) in queued.enumerated() {
            let node = first + k
            switch row.role {
            case let .sequenceEnd(sequence, path):
                bonusSources.append((sequence, path + [node], logits[k]))
            case let .branchEnd(b):
                let branch = plan.branches[b]
                branch.path.append(node)
                branch.logits = logits[k]
                branch.streams = (0..<plan.count).map {
                    DraftStream(
                        generator: DraftStream.generator(seed: plan.seed, sequence: $0), node: node, logits: logits[k])
                }
            }
        }
        guard plan.bonusSlots > 0, !bonusSources.isEmpty else { return }
        // Bonus branches: the likeliest next tokens after each full reply sequence.
        var offers: [(source: Int, token: Int, odds: Double)] = []
        for (i, source) in bonusSources.enumerated() {
            guard let law = try? QuantizedDistribution(logits: source.logits, settings: plan.settings) else { continue }
            for (token, p) in law.likeliest(plan.bonusSlots) { offers.append((i, token, p)) }
        }
        offers.sort { $0.odds > $1.odds }
        for offer in offers.prefix(plan.bonusSlots) {
            let source = bonusSources[offer.source]
            let suffix = source.sequence + [offer.token]
            guard !plan.branches.contains(where: { $0.suffix == suffix }) else { continue }
            plan.branches.append(Ahead.Branch(suffix: suffix, path: source.path))
            plan.queued.append((offer.token, source.path.last ?? -1, .branchEnd(plan.branches.count - 1)))
        }
        plan.bonusSlots = 0
    }

    /// The branch drafted ahead that holds a request's drafts: the one whose context is `context`, when the
    /// request asks for what the plan drafted with (seed, settings, sequences) and the rows still needed to
    /// finish its streams to `length` tokens fit in the context. nil: no such branch (a miss; the caller drops
    /// the plan and drafts afresh).
    func aheadBranch(
        _ entry: Entry, context: [Int], seed: UInt64, settings: SamplingSettings, count: Int, length: Int
    ) -> Ahead.Branch? {
        guard let plan = entry.ahead, plan.seed == seed, plan.settings == settings, plan.count == count,
            context.count > plan.base.count, context[0..<plan.base.count].elementsEqual(plan.base),
            let branch = plan.branches.first(where: {
                $0.logits != nil && context[plan.base.count...].elementsEqual($0.suffix)
            }),
            let used = entry.tree
        else { return nil }
        // Rows still to score for this branch alone, which must fit the context.
        let missing = branch.streams.reduce(0) { total, stream in
            let scored = stream.logits == nil ? max(stream.tokens.count - 1, 0) : stream.tokens.count
            return total + max(0, length - 1 - scored)
        }
        guard plan.base.count + used + missing <= model.contextLength else { return nil }
        return branch
    }
}

extension QuantizedDistribution {
    /// The k likeliest tokens with their probabilities, likeliest first (ties: lower id first).
    func likeliest(_ k: Int) -> [(token: Int, probability: Double)] {
        guard k > 0 else { return [] }
        var best: [(mass: UInt32, token: Int32)] = []
        for (token, mass) in zip(tokens, masses) where best.count < k || mass > best[best.count - 1].mass {
            let at = best.firstIndex { $0.mass < mass } ?? best.count
            best.insert((mass, token), at: at)
            if best.count > k { best.removeLast() }
        }
        let scale = 1 / Double(total)
        return best.map { (Int($0.token), Double($0.mass) * scale) }
    }
}

extension DraftWorker {
    /// What a session is drafting ahead: each branch's suffix after the context, and whether every branch is
    /// drafted to the plan's length (for tests and logs); nil when nothing is.
    public func draftingAhead(session: UInt64) -> (suffixes: [[Int]], done: Bool)? {
        guard let plan = sessions[session]?.ahead else { return nil }
        return (plan.branches.map(\.suffix), plan.isDone)
    }
}
