/* test_image.c: tests for src/io (decoding, conversions, EXIF orientation, limits, bad
 * input, atomic saving, Lanczos resizing). The sample files in tests/data/images/ come
 * from tools/make_test_images.sh, whose comments give the pixel values checked here; the
 * damaged JPEGs (jpeg_*), djpeg's decodes of them (jpeg_*.ppm) and the eXIf PNG from
 * tools/make_jpeg_fixtures.sh. Run from the repository root. */
#include <stdio.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jpeglib.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/image.h"
#include "status.h"
#include "test.h"

#define DATA "tests/data/images/"

static char tmpdir[64];

/* ---- helpers ---------------------------------------------------------------------------- */

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

static const uint8_t *px(const cg_image *im, int x, int y) { return im->rgb + ((size_t)y * im->w + x) * 3; }

static int near(const uint8_t *p, int r, int g, int b, int tol) {
    return abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol;
}

#define CHECK_PX(im, x, y, r, g, b, tol)                                                    \
    do {                                                                                   \
        const uint8_t *p_ = px(im, x, y);                                                  \
        CHECK(near(p_, r, g, b, tol), "pixel (%d,%d) is (%d,%d,%d), want (%d,%d,%d)+-%d", \
              x, y, p_[0], p_[1], p_[2], r, g, b, tol);                                    \
    } while (0)

static double psnr(const cg_image *a, const cg_image *b) {
    if (a->w != b->w || a->h != b->h) return 0.0;
    double se = 0.0;
    size_t n = (size_t)a->w * a->h * 3;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a->rgb[i] - b->rgb[i];
        se += d * d;
    }
    if (se == 0.0) return 99.0;
    return 10.0 * log10(255.0 * 255.0 / (se / n));
}

/* A smooth synthetic picture: what photos look like to a lossy codec. */
static cg_image make_smooth(int w, int h) {
    cg_image im = {.w = w, .h = h, .rgb = malloc((size_t)w * h * 3)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = im.rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(255 * x / (w - 1));
            p[1] = (uint8_t)(255 * y / (h - 1));
            p[2] = (uint8_t)(128 + 100 * sin(x * 0.2) * cos(y * 0.15));
        }
    return im;
}

static cg_image make_noise(int w, int h, uint32_t seed) {
    cg_image im = {.w = w, .h = h, .rgb = malloc((size_t)w * h * 3)};
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        seed = seed * 1664525u + 1013904223u;
        im.rgb[i] = (uint8_t)(seed >> 24);
    }
    return im;
}

static int count_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp-")) n++;
    closedir(d);
    return n;
}

static void path_in_tmp(char *buf, size_t n, const char *rel) { snprintf(buf, n, "%s/%s", tmpdir, rel); }

/* ---- formats ---------------------------------------------------------------------------- */

static void test_format_detection(void) {
    CHECK(cg_format_from_path("a.jpg") == CG_FMT_JPEG, "jpg");
    CHECK(cg_format_from_path("dir/A.JPEG") == CG_FMT_JPEG, "JPEG");
    CHECK(cg_format_from_path("x.Png") == CG_FMT_PNG, "png");
    CHECK(cg_format_from_path("x.webp") == CG_FMT_WEBP, "webp");
    CHECK(cg_format_from_path("x.gif") == CG_FMT_UNKNOWN, "gif");
    CHECK(cg_format_from_path("noext") == CG_FMT_UNKNOWN, "no extension");
    CHECK(cg_format_from_path("dir.png/file") == CG_FMT_UNKNOWN, "dot in directory");
    const uint8_t jpg[] = {0xFF, 0xD8, 0xFF, 0xE0}, png[] = {0x89, 'P', 'N', 'G', 13, 10, 26, 10};
    const uint8_t webp[] = "RIFF\x10\0\0\0WEBPVP8 ";
    CHECK(cg_format_sniff(jpg, sizeof jpg) == CG_FMT_JPEG, "jpeg magic");
    CHECK(cg_format_sniff(png, sizeof png) == CG_FMT_PNG, "png magic");
    CHECK(cg_format_sniff(webp, 16) == CG_FMT_WEBP, "webp magic");
    CHECK(cg_format_sniff(png, 4) == CG_FMT_UNKNOWN, "short png magic");
    CHECK(cg_format_sniff((const uint8_t *)"hello", 5) == CG_FMT_UNKNOWN, "text");

    cg_image im;
    const uint8_t gif[] = "GIF89a\x01\0\x01\0";
    CHECK(cg_image_decode(&im, gif, sizeof gif, "anim.gif", 0) == CG_ERR_FORMAT, "gif refused");
    CHECK(strstr(cg_last_error(), "anim.gif: not a JPEG, PNG, WebP, HEIC or AVIF image (it is a GIF image)"),
          "%s", cg_last_error());
}

/* ---- round trips ------------------------------------------------------------------------ */

static void roundtrip(cg_format fmt, const char *name, const cg_image *src, double min_psnr) {
    char path[256];
    path_in_tmp(path, sizeof path, name);
    cg_status s = cg_image_save(src, path, fmt);
    CHECK(s == CG_OK, "save %s: %s", name, cg_last_error());
    cg_image back;
    s = cg_image_load(&back, path, 0);
    CHECK(s == CG_OK, "load %s: %s", name, cg_last_error());
    if (s != CG_OK) return;
    CHECK(back.w == src->w && back.h == src->h, "%s: size %dx%d", name, back.w, back.h);
    double q = psnr(src, &back);
    CHECK(q >= min_psnr, "%s: PSNR %.2f dB < %.1f", name, q, min_psnr);
    size_t n;
    uint8_t *bytes = read_all(path, &n);
    CHECK(bytes && cg_format_sniff(bytes, n) == (fmt ? fmt : cg_format_from_path(path)),
          "%s: written in the wrong format", name);
    free(bytes);
    cg_image_free(&back);
    CHECK(count_temp_files(tmpdir) == 0, "temp file left behind");
}

static void test_roundtrip_png(void) {
    cg_image a = make_noise(37, 23, 1);
    roundtrip(CG_FMT_PNG, "noise.png", &a, 99.0); /* exact */
    cg_image one = make_noise(1, 1, 2);
    roundtrip(CG_FMT_PNG, "one.png", &one, 99.0);
    cg_image_free(&a);
    cg_image_free(&one);
}

static void test_roundtrip_jpeg(void) {
    cg_image a = make_smooth(67, 45);
    roundtrip(CG_FMT_JPEG, "smooth.jpg", &a, 38.0);
    roundtrip(CG_FMT_UNKNOWN, "by_extension.jpeg", &a, 38.0);
    cg_image_free(&a);
}

