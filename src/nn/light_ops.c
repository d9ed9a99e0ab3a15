/* light_ops.c: the fast kernels of the light generator's own ops (issue 13): moments for
 * its global norm, the depthwise 3x3 with TensorFlow's "SAME" padding and TensorFlow 1's
 * bilinear x2. All take tensors as plane pointers read through per-channel maps (ops.h),
 * so that the norm and ReLU before them cost no pass of their own, and run one channel per
 * task. They are memory-bound: each reads its input once, row by row, mapping and padding
 * each row into a small per-thread buffer, and computes along rows, which vectorises.
 *
 * The arithmetic is plain multiplies and adds in a fixed order (ISO C: no contraction into
 * fused multiply-adds), so every CPU computes the same values; the moments are merged in
 * channel order, so the thread count changes nothing either. */
#include <math.h>
#include <string.h>

#include "gemm.h"
#include "ops.h"
#include "pool.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

/* ---- moments ---- */

enum { LANES = 16, CHAINS = 4 };
enum { MOMENT_BLOCK = 2048 }; /* values per moments_of call where the caller can choose */

/* The sum of (x - shift) (or its square) over rows[0..nrows) of n values each, in LANES
 * float lanes, CHAINS vectors of them so that the adds do not wait on each other, folded
 * in a fixed tree and finished in double: every step a constant-length loop that
 * vectorises. The fold costs as much as the adds of a few hundred values, so callers pass
 * several rows at once (conv2d_forward_io: a micro-kernel panel's). */
#if defined(__GNUC__)
__attribute__((always_inline)) /* into each of the callers' clones, for their vector width */
#endif
static inline double lane_sum(const float *const *rows, int nrows, size_t n, float shift, int square) {
    float acc[CHAINS][LANES] = {{0}};
    double tail = 0;
    for (int r = 0; r < nrows; r++) {
        const float *x = rows[r];
        size_t i = 0;
        for (; i + CHAINS * LANES <= n; i += CHAINS * LANES)
            for (int c = 0; c < CHAINS; c++)
                for (int l = 0; l < LANES; l++) {
                    float d = x[i + c * LANES + l] - shift;
                    acc[c][l] += square ? d * d : d;
                }
        for (; i + LANES <= n; i += LANES)
            for (int l = 0; l < LANES; l++) {
                float d = x[i + l] - shift;
                acc[0][l] += square ? d * d : d;
            }
        for (; i < n; i++) {
            double d = (double)x[i] - shift;
            tail += square ? d * d : d;
        }
    }
    double f[LANES];
    for (int l = 0; l < LANES; l++) f[l] = (double)(acc[0][l] + acc[1][l]) + (double)(acc[2][l] + acc[3][l]);
    for (int w = LANES / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) f[l] += f[l + w];
    return f[0] + tail;
}

MULTIVERSION moments moments_of_rows(const float *const *rows, int nrows, size_t n) {
    const double count = (double)nrows * (double)n;
    if (count == 0) return (moments){0, 0, 0};
    const double mean = lane_sum(rows, nrows, n, 0.f, 0) / count;
    const float mf = (float)mean;
    double m2 = lane_sum(rows, nrows, n, mf, 1);
    /* the squares were taken about the float-rounded mean, off by delta: the sum about a
     * point off the mean by delta is m2 + n delta^2 */
    const double delta = (double)mf - mean;
    m2 -= count * delta * delta;
    return (moments){count, mean, m2 > 0 ? m2 : 0};
}

moments moments_of(const float *x, size_t n) { return moments_of_rows(&x, 1, n); }

void moments_merge(moments *a, const moments *b) {
    if (b->n == 0) return;
    if (a->n == 0) {
        *a = *b;
        return;
    }
    const double n = a->n + b->n, d = b->mean - a->mean;
    a->mean += d * b->n / n;
    a->m2 += b->m2 + d * d * a->n * b->n / n;
    a->n = n;
}

