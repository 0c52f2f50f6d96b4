import ArgumentParser
import ChorusBench
import ChorusCluster
import ChorusModel
import ChorusSampling
import Foundation

/// `chorus bench --hosts`: the sweep with workers in network namespaces.
extension BenchSweepCommand {
    // MARK: Hosts mode

    func runHosts(_ counts: [Int], axes: Axes, runner: BenchRunner, context: SweepContext) async throws -> Int {
        let plans = counts.map { n in
            BenchPlan(
                schemes: axes.schemes, drafts: axes.drafts, draftLengths: axes.lengths, temperatures: axes.temperatures,
                mixes: [.identical], sequencesPerWorker: 1, hosts: n)
        }
        if axes.mixes != [.identical] {
            FileHandleOutput.standardError.write(
                "note: --hosts measures identical drafts only (the netns workers share one model and the coordinator "
                    + "sets their temperature)\n")
        }
        guard getuid() == 0 else {
            let reason = "--hosts needs root (network namespaces); run with sudo, or drop --hosts for a local sweep"
            FileHandleOutput.standardError.write("skipped: \(reason)\n")
            for (n, plan) in zip(counts, plans) {
                for point in plan.points() {
                    var record = context.record(point, kind: .skipped)
                    record.skipReason = point.skipReason ?? reason
                    record.hosts = n
                    try context.write(record)
                }
            }
            return 0
        }
        let script = try scriptPath("netns-cluster.sh")
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        let env = ProcessInfo.processInfo.environment
        let coordinatorCPUs = env["COORD_CPUS"] ?? "0"
        let workerCPUs = env["WORKER_CPUS"] ?? (cpus <= 1 ? "0" : cpus == 2 ? "1" : "1-\(cpus - 1)")
        let pinning = noPin ? nil : "taskset: coordinator CPU \(coordinatorCPUs), workers CPU \(workerCPUs) of \(cpus)"
        if let pinning { FileHandleOutput.standardError.write("pinning with \(pinning)\n") }
        if !noPin { try pinSelf(coordinatorCPUs) }
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("chorus-bench-netns-\(getpid())").path
        let total = plans.reduce(0) { total, plan in
            let measured = plan.points().filter { $0.skipReason == nil }.count
            return total + (measured + runner.baselines(measured) - 1) * runner.prompts.count
        }
        let progress = BenchProgress(total: total)
        var failures = 0
        for (n, plan) in zip(counts, plans) {
            var arguments = ["up", "\(n)", "--draft", context.primary, "--bin", binary]
            if !noPin { arguments.append("--taskset") }
            if let delayMs { arguments += ["--delay-ms", "\(delayMs)"] }
            progress.note("starting \(n) emulated host(s)…")
            let upResult = try runScript(script, arguments, state: state)
            defer { _ = try? runScript(script, ["down"], state: state) }
            guard upResult.status == 0 else {
                throw fail("netns-cluster.sh up \(n) failed (status \(upResult.status)):\n\(upResult.output)", code: 1)
            }
            let addresses = try String(contentsOfFile: state + "/workers", encoding: .utf8)
                .split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            guard addresses.count == n else {
                throw fail("netns-cluster.sh started \(addresses.count) workers, expected \(n)", code: 1)
            }
            failures += try await runner.sweep(
                plan.points(), hosts: n, delayMilliseconds: delayMs, pinning: pinning, records: context,
                progress: progress
            ) { _ in addresses }
        }
        progress.finish()
        if failures == 0 {
            for step in ["up", "down"] { try? FileManager.default.removeItem(atPath: state + "-\(step).log") }
        }
        return failures
    }

    /// Runs scripts/netns-cluster.sh with its output in a file. (Foundation's `Process.waitUntilExit`
    /// never returned here once the script had left its workers running in the background, so this
    /// spawns and waits with POSIX calls.)
    func runScript(_ script: String, _ arguments: [String], state: String) throws -> (status: Int32, output: String) {
        let logPath = state + "-\(arguments.first ?? "run").log"
        var environment = ProcessInfo.processInfo.environment
        environment["CHORUS_NETNS_STATE"] = state
        let status = try ChildProcesses.runToCompletion(
            ["/bin/bash", script] + arguments, environment: environment, output: logPath)
        return (status, (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")
    }

    /// Pins every thread of this process (and the threads it starts later) to `cpus`.
    func pinSelf(_ cpus: String) throws {
        let status = try ChildProcesses.runToCompletion(
            ["/usr/bin/env", "taskset", "-a", "-p", "-c", cpus, "\(getpid())"],
            environment: ProcessInfo.processInfo.environment,
            output: "/dev/null")
        guard status == 0 else { throw fail("taskset -a -p -c \(cpus) failed; pass --no-pin", code: 1) }
    }
}
