/* webp_anim.c: the animated WebP reader and writer of webp_anim.h. Reading goes through
 * libwebpdemux: WebPDemux walks the chunks once for the frame count and durations, and
 * WebPAnimDecoder decodes and composites one frame per call (never WebPAnimDecoderGetNext
 * ahead of the caller). Only the 30 bytes of the RIFF and VP8X headers are read by hand,
 * to refuse a file that is not an animation, or whose canvas is over the limit, before
 * libwebp allocates anything. Writing goes through libwebpmux's WebPAnimEncoder, whose
 * output is then re-muxed to give every frame its own duration back (see remux()); only a
 * one-frame animation, which libwebpmux would make a still image of, is laid out here
 * (assemble_one()). */
#include "io/webp_anim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <webp/decode.h>
#include <webp/demux.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include "io/image.h"
#include "status.h"

/* The RIFF header (12 bytes) and the VP8X chunk (8 + 10) come first in an extended WebP. */
#define RIFF_HEADER 12
#define VP8X_END 30
#define VP8X_FLAGS 20       /* offset of the VP8X flags byte */
#define FLAG_ANIMATION 0x02 /* the container spec's A bit */

static uint32_t le24(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16; }
static uint32_t le32(const uint8_t *p) { return le24(p) | (uint32_t)p[3] << 24; }

int cg_webp_is_animated(const uint8_t *data, size_t n) {
    return data && n > VP8X_FLAGS && !memcmp(data, "RIFF", 4) && !memcmp(data + 8, "WEBP", 4) &&
           !memcmp(data + 12, "VP8X", 4) && (data[VP8X_FLAGS] & FLAG_ANIMATION);
}

int cg_webp_anim_playback_ms(int duration_ms) { return duration_ms <= 10 ? 100 : duration_ms; }

/* ---- reading ---- */

struct cg_webp_anim_reader {
    cg_webp_anim_info info;
    char *name;
    uint8_t *data; /* the RIFF chunk, which the decoder reads frames from */
    size_t size;
    int *durations;
    WebPAnimDecoder *dec;
    int next; /* the next frame to decode */
};

static void format_pixels(char *buf, size_t n, uint64_t px) {
    if (px >= 1000000)
        snprintf(buf, n, "%.1f megapixels", (double)px / 1e6);
    else
        snprintf(buf, n, "%llu pixels", (unsigned long long)px);
}

/* Checks the first n bytes of a file of file_n bytes (n <= file_n; n >= VP8X_END unless
 * the file is shorter): a WebP, complete, animated, with a canvas within max_pixels. Sets
 * *riff_end to the RIFF chunk's end (the bytes that matter; browsers ignore any after). */
