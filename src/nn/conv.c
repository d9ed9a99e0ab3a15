/* conv.c: fast convolutions as packed GEMM (GotoBLAS-style blocking).
 *
 * A convolution is W[cout x K] . B[K x P] with K = cin*kh*kw and P = output pixels, where
 * B is the im2col matrix of the input. B is never materialised: each thread packs a block
 * of KC rows x NC columns of it straight from the input into a small buffer, in the layout
 * the micro-kernel streams (NR-wide column panels), and multiplies it with the weights,
 * which were packed once at load time into MR-tall row panels. Work is split over the
 * pool by column blocks, so threads share nothing but the read-only inputs.
 *
 * With the "amx" kernel (and cout a multiple of 16), the weights are packed as AMX tiles
 * instead, each packed block of B is converted to tiles, and the products run on the tile
 * unit as bf16x3 (amx.h).
 *
 * The transposed convolution (k3, s2, p1, op1) is four stride-1 convolutions, one per
 * output parity, each reading only the taps that land on that parity.
 *
 * conv2d_forward_io (the light generator) is the same product with the input read through
 * per-channel plane pointers and maps (a pending norm and ReLU, applied while packing), the
 * output written to plane pointers, and the output's moments gathered per column block
 * while the block is still in cache. */
#include "amx.h"
#include "gemm.h"
#include "ops.h"
#include "pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

#define KC 256 /* rows of B per block: an 8x256 weight panel (8 KB) stays in L1 */
#define NC 384 /* columns of B per block (a multiple of every kernel's NR): 384 KB in L2 */
#define NC_IO 512 /* conv2d_forward_io's widest column block (io_block_cols) */

/* Everything the packer needs to read im2col(in) without building it. The output may have
 * more pixels than the input reaches (the deconvolution phases read past the bottom/right
 * edge); any tap outside the input reads zero, which is exactly zero padding. */
typedef struct {
    int cin, h, w;
    int kh, kw, stride, pad;
    int oh, ow;
    int tap_major; /* rows of B ordered (ky, kx, ci) instead of (ci, ky, kx) */
    /* conv2d_forward_io: channel ci's plane at chan[ci] (else in + ci * h * w), read
     * through aff[ci] when aff is set; unit: a 1x1 stride-1 kernel without padding, whose
     * im2col is the input itself (a panel may then span output rows). */
    const float *const *chan;
    const chan_affine *aff;
    int unit;
} geom;

/* ceil(m / mr) * mr <= m + GEMM_MR_MAX for every kernel, whichever packs; AMX tiles take
 * m * ceil(k / 32) * 32 * 2 bf16. */
size_t packed_weights_floats(int m, int k) { return (size_t)(m + GEMM_MR_MAX) * (k + 31); }

/* amx_ok: the caller can run these weights on AMX tiles (see conv_task_amx). */
static void pack_weights_as(packed_weights *pw, float *panels, const float *w, int m, int k,
                            const gemm_arch *arch, int amx_ok) {
    const int mr = arch->mr;
    pw->m = m;
    pw->k = k;
    pw->panels = panels;
    pw->arch = arch;
    pw->amx = 0;
#ifdef CG_HAVE_AMX
    if (amx_ok && arch->level == GEMM_AMX && m % 16 == 0) {
        amx_pack_a((unsigned short *)panels, w, m, k, (size_t)k);
        pw->amx = 1;
        return;
    }
#else
    (void)amx_ok;
#endif
    int np = (m + mr - 1) / mr;
    for (int p = 0; p < np; p++)
        for (int kk = 0; kk < k; kk++)
            for (int r = 0; r < mr; r++) {
                int row = p * mr + r;
                panels[((size_t)p * k + kk) * mr + r] = row < m ? w[(size_t)row * k + kk] : 0.f;
            }
}

void pack_weights_arch(packed_weights *pw, float *panels, const float *w, int m, int k,
                       const gemm_arch *arch) {
    pack_weights_as(pw, panels, w, m, k, arch, 1);
}

void pack_weights(packed_weights *pw, float *panels, const float *w, int m, int k) {
    pack_weights_arch(pw, panels, w, m, k, gemm_arch_get());
}

/* A fixed-size copy compiles to a few vector moves; a variable one to a slow string
 * instruction, which showed as a third of the run time. */
static void copy_row(float *o, const float *s, int n) {
    if (n == 16) memcpy(o, s, 16 * sizeof *o);
    else if (n == 32) memcpy(o, s, 32 * sizeof *o);
    else memcpy(o, s, (size_t)n * sizeof *o);
}

/* ---- packing B = im2col(in) ---- */

/* An input value read through its channel's map (conv2d_forward_io). */
static inline float mapped(float v, const chan_affine *a) {
    v = (v - a->mean) * a->scale + a->shift;
    return v > a->lo ? v : a->lo;
}

static inline void map_row(float *restrict o, int n, const chan_affine *a) {
    const float m = a->mean, s = a->scale, c = a->shift, lo = a->lo;
    for (int t = 0; t < n; t++) {
        float v = (o[t] - m) * s + c;
        o[t] = v > lo ? v : lo;
    }
}

/* pack_b for a 1x1 stride-1 kernel read through plane pointers (g->unit): B is the input
 * itself. A group of UNIT_GROUP planes at a time, panel after panel: each panel gets the
 * group's rows as one contiguous run, and each plane is read in order, so both sides are
 * a few sequential streams, which the prefetchers follow. (Panel by panel over all kc
 * planes, the reads hopped across the planes 128 bytes at a time; plane by plane, the
 * writes hopped across the panels: either way this packing missed the cache at every hop
 * and took a seventh of the light generator's time.) */
