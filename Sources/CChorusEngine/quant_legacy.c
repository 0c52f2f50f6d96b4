// Blocks of 32 with one scale: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (layouts: ggml `ggml-common.h`, as the
// GGUF specification documents them). Dot products take 8-bit activation blocks of the same
// size: per block an exact integer sum, then Float32 scales.
//
//   Q4_0 {f16 d; u8 qs[16]}           x[i] = d·(nibble_i − 8);
//                                     element i < 16: low nibble of qs[i]; i ≥ 16: high nibble of qs[i−16]
//   Q4_1 {f16 d, m; u8 qs[16]}        x[i] = d·nibble_i + m
//   Q5_0 {f16 d; u32 qh; u8 qs[16]}   x[i] = d·(nibble_i | bit_i(qh)·16 − 16)
//   Q5_1 {f16 d, m; u32 qh; u8 qs[16]} x[i] = d·(nibble_i | bit_i(qh)·16) + m
//   Q8_0 {f16 d; i8 qs[32]}           x[i] = d·qs[i]
#include "internal.h"

/// The 32 unsigned 4- or 5-bit values of a block.
static inline void unpack_nibbles(const uint8_t *qs, uint32_t qh, int five, uint8_t out[32]) {
    for (int i = 0; i < 16; i++) {
        out[i] = qs[i] & 0x0F;
        out[i + 16] = qs[i] >> 4;
    }
    if (five)
        for (int i = 0; i < 32; i++) out[i] |= ((qh >> i) & 1) << 4;
}

// MARK: Dequantization

/// Q4_0, Q4_1, Q5_0 and Q5_1 in one form: after the scale d come the minimum m (`has_min`) and the fifth bits qh
/// (`five`), then the nibbles; x = d·q + m, or d·(q − offset) for the types without a minimum.
static void dequantize_nibbles(const uint8_t *b, float *dst, int blocks, int bytes, int five, int has_min,
                               int offset) {
    int qh_at = has_min ? 4 : 2, qs_at = qh_at + (five ? 4 : 0);
    uint8_t q[32];
    for (int k = 0; k < blocks; k++, b += bytes, dst += 32) {
        float d = chorus_half_at(b), m = has_min ? chorus_half_at(b + 2) : 0;
        unpack_nibbles(b + qs_at, five ? chorus_load32(b + qh_at) : 0, five, q);
        for (int i = 0; i < 32; i++) dst[i] = has_min ? d * (float)q[i] + m : d * (float)((int)q[i] - offset);
    }
}

void chorus_dequantize_q4_0(const void *src, float *dst, int blocks) {
    dequantize_nibbles(src, dst, blocks, 18, 0, 0, 8);
}
void chorus_dequantize_q4_1(const void *src, float *dst, int blocks) {
    dequantize_nibbles(src, dst, blocks, 20, 0, 1, 0);
}
void chorus_dequantize_q5_0(const void *src, float *dst, int blocks) {
    dequantize_nibbles(src, dst, blocks, 22, 1, 0, 16);
}
void chorus_dequantize_q5_1(const void *src, float *dst, int blocks) {
    dequantize_nibbles(src, dst, blocks, 24, 1, 1, 0);
}

void chorus_dequantize_q8_0(const void *src, float *dst, int blocks) {
    const uint8_t *b = src;
    for (int k = 0; k < blocks; k++, b += 34, dst += 32) {
        float d = chorus_half_at(b);
        for (int i = 0; i < 32; i++) dst[i] = d * (float)(int8_t)b[2 + i];
    }
}

// MARK: Single elements (for the outlier correction of chorus_matmul)

/// The 4- or 5-bit value of element i of a block (qs: the 16 nibble bytes; qh: the fifth bits or 0).
static inline int nibble(const uint8_t *qs, uint32_t qh, int i) {
    int v = i < 16 ? (qs[i] & 0x0F) : (qs[i - 16] >> 4);
    return v | (int)(((qh >> i) & 1) << 4);
}

float chorus_element_q4_0(const void *src, int i) {
    const uint8_t *b = src;
    return chorus_half_at(b) * (float)(nibble(b + 2, 0, i) - 8);
}
float chorus_element_q4_1(const void *src, int i) {
    const uint8_t *b = src;
    return chorus_half_at(b) * (float)nibble(b + 4, 0, i) + chorus_half_at(b + 2);
}
float chorus_element_q5_0(const void *src, int i) {
    const uint8_t *b = src;
    return chorus_half_at(b) * (float)(nibble(b + 6, chorus_load32(b + 2), i) - 16);
}
float chorus_element_q5_1(const void *src, int i) {
    const uint8_t *b = src;
    return chorus_half_at(b) * (float)nibble(b + 8, chorus_load32(b + 4), i) + chorus_half_at(b + 2);
}
float chorus_element_q8_0(const void *src, int i) {
    const uint8_t *b = src;
    return chorus_half_at(b) * (float)(int8_t)b[2 + i];
}

