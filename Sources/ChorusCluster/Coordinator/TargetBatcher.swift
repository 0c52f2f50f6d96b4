import ChorusModel
import Synchronization

/// Continuous batching of the target (issue 12, "many clients at once"): the rounds of every session that are
/// ready for the target at the same moment go through ONE forward pass, each session's tree as its own rows on
/// its own KV cache (``LanguageModel/scoreTrees(_:tokens:parents:)``), so each weight block is read once for all
/// of them.
///
/// Nothing waits for company on a timer: a request that finds the target idle starts a forward once what is
/// already runnable has run (``gather()``); requests that arrive while a forward runs are scored together by the
/// next one. The forward runs off the coordinator's
/// actor, so other sessions can collect their drafts and build their trees meanwhile.
///
/// Each session's logits are those of scoring its tree alone (the engine's rows do not depend on each other),
/// so batching changes no session's tokens.
final class TargetBatcher: Sendable {
    /// What one forward pass gave a session: its rows' logits [rows][vocab], the forward's time and how many
    /// sessions shared it.
    struct Scored: Sendable {
        var logits: [[Float]]
        var microseconds: Int64
        var sessions: Int
    }

    /// A session handed to the batcher. `@unchecked`: its owner (the round loop of its generation) awaits the
    /// result and touches the session only after that, so exactly one thread uses it at any time.
    struct OwnedSession: @unchecked Sendable {
        let session: any LanguageModelSession
    }

    private struct Job: Sendable {
        let session: OwnedSession
        let tokens: [Int]
        let parents: [Int]
        let reply: CheckedContinuation<Result<Scored, ModelError>, Never>
    }

    private struct State {
        var pending: [Job] = []
        var running = false
    }

    private let target: any LanguageModel
    private let clock: ClusterClock
    /// False: one request per forward, in arrival order (sessions take turns on the target).
    private let combine: Bool
    private let log: ClusterLog
    private let state = Mutex(State())

    init(target: any LanguageModel, clock: ClusterClock, combine: Bool = true, log: ClusterLog) {
        self.target = target
        self.clock = clock
        self.combine = combine
        self.log = log
    }

    /// Scores `tokens`/`parents` on `session` (as its `scoreTree`), in the next forward pass of the target.
    func score(_ session: OwnedSession, tokens: [Int], parents: [Int]) async throws(ModelError) -> Scored {
        let result = await withCheckedContinuation { (reply: CheckedContinuation<Result<Scored, ModelError>, Never>) in
            let start = state.withLock { s in
                s.pending.append(Job(session: session, tokens: tokens, parents: parents, reply: reply))
                guard !s.running else { return false }
                s.running = true
                return true
            }
            if start { Task.detached { await self.drain() } }
        }
        return try result.get()
    }

    /// Runs forwards while requests are pending: each takes every request that is waiting, once what is already
    /// runnable has run (``gather()``).
    private func drain() async {
        while true {
            if combine { await gather() }
            let jobs = state.withLock { s in
                let jobs = combine ? s.pending : Array(s.pending.prefix(1))
                s.pending.removeFirst(jobs.count)
                if jobs.isEmpty { s.running = false }
                return jobs
            }
            if jobs.isEmpty { return }
            run(jobs)
        }
    }

    /// Before a forward: yields the executor while requests keep arriving — until four yields in a row bring
    /// none (``quietYields``), at most ``gatherYields`` times.
    ///
    /// Why: a forward resumes every session it scored; they are runnable at once and come back within a fraction
    /// of a forward (verify, publish, build the next tree). Started eagerly, the next forward ran with the one
    /// session that came back first and, on a coordinator pinned to one core, preempted the others, which then
    /// missed it too: eight clients without drafts averaged 1.2–1.5 sessions per forward and 450–600 tokens/s,
    /// against 1,100–1,400 with this (docs/benchmarks.md §9). Nothing waits on a timer: when nothing else is
    /// runnable (one session, or sessions waiting for their drafts) the yields cost microseconds. Batching
    /// changes no session's tokens, so neither does this.
    private func gather() async {
        var seen = state.withLock { $0.pending.count }
        var quiet = 0
        for _ in 0..<Self.gatherYields {
            await Task.yield()
            let now = state.withLock { $0.pending.count }
            if now == seen {
                quiet += 1
                if quiet == Self.quietYields { return }
            } else {
                quiet = 0
                seen = now
            }
        }
    }

    static let gatherYields = 32
    static let quietYields = 4

    private func run(_ jobs: [Job]) {
        let start = clock.now
        do {
            let logits = try target.scoreTrees(
                jobs.map(\.session.session), tokens: jobs.map(\.tokens), parents: jobs.map(\.parents))
            let microseconds = (clock.now - start).microseconds
            for (job, rows) in zip(jobs, logits) {
                job.reply.resume(
                    returning: .success(Scored(logits: rows, microseconds: microseconds, sessions: jobs.count)))
            }
        } catch {
            // One bad request must not fail the others (a failed batch changes no session): score each alone.
            log.warning("a batched target forward of \(jobs.count) sessions failed (\(error)); scoring each alone")
            for job in jobs {
                let start = clock.now
                do {
                    let rows = try job.session.session.scoreTree(tokens: job.tokens, parents: job.parents)
                    let scored = Scored(logits: rows, microseconds: (clock.now - start).microseconds, sessions: 1)
                    job.reply.resume(returning: .success(scored))
                } catch {
                    job.reply.resume(returning: .failure(error as? ModelError ?? .invalidRequest("\(error)")))
                }
            }
        }
    }
}
