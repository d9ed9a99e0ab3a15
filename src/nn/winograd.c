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
 * baseline, picked at run time.
 *
 * With Intel AMX (the "amx" kernel), the 36 products run on the tile unit instead, as
 * bf16x3 (amx.h): each product within about 3 * 2^-16 of fp32's, the same order as
 * F(4x4, 3x3)'s own rounding, whose transforms scale values by up to 100. */
#include "amx.h"
#include "gemm.h"
#include "ops.h"
#include "pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WT 16          /* tiles per transform batch: one per vector lane */
#define TASK_PANELS 1  /* NR-wide panels of tiles per task: V and M stay in L2 */
#define AMX_PANELS 4   /* with AMX: U (streamed from L3 once per task) was the bound; measured best of 1-16 */
#define NARROW_PANELS 4 /* 16-tile panels (AVX2, portable, wasm): 64 tiles per task */
#define MAX_PANELS 4
#define PF_CHANNELS 2 /* the AVX-512 input transform prefetches the rows this many channels ahead */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

/* ---- the transforms ---- */

/* B^T applied in place to 6 vectors of WT lanes spaced s floats apart, B^T = [4 0 -5 0 1 0;
 * 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]. */
static inline void bt6_lanes(float *x, int s) {
    for (int t = 0; t < WT; t++) {
        float d0 = x[t], d1 = x[s + t], d2 = x[2 * s + t], d3 = x[3 * s + t], d4 = x[4 * s + t],
              d5 = x[5 * s + t];
        x[t] = 4.f * d0 - 5.f * d2 + d4;
        x[s + t] = -4.f * (d1 + d2) + d3 + d4;
        x[2 * s + t] = 4.f * (d1 - d2) - d3 + d4;
        x[3 * s + t] = 2.f * (d3 - d1) - d2 + d4;
        x[4 * s + t] = 2.f * (d1 - d3) - d2 + d4;
        x[5 * s + t] = 4.f * d1 - 5.f * d3 + d5;
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

/* U for output k and inputs [c0, c0 + UB) (fewer at the end), UB at a time so that the
 * double arithmetic vectorises across inputs: a model's load time is mostly this. */
enum { UB = 8 };

MULTIVERSION static void transform_weights(float *u, const float *w, int k, int c0, int cout, int cin) {
    const int n = cin - c0 < UB ? cin - c0 : UB;
    double g[9][UB], gg[6][3][UB];
    for (int t = 0; t < 9; t++)
        for (int cc = 0; cc < UB; cc++) g[t][cc] = cc < n ? w[((size_t)k * cin + c0 + cc) * 9 + t] : 0.0;
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++)
            for (int cc = 0; cc < UB; cc++)
                gg[i][j][cc] = G[i][0] * g[j][cc] + G[i][1] * g[3 + j][cc] + G[i][2] * g[6 + j][cc];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) {
            float o[UB];
            for (int cc = 0; cc < UB; cc++)
                o[cc] = (float)(gg[i][0][cc] * G[j][0] + gg[i][1][cc] * G[j][1] + gg[i][2][cc] * G[j][2]);
            memcpy(u + ((size_t)(i * 6 + j) * cout + k) * cin + c0, o, (size_t)n * sizeof(float));
        }
}

int winograd_supported(const gemm_arch *arch) { return arch->nr % WT == 0; }

size_t winograd_weights_floats(int cout, int cin) { return 36 * packed_weights_floats(cout, cin); }

size_t winograd_pack_tmp_floats(int cout, int cin) { return (size_t)36 * cout * cin; }

int pack_winograd_weights_arch(winograd_weights *ww, float *buf, const float *w, int cout, int cin,
                               const gemm_arch *arch) {
    return pack_winograd_weights_tmp(ww, buf, w, cout, cin, arch, NULL);
}

