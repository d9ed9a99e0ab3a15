/* light.c: the seed project's light generator (issue 13), written out layer by layer like
 * generator.c: no graph, no dispatch, the calls in order.
 *
 * Its norm is global and scalar, so a normalised tensor is never written: each tensor is
 * stored raw as its producer made it, with its norm's map (and ReLU) attached per channel
 * (ops.h, chan_affine), and whatever reads it next (a GEMM's packing, a depthwise row, the
 * upsampling) applies the map on the way in. The statistics themselves are gathered by
 * the producing kernel while its output is in cache. So every tensor costs one write and
 * one read per consumer, and the norms no pass at all.
 *
 * A tensor is a list of channel planes (pointers), so splitting, concatenating and the
 * channel shuffle move pointers, not data: a shuffle unit's branch reads its half through
 * the pointers wherever the shuffles have put it, and writes its output over that half's
 * planes (the 1x1 convolutions run in place, each column block read before it is written),
 * so the units need one temporary of half the channels and no copies.
 *
 * The up stages' 1x1 convolution runs before the upsampling: both are linear, the
 * upsampling works on each channel alone with weights summing to one (so it keeps the
 * bias), so 1x1(up(x)) = up(1x1(x)) up to rounding, at a quarter of the multiply-adds. The
 * same goes for the first 1x1 (no bias) of the shuffle unit after it, on the upsampled
 * tensor's second half: it is folded into the up convolution's weights at load time
 * (W0 . W_up, in double), so one product gives the unit's passed-through half and its
 * branch's first layer, both at the low resolution. Only the first half is upsampled into
 * memory; the branch's depthwise convolution upsamples its input rows as it reads them
 * (after the statistics of the upsampled tensor are taken in a pass that writes nothing).
 *
 * The whole image runs at once (no bands: each norm needs the whole tensor first); the
 * arena's two regions A and B take turns as each stage's input and output:
 *   flat_conv1 -> A; down_conv1 -> B (its right branch's 1x1 in place in A);
 *   down_conv2 -> A (1x1 in place in B); residual blocks in A (temporary in B);
 *   up_conv1: its product -> B, upsampled and its unit -> A; up_conv2 likewise;
 *   final_conv from A in bands of rows through a buffer in B. */
#include "light.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gemm.h"
#include "nn/ops.h"
#include "status.h"

#define EPS 1e-3f
#define MAXC 384 /* the widest tensor: the residual blocks' */

/* ---- the model: converted and packed weights ---- */

typedef struct {
    packed_weights pw;
    const float *bias; /* NULL: none */
} lconv;

typedef struct {
    float gamma, beta;
} lnorm;

/* BasicShuffleUnitV2's branch: 1x1, IN, ReLU, depthwise, IN, 1x1, IN, ReLU. */
typedef struct {
    lconv l0, l5;    /* l0 unused in the up stages' units (folded into their lconv up) */
    const float *dw; /* [c][3][3] */
    lnorm n1, n4, n6;
} lbasic;

/* DownShuffleUnitV2: left depthwise s2, IN, 1x1; right 1x1, IN, ReLU, depthwise s2, IN,
 * 1x1; then IN (bn_act) and ReLU over both. */
typedef struct {
    const float *ldw, *rdw;
    lconv l2, r0, r5;
    lnorm ln1, rn1, rn4, bn;
} ldown;

struct light_model {
    float *params; /* LIGHT_NUM_PARAMS, light_tensors order, TensorFlow layouts */
    const float *tensor[LIGHT_NUM_TENSORS];
    float *packed; /* packed GEMM panels, depthwise and final weights */
    lconv flat;
    lnorm flat_n;
    ldown down[2];
    lbasic res[8];
    lconv up[2]; /* [W_up's first half; W0 . W_up's second half] (see the top) */
    lbasic upb[2];
    const float *final_w, *final_b; /* [3][96][5][5], [3] */
};

