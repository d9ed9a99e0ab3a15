/* test_train.c: the training engine against PyTorch. Runs build/tools/train_step on the
 * fixtures of tests/data/train (made by tools/make_train_fixtures.py with PyTorch: G the
 * released hayao style, D and VGG19 from the deterministic formula of
 * doc/training-engine.md, which tests/train_fixtures.h writes again here) and compares the
 * first step's losses and gradients, and the parameters after 3 steps, with PyTorch's.
 * Then train_step's refusals of bad input.
 *
 * Needs CARTOONGAN_WEIGHTS (weights/, made by `make`) and CARTOONGAN_TRAIN_STEP. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "model/generator.h"
#include "model/npy.h"
#include "model/safetensors.h"
#include "test.h"
#include "train/nets.h"
#include "train_fixtures.h"

static char dir[256];
static const char *weights, *train_step;
static char g_path[512], d_path[512], vgg_st[512], vgg_h5[512];

/* ---- tolerances ----
 * All bars are relative to the scale of what is compared, since tensors span many orders
 * of magnitude. Measured worst cases are printed by the test.
 *
 * LOSS_TOL: the first step's losses, means over thousands of values, 1e-4 relative (the
 * issue's bar; measured at most 7e-6).
 *
 * GRAD_TOL: each sampled gradient value within 1e-2 of its tensor's max |value|, and the
 * tensor's L2 norm within 1e-2 relative (measured at most 5e-3 and 3e-3 with the
 * torchvision VGG, 9e-4 and 1e-4 with the Keras one, 2e-5 in two cases). Float rounding
 * alone (Winograd or blocked-GEMM summation here, oneDNN's there) keeps the forward within
 * 1e-5 and each op's backward within 1e-5 of PyTorch (tests/test_grad_*.c); what the
 * whole step adds is activations within rounding of a kink: a ReLU or LeakyReLU input a
 * few ulps from 0, or two max-pool candidates a few ulps apart. There the two
 * implementations route a whole upstream gradient element differently (both are correct
 * subgradients): on G's output, VGG19's input gradient differs from PyTorch's at a
 * handful of pixels by 1-2 % of its max, while on inputs away from kinks it agrees to 1e-5.
 * Summed into G's parameter gradients that is a few 1e-3. A wrong layer, padding, flip,
 * loss or order moves gradients by O(1) of their scale.
 *
 * Analytically zero gradients (the bias of a convolution that feeds a norm, which
 * subtracts the mean) are float noise in both frameworks: for those |value| <= ZERO_TOL
 * times the network's largest gradient norm (measured ~2e-7).
 *
 * Parameters after 3 Adam steps (the fixtures use learning rates of 1e-6, far below the
 * defaults, so that both implementations stay on one trajectory: see
 * tools/make_train_fixtures.py), as deltas from the start. Adam moves an element by
 * about lr per step whatever its gradient's size, so the bars are in units of steps * lr,
 * plus 4 float32 ulps of the parameter (the delta's own rounding):
 *   where the first gradient is at least 2 % of its tensor's max, its sign is determined
 *   and the deltas agree within DELTA_TOL (measured at most 0.063);
 *   elsewhere the gradient may be noise whose sign differs, and the deltas only within
 *   DELTA_TOL_NOISE (Adam bounds each update by about lr; measured at most 0.69);
 *   analytically zero biases: |delta| <= DELTA_TOL_ZERO (their updates are noise, as
 *   large as any: Adam's first step is lr whatever the gradient; measured at most 1.04). */
#define LOSS_TOL 1e-4
#define GRAD_TOL 1e-2
#define ZERO_TOL 1e-5
#define DELTA_TOL 0.15
#define DELTA_TOL_NOISE 1.0
#define DELTA_TOL_ZERO 1.5
#define SIGN_DETERMINED 0.02