enum { UNIT_GROUP = 8 };
MULTIVERSION static void pack_b_unit(float *dst, const geom *g, int k0, int kc, int n0, int nc, const int NR) {
    for (int kg = 0; kg < kc; kg += UNIT_GROUP) {
        const int kn = kc - kg < UNIT_GROUP ? kc - kg : UNIT_GROUP;
        for (int j0 = 0; j0 < nc; j0 += NR) {
            const int cols = nc - j0 < NR ? nc - j0 : NR;
            for (int kk = kg; kk < kg + kn; kk++) {
                const float *restrict src = g->chan[k0 + kk] + n0 + j0;
                float *restrict o = dst + (size_t)j0 * kc + (size_t)kk * NR;
                if (g->aff) {
                    const chan_affine *a = &g->aff[k0 + kk];
                    const float m = a->mean, sc = a->scale, c = a->shift, lo = a->lo;
                    if (cols == 32) {
                        for (int t = 0; t < 32; t++) {
                            float v = (src[t] - m) * sc + c;
                            o[t] = v > lo ? v : lo;
                        }
                        continue;
                    }
                    for (int t = 0; t < cols; t++) {
                        float v = (src[t] - m) * sc + c;
                        o[t] = v > lo ? v : lo;
                    }
                } else {
                    copy_row(o, src, cols);
                }
                for (int t = cols; t < NR; t++) o[t] = 0.f;
            }
        }
    }
}

/* Row k of B (im2col) is input channel ci's tap (ky, kx): rows ordered (ci, ky, kx), or
 * (ky, kx, ci) when tap_major. k_row_start finds row k0's, k_row_next steps to the next. */
static inline void k_row_start(const geom *g, int k0, int *ci, int *ky, int *kx) {
    const int ksz = g->kh * g->kw;
    if (g->tap_major) *ci = k0 % g->cin, *ky = k0 / g->cin / g->kw, *kx = k0 / g->cin % g->kw;
    else *ci = k0 / ksz, *ky = k0 % ksz / g->kw, *kx = k0 % ksz % g->kw;
}

static inline void k_row_next(const geom *g, int *ci, int *ky, int *kx) {
    if (g->tap_major) {
        if (++*ci == g->cin) {
            *ci = 0;
            if (++*kx == g->kw) *kx = 0, ++*ky;
        }
    } else if (++*kx == g->kw) {
        *kx = 0;
        if (++*ky == g->kh) *ky = 0, ++*ci;
    }
}

/* Whether pack_b_rows packs the panel of columns [n, n + cols): a whole panel on one
 * output row, of an input read without plane pointers or maps. */
static inline int rows_panel(const geom *g, int n, int cols, int NR) {
    return !g->chan && cols == NR && n % g->ow + NR <= g->ow;
}

/* pack_b for the block's panels that rows_panel takes: row after row of B, each across all
 * those panels, so that the input is read as a few sequential streams (one per output row
 * the block spans) instead of hopping across the channel planes a panel's span at a time,
 * which the prefetchers did not follow (conv02_1's input is 67 MB at 512x512; packing this
 * way made the strided convolutions and the deconvolutions 15-20 % faster). */
enum { ROWS_MAX_PANELS = 64 };
static inline void pack_b_rows(float *dst, const float *in, const geom *g, int k0, int kc, int n0, int nc,
                               const int NR) {
    const int s = g->stride;
    const size_t plane = (size_t)g->h * g->w;
    int panel[ROWS_MAX_PANELS], iyb[ROWS_MAX_PANELS], ixb[ROWS_MAX_PANELS], np = 0;
    for (int j0 = 0; j0 < nc && np < ROWS_MAX_PANELS; j0 += NR) {
        int n = n0 + j0;
        if (!rows_panel(g, n, nc - j0 < NR ? nc - j0 : NR, NR)) continue;
        panel[np] = j0 / NR, iyb[np] = (n / g->ow) * s - g->pad, ixb[np] = (n % g->ow) * s - g->pad;
        np++;
    }
    int ci, ky, kx;
    k_row_start(g, k0, &ci, &ky, &kx);
    for (int kk = 0; kk < kc && np; kk++) {
        const float *src = in + ci * plane;
        for (int q = 0; q < np; q++) {
            float *restrict o = dst + ((size_t)panel[q] * kc + kk) * NR;
            const int iy = iyb[q] + ky, ixa = ixb[q] + kx, ixz = ixa + (NR - 1) * s;
            if (iy < 0 || iy >= g->h) {
                memset(o, 0, NR * sizeof *o);
                continue;
            }
            const float *restrict row = src + (size_t)iy * g->w;
            if (ixa >= 0 && ixz < g->w) {
                /* constant trip counts, so that these vectorise (even/odd permutes at stride 2) */
                if (s == 1) copy_row(o, row + ixa, NR);
                else if (s == 2 && NR == 32) for (int t = 0; t < 32; t++) o[t] = row[ixa + 2 * t];
                else for (int t = 0; t < NR; t++) o[t] = row[ixa + s * t];
            } else {
                for (int t = 0; t < NR; t++) {
                    int ix = ixa + t * s;
                    o[t] = ix >= 0 && ix < g->w ? row[ix] : 0.f;
                }
            }
        }
        k_row_next(g, &ci, &ky, &kx);
    }
}

/* Packs rows [k0, k0+kc) and columns [n0, n0+nc) of im2col(in) into dst as NR-wide
 * panels [kc][NR], zero beyond the last column. */
