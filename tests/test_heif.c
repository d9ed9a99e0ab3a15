/* test_heif.c: tests for src/io/heif.c (HEIC/AVIF through libheif) and its wiring into
 * image.c: sniffing, orientation by irot/imir (and not by EXIF), alpha on white, 10-bit
 * rounding, the pixel limit, and bad input. The fixtures in tests/data/images/ come from
 * tools/make_heif_fixtures.c and hold the picture of tests/heif_fixtures.h. Run from the
 * repository root.
 *
 * Tolerances. The fixtures are lossy (quality 90, 4:2:0), so decoded pixels are compared
 * with the picture as means over each flat region, 4 pixels in from its edges (where
 * chroma subsampling and deblocking blur), at +-12 levels per channel. Measured errors are
 * at most 3 (1 for HEVC, 3 for AV1's white marker); the bar leaves room for other encoder
 * or decoder versions and is still far below what a wrong turn would give: any two
 * quadrant colours differ by at least 140 in some channel, so a rotated, mirrored or
 * unrotated picture cannot pass. Where the exact
 * arithmetic is ours (alpha compositing, 10-to-8-bit rounding) the output is compared
 * exactly (0 difference) with libheif's raw RGBA / 16-bit decode of the same file run
 * through the formula written out here again. */
#include <libheif/heif.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "heif_fixtures.h"
#include "io/heif.h"
#include "io/image.h"
#include "status.h"
#include "test.h"

#define DATA "tests/data/images/"
#define TOL 12

static char tmpdir[64];

/* ---- helpers ---------------------------------------------------------------------------- */

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    *n = buf ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    return buf;
}

/* Mean of channel c over x in [x0, x1), y in [y0, y1). */
static double region_mean(const cg_image *im, int x0, int y0, int x1, int y1, int c) {
    double sum = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) sum += im->rgb[((size_t)y * im->w + x) * 3 + c];
    return sum / ((double)(x1 - x0) * (y1 - y0));
}

/* The four quadrants (inset by 4; the top-left one below the marker) and the marker
 * (inset by 2) against the given colours; returns the largest error. */
static double picture_error(const cg_image *im, const uint8_t want[4][3], const uint8_t marker[3]) {
    const int W = HEIF_FIX_W, H = HEIF_FIX_H;
    const int box[5][4] = {
        {4, HEIF_FIX_MY1 + 4, W / 2 - 4, H / 2 - 4},
        {W / 2 + 4, 4, W - 4, H / 2 - 4},
        {4, H / 2 + 4, W / 2 - 4, H - 4},
        {W / 2 + 4, H / 2 + 4, W - 4, H - 4},
        {HEIF_FIX_MX0 + 2, HEIF_FIX_MY0 + 2, HEIF_FIX_MX1 - 2, HEIF_FIX_MY1 - 2}};
    double worst = 0;
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 3; c++) {
            double m = region_mean(im, box[r][0], box[r][1], box[r][2], box[r][3], c);
            double e = fabs(m - (r < 4 ? want[r][c] : marker[c]));
            if (e > worst) worst = e;
        }
    return worst;
}

static const uint8_t white[3] = {255, 255, 255};

/* Decodes DATA name with cg_heif_decode; 0 on failure (reported). */
static int decode_fixture(const char *name, cg_image *im, uint64_t max_pixels) {
    char path[256];
    snprintf(path, sizeof path, DATA "%s", name);
    size_t n = 0;
    uint8_t *buf = read_all(path, &n);
    CHECK(buf != NULL, "%s: cannot read", path);
    if (!buf) return 0;
    cg_status s = cg_heif_decode(im, buf, n, path, max_pixels);
    free(buf);
    CHECK(s == CG_OK, "%s: %s", path, cg_last_error());
    return s == CG_OK;
}

/* libheif's own decode of a fixture's primary image in `chroma` (with or without its
 * transforms); NULL on failure. */
static struct heif_image *libheif_decode(const char *name, enum heif_chroma chroma,
                                         int ignore_transforms) {
    char path[256];
    snprintf(path, sizeof path, DATA "%s", name);
    struct heif_context *ctx = heif_context_alloc();
    struct heif_image_handle *h = NULL;
    struct heif_image *img = NULL;
    struct heif_decoding_options *opt = heif_decoding_options_alloc();
    opt->ignore_transformations = (uint8_t)ignore_transforms;
    if (heif_context_read_from_file(ctx, path, NULL).code == heif_error_Ok &&
        heif_context_get_primary_image_handle(ctx, &h).code == heif_error_Ok)
        heif_decode_image(h, &img, heif_colorspace_RGB, chroma, opt);
    heif_decoding_options_free(opt);
    if (h) heif_image_handle_release(h);
    heif_context_free(ctx);
    return img;
}

