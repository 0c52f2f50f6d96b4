// Super-blocks of 256 with sub-block scales: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (layouts: ggml
// `ggml-common.h`, as the GGUF specification documents them; element order as gguf-py's
// reference dequantizers state it).
//
//   Q2_K {u8 scales[16]; u8 qs[64]; f16 d, dmin}            16 × 16: x = d·(sc & 15)·q − dmin·(sc >> 4), q 2-bit
//   Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}     16 × 16: x = d·(s6 − 32)·(q2 | h·4 − 4)
//   Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]}            8 × 32: x = d·s6·q4 − dmin·m6
//   Q5_K {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]} 8 × 32: x = d·s6·(q4 | h·16) − dmin·m6
//   Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}       16 × 16: x = d·s8·(q4 | q2·16 − 32)
//
// Every type is first described in one canonical form — 256 unsigned values, a scale and a
// minimum per 16 elements, one offset — from which the portable dot product and the
// dequantization are written once. The AVX2 kernels unpack each type directly.
#include "internal.h"

typedef struct {
    uint8_t q[256];
    int16_t scale[16];
    int16_t min[16];
    int offset;
    float d, dmin;
} kblock;

static void unpack_q2_k(const uint8_t *b, kblock *k) {
    const uint8_t *qs = b + 16;
    for (int e = 0; e < 256; e++) {
        int g = e / 128, sh = (e % 128) / 32, l = e % 32;
        k->q[e] = (qs[g * 32 + l] >> (2 * sh)) & 3;
    }
    for (int h = 0; h < 16; h++) {
        k->scale[h] = b[h] & 0x0F;
        k->min[h] = b[h] >> 4;
    }
    k->offset = 0;
    k->d = chorus_half_at(b + 80);
    k->dmin = chorus_half_at(b + 82);
}

static void unpack_q3_k(const uint8_t *b, kblock *k) {
    const uint8_t *hmask = b, *qs = b + 32;
    for (int e = 0; e < 256; e++) {
        int g = e / 128, sh = (e % 128) / 32, l = e % 32;
        int low = (qs[g * 32 + l] >> (2 * sh)) & 3;
        int high = (hmask[l] >> (e / 32)) & 1;
        k->q[e] = (uint8_t)(low | (high << 2));
    }
    int8_t s[16];
    chorus_scales_q3k(b + 96, s);
    for (int h = 0; h < 16; h++) {
        k->scale[h] = s[h];
        k->min[h] = 0;
    }
    k->offset = 4;
    k->d = chorus_half_at(b + 108);
    k->dmin = 0;
}

static void unpack_q45_k(const uint8_t *b, kblock *k, int five) {
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = five ? b + 48 : b + 16;
    for (int e = 0; e < 256; e++) {
        int pair = e / 64, half = (e % 64) / 32, l = e % 32;
        uint8_t v = qs[pair * 32 + l];
        k->q[e] = half ? (v >> 4) : (v & 0x0F);
        if (five) k->q[e] |= ((qh[l] >> (e / 32)) & 1) << 4;
    }
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        chorus_scale_min_k4(j, scales, &sc, &m);
        k->scale[2 * j] = k->scale[2 * j + 1] = sc;
        k->min[2 * j] = k->min[2 * j + 1] = m;
    }
    k->offset = 0;
    k->d = chorus_half_at(b);
    k->dmin = chorus_half_at(b + 2);
}

static void unpack_q4_k(const uint8_t *b, kblock *k) { unpack_q45_k(b, k, 0); }
static void unpack_q5_k(const uint8_t *b, kblock *k) { unpack_q45_k(b, k, 1); }

static void unpack_q6_k(const uint8_t *b, kblock *k) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *scales = (const int8_t *)(b + 192);
    for (int e = 0; e < 256; e++) {
        int g = e / 128, s = (e % 128) / 32, l = e % 32;
        uint8_t low = ql[g * 64 + (s % 2) * 32 + l];
        low = s < 2 ? (low & 0x0F) : (low >> 4);
        int high = (qh[g * 32 + l] >> (2 * s)) & 3;
        k->q[e] = (uint8_t)(low | (high << 4));
    }
    for (int h = 0; h < 16; h++) {
        k->scale[h] = scales[h];
        k->min[h] = 0;
    }
    k->offset = 32;
    k->d = chorus_half_at(b + 208);
    k->dmin = 0;
}

// MARK: Single elements (for the outlier correction of chorus_matmul), the formulas of the unpackers above.

