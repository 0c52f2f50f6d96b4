import ChorusCluster
import ChorusModel
import Foundation

/// Draft-worker processes on this machine for `chorus bench`: started on demand (a model and, for
/// non-identical mixes, a temperature each), registered with a small in-process registry so their
/// bound addresses are known, reused across points, the least recently used stopped beyond a cap.
public final class LocalWorkerPool {
    struct Worker {
        var spec: WorkerSpec
        var id: String
        var process: Process
        var address: String
        var lastUsed: Int
        var log: String
    }

    let registry: CoordinatorService
    let maxWorkers: Int
    /// Branches each worker drafts ahead (nil: the worker's default).
    let aheadBranches: Int?
    let logs: URL
    var workers: [Worker] = []
    var clock = 0
    var started = 0

    /// `target`: the model the workers' vocabularies are checked against.
    public init(target: any LanguageModel, maxWorkers: Int, aheadBranches: Int? = nil) throws {
        let coordinator = Coordinator(
            target: target, tokenizer: nil, options: Coordinator.Options(), connector: ClusterNetwork.nng().connector,
            log: ClusterLog(component: "bench-registry", minimum: .error))
        registry = try CoordinatorService(coordinator: coordinator, listen: "tcp://127.0.0.1:0", network: .nng())
        self.maxWorkers = maxWorkers
        self.aheadBranches = aheadBranches
        logs = FileManager.default.temporaryDirectory.appendingPathComponent("chorus-bench-\(getpid())")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
    }

    /// Addresses of one distinct worker per spec (a spec without a temperature takes any worker of its
    /// model: the coordinator overrides the temperature), starting workers that are missing.
    public func acquire(_ specs: [WorkerSpec]) async throws -> [String] {
        clock += 1
        var ids: [String] = []
        var missing: [(slot: Int, spec: WorkerSpec)] = []
        for (slot, spec) in specs.enumerated() {
            let candidates = workers.filter { w in
                !ids.contains(w.id) && w.spec.model == spec.model
                    && (spec.temperature == nil || w.spec.temperature == spec.temperature)
            }
            // Exact matches first: keep temperature-specific workers for the points that need them.
            if let w = candidates.first(where: { $0.spec.temperature == (spec.temperature ?? 1.0) }) ?? candidates.first
            {
                ids.append(w.id)
            } else {
                ids.append("")
                missing.append((slot, spec))
            }
        }
        if !missing.isEmpty { evict(keeping: Set(ids), room: missing.count) }
        for m in missing {
            let worker = try start(m.spec)
            workers.append(worker)
            ids[m.slot] = worker.id
        }
        try await waitUntilRegistered(ids)
        var addresses: [String] = []
        for id in ids {
            guard let i = workers.firstIndex(where: { $0.id == id }) else {
                throw ChildProcesses.Failure("worker \(id) vanished")
            }
            workers[i].lastUsed = clock
            addresses.append(workers[i].address)
        }
        return addresses
    }

    /// Stops least recently used workers not in `keeping` until `room` more fit under the cap.
    func evict(keeping keepIDs: Set<String>, room: Int) {
        while workers.count + room > maxWorkers {
            guard
                let victim = workers.indices.filter({ !keepIDs.contains(workers[$0].id) })
                    .min(by: { workers[$0].lastUsed < workers[$1].lastUsed })
            else { break }
            stop(workers[victim])
            workers.remove(at: victim)
        }
    }

    func start(_ spec: WorkerSpec) throws -> Worker {
        started += 1
        let id = "bench-w\(started)"
        let log = logs.appendingPathComponent("\(id).log").path
        let child = try ChildProcesses.startChorus(
            [
                "worker", "--listen", "tcp://127.0.0.1:0", "--model", spec.model, "--register", registry.address.url,
                "--temperature", "\(spec.temperature ?? 1.0)", "--sequences", "1", "--id", id,
            ] + (aheadBranches.map { ["--ahead-branches", "\($0)"] } ?? []), log: log)
        return Worker(spec: spec, id: id, process: child, address: "", lastUsed: clock, log: log)
    }

    func waitUntilRegistered(_ ids: [String]) async throws {
        let began = ContinuousClock.now
        while true {
            let statuses = await registry.coordinator.workerStatuses
            var pending = false
            for id in ids {
                guard let i = workers.firstIndex(where: { $0.id == id }) else { continue }
                if !workers[i].address.isEmpty { continue }
                if let status = statuses.first(where: { $0.workerID == id && $0.state == .ready }) {
                    workers[i].address = status.address
                } else {
                    pending = true
                    if !workers[i].process.isRunning {
                        let tail = (try? String(contentsOfFile: workers[i].log, encoding: .utf8))?.suffix(800) ?? ""
                        throw ChildProcesses.Failure(
                            "worker \(id) exited with status \(workers[i].process.terminationStatus) before registering:\n\(tail)"
                        )
                    }
                }
            }
            if !pending { return }
            if ContinuousClock.now - began > .seconds(60) {
                throw ChildProcesses.Failure("workers did not register within 60 s (logs in \(logs.path))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func stop(_ worker: Worker) {
        if worker.process.isRunning { worker.process.terminate() }
        worker.process.waitUntilExit()
    }

    public func shutdown() async {
        for w in workers where w.process.isRunning { w.process.terminate() }
        for w in workers { w.process.waitUntilExit() }
        workers = []
        await registry.close()
        try? FileManager.default.removeItem(at: logs)
    }
}
