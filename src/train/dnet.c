/* dnet.c: the CartoonGAN discriminator (the paper's, as doc/training-engine.md lists it),
 * forward keeping what the backward needs and backward to its input and, when asked, its
 * parameters. Every 3x3 convolution is zero-padded by 1; norm is batch norm (statistics
 * over the batch, as the seed project's D; in data-parallel training over every
 * process's batch) or instance norm, eps 1e-5. */
#include <math.h>
#include <string.h>

#include "nn/train_ops.h"
#include "train/nets.h"

const tensor_info d_tensors[D_NUM_TENSORS] = {
    {"conv01.weight", 4, {32, 3, 3, 3}},     {"conv01.bias", 1, {32}},
    {"conv02_1.weight", 4, {64, 32, 3, 3}},  {"conv02_1.bias", 1, {64}},
    {"conv02_2.weight", 4, {128, 64, 3, 3}}, {"conv02_2.bias", 1, {128}},
    {"norm02.weight", 1, {128}},             {"norm02.bias", 1, {128}},
    {"conv03_1.weight", 4, {128, 128, 3, 3}}, {"conv03_1.bias", 1, {128}},
    {"conv03_2.weight", 4, {256, 128, 3, 3}}, {"conv03_2.bias", 1, {256}},
    {"norm03.weight", 1, {256}},             {"norm03.bias", 1, {256}},
    {"conv04.weight", 4, {256, 256, 3, 3}},  {"conv04.bias", 1, {256}},
    {"norm04.weight", 1, {256}},             {"norm04.bias", 1, {256}},
    {"conv05.weight", 4, {1, 256, 3, 3}},    {"conv05.bias", 1, {1}},
};

#define SLOPE 0.2f
#define EPS_D 1e-5f

void d_layers_point(d_layers *l, float *flat) {
    float *t[D_NUM_TENSORS];
    for (int i = 0; i < D_NUM_TENSORS; i++) {
        t[i] = flat;
        flat += tensor_info_count(&d_tensors[i]);
    }
    l->c01 = (conv_p){t[0], t[1]}, l->c02_1 = (conv_p){t[2], t[3]}, l->c02_2 = (conv_p){t[4], t[5]};
    l->n02 = (norm_p){t[6], t[7]};
    l->c03_1 = (conv_p){t[8], t[9]}, l->c03_2 = (conv_p){t[10], t[11]}, l->n03 = (norm_p){t[12], t[13]};
    l->c04 = (conv_p){t[14], t[15]}, l->n04 = (norm_p){t[16], t[17]}, l->c05 = (conv_p){t[18], t[19]};
}

void d_acts_layout(d_acts *a, arena *ar, int n, int h, int w, int norm) {
    const size_t p1 = (size_t)n * h * w, p2 = p1 / 4, p3 = p1 / 16;
    a->n = n, a->h = h, a->w = w, a->norm = norm;
    a->x = NULL;
    a->a1 = arena_take(ar, 32 * p1);
    a->a21 = arena_take(ar, 64 * p2), a->c22 = arena_take(ar, 128 * p2), a->a22 = arena_take(ar, 128 * p2);
    a->a31 = arena_take(ar, 128 * p3), a->c32 = arena_take(ar, 256 * p3), a->a32 = arena_take(ar, 256 * p3);
    a->c4 = arena_take(ar, 256 * p3), a->a4 = arena_take(ar, 256 * p3);
    for (int i = 0; i < 3; i++) a->mean[i] = arena_take(ar, (size_t)n * 256), a->rstd[i] = arena_take(ar, (size_t)n * 256);
    a->out = arena_take(ar, p3);
    for (int i = 0; i < 2; i++) a->g[i] = arena_take(ar, 32 * p1 > 128 * p2 ? 32 * p1 : 128 * p2);
}

static conv_dims k3(int cin, int h, int w, int cout, int stride) {
    return (conv_dims){cin, h, w, cout, 3, 3, stride, 1};
}

/* ---- batch norm across processes (data-parallel training, cg_trainer_set_comm) ----
 * A channel's statistics cover every process's images: each pass's per-channel sums (in
 * double, over this process's n x hw values) are summed across the processes in one call
 * for all channels. The formulas are train_ops.c's batch norm's (variance about the exact
 * mean in a second pass; the backward's sums about the saved float mean, whose rounding
 * error they recover), so K processes of batch n compute what one of batch K n computes,
 * to rounding. Three calls per norm layer and D pass: two forward, one backward. */

#define D_MAX_C 256 /* D's widest norm layer */

typedef struct {
    float *out, *din, *mean_out, *rstd_out;
    const float *in, *dout, *scale, *shift, *mean, *rstd;
    double *s; /* [3][D_MAX_C] per-channel sums */
    int n, c, hw;
    double count; /* values per channel over all processes */
    float eps;
} sbn_job;

