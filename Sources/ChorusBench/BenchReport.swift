import Foundation

/// Charts and tables from benchmark records (`chorus bench plot`).
public struct BenchReport: Sendable {
    public var records: [BenchRecord]

    public init(records: [BenchRecord]) { self.records = records }

    var points: [BenchRecord] { records.filter { $0.kind == .point } }
    var baselines: [BenchRecord] { records.filter { $0.kind == .baseline } }

    /// Points of one chart: same mix, draft length and temperature.
    struct GroupKey: Hashable, Comparable {
        var mix: String
        var draftLength: Int
        var temperature: Double

        static func < (a: GroupKey, b: GroupKey) -> Bool {
            (a.mix, a.draftLength, a.temperature) < (b.mix, b.draftLength, b.temperature)
        }

        var slug: String { "\(mix)-L\(draftLength)-T\(String(format: "%.1f", temperature))" }
        var caption: String { "\(mix) drafts, L = \(draftLength), draft T = \(String(format: "%.1f", temperature))" }
    }

    func groups() -> [(GroupKey, [BenchRecord])] {
        let grouped = Dictionary(grouping: points) {
            GroupKey(mix: $0.mix, draftLength: $0.draftLength, temperature: $0.draftTemperature)
        }
        return grouped.keys.sorted().map { ($0, grouped[$0] ?? []) }
    }

    /// Schemes in the catalog's table order, unknown names last.
    static func schemeOrder(_ names: some Sequence<String>) -> [String] {
        let order = ["sd", "specinfer", "spectr", "optimal-lp", "truncated-lp", "weighted-is", "optimal"]
        return Set(names).sorted { a, b in
            let ia = order.firstIndex(of: a) ?? order.count
            let ib = order.firstIndex(of: b) ?? order.count
            return ia != ib ? ia < ib : a < b
        }
    }