/* ---- sniffing and extensions ------------------------------------------------------------- */

static void test_sniff(void) {
    const char *files[] = {"orient6.heic", "plain.avif", "rgb10.heic", "rgba.avif"};
    for (int i = 0; i < 4; i++) {
        char path[256];
        snprintf(path, sizeof path, DATA "%s", files[i]);
        size_t n = 0;
        uint8_t *buf = read_all(path, &n);
        CHECK(buf && cg_heif_sniff(buf, n), "%s: not sniffed as HEIF", path);
        CHECK(buf && cg_format_sniff(buf, n) == CG_FMT_HEIF, "%s: cg_format_sniff", path);
        free(buf);
    }
    /* major brand alone, or a HEIF brand among the compatible ones */
    static const uint8_t heic[] = "\0\0\0\x18"
                                  "ftypheic\0\0\0\0mif1heic";
    static const uint8_t compat_only[] = "\0\0\0\x18"
                                         "ftypXXXX\0\0\0\0isommif1";
    static const uint8_t avis[] = "\0\0\0\x14"
                                  "ftypavis\0\0\0\0avis";
    CHECK(cg_heif_sniff(heic, 24) == 1, "heic brand");
    CHECK(cg_heif_sniff(compat_only, 24) == 1, "mif1 as a compatible brand");
    CHECK(cg_heif_sniff(avis, 20) == 1, "avis");
    /* videos and other ftyp files are not HEIF */
    static const uint8_t mp4[] = "\0\0\0\x18"
                                 "ftypisom\0\0\x02\0isomiso2";
    static const uint8_t mov[] = "\0\0\0\x14"
                                 "ftypqt  \0\0\0\0qt  ";
    CHECK(cg_heif_sniff(mp4, 24) == 0 && cg_format_sniff(mp4, 24) == CG_FMT_UNKNOWN, "mp4");
    CHECK(cg_heif_sniff(mov, 20) == 0, "mov");
    /* a compatible brand past the end of the data or of the box is not read */
    CHECK(cg_heif_sniff(compat_only, 20) == 0, "brand past the data");
    static const uint8_t short_box[] = "\0\0\0\x10"
                                       "ftypXXXX\0\0\0\0mif1";
    CHECK(cg_heif_sniff(short_box, 20) == 0, "brand past the box");
    CHECK(cg_heif_sniff(heic, 11) == 0, "11 bytes");
    CHECK(cg_heif_sniff(NULL, 100) == 0, "NULL");
    static const uint8_t noftyp[] = "\0\0\0\x18"
                                    "moovheic\0\0\0\0mif1heic";
    CHECK(cg_heif_sniff(noftyp, 24) == 0, "not an ftyp box");

    CHECK(cg_format_from_path("a.heic") == CG_FMT_HEIF, "heic");
    CHECK(cg_format_from_path("dir/IMG_0001.HEIC") == CG_FMT_HEIF, "HEIC");
    CHECK(cg_format_from_path("x.Heif") == CG_FMT_HEIF, "Heif");
    CHECK(cg_format_from_path("x.AVIF") == CG_FMT_HEIF, "AVIF");
    CHECK(cg_format_from_path("x.heics") == CG_FMT_UNKNOWN, "heics (sequence) is not a still");
    CHECK(cg_format_from_path("heic") == CG_FMT_UNKNOWN, "no extension");
}

/* ---- orientation --------------------------------------------------------------------------- */

/* Each file must come back 96x64 and upright. The checks after the decode show that the
 * fixture is a real test: stored as it is (libheif without the transforms), it is
 * stored_w x stored_h and, when `transformed`, does not look upright. */
