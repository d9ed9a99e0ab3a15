/* gnet.c: the generator for training: the released architecture (tools/cartoongan_torch.py,
 * src/model/generator.c) on a batch, written out layer by layer, forward keeping what the
 * backward needs and backward accumulating into the parameter gradients.
 *
 * Unlike inference, tensors are whole (training crops are small), and the reflect-padded
 * inputs of the 7x7 and residual convolutions are not kept: padding is a copy, so the
 * backward pads again into one scratch buffer rather than storing nine padded tensors. */
#include <stdio.h>
#include <string.h>

#include "model/generator.h"
#include "nn/train_ops.h"
#include "train/nets.h"

float *arena_take(arena *a, size_t n) {
    float *p = a->base ? a->base + a->used : NULL;
    a->used += (n + 15) & ~(size_t)15;
    return p;
}

/* gen_tensors is sorted by name: convs (bias, weight), deconvs, then the norms (scale,
 * shift); the pointers are found by name once, so the order is never assumed. */
static float *find(float *flat, const char *name) {
    size_t off = 0;
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        if (strcmp(gen_tensors[i].name, name) == 0) return flat + off;
        off += tensor_info_count(&gen_tensors[i]);
    }
    return NULL; /* not reached: every name below is in gen_tensors */
}

static conv_p conv_at(float *flat, const char *name) {
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn, sizeof bn, "%s.bias", name);
    return (conv_p){find(flat, wn), find(flat, bn)};
}

static norm_p norm_at(float *flat, const char *name) {
    char sn[64], hn[64];
    snprintf(sn, sizeof sn, "%s.scale", name);
    snprintf(hn, sizeof hn, "%s.shift", name);
    return (norm_p){find(flat, sn), find(flat, hn)};
}

void gen_layers_point(gen_layers *l, float *flat) {
    char a[32], b[32];
    l->c01_1 = conv_at(flat, "conv01_1");
    l->c02_1 = conv_at(flat, "conv02_1"), l->c02_2 = conv_at(flat, "conv02_2");
    l->c03_1 = conv_at(flat, "conv03_1"), l->c03_2 = conv_at(flat, "conv03_2");
    for (int i = 0; i < 8; i++) {
        snprintf(a, sizeof a, "conv%02d_1", i + 4), snprintf(b, sizeof b, "conv%02d_2", i + 4);
        l->res[i][0] = conv_at(flat, a), l->res[i][1] = conv_at(flat, b);
        snprintf(a, sizeof a, "in%02d_1", i + 4), snprintf(b, sizeof b, "in%02d_2", i + 4);
        l->nres[i][0] = norm_at(flat, a), l->nres[i][1] = norm_at(flat, b);
    }
    l->de01_1 = conv_at(flat, "deconv01_1"), l->de01_2 = conv_at(flat, "deconv01_2");
    l->de02_1 = conv_at(flat, "deconv02_1"), l->de02_2 = conv_at(flat, "deconv02_2");
    l->de03_1 = conv_at(flat, "deconv03_1");
    l->n01_1 = norm_at(flat, "in01_1"), l->n02_1 = norm_at(flat, "in02_1");
    l->n03_1 = norm_at(flat, "in03_1"), l->n12_1 = norm_at(flat, "in12_1");
    l->n13_1 = norm_at(flat, "in13_1");
}

/* The instance norms' slots in gen_acts.mean / rstd. */
enum { S01, S02, S03, S_RES /* 16: block b's first at S_RES + 2b */, S12 = S_RES + 16, S13 };

#define EPS_G 1e-9f /* the released model's instance norm */

void gen_acts_layout(gen_acts *a, arena *ar, int n, int h, int w) {
    const size_t full = (size_t)n * 64 * h * w, half = (size_t)n * 128 * (h / 2) * (w / 2),
                 quarter = (size_t)n * 256 * (h / 4) * (w / 4);
    a->n = n, a->h = h, a->w = w;
    a->c1 = arena_take(ar, full), a->a1 = arena_take(ar, full);
    a->c21 = arena_take(ar, half), a->c22 = arena_take(ar, half), a->a2 = arena_take(ar, half);
    a->c31 = arena_take(ar, quarter), a->c32 = arena_take(ar, quarter);
    for (int i = 0; i < 9; i++) a->x[i] = arena_take(ar, quarter);
    for (int b = 0; b < 8; b++)
        a->r1[b] = arena_take(ar, quarter), a->t[b] = arena_take(ar, quarter), a->r2[b] = arena_take(ar, quarter);
    a->d11 = arena_take(ar, half), a->d12 = arena_take(ar, half), a->a4 = arena_take(ar, half);
    a->d21 = arena_take(ar, full), a->d22 = arena_take(ar, full), a->a5 = arena_take(ar, full);
    a->y = arena_take(ar, (size_t)n * 3 * h * w);
    for (int i = 0; i < 21; i++) a->mean[i] = arena_take(ar, (size_t)n * 256), a->rstd[i] = arena_take(ar, (size_t)n * 256);
    /* the largest padded input: 64 channels at full size with a pad of 3 */
    size_t padded = (size_t)n * 64 * (h + 6) * (w + 6);
    a->pad = arena_take(ar, padded);
    for (int i = 0; i < 3; i++) a->g[i] = arena_take(ar, padded);
}

