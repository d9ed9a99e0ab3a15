/* light_ops_ref.c: naive references of the light generator's own ops (issue 13): the
 * depthwise 3x3 with TensorFlow's "SAME" padding, keras-contrib's global instance norm,
 * the channel shuffle and TensorFlow 1's bilinear x2. Like ops_ref.c they are the
 * definitions, written for clarity with double accumulation where there is a sum; the
 * fast kernels (light_ops.c, conv.c) are tested against them. */
#include "ops.h"

#include <math.h>

int dw_out_side(int n, int stride) { return (n + stride - 1) / stride; }

int dw_pad_before(int n, int stride) {
    int total = (dw_out_side(n, stride) - 1) * stride + 3 - n;
    return total > 0 ? total / 2 : 0;
}

void dwconv3x3_same_forward_ref(float *out, const float *in, const float *w, const dw_dims *d) {
    const int oh = dw_out_side(d->h, d->stride), ow = dw_out_side(d->w, d->stride);
    const int pt = dw_pad_before(d->h, d->stride), pl = dw_pad_before(d->w, d->stride);
    for (int c = 0; c < d->c; c++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double acc = 0;
                for (int ky = 0; ky < 3; ky++) {
                    int iy = oy * d->stride - pt + ky;
                    if (iy < 0 || iy >= d->h) continue;
                    for (int kx = 0; kx < 3; kx++) {
                        int ix = ox * d->stride - pl + kx;
                        if (ix < 0 || ix >= d->w) continue;
                        acc += (double)in[((size_t)c * d->h + iy) * d->w + ix] * w[(size_t)c * 9 + ky * 3 + kx];
                    }
                }
                out[((size_t)c * oh + oy) * ow + ox] = (float)acc;
            }
}

void global_norm_forward_ref(float *out, const float *in, int c, size_t hw, float gamma,
                             float beta, float eps, int relu) {
    const size_t n = (size_t)c * hw;
    double mean = 0, var = 0;
    for (size_t i = 0; i < n; i++) mean += in[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) var += (in[i] - mean) * (in[i] - mean);
    var /= (double)n;
    const double den = sqrt(var) + eps;
    for (size_t i = 0; i < n; i++) {
        double y = (in[i] - mean) / den * gamma + beta;
        out[i] = (float)(relu && y < 0 ? 0 : y);
    }
}

void channel_shuffle_forward_ref(float *out, const float *in, int c, size_t hw) {
    for (int g = 0; g < 2; g++)
        for (int j = 0; j < c / 2; j++)
            for (size_t i = 0; i < hw; i++) out[(size_t)(2 * j + g) * hw + i] = in[(size_t)(g * c / 2 + j) * hw + i];
}

void upsample2_bilinear_forward_ref(float *out, const float *in, int c, int h, int w) {
    const int oh = 2 * h, ow = 2 * w;
    for (int ch = 0; ch < c; ch++) {
        const float *x = in + (size_t)ch * h * w;
        float *y = out + (size_t)ch * oh * ow;
        /* along the width, into the even output rows */
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                float a = x[(size_t)i * w + j], b = x[(size_t)i * w + (j + 1 < w ? j + 1 : w - 1)];
                y[(size_t)2 * i * ow + 2 * j] = a;
                y[(size_t)2 * i * ow + 2 * j + 1] = a + (b - a) * 0.5f;
            }
        /* then along the height */
        for (int i = 0; i < h; i++) {
            const float *a = y + (size_t)2 * i * ow, *b = y + (size_t)2 * (i + 1 < h ? i + 1 : h - 1) * ow;
            for (int j = 0; j < ow; j++) y[(size_t)(2 * i + 1) * ow + j] = a[j] + (b[j] - a[j]) * 0.5f;
        }
    }
}
