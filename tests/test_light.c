/* test_light.c: the light generator (issue 13), its ops and the whole network.
 *
 * 1. Each new op, reference and fast kernel alike, against the PyTorch port's fixtures in
 *    tests/data/light (tools/make_light_fixtures.py: float64 results stored as float32):
 *    within 1e-5 * max(1, |y|), the index's tolerance (sums of at most 2400 products of
 *    values of order 1: a few float ulps; a wrong tap, pad or layout is off by 0.1 or
 *    more); the norm's large-mean case within 1e-3 (the index's: a float32 two-pass norm
 *    is 1.6e-4 off there); the channel shuffle exactly. The GEMM-based convolutions with
 *    every micro-kernel this CPU has.
 * 2. The fast kernels against the references on random tensors, at odd sides, both strides,
 *    through plane pointers in shuffled order with per-channel maps (norm and ReLU), in
 *    place, on 1 and 3 threads, every micro-kernel: as test_kernels.c (1e-5 of the sum's
 *    scale), the upsampling exactly (the same float operations in the same order), and the
 *    moments gathered on the way against the output's own.
 * 3. The whole network, both styles, on five crops (64x48 down to 1x1: odd sides, and
 *    sides below the network's strides) against the port's float64 outputs: the raw tanh
 *    output within 1e-4 (the index's bar; torch float32 is within 3e-6; a wrong op gives
 *    errors of 0.01 to 1), with every micro-kernel; and cg_stylize's 8-bit output against
 *    the port's PNG: every value within 1 level, and a value may differ only where the
 *    float64 output, as (y + 1) * 127.5, lies within 127.5 * 1e-4 of an integer (where the
 *    raw bar allows truncation to fall either way).
 * 4. The rest of the contract: identical output on 1 and 3 threads, progress and cancel,
 *    loading from memory, saving and reloading, refused files, the pixel limit and the
 *    working memory.
 *
 * Weights: $CARTOONGAN_WEIGHTS (default weights/) light_shinkai.safetensors and
 * light_paprika.safetensors, which `make` sets up. */
#include <math.h>

#include "cartoongan.h"
#include "io/image.h"
#include "model/light.h"
#include "model/model.h" /* the model handle's light field */
#include "model/npy.h"
#include "model/safetensors.h"
#include "nn/gemm.h"
#include "nn/ops.h"
#include "nn/pool.h"
#include "test.h"

static const char *weights_dir;
static const char *const styles[2] = {"shinkai", "paprika"};

static npy_array fixture(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "tests/data/light/%s.npy", name);
    npy_array a;
    if (npy_load(&a, path, 0) != CG_OK) {
        fprintf(stderr, "  %s\n", cg_last_error());
        memset(&a, 0, sizeof a);
    }
    return a;
}

/* max over i of |a - b| / max(1, |b|) */
static double rel_err(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i]));
        if (e > worst || e != e) worst = e != e ? INFINITY : e;
    }
    return worst;
}

static void plane_ptrs(float **p, float *base, int c, size_t hw) {
    for (int i = 0; i < c; i++) p[i] = base + (size_t)i * hw;
}

static cg_pool *pool3;

/* ---- 1. ops against the port's fixtures ---- */

static void dw_case(const char *name, int stride) {
    char n[64];
    snprintf(n, sizeof n, "%s_in", name);
    npy_array in = fixture(n);
    snprintf(n, sizeof n, "%s_w", name);
    npy_array w = fixture(n);
    snprintf(n, sizeof n, "%s_out", name);
    npy_array want = fixture(n);
    CHECK(in.data && w.data && want.data, "fixture %s missing", name);
    if (!in.data || !w.data || !want.data) goto done;
    dw_dims d = {(int)in.shape[0], (int)in.shape[1], (int)in.shape[2], stride, 0};
    int oh = dw_out_side(d.h, stride), ow = dw_out_side(d.w, stride);
    CHECK(want.shape[1] == oh && want.shape[2] == ow, "%s: output %dx%d, fixture %ldx%ld", name, oh, ow,
          want.shape[1], want.shape[2]);
    float *wk = malloc((size_t)d.c * 9 * sizeof(float)), *ref = malloc(want.count * sizeof(float)),
          *fast = malloc(want.count * sizeof(float));
    for (int c = 0; c < d.c; c++)
        for (int t = 0; t < 9; t++) wk[c * 9 + t] = w.data[t * d.c + c]; /* [3][3][c][1] -> [c][3][3] */
    dwconv3x3_same_forward_ref(ref, in.data, wk, &d);
    float *ip[8], *op[8];
    plane_ptrs(ip, in.data, d.c, (size_t)d.h * d.w);
    plane_ptrs(op, fast, d.c, (size_t)oh * ow);
    float *scratch = malloc(light_ops_scratch_floats(d.w, 3) * sizeof(float));
    moments st, part[8];
    dwconv3x3_forward(op, (const float *const *)ip, NULL, wk, &d, &st, part, scratch, pool3);
    double er = rel_err(ref, want.data, want.count), ef = rel_err(fast, want.data, want.count);
    CHECK(er <= 1e-5 && ef <= 1e-5, "%s: reference off by %g, fast by %g", name, er, ef);
    moments m = moments_of(want.data, want.count);
    CHECK(st.n == m.n && fabs(st.mean - m.mean) <= 1e-5 && fabs(st.m2 - m.m2) <= 1e-5 * fmax(1, m.m2),
          "%s: moments (%g, %g, %g), of the fixture (%g, %g, %g)", name, st.n, st.mean, st.m2, m.n, m.mean, m.m2);
    free(wk), free(ref), free(fast), free(scratch);
done:
    npy_free(&in), npy_free(&w), npy_free(&want);
}