static cg_status check_header(const char *name, const uint8_t *d, size_t n, uint64_t file_n,
                              uint64_t max_pixels, uint64_t *riff_end) {
    static const char sig[12] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P'};
    for (size_t i = 0; i < n && i < RIFF_HEADER; i++)
        if ((i < 4 || i >= 8) && d[i] != (uint8_t)sig[i])
            return cg_fail(CG_ERR_FORMAT, "%s: not a WebP file", name);
    if (n < RIFF_HEADER)
        return cg_fail(CG_ERR_FORMAT, "%s: truncated WebP (the file ends inside its RIFF header)",
                       name);
    *riff_end = (uint64_t)le32(d + 4) + 8;
    if (file_n < *riff_end)
        return cg_fail(CG_ERR_FORMAT,
                       "%s: truncated WebP (the file has %llu of the %llu bytes its RIFF header "
                       "gives)",
                       name, (unsigned long long)file_n, (unsigned long long)*riff_end);
    if (n >= 16 && (!memcmp(d + 12, "VP8 ", 4) || !memcmp(d + 12, "VP8L", 4)))
        return cg_fail(CG_ERR_FORMAT,
                       "%s: a still WebP, not animated: load it with cg_image_load", name);
    if (n < 16 || memcmp(d + 12, "VP8X", 4))
        return cg_fail(CG_ERR_FORMAT, "%s: corrupt WebP (no VP8, VP8L or VP8X chunk first)",
                       name);
    if (n < VP8X_END || *riff_end < VP8X_END || le32(d + 16) < VP8X_END - 20)
        return cg_fail(CG_ERR_FORMAT, "%s: corrupt WebP (its VP8X chunk is cut short)", name);
    if (!(d[VP8X_FLAGS] & FLAG_ANIMATION))
        return cg_fail(CG_ERR_FORMAT,
                       "%s: a still WebP, not animated: load it with cg_image_load", name);
    uint64_t w = (uint64_t)le24(d + 24) + 1, h = (uint64_t)le24(d + 27) + 1;
    if (w * h > max_pixels) {
        char have[48], lim[48];
        format_pixels(have, sizeof have, w * h);
        format_pixels(lim, sizeof lim, max_pixels);
        return cg_fail(CG_ERR_LIMIT, "%s: animated WebP canvas is %llux%llu (%s), over the limit "
                       "of %s", name, (unsigned long long)w, (unsigned long long)h, have, lim);
    }
    return CG_OK;
}

/* Everything after the header checks: the frame list, then the decoder. */
static cg_status start(cg_webp_anim_reader *r) {
    const char *name = r->name;
    WebPData wd = {r->data, r->size};
    WebPDemuxer *dmx = WebPDemux(&wd);
    if (!dmx) return cg_fail(CG_ERR_FORMAT, "%s: corrupt WebP (its chunks do not parse)", name);
    cg_status s = CG_OK;
    uint32_t flags = WebPDemuxGetI(dmx, WEBP_FF_FORMAT_FLAGS);
    uint32_t n = WebPDemuxGetI(dmx, WEBP_FF_FRAME_COUNT);
    r->info.width = (int)WebPDemuxGetI(dmx, WEBP_FF_CANVAS_WIDTH);
    r->info.height = (int)WebPDemuxGetI(dmx, WEBP_FF_CANVAS_HEIGHT);
    r->info.loop_count = (int)WebPDemuxGetI(dmx, WEBP_FF_LOOP_COUNT);
    r->info.bgcolor = WebPDemuxGetI(dmx, WEBP_FF_BACKGROUND_COLOR);
    r->info.has_alpha = !!(flags & ALPHA_FLAG);
    if (!(flags & ANIMATION_FLAG) || n == 0 || n > (uint32_t)0x7fffffff) {
        s = cg_fail(CG_ERR_FORMAT, "%s: animated WebP has no frames", name);
        goto done;
    }
    r->durations = malloc((size_t)n * sizeof *r->durations);
    if (!r->durations) {
        s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    WebPIterator it;
    uint32_t k = 0;
    if (WebPDemuxGetFrame(dmx, 1, &it)) {
        do r->durations[k++] = it.duration;
        while (k < n && WebPDemuxNextFrame(&it));
        WebPDemuxReleaseIterator(&it);
    }
    if (k != n) {
        s = cg_fail(CG_ERR_FORMAT, "%s: corrupt WebP (frame %u of %u is missing)", name, k + 1, n);
        goto done;
    }
    r->info.frame_count = (int)n;
    r->info.durations = r->durations;
    /* WebPAnimDecoderNew fails alike on a bad bitstream header and on memory; this tells
     * the two apart. */
    WebPBitstreamFeatures feat;
    if (WebPGetFeatures(r->data, r->size, &feat) != VP8_STATUS_OK) {
        s = cg_fail(CG_ERR_FORMAT, "%s: corrupt WebP (unreadable header)", name);
        goto done;
    }
    WebPAnimDecoderOptions opt;
    if (!WebPAnimDecoderOptionsInit(&opt)) {
        s = cg_fail(CG_ERR_FORMAT, "%s: libwebpdemux version mismatch", name);
        goto done;
    }
    opt.color_mode = MODE_RGBA; /* straight alpha: the blend the spec gives */
    opt.use_threads = 0;
    r->dec = WebPAnimDecoderNew(&wd, &opt);
    if (!r->dec)
        s = cg_fail(CG_ERR_NOMEM, "%s: out of memory for a %dx%d animated WebP", name,
                    r->info.width, r->info.height);
done:
    WebPDemuxDelete(dmx);
    return s;
}

static cg_status new_reader(cg_webp_anim_reader **out, const char *name) {
    *out = NULL;
    cg_webp_anim_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->name = strdup(name))) {
        free(r);
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    }
    *out = r;
    return CG_OK;
}