// MARK: Portable dot products
//
// Per block: isum = Σ q_w·q_x exactly in integers (offsets through the activation's sums),
// then sum += (d_w·d_x)·isum, plus m·d_x·Σq_x for the types with a minimum.

#define LEGACY_DOT(NAME, BYTES, QS, QH, FIVE, OFFSET, HAS_MIN)                                       \
    void NAME(int blocks, const void *weights, const void *act, size_t act_stride, int rows,         \
              float *out, size_t out_stride) {                                                       \
        for (int r = 0; r < rows; r++) {                                                             \
            chorus_q8_row x = chorus_q8_view((const uint8_t *)act + (size_t)r * act_stride, blocks); \
            const uint8_t *b = weights;                                                              \
            float sum = 0;                                                                           \
            uint8_t q[32];                                                                           \
            for (int k = 0; k < blocks; k++, b += BYTES) {                                           \
                unpack_nibbles(b + QS, FIVE ? chorus_load32(b + QH) : 0, FIVE, q);                   \
                int32_t isum = 0;                                                                    \
                for (int i = 0; i < 32; i++) isum += (int32_t)q[i] * x.q[32 * k + i];               \
                isum -= OFFSET * (x.s16[2 * k] + x.s16[2 * k + 1]);                                  \
                sum += chorus_half_at(b) * x.d[k] * (float)isum;                                    \
                if (HAS_MIN) sum += chorus_half_at(b + 2) * x.ds[k];                                \
            }                                                                                        \
            out[r * out_stride] = sum;                                                               \
        }                                                                                            \
    }

LEGACY_DOT(chorus_dot_q4_0, 18, 2, 0, 0, 8, 0)
LEGACY_DOT(chorus_dot_q4_1, 20, 4, 0, 0, 0, 1)
LEGACY_DOT(chorus_dot_q5_0, 22, 6, 2, 1, 16, 0)
LEGACY_DOT(chorus_dot_q5_1, 24, 8, 4, 1, 0, 1)

void chorus_dot_q8_0(int blocks, const void *weights, const void *act, size_t act_stride, int rows, float *out,
                     size_t out_stride) {
    for (int r = 0; r < rows; r++) {
        chorus_q8_row x = chorus_q8_view((const uint8_t *)act + (size_t)r * act_stride, blocks);
        const uint8_t *b = weights;
        float sum = 0;
        for (int k = 0; k < blocks; k++, b += 34) {
            int32_t isum = 0;
            for (int i = 0; i < 32; i++) isum += (int32_t)(int8_t)b[2 + i] * x.q[32 * k + i];
            sum += chorus_half_at(b) * x.d[k] * (float)isum;
        }
        out[r * out_stride] = sum;
    }
}

// MARK: AVX2
//
// Eight blocks at a time: their weights are unpacked once into registers; per row, each block costs
// maddubs (u8·i8 pairs → i16) + madd (→ 8 × i32), the eight blocks' lanes are summed into one vector
// of eight block sums (chorus_sum8), converted once, and multiplied by the eight weight scales and the
// eight activation scales (loaded together). Signed weights use the sign trick (|w| · sign(x, w)), so
// the u8 operand is never negative.

#if CHORUS_X86

/// 32 nibbles of 16 bytes in element order: low nibbles (0..15), then high nibbles (16..31).
CHORUS_AVX2 static inline __m256i nibbles32(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    __m128i low = _mm_and_si128(v, _mm_set1_epi8(0x0F));
    __m128i high = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F));
    return _mm256_set_m128i(high, low);
}

/// 0x10 in byte i where bit i of qh is set, else 0.
CHORUS_AVX2 static inline __m256i fifth_bits(uint32_t qh) {
    const __m256i shuffle = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202,
                                               0x0303030303030303);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuffle);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