static void test_depthwise_fixtures(void) {
    static const char *const s1[] = {"dw_s1_7x9", "dw_s1_6x4", "dw_s1_1x1"};
    static const char *const s2[] = {"dw_s2_9x7", "dw_s2_8x10", "dw_s2_7x8", "dw_s2_1x2", "dw_s2_2x3"};
    for (size_t i = 0; i < sizeof s1 / sizeof *s1; i++) dw_case(s1[i], 1);
    for (size_t i = 0; i < sizeof s2 / sizeof *s2; i++) dw_case(s2[i], 2);
    /* the padding rule itself, on the cases the index lists */
    CHECK(dw_pad_before(9, 2) == 1 && dw_pad_before(8, 2) == 0 && dw_pad_before(7, 2) == 1 &&
          dw_pad_before(1, 2) == 1 && dw_pad_before(2, 2) == 0 && dw_pad_before(7, 1) == 1,
          "SAME padding before");
}

static void norm_case(const char *name, double tol) {
    char n[64];
    npy_array a[4];
    static const char *const part[4] = {"in", "gamma", "beta", "out"};
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s_%s", name, part[i]);
        a[i] = fixture(n);
    }
    CHECK(a[0].data && a[1].data && a[2].data && a[3].data, "fixture %s missing", name);
    if (a[0].data && a[1].data && a[2].data && a[3].data) {
        int c = (int)a[0].shape[0];
        size_t hw = a[0].count / c;
        float *ref = malloc(a[0].count * sizeof(float)), *fast = malloc(a[0].count * sizeof(float));
        global_norm_forward_ref(ref, a[0].data, c, hw, a[1].data[0], a[2].data[0], 1e-3f, 0);
        float *ip[8], *op[8];
        plane_ptrs(ip, a[0].data, c, hw);
        plane_ptrs(op, fast, c, hw);
        moments m, mp[8];
        planes_moments(&m, (const float *const *)ip, c, hw, mp, pool3);
        chan_affine af[8];
        for (int i = 0; i < c; i++) af[i] = global_norm_affine(&m, a[1].data[0], a[2].data[0], 1e-3f, 0);
        planes_apply(op, (const float *const *)ip, af, c, hw, pool3);
        double er = rel_err(ref, a[3].data, a[3].count), ef = rel_err(fast, a[3].data, a[3].count);
        CHECK(er <= tol && ef <= tol, "%s: reference off by %g, fast by %g (bar %g)", name, er, ef, tol);
        free(ref), free(fast);
    }
    for (int i = 0; i < 4; i++) npy_free(&a[i]);
}

static void test_norm_fixtures(void) {
    norm_case("in_random", 1e-5);
    norm_case("in_constant", 1e-5);
    norm_case("in_offset", 1e-3);
}

static void test_shuffle_fixtures(void) {
    static const char *const cases[] = {"shuffle_10x3x4", "shuffle_2x2x3"};
    for (size_t k = 0; k < 2; k++) {
        char n[64];
        snprintf(n, sizeof n, "%s_in", cases[k]);
        npy_array in = fixture(n);
        snprintf(n, sizeof n, "%s_out", cases[k]);
        npy_array want = fixture(n);
        CHECK(in.data && want.data, "fixture %s missing", cases[k]);
        if (in.data && want.data) {
            float *out = malloc(in.count * sizeof(float));
            channel_shuffle_forward_ref(out, in.data, (int)in.shape[0], in.count / in.shape[0]);
            CHECK(memcmp(out, want.data, in.count * sizeof(float)) == 0, "%s differs", cases[k]);
            free(out);
        }
        npy_free(&in), npy_free(&want);
    }
}

static void test_upsample_fixtures(void) {
    static const char *const cases[] = {"up_3x5x7", "up_2x1x1", "up_2x4x3"};
    for (size_t k = 0; k < 3; k++) {
        char n[64];
        snprintf(n, sizeof n, "%s_in", cases[k]);
        npy_array in = fixture(n);
        snprintf(n, sizeof n, "%s_out", cases[k]);
        npy_array want = fixture(n);
        CHECK(in.data && want.data, "fixture %s missing", cases[k]);
        if (in.data && want.data) {
            int c = (int)in.shape[0], h = (int)in.shape[1], w = (int)in.shape[2];
            CHECK(want.shape[1] == 2 * h && want.shape[2] == 2 * w, "%s: fixture shape", cases[k]);
            float *ref = malloc(want.count * sizeof(float)), *fast = malloc(want.count * sizeof(float));
            upsample2_bilinear_forward_ref(ref, in.data, c, h, w);
            float *ip[8], *op[8];
            plane_ptrs(ip, in.data, c, (size_t)h * w);
            plane_ptrs(op, fast, c, (size_t)4 * h * w);
            float *scratch = malloc(light_ops_scratch_floats(w, 3) * sizeof(float));
            upsample2_bilinear_forward(op, (const float *const *)ip, NULL, c, h, w, scratch, pool3);
            double er = rel_err(ref, want.data, want.count);
            CHECK(er <= 1e-5, "%s: reference off by %g", cases[k], er);
            CHECK(memcmp(ref, fast, want.count * sizeof(float)) == 0, "%s: fast differs from the reference", cases[k]);
            free(ref), free(fast), free(scratch);
        }
        npy_free(&in), npy_free(&want);
    }
}

/* HWIO -> OIHW (the engine's layout, light.c converts the same way). */
static float *oihw(const npy_array *w) {
    int k = (int)w->shape[0], cin = (int)w->shape[2], cout = (int)w->shape[3];
    float *o = malloc(w->count * sizeof(float));
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    o[((co * cin + ci) * k + ky) * k + kx] = w->data[((ky * k + kx) * cin + ci) * cout + co];
    return o;
}