static void pad_reflect(float *out, const float *in, int nc, int h, int w, int pad) {
    pad_reflect_forward(out, in, nc, h, w, pad);
}

static conv_dims cdims(int cin, int h, int w, int cout, int k, int stride, int pad) {
    return (conv_dims){cin, h, w, cout, k, k, stride, pad};
}

/* conv, instance norm, ReLU: conv output into `c`, the normalised and rectified into `a`. */
static void conv_in_relu(float *c_out, float *a_out, float *mean, float *rstd, const float *in,
                         conv_p cv, norm_p nm, const conv_dims *d, int n, const net_ctx *c) {
    conv2d_train_forward(c_out, in, cv.w, cv.b, d, n, c->ws, c->pool);
    int hw = conv_out_h(d) * conv_out_w(d);
    instance_norm_train_forward(a_out, mean, rstd, c_out, nm.scale, nm.shift, n, d->cout, hw, EPS_G, c->pool);
    relu_forward(a_out, a_out, (size_t)n * d->cout * hw);
}

void gen_forward(gen_acts *a, const gen_layers *p, const float *x, const net_ctx *c) {
    const int n = a->n, h = a->h, w = a->w, h2 = h / 2, w2 = w / 2, h3 = h / 4, w3 = w / 4;
    const size_t quarter = (size_t)n * 256 * h3 * w3;
    conv_dims d;
    /* down: 7x7 on the reflect-padded input, then two stride-2 stages */
    pad_reflect(a->pad, x, n * 3, h, w, 3);
    d = cdims(3, h + 6, w + 6, 64, 7, 1, 0);
    conv_in_relu(a->c1, a->a1, a->mean[S01], a->rstd[S01], a->pad, p->c01_1, p->n01_1, &d, n, c);
    d = cdims(64, h, w, 128, 3, 2, 1);
    conv2d_train_forward(a->c21, a->a1, p->c02_1.w, p->c02_1.b, &d, n, c->ws, c->pool);
    d = cdims(128, h2, w2, 128, 3, 1, 1);
    conv_in_relu(a->c22, a->a2, a->mean[S02], a->rstd[S02], a->c21, p->c02_2, p->n02_1, &d, n, c);
    d = cdims(128, h2, w2, 256, 3, 2, 1);
    conv2d_train_forward(a->c31, a->a2, p->c03_1.w, p->c03_1.b, &d, n, c->ws, c->pool);
    d = cdims(256, h3, w3, 256, 3, 1, 1);
    conv_in_relu(a->c32, a->x[0], a->mean[S03], a->rstd[S03], a->c31, p->c03_2, p->n03_1, &d, n, c);
    /* eight residual blocks: x + IN(conv(pad(relu(IN(conv(pad(x))))))) */
    d = cdims(256, h3 + 2, w3 + 2, 256, 3, 1, 0);
    for (int b = 0; b < 8; b++) {
        int s = S_RES + 2 * b;
        pad_reflect(a->pad, a->x[b], n * 256, h3, w3, 1);
        conv_in_relu(a->r1[b], a->t[b], a->mean[s], a->rstd[s], a->pad, p->res[b][0], p->nres[b][0], &d, n, c);
        pad_reflect(a->pad, a->t[b], n * 256, h3, w3, 1);
        conv2d_train_forward(a->r2[b], a->pad, p->res[b][1].w, p->res[b][1].b, &d, n, c->ws, c->pool);
        instance_norm_train_forward(a->x[b + 1], a->mean[s + 1], a->rstd[s + 1], a->r2[b], p->nres[b][1].scale,
                                    p->nres[b][1].shift, n, 256, h3 * w3, EPS_G, c->pool);
        accumulate(a->x[b + 1], a->x[b], quarter);
    }
    /* up: two transposed convolutions, each followed by a 3x3, then the 7x7 and tanh */
    deconv_dims dd = {256, h3, w3, 128, 3, 3, 2, 1, 1};
    deconv2d_train_forward(a->d11, a->x[8], p->de01_1.w, p->de01_1.b, &dd, n, c->ws, c->pool);
    d = cdims(128, h2, w2, 128, 3, 1, 1);
    conv_in_relu(a->d12, a->a4, a->mean[S12], a->rstd[S12], a->d11, p->de01_2, p->n12_1, &d, n, c);
    dd = (deconv_dims){128, h2, w2, 64, 3, 3, 2, 1, 1};
    deconv2d_train_forward(a->d21, a->a4, p->de02_1.w, p->de02_1.b, &dd, n, c->ws, c->pool);
    d = cdims(64, h, w, 64, 3, 1, 1);
    conv_in_relu(a->d22, a->a5, a->mean[S13], a->rstd[S13], a->d21, p->de02_2, p->n13_1, &d, n, c);
    pad_reflect(a->pad, a->a5, n * 64, h, w, 3);
    d = cdims(64, h + 6, w + 6, 3, 7, 1, 0);
    conv2d_train_forward(a->y, a->pad, p->de03_1.w, p->de03_1.b, &d, n, c->ws, c->pool);
    tanh_forward(a->y, a->y, (size_t)n * 3 * h * w);
}

