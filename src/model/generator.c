/* generator.c: the CartoonGAN generator (Chen, Lai, Liu, CVPR 2018) as released by its
 * authors, written out layer by layer: no graph, no dispatch, just the calls in order.
 *
 * Note the padding, which is the original's and not the TensorFlow port's: reflection
 * around the 7x7 convolutions and inside the residual blocks, zeros everywhere else. */
#include "generator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "status.h"

const gen_tensor_info gen_tensors[GEN_NUM_TENSORS] = {
    {"conv01_1.bias", 1, {64}},
    {"conv01_1.weight", 4, {64, 3, 7, 7}},
    {"conv02_1.bias", 1, {128}},
    {"conv02_1.weight", 4, {128, 64, 3, 3}},
    {"conv02_2.bias", 1, {128}},
    {"conv02_2.weight", 4, {128, 128, 3, 3}},
    {"conv03_1.bias", 1, {256}},
    {"conv03_1.weight", 4, {256, 128, 3, 3}},
    {"conv03_2.bias", 1, {256}},
    {"conv03_2.weight", 4, {256, 256, 3, 3}},
    {"conv04_1.bias", 1, {256}},
    {"conv04_1.weight", 4, {256, 256, 3, 3}},
    {"conv04_2.bias", 1, {256}},
    {"conv04_2.weight", 4, {256, 256, 3, 3}},
    {"conv05_1.bias", 1, {256}},
    {"conv05_1.weight", 4, {256, 256, 3, 3}},
    {"conv05_2.bias", 1, {256}},
    {"conv05_2.weight", 4, {256, 256, 3, 3}},
    {"conv06_1.bias", 1, {256}},
    {"conv06_1.weight", 4, {256, 256, 3, 3}},
    {"conv06_2.bias", 1, {256}},
    {"conv06_2.weight", 4, {256, 256, 3, 3}},
    {"conv07_1.bias", 1, {256}},
    {"conv07_1.weight", 4, {256, 256, 3, 3}},
    {"conv07_2.bias", 1, {256}},
    {"conv07_2.weight", 4, {256, 256, 3, 3}},
    {"conv08_1.bias", 1, {256}},
    {"conv08_1.weight", 4, {256, 256, 3, 3}},
    {"conv08_2.bias", 1, {256}},
    {"conv08_2.weight", 4, {256, 256, 3, 3}},
    {"conv09_1.bias", 1, {256}},
    {"conv09_1.weight", 4, {256, 256, 3, 3}},
    {"conv09_2.bias", 1, {256}},
    {"conv09_2.weight", 4, {256, 256, 3, 3}},
    {"conv10_1.bias", 1, {256}},
    {"conv10_1.weight", 4, {256, 256, 3, 3}},
    {"conv10_2.bias", 1, {256}},
    {"conv10_2.weight", 4, {256, 256, 3, 3}},
    {"conv11_1.bias", 1, {256}},
    {"conv11_1.weight", 4, {256, 256, 3, 3}},
    {"conv11_2.bias", 1, {256}},
    {"conv11_2.weight", 4, {256, 256, 3, 3}},
    {"deconv01_1.bias", 1, {128}},
    {"deconv01_1.weight", 4, {256, 128, 3, 3}},
    {"deconv01_2.bias", 1, {128}},
    {"deconv01_2.weight", 4, {128, 128, 3, 3}},
    {"deconv02_1.bias", 1, {64}},
    {"deconv02_1.weight", 4, {128, 64, 3, 3}},
    {"deconv02_2.bias", 1, {64}},
    {"deconv02_2.weight", 4, {64, 64, 3, 3}},
    {"deconv03_1.bias", 1, {3}},
    {"deconv03_1.weight", 4, {3, 64, 7, 7}},
    {"in01_1.scale", 1, {64}},
    {"in01_1.shift", 1, {64}},
    {"in02_1.scale", 1, {128}},
    {"in02_1.shift", 1, {128}},
    {"in03_1.scale", 1, {256}},
    {"in03_1.shift", 1, {256}},
    {"in04_1.scale", 1, {256}},
    {"in04_1.shift", 1, {256}},
    {"in04_2.scale", 1, {256}},
    {"in04_2.shift", 1, {256}},
    {"in05_1.scale", 1, {256}},
    {"in05_1.shift", 1, {256}},
    {"in05_2.scale", 1, {256}},
    {"in05_2.shift", 1, {256}},
    {"in06_1.scale", 1, {256}},
    {"in06_1.shift", 1, {256}},
    {"in06_2.scale", 1, {256}},
    {"in06_2.shift", 1, {256}},
    {"in07_1.scale", 1, {256}},
    {"in07_1.shift", 1, {256}},
    {"in07_2.scale", 1, {256}},
    {"in07_2.shift", 1, {256}},
    {"in08_1.scale", 1, {256}},
    {"in08_1.shift", 1, {256}},
    {"in08_2.scale", 1, {256}},
    {"in08_2.shift", 1, {256}},
    {"in09_1.scale", 1, {256}},
    {"in09_1.shift", 1, {256}},
    {"in09_2.scale", 1, {256}},
    {"in09_2.shift", 1, {256}},
    {"in10_1.scale", 1, {256}},
    {"in10_1.shift", 1, {256}},
    {"in10_2.scale", 1, {256}},
    {"in10_2.shift", 1, {256}},
    {"in11_1.scale", 1, {256}},
    {"in11_1.shift", 1, {256}},
    {"in11_2.scale", 1, {256}},
    {"in11_2.shift", 1, {256}},
    {"in12_1.scale", 1, {128}},
    {"in12_1.shift", 1, {128}},
    {"in13_1.scale", 1, {64}},
    {"in13_1.shift", 1, {64}},
};

