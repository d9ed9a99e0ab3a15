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

#include "ops.h"
#include "pool.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

/* ---- moments ---- */

enum { LANES = 16 };

MULTIVERSION moments moments_of(const float *x, size_t n) {
    if (n == 0) return (moments){0, 0, 0};
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += x[i + l];
    double s = 0;
    for (; i < n; i++) s += x[i];
    for (int l = 0; l < LANES; l++) s += acc[l];
    const double mean = s / (double)n;
    const float mf = (float)mean;
    float acc2[LANES] = {0};
    for (i = 0; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            float d = x[i + l] - mf;
            acc2[l] += d * d;
        }
    double m2 = 0;
    for (; i < n; i++) m2 += ((double)x[i] - mf) * ((double)x[i] - mf);
    for (int l = 0; l < LANES; l++) m2 += acc2[l];
    /* the squares were taken about the float-rounded mean, off by delta: the sum about a
     * point off the mean by delta is m2 + n delta^2 */
    const double delta = (double)mf - mean;
    m2 -= (double)n * delta * delta;
    return (moments){(double)n, mean, m2 > 0 ? m2 : 0};
}

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

/* ---- per-thread row buffers ---- */

/* Three padded rows of the depthwise input (stride 2: each as its even and odd columns,
 * 2 ceil(w/2) + 1 <= w + 2 values), or the upsampling's mapped row and two wide rows. */
static size_t row_floats(int w) { return ((size_t)w + 2 + 15) & ~(size_t)15; }

size_t light_ops_scratch_floats(int w, int threads) {
    size_t per = 6 * row_floats(w);
    return (size_t)(threads > 0 ? threads : 1) * per;
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
} row_cache;

/* Input row iy of plane x (h x w), mapped and zero-padded: stride 1 as w + 2 values (column
 * q - 1 at q); stride 2 as its even padded columns then its odd ones (padded column q is
 * input column q - pl; ow + 1 even ones, then ow odd ones). */
MULTIVERSION static void load_row(float *restrict dst, const dw_job *j, const float *x, const chan_affine *a, int iy) {
    const int w = j->d.w;
    if (j->d.stride == 1) {
        dst[0] = dst[w + 1] = 0.f;
        if (iy < 0 || iy >= j->d.h) memset(dst + 1, 0, (size_t)w * sizeof *dst);
        else map_into(dst + 1, x + (size_t)iy * w, w, a);
        return;
    }
    const int ow = j->ow, pl = j->pl;
    float *restrict even = dst, *restrict odd = dst + ow + 1;
    if (iy < 0 || iy >= j->d.h) {
        memset(dst, 0, (size_t)(2 * ow + 1) * sizeof *dst);
        return;
    }
    const float *row = x + (size_t)iy * w;
    for (int q = 0; q <= ow; q++) {
        int ix = 2 * q - pl;
        float v = ix >= 0 && ix < w ? row[ix] : 0.f;
        if (a && ix >= 0 && ix < w) {
            v = (v - a->mean) * a->scale + a->shift;
            v = v > a->lo ? v : a->lo;
        }
        even[q] = v;
    }
    for (int q = 0; q < ow; q++) {
        int ix = 2 * q + 1 - pl;
        float v = ix >= 0 && ix < w ? row[ix] : 0.f;
        if (a && ix >= 0 && ix < w) {
            v = (v - a->mean) * a->scale + a->shift;
            v = v > a->lo ? v : a->lo;
        }
        odd[q] = v;
    }
}

static const float *cached_row(row_cache *rc, const dw_job *j, const float *x, const chan_affine *a, int iy) {
    for (int s = 0; s < 3; s++)
        if (rc->tag[s] == iy) return rc->buf[s];
    int s = rc->next;
    rc->next = (s + 1) % 3;
    load_row(rc->buf[s], j, x, a, iy);
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
    float *mine = j->scratch + (size_t)cg_pool_thread_index() * 6 * row_floats(j->d.w);
    row_cache rc = {{mine, mine + row_floats(j->d.w), mine + 2 * row_floats(j->d.w)}, {-9, -9, -9}, 0};
    const float *x = j->in[ch], *k = j->w + (size_t)ch * 9;
    const chan_affine *a = j->aff ? &j->aff[ch] : NULL;
    float *y = j->out[ch];
    moments st = {0, 0, 0};
    for (int oy = 0; oy < j->oh; oy++) {
        int iy = oy * s - j->pt;
        const float *r0 = cached_row(&rc, j, x, a, iy), *r1 = cached_row(&rc, j, x, a, iy + 1),
                    *r2 = cached_row(&rc, j, x, a, iy + 2);
        float *o = y + (size_t)oy * j->ow;
        if (s == 1) dw_row_s1(o, r0, r1, r2, k, j->ow);
        else dw_row_s2(o, r0, r1, r2, k, j->ow);
        if (j->partial) {
            moments m = moments_of(o, (size_t)j->ow);
            moments_merge(&st, &m);
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
    float *const *out;
    const float *const *in;
    const chan_affine *aff;
    int h, w;
    float *scratch;
} up_job;

/* Row x (w values) along the width into o (2w values). */
MULTIVERSION static void up_row(float *restrict o, const float *restrict x, int w) {
    for (int i = 0; i + 1 < w; i++) {
        o[2 * i] = x[i];
        o[2 * i + 1] = x[i] + (x[i + 1] - x[i]) * 0.5f;
    }
    o[2 * w - 2] = o[2 * w - 1] = x[w - 1]; /* a + (a - a) * 0.5 is a */
}

MULTIVERSION static void mid_row(float *restrict o, const float *restrict a, const float *restrict b, int n) {
    for (int i = 0; i < n; i++) o[i] = a[i] + (b[i] - a[i]) * 0.5f;
}

static void up_task(void *ctx, int ch, int n) {
    (void)n;
    const up_job *j = ctx;
    const int w = j->w, ow = 2 * w;
    const size_t rf = row_floats(w);
    float *mine = j->scratch + (size_t)cg_pool_thread_index() * 6 * rf;
    float *mapped = mine, *wide[2] = {mine + rf, mine + 3 * rf}; /* 2w <= 2 rf each */
    const float *x = j->in[ch];
    const chan_affine *a = j->aff ? &j->aff[ch] : NULL;
    float *y = j->out[ch];
    map_into(mapped, x, w, a);
    up_row(wide[0], mapped, w);
    for (int i = 0; i < j->h; i++) {
        const float *cur = wide[i & 1], *next = cur;
        if (i + 1 < j->h) {
            map_into(mapped, x + (size_t)(i + 1) * w, w, a);
            up_row(wide[(i + 1) & 1], mapped, w);
            next = wide[(i + 1) & 1];
        }
        memcpy(y + (size_t)2 * i * ow, cur, (size_t)ow * sizeof *y);
        mid_row(y + (size_t)(2 * i + 1) * ow, cur, next, ow);
    }
}

void upsample2_bilinear_forward(float *const *out, const float *const *in, const chan_affine *aff, int c,
                                int h, int w, float *scratch, cg_pool *pool) {
    up_job j = {out, in, aff, h, w, scratch};
    cg_pool_run(pool, up_task, &j, c);
}