static void test_roundtrip_webp(void) {
    cg_image a = make_smooth(67, 45);
    roundtrip(CG_FMT_WEBP, "smooth.webp", &a, 34.0);
    roundtrip(CG_FMT_UNKNOWN, "by_extension.webp", &a, 34.0);
    cg_image_free(&a);
}

/* ---- conversions ------------------------------------------------------------------------ */

static cg_image load_ok(const char *file, int w, int h) {
    cg_image im = {.w = 0, .h = 0, .rgb = NULL};
    char path[256];
    snprintf(path, sizeof path, DATA "%s", file);
    cg_status s = cg_image_load(&im, path, 0);
    CHECK(s == CG_OK, "%s: %s", file, cg_last_error());
    CHECK(s != CG_OK || (im.w == w && im.h == h), "%s: size %dx%d, want %dx%d", file, im.w, im.h, w, h);
    if (s != CG_OK || im.w != w || im.h != h) {
        cg_image_free(&im);
        /* Returned images always hold w*h pixels so the checks below cannot overrun. */
        im.w = w, im.h = h, im.rgb = calloc((size_t)w * h, 3);
    }
    return im;
}

static void test_png_conversions(void) {
    cg_image im = load_ok("gray.png", 4, 1);
    CHECK_PX(&im, 0, 0, 10, 10, 10, 0);
    CHECK_PX(&im, 1, 0, 100, 100, 100, 0);
    CHECK_PX(&im, 2, 0, 200, 200, 200, 0);
    CHECK_PX(&im, 3, 0, 255, 255, 255, 0);
    cg_image_free(&im);

    im = load_ok("gray1.png", 4, 1);
    CHECK_PX(&im, 0, 0, 0, 0, 0, 0);
    CHECK_PX(&im, 1, 0, 255, 255, 255, 0);
    CHECK_PX(&im, 2, 0, 255, 255, 255, 0);
    CHECK_PX(&im, 3, 0, 0, 0, 0, 0);
    cg_image_free(&im);

    /* Alpha is composited onto white: 0% -> white, ~50% black -> mid gray. */
    im = load_ok("gray_alpha.png", 4, 1);
    CHECK_PX(&im, 0, 0, 50, 50, 50, 0);
    CHECK_PX(&im, 1, 0, 255, 255, 255, 0);
    CHECK_PX(&im, 2, 0, 128, 128, 128, 1);
    CHECK_PX(&im, 3, 0, 200, 200, 200, 0);
    cg_image_free(&im);

    im = load_ok("palette.png", 4, 1);
    CHECK_PX(&im, 0, 0, 255, 0, 0, 0);
    CHECK_PX(&im, 1, 0, 0, 255, 0, 0);
    CHECK_PX(&im, 2, 0, 0, 0, 255, 0);
    CHECK_PX(&im, 3, 0, 10, 20, 30, 0);
    cg_image_free(&im);

    im = load_ok("palette_trns.png", 4, 1);
    CHECK_PX(&im, 0, 0, 255, 0, 0, 0);
    CHECK_PX(&im, 1, 0, 255, 255, 255, 0);
    CHECK_PX(&im, 2, 0, 0, 0, 255, 0);
    CHECK_PX(&im, 3, 0, 10, 20, 30, 0);
    cg_image_free(&im);

    im = load_ok("rgba.png", 4, 1);
    CHECK_PX(&im, 0, 0, 255, 0, 0, 0);
    CHECK_PX(&im, 1, 0, 255, 255, 255, 0);
    CHECK_PX(&im, 2, 0, 128, 128, 128, 1);
    CHECK_PX(&im, 3, 0, 0, 0, 255, 0);
    cg_image_free(&im);

    /* 16-bit samples are rounded: 0x12f0 -> 19 (truncation would give 18), 0x80ff -> 128. */
    im = load_ok("rgb16.png", 3, 1);
    CHECK_PX(&im, 0, 0, 255, 0, 0, 0);
    CHECK_PX(&im, 1, 0, 19, 86, 128, 0);
    CHECK_PX(&im, 2, 0, 0, 0, 0, 0);
    cg_image_free(&im);

    im = load_ok("rgba16.png", 2, 1);
    CHECK_PX(&im, 0, 0, 255, 0, 0, 0);
    CHECK_PX(&im, 1, 0, 255, 255, 255, 0);
    cg_image_free(&im);

    cg_image plain = load_ok("plain.png", 17, 11), inter = load_ok("interlaced.png", 17, 11);
    CHECK(!memcmp(plain.rgb, inter.rgb, 17 * 11 * 3), "interlaced PNG differs from plain PNG");
    /* plain.png is a ramp: red grows to the right, green downwards. */
    CHECK(px(&plain, 16, 0)[0] > 230 && px(&plain, 0, 0)[0] < 10, "red ramp");
    CHECK(px(&plain, 0, 10)[1] > 220 && px(&plain, 0, 0)[1] < 10, "green ramp");
    cg_image_free(&plain);
    cg_image_free(&inter);
}

static void test_plain_lossy(void) {
    cg_image ref = load_ok("plain.png", 17, 11);
    cg_image jpg = load_ok("plain.jpg", 17, 11), webp = load_ok("plain.webp", 17, 11);
    double pj = psnr(&ref, &jpg), pw = psnr(&ref, &webp);
    CHECK(pj > 35.0, "plain.jpg PSNR %.2f", pj);
    CHECK(pw > 30.0, "plain.webp PSNR %.2f", pw);
    cg_image_free(&ref);
    cg_image_free(&jpg);
    cg_image_free(&webp);
}

static void check_quad(const cg_image *im, const char *what, int tol) {
    /* The upright quad: red | lime over blue | white, each 24x16. */
    if (im->w != 48 || im->h != 32) {
        CHECK(0, "%s: size %dx%d, want 48x32", what, im->w, im->h);
        return;
    }
    const uint8_t *p[4] = {px(im, 12, 8), px(im, 36, 8), px(im, 12, 24), px(im, 36, 24)};
    CHECK(near(p[0], 255, 0, 0, tol), "%s: top-left is (%d,%d,%d), want red", what, p[0][0], p[0][1], p[0][2]);
    CHECK(near(p[1], 0, 255, 0, tol), "%s: top-right is (%d,%d,%d), want lime", what, p[1][0], p[1][1], p[1][2]);
    CHECK(near(p[2], 0, 0, 255, tol), "%s: bottom-left is (%d,%d,%d), want blue", what, p[2][0], p[2][1], p[2][2]);
    CHECK(near(p[3], 255, 255, 255, tol), "%s: bottom-right is (%d,%d,%d), want white", what, p[3][0], p[3][1], p[3][2]);
}

