/* test_grad_conv.c: the convolutions of training (conv_train.c, conv_train_ref.c).
 *
 * 1. The references' backward passes against central finite differences of the forward
 *    references (ops_ref.c), on small odd shapes: stride-2 borders, pads 0-3, 7x7, 1x1.
 * 2. Every fast path, forward and backward, against the references, with a batch of 2 on
 *    a pool of 2 threads, for every micro-kernel this CPU has; din, dw and db start from
 *    random values, so accumulation is checked too, and the workspace is filled with NaN
 *    (a read of a value never written shows) and followed by a canary (a write past the
 *    size conv_train_ws_floats promised shows).
 * 3. gemm_strided against a naive triple loop: transposed and padded strides, sizes that
 *    are not multiples of MR, NR or the blocking, the depth split, accumulate 0 and 1.
 * 4. The Gram matrix against its reference and its backward against finite differences.
 * 5. That the checks can fail: a wrong flip of the kernel, and a wrong gradient, are
 *    rejected by the same comparisons with a wide margin. */
#include <math.h>

#include "nn/gemm.h"
#include "nn/pool.h"
#include "nn/train_ops.h"
#include "test.h"

static unsigned rng = 2024;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) / 16777216.0 * 2.0 - 1.0);
}
static float *rand_buf(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}
static float *copy_buf(const float *src, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    memcpy(p, src, n * sizeof *p);
    return p;
}

/* max |a - b| / scale, NaN counting as infinite. */
static double max_err(const float *a, const float *b, size_t n, double scale) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / scale;
        if (e != e) return INFINITY;
        if (e > worst) worst = e;
    }
    return worst;
}

/* ---- 1. references against finite differences ----
 * L = sum r * out with r random, so dL/dout = r. The convolution is linear in each of in,
 * w and b, so the central difference (L(x + e) - L(x - e)) / 2e is exact for any e, up to
 * rounding: the forward references round each output to float (2^-24 relative, outputs
 * here at most ~30), and only the at most ~150 outputs a value touches differ between the
 * two evaluations, so with e = 0.5 the difference is off by about sqrt(150) * 30 * 6e-8 /
 * 1 = 2e-5 at worst (the deconvolution reference also sums in float: a few times that).
 * FD_BAR = 2e-4 absolute on gradients of order 1-10 is 10x that, while any wrong index,
 * flip or border term is off by a whole term (order 0.1-1). */
#define FD_EPS 0.5f
#define FD_BAR 2e-4

static double loss(const float *out, const float *r, size_t n) {
    double l = 0;
    for (size_t i = 0; i < n; i++) l += (double)out[i] * r[i];
    return l;
}

/* Worst |FD - analytic| over every element of x (perturbed in place). */
typedef double (*loss_fn)(void *ctx);
static double fd_worst(float *x, size_t n, const float *grad, loss_fn f, void *ctx) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + FD_EPS;
        double lp = f(ctx);
        x[i] = keep - FD_EPS;
        double lm = f(ctx);
        x[i] = keep;
        double e = fabs((lp - lm) / (2.0 * FD_EPS) - grad[i]);
        if (e != e) return INFINITY;
        if (e > worst) worst = e;
    }
    return worst;
}

typedef struct {
    const conv_dims *d;
    const deconv_dims *dd;
    float *in, *w, *b, *r, *out;
    size_t nout;
} fd_ctx;

static double conv_loss(void *p) {
    fd_ctx *c = p;
    conv2d_forward_ref(c->out, c->in, c->w, c->b, c->d);
    return loss(c->out, c->r, c->nout);
}

static double deconv_loss(void *p) {
    fd_ctx *c = p;
    conv_transpose2d_forward_ref(c->out, c->in, c->w, c->b, c->dd);
    return loss(c->out, c->r, c->nout);
}