/* The three gradient buffers rotate: each step reads one and writes a zeroed other. */
static float *zeroed(float *buf, size_t n) {
    memset(buf, 0, n * sizeof *buf);
    return buf;
}

/* The ReLU's backward in place: g = dL/d(output) becomes dL/d(input), y its output. */
static void relu_mask(float *g, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(y[i] > 0.f)) g[i] = 0.f;
}

/* Backward of conv -> instance norm -> ReLU: `da` holds the gradient at the ReLU's output
 * and is reused, so the gradient at the conv's input comes back in the same buffer; `tmp`
 * is a second one. */
static float *back_conv_in_relu(float *da, float *tmp, const float *a_out, const float *c_out,
                                const float *mean, const float *rstd, const float *conv_in, conv_p cv,
                                conv_p gcv, norm_p nm, norm_p gnm, const conv_dims *d, int n,
                                const net_ctx *c) {
    const int hw = conv_out_h(d) * conv_out_w(d);
    const size_t cnt = (size_t)n * d->cout * hw;
    relu_mask(da, a_out, cnt);
    float *dc = zeroed(tmp, cnt);
    instance_norm_backward(dc, gnm.scale, gnm.shift, da, c_out, mean, rstd, nm.scale, n, d->cout, hw, c->pool);
    float *din = zeroed(da, (size_t)n * d->cin * d->h * d->w);
    conv2d_backward(din, gcv.w, gcv.b, dc, conv_in, cv.w, d, n, c->ws, c->pool);
    return din;
}

