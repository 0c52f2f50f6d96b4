/// Hyperparameters of a LLaMA-family decoder, read from GGUF metadata, and the tensor shapes they imply.
///
/// Metadata keys follow llama.cpp's `llm_kv` names, prefixed with `general.architecture`:
/// `{arch}.embedding_length`, `.block_count`, `.feed_forward_length`, `.attention.head_count`,
/// `.attention.head_count_kv` (default: head_count, i.e. no GQA), `.attention.layer_norm_rms_epsilon`,
/// `.attention.key_length` (default: embedding_length / head_count), `.rope.freq_base` (default 10000),
/// `.rope.dimension_count` (default: the head dimension), `.context_length`.
///
/// Shapes are given in ggml order, innermost first: a weight `[in, out]` is stored as `out` rows of `in`
/// floats, so it multiplies a vector as `y = W x` (llama.cpp's `ggml_mul_mat(W, x)`).
public struct TransformerConfig: Sendable, Equatable {
    /// The architectures Chorus runs. Both are pre-norm RMSNorm / RoPE / GQA / SwiGLU decoders; they differ in
    /// the RoPE pairing and in qwen2's q/k/v biases (llama.cpp `llama_model_rope_type`, `build_qwen2`).
    public enum Architecture: String, Sendable, CaseIterable {
        case llama
        case qwen2
    }

    /// How RoPE pairs the dimensions of a head it rotates (llama.cpp `rope_type`).
    public enum RopeStyle: Sendable, Equatable {
        /// `LLAMA_ROPE_TYPE_NORM`: pairs (2i, 2i+1) — llama.cpp's "normal" rope, used by arch `llama`
        /// (checkpoints converted from HF have their q/k rows permuted into this order by convert_hf_to_gguf.py).
        case interleavedPairs
        /// `LLAMA_ROPE_TYPE_NEOX`: pairs (i, i + n_rot/2), used by arch `qwen2`.
        case halves
    }

    public let architecture: Architecture
    /// d: width of the residual stream.
    public let embeddingLength: Int
    /// Number of transformer blocks.
    public let blockCount: Int
    /// Hidden width of the SwiGLU feed-forward network.
    public let feedForwardLength: Int
    /// Query heads.
    public let headCount: Int
    /// Key/value heads (grouped-query attention: query head h reads kv head h / (headCount / kvHeadCount)).
    public let kvHeadCount: Int
    /// Dimension of one head (`attention.key_length`, default d / headCount).
    public let headDimension: Int
    /// Leading dimensions of each q/k head that RoPE rotates (≤ headDimension, even); the rest pass unrotated.
    public let ropeDimensionCount: Int
    /// RoPE base θ: pair i of a head at position p is rotated by p · θ^(−2i / ropeDimensionCount).
    public let ropeFrequencyBase: Double
    public let ropeStyle: RopeStyle
    /// ε inside RMSNorm: x / sqrt(mean(x²) + ε) · w.
    public let rmsEpsilon: Float
    /// Maximum tokens in a session (positions 0..<contextLength).
    public let contextLength: Int
    /// Rows of `token_embd.weight`.
    public let vocabularySize: Int

    /// Width of all query heads together: headCount · headDimension.
    public var queryWidth: Int { headCount * headDimension }
    /// Width of all key (or value) heads together: kvHeadCount · headDimension. One KV-cache row per layer.
    public var kvWidth: Int { kvHeadCount * headDimension }
    /// Query heads per key/value head.
    public var groupSize: Int { headCount / kvHeadCount }

    public init(
        architecture: Architecture, embeddingLength: Int, blockCount: Int, feedForwardLength: Int, headCount: Int,
        kvHeadCount: Int, headDimension: Int, ropeDimensionCount: Int, ropeFrequencyBase: Double, ropeStyle: RopeStyle,
        rmsEpsilon: Float, contextLength: Int, vocabularySize: Int
    ) {
        self.architecture = architecture
        self.embeddingLength = embeddingLength
        self.blockCount = blockCount
        self.feedForwardLength = feedForwardLength
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDimension = headDimension
        self.ropeDimensionCount = ropeDimensionCount
        self.ropeFrequencyBase = ropeFrequencyBase
        self.ropeStyle = ropeStyle
        self.rmsEpsilon = rmsEpsilon
        self.contextLength = contextLength
        self.vocabularySize = vocabularySize
    }