/* Sums `n` doubles across the processes; a failure is recorded, and once one has failed
 * no more are attempted (the step fails as a whole). */
static void comm_sum(const net_ctx *cx, double *v, size_t n) {
    if (*cx->comm_failed) return;
    if (cx->comm->sum_doubles(cx->comm->user, v, n) != 0) *cx->comm_failed = 1;
}

static void sbn_mean_task(void *ctx, int ch, int nt) {
    (void)nt;
    sbn_job *j = ctx;
    double acc = 0;
    for (int i = 0; i < j->n; i++) {
        const float *x = j->in + ((size_t)i * j->c + ch) * j->hw;
        for (int k = 0; k < j->hw; k++) acc += x[k];
    }
    j->s[ch] = acc;
}

static void sbn_var_task(void *ctx, int ch, int nt) {
    (void)nt;
    sbn_job *j = ctx;
    const double m = j->s[ch] / j->count;
    double acc = 0;
    for (int i = 0; i < j->n; i++) {
        const float *x = j->in + ((size_t)i * j->c + ch) * j->hw;
        for (int k = 0; k < j->hw; k++) acc += (x[k] - m) * (x[k] - m);
    }
    j->s[D_MAX_C + ch] = acc;
}

static void sbn_apply_task(void *ctx, int ch, int nt) {
    (void)nt;
    sbn_job *j = ctx;
    const double m = j->s[ch] / j->count, r = 1.0 / sqrt(j->s[D_MAX_C + ch] / j->count + j->eps);
    const double a = r * j->scale[ch];
    const float mf = (float)m, af = (float)a, c = (float)(j->shift[ch] - (m - mf) * a);
    for (int i = 0; i < j->n; i++) {
        size_t off = ((size_t)i * j->c + ch) * j->hw;
        for (int k = 0; k < j->hw; k++) j->out[off + k] = (j->in[off + k] - mf) * af + c;
    }
    j->mean_out[ch] = mf;
    j->rstd_out[ch] = (float)r;
}

static void sync_bn_forward(float *out, float *mean, float *rstd, const float *in, norm_p p, int n, int c, int hw,
                            const net_ctx *cx) {
    double s[3 * D_MAX_C];
    sbn_job j = {.out = out, .in = in, .scale = p.scale, .shift = p.shift, .mean_out = mean, .rstd_out = rstd, .s = s,
                 .n = n, .c = c, .hw = hw, .count = (double)cx->comm->processes * n * hw, .eps = EPS_D};
    cg_pool_run(cx->pool, sbn_mean_task, &j, c);
    comm_sum(cx, s, (size_t)c);
    cg_pool_run(cx->pool, sbn_var_task, &j, c);
    comm_sum(cx, s + D_MAX_C, (size_t)c);
    cg_pool_run(cx->pool, sbn_apply_task, &j, c);
}

/* The backward's sums per channel: dy, dy (x - mf) and x - mf. */
static void sbn_grad_sums_task(void *ctx, int ch, int nt) {
    (void)nt;
    sbn_job *j = ctx;
    const float mf = j->mean[ch];
    double sdy = 0, sdyc = 0, sxc = 0;
    for (int i = 0; i < j->n; i++) {
        size_t off = ((size_t)i * j->c + ch) * j->hw;
        for (int k = 0; k < j->hw; k++) {
            double d = (double)j->in[off + k] - mf;
            sdy += j->dout[off + k];
            sdyc += j->dout[off + k] * d;
            sxc += d;
        }
    }
    j->s[ch] = sdy, j->s[D_MAX_C + ch] = sdyc, j->s[2 * D_MAX_C + ch] = sxc;
}

static void sbn_din_task(void *ctx, int ch, int nt) {
    (void)nt;
    sbn_job *j = ctx;
    const double r = j->rstd[ch], sdy = j->s[ch], delta = j->s[2 * D_MAX_C + ch] / j->count;
    const double sdyx = (j->s[D_MAX_C + ch] - delta * sdy) * r;
    const double q = r * sdyx / j->count, u = sdy / j->count - q * delta;
    const float a = (float)((double)j->scale[ch] * r), mf = j->mean[ch], uf = (float)u, qf = (float)q;
    for (int i = 0; i < j->n; i++) {
        size_t off = ((size_t)i * j->c + ch) * j->hw;
        for (int k = 0; k < j->hw; k++)
            j->din[off + k] += a * (j->dout[off + k] - uf - qf * (j->in[off + k] - mf));
    }
}