static int tensor_index(const char *name) {
    for (int i = 0; i < LIGHT_NUM_TENSORS; i++)
        if (strcmp(light_tensors[i].name, name) == 0) return i;
    return -1;
}

const float *light_model_params(const light_model *lm) { return lm->params; }

const float *light_model_tensor(const light_model *lm, const char *name) {
    int i = tensor_index(name);
    return i < 0 ? NULL : lm->tensor[i];
}

/* The builder walks every layer twice: first counting the packed floats, then (fill)
 * converting and packing into them. */
typedef struct {
    light_model *lm;
    int fill;
    size_t used;  /* floats of lm->packed taken so far */
    float *tmp;   /* a layer's weights in the engine's layout before packing */
    int missing;  /* a tensor was not found: a table out of step with this file */
} builder;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static const float *param(builder *b, const char *fmt, ...) {
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int i = tensor_index(name);
    if (i < 0) {
        b->missing = 1;
        return NULL;
    }
    return b->lm->tensor[i];
}

static float *take(builder *b, size_t n) {
    float *p = b->fill ? b->lm->packed + b->used : NULL;
    b->used += (n + 15) & ~(size_t)15;
    return p;
}

/* HWIO [k][k][cin][cout] -> OIHW [cout][cin][k][k], the order conv2d_forward_ref takes and
 * the GEMM's depth runs in (ci, ky, kx). */
static void hwio_to_oihw(float *dst, const float *src, int k, int cin, int cout) {
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    dst[(((size_t)co * cin + ci) * k + ky) * k + kx] = src[(((size_t)ky * k + kx) * cin + ci) * cout + co];
}

/* A convolution: the kernel prefix + kernel (HWIO) and, if bias is not NULL, its bias. */
static void conv_layer(builder *b, lconv *c, const char *prefix, const char *kernel, const char *bias, int k,
                       int cin, int cout) {
    float *panels = take(b, packed_weights_floats(cout, cin * k * k));
    const float *w = param(b, "%s%s", prefix, kernel);
    c->bias = bias ? param(b, "%s%s", prefix, bias) : NULL;
    if (!b->fill || !w) return;
    hwio_to_oihw(b->tmp, w, k, cin, cout);
    pack_weights_fp32(&c->pw, panels, b->tmp, cout, cin * k * k, gemm_arch_get());
}

/* A depthwise kernel, [3][3][c][1] -> [c][3][3]. */
static const float *dw_layer(builder *b, const char *prefix, const char *name, int c) {
    float *dst = take(b, (size_t)c * 9);
    const float *w = param(b, "%s%s", prefix, name);
    if (!b->fill || !w) return dst;
    for (int ch = 0; ch < c; ch++)
        for (int t = 0; t < 9; t++) dst[(size_t)ch * 9 + t] = w[(size_t)t * c + ch];
    return dst;
}

static lnorm norm_layer(builder *b, const char *prefix, const char *layer) {
    const float *g = param(b, "%s%s/gamma", prefix, layer), *be = param(b, "%s%s/beta", prefix, layer);
    return g && be ? (lnorm){g[0], be[0]} : (lnorm){1, 0};
}

/* A BasicShuffleUnitV2's branch (c channels); its first 1x1 packed unless it is folded. */
static void basic_layers(builder *b, lbasic *u, const char *p, int c, int pack_l0) {
    if (pack_l0) conv_layer(b, &u->l0, p, "/layer-0/kernel", NULL, 1, c, c);
    u->n1 = norm_layer(b, p, "/layer-1");
    u->dw = dw_layer(b, p, "/layer-3/depthwise_kernel", c);
    u->n4 = norm_layer(b, p, "/layer-4");
    conv_layer(b, &u->l5, p, "/layer-5/kernel", NULL, 1, c, c);
    u->n6 = norm_layer(b, p, "/layer-6");
}

/* up_conv i's 1x1 (cin -> cout, bias) with its unit's first 1x1 (W0, half -> half, no
 * bias) folded in: rows [0, half) are W_up's, rows [half, cout) W0 . W_up[half, cout) and
 * the bias W0 . b[half, cout), in double. */