static void fd_conv(int cin, int h, int w, int cout, int kh, int kw, int s, int p) {
    conv_dims d = {cin, h, w, cout, kh, kw, s, p};
    const size_t nin = (size_t)cin * h * w, nw = (size_t)cout * cin * kh * kw;
    const size_t nout = (size_t)cout * conv_out_h(&d) * conv_out_w(&d);
    fd_ctx c = {&d, NULL, rand_buf(nin), rand_buf(nw), rand_buf(cout), rand_buf(nout), malloc(nout * sizeof(float)), nout};
    float *din = calloc(nin, sizeof(float)), *dw = calloc(nw, sizeof(float)), *db = calloc(cout, sizeof(float));
    conv2d_backward_ref(din, dw, db, c.r, c.in, c.w, &d);
    double ei = fd_worst(c.in, nin, din, conv_loss, &c), ew = fd_worst(c.w, nw, dw, conv_loss, &c),
           eb = fd_worst(c.b, cout, db, conv_loss, &c);
    CHECK(ei < FD_BAR && ew < FD_BAR && eb < FD_BAR,
          "conv ref cin=%d %dx%d cout=%d k=%dx%d s=%d p=%d: |FD - analytic| din %g dw %g db %g", cin, h, w, cout,
          kh, kw, s, p, ei, ew, eb);
    free(c.in), free(c.w), free(c.b), free(c.r), free(c.out), free(din), free(dw), free(db);
}

static void fd_deconv(int cin, int h, int w, int cout, int k, int s, int p, int op) {
    deconv_dims d = {cin, h, w, cout, k, k, s, p, op};
    const size_t nin = (size_t)cin * h * w, nw = (size_t)cin * cout * k * k;
    const size_t nout = (size_t)cout * deconv_out_h(&d) * deconv_out_w(&d);
    fd_ctx c = {NULL, &d, rand_buf(nin), rand_buf(nw), rand_buf(cout), rand_buf(nout), malloc(nout * sizeof(float)), nout};
    float *din = calloc(nin, sizeof(float)), *dw = calloc(nw, sizeof(float)), *db = calloc(cout, sizeof(float));
    conv_transpose2d_backward_ref(din, dw, db, c.r, c.in, c.w, &d);
    double ei = fd_worst(c.in, nin, din, deconv_loss, &c), ew = fd_worst(c.w, nw, dw, deconv_loss, &c),
           eb = fd_worst(c.b, cout, db, deconv_loss, &c);
    CHECK(ei < FD_BAR && ew < FD_BAR && eb < FD_BAR,
          "deconv ref cin=%d %dx%d cout=%d k=%d s=%d p=%d op=%d: |FD - analytic| din %g dw %g db %g", cin, h, w,
          cout, k, s, p, op, ei, ew, eb);
    free(c.in), free(c.w), free(c.b), free(c.r), free(c.out), free(din), free(dw), free(db);
}

static void test_references_vs_finite_differences(void) {
    fd_conv(2, 5, 4, 3, 3, 3, 1, 1);  /* 3x3 pad 1, odd sides */
    fd_conv(2, 5, 5, 2, 3, 3, 1, 0);  /* no padding */
    fd_conv(2, 4, 5, 2, 3, 3, 1, 2);  /* pad 2 */
    fd_conv(1, 4, 4, 2, 3, 3, 1, 3);  /* pad 3: more than the kernel reaches */
    fd_conv(3, 7, 6, 2, 3, 3, 2, 1);  /* stride 2, odd rows: the last row's taps */
    fd_conv(2, 6, 6, 2, 3, 3, 2, 1);  /* stride 2, even */
    fd_conv(2, 9, 8, 2, 7, 7, 1, 0);  /* 7x7 (the reflect-padded layers) */
    fd_conv(1, 5, 5, 2, 7, 7, 1, 3);  /* 7x7 zero-padded, kernel wider than the input */
    fd_conv(3, 4, 5, 2, 1, 1, 1, 0);  /* 1x1 */
    fd_conv(2, 5, 5, 3, 1, 1, 2, 1);  /* 1x1 stride 2 padded: some outputs see only padding */
    fd_conv(2, 6, 7, 2, 2, 3, 2, 0);  /* non-square kernel */
    fd_deconv(2, 3, 4, 3, 3, 2, 1, 1); /* the generator's k3 s2 p1 op1 */
    fd_deconv(3, 4, 3, 2, 3, 2, 1, 0);
    fd_deconv(2, 3, 3, 2, 4, 2, 1, 0);
    fd_deconv(2, 4, 3, 3, 3, 1, 1, 0);
    fd_deconv(1, 3, 3, 2, 5, 3, 2, 2);
}

