/* test_weights.c: the weights loaders. Both formats (.npy directory, .safetensors) must
 * give identical parameters, and every kind of damage must be refused with a message that
 * names the file and the tensor, never a crash. The one-image loader (model_load_at_use),
 * which maps a file laid out as memory instead of reading it, must give the same
 * parameters and refuse the same damage with the same messages. The style's weights come from
 * $CARTOONGAN_WEIGHTS (set by `make test`); the damaged copies are made in a temp folder. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cartoongan.h"
#include "model/generator.h"
#include "model/model.h"
#include "model/npy.h"
#include "test.h"

static char src_path[4096], tmpdir[256];

static size_t count(const gen_tensor_info *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

/* Writes every tensor of m as .npy into dir, replacing `odd` (if any) by `odd_data` with
 * shape odd_shape. */
static void write_npy_dir(const cg_model *m, const char *dir, const char *odd, const long *odd_shape, int odd_ndim) {
    mkdir(dir, 0755);
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        const gen_tensor_info *t = &gen_tensors[i];
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.npy", dir, t->name);
        long shape[4];
        for (int d = 0; d < t->ndim; d++) shape[d] = t->shape[d];
        if (odd && strcmp(odd, t->name) == 0)
            npy_save(path, cg_model_tensor(m, t->name), odd_shape, odd_ndim);
        else
            npy_save(path, cg_model_tensor(m, t->name), shape, t->ndim);
    }
}

static int same_params(const cg_model *a, const cg_model *b) {
    for (int i = 0; i < GEN_NUM_TENSORS; i++)
        if (memcmp(cg_model_tensor(a, gen_tensors[i].name), cg_model_tensor(b, gen_tensors[i].name),
                   count(&gen_tensors[i]) * sizeof(float)) != 0)
            return 0;
    return 1;
}

static cg_model *base;

static void test_formats_agree(void) {
    char dir[512], st[512];
    snprintf(dir, sizeof dir, "%s/npy", tmpdir);
    snprintf(st, sizeof st, "%s/copy.safetensors", tmpdir);
    write_npy_dir(base, dir, NULL, NULL, 0);
    cg_model *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    CHECK(cg_model_load(&a, dir) == CG_OK, "%s", cg_last_error());
    CHECK(cg_model_save(base, st) == CG_OK, "%s", cg_last_error());
    CHECK(cg_model_load(&b, st) == CG_OK, "%s", cg_last_error());
    if (a && b) CHECK(same_params(a, base) && same_params(b, base), "parameters differ after a round trip");
    /* one image: the file st_save wrote is mapped, the .npy folder read */
    CHECK(model_load_at_use(&c, st) == CG_OK, "%s", cg_last_error());
    CHECK(model_load_at_use(&d, dir) == CG_OK, "%s", cg_last_error());
    if (c && d) {
        CHECK(c->map != NULL && d->map == NULL, "mapped: file %d, folder %d", c->map != NULL, d->map != NULL);
        CHECK(same_params(c, base) && same_params(d, base), "parameters differ loaded for one image");
    }
    cg_model_free(a);
    cg_model_free(b);
    cg_model_free(c);
    cg_model_free(d);
}

/* The browser's weights: F16 files (cg_model_save_fp16) load, widened to within half
 * precision of the float32 ones, and loading from memory gives what loading the file gives. */