int gen_padded_side(int side) { return (side + 3) / 4 * 4; }
int gen_out_side(int side) { return 4 * ((side + 3) / 4); }

/* ---- where everything lives in the arena (sizes in floats) ---- */

typedef struct {
    int h1, w1; /* full resolution (the input) */
    int h2, w2; /* after the first stride-2 conv: ceil(h/2) */
    int h3, w3; /* after the second: the residual blocks' resolution */
    int h4, w4; /* after the first deconv: 2*h3 */
    int h5, w5; /* output: 4*h3 */
    size_t big, quarter, tmp, scratch;
} plan;

static size_t max2(size_t a, size_t b) { return a > b ? a : b; }

static plan make_plan(int h, int w, int threads) {
    plan p;
    p.h1 = h, p.w1 = w;
    p.h2 = (h + 1) / 2, p.w2 = (w + 1) / 2;
    p.h3 = (p.h2 + 1) / 2, p.w3 = (p.w2 + 1) / 2;
    p.h4 = 2 * p.h3, p.w4 = 2 * p.w3;
    p.h5 = 2 * p.h4, p.w5 = 2 * p.w4;
    /* Two ping-pong buffers hold the full-resolution tensors; the widest is the reflect-
     * padded input of the last 7x7 conv (64 channels, output size + 6). */
    p.big = max2(64 * (size_t)(p.h5 + 6) * (p.w5 + 6), 64 * (size_t)(h + 6) * (w + 6));
    p.big = max2(p.big, 128 * (size_t)p.h2 * p.w2);
    p.quarter = 256 * (size_t)(p.h3 + 2) * (p.w3 + 2);
    p.tmp = max2(128 * (size_t)p.h3 * p.w3, 64 * (size_t)p.h4 * p.w4);
    p.scratch = max2(conv_scratch_floats(threads), winograd_scratch_floats(threads, 256, 256));
    return p;
}

size_t generator_arena_bytes(int h, int w, int threads) {
    if (h < 1 || w < 1 || (size_t)h * w > 4 * (size_t)CG_MAX_NETWORK_PIXELS) return 0;
    plan p = make_plan(h, w, threads);
    return (2 * p.big + 3 * p.quarter + p.tmp + p.scratch) * sizeof(float);
}

