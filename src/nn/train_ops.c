/* train_ops.c: the fast training ops of train_ops.h other than the convolutions:
 * elementwise activations' backward passes, reflection padding's backward, instance and
 * batch norm in training mode (forward saving the statistics, and backward), 2x2 max
 * pooling, and the losses. Norms and pooling are parallel over channels or planes; the
 * rest is memory-bound single loops. Each is tested against its reference
 * (train_ops_ref.c) in tests/test_grad_ops.c. */
#include "train_ops.h"
#include "pool.h"

#include <math.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

/* ---- elementwise ---- */

void relu_backward(float *dx, const float *dy, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += y[i] > 0.f ? dy[i] : 0.f;
}

void leaky_relu_forward(float *out, const float *in, size_t n, float slope) {
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.f ? in[i] : slope * in[i];
}

void leaky_relu_backward(float *dx, const float *dy, const float *y, size_t n, float slope) {
    for (size_t i = 0; i < n; i++) dx[i] += y[i] > 0.f ? dy[i] : slope * dy[i];
}

void tanh_backward(float *dx, const float *dy, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (1.f - y[i] * y[i]);
}

void accumulate(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* ---- reflection padding ---- */

/* Row by row of the padded plane: its gradient goes to the input row it copied, the
 * middle run straight across and the pad columns to their reflected columns. Same order
 * of additions as the reference, so the same result bit for bit. No pool in the
 * signature: this is a single pass over memory. */
void pad_reflect_backward(float *din, const float *dout, int nc, int h, int w, int pad) {
    int ph = h + 2 * pad, pw = w + 2 * pad;
    for (int p = 0; p < nc; p++)
        for (int y = 0; y < ph; y++) {
            const float *src = dout + ((size_t)p * ph + y) * pw;
            float *dst = din + ((size_t)p * h + reflect_index(y - pad, h)) * w;
            for (int x = 0; x < pad; x++) dst[reflect_index(x - pad, w)] += src[x];
            for (int x = 0; x < w; x++) dst[x] += src[pad + x];
            for (int x = pad + w; x < pw; x++) dst[reflect_index(x - pad, w)] += src[x];
        }
}

/* ---- normalisation ----
 * A statistic covers `groups` runs of hw values, `stride` floats apart: one plane for
 * instance norm, a channel's plane in each sample for batch norm. Sums run in double, in
 * independent lanes so that they vectorise without reassociation: with eps = 1e-9 (the
 * generator) a near-constant channel's rstd magnifies any error in its variance. */

enum { LANES = 8 };

MULTIVERSION static double sum(const float *x, int n) {
    double acc[LANES] = {0}, total = 0;
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += x[i + l];
    for (; i < n; i++) acc[0] += x[i];
    for (int l = 0; l < LANES; l++) total += acc[l];
    return total;
}

/* Squared deviations from the exact (double) mean: no var + delta^2 bias to argue about. */
MULTIVERSION static double sum_sq_dev(const float *x, int n, double mean) {
    double acc[LANES] = {0}, total = 0;
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            double d = x[i + l] - mean;
            acc[l] += d * d;
        }
    for (; i < n; i++) acc[0] += (x[i] - mean) * (x[i] - mean);
    for (int l = 0; l < LANES; l++) total += acc[l];
    return total;
}

/* The backward's reductions in one pass, about the saved (float) mean mf:
 * *sdy += sum dy, *sdyc += sum dy (x - mf), *sxc += sum (x - mf). The last gives the
 * exact mean's offset from mf, which the saved float cannot hold. */
MULTIVERSION static void grad_sums(double *sdy, double *sdyc, double *sxc, const float *dy,
                                   const float *x, int n, float mf) {
    double a[LANES] = {0}, b[LANES] = {0}, e[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            double d = (double)x[i + l] - mf;
            a[l] += dy[i + l];
            b[l] += dy[i + l] * d;
            e[l] += d;
        }
    for (; i < n; i++) {
        double d = (double)x[i] - mf;
        a[0] += dy[i];
        b[0] += dy[i] * d;
        e[0] += d;
    }
    for (int l = 0; l < LANES; l++) *sdy += a[l], *sdyc += b[l], *sxc += e[l];
}

