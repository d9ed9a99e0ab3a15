/* conv.c: fast convolutions as packed GEMM (GotoBLAS-style blocking).
 *
 * A convolution is W[cout x K] . B[K x P] with K = cin*kh*kw and P = output pixels, where
 * B is the im2col matrix of the input. B is never materialised: each thread packs a block
 * of KC rows x NC columns of it straight from the input into a small buffer, in the layout
 * the micro-kernel streams (NR-wide column panels), and multiplies it with the weights,
 * which were packed once at load time into MR-tall row panels. Work is split over the
 * pool by column blocks, so threads share nothing but the read-only inputs.
 *
 * The transposed convolution (k3, s2, p1, op1) is four stride-1 convolutions, one per
 * output parity, each reading only the taps that land on that parity. */
#include "ops.h"
#include "pool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CG_X86 1
#endif

#define MR 6
#define NR 16
#define KC 256 /* rows of B per block: a 6x256 weight panel (6 KB) stays in L1 */
#define NC 384 /* columns of B per block: a 256x384 block (384 KB) stays in L2 */

/* Everything the packer needs to read im2col(in) without building it. The output may have
 * more pixels than the input reaches (the deconvolution phases read past the bottom/right
 * edge); any tap outside the input reads zero, which is exactly zero padding. */
typedef struct {
    int cin, h, w;
    int kh, kw, stride, pad;
    int oh, ow;
} geom;

size_t packed_weights_floats(int m, int k) { return (size_t)((m + MR - 1) / MR) * MR * k; }

void pack_weights(packed_weights *pw, float *panels, const float *w, int m, int k) {
    pw->m = m;
    pw->k = k;
    pw->panels = panels;
    int np = (m + MR - 1) / MR;
    for (int p = 0; p < np; p++)
        for (int kk = 0; kk < k; kk++)
            for (int r = 0; r < MR; r++) {
                int row = p * MR + r;
                panels[((size_t)p * k + kk) * MR + r] = row < m ? w[(size_t)row * k + kk] : 0.f;
            }
}

/* ---- micro-kernels: c[MR][NR] (row stride ldc) = init + a[kc][MR] . b[kc][NR], where
 * init is the bias (bias != NULL) or c's current value. ---- */

typedef void (*kernel_fn)(int kc, const float *a, const float *b, float *c, size_t ldc,
                          const float *bias);

static void kernel_portable(int kc, const float *a, const float *b, float *c, size_t ldc,
                            const float *bias) {
    float acc[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) acc[r][j] = bias ? bias[r] : c[r * ldc + j];
    for (int k = 0; k < kc; k++)
        for (int r = 0; r < MR; r++)
            for (int j = 0; j < NR; j++) acc[r][j] += a[k * MR + r] * b[k * NR + j];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) c[r * ldc + j] = acc[r][j];
}

#ifdef CG_X86
/* The 12 accumulators are spelled out: as an array, GCC keeps them in memory. */
__attribute__((target("avx2,fma"))) static void kernel_avx2(int kc, const float *a,
                                                             const float *b, float *c,
                                                             size_t ldc, const float *bias) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (bias) {
        c00 = c01 = _mm256_set1_ps(bias[0]);
        c10 = c11 = _mm256_set1_ps(bias[1]);
        c20 = c21 = _mm256_set1_ps(bias[2]);
        c30 = c31 = _mm256_set1_ps(bias[3]);
        c40 = c41 = _mm256_set1_ps(bias[4]);
        c50 = c51 = _mm256_set1_ps(bias[5]);
    } else {
        c00 = _mm256_loadu_ps(c), c01 = _mm256_loadu_ps(c + 8);
        c10 = _mm256_loadu_ps(c + ldc), c11 = _mm256_loadu_ps(c + ldc + 8);
        c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
        c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
        c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
        c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
    }
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), av;
        av = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(av, b0, c00), c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(av, b0, c10), c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(av, b0, c20), c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(av, b0, c30), c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(av, b0, c40), c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(av, b0, c50), c51 = _mm256_fmadd_ps(av, b1, c51);
    }
    _mm256_storeu_ps(c, c00), _mm256_storeu_ps(c + 8, c01);
    _mm256_storeu_ps(c + ldc, c10), _mm256_storeu_ps(c + ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
    _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
    _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}
#endif