MULTIVERSION static void pack_b(float *dst, const float *in, const geom *g, int k0, int kc, int n0, int nc,
                   const int NR) {
    if (g->unit) {
        pack_b_unit(dst, g, k0, kc, n0, nc, NR);
        return;
    }
    const size_t plane = (size_t)g->h * g->w;
    pack_b_rows(dst, in, g, k0, kc, n0, nc, NR);
    for (int j0 = 0; j0 < nc; j0 += NR) {
        float *panel = dst + (size_t)j0 * kc;
        int cols = nc - j0 < NR ? nc - j0 : NR;
        int n = n0 + j0;
        if (rows_panel(g, n, cols, NR) && j0 / NR < ROWS_MAX_PANELS) continue; /* done above */
        int oy = n / g->ow, ox = n % g->ow;
        /* The common case: the panel's pixels lie on one output row, so for each tap they
         * read one input row at evenly spaced columns. */
        int one_row = ox + cols <= g->ow;
        int iy0[GEMM_NR_MAX], ix0[GEMM_NR_MAX];
        for (int t = 0; t < NR; t++) {
            int p = n + (t < cols ? t : cols - 1);
            iy0[t] = (p / g->ow) * g->stride - g->pad;
            ix0[t] = (p % g->ow) * g->stride - g->pad;
        }
        int ci, ky, kx;
        k_row_start(g, k0, &ci, &ky, &kx);
        for (int kk = 0; kk < kc; kk++) {
            float *o = panel + (size_t)kk * NR;
            const float *src = g->chan ? g->chan[ci] : in + ci * plane;
            const chan_affine *af = g->aff ? &g->aff[ci] : NULL;
            if (one_row) {
                int iy = oy * g->stride - g->pad + ky;
                int ixa = ox * g->stride - g->pad + kx;
                int ixb = ixa + (cols - 1) * g->stride;
                if (iy < 0 || iy >= g->h) {
                    memset(o, 0, NR * sizeof *o);
                } else if (g->stride == 1 && ixa >= 0 && ixb < g->w) {
                    copy_row(o, src + (size_t)iy * g->w + ixa, cols);
                    if (af) map_row(o, cols, af);
                    for (int t = cols; t < NR; t++) o[t] = 0.f;
                } else if (g->stride == 2 && cols == NR && ixa >= 0 && ixb < g->w) {
                    /* a constant trip count, so that it vectorises (even/odd permutes) */
                    const float *restrict row = src + (size_t)iy * g->w + ixa;
                    if (NR == 32) for (int t = 0; t < 32; t++) o[t] = row[2 * t];
                    else for (int t = 0; t < NR; t++) o[t] = row[2 * t];
                    if (af) map_row(o, NR, af);
                } else {
                    const float *row = src + (size_t)iy * g->w;
                    for (int t = 0; t < NR; t++) {
                        int ix = ixa + t * g->stride;
                        o[t] = (t < cols && ix >= 0 && ix < g->w) ? (af ? mapped(row[ix], af) : row[ix]) : 0.f;
                    }
                }
            } else {
                for (int t = 0; t < NR; t++) {
                    int iy = iy0[t] + ky, ix = ix0[t] + kx;
                    float v = 0.f;
                    if (t < cols && iy >= 0 && iy < g->h && ix >= 0 && ix < g->w) {
                        v = src[(size_t)iy * g->w + ix];
                        if (af) v = mapped(v, af);
                    }
                    o[t] = v;
                }
            }
            k_row_next(g, &ci, &ky, &kx);
        }
    }
}

/* ---- the blocked GEMM over one column block ---- */

typedef struct {
    float *out;
    const float *in;
    const packed_weights *pw;
    const float *bias;
    geom g;
    int npix;
    int nc;         /* columns per block (task): NC, or io_block_cols's */
    float *scratch; /* per thread: 2 * KC * nc_max floats, 64-byte aligned */
    int nc_max;     /* NC, or NC_IO for conv2d_forward_io (conv_io_scratch_floats) */
    float *const *orow; /* conv2d_forward_io: output row (channel) co's plane, else NULL */
    moments *partial;   /* conv2d_forward_io with stats: each column block's moments */
} conv_job;

/* One micro-kernel tile c[rows][cols] (row stride ldc) of a product, through a full tile
 * in registers' shape when it is an edge tile (rows < mr or cols < nr). bias as the kernel
 * takes it (NULL: accumulate onto c). */
static void tile_product(const gemm_arch *arch, int kc, const float *a, const float *b, float *c,
                         size_t ldc, const float *bias, int rows, int cols) {
    if (rows == arch->mr && cols == arch->nr) {
        arch->kernel(kc, a, b, c, ldc, bias);
        return;
    }
    float tile[GEMM_MR_MAX * GEMM_NR_MAX];
    if (!bias)
        for (int r = 0; r < rows; r++) memcpy(tile + r * arch->nr, c + (size_t)r * ldc, cols * sizeof(float));
    arch->kernel(kc, a, b, tile, (size_t)arch->nr, bias);
    for (int r = 0; r < rows; r++) memcpy(c + (size_t)r * ldc, tile + r * arch->nr, cols * sizeof(float));
}

/* tile_product for output rows that are not evenly spaced (conv2d_forward_io's planes):
 * rows[r] + col is row r of the tile, through a tile in registers' shape. */
static void tile_product_rows(const gemm_arch *arch, int kc, const float *a, const float *b,
                              float *const *rows_p, size_t col, const float *bias, int rows, int cols) {
    if (arch->kernel_rows && rows == arch->mr && cols == arch->nr) {
        arch->kernel_rows(kc, a, b, rows_p, col, bias);
        return;
    }
    float tile[GEMM_MR_MAX * GEMM_NR_MAX];
    if (!bias)
        for (int r = 0; r < rows; r++) copy_row(tile + r * arch->nr, rows_p[r] + col, cols);
    arch->kernel(kc, a, b, tile, (size_t)arch->nr, bias);
    for (int r = 0; r < rows; r++) copy_row(rows_p[r] + col, tile + r * arch->nr, cols);
}