static void test_jpeg_conversions(void) {
    cg_image im = load_ok("gray.jpg", 48, 32);
    int same = 1;
    for (size_t i = 0; i < (size_t)im.w * im.h; i++)
        same &= im.rgb[3 * i] == im.rgb[3 * i + 1] && im.rgb[3 * i] == im.rgb[3 * i + 2];
    CHECK(same, "gray JPEG must give R == G == B");
    /* Red, lime and blue have distinct lumas whatever weights ImageMagick used. */
    int tl = px(&im, 12, 8)[0], tr = px(&im, 36, 8)[0], bl = px(&im, 12, 24)[0], br = px(&im, 36, 24)[0];
    CHECK(br > 245 && tr > tl && tl > bl && bl > 5, "gray levels %d %d %d %d", tl, tr, bl, br);
    cg_image_free(&im);

    im = load_ok("cmyk.jpg", 48, 32);
    check_quad(&im, "cmyk.jpg", 20);
    cg_image_free(&im);
}

/* Encodes a solid 16x16 CMYK picture with libjpeg itself, in `space` (CMYK or YCCK), with
 * or without the Adobe marker. */
static uint8_t *encode_cmyk(J_COLOR_SPACE space, int adobe, const uint8_t cmyk[4], unsigned long *n) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    unsigned char *out = NULL;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, n);
    c.image_width = c.image_height = 16;
    c.input_components = 4;
    c.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, space);
    jpeg_set_quality(&c, 98, TRUE);
    c.write_Adobe_marker = adobe;
    jpeg_start_compress(&c, TRUE);
    uint8_t row[16 * 4];
    for (int x = 0; x < 16; x++) memcpy(row + 4 * x, cmyk, 4);
    while (c.next_scanline < 16) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return out;
}

