/* winograd_s2.c: the generator's stride-2 3x3 convolutions and 3x3 stride-2 transposed
 * convolutions (k3 s2 p1 op1) by Winograd's minimal filtering, with 81 products per
 * tile and input channel where the packed GEMM (conv.c) does 144.
 *
 * Along each dimension both layers split into a one-tap and a two-tap filter over every
 * other sample (the polyphase view that conv.c's transposed convolution also takes):
 *   stride-2 conv, y[m] = w0 x[2m] + w1 x[2m+1] + w2 x[2m+2] (x the padded input): the
 *     one tap w1 over the odd samples, the two taps (w0, w2) over the even ones, summed;
 *   transposed conv, y[2m] = w1 x[m] and y[2m+1] = w2 x[m] + w0 x[m+1]: the one tap makes
 *     the even outputs, the two taps (w2, w0) the odd ones.
 * A tile of 4 (one tap: 4 products) and F(4, 2) for the two taps (5 products, Lavin &
 * Gray 2016's construction at the points 0, 1, -1, 2 and infinity) give 9 components
 * per dimension, 81 per 2-D tile, each a GEMM U[xi] (cout x cin) . V[xi] (cin x tiles)
 * run by the micro-kernels, as in winograd.c. The 4 one-tap components of a dimension
 * share their weights, so 36 weight matrices serve the 81 products.
 *
 * The F(4, 2) matrices (B^T for the input, G for the taps, A^T for the output):
 *   B^T = [2 -1 -2 1 0; 0 -2 -1 1 0; 0 2 -3 1 0; 0 -1 0 1 0; 0 2 -1 -2 1]
 *   G   = [1/2 0; -1/2 -1/2; -1/6 1/6; 1/6 1/3; 0 1]
 *   A^T = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 0; 0 1 -1 8 1]
 * (A^T (G g . B^T d) is the correlation of d with the taps g; test_kernels checks each
 * layer against the naive one.) Their entries are small, so the results are within a
 * few float ulps of the sums' scale, as direct convolution's are.
 *
 * Work is split as in winograd.c: a task transforms one panel of NR tiles into the
 * micro-kernel's packed-B layout, multiplies and transforms back, so the transformed
 * tensors never exist whole. The transforms run on WT tiles at a time, one per lane. The
 * AMX kernel keeps conv.c's path (its bf16x3 products would not gain). */
#include "gemm.h"
#include "ops.h"
#include "pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WT 16 /* tiles per transform batch: one per vector lane */
#define NC9 9 /* components per dimension */
#define NXI (NC9 * NC9)

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

/* ---- the 1-D transforms, on WT lanes of vectors s floats apart ---- */

/* F(4, 2)'s B^T on 5 samples x[0..4] (lanes x + i * xs) into y[0..4] (y + i * ys). */
static inline void bt5(float *y, int ys, const float *x, int xs) {
    for (int t = 0; t < WT; t++) {
        float d0 = x[t], d1 = x[xs + t], d2 = x[2 * xs + t], d3 = x[3 * xs + t], d4 = x[4 * xs + t];
        y[t] = 2.f * (d0 - d2) - d1 + d3;
        y[ys + t] = d3 - 2.f * d1 - d2;
        y[2 * ys + t] = 2.f * d1 - 3.f * d2 + d3;
        y[3 * ys + t] = d3 - d1;
        y[4 * ys + t] = 2.f * (d1 - d3) - d2 + d4;
    }
}

/* The input side along one dimension: the 9 components of a tile from its samples x[i]
 * (x + i * xs). A stride-2 convolution's tile reads 9 samples, its one tap the odd ones
 * and its two taps the even ones; a transposed convolution's reads 5, both filters all
 * of them (the one tap the first 4). */
static inline void in_1d(float *y, int ys, const float *x, int xs, int deconv) {
    if (deconv) {
        for (int i = 0; i < 4; i++) memcpy(y + i * ys, x + i * xs, WT * sizeof(float));
        bt5(y + 4 * ys, ys, x, xs);
    } else {
        for (int i = 0; i < 4; i++) memcpy(y + i * ys, x + (2 * i + 1) * xs, WT * sizeof(float));
        bt5(y + 4 * ys, ys, x, 2 * xs);
    }
}

/* A^T on 5 components m[0..4] (m + i * ms): the two taps' 4 outputs, o[i] (o + i * os). */
static inline void at5(float *o, int os, const float *m, int ms) {
    for (int t = 0; t < WT; t++) {
        float m0 = m[t], m1 = m[ms + t], m2 = m[2 * ms + t], m3 = m[3 * ms + t], m4 = m[4 * ms + t];
        float a = m1 + m2, b = m1 - m2;
        o[t] = m0 + a + m3;
        o[os + t] = b + 2.f * m3;
        o[2 * os + t] = a + 4.f * m3;
        o[3 * os + t] = b + 8.f * m3 + m4;
    }
}