static cg_status finish_open(cg_webp_anim_reader **out, cg_webp_anim_reader *r, cg_status s) {
    if (s == CG_OK) s = start(r);
    if (s != CG_OK) {
        cg_webp_anim_close(r);
        return s;
    }
    *out = r;
    return CG_OK;
}

cg_status cg_webp_anim_open_memory(cg_webp_anim_reader **out, const uint8_t *data, size_t n,
                                   const char *name, uint64_t max_pixels) {
    if (!out || (!data && n) || !name)
        return cg_fail(CG_ERR_ARG, "cg_webp_anim_open_memory: null argument");
    *out = NULL;
    if (!max_pixels) max_pixels = CG_DEFAULT_MAX_PIXELS;
    if (n == 0) return cg_fail(CG_ERR_FORMAT, "%s: empty file", name);
    uint64_t end = 0;
    cg_status s = check_header(name, data, n, n, max_pixels, &end);
    if (s != CG_OK) return s;
    cg_webp_anim_reader *r;
    if ((s = new_reader(&r, name)) != CG_OK) return s;
    r->size = (size_t)end;
    r->data = malloc(r->size);
    if (!r->data)
        s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    else
        memcpy(r->data, data, r->size);
    return finish_open(out, r, s);
}

cg_status cg_webp_anim_open(cg_webp_anim_reader **out, const char *path, uint64_t max_pixels) {
    if (!out || !path) return cg_fail(CG_ERR_ARG, "cg_webp_anim_open: null argument");
    *out = NULL;
    if (!max_pixels) max_pixels = CG_DEFAULT_MAX_PIXELS;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cg_fail(CG_ERR_IO, "%s: %s", path,
                       errno == ENOENT ? "no such file or directory" : strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        /* a pipe or a device: its size is known only once it is read */
        fclose(f);
        return cg_fail(CG_ERR_IO, "%s: not a regular file", path);
    }
    cg_status s = CG_OK;
    uint8_t head[VP8X_END];
    size_t got = fread(head, 1, sizeof head, f);
    uint64_t end = 0;
    if (st.st_size == 0)
        s = cg_fail(CG_ERR_FORMAT, "%s: empty file", path);
    else if (got < sizeof head && ferror(f))
        s = cg_fail(CG_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    else
        s = check_header(path, head, got, (uint64_t)st.st_size, max_pixels, &end);
    cg_webp_anim_reader *r = NULL;
    if (s == CG_OK) s = new_reader(&r, path);
    if (s == CG_OK) {
        /* read up to the RIFF chunk's end, which the header check put within the file */
        r->size = (size_t)end;
        r->data = malloc(r->size);
        if (!r->data) {
            s = cg_fail(CG_ERR_NOMEM, "%s: out of memory for a %zu-byte file", path, r->size);
        } else {
            memcpy(r->data, head, got);
            size_t k = fread(r->data + got, 1, r->size - got, f);
            if (k != r->size - got)
                s = ferror(f) ? cg_fail(CG_ERR_IO, "%s: cannot read: %s", path, strerror(errno))
                              : cg_fail(CG_ERR_FORMAT, "%s: truncated WebP (the file shrank "
                                        "while being read)", path);
        }
    }
    fclose(f);
    if (!r) return s;
    return finish_open(out, r, s);
}

const cg_webp_anim_info *cg_webp_anim_get_info(const cg_webp_anim_reader *r) { return &r->info; }

cg_status cg_webp_anim_read_frame(cg_webp_anim_reader *r, uint8_t *rgb, uint8_t *rgba) {
    if (!r) return cg_fail(CG_ERR_ARG, "cg_webp_anim_read_frame: null reader");
    if (r->next >= r->info.frame_count)
        return cg_fail(CG_ERR_ARG, "%s: no frame after frame %d", r->name, r->info.frame_count);
    uint8_t *canvas = NULL;
    int timestamp;
    if (!WebPAnimDecoderGetNext(r->dec, &canvas, &timestamp) || !canvas)
        return cg_fail(CG_ERR_FORMAT, "%s: corrupt WebP: frame %d does not decode", r->name,
                       r->next + 1);
    r->next++;
    size_t px = (size_t)r->info.width * (size_t)r->info.height;
    const uint8_t *s = canvas;
    for (size_t i = 0; i < px; i++, s += 4) {
        unsigned a = s[3];
        if (rgba) {
            /* the colour under alpha 0 is whatever the bitstream left there */
            rgba[0] = a ? s[0] : 0;
            rgba[1] = a ? s[1] : 0;
            rgba[2] = a ? s[2] : 0;
            rgba[3] = (uint8_t)a;
            rgba += 4;
        }
        if (rgb) {
            /* over white, rounded: as cg_image_load flattens a still WebP */
            unsigned bg = 255u * (255u - a) + 127u;
            rgb[0] = (uint8_t)((s[0] * a + bg) / 255u);
            rgb[1] = (uint8_t)((s[1] * a + bg) / 255u);
            rgb[2] = (uint8_t)((s[2] * a + bg) / 255u);
            rgb += 3;
        }
    }
    return CG_OK;
}

void cg_webp_anim_close(cg_webp_anim_reader *r) {
    if (!r) return;
    WebPAnimDecoderDelete(r->dec);
    free(r->durations);
    free(r->data);
    free(r->name);
    free(r);
}

/* ---- writing ---- */

/* Frames are given to WebPAnimEncoder at timestamps 0, 1, 2, ... (one per frame), not at
 * their real times; see remux(). 2^24 - 1 is the largest duration a frame can carry. */
#define MAX_FRAMES (CG_WEBP_ANIM_MAX_DURATION - 1)

struct cg_webp_anim_writer {
    cg_atomic_file file;
    WebPAnimEncoder *enc;
    WebPConfig config;
    WebPPicture pic;
    int w, h, alpha, loop_count;
    int *durations; /* the real duration of each frame added */
    int n, cap;
};

static cg_status encoder_status(int code) {
    return code == VP8_ENC_ERROR_OUT_OF_MEMORY || code == VP8_ENC_ERROR_BITSTREAM_OUT_OF_MEMORY
               ? CG_ERR_NOMEM
               : CG_ERR_FORMAT;
}

cg_status cg_webp_anim_writer_open(cg_webp_anim_writer **out, const char *path, int width,
                                   int height, int loop_count, int alpha) {
    if (!out || !path) return cg_fail(CG_ERR_ARG, "cg_webp_anim_writer_open: null argument");
    *out = NULL;
    if (width < 1 || height < 1 || width > CG_WEBP_ANIM_MAX_SIDE || height > CG_WEBP_ANIM_MAX_SIDE)
        return cg_fail(CG_ERR_LIMIT, "%s: %dx%d cannot be a WebP (1 to %d pixels a side)", path,
                       width, height, CG_WEBP_ANIM_MAX_SIDE);
    if (loop_count < 0 || loop_count > CG_WEBP_ANIM_MAX_LOOP)
        return cg_fail(CG_ERR_ARG, "%s: loop count %d is not in 0..%d", path, loop_count,
                       CG_WEBP_ANIM_MAX_LOOP);
    cg_webp_anim_writer *w = calloc(1, sizeof *w);
    if (!w) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    w->file.fd = -1;
    w->w = width;
    w->h = height;
    w->alpha = !!alpha;
    w->loop_count = loop_count;
    if (!WebPConfigInit(&w->config) || !WebPPictureInit(&w->pic)) {
        free(w);
        return cg_fail(CG_ERR_FORMAT, "%s: libwebp version mismatch", path);
    }
    w->config.lossless = 0;
    w->config.quality = CG_WEBP_ANIM_QUALITY;
    /* RGB to YUV 4:2:0 by libwebp's iterative "sharp" conversion, which keeps hard colour
     * edges (cartoon outlines) crisper: on test_webp_anim's pattern 1.3 dB more PSNR for
     * 5% more bytes; on the JPEG-sourced anime stills above, no change */
    w->config.use_sharp_yuv = 1;
    /* alpha_compression 1 and alpha_quality 100 are WebPConfigInit's: alpha is lossless */
    w->pic.width = width;
    w->pic.height = height;
    w->pic.use_argb = 1; /* what WebPAnimEncoder works in */
    WebPAnimEncoderOptions opt;
    if (!WebPAnimEncoderOptionsInit(&opt)) {
        free(w);
        return cg_fail(CG_ERR_FORMAT, "%s: libwebpmux version mismatch", path);
    }
    /* The defaults otherwise: lossy only (allow_mixed 0), the size not minimized (slow),
     * and for an opaque writer no key frames (the reader decodes in order anyway), so each
     * frame codes only the rectangle that changed, over the last (blending). With alpha,
     * every frame is a key frame instead (the whole canvas, replacing it), which costs
     * bytes but works around a libwebp bug (1.2.4, still in its current code): a lossy
     * frame is allowed to blend when its half-transparent pixels are "similar" to the
     * canvas's, but those pixels stay in the frame and are blended a second time when
     * decoded (alpha 120 over 120 shows as 183; test_writer_alpha_blend). Opaque
     * animations have no half-transparent pixels, so they are not affected. */
    opt.anim_params.loop_count = loop_count;
    if (w->alpha) opt.kmax = 1;
    w->enc = WebPAnimEncoderNew(width, height, &opt);
    if (!w->enc) {
        cg_webp_anim_writer_abort(w);
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory for a %dx%d WebP", path, width, height);
    }
    cg_status s = cg_atomic_begin(&w->file, path);
    if (s != CG_OK) {
        cg_webp_anim_writer_abort(w);
        return s;
    }
    *out = w;
    return CG_OK;
}

cg_status cg_webp_anim_writer_add(cg_webp_anim_writer *w, const uint8_t *pixels, int duration_ms) {
    if (!w || !pixels) return cg_fail(CG_ERR_ARG, "cg_webp_anim_writer_add: null argument");
    if (w->n >= MAX_FRAMES)
        return cg_fail(CG_ERR_LIMIT, "%s: more than %d frames", w->file.path, MAX_FRAMES);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        if (cap > MAX_FRAMES) cap = MAX_FRAMES;
        int *v = realloc(w->durations, (size_t)cap * sizeof *v);
        if (!v) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", w->file.path);
        w->durations = v;
        w->cap = cap;
    }
    int ok = w->alpha ? WebPPictureImportRGBA(&w->pic, pixels, w->w * 4)
                      : WebPPictureImportRGB(&w->pic, pixels, w->w * 3);
    if (!ok) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", w->file.path);
    if (!WebPAnimEncoderAdd(w->enc, &w->pic, w->n, &w->config)) {
        const char *e = WebPAnimEncoderGetError(w->enc);
        return cg_fail(encoder_status(w->pic.error_code), "%s: cannot encode frame %d: %s",
                       w->file.path, w->n + 1, e && *e ? e : "WebP encoder error");
    }
    w->durations[w->n++] = duration_ms < 0                           ? 0
                           : duration_ms > CG_WEBP_ANIM_MAX_DURATION ? CG_WEBP_ANIM_MAX_DURATION
                                                                     : duration_ms;
    return CG_OK;
}

