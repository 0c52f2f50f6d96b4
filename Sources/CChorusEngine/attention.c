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

#if CHORUS_X86
CHORUS_AVX2 static float dot_avx2(const float *a, const float *b, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float sum = _mm_cvtss_f32(s);
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

CHORUS_AVX2 static void axpy_avx2(float *y, float a, const float *x, int n) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}
#endif

static void axpy_portable(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static void attend(const attention_job *j, int row, int head, float *scores) {
    int hd = j->head_dim, g = head / (j->heads / j->kv_heads);
    const float *q = j->q + (size_t)row * j->q_stride + (size_t)head * hd;
    // Tree mode: the shared prefix, then the allowed new tokens. Batch mode: the row's own cache through
    // its new position (no mask).
    const uint8_t *allowed = j->mask ? j->mask + (size_t)row * (j->tree_offset + j->rows) : NULL;
    const float *keys = j->mask ? j->keys : j->row_keys[row];
    const float *values = j->mask ? j->values : j->row_values[row];
    int prefix = j->mask ? j->prefix : j->lengths[row] + 1;
    int total = j->mask ? j->prefix + j->tree_offset + j->rows : prefix;
    float scale = 1.0f / sqrtf((float)hd);
    int use_avx2 = CHORUS_X86 && j->isa >= 1 && chorus_isa() >= 1;
    // Positions attended, in increasing order.
    int count = 0;
    float maximum = -INFINITY;
    for (int p = 0; p < total; p++) {
        if (p >= prefix && !allowed[p - prefix]) continue;
        const float *k = keys + (size_t)p * j->kv_stride + (size_t)g * hd;
#if CHORUS_X86
        float s = (use_avx2 ? dot_avx2(q, k, hd) : dot_portable(q, k, hd)) * scale;
#else
        float s = dot_portable(q, k, hd) * scale;
#endif
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
    for (int p = 0; p < total; p++) {
        if (p >= prefix && !allowed[p - prefix]) continue;
        const float *v = values + (size_t)p * j->kv_stride + (size_t)g * hd;
        float weight = scores[t++] * inverse;
#if CHORUS_X86
        if (use_avx2) axpy_avx2(out, weight, v, hd); else axpy_portable(out, weight, v, hd);
#else
        axpy_portable(out, weight, v, hd);
#endif
    }
}

static void attention_part(void *context, int index, int count) {
    (void)count;
    attention_job *j = context;
    int items = j->rows * j->heads;
    float *scores = j->scratch + (size_t)index * j->scratch_stride;
    for (;;) {
        int item = atomic_fetch_add_explicit(&j->next_item, 1, memory_order_relaxed);
        if (item >= items) break;
        attend(j, item / j->heads, item % j->heads, scores);
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