/* ---- 2. the fast paths against the references ---- */

static const gemm_arch *arch; /* the micro-kernel under test */
static cg_pool *pool2;
#define BATCH 2

/* Tolerances, as max |fast - ref| over the tensor relative to sqrt(terms summed per value)
 * (each term a product of two values in (-1, 1), so sqrt(terms) is the values' scale):
 * - GEMM, direct, dw, db in fp32: float sums of up to a few thousand terms in another
 *   order than the double reference, a few ulps of that scale; 1e-5 (~100 ulps), as
 *   test_kernels.
 * - Winograd (3x3 stride 1: forward, din, and dw unless the layer has few channels): its
 *   transforms scale values by up to 4-5 (B) and 8 (A) and sum 36 products per tile;
 *   test_kernels' bar, 5e-5 (worst seen there 1.3e-5; dw's worst here about 2e-5).
 * - the "amx" kernel: the inference convolutions (forward, din) run as bf16x3, each
 *   product within about 3 * 2^-16 of fp32's; test_kernels' Winograd AMX bar 6e-4
 *   covers both. Its dw and gemm_strided use the fp32 AVX-512 micro-kernel: 1e-5.
 * Any wrong index, flip or border term is an error of order 1e-1..1 on this scale
 * (test_checks_can_fail shows the margin). */
#define BAR_FP32 1e-5
#define BAR_WINO 5e-5
#define BAR_AMX 6e-4
static double worst_fwd, worst_din, worst_dw;

static double conv_out_bar(const conv_dims *d) {
    if (arch->level == GEMM_AMX) return BAR_AMX;
    return d->kh == 3 && d->kw == 3 && d->stride == 1 && winograd_supported(arch) ? BAR_WINO : BAR_FP32;
}

/* A workspace of `n` floats filled with NaN, with a canary after it. */
#define CANARY 64
static float *ws_alloc(size_t n) {
    float *ws = malloc((n + CANARY) * sizeof *ws);
    for (size_t i = 0; i < n; i++) ws[i] = NAN;
    for (int i = 0; i < CANARY; i++) ws[n + i] = 12345.f;
    return ws;
}
static int ws_canary_ok(const float *ws, size_t n) {
    for (int i = 0; i < CANARY; i++)
        if (ws[n + i] != 12345.f) return 0;
    return 1;
}

static void note(double *worst, double e) {
    if (e > *worst) *worst = e;
}

