import CBLAS
import CChorusEngine
import ChorusSampling

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How a ``TransformerModel`` computes.
public enum Precision: String, Sendable, CaseIterable, Codable {
    /// The engine: weights read as stored in the memory-mapped file, SIMD kernels (quantized types dot with
    /// activations rounded to 8-bit blocks of 32), the model's own threads. Logits of a row are bit-identical
    /// whatever the batch shape and thread count.
    case fast
    /// Every weight dequantized to Float32 once at load and multiplied through OpenBLAS (single-threaded):
    /// the faithful reference the fast path is measured against (within 5e-5 of a float64 forward pass on
    /// Qwen2.5-Coder-1.5B). Costs 4 bytes per parameter of memory.
    case reference
}

/// A LLaMA-family decoder (LLaMA: Touvron et al. 2023; qwen2) running on the CPU, loaded from a GGUF file. The
/// forward pass follows llama.cpp's `build_llama` / `build_qwen2` graphs:
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
/// **Memory.** In ``Precision/fast`` the matrices stay in the file's encoding and are read from the memory
/// mapping (pages come in as they are touched: loading reads only the header); only 1-D tensors (norms,
/// biases) are copied as Float32. In ``Precision/reference`` every weight is dequantized to Float32 at load.
/// ``weightBytes`` says which. Each session adds its KV cache, 2 · blocks · contextLength · kvHeads · hd
/// floats, allocated lazily (untouched pages cost nothing).
///
/// **Threads.** `threads` is this model's own: a pool of persistent threads for the matrix products and
/// attention of the fast path. Two models in one process do not share or fight over threads.
///
/// Sendable: the weights, the RoPE tables and the configuration are written once in `init` and only read
/// afterwards (sessions keep their mutable state — KV cache and scratch — to themselves; the thread pool
/// serialises concurrent callers), so sharing the model between threads is safe; `@unchecked` only because the
/// storage is reached through raw pointers.
public final class TransformerModel: LanguageModel, @unchecked Sendable {
    public let config: TransformerConfig
    public let identity: ModelIdentity
    public var vocabularySize: Int { config.vocabularySize }
    public var contextLength: Int { config.contextLength }
    public let precision: Precision
    /// Threads of this model's pool.
    public let threads: Int
    /// Bytes of weights the forward pass reads: the mapped tensor data plus the Float32 1-D tensors (fast), or
    /// the Float32 copies of every weight (reference).
    public let weightBytes: Int
    /// Bytes of those that are heap copies (the rest is the memory-mapped file).
    public let copiedWeightBytes: Int
    /// True when the file has no `output.weight` and logits use `token_embd.weight` (llama.cpp's fallback).
    public let tiedOutput: Bool
    /// Which kernels run: "avx2" or "portable".
    public var kernels: String { String(cString: chorus_isa_name(isa)) }

    /// The file, kept open: fast-precision matrices point into its mapping.
    let gguf: GGUFFile
    /// Float32 copies: [copiedWeightBytes / 4].
    private let storage: UnsafeMutablePointer<Float>
    /// token_embd: [vocab][d].
    let tokenEmbedding: WeightMatrix
    /// output_norm: [d].
    let outputNorm: UnsafePointer<Float>
    /// output head: [vocab][d]; equal to ``tokenEmbedding`` when tied.
    let output: WeightMatrix
    /// One entry per block, in order.
    let blocks: [BlockWeights]
    /// RoPE angle tables: [contextLength][ropeDims / 2], cos and sin of p · θ^(−2i / ropeDims).
    let ropeCos: UnsafeMutablePointer<Float>
    let ropeSin: UnsafeMutablePointer<Float>
    /// The engine's kernel set and thread pool.
    let isa: Int32
    let pool: OpaquePointer

    /// Loads the GGUF file at `path` with `threads` ≥ 1 threads of its own.
    public convenience init(path: String, threads: Int = 1, precision: Precision = .fast) throws {
        let gguf = try GGUFFile(path: path)
        let fileName = path.split(separator: "/").last.map(String.init) ?? path
        try self.init(gguf: gguf, threads: threads, precision: precision, fallbackName: fileName)
    }

