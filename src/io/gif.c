/* gif.c: the GIF reader and writer of gif.h. Decoding goes through giflib's record-by-record
 * API (not DGifSlurp, which would hold every frame of a long GIF at once); encoding gives
 * each frame its own local palette from libimagequant. */
#include "io/gif.h"

#include <errno.h>
#include <gif_lib.h>
#include <libimagequant.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/image.h"
#include "status.h"

#define GIF_MAX_SIDE 65535 /* sides are 16-bit fields */

/* ---- reading ---- */

struct cg_gif_reader {
    cg_gif_info info;
    char *path;
    FILE *f;
    GifFileType *gif;
    uint16_t *delays;
    int delays_cap;
    uint8_t *canvas;        /* width*height RGBA: the screen as shown after the last frame */
    uint8_t *saved;         /* the screen before a DISPOSE_PREVIOUS frame was drawn */
    uint8_t *line;          /* one row of a frame's colour indices */
    int next;               /* the next frame to decode */
    int dispose;            /* the last frame's disposal, applied before the next is drawn ... */
    int dx0, dy0, dx1, dy1; /* ... to its rectangle, clipped to the screen */
};

static int read_file(GifFileType *g, GifByteType *buf, int n) {
    return (int)fread(buf, 1, (size_t)n, (FILE *)g->UserData);
}

static const char *gif_error_text(int code) {
    switch (code) {
    case D_GIF_ERR_READ_FAILED:
    case D_GIF_ERR_EOF_TOO_SOON: return "truncated GIF (the file ends inside a block)";
    case D_GIF_ERR_NOT_GIF_FILE: return "not a GIF file";
    case D_GIF_ERR_NO_SCRN_DSCR: return "corrupt GIF (no screen descriptor)";
    case D_GIF_ERR_NO_IMAG_DSCR: return "corrupt GIF (no image descriptor)";
    case D_GIF_ERR_WRONG_RECORD: return "corrupt GIF (unknown block type)";
    case D_GIF_ERR_DATA_TOO_BIG: return "corrupt GIF (a frame holds more pixels than its size)";
    case D_GIF_ERR_IMAGE_DEFECT: return "corrupt GIF (bad image data)";
    case D_GIF_ERR_NOT_ENOUGH_MEM: return "out of memory";
    default: {
        const char *s = GifErrorString(code);
        return s ? s : "unreadable GIF";
    }
    }
}

/* The failure of a giflib call; frame < 0 when it was not inside a frame. */
static cg_status gif_fail(const cg_gif_reader *r, int frame) {
    int code = r->gif ? r->gif->Error : D_GIF_ERR_READ_FAILED;
    cg_status s = code == D_GIF_ERR_NOT_ENOUGH_MEM ? CG_ERR_NOMEM : CG_ERR_FORMAT;
    if (frame < 0) return cg_fail(s, "%s: %s", r->path, gif_error_text(code));
    return cg_fail(s, "%s: %s in frame %d", r->path, gif_error_text(code), frame + 1);
}

static cg_status start_decoder(cg_gif_reader *r) {
    int err = 0;
    rewind(r->f);
    r->gif = DGifOpen(r->f, read_file, &err);
    if (!r->gif) {
        return cg_fail(
            err == D_GIF_ERR_NOT_ENOUGH_MEM ? CG_ERR_NOMEM : CG_ERR_FORMAT, "%s: %s", r->path,
            err == D_GIF_ERR_READ_FAILED ? "not a GIF file (too short)" : gif_error_text(err));
    }
    return CG_OK;
}

/* Reads records up to the next frame's image descriptor, noting the graphics control block
 * that applies to it and the first loop count met. Returns 1 at a frame, 0 at the end of
 * the file, -1 after cg_fail. `done` is the number of frames read before. */
