/* media.c: cartoonizing animated GIFs and videos frame by frame for `cartoongan cartoonize`
 * (see media.h). Every frame takes the photo path: resized to --max-height with the same
 * Lanczos filter, stylized by cg_stylize per style, laid out by the same comparison rules.
 * Instance norm's statistics are each frame's own, as the model defines them: nothing
 * carries over from one frame to the next (so frame-to-frame flicker is not smoothed). */
#include "cli/media.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gif.h"
#include "io/image.h"
#include "io/video.h"
#include "status.h"

/* One GIF or video under way: its buffers, sized once for its frames, and its writers. */
typedef struct {
    const media_job *j;
    progress bar;
    int src_w, src_h; /* decoded frames */
    int w, h;         /* frames through the network */
    int gw, gh;       /* the comparison frame */
    int rows, cols;
    int run[CLI_MAX_STYLES]; /* styles stylizing every frame */
    int nrun, cmp;
    uint8_t *frame, *work; /* decoded; resized (the same buffer when not resized) */
    uint8_t *styled[CLI_MAX_STYLES];
    uint8_t *grid;
    cg_gif_writer *gif[CLI_MAX_STYLES], *gif_cmp;
    cg_video_writer *mp4[CLI_MAX_STYLES], *mp4_cmp;
    int done;      /* output frames finished */
    int runs_done; /* styles finished on the frame under way */
} media_ctx;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void warn(const media_job *j, const char *fmt, ...) {
    if (j->quiet) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    progress_message(j->batch, "cartoongan: warning: %s", msg);
}

static int on_progress(void *user, float fraction) {
    media_ctx *m = user;
    progress_update(&m->bar, m->done + (m->runs_done + fraction) / m->nrun);
    return *m->j->interrupted;
}

/* The photo rule: taller than max_height is scaled down to it, keeping the aspect ratio. */
static void target_size(int max_height, int w, int h, int *tw, int *th) {
    *tw = w;
    *th = h;
    if (max_height > 0 && h > max_height) {
        *tw = (int)floor((double)w * max_height / h + 0.5);
        if (*tw < 1) *tw = 1;
        *th = max_height;
    }
}

static cg_status setup(media_ctx *m, int src_w, int src_h, int w, int h) {
    const media_job *j = m->j;
    if ((uint64_t)w * (uint64_t)h > CG_MAX_NETWORK_PIXELS)
        return cg_fail(CG_ERR_LIMIT,
                       "%s: %dx%d frames are too large for the network (at most %d "
                       "megapixels); drop --keep-original-size or lower --max-height",
                       j->path, w, h, CG_MAX_NETWORK_PIXELS / 1000000);
    m->src_w = src_w, m->src_h = src_h, m->w = w, m->h = h;
    m->cmp = j->comparison_out || j->comparison_mp4;
    for (int k = 0; k < j->nstyles; k++) {
        m->run[k] = j->style_out[k] || (j->style_mp4 && j->style_mp4[k]) || m->cmp;
        m->nrun += m->run[k];
    }
    size_t bytes = (size_t)w * h * 3;
    m->frame = malloc((size_t)src_w * src_h * 3);
    m->work = (w == src_w && h == src_h) ? m->frame : malloc(bytes);
    int ok = m->frame && m->work;
    for (int k = 0; k < j->nstyles; k++)
        if (m->run[k]) ok &= (m->styled[k] = malloc(bytes)) != NULL;
    if (ok && m->cmp) {
        cli_comparison_layout(j->view, 1 + j->nstyles, w, h, &m->rows, &m->cols);
        uint64_t gw = (uint64_t)m->cols * w, gh = (uint64_t)m->rows * h;
        if (gw > INT_MAX || gh > INT_MAX || gw * gh > SIZE_MAX / 3)
            return cg_fail(CG_ERR_LIMIT, "%s: the comparison frames would be too large", j->path);
        m->gw = (int)gw, m->gh = (int)gh;
        ok = (m->grid = malloc((size_t)(gw * gh * 3))) != NULL;
        if (ok) memset(m->grid, 255, (size_t)(gw * gh * 3)); /* empty grid cells stay white */
    }
    if (!ok) return cg_fail(CG_ERR_NOMEM, "%s: out of memory for %dx%d frames", j->path, w, h);
    return CG_OK;
}

/* Resizes the decoded frame, runs every style needed, and lays out the comparison. */
static cg_status stylize_frame(media_ctx *m) {
    const media_job *j = m->j;
    if (m->work != m->frame) cg_resize_rgb(m->work, m->w, m->h, m->frame, m->src_w, m->src_h);
    cg_stylize_opts opts = {on_progress, m};
    m->runs_done = 0;
    for (int k = 0; k < j->nstyles; k++) {
        if (!m->run[k]) continue;
        cg_status s = cg_stylize(j->models[k], m->styled[k], m->work, m->w, m->h, &opts);
        if (s == CG_ERR_CANCELLED || *j->interrupted) return CG_ERR_CANCELLED;
        if (s != CG_OK) return s;
        m->runs_done++;
    }
    if (m->cmp) {
        size_t row = (size_t)m->w * 3, grid_row = (size_t)m->gw * 3;
        for (int p = 0; p <= j->nstyles; p++) {
            const uint8_t *src = p == 0 ? m->work : m->styled[p - 1];
            uint8_t *dst =
                m->grid + (size_t)(p / m->cols) * m->h * grid_row + (size_t)(p % m->cols) * row;
            for (int y = 0; y < m->h; y++) memcpy(dst + y * grid_row, src + y * row, row);
        }
    }
    return CG_OK;
}