static void up_layer(builder *b, int i) {
    const int cin = 384 >> i, cout = cin / 2, half = cout / 2;
    char p[64];
    snprintf(p, sizeof p, "up_conv%d/model/layer-1/model/layer-0/kernel", i + 1);
    const float *w0 = param(b, "%s", p); /* [1][1][half][half]: w0[j * half + o] */
    const float *wu = param(b, "up_conv%d/model/layer-0/kernel", i + 1); /* wu[ci * cout + co] */
    const float *bu = param(b, "up_conv%d/model/layer-0/bias", i + 1);
    lconv *c = &b->lm->up[i];
    float *panels = take(b, packed_weights_floats(cout, cin));
    float *bias = take(b, (size_t)cout);
    c->bias = bias;
    if (!b->fill || !w0 || !wu || !bu) return;
    for (int co = 0; co < half; co++) {
        for (int ci = 0; ci < cin; ci++) b->tmp[(size_t)co * cin + ci] = wu[(size_t)ci * cout + co];
        bias[co] = bu[co];
    }
    for (int o = 0; o < half; o++) {
        for (int ci = 0; ci < cin; ci++) {
            double acc = 0;
            for (int jj = 0; jj < half; jj++) acc += (double)w0[(size_t)jj * half + o] * wu[(size_t)ci * cout + half + jj];
            b->tmp[(size_t)(half + o) * cin + ci] = (float)acc;
        }
        double acc = 0;
        for (int jj = 0; jj < half; jj++) acc += (double)w0[(size_t)jj * half + o] * bu[half + jj];
        bias[half + o] = (float)acc;
    }
    pack_weights_fp32(&c->pw, panels, b->tmp, cout, cin, gemm_arch_get());
}

static void all_layers(builder *b) {
    light_model *lm = b->lm;
    char p[64];
    conv_layer(b, &lm->flat, "flat_conv1/model", "/layer-1/kernel", "/layer-1/bias", 5, 3, 96);
    lm->flat_n = norm_layer(b, "flat_conv1/model", "/layer-2");
    for (int i = 0; i < 2; i++) {
        ldown *d = &lm->down[i];
        const int c = 96 << i;
        snprintf(p, sizeof p, "down_conv%d", i + 1);
        d->ldw = dw_layer(b, p, "/l_model/layer-0/depthwise_kernel", c);
        d->ln1 = norm_layer(b, p, "/l_model/layer-1");
        conv_layer(b, &d->l2, p, "/l_model/layer-2/kernel", NULL, 1, c, c);
        conv_layer(b, &d->r0, p, "/r_model/layer-0/kernel", NULL, 1, c, c);
        d->rn1 = norm_layer(b, p, "/r_model/layer-1");
        d->rdw = dw_layer(b, p, "/r_model/layer-3/depthwise_kernel", c);
        d->rn4 = norm_layer(b, p, "/r_model/layer-4");
        conv_layer(b, &d->r5, p, "/r_model/layer-5/kernel", NULL, 1, c, c);
        d->bn = norm_layer(b, p, "/bn_act/layer-0");
    }
    for (int r = 0; r < 8; r++) {
        snprintf(p, sizeof p, "residual_blocks/layer-%d/model", r);
        basic_layers(b, &lm->res[r], p, 192, 1);
    }
    for (int i = 0; i < 2; i++) {
        up_layer(b, i);
        snprintf(p, sizeof p, "up_conv%d/model/layer-1/model", i + 1);
        basic_layers(b, &lm->upb[i], p, (192 >> i) / 2, 0);
    }
    float *fw = take(b, 3 * 96 * 25);
    const float *w = param(b, "final_conv/layer-1/kernel");
    lm->final_b = param(b, "final_conv/layer-1/bias");
    if (b->fill && w) hwio_to_oihw(fw, w, 5, 96, 3);
    lm->final_w = fw;
}

void light_model_free(light_model *lm) {
    if (!lm) return;
    free(lm->params);
    free(lm->packed);
    free(lm);
}

