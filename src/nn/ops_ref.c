/* ops_ref.c: the naive reference ops. They are the definitions: written for clarity, with
 * double accumulation, and used by the tests to check every fast kernel. The elementwise
 * ops and reflect padding here are also what the generator runs, as they are memory-bound
 * and already simple. */
#include "ops.h"

#include <math.h>

int conv_out_h(const conv_dims *d) { return (d->h + 2 * d->pad - d->kh) / d->stride + 1; }
int conv_out_w(const conv_dims *d) { return (d->w + 2 * d->pad - d->kw) / d->stride + 1; }
int deconv_out_h(const deconv_dims *d) {
    return (d->h - 1) * d->stride - 2 * d->pad + d->kh + d->out_pad;
}
int deconv_out_w(const deconv_dims *d) {
    return (d->w - 1) * d->stride - 2 * d->pad + d->kw + d->out_pad;
}

void conv2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                        const conv_dims *d) {
    int oh = conv_out_h(d), ow = conv_out_w(d);
    for (int co = 0; co < d->cout; co++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double acc = b ? b[co] : 0.0;
                for (int ci = 0; ci < d->cin; ci++)
                    for (int ky = 0; ky < d->kh; ky++) {
                        int iy = oy * d->stride - d->pad + ky;
                        if (iy < 0 || iy >= d->h) continue;
                        for (int kx = 0; kx < d->kw; kx++) {
                            int ix = ox * d->stride - d->pad + kx;
                            if (ix < 0 || ix >= d->w) continue;
                            acc += (double)in[((size_t)ci * d->h + iy) * d->w + ix] *
                                   w[(((size_t)co * d->cin + ci) * d->kh + ky) * d->kw + kx];
                        }
                    }
                out[((size_t)co * oh + oy) * ow + ox] = (float)acc;
            }
}

/* Scatter form, straight from the definition: every input pixel adds its kernel-weighted
 * value to a stride-spaced window of the output. */
void conv_transpose2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                                  const deconv_dims *d) {
    int oh = deconv_out_h(d), ow = deconv_out_w(d);
    for (int co = 0; co < d->cout; co++)
        for (size_t i = 0; i < (size_t)oh * ow; i++) out[(size_t)co * oh * ow + i] = b ? b[co] : 0.f;
    for (int ci = 0; ci < d->cin; ci++)
        for (int iy = 0; iy < d->h; iy++)
            for (int ix = 0; ix < d->w; ix++) {
                float v = in[((size_t)ci * d->h + iy) * d->w + ix];
                for (int co = 0; co < d->cout; co++)
                    for (int ky = 0; ky < d->kh; ky++) {
                        int oy = iy * d->stride - d->pad + ky;
                        if (oy < 0 || oy >= oh) continue;
                        for (int kx = 0; kx < d->kw; kx++) {
                            int ox = ix * d->stride - d->pad + kx;
                            if (ox < 0 || ox >= ow) continue;
                            out[((size_t)co * oh + oy) * ow + ox] +=
                                v * w[(((size_t)ci * d->cout + co) * d->kh + ky) * d->kw + kx];
                        }
                    }
            }
}

void instance_norm_forward_ref(float *out, const float *in, const float *scale,
                               const float *shift, int c, int hw, float eps) {
    for (int ch = 0; ch < c; ch++) {
        const float *x = in + (size_t)ch * hw;
        float *y = out + (size_t)ch * hw;
        double mean = 0, var = 0;
        for (int i = 0; i < hw; i++) mean += x[i];
        mean /= hw;
        for (int i = 0; i < hw; i++) var += (x[i] - mean) * (x[i] - mean);
        var /= hw;
        double inv = 1.0 / sqrt(var + eps);
        for (int i = 0; i < hw; i++) y[i] = (float)((x[i] - mean) * inv * scale[ch] + shift[ch]);
    }
}

/* Reflection without repeating the edge (PyTorch's ReflectionPad2d, NumPy's 'reflect'),
 * folded again when the pad exceeds the side, so any pad works on any side >= 1. */
int reflect_index(int i, int n) {
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

void pad_reflect_forward(float *out, const float *in, int c, int h, int w, int pad) {
    int ph = h + 2 * pad, pw = w + 2 * pad;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < ph; y++) {
            const float *src = in + ((size_t)ch * h + reflect_index(y - pad, h)) * w;
            float *dst = out + ((size_t)ch * ph + y) * pw;
            for (int x = 0; x < pad; x++) dst[x] = src[reflect_index(x - pad, w)];
            for (int x = 0; x < w; x++) dst[pad + x] = src[x];
            for (int x = pad + w; x < pw; x++) dst[x] = src[reflect_index(x - pad, w)];
        }
}

void relu_forward(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.f ? in[i] : 0.f;
}

void add_forward(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void tanh_forward(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = tanhf(in[i]);
}