    /// Reads the hyperparameters of `gguf` and checks that they are usable (positive, heads divide evenly).
    /// The vocabulary size comes from `token_embd.weight` (and must equal the tokenizer's token count when
    /// the file has one). Does not check the other tensors; see ``validateTensors(of:)``.
    public init(gguf: GGUFFile) throws(ModelError) {
        let archName = try gguf.string("general.architecture")
        guard let arch = Architecture(rawValue: archName) else { throw ModelError.unsupportedArchitecture(archName) }
        let p = archName + "."

        func positive(_ key: String, default fallback: Int? = nil) throws(ModelError) -> Int {
            let value: Int
            if gguf.metadata[p + key] == nil, let fallback {
                value = fallback
            } else {
                value = try gguf.integer(p + key)
            }
            guard value > 0, value <= 1 << 24 else {
                throw ModelError.wrongMetadataType(key: p + key, expected: "a positive integer", found: "\(value)")
            }
            return value
        }

        let d = try positive("embedding_length")
        let heads = try positive("attention.head_count")
        let kvHeads = try positive("attention.head_count_kv", default: heads)
        guard heads % kvHeads == 0 else {
            throw ModelError.wrongMetadataType(
                key: p + "attention.head_count_kv", expected: "a divisor of head_count \(heads)", found: "\(kvHeads)")
        }
        guard gguf.metadata[p + "attention.key_length"] != nil || d % heads == 0 else {
            throw ModelError.wrongMetadataType(
                key: p + "attention.head_count", expected: "a divisor of embedding_length \(d)", found: "\(heads)")
        }
        let headDim = try positive("attention.key_length", default: d / heads)
        let valueDim = try positive("attention.value_length", default: headDim)
        guard valueDim == headDim else {
            throw ModelError.wrongMetadataType(
                key: p + "attention.value_length", expected: "key_length \(headDim)", found: "\(valueDim)")
        }
        let ropeDims = try positive("rope.dimension_count", default: headDim)
        guard ropeDims <= headDim, ropeDims % 2 == 0 else {
            throw ModelError.wrongMetadataType(
                key: p + "rope.dimension_count", expected: "an even number ≤ head dimension \(headDim)",
                found: "\(ropeDims)")
        }
        let base = gguf.metadata[p + "rope.freq_base"] == nil ? 10000 : try gguf.float(p + "rope.freq_base")
        guard base > 1, base.isFinite else {
            throw ModelError.wrongMetadataType(key: p + "rope.freq_base", expected: "a number > 1", found: "\(base)")
        }
        let eps = try gguf.float(p + "attention.layer_norm_rms_epsilon")
        guard eps >= 0, eps < 1 else {
            throw ModelError.wrongMetadataType(
                key: p + "attention.layer_norm_rms_epsilon", expected: "a number in [0, 1)", found: "\(eps)")
        }
        // Variants whose forward pass differs from the one implemented here must not load silently.
        if let scaling = gguf.metadata[p + "rope.scaling.type"]?.stringValue, scaling != "none" {
            throw ModelError.unsupportedArchitecture("\(archName) with rope scaling '\(scaling)'")
        }
        if let experts = gguf.metadata[p + "expert_count"]?.integer, experts > 0 {
            throw ModelError.unsupportedArchitecture("\(archName) with \(experts) experts (mixture of experts)")
        }
        if gguf.tensorInfo("rope_freqs.weight") != nil {
            throw ModelError.unsupportedArchitecture("\(archName) with rope_freqs.weight (Llama 3.1 rope scaling)")
        }

        guard let embd = gguf.tensorInfo("token_embd.weight") else {
            throw ModelError.missingTensor("token_embd.weight")
        }
        guard embd.shape.count == 2, embd.shape[0] == d else {
            throw ModelError.shapeMismatch(tensor: embd.name, expected: [d, embd.shape.last ?? 0], found: embd.shape)
        }
        let vocab = embd.shape[1]
        if case let .array(tokens)? = gguf.metadata["tokenizer.ggml.tokens"], tokens.count != vocab {
            throw ModelError.shapeMismatch(tensor: embd.name, expected: [d, tokens.count], found: embd.shape)
        }

        self.init(
            architecture: arch, embeddingLength: d, blockCount: try positive("block_count"),
            feedForwardLength: try positive("feed_forward_length"), headCount: heads, kvHeadCount: kvHeads,
            headDimension: headDim, ropeDimensionCount: ropeDims, ropeFrequencyBase: base,
            ropeStyle: arch == .qwen2 ? .halves : .interleavedPairs, rmsEpsilon: Float(eps),
            contextLength: try positive("context_length"), vocabularySize: vocab)
    }

