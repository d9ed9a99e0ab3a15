/* winograd.c: 3x3 stride-1 convolutions by Winograd's minimal filtering F(4x4, 3x3)
 * (Lavin & Gray, 2016), which computes each 4x4 output tile from a 6x6 input tile with 36
 * multiplies per input channel instead of 144: the 36 element-wise products become 36
 * independent GEMMs, U[xi] (cout x cin, the transformed weights, packed once at load)
 * times V[xi] (cin x tiles, the transformed input), run by the same micro-kernels as every
 * other convolution.
 *
 * Work is split over the pool by groups of tiles. Each group is transformed into the
 * packed-B layout of the micro-kernel directly, multiplied, and transformed back, so the
 * transformed tensors never exist for the whole image. The transforms are vectorised over
 * WT tiles at a time (one tile per lane), and compiled for AVX2 and AVX-512 as well as the
 * baseline, picked at run time. */
#include "gemm.h"
#include "ops.h"
#include "pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WT 16          /* tiles per transform batch: one per vector lane */
#define TASK_PANELS 4  /* NR-wide panels of tiles per task */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

/* ---- the transforms, on 6 (or 4) vectors of WT lanes spaced s floats apart ---- */

/* y = B^T x, B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
 *                   0 2 -1 -2 1 0; 0 4 0 -5 0 1]; y may equal x. */
static inline void bt6(float *y, const float *x, int s) {
    for (int t = 0; t < WT; t++) {
        float d0 = x[t], d1 = x[s + t], d2 = x[2 * s + t], d3 = x[3 * s + t], d4 = x[4 * s + t],
              d5 = x[5 * s + t];
        y[t] = 4.f * d0 - 5.f * d2 + d4;
        y[s + t] = -4.f * (d1 + d2) + d3 + d4;
        y[2 * s + t] = 4.f * (d1 - d2) - d3 + d4;
        y[3 * s + t] = 2.f * (d3 - d1) - d2 + d4;
        y[4 * s + t] = 2.f * (d1 - d3) - d2 + d4;
        y[5 * s + t] = 4.f * d1 - 5.f * d3 + d5;
    }
}

/* y[0..3] = A^T x, A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]. */
static inline void at6(float *y, int ys, const float *x, int s) {
    for (int t = 0; t < WT; t++) {
        float m0 = x[t], m1 = x[s + t], m2 = x[2 * s + t], m3 = x[3 * s + t], m4 = x[4 * s + t],
              m5 = x[5 * s + t];
        float a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;
        y[t] = m0 + a + c;
        y[ys + t] = b + 2.f * d;
        y[2 * ys + t] = a + 4.f * c;
        y[3 * ys + t] = b + 8.f * d + m5;
    }
}

/* ---- weights: U = G g G^T for each (cout, cin) pair, in double ---- */

static const double G[6][3] = {
    {1.0 / 4, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
    {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6},
    {1.0 / 24, -1.0 / 12, 1.0 / 6},
    {0, 0, 1},
};

int winograd_supported(const gemm_arch *arch) { return arch->nr % WT == 0; }

size_t winograd_weights_floats(int cout, int cin) { return 36 * packed_weights_floats(cout, cin); }

int pack_winograd_weights_arch(winograd_weights *ww, float *buf, const float *w, int cout, int cin,
                               const gemm_arch *arch) {
    float *u = malloc((size_t)36 * cout * cin * sizeof *u); /* [xi][cout][cin] */
    if (!u) return -1;
    for (int k = 0; k < cout; k++)
        for (int c = 0; c < cin; c++) {
            const float *g = w + ((size_t)k * cin + c) * 9;
            double gg[6][3];
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 3; j++)
                    gg[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++)
                    u[((size_t)(i * 6 + j) * cout + k) * cin + c] =
                        (float)(gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2]);
        }
    ww->cout = cout;
    ww->cin = cin;
    for (int xi = 0; xi < 36; xi++)
        pack_weights_arch(&ww->u[xi], buf + xi * packed_weights_floats(cout, cin),
                          u + (size_t)xi * cout * cin, cout, cin, arch);
    free(u);
    return 0;
}