static void conv_case(const char *name, int pad, int has_bias) {
    char n[64];
    snprintf(n, sizeof n, "%s_in", name);
    npy_array in = fixture(n);
    snprintf(n, sizeof n, "%s_w", name);
    npy_array w = fixture(n);
    snprintf(n, sizeof n, "%s_out", name);
    npy_array want = fixture(n);
    npy_array b = {0};
    if (has_bias) {
        snprintf(n, sizeof n, "%s_b", name);
        b = fixture(n);
    }
    CHECK(in.data && w.data && want.data && (!has_bias || b.data), "fixture %s missing", name);
    if (!in.data || !w.data || !want.data || (has_bias && !b.data)) goto done;
    conv_dims d = {(int)in.shape[0], (int)in.shape[1], (int)in.shape[2], (int)w.shape[3], (int)w.shape[0],
                   (int)w.shape[1], 1, pad};
    CHECK(conv_out_h(&d) == want.shape[1] && conv_out_w(&d) == want.shape[2], "%s: output size", name);
    float *wo = oihw(&w), *ref = malloc(want.count * sizeof(float)), *fast = malloc(want.count * sizeof(float));
    conv2d_forward_ref(ref, in.data, wo, b.data, &d);
    double er = rel_err(ref, want.data, want.count);
    CHECK(er <= 1e-5, "%s: reference off by %g", name, er);
    const gemm_arch *archs[8];
    int na = gemm_arch_list(archs, 8);
    float *ip[8], *op[8];
    plane_ptrs(ip, in.data, d.cin, (size_t)d.h * d.w);
    plane_ptrs(op, fast, d.cout, (size_t)conv_out_h(&d) * conv_out_w(&d));
    float *scratch = malloc(conv_io_scratch_floats(3) * sizeof(float));
    float *panels = malloc(packed_weights_floats(d.cout, d.cin * d.kh * d.kw) * sizeof(float));
    for (int a = 0; a < na; a++) {
        packed_weights pw;
        pack_weights_fp32(&pw, panels, wo, d.cout, d.cin * d.kh * d.kw, archs[a]);
        conv_io io = {(const float *const *)ip, NULL, op, NULL, NULL};
        memset(fast, 0xff, want.count * sizeof(float)); /* NaN: a value not written shows */
        conv2d_forward_io(&io, &pw, b.data, &d, scratch, pool3);
        double ef = rel_err(fast, want.data, want.count);
        CHECK(ef <= 1e-5, "%s, %s kernel: off by %g", name, archs[a]->name, ef);
    }
    free(wo), free(ref), free(fast), free(scratch), free(panels);
done:
    npy_free(&in), npy_free(&w), npy_free(&want), npy_free(&b);
}

static void test_conv_fixtures(void) {
    conv_case("conv5_pad2", 2, 1);
    conv_case("conv1x1", 0, 1);
    conv_case("conv1x1_nobias", 0, 0);
}

/* ---- 2. fast kernels against the references, through maps and pointers ---- */

static unsigned rng = 2024;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) / 16777216.0 * 2.0 - 1.0);
}
static float *rand_buf(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

/* Random maps: a norm of some mean and spread, a ReLU on every other channel. */
static void rand_maps(chan_affine *a, int c) {
    for (int i = 0; i < c; i++)
        a[i] = (chan_affine){0.1f * frand(), 1.f + 0.5f * frand(), 0.2f * frand(), i % 2 ? 0.f : -INFINITY};
}

/* x read through a, as the kernels read it (the same float operations). */
static void map_plane(float *dst, const float *x, size_t n, const chan_affine *a) {
    for (size_t i = 0; i < n; i++) {
        float v = (x[i] - a->mean) * a->scale + a->shift;
        dst[i] = v > a->lo ? v : a->lo;
    }
}

/* The input as `c` planes stored in a scrambled order (plane i at slot (i * 7 + 3) % c
 * when 7 does not divide c), each read through a map; `mapped` gets the dense tensor the
 * reference should see. */
typedef struct {
    float *store, *mapped;
    float *plane[512];
    chan_affine aff[512];
} scrambled;

static void scramble(scrambled *s, int c, size_t hw) {
    s->store = rand_buf((size_t)c * hw);
    s->mapped = malloc((size_t)c * hw * sizeof(float));
    rand_maps(s->aff, c);
    for (int i = 0; i < c; i++) {
        int slot = c % 7 ? (i * 7 + 3) % c : i;
        s->plane[i] = s->store + (size_t)slot * hw;
        map_plane(s->mapped + (size_t)i * hw, s->plane[i], hw, &s->aff[i]);
    }
}

static void unscramble(scrambled *s) { free(s->store), free(s->mapped); }

static const gemm_arch *arch; /* the micro-kernel under test */

static void check_conv_io(int cin, int h, int w, int cout, int k, int pad, cg_pool *pool, int in_place) {
    conv_dims d = {cin, h, w, cout, k, k, 1, pad};
    const int oh = conv_out_h(&d), ow = conv_out_w(&d);
    const size_t hw = (size_t)h * w, ohw = (size_t)oh * ow;
    scrambled s;
    scramble(&s, cin, hw);
    float *wt = rand_buf((size_t)cout * cin * k * k), *b = rand_buf(cout), *ref = malloc((size_t)cout * ohw * sizeof(float));
    conv2d_forward_ref(ref, s.mapped, wt, b, &d);
    /* the output in planes of its own, every other panel's rows apart (so both the
     * contiguous and the scattered tile paths run), or over the input's planes */
    float *ostore = malloc((size_t)cout * ohw * sizeof(float) * 2), *op[512];
    for (int i = 0; i < cout; i++) op[i] = in_place ? s.plane[i] : ostore + (size_t)(i < cout / 2 ? i : 2 * i) * ohw;
    float *panels = malloc(packed_weights_floats(cout, cin * k * k) * sizeof(float));
    float *scratch = malloc(conv_io_scratch_floats(cg_pool_threads(pool)) * sizeof(float));
    moments st, *part = malloc((size_t)conv_io_tasks(&d) * sizeof(moments));
    packed_weights pw;
    pack_weights_fp32(&pw, panels, wt, cout, cin * k * k, arch);
    conv_io io = {(const float *const *)s.plane, s.aff, op, &st, part};
    conv2d_forward_io(&io, &pw, b, &d, scratch, pool);
    double worst = 0;
    for (int i = 0; i < cout; i++)
        for (size_t p = 0; p < ohw; p++) worst = fmax(worst, fabs((double)op[i][p] - ref[(size_t)i * ohw + p]));
    worst /= sqrt((double)cin * k * k);
    CHECK(worst < 1e-5, "%s conv_io cin=%d %dx%d cout=%d k=%d pad=%d%s threads=%d: max error %g", arch->name, cin, h, w,
          cout, k, pad, in_place ? " in place" : "", cg_pool_threads(pool), worst);
    moments m = moments_of(ref, (size_t)cout * ohw);
    CHECK(st.n == m.n && fabs(st.mean - m.mean) <= 1e-5 * sqrt(m.m2 / m.n) && fabs(st.m2 - m.m2) <= 1e-4 * m.m2,
          "%s conv_io moments (%g, %g, %g), of the output (%g, %g, %g)", arch->name, st.n, st.mean, st.m2, m.n, m.mean, m.m2);
    free(wt), free(b), free(ref), free(ostore), free(panels), free(scratch), free(part);
    unscramble(&s);
}

/* final_conv's kernel (5x5 to 3 outputs on a padded input), with the kernel under test
 * chosen (AVX-512 has its own), against the reference. */
static void check_out3(int cin, int h, int w, int k, cg_pool *pool) {
    conv_dims d = {cin, h, w, 3, k, k, 1, 0};
    const size_t n = 3 * (size_t)conv_out_h(&d) * conv_out_w(&d);
    float *in = rand_buf((size_t)cin * h * w + CONV_OUT3_SLACK), *wt = rand_buf((size_t)3 * cin * k * k), *b = rand_buf(3),
          *ref = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    conv2d_forward_ref(ref, in, wt, b, &d);
    const gemm_arch *dflt = gemm_arch_get();
    gemm_arch_set(arch);
    conv_out3_forward(out, in, wt, b, &d, pool);
    gemm_arch_set(dflt);
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)out[i] - ref[i]));
    worst /= sqrt((double)cin * k * k);
    CHECK(worst < 1e-5, "%s out3 cin=%d %dx%d k=%d threads=%d: max error %g", arch->name, cin, h, w, k,
          cg_pool_threads(pool), worst);
    free(in), free(wt), free(b), free(ref), free(out);
}