chan_affine global_norm_affine(const moments *m, float gamma, float beta, float eps, int relu) {
    double var = m->n > 0 ? m->m2 / m->n : 0;
    double scale = gamma / (sqrt(var) + eps);
    return (chan_affine){(float)m->mean, (float)scale, beta, relu ? 0.f : -INFINITY};
}

/* x[0..n) read through a (NULL: as stored) into o. */
MULTIVERSION static void map_into(float *restrict o, const float *restrict x, int n, const chan_affine *a) {
    if (!a) {
        memcpy(o, x, (size_t)n * sizeof *o);
        return;
    }
    const float m = a->mean, s = a->scale, c = a->shift, lo = a->lo;
    for (int i = 0; i < n; i++) {
        float v = (x[i] - m) * s + c;
        o[i] = v > lo ? v : lo;
    }
}

typedef struct {
    moments *out;
    const float *const *in;
    size_t hw;
} moments_job;

static void moments_task(void *ctx, int ch, int n) {
    (void)n;
    moments_job *j = ctx;
    j->out[ch] = moments_of(j->in[ch], j->hw);
}

void planes_moments(moments *m, const float *const *in, int c, size_t hw, moments *partial, cg_pool *pool) {
    moments_job j = {partial, in, hw};
    cg_pool_run(pool, moments_task, &j, c);
    *m = (moments){0, 0, 0};
    for (int ch = 0; ch < c; ch++) moments_merge(m, &partial[ch]);
}

typedef struct {
    float *const *out;
    const float *const *in;
    const chan_affine *aff;
    size_t hw;
} apply_job;

enum { APPLY_CHUNK = 1 << 14 };

static void apply_task(void *ctx, int ch, int n) {
    (void)n;
    apply_job *j = ctx;
    /* in pieces, as map_into takes an int count */
    for (size_t i = 0; i < j->hw; i += APPLY_CHUNK) {
        size_t k = j->hw - i < APPLY_CHUNK ? j->hw - i : APPLY_CHUNK;
        map_into(j->out[ch] + i, j->in[ch] + i, (int)k, j->aff ? &j->aff[ch] : NULL);
    }
}

void planes_apply(float *const *out, const float *const *in, const chan_affine *aff, int c, size_t hw,
                  cg_pool *pool) {
    apply_job j = {out, in, aff, hw};
    cg_pool_run(pool, apply_task, &j, c);
}

typedef struct {
    float *dst;
    const float *const *in;
    const chan_affine *aff;
    int h, w, y0, rows, pad;
} band_job;

static void band_task(void *ctx, int ch, int n) {
    (void)n;
    const band_job *j = ctx;
    const int pw = j->w + 2 * j->pad, nrows = j->rows + 2 * j->pad;
    for (int i = 0; i < nrows; i++) {
        float *d = j->dst + ((size_t)ch * nrows + i) * pw;
        const int y = j->y0 - j->pad + i;
        if (y < 0 || y >= j->h) {
            memset(d, 0, (size_t)pw * sizeof *d);
            continue;
        }
        memset(d, 0, (size_t)j->pad * sizeof *d);
        map_into(d + j->pad, j->in[ch] + (size_t)y * j->w, j->w, j->aff ? &j->aff[ch] : NULL);
        memset(d + j->pad + j->w, 0, (size_t)j->pad * sizeof *d);
    }
}

void planes_pad_band(float *dst, const float *const *in, const chan_affine *aff, int c, int h, int w, int y0,
                     int rows, int pad, cg_pool *pool) {
    band_job j = {dst, in, aff, h, w, y0, rows, pad};
    cg_pool_run(pool, band_task, &j, c);
}

/* ---- per-thread row buffers ---- */

/* Per thread: the depthwise convolution's three padded input rows (stride 2: each as its
 * even and odd columns, 2 ceil(w/2) + 1 <= w + 2 values) and one or two more rows to build
 * them in; or the upsampling's mapped row, two wide rows and their middle row. */