/* y = (x - m) a + c. x - m is exact for x near m (Sterbenz); the mean is not folded into
 * c whole, which would cancel badly when the mean is large against the spread. */
MULTIVERSION static void affine(float *y, const float *x, int n, float m, float a, float c) {
    for (int i = 0; i < n; i++) y[i] = (x[i] - m) * a + c;
}

/* dx += a (dy - u - q (x - m)): the backward's per-pixel formula with its constants
 * folded. The bracket first, then the scale: the bracket cancels only as far as the true
 * gradient does, whereas a dy + b with a large a (rstd of a near-constant channel) would
 * cancel in float what is exact in double. */
MULTIVERSION static void affine_grad(float *dx, const float *dy, const float *x, int n, float m,
                                     float a, float u, float q) {
    for (int i = 0; i < n; i++) dx[i] += a * (dy[i] - u - q * (x[i] - m));
}

/* The mean enters the pixels as the float mf plus its rounding error, folded into the
 * constant term (mean - mf is tiny, so nothing cancels): with a mean of 100 and a spread
 * of 0.01, rounding the mean alone would shift xhat by 7e-4. */
static void group_forward(float *out, float *mean, float *rstd, const float *x, float scale,
                          float shift, int groups, size_t stride, int hw, float eps) {
    double count = (double)groups * hw, m = 0, v = 0;
    for (int g = 0; g < groups; g++) m += sum(x + g * stride, hw);
    m /= count;
    for (int g = 0; g < groups; g++) v += sum_sq_dev(x + g * stride, hw, m);
    double r = 1.0 / sqrt(v / count + eps), a = r * scale;
    float mf = (float)m, c = (float)(shift - (m - mf) * a);
    for (int g = 0; g < groups; g++) affine(out + g * stride, x + g * stride, hw, mf, (float)a, c);
    *mean = mf;
    *rstd = (float)r;
}

/* The standard backward, with xhat = (x - mean) rstd and M = groups * hw:
 * dshift += sum dy, dscale += sum dy xhat,
 * dx += scale rstd / M (M dy - sum dy - xhat sum dy xhat)
 *     = A (dy - sum(dy) / M - q (x - mean)), A = scale rstd, q = rstd sum(dy xhat) / M.
 * The exact mean is mf + delta, delta recovered from the pass's sum of x - mf, so the
 * result matches the reference's recomputed statistics even when rounding the mean to
 * float matters. The two parameter sums go to *sdy_out and *sdyx_out. */
static void group_backward(float *din, double *sdy_out, double *sdyx_out, const float *dout,
                           const float *x, float mf, float rstd, float scale, int groups,
                           size_t stride, int hw) {
    double sdy = 0, sdyc = 0, sxc = 0, count = (double)groups * hw, r = rstd;
    for (int g = 0; g < groups; g++)
        grad_sums(&sdy, &sdyc, &sxc, dout + g * stride, x + g * stride, hw, mf);
    double delta = sxc / count, sdyx = (sdyc - delta * sdy) * r; /* sum dy xhat */
    *sdy_out += sdy;
    *sdyx_out += sdyx;
    if (!din) return;
    /* x - mean = (x - mf) - delta, the delta part moved into u. */
    double a = (double)scale * r, q = r * sdyx / count, u = sdy / count - q * delta;
    for (int g = 0; g < groups; g++)
        affine_grad(din + g * stride, dout + g * stride, x + g * stride, hw, mf, (float)a,
                    (float)u, (float)q);
}

typedef struct {
    float *out, *mean, *rstd;
    const float *in, *scale, *shift;
    int n, c, hw;
    float eps;
} norm_fwd_job;

typedef struct {
    float *din, *dscale, *dshift;
    const float *dout, *in, *mean, *rstd, *scale;
    int n, c, hw;
} norm_bwd_job;

