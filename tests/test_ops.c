/* test_ops.c: each op, reference and fast kernel alike, against PyTorch on the small
 * fixtures in tests/data/ops (made by tools/make_fixtures.py with torch's own layers).
 *
 * Tolerance: 1e-5 absolute on values of order 1 (sums of at most 147 products of numbers
 * in [-1, 1]): a few float ulps of accumulated rounding, where any indexing, padding or
 * layout mistake gives errors of order 0.1 to 1. Elementwise ops and padding are exact. */
#include <math.h>

#include "model/npy.h"
#include "nn/ops.h"
#include "nn/pool.h"
#include "test.h"

static npy_array load(const char *op, const char *what) {
    char path[256];
    snprintf(path, sizeof path, "tests/data/ops/%s_%s.npy", op, what);
    npy_array a;
    if (npy_load(&a, path, 0) != CG_OK) {
        fprintf(stderr, "  %s\n", cg_last_error());
        memset(&a, 0, sizeof a);
    }
    return a;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

static cg_pool *pool;

static void check_conv_case(const char *op, int stride, int pad) {
    npy_array in = load(op, "in"), w = load(op, "w"), b = load(op, "b"), want = load(op, "out");
    CHECK(in.data && w.data && b.data && want.data, "fixture %s missing", op);
    if (!in.data || !w.data || !b.data || !want.data) return;
    conv_dims d = {(int)in.shape[0], (int)in.shape[1], (int)in.shape[2], (int)w.shape[0],
                   (int)w.shape[2], (int)w.shape[3], stride, pad};
    CHECK(conv_out_h(&d) == want.shape[1] && conv_out_w(&d) == want.shape[2], "%s: output size", op);
    float *ref = malloc(want.count * sizeof(float)), *fast = malloc(want.count * sizeof(float));
    float *panels = malloc(packed_weights_floats(d.cout, d.cin * d.kh * d.kw) * sizeof(float));
    float *scratch = malloc(conv_scratch_floats(cg_pool_threads(pool)) * sizeof(float));
    packed_weights pw;
    pack_weights(&pw, panels, w.data, d.cout, d.cin * d.kh * d.kw);
    conv2d_forward_ref(ref, in.data, w.data, b.data, &d);
    conv2d_forward(fast, in.data, &pw, b.data, &d, scratch, pool);
    double e_ref = max_abs_diff(ref, want.data, want.count), e_fast = max_abs_diff(fast, want.data, want.count);
    CHECK(e_ref < 1e-5 && e_fast < 1e-5, "%s: reference off by %g, fast by %g", op, e_ref, e_fast);
    free(ref), free(fast), free(panels), free(scratch);
    npy_free(&in), npy_free(&w), npy_free(&b), npy_free(&want);
}

static void test_conv7(void) { check_conv_case("conv7", 1, 0); }
static void test_conv3_zero_pad(void) { check_conv_case("conv3", 1, 1); }
static void test_conv3_stride2(void) { check_conv_case("conv3s2", 2, 1); }

static void test_deconv(void) {
    npy_array in = load("deconv", "in"), w = load("deconv", "w"), b = load("deconv", "b"), want = load("deconv", "out");
    CHECK(in.data && w.data && b.data && want.data, "fixture missing");
    if (!in.data || !w.data || !b.data || !want.data) return;
    deconv_dims d = {(int)in.shape[0], (int)in.shape[1], (int)in.shape[2], (int)w.shape[1], 3, 3, 2, 1, 1};
    CHECK(deconv_out_h(&d) == want.shape[1] && deconv_out_w(&d) == want.shape[2], "output size");
    float *ref = malloc(want.count * sizeof(float)), *fast = malloc(want.count * sizeof(float));
    float *tmp = malloc(deconv_tmp_floats(&d) * sizeof(float));
    float *panels = malloc(packed_deconv_floats(d.cin, d.cout) * sizeof(float));
    float *scratch = malloc(conv_scratch_floats(cg_pool_threads(pool)) * sizeof(float));
    packed_deconv pd;
    CHECK(pack_deconv_weights(&pd, panels, w.data, d.cin, d.cout) == 0, "pack");
    conv_transpose2d_forward_ref(ref, in.data, w.data, b.data, &d);
    deconv_s2_forward(fast, tmp, in.data, &pd, b.data, &d, NULL, scratch, pool);
    double e_ref = max_abs_diff(ref, want.data, want.count), e_fast = max_abs_diff(fast, want.data, want.count);
    CHECK(e_ref < 1e-5 && e_fast < 1e-5, "reference off by %g, fast by %g", e_ref, e_fast);
    free(ref), free(fast), free(tmp), free(panels), free(scratch);
    npy_free(&in), npy_free(&w), npy_free(&b), npy_free(&want);
}

static void test_instance_norm(void) {
    npy_array in = load("instnorm", "in"), sc = load("instnorm", "scale"), sh = load("instnorm", "shift"),
              want = load("instnorm", "out");
    CHECK(in.data && sc.data && sh.data && want.data, "fixture missing");
    if (!in.data || !sc.data || !sh.data || !want.data) return;
    int c = (int)in.shape[0], hw = (int)(in.shape[1] * in.shape[2]);
    float *ref = malloc(want.count * sizeof(float)), *fast = malloc(want.count * sizeof(float));
    instance_norm_forward_ref(ref, in.data, sc.data, sh.data, c, hw, 1e-9f);
    instance_norm_forward(fast, in.data, sc.data, sh.data, NULL, 0, c, hw, 1e-9f, pool);
    double e_ref = max_abs_diff(ref, want.data, want.count), e_fast = max_abs_diff(fast, want.data, want.count);
    CHECK(e_ref < 1e-5 && e_fast < 1e-5, "reference off by %g, fast by %g", e_ref, e_fast);
    free(ref), free(fast);
    npy_free(&in), npy_free(&sc), npy_free(&sh), npy_free(&want);
}

static void check_reflect(const char *op, int pad) {
    npy_array in = load(op, "in"), want = load(op, "out");
    CHECK(in.data && want.data, "fixture missing");
    if (!in.data || !want.data) return;
    float *out = malloc(want.count * sizeof(float));
    pad_reflect_forward(out, in.data, (int)in.shape[0], (int)in.shape[1], (int)in.shape[2], pad);
    CHECK(memcmp(out, want.data, want.count * sizeof(float)) == 0, "%s differs", op);
    free(out);
    npy_free(&in), npy_free(&want);
}

static void test_reflect_pad1(void) { check_reflect("reflect1", 1); }
static void test_reflect_pad3(void) { check_reflect("reflect3", 3); }

static void test_relu_and_tanh(void) {
    npy_array in = load("relu", "in"), want = load("relu", "out");
    CHECK(in.data && want.data, "relu fixture missing");
    if (in.data && want.data) {
        relu_forward(in.data, in.data, in.count);
        CHECK(memcmp(in.data, want.data, in.count * sizeof(float)) == 0, "relu differs");
    }
    npy_free(&in), npy_free(&want);
    in = load("tanh", "in"), want = load("tanh", "out");
    CHECK(in.data && want.data, "tanh fixture missing");
    if (in.data && want.data) {
        tanh_forward(in.data, in.data, in.count);
        /* libm's tanhf and torch's may differ in the last ulp */
        CHECK(max_abs_diff(in.data, want.data, in.count) < 1e-6, "tanh differs");
    }
    npy_free(&in), npy_free(&want);
}

int main(void) {
    pool = cg_pool_create(2);
    RUN(test_conv7);
    RUN(test_conv3_zero_pad);
    RUN(test_conv3_stride2);
    RUN(test_deconv);
    RUN(test_instance_norm);
    RUN(test_reflect_pad1);
    RUN(test_reflect_pad3);
    RUN(test_relu_and_tanh);
    cg_pool_free(pool);
    return TEST_SUMMARY("test_ops");
}
