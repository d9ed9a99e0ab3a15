/* norm.c: instance normalisation with its neighbours fused in (the residual add and the
 * ReLU), parallel over channels. Statistics end up in double so that the result does not
 * depend on the image size's rounding error: with eps = 1e-9, near-constant channels
 * amplify any error in the variance. */
#include "ops.h"
#include "pool.h"

#include <math.h>

typedef struct {
    float *out;
    const float *in, *scale, *shift, *residual;
    int relu, hw;
    float eps;
} norm_job;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

/* Sums in float over blocks of 1024 (16 independent lanes, which vectorise), adding the
 * block sums in double: fast, and as exact as the statistics need. */
enum { LANES = 16, BLOCK = 1024 };

static double sum(const float *x, int n) {
    double total = 0;
    for (int i0 = 0; i0 < n; i0 += BLOCK) {
        int end = n - i0 < BLOCK ? n : i0 + BLOCK, i = i0;
        float acc[LANES] = {0};
        for (; i + LANES <= end; i += LANES)
            for (int l = 0; l < LANES; l++) acc[l] += x[i + l];
        for (; i < end; i++) acc[0] += x[i];
        for (int l = 0; l < LANES; l++) total += acc[l];
    }
    return total;
}

static double sum_sq_dev(const float *x, int n, float mean) {
    double total = 0;
    for (int i0 = 0; i0 < n; i0 += BLOCK) {
        int end = n - i0 < BLOCK ? n : i0 + BLOCK, i = i0;
        float acc[LANES] = {0};
        for (; i + LANES <= end; i += LANES)
            for (int l = 0; l < LANES; l++) {
                float d = x[i + l] - mean;
                acc[l] += d * d;
            }
        for (; i < end; i++) acc[0] += (x[i] - mean) * (x[i] - mean);
        for (int l = 0; l < LANES; l++) total += acc[l];
    }
    return total;
}

MULTIVERSION static void norm_task(void *ctx, int ch, int n) {
    (void)n;
    norm_job *j = ctx;
    const float *x = j->in + (size_t)ch * j->hw;
    float *y = j->out + (size_t)ch * j->hw;
    double mean = sum(x, j->hw) / j->hw;
    /* Deviations from the float-rounded mean: the variance about a point off the mean by
     * delta is var + delta^2, and delta^2 (at most 1e-14 relative) is far below eps. */
    double var = sum_sq_dev(x, j->hw, (float)mean) / j->hw;
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