static kernel_fn pick_kernel(void) {
#ifdef CG_X86
    if (getenv("CARTOONGAN_PORTABLE") == NULL && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        return kernel_avx2;
#endif
    return kernel_portable;
}

static kernel_fn chosen_kernel;
static pthread_once_t kernel_once = PTHREAD_ONCE_INIT;
static void choose_kernel(void) { chosen_kernel = pick_kernel(); }

static kernel_fn kernel(void) {
    pthread_once(&kernel_once, choose_kernel);
    return chosen_kernel;
}

/* ---- packing B = im2col(in) ---- */

/* Packs rows [k0, k0+kc) and columns [n0, n0+nc) of im2col(in) into dst as NR-wide
 * panels [kc][NR], zero beyond the last column. */
static void pack_b(float *dst, const float *in, const geom *g, int k0, int kc, int n0, int nc) {
    const int ksz = g->kh * g->kw;
    const size_t plane = (size_t)g->h * g->w;
    for (int j0 = 0; j0 < nc; j0 += NR) {
        float *panel = dst + (size_t)j0 * kc;
        int cols = nc - j0 < NR ? nc - j0 : NR;
        int n = n0 + j0;
        int oy = n / g->ow, ox = n % g->ow;
        /* The common case: the panel's pixels lie on one output row, so for each tap they
         * read one input row at evenly spaced columns. */
        int one_row = ox + cols <= g->ow;
        int iy0[NR], ix0[NR];
        for (int t = 0; t < NR; t++) {
            int p = n + (t < cols ? t : cols - 1);
            iy0[t] = (p / g->ow) * g->stride - g->pad;
            ix0[t] = (p % g->ow) * g->stride - g->pad;
        }
        int ci = k0 / ksz, r = k0 % ksz, ky = r / g->kw, kx = r % g->kw;
        for (int kk = 0; kk < kc; kk++) {
            float *o = panel + (size_t)kk * NR;
            const float *src = in + ci * plane;
            if (one_row) {
                int iy = oy * g->stride - g->pad + ky;
                int ixa = ox * g->stride - g->pad + kx;
                int ixb = ixa + (cols - 1) * g->stride;
                if (iy < 0 || iy >= g->h) {
                    memset(o, 0, NR * sizeof *o);
                } else if (g->stride == 1 && ixa >= 0 && ixb < g->w) {
                    /* A fixed-size copy compiles to a few vector moves; a variable one
                     * to a slow string instruction. */
                    if (cols == NR) memcpy(o, src + (size_t)iy * g->w + ixa, NR * sizeof *o);
                    else {
                        memcpy(o, src + (size_t)iy * g->w + ixa, cols * sizeof *o);
                        for (int t = cols; t < NR; t++) o[t] = 0.f;
                    }
                } else {
                    const float *row = src + (size_t)iy * g->w;
                    for (int t = 0; t < NR; t++) {
                        int ix = ixa + t * g->stride;
                        o[t] = (t < cols && ix >= 0 && ix < g->w) ? row[ix] : 0.f;
                    }
                }
            } else {
                for (int t = 0; t < NR; t++) {
                    int iy = iy0[t] + ky, ix = ix0[t] + kx;
                    o[t] = (t < cols && iy >= 0 && iy < g->h && ix >= 0 && ix < g->w)
                               ? src[(size_t)iy * g->w + ix]
                               : 0.f;
                }
            }
            if (++kx == g->kw) {
                kx = 0;
                if (++ky == g->kh) { ky = 0; ci++; }
            }
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
    float *scratch; /* per thread: KC * NC floats, 64-byte aligned */
} conv_job;

static void conv_task(void *ctx, int task, int ntasks) {
    (void)ntasks;
    conv_job *j = ctx;
    const int m = j->pw->m, k = j->pw->k;
    const int n0 = task * NC;
    const int nc = j->npix - n0 < NC ? j->npix - n0 : NC;
    float *bpack = j->scratch + (size_t)cg_pool_thread_index() * KC * NC;
    kernel_fn kern = kernel();
    float zero_bias[MR] = {0};
    for (int k0 = 0; k0 < k; k0 += KC) {
        int kc = k - k0 < KC ? k - k0 : KC;
        pack_b(bpack, j->in, &j->g, k0, kc, n0, nc);
        for (int p = 0; p < (m + MR - 1) / MR; p++) {
            const float *a = j->pw->panels + ((size_t)p * k + k0) * MR;
            int rows = m - p * MR < MR ? m - p * MR : MR;
            float bias6[MR] = {0};
            const float *bias = NULL;
            if (k0 == 0) {
                for (int r = 0; r < rows; r++) bias6[r] = j->bias ? j->bias[p * MR + r] : 0.f;
                bias = j->bias ? bias6 : zero_bias;
            }
            for (int j0 = 0; j0 < nc; j0 += NR) {
                int cols = nc - j0 < NR ? nc - j0 : NR;
                float *c = j->out + (size_t)p * MR * j->npix + n0 + j0;
                const float *b = bpack + (size_t)j0 * kc;
                if (rows == MR && cols == NR) {
                    kern(kc, a, b, c, (size_t)j->npix, bias);
                } else {
                    /* Edge tile: compute into a full tile and copy out the valid part. */
                    float tile[MR * NR];
                    if (!bias)
                        for (int r = 0; r < rows; r++)
                            memcpy(tile + r * NR, c + (size_t)r * j->npix, cols * sizeof(float));
                    kern(kc, a, b, tile, NR, bias);
                    for (int r = 0; r < rows; r++)
                        memcpy(c + (size_t)r * j->npix, tile + r * NR, cols * sizeof(float));
                }
            }
        }
    }
}

size_t conv_scratch_floats(int threads) { return (size_t)threads * KC * NC + 16; }

static void run_gemm(float *out, const float *in, const packed_weights *pw, const float *b,
                     const geom *g, float *scratch, cg_pool *pool) {
    /* The micro-kernel loads packed B with aligned loads. */
    float *aligned = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    conv_job j = {out, in, pw, b, *g, g->oh * g->ow, aligned};
    cg_pool_run(pool, conv_task, &j, (j.npix + NC - 1) / NC);
}

void conv2d_forward(float *out, const float *in, const packed_weights *pw, const float *b,
                    const conv_dims *d, float *scratch, cg_pool *pool) {
    geom g = {d->cin, d->h, d->w, d->kh, d->kw, d->stride, d->pad, conv_out_h(d), conv_out_w(d)};
    run_gemm(out, in, pw, b, &g, scratch, pool);
}

/* ---- transposed convolution k3 s2 p1 op1 as four sub-convolutions ----
 * Output row oy = 2*iy - 1 + ky. Even rows (oy = 2m) take ky = 1 from iy = m; odd rows
 * (oy = 2m+1) take ky = 2 from iy = m and ky = 0 from iy = m+1. Columns likewise. */

static const int taps_n[2] = {1, 2};
static const int taps_k[2][2] = {{1, -1}, {2, 0}}; /* kernel index of tap d for parity */

size_t packed_deconv_floats(int cin, int cout) {
    size_t n = 0;
    for (int py = 0; py < 2; py++)
        for (int px = 0; px < 2; px++)
            n += packed_weights_floats(cout, cin * taps_n[py] * taps_n[px]);
    return n;
}

int pack_deconv_weights(packed_deconv *pd, float *panels, const float *w, int cin, int cout) {
    float *sub = malloc((size_t)cout * cin * 4 * sizeof *sub);
    if (!sub) return -1;
    for (int py = 0; py < 2; py++)
        for (int px = 0; px < 2; px++) {
            int th = taps_n[py], tw = taps_n[px], k = cin * th * tw;
            for (int co = 0; co < cout; co++)
                for (int ci = 0; ci < cin; ci++)
                    for (int dy = 0; dy < th; dy++)
                        for (int dx = 0; dx < tw; dx++)
                            sub[(size_t)co * k + (ci * th + dy) * tw + dx] =
                                w[(((size_t)ci * cout + co) * 3 + taps_k[py][dy]) * 3 +
                                  taps_k[px][dx]];
            pack_weights(&pd->phase[py * 2 + px], panels, sub, cout, k);
            panels += packed_weights_floats(cout, k);
        }
    free(sub);
    return 0;
}

void deconv_s2_forward(float *out, float *tmp, const float *in, const packed_deconv *pd,
                       const float *b, const deconv_dims *d, float *scratch, cg_pool *pool) {
    int oh = 2 * d->h, ow = 2 * d->w;
    for (int py = 0; py < 2; py++)
        for (int px = 0; px < 2; px++) {
            geom g = {d->cin, d->h, d->w, taps_n[py], taps_n[px], 1, 0, d->h, d->w};
            run_gemm(tmp, in, &pd->phase[py * 2 + px], b, &g, scratch, pool);
            for (int co = 0; co < d->cout; co++)
                for (int y = 0; y < d->h; y++) {
                    const float *src = tmp + ((size_t)co * d->h + y) * d->w;
                    float *dst = out + ((size_t)co * oh + 2 * y + py) * ow + px;
                    for (int x = 0; x < d->w; x++) dst[2 * x] = src[x];
                }
        }
}