static void test_fp16_and_memory(void) {
    char st[512];
    snprintf(st, sizeof st, "%s/half.safetensors", tmpdir);
    CHECK(cg_model_save_fp16(base, st) == CG_OK, "%s", cg_last_error());
    cg_model *h = NULL, *mem = NULL, *one = NULL;
    CHECK(cg_model_load(&h, st) == CG_OK, "%s", cg_last_error());
    /* F16 cannot be mapped as floats: read and widened */
    CHECK(model_load_at_use(&one, st) == CG_OK, "%s", cg_last_error());
    if (h && one) CHECK(one->map == NULL && same_params(h, one), "an F16 file loaded for one image differs");
    cg_model_free(one);
    FILE *f = fopen(st, "rb");
    static unsigned char buf[24u << 20];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    CHECK(n > 0 && n < sizeof buf, "read %zu bytes", n);
    CHECK(n < (size_t)GEN_NUM_PARAMS * 2 + 16384, "an F16 file of %zu bytes is not half the size", n);
    CHECK(cg_model_load_memory(&mem, buf, n, "half") == CG_OK, "%s", cg_last_error());
    if (h && mem) CHECK(same_params(h, mem), "loading from memory differs from loading the file");
    double worst = 0;
    for (int i = 0; h && i < GEN_NUM_TENSORS; i++) {
        const float *a = cg_model_tensor(base, gen_tensors[i].name), *b = cg_model_tensor(h, gen_tensors[i].name);
        for (size_t k = 0; k < count(&gen_tensors[i]); k++) {
            /* half precision: 11 significant bits, or 2^-24 absolute below 2^-14 */
            double e = fabs((double)a[k] - b[k]), tol = fabs(a[k]) * (1.0 / 2048) + 0x1p-24;
            if (e / tol > worst) worst = e / tol;
        }
    }
    CHECK(worst <= 1.0, "a widened value is %g rounding steps off", worst);
    cg_model_free(mem);
    /* damage through the memory path: the same checks, the given name in the message */
    CHECK(cg_model_load_memory(&mem, buf, 1000, "cut") == CG_ERR_FORMAT && strstr(cg_last_error(), "cut: "),
          "%s", cg_last_error());
    CHECK(mem == NULL, "handle not cleared");
    cg_model_free(h);
}

/* Both loaders refuse it alike: the status and the message. */
static void expect_fail(const char *path, cg_status want, const char *needle1, const char *needle2) {
    cg_model *m = (cg_model *)1;
    cg_status s = cg_model_load(&m, path);
    CHECK(s == want, "%s: status %d (%s), want %d", path, s, cg_last_error(), want);
    CHECK(m == NULL, "handle not cleared");
    CHECK(strstr(cg_last_error(), needle1) && strstr(cg_last_error(), needle2),
          "message '%s' lacks '%s' / '%s'", cg_last_error(), needle1, needle2);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", cg_last_error());
    m = (cg_model *)1;
    s = model_load_at_use(&m, path);
    CHECK(s == want && m == NULL && !strcmp(cg_last_error(), msg), "%s for one image: status %d, '%s'", path, s,
          cg_last_error());
}

static void test_npy_dir_damage(void) {
    char dir[512], path[1024];
    long wrong[4] = {256, 256, 3, 1};
    snprintf(dir, sizeof dir, "%s/wrongshape", tmpdir);
    write_npy_dir(base, dir, "conv04_1.weight", wrong, 4);
    expect_fail(dir, CG_ERR_WEIGHTS, "conv04_1.weight", "[256,256,3,1]");

    snprintf(dir, sizeof dir, "%s/missing", tmpdir);
    write_npy_dir(base, dir, NULL, NULL, 0);
    snprintf(path, sizeof path, "%s/in07_2.shift.npy", dir);
    unlink(path);
    expect_fail(dir, CG_ERR_WEIGHTS, "in07_2.shift", "missing");

    snprintf(dir, sizeof dir, "%s/truncated", tmpdir);
    write_npy_dir(base, dir, NULL, NULL, 0);
    snprintf(path, sizeof path, "%s/deconv01_1.weight.npy", dir);
    CHECK(truncate(path, 5000) == 0, "truncate");
    expect_fail(dir, CG_ERR_WEIGHTS, "deconv01_1.weight.npy", "truncated");

    snprintf(dir, sizeof dir, "%s/garbage", tmpdir);
    write_npy_dir(base, dir, NULL, NULL, 0);
    snprintf(path, sizeof path, "%s/conv01_1.bias.npy", dir);
    FILE *f = fopen(path, "wb");
    fputs("hello, not numpy", f);
    fclose(f);
    expect_fail(dir, CG_ERR_WEIGHTS, "conv01_1.bias.npy", "not a .npy");
}