static void conv_io_one_arch(void) {
    cg_pool *pools[2] = {NULL, pool3};
    for (int t = 0; t < 2; t++) {
        check_out3(96, 40, 100, 5, pools[t]); /* partial column blocks, several row tasks */
        check_out3(96, 5, 5, 5, pools[t]);    /* one output pixel */
        check_out3(7, 23, 20, 5, pools[t]);   /* an odd number of output rows */
        check_out3(9, 12, 68, 5, pools[t]);   /* 64-column blocks: 64 wide */
        check_out3(9, 13, 164, 5, pools[t]);  /* 64-column blocks, the last one partial */
        check_conv_io(96, 17, 23, 96, 1, 0, pools[t], 0);   /* 1x1, panels spanning rows */
        check_conv_io(96, 17, 23, 96, 1, 0, pools[t], 1);   /* the same in place */
        check_conv_io(192, 29, 31, 192, 1, 0, pools[t], 1); /* several column blocks, in place */
        check_conv_io(48, 1, 1, 48, 1, 0, pools[t], 1);     /* one pixel */
        check_conv_io(384, 9, 11, 192, 1, 0, pools[t], 0);  /* depth over one block */
        check_conv_io(13, 7, 5, 11, 1, 0, pools[t], 0);     /* partial tiles */
        check_conv_io(3, 21, 30, 96, 5, 2, pools[t], 0);    /* flat_conv1's shape */
        check_conv_io(7, 3, 2, 5, 5, 2, pools[t], 0);       /* a 5x5 over a tiny input */
    }
}

static void test_conv_io(void) {
    const gemm_arch *all[8];
    int n = gemm_arch_list(all, 8);
    for (int a = 0; a < n; a++) {
        arch = all[a];
        printf("     kernel %s (%dx%d)\n", arch->name, arch->mr, arch->nr);
        conv_io_one_arch();
    }
}

static void check_dw(int c, int h, int w, int stride, cg_pool *pool) {
    dw_dims d = {c, h, w, stride, 0};
    const int oh = dw_out_side(h, stride), ow = dw_out_side(w, stride);
    const size_t ohw = (size_t)oh * ow;
    scrambled s;
    scramble(&s, c, (size_t)h * w);
    float *wt = rand_buf((size_t)c * 9), *ref = malloc((size_t)c * ohw * sizeof(float)),
          *out = malloc((size_t)c * ohw * sizeof(float)), *op[512];
    dwconv3x3_same_forward_ref(ref, s.mapped, wt, &d);
    for (int i = 0; i < c; i++) op[i] = out + (size_t)(c - 1 - i) * ohw; /* reversed */
    float *scratch = malloc(light_ops_scratch_floats(w, cg_pool_threads(pool)) * sizeof(float));
    moments st, part[512];
    dwconv3x3_forward(op, (const float *const *)s.plane, s.aff, wt, &d, &st, part, scratch, pool);
    double worst = 0;
    for (int i = 0; i < c; i++)
        for (size_t p = 0; p < ohw; p++) worst = fmax(worst, fabs((double)op[i][p] - ref[(size_t)i * ohw + p]));
    CHECK(worst < 3e-6, "dw c=%d %dx%d stride %d threads=%d: max error %g", c, h, w, stride, cg_pool_threads(pool), worst);
    moments m = moments_of(ref, (size_t)c * ohw);
    CHECK(st.n == m.n && fabs(st.mean - m.mean) <= 1e-6 && fabs(st.m2 - m.m2) <= 1e-5 * fmax(m.m2, 1e-3),
          "dw moments (%g, %g, %g), of the output (%g, %g, %g)", st.n, st.mean, st.m2, m.n, m.mean, m.m2);
    free(wt), free(ref), free(out), free(scratch);
    unscramble(&s);
}

/* The depthwise convolution of an upsampled tensor it upsamples as it reads (the up
 * stages'), against the reference upsampling then the reference convolution; and the
 * moments of the upsampled tensor taken without writing it. */
