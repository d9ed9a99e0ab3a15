/* conv_train.c: the convolutions of training (train_ops.h), forward and backward on a
 * batch, on the inference engine's kernels, and a general strided GEMM on its
 * micro-kernels (gemm_strided, the Gram matrices).
 *
 * Forward: Winograd for 3x3 stride 1, the direct convolution for at most
 * CONV_DIRECT_MAX_COUT outputs, the packed GEMM otherwise; the weights are packed on
 * every call (they change every step), into the caller's workspace.
 *
 * Backward, d = dL/dout:
 * - din: for stride 1 it is the convolution of d with the weights transposed (in <-> out)
 *   and flipped, padded by k - 1 - pad: the same forward path (Winograd for 3x3). For
 *   3x3 stride 2 pad 1 it is the transposed convolution k3 s2 p1 op1 of d with the same
 *   memory read as a deconvolution weight: deconv_s2_forward. Anything else: the columns
 *   W^T d (gemm_strided) scattered back onto the input (col2im). The fast paths write
 *   their output, so they go through a temporary that is then added into din.
 * - dw[co][ci][ky][kx] = sum_p d[co][p] in[ci][p shifted by the tap]. Written with
 *   the input's "phases" (for stride s, the s x s subsampled grids of the zero-padded
 *   input), every tap reads one phase at a constant offset in a pixel space whose rows
 *   are `wq` wide: so the input is packed for the micro-kernel once per phase, and each
 *   of the kh*kw taps multiplies the packed gradient with that packed block read from a
 *   row offset, with no im2col at all (9x less packing for 3x3). When the input has few
 *   channels (a micro-kernel panel would be mostly empty) the columns are im2col's
 *   (ci, ky, kx) instead, packed straight from the input. With at most
 *   CONV_DIRECT_MAX_COUT outputs, dot products along the rows (a GEMM tile would be
 *   mostly empty).
 * - db: sums of d.
 * The transposed convolution's backward is the same pieces with the roles swapped: din is
 * a strided convolution of d, dw the same shifted product with d as the "input".
 *
 * No allocation: everything is carved from the caller's workspace, sized by the
 * *_ws_floats functions for the kernel gemm_arch_get() returns when they are called; the
 * weight packers' temporaries too (pack_*_tmp), in the space that the scratch carved
 * after them takes once packing is done. */
#include "gemm.h"
#include "pool.h"
#include "train_ops.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

/* ---- workspace ---- */

/* Each piece starts on a 64-byte boundary (the micro-kernels load packed B aligned), so
 * each is sized with 16 floats of slack. */
static size_t carved(size_t n) { return n + 16; }

static float *carve(float **ws, size_t n) {
    float *p = (float *)(((uintptr_t)*ws + 63) & ~(uintptr_t)63);
    *ws = p + n;
    return p;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }
static int min_i(int a, int b) { return a < b ? a : b; }

/* ---- small parallel helpers ---- */

/* dst [c][h][dw] columns [x0, x0 + w) += src [c][sh][sw] (its top-left h x w), one
 * channel a task. */
typedef struct {
    float *dst;
    const float *src;
    int h, w, sh, sw, dw, x0;
} add_job;

MULTIVERSION static void add_task(void *ctx, int c, int n) {
    (void)n;
    const add_job *j = ctx;
    for (int y = 0; y < j->h; y++) {
        float *restrict d = j->dst + ((size_t)c * j->h + y) * j->dw + j->x0;
        const float *restrict s = j->src + ((size_t)c * j->sh + y) * j->sw;
        for (int x = 0; x < j->w; x++) d[x] += s[x];
    }
}

static void add_crop(float *dst, const float *src, int c, int h, int w, int sh, int sw, cg_pool *pool) {
    add_job j = {dst, src, h, w, sh, sw, w, 0};
    cg_pool_run(pool, add_task, &j, c);
}

/* dst [c][h][dw] columns [x0, x0 + w) += src [c][h][w]. */
static void add_band(float *dst, const float *src, int c, int h, int dw, int x0, int w, cg_pool *pool) {
    add_job j = {dst, src, h, w, h, w, dw, x0};
    cg_pool_run(pool, add_task, &j, c);
}

/* dst [c][h + 2 pad][w] = columns [x0, x0 + w) of src [c][h][sw] zero-padded by pad on
 * every side (padded coordinates), one channel a task. */
typedef struct {
    float *dst;
    const float *src;
    int h, sw, pad, x0, w;
} band_job;

static void band_task(void *ctx, int c, int n) {
    (void)n;
    const band_job *j = ctx;
    const int ph = j->h + 2 * j->pad;
    for (int y = 0; y < ph; y++) {
        float *d = j->dst + ((size_t)c * ph + y) * j->w;
        const int sy = y - j->pad;
        const float *s = j->src + ((size_t)c * j->h + (sy < 0 ? 0 : sy)) * j->sw;
        for (int x = 0; x < j->w; x++) {
            const int sx = j->x0 + x - j->pad;
            d[x] = sy >= 0 && sy < j->h && sx >= 0 && sx < j->sw ? s[sx] : 0.f;
        }
    }
}

/* db[co] += sum of dout[s][co][:] over the batch, in double. */
typedef struct {
    float *db;
    const float *dout;
    int n, c;
    size_t hw;
} db_job;

static void db_task(void *ctx, int co, int n) {
    (void)n;
    const db_job *j = ctx;
    double acc = 0;
    for (int s = 0; s < j->n; s++) {
        const float *p = j->dout + ((size_t)s * j->c + co) * j->hw;
        for (size_t i = 0; i < j->hw; i++) acc += p[i];
    }
    j->db[co] += (float)acc;
}

static void db_accumulate(float *db, const float *dout, int n, int c, size_t hw, cg_pool *pool) {
    db_job j = {db, dout, n, c, hw};
    cg_pool_run(pool, db_task, &j, c);
}

/* ---- gemm_strided: GotoBLAS blocking on the micro-kernels ---- */

#define GS_KC 256    /* depth per packed block: a KC x NR panel of B (32 KB) stays in L1 */
#define GS_NC 384    /* columns per block, a multiple of every NR */
#define GS_MC 128    /* rows per packed block of A (rounded down to a multiple of MR) */
#define GS_SPLIT 65536 /* floats of each thread's partial C when the depth is split */

/* A(i, k) = alpha * (p[i rs + k cs] (+ p2[i rs2 + k cs2])): the second term lets
 * gram_backward multiply by (dg + dg^T) / (c hw) without a temporary. */
typedef struct {
    const float *p, *p2;
    size_t rs, cs, rs2, cs2;
    float alpha;
} gs_a;

typedef struct {
    const float *p;
    size_t rs, cs;
} gs_b;

typedef struct {
    float *c;
    size_t ldc;
    gs_a a;
    gs_b b;
    int m, n, k;
    int accumulate;
    const gemm_arch *arch;
    int mc, mb, nb;   /* rows per block, row and column block counts */
    int split;        /* depth split: tasks are depth ranges into per-thread partials */
    int ksteps;       /* depth per split task */
    float *ws;        /* per thread: abuf, bbuf, partial */
} gs_job;

static size_t gs_abuf(void) { return (size_t)GS_MC * GS_KC; }
static size_t gs_bbuf(void) { return (size_t)GS_KC * GS_NC; }
static size_t gs_per_thread(void) { return gs_abuf() + gs_bbuf() + GS_SPLIT + 16; }

size_t gemm_ws_floats(int threads) { return (size_t)(threads < 1 ? 1 : threads) * gs_per_thread() + 16; }

/* Rows [i0, i0 + mc) x depth [k0, k0 + kc) of A as MR-row panels [kc][mr], zero past mc. */
static void gs_pack_a(float *dst, const gs_a *A, int i0, int mc, int k0, int kc, int mr) {
    for (int p = 0; p * mr < mc; p++) {
        float *panel = dst + (size_t)p * kc * mr;
        const int rows = min_i(mr, mc - p * mr);
        if (A->cs <= A->rs) { /* rows run along k: read each row in order */
            for (int r = 0; r < rows; r++) {
                const float *s = A->p + (size_t)(i0 + p * mr + r) * A->rs + (size_t)k0 * A->cs;
                const float *s2 = A->p2 ? A->p2 + (size_t)(i0 + p * mr + r) * A->rs2 + (size_t)k0 * A->cs2 : NULL;
                for (int kk = 0; kk < kc; kk++) {
                    float v = s[(size_t)kk * A->cs];
                    if (s2) v += s2[(size_t)kk * A->cs2];
                    panel[(size_t)kk * mr + r] = A->alpha * v;
                }
            }
        } else { /* columns run along i: read across the rows */
            for (int kk = 0; kk < kc; kk++) {
                const float *s = A->p + (size_t)(i0 + p * mr) * A->rs + (size_t)(k0 + kk) * A->cs;
                const float *s2 = A->p2 ? A->p2 + (size_t)(i0 + p * mr) * A->rs2 + (size_t)(k0 + kk) * A->cs2 : NULL;
                for (int r = 0; r < rows; r++) {
                    float v = s[(size_t)r * A->rs];
                    if (s2) v += s2[(size_t)r * A->rs2];
                    panel[(size_t)kk * mr + r] = A->alpha * v;
                }
            }
        }
        for (int r = rows; r < mr; r++)
            for (int kk = 0; kk < kc; kk++) panel[(size_t)kk * mr + r] = 0.f;
    }
}

