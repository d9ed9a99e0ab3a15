/* band.c: the generator's banded-execution helpers (see band.h): building padded band
 * inputs, merging instance-norm statistics band by band, and the elementwise passes over
 * stored tensors. Everything here is memory-bound and split over the pool by channel (or
 * row), so each task streams through one channel's rows. */
#include "band.h"

#include <math.h>
#include <string.h>

#include "nn/ops.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

rows_view view_chw(float *base, int c, int w, int y0, int y1) {
    rows_view v = {base, c, w, y0, y1, y1 - y0, 0};
    return v;
}

rows_view view_stored(float *base, int c, int w, int y0, int y1, size_t bstride) {
    rows_view v = {base + (size_t)(y0 / STORE_ROWS) * bstride, c, w, y0, y1, STORE_ROWS, bstride};
    return v;
}

static float *view_row(const rows_view *v, int ch, int y) {
    int i = y - v->y0;
    return v->base + (size_t)(i / v->block) * v->bstride + ((size_t)ch * v->block + i % v->block) * v->w;
}

/* ---- statistics ---- */

void stats_reset(chan_stats *s, int c) {
    for (int i = 0; i < c; i++) s[i] = (chan_stats){0, 0, 0};
}

void stats_finish(norm_params *p, const chan_stats *s, int c, const float *scale,
                  const float *shift, float eps) {
    for (int i = 0; i < c; i++) {
        double var = s[i].n > 0 ? s[i].m2 / s[i].n : 0;
        double inv = 1.0 / sqrt(var + eps);
        p->m[i] = (float)s[i].mean;
        p->a[i] = (float)(inv * scale[i]);
        p->c[i] = shift[i];
    }
}

/* ---- emitting a band's output ---- */

typedef struct {
    rows_view src; /* the band (CHW), or rows of a stored tensor */
    int rows, w, y0;
    chan_stats *s;
    const rows_view *store;
} emit_job;

/* Statistics are merged per group of STATS_ROWS image rows (rows [4k, 4k + 4)): enough
 * pixels per group to amortise the merge, and the same groups whatever the banding, as
 * bands start on multiples of 4 rows. */
enum { STATS_ROWS = 4 };

void stats_merge(chan_stats *s, const moments *g) {
    double n_all = s->n + g->n, delta = g->mean - s->mean;
    s->mean += delta * g->n / n_all;
    s->m2 += g->m2 + delta * delta * s->n * g->n / n_all;
    s->n = n_all;
}

static void emit_task(void *ctx, int ch, int n) {
    (void)n;
    const emit_job *j = ctx;
    for (int i = 0; i < j->rows && j->s;) {
        int y = j->y0 + i, end = (y / STATS_ROWS + 1) * STATS_ROWS - j->y0;
        int rows = (end < j->rows ? end : j->rows) - i;
        /* The group's moments (group_moments: two passes, it is in cache), merged into the
         * running ones in row order: the same operations whatever the banding, so a banded
         * run normalises exactly as a single band does. */
        const float *g = view_row(&j->src, ch, y); /* a group's rows are contiguous in either layout */
        moments gm = group_moments(g, (size_t)rows * j->w);
        stats_merge(&j->s[ch], &gm);
        i += rows;
    }
    if (j->store)
        for (int i = 0; i < j->rows; i++)
            memcpy(view_row(j->store, ch, j->y0 + i), view_row(&j->src, ch, j->y0 + i), (size_t)j->w * sizeof(float));
}

void band_emit(const float *band, int c, int rows, int w, int y0, chan_stats *s,
               const rows_view *store, cg_pool *pool) {
    emit_job j = {view_chw((float *)band, c, w, y0, y0 + rows), rows, w, y0, s, store};
    cg_pool_run(pool, emit_task, &j, c);
}

/* ---- filling a band's padded input ---- */

/* o may equal x (in place); so may o and r in norm_add_row. */
MULTIVERSION static void norm_row(float *o, const float *x, int n, float m, float a,
                                  float c, int relu) {
    if (relu)
        for (int i = 0; i < n; i++) {
            float v = (x[i] - m) * a + c;
            o[i] = v > 0.f ? v : 0.f;
        }
    else
        for (int i = 0; i < n; i++) o[i] = (x[i] - m) * a + c;
}