static void check_dw_up2(int c, int h, int w, cg_pool *pool) {
    const int H = 2 * h, W = 2 * w;
    const size_t hw = (size_t)h * w, big = (size_t)H * W;
    float *x = rand_buf((size_t)c * hw), *up = malloc((size_t)c * big * sizeof(float)),
          *mapped = malloc((size_t)c * big * sizeof(float)), *ref = malloc((size_t)c * big * sizeof(float)),
          *out = malloc((size_t)c * big * sizeof(float)), *wt = rand_buf((size_t)c * 9), *ip[64], *op[64];
    chan_affine aff[64];
    rand_maps(aff, c);
    upsample2_bilinear_forward_ref(up, x, c, h, w);
    for (int i = 0; i < c; i++) map_plane(mapped + (size_t)i * big, up + (size_t)i * big, big, &aff[i]);
    dw_dims d = {c, H, W, 1, 0};
    dwconv3x3_same_forward_ref(ref, mapped, wt, &d);
    plane_ptrs(ip, x, c, hw);
    plane_ptrs(op, out, c, big);
    float *scratch = malloc(light_ops_scratch_floats(W, cg_pool_threads(pool)) * sizeof(float));
    moments st, mu, part[64];
    d.up2 = 1;
    dwconv3x3_forward(op, (const float *const *)ip, aff, wt, &d, &st, part, scratch, pool);
    double worst = 0;
    for (size_t i = 0; i < (size_t)c * big; i++) worst = fmax(worst, fabs((double)out[i] - ref[i]));
    CHECK(worst < 3e-6, "dw of the upsampled c=%d %dx%d threads=%d: max error %g", c, h, w, cg_pool_threads(pool), worst);
    upsample2_moments(&mu, (const float *const *)ip, c, h, w, part, scratch, pool);
    moments m = moments_of(up, (size_t)c * big);
    CHECK(mu.n == m.n && fabs(mu.mean - m.mean) <= 1e-6 && fabs(mu.m2 - m.m2) <= 1e-5 * m.m2,
          "upsampled moments (%g, %g, %g), of the tensor (%g, %g, %g)", mu.n, mu.mean, mu.m2, m.n, m.mean, m.m2);
    free(x), free(up), free(mapped), free(ref), free(out), free(wt), free(scratch);
}

static void test_depthwise_kernel(void) {
    cg_pool *pools[2] = {NULL, pool3};
    for (int t = 0; t < 2; t++) {
        for (int stride = 1; stride <= 2; stride++) {
            check_dw(5, 1, 1, stride, pools[t]);
            check_dw(6, 2, 3, stride, pools[t]);
            check_dw(4, 9, 7, stride, pools[t]);
            check_dw(4, 8, 10, stride, pools[t]);
            check_dw(48, 33, 65, stride, pools[t]);
        }
        check_dw_up2(3, 1, 1, pools[t]);
        check_dw_up2(5, 4, 7, pools[t]);
        check_dw_up2(16, 17, 12, pools[t]);
    }
}

static void check_up(int c, int h, int w, cg_pool *pool) {
    scrambled s;
    scramble(&s, c, (size_t)h * w);
    const size_t ohw = (size_t)4 * h * w;
    float *ref = malloc((size_t)c * ohw * sizeof(float)), *out = malloc((size_t)c * ohw * sizeof(float)), *op[512];
    upsample2_bilinear_forward_ref(ref, s.mapped, c, h, w);
    for (int i = 0; i < c; i++) op[i] = out + (size_t)(c - 1 - i) * ohw;
    float *scratch = malloc(light_ops_scratch_floats(w, cg_pool_threads(pool)) * sizeof(float));
    upsample2_bilinear_forward(op, (const float *const *)s.plane, s.aff, c, h, w, scratch, pool);
    int same = 1;
    for (int i = 0; i < c; i++) same &= memcmp(op[i], ref + (size_t)i * ohw, ohw * sizeof(float)) == 0;
    CHECK(same, "upsample c=%d %dx%d threads=%d differs from the reference", c, h, w, cg_pool_threads(pool));
    free(ref), free(out), free(scratch);
    unscramble(&s);
}

static void test_upsample_kernel(void) {
    cg_pool *pools[2] = {NULL, pool3};
    for (int t = 0; t < 2; t++) {
        check_up(3, 1, 1, pools[t]);
        check_up(5, 1, 7, pools[t]);
        check_up(5, 6, 1, pools[t]);
        check_up(17, 13, 29, pools[t]);
    }
}

/* The shuffle the engine does with pointers equals the reference's copy, and a global
 * norm with ReLU matches the reference. */
static void test_norm_relu_kernel(void) {
    const int c = 10;
    const size_t hw = 37;
    float *x = rand_buf(c * hw), *ref = malloc(c * hw * sizeof(float)), *fast = malloc(c * hw * sizeof(float));
    for (size_t i = 0; i < c * hw; i++) x[i] = 3.f + 2.f * x[i];
    global_norm_forward_ref(ref, x, c, hw, 0.7f, -0.2f, 1e-3f, 1);
    float *ip[16], *op[16];
    plane_ptrs(ip, x, c, hw);
    plane_ptrs(op, fast, c, hw);
    moments m, part[16];
    planes_moments(&m, (const float *const *)ip, c, hw, part, pool3);
    chan_affine a[16];
    for (int i = 0; i < c; i++) a[i] = global_norm_affine(&m, 0.7f, -0.2f, 1e-3f, 1);
    planes_apply(op, (const float *const *)ip, a, c, hw, pool3);
    double e = rel_err(fast, ref, c * hw);
    int negative = 0;
    for (size_t i = 0; i < c * hw; i++) negative += fast[i] < 0;
    CHECK(e < 1e-6 && !negative, "norm with ReLU off by %g, %d negative values", e, negative);
    free(x), free(ref), free(fast);
}

/* planes_pad_band (final_conv's input) against the padded tensor written out directly:
 * bands at the top, in the middle, at the bottom and taller than the planes, scrambled
 * planes read through maps, on 1 and 3 threads. Data movement only: equal bit for bit. */
