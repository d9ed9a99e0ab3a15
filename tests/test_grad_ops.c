/* test_grad_ops.c: the training ops of train_ops.h other than the convolutions. The
 * references (and the elementwise ops and losses, which have no separate reference) are
 * checked against finite differences; the fast versions against the references on a pool
 * of 2 threads; plus the accumulate-into-d* convention, the losses' hand-computed values
 * and max pooling's tie rule.
 *
 * Finite differences. Every check differentiates a scalar L = sum(out * r), r a fixed
 * random tensor (so dL/dout = r, the dout handed to the backward), perturbing each input
 * and parameter element in turn, with the fourth-order central difference
 *   (-L(x+2h) + 8 L(x+h) - 8 L(x-h) + L(x-2h)) / (12 h),  h = 1/32.
 * Inputs are multiples of 2^-12 (below 8 in magnitude), so x +- h and x +- 2h are exact
 * floats and the step is exactly h. The forwards run in float, so L carries rounding noise
 * of about 1e-7 relative per output that moved; dividing by h amplifies it to ~1e-5 of the
 * gradient's scale, while the O(h^4) truncation error is ~1e-7: a large step with a
 * high-order formula keeps both well below FD_TOL = 1e-3 (relative to the tensor's
 * largest gradient; a floor of 1e-3 keeps all-zero gradients judged absolutely). The
 * piecewise-linear ops (ReLU, leaky ReLU, max pooling, L1) get inputs at least 2.5 h away
 * from their kinks, so the difference never straddles one and is exact up to rounding.
 * Measured: 0 for the linear ops, 1e-7 to 3e-6 for most, 5e-5 at worst (batch norm over
 * 3 values, whose higher derivatives are the largest), 20x under the bar; and
 * test_fd_catches_wrong_gradients shows plausible wrong gradients (no variance path,
 * batch norm's coupling missed, replicate instead of reflect, one element off by 1%)
 * measure 0.01 to 1, 10x to 1000x above it. */
#include <math.h>
#include <stdint.h>

#include "nn/pool.h"
#include "nn/train_ops.h"
#include "test.h"

#define FD_TOL 1e-3
#define FD_H (1.0f / 32)

static cg_pool *pool;

/* ---- deterministic random values ---- */

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static double urand(void) { /* in [0, 1) */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* Uniform in [lo, hi), rounded to a multiple of 2^-12 (see the comment at the top). */
static void fill(float *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(round((lo + (hi - lo) * urand()) * 4096) / 4096);
}

/* Like fill, but |x| >= lo > 0 with a random sign: away from a kink at 0. */
static void fill_away_from_zero(float *x, size_t n, double lo, double hi) {
    fill(x, n, lo, hi);
    for (size_t i = 0; i < n; i++)
        if (urand() < 0.5) x[i] = -x[i];
}

static float *alloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static float *dup(const float *x, size_t n) {
    float *p = alloc(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* Largest |a - b|, NaN counting as infinite. */
static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d != d) return INFINITY;
        m = fmax(m, d);
    }
    return m;
}

/* Largest |a - b| relative to b's largest magnitude (floor 1): the fast-vs-reference
 * measure, since both sides' rounding scales with the tensor's magnitude. */
static double rel_diff(const float *a, const float *b, size_t n) {
    return max_abs_diff(a, b, n) / fmax(1.0, max_abs(b, n));
}

static double dot(const float *a, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * r[i];
    return s;
}

/* ---- the finite-difference check ---- */

/* L as a function of the current values of the inputs, which the context points at. */
typedef double (*objective_fn)(void *ctx);

/* Largest |FD - grad| over x's n elements, relative to the larger of the largest |grad|,
 * the largest |FD| and 1e-3; x is perturbed in place and restored. */
static double fd_error(objective_fn f, void *ctx, float *x, size_t n, const float *grad) {
    double worst = 0, scale = 1e-3;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        double l[4];
        static const float steps[4] = {2, 1, -1, -2};
        for (int s = 0; s < 4; s++) {
            x[i] = v + steps[s] * FD_H;
            l[s] = f(ctx);
        }
        x[i] = v;
        double fd = (-l[0] + 8 * l[1] - 8 * l[2] + l[3]) / (12.0 * FD_H);
        worst = fmax(worst, fabs(fd - grad[i]));
        if (fd != fd || grad[i] != grad[i]) worst = INFINITY;
        scale = fmax(scale, fmax(fabs(fd), fabs(grad[i])));
    }
    return worst / scale;
}

static double worst_fd_error; /* the largest measured, reported at the end */