static int next_frame(cg_gif_reader *r, GraphicsControlBlock *gcb, int *loop, int done) {
    gcb->DisposalMode = DISPOSAL_UNSPECIFIED;
    gcb->UserInputFlag = false;
    gcb->DelayTime = 0;
    gcb->TransparentColor = NO_TRANSPARENT_COLOR;
    for (;;) {
        GifRecordType type;
        if (DGifGetRecordType(r->gif, &type) == GIF_ERROR) {
            /* Browsers show a GIF whose trailer is missing or followed by junk. */
            if (done > 0) return 0;
            gif_fail(r, -1);
            return -1;
        }
        if (type == TERMINATE_RECORD_TYPE) return 0;
        if (type == IMAGE_DESC_RECORD_TYPE) {
            if (DGifGetImageDesc(r->gif) == GIF_ERROR) {
                gif_fail(r, done);
                return -1;
            }
            /* giflib appends a copy of every descriptor for DGifSlurp's sake; dropping it
             * keeps memory flat on long GIFs. GifFreeSavedImages leaves ImageCount as it
             * was, and the next descriptor would be stored past the end: reset it too. */
            GifFreeSavedImages(r->gif);
            r->gif->ImageCount = 0;
            return 1;
        }
        if (type != EXTENSION_RECORD_TYPE) continue; /* giflib rejects the others itself */
        int code;
        GifByteType *ext;
        if (DGifGetExtension(r->gif, &code, &ext) == GIF_ERROR) {
            gif_fail(r, -1);
            return -1;
        }
        int first = 1, app_loop = 0;
        while (ext) {
            if (first && code == GRAPHICS_EXT_FUNC_CODE && ext[0] == 4)
                DGifExtensionToGCB(4, ext + 1, gcb);
            else if (first && code == APPLICATION_EXT_FUNC_CODE)
                app_loop = ext[0] == 11 && (!memcmp(ext + 1, "NETSCAPE2.0", 11) ||
                                            !memcmp(ext + 1, "ANIMEXTS1.0", 11));
            else if (app_loop && ext[0] >= 3 && ext[1] == 1 && *loop < 0)
                *loop = ext[2] | ext[3] << 8;
            first = 0;
            if (DGifGetExtensionNext(r->gif, &ext) == GIF_ERROR) {
                gif_fail(r, -1);
                return -1;
            }
        }
    }
}

/* Reads past a frame's compressed data without decoding it. */
static int skip_frame_data(cg_gif_reader *r) {
    int size;
    GifByteType *block;
    if (DGifGetCode(r->gif, &size, &block) == GIF_ERROR) return -1;
    while (block)
        if (DGifGetCodeNext(r->gif, &block) == GIF_ERROR) return -1;
    return 0;
}

static void format_pixels(char *buf, size_t n, uint64_t px) {
    if (px >= 1000000)
        snprintf(buf, n, "%.1f megapixels", (double)px / 1e6);
    else
        snprintf(buf, n, "%llu pixels", (unsigned long long)px);
}

/* The first pass: frame count, delays, loop count and the screen size, no pixels. */
static cg_status scan(cg_gif_reader *r, uint64_t max_pixels) {
    cg_status s = start_decoder(r);
    if (s != CG_OK) return s;
    int first_w = 0, first_h = 0, n = 0;
    for (;;) {
        GraphicsControlBlock gcb;
        int k = next_frame(r, &gcb, &r->info.loop_count, n);
        if (k < 0) return CG_ERR_FORMAT;
        if (k == 0) break;
        const GifImageDesc *d = &r->gif->Image;
        if (!d->ColorMap && !r->gif->SColorMap)
            return cg_fail(CG_ERR_FORMAT, "%s: corrupt GIF (frame %d has no colour table)", r->path,
                           n + 1);
        if (skip_frame_data(r) < 0) return gif_fail(r, n);
        if (n == 0) {
            first_w = d->Left + d->Width;
            first_h = d->Top + d->Height;
        }
        if (n == r->delays_cap) {
            int cap = n ? 2 * n : 64;
            uint16_t *v = realloc(r->delays, (size_t)cap * sizeof *v);
            if (!v) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", r->path);
            r->delays = v;
            r->delays_cap = cap;
        }
        r->delays[n++] = (uint16_t)gcb.DelayTime;
        if (n == 0x7fffffff) break;
    }
    if (n == 0) return cg_fail(CG_ERR_FORMAT, "%s: GIF has no frames", r->path);
    int w = r->gif->SWidth, h = r->gif->SHeight;
    if (w <= 0 || h <= 0) {
        w = first_w < GIF_MAX_SIDE ? first_w : GIF_MAX_SIDE;
        h = first_h < GIF_MAX_SIDE ? first_h : GIF_MAX_SIDE;
    }
    if (w <= 0 || h <= 0)
        return cg_fail(CG_ERR_FORMAT, "%s: GIF has zero width or height", r->path);
    uint64_t px = (uint64_t)w * (uint64_t)h;
    if (px > max_pixels) {
        char have[48], lim[48];
        format_pixels(have, sizeof have, px);
        format_pixels(lim, sizeof lim, max_pixels);
        return cg_fail(CG_ERR_LIMIT, "%s: GIF screen is %dx%d (%s), over the limit of %s", r->path,
                       w, h, have, lim);
    }
    r->info.width = w;
    r->info.height = h;
    r->info.frame_count = n;
    r->info.delays = r->delays;
    return CG_OK;
}

