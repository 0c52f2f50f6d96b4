import Foundation

/// Where a sweep reports what it is doing (the CLI's progress bar on standard error).
public protocol BenchSweepProgress: Sendable {
    /// Starts a new item (a point or a baseline).
    func begin(_ label: String)
    /// One prompt of the current item is generated.
    func advance()
    /// A line above the progress bar.
    func note(_ text: String)
    /// The current item is done; `summary` is its line.
    func finishItem(_ summary: String)
}

/// Where a sweep's records come from and go (the CLI: stamped with the run's settings, one JSON line each).
public protocol BenchRecordSink {
    /// A record of `point` that carries the run's settings.
    func record(_ point: BenchPoint, kind: BenchRecord.Kind) -> BenchRecord
    func write(_ record: BenchRecord) throws
}

/// `chorus bench`'s sweep loop, one for both modes: local worker processes (one stage) and emulated hosts (one
/// stage per host count, `hosts` set).
extension BenchRunner {
    /// Baseline measurements in a stage of `points` measured points (the first and the re-measurements), plus the
    /// one at the end of a local sweep.
    public func baselines(_ points: Int) -> Int {
        baselineEvery > 0 ? 2 + max(0, points - 1) / baselineEvery : 2
    }

    /// Measures one stage: a warm-up and a baseline (plain target decoding), then every point against the workers
    /// `workers` gives it (a local pool starts them; emulated hosts are already up), re-measuring the baseline every
    /// ``baselineEvery`` points. Writes one record per point, skipped points included with their reason; `hosts`,
    /// `delayMilliseconds` (added latency each way) and `pinning` (CPU pinning, nil: none) describe the setting in
    /// every record. Returns how many points failed; their errors are noted on `progress`.
    public func sweep(
        _ points: [BenchPoint], hosts: Int? = nil, delayMilliseconds: Double? = nil, pinning: String? = nil,
        records: some BenchRecordSink, progress: some BenchSweepProgress,
        workers: (BenchPoint) async throws -> [String]
    ) async throws -> Int {
        // Warm-up (page faults, first allocations), then the baseline.
        _ = try await measure(nil, addresses: [])
        var baseline = try await measureBaseline(hosts: hosts, pinning: pinning, records: records, progress: progress)
        var sinceBaseline = 0
        var failures = 0
        for point in points {
            let label = hosts.map { "hosts=\($0) \(point.label)" } ?? point.label
            var record = records.record(point, kind: .point)
            record.hosts = hosts
            record.delayMilliseconds = delayMilliseconds
            record.pinning = pinning
            if let reason = point.skipReason {
                record.kind = .skipped
                record.skipReason = reason
                try records.write(record)
                progress.note("skipped \(label): \(reason)")
                continue
            }
            if baselineEvery > 0, sinceBaseline >= baselineEvery {
                baseline = try await measureBaseline(
                    hosts: hosts, pinning: pinning, records: records, progress: progress)
                sinceBaseline = 0
            }
            sinceBaseline += 1
            progress.begin(label)
            do {
                let addresses = try await workers(point)
                let began = ContinuousClock.now
                let result = try await measure(point, addresses: addresses) { _ in progress.advance() }
                BenchStatistics.fill(
                    &record, generations: result.generations, baseline: baseline, expectedDrafts: point.drafts)
                record.elapsedSeconds = Self.seconds(ContinuousClock.now - began)
                record.warnings += result.warnings.prefix(5)
                try records.write(record)
                progress.finishItem(Self.summary(record))
            } catch {
                failures += 1
                progress.note("FAILED \(label): \(error)")
            }
        }
        return failures
    }

    /// Measures plain target decoding and records it; returns its token rate.
    public func measureBaseline(
        _ label: String = "plain target decoding (baseline)", hosts: Int? = nil, pinning: String? = nil,
        records: some BenchRecordSink, progress: some BenchSweepProgress
    ) async throws -> Double {
        progress.begin(hosts.map { "hosts=\($0): \(label)" } ?? label)
        let began = ContinuousClock.now
        let result = try await measure(nil, addresses: []) { _ in progress.advance() }
        let target = BenchPoint(
            scheme: "target", drafts: 0, workers: 0, sequencesPerWorker: 0, draftLength: 0, mix: .identical,
            draftTemperature: 0)
        var record = records.record(target, kind: .baseline)
        record.hosts = hosts
        record.pinning = pinning
        BenchStatistics.fill(&record, generations: result.generations, baseline: 0, expectedDrafts: 0)
        record.baselineTokensPerSecond = record.tokensPerSecond
        record.speedup = 1
        record.elapsedSeconds = Self.seconds(ContinuousClock.now - began)
        try records.write(record)
        progress.finishItem("baseline: plain target decoding \(Self.fixed(record.tokensPerSecond, 1)) tok/s")
        return record.tokensPerSecond
    }

    /// A measured point's line in the progress output.
    public static func summary(_ r: BenchRecord) -> String {
        var s = "\(r.scheme) K=\(r.drafts) L=\(r.draftLength) T=\(r.draftTemperature)"
        if r.mix != "identical" { s += " \(r.mix)" }
        if let h = r.hosts { s += " hosts=\(h)" }
        s += ": block eff. \(fixed(r.blockEfficiency, 2)), accept \(fixed(r.acceptanceRate, 2)), "
        s += "\(fixed(r.tokensPerSecond, 1)) tok/s (\(fixed(r.speedup, 2))×)"
        if let bytes = r.bytes.perDraftedToken { s += ", \(fixed(bytes, 0)) B per drafted token" }
        if let cpu = r.time.coordinatorCPU, r.time.round > 0 {
            s += ", coordinator CPU \(fixed(cpu / 1000, 2)) ms/round (\(fixed(100 * cpu / r.time.round, 1)) %)"
        }
        if !r.warnings.isEmpty { s += "  ⚠ \(r.warnings[0])" }
        return s
    }

    static func fixed(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

    static func seconds(_ d: Duration) -> Double {
        let (seconds, attoseconds) = d.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