/* din += dL/din with the statistics of all processes; the parameters' gradients get this
 * process's share only (sums of dy and dy xhat over its images): the trainer sums and
 * averages them across processes with the rest of D's gradients. */
static void sync_bn_backward(float *din, norm_p g, const float *dout, const float *in, const float *mean,
                             const float *rstd, const float *scale, int n, int c, int hw, const net_ctx *cx) {
    double s[3 * D_MAX_C], local[2 * D_MAX_C];
    sbn_job j = {.din = din, .in = in, .dout = dout, .scale = scale, .mean = mean, .rstd = rstd, .s = s,
                 .n = n, .c = c, .hw = hw, .count = (double)cx->comm->processes * n * hw};
    cg_pool_run(cx->pool, sbn_grad_sums_task, &j, c);
    memcpy(local, s, sizeof local);
    /* the three sums are laid out D_MAX_C apart: pack them for one call, then unpack */
    double packed[3 * D_MAX_C];
    for (int k = 0; k < 3; k++) memcpy(packed + (size_t)k * c, s + (size_t)k * D_MAX_C, (size_t)c * sizeof(double));
    comm_sum(cx, packed, (size_t)3 * c);
    for (int k = 0; k < 3; k++) memcpy(s + (size_t)k * D_MAX_C, packed + (size_t)k * c, (size_t)c * sizeof(double));
    for (int ch = 0; ch < c; ch++) {
        const double delta = s[2 * D_MAX_C + ch] / j.count; /* the global mean's offset from mf */
        if (g.scale) g.scale[ch] += (float)((local[D_MAX_C + ch] - delta * local[ch]) * rstd[ch]);
        if (g.shift) g.shift[ch] += (float)local[ch];
    }
    cg_pool_run(cx->pool, sbn_din_task, &j, c);
}

static void norm_fwd(const d_acts *a, int i, float *out, const float *in, norm_p p, int c, int hw,
                     const net_ctx *cx) {
    if (a->norm == D_NORM_BATCH && cx->comm)
        sync_bn_forward(out, a->mean[i], a->rstd[i], in, p, a->n, c, hw, cx);
    else if (a->norm == D_NORM_BATCH)
        batch_norm_train_forward(out, a->mean[i], a->rstd[i], in, p.scale, p.shift, a->n, c, hw, EPS_D, cx->pool);
    else
        instance_norm_train_forward(out, a->mean[i], a->rstd[i], in, p.scale, p.shift, a->n, c, hw, EPS_D, cx->pool);
}

static void norm_bwd(const d_acts *a, int i, float *din, norm_p g, const float *dout, const float *in, norm_p p,
                     int c, int hw, const net_ctx *cx) {
    if (a->norm == D_NORM_BATCH && cx->comm)
        sync_bn_backward(din, g, dout, in, a->mean[i], a->rstd[i], p.scale, a->n, c, hw, cx);
    else if (a->norm == D_NORM_BATCH)
        batch_norm_backward(din, g.scale, g.shift, dout, in, a->mean[i], a->rstd[i], p.scale, a->n, c, hw, cx->pool);
    else
        instance_norm_backward(din, g.scale, g.shift, dout, in, a->mean[i], a->rstd[i], p.scale, a->n, c, hw, cx->pool);
}

void d_forward(d_acts *a, const d_layers *p, const float *x, const net_ctx *c) {
    const int n = a->n, h = a->h, w = a->w, h2 = h / 2, w2 = w / 2, h3 = h / 4, w3 = w / 4;
    const size_t p1 = (size_t)n * h * w, p2 = p1 / 4, p3 = p1 / 16;
    conv_dims d;
    a->x = x;
    d = k3(3, h, w, 32, 1);
    conv2d_train_forward(a->a1, x, p->c01.w, p->c01.b, &d, n, c->ws, c->pool);
    leaky_relu_forward(a->a1, a->a1, 32 * p1, SLOPE);
    d = k3(32, h, w, 64, 2);
    conv2d_train_forward(a->a21, a->a1, p->c02_1.w, p->c02_1.b, &d, n, c->ws, c->pool);
    leaky_relu_forward(a->a21, a->a21, 64 * p2, SLOPE);
    d = k3(64, h2, w2, 128, 1);
    conv2d_train_forward(a->c22, a->a21, p->c02_2.w, p->c02_2.b, &d, n, c->ws, c->pool);
    norm_fwd(a, 0, a->a22, a->c22, p->n02, 128, h2 * w2, c);
    leaky_relu_forward(a->a22, a->a22, 128 * p2, SLOPE);
    d = k3(128, h2, w2, 128, 2);
    conv2d_train_forward(a->a31, a->a22, p->c03_1.w, p->c03_1.b, &d, n, c->ws, c->pool);
    leaky_relu_forward(a->a31, a->a31, 128 * p3, SLOPE);
    d = k3(128, h3, w3, 256, 1);
    conv2d_train_forward(a->c32, a->a31, p->c03_2.w, p->c03_2.b, &d, n, c->ws, c->pool);
    norm_fwd(a, 1, a->a32, a->c32, p->n03, 256, h3 * w3, c);
    leaky_relu_forward(a->a32, a->a32, 256 * p3, SLOPE);
    d = k3(256, h3, w3, 256, 1);
    conv2d_train_forward(a->c4, a->a32, p->c04.w, p->c04.b, &d, n, c->ws, c->pool);
    norm_fwd(a, 2, a->a4, a->c4, p->n04, 256, h3 * w3, c);
    leaky_relu_forward(a->a4, a->a4, 256 * p3, SLOPE);
    d = k3(256, h3, w3, 1, 1);
    conv2d_train_forward(a->out, a->a4, p->c05.w, p->c05.b, &d, n, c->ws, c->pool);
}