static void check_upright(const char *name, int stored_w, int stored_h, int transformed) {
    cg_image im;
    if (!decode_fixture(name, &im, 0)) return;
    CHECK(im.w == HEIF_FIX_W && im.h == HEIF_FIX_H, "%s: %dx%d, want %dx%d", name, im.w, im.h,
          HEIF_FIX_W, HEIF_FIX_H);
    if (im.w == HEIF_FIX_W && im.h == HEIF_FIX_H) {
        double e = picture_error(&im, heif_fix_quadrant_rgb, white);
        CHECK(e <= TOL, "%s: region means off by %.1f (wrong turn?)", name, e);
    }
    CHECK(im.had_alpha == 0, "%s: had_alpha", name);
    CHECK(im.warning[0] == '\0', "%s: warning \"%s\"", name, im.warning);
    cg_image_free(&im);

    struct heif_image *raw = libheif_decode(name, heif_chroma_interleaved_RGB, 1);
    CHECK(raw != NULL, "%s: libheif cannot decode it raw", name);
    if (!raw) return;
    int w = heif_image_get_width(raw, heif_channel_interleaved),
        h = heif_image_get_height(raw, heif_channel_interleaved);
    CHECK(w == stored_w && h == stored_h, "%s: stored %dx%d, want %dx%d", name, w, h, stored_w,
          stored_h);
    if (transformed && w == HEIF_FIX_W && h == HEIF_FIX_H) {
        int stride;
        const uint8_t *p = heif_image_get_plane_readonly(raw, heif_channel_interleaved, &stride);
        cg_image r = {.w = w, .h = h, .rgb = malloc((size_t)w * h * 3)};
        for (int y = 0; y < h; y++)
            memcpy(r.rgb + (size_t)y * w * 3, p + (size_t)y * stride, (size_t)w * 3);
        double e = picture_error(&r, heif_fix_quadrant_rgb, white);
        CHECK(e > 100, "%s: the stored pixels already look upright (error %.1f)", name, e);
        free(r.rgb);
    }
    heif_image_release(raw);
}

static void test_orientation(void) {
    check_upright("orient6.heic", HEIF_FIX_H, HEIF_FIX_W, 1); /* irot 270: stored 64x96 */
    check_upright("orient2.heic", HEIF_FIX_W, HEIF_FIX_H, 1); /* imir: stored mirrored */
    check_upright("orient7.heic", HEIF_FIX_H, HEIF_FIX_W, 1); /* irot + imir */
    check_upright("plain.avif", HEIF_FIX_W, HEIF_FIX_H, 0);   /* stored upright */
}

/* orient6.heic also holds an EXIF block saying orientation 6, as iPhone photos do. Applying
 * it on top of irot would turn the picture to 64x96 (caught above); check it is there. */
static void test_exif_not_applied(void) {
    struct heif_context *ctx = heif_context_alloc();
    struct heif_image_handle *h = NULL;
    int blocks = 0, orientation = 0;
    if (heif_context_read_from_file(ctx, DATA "orient6.heic", NULL).code == heif_error_Ok &&
        heif_context_get_primary_image_handle(ctx, &h).code == heif_error_Ok) {
        heif_item_id id;
        blocks = heif_image_handle_get_list_of_metadata_block_IDs(h, "Exif", &id, 1);
        if (blocks == 1) {
            size_t n = heif_image_handle_get_metadata_size(h, id);
            uint8_t *b = malloc(n);
            /* 4-byte offset to the TIFF header, then "II*\0", IFD0 at 8: one entry */
            if (b && n >= 4 + 20 &&
                heif_image_handle_get_metadata(h, id, b).code == heif_error_Ok &&
                b[4 + 10] == 0x12 && b[4 + 11] == 0x01)
                orientation = b[4 + 18];
            free(b);
        }
        heif_image_handle_release(h);
    }
    heif_context_free(ctx);
    CHECK(blocks == 1 && orientation == 6, "orient6.heic: EXIF blocks %d, orientation %d", blocks,
          orientation);
}

/* ---- alpha ------------------------------------------------------------------------------- */

