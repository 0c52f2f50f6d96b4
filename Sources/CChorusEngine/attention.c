// Attention over the KV cache, one (row, head) pair at a time, each on one thread.
#include <stdatomic.h>

#include "internal.h"

typedef struct {
    int isa;
    const float *q;
    int rows, q_stride;
    const float *keys, *values;
    int kv_stride, heads, kv_heads, head_dim, prefix, tree_offset;
    const uint8_t *mask;
    float *out;
    int out_stride;
    float *scratch;
    /// Batch mode (mask NULL): row i reads its own cache, positions 0…lengths[i] inclusive.
    const float *const *row_keys, *const *row_values;
    const int *lengths;
    int scratch_stride;
    /// The next (row, head) item to take (threads take items until none are left).
    _Atomic int next_item;
} attention_job;

static float dot_portable(const float *a, const float *b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_portable(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/// The next position ≥ p that (row, head) attends, or `total`: every prefix position, then the tree nodes the
/// mask allows (batch mode: every position of the row's own cache).
static inline int next_attended(const uint8_t *allowed, int prefix, int total, int p) {
    while (p < total && p >= prefix && !allowed[p - prefix]) p++;
    return p;
}

/// One (row, head): scores, softmax, weighted values. The portable reference of `attend_avx2`.
/// What one (row, head) reads: its query, its kv head's keys and values (column offset applied), and the
/// positions it may attend. Tree mode: the shared prefix, then the new tokens the mask allows. Batch mode: the
/// row's own cache through its new position (no mask).
typedef struct {
    int hd;
    const float *q, *keys, *values;
    const uint8_t *allowed;
    int prefix, total;
} attention_view;

static inline attention_view view_of(const attention_job *j, int row, int head) {
    attention_view v;
    v.hd = j->head_dim;
    size_t g = (size_t)(head / (j->heads / j->kv_heads)) * v.hd;
    v.q = j->q + (size_t)row * j->q_stride + (size_t)head * v.hd;
    v.allowed = j->mask ? j->mask + (size_t)row * (j->tree_offset + j->rows) : NULL;
    v.keys = (j->mask ? j->keys : j->row_keys[row]) + g;
    v.values = (j->mask ? j->values : j->row_values[row]) + g;
    v.prefix = j->mask ? j->prefix : j->lengths[row] + 1;
    v.total = j->mask ? j->prefix + j->tree_offset + j->rows : v.prefix;
    return v;
}

static void attend_portable(const attention_job *j, int row, int head, float *scores) {
    attention_view a = view_of(j, row, head);
    int hd = a.hd, prefix = a.prefix, total = a.total;
    const float *q = a.q, *keys = a.keys, *values = a.values;
    const uint8_t *allowed = a.allowed;
    float scale = 1.0f / sqrtf((float)hd);
    // Positions attended, in increasing order.
    int count = 0;
    float maximum = -INFINITY;
    for (int p = next_attended(allowed, prefix, total, 0); p < total;
         p = next_attended(allowed, prefix, total, p + 1)) {
        const float *k = keys + (size_t)p * j->kv_stride;
        float s = dot_portable(q, k, hd) * scale;
        scores[count++] = s;
        if (s > maximum) maximum = s;
    }
    float sum = 0;
    for (int t = 0; t < count; t++) {
        scores[t] = expf(scores[t] - maximum);
        sum += scores[t];
    }
    float inverse = 1 / sum;
    float *out = j->out + (size_t)row * j->out_stride + (size_t)head * hd;
    for (int i = 0; i < hd; i++) out[i] = 0;
    int t = 0;
    for (int p = next_attended(allowed, prefix, total, 0); p < total;
         p = next_attended(allowed, prefix, total, p + 1)) {
        const float *v = values + (size_t)p * j->kv_stride;
        axpy_portable(out, scores[t++] * inverse, v, hd);
    }
}

#if CHORUS_X86
/// Lanes 0..<n of 8 set (a maskload / maskstore mask).
CHORUS_AVX2 static inline __m256i lanes_below(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// [Σ p[0], …, Σ p[7]]: the lane sums of eight vectors, each ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
/// whatever vector it sits in (the float form of chorus_sum8).
CHORUS_AVX2 static inline __m256 sum8_ps(const __m256 p[8]) {
    __m256 a = _mm256_hadd_ps(p[0], p[1]), b = _mm256_hadd_ps(p[2], p[3]);
    __m256 c = _mm256_hadd_ps(p[4], p[5]), d = _mm256_hadd_ps(p[6], p[7]);
    __m256 e = _mm256_hadd_ps(a, b), f = _mm256_hadd_ps(c, d);
    return _mm256_add_ps(_mm256_permute2f128_ps(e, f, 0x20), _mm256_permute2f128_ps(e, f, 0x31));
}

/// e^x for x ≤ 0, lane by lane, within 2 ulp of expf (0 below −87.3): x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by
/// the degree-7 polynomial of the Cephes library's expf (S. L. Moshier, "Methods and Programs for Mathematical
/// Functions", 1989), then 2^n through the exponent bits.
CHORUS_AVX2 static inline __m256 exp_nonpositive_ps(__m256 x) {
    const __m256 low = _mm256_set1_ps(-87.33654f);
    __m256 underflow = _mm256_cmp_ps(x, low, _CMP_LT_OQ);
    x = _mm256_max_ps(x, low);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(bits)));
}

/// Σ_t w[t] · v_t over `count` value rows (`at[t]` their positions) into `out`, `vecs` (1…8) vectors wide starting
/// at `base` of the head; the last vector takes `tail` lanes. Each lane accumulates in position order.
CHORUS_AVX2 static inline __attribute__((always_inline)) void weighted_values(
    const float *values, size_t stride, int count, const int *at, const float *w, int base, const int vecs, int tail,
    float *out) {
    __m256 o[8];
    __m256i mask = lanes_below(tail);
    _Pragma("clang loop unroll(full)") for (int c = 0; c < vecs; c++) o[c] = _mm256_setzero_ps();
    for (int t = 0; t < count; t++) {
        const float *v = values + (size_t)at[t] * stride + base;
        __m256 weight = _mm256_broadcast_ss(w + t);
        _Pragma("clang loop unroll(full)") for (int c = 0; c < vecs; c++) {
            __m256 x = c < vecs - 1 ? _mm256_loadu_ps(v + 8 * c) : _mm256_maskload_ps(v + 8 * c, mask);
            o[c] = _mm256_fmadd_ps(weight, x, o[c]);
        }
    }
    _Pragma("clang loop unroll(full)") for (int c = 0; c < vecs; c++) {
        if (c < vecs - 1)
            _mm256_storeu_ps(out + base + 8 * c, o[c]);
        else
            _mm256_maskstore_ps(out + base + 8 * c, mask, o[c]);
    }
}

/// One (row, head) with AVX2: the scores of eight positions at a time (eight accumulators, one reduction), the
/// exponentials eight at a time, and the weighted values with the output held in registers. Every score, weight
/// and output lane is computed by the same operations whichever positions share its group, so a token's result
/// does not depend on the tree, chain or batch it is scored in.
CHORUS_AVX2 static void attend_avx2(const attention_job *j, int row, int head, float *scores, int *at) {
    attention_view a = view_of(j, row, head);
    int hd = a.hd, prefix = a.prefix, total = a.total;
    const float *q = a.q, *keys = a.keys, *values = a.values;
    const uint8_t *allowed = a.allowed;
    size_t stride = (size_t)j->kv_stride;
    __m256 scale = _mm256_set1_ps(1.0f / sqrtf((float)hd));
    int full = hd / 8, rest = hd % 8;
    __m256i restMask = lanes_below(rest);
    // Positions attended, in increasing order.
    int count = 0;
    for (int p = next_attended(allowed, prefix, total, 0); p < total; p = next_attended(allowed, prefix, total, p + 1))
        at[count++] = p;
    __m256 maximum = _mm256_set1_ps(-INFINITY);
    for (int t0 = 0; t0 < count; t0 += 8) {
        int n = count - t0 < 8 ? count - t0 : 8;
        const float *k[8];
        for (int i = 0; i < 8; i++) k[i] = keys + (size_t)at[t0 + (i < n ? i : 0)] * stride;
        __m256 acc[8];
        for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
        for (int c = 0; c < full; c++) {
            __m256 qv = _mm256_loadu_ps(q + 8 * c);
            for (int i = 0; i < 8; i++) acc[i] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[i] + 8 * c), acc[i]);
        }
        if (rest) {
            __m256 qv = _mm256_maskload_ps(q + 8 * full, restMask);
            for (int i = 0; i < 8; i++)
                acc[i] = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k[i] + 8 * full, restMask), acc[i]);
        }
        __m256 s = _mm256_mul_ps(sum8_ps(acc), scale);
        _mm256_maskstore_ps(scores + t0, lanes_below(n), s);
        __m256 live = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), s, _mm256_castsi256_ps(lanes_below(n)));
        maximum = _mm256_max_ps(maximum, live);
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(maximum), _mm256_extractf128_ps(maximum, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    __m256 top = _mm256_broadcastss_ps(m4);
    for (int t0 = 0; t0 < count; t0 += 8) {
        __m256i live = lanes_below(count - t0);
        __m256 e = exp_nonpositive_ps(_mm256_sub_ps(_mm256_maskload_ps(scores + t0, live), top));
        _mm256_maskstore_ps(scores + t0, live, e);
    }
    // The normaliser in position order, then the weights.
    float sum = 0;
    for (int t = 0; t < count; t++) sum += scores[t];
    float inverse = 1 / sum;
    for (int t = 0; t < count; t++) scores[t] *= inverse;
    float *out = j->out + (size_t)row * j->out_stride + (size_t)head * hd;
    for (int base = 0; base < hd; base += 64) {
        int width = hd - base < 64 ? hd - base : 64;
        int vecs = (width + 7) / 8, tail = width - 8 * (vecs - 1);
        switch (vecs) {
#define CHORUS_WEIGHTED(V) \
    case V: weighted_values(values, stride, count, at, scores, base, V, tail, out); break;
            CHORUS_WEIGHTED(1)
            CHORUS_WEIGHTED(2)
            CHORUS_WEIGHTED(3)
            CHORUS_WEIGHTED(4)
            CHORUS_WEIGHTED(5)
            CHORUS_WEIGHTED(6)
            CHORUS_WEIGHTED(7)
            default: weighted_values(values, stride, count, at, scores, base, 8, tail, out); break;
#undef CHORUS_WEIGHTED
        }
    }
}
#endif

