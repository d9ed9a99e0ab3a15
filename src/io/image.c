/* image.c: JPEG (libjpeg-turbo), PNG (libpng) and WebP (libwebp) decoding to packed RGB8
 * and encoding from it, with EXIF orientation (libexif) and a pixel limit checked against
 * the header before any pixel memory exists. The libraries report errors by calling a
 * handler that must not return; each decoder keeps that handler's setjmp inside a small
 * "run" function whose state lives in a caller-owned struct, so nothing the caller reads
 * after a longjmp is an indeterminate local.
 * JPEG damage is judged from libjpeg's warnings (see jpeg_on_message): a file that needed
 * data past its end is truncated and refused; damage libjpeg decodes past, and a missing
 * end-of-image marker, become img->warning. PNG orientation comes from the eXIf chunk,
 * read before and after the image data (png_orientation). */
#include "io/image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <libexif/exif-data.h>
#include <png.h>
#include <webp/decode.h>
#include <webp/encode.h>

#include "io/heif.h"
#include "status.h"

/* Whole-file reads are capped: a 100-megapixel image is at most ~300 MB even as an
 * uncompressed-ish PNG, so anything past 1 GiB is refused rather than slurped. */
#define MAX_FILE_BYTES (1ull << 30)

#define JPEG_QUALITY 95
#define WEBP_QUALITY 95.0f

/* ---- shared helpers ------------------------------------------------------------------- */

static const char *or_memory(const char *name) { return name && *name ? name : "<memory>"; }

static void format_pixels(char *buf, size_t n, uint64_t px) {
    if (px >= 1000000 && (px % 1000000 == 0 || px >= 10000000))
        snprintf(buf, n, "%.0f megapixels", (double)px / 1e6);
    else if (px >= 1000000)
        snprintf(buf, n, "%.1f megapixels", (double)px / 1e6);
    else
        snprintf(buf, n, "%llu pixels", (unsigned long long)px);
}

/* The one place the size limit is enforced; called right after each header is parsed. */
static cg_status check_size(const char *name, uint64_t w, uint64_t h, uint64_t max_pixels) {
    char have[48], lim[48];
    uint64_t px = w * h; /* each side is below 2^32, so this cannot overflow */
    if (w == 0 || h == 0)
        return cg_fail(CG_ERR_FORMAT, "%s: image has zero width or height", name);
    if (px > max_pixels || w > INT_MAX || h > INT_MAX || px > SIZE_MAX / 4) {
        format_pixels(have, sizeof have, px);
        format_pixels(lim, sizeof lim, max_pixels);
        return cg_fail(CG_ERR_LIMIT, "%s: image is %llux%llu (%s), over the limit of %s", name,
                       (unsigned long long)w, (unsigned long long)h, have, lim);
    }
    return CG_OK;
}

/* Alpha is composited onto white (what a viewer shows on a page) and then dropped; done
 * in place, which is safe because the RGB write index never passes the RGBA read index. */
static void rgba_to_rgb_on_white(uint8_t *p, size_t npix) {
    const uint8_t *s = p;
    for (size_t i = 0; i < npix; i++, s += 4, p += 3) {
        unsigned a = s[3], bg = 255u * (255u - a) + 127u;
        p[0] = (uint8_t)((s[0] * a + bg) / 255u);
        p[1] = (uint8_t)((s[1] * a + bg) / 255u);
        p[2] = (uint8_t)((s[2] * a + bg) / 255u);
    }
}

/* Orientation (1..8) from an EXIF block that starts with "Exif\0\0"; 1 when absent or
 * unreadable, since a broken EXIF block must not make an otherwise good image fail. */
static int exif_orientation(const uint8_t *p, size_t n) {
    if (n < 14 || n > UINT_MAX || memcmp(p, "Exif\0\0", 6) != 0) return 1;
    ExifData *ed = exif_data_new_from_data(p, (unsigned int)n);
    if (!ed) return 1;
    int o = 1;
    ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
    if (e && e->format == EXIF_FORMAT_SHORT && e->components >= 1 && e->data && e->size >= 2)
        o = exif_get_short(e->data, exif_data_get_byte_order(ed));
    exif_data_unref(ed);
    return o >= 1 && o <= 8 ? o : 1;
}

/* The same from a bare TIFF-structured EXIF block ("II" or "MM" first), as PNG eXIf and
 * WebP EXIF chunks store it; a block that has the JPEG-style prefix anyway is accepted. */
static int tiff_orientation(const uint8_t *p, size_t n) {
    if (n >= 6 && !memcmp(p, "Exif\0\0", 6)) return exif_orientation(p, n);
    if (n > SIZE_MAX - 6) return 1;
    /* libexif wants the JPEG-style prefix. */
    uint8_t *tmp = malloc(n + 6);
    if (!tmp) return 1;
    memcpy(tmp, "Exif\0\0", 6);
    memcpy(tmp + 6, p, n);
    int o = exif_orientation(tmp, n + 6);
    free(tmp);
    return o;
}

/* Turns the stored pixels upright. Each EXIF orientation is an affine map from output
 * (x, y) to a stored pixel index: start + x * xstep + y * ystep. */
