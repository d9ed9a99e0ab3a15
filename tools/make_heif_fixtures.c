/* make_heif_fixtures.c: writes the HEIC and AVIF fixtures of tests/data/images/ with
 * libheif's encoder API (x265 for HEIC, aom for AVIF), the library the project reads them
 * with. Build and run from the repository root:
 *
 *     make build/tools/make_heif_fixtures
 *     build/tools/make_heif_fixtures tests/data/images
 *
 * Every file holds the picture of tests/heif_fixtures.h (96x64 quadrants and a marker) as
 * it must look once decoded; the list at the bottom says what else each one carries. The
 * rotated and mirrored ones store the pixels turned the other way, with `irot` / `imir`
 * properties that turn them upright again. libheif 1.15 writes those itself from
 * heif_encoding_options.image_orientation (an EXIF orientation value), but not as the
 * standard (ISO/IEC 23008-12) has them: it lists the transforms before the `ispe` in the
 * item's property associations and gives `ispe` the size after rotation, where `ispe` must
 * come first and give the coded size (and marks the transforms non-essential, where MIAF
 * wants them essential). libheif 1.15's own reader happens to accept both, a
 * reader that follows the standard would not, so fix_properties() below puts them right
 * in place (the same bytes reordered, the two `ispe` values swapped, one bit set: no box
 * changes size and no offset moves); newer libheif versions write them that way. The fixtures are
 * lossy (quality 90, 4:2:0), under 2 KB each, and the same bytes on every run with one encoder
 * thread. */
#include <libheif/heif.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heif_fixtures.h"

#define QUALITY 90