static void check_alpha(const char *name) {
    cg_image im;
    if (!decode_fixture(name, &im, 0)) return;
    CHECK(im.had_alpha == 1, "%s: had_alpha %d", name, im.had_alpha);
    CHECK(im.w == HEIF_FIX_W && im.h == HEIF_FIX_H, "%s: %dx%d", name, im.w, im.h);
    if (im.w != HEIF_FIX_W || im.h != HEIF_FIX_H) {
        cg_image_free(&im);
        return;
    }
    /* opaque left half as is; transparent top right white; bottom right yellow half on
     * white: (c * 128 + 255 * 127 + 127) / 255 = (237, 227, 147) */
    const uint8_t want[4][3] = {{200, 30, 30}, {255, 255, 255}, {30, 60, 200}, {237, 227, 147}};
    double e = picture_error(&im, want, white);
    CHECK(e <= TOL, "%s: region means off by %.1f", name, e);

    /* exactly the compositing formula, on libheif's own RGBA */
    struct heif_image *raw = libheif_decode(name, heif_chroma_interleaved_RGBA, 0);
    CHECK(raw != NULL, "%s: libheif RGBA decode failed", name);
    if (raw) {
        int stride, premul = heif_image_is_premultiplied_alpha(raw), diffs = 0;
        const uint8_t *p = heif_image_get_plane_readonly(raw, heif_channel_interleaved, &stride);
        for (int y = 0; y < im.h; y++)
            for (int x = 0; x < im.w; x++) {
                const uint8_t *s = p + (size_t)y * stride + (size_t)x * 4;
                const uint8_t *d = im.rgb + ((size_t)y * im.w + x) * 3;
                for (int c = 0; c < 3; c++) {
                    int v = premul ? s[c] + 255 - s[3]
                                   : (int)lround((s[c] * s[3] + 255.0 * (255 - s[3])) / 255.0);
                    if (v > 255) v = 255;
                    diffs += d[c] != v;
                }
            }
        CHECK(diffs == 0, "%s: %d samples differ from the compositing formula", name, diffs);
        heif_image_release(raw);
    }
    cg_image_free(&im);
}

static void test_alpha(void) {
    check_alpha("rgba.avif");
    check_alpha("rgba.heic");
    /* colour stored premultiplied ('prem'): read as such, the same picture comes out */
    check_alpha("rgba_premul.avif");
    struct heif_image *raw = libheif_decode("rgba_premul.avif", heif_chroma_interleaved_RGBA, 0);
    CHECK(raw && heif_image_is_premultiplied_alpha(raw),
          "rgba_premul.avif: not marked premultiplied");
    if (raw) heif_image_release(raw);
}

/* ---- 10 bits -------------------------------------------------------------------------------- */

static void test_10bit(void) {
    cg_image im;
    if (!decode_fixture("rgb10.heic", &im, 0)) return;
    CHECK(im.w == HEIF_FIX_W && im.h == HEIF_FIX_H, "%dx%d", im.w, im.h);
    if (im.w != HEIF_FIX_W || im.h != HEIF_FIX_H) {
        cg_image_free(&im);
        return;
    }
    /* the 10-bit samples were v * 1023 / 255: back at 8 bits they are the picture again */
    double e = picture_error(&im, heif_fix_quadrant_rgb, white);
    CHECK(e <= TOL, "region means off by %.1f", e);

    /* exactly round(v * 255 / 1023) of libheif's 10-bit output; and the file is 10-bit */
    struct heif_image *raw = libheif_decode("rgb10.heic", heif_chroma_interleaved_RRGGBB_LE, 0);
    CHECK(raw != NULL, "libheif 10-bit decode failed");
    if (raw) {
        int bits = heif_image_get_bits_per_pixel_range(raw, heif_channel_interleaved);
        CHECK(bits == 10, "the fixture decodes to %d bits, not 10", bits);
        int stride, diffs = 0, odd = 0;
        const uint8_t *p = heif_image_get_plane_readonly(raw, heif_channel_interleaved, &stride);
        for (int y = 0; y < im.h; y++)
            for (int x = 0; x < im.w * 3; x++) {
                unsigned v = p[(size_t)y * stride + 2 * x] | p[(size_t)y * stride + 2 * x + 1] << 8;
                diffs += im.rgb[(size_t)y * im.w * 3 + x] != (uint8_t)lround(v * 255.0 / 1023.0);
                /* samples where rounding and libheif's own truncation (v >> 2) differ */
                odd += lround(v * 255.0 / 1023.0) != (long)(v >> 2);
            }
        CHECK(diffs == 0, "%d samples are not round(v * 255 / 1023)", diffs);
        /* the comparison above tells rounding from truncation only if such samples exist */
        CHECK(odd > 100, "only %d samples where rounding and truncation differ", odd);
        heif_image_release(raw);
    }
    cg_image_free(&im);
}

/* libheif 1.15 mirrors 8-bit planes only: a 10-bit image with imir is either decoded
 * upright (a newer libheif) or refused with its reason, never returned unmirrored. */
