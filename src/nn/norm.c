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

/* ---- the generator's statistics, a group of rows at a time (group_moments) ----
 * As sum and sum_sq_dev above, but with each block's 16 lanes added pairwise in float
 * (four more roundings) before the double total, as the groups are often short. */

static float lanes_total(float acc[LANES]) {
    for (int half = LANES / 2; half > 0; half /= 2)
        for (int l = 0; l < half; l++) acc[l] += acc[l + half];
    return acc[0];
}

/* (The int counts inside a block matter: with size_t indices GCC 12 leaves the lanes'
 * loops of the AVX2 and AVX-512 clones scalar, four times the instructions.) */
static inline double group_sum(const float *x, size_t n) {
    double total = 0;
    while (n > 0) {
        int m = n < BLOCK ? (int)n : BLOCK, full = m / LANES * LANES;
        float acc[LANES] = {0}, tail = 0;
        for (int i = 0; i < full; i += LANES)
            for (int l = 0; l < LANES; l++) acc[l] += x[i + l];
        for (int i = full; i < m; i++) tail += x[i];
        total += lanes_total(acc) + tail;
        x += m, n -= (size_t)m;
    }
    return total;
}

static inline double group_sum_sq_dev(const float *x, size_t n, float mean) {
    double total = 0;
    while (n > 0) {
        int m = n < BLOCK ? (int)n : BLOCK, full = m / LANES * LANES;
        float acc[LANES] = {0}, tail = 0;
        for (int i = 0; i < full; i += LANES)
            for (int l = 0; l < LANES; l++) {
                float d = x[i + l] - mean;
                acc[l] += d * d;
            }
        for (int i = full; i < m; i++) tail += (x[i] - mean) * (x[i] - mean);
        total += lanes_total(acc) + tail;
        x += m, n -= (size_t)m;
    }
    return total;
}

/* M2 is taken about the float-rounded mean mf, as norm_task does: that adds n (mean -
 * mf)^2 to it, and (mean - mf)^2 is at most 4e-15 mean^2, far below eps for any mean the
 * network produces. */
MULTIVERSION moments group_moments(const float *x, size_t n) {
    double nb = (double)n, mean = group_sum(x, n) / nb;
    return (moments){nb, mean, group_sum_sq_dev(x, n, (float)mean)};
}