MULTIVERSION static void norm_add_row(float *o, const float *x, const float *r, int n, float m,
                                      float a, float c) {
    for (int i = 0; i < n; i++) o[i] = (x[i] - m) * a + c + r[i];
}

static void fill_task(void *ctx, int ch, int n) {
    (void)n;
    const fill_spec *f = ctx;
    const int w = f->src.w, px = f->px, dw = w + 2 * px;
    float *dst = f->dst + (size_t)ch * (f->y1 - f->y0) * dw;
    for (int y = f->y0; y < f->y1; y++) {
        float *o = dst + (size_t)(y - f->y0) * dw;
        int sy = y;
        if (f->reflect_rows && (y < 0 || y >= f->h)) {
            sy = reflect_index(y, f->h);
        } else if (y < 0 || y >= f->h) {
            memset(o, 0, (size_t)dw * sizeof *o);
            continue;
        }
        if (sy < f->src.y0) { /* overwritten in place: the copy saved before that */
            memcpy(o, f->saved + (size_t)ch * dw, (size_t)dw * sizeof *o);
            continue;
        }
        const float *x = view_row(&f->src, ch, sy);
        if (f->norm) norm_row(o + px, x, w, f->norm->m[ch], f->norm->a[ch], f->norm->c[ch], f->relu);
        else if (f->relu) norm_row(o + px, x, w, 0.f, 1.f, 0.f, 1);
        else memcpy(o + px, x, (size_t)w * sizeof *o);
        for (int k = 1; k <= px; k++) {
            /* reflection: column -k is column k, and w - 1 + k is w - 1 - k (when k < w) */
            o[px - k] = !f->reflect_cols ? 0.f : k < w ? o[px + k] : o[px + reflect_index(-k, w)];
            o[px + w - 1 + k] = !f->reflect_cols ? 0.f : k < w ? o[px + w - 1 - k] : o[px + reflect_index(w - 1 + k, w)];
        }
    }
}

void band_fill(const fill_spec *f, cg_pool *pool) { cg_pool_run(pool, fill_task, (void *)f, f->src.c); }

/* ---- elementwise passes ---- */

typedef struct {
    const rows_view *dst, *src, *residual;
    const norm_params *p;
    int relu;
} stored_job;

static void stored_task(void *ctx, int ch, int n) {
    (void)n;
    const stored_job *j = ctx;
    const float m = j->p->m[ch], a = j->p->a[ch], c = j->p->c[ch];
    for (int y = j->dst->y0; y < j->dst->y1; y++) {
        float *o = view_row(j->dst, ch, y);
        const float *s = view_row(j->src, ch, y);
        if (j->residual) {
            norm_add_row(o, s, view_row(j->residual, ch, y), j->dst->w, m, a, c);
        } else {
            norm_row(o, s, j->dst->w, m, a, c, j->relu);
        }
    }
}

void stored_norm(const rows_view *dst, const rows_view *src, const rows_view *residual,
                 const norm_params *p, int relu, cg_pool *pool) {
    stored_job j = {dst, src, residual, p, relu};
    cg_pool_run(pool, stored_task, &j, dst->c);
}

typedef struct {
    float *out;
    int h;
    const float *band;
    int rows, w, y0;
} tanh_job;

static void tanh_task(void *ctx, int i, int n) {
    (void)n;
    const tanh_job *j = ctx;
    int ch = i / j->rows, r = i % j->rows;
    tanh_forward(j->out + ((size_t)ch * j->h + j->y0 + r) * j->w,
                 j->band + ((size_t)ch * j->rows + r) * j->w, (size_t)j->w);
}

void band_tanh(float *out, int h, const float *band, int c, int rows, int w, int y0,
               cg_pool *pool) {
    tanh_job j = {out, h, band, rows, w, y0};
    cg_pool_run(pool, tanh_task, &j, c * rows);
}