enum { SCRATCH_ROWS = 8 };
static size_t row_floats(int w) { return ((size_t)w + 2 + 15) & ~(size_t)15; }

size_t light_ops_scratch_floats(int w, int threads) {
    size_t per = SCRATCH_ROWS * row_floats(w);
    return (size_t)(threads > 0 ? threads : 1) * per;
}

/* ---- bilinear x2 along rows (TensorFlow 1) ---- */

/* Row x (w values) along the width into o (2w values). */
MULTIVERSION static void up_row(float *restrict o, const float *restrict x, int w) {
    for (int i = 0; i + 1 < w; i++) {
        o[2 * i] = x[i];
        o[2 * i + 1] = x[i] + (x[i + 1] - x[i]) * 0.5f;
    }
    o[2 * w - 2] = o[2 * w - 1] = x[w - 1]; /* a + (a - a) * 0.5 is a */
}

/* o may be a (each value is read before it is written). */
MULTIVERSION static void mid_row(float *o, const float *a, const float *restrict b, int n) {
    for (int i = 0; i < n; i++) o[i] = a[i] + (b[i] - a[i]) * 0.5f;
}

/* ---- depthwise 3x3, TF "SAME" ---- */

typedef struct {
    float *const *out;
    const float *const *in;
    const chan_affine *aff;
    const float *w;
    dw_dims d;
    int oh, ow, pt, pl;
    moments *partial;
    float *scratch;
} dw_job;

/* The last three input rows loaded, replaced in turn: rows are asked for in order, so the
 * one replaced is always the oldest. */
typedef struct {
    float *buf[3];
    int tag[3];
    int next;
    float *wide;   /* stride 2: the padded row before it is split */
    float *up[2];  /* up2: the two half-size rows an upsampled row is made of, widened */
} row_cache;

/* Input row iy of plane x (h x w), mapped and zero-padded: stride 1 as w + 2 values (column
 * q - 1 at q); stride 2 as its even padded columns then its odd ones (padded column q is
 * input column q - pl; ow + 1 even ones, then ow odd ones), through `wide`, the padded row
 * (2 ow + 1 <= w + 2 values): both loops then vectorise. */
MULTIVERSION static void load_row(float *restrict dst, const row_cache *rc, const dw_job *j, const float *x,
                                  const chan_affine *a, int iy) {
    const int w = j->d.w;
    float *restrict wide = rc->wide;
    if (j->d.stride == 1) {
        dst[0] = dst[w + 1] = 0.f;
        if (iy < 0 || iy >= j->d.h) {
            memset(dst + 1, 0, (size_t)w * sizeof *dst);
        } else if (j->d.up2) {
            /* row iy of the upsampled tensor: half-size row iy/2 widened, and for an odd
             * row the middle of it and the next (the last repeated) */
            const int hw = w / 2, i = iy / 2, next = i + 1 < j->d.h / 2 ? i + 1 : i;
            up_row(rc->up[0], x + (size_t)i * hw, hw);
            if (iy & 1) {
                up_row(rc->up[1], x + (size_t)next * hw, hw);
                mid_row(rc->up[0], rc->up[0], rc->up[1], w);
            }
            map_into(dst + 1, rc->up[0], w, a);
        } else {
            map_into(dst + 1, x + (size_t)iy * w, w, a);
        }
        return;
    }
    const int ow = j->ow, pl = j->pl, n = 2 * ow + 1;
    float *restrict even = dst, *restrict odd = dst + ow + 1;
    if (iy < 0 || iy >= j->d.h) {
        memset(dst, 0, (size_t)n * sizeof *dst);
        return;
    }
    for (int q = 0; q < pl; q++) wide[q] = 0.f;
    map_into(wide + pl, x + (size_t)iy * w, w, a);
    for (int q = pl + w; q < n; q++) wide[q] = 0.f;
    for (int q = 0; q <= ow; q++) even[q] = wide[2 * q];
    for (int q = 0; q < ow; q++) odd[q] = wide[2 * q + 1];
}