static void test_jpeg_cmyk_ycck(void) {
    /* Orange (255,128,0) is C=0 M=127 Y=255 K=0; Adobe files store 255 minus that. */
    const uint8_t inverted[4] = {255, 128, 0, 255}, plain[4] = {0, 127, 255, 0};
    struct { J_COLOR_SPACE space; int adobe; const uint8_t *v; const char *name; } cases[] = {
        {JCS_YCCK, 1, inverted, "ycck.jpg"},
        {JCS_CMYK, 1, inverted, "adobe_cmyk.jpg"},
        {JCS_CMYK, 0, plain, "plain_cmyk.jpg"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned long n = 0;
        uint8_t *jpg = encode_cmyk(cases[i].space, cases[i].adobe, cases[i].v, &n);
        cg_image im;
        cg_status s = cg_image_decode(&im, jpg, n, cases[i].name, 0);
        CHECK(s == CG_OK, "%s: %s", cases[i].name, cg_last_error());
        if (s == CG_OK) CHECK_PX(&im, 8, 8, 255, 128, 0, 3);
        cg_image_free(&im);
        free(jpg);
    }
}

static void test_exif_orientation(void) {
    for (int o = 1; o <= 8; o++) {
        char file[32];
        snprintf(file, sizeof file, "orient%d.jpg", o);
        cg_image im = load_ok(file, 48, 32);
        check_quad(&im, file, 24);
        cg_image_free(&im);
    }
    cg_image im = load_ok("orient6.webp", 48, 32);
    check_quad(&im, "orient6.webp", 0); /* lossless */
    cg_image_free(&im);

    /* A broken EXIF block must be ignored, not fail the image. */
    size_t n;
    uint8_t *jpg = read_all(DATA "plain.jpg", &n);
    const uint8_t app1[] = {0xFF, 0xE1, 0x00, 0x12, 'E', 'x', 'i', 'f', 0, 0,
                            'M', 'M', 0, 42, 0xFF, 0xFF, 0xFF, 0x00, 0x12, 0x34};
    uint8_t *bad = malloc(n + sizeof app1);
    memcpy(bad, jpg, 2);
    memcpy(bad + 2, app1, sizeof app1);
    memcpy(bad + 2 + sizeof app1, jpg + 2, n - 2);
    cg_image b;
    cg_status s = cg_image_decode(&b, bad, n + sizeof app1, "badexif.jpg", 0);
    CHECK(s == CG_OK && b.w == 17 && b.h == 11, "bad EXIF: %s", cg_last_error());
    cg_image_free(&b);
    free(bad);
    free(jpg);
}

static void test_webp_alpha(void) {
    cg_image im = load_ok("rgba.webp", 4, 1);
    CHECK_PX(&im, 0, 0, 255, 0, 0, 0);
    CHECK_PX(&im, 1, 0, 255, 255, 255, 0);
    CHECK_PX(&im, 2, 0, 128, 128, 128, 1);
    CHECK_PX(&im, 3, 0, 0, 0, 255, 0);
    cg_image_free(&im);
}

/* ---- damaged and unsupported JPEG (tools/make_jpeg_fixtures.sh) ------------------------- */

/* The offsets of the markers FF `code` in a JPEG, up to max: header segments are skipped by
 * their lengths and entropy-coded data byte by byte (there a data FF is followed by 00, so
 * FF and anything but 00 is a marker). Returns how many there are. */
static int jpeg_markers(const uint8_t *d, size_t n, int code, size_t *at, int max) {
    int k = 0;
    size_t i = 2;
    while (i + 1 < n && d[i] == 0xFF) {
        int m = d[i + 1];
        if (m == code && k < max) at[k] = i;
        k += m == code;
        if (m == 0xD9) break;
        if (m >= 0xD0 && m <= 0xD7) {
            i += 2;
        } else {
            if (i + 3 >= n) break;
            i += 2 + ((size_t)d[i + 2] << 8 | d[i + 3]);
            if (m != 0xDA) continue;
        }
        while (i + 1 < n && !(d[i] == 0xFF && d[i + 1] != 0)) i++; /* entropy-coded data */
    }
    return k;
}

/* Exact comparison with djpeg's decode of the same file: same libjpeg, same settings. */
static void check_same_as_djpeg(const cg_image *im, const char *ppm_file) {
    char path[256], head[32] = {0};
    snprintf(path, sizeof path, DATA "%s", ppm_file);
    size_t n;
    uint8_t *p = read_all(path, &n);
    int w = 0, h = 0, max = 0, off = 0;
    if (p) memcpy(head, p, n < sizeof head - 1 ? n : sizeof head - 1);
    int ok = p && sscanf(head, "P6 %d %d %d%n", &w, &h, &max, &off) == 3 && max == 255 &&
             n == (size_t)off + 1 + (size_t)w * h * 3;
    CHECK(ok, "%s: not a binary PPM", ppm_file);
    if (ok) CHECK(w == im->w && h == im->h, "%s: %dx%d, decoded %dx%d", ppm_file, w, h, im->w, im->h);
    if (ok && w == im->w && h == im->h) {
        size_t diff = 0;
        for (size_t i = 0; i < (size_t)w * h * 3; i++) diff += p[off + 1 + i] != im->rgb[i];
        CHECK(diff == 0, "%s: %zu of %d values differ from djpeg's", ppm_file, diff, w * h * 3);
    }
    free(p);
}

static void test_jpeg_damaged_like_djpeg(void) {
    /* A clean file says so, even into a struct that held a warning before. */
    cg_image im;
    memset(im.warning, 'x', sizeof im.warning);
    CHECK(cg_image_load(&im, DATA "plain.jpg", 0) == CG_OK && im.warning[0] == '\0',
          "clean JPEG: warning \"%.40s\"", im.warning);
    cg_image_free(&im);

    im = load_ok("jpeg_missing_eoi.jpg", 32, 32);
    CHECK(!strcmp(im.warning, "the data ends without an end-of-image marker"), "missing EOI: \"%s\"", im.warning);
    check_same_as_djpeg(&im, "jpeg_missing_eoi.ppm");
    cg_image_free(&im);

    im = load_ok("jpeg_restart_damaged.jpg", 32, 32);
    CHECK(!strcmp(im.warning, "damaged data: decoding resynchronised at a restart marker (18 extraneous bytes)"),
          "damaged restart interval: \"%s\"", im.warning);
    check_same_as_djpeg(&im, "jpeg_restart_damaged.ppm");
    cg_image_free(&im);

    /* Every prefix that ends inside the entropy-coded data lacks rows and is refused, with
     * the rows present counted in whole 16-row bands (4:2:0); only the whole file, which
     * lacks nothing but the EOI marker, decodes. */
    size_t n, sos;
    uint8_t *d = read_all(DATA "jpeg_missing_eoi.jpg", &n);
    CHECK(d && jpeg_markers(d, n, 0xDA, &sos, 1) == 1, "jpeg_missing_eoi.jpg: no SOS");
    size_t start = d ? sos + 2 + ((size_t)d[sos + 2] << 8 | d[sos + 3]) : n;
    int last_rows = 0, bad = 0, counts[3] = {0};
    for (size_t len = start; len < n; len++) {
        cg_status s = cg_image_decode(&im, d, len, "cut.jpg", 0);
        int rows = -1;
        if (s == CG_ERR_FORMAT) sscanf(cg_last_error(), "cut.jpg: truncated JPEG: only %d of 32 rows present", &rows);
        if (s != CG_ERR_FORMAT || im.rgb || rows < last_rows || (rows != 0 && rows != 16)) {
            if (!bad++) CHECK(0, "prefix of %zu bytes: %s", len, s == CG_OK ? "decoded" : cg_last_error());
        } else {
            counts[rows / 16]++;
            last_rows = rows;
        }
        cg_image_free(&im);
    }
    CHECK(!bad, "%d prefixes decoded or said something else", bad);
    CHECK(counts[0] > 100 && counts[1] > 100, "rows 0: %d prefixes, rows 16: %d prefixes", counts[0], counts[1]);
    free(d);

    /* Damage after the last row is found by reading on to the EOI marker: junk before it,
     * and a second scan in a single-scan file (which libjpeg cannot read). Neither costs a
     * row, so both decode, with the same pixels as the intact file. */
    cg_image ref = load_ok("plain.jpg", 17, 11);
    d = read_all(DATA "plain.jpg", &n);
    uint8_t *e = malloc(n + 64);
    size_t eoi, m;
    CHECK(d && jpeg_markers(d, n, 0xD9, &eoi, 1) == 1 && eoi == n - 2 && jpeg_markers(d, n, 0xDA, &sos, 1) == 1,
          "plain.jpg: markers");
    const char *tails[] = {"junk", "second scan"};
    for (int t = 0; t < 2 && d && eoi == n - 2; t++) {
        memcpy(e, d, eoi);
        m = eoi;
        if (t == 0) {
            memcpy(e + m, "0123456789", 10), m += 10;
        } else {
            size_t len = (size_t)d[sos + 2] << 8 | d[sos + 3];
            memcpy(e + m, d + sos, 2 + len), m += 2 + len;
        }
        memcpy(e + m, "\xFF\xD9", 2), m += 2;
        cg_status s = cg_image_decode(&im, e, m, tails[t], 0);
        CHECK(s == CG_OK && im.w == 17 && im.h == 11 && !memcmp(im.rgb, ref.rgb, 17 * 11 * 3), "%s: %s", tails[t],
              s == CG_OK ? "pixels differ" : cg_last_error());
        const char *want = t == 0 ? "damaged data: " : "unreadable data after the image (";
        CHECK(s == CG_OK && !strncmp(im.warning, want, strlen(want)), "%s: warning \"%s\"", tails[t], im.warning);
        if (t == 0) CHECK(strstr(im.warning, " extraneous bytes before marker 0xd9"), "junk: \"%s\"", im.warning);
        cg_image_free(&im);
    }
    /* Stray bytes between header segments lose nothing, and are not reported. */
    size_t dqt;
    if (d && jpeg_markers(d, n, 0xDB, &dqt, 1) >= 1) {
        memcpy(e, d, dqt);
        memcpy(e + dqt, "junk", 4);
        memcpy(e + dqt + 4, d + dqt, n - dqt);
        cg_status s = cg_image_decode(&im, e, n + 4, "header_junk.jpg", 0);
        CHECK(s == CG_OK && im.warning[0] == '\0' && !memcmp(im.rgb, ref.rgb, 17 * 11 * 3), "header junk: %s \"%s\"",
              s == CG_OK ? "ok" : cg_last_error(), im.warning);
        cg_image_free(&im);
    }
    free(e);
    free(d);
    cg_image_free(&ref);

    cg_status s = cg_image_load(&im, DATA "jpeg_truncated_rows.jpg", 0);
    CHECK(s == CG_ERR_FORMAT && strstr(cg_last_error(), "jpeg_truncated_rows.jpg: truncated JPEG: only 16 of 32 rows present"),
          "%s", s == CG_OK ? "decoded" : cg_last_error());
    CHECK(im.rgb == NULL, "a refused image leaves nothing");
}

static void test_jpeg_unsupported(void) {
    cg_image im;
    cg_status s = cg_image_load(&im, DATA "jpeg_12bit.jpg", 0);
    CHECK(s == CG_ERR_FORMAT && strstr(cg_last_error(), "jpeg_12bit.jpg: 12-bit JPEG is not supported"),
          "status %d: %s", s, cg_last_error());
    /* The same header marked lossless (SOF3) and hierarchical (SOF5). */
    size_t n, sof;
    uint8_t *d = read_all(DATA "plain.jpg", &n);
    CHECK(d && jpeg_markers(d, n, 0xC0, &sof, 1) == 1, "plain.jpg: no SOF0");
    if (d && jpeg_markers(d, n, 0xC0, &sof, 1) == 1) {
        d[sof + 1] = 0xC3;
        s = cg_image_decode(&im, d, n, "sof3.jpg", 0);
        CHECK(s == CG_ERR_FORMAT && !strcmp(cg_last_error(), "sof3.jpg: lossless JPEG is not supported"),
              "status %d: %s", s, cg_last_error());
        d[sof + 1] = 0xC5;
        s = cg_image_decode(&im, d, n, "sof5.jpg", 0);
        CHECK(s == CG_ERR_FORMAT && strstr(cg_last_error(), "sof5.jpg: hierarchical JPEG (SOF 0xC5) is not supported"),
              "status %d: %s", s, cg_last_error());
    }
    free(d);
}

enum { ENC_PROGRESSIVE, ENC_COMPONENT_SCANS, ENC_ARITH, ENC_RESTART };

/* Encodes im (RGB) with libjpeg into a new buffer, as a progressive file, a sequential
 * file with one scan per component, an arithmetic-coded file, or a baseline file with a
 * restart marker after every MCU row (4:2:0: 16 rows). */
static uint8_t *encode_jpeg(const cg_image *im, int kind, unsigned long *n) {
    static const jpeg_scan_info per_component[3] = {{1, {0}, 0, 63, 0, 0}, {1, {1}, 0, 63, 0, 0},
                                                    {1, {2}, 0, 63, 0, 0}};
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    unsigned char *out = NULL;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, n);
    c.image_width = (JDIMENSION)im->w;
    c.image_height = (JDIMENSION)im->h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (kind == ENC_PROGRESSIVE) jpeg_simple_progression(&c);
    if (kind == ENC_COMPONENT_SCANS) c.scan_info = per_component, c.num_scans = 3;
    if (kind == ENC_ARITH) c.arith_code = TRUE;
    if (kind == ENC_RESTART) c.restart_in_rows = 1;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = im->rgb + (size_t)c.next_scanline * im->w * 3;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return out;
}