static void test_safetensors_damage(void) {
    char st[512], bad[512];
    snprintf(st, sizeof st, "%s/good.safetensors", tmpdir);
    CHECK(cg_model_save(base, st) == CG_OK, "%s", cg_last_error());
    struct stat sb;
    stat(st, &sb);

    /* Truncated: the header promises data the file no longer has. */
    snprintf(bad, sizeof bad, "%s/trunc.safetensors", tmpdir);
    FILE *in = fopen(st, "rb"), *out = fopen(bad, "wb");
    char buf[65536];
    size_t left = (size_t)sb.st_size / 2, n;
    while (left && (n = fread(buf, 1, left < sizeof buf ? left : sizeof buf, in)) > 0) fwrite(buf, 1, n, out), left -= n;
    fclose(in), fclose(out);
    expect_fail(bad, CG_ERR_WEIGHTS, "trunc.safetensors", "truncated");

    /* Only the 8-byte length, claiming a huge header. */
    snprintf(bad, sizeof bad, "%s/hdr.safetensors", tmpdir);
    out = fopen(bad, "wb");
    fwrite("\xff\xff\xff\xff\x00\x00\x00\x00", 1, 8, out);
    fclose(out);
    expect_fail(bad, CG_ERR_FORMAT, "hdr.safetensors", "not a safetensors");

    /* Empty file, and a JPEG under a weights name. */
    snprintf(bad, sizeof bad, "%s/empty.safetensors", tmpdir);
    fclose(fopen(bad, "wb"));
    expect_fail(bad, CG_ERR_FORMAT, "empty.safetensors", "too short");

    /* A valid header with a tensor whose shape is wrong. */
    snprintf(bad, sizeof bad, "%s/shape.safetensors", tmpdir);
    in = fopen(st, "rb");
    out = fopen(bad, "wb");
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in), fclose(out);
    FILE *rw = fopen(bad, "r+b");
    char hdr[16384];
    fseek(rw, 8, SEEK_SET);
    size_t hn = fread(hdr, 1, sizeof hdr - 1, rw);
    hdr[hn] = 0;
    char *p = strstr(hdr, "\"conv02_1.weight\":{\"dtype\":\"F32\",\"shape\":[128,64,3,3]");
    CHECK(p != NULL, "header layout");
    if (p) {
        p = strstr(p, "[128,64,3,3]");
        p[1] = '6', p[2] = '4', p[3] = ',', p[4] = '2'; /* [64,2864,... keeps the length */
        fseek(rw, 8 + (p - hdr), SEEK_SET);
        fwrite(p, 1, 12, rw);
    }
    fclose(rw);
    expect_fail(bad, CG_ERR_WEIGHTS, "conv02_1.weight", "expected [128,64,3,3]");

    /* A NaN in the middle of a tensor (the header intact) */
    snprintf(bad, sizeof bad, "%s/nan.safetensors", tmpdir);
    in = fopen(st, "rb");
    out = fopen(bad, "wb");
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in), fclose(out);
    rw = fopen(bad, "r+b");
    float nan = NAN;
    fseek(rw, -4 * 1000, SEEK_END); /* in the last tensors, in13_1's */
    fwrite(&nan, sizeof nan, 1, rw);
    fclose(rw);
    expect_fail(bad, CG_ERR_WEIGHTS, "nan.safetensors", "NaN or infinity");

    expect_fail("/nonexistent/weights.safetensors", CG_ERR_IO, "/nonexistent/weights.safetensors", "No such file");
}

int main(void) {
    const char *dir = getenv("CARTOONGAN_WEIGHTS");
    snprintf(src_path, sizeof src_path, "%s/hayao.safetensors", dir ? dir : "weights");
    if (cg_model_load(&base, src_path) != CG_OK) {
        fprintf(stderr, "test_weights: cannot load %s: %s (run `make weights`)\n", src_path, cg_last_error());
        printf("test_weights: 0 passed, 1 failed\n");
        return 1;
    }
    if (test_make_dir(tmpdir, sizeof tmpdir, "cg_test_weights") != 0) return 1;
    RUN(test_formats_agree);
    RUN(test_npy_dir_damage);
    RUN(test_safetensors_damage);
    RUN(test_fp16_and_memory);
    cg_model_free(base);
    test_remove_dir(tmpdir);
    return TEST_SUMMARY("test_weights");
}
