// Shared helpers of the kernel files (not part of the public header).
#ifndef CHORUS_ENGINE_INTERNAL_H
#define CHORUS_ENGINE_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "chorus_engine.h"

#if defined(__x86_64__) || defined(__i386__)
#define CHORUS_X86 1
#include <immintrin.h>
#define CHORUS_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define CHORUS_X86 0
#endif

/// IEEE binary16 → float, by the definition (portable; F16C does it in SIMD paths).
static inline float chorus_half(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1F;
    uint32_t mantissa = h & 0x3FF;
    uint32_t bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do {
                e++;
                mantissa <<= 1;
            } while ((mantissa & 0x400) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mantissa & 0x3FF) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float chorus_bf16(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t chorus_load16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t chorus_load32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline float chorus_half_at(const uint8_t *p) { return chorus_half(chorus_load16(p)); }

/// The j-th (0..<8) 6-bit scale and min of a Q4_K / Q5_K super-block (12 packed bytes).
static inline void chorus_scale_min_k4(int j, const uint8_t *q, uint8_t *scale, uint8_t *min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/// The 16 signed 6-bit scales of a Q3_K super-block (12 packed bytes), minus 32.
static inline void chorus_scales_q3k(const uint8_t *s, int8_t out[16]) {
    for (int i = 0; i < 16; i++) {
        int low = i < 8 ? (s[i] & 0x0F) : (s[i - 8] >> 4);
        int high = (s[8 + (i % 4)] >> (2 * (i / 4))) & 3;
        out[i] = (int8_t)((low | (high << 4)) - 32);
    }
}

#define CHORUS_QK 256

/// Off x86 the "AVX2" entry of a type is its portable dot product (the table stays one shape).
#define CHORUS_AVX2_FALLBACK(T)                                                                       \
    void chorus_dot_##T##_avx2(int n, const void *w, const void *a, size_t s, int r, float *o, size_t os) { \
        chorus_dot_##T(n, w, a, s, r, o, os);                                                          \
    }

#if CHORUS_X86
/// How far ahead of the block being multiplied the kernels prefetch their weights. A decode step streams every
/// weight once from DRAM; without hints the 1-row kernels reached ≈ 8 GB/s of this core's ≈ 15 GB/s, with them
/// ≈ 10–12 (Q4_K, Q6_K; docs/benchmarks.md §3). Prefetches never fault, so reading past the tensor is harmless.
#define CHORUS_PREFETCH_BYTES 8192

/// Asks for the cache lines of `bytes` weight bytes CHORUS_PREFETCH_BYTES after `p`.
static inline void chorus_prefetch(const uint8_t *p, int bytes) {
    for (int i = 0; i < bytes; i += 64) _mm_prefetch((const char *)p + CHORUS_PREFETCH_BYTES + i, _MM_HINT_T0);
}

/// Σ of the eight lanes of v.
CHORUS_AVX2 static inline float chorus_hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// [Σ p[0], Σ p[1], …, Σ p[7]]: the lane sums of eight vectors, exact in integers.
CHORUS_AVX2 static inline __m256i chorus_sum8(const __m256i p[8]) {
    __m256i a = _mm256_hadd_epi32(p[0], p[1]), b = _mm256_hadd_epi32(p[2], p[3]);
    __m256i c = _mm256_hadd_epi32(p[4], p[5]), d = _mm256_hadd_epi32(p[6], p[7]);
    __m256i e = _mm256_hadd_epi32(a, b), f = _mm256_hadd_epi32(c, d);  // per 128-bit half: sums of p0..3 / p4..7
    return _mm256_add_epi32(_mm256_permute2x128_si256(e, f, 0x20), _mm256_permute2x128_si256(e, f, 0x31));
}

/// [Σ p[0], Σ p[1], …, Σ p[7]] of vectors of sixteen 16-bit lanes, as eight 32-bit sums. Exact when the sum of
/// any eight lanes of one p[j] within a 128-bit half fits in int16, as for maddubs of 4-bit unsigned weights with
/// int8 activations (8 · 2 · 15 · 127 = 30,480): the first three levels of the transpose add in 16 bits, so the
/// kernels need no madd by ones (a multiply-port micro-op per sub-block and row) before reducing.
CHORUS_AVX2 static inline __m256i chorus_sum8_i16(const __m256i p[8]) {
    __m256i a[4];
    for (int i = 0; i < 4; i++)  // lanes per half: p[2i], p[2i+1] alternating, each the sum of two
        a[i] = _mm256_add_epi16(_mm256_unpacklo_epi16(p[2 * i], p[2 * i + 1]),
                                _mm256_unpackhi_epi16(p[2 * i], p[2 * i + 1]));
    // per half: p0…p3 repeating, sums of four; then p0…p7, sums of eight
    __m256i b0 = _mm256_add_epi16(_mm256_unpacklo_epi32(a[0], a[1]), _mm256_unpackhi_epi32(a[0], a[1]));
    __m256i b1 = _mm256_add_epi16(_mm256_unpacklo_epi32(a[2], a[3]), _mm256_unpackhi_epi32(a[2], a[3]));
    __m256i c = _mm256_add_epi16(_mm256_unpacklo_epi64(b0, b1), _mm256_unpackhi_epi64(b0, b1));
    return _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(c)),
                            _mm256_cvtepi16_epi32(_mm256_extracti128_si256(c, 1)));
}