/* Decodes d[0..len) and checks the refusal names the truncation as `want` says. */
static void check_truncated(const uint8_t *d, size_t len, const char *what, const char *want) {
    cg_image im;
    cg_status s = cg_image_decode(&im, d, len, what, 0);
    CHECK(s == CG_ERR_FORMAT && strstr(cg_last_error(), want), "%s: \"%s\", want \"%s\"", what,
          s == CG_OK ? "decoded" : cg_last_error(), want);
    cg_image_free(&im);
}

/* The whole file, and the file without its EOI marker (same pixels, a warning). */
static void check_complete_without_eoi(const uint8_t *d, size_t n, const char *what) {
    cg_image full, cut;
    cg_status s = cg_image_decode(&full, d, n, what, 0);
    CHECK(s == CG_OK && full.warning[0] == '\0', "%s: %s / \"%s\"", what, s == CG_OK ? "ok" : cg_last_error(),
          full.warning);
    CHECK(n > 2 && d[n - 2] == 0xFF && d[n - 1] == 0xD9, "%s: does not end with EOI", what);
    s = cg_image_decode(&cut, d, n - 2, what, 0);
    CHECK(s == CG_OK && !strcmp(cut.warning, "the data ends without an end-of-image marker"), "%s without EOI: %s / \"%s\"",
          what, s == CG_OK ? "ok" : cg_last_error(), cut.warning);
    if (full.rgb && cut.rgb && full.w == cut.w && full.h == cut.h)
        CHECK(!memcmp(full.rgb, cut.rgb, (size_t)full.w * full.h * 3), "%s: pixels differ without EOI", what);
    cg_image_free(&full);
    cg_image_free(&cut);
}

static void test_jpeg_truncated_kinds(void) {
    cg_image src = make_smooth(48, 64);
    size_t at[16];
    char want[128];

    /* Progressive: a file cut between scans decodes to a blurred picture without any
     * decoder warning about bits; it must be refused all the same, and one cut inside a
     * scan too. */
    unsigned long n = 0;
    uint8_t *d = encode_jpeg(&src, ENC_PROGRESSIVE, &n);
    check_complete_without_eoi(d, n, "progressive.jpg");
    int scans = jpeg_markers(d, n, 0xDA, at, 16);
    CHECK(scans >= 6 && scans <= 16, "progressive.jpg: %d scans", scans);
    for (int k = 1; k < scans && k < 16; k++) {
        snprintf(want, sizeof want, "truncated JPEG: the data ends after progressive scan %d, before the final scan", k);
        check_truncated(d, at[k], "progressive.jpg", want);
    }
    check_truncated(d, at[scans - 1] + (n - at[scans - 1]) / 2, "progressive.jpg",
                    "truncated JPEG: the data ends in progressive scan");
    free(d);

    /* Sequential with one scan per component: a file cut before the last component's scan
     * would have no colour. */
    d = encode_jpeg(&src, ENC_COMPONENT_SCANS, &n);
    check_complete_without_eoi(d, n, "component_scans.jpg");
    CHECK(jpeg_markers(d, n, 0xDA, at, 16) == 3, "component_scans.jpg: not 3 scans");
    check_truncated(d, at[2], "component_scans.jpg", "truncated JPEG: the data ends after scan 2, before the final scan");
    check_truncated(d, at[2] + (n - at[2]) / 2, "component_scans.jpg", "truncated JPEG: only ");
    free(d);

    /* Arithmetic coding reads past a marker silently; a cut before the last iMCU row is
     * still seen (64 rows of 4:2:0: four 16-row bands). */
    d = encode_jpeg(&src, ENC_ARITH, &n);
    check_complete_without_eoi(d, n, "arith.jpg");
    CHECK(jpeg_markers(d, n, 0xDA, at, 16) == 1, "arith.jpg: not one scan");
    check_truncated(d, at[0] + (n - at[0]) / 3, "arith.jpg", " of 64 rows present");
    free(d);

    /* Cut right after a restart marker: exactly the MCU rows before it are present. */
    d = encode_jpeg(&src, ENC_RESTART, &n);
    check_complete_without_eoi(d, n, "restart.jpg");
    CHECK(jpeg_markers(d, n, 0xD1, at, 16) == 1, "restart.jpg: no RST1");
    check_truncated(d, at[0] + 2, "restart.jpg", "truncated JPEG: only 32 of 64 rows present");
    CHECK(jpeg_markers(d, n, 0xD0, at, 16) == 1, "restart.jpg: no RST0");
    check_truncated(d, at[0] + 2, "restart.jpg", "truncated JPEG: only 16 of 64 rows present");
    free(d);
    cg_image_free(&src);
}

/* ---- PNG eXIf ------------------------------------------------------------------------------ */

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A copy of the PNG d[0..n) without its chunks of type `drop` (NULL: none) and, if `type`
 * is given, a chunk (type, body) inserted before the first chunk named `before`; bad_crc
 * spoils its CRC. *out_n gets the size. */