    /// Builds the model from an already parsed file (kept open for as long as the model lives). Pass the
    /// file's tokenizer when it is already built: its vocabulary hash is the model's (building it again takes
    /// a noticeable part of loading a 150k-token vocabulary).
    public convenience init(
        gguf: GGUFFile, threads: Int = 1, precision: Precision = .fast, tokenizer: Tokenizer? = nil
    ) throws {
        try self.init(gguf: gguf, threads: threads, precision: precision, fallbackName: "unnamed", tokenizer: tokenizer)
    }

    private init(
        gguf: GGUFFile, threads: Int, precision: Precision, fallbackName: String, tokenizer: Tokenizer? = nil
    ) throws(ModelError) {
        guard threads >= 1, threads <= 1024 else {
            throw ModelError.invalidRequest("threads must be in 1...1024, got \(threads)")
        }
        let config = try TransformerConfig(gguf: gguf)
        try config.validateTensors(of: gguf)
        self.config = config
        self.threads = threads
        self.precision = precision
        self.gguf = gguf

        // Float32 copies: every present tensor (reference), or only the 1-D ones (fast).
        let present = config.tensorSpecs.compactMap { spec in gguf.tensorInfo(spec.name) }
        let copied = present.filter { precision == .reference || $0.shape.count == 1 }
        let totalFloats = copied.reduce(0) { $0 + $1.elementCount }
        storage = UnsafeMutablePointer<Float>.allocate(capacity: max(totalFloats, 1))
        copiedWeightBytes = totalFloats * MemoryLayout<Float>.stride
        weightBytes = copiedWeightBytes + present.filter { !copied.contains($0) }.reduce(0) { $0 + $1.byteCount }
        var offsets: [String: Int] = [:]
        var next = 0
        for info in copied {
            offsets[info.name] = next
            if let base = gguf.data(of: info).baseAddress {
                Dequantize.row(info.type, from: base, count: info.elementCount, into: storage + next)
            }
            next += info.elementCount
        }
        let floats = UnsafePointer(storage)
        func vector(_ name: String) -> UnsafePointer<Float>? { offsets[name].map { floats + $0 } }
        func matrix(_ name: String) -> WeightMatrix? {
            guard let info = gguf.tensorInfo(name), info.shape.count == 2 else { return nil }
            if let offset = offsets[name] {
                return WeightMatrix(
                    type: .f32, data: UnsafeRawPointer(floats + offset), inDim: info.shape[0], outDim: info.shape[1])
            }
            guard let base = gguf.data(of: info).baseAddress else { return nil }
            return WeightMatrix(type: info.type, data: base, inDim: info.shape[0], outDim: info.shape[1])
        }
        // validateTensors guaranteed the required ones; a missing one here would be a bug in tensorSpecs.
        func required<T>(_ value: T?, _ name: String) -> T {
            guard let value else { preconditionFailure("tensorSpecs lists \(name) as required") }
            return value
        }
        func requiredVector(_ name: String) -> UnsafePointer<Float> { required(vector(name), name) }
        func requiredMatrix(_ name: String) -> WeightMatrix { required(matrix(name), name) }

        tokenEmbedding = requiredMatrix("token_embd.weight")
        outputNorm = requiredVector("output_norm.weight")
        tiedOutput = gguf.tensorInfo("output.weight") == nil
        output = matrix("output.weight") ?? tokenEmbedding
        blocks = (0..<config.blockCount).map { l in
            let b = "blk.\(l)."
            return BlockWeights(
                attentionNorm: requiredVector(b + "attn_norm.weight"),
                query: requiredMatrix(b + "attn_q.weight"), key: requiredMatrix(b + "attn_k.weight"),
                value: requiredMatrix(b + "attn_v.weight"), attentionOutput: requiredMatrix(b + "attn_output.weight"),
                queryBias: vector(b + "attn_q.bias"), keyBias: vector(b + "attn_k.bias"),
                valueBias: vector(b + "attn_v.bias"), attentionOutputBias: vector(b + "attn_output.bias"),
                ffnNorm: requiredVector(b + "ffn_norm.weight"), gate: requiredMatrix(b + "ffn_gate.weight"),
                up: requiredMatrix(b + "ffn_up.weight"), down: requiredMatrix(b + "ffn_down.weight"))
        }
        // The engine's 8-bit activation blocks are 32 wide: every quantized type's row length is a multiple.
        for m in [tokenEmbedding, output] + blocks.flatMap(\.matrices) where !m.type.dotsWithFloat {
            precondition(m.inDim % 32 == 0, "quantized rows are whole blocks of at least 32")
        }

        // RoPE angles in Double, rounded once (llama.cpp accumulates θ_i by repeated float multiplication;
        // the two agree to float rounding).
        let half = config.ropeDimensionCount / 2
        ropeCos = .allocate(capacity: config.contextLength * half)
        ropeSin = .allocate(capacity: config.contextLength * half)
        let inverseFrequencies = (0..<half).map {
            pow(config.ropeFrequencyBase, -2 * Double($0) / Double(config.ropeDimensionCount))
        }
        for p in 0..<config.contextLength {
            for i in 0..<half {
                let angle = Double(p) * inverseFrequencies[i]
                ropeCos[p * half + i] = Float(cos(angle))
                ropeSin[p * half + i] = Float(sin(angle))
            }
        }

        let name = gguf.metadata["general.name"]?.stringValue ?? fallbackName
        // The identity peers compare: a fingerprint of the file (SHA-256 of its size and header — metadata and
        // tensor table — which hashing a multi-gigabyte file would not be worth at load), and of the vocabulary
        // (token strings and types in id order, as Tokenizer.vocabularyHash defines it). A file without
        // tokenizer metadata has an empty vocabulary hash, which matches no real vocabulary.
        let vocabularyHash = (tokenizer ?? (try? Tokenizer(gguf: gguf)))?.vocabularyHash ?? ""
        identity = ModelIdentity(
            name: name, fileHash: Self.fingerprint(of: gguf), vocabularyHash: vocabularyHash,
            vocabularySize: config.vocabularySize)

        isa = chorus_isa()
        guard let pool = chorus_pool_create(Int32(threads)) else {
            preconditionFailure("cannot create a thread pool")
        }
        self.pool = pool
        // The reference path's BLAS calls run on the calling thread only (a process-wide setting, always 1).
        Self.singleThreadedBLAS
    }