static cg_status apply_orientation(cg_image *img, int o, const char *name) {
    if (o <= 1 || o > 8) return CG_OK;
    ptrdiff_t w = img->w, h = img->h, start, xs, ys;
    int ow = o >= 5 ? img->h : img->w, oh = o >= 5 ? img->w : img->h;
    switch (o) {
    case 2: start = w - 1, xs = -1, ys = w; break;                  /* mirror left-right */
    case 3: start = (h - 1) * w + w - 1, xs = -1, ys = -w; break;   /* rotate 180 */
    case 4: start = (h - 1) * w, xs = 1, ys = -w; break;            /* mirror top-bottom */
    case 5: start = 0, xs = w, ys = 1; break;                       /* transpose */
    case 6: start = (h - 1) * w, xs = -w, ys = 1; break;            /* rotate 90 clockwise */
    case 7: start = (h - 1) * w + w - 1, xs = -w, ys = -1; break;   /* transverse */
    default: start = w - 1, xs = w, ys = -1; break;                 /* 8: rotate 90 ccw */
    }
    uint8_t *out = malloc((size_t)w * h * 3);
    if (!out) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    uint8_t *d = out;
    for (ptrdiff_t y = 0; y < oh; y++) {
        const uint8_t *s = img->rgb + (start + y * ys) * 3;
        for (ptrdiff_t x = 0; x < ow; x++, d += 3, s += xs * 3) d[0] = s[0], d[1] = s[1], d[2] = s[2];
    }
    free(img->rgb);
    img->rgb = out;
    img->w = ow;
    img->h = oh;
    return CG_OK;
}

/* ---- JPEG ------------------------------------------------------------------------------ */

/* libjpeg goes past damaged data the way browsers do, warning as it goes: when the data
 * ends early its memory source hands out a fake end-of-image marker (JWRN_JPEG_EOF), the
 * entropy decoder fills what it cannot read with zero bits, so the blocks come out gray
 * (JWRN_HIT_MARKER), and damaged data is resynchronised at the next restart marker
 * (JWRN_EXTRANEOUS_DATA, JWRN_MUST_RESYNC). Those warnings are collected here rather than
 * printed: an image whose every row was decoded from real data is kept, with the first
 * warning as a sentence, and one that needed data past the end of the file is refused. */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX]; /* the error, or with `truncated` the whole reason */
    int header_done;           /* jpeg_read_header has returned */
    int ran_out;               /* the data ended where libjpeg wanted more (no EOI marker) */
    int truncated;             /* image data was needed past the end of the data */
    char warning[sizeof(((cg_image *)0)->warning)];
} jpeg_err;

