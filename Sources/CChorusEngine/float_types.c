// F32, F16 and BF16 weights, dotted with Float32 activations (no activation rounding).
#include "internal.h"

void chorus_dequantize_f32(const void *src, float *dst, int blocks) { memcpy(dst, src, (size_t)blocks * 4); }

void chorus_dequantize_f16(const void *src, float *dst, int blocks) {
    const uint8_t *p = src;
    for (int i = 0; i < blocks; i++) dst[i] = chorus_half_at(p + 2 * i);
}

void chorus_dequantize_bf16(const void *src, float *dst, int blocks) {
    const uint8_t *p = src;
    for (int i = 0; i < blocks; i++) dst[i] = chorus_bf16(chorus_load16(p + 2 * i));
}

float chorus_element_f32(const void *src, int i) {
    float v;
    memcpy(&v, (const uint8_t *)src + 4 * i, 4);
    return v;
}
float chorus_element_f16(const void *src, int i) { return chorus_half_at((const uint8_t *)src + 2 * i); }
float chorus_element_bf16(const void *src, int i) { return chorus_bf16(chorus_load16((const uint8_t *)src + 2 * i)); }

// Portable: one sequential Float32 sum per row.
#define CHORUS_FLOAT_DOT(NAME, LOAD)                                                                \
    void NAME(int n, const void *weights, const void *act, size_t act_stride, int rows, float *out, \
              size_t out_stride) {                                                                  \
        const uint8_t *w = weights;                                                                 \
        for (int r = 0; r < rows; r++) {                                                            \
            const float *x = (const float *)((const uint8_t *)act + r * act_stride);               \
            float sum = 0;                                                                          \
            for (int i = 0; i < n; i++) sum += LOAD * x[i];                                         \
            out[r * out_stride] = sum;                                                              \
        }                                                                                           \
    }

CHORUS_FLOAT_DOT(chorus_dot_f32, ({ float v; memcpy(&v, w + 4 * i, 4); v; }))
CHORUS_FLOAT_DOT(chorus_dot_f16, chorus_half_at(w + 2 * i))
CHORUS_FLOAT_DOT(chorus_dot_bf16, chorus_bf16(chorus_load16(w + 2 * i)))

#if CHORUS_X86

// AVX2: two 8-lane accumulators per row over 16 elements a step, then the remainder in scalar. The weight
// vectors are loaded (and converted) once per step for all rows; the row count (1–6: twelve accumulators and
// two weight vectors fill the sixteen registers, and a tree of 1 + 4 drafts takes one pass) is a compile-time
// constant of an inlined tile, so the accumulators stay in registers.
#define CHORUS_FLOAT_DOT_AVX2(NAME, BYTES, LOAD8, LOAD1)                                                 \
    CHORUS_AVX2 static inline __attribute__((always_inline)) void NAME##_tile(                      \
        int n, const void *weights, const void *act, size_t act_stride, const int rows, float *out, \
        size_t out_stride) {                                                                        \
        const uint8_t *w = weights;                                                                 \
        const float *x[CHORUS_TILE_ROWS];                                                            \
        __m256 a0[CHORUS_TILE_ROWS], a1[CHORUS_TILE_ROWS];                                        \
        _Pragma("clang loop unroll(full)") \
        for (int r = 0; r < rows; r++) {                                                            \
            x[r] = (const float *)((const uint8_t *)act + r * act_stride);                         \
            a0[r] = _mm256_setzero_ps();                                                            \
            a1[r] = _mm256_setzero_ps();                                                            \
        }                                                                                           \
        int i = 0;                                                                                  \
        for (; i + 16 <= n; i += 16) {                                                              \
            _mm_prefetch((const char *)w + CHORUS_PREFETCH_BYTES + (size_t)BYTES * i, _MM_HINT_T0);           \
            __m256 w0 = LOAD8(i), w1 = LOAD8(i + 8);                                                \
            _Pragma("clang loop unroll(full)") \
            for (int r = 0; r < rows; r++) {                                                        \
                a0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[r] + i), a0[r]);                      \
                a1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[r] + i + 8), a1[r]);                  \
            }                                                                                       \
        }                                                                                           \
        _Pragma("clang loop unroll(full)") \
        for (int r = 0; r < rows; r++) {                                                            \
            float sum = chorus_hsum_ps(_mm256_add_ps(a0[r], a1[r]));                                \
            for (int j = i; j < n; j++) sum += LOAD1(j) * x[r][j];                                  \
            out[r * out_stride] = sum;                                                              \
        }                                                                                           \
    }                                                                                               \
    CHORUS_TILES(NAME)

#define F32_LOAD8(i) _mm256_loadu_ps((const float *)(w + 4 * (i)))
#define F32_LOAD1(j) ({ float v; memcpy(&v, w + 4 * (j), 4); v; })
#define F16_LOAD8(i) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * (i))))
#define F16_LOAD1(j) chorus_half_at(w + 2 * (j))
#define BF16_LOAD8(i) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + 2 * (i)))), 16))
#define BF16_LOAD1(j) chorus_bf16(chorus_load16(w + 2 * (j)))

CHORUS_FLOAT_DOT_AVX2(chorus_dot_f32_avx2, 4, F32_LOAD8, F32_LOAD1)
CHORUS_FLOAT_DOT_AVX2(chorus_dot_f16_avx2, 2, F16_LOAD8, F16_LOAD1)
CHORUS_FLOAT_DOT_AVX2(chorus_dot_bf16_avx2, 2, BF16_LOAD8, BF16_LOAD1)

#else
CHORUS_AVX2_FALLBACK(f32)
CHORUS_AVX2_FALLBACK(f16)
CHORUS_AVX2_FALLBACK(bf16)
#endif