static const float *cached_row(row_cache *rc, const dw_job *j, const float *x, const chan_affine *a, int iy) {
    for (int s = 0; s < 3; s++)
        if (rc->tag[s] == iy) return rc->buf[s];
    int s = rc->next;
    rc->next = (s + 1) % 3;
    load_row(rc->buf[s], rc, j, x, a, iy);
    rc->tag[s] = iy;
    return rc->buf[s];
}

/* One output row from its three input rows r[ky], the taps k[ky * 3 + kx]. */
MULTIVERSION static void dw_row_s1(float *restrict o, const float *restrict r0, const float *restrict r1,
                                   const float *restrict r2, const float *k, int n) {
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    for (int x = 0; x < n; x++)
        o[x] = k0 * r0[x] + k1 * r0[x + 1] + k2 * r0[x + 2] + k3 * r1[x] + k4 * r1[x + 1] + k5 * r1[x + 2] +
               k6 * r2[x] + k7 * r2[x + 1] + k8 * r2[x + 2];
}

/* The same at stride 2, each row as its even columns e and odd ones (e + n + 1). */
MULTIVERSION static void dw_row_s2(float *restrict o, const float *restrict r0, const float *restrict r1,
                                   const float *restrict r2, const float *k, int n) {
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    const float *restrict o0 = r0 + n + 1, *restrict o1 = r1 + n + 1, *restrict o2 = r2 + n + 1;
    for (int x = 0; x < n; x++)
        o[x] = k0 * r0[x] + k1 * o0[x] + k2 * r0[x + 1] + k3 * r1[x] + k4 * o1[x] + k5 * r1[x + 1] +
               k6 * r2[x] + k7 * o2[x] + k8 * r2[x + 1];
}

static void dw_task(void *ctx, int ch, int n) {
    (void)n;
    const dw_job *j = ctx;
    const int s = j->d.stride;
    float *mine = j->scratch + (size_t)cg_pool_thread_index() * SCRATCH_ROWS * row_floats(j->d.w);
    const size_t rf = row_floats(j->d.w);
    row_cache rc = {{mine, mine + rf, mine + 2 * rf}, {-9, -9, -9}, 0, mine + 3 * rf, {mine + 4 * rf, mine + 5 * rf}};
    const float *x = j->in[ch], *k = j->w + (size_t)ch * 9;
    const chan_affine *a = j->aff ? &j->aff[ch] : NULL;
    float *y = j->out[ch];
    moments st = {0, 0, 0};
    int first = 0; /* the rows [first, oy] whose moments are not taken yet */
    for (int oy = 0; oy < j->oh; oy++) {
        int iy = oy * s - j->pt;
        const float *r0 = cached_row(&rc, j, x, a, iy), *r1 = cached_row(&rc, j, x, a, iy + 1),
                    *r2 = cached_row(&rc, j, x, a, iy + 2);
        float *o = y + (size_t)oy * j->ow;
        if (s == 1) dw_row_s1(o, r0, r1, r2, k, j->ow);
        else dw_row_s2(o, r0, r1, r2, k, j->ow);
        /* the moments of a few rows at a time, while they are in cache: at least
         * MOMENT_BLOCK values, so that their fixed cost (moments_of's fold) is shared */
        if (j->partial && ((size_t)(oy - first + 1) * j->ow >= MOMENT_BLOCK || oy == j->oh - 1)) {
            moments m = moments_of(y + (size_t)first * j->ow, (size_t)(oy - first + 1) * j->ow);
            moments_merge(&st, &m);
            first = oy + 1;
        }
    }
    if (j->partial) j->partial[ch] = st;
}