cg_status cg_gif_open(cg_gif_reader **out, const char *path, uint64_t max_pixels) {
    if (!out || !path) return cg_fail(CG_ERR_ARG, "cg_gif_open: null argument");
    *out = NULL;
    if (!max_pixels) max_pixels = CG_DEFAULT_MAX_PIXELS;
    cg_gif_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    }
    r->info.loop_count = -1;
    cg_status s = CG_OK;
    struct stat st;
    r->f = fopen(path, "rb");
    if (!r->f) {
        s = cg_fail(CG_ERR_IO, "%s: %s", path,
                    errno == ENOENT ? "no such file or directory" : strerror(errno));
    } else if (fstat(fileno(r->f), &st) == 0 && st.st_size == 0) {
        s = cg_fail(CG_ERR_FORMAT, "%s: empty file", path);
    } else {
        s = scan(r, max_pixels);
    }
    if (s == CG_OK) {
        int err;
        DGifCloseFile(r->gif, &err);
        r->gif = NULL;
        s = start_decoder(r);
    }
    if (s == CG_OK) {
        size_t px = (size_t)r->info.width * (size_t)r->info.height;
        r->canvas = calloc(px, 4); /* all transparent, as browsers start */
        r->saved = malloc(px * 4);
        r->line = malloc(GIF_MAX_SIDE + 1);
        if (!r->canvas || !r->saved || !r->line)
            s = cg_fail(CG_ERR_NOMEM, "%s: out of memory for a %dx%d GIF", path, r->info.width,
                        r->info.height);
    }
    if (s != CG_OK) {
        cg_gif_close(r);
        return s;
    }
    *out = r;
    return CG_OK;
}

const cg_gif_info *cg_gif_get_info(const cg_gif_reader *r) { return &r->info; }

int cg_gif_playback_delay(int delay_cs) { return delay_cs <= 1 ? 10 : delay_cs; }

static void copy_rect(uint8_t *dst, const uint8_t *src, int w, int x0, int y0, int x1, int y1) {
    for (int y = y0; y < y1; y++) {
        size_t o = ((size_t)y * w + x0) * 4;
        memcpy(dst + o, src + o, (size_t)(x1 - x0) * 4);
    }
}