/* ---- progress: the fraction of multiply-adds done so far ---- */

typedef struct {
    cg_progress_fn fn;
    void *user;
    double done, total;
    int cancelled;
} progress;

static double layer_macs(int cout, int cin, int k, int oh, int ow) {
    return (double)cout * cin * k * k * oh * ow;
}

static int step(progress *pr, double macs) {
    pr->done += macs;
    if (pr->fn && !pr->cancelled && pr->fn(pr->user, (float)(pr->done / pr->total)))
        pr->cancelled = 1;
    return pr->cancelled;
}

/* Multiply-adds of each stage, in the order generator_forward runs them. */
enum { NUM_STAGES = 14 };
static double stage_macs(const plan *p, double s[NUM_STAGES]) {
    s[0] = layer_macs(64, 3, 7, p->h1, p->w1);
    s[1] = layer_macs(128, 64, 3, p->h2, p->w2) + layer_macs(128, 128, 3, p->h2, p->w2);
    s[2] = layer_macs(256, 128, 3, p->h3, p->w3) + layer_macs(256, 256, 3, p->h3, p->w3);
    for (int r = 0; r < 8; r++) s[3 + r] = 2 * layer_macs(256, 256, 3, p->h3, p->w3);
    s[11] = layer_macs(128, 256, 3, p->h3, p->w3) + layer_macs(128, 128, 3, p->h4, p->w4);
    s[12] = layer_macs(64, 128, 3, p->h4, p->w4) + layer_macs(64, 64, 3, p->h5, p->w5);
    s[13] = layer_macs(3, 64, 7, p->h5, p->w5);
    double total = 0;
    for (int i = 0; i < NUM_STAGES; i++) total += s[i];
    return total;
}

double cg_stylize_macs(int width, int height) {
    if (width < 1 || height < 1) return 0;
    plan p = make_plan(gen_padded_side(height), gen_padded_side(width), 1);
    double s[NUM_STAGES];
    return stage_macs(&p, s);
}

/* ---- the network ---- */

/* One convolution of the model, by the method the model prepared it for. */
static void conv(float *out, const float *in, const struct cg_model *m, int c, const conv_dims *d,
                 float *scratch, cg_pool *pool) {
    if (m->direct[c]) conv2d_direct_forward(out, in, m->direct[c], m->conv_bias[c], d, pool);
    else if (m->wino[c]) conv3x3_winograd_forward(out, in, m->wino[c], m->conv_bias[c], d, scratch, pool);
    else conv2d_forward(out, in, &m->conv[c], m->conv_bias[c], d, scratch, pool);
}