/* Output rows [r0, r0 + rows) of a job: the first row's address when they are evenly
 * spaced a plane apart (the kernel's ldc), else NULL. */
static float *panel_rows(const conv_job *j, int r0, int rows) {
    if (!j->orow) return j->out + (size_t)r0 * j->npix;
    float *base = j->orow[r0];
    for (int r = 1; r < rows; r++)
        if (j->orow[r0 + r] != base + (size_t)r * j->npix) return NULL;
    return base;
}

/* The bias of output rows [row0, row0 + n) for a kernel, zero past m or without a bias. */
static void bias_rows(float *dst, const float *bias, int row0, int n, int m) {
    for (int r = 0; r < n; r++) dst[r] = bias && row0 + r < m ? bias[row0 + r] : 0.f;
}

#ifdef CG_HAVE_AMX
/* Packs rows [k0, k0 + kc) of B's column block [n0, n0 + nc) as fp32 panels (bpack) and
 * converts them to AMX tiles (bt), panel after panel: [panel][ceil(kc/32)][4 tiles]. */
AMX_TARGET static void amx_pack_block(unsigned short *bt, float *bpack, const float *in, const geom *g,
                                      int k0, int kc, int n0, int nc) {
    const int kbs = (kc + 31) / 32;
    pack_b(bpack, in, g, k0, kc, n0, nc, 32);
    for (int jp = 0; jp * 32 < nc; jp++)
        amx_pack_b_panel(bt + (size_t)jp * kbs * 4 * AMX_TILE, bpack + (size_t)jp * 32 * kc, kc);
}

/* amx_gemm for a panel of `cols` <= 32 columns: an edge panel goes through a full tile. */
AMX_TARGET static void amx_panel(float *c, size_t ldc, const unsigned short *a, const unsigned short *b,
                                 int kb, const float *bias16, int cols) {
    if (cols == 32) {
        amx_gemm(c, ldc, a, b, kb, bias16);
        return;
    }
    float t[16 * 32];
    if (!bias16)
        for (int r = 0; r < 16; r++) memcpy(t + r * 32, c + (size_t)r * ldc, cols * sizeof(float));
    amx_gemm(t, 32, a, b, kb, bias16);
    for (int r = 0; r < 16; r++) memcpy(c + (size_t)r * ldc, t + r * 32, cols * sizeof(float));
}

/* [16][16]: row r all the bias of output row0 + r (what amx_gemm starts a tile from). */
static void bias_tile(float *b16, const float *bias, int row0) {
    float rows[16];
    bias_rows(rows, bias, row0, 16, row0 + 16);
    for (int r = 0; r < 256; r++) b16[r] = rows[r / 16];
}
#endif

#ifdef CG_HAVE_AMX
/* The convolution on AMX tiles (amx.h): each packed block of B is converted to tiles,
 * panel by panel, and multiplied 16 outputs x 32 columns at a time. */
AMX_TARGET static void conv_task_amx(conv_job *j, int task) {
    const packed_weights *pw = j->pw;
    const int m = pw->m, k = pw->k, kbt = (k + 31) / 32;
    const int n0 = task * NC, nc = j->npix - n0 < NC ? j->npix - n0 : NC;
    float *bpack = j->scratch + (size_t)cg_pool_thread_index() * 2 * KC * NC;
    unsigned short *bt = (unsigned short *)(bpack + KC * NC);
    const unsigned short *a0 = (const unsigned short *)pw->panels;
    float bias16[256] __attribute__((aligned(64)));
    amx_configure();
    for (int k0 = 0; k0 < k; k0 += KC) {
        const int kc = k - k0 < KC ? k - k0 : KC, kbs = (kc + 31) / 32;
        amx_pack_block(bt, bpack, j->in, &j->g, k0, kc, n0, nc);
        for (int p = 0; p < m / 16; p++) {
            const unsigned short *a = a0 + ((size_t)p * kbt + k0 / 32) * 2 * AMX_TILE;
            if (k0 == 0) bias_tile(bias16, j->bias, p * 16);
            for (int jp = 0; jp * 32 < nc; jp++)
                amx_panel(j->out + (size_t)p * 16 * j->npix + n0 + jp * 32, (size_t)j->npix, a,
                          bt + (size_t)jp * kbs * 4 * AMX_TILE, kbs, k0 == 0 ? bias16 : NULL,
                          nc - jp * 32 < 32 ? nc - jp * 32 : 32);
        }
    }
    amx_release();
}
#endif