int pack_winograd_weights_tmp(winograd_weights *ww, float *buf, const float *w, int cout, int cin,
                              const gemm_arch *arch, float *tmp) {
    float *u = tmp ? tmp : malloc(winograd_pack_tmp_floats(cout, cin) * sizeof *u); /* [xi][cout][cin] */
    if (!u) return -1;
    for (int k = 0; k < cout; k++)
        for (int c0 = 0; c0 < cin; c0 += UB) transform_weights(u, w, k, c0, cout, cin);
    ww->cout = cout;
    ww->cin = cin;
    ww->amx = NULL;
#ifdef CG_HAVE_AMX
    if (arch->level == GEMM_AMX && cin % 32 == 0 && cout % 16 == 0) {
        /* tiles [xi][cout/16][cin/32][hi, lo], each 16 rows (outputs) x 32 bf16 (inputs);
         * 36 * cout * cin * 4 bytes, which buf (winograd_weights_floats) has room for */
        unsigned short *t = (unsigned short *)buf;
        for (int xi = 0; xi < 36; xi++)
            amx_pack_a(t + (size_t)xi * cout * cin * 2, u + (size_t)xi * cout * cin, cout, cin, cin);
        ww->amx = t;
        for (int xi = 0; xi < 36; xi++) ww->u[xi] = (packed_weights){cout, cin, NULL, arch, 0};
        if (!tmp) free(u);
        return 0;
    }
#endif
    for (int xi = 0; xi < 36; xi++)
        pack_weights_arch(&ww->u[xi], buf + xi * packed_weights_floats(cout, cin),
                          u + (size_t)xi * cout * cin, cout, cin, arch);
    if (!tmp) free(u);
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
    int cin, h, w, pad, oh, ow, tw, ntiles; /* tw: tiles per row, padded to a multiple of WT */
    size_t tile_row_stride, chan_stride; /* the output's layout (winograd_out) */
    moments *row_moments;
    int *row_count;
    int nr, task_tiles, panels;
    int avx512; /* the AVX-512 transforms (with the AVX-512 or AMX kernels) */
    float *scratch;
    size_t per_thread;
} wino_job;

/* The portable transforms (the AVX2, portable and wasm kernels use them; the AVX-512
 * ones are tested against them through the naive convolution). A group's WT tiles lie on
 * one tile row (tw is padded to a multiple of WT), so their 6 input rows are 4 WT + 2
 * contiguous floats each, read in place (or from a zero-padded copy at the borders) at
 * stride 4 into one vector of WT lanes per tile element; the output side writes whole
 * rows of 4 WT floats. No bounds check is left in the inner loops. */
enum { SPAN = 4 * WT + 2 };

/* Gathers the 6x6 input tiles of the WT tiles from tile0 (zero outside the input) and
 * transforms them into V's panel layout [36][cin][nr], lanes lane0.. of the panel. */
MULTIVERSION static void input_transform(float *v, const wino_job *j, int tile0, int lane0) {
    const size_t plane = (size_t)j->h * j->w, xi_stride = (size_t)j->cin * j->nr;
    const int iy0 = (tile0 / j->tw) * 4 - j->pad, ix0 = (tile0 % j->tw) * 4 - j->pad;
    /* the span's columns [xa, xb) are inside the input */
    const int xa = ix0 < 0 ? (-ix0 < SPAN ? -ix0 : SPAN) : 0;
    const int xb = j->w - ix0 < SPAN ? (j->w - ix0 > xa ? j->w - ix0 : xa) : SPAN;
    float rows[6][SPAN], d[36 * WT];
    for (int c = 0; c < j->cin; c++) {
        const float *src = j->in + c * plane, *row[6];
        for (int r = 0; r < 6; r++) { /* the input row itself, or a zero-padded copy */
            int y = iy0 + r;
            if (y >= 0 && y < j->h && xa == 0 && xb == SPAN) {
                row[r] = src + (size_t)y * j->w + ix0;
                continue;
            }
            memset(rows[r], 0, sizeof rows[r]);
            if (y >= 0 && y < j->h && xb > xa)
                memcpy(rows[r] + xa, src + (size_t)y * j->w + ix0 + xa, (size_t)(xb - xa) * sizeof(float));
            row[r] = rows[r];
        }
        for (int r = 0; r < 6; r++) /* tile t's column e is the row's column 4t + e */
            for (int e = 0; e < 6; e++)
                for (int t = 0; t < WT; t++) d[(r * 6 + e) * WT + t] = row[r][4 * t + e];
        for (int e = 0; e < 6; e++) bt6_lanes(d + e * WT, 6 * WT); /* columns */
        for (int r = 0; r < 6; r++) bt6_lanes(d + r * 6 * WT, WT); /* rows */
        float *dst = v + (size_t)c * j->nr + lane0;
        for (int xi = 0; xi < 36; xi++) memcpy(dst + xi * xi_stride, d + xi * WT, WT * sizeof(float));
    }
}

