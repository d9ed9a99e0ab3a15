/* conv_train_ref.c: the naive references of the convolutions' backward passes and of the
 * Gram matrix (train_ops.h), one sample, straight from the definitions with double sums.
 * They are what the fast versions in conv_train.c are tested against, and are themselves
 * tested against finite differences of the forward references (tests/test_grad_conv.c). */
#include "train_ops.h"

/* out[co][oy][ox] = b[co] + sum_{ci,ky,kx} in[ci][oy s - p + ky][ox s - p + kx] w[co][ci][ky][kx],
 * so dL/din[ci][iy][ix] gathers every (co, oy, ox, ky, kx) whose tap lands on (iy, ix). */
void conv2d_backward_ref(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, const conv_dims *d) {
    const int oh = conv_out_h(d), ow = conv_out_w(d), s = d->stride, p = d->pad;
    if (din)
        for (int ci = 0; ci < d->cin; ci++)
            for (int iy = 0; iy < d->h; iy++)
                for (int ix = 0; ix < d->w; ix++) {
                    double acc = 0;
                    for (int co = 0; co < d->cout; co++)
                        for (int ky = 0; ky < d->kh; ky++) {
                            int ty = iy + p - ky; /* = oy s */
                            if (ty < 0 || ty % s || ty / s >= oh) continue;
                            for (int kx = 0; kx < d->kw; kx++) {
                                int tx = ix + p - kx;
                                if (tx < 0 || tx % s || tx / s >= ow) continue;
                                acc += (double)dout[((size_t)co * oh + ty / s) * ow + tx / s] *
                                       w[(((size_t)co * d->cin + ci) * d->kh + ky) * d->kw + kx];
                            }
                        }
                    din[((size_t)ci * d->h + iy) * d->w + ix] += (float)acc;
                }
    if (dw)
        for (int co = 0; co < d->cout; co++)
            for (int ci = 0; ci < d->cin; ci++)
                for (int ky = 0; ky < d->kh; ky++)
                    for (int kx = 0; kx < d->kw; kx++) {
                        double acc = 0;
                        for (int oy = 0; oy < oh; oy++) {
                            int iy = oy * s - p + ky;
                            if (iy < 0 || iy >= d->h) continue;
                            for (int ox = 0; ox < ow; ox++) {
                                int ix = ox * s - p + kx;
                                if (ix < 0 || ix >= d->w) continue;
                                acc += (double)dout[((size_t)co * oh + oy) * ow + ox] *
                                       in[((size_t)ci * d->h + iy) * d->w + ix];
                            }
                        }
                        dw[(((size_t)co * d->cin + ci) * d->kh + ky) * d->kw + kx] += (float)acc;
                    }
    if (db)
        for (int co = 0; co < d->cout; co++) {
            double acc = 0;
            for (size_t i = 0; i < (size_t)oh * ow; i++) acc += dout[(size_t)co * oh * ow + i];
            db[co] += (float)acc;
        }
}

/* out[co][iy s - p + ky][ix s - p + kx] += in[ci][iy][ix] w[ci][co][ky][kx] (+ b[co]), so
 * dL/din[ci][iy][ix] reads dout at every tap of (iy, ix) that lands inside the output. */
void conv_transpose2d_backward_ref(float *din, float *dw, float *db, const float *dout,
                                   const float *in, const float *w, const deconv_dims *d) {
    const int oh = deconv_out_h(d), ow = deconv_out_w(d), s = d->stride, p = d->pad;
    if (din)
        for (int ci = 0; ci < d->cin; ci++)
            for (int iy = 0; iy < d->h; iy++)
                for (int ix = 0; ix < d->w; ix++) {
                    double acc = 0;
                    for (int co = 0; co < d->cout; co++)
                        for (int ky = 0; ky < d->kh; ky++) {
                            int oy = iy * s - p + ky;
                            if (oy < 0 || oy >= oh) continue;
                            for (int kx = 0; kx < d->kw; kx++) {
                                int ox = ix * s - p + kx;
                                if (ox < 0 || ox >= ow) continue;
                                acc += (double)dout[((size_t)co * oh + oy) * ow + ox] *
                                       w[(((size_t)ci * d->cout + co) * d->kh + ky) * d->kw + kx];
                            }
                        }
                    din[((size_t)ci * d->h + iy) * d->w + ix] += (float)acc;
                }
    if (dw)
        for (int ci = 0; ci < d->cin; ci++)
            for (int co = 0; co < d->cout; co++)
                for (int ky = 0; ky < d->kh; ky++)
                    for (int kx = 0; kx < d->kw; kx++) {
                        double acc = 0;
                        for (int iy = 0; iy < d->h; iy++) {
                            int oy = iy * s - p + ky;
                            if (oy < 0 || oy >= oh) continue;
                            for (int ix = 0; ix < d->w; ix++) {
                                int ox = ix * s - p + kx;
                                if (ox < 0 || ox >= ow) continue;
                                acc += (double)in[((size_t)ci * d->h + iy) * d->w + ix] *
                                       dout[((size_t)co * oh + oy) * ow + ox];
                            }
                        }
                        dw[(((size_t)ci * d->cout + co) * d->kh + ky) * d->kw + kx] += (float)acc;
                    }
    if (db)
        for (int co = 0; co < d->cout; co++) {
            double acc = 0;
            for (size_t i = 0; i < (size_t)oh * ow; i++) acc += dout[(size_t)co * oh * ow + i];
            db[co] += (float)acc;
        }
}

void gram_forward_ref(float *g, const float *x, int c, int hw) {
    for (int i = 0; i < c; i++)
        for (int j = 0; j < c; j++) {
            double acc = 0;
            for (int p = 0; p < hw; p++) acc += (double)x[(size_t)i * hw + p] * x[(size_t)j * hw + p];
            g[(size_t)i * c + j] = (float)(acc / ((double)c * hw));
        }
}