/* Depth [k0, k0 + kc) x columns [j0, j0 + nc) of B as NR-column panels [kc][nr]. */
static void gs_pack_b(float *dst, const gs_b *B, int k0, int kc, int j0, int nc, int nr) {
    for (int q = 0; q * nr < nc; q++) {
        float *panel = dst + (size_t)q * kc * nr;
        const int cols = min_i(nr, nc - q * nr);
        const float *base = B->p + (size_t)k0 * B->rs + (size_t)(j0 + q * nr) * B->cs;
        if (B->cs == 1) {
            for (int kk = 0; kk < kc; kk++) {
                memcpy(panel + (size_t)kk * nr, base + (size_t)kk * B->rs, (size_t)cols * sizeof(float));
                for (int t = cols; t < nr; t++) panel[(size_t)kk * nr + t] = 0.f;
            }
        } else if (B->cs <= B->rs) {
            for (int kk = 0; kk < kc; kk++)
                for (int t = 0; t < nr; t++)
                    panel[(size_t)kk * nr + t] = t < cols ? base[(size_t)kk * B->rs + (size_t)t * B->cs] : 0.f;
        } else { /* columns run along k: read each column in order */
            for (int t = 0; t < nr; t++) {
                const float *s = base + (size_t)t * B->cs;
                for (int kk = 0; kk < kc; kk++) panel[(size_t)kk * nr + t] = t < cols ? s[(size_t)kk * B->rs] : 0.f;
            }
        }
    }
}

/* One tile through a full register tile's shape when it is an edge (as conv.c does). */
static void gs_tile(const gemm_arch *arch, int kc, const float *a, const float *b, float *c, size_t ldc,
                    const float *bias, int rows, int cols) {
    if (rows == arch->mr && cols == arch->nr) {
        arch->kernel(kc, a, b, c, ldc, bias);
        return;
    }
    float tile[GEMM_MR_MAX * GEMM_NR_MAX];
    if (!bias)
        for (int r = 0; r < rows; r++) memcpy(tile + r * arch->nr, c + (size_t)r * ldc, (size_t)cols * sizeof(float));
    arch->kernel(kc, a, b, tile, (size_t)arch->nr, bias);
    for (int r = 0; r < rows; r++) memcpy(c + (size_t)r * ldc, tile + r * arch->nr, (size_t)cols * sizeof(float));
}

/* C block [i0, i0 + mc) x [j0, j0 + nc) over depth [k0, k1): from zero when `zero`, else
 * added to what C holds. */
static void gs_block(const gs_job *j, float *c, size_t ldc, int i0, int mc, int j0, int nc, int k0, int k1,
                     int zero, float *abuf, float *bbuf) {
    static const float zeros[GEMM_MR_MAX];
    const gemm_arch *arch = j->arch;
    const int mr = arch->mr, nr = arch->nr;
    for (int kb = k0; kb < k1; kb += GS_KC) {
        const int kc = min_i(GS_KC, k1 - kb);
        gs_pack_b(bbuf, &j->b, kb, kc, j0, nc, nr);
        gs_pack_a(abuf, &j->a, i0, mc, kb, kc, mr);
        const float *bias = zero && kb == k0 ? zeros : NULL;
        for (int q = 0; q * nr < nc; q++)
            for (int p = 0; p * mr < mc; p++)
                gs_tile(arch, kc, abuf + (size_t)p * kc * mr, bbuf + (size_t)q * kc * nr,
                        c + (size_t)(i0 + p * mr) * ldc + j0 + q * nr, ldc, bias, min_i(mr, mc - p * mr),
                        min_i(nr, nc - q * nr));
    }
}

static void gs_task(void *ctx, int task, int ntasks) {
    (void)ntasks;
    const gs_job *j = ctx;
    float *mine = j->ws + (size_t)cg_pool_thread_index() * gs_per_thread();
    float *abuf = mine, *bbuf = mine + gs_abuf(), *part = bbuf + gs_bbuf();
    if (j->split) { /* depth range [k0, k1) of the whole C, into this thread's partial */
        const int k0 = task * j->ksteps, k1 = min_i(j->k, k0 + j->ksteps);
        for (int i0 = 0; i0 < j->m; i0 += j->mc)
            for (int j0 = 0; j0 < j->n; j0 += GS_NC)
                gs_block(j, part, (size_t)j->n, i0, min_i(j->mc, j->m - i0), j0, min_i(GS_NC, j->n - j0), k0, k1, 0,
                         abuf, bbuf);
        return;
    }
    const int ib = task % j->mb, jb = task / j->mb;
    const int i0 = ib * j->mc, j0 = jb * GS_NC;
    gs_block(j, j->c, j->ldc, i0, min_i(j->mc, j->m - i0), j0, min_i(GS_NC, j->n - j0), 0, j->k, !j->accumulate,
             abuf, bbuf);
}

static void gs_run(float *c, size_t ldc, const gs_a *a, const gs_b *b, int m, int n, int k, int accumulate,
                   float *ws, cg_pool *pool) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate)
            for (int i = 0; i < m; i++) memset(c + (size_t)i * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
    gs_job j;
    j.c = c, j.ldc = ldc, j.a = *a, j.b = *b, j.m = m, j.n = n, j.k = k, j.accumulate = accumulate;
    j.arch = gemm_arch_get();
    j.mc = GS_MC / j.arch->mr * j.arch->mr;
    j.mb = (m + j.mc - 1) / j.mc, j.nb = (n + GS_NC - 1) / GS_NC;
    j.ws = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    const int threads = cg_pool_threads(pool);
    const int tiles = j.mb * j.nb, kblocks = (k + GS_KC - 1) / GS_KC;
    /* A small C with a long depth (the first layers' weight gradients, the Gram matrices of
     * small maps) has fewer blocks than threads: split the depth, each thread summing its
     * share into its own partial, and add the partials up. */
    j.split = threads > 1 && tiles < threads && (size_t)m * n <= GS_SPLIT && kblocks >= 2;
    if (!j.split) {
        cg_pool_run(pool, gs_task, &j, tiles);
        return;
    }
    const int ntasks = min_i(kblocks, 4 * threads);
    j.ksteps = (kblocks + ntasks - 1) / ntasks * GS_KC;
    for (int t = 0; t < threads; t++)
        memset(j.ws + (size_t)t * gs_per_thread() + gs_abuf() + gs_bbuf(), 0, (size_t)m * n * sizeof(float));
    cg_pool_run(pool, gs_task, &j, (k + j.ksteps - 1) / j.ksteps);
    for (int i = 0; i < m; i++) {
        float *row = c + (size_t)i * ldc;
        if (!accumulate) memset(row, 0, (size_t)n * sizeof(float));
        for (int t = 0; t < threads; t++) {
            const float *part = j.ws + (size_t)t * gs_per_thread() + gs_abuf() + gs_bbuf() + (size_t)i * n;
            for (int x = 0; x < n; x++) row[x] += part[x];
        }
    }
}

void gemm_strided(float *c, size_t ldc, const float *a, size_t a_rs, size_t a_cs, const float *b, size_t b_rs,
                  size_t b_cs, int m, int n, int k, int accumulate, float *ws, cg_pool *pool) {
    gs_a A = {a, NULL, a_rs, a_cs, 0, 0, 1.f};
    gs_b B = {b, b_rs, b_cs};
    gs_run(c, ldc, &A, &B, m, n, k, accumulate, ws, pool);
}

/* ---- Gram matrices ---- */

void gram_forward(float *g, const float *x, int c, int hw, float *ws, cg_pool *pool) {
    gs_a A = {x, NULL, (size_t)hw, 1, 0, 0, (float)(1.0 / ((double)c * hw))};
    gs_b B = {x, 1, (size_t)hw};
    gs_run(g, (size_t)c, &A, &B, c, c, hw, 0, ws, pool);
}

void gram_backward(float *dx, const float *dg, const float *x, int c, int hw, float *ws, cg_pool *pool) {
    gs_a A = {dg, dg, (size_t)c, 1, 1, (size_t)c, (float)(1.0 / ((double)c * hw))};
    gs_b B = {x, (size_t)hw, 1};
    gs_run(dx, (size_t)hw, &A, &B, c, hw, c, 1, ws, pool);
}

/* ---- col2im: the transpose of im2col, for the general backward and deconvolution ---- */

/* cols [(c, ky, kx)][p] for grid pixels p of rows [gy0, gy0 + rows) of a gh x gw grid,
 * each added onto dst [c][H][W] at (gy s - pad + ky, gx s - pad + kx) when inside. */
typedef struct {
    float *dst;
    const float *cols;
    int H, W, kh, kw, s, pad, gw, gy0, rows;
} col2im_job;

static void col2im_task(void *ctx, int c, int n) {
    (void)n;
    const col2im_job *j = ctx;
    const size_t np = (size_t)j->rows * j->gw;
    for (int ky = 0; ky < j->kh; ky++)
        for (int kx = 0; kx < j->kw; kx++) {
            const float *col = j->cols + (((size_t)c * j->kh + ky) * j->kw + kx) * np;
            for (int r = 0; r < j->rows; r++) {
                const int iy = (j->gy0 + r) * j->s - j->pad + ky;
                if (iy < 0 || iy >= j->H) continue;
                float *drow = j->dst + ((size_t)c * j->H + iy) * j->W;
                for (int x = 0; x < j->gw; x++) {
                    const int ix = x * j->s - j->pad + kx;
                    if (ix >= 0 && ix < j->W) drow[ix] += col[(size_t)r * j->gw + x];
                }
            }
        }
}

#define COLS_CAP (1 << 20) /* floats of columns per chunk */

static int cols_rows(int kdepth, int gh, int gw) {
    size_t per_row = (size_t)kdepth * gw;
    int r = per_row ? (int)(COLS_CAP / per_row) : gh;
    return r < 1 ? 1 : r > gh ? gh : r;
}

static size_t col2im_ws(int kdepth, int gh, int gw, int threads) {
    return carved((size_t)kdepth * cols_rows(kdepth, gh, gw) * gw) + carved(gemm_ws_floats(threads));
}

/* dst [C][H][W] += col2im(W^T src): w is [m][C kh kw] (m = src's channels), src [m][gh][gw]. */
static void col2im_product(float *dst, const float *src, const float *w, int m, int C, int H, int W, int kh, int kw,
                           int s, int pad, int gh, int gw, float *ws, cg_pool *pool) {
    const int kd = C * kh * kw, R = cols_rows(kd, gh, gw);
    float *cols = carve(&ws, (size_t)kd * R * gw), *gws = carve(&ws, gemm_ws_floats(cg_pool_threads(pool)));
    for (int y0 = 0; y0 < gh; y0 += R) {
        const int rows = min_i(R, gh - y0), np = rows * gw;
        gemm_strided(cols, (size_t)np, w, 1, (size_t)kd, src + (size_t)y0 * gw, (size_t)gh * gw, 1, kd, np, m, 0,
                     gws, pool);
        col2im_job j = {dst, cols, H, W, kh, kw, s, pad, gw, y0, rows};
        cg_pool_run(pool, col2im_task, &j, C);
    }
}

