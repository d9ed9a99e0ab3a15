/* vgg.c: VGG19's features up to conv4_4, before its ReLU (torchvision's features[0..25]),
 * frozen: the forward keeps the ReLU outputs, which are all the backward needs (no weight
 * gradients, so no convolution inputs), and the backward goes to the input only.
 *
 * The input comes in G's convention (BGR in [-1, 1]) and is converted to the
 * preprocessing the weights were trained with (doc/training-engine.md): torchvision's
 * (RGB, ImageNet mean and std on [0, 1]) or Keras's "caffe" (BGR, 0..255 minus the mean). */
#include <string.h>

#include "nn/train_ops.h"
#include "train/nets.h"

/* Max pools follow conv1_2, conv2_2 and conv3_4 (layers 1, 3, 7). */
static int pool_after(int l) { return l == 1 || l == 3 || l == 7; }

/* The side (divided by) of layer l's input: 1, 1, 2, 2, 4 x4, 8 x4. */
static int layer_div(int l) { return l < 2 ? 1 : l < 4 ? 2 : l < 8 ? 4 : 8; }

void vgg_acts_layout(vgg_acts *a, arena *ar, int n, int h, int w) {
    const size_t px = (size_t)n * h * w;
    a->n = n, a->h = h, a->w = w;
    a->pre = arena_take(ar, 3 * px);
    for (int l = 0; l < 11; l++) {
        int dv = layer_div(l);
        a->r[l] = arena_take(ar, (size_t)vgg_cout[l] * px / (dv * dv));
    }
    a->pool = arena_take(ar, 64 * px / 4);
    a->feat = arena_take(ar, 512 * px / 64);
    for (int i = 0; i < 2; i++) a->g[i] = arena_take(ar, 64 * px);
}

/* pre[c] = scale[c] * x[src[c]] + bias[c] */
typedef struct {
    int src[3];
    float scale[3], bias[3];
} prep_affine;

static prep_affine prep_of(vgg_prep p) {
    prep_affine a;
    if (p == VGG_PREP_TORCH) {
        /* RGB from BGR; v = (x + 1) / 2; (v - mean) / std: scale 0.5 / std, bias (0.5 - mean) / std */
        static const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
        for (int c = 0; c < 3; c++) {
            a.src[c] = 2 - c;
            a.scale[c] = (float)(0.5 / std[c]);
            a.bias[c] = (float)((0.5 - mean[c]) / std[c]);
        }
    } else {
        /* Keras caffe, BGR kept: (x + 1) / 2 * 255 - mean = 127.5 x + (127.5 - mean) */
        static const double mean[3] = {103.939, 116.779, 123.68};
        for (int c = 0; c < 3; c++) {
            a.src[c] = c;
            a.scale[c] = 127.5f;
            a.bias[c] = (float)(127.5 - mean[c]);
        }
    }
    return a;
}

void vgg_forward(vgg_acts *a, const vgg_weights *v, const float *x, const net_ctx *c) {
    const int n = a->n;
    const size_t plane = (size_t)a->h * a->w;
    prep_affine pa = prep_of(v->prep);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < 3; ch++) {
            const float *s = x + ((size_t)i * 3 + pa.src[ch]) * plane;
            float *o = a->pre + ((size_t)i * 3 + ch) * plane;
            for (size_t p = 0; p < plane; p++) o[p] = pa.scale[ch] * s[p] + pa.bias[ch];
        }
    const float *in = a->pre;
    for (int l = 0; l < VGG_LAYERS; l++) {
        int dv = layer_div(l), h = a->h / dv, w = a->w / dv;
        conv_dims d = {vgg_cin[l], h, w, vgg_cout[l], 3, 3, 1, 1};
        float *out = l < 11 ? a->r[l] : a->feat;
        conv2d_train_forward(out, in, v->w[l], v->b[l], &d, n, c->ws, c->pool);
        if (l == 11) break;
        relu_forward(out, out, (size_t)n * vgg_cout[l] * h * w);
        in = out;
        if (pool_after(l)) {
            maxpool2_forward(a->pool, out, n * vgg_cout[l], h, w, c->pool);
            in = a->pool;
        }
    }
}

static float *zeroed(float *buf, size_t n) {
    memset(buf, 0, n * sizeof *buf);
    return buf;
}

void vgg_backward(const vgg_acts *a, const vgg_weights *v, float *dx, const float *dfeat, const net_ctx *c) {
    const int n = a->n;
    float *A = a->g[0], *B = a->g[1];
    const float *dout = dfeat; /* the gradient at layer l's output (before its ReLU) */
    for (int l = VGG_LAYERS - 1; l >= 0; l--) {
        int dv = layer_div(l), h = a->h / dv, w = a->w / dv;
        conv_dims d = {vgg_cin[l], h, w, vgg_cout[l], 3, 3, 1, 1};
        float *din = zeroed(dout == A ? B : A, (size_t)n * vgg_cin[l] * h * w);
        conv2d_backward(din, NULL, NULL, dout, NULL, v->w[l], &d, n, c->ws, c->pool);
        if (l == 0) {
            dout = din;
            break;
        }
        /* din is the gradient at pool(r[l-1]) or r[l-1]; take it through the pool and ReLU */
        const int pl = l - 1, pdv = layer_div(pl), ph = a->h / pdv, pw = a->w / pdv;
        const size_t cnt = (size_t)n * vgg_cout[pl] * ph * pw;
        float *g = din;
        if (pool_after(pl)) {
            g = zeroed(din == A ? B : A, cnt);
            maxpool2_backward(g, din, a->r[pl], n * vgg_cout[pl], ph, pw, c->pool);
        }
        for (size_t i = 0; i < cnt; i++)
            if (!(a->r[pl][i] > 0.f)) g[i] = 0.f;
        dout = g;
    }
    /* through the preprocessing to G's convention */
    const size_t plane = (size_t)a->h * a->w;
    prep_affine pa = prep_of(v->prep);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < 3; ch++) {
            const float *g = dout + ((size_t)i * 3 + ch) * plane;
            float *o = dx + ((size_t)i * 3 + pa.src[ch]) * plane;
            for (size_t p = 0; p < plane; p++) o[p] += pa.scale[ch] * g[p];
        }
}
