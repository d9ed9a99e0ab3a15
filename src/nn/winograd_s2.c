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
 * AMX kernel keeps conv.c's path: products on its tiles would need their own layout of V
 * (as winograd.c's AMX path has), not written, so not measured either. */
#include "gemm.h"
#include "ops.h"
#include "pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WT 16 /* tiles per transform batch: one per vector lane */
#define NC9 9 /* components per dimension */
#define NXI (NC9 * NC9)
#define PF_CHANNELS 2 /* the AVX-512 input transform prefetches the rows this many channels ahead */

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
    int avx512; /* the AVX-512 transforms (with the AVX-512 kernel) */
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

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))

/* The AVX-512 transforms: the same arithmetic as above on 16 tiles (one per lane), but
 * without the element-by-element gather and scatter. A group's input rows are loaded as
 * vectors, the vertical half of the transform runs on them as loaded, and only its 9
 * results are deinterleaved into lanes: at stride 8 (the stride-2 convolution's tiles are
 * 8 samples apart) by a 16x8 transpose in three rounds of two-source permutes, at stride 4
 * (the transposed one's) as winograd.c does. The output side interleaves back: 4 columns
 * per tile as winograd.c does, 8 by the transpose's mirror image. */

static inline AVX512 void bt5_v(__m512 *y, __m512 d0, __m512 d1, __m512 d2, __m512 d3, __m512 d4) {
    const __m512 two = _mm512_set1_ps(2.f), three = _mm512_set1_ps(3.f);
    y[0] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(two, _mm512_sub_ps(d0, d2)), d1), d3);
    y[1] = _mm512_sub_ps(_mm512_sub_ps(d3, _mm512_mul_ps(two, d1)), d2);
    y[2] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(two, d1), _mm512_mul_ps(three, d2)), d3);
    y[3] = _mm512_sub_ps(d3, d1);
    y[4] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(two, _mm512_sub_ps(d1, d3)), d2), d4);
}

/* in_1d on vectors: x[i * xs], 9 (stride-2 convolution) or 5 (transposed) samples. */
static inline AVX512 void in_1d_v(__m512 *y, const __m512 *x, int xs, int deconv) {
    if (deconv) {
        for (int i = 0; i < 4; i++) y[i] = x[i * xs];
        bt5_v(y + 4, x[0], x[xs], x[2 * xs], x[3 * xs], x[4 * xs]);
    } else {
        for (int i = 0; i < 4; i++) y[i] = x[(2 * i + 1) * xs];
        bt5_v(y + 4, x[0], x[2 * xs], x[4 * xs], x[6 * xs], x[8 * xs]);
    }
}

/* out_1d on vectors: 4 or 8 outputs o[i] from the 9 components m[i * ms]. */
static inline AVX512 void out_1d_v(__m512 *o, const __m512 *m, int ms, int deconv) {
    const __m512 m4 = m[4 * ms], m5 = m[5 * ms], m6 = m[6 * ms], m7 = m[7 * ms], m8 = m[8 * ms];
    const __m512 a = _mm512_add_ps(m5, m6), b = _mm512_sub_ps(m5, m6);
    __m512 two[4];
    two[0] = _mm512_add_ps(_mm512_add_ps(m4, a), m7);
    two[1] = _mm512_add_ps(b, _mm512_mul_ps(_mm512_set1_ps(2.f), m7));
    two[2] = _mm512_add_ps(a, _mm512_mul_ps(_mm512_set1_ps(4.f), m7));
    two[3] = _mm512_add_ps(_mm512_add_ps(b, _mm512_mul_ps(_mm512_set1_ps(8.f), m7)), m8);
    for (int i = 0; i < 4; i++) {
        if (deconv) o[2 * i] = m[i * ms], o[2 * i + 1] = two[i];
        else o[i] = _mm512_add_ps(m[i * ms], two[i]);
    }
}

/* Permute indices: tr[r][h], round r (0..2) of the 16x8 transpose, half h; il[r][h] its
 * mirror image; st4[e], lane t <- element 4t + e of a 32-float pair. A round of the
 * transpose takes two vectors of g samples of 16/g tiles each (g = 8, 4, 2) and makes two
 * of g/2 samples of twice the tiles: the first half of the samples, then the second. */
typedef struct {
    __m512i tr[3][2], il[3][2], st4[4];
} s2_perms;