static void test_10bit_mirrored(void) {
    size_t n = 0;
    uint8_t *buf = read_all(DATA "rgb10_orient2.heic", &n);
    CHECK(buf != NULL, "cannot read rgb10_orient2.heic");
    if (!buf) return;
    cg_image im;
    cg_status s = cg_heif_decode(&im, buf, n, "m.heic", 0);
    if (s == CG_OK) {
        double e = im.w == HEIF_FIX_W && im.h == HEIF_FIX_H
                       ? picture_error(&im, heif_fix_quadrant_rgb, white)
                       : 999;
        CHECK(e <= TOL, "decoded, but off by %.1f", e);
        cg_image_free(&im);
    } else {
        CHECK(s == CG_ERR_FORMAT && strstr(cg_last_error(), "m.heic: unsupported HEIF feature") &&
                  strstr(cg_last_error(), "mirror"),
              "status %d: %s", s, cg_last_error());
        CHECK(im.rgb == NULL && im.w == 0 && im.h == 0, "failure left an image behind");
    }
    free(buf);
}

/* ---- limits ------------------------------------------------------------------------------- */

/* The offset of the first `ispe` box's width in a file, or 0. */
static size_t ispe_offset(const uint8_t *b, size_t n) {
    for (size_t i = 4; i + 16 <= n; i++)
        if (!memcmp(b + i, "ispe", 4)) return i + 8; /* type, version/flags, then width */
    return 0;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static void test_pixel_limit(void) {
    size_t n = 0;
    uint8_t *buf = read_all(DATA "plain.avif", &n);
    CHECK(buf != NULL, "cannot read plain.avif");
    if (!buf) return;
    cg_image im;
    const uint64_t px = (uint64_t)HEIF_FIX_W * HEIF_FIX_H;

    /* one pixel over the limit is refused, the exact size passes */
    cg_status s = cg_heif_decode(&im, buf, n, "p.avif", px - 1);
    CHECK(s == CG_ERR_LIMIT, "limit %llu: status %d", (unsigned long long)(px - 1), s);
    CHECK(strstr(cg_last_error(),
                 "p.avif: image is 96x64 (6144 pixels), over the limit of 6143 pixels"),
          "message: %s", cg_last_error());
    CHECK(im.rgb == NULL && im.w == 0, "refusal left an image behind");
    s = cg_heif_decode(&im, buf, n, "p.avif", px);
    CHECK(s == CG_OK, "at the limit: %s", cg_last_error());
    cg_image_free(&im);

    /* checked on the header, before decoding: a header claiming 20000x20000 over a 96x64
     * bitstream is refused under the default 100 MP (the decoded picture would be small) */
    size_t off = ispe_offset(buf, n);
    CHECK(off != 0, "no ispe box in plain.avif");
    if (off) {
        uint8_t *big = malloc(n);
        memcpy(big, buf, n);
        put32(big + off, 20000), put32(big + off + 4, 20000);
        s = cg_heif_decode(&im, big, n, "big.avif", 0);
        CHECK(s == CG_ERR_LIMIT &&
                  strstr(cg_last_error(), "big.avif: image is 20000x20000 (400 megapixels), over "
                                          "the limit of 100 megapixels"),
              "status %d: %s", s, cg_last_error());
        /* over libheif's own limit of 32768 a side: refused while reading the boxes */
        put32(big + off, 40000), put32(big + off + 4, 16);
        s = cg_heif_decode(&im, big, n, "wide.avif", 0);
        CHECK(s == CG_ERR_LIMIT && strstr(cg_last_error(), "wide.avif: "), "status %d: %s", s,
              cg_last_error());
        /* a header smaller than the bitstream: the AV1 sequence header has the real size */
        put32(big + off, 8), put32(big + off + 4, 8);
        s = cg_heif_decode(&im, big, n, "small.avif", 1000);
        CHECK(s == CG_ERR_LIMIT &&
                  strstr(cg_last_error(),
                         "small.avif: image is 96x64 (6144 pixels), over the limit of 1000 pixels"),
              "status %d: %s", s, cg_last_error());
        CHECK(im.rgb == NULL, "refusal left an image behind");
        free(big);
    }
    /* a limit below a side: libheif's side limit is lowered with it, so libheif itself
     * refuses the 96-pixel side while reading the boxes */
    s = cg_heif_decode(&im, buf, n, "p.avif", 50);
    CHECK(s == CG_ERR_LIMIT && strstr(cg_last_error(), "p.avif: over a safety limit while reading"),
          "limit 50: %d %s", s, cg_last_error());
    free(buf);
}

/* ---- grids ------------------------------------------------------------------------------------
 */

/* grid.heic: one 96x64 tile in a 95x63 'grid' item, whose canvas size sits in the item's
 * data (in the idat box here: version, flags, rows-1, columns-1, 16-bit width, height). */
static void test_grid(void) {
    cg_image im;
    if (decode_fixture("grid.heic", &im, 0)) {
        CHECK(im.w == HEIF_FIX_W - 1 && im.h == HEIF_FIX_H - 1, "grid.heic: %dx%d, want 95x63",
              im.w, im.h);
        if (im.w == HEIF_FIX_W - 1 && im.h == HEIF_FIX_H - 1) {
            double e = picture_error(&im, heif_fix_quadrant_rgb, white); /* regions end 4 in */
            CHECK(e <= TOL, "grid.heic: region means off by %.1f", e);
        }
        cg_image_free(&im);
    }
    size_t n = 0;
    uint8_t *buf = read_all(DATA "grid.heic", &n);
    CHECK(buf != NULL, "cannot read grid.heic");
    if (!buf) return;
    size_t g = 0;
    for (size_t i = 4; i + 12 <= n && !g; i++)
        if (!memcmp(buf + i, "idat", 4) && buf[i + 4] == 0 && !(buf[i + 5] & 1)) g = i + 4;
    CHECK(g != 0 && buf[g + 4] * 256 + buf[g + 5] == HEIF_FIX_W - 1 &&
              buf[g + 6] * 256 + buf[g + 7] == HEIF_FIX_H - 1,
          "no 16-bit 95x63 grid descriptor in grid.heic");
    if (g) {
        /* a canvas far over the limit behind a 95x63 header: libheif 1.15 would allocate it
         * (2 GB, then crash); it is refused before decoding */
        buf[g + 4] = 30000 >> 8, buf[g + 5] = 30000 & 255, buf[g + 6] = 30000 >> 8,
                buf[g + 7] = 30000 & 255;
        cg_status s = cg_heif_decode(&im, buf, n, "g.heic", 0);
        CHECK(s == CG_ERR_LIMIT &&
                  strstr(cg_last_error(), "g.heic: image is 30000x30000 (900 megapixels), over the "
                                          "limit of 100 megapixels"),
              "30000x30000 canvas: %d %s", s, cg_last_error());
        /* the canvas, not the header's 95x63 (5985 pixels), is what the limit sees */
        buf[g + 4] = 2000 >> 8, buf[g + 5] = 2000 & 255, buf[g + 6] = 1500 >> 8,
                buf[g + 7] = 1500 & 255;
        s = cg_heif_decode(&im, buf, n, "g.heic", 10000);
        CHECK(
            s == CG_ERR_LIMIT &&
                strstr(cg_last_error(),
                       "g.heic: image is 2000x1500 (3 megapixels), over the limit of 10000 pixels"),
            "2000x1500 canvas: %d %s", s, cg_last_error());
        CHECK(im.rgb == NULL, "refusal left an image behind");
    }
    free(buf);
}

/* lying_ispe*: the header says 96x64, the bitstream is 1024x1024 (its HEVC SPS in the hvcC
 * box, or in the item's data, or its AV1 sequence header). libheif 1.15 decodes the
 * bitstream's size without comparing; the limit must see that size before decoding. */
static void test_lying_header(void) {
    const char *files[] = {"lying_ispe.heic", "lying_ispe_inband.heic", "lying_ispe.avif"};
    for (int i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof path, DATA "%s", files[i]);
        size_t n = 0;
        uint8_t *buf = read_all(path, &n);
        CHECK(buf != NULL, "cannot read %s", path);
        if (!buf) continue;
        cg_image im;
        /* under the limit it decodes, at the bitstream's size */
        cg_status s = cg_heif_decode(&im, buf, n, path, 0);
        CHECK(s == CG_OK && im.w == 1024 && im.h == 1024, "%s: %d %dx%d %s", path, s, im.w, im.h,
              cg_last_error());
        if (s == CG_OK) cg_image_free(&im);
        /* over it, it is refused although the header's 6144 pixels are within it */
        s = cg_heif_decode(&im, buf, n, "l", 100000);
        CHECK(s == CG_ERR_LIMIT &&
                  strstr(cg_last_error(),
                         "l: image is 1024x1024 (1.0 megapixels), over the limit of 100000 pixels"),
              "%s: %d %s", path, s, cg_last_error());
        free(buf);
    }
}