cg_status cg_gif_read_frame(cg_gif_reader *r, uint8_t *rgb, uint8_t *rgba) {
    if (!r) return cg_fail(CG_ERR_ARG, "cg_gif_read_frame: null reader");
    if (r->next >= r->info.frame_count)
        return cg_fail(CG_ERR_ARG, "%s: no frame after frame %d", r->path, r->info.frame_count);
    const int W = r->info.width, H = r->info.height, n = r->next;

    /* the previous frame's disposal happens just before this one is drawn */
    if (r->dispose == DISPOSE_BACKGROUND) {
        /* browsers clear to transparent, not to the background colour */
        for (int y = r->dy0; y < r->dy1; y++)
            memset(r->canvas + ((size_t)y * W + r->dx0) * 4, 0, (size_t)(r->dx1 - r->dx0) * 4);
    } else if (r->dispose == DISPOSE_PREVIOUS) {
        copy_rect(r->canvas, r->saved, W, r->dx0, r->dy0, r->dx1, r->dy1);
    }

    GraphicsControlBlock gcb;
    int unused_loop = 0;
    int k = next_frame(r, &gcb, &unused_loop, 0);
    if (k < 0) return CG_ERR_FORMAT;
    if (k == 0) /* the first pass counted it, so the file changed under us */
        return cg_fail(CG_ERR_FORMAT, "%s: frame %d is missing", r->path, n + 1);
    const GifImageDesc *d = &r->gif->Image;
    const ColorMapObject *map = d->ColorMap ? d->ColorMap : r->gif->SColorMap;
    if (!map)
        return cg_fail(CG_ERR_FORMAT, "%s: corrupt GIF (frame %d has no colour table)", r->path,
                       n + 1);
    /* frames reaching past the screen are clipped to it */
    int x0 = d->Left < W ? d->Left : W, y0 = d->Top < H ? d->Top : H;
    int x1 = d->Left + d->Width < W ? d->Left + d->Width : W;
    int y1 = d->Top + d->Height < H ? d->Top + d->Height : H;
    if (gcb.DisposalMode == DISPOSE_PREVIOUS) copy_rect(r->saved, r->canvas, W, x0, y0, x1, y1);

    if (d->Width <= 0 || d->Height <= 0 || d->Width > GIF_MAX_SIDE) {
        if (skip_frame_data(r) < 0) return gif_fail(r, n);
    } else {
        /* interlaced frames store rows in four passes: every 8th from 0, every 8th from 4,
         * every 4th from 2, every 2nd from 1 */
        static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
        const int npass = d->Interlace ? 4 : 1;
        const int tr = gcb.TransparentColor, ncolors = map->ColorCount;
        for (int p = 0; p < npass; p++) {
            const int y_start = d->Interlace ? start[p] : 0, y_step = d->Interlace ? step[p] : 1;
            for (int y = y_start; y < d->Height; y += y_step) {
                if (DGifGetLine(r->gif, r->line, d->Width) == GIF_ERROR) return gif_fail(r, n);
                int cy = d->Top + y;
                if (cy >= H || x0 >= x1) continue; /* (x0 - Left is negative past the edge) */
                uint8_t *dst = r->canvas + ((size_t)cy * W + x0) * 4;
                const uint8_t *src = r->line + (x0 - d->Left);
                for (int x = x0; x < x1; x++, dst += 4) {
                    int idx = *src++;
                    /* an index past the colour table shows nothing, like a transparent one */
                    if (idx == tr || idx >= ncolors) continue;
                    const GifColorType *c = &map->Colors[idx];
                    dst[0] = c->Red;
                    dst[1] = c->Green;
                    dst[2] = c->Blue;
                    dst[3] = 255;
                }
            }
        }
    }
    r->dispose = gcb.DisposalMode;
    r->dx0 = x0, r->dy0 = y0, r->dx1 = x1, r->dy1 = y1;
    r->next++;

    size_t px = (size_t)W * H;
    if (rgba) memcpy(rgba, r->canvas, px * 4);
    if (rgb) {
        const uint8_t *s = r->canvas;
        for (size_t i = 0; i < px; i++, s += 4, rgb += 3) {
            /* alpha is only ever 0 or 255 */
            rgb[0] = s[3] ? s[0] : 255;
            rgb[1] = s[3] ? s[1] : 255;
            rgb[2] = s[3] ? s[2] : 255;
        }
    }
    return CG_OK;
}

void cg_gif_close(cg_gif_reader *r) {
    if (!r) return;
    if (r->gif) {
        int err;
        DGifCloseFile(r->gif, &err);
    }
    if (r->f) fclose(r->f);
    free(r->delays);
    free(r->canvas);
    free(r->saved);
    free(r->line);
    free(r->path);
    free(r);
}

