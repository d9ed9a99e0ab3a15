/* media.c: the one pipeline every input of `cartoongan cartoonize` goes through (see
 * media.h): frames from a source, resized to --max-height with the same Lanczos filter,
 * stylized by cg_stylize per style, laid out by the comparison rules, handed to the sinks.
 * A still image is a source of one frame. Instance norm's statistics are each frame's own,
 * as the model defines them: nothing carries over from one frame to the next (so
 * frame-to-frame flicker is not smoothed). */
#include "cli/media.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "io/video.h"
#include "model/model.h"
#include "nn/pool.h"
#include "status.h"

const media_kind_ops *media_ops(media_kind kind) {
    switch (kind) {
    case MEDIA_IMAGE: return &media_image_ops;
    case MEDIA_GIF: return &media_gif_ops;
    case MEDIA_WEBP: return &media_webp_ops;
    case MEDIA_VIDEO: return &media_video_ops;
    default: return NULL;
    }
}

/* One input under way: its buffers, sized once for its frames, and its sinks. */
typedef struct {
    const media_job *j;
    int64_t total;    /* output frames expected (for the bar) */
    int src_w, src_h; /* decoded frames */
    int w, h;         /* frames through the network */
    int gw, gh;       /* the comparison frame */
    int rows, cols;
    int run[CLI_MAX_STYLES]; /* styles stylizing every frame */
    int nrun, cmp;
    uint8_t *frame, *work;  /* decoded; resized (the same buffer when not resized) */
    uint8_t *alpha, *alpha_work; /* the same for the opacity, when kept */
    uint8_t *skip;          /* frames dropped by --frame-frequency are decoded here */
    uint8_t *styled[CLI_MAX_STYLES];
    uint8_t *grid;
    frame_sink *out[CLI_MAX_STYLES], *mp4[CLI_MAX_STYLES], *out_cmp, *mp4_cmp;
    int64_t done;  /* output frames finished */
    int runs_done; /* styles finished on the frame under way */
} media_ctx;

void media_warn(const media_job *j, const char *fmt, ...) {
    if (j->quiet) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    progress_message(j->bar, "cartoongan: warning: %s", msg);
}

static void show_progress(media_ctx *m, double frames_done) {
    const media_job *j = m->j;
    if (j->own_bar)
        progress_update(j->bar, m->total > 1 ? frames_done : frames_done / (m->total ? m->total : 1));
    else
        progress_update(j->bar, j->base + (m->total > 0 ? frames_done / m->total : 0));
}