void dwconv3x3_forward(float *const *out, const float *const *in, const chan_affine *aff, const float *w,
                       const dw_dims *d, moments *stats, moments *partial, float *scratch, cg_pool *pool) {
    dw_job j = {out, in, aff, w, *d, dw_out_side(d->h, d->stride), dw_out_side(d->w, d->stride),
                dw_pad_before(d->h, d->stride), dw_pad_before(d->w, d->stride), stats ? partial : NULL, scratch};
    cg_pool_run(pool, dw_task, &j, d->c);
    if (stats) {
        *stats = (moments){0, 0, 0};
        for (int ch = 0; ch < d->c; ch++) moments_merge(stats, &partial[ch]);
    }
}

/* ---- bilinear x2, TensorFlow 1 ---- */

typedef struct {
    float *const *out; /* NULL: moments only */
    const float *const *in;
    const chan_affine *aff;
    int h, w;
    float *scratch;
    moments *partial;
} up_job;

static void up_task(void *ctx, int ch, int n) {
    (void)n;
    const up_job *j = ctx;
    const int w = j->w, ow = 2 * w;
    const size_t rf = row_floats(w);
    float *mine = j->scratch + (size_t)cg_pool_thread_index() * SCRATCH_ROWS * rf;
    /* 2w <= 2 rf each */
    float *mapped = mine, *wide[2] = {mine + rf, mine + 3 * rf}, *mid = mine + 5 * rf;
    const float *x = j->in[ch];
    const chan_affine *a = j->aff ? &j->aff[ch] : NULL;
    float *y = j->out ? j->out[ch] : NULL;
    moments st = {0, 0, 0};
    map_into(mapped, x, w, a);
    up_row(wide[0], mapped, w);
    for (int i = 0; i < j->h; i++) {
        const float *cur = wide[i & 1], *next = cur;
        if (i + 1 < j->h) {
            map_into(mapped, x + (size_t)(i + 1) * w, w, a);
            up_row(wide[(i + 1) & 1], mapped, w);
            next = wide[(i + 1) & 1];
        }
        if (y) {
            memcpy(y + (size_t)2 * i * ow, cur, (size_t)ow * sizeof *y);
            mid_row(y + (size_t)(2 * i + 1) * ow, cur, next, ow);
        } else {
            mid_row(mid, cur, next, ow);
            const float *rows[2] = {cur, mid};
            moments m = moments_of_rows(rows, 2, (size_t)ow);
            moments_merge(&st, &m);
        }
    }
    if (!y) j->partial[ch] = st;
}

void upsample2_bilinear_forward(float *const *out, const float *const *in, const chan_affine *aff, int c,
                                int h, int w, float *scratch, cg_pool *pool) {
    up_job j = {out, in, aff, h, w, scratch, NULL};
    cg_pool_run(pool, up_task, &j, c);
}

void upsample2_moments(moments *m, const float *const *in, int c, int h, int w, moments *partial, float *scratch,
                       cg_pool *pool) {
    up_job j = {NULL, in, NULL, h, w, scratch, partial};
    cg_pool_run(pool, up_task, &j, c);
    *m = (moments){0, 0, 0};
    for (int ch = 0; ch < c; ch++) moments_merge(m, &partial[ch]);
}

/* ---- a convolution to 3 outputs (final_conv) ---- */