/* Instance norm forward: one task per plane (n * c of them). */
static void instance_fwd_task(void *ctx, int p, int n) {
    (void)n;
    norm_fwd_job *j = ctx;
    int ch = p % j->c;
    size_t off = (size_t)p * j->hw;
    group_forward(j->out + off, j->mean + p, j->rstd + p, j->in + off, j->scale[ch], j->shift[ch],
                  1, 0, j->hw, j->eps);
}

/* Norm backward: one task per channel, since dscale[ch] and dshift[ch] gather over the
 * batch; instance norm goes through the samples' statistics one by one. */
static void instance_bwd_task(void *ctx, int ch, int n) {
    (void)n;
    norm_bwd_job *j = ctx;
    double sdy = 0, sdyx = 0;
    for (int s = 0; s < j->n; s++) {
        size_t p = (size_t)s * j->c + ch, off = p * j->hw;
        group_backward(j->din ? j->din + off : NULL, &sdy, &sdyx, j->dout + off, j->in + off,
                       j->mean[p], j->rstd[p], j->scale[ch], 1, 0, j->hw);
    }
    if (j->dscale) j->dscale[ch] += (float)sdyx;
    if (j->dshift) j->dshift[ch] += (float)sdy;
}

static void batch_fwd_task(void *ctx, int ch, int n) {
    (void)n;
    norm_fwd_job *j = ctx;
    size_t off = (size_t)ch * j->hw;
    group_forward(j->out + off, j->mean + ch, j->rstd + ch, j->in + off, j->scale[ch], j->shift[ch],
                  j->n, (size_t)j->c * j->hw, j->hw, j->eps);
}

static void batch_bwd_task(void *ctx, int ch, int n) {
    (void)n;
    norm_bwd_job *j = ctx;
    double sdy = 0, sdyx = 0;
    size_t off = (size_t)ch * j->hw;
    group_backward(j->din ? j->din + off : NULL, &sdy, &sdyx, j->dout + off, j->in + off,
                   j->mean[ch], j->rstd[ch], j->scale[ch], j->n, (size_t)j->c * j->hw, j->hw);
    if (j->dscale) j->dscale[ch] += (float)sdyx;
    if (j->dshift) j->dshift[ch] += (float)sdy;
}

void instance_norm_train_forward(float *out, float *mean, float *rstd, const float *in,
                                 const float *scale, const float *shift, int n, int c, int hw,
                                 float eps, cg_pool *pool) {
    norm_fwd_job j = {out, mean, rstd, in, scale, shift, n, c, hw, eps};
    cg_pool_run(pool, instance_fwd_task, &j, n * c);
}

void instance_norm_backward(float *din, float *dscale, float *dshift, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *scale, int n, int c, int hw, cg_pool *pool) {
    norm_bwd_job j = {din, dscale, dshift, dout, in, mean, rstd, scale, n, c, hw};
    cg_pool_run(pool, instance_bwd_task, &j, c);
}

void batch_norm_train_forward(float *out, float *mean, float *rstd, const float *in,
                              const float *scale, const float *shift, int n, int c, int hw,
                              float eps, cg_pool *pool) {
    norm_fwd_job j = {out, mean, rstd, in, scale, shift, n, c, hw, eps};
    cg_pool_run(pool, batch_fwd_task, &j, c);
}

void batch_norm_backward(float *din, float *dscale, float *dshift, const float *dout,
                         const float *in, const float *mean, const float *rstd,
                         const float *scale, int n, int c, int hw, cg_pool *pool) {
    norm_bwd_job j = {din, dscale, dshift, dout, in, mean, rstd, scale, n, c, hw};
    cg_pool_run(pool, batch_bwd_task, &j, c);
}

/* ---- max pooling 2x2, stride 2 ---- */

typedef struct {
    float *out;
    const float *dout, *in;
    int h, w;
} pool_job;

/* Index (0..3, row-major) of the window's maximum: the first of equals, as `>` only moves
 * on for a strictly larger value; a NaN wins, by PyTorch's kernel's test, so it shows. */