/* ---- writing ---- */

struct cg_gif_writer {
    cg_atomic_file file;
    GifFileType *gif;
    int w, h, dither;
    int write_errno; /* what the last failed write() said */
    uint8_t *rgba, *idx;
    liq_attr *attr;
};

static int write_file(GifFileType *g, const GifByteType *p, int n) {
    cg_gif_writer *w = g->UserData;
    int left = n;
    while (left > 0) {
        ssize_t k = write(w->file.fd, p, (size_t)left);
        if (k < 0) {
            if (errno == EINTR) continue;
            w->write_errno = errno;
            return n - left;
        }
        p += k;
        left -= (int)k;
    }
    return n;
}

static cg_status writer_fail(const cg_gif_writer *w) {
    if (w->write_errno)
        return cg_fail(CG_ERR_IO, "%s: cannot write: %s", w->file.path, strerror(w->write_errno));
    const char *e = GifErrorString(w->gif ? w->gif->Error : E_GIF_ERR_WRITE_FAILED);
    return cg_fail(CG_ERR_IO, "%s: cannot write the GIF: %s", w->file.path, e ? e : "giflib error");
}

cg_status cg_gif_writer_open(cg_gif_writer **out, const char *path, int width, int height,
                             int loop_count, int dither) {
    if (!out || !path) return cg_fail(CG_ERR_ARG, "cg_gif_writer_open: null argument");
    *out = NULL;
    if (width < 1 || height < 1 || width > GIF_MAX_SIDE || height > GIF_MAX_SIDE)
        return cg_fail(CG_ERR_LIMIT, "%s: %dx%d cannot be a GIF (1 to %d pixels a side)", path,
                       width, height, GIF_MAX_SIDE);
    cg_gif_writer *w = calloc(1, sizeof *w);
    if (!w) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    w->file.fd = -1;
    w->w = width;
    w->h = height;
    w->dither = dither;
    size_t px = (size_t)width * height;
    w->rgba = malloc(px * 4);
    w->idx = malloc(px);
    w->attr = liq_attr_create();
    if (!w->rgba || !w->idx || !w->attr) {
        cg_gif_writer_abort(w);
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory for a %dx%d GIF", path, width, height);
    }
    liq_set_max_colors(w->attr, 256);
    cg_status s = cg_atomic_begin(&w->file, path);
    if (s != CG_OK) {
        cg_gif_writer_abort(w);
        return s;
    }
    int err = 0;
    w->gif = EGifOpen(w, write_file, &err);
    if (!w->gif) {
        cg_gif_writer_abort(w);
        return cg_fail(CG_ERR_NOMEM, "%s: cannot start a GIF: %s", path, GifErrorString(err));
    }
    EGifSetGifVersion(w->gif, true); /* GIF89a: needed for delays and the loop count */
    int ok = EGifPutScreenDesc(w->gif, width, height, 8, 0, NULL) == GIF_OK;
    if (ok && loop_count >= 0) {
        const unsigned char sub[3] = {1, (unsigned char)(loop_count & 255),
                                      (unsigned char)(loop_count >> 8 & 255)};
        ok = EGifPutExtensionLeader(w->gif, APPLICATION_EXT_FUNC_CODE) == GIF_OK &&
             EGifPutExtensionBlock(w->gif, 11, "NETSCAPE2.0") == GIF_OK &&
             EGifPutExtensionBlock(w->gif, 3, sub) == GIF_OK &&
             EGifPutExtensionTrailer(w->gif) == GIF_OK;
    }
    if (!ok) {
        s = writer_fail(w);
        cg_gif_writer_abort(w);
        return s;
    }
    *out = w;
    return CG_OK;
}

