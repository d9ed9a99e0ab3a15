/* norm.c: instance normalisation with its neighbours fused in (the residual add and the
 * ReLU), parallel over channels. Statistics are accumulated in double so that the result
 * does not depend on the image size's rounding error: with eps = 1e-9, near-constant
 * channels amplify any error in the variance. */
#include "ops.h"
#include "pool.h"

#include <math.h>

typedef struct {
    float *out;
    const float *in, *scale, *shift, *residual;
    int relu, hw;
    float eps;
} norm_job;

/* Sums with four independent accumulators so the adds pipeline. */
static double sum(const float *x, int n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
    }
    for (; i < n; i++) s0 += x[i];
    return (s0 + s1) + (s2 + s3);
}

static double sum_sq_dev(const float *x, int n, double mean) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        double d0 = x[i] - mean, d1 = x[i + 1] - mean, d2 = x[i + 2] - mean, d3 = x[i + 3] - mean;
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; i < n; i++) s0 += (x[i] - mean) * (x[i] - mean);
    return (s0 + s1) + (s2 + s3);
}

static void norm_task(void *ctx, int ch, int n) {
    (void)n;
    norm_job *j = ctx;
    const float *x = j->in + (size_t)ch * j->hw;
    float *y = j->out + (size_t)ch * j->hw;
    double mean = sum(x, j->hw) / j->hw;
    double var = sum_sq_dev(x, j->hw, mean) / j->hw;
    /* y = (x - m) * a + c: one subtract and one multiply-add per pixel. The mean is not
     * folded into c, which would cancel badly when the mean is large against the spread. */
    double inv = 1.0 / sqrt(var + j->eps);
    float m = (float)mean, a = (float)(inv * j->scale[ch]), c = j->shift[ch];
    const float *r = j->residual ? j->residual + (size_t)ch * j->hw : NULL;
    if (r) {
        for (int i = 0; i < j->hw; i++) y[i] = (x[i] - m) * a + c + r[i];
    } else if (j->relu) {
        for (int i = 0; i < j->hw; i++) {
            float v = (x[i] - m) * a + c;
            y[i] = v > 0.f ? v : 0.f;
        }
    } else {
        for (int i = 0; i < j->hw; i++) y[i] = (x[i] - m) * a + c;
    }
    if (r && j->relu)
        for (int i = 0; i < j->hw; i++) y[i] = y[i] > 0.f ? y[i] : 0.f;
}

void instance_norm_forward(float *out, const float *in, const float *scale, const float *shift,
                           const float *residual, int relu, int c, int hw, float eps,
                           cg_pool *pool) {
    norm_job j = {out, in, scale, shift, residual, relu, hw, eps};
    cg_pool_run(pool, norm_task, &j, c);
}