/* A w x h frame, all transparent, encoded once per size: see remux(). */
typedef struct {
    int w, h;
    uint8_t *bytes;
    size_t size;
} blank_frame;

static int get_blank(blank_frame *b, int w, int h) {
    if (b->bytes && b->w == w && b->h == h) return 1;
    WebPFree(b->bytes);
    b->bytes = NULL;
    uint8_t *zeros = calloc((size_t)w * h, 4);
    if (!zeros) return 0;
    b->size = WebPEncodeLosslessRGBA(zeros, w, h, w * 4, &b->bytes);
    free(zeros);
    if (!b->size) {
        WebPFree(b->bytes);
        b->bytes = NULL;
        return 0;
    }
    b->w = w, b->h = h;
    return 1;
}

#define BGCOLOR 0xffffffffu /* the ANIM background colour written: opaque white */

static void put_le(uint8_t *p, uint32_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A one-frame animation, put together here because WebPMuxAssemble turns a lone frame
 * that covers the canvas into a still image (ANIM and ANMF dropped), which would lose the
 * duration and the loop count and read back as "not animated". The layout is the
 * container spec's: RIFF header, VP8X (animation flag, alpha flag if the frame has
 * alpha, canvas size), ANIM (background colour, loop count), ANMF (offset / 2, size - 1,
 * duration, blend and dispose bits) around the frame's own image chunks, which libwebp's
 * demuxer finds in f's single-image WebP. */