    /// SHA-256 (hex) of the file size (8 bytes, little-endian) followed by the bytes before the tensor data.
    static func fingerprint(of gguf: GGUFFile) -> String {
        var hasher = SHA256()
        withUnsafeBytes(of: UInt64(gguf.file.size).littleEndian) { hasher.update(Array($0)) }
        hasher.update(Array(gguf.file.bytes[0..<min(gguf.dataOffset, gguf.file.size)]))
        return hasher.finalizeHex()
    }

    private static let singleThreadedBLAS: Void = openblas_set_num_threads(1)

    deinit {
        chorus_pool_destroy(pool)
        storage.deallocate()
        ropeCos.deallocate()
        ropeSin.deallocate()
    }

    public func makeSession() throws -> any LanguageModelSession {
        TransformerSession(model: self)
    }
}

/// A weight matrix [outDim][inDim] (ggml shape [inDim, outDim]) of `type`, where it lies: in the file's mapping
/// (fast precision) or in the model's Float32 copies (reference precision, type F32).
struct WeightMatrix {
    let type: GGMLType
    let data: UnsafeRawPointer
    let inDim: Int
    let outDim: Int
    var rowBytes: Int { inDim / type.blockSize * type.blockBytes }
    /// The Float32 rows of a reference-precision matrix.
    var floats: UnsafePointer<Float> {
        precondition(type == .f32)
        return data.assumingMemoryBound(to: Float.self)
    }
}

/// Weights of one transformer block.
struct BlockWeights {
    let attentionNorm: UnsafePointer<Float>  // [d]
    let query: WeightMatrix  // [heads·hd][d]
    let key: WeightMatrix  // [kvHeads·hd][d]
    let value: WeightMatrix  // [kvHeads·hd][d]
    let attentionOutput: WeightMatrix  // [d][heads·hd]
    let queryBias: UnsafePointer<Float>?  // [heads·hd] (qwen2)
    let keyBias: UnsafePointer<Float>?  // [kvHeads·hd] (qwen2)
    let valueBias: UnsafePointer<Float>?  // [kvHeads·hd] (qwen2)
    let attentionOutputBias: UnsafePointer<Float>?  // [d]
    let ffnNorm: UnsafePointer<Float>  // [d]
    let gate: WeightMatrix  // [ff][d]
    let up: WeightMatrix  // [ff][d]
    let down: WeightMatrix  // [d][ff]

    var matrices: [WeightMatrix] { [query, key, value, attentionOutput, gate, up, down] }
}