static void jpeg_on_error(j_common_ptr c) {
    jpeg_err *e = (jpeg_err *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

/* The rows before the iMCU row (the band of 8 or 16 rows libjpeg decodes as a unit) in
 * which the data ran out were decoded from real data; the rest would be gray. A
 * progressive scan refines every row, so there the scan is named instead. */
static void jpeg_truncated(j_decompress_ptr d, jpeg_err *e) {
    if (d->progressive_mode) {
        snprintf(e->msg, sizeof e->msg,
                 "truncated JPEG: the data ends in progressive scan %d, before the image is complete",
                 d->input_scan_number);
    } else {
        unsigned long rows = (unsigned long)d->input_iMCU_row * d->max_v_samp_factor * DCTSIZE;
        if (rows > d->image_height) rows = d->image_height;
        snprintf(e->msg, sizeof e->msg, "truncated JPEG: only %lu of %lu rows present", rows,
                 (unsigned long)d->image_height);
    }
    e->truncated = 1;
    longjmp(e->jb, 1);
}

/* Warnings that mean image data is missing or damaged are recorded (the first one wins);
 * the rest (unknown JFIF revision, stray bytes between header segments, ...) describe
 * files every viewer shows fine and are dropped. Trace messages (level >= 0) are dropped. */
static void jpeg_on_message(j_common_ptr c, int level) {
    if (level >= 0 || !c->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)c;
    jpeg_err *e = (jpeg_err *)c->err;
    const int *p = c->err->msg_parm.i;
    char w[sizeof e->warning];
    switch (c->err->msg_code) {
    case JWRN_JPEG_EOF:
        e->ran_out = 1;
        /* The arithmetic decoder reads zeros past a marker without a warning (its encoder
         * drops trailing zero bytes, so even a complete scan may read past its end). Running
         * out before the scan's last iMCU row has started is the sign of truncation there. */
        if (d->arith_code && e->header_done && d->input_iMCU_row + 1 < d->total_iMCU_rows)
            jpeg_truncated(d, e);
        snprintf(w, sizeof w, "the data ends without an end-of-image marker");
        break;
    case JWRN_HIT_MARKER:
        /* Once the data has run out, every marker is the fake EOI: bits were missing. */
        if (e->ran_out) jpeg_truncated(d, e);
        snprintf(w, sizeof w, "damaged data: a marker cuts a segment of image data short "
                              "(the rest of it is gray)");
        break;
    case JWRN_EXTRANEOUS_DATA:
        if (!e->header_done) return; /* padding between header segments */
        if (p[1] >= JPEG_RST0 && p[1] <= JPEG_RST0 + 7)
            snprintf(w, sizeof w,
                     "damaged data: decoding resynchronised at a restart marker (%d extraneous bytes)",
                     p[0]);
        else
            snprintf(w, sizeof w, "damaged data: %d extraneous bytes before marker 0x%02x", p[0], p[1]);
        break;
    case JWRN_MUST_RESYNC:
        snprintf(w, sizeof w, "damaged data: a restart marker is missing or out of order "
                              "(decoding resynchronised)");
        break;
    case JWRN_HUFF_BAD_CODE: snprintf(w, sizeof w, "damaged data: an invalid Huffman code"); break;
    case JWRN_ARITH_BAD_CODE: snprintf(w, sizeof w, "damaged data: an invalid arithmetic code"); break;
    case JWRN_BOGUS_PROGRESSION:
        snprintf(w, sizeof w, "damaged data: an inconsistent progressive scan sequence");
        break;
    default: return;
    }
    if (!e->warning[0]) memcpy(e->warning, w, sizeof w);
}

static void jpeg_err_init(jpeg_err *e) {
    jpeg_std_error(&e->pub);
    e->pub.error_exit = jpeg_on_error;
    e->pub.emit_message = jpeg_on_message;
}

/* Valid JPEGs this libjpeg cannot decode are named as such, by message code: a "bad JPEG
 * data" message would send people looking for damage that is not there. */
static cg_status jpeg_failure(const jpeg_err *e, const char *name) {
    const int *p = e->pub.msg_parm.i;
    if (e->truncated) return cg_fail(CG_ERR_FORMAT, "%s: %s", name, e->msg);
    switch (e->pub.msg_code) {
    case JERR_OUT_OF_MEMORY: return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    case JERR_BAD_PRECISION:
        return cg_fail(CG_ERR_FORMAT, "%s: %d-bit JPEG is not supported (only 8-bit)", name, p[0]);
    case JERR_SOF_UNSUPPORTED:
        if (p[0] == 0xC3 || p[0] == 0xCB)
            return cg_fail(CG_ERR_FORMAT, "%s: lossless JPEG is not supported", name);
        return cg_fail(CG_ERR_FORMAT, "%s: hierarchical JPEG (SOF 0x%02X) is not supported", name, p[0]);
    case JERR_ARITH_NOTIMPL:
        return cg_fail(CG_ERR_FORMAT, "%s: arithmetic-coded JPEG is not supported", name);
    default: break;
    }
    /* A header cut short ends in whatever error the fake EOI leads to ("no image", a bad
     * segment length); the real cause is the missing data. */
    if (e->ran_out)
        return cg_fail(CG_ERR_FORMAT, "%s: truncated JPEG: the data ends %s (%s)", name,
                       e->header_done ? "before the image is complete" : "inside the header", e->msg);
    return cg_fail(CG_ERR_FORMAT, "%s: bad JPEG data: %s", name, e->msg);
}

/* Which components have had a scan; libjpeg calls the monitor before each step of reading
 * a multi-scan file, so every scan's components are seen. */
typedef struct {
    struct jpeg_progress_mgr pub;
    unsigned scanned; /* bit i: component i appeared in a scan */
} jpeg_scans;

static void jpeg_on_progress(j_common_ptr c) {
    j_decompress_ptr d = (j_decompress_ptr)c;
    jpeg_scans *s = (jpeg_scans *)c->progress;
    for (int i = 0; i < d->comps_in_scan; i++) s->scanned |= 1u << d->cur_comp_info[i]->component_index;
}

/* Whether a multi-scan file sent everything: in a progressive file every coefficient of
 * every component refined to full precision (coef_bits 0; -1 means never sent), in a
 * sequential one a scan for every component. A file cut between scans decodes to a
 * blurred or colourless picture without any entropy decoder noticing. */
static int jpeg_all_scans_present(j_decompress_ptr d, unsigned scanned) {
    if (!d->progressive_mode) return scanned == (1u << d->num_components) - 1;
    for (int c = 0; c < d->num_components; c++)
        for (int k = 0; k < DCTSIZE2; k++)
            if (d->coef_bits[c][k] != 0) return 0;
    return 1;
}

typedef struct {
    struct jpeg_decompress_struct ci;
    jpeg_err err;
    jpeg_scans scans;
    uint8_t *rgb, *row; /* output; one CMYK row */
    int w, h, orientation;
    int rows_done; /* every scanline is in rgb: a later error only costs the trailer */
} jpeg_dec;

static cg_status jpeg_decode_run(jpeg_dec *d, const uint8_t *data, size_t n, const char *name,
                                 uint64_t max_pixels) {
    jpeg_err_init(&d->err);
    d->ci.err = &d->err.pub;
    if (setjmp(d->err.jb)) {
        if (!d->rows_done) return jpeg_failure(&d->err, name);
        if (!d->err.warning[0])
            snprintf(d->err.warning, sizeof d->err.warning, "unreadable data after the image (%.120s)",
                     d->err.msg);
        return CG_OK;
    }
    jpeg_create_decompress(&d->ci);
    d->scans.pub.progress_monitor = jpeg_on_progress;
    d->ci.progress = &d->scans.pub;
    jpeg_mem_src(&d->ci, data, (unsigned long)n);
    jpeg_save_markers(&d->ci, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&d->ci, TRUE);
    d->err.header_done = 1;

    cg_status s = check_size(name, d->ci.image_width, d->ci.image_height, max_pixels);
    if (s != CG_OK) return s;
    d->w = (int)d->ci.image_width;
    d->h = (int)d->ci.image_height;

    int cmyk = 0;
    switch (d->ci.jpeg_color_space) {
    case JCS_GRAYSCALE: case JCS_YCbCr: case JCS_RGB: d->ci.out_color_space = JCS_RGB; break;
    /* libjpeg turns YCCK into CMYK itself; both are then converted below. */
    case JCS_CMYK: case JCS_YCCK: d->ci.out_color_space = JCS_CMYK, cmyk = 1; break;
    default:
        return cg_fail(CG_ERR_FORMAT, "%s: unsupported JPEG colour space (%d components)", name,
                       d->ci.num_components);
    }
    /* Photoshop writes CMYK inverted (0 = full ink) and marks such files with an Adobe
     * APP14 segment; without it the values are taken as plain ink amounts. */
    int inverted = d->ci.saw_Adobe_marker;
    for (jpeg_saved_marker_ptr m = d->ci.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && !memcmp(m->data, "Exif\0\0", 6)) {
            d->orientation = exif_orientation(m->data, m->data_length);
            break;
        }

    /* The decoding settings are libjpeg's defaults (integer DCT, fancy upsampling, block
     * smoothing), the same as djpeg's, which the damaged-file tests compare against. */
    jpeg_start_decompress(&d->ci); /* reads all of a multi-scan file */
    if (jpeg_has_multiple_scans(&d->ci) && d->err.ran_out &&
        !jpeg_all_scans_present(&d->ci, d->scans.scanned))
        return cg_fail(CG_ERR_FORMAT,
                       "%s: truncated JPEG: the data ends after %sscan %d, before the final scan", name,
                       d->ci.progressive_mode ? "progressive " : "", d->ci.input_scan_number);
    if (d->ci.output_components != (cmyk ? 4 : 3) || d->ci.output_width != (JDIMENSION)d->w ||
        d->ci.output_height != (JDIMENSION)d->h)
        return cg_fail(CG_ERR_FORMAT, "%s: unexpected JPEG output layout", name);
    size_t stride = (size_t)d->w * 3;
    d->rgb = malloc(stride * d->h);
    d->row = cmyk ? malloc((size_t)d->w * 4) : NULL;
    if (!d->rgb || (cmyk && !d->row)) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    while (d->ci.output_scanline < d->ci.output_height) {
        uint8_t *dst = d->rgb + stride * d->ci.output_scanline;
        JSAMPROW row = cmyk ? d->row : dst;
        if (jpeg_read_scanlines(&d->ci, &row, 1) != 1) /* cannot happen: the source never suspends */
            return cg_fail(CG_ERR_FORMAT, "%s: bad JPEG data: decoding stopped at row %u", name,
                           (unsigned)d->ci.output_scanline);
        if (!cmyk) continue;
        const uint8_t *p = d->row;
        for (int x = 0; x < d->w; x++, p += 4, dst += 3) {
            unsigned c = p[0], m = p[1], y = p[2], k = p[3];
            if (!inverted) c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
            dst[0] = (uint8_t)((c * k + 127) / 255);
            dst[1] = (uint8_t)((m * k + 127) / 255);
            dst[2] = (uint8_t)((y * k + 127) / 255);
        }
    }
    /* Reading on to the EOI marker is what notices a missing EOI (or damage at the end of
     * the last scan); nothing it finds can take rows away any more. */
    d->rows_done = 1;
    jpeg_finish_decompress(&d->ci);
    return CG_OK;
}

static cg_status jpeg_decode(cg_image *img, int *orientation, const uint8_t *data, size_t n,
                             const char *name, uint64_t max_pixels) {
    img->had_alpha = 0;
    img->warning[0] = '\0';
    jpeg_dec *d = calloc(1, sizeof *d);
    if (!d) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    d->orientation = 1;
    cg_status s = jpeg_decode_run(d, data, n, name, max_pixels);
    jpeg_destroy_decompress(&d->ci);
    free(d->row);
    if (s == CG_OK) {
        img->w = d->w, img->h = d->h, img->rgb = d->rgb;
        memcpy(img->warning, d->err.warning, sizeof img->warning);
        *orientation = d->orientation;
    } else {
        free(d->rgb);
    }
    free(d);
    return s;
}

/* A growable memory destination. jpeg_mem_dest is not used because after it has grown its
 * buffer, the caller's pointer is stale until jpeg_finish_compress, so an error in between
 * leaves no safe way to free it. */
typedef struct {
    struct jpeg_destination_mgr pub;
    uint8_t *buf;
    size_t cap, size;
} jpeg_mem_out;

static void jpeg_out_init(j_compress_ptr c) {
    jpeg_mem_out *o = (jpeg_mem_out *)c->dest;
    o->buf = malloc(o->cap);
    if (!o->buf) ERREXIT(c, JERR_OUT_OF_MEMORY);
    o->pub.next_output_byte = o->buf;
    o->pub.free_in_buffer = o->cap;
}

static boolean jpeg_out_grow(j_compress_ptr c) {
    jpeg_mem_out *o = (jpeg_mem_out *)c->dest;
    uint8_t *nb = realloc(o->buf, o->cap * 2);
    if (!nb) ERREXIT(c, JERR_OUT_OF_MEMORY);
    o->buf = nb;
    /* libjpeg calls this only when the buffer is full, so the used part is exactly cap. */
    o->pub.next_output_byte = nb + o->cap;
    o->pub.free_in_buffer = o->cap;
    o->cap *= 2;
    return TRUE;
}

static void jpeg_out_term(j_compress_ptr c) {
    jpeg_mem_out *o = (jpeg_mem_out *)c->dest;
    o->size = o->cap - o->pub.free_in_buffer;
}

typedef struct {
    struct jpeg_compress_struct ci;
    jpeg_err err;
    jpeg_mem_out out;
} jpeg_enc;

static cg_status jpeg_encode_run(jpeg_enc *e, const cg_image *img, const char *name) {
    jpeg_err_init(&e->err);
    e->ci.err = &e->err.pub;
    if (setjmp(e->err.jb)) return jpeg_failure(&e->err, name);
    jpeg_create_compress(&e->ci);
    e->out.pub.init_destination = jpeg_out_init;
    e->out.pub.empty_output_buffer = jpeg_out_grow;
    e->out.pub.term_destination = jpeg_out_term;
    e->out.cap = (size_t)img->w * img->h / 4 + 65536;
    e->ci.dest = &e->out.pub;
    e->ci.image_width = (JDIMENSION)img->w;
    e->ci.image_height = (JDIMENSION)img->h;
    e->ci.input_components = 3;
    e->ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&e->ci);
    jpeg_set_quality(&e->ci, JPEG_QUALITY, TRUE);
    /* 4:4:4: cartoon output is flat, saturated colour regions with hard edges, and 4:2:0
     * halves the chroma resolution exactly there, fringing red/blue outlines. At quality
     * 95 full chroma costs roughly a fifth more bytes, which is worth it. */
    e->ci.comp_info[0].h_samp_factor = 1;
    e->ci.comp_info[0].v_samp_factor = 1;
    e->ci.optimize_coding = TRUE; /* smaller file, same pixels */
    e->ci.dct_method = JDCT_ISLOW;
    /* No EXIF is written: the pixels are already upright, so orientation 1 is implied. */
    jpeg_start_compress(&e->ci, TRUE);
    size_t stride = (size_t)img->w * 3;
    while (e->ci.next_scanline < e->ci.image_height) {
        JSAMPROW row = img->rgb + stride * e->ci.next_scanline;
        jpeg_write_scanlines(&e->ci, &row, 1);
    }
    jpeg_finish_compress(&e->ci);
    return CG_OK;
}

static cg_status jpeg_encode(const cg_image *img, const char *name, uint8_t **out, size_t *n) {
    if (img->w > JPEG_MAX_DIMENSION || img->h > JPEG_MAX_DIMENSION)
        return cg_fail(CG_ERR_LIMIT, "%s: image is %dx%d; JPEG allows at most %d pixels per side",
                       name, img->w, img->h, (int)JPEG_MAX_DIMENSION);
    jpeg_enc *e = calloc(1, sizeof *e);
    if (!e) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    cg_status s = jpeg_encode_run(e, img, name);
    jpeg_destroy_compress(&e->ci);
    if (s == CG_OK) *out = e->out.buf, *n = e->out.size;
    else free(e->out.buf);
    free(e);
    return s;
}

/* ---- PNG ------------------------------------------------------------------------------- */

typedef struct {
    png_structp png;
    png_infop info;
    const uint8_t *data;
    size_t n, pos;
    int truncated;
    uint8_t *pix;
    png_bytep *rows;
    int w, h, had_alpha, orientation;
    int rows_done; /* pix is complete: an error in the chunks after it is not fatal */
    /* for the encoder */
    uint8_t *buf;
    size_t cap, size;
    char msg[200];
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (bad sRGB profiles, CRC errors in optional chunks) leave the pixels intact. */
static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, size_t len) {
    png_ctx *c = png_get_io_ptr(png);
    if (len > c->n - c->pos) {
        c->truncated = 1;
        png_error(png, "truncated PNG data");
    }
    memcpy(out, c->data + c->pos, len);
    c->pos += len;
}

/* The eXIf chunk's orientation, or 1. libpng keeps only a well-formed chunk (it starts with
 * "II" or "MM", the first of several is kept, a bad CRC drops it) and tiff_orientation
 * ignores one it cannot parse, so a broken eXIf never fails the image. */
static int png_orientation(png_ctx *c) {
    png_uint_32 n = 0;
    png_bytep p = NULL;
    if (!png_get_eXIf_1(c->png, c->info, &n, &p) || !p) return 1;
    return tiff_orientation(p, n);
}

static cg_status png_decode_run(png_ctx *c, const char *name, uint64_t max_pixels) {
    if (setjmp(png_jmpbuf(c->png))) {
        if (c->rows_done) return CG_OK;
        if (c->truncated) return cg_fail(CG_ERR_FORMAT, "%s: truncated PNG data", name);
        if (strstr(c->msg, "user limit"))
            return cg_fail(CG_ERR_LIMIT, "%s: image side over the limit of %llu pixels", name,
                           (unsigned long long)max_pixels);
        if (strstr(c->msg, "memory")) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
        return cg_fail(CG_ERR_FORMAT, "%s: corrupt PNG data (%s)", name, c->msg);
    }
    /* libpng's own side limits are a backstop; check_size gives the real, clearer refusal. */
    png_uint_32 side = max_pixels < PNG_UINT_31_MAX ? (png_uint_32)max_pixels : PNG_UINT_31_MAX;
    png_set_user_limits(c->png, side, side);
    png_set_chunk_cache_max(c->png, 1000);
    png_set_chunk_malloc_max(c->png, 16u << 20); /* caps zTXt/iCCP decompression bombs */
    png_set_read_fn(c->png, c, png_read_mem);
    png_read_info(c->png, c->info);

    png_uint_32 w = png_get_image_width(c->png, c->info), h = png_get_image_height(c->png, c->info);
    cg_status s = check_size(name, w, h, max_pixels);
    if (s != CG_OK) return s;
    c->w = (int)w, c->h = (int)h;

    int type = png_get_color_type(c->png, c->info), depth = png_get_bit_depth(c->png, c->info);
    c->had_alpha = (type & PNG_COLOR_MASK_ALPHA) || png_get_valid(c->png, c->info, PNG_INFO_tRNS);
    c->orientation = png_orientation(c);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
    if (png_get_valid(c->png, c->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(c->png);
    if (depth == 16) png_set_scale_16(c->png); /* rounds, unlike png_set_strip_16 */
    if (!(type & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(c->png);
    png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    /* Gamma and ICC profiles are ignored: the values are used as sRGB, like most viewers
     * do for the files people actually have. */

    int ch = png_get_channels(c->png, c->info);
    if ((ch != 3 && ch != 4) || png_get_bit_depth(c->png, c->info) != 8 ||
        png_get_rowbytes(c->png, c->info) != (size_t)w * ch)
        return cg_fail(CG_ERR_FORMAT, "%s: unexpected PNG layout after conversion", name);
    c->pix = malloc((size_t)w * h * ch);
    c->rows = malloc(sizeof(png_bytep) * h);
    if (!c->pix || !c->rows) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->pix + (size_t)y * w * ch;
    png_read_image(c->png, c->rows);
    if (ch == 4) {
        rgba_to_rgb_on_white(c->pix, (size_t)w * h);
        uint8_t *p = realloc(c->pix, (size_t)w * h * 3);
        if (p) c->pix = p;
    }
    /* The chunks after the image data are read only for an eXIf chunk, which may come
     * after IDAT too; a damaged trailer or a missing IEND does not reject a complete image
     * (the setjmp above returns CG_OK once rows_done is set). */
    c->rows_done = 1;
    png_read_end(c->png, c->info);
    c->orientation = png_orientation(c);
    return CG_OK;
}

/* libpng allocates (and clears) a buffer of a chunk's declared length before reading it
 * (sCAL, iCCP, text, ...), and its chunk size limit does not cover every chunk: a 72-byte
 * file claiming a 1 GB sCAL chunk made it allocate 1 GB (found by fuzz_png). The whole file
 * is in memory here, so the chunk list is walked first and libpng is shown only the bytes
 * before the first chunk that claims more than the file holds; it then stops there with
 * "truncated", as it would have after its failed read, but without the allocation. IDAT is
 * exempt: libpng streams it in small pieces, so an image that is complete before a bad
 * IDAT length still decodes. */
static size_t png_readable_length(const uint8_t *d, size_t n) {
    size_t pos = 8;
    while (n - pos >= 8) {
        size_t len = (size_t)d[pos] << 24 | (size_t)d[pos + 1] << 16 | (size_t)d[pos + 2] << 8 | d[pos + 3];
        int idat = !memcmp(d + pos + 4, "IDAT", 4);
        if (len > n - pos - 8) return idat ? n : pos;
        if (n - pos - 8 - len < 4) return n; /* only the CRC is cut: libpng's to judge */
        pos += 12 + len;
    }
    return n;
}

/* Applies the eXIf orientation itself, since the caller's orientation step is fed only by
 * the JPEG and WebP decoders. */
static cg_status png_decode(cg_image *img, const uint8_t *data, size_t n, const char *name,
                            uint64_t max_pixels) {
    img->had_alpha = 0;
    img->warning[0] = '\0';
    png_ctx *c = calloc(1, sizeof *c);
    if (!c) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    c->data = data, c->n = png_readable_length(data, n);
    cg_status s;
    c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning);
    c->info = c->png ? png_create_info_struct(c->png) : NULL;
    if (!c->info) s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    else s = png_decode_run(c, name, max_pixels);
    png_destroy_read_struct(c->png ? &c->png : NULL, c->info ? &c->info : NULL, NULL);
    free(c->rows);
    int orientation = c->orientation;
    if (s == CG_OK) img->w = c->w, img->h = c->h, img->rgb = c->pix, img->had_alpha = c->had_alpha;
    else free(c->pix);
    free(c);
    if (s == CG_OK) s = apply_orientation(img, orientation, name);
    return s;
}

static void png_write_mem(png_structp png, png_bytep p, size_t len) {
    png_ctx *c = png_get_io_ptr(png);
    if (len > c->cap - c->size) {
        size_t cap = c->cap ? c->cap : 65536;
        while (cap - c->size < len) cap *= 2;
        uint8_t *nb = realloc(c->buf, cap);
        if (!nb) png_error(png, "out of memory");
        c->buf = nb, c->cap = cap;
    }
    memcpy(c->buf + c->size, p, len);
    c->size += len;
}

static void png_flush_mem(png_structp png) { (void)png; }

static cg_status png_encode_run(png_ctx *c, const cg_image *img, const char *name) {
    if (setjmp(png_jmpbuf(c->png))) {
        if (strstr(c->msg, "memory")) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
        return cg_fail(CG_ERR_FORMAT, "%s: PNG encoding failed: %s", name, c->msg);
    }
    png_set_write_fn(c->png, c, png_write_mem, png_flush_mem);
    png_set_IHDR(c->png, c->info, (png_uint_32)img->w, (png_uint_32)img->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    /* zlib level 3, not libpng's 6: a 512x512 output and its comparison encode in 0.12 s
     * less (a tenth of the one-photo command), for files about 9 % larger */
    png_set_compression_level(c->png, 3);
    png_write_info(c->png, c->info);
    for (int y = 0; y < img->h; y++) png_write_row(c->png, img->rgb + (size_t)y * img->w * 3);
    png_write_end(c->png, c->info);
    return CG_OK;
}

cg_status cg_png_encode(const cg_image *img, const char *name, uint8_t **out, size_t *n) {
    png_ctx *c = calloc(1, sizeof *c);
    if (!c) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    cg_status s;
    c->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning);
    c->info = c->png ? png_create_info_struct(c->png) : NULL;
    if (!c->info) s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    else s = png_encode_run(c, img, name);
    png_destroy_write_struct(c->png ? &c->png : NULL, c->info ? &c->info : NULL);
    if (s == CG_OK) *out = c->buf, *n = c->size;
    else free(c->buf);
    free(c);
    return s;
}

/* ---- WebP ------------------------------------------------------------------------------ */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The EXIF orientation of an extended-format WebP (VP8X with the EXIF flag): the RIFF
 * chunks are walked by hand, which needs no libwebpdemux. */
static int webp_orientation(const uint8_t *d, size_t n) {
    if (n < 30 || memcmp(d + 12, "VP8X", 4) != 0 || !(d[20] & 0x08)) return 1;
    size_t end = 8 + (size_t)le32(d + 4);
    if (end > n) end = n;
    for (size_t i = 12; i + 8 <= end;) {
        size_t len = le32(d + i + 4);
        if (len > end - i - 8) return 1;
        if (!memcmp(d + i, "EXIF", 4)) return tiff_orientation(d + i + 8, len); /* bare TIFF */
        i += 8 + len + (len & 1);
    }
    return 1;
}

static const char *webp_status_text(VP8StatusCode st) {
    switch (st) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated data";
    default: return "unknown error";
    }
}

static cg_status webp_failure(VP8StatusCode st, const char *name) {
    if (st == VP8_STATUS_NOT_ENOUGH_DATA) return cg_fail(CG_ERR_FORMAT, "%s: truncated WebP data", name);
    if (st == VP8_STATUS_OUT_OF_MEMORY) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    return cg_fail(CG_ERR_FORMAT, "%s: bad WebP data: %s", name, webp_status_text(st));
}

static cg_status webp_decode(cg_image *img, int *orientation, const uint8_t *data, size_t n,
                             const char *name, uint64_t max_pixels) {
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg))
        return cg_fail(CG_ERR_FORMAT, "%s: libwebp version mismatch", name);
    VP8StatusCode st = WebPGetFeatures(data, n, &cfg.input);
    if (st != VP8_STATUS_OK) return webp_failure(st, name);
    if (cfg.input.has_animation)
        return cg_fail(CG_ERR_FORMAT, "%s: animated WebP is not supported", name);
    cg_status s = check_size(name, (uint64_t)cfg.input.width, (uint64_t)cfg.input.height, max_pixels);
    if (s != CG_OK) return s;
    img->had_alpha = cfg.input.has_alpha;
    img->warning[0] = '\0';
    int w = cfg.input.width, h = cfg.input.height, ch = cfg.input.has_alpha ? 4 : 3;
    size_t size = (size_t)w * h * ch;
    uint8_t *pix = malloc(size);
    if (!pix) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    cfg.output.colorspace = ch == 4 ? MODE_RGBA : MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = pix;
    cfg.output.u.RGBA.stride = w * ch;
    cfg.output.u.RGBA.size = size;
    st = WebPDecode(data, n, &cfg);
    WebPFreeDecBuffer(&cfg.output);
    if (st != VP8_STATUS_OK) {
        free(pix);
        return webp_failure(st, name);
    }
    if (ch == 4) {
        rgba_to_rgb_on_white(pix, (size_t)w * h);
        uint8_t *p = realloc(pix, (size_t)w * h * 3);
        if (p) pix = p;
    }
    img->w = w, img->h = h, img->rgb = pix;
    *orientation = webp_orientation(data, n);
    return CG_OK;
}

static cg_status webp_encode(const cg_image *img, const char *name, uint8_t **out, size_t *n) {
    if (img->w > WEBP_MAX_DIMENSION || img->h > WEBP_MAX_DIMENSION)
        return cg_fail(CG_ERR_LIMIT, "%s: image is %dx%d; WebP allows at most %d pixels per side",
                       name, img->w, img->h, WEBP_MAX_DIMENSION);
    uint8_t *buf = NULL;
    size_t size = WebPEncodeRGB(img->rgb, img->w, img->h, img->w * 3, WEBP_QUALITY, &buf);
    if (size == 0) {
        WebPFree(buf);
        return cg_fail(CG_ERR_NOMEM, "%s: WebP encoding failed", name);
    }
    /* Copied into a malloc'd buffer so that every encoder's output is freed the same way. */
    *out = malloc(size);
    if (*out) memcpy(*out, buf, size);
    WebPFree(buf);
    if (!*out) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    *n = size;
    return CG_OK;
}

/* ---- public API ------------------------------------------------------------------------ */

cg_format cg_format_from_path(const char *path) {
    if (!path) return CG_FMT_UNKNOWN;
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash + 1 : path, '.');
    if (!dot) return CG_FMT_UNKNOWN;
    dot++;
    if (!strcasecmp(dot, "jpg") || !strcasecmp(dot, "jpeg")) return CG_FMT_JPEG;
    if (!strcasecmp(dot, "png")) return CG_FMT_PNG;
    if (!strcasecmp(dot, "webp")) return CG_FMT_WEBP;
    if (!strcasecmp(dot, "heic") || !strcasecmp(dot, "heif") || !strcasecmp(dot, "avif"))
        return CG_FMT_HEIF;
    return CG_FMT_UNKNOWN;
}