cg_status light_model_create(light_model **out, float *params) {
    *out = NULL;
    light_model *lm = calloc(1, sizeof *lm);
    if (!lm) {
        free(params);
        return cg_fail(CG_ERR_NOMEM, "out of memory for a light generator");
    }
    lm->params = params;
    const float *p = params;
    for (int i = 0; i < LIGHT_NUM_TENSORS; i++) {
        lm->tensor[i] = p;
        p += tensor_info_count(&light_tensors[i]);
    }
    builder b = {lm, 0, 0, NULL, 0};
    all_layers(&b);
    if (b.missing) {
        light_model_free(lm);
        return cg_fail(CG_ERR_WEIGHTS, "light generator: a layer's tensor is not in light_tensors");
    }
    lm->packed = malloc(b.used * sizeof(float));
    float *tmp = malloc((size_t)384 * 192 * sizeof(float)); /* the largest layer: up_conv1's 1x1 */
    if (!lm->packed || !tmp) {
        free(tmp);
        light_model_free(lm);
        return cg_fail(CG_ERR_NOMEM, "out of memory packing a light generator's weights");
    }
    b = (builder){lm, 1, 0, tmp, 0};
    all_layers(&b);
    free(tmp);
    *out = lm;
    return CG_OK;
}

/* ---- the plan: sizes and the arena ---- */

int light_out_side(int side) { return 4 * ((side + 3) / 4); }

typedef struct {
    int h1, w1, h2, w2, h3, w3, h4, w4, h5, w5;
    size_t p1, p2, p3, p4, p5; /* pixels at each resolution */
    int band;                  /* final_conv's rows per band */
    size_t a, b, band_in, cscratch, oscratch, npartial;
} lplan;

static size_t max2(size_t a, size_t b) { return a > b ? a : b; }
static size_t up16(size_t n) { return (n + 15) & ~(size_t)15; }
static int imin(int a, int b) { return a < b ? a : b; }

/* final_conv's band: about 8 MB of padded input, at least 8 rows (the direct
 * convolution's task) per thread, and at least 16. */
static int final_band(int h5, int w5, int threads) {
    int rows = (int)(((size_t)2 << 20) / (96 * ((size_t)w5 + 4))) / 8 * 8;
    if (rows < 8 * threads) rows = 8 * threads;
    if (rows < 16) rows = 16;
    return imin(rows, h5);
}

static lplan make_plan(int h, int w, int threads) {
    lplan p;
    p.h1 = h, p.w1 = w;
    p.h2 = (h + 1) / 2, p.w2 = (w + 1) / 2;
    p.h3 = (p.h2 + 1) / 2, p.w3 = (p.w2 + 1) / 2;
    p.h4 = 2 * p.h3, p.w4 = 2 * p.w3;
    p.h5 = 2 * p.h4, p.w5 = 2 * p.w4;
    p.p1 = (size_t)p.h1 * p.w1, p.p2 = (size_t)p.h2 * p.w2, p.p3 = (size_t)p.h3 * p.w3;
    p.p4 = (size_t)p.h4 * p.w4, p.p5 = (size_t)p.h5 * p.w5;
    p.band = final_band(p.h5, p.w5, threads);
    p.band_in = up16(96 * ((size_t)p.band + 4) * ((size_t)p.w5 + 4) + CONV_OUT3_SLACK);
    p.a = max2(max2(96 * p.p1, 384 * p.p3), max2(192 * p.p4, 96 * p.p5));
    p.b = max2(max2(192 * p.p2, 96 * p.p4), p.band_in + 3 * (size_t)p.band * p.w5);
    p.cscratch = conv_io_scratch_floats(threads);
    p.oscratch = light_ops_scratch_floats(p.w1 > p.w5 ? p.w1 : p.w5, threads);
    /* a moments slot per column block of the largest split among the sizes convolved */
    p.npartial = MAXC;
    const int sizes[5][2] = {{p.h1, p.w1}, {p.h2, p.w2}, {p.h3, p.w3}, {p.h4, p.w4}, {p.h5, p.w5}};
    for (int i = 0; i < 5; i++) {
        conv_dims d = {1, sizes[i][0], sizes[i][1], 1, 1, 1, 1, 0};
        p.npartial = max2(p.npartial, (size_t)conv_io_tasks(&d));
    }
    return p;
}

