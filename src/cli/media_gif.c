/* media_gif.c: animated GIFs as a frame source and a frame sink (media.h), over gif.c's
 * streaming reader and writer. Time is in 1/100 s, a GIF's own unit: a frame's stored
 * delay is kept as it is in the GIF written, and played as browsers play it (0 and 1 as
 * 10) where time must be real (the MP4s, --frame-frequency's merged frames). */
#include <stdlib.h>

#include "cli/media.h"
#include "io/gif.h"
#include "io/video.h"
#include "status.h"

typedef struct {
    frame_source base;
    cg_gif_reader *r;
    const cg_gif_info *gi;
    int next;
} gif_source;

static cg_status gif_read(frame_source *s, uint8_t *rgb, uint8_t *alpha, frame_time *t, int *got) {
    gif_source *g = (gif_source *)s;
    *got = 0;
    if (g->next >= g->gi->frame_count) return CG_OK;
    cg_status st = cg_gif_read_frame(g->r, rgb, NULL);
    if (st != CG_OK) return st;
    (void)alpha; /* GIF outputs have no alpha: media.c never asks */
    t->duration = g->gi->delays[g->next];
    t->shown = cg_gif_playback_delay(g->gi->delays[g->next]);
    t->pts = 0; /* media.c keeps the clock */
    g->next++;
    *got = 1;
    return CG_OK;
}

static int64_t gif_shown_total(const frame_source *s, int64_t n) {
    const gif_source *g = (const gif_source *)s;
    int64_t total = 0;
    for (int i = 0; i < g->gi->frame_count && i < n; i++)
        total += cg_gif_playback_delay(g->gi->delays[i]);
    return total;
}

static void gif_close(frame_source *s) {
    gif_source *g = (gif_source *)s;
    cg_gif_close(g->r);
    free(g);
}

static cg_status gif_open(frame_source **out, const char *path, uint64_t max_pixels,
                          int64_t max_frames) {
    (void)max_frames;
    gif_source *g = calloc(1, sizeof *g);
    if (!g) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    cg_status s = cg_gif_open(&g->r, path, max_pixels);
    if (s != CG_OK) {
        free(g);
        return s;
    }
    g->gi = cg_gif_get_info(g->r);
    frame_info *in = &g->base.info;
    in->width = g->gi->width;
    in->height = g->gi->height;
    in->frame_count = g->gi->frame_count;
    in->frame_count_exact = 1;
    in->loop_count = g->gi->loop_count;
    in->tb_num = 1;
    in->tb_den = 100;
    in->fps_den = 1;
    g->base.read = gif_read;
    g->base.shown_total = gif_shown_total;
    g->base.close = gif_close;
    cg_video_quiet_log(); /* --convert-gif-to-mp4: x264 would print its statistics */
    *out = &g->base;
    return CG_OK;
}

typedef struct {
    frame_sink base;
    cg_gif_writer *w;
    int tb_num, tb_den;
} gif_sink;

static cg_status gif_add(frame_sink *k, const uint8_t *rgb, const uint8_t *alpha,
                         const frame_time *t) {
    gif_sink *g = (gif_sink *)k;
    (void)alpha;
    /* a GIF source's unit is already 1/100 s; another's is converted, rounded */
    int64_t cs = g->tb_num == 1 && g->tb_den == 100
                     ? t->duration
                     : (t->duration * 100 * g->tb_num + g->tb_den / 2) / g->tb_den;
    if (cs > CG_GIF_MAX_DELAY) cs = CG_GIF_MAX_DELAY;
    return cg_gif_writer_add(g->w, rgb, (int)cs);
}

static cg_status gif_finish(frame_sink *k) {
    gif_sink *g = (gif_sink *)k;
    cg_status s = cg_gif_writer_finish(g->w);
    free(g);
    return s;
}

static void gif_abort(frame_sink *k) {
    gif_sink *g = (gif_sink *)k;
    cg_gif_writer_abort(g->w);
    free(g);
}

static cg_status gif_sink_open(frame_sink **out, const char *path, const frame_info *in,
                               const frame_source *src, int alpha, const sink_opts *o) {
    (void)src, (void)alpha;
    gif_sink *g = calloc(1, sizeof *g);
    if (!g) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    cg_status s = cg_gif_writer_open(&g->w, path, in->width, in->height, in->loop_count, o->dither);
    if (s != CG_OK) {
        free(g);
        return s;
    }
    g->tb_num = in->tb_num;
    g->tb_den = in->tb_den;
    g->base.add = gif_add;
    g->base.finish = gif_finish;
    g->base.abort = gif_abort;
    *out = &g->base;
    return CG_OK;
}

const media_kind_ops media_gif_ops = {"GIF", "GIFs", NULL, 1, gif_open, gif_sink_open};