float chorus_element_q2_k(const void *src, int e) {
    const uint8_t *b = src;
    int g = e / 128, sh = (e % 128) / 32, l = e % 32, h = e / 16;
    int q = (b[16 + g * 32 + l] >> (2 * sh)) & 3;
    float dl = chorus_half_at(b + 80) * (float)(b[h] & 0x0F), ml = chorus_half_at(b + 82) * (float)(b[h] >> 4);
    return dl * (float)q - ml;
}

float chorus_element_q3_k(const void *src, int e) {
    const uint8_t *b = src;
    int g = e / 128, sh = (e % 128) / 32, l = e % 32;
    int low = (b[32 + g * 32 + l] >> (2 * sh)) & 3, high = (b[l] >> (e / 32)) & 1;
    int8_t scales[16];
    chorus_scales_q3k(b + 96, scales);
    float dl = chorus_half_at(b + 108) * (float)scales[e / 16];
    return dl * (float)((low | (high << 2)) - 4);
}

static float element_q45_k(const uint8_t *b, int e, int five) {
    const uint8_t *qs = five ? b + 48 : b + 16;
    int pair = e / 64, half = (e % 64) / 32, l = e % 32, j = e / 32;
    uint8_t v = qs[pair * 32 + l];
    int q = half ? (v >> 4) : (v & 0x0F);
    if (five) q |= ((b[16 + l] >> j) & 1) << 4;
    uint8_t sc, m;
    chorus_scale_min_k4(j, b + 4, &sc, &m);
    float dl = chorus_half_at(b) * (float)sc, ml = chorus_half_at(b + 2) * (float)m;
    return dl * (float)q - ml;
}
float chorus_element_q4_k(const void *src, int e) { return element_q45_k(src, e, 0); }
float chorus_element_q5_k(const void *src, int e) { return element_q45_k(src, e, 1); }

float chorus_element_q6_k(const void *src, int e) {
    const uint8_t *b = src;
    int g = e / 128, s = (e % 128) / 32, l = e % 32;
    uint8_t low = b[g * 64 + (s % 2) * 32 + l];
    low = s < 2 ? (low & 0x0F) : (low >> 4);
    int high = (b[128 + g * 32 + l] >> (2 * s)) & 3;
    float dl = chorus_half_at(b + 208) * (float)(int8_t)b[192 + e / 16];
    return dl * (float)((low | (high << 4)) - 32);
}

static void dequantize_k(void (*unpack)(const uint8_t *, kblock *), int bytes, const void *src, float *dst,
                         int blocks) {
    const uint8_t *b = src;
    kblock k;
    for (int n = 0; n < blocks; n++, b += bytes, dst += 256) {
        unpack(b, &k);
        for (int e = 0; e < 256; e++) {
            int h = e / 16;
            float dl = k.d * (float)k.scale[h], ml = k.dmin * (float)k.min[h];
            dst[e] = dl * (float)((int)k.q[e] - k.offset) - ml;
        }
    }
}

/// Portable: per activation block of 32, I = Σ_h scale_h·(Σ q·x − offset·Σx) and
/// M = Σ_h min_h·Σx exactly in integers; then sum += d_x·(d·I − dmin·M).
static void dot_k(void (*unpack)(const uint8_t *, kblock *), int bytes, int blocks, const void *weights,
                  const void *act, size_t act_stride, int rows, float *out, size_t out_stride) {
    for (int r = 0; r < rows; r++) {
        chorus_q8_row x = chorus_q8_view((const uint8_t *)act + (size_t)r * act_stride, 8 * blocks);
        const uint8_t *b = weights;
        kblock k;
        float sum = 0;
        for (int n = 0; n < blocks; n++, b += bytes) {
            unpack(b, &k);
            for (int j = 0; j < 8; j++) {
                int block = 8 * n + j;
                int32_t I = 0, M = 0;
                for (int half = 0; half < 2; half++) {
                    int h = 2 * j + half;
                    int32_t dot = 0;
                    for (int i = 0; i < 16; i++) dot += (int32_t)k.q[16 * h + i] * x.q[32 * block + 16 * half + i];
                    int32_t xs = x.s16[2 * block + half];
                    I += k.scale[h] * (dot - k.offset * xs);
                    M += k.min[h] * xs;
                }
                sum += x.d[block] * (k.d * (float)I - k.dmin * (float)M);
            }
        }
        out[r * out_stride] = sum;
    }
}