/* Ends every writer: renamed into place when all went well, dropped otherwise. */
static cg_status finish(media_ctx *m, cg_status s) {
    for (int k = 0; k < CLI_MAX_STYLES; k++) {
        if (m->gif[k])
            s = s == CG_OK ? cg_gif_writer_finish(m->gif[k]) : (cg_gif_writer_abort(m->gif[k]), s);
        if (m->mp4[k])
            s = s == CG_OK ? cg_video_writer_finish(m->mp4[k])
                           : (cg_video_writer_abort(m->mp4[k]), s);
        m->gif[k] = NULL;
        m->mp4[k] = NULL;
    }
    if (m->gif_cmp)
        s = s == CG_OK ? cg_gif_writer_finish(m->gif_cmp) : (cg_gif_writer_abort(m->gif_cmp), s);
    if (m->mp4_cmp)
        s = s == CG_OK ? cg_video_writer_finish(m->mp4_cmp)
                       : (cg_video_writer_abort(m->mp4_cmp), s);
    m->gif_cmp = NULL;
    m->mp4_cmp = NULL;
    return s;
}

static media_result end(media_ctx *m, cg_status s) {
    s = finish(m, s);
    progress_finish(&m->bar);
    if (m->work != m->frame) free(m->work);
    free(m->frame);
    for (int k = 0; k < CLI_MAX_STYLES; k++) free(m->styled[k]);
    free(m->grid);
    if (s == CG_ERR_CANCELLED || *m->j->interrupted) return MEDIA_CANCELLED;
    return s == CG_OK ? MEDIA_OK : MEDIA_FAILED;
}

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* ---- GIFs ---- */

media_result media_process_gif(const media_job *j) {
    media_ctx m;
    memset(&m, 0, sizeof m);
    m.j = j;
    progress_init(&m.bar, 0, "frames", "fps", 0);
    cg_video_quiet_log(); /* --convert-gif-to-mp4: x264 would print its statistics */
    cg_gif_reader *r = NULL;
    if (cg_gif_open(&r, j->path, j->max_pixels) != CG_OK) return MEDIA_FAILED;
    const cg_gif_info *in = cg_gif_get_info(r);
    const int freq = j->gif_frequency > 0 ? j->gif_frequency : 1;
    int nout = (int)(((int64_t)in->frame_count + freq - 1) / freq);
    if (j->max_frames > 0 && nout > j->max_frames) {
        warn(j,
             "%s: %d frames%s; only the first %d are cartoonized (--max-num-frames; 0 = no limit)",
             j->path, nout, freq > 1 ? " kept by --gif-frame-frequency" : "", j->max_frames);
        nout = j->max_frames;
    }
    int w, h;
    target_size(j->max_height, in->width, in->height, &w, &h);
    cg_status s = setup(&m, in->width, in->height, w, h);

    /* the MP4s' nominal rate: the kept frames' average, as browsers time them */
    int64_t total_cs = 0;
    for (int i = 0; i < in->frame_count && i < (int64_t)nout * freq; i++)
        total_cs += cg_gif_playback_delay(in->delays[i]);
    int64_t g = gcd64(100 * (int64_t)nout, total_cs);
    cg_video_writer_opts vo = {w,   h, 1, 100, (int)(100 * (int64_t)nout / g), (int)(total_cs / g),
                               NULL};
    for (int k = 0; s == CG_OK && k < j->nstyles; k++) {
        if (j->style_out[k])
            s = cg_gif_writer_open(&m.gif[k], j->style_out[k], w, h, in->loop_count, j->dither);
        if (s == CG_OK && j->style_mp4 && j->style_mp4[k])
            s = cg_video_writer_open(&m.mp4[k], j->style_mp4[k], &vo);
    }
    if (s == CG_OK && j->comparison_out)
        s = cg_gif_writer_open(&m.gif_cmp, j->comparison_out, m.gw, m.gh, in->loop_count,
                               j->dither);
    if (s == CG_OK && j->comparison_mp4) {
        cg_video_writer_opts co = vo;
        co.width = m.gw;
        co.height = m.gh;
        s = cg_video_writer_open(&m.mp4_cmp, j->comparison_mp4, &co);
    }

    progress_init(&m.bar, nout, "frames", "fps", !j->quiet && nout > 1);
    int64_t t = 0; /* the MP4s' clock, in 1/100 s */
    for (int i = 0; s == CG_OK && m.done < nout; i++) {
        /* every frame is decoded, kept or not: later frames are drawn over it */
        s = cg_gif_read_frame(r, m.frame, NULL);
        if (s != CG_OK || i % freq) continue;
        /* a kept frame stands for the next freq-1 too: it is shown for all their time */
        int last = i + freq < in->frame_count ? i + freq : in->frame_count;
        int play = 0;
        for (int q = i; q < last; q++) play += cg_gif_playback_delay(in->delays[q]);
        int delay = last - i == 1 ? in->delays[i] : play; /* a lone frame keeps its own value */
        s = stylize_frame(&m);
        for (int k = 0; s == CG_OK && k < j->nstyles; k++) {
            if (m.gif[k]) s = cg_gif_writer_add(m.gif[k], m.styled[k], delay);
            if (s == CG_OK && m.mp4[k]) s = cg_video_write(m.mp4[k], m.styled[k], t, play);
        }
        if (s == CG_OK && m.gif_cmp) s = cg_gif_writer_add(m.gif_cmp, m.grid, delay);
        if (s == CG_OK && m.mp4_cmp) s = cg_video_write(m.mp4_cmp, m.grid, t, play);
        t += play;
        m.done++;
        progress_update(&m.bar, m.done);
        if (*j->interrupted) s = CG_ERR_CANCELLED;
    }
    cg_gif_close(r);
    return end(&m, s);
}