/* ---- the forward paths ---- */

typedef enum { PATH_DIRECT, PATH_WINO, PATH_GEMM } fwd_path;

static fwd_path choose_fwd(const conv_dims *d) {
    if (d->cout <= CONV_DIRECT_MAX_COUT && d->stride == 1) return PATH_DIRECT;
    if (d->kh == 3 && d->kw == 3 && d->stride == 1 && winograd_supported(gemm_arch_get())) return PATH_WINO;
    return PATH_GEMM;
}

typedef struct {
    fwd_path path;
    conv_dims d;
    const float *w;     /* direct: as stored */
    packed_weights pw;  /* GEMM */
    winograd_weights ww;
    float *scratch;     /* GEMM or Winograd scratch */
    float *padded;      /* direct with padding: the zero-padded input */
} fwd_plan;

static size_t gemm_fwd_ws(const conv_dims *d, int threads) {
    return carved(packed_weights_floats(d->cout, d->cin * d->kh * d->kw)) + carved(conv_scratch_floats(threads));
}

static size_t fwd_ws(const conv_dims *d, int threads) {
    switch (choose_fwd(d)) {
    case PATH_DIRECT:
        return d->pad ? carved((size_t)d->cin * (d->h + 2 * d->pad) * (d->w + 2 * d->pad)) : 0;
    case PATH_WINO: /* or the GEMM's, should packing fail */
        return max_sz(carved(winograd_weights_floats(d->cout, d->cin)) +
                          max_sz(carved(winograd_scratch_floats(threads, d->cin, d->cout)),
                                 carved(winograd_pack_tmp_floats(d->cout, d->cin))),
                      gemm_fwd_ws(d, threads));
    default:
        return gemm_fwd_ws(d, threads);
    }
}

/* Packs w for d's path, carving what it needs from *ws. */
static void fwd_prepare(fwd_plan *f, const float *w, const conv_dims *d, float **ws, int threads) {
    f->d = *d;
    f->w = w;
    f->path = choose_fwd(d);
    f->padded = NULL;
    f->scratch = NULL;
    if (f->path == PATH_DIRECT) {
        if (d->pad) f->padded = carve(ws, (size_t)d->cin * (d->h + 2 * d->pad) * (d->w + 2 * d->pad));
        return;
    }
    if (f->path == PATH_WINO) {
        float *start = *ws, *buf = carve(ws, winograd_weights_floats(d->cout, d->cin)), *tmp_at = *ws;
        float *tmp = carve(&tmp_at, winograd_pack_tmp_floats(d->cout, d->cin)); /* then the scratch's */
        if (pack_winograd_weights_tmp(&f->ww, buf, w, d->cout, d->cin, gemm_arch_get(), tmp) == 0) {
            f->scratch = carve(ws, winograd_scratch_floats(threads, d->cin, d->cout));
            return;
        }
        *ws = start; /* out of memory inside the packer: the GEMM needs none */
        f->path = PATH_GEMM;
    }
    const int k = d->cin * d->kh * d->kw;
    pack_weights(&f->pw, carve(ws, packed_weights_floats(d->cout, k)), w, d->cout, k);
    f->scratch = carve(ws, conv_scratch_floats(threads));
}

/* Zero-pads one sample for the direct convolution, a channel a task. */
typedef struct {
    float *dst;
    const float *src;
    int h, w, pad;
} pad_job;

static void pad_task(void *ctx, int c, int n) {
    (void)n;
    const pad_job *j = ctx;
    const int pw = j->w + 2 * j->pad, ph = j->h + 2 * j->pad;
    float *d = j->dst + (size_t)c * ph * pw;
    memset(d, 0, (size_t)ph * pw * sizeof *d);
    for (int y = 0; y < j->h; y++)
        memcpy(d + (size_t)(y + j->pad) * pw + j->pad, j->src + ((size_t)c * j->h + y) * j->w, (size_t)j->w * sizeof *d);
}

static void fwd_run(const fwd_plan *f, float *out, const float *in, const float *b, cg_pool *pool) {
    const conv_dims *d = &f->d;
    switch (f->path) {
    case PATH_DIRECT:
        if (f->padded) {
            pad_job pj = {f->padded, in, d->h, d->w, d->pad};
            cg_pool_run(pool, pad_task, &pj, d->cin);
            conv_dims dp = {d->cin, d->h + 2 * d->pad, d->w + 2 * d->pad, d->cout, d->kh, d->kw, 1, 0};
            conv2d_direct_forward(out, f->padded, f->w, b, &dp, pool);
        } else {
            conv2d_direct_forward(out, in, f->w, b, d, pool);
        }
        break;
    case PATH_WINO:
        conv3x3_winograd_forward(out, in, &f->ww, b, d, f->scratch, pool);
        break;
    default:
        conv2d_forward(out, in, &f->pw, b, d, f->scratch, pool);
    }
}

/* ---- weight gradients ---- */

/* dw [M][N kh kw] += sum over the batch and the grid of g [M][oh][ow] times the taps of
 * x [N][H][W] (the convolution x -> g with kh x kw, stride s, zero padding pad; its output
 * grid is oh x ow). For a convolution g is dout and x the input; for a transposed one,
 * g is its input and x its dout. */
typedef struct {
    int M, N, H, W, kh, kw, s, pad, oh, ow;
} wgeom;

enum { DW_DIRECT, DW_SHIFT, DW_IM2COL, DW_WINO };
#ifndef DW_KC
#define DW_KC 256   /* depth (pixels) per micro-kernel call: a KC x NR block of B in L1 */
#endif
#define DW_PIX 4096 /* pixels per chunk: bounds the packed blocks (a few MB) */
#define WD_TILES 128 /* Winograd: tiles per chunk (depth of its products) */
#define DW_PACK_PARTS 4 /* row ranges each B panel is packed in, so that one panel is not one task */
#define DW_DIRECT_LANES 16384 /* floats of accumulators a direct task keeps on its stack */

typedef struct {
    int mode, mr, nr;
    int wq;       /* row pitch of the chunk's pixel space */
    int rows;     /* grid rows per chunk */
    int dy, dx;   /* largest tap offset in phase rows and columns (shift mode) */
    int groups;   /* packed B blocks: the s x s phases (shift) or 1 (im2col) */
    int ncols;    /* B columns per group: N (shift) or N kh kw (im2col) */
    int npanels;  /* ceil(ncols / nr) */
    int taps;     /* products per group column: kh kw (shift) or 1 (im2col) */
    int cpan;     /* ceil(M / mr) */
    size_t kp;    /* pixels per full chunk: rows * wq */
    size_t brows; /* B rows per panel: kp plus the largest tap offset */
    int tw;       /* Winograd: 4x4 tiles per grid row (its chunks are `rows` tile rows) */
    size_t a_fl, b_fl, c_fl;
} dw_plan;

static void dw_make_plan(dw_plan *p, const wgeom *g) {
    const gemm_arch *arch = gemm_arch_get();
    memset(p, 0, sizeof *p);
    p->mr = arch->mr, p->nr = arch->nr;
    const int T = g->kh * g->kw, K = g->N * T;
    if (g->M <= CONV_DIRECT_MAX_COUT && (size_t)T * g->M * 16 <= DW_DIRECT_LANES) {
        p->mode = DW_DIRECT;
        return;
    }
    p->cpan = (g->M + p->mr - 1) / p->mr;
    /* Cost in multiply-adds per grid pixel, a packed value counted as 16 (a scalar move
     * against a vector FMA): shift mode computes on padded rows (wq > ow) and pads N to
     * panels; im2col packs every tap. */
    const int wq_shift = g->ow + (g->kw - 1) / g->s;
    const double rows_m = (double)p->cpan * p->mr;
    const double shift_cost = (rows_m * ((g->N + p->nr - 1) / p->nr) * p->nr * T + 16.0 * g->N * g->s * g->s) *
                              wq_shift / g->ow;
    const double col_cost = rows_m * ((K + p->nr - 1) / p->nr) * p->nr + 16.0 * K;
    /* Winograd F(4x4, 3x3): 36 products per 16 pixels instead of 9 per pixel, and both
     * sides' 36 transformed values per 16 pixels stored one by one */
    const double wino_cost = (rows_m * ((g->N + p->nr - 1) / p->nr) * p->nr + 16.0 * (g->N + g->M)) * 36 / 16;
    if (g->kh == 3 && g->kw == 3 && g->s == 1 && wino_cost <= shift_cost && wino_cost <= col_cost) {
        p->mode = DW_WINO;
        p->ncols = g->N;
        p->taps = 36;
        p->npanels = (p->ncols + p->nr - 1) / p->nr;
        p->tw = (g->ow + 3) / 4;
        p->rows = min_i((g->oh + 3) / 4, WD_TILES / p->tw > 0 ? WD_TILES / p->tw : 1);
        p->kp = (size_t)p->rows * p->tw;
        p->a_fl = (size_t)36 * p->cpan * p->mr * p->kp;
        p->b_fl = (size_t)36 * p->npanels * p->nr * p->kp;
        p->c_fl = (size_t)36 * p->cpan * p->mr * p->npanels * p->nr;
        return;
    }
    if (shift_cost <= col_cost) {
        p->mode = DW_SHIFT;
        p->wq = wq_shift;
        p->dy = (g->kh - 1) / g->s, p->dx = (g->kw - 1) / g->s;
        p->groups = g->s * g->s;
        p->ncols = g->N;
        p->taps = T;
    } else {
        p->mode = DW_IM2COL;
        p->wq = g->ow;
        p->groups = 1;
        p->ncols = K;
        p->taps = 1;
    }
    p->npanels = (p->ncols + p->nr - 1) / p->nr;
    p->rows = min_i(g->oh, DW_PIX / p->wq > 0 ? DW_PIX / p->wq : 1);
    if (p->rows < 1) p->rows = 1;
    p->kp = (size_t)p->rows * p->wq;
    p->brows = (size_t)(p->rows + p->dy) * p->wq + p->dx;
    p->a_fl = (size_t)p->cpan * p->mr * p->kp;
    p->b_fl = (size_t)p->groups * p->npanels * p->nr * p->brows;
    p->c_fl = (size_t)p->taps * p->cpan * p->mr * p->npanels * p->nr;
}