static void check_conv_fast(int cin, int h, int w, int cout, int kh, int kw, int s, int p) {
    conv_dims d = {cin, h, w, cout, kh, kw, s, p};
    const int oh = conv_out_h(&d), ow = conv_out_w(&d);
    const size_t nin = (size_t)cin * h * w, nw = (size_t)cout * cin * kh * kw, nout = (size_t)cout * oh * ow;
    float *in = rand_buf(BATCH * nin), *wt = rand_buf(nw), *b = rand_buf(cout), *dout = rand_buf(BATCH * nout);
    float *out = malloc(BATCH * nout * sizeof(float)), *ref = malloc(BATCH * nout * sizeof(float));
    float *din = rand_buf(BATCH * nin), *dw = rand_buf(nw), *db = rand_buf(cout);
    float *rdin = copy_buf(din, BATCH * nin), *rdw = copy_buf(dw, nw), *rdb = copy_buf(db, cout);
    const size_t nws = conv_train_ws_floats(&d, cg_pool_threads(pool2));
    float *ws = ws_alloc(nws);

    conv2d_train_forward(out, in, wt, b, &d, BATCH, ws, pool2);
    for (int i = 0; i < BATCH; i++) conv2d_forward_ref(ref + i * nout, in + i * nin, wt, b, &d);
    conv2d_backward(din, dw, db, dout, in, wt, &d, BATCH, ws, pool2);
    for (int i = 0; i < BATCH; i++) conv2d_backward_ref(rdin + i * nin, rdw, rdb, dout + i * nout, in + i * nin, wt, &d);

    const double bar = conv_out_bar(&d);
    const double dw_bar = kh == 3 && kw == 3 && s == 1 ? BAR_WINO : BAR_FP32; /* dw by Winograd */
    double ef = max_err(out, ref, BATCH * nout, sqrt((double)cin * kh * kw));
    double ei = max_err(din, rdin, BATCH * nin, sqrt((double)cout * kh * kw));
    double ew = max_err(dw, rdw, nw, sqrt((double)BATCH * oh * ow));
    double eb = max_err(db, rdb, cout, sqrt((double)BATCH * oh * ow));
    note(&worst_fwd, ef), note(&worst_din, ei), note(&worst_dw, ew > eb ? ew : eb);
    CHECK(ef < bar && ei < bar && ew < dw_bar && eb < BAR_FP32 && ws_canary_ok(ws, nws),
          "%s conv cin=%d %dx%d cout=%d k=%dx%d s=%d p=%d: errors out %g din %g dw %g db %g (bars %g, %g)%s",
          arch->name, cin, h, w, cout, kh, kw, s, p, ef, ei, ew, eb, bar, dw_bar,
          ws_canary_ok(ws, nws) ? "" : ", wrote past the workspace");
    free(in), free(wt), free(b), free(dout), free(out), free(ref), free(din), free(dw), free(db), free(rdin),
        free(rdw), free(rdb), free(ws);
}

static void check_deconv_fast(int cin, int h, int w, int cout, int k, int s, int p, int op) {
    deconv_dims d = {cin, h, w, cout, k, k, s, p, op};
    const int oh = deconv_out_h(&d), ow = deconv_out_w(&d);
    const size_t nin = (size_t)cin * h * w, nw = (size_t)cin * cout * k * k, nout = (size_t)cout * oh * ow;
    float *in = rand_buf(BATCH * nin), *wt = rand_buf(nw), *b = rand_buf(cout), *dout = rand_buf(BATCH * nout);
    float *out = malloc(BATCH * nout * sizeof(float)), *ref = malloc(BATCH * nout * sizeof(float));
    float *din = rand_buf(BATCH * nin), *dw = rand_buf(nw), *db = rand_buf(cout);
    float *rdin = copy_buf(din, BATCH * nin), *rdw = copy_buf(dw, nw), *rdb = copy_buf(db, cout);
    const size_t nws = deconv_train_ws_floats(&d, cg_pool_threads(pool2));
    float *ws = ws_alloc(nws);

    deconv2d_train_forward(out, in, wt, b, &d, BATCH, ws, pool2);
    for (int i = 0; i < BATCH; i++) conv_transpose2d_forward_ref(ref + i * nout, in + i * nin, wt, b, &d);
    deconv2d_backward(din, dw, db, dout, in, wt, &d, BATCH, ws, pool2);
    for (int i = 0; i < BATCH; i++)
        conv_transpose2d_backward_ref(rdin + i * nin, rdw, rdb, dout + i * nout, in + i * nin, wt, &d);

    /* the forward is a sum over at most cin * ceil(k/s)^2 terms; din over cout k k */
    const double bar = arch->level == GEMM_AMX ? BAR_AMX : BAR_FP32;
    double ef = max_err(out, ref, BATCH * nout, sqrt((double)cin * k * k));
    double ei = max_err(din, rdin, BATCH * nin, sqrt((double)cout * k * k));
    double ew = max_err(dw, rdw, nw, sqrt((double)BATCH * h * w));
    double eb = max_err(db, rdb, cout, sqrt((double)BATCH * oh * ow));
    note(&worst_fwd, ef), note(&worst_din, ei), note(&worst_dw, ew > eb ? ew : eb);
    CHECK(ef < bar && ei < bar && ew < BAR_FP32 && eb < BAR_FP32 && ws_canary_ok(ws, nws),
          "%s deconv cin=%d %dx%d cout=%d k=%d s=%d p=%d op=%d: errors out %g din %g dw %g db %g%s", arch->name, cin,
          h, w, cout, k, s, p, op, ef, ei, ew, eb, ws_canary_ok(ws, nws) ? "" : ", wrote past the workspace");
    free(in), free(wt), free(b), free(dout), free(out), free(ref), free(din), free(dw), free(db), free(rdin),
        free(rdw), free(rdb), free(ws);
}