/* Transforms WT lanes of M ([36][cout_rows][nr]) back into 4x4 output tiles, adds the bias
 * and writes what falls inside the output: rows of 4 WT contiguous floats. */
MULTIVERSION static void output_transform(const float *m, const wino_job *j, int rows, int tile0,
                                          int lane0) {
    const size_t xi_stride = (size_t)rows * j->nr;
    const int oy = (tile0 / j->tw) * 4, ox = (tile0 % j->tw) * 4;
    const int ncols = j->ow - ox < 4 * WT ? j->ow - ox : 4 * WT, nrows = j->oh - oy < 4 ? j->oh - oy : 4;
    float *const out = j->out + (size_t)(oy / 4) * j->tile_row_stride + ox;
    float x[36 * WT], y[24 * WT], o[16 * WT], line[4 * WT];
    for (int k = 0; k < j->ww->cout; k++) {
        const float *src = m + (size_t)k * j->nr + lane0;
        for (int xi = 0; xi < 36; xi++) memcpy(x + xi * WT, src + xi * xi_stride, WT * sizeof(float));
        for (int e = 0; e < 6; e++) at6(y + e * WT, 6 * WT, x + e * WT, 6 * WT); /* columns: 6x6 -> 4x6 */
        for (int r = 0; r < 4; r++) at6(o + r * 4 * WT, WT, y + r * 6 * WT, WT); /* rows: 4x6 -> 4x4 */
        const float b = j->bias ? j->bias[k] : 0.f;
        float *dst = out + k * j->chan_stride;
        for (int r = 0; r < nrows; r++, dst += j->ow) {
            const float *q = o + r * 4 * WT;
            /* a whole row straight to the output, a partial one through line */
            float *restrict to = ncols == 4 * WT ? dst : line;
            for (int t = 0; t < WT; t++) { /* interleave: column 4t + e is lane t of q[e] */
                to[4 * t] = q[t] + b;
                to[4 * t + 1] = q[WT + t] + b;
                to[4 * t + 2] = q[2 * WT + t] + b;
                to[4 * t + 3] = q[3 * WT + t] + b;
            }
            if (to == line) memcpy(dst, line, (size_t)ncols * sizeof(float));
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))

/* The AVX-512 transforms: WT = 16 tiles, one per lane, as above, but without the
 * element-by-element gather and scatter, which cost more than the GEMM at 64 channels.
 * The 16 tiles of a group lie on one tile row (tw is padded to a multiple of WT), so their
 * 6 input rows are 66 contiguous floats each: the vertical half of B^T d B runs on those
 * rows as loaded, and only its 6 results are deinterleaved (lane t <- column 4t + e) with
 * two-source permutes. The output side is the mirror image: the 4x4 results of 16 tiles
 * are interleaved back into 4 rows of 64 contiguous floats. */

static inline AVX512 void bt6_v(__m512 *y, const __m512 *d) {
    const __m512 two = _mm512_set1_ps(2.f), four = _mm512_set1_ps(4.f), five = _mm512_set1_ps(5.f);
    __m512 d4 = d[4];
    y[0] = _mm512_add_ps(_mm512_fnmadd_ps(five, d[2], _mm512_mul_ps(four, d[0])), d4);
    y[1] = _mm512_fnmadd_ps(four, _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d4));
    y[2] = _mm512_fmadd_ps(four, _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d4, d[3]));
    y[3] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[3], d[1]), _mm512_sub_ps(d4, d[2]));
    y[4] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[1], d[3]), _mm512_sub_ps(d4, d[2]));
    y[5] = _mm512_add_ps(_mm512_fnmadd_ps(five, d[3], _mm512_mul_ps(four, d[1])), d[5]);
}