int pack_winograd_weights(winograd_weights *ww, float *buf, const float *w, int cout, int cin) {
    return pack_winograd_weights_arch(ww, buf, w, cout, cin, gemm_arch_get());
}

/* ---- the forward pass ---- */

typedef struct {
    float *out;
    const float *in, *bias;
    const winograd_weights *ww;
    int cin, h, w, pad, oh, ow, tw, ntiles;
    int nr, task_tiles;
    float *scratch;
    size_t per_thread;
} wino_job;

/* Gathers the 6x6 input tiles of WT consecutive tiles (zero outside the input) and
 * transforms them into V's panel layout [36][cin][nr], lanes lane0.. of the panel. */
MULTIVERSION static void input_transform(float *v, const wino_job *j, int tile0, int lane0) {
    const size_t plane = (size_t)j->h * j->w, xi_stride = (size_t)j->cin * j->nr;
    float d[36 * WT];
    /* The common case: all WT tiles on one tile row and inside the input, so each of the
     * patch's 36 elements is a stride-4 walk along one input row, which vectorises. */
    const int ty = tile0 / j->tw, tx = tile0 % j->tw;
    const int iy0 = ty * 4 - j->pad, ix0 = tx * 4 - j->pad;
    const int interior = tile0 + WT <= j->ntiles && tx + WT <= j->tw && iy0 >= 0 && ix0 >= 0 &&
                         iy0 + 6 <= j->h && ix0 + 4 * (WT - 1) + 6 <= j->w;
    for (int c = 0; c < j->cin; c++) {
        const float *src = j->in + c * plane;
        if (interior) {
            for (int r = 0; r < 6; r++) {
                const float *restrict row = src + (size_t)(iy0 + r) * j->w + ix0;
                for (int e = 0; e < 6; e++) {
                    float *restrict o = d + (r * 6 + e) * WT;
                    for (int t = 0; t < WT; t++) o[t] = row[4 * t + e];
                }
            }
        } else for (int t = 0; t < WT; t++) {
            int tile = tile0 + t;
            if (tile >= j->ntiles) {
                for (int e = 0; e < 36; e++) d[e * WT + t] = 0.f;
                continue;
            }
            int iy = (tile / j->tw) * 4 - j->pad, ix = (tile % j->tw) * 4 - j->pad;
            if (iy >= 0 && ix >= 0 && iy + 6 <= j->h && ix + 6 <= j->w) {
                for (int r = 0; r < 6; r++) {
                    const float *row = src + (size_t)(iy + r) * j->w + ix;
                    for (int e = 0; e < 6; e++) d[(r * 6 + e) * WT + t] = row[e];
                }
            } else {
                for (int r = 0; r < 6; r++)
                    for (int e = 0; e < 6; e++) {
                        int y = iy + r, x = ix + e;
                        d[(r * 6 + e) * WT + t] =
                            (y >= 0 && y < j->h && x >= 0 && x < j->w) ? src[(size_t)y * j->w + x] : 0.f;
                    }
            }
        }
        for (int e = 0; e < 6; e++) bt6(d + e * WT, d + e * WT, 6 * WT); /* columns */
        for (int r = 0; r < 6; r++) bt6(d + r * 6 * WT, d + r * 6 * WT, WT); /* rows */
        float *dst = v + (size_t)c * j->nr + lane0;
        for (int xi = 0; xi < 36; xi++) memcpy(dst + xi * xi_stride, d + xi * WT, WT * sizeof(float));
    }
}

/* Transforms WT lanes of M ([36][cout_rows][nr]) back into 4x4 output tiles, adds the bias
 * and writes what falls inside the output. */