static uint8_t *png_edit(const uint8_t *d, size_t n, const char *drop, const char *type, const uint8_t *body,
                         size_t len, const char *before, int bad_crc, size_t *out_n) {
    uint8_t *o = malloc(n + len + 12), *w = o;
    memcpy(w, d, 8), w += 8;
    for (size_t i = 8; i + 12 <= n;) {
        size_t clen = (size_t)d[i] << 24 | (size_t)d[i + 1] << 16 | (size_t)d[i + 2] << 8 | d[i + 3];
        if (type && !memcmp(d + i + 4, before, 4)) {
            put32(w, (uint32_t)len);
            memcpy(w + 4, type, 4);
            memcpy(w + 8, body, len);
            put32(w + 8 + len, crc32_png(w + 4, len + 4) ^ (bad_crc ? 1u : 0u));
            w += 12 + len;
            type = NULL;
        }
        if (!drop || memcmp(d + i + 4, drop, 4)) memcpy(w, d + i, 12 + clen), w += 12 + clen;
        i += 12 + clen;
    }
    *out_n = (size_t)(w - o);
    return o;
}

static void test_png_exif_orientation(void) {
    /* The shared sample: 4x2, one blue pixel at the top-left of red, orientation 6. */
    cg_image im = load_ok("png_exif_orientation6_4x2.png", 2, 4);
    size_t n, m;
    uint8_t *d = read_all(DATA "png_exif_orientation6_4x2.png", &n);
    uint8_t *bare = png_edit(d, n, "eXIf", NULL, NULL, 0, NULL, 0, &m);
    cg_image raw;
    cg_status s = cg_image_decode(&raw, bare, m, "no_exif.png", 0);
    CHECK(s == CG_OK && raw.w == 4 && raw.h == 2, "without eXIf: %s, %dx%d", cg_last_error(), raw.w, raw.h);
    if (s == CG_OK && raw.w == 4 && raw.h == 2) {
        /* Turned 90 degrees clockwise: display (x, y) shows stored (y, h - 1 - x). */
        int same = 1;
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 2; x++) same &= !memcmp(px(&im, x, y), px(&raw, y, 1 - x), 3);
        CHECK(same, "not turned clockwise");
        CHECK(near(px(&raw, 0, 0), 0, 0, 255, 0) && near(px(&im, 1, 0), 0, 0, 255, 0),
              "the blue pixel must go from the stored top-left to the displayed top-right");
    }
    cg_image_free(&raw);
    cg_image_free(&im);
    free(bare);
    free(d);

    /* An eXIf chunk built here on plain.png (17x11): orientation 8 (90 counter-clockwise),
     * before IDAT and after it (both are allowed), then broken ones, which are ignored. */
    const uint8_t exif8[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0};
    const uint8_t exif9[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0};
    const uint8_t bad_ifd[] = {'M', 'M', 0, 42, 0xFF, 0xFF, 0xFF, 0xF0, 0, 1, 2, 3};
    const uint8_t not_tiff[] = {'h', 'e', 'l', 'l', 'o', ' ', 'e', 'x', 'i', 'f'};
    d = read_all(DATA "plain.png", &n);
    cg_image plain = load_ok("plain.png", 17, 11);
    struct { const uint8_t *body; size_t len; const char *before; int bad_crc, turned; const char *what; } cases[] = {
        {exif8, sizeof exif8, "IDAT", 0, 1, "orientation 8 before IDAT"},
        {exif8, sizeof exif8, "IEND", 0, 1, "orientation 8 after IDAT"},
        {exif8, sizeof exif8, "IDAT", 1, 0, "eXIf with a bad CRC"},
        {exif9, sizeof exif9, "IDAT", 0, 0, "orientation 9"},
        {bad_ifd, sizeof bad_ifd, "IDAT", 0, 0, "IFD offset past the end"},
        {not_tiff, sizeof not_tiff, "IDAT", 0, 0, "not a TIFF block"},
        {not_tiff, 0, "IDAT", 0, 0, "empty eXIf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *f = png_edit(d, n, NULL, "eXIf", cases[i].body, cases[i].len, cases[i].before, cases[i].bad_crc, &m);
        s = cg_image_decode(&im, f, m, cases[i].what, 0);
        int w = cases[i].turned ? 11 : 17, h = cases[i].turned ? 17 : 11;
        CHECK(s == CG_OK && im.w == w && im.h == h, "%s: %s, %dx%d, want %dx%d", cases[i].what,
              s == CG_OK ? "ok" : cg_last_error(), im.w, im.h, w, h);
        if (s == CG_OK && im.w == w && im.h == h) {
            /* 90 counter-clockwise: display (x, y) shows stored (W - 1 - y, x). */
            int same = 1;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    same &= !memcmp(px(&im, x, y), cases[i].turned ? px(&plain, 16 - y, x) : px(&plain, x, y), 3);
            CHECK(same, "%s: pixels not where they belong", cases[i].what);
        }
        cg_image_free(&im);
        free(f);
    }
    cg_image_free(&plain);
    free(d);
}

static void test_had_alpha(void) {
    struct { const char *file; int alpha; } cases[] = {
        {"rgba.png", 1}, {"gray_alpha.png", 1}, {"palette_trns.png", 1}, {"rgba16.png", 1},
        {"plain.png", 0}, {"palette.png", 0}, {"gray.png", 0}, {"rgba.webp", 1}, {"plain.webp", 0},
        {"plain.jpg", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, DATA "%s", cases[i].file);
        cg_image im;
        im.had_alpha = !cases[i].alpha; /* a stale value must be overwritten */
        cg_status s = cg_image_load(&im, path, 0);
        CHECK(s == CG_OK && im.had_alpha == cases[i].alpha && im.warning[0] == '\0', "%s: %s, had_alpha %d",
              cases[i].file, s == CG_OK ? "ok" : cg_last_error(), im.had_alpha);
        cg_image_free(&im);
    }
}

/* ---- bad input -------------------------------------------------------------------------- */

