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
        const chorus_q8 *x = (const chorus_q8 *)((const uint8_t *)act + (size_t)r * act_stride);
        const uint8_t *b = weights;
        kblock k;
        float sum = 0;
        for (int n = 0; n < blocks; n++, b += bytes) {
            unpack(b, &k);
            for (int j = 0; j < 8; j++) {
                const chorus_q8 *xb = &x[8 * n + j];
                int32_t I = 0, M = 0;
                for (int half = 0; half < 2; half++) {
                    int h = 2 * j + half;
                    int32_t dot = 0;
                    for (int i = 0; i < 16; i++) dot += (int32_t)k.q[16 * h + i] * xb->q[16 * half + i];
                    I += k.scale[h] * (dot - k.offset * xb->sum[half]);
                    M += k.min[h] * xb->sum[half];
                }
                sum += xb->d * (k.d * (float)I - k.dmin * (float)M);
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

#if CHORUS_X86

CHORUS_AVX2 static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// i16 lanes 0–7 (elements 0–15) carry s0, lanes 8–15 (elements 16–31) s1.
CHORUS_AVX2 static inline __m256i scale_pair(int s0, int s1) {
    return _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
}

/// Σ over 32 of w·x, each 16-half multiplied by its scale, as 8 × i32 → Float32.
/// Unsigned w: maddubs(w, x); signed w: maddubs(|w|, sign(x, w)).
CHORUS_AVX2 static inline __m256 scaled_dot(__m256i w_u8, __m256i x, __m256i scales) {
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(w_u8, x), scales));
}

#define X_ROWS_SETUP                                                                                  \
    const chorus_q8 *x[4];                                                                            \
    __m256 acc[4];                                                                                    \
    float mins[4];                                                                                    \
    for (int r = 0; r < rows; r++) {                                                                  \
        x[r] = (const chorus_q8 *)((const uint8_t *)act + (size_t)r * act_stride);                   \
        acc[r] = _mm256_setzero_ps();                                                                 \
        mins[r] = 0;                                                                                  \
    }

#define X_ROWS_FINISH \
    for (int r = 0; r < rows; r++) out[r * out_stride] = hsum_ps(acc[r]) - mins[r];

#define XQ(r, j) _mm256_loadu_si256((const __m256i *)x[r][j].q)

CHORUS_AVX2 void chorus_dot_q4_k_avx2(int blocks, const void *weights, const void *act, size_t act_stride, int rows,
                                      float *out, size_t out_stride) {
    X_ROWS_SETUP
    const uint8_t *b = weights;
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int n = 0; n < blocks; n++, b += 144) {
        float d = _cvtsh_ss(chorus_load16(b)), dmin = _cvtsh_ss(chorus_load16(b + 2));
        uint8_t sc[8], m[8];
        for (int j = 0; j < 8; j++) chorus_scale_min_k4(j, b + 4, &sc[j], &m[j]);
        const uint8_t *qs = b + 16;
        for (int p = 0; p < 4; p++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * p));
            __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
            __m256i s_lo = _mm256_set1_epi16(sc[2 * p]), s_hi = _mm256_set1_epi16(sc[2 * p + 1]);
            for (int r = 0; r < rows; r++) {
                const chorus_q8 *xa = &x[r][8 * n + 2 * p], *xb = xa + 1;
                acc[r] = _mm256_fmadd_ps(scaled_dot(lo, XQ(r, 8 * n + 2 * p), s_lo), _mm256_set1_ps(d * xa->d), acc[r]);
                acc[r] = _mm256_fmadd_ps(scaled_dot(hi, XQ(r, 8 * n + 2 * p + 1), s_hi), _mm256_set1_ps(d * xb->d),
                                         acc[r]);
            }
        }
        for (int r = 0; r < rows; r++) {
            const chorus_q8 *xs = &x[r][8 * n];
            float msum = 0;
            for (int j = 0; j < 8; j++) msum += xs[j].d * (float)(m[j] * (xs[j].sum[0] + xs[j].sum[1]));
            mins[r] += dmin * msum;
        }
    }
    X_ROWS_FINISH
}

CHORUS_AVX2 void chorus_dot_q5_k_avx2(int blocks, const void *weights, const void *act, size_t act_stride, int rows,
                                      float *out, size_t out_stride) {
    X_ROWS_SETUP
    const uint8_t *b = weights;
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int n = 0; n < blocks; n++, b += 176) {
        float d = _cvtsh_ss(chorus_load16(b)), dmin = _cvtsh_ss(chorus_load16(b + 2));
        uint8_t sc[8], m[8];
        for (int j = 0; j < 8; j++) chorus_scale_min_k4(j, b + 4, &sc[j], &m[j]);
        __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 16));
        const uint8_t *qs = b + 48;
        for (int p = 0; p < 4; p++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * p));
            __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * p), one), 4);
            __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * p + 1), one), 4);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(v, low4), h0);
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4), h1);
            __m256i s_lo = _mm256_set1_epi16(sc[2 * p]), s_hi = _mm256_set1_epi16(sc[2 * p + 1]);
            for (int r = 0; r < rows; r++) {
                const chorus_q8 *xa = &x[r][8 * n + 2 * p], *xb = xa + 1;
                acc[r] = _mm256_fmadd_ps(scaled_dot(lo, XQ(r, 8 * n + 2 * p), s_lo), _mm256_set1_ps(d * xa->d), acc[r]);
                acc[r] = _mm256_fmadd_ps(scaled_dot(hi, XQ(r, 8 * n + 2 * p + 1), s_hi), _mm256_set1_ps(d * xb->d),
                                         acc[r]);
            }
        }
        for (int r = 0; r < rows; r++) {
            const chorus_q8 *xs = &x[r][8 * n];
            float msum = 0;
            for (int j = 0; j < 8; j++) msum += xs[j].d * (float)(m[j] * (xs[j].sum[0] + xs[j].sum[1]));
            mins[r] += dmin * msum;
        }
    }
    X_ROWS_FINISH
}

