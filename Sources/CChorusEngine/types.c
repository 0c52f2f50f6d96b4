// The type table, the run-time choice of kernels, and the activation quantizer.
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

static const chorus_type_traits traits_f32 = {"F32", 1, 4, CHORUS_ACT_F32, chorus_dequantize_f32, chorus_element_f32,
                                              chorus_dot_f32, chorus_dot_f32_avx2};
static const chorus_type_traits traits_f16 = {"F16", 1, 2, CHORUS_ACT_F32, chorus_dequantize_f16, chorus_element_f16,
                                              chorus_dot_f16, chorus_dot_f16_avx2};
static const chorus_type_traits traits_bf16 = {"BF16", 1, 2, CHORUS_ACT_F32, chorus_dequantize_bf16,
                                               chorus_element_bf16, chorus_dot_bf16, chorus_dot_bf16_avx2};
#define QUANT(T, NAME, SIZE, BYTES) \
    static const chorus_type_traits traits_##T = {NAME, SIZE, BYTES, CHORUS_ACT_Q8, chorus_dequantize_##T, \
                                                  chorus_element_##T, chorus_dot_##T, chorus_dot_##T##_avx2};
QUANT(q4_0, "Q4_0", 32, 18)
QUANT(q4_1, "Q4_1", 32, 20)
QUANT(q5_0, "Q5_0", 32, 22)
QUANT(q5_1, "Q5_1", 32, 24)
QUANT(q8_0, "Q8_0", 32, 34)
QUANT(q2_k, "Q2_K", 256, 84)
QUANT(q3_k, "Q3_K", 256, 110)
QUANT(q4_k, "Q4_K", 256, 144)
QUANT(q5_k, "Q5_K", 256, 176)
QUANT(q6_k, "Q6_K", 256, 210)

const chorus_type_traits *chorus_traits(uint32_t type) {
    switch (type) {
        case CHORUS_F32: return &traits_f32;
        case CHORUS_F16: return &traits_f16;
        case CHORUS_BF16: return &traits_bf16;
        case CHORUS_Q4_0: return &traits_q4_0;
        case CHORUS_Q4_1: return &traits_q4_1;
        case CHORUS_Q5_0: return &traits_q5_0;
        case CHORUS_Q5_1: return &traits_q5_1;
        case CHORUS_Q8_0: return &traits_q8_0;
        case CHORUS_Q2_K: return &traits_q2_k;
        case CHORUS_Q3_K: return &traits_q3_k;
        case CHORUS_Q4_K: return &traits_q4_k;
        case CHORUS_Q5_K: return &traits_q5_k;
        case CHORUS_Q6_K: return &traits_q6_k;
        default: return NULL;
    }
}

// MARK: ISA

static _Atomic int detected_isa = -1;

static int detect(void) {
    const char *env = getenv("CHORUS_ISA");
    if (env && strcmp(env, "portable") == 0) return 0;
#if CHORUS_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) return 1;
#endif
    return 0;
}

int chorus_isa(void) {
    int isa = detected_isa;
    if (isa < 0) detected_isa = isa = detect();
    return isa;
}

const char *chorus_isa_name(int isa) { return isa >= 1 ? "avx2" : "portable"; }

chorus_dot_fn chorus_dot_for(const chorus_type_traits *traits, int isa) {
    if (isa > chorus_isa()) isa = chorus_isa();
    return isa == 1 && traits->dot_avx2 ? traits->dot_avx2 : traits->dot_portable;
}

// MARK: Activations

size_t chorus_q8_row_bytes(int k) { return (size_t)(k / 32) * 44 + 4 * (1 + 2 * CHORUS_Q8_OUTLIERS); }

int chorus_q8_outliers(const void *row, int k, int32_t *indices, float *values) {
    chorus_q8_row x = chorus_q8_view(row, k / 32);
    int count = x.outliers[0];
    const float *stored = (const float *)(x.outliers + 1 + CHORUS_Q8_OUTLIERS);
    for (int i = 0; i < count; i++) {
        indices[i] = x.outliers[1 + i];
        values[i] = stored[i];
    }
    return count;
}

