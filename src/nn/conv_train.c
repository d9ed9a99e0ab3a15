/* conv_train.c: the convolutions of training (train_ops.h), forward and input gradient on
 * a batch, on the inference engine's kernels (the weight gradients are in
 * conv_train_dw.c), and a general strided GEMM on its micro-kernels (gemm_strided, the
 * Gram matrices).
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
 * - dw: conv_train_dw.c (Winograd, shifted phases, im2col or direct, by cost).
 * - db: sums of d.
 * The transposed convolution's backward is the same pieces with the roles swapped: din is
 * a strided convolution of d, dw the same shifted product with d as the "input".
 *
 * No allocation: everything is carved from the caller's workspace, sized by the
 * *_ws_floats functions for the kernel gemm_arch_get() returns when they are called; the
 * weight packers' temporaries too (pack_*_tmp), in the space that the scratch carved
 * after them takes once packing is done. */
#include "conv_train.h"
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
    return max_sz(max_sz(fwd_ws(d, threads), din_ws(d, threads)), conv_dw_ws(&g, threads)) + 16;
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
        conv_dw_accumulate(dw, dout, in, &g, n, ws, pool);
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
    return max_sz(max_sz(fwd, din), conv_dw_ws(&g, threads)) + 16;
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
        conv_dw_accumulate(dw, in, dout, &g, n, ws, pool);
    }
}