static void test_pad_band(void) {
    const int c = 5, h = 11, w = 13, pad = 2;
    scrambled s;
    scramble(&s, c, (size_t)h * w);
    const int bands[][2] = {{0, 4}, {3, 5}, {8, 3}, {0, 11}, {9, 7}};
    cg_pool *pools[2] = {NULL, pool3};
    for (int t = 0; t < 2; t++)
        for (int b = 0; b < 5; b++) {
            const int y0 = bands[b][0], rows = bands[b][1], pw = w + 2 * pad, ph = rows + 2 * pad;
            float *got = malloc((size_t)c * ph * pw * sizeof(float));
            memset(got, 0xff, (size_t)c * ph * pw * sizeof(float)); /* NaN: a value not written shows */
            planes_pad_band(got, (const float *const *)s.plane, s.aff, c, h, w, y0, rows, pad, pools[t]);
            int bad = 0;
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < ph; i++)
                    for (int x = 0; x < pw; x++) {
                        const int y = y0 - pad + i, xx = x - pad;
                        float want = y >= 0 && y < h && xx >= 0 && xx < w ? s.mapped[((size_t)ch * h + y) * w + xx] : 0.f;
                        float v = got[((size_t)ch * ph + i) * pw + x];
                        bad += memcmp(&v, &want, sizeof v) != 0;
                    }
            CHECK(bad == 0, "pad band y0=%d rows=%d threads=%d: %d values differ", y0, rows, t ? 3 : 1, bad);
            free(got);
        }
    unscramble(&s);
}

/* ---- 3. the whole network ---- */

static cg_model *models[2];

static float *to_planes(const cg_image *img) {
    const size_t n = (size_t)img->w * img->h;
    float *x = malloc(3 * n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) x[c * n + i] = img->rgb[i * 3 + c] / 127.5f - 1.f;
    return x;
}

/* The raw output of a model (any kernel), cropped to h x w: [3][h][w]. */
static float *run_raw(const cg_model *m, const float *x, int w, int h, int threads, cg_progress_fn fn, void *user,
                      cg_status *st) {
    const int oh = light_out_side(h), ow = light_out_side(w);
    float *y = malloc(3 * (size_t)oh * ow * sizeof(float)), *crop = malloc(3 * (size_t)h * w * sizeof(float));
    cg_pool *pool = cg_pool_create(threads);
    void *arena = malloc(light_arena_bytes(h, w, cg_pool_threads(pool)));
    *st = light_forward(y, x, h, w, m->light, arena, pool, fn, user);
    for (int c = 0; c < 3; c++)
        for (int r = 0; r < h; r++) memcpy(crop + ((size_t)c * h + r) * w, y + ((size_t)c * oh + r) * ow, (size_t)w * sizeof(float));
    free(arena), free(y);
    cg_pool_free(pool);
    return crop;
}

static const char *const sizes[] = {"64x48", "37x29", "9x7", "5x3", "1x1"};

static void network_case(int s, const char *size, cg_model *const *by_arch, const gemm_arch *const *archs, int na) {
    char path[256], name[64];
    snprintf(path, sizeof path, "tests/data/light/input_%s.png", size);
    cg_image in = {0}, png = {0};
    CHECK(cg_image_load(&in, path, 0) == CG_OK, "%s", cg_last_error());
    snprintf(path, sizeof path, "tests/data/light/%s_%s.png", styles[s], size);
    CHECK(cg_image_load(&png, path, 0) == CG_OK, "%s", cg_last_error());
    snprintf(name, sizeof name, "%s_%s_raw", styles[s], size);
    npy_array want = fixture(name);
    if (!in.rgb || !png.rgb || !want.data) goto done;
    const int w = in.w, h = in.h;
    const size_t n = 3 * (size_t)w * h;
    CHECK(want.count == n && png.w == w && png.h == h, "%s: fixture sizes", name);
    if (want.count != n) goto done;
    float *x = to_planes(&in);
    const gemm_arch *dflt = gemm_arch_get();
    for (int a = 0; a < na; a++) {
        if (!by_arch[a]) continue;
        cg_status st;
        gemm_arch_set(archs[a]); /* also final_conv's kernel, chosen when it runs */
        float *y = run_raw(by_arch[a], x, w, h, 2, NULL, NULL, &st);
        gemm_arch_set(dflt);
        CHECK(st == CG_OK, "%s", cg_last_error());
        double worst = 0;
        for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)y[i] - want.data[i]));
        printf("     %-8s %-6s %-8s raw max |diff| %.2e\n", styles[s], size, archs[a]->name, worst);
        CHECK(worst <= 1e-4, "%s with %s: raw output off by %g", name, archs[a]->name, worst);
        free(y);
    }
    /* cg_stylize's 8-bit output (default kernel) against the port's PNG */
    uint8_t *out = malloc(n);
    CHECK(cg_stylize(models[s], out, in.rgb, w, h, NULL) == CG_OK, "%s", cg_last_error());
    int worst = 0, differ = 0, unexplained = 0;
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++)
            for (int ch = 0; ch < 3; ch++) {
                int got = out[((size_t)r * w + c) * 3 + ch], exp = png.rgb[((size_t)r * w + c) * 3 + ch];
                if (got == exp) continue;
                double v = ((double)want.data[((size_t)ch * h + r) * w + c] + 1) * 127.5;
                differ++;
                worst = abs(got - exp) > worst ? abs(got - exp) : worst;
                unexplained += fabs(v - floor(v + 0.5)) > 127.5 * 1e-4;
            }
    printf("     %-8s %-6s 8-bit: %d of %zu values differ (max %d)\n", styles[s], size, differ, n, worst);
    CHECK(worst <= 1 && unexplained == 0, "%s: %d values differ by up to %d, %d of them away from a step", name,
          differ, worst, unexplained);
    free(out), free(x);
done:
    npy_free(&want);
    cg_image_free(&in), cg_image_free(&png);
}

static void test_network_matches_port(void) {
    const gemm_arch *archs[8], *dflt = gemm_arch_get();
    int na = gemm_arch_list(archs, 8);
    for (int s = 0; s < 2; s++) {
        CHECK(models[s] != NULL, "no %s model", styles[s]);
        if (!models[s]) continue;
        cg_model *by_arch[8] = {0};
        char path[4096];
        snprintf(path, sizeof path, "%s/light_%s.safetensors", weights_dir, styles[s]);
        for (int a = 0; a < na; a++) {
            gemm_arch_set(archs[a]);
            CHECK(cg_model_load(&by_arch[a], path) == CG_OK, "%s", cg_last_error());
        }
        gemm_arch_set(dflt);
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) network_case(s, sizes[k], by_arch, archs, na);
        for (int a = 0; a < na; a++) cg_model_free(by_arch[a]);
    }
}