/* ---- warnings -----------------------------------------------------------------------------------
 */

/* A fuzzed rgba_premul.avif whose AV1 sequence header gives unknown colour values: libheif
 * goes past them with two warnings (and 1.15 overran a one-entry warning buffer on it). */
static void test_warning(void) {
    size_t n = 0;
    uint8_t *buf = read_all("tests/fuzz/regressions/fuzz_heif/decoding_warnings_overrun.avif", &n);
    CHECK(buf != NULL, "cannot read the regression input");
    if (!buf) return;
    cg_image im;
    cg_status s = cg_heif_decode(&im, buf, n, "w.avif", 0);
    CHECK(s == CG_OK, "%s", cg_last_error());
    if (s == CG_OK) {
        CHECK(strstr(im.warning, "libheif: ") == im.warning && strstr(im.warning, "NCLX"),
              "warning \"%s\"", im.warning);
        CHECK(!strstr(im.warning, "w.avif"), "the warning names the file: %s", im.warning);
        cg_image_free(&im);
    }
    free(buf);
}

/* ---- bad input ------------------------------------------------------------------------------ */

static void expect_failure(const uint8_t *b, size_t n, const char *what) {
    cg_image im;
    cg_status s = cg_heif_decode(&im, b, n, "bad.heic", 0);
    CHECK(s != CG_OK, "%s: decoded", what);
    CHECK(s == CG_ERR_FORMAT || s == CG_ERR_LIMIT, "%s: status %d", what, s);
    CHECK(!strncmp(cg_last_error(), "bad.heic: ", 10), "%s: message \"%s\"", what, cg_last_error());
    CHECK(im.rgb == NULL && im.w == 0 && im.h == 0 && im.had_alpha == 0,
          "%s: failure left an image", what);
    if (s == CG_OK) cg_image_free(&im);
}