/* The output side along one dimension: a stride-2 convolution's 4 outputs (one tap plus
 * two taps), or a transposed convolution's 8 (the one tap's at even, the two taps' at odd
 * positions), o[i] at o + i * os, from the 9 components m + i * ms. */
static inline void out_1d(float *o, int os, const float *m, int ms, int deconv) {
    float two[4 * WT];
    at5(two, WT, m + 4 * ms, ms);
    for (int i = 0; i < 4; i++) {
        const float *one = m + i * ms, *tw = two + i * WT;
        if (deconv) {
            memcpy(o + 2 * i * os, one, WT * sizeof(float));
            memcpy(o + (2 * i + 1) * os, tw, WT * sizeof(float));
        } else {
            float *d = o + i * os;
            for (int t = 0; t < WT; t++) d[t] = one[t] + tw[t];
        }
    }
}

/* ---- weights ---- */

/* G of the components' weights from the 3 taps (k0, k1, k2) along a dimension: row 0 is
 * the one tap (all 4 one-tap components), rows 1..5 F(4, 2)'s G on the two taps, which
 * are (k0, k2) for the stride-2 convolution and (k2, k0) for the transposed one. */
static void taps_matrix(double t[6][3], int deconv) {
    static const double g[5][2] = {{0.5, 0}, {-0.5, -0.5}, {-1.0 / 6, 1.0 / 6}, {1.0 / 6, 1.0 / 3}, {0, 1}};
    memset(t, 0, 6 * 3 * sizeof(double));
    t[0][1] = 1;
    for (int j = 0; j < 5; j++) {
        t[1 + j][deconv ? 2 : 0] = g[j][0];
        t[1 + j][deconv ? 0 : 2] = g[j][1];
    }
}

/* The weight matrix (0..35) of component xi = a * 9 + b. */
static inline int weight_of(int xi) {
    int a = xi / NC9, b = xi % NC9;
    return (a < 4 ? 0 : a - 3) * 6 + (b < 4 ? 0 : b - 3);
}

int winograd_s2_supported(const gemm_arch *arch) { return arch->nr % WT == 0 && arch->level != GEMM_AMX; }

size_t winograd_s2_weights_floats(int cout, int cin) { return 36 * packed_weights_floats(cout, cin); }

int pack_winograd_s2_weights(winograd_s2_weights *ww, float *buf, const float *w, int cout, int cin, int deconv,
                             const gemm_arch *arch) {
    float *u = malloc((size_t)cout * cin * sizeof *u);
    if (!u) return -1;
    double t[6][3];
    taps_matrix(t, deconv);
    ww->cout = cout, ww->cin = cin, ww->deconv = deconv;
    for (int p = 0; p < 36; p++) {
        const double *ta = t[p / 6], *tb = t[p % 6];
        for (int co = 0; co < cout; co++)
            for (int ci = 0; ci < cin; ci++) {
                const float *k = deconv ? w + ((size_t)ci * cout + co) * 9 : w + ((size_t)co * cin + ci) * 9;
                double s = 0;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) s += ta[ky] * tb[kx] * k[ky * 3 + kx];
                u[(size_t)co * cin + ci] = (float)s;
            }
        pack_weights_fp32(&ww->u[p], buf + p * packed_weights_floats(cout, cin), u, cout, cin, arch);
    }
    free(u);
    return 0;
}

/* ---- the forward pass ---- */

typedef struct {
    float *out;
    const float *in, *bias;
    const winograd_s2_weights *ww;
    int deconv;
    int cin, h, w, pad;   /* the input; pad: the stride-2 convolution's zero padding */
    int step, span;       /* input samples per tile, and read per tile (9 or 5) */
    int ty0, tw, ntiles;  /* the first tile row run, tiles per row (a multiple of WT), tiles run */
    int oh, ow;           /* the layer's output */
    int wy0, wy1, px, dw; /* the rows written, [wy0, wy1) of the output, and the padding and
                             width of the rows written (the deconvolution's window) */
    int nr, panels;
    float *scratch;
    size_t per_thread;
} s2_job;

enum { SPAN_MAX = 8 * WT + 1 };

/* The input tiles of the WT tiles from tile0, transformed into V's panel layout
 * [81][cin][nr], lanes lane0.. of the panel. */
