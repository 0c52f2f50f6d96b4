import ChorusModel
import ChorusSampling

/// A model file opened for use: the transformer and its tokenizer (what every command that runs a model needs).
public struct LoadedModel: Sendable {
    public let model: TransformerModel
    public let tokenizer: Tokenizer
    /// GGUF `tokenizer.chat_template`, when the file has one.
    public var chatTemplate: String?

    public init(model: TransformerModel, tokenizer: Tokenizer, chatTemplate: String? = nil) {
        self.model = model
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
    }

    /// Opens `path` (GGUF), reads its tokenizer and builds the transformer with `threads` engine threads.
    /// Errors name the file.
    public static func load(_ path: String, threads: Int, precision: Precision = .fast) throws -> LoadedModel {
        do {
            let gguf = try GGUFFile(path: path)
            let tokenizer = try Tokenizer(gguf: gguf)
            let model = try TransformerModel(gguf: gguf, threads: threads, precision: precision, tokenizer: tokenizer)
            return LoadedModel(
                model: model, tokenizer: tokenizer, chatTemplate: gguf.metadata["tokenizer.chat_template"]?.stringValue)
        } catch {
            throw ModelError.invalidRequest("\(path): \(error)")
        }
    }

    /// One line for logs: shape, weights (mapped or copied), precision, kernels and threads.
    public var summary: String {
        let c = model.config
        return
            "\(model.identity.name): \(c.blockCount) layers, d \(c.embeddingLength), vocabulary \(c.vocabularySize), "
            + "context \(c.contextLength), \(model.weightBytes / 1_000_000) MB of weights "
            + "(\(model.copiedWeightBytes / 1_000_000) MB copied, the rest mapped), \(model.precision.rawValue) "
            + "precision, \(model.kernels) kernels, \(model.threads) thread(s)"
    }
}

/// Plain decoding with the target alone, token by token: the baseline every speedup is measured against
/// (`chorus generate --model`, the demo's "target alone").
public struct TargetDecoder {
    public let model: any LanguageModel
    public let settings: SamplingSettings
    /// Stops after this token (the end-of-sequence token), nil: never.
    public let stopToken: Int?

    public init(model: any LanguageModel, settings: SamplingSettings, stopToken: Int?) {
        self.model = model
        self.settings = settings
        self.stopToken = stopToken
    }

    /// What one generation did.
    public struct Result: Sendable {
        public var tokens: [Int] = []
        /// "length", "eos" or "context".
        public var finishReason = "length"
        /// Time of the prompt's forward pass and of the decoding after it.
        public var prefill: Duration = .zero
        public var decoding: Duration = .zero

        public var tokensPerSecond: Double {
            let seconds = Double(decoding.components.seconds) + Double(decoding.components.attoseconds) / 1e18
            return seconds > 0 ? Double(tokens.count) / seconds : 0
        }
    }

    /// Generates up to `maxTokens` tokens after `prompt`, drawing each from the target's law with `rng`;
    /// `onToken` sees every token as it is drawn.
    public func generate(
        prompt: [Int], maxTokens: Int, rng: inout ChorusRandom, onToken: (Int) -> Void = { _ in }
    ) throws -> Result {
        guard !prompt.isEmpty else { throw ModelError.invalidRequest("the prompt encodes to no tokens") }
        guard prompt.count < model.contextLength else {
            throw ModelError.invalidRequest(
                "the prompt has \(prompt.count) tokens; the model's context is \(model.contextLength)")
        }
        var result = Result()
        let clock = ContinuousClock()
        let session = try model.makeSession()
        let start = clock.now
        var logits = try session.append(prompt)
        let decodeStart = clock.now
        result.prefill = decodeStart - start
        while result.tokens.count < maxTokens {
            let token = try TokenDistribution(logits: logits, settings: settings).sample(using: &rng)
            result.tokens.append(token)
            onToken(token)
            if token == stopToken {
                result.finishReason = "eos"
                break
            }
            if result.tokens.count == maxTokens { break }
            if session.length + 1 >= model.contextLength {
                result.finishReason = "context"
                break
            }
            logits = try session.append([token])
        }
        result.decoding = clock.now - decodeStart
        return result
    }
}