chorus_q8 chorus_q8_block(const void *row, int k, int b) {
    chorus_q8_row x = chorus_q8_view(row, k / 32);
    chorus_q8 block = {x.q + 32 * b, x.d[b], x.ds[b], {x.s16[2 * b], x.s16[2 * b + 1]}};
    return block;
}

/// The fields of quantized activation row r of k values (see chorus_engine.h), to write; its outlier count is 0.
typedef struct {
    int8_t *q;
    float *d, *ds;
    int16_t *s16;
    int32_t *outliers;  // count, then positions
    float *outlier_values;
} q8_out;

static q8_out q8_out_row(void *out, int r, int k) {
    int blocks = k / 32;
    uint8_t *row = (uint8_t *)out + (size_t)r * chorus_q8_row_bytes(k);
    q8_out o;
    o.q = (int8_t *)row;
    o.d = (float *)(row + 32 * blocks);
    o.ds = o.d + blocks;
    o.s16 = (int16_t *)(o.ds + blocks);
    o.outliers = (int32_t *)(o.s16 + 2 * blocks);
    o.outlier_values = (float *)(o.outliers + 1 + CHORUS_Q8_OUTLIERS);
    o.outliers[0] = 0;
    return o;
}

/// Block b's outlier rule: when its largest magnitude (at position `at` of the 32 values v) exceeds
/// CHORUS_Q8_OUTLIER_RATIO times every other one and the row has room, the value is kept exactly, left out of the
/// block (its position returned) and the block scaled by the rest (`*amax` becomes `second`); else −1.
static inline int q8_take_outlier(q8_out *o, int b, const float *v, int at, float *amax, float second) {
    if (!(*amax > CHORUS_Q8_OUTLIER_RATIO * second && o->outliers[0] < CHORUS_Q8_OUTLIERS)) return -1;
    o->outliers[1 + o->outliers[0]] = 32 * b + at;
    o->outlier_values[o->outliers[0]] = v[at];
    o->outliers[0]++;
    *amax = second;
    return at;
}

/// Block b's scale, d·Σq and half sums.
static inline void q8_finish_block(q8_out *o, int b, float scale, int s0, int s1) {
    o->d[b] = scale;
    o->ds[b] = scale * (float)(s0 + s1);
    o->s16[2 * b] = (int16_t)s0;
    o->s16[2 * b + 1] = (int16_t)s1;
}

static void quantize_q8_portable(const float *x, int rows, int k, void *out) {
    int blocks = k / 32;
    for (int r = 0; r < rows; r++) {
        q8_out o = q8_out_row(out, r, k);
        for (int b = 0; b < blocks; b++) {
            const float *v = x + (size_t)r * k + 32 * b;
            // The largest magnitude, where it is, and the largest of the others.
            float amax = 0, second = 0;
            int at = 0;
            for (int i = 0; i < 32; i++) {
                float a = fabsf(v[i]);
                if (a > amax) {
                    second = amax;
                    amax = a;
                    at = i;
                } else if (a > second) {
                    second = a;
                }
            }
            int skip = q8_take_outlier(&o, b, v, at, &amax, second);
            float scale = amax / 127, inverse = scale > 0 ? 1 / scale : 0;
            int s0 = 0, s1 = 0;
            for (int i = 0; i < 32; i++) {
                int value = i == skip ? 0 : (int)roundf(v[i] * inverse);
                value = value > 127 ? 127 : (value < -127 ? -127 : value);
                o.q[32 * b + i] = (int8_t)value;
                if (i < 16) s0 += value; else s1 += value;
            }
            q8_finish_block(&o, b, scale, s0, s1);
        }
    }
}

