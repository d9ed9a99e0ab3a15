/* pool.h: a small fixed thread pool; the ops split their loops over it with
 * cg_pool_run. The calling thread takes part, so a pool of n threads starts n-1 workers. */
#ifndef CG_NN_POOL_H
#define CG_NN_POOL_H

typedef struct cg_pool cg_pool;

/* Runs fn(ctx, i, n) for i in [0, n) on the pool's threads; returns when all are done.
 * Each thread gets whole task indices; fn may use `i` as its slot in per-thread scratch
 * via cg_pool_thread_index. A NULL pool runs everything on the caller. */
typedef void (*cg_task_fn)(void *ctx, int i, int n);

cg_pool *cg_pool_create(int threads); /* NULL on failure */
void cg_pool_free(cg_pool *p);
int cg_pool_threads(const cg_pool *p); /* 1 for NULL */
void cg_pool_run(cg_pool *p, cg_task_fn fn, void *ctx, int n);
/* Index in [0, threads) of the calling thread inside a task (0 outside). */
int cg_pool_thread_index(void);
/* Number of online CPUs (at least 1). */
int cg_cpu_count(void);

#endif