static void conv_paths_one_arch(void) {
    /* Winograd 3x3 stride 1; din by Winograd with the flipped kernel, padded 2 - p */
    check_conv_fast(5, 9, 10, 7, 3, 3, 1, 1);    /* pad 1, partial tiles */
    check_conv_fast(6, 11, 9, 8, 3, 3, 1, 0);    /* pad 0 (reflect-padded input): din pad 2 */
    check_conv_fast(4, 8, 7, 6, 3, 3, 1, 2);     /* pad 2: din pad 0 */
    check_conv_fast(33, 10, 11, 35, 3, 3, 1, 1); /* partial MR and NR panels in dw */
    check_conv_fast(32, 70, 66, 16, 3, 3, 1, 1); /* dw over two chunks, many depth blocks */
    check_conv_fast(64, 12, 12, 64, 3, 3, 1, 1); /* whole panels, AMX-shaped */
    check_conv_fast(32, 11, 13, 16, 3, 3, 1, 0); /* Winograd dw with pad 0 (partial tiles) */
    check_conv_fast(40, 10, 9, 24, 3, 3, 1, 2);  /* and pad 2, partial panels */
    check_conv_fast(8, 6, 66, 12, 3, 3, 1, 0);   /* din 66 wide: 64 columns by Winograd, 2 by GEMM */
    check_conv_fast(16, 5, 70, 9, 3, 3, 1, 1);   /* din 70 wide, pad 1: 64 + 6 */
    /* stride 2, 3x3, pad 1: din by the transposed convolution (cropped when odd) */
    check_conv_fast(3, 11, 13, 16, 3, 3, 2, 1);  /* odd sides, 3 inputs: dw as im2col */
    check_conv_fast(16, 12, 10, 9, 3, 3, 2, 1);  /* even sides */
    check_conv_fast(32, 9, 14, 32, 3, 3, 2, 1);  /* AMX-shaped */
    /* few outputs: the direct convolution */
    check_conv_fast(64, 13, 12, 3, 7, 7, 1, 0);  /* the generator's last layer (reflect-padded) */
    check_conv_fast(3, 14, 13, 64, 7, 7, 1, 0);  /* its first: din direct padded by 6, dw as im2col */
    check_conv_fast(40, 9, 8, 1, 3, 3, 1, 1);    /* the discriminator's last, 1 output, pad 1 */
    check_conv_fast(3, 9, 9, 4, 3, 3, 2, 1);     /* 4 outputs, stride 2: GEMM forward, direct dw */
    /* everything else */
    check_conv_fast(8, 7, 9, 5, 1, 1, 1, 0);     /* 1x1 */
    check_conv_fast(4, 9, 9, 6, 3, 3, 1, 3);     /* pad 3: din by col2im */
    check_conv_fast(5, 10, 9, 6, 4, 4, 2, 1);    /* 4x4 stride 2: din by col2im, dw over 4 phases */
    check_conv_fast(6, 8, 9, 7, 2, 3, 1, 1);     /* non-square kernel */
    check_conv_fast(5, 8, 9, 2, 4, 4, 1, 2);     /* 2 outputs, 4x4 padded: direct dw, one column at a time */
}

static void deconv_paths_one_arch(void) {
    check_deconv_fast(5, 6, 7, 4, 3, 2, 1, 1);    /* the generator's shape: deconv_s2_forward */
    check_deconv_fast(32, 9, 13, 16, 3, 2, 1, 1); /* AMX-shaped */
    check_deconv_fast(3, 5, 4, 2, 3, 2, 1, 1);    /* 3 inputs: direct dw */
    check_deconv_fast(19, 9, 5, 37, 3, 2, 1, 1);  /* partial panels */
    check_deconv_fast(4, 5, 6, 3, 4, 2, 1, 0);    /* others: col2im forward */
    check_deconv_fast(6, 4, 4, 5, 3, 1, 1, 0);
}