static float *zeroed(float *buf, size_t n) {
    memset(buf, 0, n * sizeof *buf);
    return buf;
}

/* The LeakyReLU's backward in place: g = dL/d(output) becomes dL/d(input). */
static void lrelu_mask(float *g, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(y[i] > 0.f)) g[i] *= SLOPE;
}

void d_backward(const d_acts *a, const d_layers *p, const d_layers *gr, float *dx, const float *dout,
                const net_ctx *c) {
    const int n = a->n, h = a->h, w = a->w, h2 = h / 2, w2 = w / 2, h3 = h / 4, w3 = w / 4;
    const size_t p1 = (size_t)n * h * w, p2 = p1 / 4, p3 = p1 / 16;
    float *A = a->g[0], *B = a->g[1];
    conv_dims d;
    /* gr NULL: the input gradient only (G's adversarial loss through the updated D) */
#define GW(l) (gr ? gr->l.w : NULL)
#define GB(l) (gr ? gr->l.b : NULL)
    d = k3(256, h3, w3, 1, 1);
    float *g = zeroed(A, 256 * p3);
    conv2d_backward(g, GW(c05), GB(c05), dout, a->a4, p->c05.w, &d, n, c->ws, c->pool);
    lrelu_mask(g, a->a4, 256 * p3);
    float *gn = zeroed(B, 256 * p3);
    norm_p none = {NULL, NULL}, sink = gr ? gr->n04 : none;
    norm_bwd(a, 2, gn, sink, g, a->c4, p->n04, 256, h3 * w3, c);
    d = k3(256, h3, w3, 256, 1);
    g = zeroed(A, 256 * p3);
    conv2d_backward(g, GW(c04), GB(c04), gn, a->a32, p->c04.w, &d, n, c->ws, c->pool);
    lrelu_mask(g, a->a32, 256 * p3);
    gn = zeroed(B, 256 * p3);
    sink = gr ? gr->n03 : none;
    norm_bwd(a, 1, gn, sink, g, a->c32, p->n03, 256, h3 * w3, c);
    d = k3(128, h3, w3, 256, 1);
    g = zeroed(A, 128 * p3);
    conv2d_backward(g, GW(c03_2), GB(c03_2), gn, a->a31, p->c03_2.w, &d, n, c->ws, c->pool);
    lrelu_mask(g, a->a31, 128 * p3);
    d = k3(128, h2, w2, 128, 2);
    gn = zeroed(B, 128 * p2);
    conv2d_backward(gn, GW(c03_1), GB(c03_1), g, a->a22, p->c03_1.w, &d, n, c->ws, c->pool);
    lrelu_mask(gn, a->a22, 128 * p2);
    g = zeroed(A, 128 * p2);
    sink = gr ? gr->n02 : none;
    norm_bwd(a, 0, g, sink, gn, a->c22, p->n02, 128, h2 * w2, c);
    d = k3(64, h2, w2, 128, 1);
    gn = zeroed(B, 64 * p2);
    conv2d_backward(gn, GW(c02_2), GB(c02_2), g, a->a21, p->c02_2.w, &d, n, c->ws, c->pool);
    lrelu_mask(gn, a->a21, 64 * p2);
    d = k3(32, h, w, 64, 2);
    g = zeroed(A, 32 * p1);
    conv2d_backward(g, GW(c02_1), GB(c02_1), gn, a->a1, p->c02_1.w, &d, n, c->ws, c->pool);
    lrelu_mask(g, a->a1, 32 * p1);
    d = k3(3, h, w, 32, 1);
    conv2d_backward(dx, GW(c01), GB(c01), g, a->x, p->c01.w, &d, n, c->ws, c->pool);
#undef GW
#undef GB
}