void gen_backward(const gen_acts *a, const gen_layers *p, const gen_layers *gr, const float *x,
                  const float *dy, const net_ctx *c) {
    const int n = a->n, h = a->h, w = a->w, h2 = h / 2, w2 = w / 2, h3 = h / 4, w3 = w / 4;
    const size_t full = (size_t)n * 64 * h * w, quarter = (size_t)n * 256 * h3 * w3;
    float *A = a->g[0], *B = a->g[1], *C = a->g[2];
    conv_dims d;
    /* tanh, then the 7x7 on the padded a5 */
    float *dout = zeroed(A, (size_t)n * 3 * h * w);
    tanh_backward(dout, dy, a->y, (size_t)n * 3 * h * w);
    pad_reflect(a->pad, a->a5, n * 64, h, w, 3);
    d = cdims(64, h + 6, w + 6, 3, 7, 1, 0);
    float *dpad = zeroed(B, (size_t)n * 64 * (h + 6) * (w + 6));
    conv2d_backward(dpad, gr->de03_1.w, gr->de03_1.b, dout, a->pad, p->de03_1.w, &d, n, c->ws, c->pool);
    float *da5 = zeroed(C, full);
    pad_reflect_backward(da5, dpad, n * 64, h, w, 3);
    /* deconv02_2 (3x3) and in13_1, then deconv02_1 */
    d = cdims(64, h, w, 64, 3, 1, 1);
    float *dd21 = back_conv_in_relu(da5, A, a->a5, a->d22, a->mean[S13], a->rstd[S13], a->d21, p->de02_2,
                                    gr->de02_2, p->n13_1, gr->n13_1, &d, n, c);
    deconv_dims dd = {128, h2, w2, 64, 3, 3, 2, 1, 1};
    float *da4 = zeroed(A, (size_t)n * 128 * h2 * w2);
    deconv2d_backward(da4, gr->de02_1.w, gr->de02_1.b, dd21, a->a4, p->de02_1.w, &dd, n, c->ws, c->pool);
    /* deconv01_2 and in12_1, then deconv01_1 */
    d = cdims(128, h2, w2, 128, 3, 1, 1);
    float *dd11 = back_conv_in_relu(da4, B, a->a4, a->d12, a->mean[S12], a->rstd[S12], a->d11, p->de01_2,
                                    gr->de01_2, p->n12_1, gr->n12_1, &d, n, c);
    dd = (deconv_dims){256, h3, w3, 128, 3, 3, 2, 1, 1};
    float *dx = zeroed(C, quarter); /* the running gradient at x[b] */
    deconv2d_backward(dx, gr->de01_1.w, gr->de01_1.b, dd11, a->x[8], p->de01_1.w, &dd, n, c->ws, c->pool);
    /* residual blocks, last first: dx[b] = dx[b + 1] + the branch's gradient */
    d = cdims(256, h3 + 2, w3 + 2, 256, 3, 1, 0);
    for (int b = 7; b >= 0; b--) {
        int s = S_RES + 2 * b;
        float *dr2 = zeroed(A, quarter);
        instance_norm_backward(dr2, gr->nres[b][1].scale, gr->nres[b][1].shift, dx, a->r2[b], a->mean[s + 1],
                               a->rstd[s + 1], p->nres[b][1].scale, n, 256, h3 * w3, c->pool);
        pad_reflect(a->pad, a->t[b], n * 256, h3, w3, 1);
        float *dtp = zeroed(B, (size_t)n * 256 * (h3 + 2) * (w3 + 2));
        conv2d_backward(dtp, gr->res[b][1].w, gr->res[b][1].b, dr2, a->pad, p->res[b][1].w, &d, n, c->ws, c->pool);
        float *dt = zeroed(A, quarter);
        pad_reflect_backward(dt, dtp, n * 256, h3, w3, 1);
        pad_reflect(a->pad, a->x[b], n * 256, h3, w3, 1);
        float *dxp = back_conv_in_relu(dt, B, a->t[b], a->r1[b], a->mean[s], a->rstd[s], a->pad, p->res[b][0],
                                       gr->res[b][0], p->nres[b][0], gr->nres[b][0], &d, n, c);
        pad_reflect_backward(dx, dxp, n * 256, h3, w3, 1);
    }
    /* conv03_2 and in03_1, conv03_1 (stride 2) */
    d = cdims(256, h3, w3, 256, 3, 1, 1);
    float *dc31 = back_conv_in_relu(dx, A, a->x[0], a->c32, a->mean[S03], a->rstd[S03], a->c31, p->c03_2,
                                    gr->c03_2, p->n03_1, gr->n03_1, &d, n, c);
    d = cdims(128, h2, w2, 256, 3, 2, 1);
    float *da2 = zeroed(A, (size_t)n * 128 * h2 * w2);
    conv2d_backward(da2, gr->c03_1.w, gr->c03_1.b, dc31, a->a2, p->c03_1.w, &d, n, c->ws, c->pool);
    /* conv02_2 and in02_1, conv02_1 (stride 2) */
    d = cdims(128, h2, w2, 128, 3, 1, 1);
    float *dc21 = back_conv_in_relu(da2, B, a->a2, a->c22, a->mean[S02], a->rstd[S02], a->c21, p->c02_2,
                                    gr->c02_2, p->n02_1, gr->n02_1, &d, n, c);
    d = cdims(64, h, w, 128, 3, 2, 1);
    float *da1 = zeroed(C, full);
    conv2d_backward(da1, gr->c02_1.w, gr->c02_1.b, dc21, a->a1, p->c02_1.w, &d, n, c->ws, c->pool);
    /* in01_1 and conv01_1 on the padded input: no input gradient needed */
    relu_mask(da1, a->a1, full);
    float *dc1 = zeroed(A, full);
    instance_norm_backward(dc1, gr->n01_1.scale, gr->n01_1.shift, da1, a->c1, a->mean[S01], a->rstd[S01],
                           p->n01_1.scale, n, 64, h * w, c->pool);
    pad_reflect(a->pad, x, n * 3, h, w, 3);
    d = cdims(3, h + 6, w + 6, 64, 7, 1, 0);
    conv2d_backward(NULL, gr->c01_1.w, gr->c01_1.b, dc1, a->pad, p->c01_1.w, &d, n, c->ws, c->pool);
}