AVX512 static void perms_setup(s2_perms *p) {
    for (int r = 0; r < 3; r++) {
        const int g = 8 >> r, tiles = 16 / g;
        for (int h = 0; h < 2; h++) {
            int tr[16], il[16];
            for (int l = 0; l < 16; l++) {
                int tile = l / (g / 2); /* transpose: lane l of the output */
                tr[l] = (tile % tiles) * g + h * (g / 2) + l % (g / 2) + (tile >= tiles ? 16 : 0);
                /* interleave, round r: two vectors of gi samples of 16/gi tiles each (gi =
                 * 1, 2, 4) make one of 2 gi samples of half the tiles, the first or the
                 * second half (h): sample s of the output from the first (s < gi) or the
                 * second input */
                int gi = 1 << r, s = l % (2 * gi), t = h * (16 / gi / 2) + l / (2 * gi);
                il[l] = t * gi + s % gi + (s >= gi ? 16 : 0);
            }
            p->tr[r][h] = _mm512_loadu_si512(tr);
            p->il[r][h] = _mm512_loadu_si512(il);
        }
    }
    for (int e = 0; e < 4; e++) {
        int idx[16];
        for (int t = 0; t < 16; t++) idx[t] = (4 * t + e) & 31;
        p->st4[e] = _mm512_loadu_si512(idx);
    }
}

/* z[0..8]: 129 consecutive floats (the last in z[8]'s lane 0); p[s], s = 0..8: lane t
 * holds float 8t + s. */
static inline AVX512 void deinterleave8(__m512 *p, const __m512 *z, const s2_perms *pm) {
    __m512 a[8], b[8];
    for (int i = 0; i < 4; i++) { /* round 0: samples 0-3 and 4-7 of 4 tiles */
        a[i] = _mm512_permutex2var_ps(z[2 * i], pm->tr[0][0], z[2 * i + 1]);
        a[4 + i] = _mm512_permutex2var_ps(z[2 * i], pm->tr[0][1], z[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* round 1: pairs of samples of 8 tiles */
        b[2 * i] = _mm512_permutex2var_ps(a[2 * i], pm->tr[1][0], a[2 * i + 1]);
        b[2 * i + 1] = _mm512_permutex2var_ps(a[2 * i], pm->tr[1][1], a[2 * i + 1]);
    }
    /* b: s01 and s23 of tiles 0-7, s01 and s23 of 8-15, s45 and s67 of 0-7, of 8-15 */
    static const int lo[4] = {0, 1, 4, 5}, hi[4] = {2, 3, 6, 7};
    for (int i = 0; i < 4; i++) { /* round 2: one sample of 16 tiles */
        p[2 * i] = _mm512_permutex2var_ps(b[lo[i]], pm->tr[2][0], b[hi[i]]);
        p[2 * i + 1] = _mm512_permutex2var_ps(b[lo[i]], pm->tr[2][1], b[hi[i]]);
    }
    p[8] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(z[8]), _mm512_castps_si512(p[0]), 1));
}

/* The same at stride 4 from 65 floats z[0..4]: p[s], s = 0..4. */
static inline AVX512 void deinterleave4(__m512 *p, const __m512 *z, const s2_perms *pm) {
    for (int e = 0; e < 4; e++)
        p[e] = _mm512_mask_blend_ps(0xFF00, _mm512_permutex2var_ps(z[0], pm->st4[e], z[1]),
                                    _mm512_permutex2var_ps(z[2], pm->st4[e], z[3]));
    p[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(z[4]), _mm512_castps_si512(p[0]), 1));
}

/* Lanes 0..n-1 set (n clamped to [0, 16]). */
static inline __mmask16 first_lanes(int n) {
    return n <= 0 ? 0 : n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
}

/* The groups of a panel of nr tiles from tile0, channel by channel (each line of V is
 * written once for all its groups, as in winograd.c). */
