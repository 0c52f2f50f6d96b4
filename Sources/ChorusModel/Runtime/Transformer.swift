import CBLAS

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A LLaMA-family decoder (LLaMA: Touvron et al. 2023; qwen2) running on the CPU in Float32 through OpenBLAS,
/// loaded from a GGUF file. The forward pass follows llama.cpp's `build_llama` / `build_qwen2` graphs:
///
/// ```
/// x = token_embd[token]                                        x: [d]
/// for each block:
///     h  = rmsnorm(x) ⊙ attn_norm                              h: [d]
///     q  = Wq h (+ bq),  k = Wk h (+ bk),  v = Wv h (+ bv)     q: [heads·hd]   k, v: [kvHeads·hd]
///     q, k = rope(q, pos), rope(k, pos)                        (interleaved pairs for llama, halves for qwen2)
///     a  = softmax(q_h · K_gᵀ / sqrt(hd)) · V_g per head h     (g = h / (heads / kvHeads): grouped-query attention)
///     x += Wo a (+ bo)
///     h  = rmsnorm(x) ⊙ ffn_norm
///     x += W_down (silu(W_gate h) ⊙ W_up h)                    (SwiGLU)
/// logits = output · (rmsnorm(x) ⊙ output_norm)                 logits: [vocab]; output = token_embd when tied
/// ```
///
/// **Memory.** Every weight is dequantized to Float32 once, at load, into one allocation of 4 bytes per
/// parameter (``weightBytes``), whatever the file's tensor types: a Q8_0 file takes about 3.8× its size in
/// RAM, an F16 file 2×. A tied output head shares the embedding's floats. The shipped target (6.07 M
/// parameters) needs 24.3 MB. In exchange every matrix product is a plain Float32 BLAS call. Each session adds
/// its KV cache, 2 · blocks · contextLength · kvHeads · hd floats (target: 2·6·256·144·4 B = 1.8 MB).
///
/// **Threads.** `threads` is passed to `openblas_set_num_threads`, which is process-wide: the last model
/// loaded decides it for every BLAS call in the process.
///
/// Sendable: the weights, the RoPE tables and the configuration are written once in `init` and only read
/// afterwards (sessions keep their mutable state — KV cache and scratch — to themselves), so sharing the model
/// between threads is safe; `@unchecked` only because the storage is reached through raw pointers.
public final class TransformerModel: LanguageModel, @unchecked Sendable {
    public let config: TransformerConfig
    public let identity: ModelIdentity
    public var vocabularySize: Int { config.vocabularySize }
    public var contextLength: Int { config.contextLength }
    /// OpenBLAS threads requested at load.
    public let threads: Int
    /// Bytes of dequantized Float32 weights held by this model.
    public let weightBytes: Int
    /// True when the file has no `output.weight` and logits use `token_embd.weight` (llama.cpp's fallback).
    public let tiedOutput: Bool

    /// The single Float32 allocation all weight pointers below point into: [weightBytes / 4].
    private let storage: UnsafeMutablePointer<Float>
    /// token_embd: [vocab][d].
    let tokenEmbedding: UnsafePointer<Float>
    /// output_norm: [d].
    let outputNorm: UnsafePointer<Float>
    /// output head: [vocab][d]; equal to ``tokenEmbedding`` when tied.
    let output: UnsafePointer<Float>
    /// One entry per block, in order.
    let blocks: [BlockWeights]
    /// RoPE angle tables: [contextLength][ropeDims / 2], cos and sin of p · θ^(−2i / ropeDims).
    let ropeCos: UnsafeMutablePointer<Float>
    let ropeSin: UnsafeMutablePointer<Float>

    /// Loads the GGUF file at `path`. `threads` ≥ 1 sets OpenBLAS's thread count (process-wide).
    public convenience init(path: String, threads: Int = 1) throws {
        let gguf = try GGUFFile(path: path)
        let fileName = path.split(separator: "/").last.map(String.init) ?? path
        try self.init(gguf: gguf, threads: threads, fallbackName: fileName)
    }

    /// Builds the model from an already parsed file (its mapping may be released afterwards: weights are copied).
    public convenience init(gguf: GGUFFile, threads: Int = 1) throws {
        try self.init(gguf: gguf, threads: threads, fallbackName: "unnamed")
    }

