/* media_webp.c: animated WebP as a frame source and a frame sink (media.h), over
 * webp_anim.c (libwebp's own demux and animation API). Time is in milliseconds, WebP's own
 * unit; each stored duration is kept in the WebP written. Where the input has alpha, the
 * stylized frames keep the input's opacity (the network sees the frames composited onto
 * white, as a page shows them). */
#include <stdlib.h>
#include <string.h>

#include "cli/media.h"
#include "io/video.h"
#include "io/webp_anim.h"
#include "status.h"

typedef struct {
    frame_source base;
    cg_webp_anim_reader *r;
    const cg_webp_anim_info *wi;
    int next;
    uint8_t *rgba; /* width*height*4, for the opacity */
} webp_source;

static cg_status webp_read(frame_source *s, uint8_t *rgb, uint8_t *alpha, frame_time *t, int *got) {
    webp_source *w = (webp_source *)s;
    *got = 0;
    if (w->next >= w->wi->frame_count) return CG_OK;
    cg_status st = cg_webp_anim_read_frame(w->r, rgb, alpha ? w->rgba : NULL);
    if (st != CG_OK) return st;
    if (alpha) {
        size_t n = (size_t)w->wi->width * w->wi->height;
        for (size_t i = 0; i < n; i++) alpha[i] = w->rgba[4 * i + 3];
    }
    t->duration = w->wi->durations[w->next];
    t->shown = cg_webp_anim_playback_ms(w->wi->durations[w->next]);
    t->pts = 0; /* media.c keeps the clock */
    w->next++;
    *got = 1;
    return CG_OK;
}

static int64_t webp_shown_total(const frame_source *s, int64_t n) {
    const webp_source *w = (const webp_source *)s;
    int64_t total = 0;
    for (int i = 0; i < w->wi->frame_count && i < n; i++)
        total += cg_webp_anim_playback_ms(w->wi->durations[i]);
    return total;
}

static void webp_close(frame_source *s) {
    webp_source *w = (webp_source *)s;
    cg_webp_anim_close(w->r);
    free(w->rgba);
    free(w);
}

/* Whether any composited frame is see-through anywhere. The file's alpha flag does not
 * say: libwebp's encoder codes unchanged pixels as transparent, so most animations carry
 * it while every frame shows opaque. One decoding pass more, before any stylizing, costs
 * little next to the network and keeps an opaque animation's output opaque (and smaller:
 * the alpha writer codes every frame whole). */
static int shows_transparency(const char *path, uint64_t max_pixels) {
    cg_webp_anim_reader *r;
    if (cg_webp_anim_open(&r, path, max_pixels) != CG_OK) return 1; /* the real open will say */
    const cg_webp_anim_info *wi = cg_webp_anim_get_info(r);
    size_t n = (size_t)wi->width * wi->height;
    uint8_t *rgba = malloc(n * 4);
    int seen = !rgba;
    for (int f = 0; !seen && f < wi->frame_count; f++) {
        if (cg_webp_anim_read_frame(r, NULL, rgba) != CG_OK) break;
        for (size_t i = 0; i < n && !seen; i++) seen = rgba[4 * i + 3] != 255;
    }
    free(rgba);
    cg_webp_anim_close(r);
    return seen;
}

static cg_status webp_open(frame_source **out, const char *path, uint64_t max_pixels,
                           int64_t max_frames) {
    (void)max_frames;
    webp_source *w = calloc(1, sizeof *w);
    if (!w) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    cg_status s = cg_webp_anim_open(&w->r, path, max_pixels);
    if (s != CG_OK) {
        free(w);
        return s;
    }
    w->wi = cg_webp_anim_get_info(w->r);
    frame_info *in = &w->base.info;
    in->width = w->wi->width;
    in->height = w->wi->height;
    in->frame_count = w->wi->frame_count;
    in->frame_count_exact = 1;
    in->loop_count = w->wi->loop_count;
    in->has_alpha = w->wi->has_alpha ? shows_transparency(path, max_pixels) : 0;
    in->tb_num = 1;
    in->tb_den = 1000;
    in->fps_den = 1;
    if (in->has_alpha && !(w->rgba = malloc((size_t)in->width * in->height * 4))) {
        webp_close(&w->base);
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    }
    w->base.read = webp_read;
    w->base.shown_total = webp_shown_total;
    w->base.close = webp_close;
    cg_video_quiet_log(); /* --convert-gif-to-mp4: x264 would print its statistics */
    *out = &w->base;
    return CG_OK;
}

typedef struct {
    frame_sink base;
    cg_webp_anim_writer *w;
    int tb_num, tb_den;
    size_t npix;
    uint8_t *rgba; /* alpha writers: the frame and its opacity interleaved */
} webp_sink;

static cg_status webp_add(frame_sink *k, const uint8_t *rgb, const uint8_t *alpha,
                          const frame_time *t) {
    webp_sink *w = (webp_sink *)k;
    int64_t ms = w->tb_num == 1 && w->tb_den == 1000
                     ? t->duration
                     : (t->duration * 1000 * w->tb_num + w->tb_den / 2) / w->tb_den;
    if (ms > INT32_MAX) ms = INT32_MAX;
    if (!w->rgba) return cg_webp_anim_writer_add(w->w, rgb, (int)ms);
    for (size_t i = 0; i < w->npix; i++) {
        memcpy(w->rgba + 4 * i, rgb + 3 * i, 3);
        w->rgba[4 * i + 3] = alpha ? alpha[i] : 255;
    }
    return cg_webp_anim_writer_add(w->w, w->rgba, (int)ms);
}

static void webp_free(webp_sink *w) {
    free(w->rgba);
    free(w);
}

static cg_status webp_finish(frame_sink *k) {
    webp_sink *w = (webp_sink *)k;
    cg_status s = cg_webp_anim_writer_finish(w->w);
    webp_free(w);
    return s;
}

static void webp_abort(frame_sink *k) {
    webp_sink *w = (webp_sink *)k;
    cg_webp_anim_writer_abort(w->w);
    webp_free(w);
}

static cg_status webp_sink_open(frame_sink **out, const char *path, const frame_info *in,
                                const frame_source *src, int alpha, const sink_opts *o) {
    (void)src, (void)o;
    webp_sink *w = calloc(1, sizeof *w);
    if (!w) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    w->npix = (size_t)in->width * in->height;
    if (alpha && !(w->rgba = malloc(w->npix * 4))) {
        free(w);
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    }
    /* a source without a loop count plays once; WebP's 0 would loop forever */
    int loop = in->loop_count < 0 ? 1 : in->loop_count;
    cg_status s = cg_webp_anim_writer_open(&w->w, path, in->width, in->height, loop, alpha);
    if (s != CG_OK) {
        webp_free(w);
        return s;
    }
    w->tb_num = in->tb_num;
    w->tb_den = in->tb_den;
    w->base.add = webp_add;
    w->base.finish = webp_finish;
    w->base.abort = webp_abort;
    *out = &w->base;
    return CG_OK;
}

const media_kind_ops media_webp_ops = {"animated WebP", "animated WebPs", NULL, 1, webp_open,
                                       webp_sink_open};
