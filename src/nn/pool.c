/* pool.c: the thread pool behind cg_pool_run. Workers sleep on a condition variable and
 * grab task indices from an atomic counter, so uneven tasks balance themselves.
 *
 * Between runs, a worker (and the caller waiting for the workers) first spins for a few
 * tens of microseconds before sleeping: the light generator makes about 60 runs of about
 * a millisecond each per 256x256 image, and waking a sleeping thread costs tens of
 * microseconds on a VM, each time. */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct cg_pool {
    int nthreads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_ulong generation; /* bumped for every cg_pool_run */
    atomic_int busy;         /* workers still inside the current run */
    atomic_int quit;
    cg_task_fn fn;
    void *ctx;
    int n;
    atomic_int next;
};

static _Thread_local int thread_index;

/* Spins of pause (about 40 ns each on x86) before sleeping: about 50 us. */
enum { SPINS = 1200 };

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

int cg_pool_thread_index(void) { return thread_index; }

int cg_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

static void drain(cg_pool *p) {
    for (;;) {
        int i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n) break;
        p->fn(p->ctx, i, p->n);
    }
}

typedef struct { cg_pool *p; int index; } worker_arg;

static void *worker(void *arg) {
    worker_arg *wa = arg;
    cg_pool *p = wa->p;
    thread_index = wa->index;
    free(wa);
    unsigned long seen = 0;
    for (;;) {
        for (int i = 0; i < SPINS && !atomic_load(&p->quit) && atomic_load(&p->generation) == seen; i++) relax();
        pthread_mutex_lock(&p->mu);
        while (!atomic_load(&p->quit) && atomic_load(&p->generation) == seen) pthread_cond_wait(&p->wake, &p->mu);
        pthread_mutex_unlock(&p->mu);
        if (atomic_load(&p->quit)) break;
        /* the run's fn, ctx and n were written before the generation was bumped */
        seen = atomic_load(&p->generation);
        drain(p);
        if (atomic_fetch_sub(&p->busy, 1) == 1) {
            /* under the mutex, so that the caller cannot miss it between its check and wait */
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

cg_pool *cg_pool_create(int threads) {
    if (threads <= 0) threads = cg_cpu_count();
    cg_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->nthreads = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (threads > 1) {
        p->threads = calloc((size_t)threads - 1, sizeof *p->threads);
        if (!p->threads) { cg_pool_free(p); return NULL; }
        for (int t = 1; t < threads; t++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa) break;
            wa->p = p;
            wa->index = t;
            if (pthread_create(&p->threads[t - 1], NULL, worker, wa) != 0) { free(wa); break; }
            p->nthreads++;
        }
    }
    return p;
}

void cg_pool_free(cg_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int t = 0; t < p->nthreads - 1; t++) pthread_join(p->threads[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int cg_pool_threads(const cg_pool *p) { return p ? p->nthreads : 1; }

void cg_pool_run(cg_pool *p, cg_task_fn fn, void *ctx, int n) {
    if (n <= 0) return;
    if (!p || p->nthreads == 1 || n == 1) {
        for (int i = 0; i < n; i++) fn(ctx, i, n);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->busy, p->nthreads - 1);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p);
    for (int i = 0; i < SPINS && atomic_load(&p->busy) > 0; i++) relax();
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->busy) > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