#define K_TYPE(T, BYTES)                                                                          \
    void chorus_dequantize_##T(const void *src, float *dst, int blocks) {                         \
        dequantize_k(unpack_##T, BYTES, src, dst, blocks);                                        \
    }                                                                                             \
    void chorus_dot_##T(int blocks, const void *w, const void *a, size_t s, int rows, float *o,   \
                        size_t os) {                                                              \
        dot_k(unpack_##T, BYTES, blocks, w, a, s, rows, o, os);                                   \
    }

K_TYPE(q2_k, 84)
K_TYPE(q3_k, 110)
K_TYPE(q4_k, 144)
K_TYPE(q5_k, 176)
K_TYPE(q6_k, 210)

// MARK: AVX2
//
// Per super-block the eight 32-wide sub-blocks are unpacked once; per row each costs maddubs + madd, the
// eight sub-block sums are gathered into one vector (chorus_sum8), converted once and multiplied by the
// eight sub-block scales and the eight activation scales, loaded together. Q4_K skips the madd: its maddubs
// pairs are reduced in 16 bits (chorus_sum8_i16), 8 multiply-port micro-ops per row and super-block instead of
// 16, and 5–8 % less time for trees of 4–16 rows (docs/benchmarks.md §3); the sums are the same integers.

#if CHORUS_X86

/// The eight 6-bit scales and mins of a Q4_K / Q5_K super-block, four at a time in 32-bit words
/// (the same unpacking as chorus_scale_min_k4).
static inline void scales_k4(const uint8_t *q, uint8_t sc[8], uint8_t m[8]) {
    uint32_t u0, u1, u2;
    memcpy(&u0, q, 4);
    memcpy(&u1, q + 4, 4);
    memcpy(&u2, q + 8, 4);
    uint32_t s_low = u0 & 0x3f3f3f3fu, m_low = u1 & 0x3f3f3f3fu;
    uint32_t s_high = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    uint32_t m_high = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    memcpy(sc, &s_low, 4);
    memcpy(sc + 4, &s_high, 4);
    memcpy(m, &m_low, 4);
    memcpy(m + 4, &m_high, 4);
}

/// Eight unsigned bytes as eight Float32.
CHORUS_AVX2 static inline __m256 bytes8_ps(const uint8_t v[8]) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)v)));
}

/// i16 lanes 0–7 (elements 0–15) carry s0, lanes 8–15 (elements 16–31) s1.
CHORUS_AVX2 static inline __m256i scale_pair(int s0, int s1) {
    return _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
}

#define XQ(r, n, j) _mm256_loadu_si256((const __m256i *)(x[r].q + 256 * (n) + 32 * (j)))

#define K_ROWS_SETUP                                                                              \
    chorus_q8_row x[CHORUS_TILE_ROWS];                                                            \
    __m256 acc[CHORUS_TILE_ROWS];                                                                 \
    _Pragma("clang loop unroll(full)") \
    for (int r = 0; r < rows; r++) {                                                              \
        x[r] = chorus_q8_view((const uint8_t *)act + (size_t)r * act_stride, 8 * blocks);         \
        acc[r] = _mm256_setzero_ps();                                                             \
    }

#define K_ROWS_FINISH                     \
    _Pragma("clang loop unroll(full)") \
    for (int r = 0; r < rows; r++) out[r * out_stride] = chorus_hsum_ps(acc[r]);

/// Q4_K and Q5_K: unsigned 4/5-bit values, a 6-bit scale and min per 32.
CHORUS_AVX2 static inline __attribute__((always_inline)) void q45_k_tile(int five, int blocks, const void *weights,
                                                                          const void *act, size_t act_stride,
                                                                          const int rows, float *out,
                                                                          size_t out_stride) {
    K_ROWS_SETUP
    const int bytes = five ? 176 : 144;
    const uint8_t *b = weights;
    const __m256i low4 = _mm256_set1_epi8(0x0F), one8 = _mm256_set1_epi8(1), one16 = _mm256_set1_epi16(1);
    for (int n = 0; n < blocks; n++, b += bytes) {
        chorus_prefetch(b, bytes);
        uint8_t sc[8], m[8];
        scales_k4(b + 4, sc, m);
        __m256 dsc = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(chorus_load16(b))), bytes8_ps(sc));
        __m256 dm = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(chorus_load16(b + 2))), bytes8_ps(m));
        const uint8_t *qs = b + (five ? 48 : 16);
        __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(b + 16)) : _mm256_setzero_si256();
        __m256i w[8];
        for (int p = 0; p < 4; p++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * p));
            w[2 * p] = _mm256_and_si256(v, low4);
            w[2 * p + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
            if (five) {
                w[2 * p] = _mm256_or_si256(
                    w[2 * p], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * p), one8), 4));
                w[2 * p + 1] = _mm256_or_si256(
                    w[2 * p + 1], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * p + 1), one8), 4));
            }
        }
        _Pragma("clang loop unroll(full)")
        for (int r = 0; r < rows; r++) {
            __m256i p[8];
            __m256i isum;
            if (five) {
                for (int j = 0; j < 8; j++) p[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(w[j], XQ(r, n, j)), one16);
                isum = chorus_sum8(p);
            } else {  // 4-bit weights: sums of 16 products fit in int16
                for (int j = 0; j < 8; j++) p[j] = _mm256_maddubs_epi16(w[j], XQ(r, n, j));
                isum = chorus_sum8_i16(p);
            }
            __m256 sums = _mm256_mul_ps(_mm256_cvtepi32_ps(isum), dsc);
            acc[r] = _mm256_fmadd_ps(sums, _mm256_loadu_ps(x[r].d + 8 * n), acc[r]);
            acc[r] = _mm256_fnmadd_ps(dm, _mm256_loadu_ps(x[r].ds + 8 * n), acc[r]);
        }
    }
    K_ROWS_FINISH
}

