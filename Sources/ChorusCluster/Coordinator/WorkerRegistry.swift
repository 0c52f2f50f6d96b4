import ChorusModel
import ChorusTransport
import ChorusWire

/// A worker as the coordinator sees it.
public struct WorkerStatus: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Not described yet: being probed, and not sent draft requests until it answers.
        case unknown
        case ready
        /// Missed a deadline or failed: skipped until a probe answers.
        case suspect
        /// Wrong vocabulary (or another permanent problem): never used.
        case refused(String)
    }
    public var address: String
    public var workerID: String?
    public var state: State
    public var repliesUsed: Int
    public var failures: Int
}

/// The coordinator's workers: membership (static list and registrations), admission (one
/// vocabulary with the target), description and probing, and the backoff of workers that keep
/// missing deadlines. It also remembers, per worker and session, the context the worker's cache
/// holds, so a request sends only the new tokens.
public actor WorkerRegistry {
    /// A ready worker, as one round's request needs it.
    struct Worker: Sendable {
        let address: String
        /// The law group of every sequence this worker drafts.
        let group: Int
        let transport: any DraftTransport
        /// The context this worker's cache is known to hold for the round's session (empty: none).
        let cachedContext: [Int]
        /// The seed of this worker's next request in the session when it answered the last one
        /// (``DraftRequest/nextSeed(after:)``, what it drafts ahead with); nil: a seed of the round's own.
        let nextSeed: UInt64?
    }

    /// What became of one worker's reply in a round.
    enum Outcome: Sendable {
        /// Drafts kept; the worker's cache now holds `context`; the request carried `seed`.
        case used(context: [Int], seed: UInt64)
        /// No reply by the deadline (or a transport error).
        case missed(TransportError)
        /// A reply that failed validation.
        case dropped(String)
    }

    final class Entry {
        let address: String
        let transport: any DraftTransport
        let group: Int
        var registration: Registration?
        var state: WorkerStatus.State = .unknown
        /// Per session: the context this worker's cache is known to hold.
        var cachedContext: [UInt64: [Int]] = [:]
        /// Per session: the seed of the worker's next request (it answered the last one).
        var nextSeed: [UInt64: UInt64] = [:]
        var repliesUsed = 0
        var failures = 0
        var probing = false
        /// Rounds missed in a row, and when the last one was (clock time): a worker that keeps
        /// missing the deadline waits longer (doubling, up to 8 s) before probes let it back in.
        var consecutiveMisses = 0
        var lastMiss: Duration?
        /// Why the last describe failed, logged once per distinct reason (no silent fallback, no log flood).
        var notReadyReason: String?

        /// No wait for the first probe after a worker is first skipped (a worker that was only late answers it
        /// at once and is back for the next round); then doubling from 250 ms.
        var backoff: Duration {
            guard consecutiveMisses > WorkerRegistry.lateRoundsBeforeSuspect else { return .zero }
            return min(
                .milliseconds(250) * (1 << min(consecutiveMisses - WorkerRegistry.lateRoundsBeforeSuspect - 1, 5)),
                .seconds(8))
        }

        init(address: String, transport: any DraftTransport, group: Int) {
            self.address = address
            self.transport = transport
            self.group = group
        }
    }

    /// Rounds in a row a worker may answer late before it is skipped until a probe answers.
    static let lateRoundsBeforeSuspect = 2
    let target: ModelIdentity
    let connector: any DraftTransportConnector
    let log: ClusterLog
    let clock: ClusterClock
    /// How often a worker that is not ready is described again.
    let probeInterval: Duration
    /// How long one describe request may take.
    let describeTimeout: Duration
    var entries: [Entry] = []
    var closed = false

    init(
        target: ModelIdentity, connector: any DraftTransportConnector, log: ClusterLog, clock: ClusterClock,
        probeInterval: Duration, describeTimeout: Duration
    ) {
        self.target = target
        self.connector = connector
        self.log = log
        self.clock = clock
        self.probeInterval = probeInterval
        self.describeTimeout = describeTimeout
    }

    /// Adds a worker by address (static list or registration) and starts describing it; returns its
    /// index (an address already known keeps its index).
    @discardableResult
    func add(address: String) throws -> Int {
        if let existing = entries.firstIndex(where: { $0.address == address }) { return existing }
        let transport = try connector.connect(to: TransportAddress(address))
        let entry = Entry(address: address, transport: transport, group: entries.count)
        entries.append(entry)
        log.info("worker \(address) added")
        probe(entry)
        return entries.count - 1
    }

    var statuses: [WorkerStatus] {
        entries.map {
            WorkerStatus(
                address: $0.address, workerID: $0.registration?.workerID, state: $0.state,
                repliesUsed: $0.repliesUsed, failures: $0.failures)
        }
    }

    /// A worker's registration (or its answer to `describe`): admitted when the vocabularies match.
    func register(_ registration: Registration) -> RegistrationReply {
        if let problem = admissionProblem(registration) {
            log.error("registration of \(registration.workerID) at \(registration.address) refused: \(problem)")
            return RegistrationReply(accepted: false, reason: problem)
        }
        do {
            let index = try add(address: registration.address)
            admit(entries[index], registration)
            return RegistrationReply(accepted: true, reason: "")
        } catch {
            return RegistrationReply(accepted: false, reason: "cannot dial \(registration.address): \(error)")
        }
    }

    /// The workers that get this round's request: described and ready ones only (an unknown worker
    /// is being probed, and would cost a whole deadline if it is not there).
    func ready(session: UInt64) -> [Worker] {
        entries.filter { $0.state == .ready }.map {
            Worker(
                address: $0.address, group: $0.group, transport: $0.transport,
                cachedContext: $0.cachedContext[session] ?? [], nextSeed: $0.nextSeed[session])
        }
    }

    /// Records a round's outcomes: a miss makes the worker suspect (probed until it answers), a
    /// dropped reply counts as a failure, a used one resets the miss count.
    func record(_ outcomes: [(address: String, outcome: Outcome)], session: UInt64, round: UInt64) {
        for (address, outcome) in outcomes {
            guard let entry = entries.first(where: { $0.address == address }) else { continue }
            switch outcome {
            case let .used(context, seed):
                entry.consecutiveMisses = 0
                entry.cachedContext[session] = context
                entry.nextSeed[session] = DraftRequest.nextSeed(after: seed)
                entry.repliesUsed += 1
            case let .missed(error):
                entry.failures += 1
                entry.consecutiveMisses += 1
                entry.lastMiss = clock.now
                entry.nextSeed[session] = nil
                // A late reply is noise once (the deadline is learned at the 90th percentile), a pattern twice
                // in a row: only then is the worker skipped until a probe answers. Its cache still holds at
                // least the context it was last known to hold (a late request only extends it), so that stays.
                let late: Bool
                if case .timedOut = error { late = true } else { late = false }
                if !late { entry.cachedContext[session] = nil }
                if entry.state == .ready || entry.state == .unknown {
                    log.warning("worker \(address) missed round \(round) of session \(session): \(error)")
                    if !late || entry.consecutiveMisses >= Self.lateRoundsBeforeSuspect {
                        entry.state = .suspect
                        probe(entry)
                    }
                }
            case let .dropped(problem):
                entry.failures += 1
                entry.cachedContext[session] = nil
                entry.nextSeed[session] = nil
                log.warning("reply of \(address) for round \(round) dropped: \(problem)")
            }
        }
    }

    /// Forgets what the workers' caches hold for a finished session.
    func forget(session: UInt64) {
        for entry in entries {
            entry.cachedContext[session] = nil
            entry.nextSeed[session] = nil
        }
    }

    /// Stops probing and closes every transport.
    func close() {
        closed = true
        for entry in entries { entry.transport.close() }
    }

    // MARK: Admission and probing

    /// Why a worker's model cannot draft for the target (nil: it can): the vocabularies must match.
    func admissionProblem(_ registration: Registration) -> String? {
        if registration.model.vocabularySize != target.vocabularySize {
            return "vocabulary of \(registration.model.vocabularySize) tokens, target has \(target.vocabularySize)"
        }
        if !target.vocabularyHash.isEmpty, registration.model.vocabularyHash != target.vocabularyHash {
            return "vocabulary hash \(registration.model.vocabularyHash.prefix(12))… differs from the target's "
                + "\(target.vocabularyHash.prefix(12))…"
        }
        return nil
    }

    func admit(_ entry: Entry, _ registration: Registration) {
        entry.registration = registration
        if let problem = admissionProblem(registration) {
            if entry.state != .refused(problem) { log.error("worker \(entry.address) refused: \(problem)") }
            entry.state = .refused(problem)
        } else {
            if entry.state != .ready {
                log.info(
                    "worker \(entry.address) ready: \(registration.workerID), model \(registration.model.name), "
                        + "\(registration.sampling), \(registration.sequences) sequence(s)")
            }
            entry.state = .ready
        }
    }

    /// Describes a worker in the background; a suspect worker is probed until it answers.
    func probe(_ entry: Entry) {
        guard !entry.probing, !closed else { return }
        entry.probing = true
        let interval = probeInterval
        let address = entry.address
        let clock = clock
        Task { [weak self] in
            while let self {
                let done = await self.probeOnce(address: address)
                if done { break }
                try? await clock.sleep(for: interval)
            }
        }
    }

    /// Logs why a configured worker is not ready, once per distinct reason, so a coordinator that runs
    /// without drafts says why.
    func noteNotReady(_ entry: Entry, _ reason: String) {
        guard entry.notReadyReason != reason else { return }
        entry.notReadyReason = reason
        log.warning("worker \(entry.address) not ready: \(reason); retrying every \(probeInterval)")
    }

    /// How many workers are configured or registered, and how many of them are ready.
    public func readiness() -> (ready: Int, known: Int) {
        (entries.filter { $0.state == .ready }.count, entries.count)
    }

    /// One describe round trip; returns true when probing can stop.
    func probeOnce(address: String) async -> Bool {
        guard !closed, let entry = entries.first(where: { $0.address == address }) else { return true }
        if let last = entry.lastMiss, clock.now - last < entry.backoff { return false }
        do {
            let reply = try await entry.transport.request(WireMessage.describe.encoded(), timeout: describeTimeout)
            if case let .register(registration) = try WireMessage.decode(reply) {
                admit(entry, registration)
                entry.notReadyReason = nil
                entry.probing = false
                return true
            }
            noteNotReady(entry, "it answered describe with something else")
        } catch {
            noteNotReady(entry, "describe failed: \(error)")
        }
        if entry.state == .ready { entry.state = .suspect }
        return false
    }
}