static inline AVX512 void at6_v(__m512 *y, const __m512 *m) {
    __m512 a = _mm512_add_ps(m[1], m[2]), b = _mm512_sub_ps(m[1], m[2]);
    __m512 c = _mm512_add_ps(m[3], m[4]), d = _mm512_sub_ps(m[3], m[4]);
    y[0] = _mm512_add_ps(_mm512_add_ps(m[0], a), c);
    y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.f), d, b);
    y[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.f), c, a);
    y[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.f), d, b), m[5]);
}

/* Lanes 0..n-1 set (n clamped to [0, 16]). */
static inline __mmask16 first_lanes(int n) {
    return n <= 0 ? 0 : n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
}

/* Where a group's rows are read and how: shared by the fp32 and AMX input transforms. */
typedef struct {
    int iy0, ix0;
    __m512i idx[4]; /* lane t of idx[e] reads element 4t + e of a 32-float pair of vectors */
    __mmask16 mask[5];
} group_geom;

AVX512 static void group_setup(group_geom *g, const wino_job *j, int tile0) {
    g->iy0 = (tile0 / j->tw) * 4 - j->pad, g->ix0 = (tile0 % j->tw) * 4 - j->pad;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int e = 0; e < 4; e++)
        g->idx[e] = _mm512_and_si512(_mm512_add_epi32(_mm512_slli_epi32(lane, 2), _mm512_set1_epi32(e)),
                                     _mm512_set1_epi32(31));
    /* The 66 columns [ix0, ix0 + 66) as 5 vectors; columns outside [0, w) read zero. */
    for (int q = 0; q < 5; q++) {
        int lo = g->ix0 + 16 * q;
        g->mask[q] = first_lanes((j->w - lo < 66 - 16 * q ? j->w - lo : 66 - 16 * q));
    }
}

/* y[xi] = (B^T d B)[xi] for channel c of the group's 16 tiles, lane t = tile t. */
static inline AVX512 void transform_channel(__m512 y[36], const wino_job *j, const group_geom *g, int c) {
    const float *src = j->in + (size_t)c * j->h * j->w;
    __m512 rows[6][5], z[6][5];
    for (int r = 0; r < 6; r++) {
        int yy = g->iy0 + r;
        if (yy < 0 || yy >= j->h) {
            for (int q = 0; q < 5; q++) rows[r][q] = _mm512_setzero_ps();
        } else if (g->ix0 >= 0) {
            const float *row = src + (size_t)yy * j->w + g->ix0;
            for (int q = 0; q < 5; q++) rows[r][q] = _mm512_maskz_loadu_ps(g->mask[q], row + 16 * q);
        } else { /* the span starts left of the input (zero padding): through a copy */
            float tmp[80];
            for (int x = 0; x < 80; x++) {
                int ix = g->ix0 + x;
                tmp[x] = (x < 66 && ix >= 0 && ix < j->w) ? src[(size_t)yy * j->w + ix] : 0.f;
            }
            for (int q = 0; q < 5; q++) rows[r][q] = _mm512_loadu_ps(tmp + 16 * q);
        }
    }
    for (int q = 0; q < 5; q++) { /* columns: z[i] = (B^T d)[i], along the row span */
        __m512 d[6], t[6];
        for (int r = 0; r < 6; r++) d[r] = rows[r][q];
        bt6_v(t, d);
        for (int i = 0; i < 6; i++) z[i][q] = t[i];
    }
    for (int i = 0; i < 6; i++) { /* rows: deinterleave tile columns, then B^T again */
        __m512 p[6];
        for (int e = 0; e < 4; e++)
            p[e] = _mm512_mask_blend_ps(0xFF00, _mm512_permutex2var_ps(z[i][0], g->idx[e], z[i][1]),
                                        _mm512_permutex2var_ps(z[i][2], g->idx[e], z[i][3]));
        /* columns 4t + 4 and 4t + 5 are columns 4(t+1) and 4(t+1) + 1 */
        __m512i tail = _mm512_castps_si512(z[i][4]);
        p[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(tail, _mm512_castps_si512(p[0]), 1));
        p[5] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_alignr_epi32(tail, tail, 1),
                                                       _mm512_castps_si512(p[1]), 1));
        bt6_v(y + 6 * i, p);
    }
}

