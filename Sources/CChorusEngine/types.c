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

void chorus_quantize_q8(const float *x, int rows, int k, void *out) {
    int blocks = k / 32;
    for (int r = 0; r < rows; r++) {
        uint8_t *row = (uint8_t *)out + (size_t)r * chorus_q8_row_bytes(k);
        int8_t *q = (int8_t *)row;
        float *d = (float *)(row + 32 * blocks), *ds = d + blocks;
        int16_t *s16 = (int16_t *)(ds + blocks);
        int32_t *outliers = (int32_t *)(s16 + 2 * blocks);
        float *outlier_values = (float *)(outliers + 1 + CHORUS_Q8_OUTLIERS);
        outliers[0] = 0;
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
            int skip = -1;
            if (amax > CHORUS_Q8_OUTLIER_RATIO * second && outliers[0] < CHORUS_Q8_OUTLIERS) {
                skip = at;
                outliers[1 + outliers[0]] = 32 * b + at;
                outlier_values[outliers[0]] = v[at];
                outliers[0]++;
                amax = second;
            }
            float scale = amax / 127, inverse = scale > 0 ? 1 / scale : 0;
            int s0 = 0, s1 = 0;
            for (int i = 0; i < 32; i++) {
                int value = i == skip ? 0 : (int)roundf(v[i] * inverse);
                value = value > 127 ? 127 : (value < -127 ? -127 : value);
                q[32 * b + i] = (int8_t)value;
                if (i < 16) s0 += value; else s1 += value;
            }
            d[b] = scale;
            ds[b] = scale * (float)(s0 + s1);
            s16[2 * b] = (int16_t)s0;
            s16[2 * b + 1] = (int16_t)s1;
        }
    }
}