typedef struct {
    float *out;
    const float *in, *w, *b;
    conv_dims d;
    int oh, ow;
} out3_job;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* One input row's taps into one output row's 3 x 3 accumulators A##co##q, from kernel row
 * KY (wp: output 0's weights of this input channel; wco apart for the next output). */
#define OUT3_TAP(A, KY)                                                                        \
    do {                                                                                       \
        const float *t = wp + (size_t)(KY) * k + kx;                                           \
        __m512 w0 = _mm512_set1_ps(t[0]), w1 = _mm512_set1_ps(t[wco]), w2 = _mm512_set1_ps(t[2 * wco]); \
        A##00 = _mm512_fmadd_ps(w0, v0, A##00), A##01 = _mm512_fmadd_ps(w0, v1, A##01);        \
        A##02 = _mm512_fmadd_ps(w0, v2, A##02), A##10 = _mm512_fmadd_ps(w1, v0, A##10);        \
        A##11 = _mm512_fmadd_ps(w1, v1, A##11), A##12 = _mm512_fmadd_ps(w1, v2, A##12);        \
        A##20 = _mm512_fmadd_ps(w2, v0, A##20), A##21 = _mm512_fmadd_ps(w2, v1, A##21);        \
        A##22 = _mm512_fmadd_ps(w2, v2, A##22);                                                \
    } while (0)

#define OUT3_LOAD()                                                                            \
    __m512 v0 = _mm512_maskz_loadu_ps(m0, row + kx), v1 = _mm512_maskz_loadu_ps(m1, row + kx + 16), \
           v2 = _mm512_maskz_loadu_ps(m2, row + kx + 32)

#define OUT3_STORE(A, R)                                                                       \
    do {                                                                                       \
        float *o = j->out + (size_t)(oy + (R)) * ow + x0;                                      \
        _mm512_mask_storeu_ps(o, m0, A##00), _mm512_mask_storeu_ps(o + 16, m1, A##01);         \
        _mm512_mask_storeu_ps(o + 32, m2, A##02);                                              \
        o += plane;                                                                            \
        _mm512_mask_storeu_ps(o, m0, A##10), _mm512_mask_storeu_ps(o + 16, m1, A##11);         \
        _mm512_mask_storeu_ps(o + 32, m2, A##12);                                              \
        o += plane;                                                                            \
        _mm512_mask_storeu_ps(o, m0, A##20), _mm512_mask_storeu_ps(o + 16, m1, A##21);         \
        _mm512_mask_storeu_ps(o + 32, m2, A##22);                                              \
    } while (0)

static __mmask16 cols_mask(int left) {
    return left <= 0 ? 0 : left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
}

/* One block of 48 output columns at x0 of output rows oy and oy + 1 (if two), its 2 x 3 x 3
 * accumulators (a0.., a1..) in registers over every input channel and tap: per input row
 * and tap, 3 loads, then 3 broadcasts and 9 FMAs for each output row it feeds. (conv.c's
 * direct kernel, made for 7x7 over 64 channels, keeps its accumulators in the output rows
 * and ran at half the FMA peak here.) */
__attribute__((target("avx512f"))) static void out3_block(const out3_job *j, int oy, int two, int x0) {
    const conv_dims *d = &j->d;
    const int k = d->kw, kh = d->kh, ow = j->ow;
    const size_t plane = (size_t)j->oh * ow, wco = (size_t)d->cin * kh * k;
    const __mmask16 m0 = cols_mask(ow - x0), m1 = cols_mask(ow - x0 - 16), m2 = cols_mask(ow - x0 - 32);
    __m512 b0 = _mm512_set1_ps(j->b ? j->b[0] : 0.f), b1 = _mm512_set1_ps(j->b ? j->b[1] : 0.f),
           b2 = _mm512_set1_ps(j->b ? j->b[2] : 0.f);
    __m512 a000 = b0, a001 = b0, a002 = b0, a010 = b1, a011 = b1, a012 = b1, a020 = b2, a021 = b2, a022 = b2;
    __m512 a100 = b0, a101 = b0, a102 = b0, a110 = b1, a111 = b1, a112 = b1, a120 = b2, a121 = b2, a122 = b2;
    for (int ci = 0; ci < d->cin; ci++) {
        const float *wp = j->w + (size_t)ci * kh * k, *in = j->in + (size_t)ci * d->h * d->w + x0;
        if (two) {
            /* input row oy feeds output row 0 only, oy + kh row 1 only, the rest both */
            for (int kx = 0; kx < k; kx++) {
                const float *row = in + (size_t)oy * d->w;
                OUT3_LOAD();
                OUT3_TAP(a0, 0);
            }
            for (int ky = 1; ky < kh; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const float *row = in + (size_t)(oy + ky) * d->w;
                    OUT3_LOAD();
                    OUT3_TAP(a0, ky);
                    OUT3_TAP(a1, ky - 1);
                }
            for (int kx = 0; kx < k; kx++) {
                const float *row = in + (size_t)(oy + kh) * d->w;
                OUT3_LOAD();
                OUT3_TAP(a1, kh - 1);
            }
        } else {
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const float *row = in + (size_t)(oy + ky) * d->w;
                    OUT3_LOAD();
                    OUT3_TAP(a0, ky);
                }
        }
    }
    OUT3_STORE(a0, 0);
    if (two) OUT3_STORE(a1, 1);
}

/* The same for 64 columns (4 vectors; 2 x 3 x 4 accumulators), its loads unmasked: the
 * columns past ow compute values that are never stored, from the floats after each row
 * (the next row, or the OUT3_SLACK floats the caller keeps after the input). Used when
 * 64-column blocks waste no more lanes than 48-column ones (256, 640, 1280 wide). */
#define OUT3_TAP4(A, KY)                                                                       \
    do {                                                                                       \
        const float *t = wp + (size_t)(KY) * k + kx;                                           \
        __m512 w0 = _mm512_set1_ps(t[0]), w1 = _mm512_set1_ps(t[wco]), w2 = _mm512_set1_ps(t[2 * wco]); \
        A##00 = _mm512_fmadd_ps(w0, v0, A##00), A##01 = _mm512_fmadd_ps(w0, v1, A##01);        \
        A##02 = _mm512_fmadd_ps(w0, v2, A##02), A##03 = _mm512_fmadd_ps(w0, v3, A##03);        \
        A##10 = _mm512_fmadd_ps(w1, v0, A##10), A##11 = _mm512_fmadd_ps(w1, v1, A##11);        \
        A##12 = _mm512_fmadd_ps(w1, v2, A##12), A##13 = _mm512_fmadd_ps(w1, v3, A##13);        \
        A##20 = _mm512_fmadd_ps(w2, v0, A##20), A##21 = _mm512_fmadd_ps(w2, v1, A##21);        \
        A##22 = _mm512_fmadd_ps(w2, v2, A##22), A##23 = _mm512_fmadd_ps(w2, v3, A##23);        \
    } while (0)

#define OUT3_LOAD4()                                                                           \
    __m512 v0 = _mm512_loadu_ps(row + kx), v1 = _mm512_loadu_ps(row + kx + 16),               \
           v2 = _mm512_loadu_ps(row + kx + 32), v3 = _mm512_loadu_ps(row + kx + 48)

#define OUT3_STORE4(A, R)                                                                      \
    do {                                                                                       \
        float *o = j->out + (size_t)(oy + (R)) * ow + x0;                                      \
        for (int co = 0; co < 3; co++, o += plane) {                                           \
            __m512 q0 = co == 0 ? A##00 : co == 1 ? A##10 : A##20;                             \
            __m512 q1 = co == 0 ? A##01 : co == 1 ? A##11 : A##21;                             \
            __m512 q2 = co == 0 ? A##02 : co == 1 ? A##12 : A##22;                             \
            __m512 q3 = co == 0 ? A##03 : co == 1 ? A##13 : A##23;                             \
            _mm512_mask_storeu_ps(o, m0, q0), _mm512_mask_storeu_ps(o + 16, m1, q1);           \
            _mm512_mask_storeu_ps(o + 32, m2, q2), _mm512_mask_storeu_ps(o + 48, m3, q3);      \
        }                                                                                      \
    } while (0)

__attribute__((target("avx512f"))) static void out3_block64(const out3_job *j, int oy, int two, int x0) {
    const conv_dims *d = &j->d;
    const int k = d->kw, kh = d->kh, ow = j->ow;
    const size_t plane = (size_t)j->oh * ow, wco = (size_t)d->cin * kh * k;
    const __mmask16 m0 = cols_mask(ow - x0), m1 = cols_mask(ow - x0 - 16), m2 = cols_mask(ow - x0 - 32),
                    m3 = cols_mask(ow - x0 - 48);
    __m512 b0 = _mm512_set1_ps(j->b ? j->b[0] : 0.f), b1 = _mm512_set1_ps(j->b ? j->b[1] : 0.f),
           b2 = _mm512_set1_ps(j->b ? j->b[2] : 0.f);
    __m512 a000 = b0, a001 = b0, a002 = b0, a003 = b0, a010 = b1, a011 = b1, a012 = b1, a013 = b1;
    __m512 a020 = b2, a021 = b2, a022 = b2, a023 = b2;
    __m512 a100 = b0, a101 = b0, a102 = b0, a103 = b0, a110 = b1, a111 = b1, a112 = b1, a113 = b1;
    __m512 a120 = b2, a121 = b2, a122 = b2, a123 = b2;
    for (int ci = 0; ci < d->cin; ci++) {
        const float *wp = j->w + (size_t)ci * kh * k, *in = j->in + (size_t)ci * d->h * d->w + x0;
        if (two) {
            for (int kx = 0; kx < k; kx++) {
                const float *row = in + (size_t)oy * d->w;
                OUT3_LOAD4();
                OUT3_TAP4(a0, 0);
            }
            for (int ky = 1; ky < kh; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const float *row = in + (size_t)(oy + ky) * d->w;
                    OUT3_LOAD4();
                    OUT3_TAP4(a0, ky);
                    OUT3_TAP4(a1, ky - 1);
                }
            for (int kx = 0; kx < k; kx++) {
                const float *row = in + (size_t)(oy + kh) * d->w;
                OUT3_LOAD4();
                OUT3_TAP4(a1, kh - 1);
            }
        } else {
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const float *row = in + (size_t)(oy + ky) * d->w;
                    OUT3_LOAD4();
                    OUT3_TAP4(a0, ky);
                }
        }
    }
    OUT3_STORE4(a0, 0);
    if (two) OUT3_STORE4(a1, 1);
}

enum { OUT3_TASK_ROWS = 16 };

/* Columns per block for an output ow wide: 64 unless 48 wastes fewer lanes. (At 256
 * wide, 48-column blocks computed 288 columns, 11 % for nothing; 64 also took 1 to 6 %
 * less time per column at 256x256.) */
static int out3_cols(int ow) {
    const int w64 = (ow + 63) / 64 * 64 - ow, w48 = (ow + 47) / 48 * 48 - ow;
    return w64 <= w48 ? 64 : 48;
}

/* A task: a column block down OUT3_TASK_ROWS output rows, so that each pair of rows finds
 * most of its input rows (those of the pair above) still in cache. */
__attribute__((target("avx512f"))) static void out3_task_avx512(void *ctx, int task, int n) {
    (void)n;
    const out3_job *j = ctx;
    const int cols = out3_cols(j->ow), nxb = (j->ow + cols - 1) / cols, x0 = task % nxb * cols;
    const int y0 = task / nxb * OUT3_TASK_ROWS, y1 = y0 + OUT3_TASK_ROWS < j->oh ? y0 + OUT3_TASK_ROWS : j->oh;
    for (int oy = y0; oy < y1; oy += 2)
        if (cols == 64) out3_block64(j, oy, oy + 1 < y1, x0);
        else out3_block(j, oy, oy + 1 < y1, x0);
}
#endif

void conv_out3_forward(float *out, const float *in, const float *w, const float *b, const conv_dims *d,
                       cg_pool *pool) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (d->cout == 3 && d->stride == 1 && d->pad == 0 && gemm_arch_get()->level >= GEMM_AVX512) {
        out3_job j = {out, in, w, b, *d, conv_out_h(d), conv_out_w(d)};
        const int cols = out3_cols(j.ow);
        const int nxb = (j.ow + cols - 1) / cols, nyb = (j.oh + OUT3_TASK_ROWS - 1) / OUT3_TASK_ROWS;
        cg_pool_run(pool, out3_task_avx512, &j, nxb * nyb);
        return;
    }
#endif
    conv2d_direct_forward(out, in, w, b, d, pool);
}
