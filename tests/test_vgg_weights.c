/* test_vgg_weights.c: the safetensors reader/writer (src/model/safetensors.c), the VGG19
 * weight loader (src/train/vgg_weights.c) and the fixture writers the training parity test
 * shares with tools/make_train_fixtures.py (tests/train_fixtures.h). Both VGG formats must
 * give exactly the doc's hash values (so the .h5 transpose is proven), and every kind of
 * damage must be refused with one line naming the file and the tensor, never a crash. */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "cartoongan.h"
#include "model/safetensors.h"
#include "test.h"
#include "train/vgg_weights.h"
#include "train_fixtures.h"

static char tmpdir[256];
static char vgg_st[512], vgg_h5[512];
static float *expect_vgg; /* fixture_vgg_values() */

static const char *tmp(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static int contains(const char *needle) { return strstr(cg_last_error(), needle) != NULL; }

/* ---- the deterministic values ---- */

static void test_hash_contract(void) {
    /* splitmix64's first output from state 0, as every implementation gives it */
    CHECK(splitmix64(0) == 0xE220A8397B1DCDAFull, "splitmix64(0) = %llx", (unsigned long long)splitmix64(0));
    double lo = 1, hi = -1;
    for (uint64_t i = 0; i < 100000; i++) {
        double v = hash_v(7, i);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    CHECK(lo > -1 && hi < 1 && lo < -0.999 && hi > 0.999, "hash_v range [%g, %g]", lo, hi);
    /* hash_u is ((r >> 40) + 0.5) / 2^24 with r from (seed << 32) + i */
    uint64_t r = splitmix64((5ull << 32) + 9);
    CHECK(hash_u(5, 9) == ((double)(r >> 40) + 0.5) / 16777216.0, "hash_u");
    float f[3];
    fill_hash(f, 3, 2000, 0.25);
    CHECK(f[2] == (float)(hash_v(2000, 2) * 0.25), "fill_hash");

    /* summaries: small tensors repeat their values, large ones sample splitmix64 indices */
    tensor_info specs[2] = {{"a", 1, {3}}, {"b", 2, {10, 10}}};
    float data[103], out[2][2 + SUMMARY_K];
    for (int i = 0; i < 103; i++) data[i] = (float)(i % 7) - 3;
    summarize(&out[0][0], data, specs, 2);
    CHECK(out[0][0] == (float)sqrt(9 + 4 + 1) && out[0][1] == 3, "summary of a: %g %g", out[0][0], out[0][1]);
    CHECK(out[0][2] == -3 && out[0][3] == -2 && out[0][4] == -1 && out[0][5] == -3, "summary of a's values");
    size_t idx = splitmix64(1 * 1000003ull + 5) % 100;
    CHECK(out[1][2 + 5] == data[3 + idx], "summary of b's 6th value");
    CHECK(out[1][1] == 3, "max of b");
}

/* D's fixture: the doc's shapes, order, seeds and bounds. */
static void test_d_fixture(void) {
    const char *p = tmp("d.safetensors");
    CHECK(write_d_safetensors(p) == 0, "write");
    size_t n = 0;
    for (int t = 0; t < FIXTURE_D_TENSORS; t++) n += tensor_info_count(&fixture_d_tensors[t]);
    CHECK(n == 32 * 27 + 32 + 64 * 288 + 64 + 128 * 576 + 128 + 256 + 128 * 1152 + 128 + 256 * 1152 + 256 + 512 +
                   256 * 2304 + 256 + 512 + 2304 + 1,
          "D has %zu values", n);
    float *d = malloc(n * sizeof *d);
    CHECK(d && st_load(p, fixture_d_tensors, FIXTURE_D_TENSORS, d, 0, 0, "a D") == CG_OK, "%s", cg_last_error());
    if (d) {
        /* conv01.weight (t 0), conv02_1.bias (t 3), norm02.weight (t 6), norm02.bias (t 7) */
        size_t norm02 = 32 * 27 + 32 + 64 * 288 + 64 + 128 * 576 + 128;
        CHECK(d[5] == (float)(hash_v(1000, 5) / sqrt(27.0)), "conv01.weight[5]");
        CHECK(d[32 * 27 + 32 + 64 * 288 + 3] == (float)(hash_v(1003, 3) * 0.1), "conv02_1.bias[3]");
        CHECK(d[norm02 + 9] == (float)(1 + 0.1 * hash_v(1006, 9)), "norm02.weight[9]");
        CHECK(d[norm02 + 128 + 9] == (float)(hash_v(1007, 9) * 0.1), "norm02.bias[9]");
        CHECK(d[n - 1] == (float)(hash_v(1019, 0) * 0.1), "conv05.bias");
        CHECK(d[n - 2] == (float)(hash_v(1018, 2303) / sqrt(2304.0)), "conv05.weight[2303]");
    }
    free(d);
    unlink(p);
}

/* ---- VGG: both formats give exactly the formula's values ---- */

static int same_as_expected(const vgg_weights *v) {
    size_t off = 0;
    for (int l = 0; l < VGG_LAYERS; l++) {
        size_t nw = (size_t)vgg_cout[l] * vgg_cin[l] * 9;
        if (v->w[l] != v->params + off || v->b[l] != v->params + off + nw) return 0;
        off += nw + (size_t)vgg_cout[l];
    }
    return memcmp(v->params, expect_vgg, off * sizeof(float)) == 0;
}

/* A few values straight from the doc's formula, [out][in][kh][kw] */
static int spot_check(const vgg_weights *v) {
    int l = 9, ci = vgg_cin[l];
    double a = sqrt(6.0 / (ci * 9));
    size_t o = 300, c = 17, kh = 2, kw = 1, i = ((o * (size_t)ci + c) * 3 + kh) * 3 + kw;
    return v->w[l][i] == (float)(hash_v(2000 + l, i) * a) && v->b[4][77] == (float)(hash_v(2104, 77) * 0.05) &&
           v->w[0][0] == (float)(hash_v(2000, 0) * sqrt(6.0 / 27));
}

static void test_vgg_safetensors(void) {
    vgg_weights v;
    cg_status s = vgg_weights_load(&v, vgg_st);
    CHECK(s == CG_OK, "%s", cg_last_error());
    if (s != CG_OK) return;
    CHECK(v.prep == VGG_PREP_TORCH, "prep %d", v.prep);
    CHECK(same_as_expected(&v), "values differ from the formula");
    CHECK(spot_check(&v), "spot check");
    vgg_weights_free(&v);
    CHECK(v.params == NULL, "freed handle not cleared");
    vgg_weights_free(&v); /* twice is harmless */
}

static void test_vgg_h5(void) {
    const char *paths[3] = {vgg_h5, tmp("new.h5"), tmp("nonames.h5")};
    CHECK(fixture_write_vgg_h5_layout(paths[1], FIXTURE_H5_NEW_NAMES) == 0, "write");
    CHECK(fixture_write_vgg_h5_layout(paths[2], FIXTURE_H5_NO_NAMES) == 0, "write");
    for (int k = 0; k < 3; k++) {
        vgg_weights v;
        cg_status s = vgg_weights_load(&v, paths[k]);
        CHECK(s == CG_OK, "%s", cg_last_error());
        if (s != CG_OK) continue;
        CHECK(v.prep == VGG_PREP_CAFFE, "%s: prep %d", paths[k], v.prep);
        CHECK(same_as_expected(&v), "%s: values differ from the formula (transpose?)", paths[k]);
        CHECK(spot_check(&v), "%s: spot check", paths[k]);
        vgg_weights_free(&v);
    }
    unlink(paths[1]);
    unlink(paths[2]);
}

/* The full torchvision file carries the classifier too: extra tensors are skipped. */
static void test_vgg_extra_tensors(void) {
    tensor_info specs[2 * VGG_LAYERS + 2];
    char names[2 * VGG_LAYERS][32];
    specs[0] = (tensor_info){"classifier.6.weight", 2, {10, 40}};
    fixture_vgg_specs(specs + 1, names);
    specs[2 * VGG_LAYERS + 1] = (tensor_info){"classifier.6.bias", 1, {10}};
    size_t n = fixture_vgg_count();
    float *data = malloc((n + 410) * sizeof *data);
    if (!data) return;
    for (int i = 0; i < 400; i++) data[i] = 0.5f;
    memcpy(data + 400, expect_vgg, n * sizeof *data);
    for (int i = 0; i < 10; i++) data[400 + n + i] = 1;
    const char *path = tmp("full.safetensors");
    CHECK(st_save(path, specs, 2 * VGG_LAYERS + 2, data, 0, NULL) == CG_OK, "%s", cg_last_error());
    free(data);
    vgg_weights v;
    CHECK(vgg_weights_load(&v, path) == CG_OK, "%s", cg_last_error());
    CHECK(v.params && same_as_expected(&v), "values differ");
    vgg_weights_free(&v);
    unlink(path);
}

/* ---- generic safetensors ---- */

static const tensor_info small[3] = {{"a.weight", 2, {2, 3}}, {"b", 1, {5}}, {"scalar", 0, {0}}};
static const float small_data[12] = {0.5f, -1.25f, 3, 0, -0.0f, 1024, 0.125f, -2, 7, 65504, 1.0f / 1024, -6e-5f};

static void test_st_roundtrip(void) {
    const char *p32 = tmp("rt32.safetensors"), *p16 = tmp("rt16.safetensors");
    CHECK(tensor_info_count(&small[0]) == 6 && tensor_info_count(&small[2]) == 1, "counts");
    CHECK(st_save(p32, small, 3, small_data, 0, "\"model\":\"x\\\"y\",\"step\":\"12\"") == CG_OK, "%s", cg_last_error());
    CHECK(st_save(p16, small, 3, small_data, 1, NULL) == CG_OK, "%s", cg_last_error());
    float got[12];
    CHECK(st_load(p32, small, 3, got, 0, 0, "a test") == CG_OK, "%s", cg_last_error());
    CHECK(memcmp(got, small_data, sizeof got) == 0, "F32 round trip differs");
    memset(got, 0, sizeof got);
    CHECK(st_load(p16, small, 3, got, 0, 0, "a test") == CG_OK, "%s", cg_last_error());
    int close = 1;
    for (int i = 0; i < 12; i++) close &= fabsf(got[i] - small_data[i]) <= fabsf(small_data[i]) / 2048 + 0x1p-24f;
    CHECK(close, "F16 round trip");
    CHECK(got[0] == 0.5f && got[1] == -1.25f && got[9] == 65504, "F16 exact values");
    /* the same from memory */
    FILE *f = fopen(p32, "rb");
    unsigned char buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    memset(got, 0, sizeof got);
    CHECK(st_load_memory(buf, n, "mem", small, 3, got, 0, 0, NULL) == CG_OK, "%s", cg_last_error());
    CHECK(memcmp(got, small_data, sizeof got) == 0, "memory load differs");
    CHECK(st_load_memory(buf, n - 1, "mem", small, 3, got, 0, 0, NULL) != CG_OK && contains("mem: "), "%s", cg_last_error());
    CHECK(st_load_memory(buf, n, "mem", small, 3, got, 0, 16, NULL) == CG_ERR_LIMIT, "%s", cg_last_error());
    /* the data starts 8-byte aligned */
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    CHECK(hlen % 8 == 0 && n == 8 + hlen + sizeof small_data, "layout: header %llu, file %zu", (unsigned long long)hlen, n);

    char val[64];
    CHECK(st_read_metadata(p32, "model", val, sizeof val) == CG_OK && strcmp(val, "x\"y") == 0, "model '%s' %s", val, cg_last_error());
    CHECK(st_read_metadata(p32, "step", val, sizeof val) == CG_OK && strcmp(val, "12") == 0, "step '%s'", val);
    CHECK(st_read_metadata(p16, "format", val, sizeof val) == CG_OK && strcmp(val, "pt") == 0, "format '%s'", val);
    CHECK(st_read_metadata(p16, "model", val, sizeof val) == CG_ERR_FORMAT && contains("model"), "%s", cg_last_error());
    CHECK(st_read_metadata(p32, "model", val, 3) == CG_ERR_LIMIT, "%s", cg_last_error());
    CHECK(st_read_metadata(tmp("nonexistent"), "model", val, sizeof val) == CG_ERR_IO, "%s", cg_last_error());
    /* the file loaders' size limit */
    CHECK(st_load(p32, small, 3, got, 0, 16, NULL) == CG_ERR_LIMIT, "%s", cg_last_error());
    unlink(p32);
    unlink(p16);
}

/* A file with exactly this header (padded to 8 bytes) and `data_bytes` bytes of 0x3f. */
static void write_raw(const char *path, const char *header, size_t data_bytes) {
    size_t h = strlen(header), pad = (8 - h % 8) % 8;
    FILE *f = fopen(path, "wb");
    if (!f) return;
    for (int i = 0; i < 8; i++) fputc((int)(((h + pad) >> (8 * i)) & 0xff), f);
    fputs(header, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0x3f, f);
    fclose(f);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

static void copy_prefix(const char *from, const char *to, size_t n) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    size_t k;
    while (in && out && n && (k = fread(buf, 1, n < sizeof buf ? n : sizeof buf, in)) > 0) fwrite(buf, 1, k, out), n -= k;
    if (in) fclose(in);
    if (out) fclose(out);
}

static long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* st_load of `path` against `small` fails with status want and a message holding both needles. */
static void st_fails(const char *path, int allow_extra, cg_status want, const char *n1, const char *n2) {
    float got[12];
    cg_status s = st_load(path, small, 3, got, allow_extra, 0, "a test");
    CHECK(s == want, "%s: status %d (%s), want %d", path, s, cg_last_error(), want);
    CHECK(contains(path) && contains(n1) && contains(n2), "message '%s' lacks '%s' / '%s'", cg_last_error(), n1, n2);
}

static void test_st_damage(void) {
    const char *p = tmp("bad.safetensors");
    const char *a = "\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}";
    const char *b = "\"b\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[24,44]}";
    const char *sc = "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[44,48]}";
    char h[1024];

    snprintf(h, sizeof h, "{%s,%s,%s}", a, b, sc);
    write_raw(p, h, 48);
    float got[12];
    CHECK(st_load(p, small, 3, got, 0, 0, NULL) == CG_OK, "hand-made file: %s", cg_last_error());

    snprintf(h, sizeof h, "{\"__metadata__\":{\"k\":\"v\"},%s,%s}", a, sc); /* b missing */
    write_raw(p, h, 48);
    st_fails(p, 0, CG_ERR_WEIGHTS, "missing tensor b", "(not a test?)");

    snprintf(h, sizeof h, "{%s,%s,%s}", a, "\"b\":{\"dtype\":\"F32\",\"shape\":[5,1],\"data_offsets\":[24,44]}", sc);
    write_raw(p, h, 48);
    st_fails(p, 0, CG_ERR_WEIGHTS, "tensor b has shape [5,1]", "expected [5]");

    snprintf(h, sizeof h, "{%s,%s,%s}", a, "\"b\":{\"dtype\":\"I64\",\"shape\":[5],\"data_offsets\":[24,64]}", sc);
    write_raw(p, h, 64);
    st_fails(p, 0, CG_ERR_WEIGHTS, "tensor b has dtype 'I64'", "expected F32 or F16");

    /* an extra tensor: refused, or skipped when allowed */
    snprintf(h, sizeof h, "{\"extra\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[48,50],\"x\":[{}]},%s,%s,%s}", a, b, sc);
    write_raw(p, h, 50);
    st_fails(p, 0, CG_ERR_WEIGHTS, "unexpected tensor 'extra'", "(not a test)");
    CHECK(st_load(p, small, 3, got, 1, 0, NULL) == CG_OK, "extra allowed: %s", cg_last_error());
    uint32_t bits = 0x3f3f3f3f;
    float want;
    memcpy(&want, &bits, sizeof want);
    CHECK(got[0] == want && got[11] == want, "value %g", got[0]);

    snprintf(h, sizeof h, "{%s,%s,%s,%s}", a, b, sc, b);
    write_raw(p, h, 48);
    st_fails(p, 1, CG_ERR_WEIGHTS, "tensor b", "twice");

    snprintf(h, sizeof h, "{%s,%s,%s}", a, b, sc);
    write_raw(p, h, 40); /* truncated: the data stops inside b */
    st_fails(p, 0, CG_ERR_WEIGHTS, "tensor b", "truncated");

    snprintf(h, sizeof h, "{%s,%s,%s", a, b, sc);
    write_raw(p, h, 48);
    st_fails(p, 0, CG_ERR_FORMAT, "malformed", "header");

    write_raw(p, "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},\"\\u00e9\\ud83d\\ude00\\q\":1}", 24);
    st_fails(p, 0, CG_ERR_FORMAT, "malformed", "header");

    write_bytes(p, "", 0);
    st_fails(p, 0, CG_ERR_FORMAT, "too short", "safetensors");
    write_bytes(p, "\xff\xff\xff\xff\0\0\0\0{}", 10);
    st_fails(p, 0, CG_ERR_FORMAT, "not a safetensors", "header length");

    /* a NaN (and an infinity) in a tensor is refused, naming it */
    float bad[12];
    memcpy(bad, small_data, sizeof bad);
    bad[7] = NAN;
    CHECK(st_save(p, small, 3, bad, 0, NULL) == CG_OK, "%s", cg_last_error());
    st_fails(p, 0, CG_ERR_WEIGHTS, "tensor b", "NaN");
    bad[7] = 7, bad[11] = INFINITY;
    CHECK(st_save(p, small, 3, bad, 1, NULL) == CG_OK, "%s", cg_last_error());
    st_fails(p, 0, CG_ERR_WEIGHTS, "tensor scalar", "infinity");
    unlink(p);
}

/* ---- VGG: damaged and foreign files ---- */

static void vgg_fails(const char *path, cg_status want, const char *n1, const char *n2) {
    vgg_weights v;
    memset(&v, 0x55, sizeof v);
    cg_status s = vgg_weights_load(&v, path);
    CHECK(s == want, "%s: status %d (%s), want %d", path, s, cg_last_error(), want);
    CHECK(v.params == NULL, "%s: handle not cleared", path);
    CHECK(contains(path) && contains(n1) && contains(n2), "message '%s' lacks '%s' / '%s'", cg_last_error(), n1, n2);
    vgg_weights_free(&v);
}

static void test_vgg_safetensors_damage(void) {
    const char *p = tmp("vggbad.safetensors");
    char h[512];
    const char *w0 = "\"features.0.weight\":{\"dtype\":\"F32\",\"shape\":[64,3,3,3],\"data_offsets\":[0,6912]}";
    const char *b0 = "\"features.0.bias\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[6912,7168]}";
    snprintf(h, sizeof h, "{%s,%s}", w0, b0);
    write_raw(p, h, 7168);
    vgg_fails(p, CG_ERR_WEIGHTS, "missing tensor features.2.weight", "(not a VGG19?)");
    snprintf(h, sizeof h, "{%s,%s}", "\"features.0.weight\":{\"dtype\":\"F32\",\"shape\":[64,3,3,4],\"data_offsets\":[0,9216]}", b0);
    write_raw(p, h, 9216);
    vgg_fails(p, CG_ERR_WEIGHTS, "features.0.weight has shape [64,3,3,4]", "expected [64,3,3,3]");
    snprintf(h, sizeof h, "{%s,%s}", w0, "\"features.0.bias\":{\"dtype\":\"I64\",\"shape\":[64],\"data_offsets\":[6912,7424]}");
    write_raw(p, h, 7424);
    vgg_fails(p, CG_ERR_WEIGHTS, "features.0.bias has dtype 'I64'", "expected F32 or F16");

    copy_prefix(vgg_st, p, (size_t)file_size(vgg_st) / 2);
    vgg_fails(p, CG_ERR_WEIGHTS, "features.", "truncated");
    copy_prefix(vgg_st, p, 100);
    vgg_fails(p, CG_ERR_FORMAT, "not VGG19 weights", "neither");

    write_bytes(p, "", 0);
    vgg_fails(p, CG_ERR_FORMAT, "not VGG19 weights", "neither");
    unsigned char rnd[4096];
    for (size_t i = 0; i < sizeof rnd; i++) rnd[i] = (unsigned char)(splitmix64(i) >> 56);
    write_bytes(p, rnd, sizeof rnd);
    vgg_fails(p, CG_ERR_FORMAT, "not VGG19 weights", "neither");
    memcpy(rnd, "\x89HDF\r\n\x1a\n", 8); /* the signature, then garbage */
    write_bytes(p, rnd, sizeof rnd);
    vgg_fails(p, CG_ERR_FORMAT, "cannot open as HDF5", "damaged");
    vgg_fails(tmp("nonexistent.h5"), CG_ERR_IO, "cannot open", "No such file");
    vgg_fails(tmpdir, CG_ERR_IO, "not a regular file", "");
    unlink(p);
}

/* A small .h5 with block1_conv1 only (kernel of shape kd, type ktype, a NaN when nan),
 * weight_names listing `kname`, and a group `other`. */
static void write_small_h5(const char *path, const hsize_t *kd, hid_t ktype, int nan, const char *kname,
                           const char *other) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return;
    hid_t g = H5Gcreate2(f, "block1_conv1", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *names[2] = {kname, "block1_conv1_b_1:0"};
    fixture_h5_strings(g, "weight_names", names, 2);
    size_t n = (size_t)(kd[0] * kd[1] * kd[2] * kd[3]);
    float *k = calloc(n, sizeof *k);
    if (nan) k[n - 1] = NAN;
    hid_t sp = H5Screate_simple(4, kd, NULL);
    hid_t d = H5Dcreate2(g, "block1_conv1_W_1:0", ktype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, k);
    H5Dclose(d);
    H5Sclose(sp);
    hsize_t bd = 64;
    fixture_h5_f32(g, "block1_conv1_b_1:0", k, &bd, 1);
    free(k);
    H5Gclose(g);
    if (other) H5Gclose(H5Gcreate2(f, other, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(f);
}

static void test_vgg_h5_damage(void) {
    const char *p = tmp("bad.h5");
    hsize_t good[4] = {3, 3, 3, 64}, wrong[4] = {3, 3, 3, 32};

    /* an .h5 that is something else */
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(H5Gcreate2(f, "dense_1", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(f);
    vgg_fails(p, CG_ERR_WEIGHTS, "block1_conv1", "not a VGG19");

    write_small_h5(p, wrong, H5T_IEEE_F32LE, 0, "block1_conv1_W_1:0", NULL);
    vgg_fails(p, CG_ERR_WEIGHTS, "block1_conv1/block1_conv1_W_1:0 has shape [3,3,3,32]", "expected [3,3,3,64]");
    write_small_h5(p, good, H5T_IEEE_F64LE, 0, "block1_conv1_W_1:0", NULL);
    vgg_fails(p, CG_ERR_WEIGHTS, "block1_conv1/block1_conv1_W_1:0 has type float64", "expected float32");
    write_small_h5(p, good, H5T_STD_I32LE, 0, "block1_conv1_W_1:0", NULL);
    vgg_fails(p, CG_ERR_WEIGHTS, "block1_conv1_W_1:0 has type int32", "expected float32");
    write_small_h5(p, good, H5T_IEEE_F32LE, 1, "block1_conv1_W_1:0", NULL);
    vgg_fails(p, CG_ERR_WEIGHTS, "block1_conv1/block1_conv1_W_1:0", "NaN");
    write_small_h5(p, good, H5T_IEEE_F32LE, 0, "block1_conv1/kernel:0", NULL);
    vgg_fails(p, CG_ERR_WEIGHTS, "missing dataset", "block1_conv1/block1_conv1/kernel:0");
    /* block1_conv1 is fine; a VGG16-like file would stop at a later group */
    write_small_h5(p, good, H5T_IEEE_F32LE, 0, "block1_conv1_W_1:0", "block5_conv1");
    vgg_fails(p, CG_ERR_WEIGHTS, "missing group block1_conv2", "not a VGG19");
    /* big-endian float32 is float32: it converts */
    write_small_h5(p, good, H5T_IEEE_F32BE, 0, "block1_conv1_W_1:0", NULL);
    vgg_fails(p, CG_ERR_WEIGHTS, "missing group block1_conv2", "not a VGG19");

    /* the real layout, truncated */
    copy_prefix(vgg_h5, p, (size_t)file_size(vgg_h5) / 2);
    vgg_fails(p, CG_ERR_FORMAT, "HDF5", "truncated");
    copy_prefix(vgg_h5, p, 3000);
    vgg_fails(p, CG_ERR_FORMAT, "HDF5", "truncated");
    unlink(p);
}

int main(void) {
    if (test_make_dir(tmpdir, sizeof tmpdir, "cg_test_vgg_weights") != 0) return 1;
    snprintf(vgg_st, sizeof vgg_st, "%s/vgg.safetensors", tmpdir);
    snprintf(vgg_h5, sizeof vgg_h5, "%s/vgg.h5", tmpdir);
    expect_vgg = fixture_vgg_values();
    if (!expect_vgg || write_vgg_safetensors(vgg_st) != 0 || write_vgg_h5(vgg_h5) != 0) {
        printf("test_vgg_weights: 0 passed, 1 failed\n");
        test_remove_dir(tmpdir);
        return 1;
    }
    RUN(test_hash_contract);
    RUN(test_d_fixture);
    RUN(test_st_roundtrip);
    RUN(test_st_damage);
    RUN(test_vgg_safetensors);
    RUN(test_vgg_h5);
    RUN(test_vgg_extra_tensors);
    RUN(test_vgg_safetensors_damage);
    RUN(test_vgg_h5_damage);
    free(expect_vgg);
    test_remove_dir(tmpdir);
    return TEST_SUMMARY("test_vgg_weights");
}