static void check_fd(const char *what, objective_fn f, void *ctx, float *x, size_t n,
                     const float *grad) {
    double e = fd_error(f, ctx, x, n, grad);
    worst_fd_error = fmax(worst_fd_error, e);
    CHECK(e < FD_TOL, "%s: finite differences off by %.3g (relative)", what, e);
}

/* ---- elementwise ---- */

typedef struct {
    int op; /* 0 relu, 1 leaky relu, 2 tanh */
    float *x, *y, *r;
    size_t n;
    float slope;
} elt_ctx;

static void elt_forward(elt_ctx *c) {
    if (c->op == 0) relu_forward(c->y, c->x, c->n);
    else if (c->op == 1) leaky_relu_forward(c->y, c->x, c->n, c->slope);
    else tanh_forward(c->y, c->x, c->n);
}

static double elt_objective(void *ctx) {
    elt_ctx *c = ctx;
    elt_forward(c);
    return dot(c->y, c->r, c->n);
}

static void elt_backward(elt_ctx *c, float *dx) {
    if (c->op == 0) relu_backward(dx, c->r, c->y, c->n);
    else if (c->op == 1) leaky_relu_backward(dx, c->r, c->y, c->n, c->slope);
    else tanh_backward(dx, c->r, c->y, c->n);
}

static void test_elementwise_fd(void) {
    static const char *names[3] = {"relu", "leaky_relu", "tanh"};
    size_t n = 37;
    for (int op = 0; op < 3; op++) {
        elt_ctx c = {op, alloc(n), alloc(n), alloc(n), n, 0.2f};
        /* |x| >= 0.08 = 2.5 h: no difference straddles the kink (tanh has none). */
        fill_away_from_zero(c.x, n, 0.08, 2.5);
        fill(c.r, n, -1, 1);
        float *dx = alloc(n);
        elt_forward(&c);
        elt_backward(&c, dx);
        check_fd(names[op], elt_objective, &c, c.x, n, dx);
        /* Accumulation: a second call on the same buffer doubles it (y recomputed: the
         * check left it at the last perturbed input's). */
        elt_forward(&c);
        float *once = dup(dx, n);
        elt_backward(&c, dx);
        for (size_t i = 0; i < n; i++) once[i] *= 2;
        CHECK(max_abs_diff(dx, once, n) == 0, "%s: backward does not accumulate", names[op]);
        free(c.x), free(c.y), free(c.r), free(dx), free(once);
    }
}

static void test_elementwise_values(void) {
    float x[5] = {-2, -0.5f, 0, 0.5f, 3}, y[5], dx[5] = {1, 1, 1, 1, 1}, dy[5] = {1, 2, 3, 4, 5};
    leaky_relu_forward(y, x, 5, 0.2f);
    float want[5] = {-0.4f, -0.1f, 0, 0.5f, 3};
    CHECK(max_abs_diff(y, want, 5) == 0, "leaky_relu_forward values");
    leaky_relu_forward(x, x, 5, 0.2f); /* in place */
    CHECK(max_abs_diff(x, want, 5) == 0, "leaky_relu_forward in place");
    leaky_relu_backward(dx, dy, y, 5, 0.2f);
    /* y = 0 takes the slope, as torch's (x > 0 ? 1 : slope) does at x = 0. */
    float want_dx[5] = {1.2f, 1.4f, 1.6f, 5, 6};
    CHECK(max_abs_diff(dx, want_dx, 5) < 3e-7, "leaky_relu_backward values");
    /* ReLU at 0 passes no gradient (torch's threshold_backward). */
    float yr[3] = {0, 1, 0}, dr[3] = {0}, g[3] = {5, 6, 7};
    relu_backward(dr, g, yr, 3);
    CHECK(dr[0] == 0 && dr[1] == 6 && dr[2] == 0, "relu_backward at 0");
    float a[4] = {1, 2, 3, 4}, b[4] = {10, 20, 30, 40};
    accumulate(a, b, 4);
    CHECK(a[0] == 11 && a[1] == 22 && a[2] == 33 && a[3] == 44, "accumulate");
    float t[2] = {0, 0.5f}, dt[2] = {1, 1}, gt[2] = {2, 2};
    tanh_backward(dt, gt, t, 2);
    CHECK(dt[0] == 3 && dt[1] == 2.5f, "tanh_backward values");
}

/* ---- reflection padding ---- */

typedef struct {
    float *x, *y, *r;
    int nc, h, w, pad;
} pad_ctx;

static size_t pad_out_count(const pad_ctx *c) {
    return (size_t)c->nc * (c->h + 2 * c->pad) * (c->w + 2 * c->pad);
}