static size_t dw_rowbuf(const wgeom *g);

static size_t dw_ws(const wgeom *g, int threads) {
    dw_plan p;
    dw_make_plan(&p, g);
    if (p.mode == DW_DIRECT) return carved((size_t)threads * dw_rowbuf(g));
    return carved(p.a_fl) + carved(p.b_fl) + carved(p.c_fl);
}

typedef struct {
    const wgeom *g;
    const dw_plan *p;
    const float *ga, *xb; /* this sample's g and x */
    float *dw;
    const float *gall, *xall; /* the whole batch (direct mode) */
    int n;
    float *A, *B, *C;
    int y0, rows;   /* this chunk's grid rows */
    int cgroups, cps; /* output panel groups per product task, panels per group */
} dw_job;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DW_AVX512 1

static inline __mmask16 dw_first_lanes(int n) {
    return n <= 0 ? 0 : n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
}

/* One row of x (iy) against the M output rows of g it meets at kernel row ky, stride 1:
 * for each block of 16 output pixels the M g vectors and the KW shifted x vectors are
 * loaded once and make M * KW multiply-adds into accumulators held in registers for the
 * whole row (M * KW <= 24 of the 32), then added to `lanes` [kh][kw][M][16]. The portable
 * loop below keeps one accumulator and reloads both rows for every (kx, co): it ran at a
 * sixth of this. xrow is read at [x0 + kx, ...), zero-padded by the caller as needed. */
static inline __attribute__((target("avx512f"), always_inline)) void
dw_direct_row(float *lanes, const float *xrow, const float *const *grow, int ow, int ky, const int M, const int KW) {
    __m512 acc[4][8];
    for (int co = 0; co < M; co++)
        for (int kx = 0; kx < KW; kx++) acc[co][kx] = _mm512_setzero_ps();
    for (int x0 = 0; x0 < ow; x0 += 16) {
        const __mmask16 m = dw_first_lanes(ow - x0);
        __m512 gv[4];
        for (int co = 0; co < M; co++) gv[co] = _mm512_maskz_loadu_ps(m, grow[co] + x0);
        for (int kx = 0; kx < KW; kx++) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, xrow + x0 + kx);
            for (int co = 0; co < M; co++) acc[co][kx] = _mm512_fmadd_ps(gv[co], xv, acc[co][kx]);
        }
    }
    for (int kx = 0; kx < KW; kx++)
        for (int co = 0; co < M; co++) {
            float *l = lanes + ((size_t)(ky * KW + kx) * M + co) * 16;
            _mm512_storeu_ps(l, _mm512_add_ps(_mm512_loadu_ps(l), acc[co][kx]));
        }
}

/* The shapes with a register-resident form (M outputs, KW columns, M * KW <= 24). */
static int dw_direct_avx512_ok(const wgeom *g) {
    return g->s == 1 && g->kw <= 8 && g->M * g->kw <= 24 && gemm_arch_get()->level >= GEMM_AVX512;
}

__attribute__((target("avx512f"))) static void dw_direct_avx512(const dw_job *j, int ci, float *lanes,
                                                                float *rowbuf) {
    const wgeom *g = j->g;
    for (int s = 0; s < j->n; s++)
        for (int oy = 0; oy < g->oh; oy++) {
            const float *grow[4];
            for (int co = 0; co < g->M; co++) grow[co] = j->gall + (((size_t)s * g->M + co) * g->oh + oy) * g->ow;
            for (int ky = 0; ky < g->kh; ky++) {
                const int iy = oy - g->pad + ky;
                if (iy < 0 || iy >= g->H) continue;
                const float *xrow = j->xall + (((size_t)s * g->N + ci) * g->H + iy) * g->W;
                if (g->pad) { /* the row zero-padded: read at x0 + kx from the padded start */
                    memset(rowbuf, 0, (size_t)(g->W + 2 * g->pad + 32) * sizeof(float));
                    memcpy(rowbuf + g->pad, xrow, (size_t)g->W * sizeof(float));
                    xrow = rowbuf;
                }
#define DW_ROW(m, k) dw_direct_row(lanes, xrow, grow, g->ow, ky, m, k)
                switch (g->M * 16 + g->kw) {
                case 16 + 1: DW_ROW(1, 1); break;
                case 16 + 3: DW_ROW(1, 3); break;
                case 16 + 5: DW_ROW(1, 5); break;
                case 16 + 7: DW_ROW(1, 7); break;
                case 32 + 1: DW_ROW(2, 1); break;
                case 32 + 3: DW_ROW(2, 3); break;
                case 32 + 5: DW_ROW(2, 5); break;
                case 32 + 7: DW_ROW(2, 7); break;
                case 48 + 1: DW_ROW(3, 1); break;
                case 48 + 3: DW_ROW(3, 3); break;
                case 48 + 5: DW_ROW(3, 5); break;
                case 48 + 7: DW_ROW(3, 7); break;
                case 64 + 1: DW_ROW(4, 1); break;
                case 64 + 3: DW_ROW(4, 3); break;
                case 64 + 5: DW_ROW(4, 5); break;
                default: { /* other widths: one column at a time */
                    for (int kx = 0; kx < g->kw; kx++)
                        for (int co = 0; co < g->M; co++) {
                            const float *gr[1] = {grow[co]};
                            float tmp[16] = {0};
                            dw_direct_row(tmp, xrow + kx, gr, g->ow, 0, 1, 1);
                            float *l = lanes + ((size_t)(ky * g->kw + kx) * g->M + co) * 16;
                            for (int q = 0; q < 16; q++) l[q] += tmp[q];
                        }
                }
                }
#undef DW_ROW
            }
        }
}
#endif

/* Floats of per-thread row buffer the direct mode needs (a zero-padded row). */
static size_t dw_rowbuf(const wgeom *g) { return (size_t)g->W + 2 * g->pad + 32; }

/* Direct mode, one input channel x of the convolution a task: for each output row, every
 * tap's dot products along it, into 16 lanes per (tap, output) that stay in L1 for the
 * whole batch, so that each row pair is read from memory once. */
MULTIVERSION static void dw_direct_task(void *ctx, int ci, int ntasks) {
    (void)ntasks;
    const dw_job *j = ctx;
    const wgeom *g = j->g;
    const int T = g->kh * g->kw, K = g->N * T;
    float lanes[DW_DIRECT_LANES];
    memset(lanes, 0, (size_t)T * g->M * 16 * sizeof(float));
#ifdef DW_AVX512
    if (dw_direct_avx512_ok(g)) {
        dw_direct_avx512(j, ci, lanes, j->A + (size_t)cg_pool_thread_index() * dw_rowbuf(g));
    } else
#endif
    for (int s = 0; s < j->n; s++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ky = 0; ky < g->kh; ky++) {
                const int iy = oy * g->s - g->pad + ky;
                if (iy < 0 || iy >= g->H) continue;
                const float *xrow = j->xall + (((size_t)s * g->N + ci) * g->H + iy) * g->W;
                for (int kx = 0; kx < g->kw; kx++) {
                    /* the pixels whose tap lands inside the row: ix = ox s - pad + kx in [0, W) */
                    const int lo = g->pad - kx, hi = g->W - 1 + g->pad - kx;
                    const int xa = lo <= 0 ? 0 : (lo + g->s - 1) / g->s;
                    const int xb = hi < 0 ? 0 : min_i(g->ow, hi / g->s + 1);
                    if (xa >= xb) continue;
                    const float *restrict xr = xrow + ((ptrdiff_t)xa * g->s - g->pad + kx);
                    const int len = xb - xa;
                    for (int co = 0; co < g->M; co++) {
                        const float *restrict gr = j->gall + (((size_t)s * g->M + co) * g->oh + oy) * g->ow + xa;
                        float *l = lanes + ((size_t)(ky * g->kw + kx) * g->M + co) * 16;
                        /* a local copy the compiler keeps in a register (the tail goes to
                         * its own sum, as a variable lane index would pin it to memory) */
                        float acc[16], tail = 0.f;
                        memcpy(acc, l, sizeof acc);
                        int x = 0;
                        if (g->s == 1)
                            for (; x + 16 <= len; x += 16)
                                for (int t = 0; t < 16; t++) acc[t] += gr[x + t] * xr[x + t];
                        else
                            for (; x + 16 <= len; x += 16)
                                for (int t = 0; t < 16; t++) acc[t] += gr[x + t] * xr[(size_t)(x + t) * g->s];
                        for (; x < len; x++) tail += gr[x] * xr[(size_t)x * g->s];
                        acc[0] += tail;
                        memcpy(l, acc, sizeof acc);
                    }
                }
            }
    for (int t = 0; t < T; t++)
        for (int co = 0; co < g->M; co++) {
            const float *l = lanes + ((size_t)t * g->M + co) * 16;
            double sum = 0;
            for (int q = 0; q < 16; q++) sum += l[q];
            j->dw[(size_t)co * K + (size_t)ci * T + t] += (float)sum;
        }
}

/* The chunk's A: g's rows [y0, y0 + rows) as panels [cpan][kp][mr], pixel (y, x) at
 * y * wq + x, zero in the pitch's extra columns and past M. */
/* A whole panel (mr = 8 or 6 outputs, a constant so the loop over them unrolls): pixel
 * by pixel, reading the rows side by side and writing the panel in order. */
