import Foundation

/// One line of a `chorus bench` results file (JSON lines): a measured sweep point, the plain-target
/// baseline it is compared with, or a point that was skipped (with the reason).
///
/// Field meanings are documented in docs/benchmarks-cluster.md; units are in the names (µs, bytes,
/// tokens per second). Rates aggregate over every prompt of the point: total tokens / total time.
public struct BenchRecord: Codable, Sendable, Equatable {
    public static let currentSchema = "chorus-bench/1"

    public enum Kind: String, Codable, Sendable {
        /// A sweep point measured with drafts.
        case point
        /// Plain target decoding on the same prompts and seeds (K = 0).
        case baseline
        /// A point that was not measured; `skipReason` says why.
        case skipped
    }

    public var schema = BenchRecord.currentSchema
    public var kind: Kind
    /// Identifies the run (all lines of one `chorus bench` invocation share it).
    public var run: String

    // MARK: The point

    public var scheme: String
    /// Number of drafts K = workers × sequencesPerWorker (0 for the baseline).
    public var drafts: Int
    /// Worker processes (or emulated hosts) the drafts came from.
    public var workers: Int
    public var sequencesPerWorker: Int
    /// Draft length L.
    public var draftLength: Int
    /// `identical` (all drafts one model at one temperature), `temperature` (draft 1 at a fixed
    /// temperature, the others at `draftTemperature`), `model` (drafts alternate between two models).
    public var mix: String
    /// The varied draft temperature (every draft's, for `identical`).
    public var draftTemperature: Double
    /// One entry per draft: temperature and model name.
    public var draftTemperatures: [Double]
    public var draftModels: [String]
    public var targetTemperature: Double

    // MARK: The setting

    public var prompts: Int
    public var tokensPerPrompt: Int
    public var seed: UInt64
    /// Emulated worker hosts (network namespaces), nil for a local cluster.
    public var hosts: Int?
    /// Added link latency each way (ms), nil without delay proxies.
    public var delayMilliseconds: Double?
    /// How processes were pinned to CPUs (`taskset`), nil when they were not.
    public var pinning: String?
    /// `release` or `debug`.
    public var build: String
    public var deadlineMilliseconds: Int
    /// The machine: CPU count, OS (free text).
    public var machine: String?

    // MARK: Results (zero for skipped points)

    public var generatedTokens: Int = 0
    /// Target forward passes = rounds.
    public var targetForwards: Int = 0
    public var draftedTokens: Int = 0
    public var acceptedDraftTokens: Int = 0
    /// Tokens produced per target forward (mean acceptance length).
    public var blockEfficiency: Double = 0
    /// Accepted draft tokens / drafted tokens (drafted: the tree depth L per round with drafts).
    public var acceptanceRate: Double = 0
    /// perPositionAcceptance[i]: rounds whose draft position i + 1 was accepted / rounds that offered it.
    public var perPositionAcceptance: [Double] = []
    /// Mean drafts that arrived in time per round with drafts (K when every worker answered).
    public var draftsPerRound: Double = 0
    public var tokensPerSecond: Double = 0
    /// Plain target decoding on the same prompts and seeds, in the same run.
    public var baselineTokensPerSecond: Double = 0
    /// Share of the used worker replies drafted ahead, during the previous round's verification (nil in records
    /// made before drafting ahead existed).
    public var draftAheadHitRate: Double?
    /// Mean depth L verified per round with drafts (the adaptive depth's choices).
    public var meanVerifiedDepth: Double?
    /// tokensPerSecond / baselineTokensPerSecond.
    public var speedup: Double = 0
    public var time = TimeSplit()
    public var bytes = ByteCounts()
    /// Wall-clock time of the point (all prompts), seconds.
    public var elapsedSeconds: Double = 0
    public var skipReason: String?
    /// Anything that makes the point suspect (drafts missing deadlines, schemes falling back).
    public var warnings: [String] = []

    /// The record of `point`, its results still zero; `draftTemperatures` and `draftModels` have one entry per draft.
    public init(
        kind: Kind, run: String, point: BenchPoint, draftTemperatures: [Double], draftModels: [String],
        targetTemperature: Double, prompts: Int, tokensPerPrompt: Int, seed: UInt64, hosts: Int? = nil,
        delayMilliseconds: Double? = nil, pinning: String? = nil, build: String, deadlineMilliseconds: Int
    ) {
        self.kind = kind
        self.run = run
        scheme = point.scheme
        drafts = point.drafts
        workers = point.workers
        sequencesPerWorker = point.sequencesPerWorker
        draftLength = point.draftLength
        mix = point.mix.rawValue
        draftTemperature = point.draftTemperature
        self.draftTemperatures = draftTemperatures
        self.draftModels = draftModels
        self.targetTemperature = targetTemperature
        self.prompts = prompts
        self.tokensPerPrompt = tokensPerPrompt
        self.seed = seed
        self.hosts = hosts
        self.delayMilliseconds = delayMilliseconds
        self.pinning = pinning
        self.build = build
        self.deadlineMilliseconds = deadlineMilliseconds
    }

    /// Mean time of one round, split by where it went (µs per round).
    public struct TimeSplit: Codable, Sendable, Equatable {
        /// From sending the draft requests to having every reply (or the deadline).
        public var draftWait: Double = 0
        /// The slowest worker's own drafting time, as it reported it.
        public var workerDraft: Double = 0
        /// draftWait − workerDraft per round (floored at 0): transport, queueing, (de)serialisation.
        public var network: Double = 0
        /// The target's batched forward pass over the draft tree.
        public var targetForward: Double = 0
        /// Selection / verification (the scheme's prepare + select along the accepted path).
        public var verification: Double = 0
        /// The rest of the round: bookkeeping, actor hops, detokenising.
        public var other: Double = 0
        /// The whole round (elapsed / rounds).
        public var round: Double = 0
        /// The coordinator's own CPU time per round outside the target forward (decoding and checking
        /// replies, the tree, target laws, verification); nil in records from before it was measured.
        public var coordinatorCPU: Double?

        public init() {}
    }

    /// Bytes on the wire between the coordinator and the workers.
    public struct ByteCounts: Codable, Sendable, Equatable {
        public var requestPerRound: Double = 0
        public var replyPerRound: Double = 0
        public var perToken: Double = 0
        public var total: Int = 0
        /// Reply bytes per drafted token received (each token travels with its law); nil in older records.
        public var perDraftedToken: Double?

        public init() {}
    }

    /// One compact JSON line (sorted keys, no trailing newline).
    public func jsonLine() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    public static func decode(line: String) throws -> BenchRecord {
        try JSONDecoder().decode(BenchRecord.self, from: Data(line.utf8))
    }

    /// Every record of a JSON-lines file; blank lines are ignored; a bad line throws with its number.
    public static func load(contentsOf text: String) throws -> [BenchRecord] {
        var records: [BenchRecord] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            do {
                records.append(try decode(line: trimmed))
            } catch {
                throw BenchError("line \(i + 1): not a chorus bench record (\(error))")
            }
        }
        return records
    }
}

/// A benchmark problem a person can act on.
public struct BenchError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