MULTIVERSION static void input_transform(float *v, const s2_job *j, int tile0, int lane0) {
    const size_t plane = (size_t)j->h * j->w, xi_stride = (size_t)j->cin * j->nr;
    const int n = j->span, st = j->step, width = st * (WT - 1) + n;
    const int iy0 = (j->ty0 + tile0 / j->tw) * st - j->pad, ix0 = (tile0 % j->tw) * st - j->pad;
    const int xa = ix0 < 0 ? (-ix0 < width ? -ix0 : width) : 0; /* columns [xa, xb) are inside */
    const int xb = j->w - ix0 < width ? (j->w - ix0 > xa ? j->w - ix0 : xa) : width;
    float rows[NC9][SPAN_MAX], d[NC9 * NC9 * WT], e[NC9 * NC9 * WT];
    for (int c = 0; c < j->cin; c++) {
        const float *src = j->in + c * plane, *row[NC9];
        for (int r = 0; r < n; r++) {
            int y = iy0 + r;
            if (y >= 0 && y < j->h && xa == 0 && xb == width) {
                row[r] = src + (size_t)y * j->w + ix0;
                continue;
            }
            memset(rows[r], 0, sizeof rows[r]);
            if (y >= 0 && y < j->h && xb > xa)
                memcpy(rows[r] + xa, src + (size_t)y * j->w + ix0 + xa, (size_t)(xb - xa) * sizeof(float));
            row[r] = rows[r];
        }
        for (int r = 0; r < n; r++) /* d[r][s]: sample (r, s) of each tile, tile t's at row[r][st t + s] */
            for (int s = 0; s < n; s++)
                for (int t = 0; t < WT; t++) d[(r * NC9 + s) * WT + t] = row[r][st * t + s];
        for (int s = 0; s < n; s++) in_1d(e + s * WT, NC9 * WT, d + s * WT, NC9 * WT, j->deconv); /* columns */
        float *dst = v + (size_t)c * j->nr + lane0;
        for (int a = 0; a < NC9; a++) { /* rows: e[a][s] -> component (a, b) */
            float y[NC9 * WT];
            in_1d(y, WT, e + a * NC9 * WT, WT, j->deconv);
            for (int b = 0; b < NC9; b++) memcpy(dst + (size_t)(a * NC9 + b) * xi_stride, y + b * WT, WT * sizeof(float));
        }
    }
}

/* Transforms WT lanes of M ([81][rows][nr]) back into output tiles (4x4 for the stride-2
 * convolution, 8x8 for the transposed one), adds the bias and writes what falls inside
 * the rows written. */
MULTIVERSION static void output_transform(const float *m, const s2_job *j, int rows, int tile0, int lane0) {
    const size_t xi_stride = (size_t)rows * j->nr;
    const int no = j->deconv ? 8 : 4; /* outputs per tile along a dimension */
    const int oy = (j->ty0 + tile0 / j->tw) * no, ox = (tile0 % j->tw) * no;
    const int ncols = j->ow - ox < no * WT ? j->ow - ox : no * WT;
    const size_t out_plane = (size_t)(j->wy1 - j->wy0) * j->dw;
    float x[NXI * WT], y[8 * NC9 * WT], o[8 * 8 * WT];
    for (int k = 0; k < j->ww->cout; k++) {
        const float *src = m + (size_t)k * j->nr + lane0;
        for (int xi = 0; xi < NXI; xi++) memcpy(x + xi * WT, src + xi * xi_stride, WT * sizeof(float));
        for (int b = 0; b < NC9; b++) out_1d(y + b * WT, NC9 * WT, x + b * WT, NC9 * WT, j->deconv); /* columns */
        for (int r = 0; r < no; r++) out_1d(o + r * no * WT, WT, y + r * NC9 * WT, WT, j->deconv); /* rows */
        const float bias = j->bias ? j->bias[k] : 0.f;
        for (int r = 0; r < no; r++) {
            int yy = oy + r;
            if (yy < j->wy0 || yy >= j->wy1 || yy >= j->oh) continue;
            float *dst = j->out + k * out_plane + (size_t)(yy - j->wy0) * j->dw + j->px + ox;
            const float *q = o + r * no * WT; /* q[e * WT + t]: column no t + e */
            for (int col = 0; col < ncols; col++) dst[col] = q[(col % no) * WT + col / no] + bias;
        }
    }
}

static void s2_task(void *ctx, int task, int ntasks) {
    (void)ntasks;
    const s2_job *j = ctx;
    const gemm_arch *arch = j->ww->u[0].arch;
    const int mr = arch->mr, nr = j->nr, cin = j->cin, cout = j->ww->cout;
    const int rows = (cout + mr - 1) / mr * mr, task_tiles = j->panels * nr;
    float *v = j->scratch + (size_t)cg_pool_thread_index() * j->per_thread;
    float *m = v + (size_t)NXI * j->panels * cin * nr;
    const int t0 = task * task_tiles;
    const int npanels = (j->ntiles - t0 < task_tiles ? j->ntiles - t0 + nr - 1 : task_tiles) / nr;
    const float zero[GEMM_MR_MAX] = {0};
    for (int q = 0; q < npanels; q++)
        for (int l = 0; l < nr; l += WT) input_transform(v + (size_t)q * NXI * cin * nr, j, t0 + q * nr + l, l);
    for (int xi = 0; xi < NXI; xi++) {
        const packed_weights *u = &j->ww->u[weight_of(xi)];
        for (int p = 0; p < rows / mr; p++) {
            const float *a = u->panels + (size_t)p * cin * mr;
            for (int q = 0; q < npanels; q++)
                arch->kernel(cin, a, v + ((size_t)q * NXI + xi) * cin * nr,
                             m + (((size_t)q * NXI + xi) * rows + (size_t)p * mr) * nr, (size_t)nr, zero);
        }
    }
    for (int q = 0; q < npanels; q++)
        for (int l = 0; l < nr && t0 + q * nr + l < j->ntiles; l += WT)
            output_transform(m + (size_t)q * NXI * rows * nr, j, rows, t0 + q * nr + l, l);
}