static inline int argmax4(const float v[4]) {
    int best = 0;
    for (int k = 1; k < 4; k++)
        if (v[k] > v[best] || isnan(v[k])) best = k;
    return best;
}

static void maxpool_fwd_task(void *ctx, int p, int n) {
    (void)n;
    pool_job *j = ctx;
    int oh = j->h / 2, ow = j->w / 2;
    const float *plane = j->in + (size_t)p * j->h * j->w;
    float *out = j->out + (size_t)p * oh * ow;
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = plane + (size_t)2 * oy * j->w, *r1 = r0 + j->w;
        for (int ox = 0; ox < ow; ox++) {
            float v[4] = {r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]};
            out[(size_t)oy * ow + ox] = v[argmax4(v)];
        }
    }
}

static void maxpool_bwd_task(void *ctx, int p, int n) {
    (void)n;
    pool_job *j = ctx;
    int oh = j->h / 2, ow = j->w / 2;
    size_t off = (size_t)p * j->h * j->w;
    const float *dout = j->dout + (size_t)p * oh * ow;
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = j->in + off + (size_t)2 * oy * j->w, *r1 = r0 + j->w;
        float *d0 = j->out + off + (size_t)2 * oy * j->w, *d1 = d0 + j->w;
        for (int ox = 0; ox < ow; ox++) {
            float v[4] = {r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]};
            int k = argmax4(v);
            (k < 2 ? d0 : d1)[2 * ox + (k & 1)] += dout[(size_t)oy * ow + ox];
        }
    }
}

void maxpool2_forward(float *out, const float *in, int nc, int h, int w, cg_pool *pool) {
    pool_job j = {out, NULL, in, h, w};
    cg_pool_run(pool, maxpool_fwd_task, &j, nc);
}

void maxpool2_backward(float *din, const float *dout, const float *in, int nc, int h, int w,
                       cg_pool *pool) {
    pool_job j = {din, dout, in, h, w};
    cg_pool_run(pool, maxpool_bwd_task, &j, nc);
}

/* ---- losses ----
 * Means over n; an empty input gives a loss of 0 and no gradient rather than 0/0. The
 * gradient's common factor dloss / n is formed in double, then each element's term. */

double l1_loss_forward(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs((double)a[i] - b[i]);
    return n ? s / (double)n : 0.0;
}

void l1_loss_backward(float *da, const float *a, const float *b, size_t n, float dloss) {
    if (!n) return;
    float g = (float)((double)dloss / (double)n);
    /* sign(0) = 0, as torch: equal elements get no gradient. */
    for (size_t i = 0; i < n; i++) da[i] += a[i] > b[i] ? g : a[i] < b[i] ? -g : 0.f;
}

double mse_loss_forward(const float *x, float target, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - target;
        s += d * d;
    }
    return n ? s / (double)n : 0.0;
}

void mse_loss_backward(float *dx, const float *x, float target, size_t n, float dloss) {
    if (!n) return;
    float g = (float)(2.0 * dloss / (double)n);
    for (size_t i = 0; i < n; i++) dx[i] += g * (x[i] - target);
}

/* max(x, 0) - x t + log1p(exp(-|x|)): no exp of a large positive number, and no log of
 * a sum that rounds to 1 and loses the small term. */
double bce_logits_loss_forward(const float *x, float target, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        s += (v > 0 ? v : 0) - v * target + log1p(exp(-fabs(v)));
    }
    return n ? s / (double)n : 0.0;
}

/* sigmoid(x) from exp(-|x|) in (0, 1]: never overflows, and keeps its precision for
 * large negative x where 1 - sigmoid(-x) would cancel. */
void bce_logits_loss_backward(float *dx, const float *x, float target, size_t n, float dloss) {
    if (!n) return;
    double g = (double)dloss / (double)n;
    for (size_t i = 0; i < n; i++) {
        double e = exp(-fabs((double)x[i]));
        double sig = x[i] >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        dx[i] += (float)(g * (sig - target));
    }
}
