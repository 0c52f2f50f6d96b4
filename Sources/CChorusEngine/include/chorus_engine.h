// Chorus engine kernels: GGUF tensor types read as stored, SIMD dot products chosen at run time,
// a multi-row matrix product that reads each weight block once for all rows, and a thread pool.
//
// One table (`chorus_type_traits`) maps a ggml type id to its block geometry, its dequantization,
// the activation format it dots with, and its dot products (portable and SIMD). The design follows
// ggml's CPU type traits (ggml-cpu.c `type_traits_cpu`); the code is our own.
//
// Determinism: the value of one output y[r][o] depends only on weight row o and activation row r —
// never on how many rows share the call, how they are tiled, or how many threads run. Every output
// is computed by one thread with one fixed sequence of operations.
#ifndef CHORUS_ENGINE_H
#define CHORUS_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// ggml type ids (GGUF specification, "Tensor types").
enum chorus_type {
    CHORUS_F32 = 0,
    CHORUS_F16 = 1,
    CHORUS_Q4_0 = 2,
    CHORUS_Q4_1 = 3,
    CHORUS_Q5_0 = 6,
    CHORUS_Q5_1 = 7,
    CHORUS_Q8_0 = 8,
    CHORUS_Q2_K = 10,
    CHORUS_Q3_K = 11,
    CHORUS_Q4_K = 12,
    CHORUS_Q5_K = 13,
    CHORUS_Q6_K = 14,
    CHORUS_BF16 = 30,
};

/// The activation format a weight type dots with.
enum chorus_activation {
    /// Float32 rows (F32, F16, BF16 weights).
    CHORUS_ACT_F32 = 0,
    /// `chorus_q8` blocks of 32 (every quantized type).
    CHORUS_ACT_Q8 = 1,
};

/// Activations for quantized weights: each row of k values (k a multiple of 32) in blocks of 32,
/// x[i] ≈ d · q[i] with d = max|x| / 127 per block. Blocks of 32 (not ggml's 256 for k-quants) keep an
/// outlier channel from flattening more than 31 neighbours. One row is `chorus_q8_row_bytes(k)` bytes, laid
/// out by field so the kernels load eight blocks' scales at once (nb = k / 32):
///
///     int8_t  q[nb][32]    the values
///     float   d[nb]        the scales
///     float   ds[nb]       d · (q[0] + … + q[31]), for the types with a minimum
///     int16_t s16[nb][2]   q[0] + … + q[15] and q[16] + … + q[31], for types with 16-wide sub-blocks
///     int32_t outliers     how many of the next entries are used (0…CHORUS_Q8_OUTLIERS)
///     int32_t index[8]     positions (0..<k) of outliers, increasing
///     float   value[8]     their exact values
///
/// An outlier is a value more than CHORUS_Q8_OUTLIER_RATIO (32) times every other magnitude of its block (the
/// residual stream of Qwen2 holds values near 3,300 at position 0): it is left out of the block (q = 0, the
/// scale comes from the rest) and its product with the weight column is added in Float32 by
/// `chorus_matmul`, so its neighbours keep their precision.
///
/// `chorus_q8` names one block's view of it.
typedef struct {
    const int8_t *q;
    float d, ds;
    int16_t s16[2];
} chorus_q8;

#define CHORUS_Q8_OUTLIERS 8
#define CHORUS_Q8_OUTLIER_RATIO 32.0f

/// Bytes of one quantized activation row of k values.
size_t chorus_q8_row_bytes(int k);

/// The outliers of a quantized activation row of k values: writes up to CHORUS_Q8_OUTLIERS positions and
/// values, returns how many.
int chorus_q8_outliers(const void *row, int k, int32_t *indices, float *values);

/// Dot products of one weight row (`blocks` blocks of its type) with `rows` activation rows (≤ 16 for the
/// blocks-of-32 quantized types, ≤ 6 for the float types and the k-quants):
/// out[r · out_stride] = Σ w · x_r. `act` points at row 0; row r starts `act_stride` bytes later.
typedef void (*chorus_dot_fn)(int blocks, const void *weights, const void *act, size_t act_stride, int rows,
                              float *out, size_t out_stride);

typedef struct {
    const char *name;
    /// Elements per block and bytes per block.
    int block_size;
    int block_bytes;
    int activation;  // enum chorus_activation
    /// Decodes `blocks` blocks into `blocks · block_size` floats.
    void (*dequantize)(const void *src, float *dst, int blocks);
    /// Element i (0..<block_size) of the block at `src`, equal to what `dequantize` writes there.
    float (*element)(const void *src, int i);
    /// Portable C dot product.
    chorus_dot_fn dot_portable;
    /// AVX2 + FMA (+ F16C) dot product, or NULL when the type has none.
    chorus_dot_fn dot_avx2;
} chorus_type_traits;