static void test_fast_paths(void) {
    const gemm_arch *all[8];
    const gemm_arch *keep = gemm_arch_get();
    int n = gemm_arch_list(all, 8);
    pool2 = cg_pool_create(2);
    for (int a = 0; a < n; a++) {
        arch = all[a];
        gemm_arch_set(arch);
        printf("     kernel %s (%dx%d)\n", arch->name, arch->mr, arch->nr);
        conv_paths_one_arch();
        deconv_paths_one_arch();
    }
    gemm_arch_set(keep);
    printf("     worst relative errors: forward %.2e, din %.2e, dw/db %.2e\n", worst_fwd, worst_din, worst_dw);
    cg_pool_free(pool2);
}

/* Backward twice accumulates twice; NULL outputs are skipped. */
static void test_accumulation(void) {
    conv_dims d = {6, 9, 8, 7, 3, 3, 1, 1};
    const size_t nin = (size_t)6 * 9 * 8, nw = (size_t)7 * 6 * 9, nout = (size_t)7 * 9 * 8;
    cg_pool *pool = cg_pool_create(2);
    float *in = rand_buf(nin), *wt = rand_buf(nw), *dout = rand_buf(nout);
    float *din = calloc(nin, sizeof(float)), *dw = calloc(nw, sizeof(float)), *db = calloc(7, sizeof(float));
    float *ws = ws_alloc(conv_train_ws_floats(&d, 2));
    conv2d_backward(din, dw, db, dout, in, wt, &d, 1, ws, pool);
    float *din1 = copy_buf(din, nin), *dw1 = copy_buf(dw, nw), *db1 = copy_buf(db, 7);
    conv2d_backward(din, dw, db, dout, in, wt, &d, 1, ws, pool);
    int bad = 0;
    for (size_t i = 0; i < nin; i++) bad += fabsf(din[i] - 2 * din1[i]) > 1e-5f * (1 + fabsf(din1[i]));
    for (size_t i = 0; i < nw; i++) bad += fabsf(dw[i] - 2 * dw1[i]) > 1e-5f * (1 + fabsf(dw1[i]));
    for (int i = 0; i < 7; i++) bad += fabsf(db[i] - 2 * db1[i]) > 1e-5f * (1 + fabsf(db1[i]));
    CHECK(bad == 0, "%d values not doubled by a second backward", bad);
    /* din and db NULL: only dw moves */
    memcpy(dw, dw1, nw * sizeof(float));
    conv2d_backward(NULL, dw, NULL, dout, in, wt, &d, 1, ws, pool);
    bad = 0;
    for (size_t i = 0; i < nw; i++) bad += fabsf(dw[i] - 2 * dw1[i]) > 1e-5f * (1 + fabsf(dw1[i]));
    CHECK(bad == 0, "dw with din and db NULL: %d values off", bad);
    free(in), free(wt), free(dout), free(din), free(dw), free(db), free(din1), free(dw1), free(db1), free(ws);
    cg_pool_free(pool);
}

/* ---- 3. gemm_strided ---- */

/* A [m][k] and B [k][n] stored plain or transposed, with `pad` extra floats per stored
 * row (a non-contiguous stride). Error relative to sqrt(k), as above: 1e-5. */