static void test_bad_input(void) {
    const char *files[] = {"orient6.heic", "rgba.avif", "rgb10.heic"};
    for (int f = 0; f < 3; f++) {
        char path[256];
        snprintf(path, sizeof path, DATA "%s", files[f]);
        size_t n = 0;
        uint8_t *buf = read_all(path, &n);
        CHECK(buf != NULL, "cannot read %s", path);
        if (!buf) continue;
        /* every truncation: each must fail cleanly (the image data is at the end, so even
         * the last byte missing loses pixels) */
        int ok = 0;
        for (size_t k = 1; k < n; k++) {
            cg_image im;
            uint8_t *cut = malloc(k); /* exactly k bytes, so ASan sees any overread */
            memcpy(cut, buf, k);
            cg_status s = cg_heif_decode(&im, cut, k, "bad.heic", 0);
            if (s == CG_OK)
                ok++, cg_image_free(&im);
            else
                CHECK(!strncmp(cg_last_error(), "bad.heic: ", 10) && im.rgb == NULL,
                      "%s cut at %zu: %s", path, k, cg_last_error());
            free(cut);
        }
        CHECK(ok == 0, "%s: %d truncated copies decoded", path, ok);
        /* the boxes intact, the compressed data garbage (deterministic noise) */
        uint8_t *junk = malloc(n);
        memcpy(junk, buf, n);
        uint32_t r = 12345;
        for (size_t k = n > 200 ? n - 200 : n / 2; k < n; k++)
            r = r * 1103515245u + 12345u, junk[k] = (uint8_t)(r >> 16);
        cg_image im;
        cg_status s = cg_heif_decode(&im, junk, n, "bad.heic", 0);
        /* a decoder may turn garbage into some picture; it must not crash or mislabel it */
        if (s == CG_OK) {
            CHECK(im.w == HEIF_FIX_W && im.h == HEIF_FIX_H, "%s: garbage decoded to %dx%d", path,
                  im.w, im.h);
            cg_image_free(&im);
        } else {
            CHECK(!strncmp(cg_last_error(), "bad.heic: ", 10), "%s garbage: %s", path,
                  cg_last_error());
        }
        free(junk);
        free(buf);
    }
    static const uint8_t ftyp_only[] = "\0\0\0\x18"
                                       "ftypheic\0\0\0\0mif1heic";
    expect_failure(ftyp_only, 24, "ftyp only");
    uint8_t noise[600];
    memcpy(noise, ftyp_only, 24);
    for (int i = 24; i < 600; i++) noise[i] = (uint8_t)(i * 37 + 11);
    expect_failure(noise, sizeof noise, "ftyp then noise");
    cg_image im;
    CHECK(cg_heif_decode(&im, ftyp_only, 0, "e.heic", 0) == CG_ERR_FORMAT &&
              strstr(cg_last_error(), "e.heic: empty"),
          "empty: %s", cg_last_error());
    CHECK(cg_heif_decode(NULL, ftyp_only, 24, "e.heic", 0) == CG_ERR_ARG, "NULL image");

    /* pitm naming an item that does not exist: no primary image */
    size_t n = 0;
    uint8_t *buf = read_all(DATA "plain.avif", &n);
    if (buf) {
        for (size_t i = 4; i + 14 <= n; i++)
            if (!memcmp(buf + i, "pitm", 4)) {
                buf[i + 8] = 0x00, buf[i + 9] = 0x63; /* version 0: a 16-bit item ID, now 99 */
                break;
            }
        cg_status s = cg_heif_decode(&im, buf, n, "bad.heic", 0);
        CHECK(s == CG_ERR_FORMAT && strstr(cg_last_error(), "bad.heic: no primary image"),
              "pitm 99: %d %s", s, cg_last_error());
        free(buf);
    }
}