static int on_progress(void *user, float fraction) {
    media_ctx *m = user;
    show_progress(m, (double)m->done + (m->runs_done + fraction) / m->nrun);
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

static cg_status setup(media_ctx *m, int src_w, int src_h, int w, int h, int alpha, int freq) {
    const media_job *j = m->j;
    if ((uint64_t)w * (uint64_t)h > CG_MAX_NETWORK_PIXELS)
        return cg_fail(CG_ERR_LIMIT,
                       "%s: %dx%d is too large for the network (at most %d megapixels); drop "
                       "--keep-original-size or lower --max-height",
                       j->path, w, h, CG_MAX_NETWORK_PIXELS / 1000000);
    m->src_w = src_w, m->src_h = src_h, m->w = w, m->h = h;
    m->cmp = j->comparison_out || j->comparison_mp4;
    for (int k = 0; k < j->nstyles; k++) {
        m->run[k] = j->style_out[k] || (j->style_mp4 && j->style_mp4[k]) || m->cmp;
        m->nrun += m->run[k];
    }
    size_t src_px = (size_t)src_w * src_h, px = (size_t)w * h;
    int resized = w != src_w || h != src_h;
    m->frame = malloc(src_px * 3);
    m->work = resized ? malloc(px * 3) : m->frame;
    int ok = m->frame && m->work;
    if (ok && alpha) {
        /* the opacity is resized as a grey picture by the same filter */
        m->alpha = malloc(resized ? src_px * 3 : src_px);
        m->alpha_work = malloc(resized ? px * 3 : px);
        ok = m->alpha && m->alpha_work;
    }
    if (ok && freq > 1) ok = (m->skip = malloc(src_px * 3)) != NULL;
    for (int k = 0; k < j->nstyles; k++)
        if (ok && m->run[k]) ok = (m->styled[k] = malloc(px * 3)) != NULL;
    if (ok && m->cmp) {
        cli_comparison_layout(j->view, 1 + j->nstyles, w, h, &m->rows, &m->cols);
        uint64_t gw = (uint64_t)m->cols * w, gh = (uint64_t)m->rows * h;
        if (gw > INT_MAX || gh > INT_MAX || gw * gh > SIZE_MAX / 3)
            return cg_fail(CG_ERR_LIMIT, "%s: the comparison would be too large", j->path);
        m->gw = (int)gw, m->gh = (int)gh;
        ok = (m->grid = malloc((size_t)(gw * gh * 3))) != NULL;
        if (ok) memset(m->grid, 255, (size_t)(gw * gh * 3)); /* empty grid cells stay white */
    }
    if (!ok) return cg_fail(CG_ERR_NOMEM, "%s: out of memory for %dx%d frames", j->path, w, h);
    return CG_OK;
}

/* The decoded opacity, resized like the picture (alpha holds width*height*3 bytes when
 * resizing: the opacity is spread to three channels and read back from the first). */
static void resize_alpha(media_ctx *m) {
    if (m->w == m->src_w && m->h == m->src_h) {
        memcpy(m->alpha_work, m->alpha, (size_t)m->w * m->h);
        return;
    }
    size_t n = (size_t)m->src_w * m->src_h, pn = (size_t)m->w * m->h;
    for (size_t i = n; i-- > 0;) m->alpha[3 * i] = m->alpha[3 * i + 1] = m->alpha[3 * i + 2] = m->alpha[i];
    cg_resize_rgb(m->alpha_work, m->w, m->h, m->alpha, m->src_w, m->src_h);
    for (size_t i = 0; i < pn; i++) m->alpha_work[i] = m->alpha_work[3 * i];
}

/* Resizes the decoded frame, runs every style needed, and lays out the comparison. */
static cg_status stylize_frame(media_ctx *m) {
    const media_job *j = m->j;
    if (m->work != m->frame) cg_resize_rgb(m->work, m->w, m->h, m->frame, m->src_w, m->src_h);
    if (m->alpha) resize_alpha(m);
    cg_stylize_opts opts = {on_progress, m};
    m->runs_done = 0;
    for (int k = 0; k < j->nstyles; k++) {
        if (!m->run[k]) continue;
        /* the styles run one after the other: they share one working memory */
        model_take_arena(j->models[k], j->models, j->nstyles);
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

/* Ends one sink: renamed into place when all went well, dropped otherwise. */
static cg_status end_sink(frame_sink **k, cg_status s) {
    if (*k) s = s == CG_OK ? (*k)->finish(*k) : ((*k)->abort(*k), s);
    *k = NULL;
    return s;
}

static media_result end(media_ctx *m, frame_source *src, cg_status s) {
    for (int k = 0; k < CLI_MAX_STYLES; k++) {
        s = end_sink(&m->out[k], s);
        s = end_sink(&m->mp4[k], s);
    }
    s = end_sink(&m->out_cmp, s);
    s = end_sink(&m->mp4_cmp, s);
    /* the sinks are finished while the source still exists: an MP4 copying a video's audio
     * unregisters from its reader */
    if (src) src->close(src);
    if (m->work != m->frame) free(m->work);
    free(m->frame);
    free(m->alpha);
    free(m->alpha_work);
    free(m->skip);
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

/* Opens every sink the job asks for. An animated image's MP4s get the kept frames'
 * average rate as their nominal one (the timestamps are exact either way). */
static cg_status open_sinks(media_ctx *m, const media_kind_ops *ops, frame_source *src,
                            int64_t nout, int freq) {
    const media_job *j = m->j;
    frame_info so = src->info, co = src->info;
    so.width = m->w, so.height = m->h;
    co.width = m->gw, co.height = m->gh;
    frame_info vo = so, vco = co;
    if (ops->animated && src->shown_total && nout > 0) {
        int64_t total = src->shown_total(src, nout * freq);
        int64_t num = nout * so.tb_den, den = total * so.tb_num, g = gcd64(num, den);
        if (g > 0 && num / g <= INT_MAX && den / g <= INT_MAX)
            vo.fps_num = (int)(num / g), vo.fps_den = (int)(den / g);
        vco.fps_num = vo.fps_num, vco.fps_den = vo.fps_den;
    }
    cg_status s = CG_OK;
    for (int k = 0; s == CG_OK && k < j->nstyles; k++) {
        if (j->style_out[k])
            s = ops->open_sink(&m->out[k], j->style_out[k], &so, src, m->alpha != NULL, &j->sink);
        if (s == CG_OK && j->style_mp4 && j->style_mp4[k])
            s = media_video_ops.open_sink(&m->mp4[k], j->style_mp4[k], &vo, src, 0, &j->sink);
    }
    /* the comparison is laid out on white: it shows the original as a page would */
    if (s == CG_OK && j->comparison_out)
        s = ops->open_sink(&m->out_cmp, j->comparison_out, &co, src, 0, &j->sink);
    if (s == CG_OK && j->comparison_mp4)
        s = media_video_ops.open_sink(&m->mp4_cmp, j->comparison_mp4, &vco, src, 0, &j->sink);
    return s;
}

/* A still image's outputs are encoded whole, each by its own sink's add: 70 ms for a
 * 512x512 PNG at zlib's default level, 150 ms for its comparison, one after the other as
 * long as the network took. So they are encoded side by side, one sink per thread; the
 * first failing sink in the usual order gives the status and message. */
typedef struct {
    frame_sink *k;
    const uint8_t *rgb, *alpha;
    cg_status s;
    char msg[1024];
} sink_add;

typedef struct {
    sink_add *a;
    const frame_time *t;
} adds_job;

static void add_task(void *ctx, int i, int n) {
    (void)n;
    adds_job *j = ctx;
    sink_add *a = &j->a[i];
    a->s = a->k->add(a->k, a->rgb, a->alpha, j->t);
    if (a->s != CG_OK) snprintf(a->msg, sizeof a->msg, "%s", cg_last_error());
}

static cg_status write_still(media_ctx *m, const frame_time *t) {
    const media_job *j = m->j;
    sink_add a[CLI_MAX_STYLES + 1];
    int n = 0;
    for (int k = 0; k < j->nstyles; k++)
        if (m->out[k]) a[n++] = (sink_add){m->out[k], m->styled[k], m->alpha_work, CG_OK, ""};
    if (m->out_cmp) a[n++] = (sink_add){m->out_cmp, m->grid, NULL, CG_OK, ""};
    int threads = j->threads > 0 ? j->threads : cg_cpu_count();
    cg_pool *pool = n > 1 && threads > 1 ? cg_pool_create(threads < n ? threads : n) : NULL;
    adds_job job = {a, t};
    cg_pool_run(pool, add_task, &job, n); /* a NULL pool (none to spare) runs them here */
    cg_pool_free(pool);
    for (int i = 0; i < n; i++)
        if (a[i].s != CG_OK) return cg_fail(a[i].s, "%s", a[i].msg);
    return CG_OK;
}

static cg_status write_frame(media_ctx *m, const frame_time *t) {
    const media_job *j = m->j;
    if (j->kind == MEDIA_IMAGE) return write_still(m, t);
    cg_status s = CG_OK;
    for (int k = 0; s == CG_OK && k < j->nstyles; k++) {
        if (m->out[k]) s = m->out[k]->add(m->out[k], m->styled[k], m->alpha_work, t);
        if (s == CG_OK && m->mp4[k]) s = m->mp4[k]->add(m->mp4[k], m->styled[k], NULL, t);
    }
    if (s == CG_OK && m->out_cmp) s = m->out_cmp->add(m->out_cmp, m->grid, NULL, t);
    if (s == CG_OK && m->mp4_cmp) s = m->mp4_cmp->add(m->mp4_cmp, m->grid, NULL, t);
    return s;
}

media_result media_process(const media_job *j) {
    const media_kind_ops *ops = media_ops(j->kind);
    media_ctx m;
    memset(&m, 0, sizeof m);
    m.j = j;
    const int freq = ops->animated && j->frame_frequency > 1 ? j->frame_frequency : 1;
    frame_source *src = NULL;
    /* a video's reader stops at the limit itself (and ends the copied audio there); an
     * animation is cut here, after --frame-frequency */
    if (ops->open_source(&src, j->path, j->max_pixels, ops->animated ? 0 : j->max_frames) != CG_OK)
        return MEDIA_FAILED;
    const frame_info *in = &src->info;
    if (src->warning[0]) media_warn(j, "%s: %s", j->name, src->warning);
    if (in->hdr)
        media_warn(j, "%s: %s HDR video: its colours are not tone-mapped to SDR, so the result "
                      "looks flat or dim", j->name, in->transfer);

    int64_t nout = (in->frame_count + freq - 1) / freq;
    int warned = 0;
    if (j->max_frames > 0 && nout > j->max_frames) {
        char first[48] = "only the first frame is";
        if (j->max_frames > 1) snprintf(first, sizeof first, "only the first %d are", j->max_frames);
        media_warn(j, "%s: %s%lld frames%s; %s cartoonized (--max-num-frames; 0 = no limit)",
                   j->name, in->frame_count_exact ? "" : "about ", (long long)nout,
                   freq > 1 ? " kept by --frame-frequency" : "", first);
        nout = j->max_frames;
        warned = 1;
    }
    m.total = nout;
    int w, h;
    target_size(j->max_height, in->width, in->height, &w, &h);
    if (j->kind == MEDIA_VIDEO) {
        /* H.264 in yuv420p needs even sides: cut to even here, so the network's output is
         * exactly what is encoded */
        w = w >= 2 ? w & ~1 : 2;
        h = h >= 2 ? h & ~1 : 2;
    }
    int alpha = in->has_alpha && j->kind == MEDIA_WEBP;
    cg_status s = setup(&m, in->width, in->height, w, h, alpha, freq);
    if (s == CG_OK) s = open_sinks(&m, ops, src, nout, freq);

    if (j->own_bar) {
        int bar_total = nout > INT_MAX ? INT_MAX : (int)nout;
        if (bar_total > 1)
            progress_init(j->bar, bar_total, "frames", "fps", !j->quiet);
        else { /* a still image: a percentage, drawn only when it takes a while */
            progress_init(j->bar, 1, "image", "img/s", !j->quiet);
            progress_set_delay(j->bar, 1.0);
        }
    }
    int64_t clock = 0; /* animated images: when the kept frame starts, as shown */
    while (s == CG_OK && (nout <= 0 || m.done < nout || j->kind == MEDIA_VIDEO)) {
        frame_time t;
        int got = 0;
        s = src->read(src, m.frame, m.alpha, &t, &got);
        if (s != CG_OK || !got) break;
        if (ops->animated) {
            /* a kept frame stands for the next freq-1 too: it is shown for all their time
             * (those are decoded all the same: later frames are drawn over them) */
            int covered = 1;
            int64_t shown = t.shown;
            for (; s == CG_OK && covered < freq; covered++) {
                frame_time u;
                int more = 0;
                s = src->read(src, m.skip, NULL, &u, &more);
                if (!more) break;
                shown += u.shown;
            }
            if (s != CG_OK) break;
            if (covered > 1) t.duration = shown; /* a lone frame keeps its own value */
            t.shown = shown;
            t.pts = clock;
            clock += shown;
        }
        s = stylize_frame(&m);
        if (s == CG_OK) s = write_frame(&m, &t);
        m.done++;
        show_progress(&m, (double)m.done);
        if (*j->interrupted) s = CG_ERR_CANCELLED;
    }
    if (s == CG_OK && m.done == 0)
        s = cg_fail(CG_ERR_FORMAT, "%s: the file has no frames", j->path);
    if (s == CG_OK && !warned && src->was_cut && src->was_cut(src))
        media_warn(j, "%s: only the first %d frames are cartoonized (--max-num-frames; 0 = no limit)",
                   j->name, j->max_frames);
    return end(&m, src, s);
}