/// Eight f16 fields at `b`, `b + stride`, … (count of them; the other lanes 0) as Float32.
CHORUS_AVX2 static inline __m256 halves8(const uint8_t *b, size_t stride, int count) {
    if (count == 8) {
        __m128i h = _mm_setr_epi16((short)chorus_load16(b), (short)chorus_load16(b + stride),
                                   (short)chorus_load16(b + 2 * stride), (short)chorus_load16(b + 3 * stride),
                                   (short)chorus_load16(b + 4 * stride), (short)chorus_load16(b + 5 * stride),
                                   (short)chorus_load16(b + 6 * stride), (short)chorus_load16(b + 7 * stride));
        return _mm256_cvtph_ps(h);
    }
    uint16_t h[8] = {0};
    for (int j = 0; j < count; j++) h[j] = chorus_load16(b + j * stride);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

// UNPACK(b) sets `__m256i v` (signed weights for SIGNED, else unsigned) for the block at b. Offset types
// (Q4_0, Q5_0) keep their weights unsigned and take 2^SHIFT · Σx off each block's integer sum (one madd of the
// activation's half-block sums per row and a shift), which saves the sign trick. NARROW (4-bit weights) reduces
// the maddubs pairs in 16 bits (chorus_sum8_i16), without a madd by ones.
#define LEGACY_DOT_AVX2(NAME, BYTES, UNPACK, SIGNED, NARROW, SHIFT, HAS_MIN)                           \
    CHORUS_AVX2 static inline __attribute__((always_inline)) void NAME##_tile(                          \
        int blocks, const void *weights, const void *act, size_t act_stride, const int rows, float *out, \
        size_t out_stride) {                                                                            \
        chorus_q8_row x[CHORUS_QUANT_ROWS];                                                                            \
        __m256 acc[CHORUS_QUANT_ROWS];                                                                                 \
        for (int r = 0; r < rows; r++) {                                                                \
            x[r] = chorus_q8_view((const uint8_t *)act + (size_t)r * act_stride, blocks);               \
            acc[r] = _mm256_setzero_ps();                                                               \
        }                                                                                               \
        const uint8_t *base = weights;                                                                  \
        for (int k0 = 0; k0 < blocks; k0 += 8) {                                                        \
            int count = blocks - k0 < 8 ? blocks - k0 : 8;                                              \
            const uint8_t *b0 = base + (size_t)k0 * BYTES;                                              \
            chorus_prefetch(b0, 8 * BYTES);                                                             \
            __m256i w[8], wa[8];                                                                        \
            for (int j = 0; j < 8; j++) {                                                               \
                __m256i v = _mm256_setzero_si256();                                                     \
                if (j < count) {                                                                        \
                    const uint8_t *b = b0 + j * BYTES;                                                  \
                    UNPACK                                                                              \
                }                                                                                       \
                w[j] = v;                                                                               \
                wa[j] = SIGNED ? _mm256_sign_epi8(v, v) : v;                                            \
            }                                                                                           \
            __m256 dw = halves8(b0, BYTES, count);                                                      \
            __m256 mw = HAS_MIN ? halves8(b0 + 2, BYTES, count) : _mm256_setzero_ps();                 \
            __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); \
            for (int r = 0; r < rows; r++) {                                                            \
                __m256i p[8];                                                                           \
                for (int j = 0; j < 8; j++) {                                                           \
                    __m256i xq = j < count ? _mm256_loadu_si256((const __m256i *)(x[r].q + 32 * (k0 + j))) \
                                           : _mm256_setzero_si256();                                    \
                    if (SIGNED) xq = _mm256_sign_epi8(xq, w[j]);                                        \
                    p[j] = _mm256_maddubs_epi16(wa[j], xq);                                             \
                    if (!NARROW) p[j] = _mm256_madd_epi16(p[j], _mm256_set1_epi16(1));                  \
                }                                                                                       \
                __m256i isum = NARROW ? chorus_sum8_i16(p) : chorus_sum8(p);                            \
                if (SHIFT) {                                                                            \
                    __m256i xs = _mm256_madd_epi16(                                                     \
                        _mm256_loadu_si256((const __m256i *)(x[r].s16 + 2 * k0)), _mm256_set1_epi16(1)); \
                    isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(xs, SHIFT));                        \
                }                                                                                       \
                __m256 sums = _mm256_cvtepi32_ps(isum);                                                 \
                __m256 xd = _mm256_maskload_ps(x[r].d + k0, lanes);                                     \
                acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(sums, dw), xd, acc[r]);                          \
                if (HAS_MIN) acc[r] = _mm256_fmadd_ps(mw, _mm256_maskload_ps(x[r].ds + k0, lanes), acc[r]); \
            }                                                                                           \
        }                                                                                               \
        for (int r = 0; r < rows; r++) out[r * out_stride] = chorus_hsum_ps(acc[r]);                    \
    }                                                                                                   \
    CHORUS_QUANT_TILES(NAME)

LEGACY_DOT_AVX2(chorus_dot_q4_0_avx2, 18, v = nibbles32(b + 2);, 0, 1, 3, 0)
LEGACY_DOT_AVX2(chorus_dot_q4_1_avx2, 20, v = nibbles32(b + 4);, 0, 1, 0, 1)
LEGACY_DOT_AVX2(chorus_dot_q5_0_avx2, 22, v = _mm256_or_si256(nibbles32(b + 6), fifth_bits(chorus_load32(b + 2)));,
                0, 0, 4, 0)
LEGACY_DOT_AVX2(chorus_dot_q5_1_avx2, 24, v = _mm256_or_si256(nibbles32(b + 8), fifth_bits(chorus_load32(b + 4)));,
                0, 0, 0, 1)
LEGACY_DOT_AVX2(chorus_dot_q8_0_avx2, 34, v = _mm256_loadu_si256((const __m256i *)(b + 2));, 1, 0, 0, 0)

#else
CHORUS_AVX2_FALLBACK(q4_0)
CHORUS_AVX2_FALLBACK(q4_1)
CHORUS_AVX2_FALLBACK(q5_0)
CHORUS_AVX2_FALLBACK(q5_1)
CHORUS_AVX2_FALLBACK(q8_0)
#endif