static void test_bad_inputs(void) {
    struct { const char *file; cg_status want; const char *reason; } cases[] = {
        {DATA "missing.jpg", CG_ERR_IO, "cannot open: No such file or directory"},
        {DATA "empty.png", CG_ERR_FORMAT, "empty file"},
        {DATA "truncated.jpg", CG_ERR_FORMAT, "truncated"},
        {DATA "truncated.png", CG_ERR_FORMAT, "truncated PNG data"},
        {DATA "notimage.jpg", CG_ERR_FORMAT, "not a JPEG, PNG, WebP, HEIC or AVIF image"},
        {DATA "huge.png", CG_ERR_LIMIT, "image is 100000x100000 (10000 megapixels), over the limit of 100 megapixels"},
        {DATA "huge.jpg", CG_ERR_LIMIT, "image is 65000x65000 (4225 megapixels)"},
        {DATA "huge.webp", CG_ERR_LIMIT, "image is 16384x16384 (268 megapixels)"},
        {"tests/data", CG_ERR_IO, "Is a directory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cg_image im = {.w = 7, .h = 7, .rgb = (uint8_t *)"junk"};
        cg_status s = cg_image_load(&im, cases[i].file, 0);
        const char *msg = cg_last_error();
        CHECK(s == cases[i].want, "%s: status %d (%s), want %d", cases[i].file, s, msg, cases[i].want);
        CHECK(strncmp(msg, cases[i].file, strlen(cases[i].file)) == 0 && strstr(msg, cases[i].reason) &&
                  !strchr(msg, '\n'),
              "%s: message \"%s\" should name the file and say \"%s\"", cases[i].file, msg, cases[i].reason);
        CHECK(im.rgb == NULL && im.w == 0 && im.h == 0, "%s: image not cleared", cases[i].file);
    }
}

static void test_pixel_limit(void) {
    cg_image im;
    CHECK(cg_image_load(&im, DATA "plain.png", 17 * 11) == CG_OK, "exactly at the limit: %s", cg_last_error());
    cg_image_free(&im);
    const char *files[] = {DATA "plain.png", DATA "plain.jpg", DATA "plain.webp"};
    for (int i = 0; i < 3; i++) {
        CHECK(cg_image_load(&im, files[i], 17 * 11 - 1) == CG_ERR_LIMIT, "%s: one pixel over", files[i]);
        CHECK(strstr(cg_last_error(), "image is 17x11 (187 pixels), over the limit of 186 pixels"), "%s",
              cg_last_error());
    }
}

/* Every prefix and a few hundred random corruptions of small valid files: decoding must
 * return cleanly (status and image consistent), never crash; ASan/UBSan make this sharp. */
static void test_corrupt_inputs_do_not_crash(void) {
    const char *files[] = {"plain.jpg", "plain.png", "plain.webp", "rgba.webp", "interlaced.png",
                           "palette_trns.png", "orient6.jpg", "orient6.webp", "cmyk.jpg", "rgb16.png"};
    uint32_t seed = 12345;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[256];
        snprintf(path, sizeof path, DATA "%s", files[f]);
        size_t n;
        uint8_t *good = read_all(path, &n);
        CHECK(good != NULL, "%s missing", path);
        if (!good) continue;
        uint8_t *buf = malloc(n);
        int bad_state = 0, truncated_ok = 0;
        for (size_t len = 0; len < n; len++) {
            memcpy(buf, good, len);
            cg_image im;
            cg_status s = cg_image_decode(&im, buf, len, files[f], 1 << 20);
            if (s == CG_OK) truncated_ok++;
            bad_state |= s == CG_OK ? (im.rgb == NULL || im.w <= 0) : (im.rgb != NULL);
            bad_state |= s != CG_OK && strncmp(cg_last_error(), files[f], strlen(files[f])) != 0;
            cg_image_free(&im);
        }
        /* Only the last few bytes (EOI, IEND) may go missing without an error. */
        CHECK(truncated_ok <= 12, "%s: %d truncated prefixes decoded without error", files[f], truncated_ok);
        for (int k = 0; k < 300; k++) {
            memcpy(buf, good, n);
            int flips = 1 + k % 4;
            for (int j = 0; j < flips; j++) {
                seed = seed * 1664525u + 1013904223u;
                size_t at = (seed >> 8) % n;
                seed = seed * 1664525u + 1013904223u;
                buf[at] = (uint8_t)(seed >> 24);
            }
            cg_image im;
            cg_status s = cg_image_decode(&im, buf, n, files[f], 1 << 20);
            bad_state |= s == CG_OK ? (im.rgb == NULL || im.w <= 0) : (im.rgb != NULL);
            cg_image_free(&im);
        }
        CHECK(!bad_state, "%s: inconsistent result on corrupt input", files[f]);
        free(buf);
        free(good);
    }
}

static cg_image make_const(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    cg_image im = {.w = w, .h = h, .rgb = malloc((size_t)w * h * 3)};
    for (size_t i = 0; i < (size_t)w * h; i++) im.rgb[3 * i] = r, im.rgb[3 * i + 1] = g, im.rgb[3 * i + 2] = b;
    return im;
}

/* ---- saving ----------------------------------------------------------------------------- */

static void test_save_creates_directories(void) {
    cg_image a = make_noise(5, 3, 9);
    char path[256], dir[256];
    path_in_tmp(path, sizeof path, "new/deeper/still/out.png");
    CHECK(cg_image_save(&a, path, CG_FMT_PNG) == CG_OK, "%s", cg_last_error());
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode), "output missing");
    CHECK((st.st_mode & 0777) == 0644, "mode %o, want 0644 under umask 022", st.st_mode & 0777);
    path_in_tmp(dir, sizeof dir, "new/deeper/still");
    CHECK(count_temp_files(dir) == 0, "temp file left behind");

    path_in_tmp(dir, sizeof dir, "made/by//mkdir_p/");
    CHECK(cg_mkdir_p(dir) == CG_OK, "%s", cg_last_error());
    CHECK(cg_mkdir_p(dir) == CG_OK, "existing directory: %s", cg_last_error());
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "mkdir_p did not create %s", dir);
    CHECK(cg_image_save(&a, path, CG_FMT_UNKNOWN) == CG_OK, "format from .png: %s", cg_last_error());
    path_in_tmp(path, sizeof path, "noext");
    CHECK(cg_image_save(&a, path, CG_FMT_UNKNOWN) == CG_ERR_ARG, "unknown format must be refused");
    CHECK(access(path, F_OK) != 0, "nothing may be written for an unknown format");
    cg_image_free(&a);
}