static void die(const char *what, const char *detail) {
    fprintf(stderr, "make_heif_fixtures: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static void check(struct heif_error e, const char *what) {
    if (e.code != heif_error_Ok) die(what, e.message);
}

/* Where the upright pixel (x, y) is stored in a ws x hs image that EXIF orientation o
 * turns upright (the maps of apply_orientation in src/io/image.c, inverted). */
static void stored_xy(int o, int x, int y, int ws, int hs, int *sx, int *sy) {
    switch (o) {
    case 2: *sx = ws - 1 - x, *sy = y; break;
    case 3: *sx = ws - 1 - x, *sy = hs - 1 - y; break;
    case 4: *sx = x, *sy = hs - 1 - y; break;
    case 5: *sx = y, *sy = x; break;
    case 6: *sx = y, *sy = hs - 1 - x; break;
    case 7: *sx = ws - 1 - y, *sy = hs - 1 - x; break;
    case 8: *sx = ws - 1 - y, *sy = x; break;
    default: *sx = x, *sy = y; break;
    }
}

typedef struct {
    const char *file;
    enum heif_compression_format codec;
    int orientation; /* EXIF value the irot/imir properties encode; 1: none */
    int bits;        /* 8 or 10 */
    int alpha;       /* 1: straight alpha; 2: premultiplied (colour stored as c * a / 255) */
    int exif;        /* also attach an EXIF block saying `orientation`, as iPhones do */
    int odd;         /* store the top-left 95x63 only (see grid.heic below) */
    int lie;         /* a flat grey 1024x1024 picture whose ispe then says 96x64; 2: and
                        its HEVC SPS moved from hvcC into the item data (move_sps_inband) */
} fixture;

/* The picture stored turned by the inverse of `orientation`, as an interleaved RGB(A)
 * image of 8 or 10 bits (10-bit samples: v * 1023 / 255, rounded). */
static struct heif_image *make_picture(const fixture *f) {
    int turned = f->orientation >= 5, pw = HEIF_FIX_W - f->odd, ph = HEIF_FIX_H - f->odd;
    if (f->lie) pw = ph = 1024;
    int ws = turned ? ph : pw, hs = turned ? pw : ph;
    int ch = f->alpha ? 4 : 3, wide = f->bits > 8;
    enum heif_chroma chroma =
        wide ? (f->alpha ? heif_chroma_interleaved_RRGGBBAA_LE : heif_chroma_interleaved_RRGGBB_LE)
             : (f->alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB);
    struct heif_image *img = NULL;
    check(heif_image_create(ws, hs, heif_colorspace_RGB, chroma, &img), "heif_image_create");
    check(heif_image_add_plane(img, heif_channel_interleaved, ws, hs, f->bits),
          "heif_image_add_plane");
    if (f->alpha == 2)
        heif_image_set_premultiplied_alpha(img, 1); /* written as a 'prem' reference */
    int stride = 0;
    uint8_t *plane = heif_image_get_plane(img, heif_channel_interleaved, &stride);
    if (!plane) die("no interleaved plane", NULL);
    for (int y = 0; y < ph; y++)
        for (int x = 0; x < pw; x++) {
            uint8_t v[4] = {128, 128, 128, 255};
            if (!f->lie) heif_fix_pixel(x, y, v), v[3] = heif_fix_alpha(x, y);
            if (f->alpha == 2)
                for (int c = 0; c < 3; c++) v[c] = (uint8_t)((v[c] * v[3] + 127u) / 255u);
            int sx, sy;
            stored_xy(f->orientation, x, y, ws, hs, &sx, &sy);
            uint8_t *p = plane + (size_t)sy * stride + (size_t)sx * ch * (wide ? 2 : 1);
            for (int c = 0; c < ch; c++) {
                if (!wide) {
                    p[c] = v[c];
                    continue;
                }
                unsigned s = (v[c] * 1023u + 127u) / 255u;
                p[2 * c] = (uint8_t)(s & 0xFF);
                p[2 * c + 1] = (uint8_t)(s >> 8);
            }
        }
    return img;
}

/* A minimal little-endian TIFF block with one IFD0 entry: Orientation (0x0112) = o. */
static size_t make_exif(uint8_t *b, int o) {
    static const uint8_t head[] = {'I',  'I',  42, 0, 8, 0, 0, 0, /* header, IFD0 at 8 */
                                   1,    0,                       /* one entry */
                                   0x12, 0x01, 3,  0, 1, 0, 0, 0, /* Orientation, SHORT, 1 */
                                   0,    0,    0,  0,             /* value (set below) */
                                   0,    0,    0,  0};            /* no next IFD */
    memcpy(b, head, sizeof head);
    b[18] = (uint8_t)o;
    return sizeof head;
}

/* ---- fixing the property order (see the top comment) ---- */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The child box of type `type` in [p, end), or NULL; *len gets its whole size. Only
 * 32-bit box sizes occur in these small files. */
static uint8_t *find_box(uint8_t *p, uint8_t *end, const char *type, size_t *len) {
    while (end - p >= 8) {
        size_t n = be32(p);
        if (n < 8 || n > (size_t)(end - p)) die("malformed box", type);
        if (!memcmp(p + 4, type, 4)) {
            *len = n;
            return p;
        }
        p += n;
    }
    return NULL;
}

static int transformative(const char *type) {
    return !memcmp(type, "irot", 4) || !memcmp(type, "imir", 4) || !memcmp(type, "clap", 4);
}

/* Puts every item's descriptive properties before its transformative ones (keeping each
 * group's order), marks the transformative ones essential (MIAF requires it: a reader that
 * cannot apply one must not show the image) and, when the transforms turn the picture by 90
 * degrees, swaps each ispe's width and height back to the coded size. */
static void fix_properties(uint8_t *file, size_t size, int orientation) {
    size_t n;
    uint8_t *meta = find_box(file, file + size, "meta", &n);
    if (!meta) die("no meta box", NULL);
    uint8_t *iprp = find_box(meta + 12, meta + n, "iprp", &n);
    if (!iprp) die("no iprp box", NULL);
    uint8_t *iprp_end = iprp + n, *ipco = find_box(iprp + 8, iprp_end, "ipco", &n);
    if (!ipco) die("no ipco box", NULL);
    const char *types[64];
    uint8_t *props[64];
    int count = 0;
    for (uint8_t *p = ipco + 8; p < ipco + n && count < 64; p += be32(p)) {
        props[count] = p;
        types[count++] = (const char *)p + 4;
    }
    for (int i = 0; i < count; i++)
        if (orientation >= 5 && !memcmp(types[i], "ispe", 4)) {
            uint8_t t[4];
            memcpy(t, props[i] + 12, 4);
            memcpy(props[i] + 12, props[i] + 16, 4);
            memcpy(props[i] + 16, t, 4);
        }
    uint8_t *ipma = find_box(iprp + 8, iprp_end, "ipma", &n);
    if (!ipma) die("no ipma box", NULL);
    int version = ipma[8], wide = ipma[11] & 1;
    uint8_t *p = ipma + 16, *end = ipma + n;
    for (uint32_t e = be32(ipma + 12); e > 0; e--) {
        p += version < 1 ? 2 : 4;
        if (p >= end) die("malformed ipma", NULL);
        int assoc = *p++, sz = wide ? 2 : 1;
        if (end - p < (ptrdiff_t)assoc * sz) die("malformed ipma", NULL);
        uint8_t sorted[255 * 2];
        int k = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int a = 0; a < assoc; a++) {
                const uint8_t *q = p + a * sz;
                int index = wide ? ((q[0] & 0x7F) << 8 | q[1]) : (q[0] & 0x7F);
                if (index < 1 || index > count) die("ipma names a missing property", NULL);
                if (transformative(types[index - 1]) != pass) continue;
                memcpy(sorted + sz * k, q, (size_t)sz);
                if (pass) sorted[sz * k] |= 0x80; /* MIAF: transforms are essential */
                k++;
            }
        memcpy(p, sorted, (size_t)assoc * sz);
        p += assoc * sz;
    }
}