AVX512 static void input_transform_avx512(float *v, const s2_job *j, int tile0, const s2_perms *pm) {
    const size_t plane = (size_t)j->h * j->w, xi_stride = (size_t)j->cin * j->nr;
    const int n = j->span, st = j->step, width = st * (WT - 1) + n, nv = (width + 15) / 16;
    const int ng = j->nr / WT;
    int iy0[GEMM_NR_MAX / WT], ix0[GEMM_NR_MAX / WT];
    __mmask16 mask[GEMM_NR_MAX / WT][NC9];
    for (int q = 0; q < ng; q++) {
        int t0 = tile0 + q * WT;
        iy0[q] = (j->ty0 + t0 / j->tw) * st - j->pad, ix0[q] = (t0 % j->tw) * st - j->pad;
        for (int k = 0; k < nv; k++) mask[q][k] = first_lanes(j->w - ix0[q] - 16 * k < width - 16 * k ? j->w - ix0[q] - 16 * k : width - 16 * k);
    }
    for (int c = 0; c < j->cin; c++)
        for (int q = 0; q < ng; q++) {
            const float *src = j->in + c * plane;
            if (c + PF_CHANNELS < j->cin) /* as in winograd.c: the rows a few channels ahead */
                for (int r = 0; r < n; r++) {
                    int y = iy0[q] + r;
                    if (y < 0 || y >= j->h) continue;
                    const char *row = (const char *)(src + PF_CHANNELS * plane + (size_t)y * j->w + (ix0[q] > 0 ? ix0[q] : 0));
                    for (int l = 0; l < nv; l++) _mm_prefetch(row + 64 * l, _MM_HINT_T0);
                }
            __m512 rows[NC9][NC9], z[NC9][NC9]; /* [row][vector], then [component][vector] */
            for (int r = 0; r < n; r++) {
                int y = iy0[q] + r;
                if (y < 0 || y >= j->h) {
                    for (int k = 0; k < nv; k++) rows[r][k] = _mm512_setzero_ps();
                } else if (ix0[q] >= 0) {
                    const float *row = src + (size_t)y * j->w + ix0[q];
                    for (int k = 0; k < nv; k++) rows[r][k] = _mm512_maskz_loadu_ps(mask[q][k], row + 16 * k);
                } else { /* the span starts left of the input (zero padding): through a copy */
                    float tmp[NC9 * 16];
                    for (int x = 0; x < 16 * nv; x++) {
                        int ix = ix0[q] + x;
                        tmp[x] = x < width && ix >= 0 && ix < j->w ? src[(size_t)y * j->w + ix] : 0.f;
                    }
                    for (int k = 0; k < nv; k++) rows[r][k] = _mm512_loadu_ps(tmp + 16 * k);
                }
            }
            for (int k = 0; k < nv; k++) { /* vertical: z[a][k], along the rows' span */
                __m512 y[NC9];
                in_1d_v(y, &rows[0][k], NC9, j->deconv);
                for (int a = 0; a < NC9; a++) z[a][k] = y[a];
            }
            float *dst = v + (size_t)c * j->nr + q * WT;
            for (int a = 0; a < NC9; a++) { /* horizontal: deinterleave the tiles, transform */
                __m512 p[NC9], y[NC9];
                if (j->deconv) deinterleave4(p, z[a], pm);
                else deinterleave8(p, z[a], pm);
                in_1d_v(y, p, 1, j->deconv);
                for (int b = 0; b < NC9; b++) _mm512_store_ps(dst + (size_t)(a * NC9 + b) * xi_stride, y[b]);
            }
        }
}

/* Output channel k of the group of 16 tiles from tile0 (lanes lane0.. of M). */
static inline AVX512 void output_group_k(const float *m, const s2_job *j, size_t xi_stride, int k, int tile0,
                                         int lane0, const s2_perms *pm) {
    const int no = j->deconv ? 8 : 4;
    const int oy = (j->ty0 + tile0 / j->tw) * no, ox = (tile0 % j->tw) * no;
    const size_t out_plane = (size_t)(j->wy1 - j->wy0) * j->dw;
    const float *src = m + (size_t)k * j->nr + lane0;
    __m512 x[NXI], y[8][NC9];
    for (int xi = 0; xi < NXI; xi++) x[xi] = _mm512_load_ps(src + xi * xi_stride);
    for (int b = 0; b < NC9; b++) { /* vertical: 9 components -> no rows */
        __m512 o[8];
        out_1d_v(o, x + b, NC9, j->deconv);
        for (int r = 0; r < no; r++) y[r][b] = o[r];
    }
    const __m512 bias = _mm512_set1_ps(j->bias ? j->bias[k] : 0.f);
    for (int r = 0; r < no; r++) {
        int yy = oy + r;
        if (yy < j->wy0 || yy >= j->wy1 || yy >= j->oh) continue;
        __m512 o[8], w[8];
        out_1d_v(o, y[r], 1, j->deconv); /* horizontal: o[e], lane t = column no t + e */
        for (int e = 0; e < no; e++) o[e] = _mm512_add_ps(o[e], bias);
        if (no == 4) { /* as winograd.c: pairs of lanes, then pairs of pairs */
            __m512 l01 = _mm512_permutex2var_ps(o[0], pm->il[0][0], o[1]);
            __m512 h01 = _mm512_permutex2var_ps(o[0], pm->il[0][1], o[1]);
            __m512 l23 = _mm512_permutex2var_ps(o[2], pm->il[0][0], o[3]);
            __m512 h23 = _mm512_permutex2var_ps(o[2], pm->il[0][1], o[3]);
            w[0] = _mm512_permutex2var_ps(l01, pm->il[1][0], l23);
            w[1] = _mm512_permutex2var_ps(l01, pm->il[1][1], l23);
            w[2] = _mm512_permutex2var_ps(h01, pm->il[1][0], h23);
            w[3] = _mm512_permutex2var_ps(h01, pm->il[1][1], h23);
        } else { /* three rounds: 2, 4, then 8 samples per tile */
            __m512 a[8], b[8];
            for (int i = 0; i < 4; i++) {
                a[2 * i] = _mm512_permutex2var_ps(o[2 * i], pm->il[0][0], o[2 * i + 1]);     /* tiles 0-7 */
                a[2 * i + 1] = _mm512_permutex2var_ps(o[2 * i], pm->il[0][1], o[2 * i + 1]); /* 8-15 */
            }
            /* a: s01 of tiles 0-7, of 8-15; s23 ...; s45 ...; s67 ... */
            for (int i = 0; i < 2; i++)
                for (int hh = 0; hh < 2; hh++) { /* s0-3 (i 0) or s4-7 (i 1) of tiles 0-7 (hh 0) or 8-15 */
                    __m512 u = a[4 * i + hh], v = a[4 * i + 2 + hh];
                    b[4 * i + 2 * hh] = _mm512_permutex2var_ps(u, pm->il[1][0], v);     /* 4 tiles */
                    b[4 * i + 2 * hh + 1] = _mm512_permutex2var_ps(u, pm->il[1][1], v); /* the next 4 */
                }
            /* b: s0-3 of tiles 0-3, 4-7, 8-11, 12-15, then s4-7 of the same */
            for (int i = 0; i < 4; i++) {
                w[2 * i] = _mm512_permutex2var_ps(b[i], pm->il[2][0], b[4 + i]);
                w[2 * i + 1] = _mm512_permutex2var_ps(b[i], pm->il[2][1], b[4 + i]);
            }
        }
        float *dst = j->out + k * out_plane + (size_t)(yy - j->wy0) * j->dw + j->px + ox;
        for (int q = 0; q < no; q++) _mm512_mask_storeu_ps(dst + 16 * q, first_lanes(j->ow - ox - 16 * q), w[q]);
    }
}