/* The groups of a panel of nr tiles from tile0 (nr / 16 of them), channel by channel: the
 * groups' halves of each line of V are written one right after the other, while the line
 * is in L1 (group by group, each line of V went to L2 and came back for its other half). */
AVX512 static void input_transform_avx512(float *v, const wino_job *j, int tile0) {
    const size_t xi_stride = (size_t)j->cin * j->nr;
    const int ng = j->nr / WT;
    group_geom g[GEMM_NR_MAX / WT];
    for (int q = 0; q < ng; q++) group_setup(&g[q], j, tile0 + q * WT);
    for (int c = 0; c < j->cin; c++)
        for (int q = 0; q < ng; q++) {
            __m512 y[36];
            /* the rows are a few hundred bytes each, one per channel plane, too many
             * streams for the hardware prefetchers: 2-4 % off each layer */
            if (c + PF_CHANNELS < j->cin) {
                const float *base = j->in + (size_t)(c + PF_CHANNELS) * j->h * j->w;
                for (int r = 0; r < 6; r++) {
                    int yy = g[q].iy0 + r;
                    if (yy < 0 || yy >= j->h) continue;
                    const char *row = (const char *)(base + (size_t)yy * j->w + (g[q].ix0 > 0 ? g[q].ix0 : 0));
                    for (int l = 0; l < 5; l++) _mm_prefetch(row + 64 * l, _MM_HINT_T0);
                }
            }
            transform_channel(y, j, &g[q], c);
            float *dst = v + (size_t)c * j->nr + q * WT;
            for (int xi = 0; xi < 36; xi++) _mm512_store_ps(dst + xi * xi_stride, y[xi]);
        }
}

/* The same transform, written as AMX B tiles (amx.h) for the panel's 32 tiles: lane0 (0
 * or 16) picks the half. */
AMX_TARGET static void input_transform_amx(unsigned short *v, const wino_job *j, int tile0, int lane0) {
    const int kb = j->cin / 32;
    group_geom g;
    group_setup(&g, j, tile0);
    for (int c = 0; c < j->cin; c += 2) {
        __m512 y0[36], y1[36];
        transform_channel(y0, j, &g, c);
        transform_channel(y1, j, &g, c + 1);
        for (int xi = 0; xi < 36; xi++) {
            size_t tile = ((size_t)xi * kb + c / 32) * 4 + lane0 / 16;
            amx_put_pair(v + tile * AMX_TILE + (size_t)(c % 32 / 2) * 32, y0[xi], y1[xi]);
        }
    }
}

/* M[xi] (cout x 32 tiles, row stride 32) = U[xi] . V[xi] for the 36 xi, for each of the
 * task's panels (V vpanel bf16 apart, M 36 * cout * 32 floats apart): a weight tile is
 * loaded from L3 once for all of them. */
AMX_TARGET static void gemm_amx(float *m, const unsigned short *u, const unsigned short *v, size_t vpanel,
                                int npanels, int cout, int cin) {
    static const float zero16[256] __attribute__((aligned(64)));
    const int mb = cout / 16, kb = cin / 32;
    amx_configure();
    for (int xi = 0; xi < 36; xi++)
        for (int p = 0; p < mb; p++)
            for (int q = 0; q < npanels; q++)
                amx_gemm(m + (((size_t)q * 36 + xi) * cout + (size_t)p * 16) * 32, 32,
                         u + (((size_t)xi * mb + p) * kb) * 2 * AMX_TILE,
                         v + q * vpanel + (size_t)xi * kb * 4 * AMX_TILE, kb, zero16);
    amx_release();
}