    private init(gguf: GGUFFile, threads: Int, fallbackName: String) throws(ModelError) {
        guard threads >= 1, threads <= 1024 else {
            throw ModelError.invalidRequest("threads must be in 1...1024, got \(threads)")
        }
        let config = try TransformerConfig(gguf: gguf)
        try config.validateTensors(of: gguf)
        self.config = config
        self.threads = threads

        // Lay every present tensor out in one Float32 allocation, then dequantize each into its slice.
        let present = config.tensorSpecs.compactMap { spec in gguf.tensorInfo(spec.name) }
        let totalFloats = present.reduce(0) { $0 + $1.elementCount }
        storage = UnsafeMutablePointer<Float>.allocate(capacity: max(totalFloats, 1))
        weightBytes = totalFloats * MemoryLayout<Float>.stride
        var offsets: [String: Int] = [:]
        var next = 0
        for info in present {
            offsets[info.name] = next
            let source = gguf.data(of: info)
            if let base = source.baseAddress {
                Dequantize.row(info.type, from: base, count: info.elementCount, into: storage + next)
            }
            next += info.elementCount
        }
        let base = UnsafePointer(storage)
        func tensor(_ name: String) -> UnsafePointer<Float>? { offsets[name].map { base + $0 } }
        // validateTensors guaranteed the required ones; a missing one here would be a bug in tensorSpecs.
        func required(_ name: String) -> UnsafePointer<Float> {
            guard let p = tensor(name) else { preconditionFailure("tensorSpecs lists \(name) as required") }
            return p
        }

        tokenEmbedding = required("token_embd.weight")
        outputNorm = required("output_norm.weight")
        tiedOutput = tensor("output.weight") == nil
        output = tensor("output.weight") ?? tokenEmbedding
        blocks = (0..<config.blockCount).map { l in
            let b = "blk.\(l)."
            return BlockWeights(
                attentionNorm: required(b + "attn_norm.weight"),
                query: required(b + "attn_q.weight"), key: required(b + "attn_k.weight"),
                value: required(b + "attn_v.weight"), attentionOutput: required(b + "attn_output.weight"),
                queryBias: tensor(b + "attn_q.bias"), keyBias: tensor(b + "attn_k.bias"),
                valueBias: tensor(b + "attn_v.bias"), attentionOutputBias: tensor(b + "attn_output.bias"),
                ffnNorm: required(b + "ffn_norm.weight"), gate: required(b + "ffn_gate.weight"),
                up: required(b + "ffn_up.weight"), down: required(b + "ffn_down.weight"))
        }

        // RoPE angles in Double, rounded once (llama.cpp accumulates θ_i by repeated float multiplication;
        // the two agree to float rounding at the positions a 256-token context reaches).
        let half = config.ropeDimensionCount / 2
        ropeCos = .allocate(capacity: config.contextLength * half)
        ropeSin = .allocate(capacity: config.contextLength * half)
        for p in 0..<config.contextLength {
            for i in 0..<half {
                let inverseFrequency = pow(config.ropeFrequencyBase, -2 * Double(i) / Double(config.ropeDimensionCount))
                let angle = Double(p) * inverseFrequency
                ropeCos[p * half + i] = Float(cos(angle))
                ropeSin[p * half + i] = Float(sin(angle))
            }
        }

        let name = gguf.metadata["general.name"]?.stringValue ?? fallbackName
        // The identity peers compare: SHA-256 of the file, and of the vocabulary (token strings and
        // types in id order, as Tokenizer.vocabularyHash defines it). A file without tokenizer
        // metadata has an empty vocabulary hash, which matches no real vocabulary.
        let vocabularyHash = (try? Tokenizer(gguf: gguf))?.vocabularyHash ?? ""
        identity = ModelIdentity(
            name: name, fileHash: SHA256.hex(of: gguf.file.bytes), vocabularyHash: vocabularyHash,
            vocabularySize: config.vocabularySize)

        openblas_set_num_threads(Int32(threads))
    }

    deinit {
        storage.deallocate()
        ropeCos.deallocate()
        ropeSin.deallocate()
    }

    public func makeSession() throws -> any LanguageModelSession {
        TransformerSession(model: self)
    }
}

/// Float32 weights of one transformer block: pointers into the model's single allocation (row-major,
/// [out][in], ggml shape [in, out]).
struct BlockWeights {
    let attentionNorm: UnsafePointer<Float>  // [d]
    let query: UnsafePointer<Float>  // [heads·hd][d]
    let key: UnsafePointer<Float>  // [kvHeads·hd][d]
    let value: UnsafePointer<Float>  // [kvHeads·hd][d]
    let attentionOutput: UnsafePointer<Float>  // [d][heads·hd]
    let queryBias: UnsafePointer<Float>?  // [heads·hd] (qwen2)
    let keyBias: UnsafePointer<Float>?  // [kvHeads·hd] (qwen2)
    let valueBias: UnsafePointer<Float>?  // [kvHeads·hd] (qwen2)
    let attentionOutputBias: UnsafePointer<Float>?  // [d]
    let ffnNorm: UnsafePointer<Float>  // [d]
    let gate: UnsafePointer<Float>  // [ff][d]
    let up: UnsafePointer<Float>  // [ff][d]
    let down: UnsafePointer<Float>  // [d][ff]
}