static cg_status assemble_one(const cg_webp_anim_writer *w, const WebPMuxFrameInfo *f,
                              WebPData *out) {
    WebPDemuxer *dmx = WebPDemux(&f->bitstream);
    WebPIterator it;
    if (!dmx || !WebPDemuxGetFrame(dmx, 1, &it)) {
        WebPDemuxDelete(dmx);
        return cg_fail(CG_ERR_FORMAT, "%s: cannot re-read the encoded frame", w->file.path);
    }
    const size_t frag = it.fragment.size, total = 12 + 18 + 14 + 24 + frag;
    uint8_t *d = total <= 0xfffffff0u ? WebPMalloc(total) : NULL;
    if (d) {
        memcpy(d, "RIFF", 4);
        put_le(d + 4, (uint32_t)(total - 8), 4);
        memcpy(d + 8, "WEBPVP8X", 8);
        put_le(d + 16, 10, 4);
        put_le(d + 20, ANIMATION_FLAG | (it.has_alpha ? ALPHA_FLAG : 0), 4);
        put_le(d + 24, (uint32_t)w->w - 1, 3);
        put_le(d + 27, (uint32_t)w->h - 1, 3);
        memcpy(d + 30, "ANIM", 4);
        put_le(d + 34, 6, 4);
        put_le(d + 38, BGCOLOR, 4);
        put_le(d + 42, (uint32_t)w->loop_count, 2);
        memcpy(d + 44, "ANMF", 4);
        put_le(d + 48, (uint32_t)(16 + frag), 4);
        put_le(d + 52, (uint32_t)f->x_offset / 2, 3);
        put_le(d + 55, (uint32_t)f->y_offset / 2, 3);
        put_le(d + 58, (uint32_t)it.width - 1, 3);
        put_le(d + 61, (uint32_t)it.height - 1, 3);
        put_le(d + 64, (uint32_t)f->duration, 3);
        d[67] = (uint8_t)((f->blend_method == WEBP_MUX_NO_BLEND ? 2 : 0) |
                          (f->dispose_method == WEBP_MUX_DISPOSE_BACKGROUND ? 1 : 0));
        memcpy(d + 68, it.fragment.bytes, frag);
        out->bytes = d;
        out->size = total;
    }
    WebPDemuxReleaseIterator(&it);
    WebPDemuxDelete(dmx);
    return d ? CG_OK : cg_fail(CG_ERR_NOMEM, "%s: out of memory", w->file.path);
}