/// A dot function from an inlined tile taking the row count as a compile-time constant (1–CHORUS_TILE_ROWS), so
/// the accumulators stay in registers (the float and k-quant kernels, whose every product feeds a row's
/// accumulator).
#define CHORUS_TILES(NAME)                                                                                \
    CHORUS_AVX2 void NAME(int blocks, const void *w, const void *a, size_t s, int rows, float *o, size_t os) { \
        switch (rows) {                                                                                   \
            case 1: NAME##_tile(blocks, w, a, s, 1, o, os); break;                                        \
            case 2: NAME##_tile(blocks, w, a, s, 2, o, os); break;                                        \
            case 3: NAME##_tile(blocks, w, a, s, 3, o, os); break;                                        \
            case 4: NAME##_tile(blocks, w, a, s, 4, o, os); break;                                        \
            case 5: NAME##_tile(blocks, w, a, s, 5, o, os); break;                                        \
            default: NAME##_tile(blocks, w, a, s, 6, o, os); break;                                       \
        }                                                                                                 \
    }

/// Most rows a CHORUS_TILES dot call takes. The float kernels take six (twelve accumulators and two weight
/// vectors fill the sixteen registers); the k-quant kernels take six too, so that a tree of five nodes is one call.
#define CHORUS_TILE_ROWS 6

/// Rows a quantized dot call takes at once: each weight block is unpacked once for all of them.
#define CHORUS_QUANT_ROWS 16

/// A dot function for the quantized kernels: one row (decode) as a compile-time constant, more rows (up to
/// CHORUS_QUANT_ROWS) in one loop whose accumulators live in memory — each is touched once per block group, and
/// the weights are unpacked once for every row.
#define CHORUS_QUANT_TILES(NAME)                                                                          \
    CHORUS_AVX2 void NAME(int blocks, const void *w, const void *a, size_t s, int rows, float *o, size_t os) { \
        if (rows == 1)                                                                                    \
            NAME##_tile(blocks, w, a, s, 1, o, os);                                                       \
        else                                                                                              \
            NAME##_tile(blocks, w, a, s, rows, o, os);                                                    \
    }
#endif

/// The fields of one quantized activation row (see chorus_engine.h) of nb blocks.
typedef struct {
    const int8_t *q;     // [nb][32]
    const float *d;      // [nb]
    const float *ds;     // [nb]
    const int16_t *s16;  // [nb][2]
    const int32_t *outliers;  // [1 + CHORUS_Q8_OUTLIERS]: count, then positions; values follow as floats
} chorus_q8_row;

static inline chorus_q8_row chorus_q8_view(const void *row, int nb) {
    const uint8_t *p = row;
    chorus_q8_row x;
    x.q = (const int8_t *)p;
    x.d = (const float *)(p + 32 * (size_t)nb);
    x.ds = x.d + nb;
    x.s16 = (const int16_t *)(x.ds + nb);
    x.outliers = (const int32_t *)(x.s16 + 2 * (size_t)nb);
    return x;
}

// Per-family entry points, gathered by the table in types.c.
void chorus_dequantize_f32(const void *src, float *dst, int blocks);
void chorus_dequantize_f16(const void *src, float *dst, int blocks);
void chorus_dequantize_bf16(const void *src, float *dst, int blocks);
float chorus_element_f32(const void *src, int i);
float chorus_element_f16(const void *src, int i);
float chorus_element_bf16(const void *src, int i);
void chorus_dot_f32(int, const void *, const void *, size_t, int, float *, size_t);
void chorus_dot_f16(int, const void *, const void *, size_t, int, float *, size_t);
void chorus_dot_bf16(int, const void *, const void *, size_t, int, float *, size_t);
void chorus_dot_f32_avx2(int, const void *, const void *, size_t, int, float *, size_t);
void chorus_dot_f16_avx2(int, const void *, const void *, size_t, int, float *, size_t);
void chorus_dot_bf16_avx2(int, const void *, const void *, size_t, int, float *, size_t);

#define CHORUS_DECLARE_QUANT(T)                                                             \
    void chorus_dequantize_##T(const void *src, float *dst, int blocks);                    \
    float chorus_element_##T(const void *src, int i);                                       \
    void chorus_dot_##T(int, const void *, const void *, size_t, int, float *, size_t);     \
    void chorus_dot_##T##_avx2(int, const void *, const void *, size_t, int, float *, size_t);

CHORUS_DECLARE_QUANT(q4_0)
CHORUS_DECLARE_QUANT(q4_1)
CHORUS_DECLARE_QUANT(q5_0)
CHORUS_DECLARE_QUANT(q5_1)
CHORUS_DECLARE_QUANT(q8_0)
CHORUS_DECLARE_QUANT(q2_k)
CHORUS_DECLARE_QUANT(q3_k)
CHORUS_DECLARE_QUANT(q4_k)
CHORUS_DECLARE_QUANT(q5_k)
CHORUS_DECLARE_QUANT(q6_k)

#endif