static int run(const char *cmd) {
    int rc = system(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    if (buf) buf[fread(buf, 1, (1 << 16) - 1, f)] = 0;
    fclose(f);
    return buf;
}

/* The number after "key": in a flat JSON object, or NAN when absent. */
static double json_num(const char *text, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = text ? strstr(text, pat) : NULL;
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

/* Biases of convolutions that feed a norm (their gradient is analytically zero). */
static int feeds_norm(const char *name) {
    static const char *const names[] = {"conv01_1.bias", "conv02_2.bias", "conv03_2.bias", "deconv01_2.bias",
                                        "deconv02_2.bias", "conv02_2.bias", "conv03_2.bias", "conv04.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i])) return 1;
    int b, k;
    char tail[16];
    /* residual blocks: conv04_1 ... conv11_2 biases */
    return sscanf(name, "conv%2d_%1d.%15s", &b, &k, tail) == 3 && b >= 4 && b <= 11 && !strcmp(tail, "bias");
}

typedef struct {
    double grad_worst, norm_worst, delta_worst, delta_noise_worst;
} worst;

/* Compares a network's gradient summaries got / want ([T][2 + K]). */
static void compare_grads(const char *what, const float *got, const float *want, const tensor_info *specs, int T,
                          worst *w) {
    const int S = 2 + SUMMARY_K;
    double scale = 0; /* the network's largest tensor norm */
    for (int t = 0; t < T; t++) scale = fmax(scale, want[t * S]);
    for (int t = 0; t < T; t++) {
        const float *g = got + t * S, *r = want + t * S;
        if (feeds_norm(specs[t].name)) {
            CHECK(g[1] <= ZERO_TOL * scale, "%s %s: analytically zero, max |value| %g against scale %g", what,
                  specs[t].name, g[1], scale);
            continue;
        }
        double e = 0;
        for (int j = 2; j < S; j++) e = fmax(e, fabs(g[j] - r[j]) / fmax(r[1], 1e-30));
        double en = fabs(g[0] - r[0]) / fmax(r[0], 1e-30);
        w->grad_worst = fmax(w->grad_worst, e), w->norm_worst = fmax(w->norm_worst, en);
        CHECK(e <= GRAD_TOL && en <= GRAD_TOL, "%s %s: values off by %.3g of max |value| %g, norm by %.3g", what,
              specs[t].name, e, r[1], en);
    }
}

/* Compares the deltas' summaries got / want after `steps` steps at rate lr; grad is
 * PyTorch's first-step gradient summary (same sampled elements), p0 the parameters'. */
static void compare_deltas(const char *what, const float *got, const float *want, const float *grad, const float *p0,
                           const tensor_info *specs, int T, double lr_steps, worst *w) {
    const int S = 2 + SUMMARY_K;
    for (int t = 0; t < T; t++) {
        const float *g = got + t * S, *r = want + t * S, *gr = grad + t * S, *p = p0 + t * S;
        int zero = feeds_norm(specs[t].name);
        double worst_det = 0, worst_noise = 0, worst_zero = 0;
        for (int j = 2; j < S; j++) {
            double ulp4 = 4 * (nextafterf(fabsf(p[j]), INFINITY) - fabsf(p[j]));
            if (zero) {
                worst_zero = fmax(worst_zero, fmax(fabs(g[j]) - ulp4, 0) / lr_steps);
                continue;
            }
            double e = fmax(fabs(g[j] - r[j]) - ulp4, 0) / lr_steps;
            if (fabs(gr[j]) >= SIGN_DETERMINED * gr[1]) worst_det = fmax(worst_det, e);
            else worst_noise = fmax(worst_noise, e);
        }
        w->delta_worst = fmax(w->delta_worst, worst_det), w->delta_noise_worst = fmax(w->delta_noise_worst, worst_noise);
        CHECK(worst_zero <= DELTA_TOL_ZERO, "%s %s: |delta| %.3g of steps x lr for an analytically zero gradient",
              what, specs[t].name, worst_zero);
        CHECK(worst_det <= DELTA_TOL && worst_noise <= DELTA_TOL_NOISE,
              "%s %s: deltas off by %.3g (determined signs) and %.3g (noise-level gradients) of steps x lr", what,
              specs[t].name, worst_det, worst_noise);
    }
}

/* Loads a network file, optionally minus the starting parameters, and summarizes it. */
static float *summary_of(const char *path, const tensor_info *specs, int T, size_t count, const float *minus) {
    float *data = malloc(count * sizeof *data), *s = malloc((size_t)T * (2 + SUMMARY_K) * sizeof *s);
    if (!data || !s || st_load(path, specs, T, data, 0, 0, "a result") != CG_OK) {
        fprintf(stderr, "  %s\n", cg_last_error());
        free(data), free(s);
        return NULL;
    }
    if (minus)
        for (size_t i = 0; i < count; i++) data[i] -= minus[i];
    summarize(s, data, specs, T);
    free(data);
    return s;
}

static float *load_npy(const char *path, size_t want) {
    npy_array a;
    if (npy_load(&a, path, 0) != CG_OK || a.count != want) {
        fprintf(stderr, "  %s: %s\n", path, a.data ? "wrong size" : cg_last_error());
        if (a.data) npy_free(&a);
        return NULL;
    }
    return a.data;
}

static size_t total(const tensor_info *specs, int T) {
    size_t n = 0;
    for (int t = 0; t < T; t++) n += tensor_info_count(&specs[t]);
    return n;
}

static float *g0, *d0; /* the starting parameters */

static void check_case(const char *name) {
    char cdir[512], out[512], path[1024], cmd[4096], line[256] = "", flags[512] = "";
    snprintf(cdir, sizeof cdir, "tests/data/train/%s", name);
    snprintf(out, sizeof out, "%s/%s", dir, name);
    snprintf(path, sizeof path, "%s/args.txt", cdir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "%s missing", path);
    if (!f) return;
    if (!fgets(line, sizeof line, f) || !fgets(flags, sizeof flags, f)) line[0] = 0;
    fclose(f);
    flags[strcspn(flags, "\n")] = 0;
    int h5 = strncmp(line, "vgg=h5", 6) == 0, gan = strstr(flags, "--phase gan") != NULL;
    snprintf(cmd, sizeof cmd,
             "'%s' --g '%s' --d '%s' --vgg '%s' --photo tests/data/train/photo.npy --cartoon tests/data/train/cartoon.npy "
             "--smooth tests/data/train/smooth.npy --threads 2 --out '%s' %s",
             train_step, g_path, d_path, h5 ? vgg_h5 : vgg_st, out, flags);
    int rc = run(cmd);
    CHECK(rc == 0, "%s: train_step exited with %d", name, rc);
    if (rc) return;
    /* losses */
    snprintf(path, sizeof path, "%s/losses.json", cdir);
    char *want = read_text(path);
    snprintf(path, sizeof path, "%s/losses.json", out);
    char *got = read_text(path);
    static const char *const keys[] = {"content_loss", "style_loss", "g_adversarial_loss", "g_total_loss",
                                       "d_real_loss", "d_smooth_loss", "d_fake_loss", "d_total_loss"};
    double loss_worst = 0;
    for (int i = 0; i < 8; i++) {
        double r = json_num(want, keys[i]), g = json_num(got, keys[i]);
        CHECK(isnan(r) == isnan(g), "%s: %s present in one result only", name, keys[i]);
        if (isnan(r) || isnan(g)) continue;
        double e = fabs(g - r) / fmax(fabs(r), 1e-12);
        loss_worst = fmax(loss_worst, e);
        CHECK(e <= LOSS_TOL, "%s: %s = %.9g, PyTorch %.9g (relative %.3g)", name, keys[i], g, r, e);
    }
    free(want), free(got);
    /* gradients and parameters */
    worst w = {0, 0, 0, 0};
    const size_t gc = GEN_NUM_PARAMS, dc = total(d_tensors, D_NUM_TENSORS);
    const size_t gs = (size_t)GEN_NUM_TENSORS * (2 + SUMMARY_K), ds = (size_t)D_NUM_TENSORS * (2 + SUMMARY_K);
    const char *sp = strstr(flags, "--steps "), *lg = strstr(flags, "--lr-g "), *ld = strstr(flags, "--lr-d ");
    const double steps = sp ? atof(sp + 8) : 1, lr_g = lg ? atof(lg + 7) : 0, lr_d = ld ? atof(ld + 7) : 0;
    CHECK(sp && lg && (!gan || ld), "%s: args.txt lacks --steps, --lr-g or --lr-d", name);
    for (int net = 0; net < (gan ? 2 : 1); net++) {
        const tensor_info *specs = net ? d_tensors : gen_tensors;
        const int T = net ? D_NUM_TENSORS : GEN_NUM_TENSORS;
        const size_t count = net ? dc : gc, ns = net ? ds : gs;
        const char *nn = net ? "d" : "g", *NN = net ? "D" : "G";
        char res[1024], exp[1024], what[128];
        snprintf(res, sizeof res, "%s/grad_%s.safetensors", out, nn);
        snprintf(exp, sizeof exp, "%s/grad_%s.npy", cdir, nn);
        float *gs_got = summary_of(res, specs, T, count, NULL), *gs_want = load_npy(exp, ns);
        snprintf(res, sizeof res, "%s/%s.safetensors", out, nn);
        snprintf(exp, sizeof exp, "%s/delta_%s.npy", cdir, nn);
        float *ds_got = summary_of(res, specs, T, count, net ? d0 : g0), *ds_want = load_npy(exp, ns);
        float *p0s = malloc(ns * sizeof *p0s);
        if (p0s) summarize(p0s, net ? d0 : g0, specs, T);
        CHECK(gs_got && gs_want && ds_got && ds_want && p0s, "%s: missing result or fixture for %s", name, NN);
        if (gs_got && gs_want && ds_got && ds_want && p0s) {
            snprintf(what, sizeof what, "%s %s's gradient", name, NN);
            compare_grads(what, gs_got, gs_want, specs, T, &w);
            snprintf(what, sizeof what, "%s %s after %g steps", name, NN, steps);
            compare_deltas(what, ds_got, ds_want, gs_want, p0s, specs, T, steps * (net ? lr_d : lr_g), &w);
        }
        free(gs_got), free(gs_want), free(ds_got), free(ds_want), free(p0s);
    }
    printf("     %s: worst loss %.2g, gradient value %.2g, norm %.2g (relative); deltas %.2g, noise-level %.2g (of steps x lr)\n",
           name, loss_worst, w.grad_worst, w.norm_worst, w.delta_worst, w.delta_noise_worst);
}

static void test_init_safetensors(void) { check_case("init_st"); }
static void test_init_h5(void) { check_case("init_h5"); }
static void test_gan_lsgan_batch(void) { check_case("gan_lsgan_batch_st"); }
static void test_gan_bce_batch_h5(void) { check_case("gan_bce_batch_h5"); }
static void test_gan_lsgan_instance_style(void) { check_case("gan_lsgan_instance_h5_style"); }
static void test_gan_bce_instance(void) { check_case("gan_bce_instance_st"); }

/* ---- bad input: one line naming the file and the reason, non-zero exit, nothing written ---- */

static int write_npy(const char *path, const float *data, const long *shape, int ndim) {
    return npy_save(path, data, shape, ndim) == CG_OK ? 0 : -1;
}

/* Runs train_step with `args` (after the common ones), expecting failure whose message
 * contains `needle`, and no g.safetensors in the output directory. */
static void expect_refusal(const char *label, const char *args, const char *needle) {
    char out[512], cmd[4096], log[600], g[600];
    snprintf(out, sizeof out, "%s/bad_%s", dir, label);
    snprintf(log, sizeof log, "%s.log", out);
    snprintf(cmd, sizeof cmd, "'%s' --threads 2 --out '%s' %s > '%s' 2>&1", train_step, out, args, log);
    int rc = run(cmd);
    char *text = read_text(log);
    CHECK(rc == 1, "%s: exit %d, expected 1", label, rc);
    CHECK(text && strstr(text, needle), "%s: message lacks '%s': %s", label, needle, text ? text : "(none)");
    CHECK(text && !strchr(strchr(text, '\n') ? strchr(text, '\n') + 1 : "", ':'), "%s: more than one line: %s", label,
          text ? text : "");
    snprintf(g, sizeof g, "%s/g.safetensors", out);
    struct stat sb;
    CHECK(stat(g, &sb) != 0, "%s: wrote %s", label, g);
    free(text);
}

static void test_bad_input(void) {
    char a[4096], p[600], p3[600], p5[600], pb[600], nanp[600], vbad[600];
    long s4[4] = {2, 3, 32, 32}, s3[3] = {3, 32, 32}, s5[4] = {2, 3, 34, 34}, sb[4] = {1, 3, 32, 32};
    float *z = calloc(2 * 3 * 36 * 36, sizeof *z);
    snprintf(p3, sizeof p3, "%s/rank3.npy", dir), write_npy(p3, z, s3, 3);
    snprintf(p5, sizeof p5, "%s/side34.npy", dir), write_npy(p5, z, s5, 4);
    snprintf(pb, sizeof pb, "%s/batch1.npy", dir), write_npy(pb, z, sb, 4);
    z[5] = NAN;
    snprintf(nanp, sizeof nanp, "%s/nan.npy", dir), write_npy(nanp, z, s4, 4);
    free(z);
    snprintf(p, sizeof p, "tests/data/train/photo.npy");
    const char *common = "--phase gan --cartoon tests/data/train/cartoon.npy --smooth tests/data/train/smooth.npy";
    snprintf(a, sizeof a, "%s --g '%s' --vgg '%s' --photo '%s'", common, g_path, vgg_st, p3);
    expect_refusal("rank", a, "rank3.npy");
    snprintf(a, sizeof a, "%s --g '%s' --vgg '%s' --photo '%s'", common, g_path, vgg_st, p5);
    expect_refusal("side", a, "multiples of 4");
    snprintf(a, sizeof a, "--phase gan --g '%s' --vgg '%s' --photo '%s' --cartoon '%s' --smooth tests/data/train/smooth.npy",
             g_path, vgg_st, p, pb);
    expect_refusal("batch", a, "batch1.npy");
    snprintf(a, sizeof a, "%s --g '%s' --vgg '%s' --photo '%s'", common, g_path, vgg_st, nanp);
    expect_refusal("nan_input", a, "nan.npy");
    snprintf(a, sizeof a, "%s --g '%s' --vgg tests/data/train/photo.npy --photo '%s'", common, g_path, p);
    expect_refusal("vgg_not_weights", a, "photo.npy");
    snprintf(vbad, sizeof vbad, "%s/vgg_missing.safetensors", dir);
    {
        /* a VGG file without its last layer: the message names the missing tensor */
        tensor_info specs[2 * VGG_LAYERS];
        char names[2 * VGG_LAYERS][32];
        fixture_vgg_specs(specs, names);
        float *v = fixture_vgg_values();
        CHECK(v && st_save(vbad, specs, 2 * VGG_LAYERS - 2, v, 0, NULL) == CG_OK, "writing %s", vbad);
        free(v);
    }
    snprintf(a, sizeof a, "%s --g '%s' --vgg '%s' --photo '%s'", common, g_path, vbad, p);
    expect_refusal("vgg_missing_key", a, "features.25");
    snprintf(a, sizeof a, "%s --g '%s' --vgg '%s' --photo '%s'", common, d_path, vgg_st, p);
    expect_refusal("g_not_generator", a, "d.safetensors");
    /* A learning rate that blows G up: step 2's loss is not finite. train_step stops naming
     * the step and the loss, and writes no parameters. */
    snprintf(a, sizeof a, "%s --g '%s' --vgg '%s' --photo '%s' --steps 3 --lr-g 1e30", common, g_path, vgg_st, p);
    expect_refusal("diverged", a, "step 2");
}

int main(void) {
    weights = getenv("CARTOONGAN_WEIGHTS");
    train_step = getenv("CARTOONGAN_TRAIN_STEP");
    if (!weights || !train_step) {
        fprintf(stderr, "set CARTOONGAN_WEIGHTS and CARTOONGAN_TRAIN_STEP (make test does)\n");
        return 1;
    }
    if (test_make_dir(dir, sizeof dir, "test_train")) return 1;
    snprintf(g_path, sizeof g_path, "%s/hayao.safetensors", weights);
    snprintf(d_path, sizeof d_path, "%s/d.safetensors", dir);
    snprintf(vgg_st, sizeof vgg_st, "%s/vgg.safetensors", dir);
    snprintf(vgg_h5, sizeof vgg_h5, "%s/vgg.h5", dir);
    g0 = malloc(GEN_NUM_PARAMS * sizeof *g0);
    d0 = malloc(total(d_tensors, D_NUM_TENSORS) * sizeof *d0);
    if (!g0 || !d0 || write_d_safetensors(d_path) || write_vgg_safetensors(vgg_st) || write_vgg_h5(vgg_h5) ||
        st_load(g_path, gen_tensors, GEN_NUM_TENSORS, g0, 0, 0, "a generator") != CG_OK ||
        st_load(d_path, d_tensors, D_NUM_TENSORS, d0, 0, 0, "a discriminator") != CG_OK) {
        fprintf(stderr, "could not set up the fixtures: %s\n", cg_last_error());
        return 1;
    }
    RUN(test_init_safetensors);
    RUN(test_init_h5);
    RUN(test_gan_lsgan_batch);
    RUN(test_gan_bce_batch_h5);
    RUN(test_gan_lsgan_instance_style);
    RUN(test_gan_bce_instance);
    RUN(test_bad_input);
    free(g0), free(d0);
    test_remove_dir(dir);
    return TEST_SUMMARY("test_train");
}