/* ---- 4. the rest of the contract ---- */

static float *random_image_planes(int w, int h, unsigned seed) {
    rng = seed;
    float *x = malloc(3 * (size_t)w * h * sizeof(float));
    for (size_t i = 0; i < 3 * (size_t)w * h; i++) x[i] = frand();
    return x;
}

/* Reductions merge in a fixed order and no kernel depends on the thread count: 1 and 3
 * threads give the same bits (final_conv's bands differ too: 16 and 24 rows). */
static void test_threads_identical(void) {
    if (!models[1]) return;
    const int w = 70, h = 45;
    float *x = random_image_planes(w, h, 9);
    cg_status s1, s3;
    float *a = run_raw(models[1], x, w, h, 1, NULL, NULL, &s1), *b = run_raw(models[1], x, w, h, 3, NULL, NULL, &s3);
    CHECK(s1 == CG_OK && s3 == CG_OK, "%s", cg_last_error());
    CHECK(memcmp(a, b, 3 * (size_t)w * h * sizeof(float)) == 0, "1 and 3 threads differ");
    free(x), free(a), free(b);
}

typedef struct {
    int calls, backwards, cancel_at;
    float last;
} progress_log;

static int on_progress(void *user, float f) {
    progress_log *l = user;
    if (f < l->last) l->backwards++;
    l->last = f;
    return ++l->calls == l->cancel_at;
}

static void test_progress_and_cancel(void) {
    if (!models[0]) return;
    const int w = 40, h = 90;
    float *x = random_image_planes(w, h, 5);
    progress_log log = {0, 0, -1, 0};
    cg_status st;
    float *y = run_raw(models[0], x, w, h, 2, on_progress, &log, &st);
    CHECK(st == CG_OK, "%s", cg_last_error());
    CHECK(log.backwards == 0, "progress went back %d times", log.backwards);
    CHECK(fabsf(log.last - 1.f) < 1e-5f, "progress ended at %g", log.last);
    CHECK(log.calls == 44, "%d progress reports, not one per layer (44)", log.calls);
    free(y);
    progress_log cancel = {0, 0, log.calls / 2, 0};
    y = run_raw(models[0], x, w, h, 2, on_progress, &cancel, &st);
    CHECK(st == CG_ERR_CANCELLED, "cancel ignored (status %d)", st);
    CHECK(cancel.calls == log.calls / 2, "went on for %d reports after cancelling", cancel.calls - log.calls / 2);
    free(y);
    /* through cg_stylize */
    uint8_t *rgb = calloc((size_t)w * h * 3, 1);
    progress_log c2 = {0, 0, 3, 0};
    cg_stylize_opts opts = {on_progress, &c2};
    CHECK(cg_stylize(models[0], rgb, rgb, w, h, &opts) == CG_ERR_CANCELLED, "cg_stylize ignored the cancel");
    free(rgb), free(x);
}

static uint8_t *stylize(cg_model *m, const cg_image *img) {
    uint8_t *out = malloc((size_t)img->w * img->h * 3);
    if (cg_stylize(m, out, img->rgb, img->w, img->h, NULL) != CG_OK) {
        fprintf(stderr, "  %s\n", cg_last_error());
        free(out);
        return NULL;
    }
    return out;
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) free(b), b = NULL;
    fclose(f);
    return b;
}

/* From memory and after a save, the same model; its fp16 copy loads as a light model. */
static void test_load_memory_and_save(void) {
    if (!models[0]) return;
    char dir[64], path[4096], saved[128];
    if (test_make_dir(dir, sizeof dir, "test_light")) return;
    cg_image img = {0};
    CHECK(cg_image_load(&img, "tests/data/light/input_37x29.png", 0) == CG_OK, "%s", cg_last_error());
    uint8_t *want = img.rgb ? stylize(models[0], &img) : NULL;
    snprintf(path, sizeof path, "%s/light_%s.safetensors", weights_dir, styles[0]);
    size_t n = 0;
    uint8_t *bytes = read_file(path, &n);
    cg_model *m = NULL;
    CHECK(bytes && cg_model_load_memory(&m, bytes, n, "light") == CG_OK, "%s", cg_last_error());
    free(bytes);
    uint8_t *got = m && want ? stylize(m, &img) : NULL;
    CHECK(got && memcmp(got, want, (size_t)img.w * img.h * 3) == 0, "loaded from memory: a different output");
    free(got);
    snprintf(saved, sizeof saved, "%s/saved.safetensors", dir);
    CHECK(m && cg_model_save(m, saved) == CG_OK, "%s", cg_last_error());
    cg_model_free(m);
    m = NULL;
    char arch[64] = "";
    CHECK(st_read_metadata(saved, "architecture", arch, sizeof arch) == CG_OK && !strcmp(arch, "cartoongan-light"),
          "saved file's architecture '%s'", arch);
    CHECK(cg_model_load(&m, saved) == CG_OK, "%s", cg_last_error());
    got = m && want ? stylize(m, &img) : NULL;
    CHECK(got && memcmp(got, want, (size_t)img.w * img.h * 3) == 0, "saved and reloaded: a different output");
    free(got);
    snprintf(saved, sizeof saved, "%s/half.safetensors", dir);
    CHECK(m && cg_model_save_fp16(m, saved) == CG_OK, "%s", cg_last_error());
    cg_model_free(m);
    m = NULL;
    CHECK(cg_model_load(&m, saved) == CG_OK, "fp16 copy: %s", cg_last_error());
    got = m && want ? stylize(m, &img) : NULL;
    int worst = 0;
    for (size_t i = 0; got && i < (size_t)img.w * img.h * 3; i++) worst = abs(got[i] - want[i]) > worst ? abs(got[i] - want[i]) : worst;
    printf("     fp16 weights: max difference %d levels\n", worst);
    CHECK(got && worst <= 16, "fp16 weights: differs by up to %d levels", worst);
    free(got);
    cg_model_free(m);
    free(want);
    cg_image_free(&img);
    test_remove_dir(dir);
}