/* WebPAnimEncoder drops a frame that looks the same as the one before (exactly, or within
 * a small lossy tolerance) and adds its time to that frame's duration; no option turns
 * this off. Since every frame went in at timestamp = its index, an output frame's duration
 * is the number of input frames it stands for. This rebuilds the animation with one frame
 * per input frame and the real durations: a kept frame, then for each dropped one a frame
 * that leaves the canvas as it is, which is either the kept frame again (when drawing it
 * twice gives the same pixels: it replaces its rectangle, or it is opaque) or, for a frame
 * blended with transparency, a transparent frame of the same rectangle. The kept frame's
 * disposal moves to the last of these, whose rectangle is the same, so the next frame
 * starts from the same canvas. Memory: the encoder's output and the new frames, each
 * about the file's size. */
static cg_status remux(cg_webp_anim_writer *w, WebPData *in, WebPData *out) {
    const char *path = w->file.path;
    WebPMux *src = WebPMuxCreate(in, 0), *dst = WebPMuxNew();
    blank_frame blank = {0, 0, NULL, 0};
    WebPMuxFrameInfo one; /* the frame of a one-frame animation */
    cg_status s = CG_OK;
    WebPDataInit(&one.bitstream);
    if (!src || !dst) {
        s = cg_fail(src ? CG_ERR_NOMEM : CG_ERR_FORMAT, "%s: cannot re-read the encoded WebP",
                    path);
        goto done;
    }
    int t = 0; /* input frames covered so far */
    for (uint32_t j = 1; s == CG_OK && t < w->n; j++) {
        WebPMuxFrameInfo f;
        WebPMuxError e = WebPMuxGetFrame(src, j, &f);
        if (e != WEBP_MUX_OK) {
            s = cg_fail(e == WEBP_MUX_MEMORY_ERROR ? CG_ERR_NOMEM : CG_ERR_FORMAT,
                        "%s: the encoded WebP has frames for %d of the %d frames given", path, t,
                        w->n);
            break;
        }
        WebPBitstreamFeatures feat;
        int covered;
        if (f.id == WEBP_CHUNK_IMAGE) {
            /* a lone frame becomes a still image (WebPAnimEncoderAssemble's doing) */
            covered = w->n - t;
            f.x_offset = f.y_offset = 0;
            f.dispose_method = WEBP_MUX_DISPOSE_NONE;
            f.blend_method = WEBP_MUX_NO_BLEND;
        } else {
            covered = f.duration;
        }
        if (covered < 1 || covered > w->n - t ||
            WebPGetFeatures(f.bitstream.bytes, f.bitstream.size, &feat) != VP8_STATUS_OK) {
            s = cg_fail(CG_ERR_FORMAT, "%s: the encoded WebP's frame %u does not match the "
                        "frames given", path, j);
            WebPDataClear(&f.bitstream);
            break;
        }
        const WebPMuxAnimDispose dispose = f.dispose_method;
        const int redraw_same = !feat.has_alpha || f.blend_method == WEBP_MUX_NO_BLEND;
        f.id = WEBP_CHUNK_ANMF;
        for (int i = 0; i < covered && s == CG_OK; i++) {
            WebPMuxFrameInfo g = f;
            g.duration = w->durations[t + i];
            g.dispose_method = i == covered - 1 ? dispose : WEBP_MUX_DISPOSE_NONE;
            if (i > 0 && !redraw_same) {
                if (!get_blank(&blank, feat.width, feat.height)) {
                    s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
                g.bitstream.bytes = blank.bytes;
                g.bitstream.size = blank.size;
                g.blend_method = WEBP_MUX_BLEND;
            }
            if (w->n == 1) { /* kept for assemble_one, which takes it from here */
                one = g;
                WebPDataInit(&f.bitstream);
                break;
            }
            e = WebPMuxPushFrame(dst, &g, 1);
            if (e != WEBP_MUX_OK)
                s = cg_fail(e == WEBP_MUX_MEMORY_ERROR ? CG_ERR_NOMEM : CG_ERR_FORMAT,
                            "%s: cannot add frame %d to the WebP", path, t + i + 1);
        }
        WebPDataClear(&f.bitstream);
        t += covered;
    }
    if (s != CG_OK) goto done;
    /* the encoder's output is no longer needed: free it before assembling the new one */
    WebPMuxDelete(src);
    src = NULL;
    WebPDataClear(in);
    WebPMuxError e;
    if (w->n == 1) {
        s = assemble_one(w, &one, out);
        goto done;
    }
    WebPMuxAnimParams params = {BGCOLOR, w->loop_count};
    e = WebPMuxSetCanvasSize(dst, w->w, w->h);
    if (e == WEBP_MUX_OK) e = WebPMuxSetAnimationParams(dst, &params);
    if (e == WEBP_MUX_OK) e = WebPMuxAssemble(dst, out);
    if (e != WEBP_MUX_OK)
        s = cg_fail(e == WEBP_MUX_MEMORY_ERROR ? CG_ERR_NOMEM : CG_ERR_FORMAT,
                    "%s: cannot assemble the WebP (libwebpmux error %d)", path, (int)e);
done:
    WebPDataClear(&one.bitstream);
    WebPFree(blank.bytes);
    WebPMuxDelete(src);
    WebPMuxDelete(dst);
    return s;
}

static cg_status write_all(cg_atomic_file *f, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(f->fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return cg_fail(CG_ERR_IO, "%s: cannot write: %s", f->path, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return CG_OK;
}

static void writer_free(cg_webp_anim_writer *w) {
    WebPAnimEncoderDelete(w->enc);
    WebPPictureFree(&w->pic);
    free(w->durations);
    free(w);
}

cg_status cg_webp_anim_writer_finish(cg_webp_anim_writer *w) {
    if (!w) return cg_fail(CG_ERR_ARG, "cg_webp_anim_writer_finish: null writer");
    cg_status s = CG_OK;
    WebPData encoded, final;
    WebPDataInit(&encoded);
    WebPDataInit(&final);
    WebPPictureFree(&w->pic); /* the last frame's copy; not needed any more */
    if (w->n == 0) {
        s = cg_fail(CG_ERR_ARG, "%s: no frames to write", w->file.path);
    } else if (!WebPAnimEncoderAdd(w->enc, NULL, w->n, NULL) ||
               !WebPAnimEncoderAssemble(w->enc, &encoded)) {
        const char *e = WebPAnimEncoderGetError(w->enc);
        s = cg_fail(CG_ERR_NOMEM, "%s: cannot assemble the WebP: %s", w->file.path,
                    e && *e ? e : "WebP encoder error");
    }
    WebPAnimEncoderDelete(w->enc); /* its copy of the frames goes before remux makes another */
    w->enc = NULL;
    if (s == CG_OK) s = remux(w, &encoded, &final);
    WebPDataClear(&encoded);
    if (s == CG_OK) s = write_all(&w->file, final.bytes, final.size);
    WebPDataClear(&final);
    if (s == CG_OK)
        s = cg_atomic_commit(&w->file);
    else
        cg_atomic_abort(&w->file);
    writer_free(w);
    return s;
}

void cg_webp_anim_writer_abort(cg_webp_anim_writer *w) {
    if (!w) return;
    cg_atomic_abort(&w->file);
    writer_free(w);
}