typedef struct {
    int c, h, w;
    float *plane[MAXC];
    chan_affine aff[MAXC];
} ltensor;

enum { NUM_TENSORS = 3 }; /* the stage's tensor, its output, and a shuffle's copy */

static size_t arena_floats(const lplan *p) {
    size_t tensors = up16(NUM_TENSORS * sizeof(ltensor) / sizeof(float) + 1);
    size_t affs = up16(MAXC * sizeof(chan_affine) / sizeof(float));
    size_t partial = up16(p->npartial * sizeof(moments) / sizeof(float));
    return up16(p->a) + up16(p->b) + up16(p->cscratch) + up16(p->oscratch) + partial + tensors + affs;
}

size_t light_arena_bytes(int h, int w, int threads) {
    if (h < 1 || w < 1 || (size_t)h * w > LIGHT_MAX_PIXELS) return 0;
    lplan p = make_plan(h, w, threads);
    return arena_floats(&p) * sizeof(float) + 64; /* + 64: aligning the start */
}

/* The multiply-adds of each stage, in the order they run: flat_conv1, the two down units,
 * the residual blocks, the two up stages, final_conv. */
enum { S_FLAT, S_DOWN1, S_DOWN2, S_RES, S_UP1, S_UP2, S_FINAL, NUM_STAGES };

static double basic_macs(double c, double p) { return (2 * c * c + 9 * c) * p; }

static double stage_macs(const lplan *p, double s[NUM_STAGES]) {
    s[S_FLAT] = 96.0 * 75 * p->p1;
    s[S_DOWN1] = 96.0 * 96 * p->p1 + (2 * 9 * 96.0 + 2 * 96.0 * 96) * p->p2;
    s[S_DOWN2] = 192.0 * 192 * p->p2 + (2 * 9 * 192.0 + 2 * 192.0 * 192) * p->p3;
    s[S_RES] = 8 * basic_macs(192, (double)p->p3);
    s[S_UP1] = 384.0 * 192 * p->p3 + (96.0 * 96 + 9 * 96) * p->p4; /* the unit's first 1x1 folded */
    s[S_UP2] = 192.0 * 96 * p->p4 + (48.0 * 48 + 9 * 48) * p->p5;
    s[S_FINAL] = 3.0 * 96 * 25 * p->p5;
    double total = 0;
    for (int i = 0; i < NUM_STAGES; i++) total += s[i];
    return total;
}

double light_macs(int h, int w) {
    if (h < 1 || w < 1) return 0;
    lplan p = make_plan(h, w, 1);
    double s[NUM_STAGES];
    return stage_macs(&p, s);
}

/* ---- the network ---- */

typedef struct {
    const lplan *p;
    const light_model *lm;
    cg_pool *pool;
    float *A, *B, *cscratch, *oscratch;
    moments *partial;
    ltensor *t[NUM_TENSORS];
    chan_affine *aff; /* MAXC maps, all the same: a norm's over one tensor */
    cg_progress_fn progress;
    void *user;
    double done, total;
    int cancelled;
} lrun;

/* Reports macs more done; non-zero once the callback asked to stop. */
static int step(lrun *r, double macs) {
    r->done += macs;
    if (r->progress && !r->cancelled && r->progress(r->user, (float)(r->done < r->total ? r->done / r->total : 1)))
        r->cancelled = 1;
    return r->cancelled;
}

static const chan_affine identity = {0.f, 1.f, 0.f, -INFINITY};

