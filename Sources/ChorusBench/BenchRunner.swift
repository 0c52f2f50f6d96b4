import ChorusCluster
import ChorusModel
import ChorusSampling
import Synchronization

/// Runs sweep points against draft workers that are already listening: one coordinator per point
/// (its scheme, L and draft settings are fixed at construction) dialling the given addresses, every
/// prompt generated with a fixed seed and a fixed session id, so runs reproduce draw for draw.
public struct BenchRunner: Sendable {
    public var target: any LanguageModel
    public var network: ClusterNetwork
    /// Prompts as token ids (BOS included).
    public var prompts: [[Int]]
    public var tokensPerPrompt: Int
    public var targetSettings: SamplingSettings
    public var seed: UInt64
    public var deadline: Duration
    /// `truncated-lp`'s s.
    public var truncation = SchemeCatalog.defaultTruncation
    /// A sweep re-measures plain target decoding before every this many measured points (0: only at its start).
    public var baselineEvery = 1

    public init(
        target: any LanguageModel, network: ClusterNetwork, prompts: [[Int]], tokensPerPrompt: Int,
        targetSettings: SamplingSettings, seed: UInt64, deadline: Duration
    ) {
        self.target = target
        self.network = network
        self.prompts = prompts
        self.tokensPerPrompt = tokensPerPrompt
        self.targetSettings = targetSettings
        self.seed = seed
        self.deadline = deadline
    }

    /// The session id of prompt `index` (fixed, so records and worker logs name the same sessions;
    /// draft seeds derive from the generation seed `seed + index`).
    public func sessionID(prompt index: Int) -> UInt64 {
        (seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(index) &* 0x9E37_79B9) | 1
    }

    /// Generates every prompt with `point`'s settings against `addresses` (none: plain target decoding).
    /// `progress` is called after each prompt with the number of prompts done. Returns the generations
    /// and the coordinator's warnings (missed deadlines, scheme fall-backs).
    public func measure(
        _ point: BenchPoint?, addresses: [String], progress: @Sendable (Int) -> Void = { _ in }
    ) async throws -> (generations: [BenchGeneration], warnings: [String]) {
        var options = Coordinator.Options()
        options.deadline = deadline
        options.probeInterval = .milliseconds(200)
        if let point {
            options.scheme = try SchemeCatalog.scheme(named: point.scheme, truncation: truncation)
            options.draftLength = point.draftLength
            options.sequencesPerWorker = point.sequencesPerWorker
            options.draftSampling =
                point.mix == .temperature ? nil : SamplingSettings(temperature: point.draftTemperature)
        }
        let warnings = Mutex<[String]>([])
        let log = ClusterLog(component: "bench", minimum: .warning) { line in
            warnings.withLock { if $0.count < 20 { $0.append(line) } }
        }
        let coordinator = Coordinator(
            target: target, tokenizer: nil, options: options, connector: network.connector, log: log)
        for address in addresses { try await coordinator.addWorker(address: address) }
        var generations: [BenchGeneration] = []
        do {
            for (i, prompt) in prompts.enumerated() {
                await coordinator.setNextSessionID(sessionID(prompt: i))
                let result = try await coordinator.generate(
                    prompt: prompt, maxTokens: tokensPerPrompt, settings: targetSettings, seed: seed &+ UInt64(i))
                generations.append(
                    BenchGeneration(
                        promptLength: prompt.count, maxTokens: tokensPerPrompt, contextLength: target.contextLength,
                        draftLength: point?.draftLength ?? 0, statistics: result.statistics, rounds: result.rounds,
                        acceptedAtPosition: result.acceptedAtPosition))
                progress(i + 1)
            }
        } catch {
            await coordinator.close()
            throw error
        }
        await coordinator.close()
        return (generations, warnings.withLock { $0 })
    }
}