static void test_save_failures_leave_nothing(void) {
    cg_image a = make_noise(5, 3, 9);
    char file[256], path[256], dir[256];
    /* A regular file where a parent directory should be: the directory cannot be made. */
    path_in_tmp(file, sizeof file, "afile");
    CHECK(cg_write_file_atomic(file, "x", 1) == CG_OK, "%s", cg_last_error());
    path_in_tmp(path, sizeof path, "afile/sub/out.jpg");
    cg_status s = cg_image_save(&a, path, CG_FMT_JPEG);
    CHECK(s == CG_ERR_IO, "save under a file: status %d", s);
    CHECK(strncmp(cg_last_error(), path, strlen(path)) == 0 && strstr(cg_last_error(), "Not a directory"),
          "message: %s", cg_last_error());
    CHECK(cg_mkdir_p(path) == CG_ERR_IO && strstr(cg_last_error(), "afile"), "mkdir_p through a file: %s",
          cg_last_error());

    /* The destination is a non-empty directory: the temp file is written, the rename
     * fails, and the temp file must be removed. */
    path_in_tmp(dir, sizeof dir, "blocked/out.webp/inner");
    CHECK(cg_mkdir_p(dir) == CG_OK, "%s", cg_last_error());
    path_in_tmp(path, sizeof path, "blocked/out.webp");
    s = cg_image_save(&a, path, CG_FMT_WEBP);
    CHECK(s == CG_ERR_IO, "save over a directory: status %d", s);
    CHECK(strstr(cg_last_error(), "out.webp"), "message: %s", cg_last_error());
    path_in_tmp(dir, sizeof dir, "blocked");
    CHECK(count_temp_files(dir) == 0, "temp file left behind after a failed rename");
    CHECK(count_temp_files(tmpdir) == 0, "temp file left behind");

    /* Overwriting replaces the content in one step. */
    CHECK(cg_write_file_atomic(file, "new content", 11) == CG_OK, "%s", cg_last_error());
    size_t n;
    uint8_t *got = read_all(file, &n);
    CHECK(got && n == 11 && !memcmp(got, "new content", 11), "content not replaced");
    free(got);

    /* Per-format side limits are refused before encoding, without touching the disk. */
    cg_image wide = make_const(65501, 1, 1, 2, 3), webp_wide = make_const(16384, 1, 1, 2, 3);
    path_in_tmp(path, sizeof path, "wide.jpg");
    CHECK(cg_image_save(&wide, path, CG_FMT_JPEG) == CG_ERR_LIMIT && strstr(cg_last_error(), "65500"),
          "JPEG side limit: %s", cg_last_error());
    path_in_tmp(path, sizeof path, "wide.webp");
    CHECK(cg_image_save(&webp_wide, path, CG_FMT_WEBP) == CG_ERR_LIMIT && strstr(cg_last_error(), "16383"),
          "WebP side limit: %s", cg_last_error());
    CHECK(access(path, F_OK) != 0 && count_temp_files(tmpdir) == 0, "nothing may be written");
    cg_image_free(&wide);
    cg_image_free(&webp_wide);

    cg_image empty = {.w = 0, .h = 0, .rgb = NULL};
    CHECK(cg_image_save(&empty, file, CG_FMT_PNG) == CG_ERR_ARG, "empty image must be refused");
    cg_image_free(&a);
}

/* ---- resize ----------------------------------------------------------------------------- */

static int all_equal(const uint8_t *p, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    for (size_t i = 0; i < (size_t)w * h; i++)
        if (p[3 * i] != r || p[3 * i + 1] != g || p[3 * i + 2] != b) return 0;
    return 1;
}

static void test_resize(void) {
    cg_image a = make_noise(31, 17, 5);
    uint8_t *out = malloc(31 * 17 * 3);
    cg_resize_rgb(out, 31, 17, a.rgb, 31, 17);
    CHECK(!memcmp(out, a.rgb, 31 * 17 * 3), "identity resize must copy exactly");
    free(out);
    cg_image_free(&a);

    /* A constant image stays constant through every path (both passes, one pass only,
     * down, up, to and from one pixel). */
    cg_image c = make_const(301, 199, 200, 17, 90);
    int sizes[][2] = {{50, 33}, {1, 1}, {301, 40}, {80, 199}, {640, 480}, {1, 199}, {301, 1}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int w = sizes[i][0], h = sizes[i][1];
        out = malloc((size_t)w * h * 3);
        cg_resize_rgb(out, w, h, c.rgb, c.w, c.h);
        CHECK(all_equal(out, w, h, 200, 17, 90), "constant 301x199 -> %dx%d changed", w, h);
        free(out);
    }
    cg_image_free(&c);
    c = make_const(1, 1, 1, 2, 3);
    out = malloc(9 * 5 * 3);
    cg_resize_rgb(out, 9, 5, c.rgb, 1, 1);
    CHECK(all_equal(out, 9, 5, 1, 2, 3), "1x1 -> 9x5");
    cg_resize_rgb(out, 1, 5, c.rgb, 1, 1);
    CHECK(all_equal(out, 1, 5, 1, 2, 3), "1x1 -> 1x5");
    free(out);
    cg_image_free(&c);

    /* Halving a linear ramp v = 2x samples it at the output centres: 4i + 1. */
    cg_image ramp = {.w = 100, .h = 3, .rgb = malloc(100 * 3 * 3)};
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 100; x++) memset(ramp.rgb + (y * 100 + x) * 3, 2 * x, 3);
    out = malloc(50 * 3 * 3);
    cg_resize_rgb(out, 50, 3, ramp.rgb, 100, 3);
    int ok = 1;
    for (int i = 3; i < 47; i++) ok &= abs(out[(50 + i) * 3] - (4 * i + 1)) <= 1;
    CHECK(ok, "halved ramp is off-centre or wrong");
    free(out);
    cg_image_free(&ramp);

    /* Antialiasing: a 1-pixel checkerboard shrunk 4x must average to mid-gray; a filter
     * that did not widen its support would alias to black/white patterns. */
    cg_image chk = {.w = 64, .h = 64, .rgb = malloc(64 * 64 * 3)};
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) memset(chk.rgb + (y * 64 + x) * 3, (x + y) & 1 ? 255 : 0, 3);
    out = malloc(16 * 16 * 3);
    cg_resize_rgb(out, 16, 16, chk.rgb, 64, 64);
    int lo = 255, hi = 0;
    for (int y = 2; y < 14; y++)
        for (int x = 2; x < 14; x++) {
            int v = out[(y * 16 + x) * 3];
            lo = v < lo ? v : lo, hi = v > hi ? v : hi;
        }
    CHECK(lo >= 120 && hi <= 135, "checkerboard downscale range %d..%d", lo, hi);
    free(out);
    cg_image_free(&chk);
}

int main(void) {
    umask(022);
    if (test_make_dir(tmpdir, sizeof tmpdir, "cg_test_image") != 0) return 1;
    RUN(test_format_detection);
    RUN(test_roundtrip_png);
    RUN(test_roundtrip_jpeg);
    RUN(test_roundtrip_webp);
    RUN(test_png_conversions);
    RUN(test_plain_lossy);
    RUN(test_jpeg_conversions);
    RUN(test_jpeg_cmyk_ycck);
    RUN(test_exif_orientation);
    RUN(test_webp_alpha);
    RUN(test_jpeg_damaged_like_djpeg);
    RUN(test_jpeg_unsupported);
    RUN(test_jpeg_truncated_kinds);
    RUN(test_png_exif_orientation);
    RUN(test_had_alpha);
    RUN(test_bad_inputs);
    RUN(test_pixel_limit);
    RUN(test_corrupt_inputs_do_not_crash);
    RUN(test_save_creates_directories);
    RUN(test_save_failures_leave_nothing);
    RUN(test_resize);
    test_remove_dir(tmpdir);
    return TEST_SUMMARY("test_image");
}