cg_status generator_forward(float *out, const float *in, int h, int w, const struct cg_model *m,
                            void *arena, cg_pool *pool, cg_progress_fn progress_fn, void *user) {
    plan p = make_plan(h, w, cg_pool_threads(pool));
    float *A = arena, *B = A + p.big;
    float *x = B + p.big, *pad = x + p.quarter, *t = pad + p.quarter;
    float *tmp = t + p.quarter, *scratch = tmp + p.tmp;
    double macs[NUM_STAGES];
    progress pr = {progress_fn, user, 0, 0, 0};
    pr.total = stage_macs(&p, macs);
    const float eps = 1e-9f;

    /* Down: 7x7 on reflection, then two stride-2 stages. */
    pad_reflect_forward(B, in, 3, h, w, 3);
    conv_dims d = {3, h + 6, w + 6, 64, 7, 7, 1, 0};
    conv(A, B, m, C01_1, &d, scratch, pool);
    instance_norm_forward(A, A, m->norm_scale[N01_1], m->norm_shift[N01_1], NULL, 1, 64, h * w, eps, pool);
    if (step(&pr, macs[0])) return CG_ERR_CANCELLED;

    d = (conv_dims){64, h, w, 128, 3, 3, 2, 1};
    conv(B, A, m, C02_1, &d, scratch, pool);
    d = (conv_dims){128, p.h2, p.w2, 128, 3, 3, 1, 1};
    conv(A, B, m, C02_2, &d, scratch, pool);
    instance_norm_forward(A, A, m->norm_scale[N02_1], m->norm_shift[N02_1], NULL, 1, 128, p.h2 * p.w2, eps, pool);
    if (step(&pr, macs[1])) return CG_ERR_CANCELLED;

    d = (conv_dims){128, p.h2, p.w2, 256, 3, 3, 2, 1};
    conv(B, A, m, C03_1, &d, scratch, pool);
    d = (conv_dims){256, p.h3, p.w3, 256, 3, 3, 1, 1};
    conv(x, B, m, C03_2, &d, scratch, pool);
    const int q = p.h3 * p.w3;
    instance_norm_forward(x, x, m->norm_scale[N03_1], m->norm_shift[N03_1], NULL, 1, 256, q, eps, pool);
    if (step(&pr, macs[2])) return CG_ERR_CANCELLED;

    /* Eight residual blocks on reflection padding; no ReLU after the add. */
    d = (conv_dims){256, p.h3 + 2, p.w3 + 2, 256, 3, 3, 1, 0};
    for (int r = 0; r < 8; r++) {
        pad_reflect_forward(pad, x, 256, p.h3, p.w3, 1);
        conv(t, pad, m, C_RES + 2 * r, &d, scratch, pool);
        instance_norm_forward(t, t, m->norm_scale[N_RES + 2 * r], m->norm_shift[N_RES + 2 * r], NULL, 1, 256, q, eps, pool);
        pad_reflect_forward(pad, t, 256, p.h3, p.w3, 1);
        conv(t, pad, m, C_RES + 2 * r + 1, &d, scratch, pool);
        instance_norm_forward(x, t, m->norm_scale[N_RES + 2 * r + 1], m->norm_shift[N_RES + 2 * r + 1], x, 0, 256, q, eps, pool);
        if (step(&pr, macs[3 + r])) return CG_ERR_CANCELLED;
    }

    /* Up: two transposed-conv stages, then 7x7 on reflection and tanh. */
    deconv_dims dd = {256, p.h3, p.w3, 128, 3, 3, 2, 1, 1};
    deconv_s2_forward(A, tmp, x, &m->deconv[D01_1], m->deconv_bias[D01_1], &dd, scratch, pool);
    d = (conv_dims){128, p.h4, p.w4, 128, 3, 3, 1, 1};
    conv(B, A, m, C_DE01_2, &d, scratch, pool);
    instance_norm_forward(B, B, m->norm_scale[N12_1], m->norm_shift[N12_1], NULL, 1, 128, p.h4 * p.w4, eps, pool);
    if (step(&pr, macs[11])) return CG_ERR_CANCELLED;

    dd = (deconv_dims){128, p.h4, p.w4, 64, 3, 3, 2, 1, 1};
    deconv_s2_forward(A, tmp, B, &m->deconv[D02_1], m->deconv_bias[D02_1], &dd, scratch, pool);
    d = (conv_dims){64, p.h5, p.w5, 64, 3, 3, 1, 1};
    conv(B, A, m, C_DE02_2, &d, scratch, pool);
    instance_norm_forward(B, B, m->norm_scale[N13_1], m->norm_shift[N13_1], NULL, 1, 64, p.h5 * p.w5, eps, pool);
    if (step(&pr, macs[12])) return CG_ERR_CANCELLED;

    pad_reflect_forward(A, B, 64, p.h5, p.w5, 3);
    d = (conv_dims){64, p.h5 + 6, p.w5 + 6, 3, 7, 7, 1, 0};
    conv(out, A, m, C_DE03_1, &d, scratch, pool);
    tanh_forward(out, out, 3 * (size_t)p.h5 * p.w5);
    step(&pr, macs[13]);
    return pr.cancelled ? CG_ERR_CANCELLED : CG_OK;
}
