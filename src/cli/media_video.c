/* media_video.c: videos as a frame source and MP4 (H.264) as a frame sink (media.h), over
 * video.c's FFmpeg reader and writer. The sink also writes the MP4s of animated images
 * (--convert-gif-to-mp4). Timestamps are the source's own, so a variable-rate video keeps
 * its timing; a video's audio is copied packet for packet when an MP4 can hold it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/media.h"
#include "io/video.h"
#include "status.h"

typedef struct {
    frame_source base;
    cg_video_reader *r;
} video_source;

static cg_status video_read(frame_source *s, uint8_t *rgb, uint8_t *alpha, frame_time *t, int *got) {
    video_source *v = (video_source *)s;
    (void)alpha;
    cg_status st = cg_video_read(v->r, rgb, &t->pts, &t->duration, got);
    t->shown = t->duration;
    return st;
}

static int video_was_cut(const frame_source *s) {
    return cg_video_was_cut(((const video_source *)s)->r);
}

static void video_close(frame_source *s) {
    video_source *v = (video_source *)s;
    cg_video_close(v->r);
    free(v);
}

static cg_status video_open(frame_source **out, const char *path, uint64_t max_pixels,
                            int64_t max_frames) {
    cg_video_quiet_log();
    video_source *v = calloc(1, sizeof *v);
    if (!v) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    cg_status s = cg_video_open(&v->r, path, max_pixels);
    if (s != CG_OK) {
        free(v);
        return s;
    }
    cg_video_set_max_frames(v->r, max_frames);
    const cg_video_info *vi = cg_video_get_info(v->r);
    frame_info *in = &v->base.info;
    in->width = vi->width;
    in->height = vi->height;
    in->frame_count = vi->frame_count;
    in->frame_count_exact = vi->frame_count_exact;
    in->loop_count = -1;
    in->tb_num = vi->tb_num;
    in->tb_den = vi->tb_den;
    in->fps_num = vi->fps_num;
    in->fps_den = vi->fps_den;
    in->hdr = vi->hdr;
    snprintf(in->transfer, sizeof in->transfer, "%s", vi->transfer);
    if (vi->has_audio && !vi->audio_copyable)
        snprintf(v->base.warning, sizeof v->base.warning,
                 "its %s audio cannot be copied into an MP4; the cartoon is silent", vi->audio_codec);
    v->base.read = video_read;
    v->base.was_cut = video_was_cut;
    v->base.close = video_close;
    v->base.audio = v->r;
    *out = &v->base;
    return CG_OK;
}

typedef struct {
    frame_sink base;
    cg_video_writer *w;
} video_sink;

static cg_status video_add(frame_sink *k, const uint8_t *rgb, const uint8_t *alpha,
                           const frame_time *t) {
    (void)alpha;
    return cg_video_write(((video_sink *)k)->w, rgb, t->pts, t->shown);
}

static cg_status video_finish(frame_sink *k) {
    video_sink *v = (video_sink *)k;
    cg_status s = cg_video_writer_finish(v->w);
    free(v);
    return s;
}

static void video_abort(frame_sink *k) {
    video_sink *v = (video_sink *)k;
    cg_video_writer_abort(v->w);
    free(v);
}

static cg_status video_sink_open(frame_sink **out, const char *path, const frame_info *in,
                                 const frame_source *src, int alpha, const sink_opts *o) {
    (void)alpha, (void)o;
    video_sink *v = calloc(1, sizeof *v);
    if (!v) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    /* a file that does not say its rate gets 25 fps for the encoder's rate control only;
     * the timestamps are the input's either way */
    cg_video_writer_opts vo = {in->width,
                               in->height,
                               in->tb_num,
                               in->tb_den,
                               in->fps_num > 0 ? in->fps_num : 25,
                               in->fps_num > 0 ? in->fps_den : 1,
                               src ? (cg_video_reader *)src->audio : NULL};
    cg_status s = cg_video_writer_open(&v->w, path, &vo);
    if (s != CG_OK) {
        free(v);
        return s;
    }
    v->base.add = video_add;
    v->base.finish = video_finish;
    v->base.abort = video_abort;
    *out = &v->base;
    return CG_OK;
}

const media_kind_ops media_video_ops = {"video", "videos", ".mp4", 0, video_open, video_sink_open};
