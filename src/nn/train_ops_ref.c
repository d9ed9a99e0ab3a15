/* train_ops_ref.c: the naive references of the training ops (train_ops.h): the
 * definitions the fast versions in train_ops.c are tested against, themselves checked
 * against finite differences (tests/test_grad_ops.c). Written for clarity: one thread,
 * statistics and gradient sums in double, backward passes that recompute what they need
 * from the forward's input rather than trusting saved values. */
#include "train_ops.h"

#include <math.h>

/* ---- normalisation ----
 * Both norms are the same computation on different groupings: a statistic covers
 * `groups` runs of `hw` values, `stride` floats apart (instance norm: one run, the plane;
 * batch norm: the channel's plane in each of the n samples). */

static void group_stats(double *mean, double *rstd, const float *x, int groups, size_t stride,
                        int hw, float eps) {
    double m = 0, v = 0, count = (double)groups * hw;
    for (int g = 0; g < groups; g++)
        for (int i = 0; i < hw; i++) m += x[g * stride + i];
    m /= count;
    for (int g = 0; g < groups; g++)
        for (int i = 0; i < hw; i++) v += (x[g * stride + i] - m) * (x[g * stride + i] - m);
    v /= count; /* biased: what both torch norms normalise with */
    *mean = m;
    *rstd = 1.0 / sqrt(v + eps);
}

static void group_forward(float *out, float *mean, float *rstd, const float *x, float scale,
                          float shift, int groups, size_t stride, int hw, float eps) {
    double m, r;
    group_stats(&m, &r, x, groups, stride, hw, eps);
    for (int g = 0; g < groups; g++)
        for (int i = 0; i < hw; i++)
            out[g * stride + i] = (float)((x[g * stride + i] - m) * r * scale + shift);
    *mean = (float)m;
    *rstd = (float)r;
}

/* With xhat = (x - mean) rstd and y = scale xhat + shift:
 * dshift = sum dy, dscale = sum dy xhat,
 * dx = scale rstd / M (M dy - sum dy - xhat sum dy xhat), the mean's and variance's
 * dependence on every x folded into the two sums. */
static void group_backward(float *din, float *dscale, float *dshift, const float *dout,
                           const float *x, float scale, int groups, size_t stride, int hw,
                           float eps) {
    double m, r, sdy = 0, sdyx = 0, count = (double)groups * hw;
    group_stats(&m, &r, x, groups, stride, hw, eps);
    for (int g = 0; g < groups; g++)
        for (int i = 0; i < hw; i++) {
            size_t k = g * stride + i;
            sdy += dout[k];
            sdyx += dout[k] * ((x[k] - m) * r);
        }
    if (dshift) *dshift += (float)sdy;
    if (dscale) *dscale += (float)sdyx;
    if (!din) return;
    for (int g = 0; g < groups; g++)
        for (int i = 0; i < hw; i++) {
            size_t k = g * stride + i;
            double xhat = (x[k] - m) * r;
            din[k] += (float)(scale * r / count * (count * dout[k] - sdy - xhat * sdyx));
        }
}

void instance_norm_train_forward_ref(float *out, float *mean, float *rstd, const float *in,
                                     const float *scale, const float *shift, int n, int c,
                                     int hw, float eps) {
    for (int s = 0; s < n; s++)
        for (int ch = 0; ch < c; ch++) {
            size_t p = (size_t)s * c + ch;
            group_forward(out + p * hw, mean + p, rstd + p, in + p * hw, scale[ch], shift[ch], 1,
                          0, hw, eps);
        }
}

void instance_norm_backward_ref(float *din, float *dscale, float *dshift, const float *dout,
                                const float *in, const float *scale, int n, int c, int hw,
                                float eps) {
    for (int s = 0; s < n; s++)
        for (int ch = 0; ch < c; ch++) {
            size_t p = ((size_t)s * c + ch) * hw;
            group_backward(din ? din + p : NULL, dscale ? dscale + ch : NULL,
                           dshift ? dshift + ch : NULL, dout + p, in + p, scale[ch], 1, 0, hw, eps);
        }
}

void batch_norm_train_forward_ref(float *out, float *mean, float *rstd, const float *in,
                                  const float *scale, const float *shift, int n, int c, int hw,
                                  float eps) {
    size_t stride = (size_t)c * hw;
    for (int ch = 0; ch < c; ch++)
        group_forward(out + (size_t)ch * hw, mean + ch, rstd + ch, in + (size_t)ch * hw, scale[ch],
                      shift[ch], n, stride, hw, eps);
}

void batch_norm_backward_ref(float *din, float *dscale, float *dshift, const float *dout,
                             const float *in, const float *scale, int n, int c, int hw,
                             float eps) {
    size_t stride = (size_t)c * hw;
    for (int ch = 0; ch < c; ch++) {
        size_t p = (size_t)ch * hw;
        group_backward(din ? din + p : NULL, dscale ? dscale + ch : NULL,
                       dshift ? dshift + ch : NULL, dout + p, in + p, scale[ch], n, stride, hw, eps);
    }
}

/* ---- max pooling ---- */

/* Offset in the plane of the window's maximum: the first in row-major order, `>` keeping
 * the earlier of equals. A NaN wins, by PyTorch's kernel's very test, so that a NaN shows
 * in the output instead of vanishing. */
static size_t window_argmax(const float *plane, int w, int oy, int ox) {
    size_t best = (size_t)2 * oy * w + 2 * ox;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            size_t k = (size_t)(2 * oy + dy) * w + 2 * ox + dx;
            if (plane[k] > plane[best] || isnan(plane[k])) best = k;
        }
    return best;
}

void maxpool2_forward_ref(float *out, const float *in, int nc, int h, int w) {
    int oh = h / 2, ow = w / 2;
    for (int p = 0; p < nc; p++) {
        const float *plane = in + (size_t)p * h * w;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                out[((size_t)p * oh + oy) * ow + ox] = plane[window_argmax(plane, w, oy, ox)];
    }
}

void maxpool2_backward_ref(float *din, const float *dout, const float *in, int nc, int h, int w) {
    int oh = h / 2, ow = w / 2;
    for (int p = 0; p < nc; p++) {
        const float *plane = in + (size_t)p * h * w;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                din[(size_t)p * h * w + window_argmax(plane, w, oy, ox)] +=
                    dout[((size_t)p * oh + oy) * ow + ox];
    }
}

/* ---- reflection padding ---- */

/* Each padded pixel copied the input pixel at its reflected coordinates, so its gradient
 * goes back there (several padded pixels may feed one input pixel). */
void pad_reflect_backward_ref(float *din, const float *dout, int nc, int h, int w, int pad) {
    int ph = h + 2 * pad, pw = w + 2 * pad;
    for (int p = 0; p < nc; p++)
        for (int y = 0; y < ph; y++)
            for (int x = 0; x < pw; x++)
                din[((size_t)p * h + reflect_index(y - pad, h)) * w + reflect_index(x - pad, w)] +=
                    dout[((size_t)p * ph + y) * pw + x];
}