/* Panels of NR tiles per task: one with 32-wide panels, two with 16-wide ones. */
static int task_panels(const gemm_arch *arch) { return arch->nr >= 32 ? 1 : 2; }

size_t winograd_s2_scratch_floats(int threads, int cin, int cout) {
    const gemm_arch *arch = gemm_arch_get();
    return (size_t)threads * NXI * task_panels(arch) * arch->nr * (cin + cout + arch->mr) + 16;
}

/* Runs the tile rows that hold rows [wy0, wy1) of the output. */
static void run(s2_job *j, const winograd_s2_weights *ww, float *scratch, cg_pool *pool) {
    const gemm_arch *arch = ww->u[0].arch;
    const int no = j->deconv ? 8 : 4;
    const int y0 = j->wy0 > 0 ? j->wy0 : 0, y1 = j->wy1 < j->oh ? j->wy1 : j->oh;
    if (y1 <= y0) return;
    j->ty0 = y0 / no;
    j->tw = ((j->ow + no - 1) / no + WT - 1) / WT * WT;
    j->ntiles = ((y1 + no - 1) / no - j->ty0) * j->tw;
    j->nr = arch->nr;
    j->panels = task_panels(arch);
    j->scratch = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    j->per_thread = (size_t)NXI * j->panels * arch->nr * (j->cin + ww->cout + arch->mr);
    const int task_tiles = j->panels * arch->nr;
    cg_pool_run(pool, s2_task, j, (j->ntiles + task_tiles - 1) / task_tiles);
}

void conv3x3_s2_winograd_forward(float *out, const float *in, const winograd_s2_weights *ww, const float *b,
                                 const conv_dims *d, float *scratch, cg_pool *pool) {
    s2_job j = {0};
    j.out = out, j.in = in, j.bias = b, j.ww = ww, j.deconv = 0;
    j.cin = d->cin, j.h = d->h, j.w = d->w, j.pad = d->pad, j.step = 8, j.span = 9;
    j.oh = conv_out_h(d), j.ow = conv_out_w(d);
    j.wy0 = 0, j.wy1 = j.oh, j.px = 0, j.dw = j.ow;
    run(&j, ww, scratch, pool);
}

typedef struct {
    float *out;
    int cout, rows, dw, px, zero_y0, zero_y1; /* rows [zero_y0, zero_y1) are inside the output */
} pad_job;

/* The window's zeros: its rows outside the output, and px columns on either side. */
static void pad_task(void *ctx, int k, int n) {
    (void)n;
    const pad_job *p = ctx;
    for (int r = 0; r < p->rows; r++) {
        float *row = p->out + ((size_t)k * p->rows + r) * p->dw;
        if (r < p->zero_y0 || r >= p->zero_y1) {
            memset(row, 0, (size_t)p->dw * sizeof *row);
            continue;
        }
        for (int x = 0; x < p->px; x++) row[x] = row[p->dw - 1 - x] = 0.f;
    }
}

void deconv_s2_winograd_forward(float *out, const float *in, const winograd_s2_weights *ww, const float *b,
                                const deconv_dims *d, const deconv_window *win, float *scratch, cg_pool *pool) {
    s2_job j = {0};
    const deconv_window whole = {0, 2 * d->h, 0}, *w = win ? win : &whole;
    j.out = out, j.in = in, j.bias = b, j.ww = ww, j.deconv = 1;
    j.cin = d->cin, j.h = d->h, j.w = d->w, j.pad = 0, j.step = 4, j.span = 5;
    j.oh = 2 * d->h, j.ow = 2 * d->w;
    j.wy0 = w->y0, j.wy1 = w->y1, j.px = w->px, j.dw = j.ow + 2 * w->px;
    run(&j, ww, scratch, pool);
    const int rows = w->y1 - w->y0;
    pad_job p = {out, ww->cout, rows, j.dw, w->px, -w->y0, j.oh - w->y0};
    cg_pool_run(pool, pad_task, &p, ww->cout);
}