/* Overwrites the (only) ispe box's size. */
static void set_ispe(uint8_t *file, size_t size, uint32_t w, uint32_t h) {
    for (size_t i = 4; i + 16 <= size; i++)
        if (!memcmp(file + i, "ispe", 4)) {
            for (int k = 0; k < 4; k++)
                file[i + 8 + k] = (uint8_t)(w >> (24 - 8 * k)),
                             file[i + 12 + k] = (uint8_t)(h >> (24 - 8 * k));
            return;
        }
    die("no ispe box", NULL);
}

/* ---- writing ---- */

typedef struct {
    uint8_t *data;
    size_t size;
} buffer;

static void put_be(uint8_t *p, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* Puts copies of the hvcC's SPS and PPS in front of the item's data (as 4-byte-length NAL
 * units, as libheif passes them to the decoder) and turns the hvcC's own into SEI NAL units,
 * which decoders skip, so only the in-band SPS gives the size. Works on what libheif 1.15
 * writes for one image: a version 0 iloc with one item of one extent covering the whole
 * mdat, which comes last in the file. */
static void move_sps_inband(buffer *b) {
    uint8_t *d = b->data;
    size_t n = b->size, at[2] = {0, 0}, len[2] = {0, 0};
    for (int k = 0; k < 2; k++) /* hvcC arrays of type 33 (SPS) and 34 (PPS), one NAL unit each */
        for (size_t i = 0; i + 6 < n && !at[k]; i++)
            if ((d[i] & 63) == 33 + k && d[i + 1] == 0 && d[i + 2] == 1 &&
                d[i + 5] == (33 + k) << 1)
                at[k] = i + 5, len[k] = (size_t)d[i + 3] << 8 | d[i + 4];
    size_t n_mdat = 0, n_meta = 0, n_iloc = 0;
    uint8_t *m = find_box(d, d + n, "mdat", &n_mdat), *meta = find_box(d, d + n, "meta", &n_meta);
    uint8_t *loc = meta ? find_box(meta + 12, meta + n_meta, "iloc", &n_iloc) : NULL;
    if (!at[0] || !at[1] || !m || !loc || (size_t)(m - d) + n_mdat != n || loc[8] != 0 ||
        (loc[14] << 8 | loc[15]) != 1)
        die("move_sps_inband: not the layout libheif 1.15 writes", NULL);
    size_t mdat = (size_t)(m - d), iloc = (size_t)(loc - d), add = 8 + len[0] + len[1];
    int offset_size = d[iloc + 12] >> 4, length_size = d[iloc + 12] & 15,
        base_size = d[iloc + 13] >> 4;
    size_t ext_len = iloc + 16 + 2 + 2 + (size_t)base_size + 2 + (size_t)offset_size;
    uint8_t *out = malloc(n + add);
    if (!out || (length_size != 4 && length_size != 8)) die("move_sps_inband: cannot", NULL);
    memcpy(out, d, mdat + 8);
    size_t p = mdat + 8;
    for (int k = 0; k < 2; k++) {
        put_be(out + p, len[k], 4);
        memcpy(out + p + 4, d + at[k], len[k]);
        p += 4 + len[k];
        out[at[k]] = 39 << 1; /* the hvcC's copy: now a prefix SEI */
    }
    memcpy(out + p, d + mdat + 8, n - mdat - 8);
    put_be(out + mdat, n_mdat + add, 4);
    put_be(out + ext_len, be32(d + ext_len + length_size - 4) + add, length_size);
    free(b->data);
    b->data = out, b->size = n + add;
}

static struct heif_error write_to_buffer(struct heif_context *ctx, const void *data, size_t size,
                                         void *user) {
    (void)ctx;
    buffer *b = user;
    b->data = malloc(size);
    if (!b->data) die("out of memory", NULL);
    memcpy(b->data, data, size);
    b->size = size;
    struct heif_error ok = {heif_error_Ok, heif_suberror_Unspecified, "ok"};
    return ok;
}

static void write_fixture(const char *dir, const fixture *f) {
    struct heif_context *ctx = heif_context_alloc();
    if (!ctx) die("out of memory", NULL);
    struct heif_encoder *enc = NULL;
    check(heif_context_get_encoder_for_format(ctx, f->codec, &enc),
          f->codec == heif_compression_HEVC ? "no HEVC encoder" : "no AV1 encoder");
    check(heif_encoder_set_lossy_quality(enc, QUALITY), "quality");
    check(heif_encoder_set_parameter(enc, "chroma", "420"), "chroma");
    /* one thread each, so the output does not depend on the machine */
    if (f->codec == heif_compression_HEVC) {
        check(heif_encoder_set_parameter(enc, "x265:pools", "none"), "x265 pools");
        check(heif_encoder_set_parameter(enc, "x265:frame-threads", "1"), "x265 frame-threads");
    } else {
        check(heif_encoder_set_parameter(enc, "threads", "1"), "aom threads");
    }
    struct heif_image *img = make_picture(f);
    struct heif_encoding_options *opt = heif_encoding_options_alloc();
    if (!opt) die("out of memory", NULL);
    opt->image_orientation = (enum heif_orientation)f->orientation;
    struct heif_image_handle *h = NULL;
    check(heif_context_encode_image(ctx, img, enc, opt, &h), "encoding");
    if (f->exif) {
        uint8_t exif[64];
        size_t n = make_exif(exif, f->orientation);
        check(heif_context_add_exif_metadata(ctx, h, exif, (int)n), "adding EXIF");
    }
    buffer out = {NULL, 0};
    struct heif_writer writer = {1, write_to_buffer};
    check(heif_context_write(ctx, &writer, &out), "writing");
    if (f->orientation != 1) fix_properties(out.data, out.size, f->orientation);
    if (f->lie) set_ispe(out.data, out.size, HEIF_FIX_W, HEIF_FIX_H);
    if (f->lie == 2) move_sps_inband(&out);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, f->file);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(out.data, 1, out.size, fp) != out.size || fclose(fp) != 0)
        die("cannot write", path);
    printf("%s: %zu bytes\n", path, out.size);
    free(out.data);
    heif_image_handle_release(h);
    heif_encoding_options_free(opt);
    heif_image_release(img);
    heif_encoder_release(enc);
    heif_context_free(ctx);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_heif_fixtures DIR\n");
        return 2;
    }
    static const fixture fixtures[] = {
        /* irot 270 (EXIF 6; stored 64x96) and an EXIF block that says 6 as well, as iPhones
         * write them: the EXIF value must not be applied a second time */
        {"orient6.heic", heif_compression_HEVC, 6, 8, 0, 1, 0, 0},
        /* imir only: a left-right mirror (EXIF 2) */
        {"orient2.heic", heif_compression_HEVC, 2, 8, 0, 0, 0, 0},
        /* irot then imir (EXIF 7, transverse): their order matters */
        {"orient7.heic", heif_compression_HEVC, 7, 8, 0, 0, 0, 0},
        {"plain.avif", heif_compression_AV1, 1, 8, 0, 0, 0, 0},
        /* 10-bit HEVC (Main 10), from 10-bit RGB */
        {"rgb10.heic", heif_compression_HEVC, 1, 10, 0, 0, 0, 0},
        /* 10-bit and mirrored: libheif 1.15 mirrors 8-bit planes only */
        {"rgb10_orient2.heic", heif_compression_HEVC, 2, 10, 0, 0, 0, 0},
        /* alpha (heif_fix_alpha) as an auxiliary image, AV1 and HEVC */
        {"rgba.avif", heif_compression_AV1, 1, 8, 1, 0, 0, 0},
        {"rgba.heic", heif_compression_HEVC, 1, 8, 1, 0, 0, 0},
        {"rgba_premul.avif", heif_compression_AV1, 1, 8, 2, 0, 0, 0},
        /* 95x63: x265 is given 96x64 (libheif pads odd sides) and libheif wraps the coded
         * image in a one-tile 'grid' item of 95x63, as it does by default for macOS; big
         * camera photos are grids of many tiles */
        {"grid.heic", heif_compression_HEVC, 1, 8, 0, 0, 1, 0},
        /* the header (ispe) says 96x64, the bitstream (HEVC SPS, AV1 sequence header) is
         * 1024x1024: libheif 1.15 would decode the bitstream's size */
        {"lying_ispe.heic", heif_compression_HEVC, 1, 8, 0, 0, 0, 1},
        {"lying_ispe.avif", heif_compression_AV1, 1, 8, 0, 0, 0, 1},
        /* the same with the SPS inside the item's data, where decoders also take it from */
        {"lying_ispe_inband.heic", heif_compression_HEVC, 1, 8, 0, 0, 0, 2},
    };
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++)
        write_fixture(argv[1], &fixtures[i]);
    return 0;
}