static void check_gemm(int m, int n, int k, int at, int bt, int pad, int accumulate, cg_pool *pool) {
    const size_t a_ld = (size_t)(at ? m : k) + pad, b_ld = (size_t)(bt ? k : n) + pad, ldc = (size_t)n + 3;
    float *a = rand_buf((at ? k : m) * a_ld), *b = rand_buf((bt ? n : k) * b_ld);
    float *c = rand_buf((size_t)m * ldc), *c0 = copy_buf(c, (size_t)m * ldc), *want = malloc((size_t)m * ldc * sizeof(float));
    if (!accumulate)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c[(size_t)i * ldc + j] = NAN; /* must be overwritten, not read */
    const size_t a_rs = at ? 1 : a_ld, a_cs = at ? a_ld : 1, b_rs = bt ? 1 : b_ld, b_cs = bt ? b_ld : 1;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = accumulate ? c0[(size_t)i * ldc + j] : 0;
            for (int q = 0; q < k; q++) acc += (double)a[i * a_rs + q * a_cs] * b[q * b_rs + j * b_cs];
            want[(size_t)i * ldc + j] = (float)acc;
        }
    float *ws = ws_alloc(gemm_ws_floats(cg_pool_threads(pool)));
    gemm_strided(c, ldc, a, a_rs, a_cs, b, b_rs, b_cs, m, n, k, accumulate, ws, pool);
    double err = 0;
    int untouched = 1;
    for (int i = 0; i < m; i++) {
        double e = max_err(c + (size_t)i * ldc, want + (size_t)i * ldc, n, sqrt((double)k + 1));
        if (e > err) err = e;
        for (size_t j = n; j < ldc; j++) untouched &= c[(size_t)i * ldc + j] == c0[(size_t)i * ldc + j];
    }
    CHECK(err < BAR_FP32 && untouched && ws_canary_ok(ws, gemm_ws_floats(cg_pool_threads(pool))),
          "%s gemm m=%d n=%d k=%d at=%d bt=%d pad=%d acc=%d threads=%d: error %g%s", arch->name, m, n, k, at, bt, pad,
          accumulate, cg_pool_threads(pool), err, untouched ? "" : ", wrote past n");
    free(a), free(b), free(c), free(c0), free(want), free(ws);
}

static void test_gemm_strided(void) {
    const gemm_arch *all[8];
    const gemm_arch *keep = gemm_arch_get();
    int na = gemm_arch_list(all, 8);
    cg_pool *pool = cg_pool_create(2);
    cg_pool *pools[2] = {NULL, pool};
    const int shapes[][3] = {{1, 1, 1}, {7, 33, 5}, {13, 50, 300}, {130, 400, 17}, {9, 27, 2000},
                             {3, 5, 600}, {64, 70, 257}, {260, 31, 40}, {5, 3, 0}};
    for (int a = 0; a < na; a++) {
        arch = all[a];
        gemm_arch_set(arch);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++)
                check_gemm(shapes[s][0], shapes[s][1], shapes[s][2], t & 1, t >> 1, (int)s % 3, (int)(s + t) % 2,
                           pools[(s + t) % 2]);
    }
    gemm_arch_set(keep);
    cg_pool_free(pool);
}

/* ---- 4. Gram matrices ---- */

typedef struct {
    float *x, *r, *g;
    int c, hw;
} gram_ctx;

static double gram_loss(void *p) {
    gram_ctx *q = p;
    gram_forward_ref(q->g, q->x, q->c, q->hw);
    return loss(q->g, q->r, (size_t)q->c * q->c);
}

static void test_gram(void) {
    cg_pool *pool = cg_pool_create(2);
    const int cases[][2] = {{5, 37}, {40, 300}, {70, 9}, {3, 1100}};
    float *ws = ws_alloc(gemm_ws_floats(2));
    for (int i = 0; i < 4; i++) {
        const int c = cases[i][0], hw = cases[i][1];
        float *x = rand_buf((size_t)c * hw), *g = malloc((size_t)c * c * sizeof(float)), *gr = malloc((size_t)c * c * sizeof(float));
        gram_forward(g, x, c, hw, ws, pool);
        gram_forward_ref(gr, x, c, hw);
        /* values are sums of hw products divided by c hw: scale sqrt(hw) / (c hw) */
        double e = max_err(g, gr, (size_t)c * c, sqrt((double)hw) / ((double)c * hw));
        CHECK(e < BAR_FP32, "gram c=%d hw=%d: error %g", c, hw, e);
        free(x), free(g), free(gr);
    }
    /* backward against finite differences of the reference: L = sum r G is quadratic in
     * x, so the central difference is exact but for rounding: G's entries (~1/(c sqrt hw))
     * are rounded to float, and each x moves 2c of them; with e = 0.5 that is under
     * 1e-6 relative to the gradient's scale sqrt(c hw) * 2 / (c hw). Bar 1e-4. */
    const int fd[][2] = {{4, 7}, {6, 11}};
    for (int i = 0; i < 2; i++) {
        const int c = fd[i][0], hw = fd[i][1];
        gram_ctx q = {rand_buf((size_t)c * hw), rand_buf((size_t)c * c), malloc((size_t)c * c * sizeof(float)), c, hw};
        float *dx = rand_buf((size_t)c * hw), *dx0 = copy_buf(dx, (size_t)c * hw), *grad = malloc((size_t)c * hw * sizeof(float));
        gram_backward(dx, q.r, q.x, c, hw, ws, pool);
        for (int j = 0; j < c * hw; j++) grad[j] = dx[j] - dx0[j]; /* it accumulates */
        double e = fd_worst(q.x, (size_t)c * hw, grad, gram_loss, &q) / (2.0 * sqrt((double)c * hw) / ((double)c * hw));
        CHECK(e < 1e-4, "gram backward c=%d hw=%d: |FD - analytic| %g of the gradient's scale", c, hw, e);
        free(q.x), free(q.r), free(q.g), free(dx), free(dx0), free(grad);
    }
    CHECK(ws_canary_ok(ws, gemm_ws_floats(2)), "gram wrote past the workspace");
    free(ws);
    cg_pool_free(pool);
}