cg_status cg_gif_writer_add(cg_gif_writer *w, const uint8_t *rgb, int delay_cs) {
    if (!w || !rgb) return cg_fail(CG_ERR_ARG, "cg_gif_writer_add: null argument");
    size_t px = (size_t)w->w * w->h;
    for (size_t i = 0; i < px; i++) {
        w->rgba[4 * i + 0] = rgb[3 * i + 0];
        w->rgba[4 * i + 1] = rgb[3 * i + 1];
        w->rgba[4 * i + 2] = rgb[3 * i + 2];
        w->rgba[4 * i + 3] = 255;
    }
    liq_image *img = liq_image_create_rgba(w->attr, w->rgba, w->w, w->h, 0);
    liq_result *res = NULL;
    if (!img || liq_image_quantize(img, w->attr, &res) != LIQ_OK) {
        if (img) liq_image_destroy(img);
        return cg_fail(CG_ERR_NOMEM, "%s: colour quantization failed", w->file.path);
    }
    liq_set_dithering_level(res, w->dither ? 1.0f : 0.0f);
    cg_status s = CG_OK;
    ColorMapObject *map = NULL;
    if (liq_write_remapped_image(res, img, w->idx, px) != LIQ_OK) {
        s = cg_fail(CG_ERR_NOMEM, "%s: colour quantization failed", w->file.path);
        goto done;
    }
    const liq_palette *pal = liq_get_palette(res);
    /* a GIF colour table has a power-of-two size; the unused entries stay black */
    map = GifMakeMapObject(1 << GifBitSize((int)pal->count), NULL);
    if (!map) {
        s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", w->file.path);
        goto done;
    }
    memset(map->Colors, 0, (size_t)map->ColorCount * sizeof *map->Colors);
    for (unsigned i = 0; i < pal->count; i++) {
        map->Colors[i].Red = pal->entries[i].r;
        map->Colors[i].Green = pal->entries[i].g;
        map->Colors[i].Blue = pal->entries[i].b;
    }
    GraphicsControlBlock gcb = {DISPOSE_DO_NOT, false,
                                delay_cs < 0                  ? 0
                                : delay_cs > CG_GIF_MAX_DELAY ? CG_GIF_MAX_DELAY
                                                              : delay_cs,
                                NO_TRANSPARENT_COLOR};
    GifByteType ext[4];
    size_t n = EGifGCBToExtension(&gcb, ext);
    int ok = EGifPutExtension(w->gif, GRAPHICS_EXT_FUNC_CODE, (int)n, ext) == GIF_OK &&
             EGifPutImageDesc(w->gif, 0, 0, w->w, w->h, false, map) == GIF_OK;
    for (int y = 0; ok && y < w->h; y++)
        ok = EGifPutLine(w->gif, w->idx + (size_t)y * w->w, w->w) == GIF_OK;
    if (!ok) s = writer_fail(w);
done:
    GifFreeMapObject(map);
    liq_result_destroy(res);
    liq_image_destroy(img);
    return s;
}

static void writer_free(cg_gif_writer *w) {
    if (w->attr) liq_attr_destroy(w->attr);
    free(w->rgba);
    free(w->idx);
    free(w);
}

cg_status cg_gif_writer_finish(cg_gif_writer *w) {
    if (!w) return cg_fail(CG_ERR_ARG, "cg_gif_writer_finish: null writer");
    int err = 0;
    int ok = EGifCloseFile(w->gif, &err) == GIF_OK; /* writes the trailer, frees */
    w->gif = NULL;
    cg_status s = CG_OK;
    if (!ok || w->write_errno) {
        s = w->write_errno ? writer_fail(w)
                           : cg_fail(CG_ERR_IO, "%s: cannot write the GIF: %s", w->file.path,
                                     GifErrorString(err));
        cg_atomic_abort(&w->file);
    } else {
        s = cg_atomic_commit(&w->file);
    }
    writer_free(w);
    return s;
}

void cg_gif_writer_abort(cg_gif_writer *w) {
    if (!w) return;
    if (w->gif) {
        int err;
        EGifCloseFile(w->gif, &err);
    }
    cg_atomic_abort(&w->file);
    writer_free(w);
}