static void conv_task(void *ctx, int task, int ntasks) {
    (void)ntasks;
    conv_job *j = ctx;
#ifdef CG_HAVE_AMX
    if (j->pw->amx) {
        conv_task_amx(j, task);
        return;
    }
#endif
    const int m = j->pw->m, k = j->pw->k;
    const int n0 = task * j->nc;
    const int nc = j->npix - n0 < j->nc ? j->npix - n0 : j->nc;
    float *bpack = j->scratch + (size_t)cg_pool_thread_index() * 2 * KC * j->nc_max;
    const gemm_arch *arch = j->pw->arch;
    const int MR = arch->mr, NR = arch->nr;
    moments s = {0, 0, 0};
    for (int k0 = 0; k0 < k; k0 += KC) {
        int kc = k - k0 < KC ? k - k0 : KC;
        pack_b(bpack, j->in, &j->g, k0, kc, n0, nc, NR);
        for (int p = 0; p < (m + MR - 1) / MR; p++) {
            const float *a = j->pw->panels + ((size_t)p * k + k0) * MR;
            int rows = m - p * MR < MR ? m - p * MR : MR;
            float bias[GEMM_MR_MAX]; /* the first depth block starts from the bias */
            bias_rows(bias, j->bias, p * MR, MR, m);
            float *c = panel_rows(j, p * MR, rows);
            for (int j0 = 0; j0 < nc; j0 += NR) {
                if (c)
                    tile_product(arch, kc, a, bpack + (size_t)j0 * kc, c + n0 + j0, (size_t)j->npix,
                                 k0 == 0 ? bias : NULL, rows, nc - j0 < NR ? nc - j0 : NR);
                else
                    tile_product_rows(arch, kc, a, bpack + (size_t)j0 * kc, j->orow + p * MR, (size_t)(n0 + j0),
                                      k0 == 0 ? bias : NULL, rows, nc - j0 < NR ? nc - j0 : NR);
            }
            /* the moments of the panel's finished rows, while they are in L1 */
            if (j->partial && k0 + kc == k) {
                const float *rp[GEMM_MR_MAX];
                for (int r = 0; r < rows; r++)
                    rp[r] = (j->orow ? j->orow[p * MR + r] : j->out + (size_t)(p * MR + r) * j->npix) + n0;
                moments pm = moments_of_rows(rp, rows, (size_t)nc);
                moments_merge(&s, &pm);
            }
        }
    }
    if (j->partial) j->partial[task] = s;
}

size_t conv_scratch_floats(int threads) { return (size_t)threads * 2 * KC * NC + 16; }
size_t conv_io_scratch_floats(int threads) { return (size_t)threads * 2 * KC * NC_IO + 16; }

static void run_gemm(float *out, const float *in, const packed_weights *pw, const float *b,
                     const geom *g, float *scratch, cg_pool *pool) {
    /* The micro-kernel loads packed B with aligned loads. */
    float *aligned = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    conv_job j = {out, in, pw, b, *g, g->oh * g->ow, NC, aligned, NC, NULL, NULL};
    cg_pool_run(pool, conv_task, &j, (j.npix + NC - 1) / NC);
}

/* ---- few output channels: direct convolution ----
 * The output layer (64 -> 3, 7x7) would leave most of a GEMM tile empty and spend its time
 * packing 3136 rows of im2col for 3 outputs each. Directly, each input row is loaded once
 * and multiply-added into every output row, along contiguous pixels, which vectorises. */

typedef struct {
    float *out;
    const float *in, *w, *b;
    conv_dims d;
    int oh, ow;
} direct_job;