CHORUS_AVX2 static inline __attribute__((always_inline)) void chorus_dot_q4_k_avx2_tile(
    int blocks, const void *w, const void *a, size_t s, const int rows, float *o, size_t os) {
    q45_k_tile(0, blocks, w, a, s, rows, o, os);
}
CHORUS_AVX2 static inline __attribute__((always_inline)) void chorus_dot_q5_k_avx2_tile(
    int blocks, const void *w, const void *a, size_t s, const int rows, float *o, size_t os) {
    q45_k_tile(1, blocks, w, a, s, rows, o, os);
}
CHORUS_TILES(chorus_dot_q4_k_avx2)
CHORUS_TILES(chorus_dot_q5_k_avx2)

/// The types with 16-wide signed scales and an offset 2^offset_shift (Q6_K: 32, Q3_K: 4). Weights stay unsigned
/// (maddubs needs no sign trick); per row the offset comes off in integers as
/// offset · Σ_h scale_h · Σx_h, one madd of the sixteen scales with the sixteen half-block sums and a shift
/// (a 32-bit multiply is two micro-ops on the multiply ports that maddubs and madd need).
/// sv[j]: the scale pair of sub-block j; scales16: the sixteen scales as i16.
CHORUS_AVX2 static inline __attribute__((always_inline)) void offset16_rows(
    const __m256i w[8], const __m256i sv[8], __m256i scales16, int offset_shift, float d, int n, const chorus_q8_row *x,
    const int rows, __m256 *acc) {
    __m256 dv = _mm256_set1_ps(d);
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < rows; r++) {
        __m256i p[8];
        for (int j = 0; j < 8; j++) p[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(w[j], XQ(r, n, j)), sv[j]);
        __m256i off = _mm256_madd_epi16(scales16, _mm256_loadu_si256((const __m256i *)(x[r].s16 + 16 * n)));
        __m256i total = _mm256_sub_epi32(chorus_sum8(p), _mm256_slli_epi32(off, offset_shift));
        __m256 sums = _mm256_mul_ps(_mm256_cvtepi32_ps(total), dv);
        acc[r] = _mm256_fmadd_ps(sums, _mm256_loadu_ps(x[r].d + 8 * n), acc[r]);
    }
}

/// The eight scale pairs of sixteen int8 scales: sv[j] has scale 2j in its low 128 bits, 2j + 1 in the high.
CHORUS_AVX2 static inline void scale_pairs(const int8_t scales[16], __m256i sv[8], __m256i *scales16) {
    __m128i v = _mm_loadu_si128((const __m128i *)scales);
    *scales16 = _mm256_cvtepi8_epi16(v);
    for (int j = 0; j < 8; j++) {
        __m128i pick = _mm_setr_epi8(2 * j, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j, 2 * j + 1, 2 * j + 1,
                                     2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1);
        sv[j] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(v, pick));
    }
}