/// The traits of a type id, or NULL for a type Chorus cannot compute with.
const chorus_type_traits *chorus_traits(uint32_t type);

/// The best kernels this CPU runs: 0 = portable, 1 = AVX2+FMA+F16C, from cpuid, once.
/// `CHORUS_ISA=portable` in the environment forces the portable path for a process.
int chorus_isa(void);
/// "portable" or "avx2".
const char *chorus_isa_name(int isa);

/// The dot function of a type at `isa` (lowered to what the CPU has).
chorus_dot_fn chorus_dot_for(const chorus_type_traits *traits, int isa);

/// Quantizes `rows` rows of `k` floats (k a multiple of 32) into `rows · chorus_q8_row_bytes(k)` bytes.
void chorus_quantize_q8(const float *x, int rows, int k, void *out);
/// The same at `isa` (lowered to what the CPU has): both paths give the same bytes.
void chorus_quantize_q8_isa(int isa, const float *x, int rows, int k, void *out);

/// Block b of a quantized activation row of k values (for tests and portable code).
chorus_q8 chorus_q8_block(const void *row, int k, int b);

/// A thread pool of `threads` (≥ 1) threads including the caller: `threads − 1` persistent workers.
typedef struct chorus_pool chorus_pool;
chorus_pool *chorus_pool_create(int threads);
void chorus_pool_destroy(chorus_pool *pool);
int chorus_pool_threads(const chorus_pool *pool);
/// Runs job(context, index, count) on every thread (index 0 on the caller) and waits for all.
void chorus_pool_run(chorus_pool *pool, void (*job)(void *context, int index, int count), void *context);

/// y[r][o] = Σ_i W[o][i] · x[r][i] for r < rows, o < out_dim: `weights` holds out_dim rows of
/// in_dim elements of `type`, `act` the rows in the type's activation format (Float32 rows of
/// in_dim, or chorus_q8_row_bytes(in_dim) bytes each), `y` rows of `y_stride` floats. Output rows are
/// split among the pool's threads; each output is computed whole by one thread. `isa` as in
/// `chorus_isa` (lowered to what the CPU has).
void chorus_matmul(chorus_pool *pool, int isa, uint32_t type, const void *weights, int in_dim, int out_dim,
                   const void *act,
                   int rows, float *y, size_t y_stride);

/// Masked multi-head attention of `rows` new tokens (grouped-query: head h reads kv head
/// h / (heads / kv_heads)). q: [rows][q_stride] after RoPE; keys, values: the layer's cache rows
/// [prefix + tree_offset + rows][kv_stride]: the cached prefix, then `tree_offset` tree nodes scored
/// earlier (a pending tree being extended), then the new tokens. mask: [rows][tree_offset + rows],
/// mask[i][j] ≠ 0 when new token i attends tree node j (itself and its ancestors). Writes
/// out: [rows][out_stride], head h at h · head_dim.
///
/// Each (row, head) sums over exactly the positions it attends, in increasing position order, so
/// a token's result is bit-identical whether it is scored in a tree, in a chain or alone after the
/// same cached prefix. `scratch` holds `2 · chorus_pool_threads(pool) · (prefix + tree_offset + rows)` floats
/// (each thread's scores and the positions it attends).
void chorus_attention(chorus_pool *pool, int isa, const float *q, int rows, int q_stride, const float *keys,
                      const float *values, int kv_stride, int heads, int kv_heads, int head_dim, int prefix,
                      int tree_offset, const uint8_t *mask, float *out, int out_stride, float *scratch);

/// Attention of `rows` tokens of different sequences in one call (a batch of sessions): row i reads its own
/// cache `keys[i]`, `values[i]` ([positions][kv_stride]) at positions 0…lengths[i], its own new row being at
/// lengths[i]. The same arithmetic as `chorus_attention` for one token after a prefix of lengths[i], so a
/// batched row equals that sequence decoded alone, bit for bit. `scratch`: `2 · chorus_pool_threads(pool)` rows
/// of `scratch_stride` ≥ max(lengths) + 1 floats.
void chorus_attention_batch(chorus_pool *pool, int isa, const float *q, int rows, int q_stride,
                            const float *const *keys, const float *const *values, const int *lengths, int kv_stride,
                            int heads, int kv_heads, int head_dim, float *out, int out_stride, float *scratch,
                            int scratch_stride);

/// Pins every thread of this process, and so the threads it starts later, to CPU `cpu` (Linux; for benchmarks
/// and the demo, which put the coordinator and the workers on different cores). Returns 0, or an errno value.
int chorus_pin_process(int cpu);

#ifdef __cplusplus
}
#endif

#endif