MULTIVERSION static void direct_row_task(void *ctx, int oy, int n) {
    (void)n;
    const direct_job *j = ctx;
    const conv_dims *d = &j->d;
    const int ow = j->ow;
    float acc[CONV_DIRECT_MAX_COUT][512];
    for (int x0 = 0; x0 < ow; x0 += 512) {
        int nx = ow - x0 < 512 ? ow - x0 : 512;
        for (int co = 0; co < d->cout; co++)
            for (int x = 0; x < nx; x++) acc[co][x] = j->b ? j->b[co] : 0.f;
        for (int ci = 0; ci < d->cin; ci++)
            for (int ky = 0; ky < d->kh; ky++) {
                const float *row = j->in + ((size_t)ci * d->h + oy + ky) * d->w + x0;
                for (int kx = 0; kx < d->kw; kx++)
                    for (int co = 0; co < d->cout; co++) {
                        float wv = j->w[(((size_t)co * d->cin + ci) * d->kh + ky) * d->kw + kx];
                        /* restrict: without it the loop is not vectorised */
                        float *restrict a = acc[co];
                        const float *restrict r = row + kx;
                        for (int x = 0; x < nx; x++) a[x] += wv * r[x];
                    }
            }
        for (int co = 0; co < d->cout; co++)
            memcpy(j->out + ((size_t)co * j->oh + oy) * ow + x0, acc[co], (size_t)nx * sizeof(float));
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The output layer's shape (3 outputs) with AVX-512. For each input row (ci, ky) the
 * output row is swept in blocks of 3 x 64 outputs held in 12 registers over the 7 taps kx:
 * 4 loads, 3 broadcasts and 12 FMAs a tap, and the input is read row by row, in order.
 * (The loop above loads and stores its accumulators at every tap, and ran at a fifth of
 * the FMA peak.) The output rows themselves are the accumulators between input rows, and
 * a task's input rows are each read once, for all the output rows they feed: the input
 * (64 channels at full size) does not fit in any cache, and reading it 7 times, once per
 * kernel row, was what bounded this layer. */
#define DIRECT_ROWS 8 /* output rows per task: each input row is loaded from memory once per task */

/* Input row `row` into output rows o[0] (and o[1] if two) of the 3 channels, with the
 * kernel rows whose weights start at wt[r][co]: a block of 64 columns at a time, its
 * 3 x 4 (or 2 x 3 x 4) accumulators in registers across the kx taps. Two output rows
 * share each input load, which halves the loads per FMA (the loop is load-bound). */
static inline __attribute__((target("avx512f"), always_inline)) void
direct3_row_pass(float *o[2][3], const float *row, const float *wt[2][3], int kw, int ow, int two) {
    for (int x0 = 0; x0 < ow; x0 += 64) {
        __mmask16 m[4];
        __m512 acc[2][3][4];
        for (int q = 0; q < 4; q++) {
            int left = ow - x0 - 16 * q;
            m[q] = left <= 0 ? 0 : left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
            for (int r = 0; r <= two; r++)
                for (int co = 0; co < 3; co++) acc[r][co][q] = _mm512_maskz_loadu_ps(m[q], o[r][co] + x0 + 16 * q);
        }
        for (int kx = 0; kx < kw; kx++) {
            __m512 c[2][3];
            for (int r = 0; r <= two; r++)
                for (int co = 0; co < 3; co++) c[r][co] = _mm512_set1_ps(wt[r][co][kx]);
            for (int q = 0; q < 4; q++) {
                __m512 v = _mm512_maskz_loadu_ps(m[q], row + x0 + kx + 16 * q);
                for (int r = 0; r <= two; r++)
                    for (int co = 0; co < 3; co++) acc[r][co][q] = _mm512_fmadd_ps(c[r][co], v, acc[r][co][q]);
            }
        }
        for (int q = 0; q < 4; q++)
            for (int r = 0; r <= two; r++)
                for (int co = 0; co < 3; co++) _mm512_mask_storeu_ps(o[r][co] + x0 + 16 * q, m[q], acc[r][co][q]);
    }
}

__attribute__((target("avx512f"))) static void direct3_rows_avx512(void *ctx, int task, int n) {
    (void)n;
    const direct_job *j = ctx;
    const conv_dims *d = &j->d;
    const int ow = j->ow, taps = d->kh * d->kw;
    const int oy0 = task * DIRECT_ROWS, oy1 = oy0 + DIRECT_ROWS < j->oh ? oy0 + DIRECT_ROWS : j->oh;
    const size_t plane = (size_t)j->oh * ow;
    for (int oy = oy0; oy < oy1; oy++)
        for (int co = 0; co < 3; co++)
            for (int x = 0; x < ow; x++) j->out[co * plane + (size_t)oy * ow + x] = j->b ? j->b[co] : 0.f;
    for (int ci = 0; ci < d->cin; ci++)
        for (int iy = oy0; iy < oy1 + d->kh - 1; iy++) {
            const float *row = j->in + ((size_t)ci * d->h + iy) * d->w;
            /* the output rows this input row feeds: oy = iy - ky, in pairs */
            int lo = iy - d->kh + 1 > oy0 ? iy - d->kh + 1 : oy0, hi = iy < oy1 - 1 ? iy : oy1 - 1;
            for (int oy = lo; oy <= hi; oy += 2) {
                const int two = oy + 1 <= hi;
                float *o[2][3];
                const float *wt[2][3];
                for (int r = 0; r <= two; r++)
                    for (int co = 0; co < 3; co++) {
                        o[r][co] = j->out + co * plane + (size_t)(oy + r) * ow;
                        wt[r][co] = j->w + (size_t)co * d->cin * taps + (size_t)ci * taps + (size_t)(iy - oy - r) * d->kw;
                    }
                if (two) direct3_row_pass(o, row, wt, d->kw, ow, 1);
                else direct3_row_pass(o, row, wt, d->kw, ow, 0);
            }
        }
}
#endif

void conv2d_direct_forward(float *out, const float *in, const float *w, const float *b,
                           const conv_dims *d, cg_pool *pool) {
    direct_job j = {out, in, w, b, *d, conv_out_h(d), conv_out_w(d)};
#if defined(__x86_64__) && defined(__GNUC__)
    if (d->cout == 3 && gemm_arch_get()->level >= GEMM_AVX512) {
        cg_pool_run(pool, direct3_rows_avx512, &j, (j.oh + DIRECT_ROWS - 1) / DIRECT_ROWS);
        return;
    }
#endif
    cg_pool_run(pool, direct_row_task, &j, j.oh);
}

void conv2d_forward(float *out, const float *in, const packed_weights *pw, const float *b,
                    const conv_dims *d, float *scratch, cg_pool *pool) {
    geom g = {d->cin, d->h, d->w, d->kh, d->kw, d->stride, d->pad, conv_out_h(d), conv_out_w(d), 0, NULL, NULL, 0};
    run_gemm(out, in, pw, b, &g, scratch, pool);
}

/* ---- plane pointers, input maps and output moments (the light generator) ---- */

void pack_weights_fp32(packed_weights *pw, float *panels, const float *w, int m, int k,
                       const gemm_arch *arch) {
    pack_weights_as(pw, panels, w, m, k, arch, 0);
}

/* conv2d_forward_io's column block for npix output pixels: the fewest blocks of at most
 * NC_IO columns, rounded up to a multiple of 4, shared out evenly (in multiples of 32, every
 * kernel's NR divides it). The tasks then come out even on 1, 2 or 4 threads (64x64, the
 * residual blocks' size at 256x256, was 11 blocks of 384: 6 against 5 on 2 threads), and
 * the blocks depend only on the size, so the moments do not depend on the thread count. */
static int io_block_cols(int npix) {
    int tasks = (npix + NC_IO - 1) / NC_IO;
    tasks = (tasks + 3) / 4 * 4;
    return ((npix + tasks - 1) / tasks + 31) / 32 * 32;
}

int conv_io_tasks(const conv_dims *d) {
    int npix = conv_out_h(d) * conv_out_w(d), nc = io_block_cols(npix);
    return (npix + nc - 1) / nc;
}

void conv2d_forward_io(const conv_io *io, const packed_weights *pw, const float *b,
                       const conv_dims *d, float *scratch, cg_pool *pool) {
    geom g = {d->cin, d->h, d->w, d->kh, d->kw, d->stride, d->pad, conv_out_h(d), conv_out_w(d), 0,
              io->in, io->aff, d->kh == 1 && d->kw == 1 && d->stride == 1 && d->pad == 0};
    float *aligned = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    conv_job j = {NULL, NULL, pw, b, g, g.oh * g.ow, io_block_cols(g.oh * g.ow), aligned, NC_IO, io->out,
                  io->stats ? io->partial : NULL};
    const int tasks = conv_io_tasks(d);
    cg_pool_run(pool, conv_task, &j, tasks);
    if (io->stats) {
        *io->stats = (moments){0, 0, 0};
        for (int t = 0; t < tasks; t++) moments_merge(io->stats, &io->partial[t]);
    }
}

/* ---- transposed convolution k3 s2 p1 op1 as four sub-convolutions ----
 * Output row oy = 2*iy - 1 + ky. Even rows (oy = 2m) take ky = 1 from iy = m; odd rows
 * (oy = 2m+1) take ky = 2 from iy = m and ky = 0 from iy = m+1. Columns likewise.
 *
 * So every phase (py, px) reads input taps from the 2x2 window at (m, n): phase (0,0) tap
 * (0,0) only, (0,1) taps (0,0) and (0,1), (1,0) taps (0,0) and (1,0), (1,1) all four. B is
 * packed once, as the im2col of that window with its rows tap-major (tap (dy, dx), then
 * channel), and each phase multiplies its weights with the rows of its taps: 4 taps' worth
 * of packing instead of 9 when each phase packed its own, which at 64 outputs cost as much
 * as the multiplies. The phases' outputs are then interleaved into the output in one
 * parallel pass. */

static const int taps_n[2] = {1, 2};
static const int taps_k[2][2] = {{1, -1}, {2, 0}}; /* kernel index of tap d for parity */

size_t packed_deconv_floats(int cin, int cout) {
    size_t n = 0;
    for (int py = 0; py < 2; py++)
        for (int px = 0; px < 2; px++)
            n += packed_weights_floats(cout, cin * taps_n[py] * taps_n[px]);
    return n;
}

size_t deconv_tmp_floats(const deconv_dims *d) { return (size_t)4 * d->cout * d->h * d->w; }

int pack_deconv_weights(packed_deconv *pd, float *panels, const float *w, int cin, int cout) {
    return pack_deconv_weights_arch(pd, panels, w, cin, cout, gemm_arch_get());
}

size_t deconv_pack_tmp_floats(int cin, int cout) { return (size_t)cout * cin * 4; }

int pack_deconv_weights_arch(packed_deconv *pd, float *panels, const float *w, int cin, int cout,
                             const gemm_arch *arch) {
    return pack_deconv_weights_tmp(pd, panels, w, cin, cout, arch, NULL);
}

int pack_deconv_weights_tmp(packed_deconv *pd, float *panels, const float *w, int cin, int cout,
                            const gemm_arch *arch, float *tmp) {
    float *sub = tmp ? tmp : malloc(deconv_pack_tmp_floats(cin, cout) * sizeof *sub);
    if (!sub) return -1;
    for (int py = 0; py < 2; py++)
        for (int px = 0; px < 2; px++) {
            int th = taps_n[py], tw = taps_n[px], k = cin * th * tw;
            for (int co = 0; co < cout; co++)
                for (int dy = 0; dy < th; dy++)
                    for (int dx = 0; dx < tw; dx++)
                        for (int ci = 0; ci < cin; ci++)
                            sub[(size_t)co * k + (dy * tw + dx) * cin + ci] =
                                w[(((size_t)ci * cout + co) * 3 + taps_k[py][dy]) * 3 +
                                  taps_k[px][dx]];
            /* AMX needs each tap's rows to start on a 32-row tile boundary */
            pack_weights_as(&pd->phase[py * 2 + px], panels, sub, cout, k, arch, cin % 32 == 0);
            panels += packed_weights_floats(cout, k);
        }
    if (!tmp) free(sub);
    return 0;
}

typedef struct {
    float *tmp; /* [phase][cout][h][w] */
    const float *in, *bias;
    const packed_deconv *pd;
    geom g; /* the 2x2 window, tap-major */
    int npix;
    float *scratch;
} deconv_job;

/* Tap (dy, dx) of a phase whose window is tw taps wide: its rows of B are global rows
 * [ga, ga + cin); those within the block [k0, k0 + kc) are [*ka, *kb), which start at row
 * *klocal of the phase's weights. Returns 0 when the block has none of them. */
static int tap_rows(int cin, int dy, int dx, int tw, int k0, int kc, int *ka, int *kb, int *klocal) {
    int ga = (dy * 2 + dx) * cin;
    *ka = ga > k0 ? ga : k0;
    *kb = ga + cin < k0 + kc ? ga + cin : k0 + kc;
    *klocal = (dy * tw + dx) * cin + (*ka - ga);
    return *ka < *kb;
}

#ifdef CG_HAVE_AMX
AMX_TARGET static void deconv_task_amx(deconv_job *j, int task) {
    const int cin = j->g.cin, m = j->pd->phase[0].m, k = 4 * cin;
    const int n0 = task * NC, nc = j->npix - n0 < NC ? j->npix - n0 : NC;
    float *bpack = j->scratch + (size_t)cg_pool_thread_index() * 2 * KC * NC;
    unsigned short *bt = (unsigned short *)(bpack + KC * NC);
    float bias16[256] __attribute__((aligned(64)));
    amx_configure();
    for (int k0 = 0; k0 < k; k0 += KC) {
        const int kc = k - k0 < KC ? k - k0 : KC, kbs = kc / 32;
        amx_pack_block(bt, bpack, j->in, &j->g, k0, kc, n0, nc);
        for (int ph = 0; ph < 4; ph++) {
            const packed_weights *pw = &j->pd->phase[ph];
            const int th = taps_n[ph >> 1], tw = taps_n[ph & 1], kbt = pw->k / 32;
            float *out = j->tmp + (size_t)ph * m * j->npix;
            for (int dy = 0; dy < th; dy++)
                for (int dx = 0; dx < tw; dx++) {
                    int ka, kb, klocal;
                    if (!tap_rows(cin, dy, dx, tw, k0, kc, &ka, &kb, &klocal)) continue;
                    for (int p = 0; p < m / 16; p++) {
                        if (ka == 0) bias_tile(bias16, j->bias, p * 16); /* every phase's first rows */
                        for (int jp = 0; jp * 32 < nc; jp++)
                            amx_panel(out + (size_t)p * 16 * j->npix + n0 + jp * 32, (size_t)j->npix,
                                      (const unsigned short *)pw->panels + ((size_t)p * kbt + klocal / 32) * 2 * AMX_TILE,
                                      bt + ((size_t)jp * kbs + (ka - k0) / 32) * 4 * AMX_TILE, (kb - ka) / 32,
                                      ka == 0 ? bias16 : NULL, nc - jp * 32 < 32 ? nc - jp * 32 : 32);
                    }
                }
        }
    }
    amx_release();
}
#endif

static void deconv_task(void *ctx, int task, int ntasks) {
    (void)ntasks;
    deconv_job *j = ctx;
#ifdef CG_HAVE_AMX
    if (j->pd->phase[0].amx) {
        deconv_task_amx(j, task);
        return;
    }
#endif
    const int cin = j->g.cin, m = j->pd->phase[0].m, k = 4 * cin;
    const int n0 = task * NC, nc = j->npix - n0 < NC ? j->npix - n0 : NC;
    float *bpack = j->scratch + (size_t)cg_pool_thread_index() * 2 * KC * NC;
    const gemm_arch *arch = j->pd->phase[0].arch;
    const int MR = arch->mr, NR = arch->nr;
    for (int k0 = 0; k0 < k; k0 += KC) {
        int kc = k - k0 < KC ? k - k0 : KC;
        pack_b(bpack, j->in, &j->g, k0, kc, n0, nc, NR);
        for (int ph = 0; ph < 4; ph++) {
            const packed_weights *pw = &j->pd->phase[ph];
            const int th = taps_n[ph >> 1], tw = taps_n[ph & 1];
            float *out = j->tmp + (size_t)ph * m * j->npix;
            for (int dy = 0; dy < th; dy++)
                for (int dx = 0; dx < tw; dx++) {
                    int ka, kb, klocal;
                    if (!tap_rows(cin, dy, dx, tw, k0, kc, &ka, &kb, &klocal)) continue;
                    for (int p = 0; p < (m + MR - 1) / MR; p++) {
                        float bias[GEMM_MR_MAX]; /* every phase's first rows start from it */
                        bias_rows(bias, j->bias, p * MR, MR, m);
                        for (int j0 = 0; j0 < nc; j0 += NR)
                            tile_product(arch, kb - ka, pw->panels + ((size_t)p * pw->k + klocal) * MR,
                                         bpack + (size_t)j0 * kc + (size_t)(ka - k0) * NR,
                                         out + (size_t)p * MR * j->npix + n0 + j0, (size_t)j->npix,
                                         ka == 0 ? bias : NULL, m - p * MR < MR ? m - p * MR : MR,
                                         nc - j0 < NR ? nc - j0 : NR);
                    }
                }
        }
    }
}

typedef struct {
    float *out;
    const float *tmp;
    int cout, h, w;
    deconv_window win;
} interleave_job;

/* The window's rows of channel co: output row 2y + py from phases (py, 0) and (py, 1). */
MULTIVERSION static void interleave_task(void *ctx, int co, int n) {
    (void)n;
    const interleave_job *j = ctx;
    const size_t phase = (size_t)j->cout * j->h * j->w;
    const int px = j->win.px, dw = 2 * j->w + 2 * px, rows = j->win.y1 - j->win.y0;
    for (int r = 0; r < rows; r++) {
        float *restrict dst = j->out + ((size_t)co * rows + r) * dw;
        const int oy = j->win.y0 + r;
        if (oy < 0 || oy >= 2 * j->h) {
            memset(dst, 0, (size_t)dw * sizeof *dst);
            continue;
        }
        const float *restrict e = j->tmp + (size_t)(2 * (oy & 1)) * phase + ((size_t)co * j->h + oy / 2) * j->w;
        const float *restrict o = e + phase;
        for (int x = 0; x < px; x++) dst[x] = dst[dw - 1 - x] = 0.f;
        dst += px;
        for (int x = 0; x < j->w; x++) dst[2 * x] = e[x], dst[2 * x + 1] = o[x];
    }
}

void deconv_s2_forward(float *out, float *tmp, const float *in, const packed_deconv *pd,
                       const float *b, const deconv_dims *d, const deconv_window *win, float *scratch,
                       cg_pool *pool) {
    /* the window reads one row and column past the input: zeros, as in pack_b */
    deconv_job j = {tmp, in, b, pd, {d->cin, d->h, d->w, 2, 2, 1, 0, d->h, d->w, 1, NULL, NULL, 0}, d->h * d->w,
                    (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63)};
    cg_pool_run(pool, deconv_task, &j, (j.npix + NC - 1) / NC);
    interleave_job il = {out, tmp, d->cout, d->h, d->w, win ? *win : (deconv_window){0, 2 * d->h, 0}};
    cg_pool_run(pool, interleave_task, &il, d->cout);
}