CHORUS_AVX2 static inline __attribute__((always_inline)) void chorus_dot_q6_k_avx2_tile(
    int blocks, const void *weights, const void *act, size_t act_stride, const int rows, float *out,
    size_t out_stride) {
    K_ROWS_SETUP
    const uint8_t *b = weights;
    const __m256i low4 = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3);
    for (int n = 0; n < blocks; n++, b += 210) {
        chorus_prefetch(b, 210);
        __m256i w[8], sv[8], scales16;
        scale_pairs((const int8_t *)(b + 192), sv, &scales16);
        for (int g = 0; g < 2; g++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(b + 64 * g));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(b + 64 * g + 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * g));
            __m256i low[4] = {_mm256_and_si256(l0, low4), _mm256_and_si256(l1, low4),
                              _mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                              _mm256_and_si256(_mm256_srli_epi16(l1, 4), low4)};
            for (int s = 0; s < 4; s++) {
                __m256i hs = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * s), three), 4);
                w[4 * g + s] = _mm256_or_si256(low[s], hs);
            }
        }
        offset16_rows(w, sv, scales16, 5, _cvtsh_ss(chorus_load16(b + 208)), n, x, rows, acc);
    }
    K_ROWS_FINISH
}
CHORUS_TILES(chorus_dot_q6_k_avx2)

CHORUS_AVX2 static inline __attribute__((always_inline)) void chorus_dot_q3_k_avx2_tile(
    int blocks, const void *weights, const void *act, size_t act_stride, const int rows, float *out,
    size_t out_stride) {
    K_ROWS_SETUP
    const uint8_t *b = weights;
    const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    for (int n = 0; n < blocks; n++, b += 110) {
        chorus_prefetch(b, 110);
        int8_t scales[16];
        chorus_scales_q3k(b + 96, scales);
        __m256i w[8], sv[8], scales16;
        scale_pairs(scales, sv, &scales16);
        __m256i hm = _mm256_loadu_si256((const __m256i *)b);
        for (int g = 0; g < 2; g++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(b + 32 + 32 * g));
            for (int sh = 0; sh < 4; sh++) {
                int j = 4 * g + sh;
                __m256i low = _mm256_and_si256(_mm256_srli_epi16(q, 2 * sh), three);
                __m256i high = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, j), one), 2);
                w[j] = _mm256_or_si256(low, high);
            }
        }
        offset16_rows(w, sv, scales16, 2, _cvtsh_ss(chorus_load16(b + 108)), n, x, rows, acc);
    }
    K_ROWS_FINISH
}
CHORUS_TILES(chorus_dot_q3_k_avx2)

CHORUS_AVX2 static inline __attribute__((always_inline)) void chorus_dot_q2_k_avx2_tile(
    int blocks, const void *weights, const void *act, size_t act_stride, const int rows, float *out,
    size_t out_stride) {
    K_ROWS_SETUP
    const uint8_t *b = weights;
    const __m256i three = _mm256_set1_epi8(3);
    for (int n = 0; n < blocks; n++, b += 84) {
        chorus_prefetch(b, 84);
        __m256 dv = _mm256_set1_ps(_cvtsh_ss(chorus_load16(b + 80)));
        __m256 dminv = _mm256_set1_ps(_cvtsh_ss(chorus_load16(b + 82)));
        __m128i packed = _mm_loadu_si128((const __m128i *)b);
        __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F)));
        __m256i w[8], sv[8];
        for (int g = 0; g < 2; g++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * g));
            for (int sh = 0; sh < 4; sh++) {
                int j = 4 * g + sh;
                w[j] = _mm256_and_si256(_mm256_srli_epi16(q, 2 * sh), three);
                sv[j] = scale_pair(b[2 * j] & 0x0F, b[2 * j + 1] & 0x0F);
            }
        }
        _Pragma("clang loop unroll(full)")
        for (int r = 0; r < rows; r++) {
            __m256i p[8];
            for (int j = 0; j < 8; j++) p[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(w[j], XQ(r, n, j)), sv[j]);
            __m256 xd = _mm256_loadu_ps(x[r].d + 8 * n);
            __m256 sums = _mm256_mul_ps(_mm256_cvtepi32_ps(chorus_sum8(p)), dv);
            // Σ_h min_h · Σx over each 16: madd of the 16 mins with the 16 half-block sums.
            __m256i m = _mm256_madd_epi16(mins16, _mm256_loadu_si256((const __m256i *)(x[r].s16 + 16 * n)));
            __m256 minsum = _mm256_mul_ps(_mm256_cvtepi32_ps(m), dminv);
            acc[r] = _mm256_fmadd_ps(_mm256_sub_ps(sums, minsum), xd, acc[r]);
        }
    }
    K_ROWS_FINISH
}
CHORUS_TILES(chorus_dot_q2_k_avx2)

#else
CHORUS_AVX2_FALLBACK(q2_k)
CHORUS_AVX2_FALLBACK(q3_k)
CHORUS_AVX2_FALLBACK(q4_k)
CHORUS_AVX2_FALLBACK(q5_k)
CHORUS_AVX2_FALLBACK(q6_k)
#endif
