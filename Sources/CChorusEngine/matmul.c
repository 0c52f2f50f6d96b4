// The multi-row matrix product: every weight row is read once for all rows (a few calls of its dot kernel).
#include <stdatomic.h>

#include "internal.h"

typedef struct {
    const chorus_type_traits *traits;
    chorus_dot_fn dot;
    const uint8_t *weights;
    size_t row_bytes;
    int blocks;
    const uint8_t *act;
    size_t act_stride;
    int rows, out_dim, in_dim;
    /// Whether any activation row has outliers (checked once per product, not per output row).
    int has_outliers;
    float *y;
    size_t y_stride;
    /// The next chunk of output rows to take: threads take chunks until none are left, so a thread that
    /// starts late (woken from sleep, descheduled) does less, and nobody waits for it.
    _Atomic int next_chunk;
    int chunk_rows;
} matmul_job;

/// The outliers of activation row r (see chorus_engine.h): count, positions, values.
static int row_outliers(const matmul_job *j, int r, const int32_t **positions, const float **values) {
    if (j->traits->activation != CHORUS_ACT_Q8) return 0;
    const uint8_t *row = j->act + (size_t)r * j->act_stride;
    int nb = j->in_dim / 32;
    const int32_t *table = (const int32_t *)(row + (size_t)nb * 44);
    *positions = table + 1;
    *values = (const float *)(table + 1 + CHORUS_Q8_OUTLIERS);
    return table[0];
}

static void run_rows(const matmul_job *j, int begin, int end) {
    for (int o = begin; o < end; o++) {
        const uint8_t *w = j->weights + (size_t)o * j->row_bytes;
        // Rows per dot call. The blocks-of-32 kernels unpack each group of eight weight blocks once for up to
        // CHORUS_QUANT_ROWS rows (their unpacking is costly, their accumulators live in memory). The k-quant and
        // float kernels keep their accumulators in registers, at most CHORUS_TILE_ROWS rows a call: the rows are
        // split into the fewest such calls, of sizes differing by at most one (5 → 5, 8 → 4 + 4, 16 → 6 + 5 + 5),
        // so a tree of five (one token and four drafts) takes one pass over each weight row, and no call is left
        // with one row that pays a whole unpacking of the weights for itself.
        if (j->traits->activation == CHORUS_ACT_Q8 && j->traits->block_size == 32) {
            for (int r = 0; r < j->rows; r += CHORUS_QUANT_ROWS) {
                int n = j->rows - r < CHORUS_QUANT_ROWS ? j->rows - r : CHORUS_QUANT_ROWS;
                j->dot(j->blocks, w, j->act + (size_t)r * j->act_stride, j->act_stride, n,
                       j->y + (size_t)r * j->y_stride + o, j->y_stride);
            }
        } else {
            int calls = (j->rows + CHORUS_TILE_ROWS - 1) / CHORUS_TILE_ROWS;
            for (int c = 0, r = 0; c < calls; c++) {
                int n = j->rows / calls + (c < j->rows % calls);
                j->dot(j->blocks, w, j->act + (size_t)r * j->act_stride, j->act_stride, n,
                       j->y + (size_t)r * j->y_stride + o, j->y_stride);
                r += n;
            }
        }
        // Outliers left out of their activation blocks: weight (dequantized) × exact value, in position order.
        for (int r = 0; j->has_outliers && r < j->rows; r++) {
            const int32_t *positions;
            const float *values;
            int count = row_outliers(j, r, &positions, &values);
            for (int i = 0; i < count; i++) {
                int bs = j->traits->block_size, at = positions[i];
                float weight = j->traits->element(w + (size_t)(at / bs) * j->traits->block_bytes, at % bs);
                j->y[(size_t)r * j->y_stride + o] += weight * values[i];
            }
        }
    }
}

static void matmul_part(void *context, int index, int count) {
    (void)index;
    (void)count;
    matmul_job *j = context;
    for (;;) {
        int chunk = atomic_fetch_add_explicit(&j->next_chunk, 1, memory_order_relaxed);
        int begin = chunk * j->chunk_rows;
        if (begin >= j->out_dim) break;
        int end = begin + j->chunk_rows < j->out_dim ? begin + j->chunk_rows : j->out_dim;
        run_rows(j, begin, end);
    }
}

void chorus_matmul(chorus_pool *pool, int isa, uint32_t type, const void *weights, int in_dim, int out_dim,
                   const void *act,
                   int rows, float *y, size_t y_stride) {
    const chorus_type_traits *t = chorus_traits(type);
    if (!t || rows <= 0 || out_dim <= 0) return;
    matmul_job j;
    j.traits = t;
    j.dot = chorus_dot_for(t, isa);
    j.blocks = in_dim / t->block_size;
    j.row_bytes = (size_t)j.blocks * t->block_bytes;
    j.weights = weights;
    j.act = act;
    j.act_stride = t->activation == CHORUS_ACT_Q8 ? chorus_q8_row_bytes(in_dim) : (size_t)in_dim * 4;
    j.rows = rows;
    j.in_dim = in_dim;
    int any = 0;
    for (int r = 0; r < rows && !any; r++) {
        const int32_t *positions;
        const float *values;
        any = row_outliers(&j, r, &positions, &values) > 0;
    }
    j.has_outliers = any;
    j.out_dim = out_dim;
    j.y = y;
    j.y_stride = y_stride;
    atomic_init(&j.next_chunk, 0);
    // Eight chunks per thread (at least 32 rows): enough to rebalance when a thread starts late, few enough that
    // each thread streams long runs of weight rows. With 32-row chunks two threads alternated every ≈ 27 KB of a
    // Q4_K matrix, and each chunk's last prefetches (CHORUS_PREFETCH_BYTES ahead) fetched the other thread's rows:
    // 12–13 GB/s for a 1-row product on two threads here, against 17–19 with eight chunks per thread
    // (docs/benchmarks.md §3).
    int threads = chorus_pool_threads(pool);
    j.chunk_rows = (out_dim + 8 * threads - 1) / (8 * threads);
    if (j.chunk_rows < 32) j.chunk_rows = 32;
    // Small products are not worth waking the workers for.
    if ((size_t)out_dim * in_dim * rows < 65536)
        run_rows(&j, 0, out_dim);
    else
        chorus_pool_run(pool, matmul_part, &j);
}