/* t = c contiguous planes of h x w at base, read as stored. */
static void contiguous(ltensor *t, float *base, int c, int h, int w) {
    t->c = c, t->h = h, t->w = w;
    for (int ch = 0; ch < c; ch++) {
        t->plane[ch] = base + (size_t)ch * h * w;
        t->aff[ch] = identity;
    }
}

/* The shared map array, every channel read as `a`. */
static const chan_affine *uniform(lrun *r, chan_affine a, int c) {
    for (int ch = 0; ch < c; ch++) r->aff[ch] = a;
    return r->aff;
}

/* t = shuffle(t), through r's spare tensor: out[2j + g] = in[g c/2 + j]. */
static void shuffle(lrun *r, ltensor *t) {
    ltensor *s = r->t[2];
    const int half = t->c / 2;
    memcpy(s->plane, t->plane, (size_t)t->c * sizeof *t->plane);
    memcpy(s->aff, t->aff, (size_t)t->c * sizeof *t->aff);
    for (int g = 0; g < 2; g++)
        for (int j = 0; j < half; j++) {
            t->plane[2 * j + g] = s->plane[g * half + j];
            t->aff[2 * j + g] = s->aff[g * half + j];
        }
}

/* A 1x1 convolution (no padding) from c planes of `in` (read through in_aff) to the
 * planes `out` (which may be in's: in place), with the output's moments when st. */
static void conv1x1(lrun *r, float *const *out, float *const *in, const chan_affine *in_aff, const lconv *c,
                    int cin, int cout, int h, int w, moments *st) {
    conv_io io = {(const float *const *)in, in_aff, out, st, r->partial};
    conv_dims d = {cin, h, w, cout, 1, 1, 1, 0};
    conv2d_forward_io(&io, &c->pw, c->bias, &d, r->cscratch, r->pool);
}

static void depthwise(lrun *r, float *const *out, float *const *in, const chan_affine *in_aff, const float *w,
                      int c, int h, int wd, int stride, moments *st) {
    dw_dims d = {c, h, wd, stride, 0};
    dwconv3x3_forward(out, (const float *const *)in, in_aff, w, &d, st, r->partial, r->oscratch, r->pool);
}

static chan_affine norm_map(const moments *m, lnorm n, int relu) {
    return global_norm_affine(m, n.gamma, n.beta, EPS, relu);
}

/* flat_conv1: x (3 planes of the input) -> t0 (96 planes in A), its norm and ReLU
 * pending. */
static int flat(lrun *r, const float *in) {
    const lplan *p = r->p;
    ltensor *x = r->t[1], *y = r->t[0];
    contiguous(x, (float *)in, 3, p->h1, p->w1);
    contiguous(y, r->A, 96, p->h1, p->w1);
    moments st;
    conv_io io = {(const float *const *)x->plane, NULL, y->plane, &st, r->partial};
    conv_dims d = {3, p->h1, p->w1, 96, 5, 5, 1, 2};
    conv2d_forward_io(&io, &r->lm->flat.pw, r->lm->flat.bias, &d, r->cscratch, r->pool);
    chan_affine a = norm_map(&st, r->lm->flat_n, 1);
    for (int ch = 0; ch < 96; ch++) y->aff[ch] = a;
    return step(r, 96.0 * 75 * p->p1);
}

/* DownShuffleUnitV2 on t0 (c channels, h x w) -> t0 = shuffle(relu(bn([left, right])))
 * (2c channels, ceil(h/2) x ceil(w/2)) in the 2c planes at `out`. The left branch's
 * depthwise reads x first; then the right branch's 1x1 overwrites x's planes. */
