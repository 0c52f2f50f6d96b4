// A small thread pool for the engine: persistent workers that spin briefly on a generation
// counter (a decode step dispatches a few hundred jobs, each tens of microseconds long) and
// then sleep on a condition variable.
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

struct chorus_pool {
    int threads;
    pthread_t *workers;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    /// Held for a whole run: two callers (sessions of one model on different threads) take turns.
    pthread_mutex_t run;
    _Atomic unsigned generation;
    _Atomic int pending;
    _Atomic int stop;
    void (*job)(void *, int, int);
    void *context;
};

typedef struct {
    chorus_pool *pool;
    int index;
} worker_start;

static inline void relax(void) {
#if CHORUS_X86
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *arg) {
    worker_start start = *(worker_start *)arg;
    free(arg);
    chorus_pool *pool = start.pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
            if (atomic_load(&pool->stop)) return NULL;
            // A few hundred microseconds of spinning covers the gaps between the products of a forward pass
            // (norms, attention, sampling); then sleep, so an idle model does not burn a core.
            if (++spins < 50000) {
                relax();
                continue;
            }
            pthread_mutex_lock(&pool->mutex);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
            spins = 0;
        }
        seen = g;
        pool->job(pool->context, start.index, pool->threads);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel);
    }
}

chorus_pool *chorus_pool_create(int threads) {
    if (threads < 1) threads = 1;
    chorus_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->threads = threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_mutex_init(&pool->run, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->workers = calloc((size_t)threads, sizeof(pthread_t));
    for (int i = 1; i < threads; i++) {
        worker_start *s = malloc(sizeof *s);
        s->pool = pool;
        s->index = i;
        if (pthread_create(&pool->workers[i], NULL, worker_main, s) != 0) {
            free(s);
            pool->threads = i;  // run with the workers that did start
            break;
        }
    }
    return pool;
}

void chorus_pool_destroy(chorus_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->threads; i++) pthread_join(pool->workers[i], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_mutex_destroy(&pool->run);
    pthread_cond_destroy(&pool->wake);
    free(pool->workers);
    free(pool);
}

int chorus_pool_threads(const chorus_pool *pool) { return pool ? pool->threads : 1; }

void chorus_pool_run(chorus_pool *pool, void (*job)(void *, int, int), void *context) {
    if (!pool || pool->threads == 1) {
        job(context, 0, 1);
        return;
    }
    pthread_mutex_lock(&pool->run);
    pool->job = job;
    pool->context = context;
    atomic_store_explicit(&pool->pending, pool->threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    job(context, 0, pool->threads);
    // A worker that was descheduled (more runnable threads than cores) must get the core back: spin briefly,
    // then yield.
    for (int spins = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; spins++) {
        if (spins < 4000) relax(); else sched_yield();
    }
    pthread_mutex_unlock(&pool->run);
}