    static func mean(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) }

    /// Files to write: name → SVG text. Block efficiency vs K per group, token rate vs hosts (or worker
    /// processes for local runs), and the time split per round.
    public func charts() -> [(name: String, svg: String)] {
        var charts: [(String, String)] = []
        for (key, records) in groups() {
            let series = Self.schemeOrder(records.map(\.scheme)).map { scheme in
                let mine = records.filter { $0.scheme == scheme }
                let ks = Array(Set(mine.map(\.drafts))).sorted()
                return SVGChart.Series(
                    name: scheme,
                    points: ks.map { k in (Double(k), Self.mean(mine.filter { $0.drafts == k }.map(\.blockEfficiency)))
                    })
            }
            charts.append(
                (
                    "block-efficiency-vs-K-\(key.slug).svg",
                    SVGChart.lines(
                        title: "Block efficiency vs drafts K (\(key.caption))", xLabel: "drafts K",
                        yLabel: "tokens per target forward", series: series)
                ))
            let rank = Dictionary(
                uniqueKeysWithValues: Self.schemeOrder(records.map(\.scheme)).enumerated().map { ($1, $0) })
            let ordered = records.sorted {
                ($0.hosts ?? 0, rank[$0.scheme] ?? 0, $0.drafts) < ($1.hosts ?? 0, rank[$1.scheme] ?? 0, $1.drafts)
            }.prefix(48)
            charts.append(
                (
                    "time-split-\(key.slug).svg",
                    SVGChart.stackedBars(
                        title: "Time per round (\(key.caption))", yLabel: "ms per round",
                        categories: ordered.map { r in
                            "\(r.scheme) K=\(r.drafts)" + (r.hosts.map { " h=\($0)" } ?? "")
                        },
                        segments: [
                            ("worker drafting", ordered.map { $0.time.workerDraft / 1000 }),
                            ("network / queueing", ordered.map { $0.time.network / 1000 }),
                            ("target forward", ordered.map { $0.time.targetForward / 1000 }),
                            ("verification", ordered.map { $0.time.verification / 1000 }),
                            ("other", ordered.map { $0.time.other / 1000 }),
                        ])
                ))
        }
        if let chart = tokenRateChart() { charts.append(("token-rate-vs-hosts.svg", chart)) }
        return charts
    }

    /// Token rate against the number of worker hosts (netns runs) or, without such runs, against
    /// the number of local worker processes.
    func tokenRateChart() -> String? {
        let hosted = points.filter { $0.hosts != nil }
        let local = hosted.isEmpty
        let chosen = local ? points : hosted
        guard !chosen.isEmpty else { return nil }
        struct Line: Hashable {
            var scheme: String
            var drafts: Int
            var length: Int
            var temperature: Double
            var mix: String
            var delay: Double
        }
        let lines = Dictionary(grouping: chosen) {
            Line(
                scheme: $0.scheme, drafts: local ? 0 : $0.drafts, length: $0.draftLength,
                temperature: $0.draftTemperature,
                mix: $0.mix, delay: $0.delayMilliseconds ?? 0)
        }
        let keys = lines.keys.sorted {
            ($0.delay, $0.mix, $0.length, $0.temperature, $0.scheme, $0.drafts)
                < ($1.delay, $1.mix, $1.length, $1.temperature, $1.scheme, $1.drafts)
        }.prefix(10)
        let series = keys.map { key -> SVGChart.Series in
            let rs = lines[key] ?? []
            let xs = Array(Set(rs.map { local ? $0.workers : ($0.hosts ?? 0) })).sorted()
            var name = key.scheme + (local ? "" : " K=\(key.drafts)")
            if key.delay > 0 { name += " +\(Self.f(key.delay, key.delay == key.delay.rounded() ? 0 : 1)) ms" }
            if keys.contains(where: {
                $0.length != key.length || $0.temperature != key.temperature || $0.mix != key.mix
            }) {
                name += " L=\(key.length) T=\(key.temperature)" + (key.mix == "identical" ? "" : " \(key.mix)")
            }
            return SVGChart.Series(
                name: name,
                points: xs.map { x in
                    (
                        Double(x),
                        Self.mean(rs.filter { (local ? $0.workers : ($0.hosts ?? 0)) == x }.map(\.tokensPerSecond))
                    )
                })
        }
        let matching = baselines.filter { local ? $0.hosts == nil : $0.hosts != nil }
        let baseline = Self.mean((matching.isEmpty ? baselines : matching).map(\.tokensPerSecond))
        let pinned = chosen.compactMap(\.pinning).first.map { "; \($0)" } ?? ""
        return SVGChart.lines(
            title: local ? "Token rate vs local worker processes" : "Token rate vs worker hosts",
            xLabel: local ? "worker processes (one machine)" : "worker hosts (network namespaces\(pinned))",
            yLabel: "tokens / s",
            series: Array(series), reference: baseline > 0 ? ("target alone", baseline) : nil)
    }

    static func f(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }

    /// The paper-style table: block efficiency per (draft temperature, scheme) and K, identical drafts,
    /// one table per draft length.
    public func paperTable() -> String {
        let identical = points.filter { $0.mix == "identical" && $0.hosts == nil }
        guard !identical.isEmpty else { return "" }
        var out = ""
        for l in Array(Set(identical.map(\.draftLength))).sorted() {
            let rs = identical.filter { $0.draftLength == l }
            let ks = Array(Set(rs.map(\.drafts))).sorted()
            out += "Block efficiency (tokens per target forward), identical drafts, L = \(l):\n\n"
            out += "| draft T | scheme |" + ks.map { " K=\($0) |" }.joined() + "\n"
            out += "|---:|---|" + ks.map { _ in "---:|" }.joined() + "\n"
            for t in Array(Set(rs.map(\.draftTemperature))).sorted() {
                for scheme in Self.schemeOrder(rs.filter { $0.draftTemperature == t }.map(\.scheme)) {
                    let mine = rs.filter { $0.draftTemperature == t && $0.scheme == scheme }
                    out += "| \(Self.f(t, 1)) | \(scheme) |"
                    for k in ks {
                        let v = mine.filter { $0.drafts == k }.map(\.blockEfficiency)
                        out += v.isEmpty ? " |" : " \(Self.f(Self.mean(v), 3)) |"
                    }
                    out += "\n"
                }
            }
            out += "\n"
        }
        return out
    }

    /// Every point, one row each, then the baselines and the skipped points.
    public func pointsTable() -> String {
        var out = "| scheme | mix | K | workers×seq | L | draft T | hosts | block eff. | accept. | per-position | "
        out += "drafts/round | tok/s | speedup | round ms | draft wait | worker draft | network | target | verify | "
        out += "coord. CPU | bytes/token | bytes/drafted token |\n"
        out +=
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for r in points {
            let perPosition = r.perPositionAcceptance.map { Self.f($0, 2) }.joined(separator: " ")
            out += "| \(r.scheme) | \(r.mix) | \(r.drafts) | \(r.workers)×\(r.sequencesPerWorker) | \(r.draftLength) | "
            out +=
                "\(Self.f(r.draftTemperature, 1)) | \(r.hosts.map(String.init) ?? "local") | \(Self.f(r.blockEfficiency, 3)) | "
            out += "\(Self.f(r.acceptanceRate, 3)) | \(perPosition) | \(Self.f(r.draftsPerRound, 2)) | "
            out += "\(Self.f(r.tokensPerSecond, 1)) | \(Self.f(r.speedup, 2))× | \(Self.f(r.time.round / 1000, 2)) | "
            out += "\(Self.f(r.time.draftWait / 1000, 2)) | \(Self.f(r.time.workerDraft / 1000, 2)) | "
            out += "\(Self.f(r.time.network / 1000, 2)) | \(Self.f(r.time.targetForward / 1000, 2)) | "
            out += "\(Self.f(r.time.verification / 1000, 2)) | "
            out += "\(r.time.coordinatorCPU.map { Self.f($0 / 1000, 2) } ?? "–") | \(Self.f(r.bytes.perToken, 0)) | "
            out += "\(r.bytes.perDraftedToken.map { Self.f($0, 0) } ?? "–") |\n"
        }
        if !baselines.isEmpty {
            out += "\nPlain target decoding (same prompts and seeds, each point's speedup uses the one measured "
            out += "just before it): "
            let byHosts = Dictionary(grouping: baselines) { $0.hosts ?? 0 }
            out +=
                byHosts.keys.sorted().map { h in
                    let rates = (byHosts[h] ?? []).map(\.tokensPerSecond)
                    var text = "\(Self.f(Self.mean(rates), 1)) tok/s mean"
                    if rates.count > 1 {
                        text +=
                            " (\(rates.count) measurements, \(Self.f(rates.min() ?? 0, 1))–\(Self.f(rates.max() ?? 0, 1)))"
                    }
                    return text + (h > 0 ? " with \(h) host(s)" : "")
                }.joined(separator: "; ") + "\n"
        }
        let skipped = records.filter { $0.kind == .skipped }
        if !skipped.isEmpty {
            out += "\nSkipped:\n\n"
            for r in skipped {
                out += "* \(r.scheme) K=\(r.drafts) L=\(r.draftLength) T=\(Self.f(r.draftTemperature, 1)) \(r.mix)"
                out += (r.hosts.map { " hosts=\($0)" } ?? "") + ": \(r.skipReason ?? "no reason given")\n"
            }
        }
        let warned = points.filter { !$0.warnings.isEmpty }
        if !warned.isEmpty {
            out += "\nWarnings:\n\n"
            for r in warned {
                out += "* \(r.scheme) K=\(r.drafts) L=\(r.draftLength) T=\(Self.f(r.draftTemperature, 1)) \(r.mix): "
                out += r.warnings.prefix(3).joined(separator: "; ") + "\n"
            }
        }
        return out
    }

    /// The whole markdown report: setting, the paper-style table, every point.
    public func markdown() -> String {
        var out = "# chorus bench results\n\n"
        if let first = records.first {
            let runs = Array(Set(records.map(\.run))).sorted()
            out += "Runs: \(runs.joined(separator: ", ")); build \(first.build); "
            out += "\(first.prompts) prompts × \(first.tokensPerPrompt) tokens; target T = \(first.targetTemperature); "
            out += "seed \(first.seed)"
            if let machine = first.machine { out += "; machine: \(machine)" }
            if let pinning = records.compactMap(\.pinning).first { out += "; pinning: \(pinning)" }
            out += ".\n\n"
        }
        let paper = paperTable()
        if !paper.isEmpty { out += paper }
        out += pointsTable()
        return out
    }
}