cg_format cg_format_sniff(const uint8_t *d, size_t n) {
    if (!d) return CG_FMT_UNKNOWN;
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return CG_FMT_JPEG;
    if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8)) return CG_FMT_PNG;
    if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4)) return CG_FMT_WEBP;
    if (cg_heif_sniff(d, n)) return CG_FMT_HEIF;
    return CG_FMT_UNKNOWN;
}

/* Names formats people commonly try, so the refusal says what the file actually is. */
static const char *unsupported_kind(const uint8_t *d, size_t n) {
    if (n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6))) return "a GIF";
    if (n >= 2 && !memcmp(d, "BM", 2)) return "a BMP";
    if (n >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4))) return "a TIFF";
    return NULL;
}

cg_status cg_image_decode(cg_image *img, const uint8_t *data, size_t n, const char *name,
                          uint64_t max_pixels) {
    name = or_memory(name);
    if (!img) return cg_fail(CG_ERR_ARG, "%s: no image to decode into", name);
    img->w = img->h = 0;
    img->rgb = NULL;
    img->had_alpha = 0;
    img->warning[0] = '\0';
    if (n == 0) return cg_fail(CG_ERR_FORMAT, "%s: empty file", name);
    if (!data) return cg_fail(CG_ERR_ARG, "%s: no data", name);
    if (max_pixels == 0) max_pixels = CG_DEFAULT_MAX_PIXELS;

    int orientation = 1;
    cg_status s;
    switch (cg_format_sniff(data, n)) {
    case CG_FMT_JPEG: s = jpeg_decode(img, &orientation, data, n, name, max_pixels); break;
    case CG_FMT_PNG: s = png_decode(img, data, n, name, max_pixels); break;
    case CG_FMT_WEBP: s = webp_decode(img, &orientation, data, n, name, max_pixels); break;
    /* upright already: libheif applies irot/imir, which outrank any EXIF orientation */
    case CG_FMT_HEIF: s = cg_heif_decode(img, data, n, name, max_pixels); break;
    default: {
        const char *kind = unsupported_kind(data, n);
        if (kind)
            return cg_fail(CG_ERR_FORMAT, "%s: not a JPEG, PNG, WebP, HEIC or AVIF image (it is %s image)",
                           name, kind);
        return cg_fail(CG_ERR_FORMAT, "%s: not a JPEG, PNG, WebP, HEIC or AVIF image", name);
    }
    }
    if (s == CG_OK) s = apply_orientation(img, orientation, name);
    if (s != CG_OK) cg_image_free(img);
    return s;
}