/* Files that say they are light generators but are not, and an unknown architecture. */
static void test_refused_files(void) {
    char dir[64], path[128];
    if (test_make_dir(dir, sizeof dir, "test_light")) return;
    float *zeros = calloc(LIGHT_NUM_PARAMS, sizeof(float));
    cg_model *m = NULL;
    /* one tensor short */
    snprintf(path, sizeof path, "%s/short.safetensors", dir);
    CHECK(st_save(path, light_tensors, LIGHT_NUM_TENSORS - 1, zeros, 0, "\"architecture\":\"cartoongan-light\"") == CG_OK,
          "%s", cg_last_error());
    CHECK(cg_model_load(&m, path) == CG_ERR_WEIGHTS && strstr(cg_last_error(), light_tensors[LIGHT_NUM_TENSORS - 1].name),
          "missing tensor: %s", cg_last_error());
    /* a wrong shape */
    tensor_info bad[LIGHT_NUM_TENSORS];
    memcpy(bad, light_tensors, sizeof bad);
    for (int i = 0; i < LIGHT_NUM_TENSORS; i++)
        if (bad[i].ndim == 4 && bad[i].shape[0] == 3 && bad[i].shape[3] == 1) { /* a depthwise kernel */
            bad[i].shape[3] = 2;
            break;
        }
    float *more = calloc(2 * LIGHT_NUM_PARAMS, sizeof(float));
    snprintf(path, sizeof path, "%s/shape.safetensors", dir);
    CHECK(st_save(path, bad, LIGHT_NUM_TENSORS, more, 0, "\"architecture\":\"cartoongan-light\"") == CG_OK, "%s",
          cg_last_error());
    CHECK(cg_model_load(&m, path) == CG_ERR_WEIGHTS && strstr(cg_last_error(), "expected [3,3,"),
          "wrong shape: %s", cg_last_error());
    /* an architecture this engine does not know */
    snprintf(path, sizeof path, "%s/other.safetensors", dir);
    CHECK(st_save(path, light_tensors, LIGHT_NUM_TENSORS, zeros, 0, "\"architecture\":\"cartoongan-huge\"") == CG_OK,
          "%s", cg_last_error());
    CHECK(cg_model_load(&m, path) == CG_ERR_WEIGHTS && strstr(cg_last_error(), "unknown architecture 'cartoongan-huge'"),
          "unknown architecture: %s", cg_last_error());
    size_t n = 0;
    uint8_t *bytes = read_file(path, &n);
    CHECK(bytes && cg_model_load_memory(&m, bytes, n, "x") == CG_ERR_WEIGHTS, "from memory: %s", cg_last_error());
    free(bytes);
    /* the light tensors without the metadata are no generator either */
    snprintf(path, sizeof path, "%s/nometa.safetensors", dir);
    CHECK(st_save(path, light_tensors, LIGHT_NUM_TENSORS, zeros, 0, NULL) == CG_OK, "%s", cg_last_error());
    CHECK(cg_model_load(&m, path) == CG_ERR_WEIGHTS, "no metadata: loaded as %p", (void *)m);
    CHECK(m == NULL, "a model was returned on failure");
    free(zeros), free(more);
    test_remove_dir(dir);
}

/* The pixel limit, refused before anything is allocated, and the documented memory. */
static void test_limits_and_memory(void) {
    if (!models[0]) return;
    uint8_t px[3] = {0};
    CHECK(cg_stylize(models[0], px, px, 4001, 4000, NULL) == CG_ERR_LIMIT && strstr(cg_last_error(), "light"),
          "over the limit: %s", cg_last_error());
    CHECK(cg_stylize_memory(models[0], 4001, 4000) == 0, "memory over the limit");
    cg_model_set_threads(models[0], 2);
    double m512 = cg_stylize_memory(models[0], 512, 512) / 1e9, hd = cg_stylize_memory(models[0], 1920, 1080) / 1e9,
           uhd = cg_stylize_memory(models[0], 3840, 2160) / 1e9;
    printf("     working memory: 512x512 %.2f GB, 1920x1080 %.2f GB, 3840x2160 %.2f GB\n", m512, hd, uhd);
    /* light.h: 0.16, 1.25 and 5 GB (about 600 bytes per pixel) */
    CHECK(m512 > 0.1 && m512 < 0.2 && hd > 1.0 && hd < 1.35 && uhd > 4.5 && uhd < 5.3, "memory not as documented");
    cg_model_set_threads(models[0], 0);
}

int main(void) {
    weights_dir = getenv("CARTOONGAN_WEIGHTS");
    if (!weights_dir) weights_dir = "weights";
    pool3 = cg_pool_create(3);
    for (int s = 0; s < 2; s++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/light_%s.safetensors", weights_dir, styles[s]);
        if (cg_model_load(&models[s], path) != CG_OK)
            fprintf(stderr, "  cannot load %s (run `make weights`)\n", cg_last_error());
        else if (!models[s]->light)
            fprintf(stderr, "  %s loaded, but not as a light model\n", path);
    }
    RUN(test_depthwise_fixtures);
    RUN(test_norm_fixtures);
    RUN(test_shuffle_fixtures);
    RUN(test_upsample_fixtures);
    RUN(test_conv_fixtures);
    RUN(test_conv_io);
    RUN(test_depthwise_kernel);
    RUN(test_upsample_kernel);
    RUN(test_norm_relu_kernel);
    RUN(test_pad_band);
    RUN(test_network_matches_port);
    RUN(test_threads_identical);
    RUN(test_progress_and_cancel);
    RUN(test_load_memory_and_save);
    RUN(test_refused_files);
    RUN(test_limits_and_memory);
    for (int s = 0; s < 2; s++) cg_model_free(models[s]);
    cg_pool_free(pool3);
    return TEST_SUMMARY("test_light");
}