static int down(lrun *r, const ldown *u, float *out) {
    ltensor *x = r->t[0], *q = r->t[1];
    const int c = x->c, h = x->h, w = x->w, oh = (h + 1) / 2, ow = (w + 1) / 2;
    const double pin = (double)h * w, pout = (double)oh * ow;
    contiguous(q, out, 2 * c, oh, ow);
    moments sl, sr, s4, sa, sb;
    depthwise(r, q->plane, x->plane, x->aff, u->ldw, c, h, w, 2, &sl);
    chan_affine la = norm_map(&sl, u->ln1, 0);
    if (step(r, 9.0 * c * pout)) return 1;
    conv1x1(r, x->plane, x->plane, x->aff, &u->r0, c, c, h, w, &sr);
    if (step(r, (double)c * c * pin)) return 1;
    depthwise(r, q->plane + c, x->plane, uniform(r, norm_map(&sr, u->rn1, 1), c), u->rdw, c, h, w, 2, &s4);
    if (step(r, 9.0 * c * pout)) return 1;
    conv1x1(r, q->plane, q->plane, uniform(r, la, c), &u->l2, c, c, oh, ow, &sa);
    if (step(r, (double)c * c * pout)) return 1;
    conv1x1(r, q->plane + c, q->plane + c, uniform(r, norm_map(&s4, u->rn4, 0), c), &u->r5, c, c, oh, ow, &sb);
    moments_merge(&sa, &sb);
    chan_affine a = norm_map(&sa, u->bn, 1);
    for (int ch = 0; ch < 2 * c; ch++) q->aff[ch] = a;
    shuffle(r, q);
    ltensor *t = r->t[0];
    r->t[0] = q, r->t[1] = t;
    return step(r, (double)c * c * pout);
}

/* BasicShuffleUnitV2 on t0 (c channels): its second half xr goes through the branch,
 * written back over xr's planes, then t0 = shuffle([xl, branch]). The depthwise output
 * goes to `tmp` (c/2 planes). */
static int basic(lrun *r, const lbasic *u, float *tmp) {
    ltensor *x = r->t[0], *t = r->t[1];
    const int half = x->c / 2, h = x->h, w = x->w;
    const double px = (double)h * w;
    float *const *xr = x->plane + half;
    moments s1, s2, s3;
    conv1x1(r, xr, xr, x->aff + half, &u->l0, half, half, h, w, &s1);
    if (step(r, (double)half * half * px)) return 1;
    contiguous(t, tmp, half, h, w);
    depthwise(r, t->plane, xr, uniform(r, norm_map(&s1, u->n1, 1), half), u->dw, half, h, w, 1, &s2);
    if (step(r, 9.0 * half * px)) return 1;
    conv1x1(r, xr, t->plane, uniform(r, norm_map(&s2, u->n4, 0), half), &u->l5, half, half, h, w, &s3);
    chan_affine a = norm_map(&s3, u->n6, 1);
    for (int ch = half; ch < x->c; ch++) x->aff[ch] = a;
    shuffle(r, x);
    return step(r, (double)half * half * px);
}

/* up_conv i on t0 (cin channels, h x w), with its BasicShuffleUnitV2 (see the top): one
 * product into z (cout planes at h x w in B): the unit's first half xl and its branch's
 * first 1x1 t. xl is upsampled into the first half of `out` (cout planes at 2h x 2w); the
 * depthwise convolution reads t upsampled, through its norm, into the second half, where
 * the branch's last 1x1 then runs in place. t0 = shuffle([xl, branch]). */
static int up(lrun *r, int i, float *z, float *out) {
    ltensor *x = r->t[0], *zt = r->t[1];
    const lbasic *u = &r->lm->upb[i];
    const int cin = x->c, cout = cin / 2, half = cout / 2, h = x->h, w = x->w;
    const double px = 4.0 * h * w;
    contiguous(zt, z, cout, h, w);
    conv1x1(r, zt->plane, x->plane, x->aff, &r->lm->up[i], cin, cout, h, w, NULL);
    if (step(r, (double)cin * cout * h * w)) return 1;
    contiguous(x, out, cout, 2 * h, 2 * w);
    float *const *br = x->plane + half;
    upsample2_bilinear_forward(x->plane, (const float *const *)zt->plane, NULL, half, h, w, r->oscratch, r->pool);
    moments s1, s2, s3;
    upsample2_moments(&s1, (const float *const *)zt->plane + half, half, h, w, r->partial, r->oscratch, r->pool);
    if (step(r, 0)) return 1;
    dw_dims d = {half, 2 * h, 2 * w, 1, 1};
    dwconv3x3_forward(br, (const float *const *)zt->plane + half, uniform(r, norm_map(&s1, u->n1, 1), half), u->dw,
                      &d, &s2, r->partial, r->oscratch, r->pool);
    if (step(r, 9.0 * half * px)) return 1;
    conv1x1(r, br, br, uniform(r, norm_map(&s2, u->n4, 0), half), &u->l5, half, half, 2 * h, 2 * w, &s3);
    chan_affine a = norm_map(&s3, u->n6, 1);
    for (int ch = half; ch < cout; ch++) x->aff[ch] = a;
    shuffle(r, x);
    return step(r, (double)half * half * px);
}