/* Output channel k of the group of WT tiles from tile0, lanes lane0.. of M. */
static inline AVX512 void output_group_k(const float *m, const wino_job *j, size_t xi_stride, int k, int tile0,
                                         int lane0) {
    const int oy = (tile0 / j->tw) * 4, ox = (tile0 % j->tw) * 4;
    float *dst = j->out + (size_t)(oy / 4) * j->tile_row_stride + ox + k * j->chan_stride;
    /* interleaving: lo/hi pair lanes 0..7 / 8..15 of two vectors, then pairs of pairs */
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512i lo2 = _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
    const __m512i hi2 = _mm512_setr_epi32(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
    __mmask16 mask[4];
    for (int q = 0; q < 4; q++) mask[q] = first_lanes(j->ow - ox - 16 * q);
    const int nrows = j->oh - oy < 4 ? j->oh - oy : 4;
    const float *src = m + (size_t)k * j->nr + lane0;
    __m512 y[6][4], o[4][4];
    for (int i = 0; i < 6; i++) { /* rows of M: 6 -> 4 columns */
        __m512 x[6];
        for (int e = 0; e < 6; e++) x[e] = _mm512_load_ps(src + (i * 6 + e) * xi_stride);
        at6_v(y[i], x);
    }
    const __m512 b = _mm512_set1_ps(j->bias ? j->bias[k] : 0.f);
    for (int e = 0; e < 4; e++) { /* columns: 6 -> 4 rows */
        __m512 x[6], r[4];
        for (int i = 0; i < 6; i++) x[i] = y[i][e];
        at6_v(r, x);
        for (int i = 0; i < 4; i++) o[i][e] = _mm512_add_ps(r[i], b);
    }
    for (int r = 0; r < nrows; r++, dst += j->ow) {
        __m512 l01 = _mm512_permutex2var_ps(o[r][0], lo, o[r][1]);
        __m512 h01 = _mm512_permutex2var_ps(o[r][0], hi, o[r][1]);
        __m512 l23 = _mm512_permutex2var_ps(o[r][2], lo, o[r][3]);
        __m512 h23 = _mm512_permutex2var_ps(o[r][2], hi, o[r][3]);
        _mm512_mask_storeu_ps(dst, mask[0], _mm512_permutex2var_ps(l01, lo2, l23));
        _mm512_mask_storeu_ps(dst + 16, mask[1], _mm512_permutex2var_ps(l01, hi2, l23));
        _mm512_mask_storeu_ps(dst + 32, mask[2], _mm512_permutex2var_ps(h01, lo2, h23));
        _mm512_mask_storeu_ps(dst + 48, mask[3], _mm512_permutex2var_ps(h01, hi2, h23));
    }
}

/* The groups of a panel of M (rows x nr, 36 of them) from tile0 that hold tiles (those
 * before ntiles), output channel by output channel, for the same reason as the input side:
 * each line of M is read once for all its groups. */
AVX512 static void output_transform_avx512(const float *m, const wino_job *j, int rows, int tile0) {
    const size_t xi_stride = (size_t)rows * j->nr;
    int ng = 0;
    while (ng < j->nr / WT && tile0 + ng * WT < j->ntiles) ng++;
    for (int k = 0; k < j->ww->cout; k++)
        for (int q = 0; q < ng; q++) output_group_k(m, j, xi_stride, k, tile0 + q * WT, q * WT);
}
#endif

/* The task's tiles [t0, t1) are written: counts them into their rows of tiles, and takes
 * the moments of each row this finishes (winograd_out.row_moments). */
static void rows_done(const wino_job *j, int t0, int t1) {
    for (int r = t0 / j->tw; r * j->tw < t1; r++) {
        int a = t0 > r * j->tw ? t0 : r * j->tw, b = t1 < (r + 1) * j->tw ? t1 : (r + 1) * j->tw;
        /* the count's release and acquire make the other threads' writes to the row visible */
        if (__atomic_add_fetch(&j->row_count[r], b - a, __ATOMIC_ACQ_REL) != j->tw) continue;
        const int nrows = j->oh - 4 * r < 4 ? j->oh - 4 * r : 4;
        for (int k = 0; k < j->ww->cout; k++)
            j->row_moments[(size_t)r * j->ww->cout + k] =
                group_moments(j->out + (size_t)r * j->tile_row_stride + k * j->chan_stride, (size_t)nrows * j->ow);
    }
}

static void wino_task(void *ctx, int task, int ntasks) {
    (void)ntasks;
    const wino_job *j = ctx;
    const gemm_arch *arch = j->ww->u[0].arch;
    const int mr = arch->mr, nr = j->nr, cin = j->cin, cout = j->ww->cout;
    const int rows = (cout + mr - 1) / mr * mr;
    float *v = j->scratch + (size_t)cg_pool_thread_index() * j->per_thread;
    float *m = v + (size_t)36 * j->panels * cin * nr;
    const int t0 = task * j->task_tiles;
    const int npanels = (j->ntiles - t0 < j->task_tiles ? j->ntiles - t0 + nr - 1 : j->task_tiles) / nr;
#ifdef CG_HAVE_AMX
    if (j->ww->amx) { /* panels of 32 tiles (nr is 32) */
        unsigned short *vt = (unsigned short *)v;
        const size_t vpanel = (size_t)36 * cin * 32 * 2; /* bf16 per panel: hi and lo */
        for (int q = 0; q < npanels; q++)
            for (int l = 0; l < nr; l += WT) input_transform_amx(vt + q * vpanel, j, t0 + q * nr + l, l);
        gemm_amx(m, j->ww->amx, vt, vpanel, npanels, cout, cin);
        for (int q = 0; q < npanels; q++) output_transform_avx512(m + (size_t)q * 36 * cout * 32, j, cout, t0 + q * nr);
        if (j->row_moments) rows_done(j, t0, t0 + npanels * nr < j->ntiles ? t0 + npanels * nr : j->ntiles);
        return;
    }
#endif
    const float zero[GEMM_MR_MAX] = {0};
    for (int q = 0; q < npanels; q++) {
        float *vq = v + (size_t)q * 36 * cin * nr;
#ifdef AVX512
        /* (a group past the last tile row reads rows past the input: zeros) */
        if (j->avx512) { input_transform_avx512(vq, j, t0 + q * nr); continue; }
#endif
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
#ifdef AVX512
        if (j->avx512) { output_transform_avx512(mq, j, rows, t0 + q * nr); continue; }
#endif
        for (int l = 0; l < nr && t0 + q * nr + l < j->ntiles; l += WT) output_transform(mq, j, rows, t0 + q * nr + l, l);
    }
    if (j->row_moments) rows_done(j, t0, t0 + npanels * nr < j->ntiles ? t0 + npanels * nr : j->ntiles);
}

/* (GEMM_MR_MAX rather than the kernel's own mr: the scratch must also hold the tasks of
 * any other kernel the weights were packed for, as the tests run them all.) */
size_t winograd_scratch_floats(int threads, int cin, int cout) {
    const gemm_arch *arch = gemm_arch_get();
    size_t per = (size_t)36 * MAX_PANELS * arch->nr * (cin + cout + GEMM_MR_MAX);
    return (size_t)threads * per + 16;
}

void conv3x3_winograd_forward(float *out, const float *in, const winograd_weights *ww,
                              const float *b, const conv_dims *d, float *scratch, cg_pool *pool) {
    const size_t ow = (size_t)conv_out_w(d);
    winograd_out o = {out, 4 * ow, (size_t)conv_out_h(d) * ow, NULL, NULL};
    conv3x3_winograd_forward_to(&o, in, ww, b, d, scratch, pool);
}

void conv3x3_winograd_forward_to(const winograd_out *o, const float *in, const winograd_weights *ww,
                                 const float *b, const conv_dims *d, float *scratch, cg_pool *pool) {
    const gemm_arch *arch = ww->u[0].arch;
    wino_job j;
    j.out = o->base, j.in = in, j.bias = b, j.ww = ww;
    j.tile_row_stride = o->tile_row_stride, j.chan_stride = o->chan_stride;
    j.row_moments = o->row_moments, j.row_count = o->row_count;
    j.cin = d->cin, j.h = d->h, j.w = d->w, j.pad = d->pad;
    j.oh = conv_out_h(d), j.ow = conv_out_w(d);
    j.tw = ((j.ow + 3) / 4 + WT - 1) / WT * WT;
    j.ntiles = ((j.oh + 3) / 4) * j.tw;
    j.nr = arch->nr;
    j.avx512 = arch->level >= GEMM_AVX512;
    j.panels = ww->amx ? AMX_PANELS : arch->nr >= 32 ? TASK_PANELS : NARROW_PANELS;
    j.task_tiles = j.panels * arch->nr;
    j.scratch = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    j.per_thread = (size_t)36 * j.panels * arch->nr * (d->cin + ww->cout + arch->mr);
    cg_pool_run(pool, wino_task, &j, (j.ntiles + j.task_tiles - 1) / j.task_tiles);
}