static void attention_part(void *context, int index, int count) {
    (void)count;
    attention_job *j = context;
    int items = j->rows * j->heads;
    // Each thread's scratch: the scores, then the positions attended.
    float *scores = j->scratch + (size_t)index * 2 * j->scratch_stride;
    int *at = (int *)(scores + j->scratch_stride);
#if CHORUS_X86
    int use_avx2 = j->isa >= 1 && chorus_isa() >= 1;
#endif
    for (;;) {
        int item = atomic_fetch_add_explicit(&j->next_item, 1, memory_order_relaxed);
        if (item >= items) break;
#if CHORUS_X86
        if (use_avx2) {
            attend_avx2(j, item / j->heads, item % j->heads, scores, at);
            continue;
        }
#endif
        attend_portable(j, item / j->heads, item % j->heads, scores);
    }
}

void chorus_attention(chorus_pool *pool, int isa, const float *q, int rows, int q_stride, const float *keys,
                      const float *values, int kv_stride, int heads, int kv_heads, int head_dim, int prefix,
                      int tree_offset, const uint8_t *mask, float *out, int out_stride, float *scratch) {
    attention_job j = {isa, q, rows, q_stride, keys, values, kv_stride, heads, kv_heads, head_dim, prefix, tree_offset,
                       mask, out, out_stride, scratch, NULL, NULL, NULL, prefix + tree_offset + rows, 0};
    // Short contexts are not worth waking the workers for.
    if ((size_t)rows * heads * (prefix + tree_offset + rows) * head_dim < 32768)
        attention_part(&j, 0, 1);
    else
        chorus_pool_run(pool, attention_part, &j);
}

void chorus_attention_batch(chorus_pool *pool, int isa, const float *q, int rows, int q_stride,
                            const float *const *keys, const float *const *values, const int *lengths, int kv_stride,
                            int heads, int kv_heads, int head_dim, float *out, int out_stride, float *scratch,
                            int scratch_stride) {
    attention_job j = {isa, q, rows, q_stride, NULL, NULL, kv_stride, heads, kv_heads, head_dim, 0, 0, NULL, out,
                       out_stride, scratch, keys, values, lengths, scratch_stride, 0};
    size_t work = 0;
    for (int r = 0; r < rows; r++) work += (size_t)heads * (lengths[r] + 1) * head_dim;
    if (work < 32768)
        attention_part(&j, 0, 1);
    else
        chorus_pool_run(pool, attention_part, &j);
}