static inline void dw_pack_a_full(float *restrict o, const float *const *src, int ow, int wq, const int mr) {
    for (int x = 0; x < ow; x++)
        for (int r = 0; r < mr; r++) o[(size_t)x * mr + r] = src[r][x];
    memset(o + (size_t)ow * mr, 0, (size_t)(wq - ow) * mr * sizeof(float));
}

MULTIVERSION static void dw_pack_a(const dw_job *j, int cp) {
    const wgeom *g = j->g;
    const dw_plan *p = j->p;
    const int mr = p->mr;
    float *panel = j->A + (size_t)cp * p->kp * mr;
    for (int y = 0; y < j->rows; y++) {
        float *o = panel + (size_t)y * p->wq * mr;
        const float *src[GEMM_MR_MAX];
        for (int r = 0; r < mr; r++)
            src[r] = cp * mr + r < g->M ? j->ga + ((size_t)(cp * mr + r) * g->oh + j->y0 + y) * g->ow : NULL;
        if ((cp + 1) * mr <= g->M && mr == 8) {
            dw_pack_a_full(o, src, g->ow, p->wq, 8);
        } else if ((cp + 1) * mr <= g->M && mr == 6) {
            dw_pack_a_full(o, src, g->ow, p->wq, 6);
        } else { /* the last, partial panel (or another MR): zero past M */
            for (int x = 0; x < p->wq; x++)
                for (int r = 0; r < mr; r++) o[(size_t)x * mr + r] = src[r] && x < g->ow ? src[r][x] : 0.f;
        }
    }
}

/* Column c of group `grp`: x's channel and the offset (oy_, ox_) its value at chunk pixel
 * (y, x) is read at: x[ci][s (y0 + y) + oy_ - pad][s x + ox_ - pad]. */
static void dw_column(const dw_job *j, int grp, int c, int *ci, int *offy, int *offx) {
    const wgeom *g = j->g;
    if (j->p->mode == DW_SHIFT) {
        *ci = c, *offy = grp / g->s, *offx = grp % g->s;
    } else {
        const int T = g->kh * g->kw;
        *ci = c / T, *offy = c % T / g->kw, *offx = c % g->kw;
    }
}

/* The chunk's B: panel q of group grp, [brows][nr]. Row by row of the chunk so that the
 * panel's rows being written (wq nr floats) stay in L1. */
MULTIVERSION static void dw_pack_b(const dw_job *j, int grp, int q, int part) {
    const wgeom *g = j->g;
    const dw_plan *p = j->p;
    const int nr = p->nr, wq = p->wq;
    float *panel = j->B + ((size_t)grp * p->npanels + q) * p->brows * nr;
    const size_t brows = (size_t)(j->rows + p->dy) * wq + p->dx;
    const int ylines = (int)((brows + wq - 1) / wq);
    int ci[GEMM_NR_MAX], oy[GEMM_NR_MAX], ox[GEMM_NR_MAX];
    for (int t = 0; t < nr; t++)
        if (q * nr + t < p->ncols) dw_column(j, grp, q * nr + t, &ci[t], &oy[t], &ox[t]);
    for (int y = ylines * part / DW_PACK_PARTS; y < ylines * (part + 1) / DW_PACK_PARTS; y++) {
        const int xend = (size_t)(y + 1) * wq <= brows ? wq : (int)(brows - (size_t)y * wq);
        float *o = panel + (size_t)y * wq * nr;
        for (int t = 0; t < nr; t++) {
            const int iy = g->s * (j->y0 + y) + (q * nr + t < p->ncols ? oy[t] : 0) - g->pad;
            if (q * nr + t >= p->ncols || iy < 0 || iy >= g->H) {
                for (int x = 0; x < xend; x++) o[(size_t)x * nr + t] = 0.f;
                continue;
            }
            const float *row = j->xb + ((size_t)ci[t] * g->H + iy) * g->W;
            const int off = ox[t] - g->pad;
            /* x in [xa, xb) reads inside the row: 0 <= s x + off <= W - 1 */
            const int lim = g->W - 1 - off;
            int xa = off >= 0 ? 0 : (-off + g->s - 1) / g->s, xb = lim < 0 ? 0 : lim / g->s + 1;
            xa = min_i(xa, xend);
            xb = xb < xa ? xa : min_i(xb, xend);
            for (int x = 0; x < xa; x++) o[(size_t)x * nr + t] = 0.f;
            if (g->s == 1) {
                for (int x = xa; x < xb; x++) o[(size_t)x * nr + t] = row[x + off];
            } else {
                for (int x = xa; x < xb; x++) o[(size_t)x * nr + t] = row[x * g->s + off];
            }
            for (int x = xb; x < xend; x++) o[(size_t)x * nr + t] = 0.f;
        }
    }
}

static void dw_pack_task(void *ctx, int task, int ntasks) {
    (void)ntasks;
    const dw_job *j = ctx;
    const dw_plan *p = j->p;
    if (task < p->cpan) {
        dw_pack_a(j, task);
        return;
    }
    task -= p->cpan;
    dw_pack_b(j, task / DW_PACK_PARTS / p->npanels, task / DW_PACK_PARTS % p->npanels, task % DW_PACK_PARTS);
}

/* One product task: column panel q and a group of output panels, every tap. Depth block
 * by depth block (DW_KC pixels): the block of A (the group's outputs, up to 256 KB) stays
 * in L2 while every tap multiplies it with its window of B, which the taps share (one
 * window plus the largest offset). Looping taps outside the depth instead streamed all of
 * A from L3 once per tap, which ran at half the speed. */
static void dw_product_task(void *ctx, int task, int ntasks) {
    (void)ntasks;
    const dw_job *j = ctx;
    const wgeom *g = j->g;
    const dw_plan *p = j->p;
    const gemm_arch *arch = gemm_arch_get();
    const int mr = p->mr, nr = p->nr, cg = task % j->cgroups, q = task / j->cgroups;
    const size_t ldc = (size_t)p->npanels * nr, kp = (size_t)j->rows * p->wq;
    const int cp0 = cg * j->cps, cp1 = min_i(p->cpan, cp0 + j->cps);
    for (size_t k0 = 0; k0 < kp; k0 += DW_KC) {
        const int kc = (int)(kp - k0 < DW_KC ? kp - k0 : DW_KC);
        for (int t = 0; t < p->taps; t++) {
            int grp = 0, shift = 0;
            if (p->mode == DW_SHIFT) {
                const int ky = t / g->kw, kx = t % g->kw;
                grp = (ky % g->s) * g->s + kx % g->s;
                shift = (ky / g->s) * p->wq + kx / g->s;
            }
            const float *b = j->B + (((size_t)grp * p->npanels + q) * p->brows + k0 + shift) * nr;
            for (int cp = cp0; cp < cp1; cp++)
                arch->kernel(kc, j->A + ((size_t)cp * p->kp + k0) * mr, b,
                             j->C + ((size_t)t * p->cpan + cp) * mr * ldc + (size_t)q * nr, ldc, NULL);
        }
    }
}

/* dw[co][c T + t] += C[t][co][c]: one output a task. */
static void dw_scatter_task(void *ctx, int co, int ntasks) {
    (void)ntasks;
    const dw_job *j = ctx;
    const dw_plan *p = j->p;
    const size_t ldc = (size_t)p->npanels * p->nr, K = (size_t)p->ncols * p->taps;
    for (int c = 0; c < p->ncols; c++)
        for (int t = 0; t < p->taps; t++)
            j->dw[(size_t)co * K + (size_t)c * p->taps + t] += j->C[((size_t)t * p->cpan * p->mr + co) * ldc + c];
}

/* ---- dw by Winograd F(4x4, 3x3) ----
 * The forward computes each 4x4 output tile as Y = A^T [U . V] A with U = G w G^T and
 * V = B^T d B (d the 6x6 input tile; winograd.c's matrices), so
 *   dL/dU[xi][co][ci] = sum over tiles of M[xi][co][tile] V[xi][ci][tile], M = A dY A^T,
 * 36 products of (cout x tiles) by (tiles x cin), 4x fewer multiply-adds than the 9 taps,
 * and dw = G^T dU G. V and M are transformed 16 tiles at a time (one tile a lane) and
 * scattered straight into the micro-kernel's panels; tiles past the output read zeros. */

/* B^T on 6 values x[0], x[s], ..., per lane (winograd.c's bt6_lanes). */
static inline void wd_bt6(float *x, int s) {
    for (int t = 0; t < 16; t++) {
        float d0 = x[t], d1 = x[s + t], d2 = x[2 * s + t], d3 = x[3 * s + t], d4 = x[4 * s + t], d5 = x[5 * s + t];
        x[t] = 4.f * d0 - 5.f * d2 + d4;
        x[s + t] = -4.f * (d1 + d2) + d3 + d4;
        x[2 * s + t] = 4.f * (d1 - d2) - d3 + d4;
        x[3 * s + t] = 2.f * (d3 - d1) - d2 + d4;
        x[4 * s + t] = 2.f * (d1 - d3) - d2 + d4;
        x[5 * s + t] = 4.f * d1 - 5.f * d3 + d5;
    }
}

/* y[0..5] = A y'[0..3] per lane, A = (A^T)^T with A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0;
 * 0 1 1 4 4 0; 0 1 -1 8 -8 1] (winograd.c's at6): the adjoint of the output transform. */
static inline void wd_a6(float *y, int ys, const float *x, int s) {
    for (int t = 0; t < 16; t++) {
        float m0 = x[t], m1 = x[s + t], m2 = x[2 * s + t], m3 = x[3 * s + t];
        float e = m0 + m2, o = m1 + m3, e4 = m0 + 4.f * m2, o4 = 2.f * m1 + 8.f * m3;
        y[t] = m0;
        y[ys + t] = e + o;
        y[2 * ys + t] = e - o;
        y[3 * ys + t] = e4 + o4;
        y[4 * ys + t] = e4 - o4;
        y[5 * ys + t] = m3;
    }
}

