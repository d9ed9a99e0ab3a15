/* conv_train_dw.c: the weight gradients of the training convolutions (conv_train.h):
 * dw[co][ci][ky][kx] = sum_p d[co][p] in[ci][p shifted by the tap], over a batch. Four ways,
 * chosen by cost for each layer's shape:
 * - Winograd F(4x4, 3x3) for 3x3 stride 1 (36 products per 16 pixels instead of 9 per pixel);
 * - "shift": with the input's phases (for stride s, the s x s subsampled grids of the
 *   zero-padded input), every tap reads one phase at a constant offset in a pixel space
 *   whose rows are `wq` wide, so the input is packed for the micro-kernel once per phase
 *   and each of the kh*kw taps multiplies the packed gradient with that block read from a
 *   row offset: no im2col;
 * - im2col's columns (ci, ky, kx), packed straight from the input, when it has few
 *   channels (a micro-kernel panel would be mostly empty);
 * - direct dot products along the rows for at most CONV_DIRECT_MAX_COUT outputs.
 * Every buffer is carved from the caller's workspace (conv_dw_ws). */
#include "conv_train.h"
#include "gemm.h"
#include "pool.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif



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

size_t conv_dw_ws(const wgeom *g, int threads) {
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

void conv_dw_accumulate(float *dw, const float *gall, const float *xall, const wgeom *g, int n, float *ws,
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