/* The groups of a panel of M that hold tiles, output channel by output channel. */
AVX512 static void output_transform_avx512(const float *m, const s2_job *j, int rows, int tile0,
                                           const s2_perms *pm) {
    const size_t xi_stride = (size_t)rows * j->nr;
    int ng = 0;
    while (ng < j->nr / WT && tile0 + ng * WT < j->ntiles) ng++;
    for (int k = 0; k < j->ww->cout; k++)
        for (int q = 0; q < ng; q++) output_group_k(m, j, xi_stride, k, tile0 + q * WT, q * WT, pm);
}
#endif

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
#ifdef AVX512
    s2_perms pm;
    if (j->avx512) perms_setup(&pm);
#endif
    for (int q = 0; q < npanels; q++) {
#ifdef AVX512
        if (j->avx512) {
            input_transform_avx512(v + (size_t)q * NXI * cin * nr, j, t0 + q * nr, &pm);
            continue;
        }
#endif
        for (int l = 0; l < nr; l += WT) input_transform(v + (size_t)q * NXI * cin * nr, j, t0 + q * nr + l, l);
    }
    for (int xi = 0; xi < NXI; xi++) {
        const packed_weights *u = &j->ww->u[weight_of(xi)];
        for (int p = 0; p < rows / mr; p++) {
            const float *a = u->panels + (size_t)p * cin * mr;
            for (int q = 0; q < npanels; q++)
                arch->kernel(cin, a, v + ((size_t)q * NXI + xi) * cin * nr,
                             m + (((size_t)q * NXI + xi) * rows + (size_t)p * mr) * nr, (size_t)nr, zero);
        }
    }
    for (int q = 0; q < npanels; q++) {
#ifdef AVX512
        if (j->avx512) {
            output_transform_avx512(m + (size_t)q * NXI * rows * nr, j, rows, t0 + q * nr, &pm);
            continue;
        }
#endif
        for (int l = 0; l < nr && t0 + q * nr + l < j->ntiles; l += WT)
            output_transform(m + (size_t)q * NXI * rows * nr, j, rows, t0 + q * nr + l, l);
    }
}

/* Panels of NR tiles per task: one with 32-wide panels, two with 16-wide ones: 32 tiles
 * whatever the kernel. */
static int task_panels(const gemm_arch *arch) { return arch->nr >= 32 ? 1 : 2; }

/* (With GEMM_MR_MAX: enough for any kernel's tasks, as the tests run them all.) */
size_t winograd_s2_scratch_floats(int threads, int cin, int cout) {
    return (size_t)threads * NXI * 32 * (cin + cout + GEMM_MR_MAX) + 16;
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
    j->avx512 = arch->level >= GEMM_AVX512;
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