    /// One tensor the forward pass reads: its GGUF name, expected shape (ggml order) and whether a file may omit it.
    public struct TensorSpec: Sendable, Equatable {
        public let name: String
        public let shape: [Int]
        public let required: Bool
    }

    /// Every tensor the forward pass reads, with the shape this configuration implies (llama.cpp `LLM_TENSOR_*`
    /// names). Optional: `output.weight` (absent = tied to `token_embd.weight`) and the attention biases
    /// (present in qwen2, absent in llama).
    public var tensorSpecs: [TensorSpec] {
        let d = embeddingLength
        var specs = [
            TensorSpec(name: "token_embd.weight", shape: [d, vocabularySize], required: true),
            TensorSpec(name: "output_norm.weight", shape: [d], required: true),
            TensorSpec(name: "output.weight", shape: [d, vocabularySize], required: false),
        ]
        for l in 0..<blockCount {
            let b = "blk.\(l)."
            specs += [
                TensorSpec(name: b + "attn_norm.weight", shape: [d], required: true),
                TensorSpec(name: b + "attn_q.weight", shape: [d, queryWidth], required: true),
                TensorSpec(name: b + "attn_k.weight", shape: [d, kvWidth], required: true),
                TensorSpec(name: b + "attn_v.weight", shape: [d, kvWidth], required: true),
                TensorSpec(name: b + "attn_output.weight", shape: [queryWidth, d], required: true),
                TensorSpec(name: b + "attn_q.bias", shape: [queryWidth], required: architecture == .qwen2),
                TensorSpec(name: b + "attn_k.bias", shape: [kvWidth], required: architecture == .qwen2),
                TensorSpec(name: b + "attn_v.bias", shape: [kvWidth], required: architecture == .qwen2),
                TensorSpec(name: b + "attn_output.bias", shape: [d], required: false),
                TensorSpec(name: b + "ffn_norm.weight", shape: [d], required: true),
                TensorSpec(name: b + "ffn_gate.weight", shape: [d, feedForwardLength], required: true),
                TensorSpec(name: b + "ffn_up.weight", shape: [d, feedForwardLength], required: true),
                TensorSpec(name: b + "ffn_down.weight", shape: [feedForwardLength, d], required: true),
            ]
        }
        return specs
    }

    /// Checks every tensor of ``tensorSpecs`` against `gguf`: a required tensor that is absent throws
    /// ``ModelError/missingTensor(_:)``, a present tensor of another shape ``ModelError/shapeMismatch(tensor:expected:found:)``.
    public func validateTensors(of gguf: GGUFFile) throws(ModelError) {
        for spec in tensorSpecs {
            guard let info = gguf.tensorInfo(spec.name) else {
                if spec.required { throw ModelError.missingTensor(spec.name) }
                continue
            }
            guard info.shape == spec.shape else {
                throw ModelError.shapeMismatch(tensor: spec.name, expected: spec.shape, found: info.shape)
            }
        }
    }
}