static double pad_objective(void *ctx) {
    pad_ctx *c = ctx;
    pad_reflect_forward(c->y, c->x, c->nc, c->h, c->w, c->pad);
    return dot(c->y, c->r, pad_out_count(c));
}

static void test_pad_reflect(void) {
    /* Odd sides, a pad above 1, 1-pixel planes and sides, pads beyond the side (folded
     * again), several planes. */
    static const int cases[][4] = {{2, 3, 5, 1}, {1, 3, 5, 2}, {3, 1, 1, 2}, {1, 1, 5, 3},
                                   {2, 2, 3, 4}, {1, 4, 4, 3}, {1, 5, 3, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        pad_ctx c = {NULL, NULL, NULL, cases[k][0], cases[k][1], cases[k][2], cases[k][3]};
        size_t nin = (size_t)c.nc * c.h * c.w, nout = pad_out_count(&c);
        c.x = alloc(nin), c.y = alloc(nout), c.r = alloc(nout);
        fill(c.x, nin, -1, 1);
        fill(c.r, nout, -1, 1);
        float *ref = alloc(nin), *fast = alloc(nin);
        fill(ref, nin, -1, 1); /* non-zero start: the backward adds */
        memcpy(fast, ref, nin * sizeof(float));
        float *start = dup(ref, nin);
        pad_reflect_backward_ref(ref, c.r, c.nc, c.h, c.w, c.pad);
        pad_reflect_backward(fast, c.r, c.nc, c.h, c.w, c.pad);
        /* Same additions in the same order: bit for bit. */
        CHECK(max_abs_diff(ref, fast, nin) == 0, "case %zu: fast differs from reference", k);
        float *grad = alloc(nin);
        for (size_t i = 0; i < nin; i++) grad[i] = ref[i] - start[i];
        char what[64];
        snprintf(what, sizeof what, "pad_reflect %dx%dx%d pad %d", c.nc, c.h, c.w, c.pad);
        check_fd(what, pad_objective, &c, c.x, nin, grad);
        /* The gradient's total is the output's: each padded pixel lands somewhere. */
        double total_in = 0, total_out = 0;
        for (size_t i = 0; i < nin; i++) total_in += grad[i];
        for (size_t i = 0; i < nout; i++) total_out += c.r[i];
        CHECK(fabs(total_in - total_out) < 1e-5, "case %zu: gradient lost", k);
        free(c.x), free(c.y), free(c.r), free(ref), free(fast), free(start), free(grad);
    }
}

/* ---- normalisation ---- */

typedef struct {
    int batch; /* 0 instance norm, 1 batch norm */
    float *x, *scale, *shift, *y, *mean, *rstd, *r;
    int n, c, hw;
    float eps;
} norm_ctx;

static size_t nstats(const norm_ctx *c) { return c->batch ? (size_t)c->c : (size_t)c->n * c->c; }

static void norm_forward_ref(norm_ctx *c) {
    if (c->batch) batch_norm_train_forward_ref(c->y, c->mean, c->rstd, c->x, c->scale, c->shift, c->n, c->c, c->hw, c->eps);
    else instance_norm_train_forward_ref(c->y, c->mean, c->rstd, c->x, c->scale, c->shift, c->n, c->c, c->hw, c->eps);
}

static void norm_backward_ref(norm_ctx *c, float *dx, float *dscale, float *dshift) {
    if (c->batch) batch_norm_backward_ref(dx, dscale, dshift, c->r, c->x, c->scale, c->n, c->c, c->hw, c->eps);
    else instance_norm_backward_ref(dx, dscale, dshift, c->r, c->x, c->scale, c->n, c->c, c->hw, c->eps);
}

static double norm_objective(void *ctx) {
    norm_ctx *c = ctx;
    norm_forward_ref(c);
    return dot(c->y, c->r, (size_t)c->n * c->c * c->hw);
}

static norm_ctx norm_make(int batch, int n, int c, int hw, float eps) {
    size_t count = (size_t)n * c * hw;
    norm_ctx k = {batch, alloc(count), alloc(c), alloc(c), alloc(count), NULL, NULL, alloc(count), n, c, hw, eps};
    k.mean = alloc(nstats(&k)), k.rstd = alloc(nstats(&k));
    /* Channels with different offsets and spreads, so the mean's gradient path matters. */
    for (int s = 0; s < n; s++)
        for (int ch = 0; ch < c; ch++) fill(k.x + ((size_t)s * c + ch) * hw, hw, -1 + 0.5 * ch, 0.5 + ch);
    fill(k.scale, c, 0.5, 1.5);
    fill(k.shift, c, -0.5, 0.5);
    fill(k.r, count, -1, 1);
    return k;
}

static void norm_free(norm_ctx *k) {
    free(k->x), free(k->scale), free(k->shift), free(k->y), free(k->mean), free(k->rstd), free(k->r);
}

static void test_norm_fd(void) {
    /* n, c, hw, eps: odd planes (3x5), 1-pixel planes, n = 1 and 3, both eps. */
    static const struct { int n, c, hw; float eps; } cases[] = {
        {1, 2, 15, 1e-5f}, {3, 2, 15, 1e-9f}, {3, 2, 6, 1e-5f}, {1, 3, 1, 1e-5f}, {3, 2, 1, 1e-5f},
        {2, 1, 35, 1e-9f},
    };
    for (int batch = 0; batch < 2; batch++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            norm_ctx c = norm_make(batch, cases[k].n, cases[k].c, cases[k].hw, cases[k].eps);
            size_t count = (size_t)c.n * c.c * c.hw;
            float *dx = alloc(count), *dscale = alloc(c.c), *dshift = alloc(c.c);
            norm_backward_ref(&c, dx, dscale, dshift);
            char what[96];
            snprintf(what, sizeof what, "%s n%d c%d hw%d eps %g: d%%s", batch ? "batch_norm" : "instance_norm",
                     c.n, c.c, c.hw, c.eps);
            char w2[128];
            snprintf(w2, sizeof w2, what, "in");
            check_fd(w2, norm_objective, &c, c.x, count, dx);
            snprintf(w2, sizeof w2, what, "scale");
            check_fd(w2, norm_objective, &c, c.scale, c.c, dscale);
            snprintf(w2, sizeof w2, what, "shift");
            check_fd(w2, norm_objective, &c, c.shift, c.c, dshift);
            free(dx), free(dscale), free(dshift);
            norm_free(&c);
        }
}

/* Fast against reference on a pool of 2 threads, saved statistics included, with the
 * backward adding onto non-zero buffers. Tolerances (relative to the tensor's largest
 * magnitude, floor 1): outputs, mean and rstd 1e-6, gradients 2e-6: a few float ulps
 * (measured: at most 1.2e-7 and 2.5e-7), as both compute the statistics in double and
 * differ only in the float rounding of the per-pixel step and of the saved rstd. The case
 * with mean 100 and spread 0.01 is the one that needs the fast code's care with the
 * float-rounded mean (train_ops.c): without it, outputs are off by 6e-4 and dscale by
 * 2e-3. An indexing or formula mistake gives errors of order 1e-2 to 1. */
static void check_norm_fast(int batch, int n, int c, int hw, float eps, double big_mean) {
    norm_ctx k = norm_make(batch, n, c, hw, eps);
    size_t count = (size_t)n * c * hw, ns = nstats(&k);
    if (big_mean != 0) /* a large mean against a small spread: precision of the statistics */
        for (size_t i = 0; i < count; i++) k.x[i] = (float)(big_mean + 0.01 * (urand() - 0.5));
    float *y = alloc(count), *mean = alloc(ns), *rstd = alloc(ns);
    norm_forward_ref(&k);
    if (batch) batch_norm_train_forward(y, mean, rstd, k.x, k.scale, k.shift, n, c, hw, eps, pool);
    else instance_norm_train_forward(y, mean, rstd, k.x, k.scale, k.shift, n, c, hw, eps, pool);
    const char *name = batch ? "batch_norm" : "instance_norm";
    double e_out = rel_diff(y, k.y, count), e_mean = rel_diff(mean, k.mean, ns);
    double e_rstd = max_abs_diff(rstd, k.rstd, ns) / max_abs(k.rstd, ns);
    CHECK(e_out < 1e-6 && e_mean < 1e-6 && e_rstd < 1e-6, "%s n%d c%d hw%d mean %g: out %.3g mean %.3g rstd %.3g",
          name, n, c, hw, big_mean, e_out, e_mean, e_rstd);
    float *dx_r = alloc(count), *ds_r = alloc(c), *db_r = alloc(c);
    fill(dx_r, count, -1, 1), fill(ds_r, c, -1, 1), fill(db_r, c, -1, 1);
    float *dx_f = dup(dx_r, count), *ds_f = dup(ds_r, c), *db_f = dup(db_r, c);
    float *dx_0 = dup(dx_r, count), *ds_0 = dup(ds_r, c), *db_0 = dup(db_r, c);
    norm_backward_ref(&k, dx_r, ds_r, db_r);
    if (batch) batch_norm_backward(dx_f, ds_f, db_f, k.r, k.x, mean, rstd, k.scale, n, c, hw, pool);
    else instance_norm_backward(dx_f, ds_f, db_f, k.r, k.x, mean, rstd, k.scale, n, c, hw, pool);
    /* Compare the increments, so the starting values do not dilute the measure. */
    for (size_t i = 0; i < count; i++) dx_r[i] -= dx_0[i], dx_f[i] -= dx_0[i];
    for (int i = 0; i < c; i++) ds_r[i] -= ds_0[i], ds_f[i] -= ds_0[i], db_r[i] -= db_0[i], db_f[i] -= db_0[i];
    double e_dx = rel_diff(dx_f, dx_r, count), e_ds = rel_diff(ds_f, ds_r, c), e_db = rel_diff(db_f, db_r, c);
    CHECK(e_dx < 2e-6 && e_ds < 2e-6 && e_db < 2e-6, "%s n%d c%d hw%d mean %g: din %.3g dscale %.3g dshift %.3g",
          name, n, c, hw, big_mean, e_dx, e_ds, e_db);
    /* NULL outputs are skipped, and the others unchanged by it. */
    float *dx_n = alloc(count);
    if (batch) batch_norm_backward(dx_n, NULL, NULL, k.r, k.x, mean, rstd, k.scale, n, c, hw, pool);
    else instance_norm_backward(dx_n, NULL, NULL, k.r, k.x, mean, rstd, k.scale, n, c, hw, pool);
    CHECK(max_abs_diff(dx_n, dx_f, count) <= 1e-6 * fmax(1, max_abs(dx_f, count)), "%s: din alone differs", name);
    float *ds_n = alloc(c);
    if (batch) batch_norm_backward(NULL, ds_n, NULL, k.r, k.x, mean, rstd, k.scale, n, c, hw, pool);
    else instance_norm_backward(NULL, ds_n, NULL, k.r, k.x, mean, rstd, k.scale, n, c, hw, pool);
    CHECK(max_abs_diff(ds_n, ds_f, c) <= 1e-6 * fmax(1, max_abs(ds_f, c)), "%s: dscale alone differs", name);
    free(y), free(mean), free(rstd), free(dx_r), free(ds_r), free(db_r), free(dx_f), free(ds_f), free(db_f);
    free(dx_0), free(ds_0), free(db_0), free(dx_n), free(ds_n);
    norm_free(&k);
}

static void test_norm_fast(void) {
    for (int batch = 0; batch < 2; batch++) {
        check_norm_fast(batch, 3, 5, 37, 1e-5f, 0);
        check_norm_fast(batch, 1, 4, 1027, 1e-9f, 0);
        check_norm_fast(batch, 2, 3, 4096 + 5, 1e-9f, 0);
        check_norm_fast(batch, 3, 2, 1, 1e-5f, 0);
        check_norm_fast(batch, 2, 3, 300, 1e-9f, 100.0);
    }
}

/* ---- max pooling ---- */

typedef struct {
    float *x, *y, *r;
    int nc, h, w;
} mp_ctx;

static double mp_objective(void *ctx) {
    mp_ctx *c = ctx;
    maxpool2_forward_ref(c->y, c->x, c->nc, c->h, c->w);
    return dot(c->y, c->r, (size_t)c->nc * (c->h / 2) * (c->w / 2));
}

static void test_maxpool_fd(void) {
    /* odd sides too: rounded down as PyTorch, the last row or column gets no gradient */
    static const int cases[][3] = {{3, 2, 2}, {1, 4, 6}, {2, 6, 2}, {1, 8, 8}, {2, 5, 7}, {1, 9, 4}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        mp_ctx c = {NULL, NULL, NULL, cases[k][0], cases[k][1], cases[k][2]};
        size_t nin = (size_t)c.nc * c.h * c.w, nout = (size_t)c.nc * (c.h / 2) * (c.w / 2);
        c.x = alloc(nin), c.y = alloc(nout), c.r = alloc(nout);
        /* A shuffled ladder with steps of 0.25 > 4 h: perturbing one value by up to 2 h never
         * reorders a window, so the difference stays on one linear piece. */
        for (size_t i = 0; i < nin; i++) c.x[i] = 0.25f * (float)i - 3;
        for (size_t i = nin - 1; i > 0; i--) {
            size_t j = (size_t)(urand() * (double)(i + 1));
            float t = c.x[i];
            c.x[i] = c.x[j], c.x[j] = t;
        }
        fill(c.r, nout, -1, 1);
        float *grad = alloc(nin);
        maxpool2_backward_ref(grad, c.r, c.x, c.nc, c.h, c.w);
        char what[64];
        snprintf(what, sizeof what, "maxpool2 %dx%dx%d", c.nc, c.h, c.w);
        check_fd(what, mp_objective, &c, c.x, nin, grad);
        free(c.x), free(c.y), free(c.r), free(grad);
    }
}

/* Fast against reference: same comparisons in the same order, so exact; the inputs are
 * ReLU outputs, rich in tied zeros, and the backward adds onto non-zero buffers. */
static void test_maxpool_fast(void) {
    static const int cases[][3] = {{5, 6, 10}, {1, 2, 2}, {64, 32, 32}, {3, 14, 2}, {3, 9, 5}, {2, 7, 7}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int nc = cases[k][0], h = cases[k][1], w = cases[k][2];
        size_t nin = (size_t)nc * h * w, nout = (size_t)nc * (h / 2) * (w / 2);
        float *x = alloc(nin), *yr = alloc(nout), *yf = alloc(nout), *r = alloc(nout);
        fill(x, nin, -1, 1);
        relu_forward(x, x, nin);
        fill(r, nout, -1, 1);
        maxpool2_forward_ref(yr, x, nc, h, w);
        maxpool2_forward(yf, x, nc, h, w, pool);
        CHECK(max_abs_diff(yr, yf, nout) == 0, "case %zu: forward differs", k);
        float *dr = alloc(nin);
        fill(dr, nin, -1, 1);
        float *df = dup(dr, nin), *d0 = dup(dr, nin);
        maxpool2_backward_ref(dr, r, x, nc, h, w);
        maxpool2_backward(df, r, x, nc, h, w, pool);
        CHECK(max_abs_diff(dr, df, nin) == 0, "case %zu: backward differs", k);
        /* Accumulates: the increment is exactly the routed gradient, whose total is dout's. */
        double moved = 0, total = 0;
        for (size_t i = 0; i < nin; i++) moved += (double)df[i] - d0[i];
        for (size_t i = 0; i < nout; i++) total += r[i];
        CHECK(fabs(moved - total) < 1e-4, "case %zu: backward does not add dout", k);
        free(x), free(yr), free(yf), free(r), free(dr), free(df), free(d0);
    }
}

/* The tie rule: an all-equal window sends everything to its top-left element; a tie
 * between later elements goes to the first of them in row-major order. */
static void test_maxpool_ties(void) {
    float x[16] = {0, 0, 1, 2,
                   0, 0, 2, 2,
                   -1, 3, 5, 4,
                   3, -1, 4, 5};
    float dout[4] = {1, 2, 3, 4}, y[4];
    for (int fast = 0; fast < 2; fast++) {
        float din[16] = {0};
        if (fast) maxpool2_forward(y, x, 1, 4, 4, pool), maxpool2_backward(din, dout, x, 1, 4, 4, pool);
        else maxpool2_forward_ref(y, x, 1, 4, 4), maxpool2_backward_ref(din, dout, x, 1, 4, 4);
        float want_y[4] = {0, 2, 3, 5};
        float want[16] = {1, 0, 0, 2,
                          0, 0, 0, 0,
                          0, 3, 4, 0,
                          0, 0, 0, 0};
        CHECK(max_abs_diff(y, want_y, 4) == 0, "%s: forward values", fast ? "fast" : "ref");
        CHECK(max_abs_diff(din, want, 16) == 0, "%s: tie routing", fast ? "fast" : "ref");
    }
}

/* ---- losses ---- */

typedef struct {
    int op; /* 0 l1, 1 mse, 2 bce */
    float *x, *b;
    float target, dloss;
    size_t n;
} loss_ctx;

static double loss_objective(void *ctx) {
    loss_ctx *c = ctx;
    double l = c->op == 0 ? l1_loss_forward(c->x, c->b, c->n)
             : c->op == 1 ? mse_loss_forward(c->x, c->target, c->n)
                          : bce_logits_loss_forward(c->x, c->target, c->n);
    return c->dloss * l;
}

static void test_losses_fd(void) {
    static const char *names[3] = {"l1", "mse", "bce"};
    size_t n = 23;
    for (int op = 0; op < 3; op++)
        for (int t = 0; t < 2; t++) {
            loss_ctx c = {op, alloc(n), alloc(n), t ? 1.0f : 0.3f, t ? 0.7f : 2.5f, n};
            fill(c.x, n, -4, 4);
            /* L1: b differs from x by 0.08 = 2.5 h at least, away from |.|'s kink. */
            fill_away_from_zero(c.b, n, 0.08, 2);
            for (size_t i = 0; i < n; i++) c.b[i] += c.x[i];
            float *g = alloc(n);
            fill(g, n, -1, 1);
            float *g0 = dup(g, n);
            if (op == 0) l1_loss_backward(g, c.x, c.b, n, c.dloss);
            else if (op == 1) mse_loss_backward(g, c.x, c.target, n, c.dloss);
            else bce_logits_loss_backward(g, c.x, c.target, n, c.dloss);
            for (size_t i = 0; i < n; i++) g[i] -= g0[i]; /* it added onto g0 */
            char what[32];
            snprintf(what, sizeof what, "%s target %g", names[op], c.target);
            check_fd(what, loss_objective, &c, c.x, n, g);
            free(c.x), free(c.b), free(g), free(g0);
        }
}

static void test_losses_values(void) {
    float a[4] = {1, 2, 3, -1}, b[4] = {0, 2, 5, 1}, da[4] = {1, 1, 1, 1};
    CHECK(l1_loss_forward(a, b, 4) == 1.25, "l1 = %.17g", l1_loss_forward(a, b, 4));
    l1_loss_backward(da, a, b, 4, 2.0f);
    /* sign(0) = 0: the equal pair gets nothing (its 1 stays). */
    CHECK(da[0] == 1.5f && da[1] == 1 && da[2] == 0.5f && da[3] == 0.5f, "l1 backward %g %g %g %g",
          da[0], da[1], da[2], da[3]);

    float x[3] = {1, -1, 3}, dx[3] = {0};
    CHECK(fabs(mse_loss_forward(x, 1.0f, 3) - 8.0 / 3) < 1e-15, "mse");
    mse_loss_backward(dx, x, 1.0f, 3, 1.5f);
    CHECK(dx[0] == 0 && dx[1] == -2 && dx[2] == 2, "mse backward %g %g %g", dx[0], dx[1], dx[2]);

    /* BCE with logits: large |x| stays finite and exact (no exp overflow, no log of 0). */
    float z[4] = {100, -100, 0, -1e4f};
    double e100 = exp(-100.0), ln2 = log(2.0);
    double want0 = (100 + e100 + e100 + ln2 + 0) / 4;          /* target 0: max(x,0) + log1p */
    double want1 = (e100 + 100 + e100 + ln2 + 1e4) / 4;        /* target 1: ... - x */
    double got0 = bce_logits_loss_forward(z, 0.0f, 4), got1 = bce_logits_loss_forward(z, 1.0f, 4);
    CHECK(fabs(got0 - want0) <= 1e-15 * want0 && fabs(got1 - want1) <= 1e-15 * want1,
          "bce %.17g %.17g, want %.17g %.17g", got0, got1, want0, want1);
    float one = 100, lone = 1e-30f;
    CHECK(bce_logits_loss_forward(&one, 1.0f, 1) == e100, "bce of a confident right logit: %g",
          bce_logits_loss_forward(&one, 1.0f, 1));
    CHECK(fabs(bce_logits_loss_forward(&lone, 0.5f, 1) - ln2) < 1e-15, "bce at ~0");
    float dz[4] = {0};
    bce_logits_loss_backward(dz, z, 1.0f, 4, 4.0f);
    /* dloss / n = 1: sigmoid(x) - 1 = 0 (to float), -1, -0.5, -1. */
    CHECK(dz[0] == 0 && dz[1] == -1 && dz[2] == -0.5f && dz[3] == -1, "bce backward %g %g %g %g",
          dz[0], dz[1], dz[2], dz[3]);
    float dz0[4] = {0};
    bce_logits_loss_backward(dz0, z, 0.0f, 4, 4.0f);
    CHECK(dz0[0] == 1 && fabs(dz0[1] - 3.720076e-44) < 2e-45 && dz0[2] == 0.5f && dz0[3] == 0,
          "bce backward, target 0: %g %g %g %g", dz0[0], dz0[1], dz0[2], dz0[3]);
    /* Empty input: no 0/0. */
    CHECK(l1_loss_forward(a, b, 0) == 0 && mse_loss_forward(x, 0, 0) == 0 && bce_logits_loss_forward(z, 0, 0) == 0,
          "empty losses");
}

/* ---- the check can fail ----
 * Plausible wrong gradients, each measured by the same fd_error as the real ones: every
 * one must land far above FD_TOL (at least 10x), while the right ones are far below. */

static void test_fd_catches_wrong_gradients(void) {
    /* Instance norm without the variance's path (the term xhat * sum(dy xhat)). */
    norm_ctx c = norm_make(0, 2, 2, 15, 1e-5f);
    size_t count = (size_t)c.n * c.c * c.hw;
    float *dx = alloc(count), *scratch_s = alloc(c.c), *scratch_b = alloc(c.c);
    norm_forward_ref(&c);
    for (int s = 0; s < c.n; s++)
        for (int ch = 0; ch < c.c; ch++) {
            size_t p = (size_t)s * c.c + ch;
            double sdy = 0;
            for (int i = 0; i < c.hw; i++) sdy += c.r[p * c.hw + i];
            for (int i = 0; i < c.hw; i++)
                dx[p * c.hw + i] = (float)(c.scale[ch] * c.rstd[p] * (c.r[p * c.hw + i] - sdy / c.hw));
        }
    double e_novar = fd_error(norm_objective, &c, c.x, count, dx);
    CHECK(e_novar > 10 * FD_TOL, "instance norm without the variance path passes: %.3g", e_novar);

    /* Batch norm differentiated as if its statistics were per sample (instance norm's
     * backward): the batch coupling missed. */
    c.batch = 1;
    memset(dx, 0, count * sizeof(float));
    instance_norm_backward_ref(dx, scratch_s, scratch_b, c.r, c.x, c.scale, c.n, c.c, c.hw, c.eps);
    double e_coupling = fd_error(norm_objective, &c, c.x, count, dx);
    CHECK(e_coupling > 10 * FD_TOL, "batch norm with per-sample statistics passes: %.3g", e_coupling);

    /* The right gradient with one element off by 1% of the largest. */
    memset(dx, 0, count * sizeof(float));
    norm_backward_ref(&c, dx, NULL, NULL);
    double e_right = fd_error(norm_objective, &c, c.x, count, dx);
    dx[7] += 0.01f * (float)max_abs(dx, count);
    double e_one = fd_error(norm_objective, &c, c.x, count, dx);
    CHECK(e_right < FD_TOL && e_one > 5 * FD_TOL, "one element off by 1%%: %.3g (right: %.3g)", e_one, e_right);
    norm_free(&c);
    free(dx), free(scratch_s), free(scratch_b);

    /* Reflection that repeats the edge (replicate padding's gradient, a plausible index
     * slip): differs from the true one on the border. */
    pad_ctx p = {NULL, NULL, NULL, 1, 3, 5, 2};
    size_t nin = 15, nout = pad_out_count(&p);
    p.x = alloc(nin), p.y = alloc(nout), p.r = alloc(nout);
    fill(p.x, nin, -1, 1), fill(p.r, nout, -1, 1);
    float *g = alloc(nin);
    for (int y = 0; y < 7; y++)
        for (int x = 0; x < 9; x++) {
            int iy = y - 2 < 0 ? 0 : y - 2 > 2 ? 2 : y - 2, ix = x - 2 < 0 ? 0 : x - 2 > 4 ? 4 : x - 2;
            g[iy * 5 + ix] += p.r[y * 9 + x];
        }
    double e_rep = fd_error(pad_objective, &p, p.x, nin, g);
    CHECK(e_rep > 10 * FD_TOL, "replicate padding's gradient passes: %.3g", e_rep);
    free(p.x), free(p.y), free(p.r), free(g);

    /* tanh' taken as 1 - y instead of 1 - y^2. */
    size_t n = 20;
    elt_ctx e = {2, alloc(n), alloc(n), alloc(n), n, 0};
    fill(e.x, n, -2, 2), fill(e.r, n, -1, 1);
    tanh_forward(e.y, e.x, n);
    float *gt = alloc(n);
    for (size_t i = 0; i < n; i++) gt[i] = e.r[i] * (1 - e.y[i]);
    double e_tanh = fd_error(elt_objective, &e, e.x, n, gt);
    CHECK(e_tanh > 10 * FD_TOL, "tanh' = 1 - y passes: %.3g", e_tanh);
    free(e.x), free(e.y), free(e.r), free(gt);
    printf("     wrong gradients measure %.3g %.3g %.3g %.3g %.3g (bar %g)\n", e_novar, e_coupling, e_one,
           e_rep, e_tanh, FD_TOL);
}

int main(void) {
    pool = cg_pool_create(2);
    if (!pool) {
        fprintf(stderr, "cannot create the thread pool\n");
        return 1;
    }
    RUN(test_elementwise_fd);
    RUN(test_elementwise_values);
    RUN(test_pad_reflect);
    RUN(test_norm_fd);
    RUN(test_norm_fast);
    RUN(test_maxpool_fd);
    RUN(test_maxpool_fast);
    RUN(test_maxpool_ties);
    RUN(test_losses_fd);
    RUN(test_losses_values);
    RUN(test_fd_catches_wrong_gradients);
    printf("     largest finite-difference error of a right gradient: %.3g (bar %g)\n", worst_fd_error, FD_TOL);
    cg_pool_free(pool);
    return TEST_SUMMARY("test_grad_ops");
}