/* ---- videos ---- */

media_result media_process_video(const media_job *j) {
    media_ctx m;
    memset(&m, 0, sizeof m);
    m.j = j;
    progress_init(&m.bar, 0, "frames", "fps", 0);
    cg_video_quiet_log();
    cg_video_reader *r = NULL;
    if (cg_video_open(&r, j->path, j->max_pixels) != CG_OK) return MEDIA_FAILED;
    const cg_video_info *in = cg_video_get_info(r);
    cg_video_set_max_frames(r, j->max_frames);
    int64_t total = in->frame_count;
    int warned = 0;
    if (j->max_frames > 0 && total > j->max_frames) {
        warn(
            j,
            "%s: %s%lld frames; only the first %d are cartoonized (--max-num-frames; 0 = no limit)",
            j->path, in->frame_count_exact ? "" : "about ", (long long)total, j->max_frames);
        warned = 1;
        total = j->max_frames;
    }
    if (in->has_audio && !in->audio_copyable)
        warn(j, "%s: its %s audio cannot be copied into an MP4; the cartoon is silent", j->path,
             in->audio_codec);
    int w, h;
    target_size(j->max_height, in->width, in->height, &w, &h);
    /* H.264 in yuv420p needs even sides: cut to even here, so the network's output is
     * exactly what is encoded */
    w = w >= 2 ? w & ~1 : 2;
    h = h >= 2 ? h & ~1 : 2;
    cg_status s = setup(&m, in->width, in->height, w, h);
    /* a file that does not say its rate gets 25 fps for the encoder's rate control only;
     * the timestamps are the input's either way */
    cg_video_writer_opts vo = {w,
                               h,
                               in->tb_num,
                               in->tb_den,
                               in->fps_num > 0 ? in->fps_num : 25,
                               in->fps_num > 0 ? in->fps_den : 1,
                               r};
    for (int k = 0; s == CG_OK && k < j->nstyles; k++)
        if (j->style_out[k]) s = cg_video_writer_open(&m.mp4[k], j->style_out[k], &vo);
    if (s == CG_OK && j->comparison_out) {
        cg_video_writer_opts co = vo;
        co.width = m.gw;
        co.height = m.gh;
        s = cg_video_writer_open(&m.mp4_cmp, j->comparison_out, &co);
    }

    int bar_total = total > INT_MAX ? INT_MAX : (int)total;
    progress_init(&m.bar, bar_total, "frames", "fps", !j->quiet && bar_total > 1);
    while (s == CG_OK) {
        int got = 0;
        int64_t pts = 0, duration = 0;
        s = cg_video_read(r, m.frame, &pts, &duration, &got);
        if (s != CG_OK || !got) break;
        s = stylize_frame(&m);
        for (int k = 0; s == CG_OK && k < j->nstyles; k++)
            if (m.mp4[k]) s = cg_video_write(m.mp4[k], m.styled[k], pts, duration);
        if (s == CG_OK && m.mp4_cmp) s = cg_video_write(m.mp4_cmp, m.grid, pts, duration);
        m.done++;
        progress_update(&m.bar, m.done);
        if (*j->interrupted) s = CG_ERR_CANCELLED;
    }
    if (s == CG_OK && m.done == 0)
        s = cg_fail(CG_ERR_FORMAT, "%s: the video has no frames", j->path);
    if (s == CG_OK && cg_video_was_cut(r) && !warned)
        warn(j, "%s: only the first %d frames are cartoonized (--max-num-frames; 0 = no limit)",
             j->path, j->max_frames);
    /* the writers are finished while the reader still exists: they unregister from it */
    media_result res = end(&m, s);
    cg_video_close(r);
    return res;
}