MULTIVERSION static void output_transform(const float *m, const wino_job *j, int rows, int tile0,
                                          int lane0) {
    const size_t xi_stride = (size_t)rows * j->nr, plane = (size_t)j->oh * j->ow;
    float x[36 * WT], y[24 * WT], o[16 * WT];
    for (int k = 0; k < j->ww->cout; k++) {
        const float *src = m + (size_t)k * j->nr + lane0;
        for (int xi = 0; xi < 36; xi++) memcpy(x + xi * WT, src + xi * xi_stride, WT * sizeof(float));
        for (int e = 0; e < 6; e++) at6(y + e * WT, 6 * WT, x + e * WT, 6 * WT); /* columns: 6x6 -> 4x6 */
        for (int r = 0; r < 4; r++) at6(o + r * 4 * WT, WT, y + r * 6 * WT, WT); /* rows: 4x6 -> 4x4 */
        float b = j->bias ? j->bias[k] : 0.f;
        float *dst = j->out + k * plane;
        for (int t = 0; t < WT && tile0 + t < j->ntiles; t++) {
            int oy = ((tile0 + t) / j->tw) * 4, ox = ((tile0 + t) % j->tw) * 4;
            for (int r = 0; r < 4 && oy + r < j->oh; r++)
                for (int e = 0; e < 4 && ox + e < j->ow; e++)
                    dst[(size_t)(oy + r) * j->ow + ox + e] = o[(r * 4 + e) * WT + t] + b;
        }
    }
}

static void wino_task(void *ctx, int task, int ntasks) {
    (void)ntasks;
    const wino_job *j = ctx;
    const gemm_arch *arch = j->ww->u[0].arch;
    const int mr = arch->mr, nr = j->nr, cin = j->cin, cout = j->ww->cout;
    const int rows = (cout + mr - 1) / mr * mr;
    float *v = j->scratch + (size_t)cg_pool_thread_index() * j->per_thread;
    float *m = v + (size_t)36 * TASK_PANELS * cin * nr;
    const int t0 = task * j->task_tiles;
    const int npanels = (j->ntiles - t0 < j->task_tiles ? j->ntiles - t0 + nr - 1 : j->task_tiles) / nr;
    const float zero[GEMM_MR_MAX] = {0};
    for (int q = 0; q < npanels; q++) {
        float *vq = v + (size_t)q * 36 * cin * nr;
        for (int l = 0; l < nr; l += WT) input_transform(vq, j, t0 + q * nr + l, l);
    }
    for (int xi = 0; xi < 36; xi++) {
        const packed_weights *u = &j->ww->u[xi];
        for (int p = 0; p < rows / mr; p++) {
            const float *a = u->panels + (size_t)p * cin * mr;
            for (int q = 0; q < npanels; q++) {
                const float *b = v + ((size_t)q * 36 + xi) * cin * nr;
                float *c = m + (((size_t)q * 36 + xi) * rows + (size_t)p * mr) * nr;
                arch->kernel(cin, a, b, c, (size_t)nr, zero);
            }
        }
    }
    for (int q = 0; q < npanels; q++) {
        const float *mq = m + (size_t)q * 36 * rows * nr;
        for (int l = 0; l < nr; l += WT) output_transform(mq, j, rows, t0 + q * nr + l, l);
    }
}

size_t winograd_scratch_floats(int threads, int cin, int cout) {
    const gemm_arch *arch = gemm_arch_get();
    size_t per = (size_t)36 * TASK_PANELS * arch->nr * (cin + cout + arch->mr);
    return (size_t)threads * per + 16;
}

void conv3x3_winograd_forward(float *out, const float *in, const winograd_weights *ww,
                              const float *b, const conv_dims *d, float *scratch, cg_pool *pool) {
    const gemm_arch *arch = ww->u[0].arch;
    wino_job j;
    j.out = out, j.in = in, j.bias = b, j.ww = ww;
    j.cin = d->cin, j.h = d->h, j.w = d->w, j.pad = d->pad;
    j.oh = conv_out_h(d), j.ow = conv_out_w(d);
    j.tw = (j.ow + 3) / 4;
    j.ntiles = ((j.oh + 3) / 4) * j.tw;
    j.nr = arch->nr;
    j.task_tiles = TASK_PANELS * arch->nr;
    j.scratch = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    j.per_thread = (size_t)36 * TASK_PANELS * arch->nr * (d->cin + ww->cout + arch->mr);
    cg_pool_run(pool, wino_task, &j, (j.ntiles + j.task_tiles - 1) / j.task_tiles);
}