cg_status cg_image_load(cg_image *img, const char *path, uint64_t max_pixels) {
    if (img) img->w = img->h = 0, img->rgb = NULL;
    if (!img || !path) return cg_fail(CG_ERR_ARG, "cg_image_load: null argument");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return cg_fail(CG_ERR_IO, "%s: cannot open: Is a directory", path);
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > MAX_FILE_BYTES) {
        close(fd);
        return cg_fail(CG_ERR_LIMIT, "%s: file is %llu MiB, over the limit of %llu MiB", path,
                       (unsigned long long)st.st_size >> 20, MAX_FILE_BYTES >> 20);
    }
    /* Read to EOF rather than trusting st_size, so pipes and growing files work too. */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 1u << 16, n = 0;
    uint8_t *buf = malloc(cap);
    cg_status s = CG_OK;
    if (!buf) s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    while (s == CG_OK) {
        if (n == cap) {
            if (cap >= MAX_FILE_BYTES) {
                s = cg_fail(CG_ERR_LIMIT, "%s: file is over the limit of %llu MiB", path,
                            MAX_FILE_BYTES >> 20);
                break;
            }
            size_t nc = cap * 2 > MAX_FILE_BYTES + 1 ? MAX_FILE_BYTES + 1 : cap * 2;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) {
                s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = nb, cap = nc;
        }
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) s = cg_fail(CG_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd);
    if (s == CG_OK) s = cg_image_decode(img, buf, n, path, max_pixels);
    free(buf);
    return s;
}

