import CBLAS

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The numeric building blocks of the forward pass, on raw row-major Float32 buffers.
///
/// The reference precision's matrix products go through OpenBLAS (the fast precision's through the engine's
/// `chorus_matmul`); the rest are short loops over one row, shared by both.
/// No function allocates: callers own every buffer (per-session scratch, see `TransformerSession`).
enum Kernels {
    /// y = x · Wᵀ: `y` [n][outDim], `x` [n][inDim], `w` [outDim][inDim] (a GGUF weight of ggml shape
    /// [inDim, outDim]). One row uses sgemv, several rows one sgemm (OpenBLAS 0.3.21, which Debian 12 ships,
    /// does not forward M = 1 sgemm to gemv itself).
    ///
    /// Measured against our own four-rows-at-a-time SIMD8 matvec (release build, the target's shapes
    /// 288→144/288/768/2048 and 768→288, weights in cache): equal within noise — OpenBLAS uses AVX-512 here
    /// while Swift code is compiled for baseline x86-64 — and a decode step is bound by reading 24 MB of
    /// Float32 weights anyway, so BLAS is kept. For 16 rows, storing W transposed ([in][out], NoTrans sgemm)
    /// measured 15–20% faster than this layout because OpenBLAS packs W more cheaply; not done yet.
    @inline(__always)
    static func matmul(
        _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
        rows n: Int, inDim: Int, outDim: Int
    ) {
        if n == 1 {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(outDim), Int32(inDim), 1, w, Int32(inDim), x, 1, 0, y, 1)
        } else {
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(outDim), Int32(inDim),
                1, x, Int32(inDim), w, Int32(inDim), 0, y, Int32(outDim))
        }
    }

    /// Adds `bias` [dim] to each of the `n` rows of `y` [n][dim].
    @inline(__always)
    static func addBias(_ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows n: Int, dim: Int) {
        for r in 0..<n { cblas_saxpy(Int32(dim), 1, bias, 1, y + r * dim, 1) }
    }

    /// Adds `bias` [dim] to each of the `n` rows of `y` [n][dim], element by element (no BLAS).
    @inline(__always)
    static func addRows(_ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows n: Int, dim: Int) {
        for r in 0..<n {
            let row = y + r * dim
            for i in 0..<dim { row[i] += bias[i] }
        }
    }

    /// y += x, element by element: [count].
    @inline(__always)
    static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
    }

    /// RMSNorm (Zhang & Sennrich 2019, as in LLaMA): out = x / sqrt(mean(x²) + ε) ⊙ weight, row by row.
    /// `out`, `x`: [n][dim] (may alias), `weight`: [dim]. The sum of squares is accumulated in Double, as
    /// ggml's `ggml_compute_forward_rms_norm` does (ggml_float).
    @inline(__always)
    static func rmsNorm(
        _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
        rows n: Int, dim: Int, epsilon: Float
    ) {
        for r in 0..<n {
            let xr = x + r * dim
            let or = out + r * dim
            var sum: Double = 0
            for i in 0..<dim { sum += Double(xr[i]) * Double(xr[i]) }
            let scale = Float(1 / (sum / Double(dim) + Double(epsilon)).squareRoot())
            for i in 0..<dim { or[i] = xr[i] * scale * weight[i] }
        }
    }

    /// Rotary position embedding (Su et al. 2021, RoFormer) of `heads` heads of one token, in place.
    /// `v`: [heads][headDim]; `cos`, `sin`: [ropeDims / 2], the angles p · θ^(−2i/ropeDims) for this token's
    /// position p. Only the first `ropeDims` dimensions of each head rotate.
    @inline(__always)
    static func rope(
        _ v: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, ropeDims: Int,
        cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, style: TransformerConfig.RopeStyle
    ) {
        let half = ropeDims / 2
        for h in 0..<heads {
            let head = v + h * headDim
            switch style {
            case .interleavedPairs:  // (x[2i], x[2i+1])
                for i in 0..<half {
                    let a = head[2 * i], b = head[2 * i + 1]
                    head[2 * i] = a * cos[i] - b * sin[i]
                    head[2 * i + 1] = a * sin[i] + b * cos[i]
                }
            case .halves:  // (x[i], x[i + ropeDims/2])
                for i in 0..<half {
                    let a = head[i], b = head[i + half]
                    head[i] = a * cos[i] - b * sin[i]
                    head[i + half] = a * sin[i] + b * cos[i]
                }
            }
        }
    }

    /// In-place softmax of `x` [count]; entries equal to −∞ (masked) become 0. At least one entry must be finite.
    @inline(__always)
    static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var maximum = -Float.infinity
        for i in 0..<count where x[i] > maximum { maximum = x[i] }
        var sum: Float = 0
        for i in 0..<count {
            let e = expf(x[i] - maximum)
            x[i] = e
            sum += e
        }
        let inverse = 1 / sum
        for i in 0..<count { x[i] *= inverse }
    }

    /// SwiGLU gate (Shazeer 2020): gate ← silu(gate) ⊙ up, silu(g) = g / (1 + e^(−g)). Both [count].
    @inline(__always)
    static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
        }
    }
}