/* final_conv in bands of rows: each band's zero-padded, mapped input [96][rows + 4][w + 4]
 * and the direct 5x5 convolution's output [3][rows][w] in B, then tanh into out. */
typedef struct {
    float *out;
    const float *band;
    int h, w, y0, rows;
} tanh_job;

static void tanh_task(void *ctx, int i, int n) {
    (void)n;
    const tanh_job *j = ctx;
    const int ch = i / j->rows, row = i % j->rows;
    const float *s = j->band + ((size_t)ch * j->rows + row) * j->w;
    float *d = j->out + ((size_t)ch * j->h + j->y0 + row) * j->w;
    for (int k = 0; k < j->w; k++) d[k] = tanhf(s[k]);
}

static int final(lrun *r, float *out) {
    const lplan *p = r->p;
    const ltensor *x = r->t[0];
    float *in = r->B, *band = r->B + p->band_in;
    for (int y0 = 0; y0 < p->h5; y0 += p->band) {
        const int rows = imin(p->band, p->h5 - y0);
        planes_pad_band(in, (const float *const *)x->plane, x->aff, 96, x->h, x->w, y0, rows, 2, r->pool);
        conv_dims d = {96, rows + 4, p->w5 + 4, 3, 5, 5, 1, 0};
        conv_out3_forward(band, in, r->lm->final_w, r->lm->final_b, &d, r->pool);
        tanh_job t = {out, band, p->h5, p->w5, y0, rows};
        cg_pool_run(r->pool, tanh_task, &t, 3 * rows);
        if (step(r, 3.0 * 96 * 25 * rows * p->w5)) return 1;
    }
    return 0;
}

static float *align64(void *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

cg_status light_forward(float *out, const float *in, int h, int w, const light_model *lm, void *arena,
                        cg_pool *pool, cg_progress_fn progress, void *user) {
    lplan p = make_plan(h, w, cg_pool_threads(pool));
    lrun r = {0};
    r.p = &p, r.lm = lm, r.pool = pool, r.progress = progress, r.user = user;
    float *a = align64(arena);
    r.A = a, a += up16(p.a);
    r.B = a, a += up16(p.b);
    r.cscratch = a, a += up16(p.cscratch);
    r.oscratch = a, a += up16(p.oscratch);
    r.partial = (moments *)a, a += up16(p.npartial * sizeof(moments) / sizeof(float));
    for (int i = 0; i < NUM_TENSORS; i++) r.t[i] = (ltensor *)a + i;
    a += up16(NUM_TENSORS * sizeof(ltensor) / sizeof(float) + 1);
    r.aff = (chan_affine *)a;
    double s[NUM_STAGES];
    r.total = stage_macs(&p, s);

    if (flat(&r, in) || down(&r, &lm->down[0], r.B) || down(&r, &lm->down[1], r.A)) return CG_ERR_CANCELLED;
    for (int i = 0; i < 8; i++)
        if (basic(&r, &lm->res[i], r.B)) return CG_ERR_CANCELLED;
    if (up(&r, 0, r.B, r.A) || up(&r, 1, r.B, r.A) || final(&r, out)) return CG_ERR_CANCELLED;
    return CG_OK;
}