/* d[(y ne + e) 16 + t] = row[y][4 t + e] (tile t's element (y, e), lanes = tiles),
 * reading row[y][0 .. 4 * 15 + ne - 1] only. */
static inline void wd_gather_portable(float *d, const float *const *row, int nrows, int ne) {
    for (int y = 0; y < nrows; y++)
        for (int e = 0; e < ne; e++)
            for (int t = 0; t < 16; t++) d[(y * ne + e) * 16 + t] = row[y][4 * t + e];
}

#ifdef DW_AVX512
/* The same with three permutes per 16 values (the compiler's version went through 128-bit
 * shuffles and the stack, a third of the transform's time). */
__attribute__((target("avx512f"))) static void wd_gather_avx512(float *d, const float *const *row, int nrows, int ne) {
    const __m512i idx = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 28, 24, 20, 16, 12, 8, 4, 0);
    for (int y = 0; y < nrows; y++)
        for (int e = 0; e < ne; e++) {
            const float *r = row[y] + e; /* lanes 0, 4, 8, 12 of each 16: the last needs 13 */
            __m512 v0 = _mm512_loadu_ps(r), v1 = _mm512_loadu_ps(r + 16), v2 = _mm512_loadu_ps(r + 32),
                   v3 = _mm512_maskz_loadu_ps(0x1FFF, r + 48);
            __m512 lo = _mm512_permutex2var_ps(v0, idx, v1), hi = _mm512_permutex2var_ps(v2, idx, v3);
            _mm512_storeu_ps(d + (y * ne + e) * 16, _mm512_shuffle_f32x4(lo, hi, 0x44));
        }
}
#endif

static inline void wd_gather(float *d, const float *const *row, int nrows, int ne) {
#ifdef DW_AVX512
    if (gemm_arch_get()->level >= GEMM_AVX512) {
        wd_gather_avx512(d, row, nrows, ne);
        return;
    }
#endif
    wd_gather_portable(d, row, nrows, ne);
}

/* The 36 x 16 transformed values of one channel's 16 tiles from tx0 in tile row ty of
 * x (V = B^T d B, input channel ci), lanes = tiles. */
static inline void wd_v_one(float *d, const dw_job *j, int ci, int ty, int tx0) {
    const wgeom *g = j->g;
    const int iy0 = ty * 4 - g->pad, ix0 = tx0 * 4 - g->pad;
    float rows[6][4 * 16 + 2];
    const float *row[6];
    for (int y = 0; y < 6; y++) { /* the input row itself, or a zero-padded copy */
        const int iy = iy0 + y;
        const float *src = j->xb + ((size_t)ci * g->H + (iy < 0 ? 0 : iy)) * g->W;
        if (iy >= 0 && iy < g->H && ix0 >= 0 && ix0 + 4 * 16 + 2 <= g->W) {
            row[y] = src + ix0;
            continue;
        }
        /* columns [xa, xb) of the span are inside the input */
        const int xa = iy < 0 || iy >= g->H ? 0 : min_i(4 * 16 + 2, ix0 < 0 ? -ix0 : 0);
        const int xb = iy < 0 || iy >= g->H ? 0 : (g->W - ix0 < xa ? xa : min_i(4 * 16 + 2, g->W - ix0));
        for (int x = 0; x < xa; x++) rows[y][x] = 0.f;
        for (int x = xa; x < xb; x++) rows[y][x] = src[ix0 + x];
        for (int x = xb; x < 4 * 16 + 2; x++) rows[y][x] = 0.f;
        row[y] = rows[y];
    }
    wd_gather(d, row, 6, 6); /* tile t's column e is the row's column 4t + e */
    for (int e = 0; e < 6; e++) wd_bt6(d + e * 16, 6 * 16); /* columns */
    for (int y = 0; y < 6; y++) wd_bt6(d + y * 6 * 16, 16); /* rows */
}

/* M = A dY A^T of one output's 16 tiles from tx0 in tile row ty of g (output co). */
static inline void wd_m_one(float *m, const dw_job *j, int co, int ty, int tx0) {
    const wgeom *g = j->g;
    const int oy0 = ty * 4, ox0 = tx0 * 4;
    float rows[4][4 * 16], dy[16 * 16], tmp[24 * 16];
    const float *row[4];
    for (int y = 0; y < 4; y++) { /* the row itself, or a zero-padded copy */
        const float *src = j->ga + ((size_t)co * g->oh + min_i(oy0 + y, g->oh - 1)) * g->ow + ox0;
        if (oy0 + y < g->oh && ox0 + 4 * 16 <= g->ow) {
            row[y] = src;
            continue;
        }
        const int xb = oy0 + y < g->oh ? min_i(4 * 16, g->ow - ox0) : 0;
        for (int x = 0; x < xb; x++) rows[y][x] = src[x];
        for (int x = xb; x < 4 * 16; x++) rows[y][x] = 0.f;
        row[y] = rows[y];
    }
    wd_gather(dy, row, 4, 4);
    for (int e = 0; e < 4; e++) wd_a6(tmp + e * 16, 4 * 16, dy + e * 16, 4 * 16); /* columns: 4x4 -> 6x4 */
    for (int y = 0; y < 6; y++) wd_a6(m + y * 6 * 16, 16, tmp + y * 4 * 16, 16);  /* rows: 6x4 -> 6x6 */
}

/* Stores 36 blocks stage[c][xi][t] (c < nc channels, 16 tiles each) into panels: value
 * (c, t) of block xi at dst + xi * xstride + t * ld + c, for t < nt. Value by value: the
 * AVX-512 version below transposes 16 x 16 at a time instead. */
static void wd_store_scalar(float *dst, size_t xstride, size_t ld, const float *stage, int nc, int nt) {
    for (int c = 0; c < nc; c++)
        for (int xi = 0; xi < 36; xi++) {
            float *o = dst + xi * xstride + c;
            const float *v = stage + ((size_t)c * 36 + xi) * 16;
            for (int t = 0; t < nt; t++) o[(size_t)t * ld] = v[t];
        }
}

#ifdef DW_AVX512
/* The same with 16 x 16 transposes: each tile's nc (8 or 16) channel values are one
 * masked vector store (the value-by-value scatter was half of the transforms' time). */
__attribute__((target("avx512f"))) static void wd_store_avx512(float *dst, size_t xstride, size_t ld,
                                                              const float *stage, int nc, int nt) {
    const __mmask16 keep = dw_first_lanes(nc);
    for (int xi = 0; xi < 36; xi++) {
        __m512 r[16], t[16];
        for (int c = 0; c < 16; c++)
            r[c] = c < nc ? _mm512_loadu_ps(stage + ((size_t)c * 36 + xi) * 16) : _mm512_setzero_ps();
        for (int i = 0; i < 16; i += 2) {
            t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 16; i += 4) {
            r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
            r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
            r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
            r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        }
        for (int i = 0; i < 4; i++) {
            t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
            t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
            t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
            t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
        }
        for (int i = 0; i < 8; i++) {
            r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
            r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
        }
        /* r[k] now holds tile k's channels 0..15 */
        float *o = dst + xi * xstride;
        for (int k = 0; k < nt; k++) _mm512_mask_storeu_ps(o + (size_t)k * ld, keep, r[k]);
    }
}
#endif

static void wd_store(float *dst, size_t xstride, size_t ld, const float *stage, int nc, int nt) {
#ifdef DW_AVX512
    if (gemm_arch_get()->level >= GEMM_AVX512) {
        wd_store_avx512(dst, xstride, ld, stage, nc, nt);
        return;
    }
#endif
    wd_store_scalar(dst, xstride, ld, stage, nc, nt);
}

/* V for column panel q and chunk tile row r, 16 channels and 16 tiles at a time, into
 * B [36][npanels][kp][nr]. */
MULTIVERSION static void wd_transform_v(const dw_job *j, int q, int r) {
    const dw_plan *p = j->p;
    const int nr = p->nr;
    float stage[16 * 36 * 16];
    for (int c0 = 0; c0 < nr; c0 += 16) {
        const int nc = min_i(16, nr - c0);
        for (int tx0 = 0; tx0 < p->tw; tx0 += 16) {
            for (int c = 0; c < nc; c++) {
                const int ci = q * nr + c0 + c;
                if (ci < j->g->N) wd_v_one(stage + (size_t)c * 36 * 16, j, ci, j->y0 + r, tx0);
                else memset(stage + (size_t)c * 36 * 16, 0, 36 * 16 * sizeof(float));
            }
            wd_store(j->B + ((size_t)q * p->kp + (size_t)r * p->tw + tx0) * nr + c0, (size_t)p->npanels * p->kp * nr,
                     (size_t)nr, stage, nc, min_i(16, p->tw - tx0));
        }
    }
}

/* M for output panel cp and chunk tile row r, into A [36][cpan][kp][mr]. */
MULTIVERSION static void wd_transform_m(const dw_job *j, int cp, int r) {
    const dw_plan *p = j->p;
    const int mr = p->mr;
    float stage[GEMM_MR_MAX * 36 * 16];
    for (int tx0 = 0; tx0 < p->tw; tx0 += 16) {
        for (int c = 0; c < mr; c++) {
            const int co = cp * mr + c;
            if (co < j->g->M) wd_m_one(stage + (size_t)c * 36 * 16, j, co, j->y0 + r, tx0);
            else memset(stage + (size_t)c * 36 * 16, 0, 36 * 16 * sizeof(float));
        }
        wd_store(j->A + ((size_t)cp * p->kp + (size_t)r * p->tw + tx0) * mr, (size_t)p->cpan * p->kp * mr, (size_t)mr,
                 stage, mr, min_i(16, p->tw - tx0));
    }
}

static void wd_transform_task(void *ctx, int task, int ntasks) {
    (void)ntasks;
    const dw_job *j = ctx;
    const dw_plan *p = j->p;
    if (task < p->cpan * j->rows) {
        wd_transform_m(j, task / j->rows, task % j->rows);
        return;
    }
    task -= p->cpan * j->rows;
    wd_transform_v(j, task / j->rows, task % j->rows);
}