/* ---- through image.c ------------------------------------------------------------------------ */

static void test_image_api(void) {
    /* cg_image_decode dispatches to the same decoder */
    size_t n = 0;
    uint8_t *buf = read_all(DATA "orient7.heic", &n);
    CHECK(buf != NULL, "cannot read orient7.heic");
    if (!buf) return;
    cg_image a, b;
    CHECK(cg_image_decode(&a, buf, n, "x", 0) == CG_OK, "cg_image_decode: %s", cg_last_error());
    CHECK(cg_heif_decode(&b, buf, n, "x", 0) == CG_OK, "cg_heif_decode: %s", cg_last_error());
    CHECK(a.rgb && b.rgb && a.w == b.w && a.h == b.h &&
              !memcmp(a.rgb, b.rgb, (size_t)a.w * a.h * 3),
          "cg_image_decode and cg_heif_decode differ");
    cg_image_free(&a);
    cg_image_free(&b);

    /* cg_image_load of a .HEIC path, and of one misnamed .jpg (the content decides) */
    const char *names[] = {"IMG_0001.HEIC", "misnamed.jpg"};
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(buf, 1, n, f) == n, "cannot write %s", path);
        if (f) fclose(f);
        cg_image im;
        cg_status s = cg_image_load(&im, path, 0);
        CHECK(s == CG_OK, "cg_image_load %s: %s", path, cg_last_error());
        if (s != CG_OK) continue;
        CHECK(im.w == HEIF_FIX_W && im.h == HEIF_FIX_H &&
                  picture_error(&im, heif_fix_quadrant_rgb, white) <= TOL,
              "%s: %dx%d, not upright", path, im.w, im.h);
        /* writing HEIF is refused, by format or by extension, and leaves nothing */
        char out[128];
        snprintf(out, sizeof out, "%s/out.heic", tmpdir);
        CHECK(cg_image_save(&im, out, CG_FMT_HEIF) == CG_ERR_ARG &&
                  strstr(cg_last_error(), "writing HEIF is not supported"),
              "save CG_FMT_HEIF: %s", cg_last_error());
        snprintf(out, sizeof out, "%s/out.avif", tmpdir);
        CHECK(cg_image_save(&im, out, CG_FMT_UNKNOWN) == CG_ERR_ARG &&
                  strstr(cg_last_error(), "writing HEIF is not supported"),
              "save .avif: %s", cg_last_error());
        CHECK(access(out, F_OK) != 0, "%s was written", out);
        cg_image_free(&im);
    }
    free(buf);
}

int main(void) {
    if (test_make_dir(tmpdir, sizeof tmpdir, "cg_test_heif") != 0) return 1;
    RUN(test_sniff);
    RUN(test_orientation);
    RUN(test_exif_not_applied);
    RUN(test_alpha);
    RUN(test_10bit);
    RUN(test_10bit_mirrored);
    RUN(test_pixel_limit);
    RUN(test_grid);
    RUN(test_lying_header);
    RUN(test_warning);
    RUN(test_bad_input);
    RUN(test_image_api);
    test_remove_dir(tmpdir);
    return TEST_SUMMARY("test_heif");
}