/* ---- 5. the checks can fail ---- */

/* The fast din against a reference computed with the kernel NOT flipped (what a missing
 * flip would give), and the reference's dw against finite differences of a forward whose
 * kernel is transposed in space: both must be rejected by far more than the bars. */
static void test_checks_can_fail(void) {
    conv_dims d = {5, 9, 10, 7, 3, 3, 1, 1};
    const size_t nin = (size_t)5 * 9 * 10, nw = (size_t)7 * 5 * 9, nout = (size_t)7 * 9 * 10;
    cg_pool *pool = cg_pool_create(2);
    float *in = rand_buf(nin), *wt = rand_buf(nw), *dout = rand_buf(nout), *wflip = malloc(nw * sizeof(float));
    for (int o = 0; o < 7 * 5; o++)
        for (int t = 0; t < 9; t++) wflip[o * 9 + t] = wt[o * 9 + 8 - t];
    float *din = calloc(nin, sizeof(float)), *rdin = calloc(nin, sizeof(float));
    float *ws = ws_alloc(conv_train_ws_floats(&d, 2));
    conv2d_backward(din, NULL, NULL, dout, in, wt, &d, 1, ws, pool);
    conv2d_backward_ref(rdin, NULL, NULL, dout, in, wflip, &d);
    double e = max_err(din, rdin, nin, sqrt(7.0 * 9));
    CHECK(e > 1000 * BAR_WINO, "a wrong flip gives only %g", e);
    /* dw of the flipped kernel is the flip of dw: against FD of the unflipped forward */
    fd_ctx c = {&d, NULL, in, wt, rand_buf(7), dout, malloc(nout * sizeof(float)), nout};
    float *dw = calloc(nw, sizeof(float)), *dwf = malloc(nw * sizeof(float));
    conv2d_backward_ref(NULL, dw, NULL, dout, in, wt, &d);
    for (int o = 0; o < 7 * 5; o++)
        for (int t = 0; t < 9; t++) dwf[o * 9 + t] = dw[o * 9 + 8 - t];
    double ef = fd_worst(wt, nw, dwf, conv_loss, &c);
    CHECK(ef > 1000 * FD_BAR, "a flipped dw passes finite differences within %g", ef);
    printf("     a wrong flip: %.2g of the scale against the fast din, %.2g absolute against FD\n", e, ef);
    free(in), free(wt), free(dout), free(wflip), free(din), free(rdin), free(ws), free(c.b), free(c.out), free(dw),
        free(dwf);
    cg_pool_free(pool);
}

int main(void) {
    RUN(test_references_vs_finite_differences);
    RUN(test_fast_paths);
    RUN(test_accumulation);
    RUN(test_gemm_strided);
    RUN(test_gram);
    RUN(test_checks_can_fail);
    return TEST_SUMMARY("test_grad_conv");
}