/* Product xi for a group of output panels: the group's block of M (up to 128 KB) stays in
 * L2 while every column panel's V streams past it. */
static void wd_product_task(void *ctx, int task, int ntasks) {
    (void)ntasks;
    const dw_job *j = ctx;
    const dw_plan *p = j->p;
    const gemm_arch *arch = gemm_arch_get();
    const int mr = p->mr, nr = p->nr, cg = task % j->cgroups, xi = task / j->cgroups;
    const size_t ldc = (size_t)p->npanels * nr, kp = (size_t)j->rows * p->tw;
    const int cp0 = cg * j->cps, cp1 = min_i(p->cpan, cp0 + j->cps);
    for (int q = 0; q < p->npanels; q++)
        for (size_t k0 = 0; k0 < kp; k0 += DW_KC) {
            const int kc = (int)(kp - k0 < DW_KC ? kp - k0 : DW_KC);
            const float *b = j->B + (((size_t)xi * p->npanels + q) * p->kp + k0) * nr;
            for (int cp = cp0; cp < cp1; cp++)
                arch->kernel(kc, j->A + (((size_t)xi * p->cpan + cp) * p->kp + k0) * mr, b,
                             j->C + ((size_t)xi * p->cpan + cp) * mr * ldc + (size_t)q * nr, ldc, NULL);
        }
}

/* dw[co][ci] += G^T dU[.][co][ci] G, in double: one output a task, inputs in blocks of
 * 64 read along dU's rows (reading each (co, ci)'s 36 values 36 rows apart was 3 % of
 * the whole backward). */
static const double wd_G[6][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                  {-1.0 / 6, 1.0 / 6, -1.0 / 6}, {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                  {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};

MULTIVERSION static void wd_scatter_task(void *ctx, int co, int ntasks) {
    (void)ntasks;
    const dw_job *j = ctx;
    const dw_plan *p = j->p;
    const size_t ldc = (size_t)p->npanels * p->nr, xstride = (size_t)p->cpan * p->mr * ldc;
    const int N = j->g->N;
    for (int c0 = 0; c0 < N; c0 += 64) {
        const int nc = min_i(64, N - c0);
        double gu[3][6][64]; /* G^T dU */
        memset(gu, 0, sizeof gu);
        for (int a = 0; a < 6; a++)
            for (int b = 0; b < 6; b++) {
                const float *u = j->C + (size_t)(a * 6 + b) * xstride + (size_t)co * ldc + c0;
                for (int ky = 0; ky < 3; ky++) {
                    const double gk = wd_G[a][ky];
                    if (gk == 0) continue;
                    for (int c = 0; c < nc; c++) gu[ky][b][c] += gk * u[c];
                }
            }
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                double acc[64] = {0};
                for (int b = 0; b < 6; b++) {
                    const double gk = wd_G[b][kx];
                    if (gk == 0) continue;
                    for (int c = 0; c < nc; c++) acc[c] += gu[ky][b][c] * gk;
                }
                float *w = j->dw + ((size_t)co * N + c0) * 9 + ky * 3 + kx;
                for (int c = 0; c < nc; c++) w[(size_t)c * 9] += (float)acc[c];
            }
    }
}

static void dw_accumulate(float *dw, const float *gall, const float *xall, const wgeom *g, int n, float *ws,
                          cg_pool *pool) {
    dw_plan p;
    dw_make_plan(&p, g);
    dw_job j;
    memset(&j, 0, sizeof j);
    j.g = g, j.p = &p, j.dw = dw, j.gall = gall, j.xall = xall, j.n = n;
    if (p.mode == DW_DIRECT) {
        j.A = carve(&ws, (size_t)cg_pool_threads(pool) * dw_rowbuf(g)); /* row buffers */
        cg_pool_run(pool, dw_direct_task, &j, g->N);
        return;
    }
    j.A = carve(&ws, p.a_fl), j.B = carve(&ws, p.b_fl), j.C = carve(&ws, p.c_fl);
    memset(j.C, 0, p.c_fl * sizeof(float));
    if (p.mode == DW_WINO) {
        const int want = 4 * cg_pool_threads(pool), th = (g->oh + 3) / 4;
        j.cgroups = 36 >= want ? 1 : min_i(p.cpan, (want + 35) / 36);
        j.cps = (p.cpan + j.cgroups - 1) / j.cgroups;
        j.cgroups = (p.cpan + j.cps - 1) / j.cps;
        for (int s = 0; s < n; s++) {
            j.ga = gall + (size_t)s * g->M * g->oh * g->ow;
            j.xb = xall + (size_t)s * g->N * g->H * g->W;
            for (int y0 = 0; y0 < th; y0 += p.rows) { /* y0, rows: in tile rows */
                j.y0 = y0, j.rows = min_i(p.rows, th - y0);
                cg_pool_run(pool, wd_transform_task, &j, (p.cpan + p.npanels) * j.rows);
                cg_pool_run(pool, wd_product_task, &j, 36 * j.cgroups);
            }
        }
        cg_pool_run(pool, wd_scatter_task, &j, g->M);
        return;
    }
    /* enough product tasks to balance the threads: split the output panels if needed */
    const int base = p.npanels, want = 4 * cg_pool_threads(pool);
    j.cgroups = base >= want ? 1 : min_i(p.cpan, (want + base - 1) / base);
    j.cps = (p.cpan + j.cgroups - 1) / j.cgroups;
    j.cgroups = (p.cpan + j.cps - 1) / j.cps;
    for (int s = 0; s < n; s++) {
        j.ga = gall + (size_t)s * g->M * g->oh * g->ow;
        j.xb = xall + (size_t)s * g->N * g->H * g->W;
        for (int y0 = 0; y0 < g->oh; y0 += p.rows) {
            j.y0 = y0, j.rows = min_i(p.rows, g->oh - y0);
            cg_pool_run(pool, dw_pack_task, &j, p.cpan + p.groups * p.npanels * DW_PACK_PARTS);
            cg_pool_run(pool, dw_product_task, &j, base * j.cgroups);
        }
    }
    cg_pool_run(pool, dw_scatter_task, &j, g->M);
}

/* ---- convolution ---- */

static wgeom conv_wgeom(const conv_dims *d) {
    wgeom g = {d->cout, d->cin, d->h, d->w, d->kh, d->kw, d->stride, d->pad, conv_out_h(d), conv_out_w(d)};
    return g;
}

/* Which din path (see the top of the file). */
static int din_flip_ok(const conv_dims *d) { return d->stride == 1 && d->kh == d->kw && d->pad <= d->kh - 1; }
static int din_deconv_ok(const conv_dims *d) { return d->stride == 2 && d->kh == 3 && d->kw == 3 && d->pad == 1; }

static conv_dims flipped_dims(const conv_dims *d) {
    conv_dims f = {d->cout, conv_out_h(d), conv_out_w(d), d->cin, d->kh, d->kw, 1, d->kh - 1 - d->pad};
    return f;
}

static size_t din_generic_ws(const conv_dims *d, int threads) {
    return col2im_ws(d->cin * d->kh * d->kw, conv_out_h(d), conv_out_w(d), threads);
}

/* The Winograd forward pads each tile row to a multiple of 16 tiles (64 columns), so an
 * output 64 k + r columns wide costs as much as 64 (k + 1): the din of a 3x3 pad-0
 * convolution (the residual blocks', on reflect-padded inputs) is 66 wide and took twice
 * the forward's time. Its first 64 k columns run by Winograd and the last r <= 16 by the
 * GEMM, each from its own copy of the padded input band. Returns 64 k, or 0 when not. */
static int wino_split(const conv_dims *fd) {
    if (choose_fwd(fd) != PATH_WINO) return 0;
    const int ow = conv_out_w(fd), m = ow / 64 * 64, r = ow - m;
    return m > 0 && r > 0 && r <= 16 ? m : 0;
}

static size_t wino_split_ws(const conv_dims *fd, int threads) {
    const int m = wino_split(fd);
    if (!m) return 0;
    const size_t hp = (size_t)fd->h + 2 * fd->pad;
    conv_dims d2 = {fd->cin, (int)hp, conv_out_w(fd) - m + 2, fd->cout, 3, 3, 1, 0};
    return carved((size_t)fd->cin * hp * (m + 2)) + carved((size_t)fd->cin * hp * (d2.w)) + gemm_fwd_ws(&d2, threads);
}

static size_t din_ws(const conv_dims *d, int threads) {
    const int oh = conv_out_h(d), ow = conv_out_w(d);
    if (din_flip_ok(d)) {
        conv_dims f = flipped_dims(d);
        return carved((size_t)d->cout * d->cin * d->kh * d->kw) + carved((size_t)d->cin * d->h * d->w) +
               fwd_ws(&f, threads) + wino_split_ws(&f, threads);
    }
    if (din_deconv_ok(d)) {
        deconv_dims dd = {d->cout, oh, ow, d->cin, 3, 3, 2, 1, 1};
        return max_sz(carved(packed_deconv_floats(d->cout, d->cin)) +
                          max_sz(carved((size_t)d->cin * 4 * oh * ow) + carved(deconv_tmp_floats(&dd)) +
                                     carved(conv_scratch_floats(threads)),
                                 carved(deconv_pack_tmp_floats(d->cout, d->cin))),
                      din_generic_ws(d, threads));
    }
    return din_generic_ws(d, threads);
}

size_t conv_train_ws_floats(const conv_dims *d, int threads) {
    if (threads < 1) threads = 1;
    wgeom g = conv_wgeom(d);
    return max_sz(max_sz(fwd_ws(d, threads), din_ws(d, threads)), dw_ws(&g, threads)) + 16;
}

void conv2d_train_forward(float *out, const float *in, const float *w, const float *b, const conv_dims *d, int n,
                          float *ws, cg_pool *pool) {
    const size_t insz = (size_t)d->cin * d->h * d->w, outsz = (size_t)d->cout * conv_out_h(d) * conv_out_w(d);
    fwd_plan f;
    fwd_prepare(&f, w, d, &ws, cg_pool_threads(pool));
    for (int s = 0; s < n; s++) fwd_run(&f, out + s * outsz, in + s * insz, b, pool);
}

static void din_accumulate(float *din, const float *dout, const float *w, const conv_dims *d, int n, float *ws,
                           cg_pool *pool) {
    const int oh = conv_out_h(d), ow = conv_out_w(d), threads = cg_pool_threads(pool);
    const size_t insz = (size_t)d->cin * d->h * d->w, outsz = (size_t)d->cout * oh * ow;
    if (din_flip_ok(d)) {
        /* wf[ci][co][ky][kx] = w[co][ci][kh-1-ky][kw-1-kx] */
        const int kh = d->kh, kw = d->kw;
        float *wf = carve(&ws, (size_t)d->cout * d->cin * kh * kw), *tmp = carve(&ws, insz);
        for (int co = 0; co < d->cout; co++)
            for (int ci = 0; ci < d->cin; ci++)
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++)
                        wf[(((size_t)ci * d->cout + co) * kh + ky) * kw + kx] =
                            w[(((size_t)co * d->cin + ci) * kh + kh - 1 - ky) * kw + kw - 1 - kx];
        conv_dims fd = flipped_dims(d);
        fwd_plan f;
        fwd_prepare(&f, wf, &fd, &ws, threads);
        const int m = f.path == PATH_WINO ? wino_split(&fd) : 0;
        if (m) {
            const int hp = fd.h + 2 * fd.pad, r = d->w - m;
            conv_dims d1 = {fd.cin, hp, m + 2, fd.cout, 3, 3, 1, 0}, d2 = {fd.cin, hp, r + 2, fd.cout, 3, 3, 1, 0};
            float *in1 = carve(&ws, (size_t)fd.cin * hp * (m + 2)), *in2 = carve(&ws, (size_t)fd.cin * hp * (r + 2));
            packed_weights pw2;
            pack_weights(&pw2, carve(&ws, packed_weights_floats(fd.cout, fd.cin * 9)), wf, fd.cout, fd.cin * 9);
            float *scratch2 = carve(&ws, conv_scratch_floats(threads)), *tmp2 = tmp + (size_t)d->cin * d->h * m;
            for (int s = 0; s < n; s++) {
                band_job b1 = {in1, dout + s * outsz, fd.h, fd.w, fd.pad, 0, m + 2};
                band_job b2 = {in2, dout + s * outsz, fd.h, fd.w, fd.pad, m, r + 2};
                cg_pool_run(pool, band_task, &b1, fd.cin);
                cg_pool_run(pool, band_task, &b2, fd.cin);
                conv3x3_winograd_forward(tmp, in1, &f.ww, NULL, &d1, f.scratch, pool);
                conv2d_forward(tmp2, in2, &pw2, NULL, &d2, scratch2, pool);
                add_band(din + s * insz, tmp, d->cin, d->h, d->w, 0, m, pool);
                add_band(din + s * insz, tmp2, d->cin, d->h, d->w, m, r, pool);
            }
            return;
        }
        for (int s = 0; s < n; s++) {
            fwd_run(&f, tmp, dout + s * outsz, NULL, pool);
            add_crop(din + s * insz, tmp, d->cin, d->h, d->w, d->h, d->w, pool);
        }
        return;
    }
    if (din_deconv_ok(d)) {
        /* w [cout][cin][3][3] read as a deconvolution's [cin' = cout][cout' = cin][3][3] */
        deconv_dims dd = {d->cout, oh, ow, d->cin, 3, 3, 2, 1, 1};
        float *p = ws;
        packed_deconv pd;
        float *panels = carve(&p, packed_deconv_floats(d->cout, d->cin)), *tmp_at = p;
        float *ptmp = carve(&tmp_at, deconv_pack_tmp_floats(d->cout, d->cin)); /* then tmp's, dtmp's, ... */
        if (pack_deconv_weights_tmp(&pd, panels, w, d->cout, d->cin, gemm_arch_get(), ptmp) == 0) {
            float *tmp = carve(&p, (size_t)d->cin * 4 * oh * ow), *dtmp = carve(&p, deconv_tmp_floats(&dd)),
                  *scratch = carve(&p, conv_scratch_floats(threads));
            for (int s = 0; s < n; s++) {
                deconv_s2_forward(tmp, dtmp, dout + s * outsz, &pd, NULL, &dd, NULL, scratch, pool);
                add_crop(din + s * insz, tmp, d->cin, d->h, d->w, 2 * oh, 2 * ow, pool); /* 2 oh >= h */
            }
            return;
        }
    }
    for (int s = 0; s < n; s++)
        col2im_product(din + s * insz, dout + s * outsz, w, d->cout, d->cin, d->h, d->w, d->kh, d->kw, d->stride,
                       d->pad, oh, ow, ws, pool);
}

void conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                     const conv_dims *d, int n, float *ws, cg_pool *pool) {
    const int oh = conv_out_h(d), ow = conv_out_w(d);
    if (n <= 0) return;
    if (db) db_accumulate(db, dout, n, d->cout, (size_t)oh * ow, pool);
    if (din) din_accumulate(din, dout, w, d, n, ws, pool);
    if (dw) {
        wgeom g = conv_wgeom(d);
        dw_accumulate(dw, dout, in, &g, n, ws, pool);
    }
}

/* ---- transposed convolution ---- */

static int deconv_fast_ok(const deconv_dims *d) {
    return d->kh == 3 && d->kw == 3 && d->stride == 2 && d->pad == 1 && d->out_pad == 1;
}

/* din of a transposed convolution: the convolution of dout with w read as [cin][cout][kh][kw]
 * conv weights, same stride and padding; its output is at least h x w (out_pad < stride
 * gives exactly that). */
static conv_dims deconv_adjoint(const deconv_dims *d) {
    conv_dims c = {d->cout, deconv_out_h(d), deconv_out_w(d), d->cin, d->kh, d->kw, d->stride, d->pad};
    return c;
}

static wgeom deconv_wgeom(const deconv_dims *d) {
    wgeom g = {d->cin, d->cout, deconv_out_h(d), deconv_out_w(d), d->kh, d->kw, d->stride, d->pad, d->h, d->w};
    return g;
}

static size_t deconv_generic_ws(const deconv_dims *d, int threads) {
    return col2im_ws(d->cout * d->kh * d->kw, d->h, d->w, threads);
}

size_t deconv_train_ws_floats(const deconv_dims *d, int threads) {
    if (threads < 1) threads = 1;
    size_t fwd = deconv_generic_ws(d, threads);
    if (deconv_fast_ok(d))
        fwd = max_sz(fwd, carved(packed_deconv_floats(d->cin, d->cout)) +
                              max_sz(carved(deconv_tmp_floats(d)) + carved(conv_scratch_floats(threads)),
                                     carved(deconv_pack_tmp_floats(d->cin, d->cout))));
    conv_dims c = deconv_adjoint(d);
    const size_t din = carved((size_t)d->cin * conv_out_h(&c) * conv_out_w(&c)) + fwd_ws(&c, threads);
    wgeom g = deconv_wgeom(d);
    return max_sz(max_sz(fwd, din), dw_ws(&g, threads)) + 16;
}

void deconv2d_train_forward(float *out, const float *in, const float *w, const float *b, const deconv_dims *d,
                            int n, float *ws, cg_pool *pool) {
    const int oh = deconv_out_h(d), ow = deconv_out_w(d);
    const size_t insz = (size_t)d->cin * d->h * d->w, outsz = (size_t)d->cout * oh * ow;
    if (deconv_fast_ok(d)) {
        float *p = ws;
        packed_deconv pd;
        float *panels = carve(&p, packed_deconv_floats(d->cin, d->cout)), *tmp_at = p;
        float *ptmp = carve(&tmp_at, deconv_pack_tmp_floats(d->cin, d->cout)); /* then tmp's and scratch's */
        if (pack_deconv_weights_tmp(&pd, panels, w, d->cin, d->cout, gemm_arch_get(), ptmp) == 0) {
            float *tmp = carve(&p, deconv_tmp_floats(d)), *scratch = carve(&p, conv_scratch_floats(cg_pool_threads(pool)));
            for (int s = 0; s < n; s++) deconv_s2_forward(out + s * outsz, tmp, in + s * insz, &pd, b, d, NULL, scratch, pool);
            return;
        }
    }
    /* out = b, then the columns W^T in scattered onto it */
    for (int s = 0; s < n; s++) {
        float *o = out + s * outsz;
        for (int co = 0; co < d->cout; co++)
            for (size_t i = 0; i < (size_t)oh * ow; i++) o[(size_t)co * oh * ow + i] = b ? b[co] : 0.f;
        col2im_product(o, in + s * insz, w, d->cin, d->cout, oh, ow, d->kh, d->kw, d->stride, d->pad, d->h, d->w, ws,
                       pool);
    }
}

void deconv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                       const deconv_dims *d, int n, float *ws, cg_pool *pool) {
    const int oh = deconv_out_h(d), ow = deconv_out_w(d);
    const size_t insz = (size_t)d->cin * d->h * d->w, outsz = (size_t)d->cout * oh * ow;
    if (n <= 0) return;
    if (db) db_accumulate(db, dout, n, d->cout, (size_t)oh * ow, pool);
    if (din) {
        conv_dims c = deconv_adjoint(d);
        const int ch = conv_out_h(&c), cw = conv_out_w(&c);
        float *p = ws, *tmp = carve(&p, (size_t)d->cin * ch * cw);
        fwd_plan f;
        fwd_prepare(&f, w, &c, &p, cg_pool_threads(pool));
        for (int s = 0; s < n; s++) {
            fwd_run(&f, tmp, dout + s * outsz, NULL, pool);
            add_crop(din + s * insz, tmp, d->cin, d->h, d->w, ch, cw, pool);
        }
    }
    if (dw) {
        wgeom g = deconv_wgeom(d);
        dw_accumulate(dw, in, dout, &g, n, ws, pool);
    }
}
