/// How a point's K drafts differ from one another.
public enum DraftMix: String, Sendable, CaseIterable, Codable {
    /// Every draft: the primary draft model at the point's temperature (i.i.d. drafts).
    case identical
    /// The paper's non-identical setting: draft 1 at a fixed temperature, the others at the point's.
    case temperature
    /// Drafts alternate between the primary and the secondary draft model, all at the point's temperature.
    case model
}

/// One draft worker a point needs: its model and, for non-identical mixes, its own temperature
/// (nil: the coordinator overrides every worker's temperature with the point's).
public struct WorkerSpec: Sendable, Hashable {
    public var model: String
    public var temperature: Double?

    public init(model: String, temperature: Double?) {
        self.model = model
        self.temperature = temperature
    }
}

/// One point of a sweep.
public struct BenchPoint: Sendable, Equatable {
    public var scheme: String
    public var drafts: Int
    public var workers: Int
    public var sequencesPerWorker: Int
    public var draftLength: Int
    public var mix: DraftMix
    public var draftTemperature: Double
    /// Not measured when set.
    public var skipReason: String?

    public init(
        scheme: String, drafts: Int, workers: Int, sequencesPerWorker: Int, draftLength: Int, mix: DraftMix,
        draftTemperature: Double, skipReason: String? = nil
    ) {
        self.scheme = scheme
        self.drafts = drafts
        self.workers = workers
        self.sequencesPerWorker = sequencesPerWorker
        self.draftLength = draftLength
        self.mix = mix
        self.draftTemperature = draftTemperature
        self.skipReason = skipReason
    }

    /// The workers, in the coordinator's order (worker w drafts sequences w·S ..< (w + 1)·S).
    public func workerSpecs(primary: String, secondary: String, fixedTemperature: Double) -> [WorkerSpec] {
        (0..<workers).map { w in
            switch mix {
            case .identical: return WorkerSpec(model: primary, temperature: nil)
            case .temperature:
                return WorkerSpec(model: primary, temperature: w == 0 ? fixedTemperature : draftTemperature)
            case .model: return WorkerSpec(model: w % 2 == 0 ? primary : secondary, temperature: nil)
            }
        }
    }

    /// One temperature per draft.
    public func draftTemperatures(fixedTemperature: Double) -> [Double] {
        (0..<drafts).map { d in mix == .temperature && d / sequencesPerWorker == 0 ? fixedTemperature : draftTemperature
        }
    }

    /// One model name per draft.
    public func draftModels(primary: String, secondary: String) -> [String] {
        (0..<drafts).map { d in mix == .model && (d / sequencesPerWorker) % 2 == 1 ? secondary : primary }
    }

    /// A short label for progress lines and chart bars.
    public var label: String {
        var s = "\(scheme) K=\(drafts) L=\(draftLength) T=\(draftTemperature)"
        if mix != .identical { s += " \(mix.rawValue)" }
        return s
    }
}

/// The axes of a sweep and the rules that turn them into points.
public struct BenchPlan: Sendable {
    public var schemes: [String]
    public var drafts: [Int]
    public var draftLengths: [Int]
    public var temperatures: [Double]
    public var mixes: [DraftMix]
    /// Sequences per worker S in local mode (K = workers × S); ignored when `hosts` is set.
    public var sequencesPerWorker: Int
    /// Emulated hosts: every point uses exactly this many workers, with K / hosts sequences each.
    public var hosts: Int?

    public init(
        schemes: [String], drafts: [Int], draftLengths: [Int], temperatures: [Double], mixes: [DraftMix],
        sequencesPerWorker: Int = 1, hosts: Int? = nil
    ) {
        self.schemes = schemes
        self.drafts = drafts
        self.draftLengths = draftLengths
        self.temperatures = temperatures
        self.mixes = mixes
        self.sequencesPerWorker = sequencesPerWorker
        self.hosts = hosts
    }

    /// Schemes that need K i.i.d. drafts.
    public static let identicalOnly: Set<String> = ["spectr"]

    /// Every point, ordered mix → temperature → L → K → scheme (so consecutive points reuse workers).
    /// Left out: `sd` above K = 1 (it uses the first draft only), non-identical mixes at K = 1 (one
    /// draft is always identical). Skipped with a reason: identical-only schemes on non-identical
    /// mixes, and K that does not split evenly over the workers.
    public func points() -> [BenchPoint] {
        var points: [BenchPoint] = []
        for mix in mixes {
            for t in temperatures {
                for l in draftLengths {
                    for k in drafts {
                        if mix != .identical, k < 2 { continue }
                        for scheme in schemes {
                            if scheme == "sd", k > 1 { continue }
                            var point = BenchPoint(
                                scheme: scheme, drafts: k, workers: 0, sequencesPerWorker: 0, draftLength: l, mix: mix,
                                draftTemperature: t)
                            let workers = hosts ?? max(1, k / sequencesPerWorker)
                            if k % workers != 0 || (hosts == nil && k % sequencesPerWorker != 0) {
                                point.workers = workers
                                point.sequencesPerWorker = hosts == nil ? sequencesPerWorker : 0
                                point.skipReason =
                                    hosts != nil
                                    ? "K = \(k) does not split evenly over \(workers) hosts"
                                    : "K = \(k) is not a multiple of \(sequencesPerWorker) sequences per worker"
                            } else {
                                point.workers = workers
                                point.sequencesPerWorker = k / workers
                            }
                            if point.skipReason == nil, mix != .identical, point.workers < 2 {
                                point.skipReason = "a \(mix.rawValue) mix needs at least 2 workers (got 1)"
                            }
                            if point.skipReason == nil, mix != .identical, Self.identicalOnly.contains(scheme) {
                                point.skipReason =
                                    "\(scheme) needs identical drafts (K i.i.d. draws from one law); "
                                    + "this point mixes \(mix == .model ? "draft models" : "draft temperatures")"
                            }
                            points.append(point)
                        }
                    }
                }
            }
        }
        return points
    }
}