void cg_image_free(cg_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

cg_status cg_image_save(const cg_image *img, const char *path, cg_format fmt) {
    if (!path || !*path) return cg_fail(CG_ERR_ARG, "cg_image_save: empty path");
    if (!img || !img->rgb || img->w <= 0 || img->h <= 0)
        return cg_fail(CG_ERR_ARG, "%s: no image to save", path);
    if (fmt == CG_FMT_UNKNOWN) fmt = cg_format_from_path(path);
    uint8_t *data = NULL;
    size_t n = 0;
    cg_status s;
    switch (fmt) {
    case CG_FMT_JPEG: s = jpeg_encode(img, path, &data, &n); break;
    case CG_FMT_PNG: s = cg_png_encode(img, path, &data, &n); break;
    case CG_FMT_WEBP: s = webp_encode(img, path, &data, &n); break;
    case CG_FMT_HEIF:
        return cg_fail(CG_ERR_ARG, "%s: writing HEIF is not supported (use .jpg, .jpeg, .png or .webp)", path);
    default:
        return cg_fail(CG_ERR_ARG, "%s: unknown image format (use .jpg, .jpeg, .png or .webp)", path);
    }
    if (s == CG_OK) s = cg_write_file_atomic(path, data, n);
    free(data);
    return s;
}