#if CHORUS_X86
/// Σ of the eight 32-bit lanes of v.
CHORUS_AVX2 static inline int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/// The largest of the eight lanes of v.
CHORUS_AVX2 static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/// The portable quantizer's arithmetic, eight values at a time, with the same results bit for bit (checked by
/// KernelTests): the largest magnitude and its first position, the largest of the others, the same scale and
/// inverse (computed in scalar), the same products, and roundf's rounding (half away from zero) rebuilt from
/// truncation: t = trunc(q) and q − t is exact, so |q − t| ≥ ½ says whether roundf moves away from zero.
CHORUS_AVX2 static void quantize_q8_avx2(const float *x, int rows, int k, void *out) {
    int blocks = k / 32;
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    const __m256 top = _mm256_set1_ps(127.0f), bottom = _mm256_set1_ps(-127.0f);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    // packs leaves 32-bit groups in the order 0 2 4 6 1 3 5 7 of the wanted one; this puts them back.
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int r = 0; r < rows; r++) {
        q8_out o = q8_out_row(out, r, k);
        for (int b = 0; b < blocks; b++) {
            const float *v = x + (size_t)r * k + 32 * b;
            __m256 vs[4], a[4];
            for (int i = 0; i < 4; i++) {
                vs[i] = _mm256_loadu_ps(v + 8 * i);
                a[i] = _mm256_andnot_ps(sign, vs[i]);
            }
            float amax = hmax_ps(_mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3])));
            __m256 top_lanes = _mm256_set1_ps(amax);
            uint32_t at_mask = 0;
            for (int i = 0; i < 4; i++)
                at_mask |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a[i], top_lanes, _CMP_EQ_OQ)) << (8 * i);
            int at = at_mask ? __builtin_ctz(at_mask) : 0;
            // The largest magnitude of the others: position `at` left out (magnitudes are ≥ 0, so 0 does it).
            __m256 rest = _mm256_setzero_ps();
            for (int i = 0; i < 4; i++) {
                __m256i here = _mm256_cmpeq_epi32(_mm256_add_epi32(lane, _mm256_set1_epi32(8 * i)),
                                                  _mm256_set1_epi32(at));
                rest = _mm256_max_ps(rest, _mm256_andnot_ps(_mm256_castsi256_ps(here), a[i]));
            }
            float second = hmax_ps(rest);
            int skip = q8_take_outlier(&o, b, v, at, &amax, second);
            float scale = amax / 127, inverse = scale > 0 ? 1 / scale : 0;
            __m256 inv = _mm256_set1_ps(inverse);
            __m256i c[4];
            for (int i = 0; i < 4; i++) {
                __m256 p = _mm256_mul_ps(vs[i], inv);
                __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
                __m256 away = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(p, t)), half, _CMP_GE_OQ);
                __m256 rounded = _mm256_add_ps(t, _mm256_and_ps(away, _mm256_or_ps(one, _mm256_and_ps(sign, p))));
                rounded = _mm256_max_ps(_mm256_min_ps(rounded, top), bottom);
                c[i] = _mm256_cvtps_epi32(rounded);
                if (skip >= 8 * i && skip < 8 * i + 8)
                    c[i] = _mm256_andnot_si256(_mm256_cmpeq_epi32(lane, _mm256_set1_epi32(skip - 8 * i)), c[i]);
            }
            int s0 = hsum_epi32(_mm256_add_epi32(c[0], c[1])), s1 = hsum_epi32(_mm256_add_epi32(c[2], c[3]));
            __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
            _mm256_storeu_si256((__m256i *)(o.q + 32 * b), _mm256_permutevar8x32_epi32(bytes, order));
            q8_finish_block(&o, b, scale, s0, s1);
        }
    }
}
#endif

void chorus_quantize_q8_isa(int isa, const float *x, int rows, int k, void *out) {
#if CHORUS_X86
    if (isa >= 1 && chorus_isa() >= 1) {
        quantize_q8_avx2(x, rows, k, out);
        return;
    }
#endif
    quantize_q8_portable(x, rows, k, out);
}

void chorus_quantize_q8(const float *x, int rows, int k, void *out) {
    chorus_quantize_q8_isa(chorus_isa(), x, rows, k, out);
}