CHORUS_AVX2 void chorus_dot_q6_k_avx2(int blocks, const void *weights, const void *act, size_t act_stride, int rows,
                                      float *out, size_t out_stride) {
    X_ROWS_SETUP
    const uint8_t *b = weights;
    const __m256i low4 = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    for (int n = 0; n < blocks; n++, b += 210) {
        float d = _cvtsh_ss(chorus_load16(b + 208));
        const int8_t *scales = (const int8_t *)(b + 192);
        for (int g = 0; g < 2; g++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(b + 64 * g));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(b + 64 * g + 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * g));
            __m256i w[4];
            w[0] = _mm256_and_si256(l0, low4);
            w[1] = _mm256_and_si256(l1, low4);
            w[2] = _mm256_and_si256(_mm256_srli_epi16(l0, 4), low4);
            w[3] = _mm256_and_si256(_mm256_srli_epi16(l1, 4), low4);
            for (int s = 0; s < 4; s++) {
                __m256i hs = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * s), three), 4);
                __m256i ws = _mm256_sub_epi8(_mm256_or_si256(w[s], hs), off);
                __m256i wa = _mm256_sign_epi8(ws, ws);
                int j = 4 * g + s;  // activation block within the super-block
                __m256i sv = scale_pair(scales[2 * j], scales[2 * j + 1]);
                for (int r = 0; r < rows; r++) {
                    __m256i xs = _mm256_sign_epi8(XQ(r, 8 * n + j), ws);
                    acc[r] = _mm256_fmadd_ps(scaled_dot(wa, xs, sv), _mm256_set1_ps(d * x[r][8 * n + j].d), acc[r]);
                }
            }
        }
    }
    X_ROWS_FINISH
}

CHORUS_AVX2 void chorus_dot_q3_k_avx2(int blocks, const void *weights, const void *act, size_t act_stride, int rows,
                                      float *out, size_t out_stride) {
    X_ROWS_SETUP
    const uint8_t *b = weights;
    const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4);
    for (int n = 0; n < blocks; n++, b += 110) {
        float d = _cvtsh_ss(chorus_load16(b + 108));
        int8_t scales[16];
        chorus_scales_q3k(b + 96, scales);
        __m256i hm = _mm256_loadu_si256((const __m256i *)b);
        for (int g = 0; g < 2; g++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(b + 32 + 32 * g));
            for (int sh = 0; sh < 4; sh++) {
                int j = 4 * g + sh;
                __m256i low = _mm256_and_si256(_mm256_srli_epi16(q, 2 * sh), three);
                __m256i high = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, j), one), 2);
                __m256i ws = _mm256_sub_epi8(_mm256_or_si256(low, high), four);
                __m256i wa = _mm256_sign_epi8(ws, ws);
                __m256i sv = scale_pair(scales[2 * j], scales[2 * j + 1]);
                for (int r = 0; r < rows; r++) {
                    __m256i xs = _mm256_sign_epi8(XQ(r, 8 * n + j), ws);
                    acc[r] = _mm256_fmadd_ps(scaled_dot(wa, xs, sv), _mm256_set1_ps(d * x[r][8 * n + j].d), acc[r]);
                }
            }
        }
    }
    X_ROWS_FINISH
}

CHORUS_AVX2 void chorus_dot_q2_k_avx2(int blocks, const void *weights, const void *act, size_t act_stride, int rows,
                                      float *out, size_t out_stride) {
    X_ROWS_SETUP
    const uint8_t *b = weights;
    const __m256i three = _mm256_set1_epi8(3);
    for (int n = 0; n < blocks; n++, b += 84) {
        float d = _cvtsh_ss(chorus_load16(b + 80)), dmin = _cvtsh_ss(chorus_load16(b + 82));
        for (int g = 0; g < 2; g++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * g));
            for (int sh = 0; sh < 4; sh++) {
                int j = 4 * g + sh;
                __m256i w = _mm256_and_si256(_mm256_srli_epi16(q, 2 * sh), three);
                __m256i sv = scale_pair(b[2 * j] & 0x0F, b[2 * j + 1] & 0x0F);
                for (int r = 0; r < rows; r++) {
                    acc[r] = _mm256_fmadd_ps(scaled_dot(w, XQ(r, 8 * n + j), sv), _mm256_set1_ps(d * x[r][8 * n + j].d),
                                             acc[r]);
                }
            }
        }
        for (int r = 0; r < rows; r++) {
            const chorus_q8 *xs = &x[r][8 * n];
            float msum = 0;
            for (int j = 0; j < 8; j++)
                msum += xs[j].d * (float)((b[2 * j] >> 4) * xs[j].sum[0] + (b[2 * j + 1] >> 4) * xs[j].sum[1]);
            mins[r] += dmin * msum;
        }
    }
    X_ROWS_FINISH
}

#else
#define K_FALLBACK(T)                                                                                 \
    void chorus_dot_##T##_avx2(int n, const void *w, const void *a, size_t s, int r, float *o, size_t os) { \
        chorus_dot_##T(n, w, a, s, r, o, os);                                                          \
    }
K_FALLBACK(q2_k)
K_FALLBACK(q3_k)
K_FALLBACK(q4_k)
K_FALLBACK(q5_k)
K_FALLBACK(q6_k)
#endif
