/* test_media.c: tests for src/io/gif.c and src/io/video.c: GIF compositing (disposal,
 * transparency, offsets, clipping, interlacing) against an independent compositor built on
 * giflib's DGifSlurp, GIF and MP4 round trips (frame count, delays, loop count, frame
 * rate, duration, audio, read back with libavformat), and every kind of bad input. The
 * fixtures in tests/data/media/ come from tools/make_test_media.c, whose comments give the
 * values checked here. Run from the repository root.
 *
 * It is also the probe that tests/test_media_cli.sh reads outputs with:
 *   test_media probe FILE        one line: what a GIF, animated WebP or video holds
 *   test_media frames IN DIR     writes a GIF's or WebP's composited frames as
 *                                DIR/frame_NNN.png
 *   test_media psnr OUT DIR      PSNR of each frame of a GIF or WebP against
 *                                DIR/frame_NNN.png; exits 1 if one is below 30 dB
 *   test_media towebp IN.gif OUT.webp
 *                                the GIF's frames as an animated WebP (durations, loop
 *                                count, alpha): tests/test_inputs_cli.sh's inputs */
#include <stdio.h>

#include <dirent.h>
#include <gif_lib.h>
#include <libavformat/avformat.h>
#include <math.h>
#include <stdint.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/gif.h"
#include "io/webp_anim.h"
#include "io/image.h"
#include "io/video.h"
#include "status.h"
#include "test.h"

#define MEDIA "tests/data/media/"
#define MIN_PSNR 30.0

static char tmpdir[64];

/* ---- helpers ---- */

static char *tmp_path(const char *name) {
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static double psnr(const uint8_t *a, const uint8_t *b, size_t n) {
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        se += d * d;
    }
    if (se == 0) return 99.0;
    return 10.0 * log10(255.0 * 255.0 / (se / n));
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static const uint8_t *px4(const uint8_t *rgba, int w, int x, int y) {
    return rgba + ((size_t)y * w + x) * 4;
}

static int is_rgba(const uint8_t *p, int r, int g, int b, int a) {
    return a == 0 ? p[3] == 0 : (p[0] == r && p[1] == g && p[2] == b && p[3] == a);
}

#define CHECK_RGBA(buf, w, x, y, r, g, b, a)                                                       \
    do {                                                                                           \
        const uint8_t *p_ = px4(buf, w, x, y);                                                     \
        CHECK(is_rgba(p_, r, g, b, a), "pixel (%d,%d) is (%d,%d,%d,%d), want (%d,%d,%d,%d)", x, y, \
              p_[0], p_[1], p_[2], p_[3], r, g, b, a);                                             \
    } while (0)

/* Every frame of a GIF composited by the reader: n frames of w*h RGBA (and RGB). */
typedef struct {
    int w, h, n;
    uint8_t *rgba, *rgb;
} frames;

static int is_webp(const char *path) {
    size_t n = strlen(path);
    return n > 5 && !strcasecmp(path + n - 5, ".webp");
}

/* An animated WebP's frames, composited (webp_anim.c), for the probe's frames and psnr. */
static int read_all_webp_frames(const char *path, frames *f) {
    cg_webp_anim_reader *r;
    if (cg_webp_anim_open(&r, path, 0) != CG_OK) return -1;
    const cg_webp_anim_info *in = cg_webp_anim_get_info(r);
    f->w = in->width, f->h = in->height, f->n = in->frame_count;
    size_t px = (size_t)f->w * f->h;
    f->rgba = malloc(px * 4 * f->n);
    f->rgb = malloc(px * 3 * f->n);
    for (int i = 0; i < f->n; i++)
        if (cg_webp_anim_read_frame(r, f->rgb + px * 3 * i, f->rgba + px * 4 * i) != CG_OK) {
            cg_webp_anim_close(r);
            return -1;
        }
    cg_webp_anim_close(r);
    return 0;
}

static int read_all_frames(const char *path, frames *f) {
    memset(f, 0, sizeof *f);
    if (is_webp(path)) return read_all_webp_frames(path, f);
    cg_gif_reader *r;
    if (cg_gif_open(&r, path, 0) != CG_OK) return -1;
    const cg_gif_info *in = cg_gif_get_info(r);
    f->w = in->width, f->h = in->height, f->n = in->frame_count;
    size_t px = (size_t)f->w * f->h;
    f->rgba = malloc(px * 4 * f->n);
    f->rgb = malloc(px * 3 * f->n);
    for (int i = 0; i < f->n; i++)
        if (cg_gif_read_frame(r, f->rgb + px * 3 * i, f->rgba + px * 4 * i) != CG_OK) {
            cg_gif_close(r);
            return -1;
        }
    cg_gif_close(r);
    return 0;
}

static void free_frames(frames *f) {
    free(f->rgba);
    free(f->rgb);
}

/* The reference compositor: giflib's DGifSlurp holds every frame (deinterlaced); the rules
 * are the browsers', written out the plain way (a full copy of the screen for "previous"). */
static uint8_t *slurp_composite(const char *path, int *w, int *h, int *n) {
    int err;
    GifFileType *g = DGifOpenFileName(path, &err);
    if (!g || DGifSlurp(g) != GIF_OK) return NULL;
    int W = g->SWidth, H = g->SHeight, N = g->ImageCount;
    size_t px = (size_t)W * H;
    uint8_t *out = malloc(px * 4 * N), *canvas = calloc(px, 4), *before = malloc(px * 4);
    for (int i = 0; i < N; i++) {
        GraphicsControlBlock gcb = {DISPOSAL_UNSPECIFIED, false, 0, NO_TRANSPARENT_COLOR};
        DGifSavedExtensionToGCB(g, i, &gcb);
        const SavedImage *im = &g->SavedImages[i];
        const GifImageDesc *d = &im->ImageDesc;
        const ColorMapObject *map = d->ColorMap ? d->ColorMap : g->SColorMap;
        memcpy(before, canvas, px * 4);
        for (int y = 0; y < d->Height; y++)
            for (int x = 0; x < d->Width; x++) {
                int cx = d->Left + x, cy = d->Top + y;
                int idx = im->RasterBits[(size_t)y * d->Width + x];
                if (cx >= W || cy >= H || idx == gcb.TransparentColor || idx >= map->ColorCount)
                    continue;
                uint8_t *p = canvas + ((size_t)cy * W + cx) * 4;
                p[0] = map->Colors[idx].Red, p[1] = map->Colors[idx].Green,
                p[2] = map->Colors[idx].Blue, p[3] = 255;
            }
        memcpy(out + px * 4 * i, canvas, px * 4);
        if (gcb.DisposalMode == DISPOSE_BACKGROUND) {
            for (int y = d->Top; y < d->Top + d->Height && y < H; y++)
                for (int x = d->Left; x < d->Left + d->Width && x < W; x++)
                    memset(canvas + ((size_t)y * W + x) * 4, 0, 4);
        } else if (gcb.DisposalMode == DISPOSE_PREVIOUS) {
            memcpy(canvas, before, px * 4);
        }
    }
    *w = W, *h = H, *n = N;
    free(canvas);
    free(before);
    DGifCloseFile(g, &err);
    return out;
}

/* What libavformat reads back from a video file. */
typedef struct {
    int w, h, frames;
    AVRational fps;
    double start, end; /* of the video: first pts, last pts + duration, in seconds */
    double duration;   /* the video track's, as the container says (else end - start) */
    char vcodec[32], acodec[32];
    double audio_end;
    int has_audio;
} probe_info;

static int probe_video(const char *path, probe_info *p) {
    memset(p, 0, sizeof *p);
    AVFormatContext *f = NULL;
    if (avformat_open_input(&f, path, NULL, NULL) < 0) return -1;
    if (avformat_find_stream_info(f, NULL) < 0) {
        avformat_close_input(&f);
        return -1;
    }
    int v = av_find_best_stream(f, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    int a = av_find_best_stream(f, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (v < 0) {
        avformat_close_input(&f);
        return -1;
    }
    AVStream *vs = f->streams[v];
    p->w = vs->codecpar->width;
    p->h = vs->codecpar->height;
    p->fps = vs->avg_frame_rate;
    snprintf(p->vcodec, sizeof p->vcodec, "%s", avcodec_get_name(vs->codecpar->codec_id));
    if (a >= 0) {
        p->has_audio = 1;
        snprintf(p->acodec, sizeof p->acodec, "%s",
                 avcodec_get_name(f->streams[a]->codecpar->codec_id));
    }
    AVPacket *pkt = av_packet_alloc();
    int64_t vmin = INT64_MAX, vmax = INT64_MIN, amax = INT64_MIN;
    while (av_read_frame(f, pkt) >= 0) {
        if (pkt->stream_index == v) {
            p->frames++;
            if (pkt->pts < vmin) vmin = pkt->pts;
            if (pkt->pts + pkt->duration > vmax) vmax = pkt->pts + pkt->duration;
        } else if (pkt->stream_index == a && pkt->pts + pkt->duration > amax) {
            amax = pkt->pts + pkt->duration;
        }
        av_packet_unref(pkt);
    }
    p->start = vmin * av_q2d(vs->time_base);
    p->end = vmax * av_q2d(vs->time_base);
    p->duration =
        vs->duration != AV_NOPTS_VALUE ? vs->duration * av_q2d(vs->time_base) : p->end - p->start;
    if (a >= 0) p->audio_end = amax * av_q2d(f->streams[a]->time_base);
    av_packet_free(&pkt);
    avformat_close_input(&f);
    return 0;
}

/* ---- GIF reading ---- */

static void test_gif_info(void) {
    cg_gif_reader *r;
    CHECK(cg_gif_open(&r, MEDIA "anim.gif", 0) == CG_OK, "%s", cg_last_error());
    if (!r) return;
    const cg_gif_info *in = cg_gif_get_info(r);
    static const int delays[8] = {10, 20, 5, 7, 0, 30, 15, 10};
    CHECK(in->width == 64 && in->height == 48, "screen %dx%d", in->width, in->height);
    CHECK(in->frame_count == 8, "%d frames", in->frame_count);
    CHECK(in->loop_count == 0, "loop %d", in->loop_count);
    for (int i = 0; i < 8 && i < in->frame_count; i++)
        CHECK(in->delays[i] == delays[i], "frame %d delay %d, want %d", i, in->delays[i],
              delays[i]);
    cg_gif_close(r);

    CHECK(cg_gif_open(&r, MEDIA "still.gif", 0) == CG_OK, "%s", cg_last_error());
    if (!r) return;
    in = cg_gif_get_info(r);
    CHECK(in->frame_count == 1 && in->loop_count == -1 && in->delays[0] == 0,
          "still: %d frames, loop %d", in->frame_count, in->loop_count);
    CHECK(in->width == 24 && in->height == 18, "still: %dx%d", in->width, in->height);
    cg_gif_close(r);

    CHECK(cg_gif_open(&r, MEDIA "many.gif", 0) == CG_OK, "%s", cg_last_error());
    if (!r) return;
    CHECK(cg_gif_get_info(r)->frame_count == 2000, "many: %d frames",
          cg_gif_get_info(r)->frame_count);
    uint8_t rgb[12];
    CHECK(cg_gif_read_frame(r, rgb, NULL) == CG_OK, "%s", cg_last_error());
    CHECK(rgb[0] == 255 && rgb[1] == 0 && rgb[2] == 0, "many: frame 0 is not red");
    cg_gif_close(r); /* after one frame of 2000: nothing else is read */

    CHECK(cg_gif_playback_delay(0) == 10 && cg_gif_playback_delay(1) == 10 &&
              cg_gif_playback_delay(2) == 2 && cg_gif_playback_delay(700) == 700,
          "playback delays");
}

/* dispose_*.gif: red screen; blue 2x2 at (1,1) with the disposal under test; green 2x2 at (5,3). */
static void check_disposal(const char *file, int mode) {
    frames f;
    CHECK(read_all_frames(file, &f) == 0, "%s", cg_last_error());
    if (!f.rgba) return;
    CHECK(f.w == 8 && f.h == 6 && f.n == 3, "%s: %dx%d, %d frames", file, f.w, f.h, f.n);
    const uint8_t *f1 = f.rgba + 8 * 6 * 4, *f2 = f.rgba + 2 * 8 * 6 * 4;
    CHECK_RGBA(f.rgba, 8, 1, 1, 255, 0, 0, 255);
    CHECK_RGBA(f1, 8, 1, 1, 0, 0, 255, 255);
    CHECK_RGBA(f1, 8, 2, 2, 0, 0, 255, 255);
    CHECK_RGBA(f1, 8, 3, 3, 255, 0, 0, 255);
    CHECK_RGBA(f2, 8, 5, 3, 0, 255, 0, 255);
    CHECK_RGBA(f2, 8, 6, 4, 0, 255, 0, 255);
    CHECK_RGBA(f2, 8, 0, 0, 255, 0, 0, 255);
    for (int y = 1; y <= 2; y++)
        for (int x = 1; x <= 2; x++) {
            if (mode == DISPOSE_DO_NOT) CHECK_RGBA(f2, 8, x, y, 0, 0, 255, 255);
            if (mode == DISPOSE_BACKGROUND) CHECK_RGBA(f2, 8, x, y, 0, 0, 0, 0); /* not blue */
            if (mode == DISPOSE_PREVIOUS) CHECK_RGBA(f2, 8, x, y, 255, 0, 0, 255);
        }
    if (mode == DISPOSE_BACKGROUND) { /* transparent shows as white in RGB */
        const uint8_t *rgb = f.rgb + 2 * 8 * 6 * 3 + (1 * 8 + 1) * 3;
        CHECK(rgb[0] == 255 && rgb[1] == 255 && rgb[2] == 255, "cleared pixel is not white in RGB");
    }
    free_frames(&f);
}

static void test_gif_dispose_none(void) {
    check_disposal(MEDIA "dispose_none.gif", DISPOSE_DO_NOT);
}
static void test_gif_dispose_background(void) {
    check_disposal(MEDIA "dispose_background.gif", DISPOSE_BACKGROUND);
}
static void test_gif_dispose_previous(void) {
    check_disposal(MEDIA "dispose_previous.gif", DISPOSE_PREVIOUS);
}

static void test_gif_transparency(void) {
    frames f;
    CHECK(read_all_frames(MEDIA "transparent.gif", &f) == 0, "%s", cg_last_error());
    if (!f.rgba) return;
    const uint8_t *f1 = f.rgba + 8 * 6 * 4;
    CHECK_RGBA(f.rgba, 8, 0, 0, 0, 0, 0, 0);
    CHECK_RGBA(f.rgba, 8, 4, 0, 255, 0, 0, 255);
    CHECK_RGBA(f1, 8, 0, 0, 0, 0, 0, 0);
    CHECK_RGBA(f1, 8, 1, 4, 0, 0, 255, 255);
    CHECK_RGBA(f1, 8, 6, 2, 0, 255, 0, 255);
    CHECK_RGBA(f1, 8, 7, 5, 255, 0, 0, 255); /* the earlier frame shows through */
    CHECK(f.rgb[0] == 255 && f.rgb[1] == 255 && f.rgb[2] == 255, "transparent is not white");
    free_frames(&f);
}

static void test_gif_offscreen(void) {
    frames f;
    CHECK(read_all_frames(MEDIA "offscreen.gif", &f) == 0, "%s", cg_last_error());
    if (!f.rgba) return;
    CHECK(f.w == 8 && f.h == 6 && f.n == 3, "%dx%d, %d frames", f.w, f.h, f.n);
    const uint8_t *f1 = f.rgba + 8 * 6 * 4, *f2 = f.rgba + 2 * 8 * 6 * 4;
    CHECK_RGBA(f1, 8, 6, 4, 0, 0, 255, 255);
    CHECK_RGBA(f1, 8, 7, 5, 0, 0, 255, 255);
    CHECK_RGBA(f1, 8, 5, 5, 255, 0, 0, 255);
    CHECK(!memcmp(f1, f2, 8 * 6 * 4), "a frame wholly outside the screen changed it");
    free_frames(&f);
}

static void test_gif_interlaced(void) {
    frames f;
    CHECK(read_all_frames(MEDIA "interlaced.gif", &f) == 0, "%s", cg_last_error());
    if (!f.rgba) return;
    static const uint8_t colors[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};
    for (int y = 0; y < 10; y++) {
        const uint8_t *c = colors[y % 4];
        CHECK_RGBA(f.rgba, 3, 1, y, c[0], c[1], c[2], 255);
    }
    free_frames(&f);
}

/* Every fixture, frame by frame, against the DGifSlurp compositor. */
static void test_gif_against_reference(void) {
    static const char *files[] = {
        "anim.gif",        "dispose_none.gif", "dispose_background.gif", "dispose_previous.gif",
        "transparent.gif", "offscreen.gif",    "interlaced.gif",         "still.gif"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, MEDIA "%s", files[i]);
        int w, h, n;
        uint8_t *ref = slurp_composite(path, &w, &h, &n);
        frames f;
        CHECK(ref && read_all_frames(path, &f) == 0, "%s: %s", files[i], cg_last_error());
        if (!ref || !f.rgba) {
            free(ref);
            continue;
        }
        CHECK(f.w == w && f.h == h && f.n == n, "%s: %dx%d x%d vs %dx%d x%d", files[i], f.w, f.h,
              f.n, w, h, n);
        size_t px = (size_t)w * h;
        for (int k = 0; k < n && k < f.n; k++)
            for (size_t p = 0; p < px; p++) {
                const uint8_t *a = f.rgba + (px * k + p) * 4, *b = ref + (px * k + p) * 4;
                if (a[3] != b[3] || (a[3] && memcmp(a, b, 3))) {
                    CHECK(0, "%s frame %d pixel (%d,%d) differs from the reference", files[i], k,
                          (int)(p % w), (int)(p / w));
                    break;
                }
            }
        free(ref);
        free_frames(&f);
    }
}

static void test_gif_missing_trailer(void) {
    /* browsers play a GIF whose last byte (the trailer) is missing; so do we */
    FILE *in = fopen(MEDIA "anim.gif", "rb");
    uint8_t buf[65536];
    size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
    if (in) fclose(in);
    CHECK(n > 100 && buf[n - 1] == 0x3B, "anim.gif does not end in a trailer");
    FILE *out = fopen(tmp_path("notrailer.gif"), "wb");
    fwrite(buf, 1, n - 1, out);
    fclose(out);
    cg_gif_reader *r;
    CHECK(cg_gif_open(&r, tmp_path("notrailer.gif"), 0) == CG_OK, "%s", cg_last_error());
    if (!r) return;
    CHECK(cg_gif_get_info(r)->frame_count == 8, "%d frames", cg_gif_get_info(r)->frame_count);
    int ok = 1;
    for (int i = 0; i < 8; i++) ok &= cg_gif_read_frame(r, NULL, NULL) == CG_OK;
    CHECK(ok, "%s", cg_last_error());
    CHECK(cg_gif_read_frame(r, NULL, NULL) == CG_ERR_ARG, "reading past the last frame");
    cg_gif_close(r);
}

static void expect_gif_error(const char *path, cg_status want, const char *text) {
    cg_gif_reader *r = NULL;
    cg_status s = cg_gif_open(&r, path, 0);
    CHECK(s == want, "%s: status %d (%s), want %d", path, s, cg_last_error(), want);
    CHECK(r == NULL, "%s: a reader after a failure", path);
    CHECK(strstr(cg_last_error(), path) == cg_last_error(),
          "%s: message '%s' does not start with the path", path, cg_last_error());
    CHECK(strstr(cg_last_error(), text) != NULL, "%s: message '%s' lacks '%s'", path,
          cg_last_error(), text);
    cg_gif_close(r);
}

static void test_gif_bad(void) {
    expect_gif_error(MEDIA "truncated.gif", CG_ERR_FORMAT, "truncated GIF");
    expect_gif_error(MEDIA "empty.gif", CG_ERR_FORMAT, "no frames");
    expect_gif_error(MEDIA "notgif.gif", CG_ERR_FORMAT, "not a GIF");
    expect_gif_error(MEDIA "huge.gif", CG_ERR_LIMIT, "60000x60000");
    expect_gif_error(MEDIA "missing.gif", CG_ERR_IO, "no such file");
    expect_gif_error(MEDIA "clip.mp4", CG_ERR_FORMAT, "not a GIF");
    FILE *f = fopen(tmp_path("zero.gif"), "wb");
    fclose(f);
    expect_gif_error(tmp_path("zero.gif"), CG_ERR_FORMAT, "empty file");
    /* the limit is the caller's: a 64x48 screen is refused under 3000 pixels */
    cg_gif_reader *r = NULL;
    CHECK(cg_gif_open(&r, MEDIA "anim.gif", 3000) == CG_ERR_LIMIT, "limit not applied");
    cg_gif_close(r);
}

/* ---- GIF writing ---- */

static void test_gif_roundtrip(void) {
    for (int dither = 0; dither <= 1; dither++) {
        frames f;
        CHECK(read_all_frames(MEDIA "anim.gif", &f) == 0, "%s", cg_last_error());
        if (!f.rgb) return;
        const char *out = tmp_path(dither ? "rt_dither.gif" : "rt.gif");
        cg_gif_writer *w;
        static const int delays[8] = {10, 20, 5, 7, 0, 30, 15, 10};
        CHECK(cg_gif_writer_open(&w, out, f.w, f.h, 0, dither) == CG_OK, "%s", cg_last_error());
        if (!w) return;
        size_t px = (size_t)f.w * f.h;
        for (int i = 0; i < f.n; i++)
            CHECK(cg_gif_writer_add(w, f.rgb + px * 3 * i, delays[i]) == CG_OK, "%s",
                  cg_last_error());
        CHECK(cg_gif_writer_finish(w) == CG_OK, "%s", cg_last_error());
        CHECK(count_files(tmpdir) >= 1, "no file written");

        cg_gif_reader *r;
        CHECK(cg_gif_open(&r, out, 0) == CG_OK, "%s", cg_last_error());
        if (!r) return;
        const cg_gif_info *in = cg_gif_get_info(r);
        CHECK(in->frame_count == 8 && in->loop_count == 0 && in->width == 64 && in->height == 48,
              "%d frames, loop %d, %dx%d", in->frame_count, in->loop_count, in->width, in->height);
        uint8_t *rgb = malloc(px * 3);
        double worst = 99;
        for (int i = 0; i < 8 && i < in->frame_count; i++) {
            CHECK(in->delays[i] == delays[i], "frame %d: delay %d, want %d", i, in->delays[i],
                  delays[i]);
            CHECK(cg_gif_read_frame(r, rgb, NULL) == CG_OK, "%s", cg_last_error());
            double q = psnr(rgb, f.rgb + px * 3 * i, px * 3);
            if (q < worst) worst = q;
        }
        /* 256 colours per frame: the photo comes back well above the bar */
        CHECK(worst >= 35.0, "dither %d: worst frame %.1f dB", dither, worst);
        printf("  gif round trip, dither %d: worst frame %.1f dB\n", dither, worst);
        free(rgb);
        cg_gif_close(r);
        free_frames(&f);
    }
    /* no loop block in, none out */
    cg_gif_writer *w;
    uint8_t rgb[6 * 4 * 3];
    memset(rgb, 90, sizeof rgb);
    CHECK(cg_gif_writer_open(&w, tmp_path("once.gif"), 6, 4, -1, 0) == CG_OK, "%s",
          cg_last_error());
    CHECK(cg_gif_writer_add(w, rgb, 70000) == CG_OK, "%s", cg_last_error());
    CHECK(cg_gif_writer_finish(w) == CG_OK, "%s", cg_last_error());
    cg_gif_reader *r;
    CHECK(cg_gif_open(&r, tmp_path("once.gif"), 0) == CG_OK, "%s", cg_last_error());
    if (r) {
        CHECK(cg_gif_get_info(r)->loop_count == -1, "loop %d", cg_gif_get_info(r)->loop_count);
        CHECK(cg_gif_get_info(r)->delays[0] == CG_GIF_MAX_DELAY, "delay not clamped");
        uint8_t back[6 * 4 * 3];
        CHECK(cg_gif_read_frame(r, back, NULL) == CG_OK && !memcmp(back, rgb, sizeof rgb),
              "a flat frame does not come back exactly");
        cg_gif_close(r);
    }
    /* loop counts other than forever survive too */
    CHECK(cg_gif_writer_open(&w, tmp_path("loop3.gif"), 6, 4, 3, 0) == CG_OK, "%s",
          cg_last_error());
    CHECK(cg_gif_writer_add(w, rgb, 5) == CG_OK, "%s", cg_last_error());
    CHECK(cg_gif_writer_finish(w) == CG_OK, "%s", cg_last_error());
    CHECK(cg_gif_open(&r, tmp_path("loop3.gif"), 0) == CG_OK, "%s", cg_last_error());
    if (r) {
        CHECK(cg_gif_get_info(r)->loop_count == 3, "loop %d", cg_gif_get_info(r)->loop_count);
        cg_gif_close(r);
    }
}

static void test_gif_writer_failures(void) {
    cg_gif_writer *w = NULL;
    CHECK(cg_gif_writer_open(&w, tmp_path("wide.gif"), 70000, 2, 0, 0) == CG_ERR_LIMIT,
          "70000 wide");
    CHECK(w == NULL, "writer after failure");
    /* a parent that is a file */
    FILE *f = fopen(tmp_path("plainfile"), "wb");
    fclose(f);
    CHECK(cg_gif_writer_open(&w, tmp_path("plainfile/x.gif"), 4, 4, 0, 0) == CG_ERR_IO, "%s",
          cg_last_error());
    /* aborted: nothing left, not even the temporary file */
    mkdir(tmp_path("abort"), 0777);
    uint8_t rgb[4 * 4 * 3] = {0};
    CHECK(cg_gif_writer_open(&w, tmp_path("abort/x.gif"), 4, 4, 0, 0) == CG_OK, "%s",
          cg_last_error());
    CHECK(count_files(tmp_path("abort")) == 1, "no temporary file while writing");
    cg_gif_writer_add(w, rgb, 10);
    cg_gif_writer_abort(w);
    CHECK(count_files(tmp_path("abort")) == 0, "the aborted GIF left %d files",
          count_files(tmp_path("abort")));
}

/* ---- video reading ---- */

typedef struct {
    const char *file;
    int w, h, frames, fps_num, fps_den, exact, has_audio, copyable;
} video_case;

static void test_video_fixtures(void) {
    static const video_case cases[] = {
        {MEDIA "clip.mp4", 32, 24, 12, 12, 1, 1, 1, 1},
        {MEDIA "clip.webm", 32, 24, 8, 8, 1, 0, 0, 0},
        {MEDIA "clip.mov", 31, 23, 6, 6, 1, 1, 1, 0},
        {MEDIA "clip.mkv", 32, 24, 10, 25, 1, 0, 0, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const video_case *k = &cases[c];
        cg_video_reader *r;
        CHECK(cg_video_open(&r, k->file, 0) == CG_OK, "%s", cg_last_error());
        if (!r) continue;
        const cg_video_info *in = cg_video_get_info(r);
        CHECK(in->width == k->w && in->height == k->h, "%s: %dx%d", k->file, in->width, in->height);
        CHECK(in->fps_num * k->fps_den == k->fps_num * in->fps_den, "%s: %d/%d fps", k->file,
              in->fps_num, in->fps_den);
        CHECK(in->has_audio == k->has_audio && in->audio_copyable == k->copyable, "%s: audio %d/%d",
              k->file, in->has_audio, in->audio_copyable);
        CHECK(in->hdr == 0 && in->transfer[0] == '\0', "%s: SDR taken for HDR (%s)", k->file,
              in->transfer);
        if (in->frame_count_exact)
            CHECK(in->frame_count == k->frames, "%s: declares %lld frames", k->file,
                  (long long)in->frame_count);
        CHECK(llabs(in->frame_count - k->frames) <= 1, "%s: about %lld frames", k->file,
              (long long)in->frame_count);
        uint8_t *rgb = malloc((size_t)in->width * in->height * 3);
        int n = 0, got = 1, mono = 1;
        int64_t last = INT64_MIN, pts, dur;
        double mean = 0;
        while (got && cg_video_read(r, rgb, &pts, &dur, &got) == CG_OK && got) {
            mono &= pts > last && dur > 0;
            last = pts;
            for (size_t i = 0; i < (size_t)in->width * in->height * 3; i++) mean += rgb[i];
            n++;
        }
        CHECK(got == 0, "%s: %s", k->file, cg_last_error());
        CHECK(n == k->frames, "%s: decoded %d frames, want %d", k->file, n, k->frames);
        CHECK(mono, "%s: timestamps do not increase", k->file);
        mean /= (double)n * in->width * in->height * 3;
        CHECK(mean > 40 && mean < 220, "%s: mean value %.0f: not the photo", k->file, mean);
        CHECK(!cg_video_was_cut(r), "%s: cut without a limit", k->file);
        free(rgb);
        cg_video_close(r);
    }
}

/* rotated.mp4 holds clip.mp4's pictures marked "turn 90 degrees clockwise": they come out
 * turned, 24x32, pixel for pixel. */
static void test_video_rotation(void) {
    cg_video_reader *a, *b;
    CHECK(cg_video_open(&a, MEDIA "clip.mp4", 0) == CG_OK, "%s", cg_last_error());
    CHECK(cg_video_open(&b, MEDIA "rotated.mp4", 0) == CG_OK, "%s", cg_last_error());
    if (!a || !b) return;
    const cg_video_info *ia = cg_video_get_info(a), *ib = cg_video_get_info(b);
    CHECK(ia->rotation == 0 && ib->rotation == 90, "rotations %d, %d", ia->rotation, ib->rotation);
    CHECK(ib->width == 24 && ib->height == 32, "rotated.mp4 is %dx%d", ib->width, ib->height);
    uint8_t pa[32 * 24 * 3], pb[32 * 24 * 3];
    int64_t pts, dur;
    int ga = 0, gb = 0, bad = 0;
    CHECK(cg_video_read(a, pa, &pts, &dur, &ga) == CG_OK && ga, "%s", cg_last_error());
    CHECK(cg_video_read(b, pb, &pts, &dur, &gb) == CG_OK && gb, "%s", cg_last_error());
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 24; x++) /* out(x, y) = in(y, 23 - x) */
            bad += memcmp(pb + (y * 24 + x) * 3, pa + ((23 - x) * 32 + y) * 3, 3) != 0;
    CHECK(bad == 0, "%d of 768 pixels are not the turned picture", bad);
    cg_video_close(a);
    cg_video_close(b);
}

/* video_hlg_bt2020_10bit.mov (from ../shared/data/hunt): two 64x48 frames of HEVC Main 10,
 * BT.2020 primaries and matrix, HLG transfer, limited range, as phones record HDR. It is
 * recognised as HDR (HLG) and its frames decode to RGB8 (converted with the BT.2020
 * matrix, not tone-mapped). (test_video_fixtures checks that the SDR clips are not HDR.) */
static void test_video_hdr(void) {
    cg_video_reader *r;
    CHECK(cg_video_open(&r, MEDIA "video_hlg_bt2020_10bit.mov", 0) == CG_OK, "%s", cg_last_error());
    if (!r) return;
    const cg_video_info *in = cg_video_get_info(r);
    CHECK(in->hdr == 1 && !strcmp(in->transfer, "HLG"), "hdr %d, transfer '%s'", in->hdr, in->transfer);
    CHECK(!strcmp(in->codec, "hevc"), "codec %s", in->codec);
    CHECK(in->width == 64 && in->height == 48, "%dx%d", in->width, in->height);
    uint8_t rgb[64 * 48 * 3];
    int n = 0, got = 1, lo = 255, hi = 0;
    int64_t pts, dur;
    double mean = 0;
    while (got && cg_video_read(r, rgb, &pts, &dur, &got) == CG_OK && got) {
        for (size_t i = 0; i < sizeof rgb; i++) {
            if (rgb[i] < lo) lo = rgb[i];
            if (rgb[i] > hi) hi = rgb[i];
            mean += rgb[i];
        }
        n++;
    }
    CHECK(got == 0, "%s", cg_last_error());
    CHECK(n == 2, "decoded %d frames, want 2", n);
    /* A picture (colour bars and a time code: mean 66, values 0..255 here), not a blank
     * frame or a wrongly scaled 10-bit plane, which would be near black or white all over. */
    mean /= n > 0 ? (double)n * sizeof rgb : 1;
    CHECK(mean > 40 && mean < 220 && hi - lo >= 128, "mean %.0f, values %d..%d", mean, lo, hi);
    cg_video_close(r);
}

static void expect_video_open_error(const char *path, cg_status want, const char *text,
                                    uint64_t limit) {
    cg_video_reader *r = NULL;
    cg_status s = cg_video_open(&r, path, limit);
    CHECK(s == want, "%s: status %d (%s), want %d", path, s, cg_last_error(), want);
    CHECK(r == NULL, "%s: a reader after a failure", path);
    CHECK(strstr(cg_last_error(), path) == cg_last_error(), "%s: message '%s'", path,
          cg_last_error());
    CHECK(strstr(cg_last_error(), text) != NULL, "%s: message '%s' lacks '%s'", path,
          cg_last_error(), text);
    cg_video_close(r);
}

/* Opens fine, fails while reading: `text` in the message. */
static void expect_video_read_error(const char *path, const char *text) {
    cg_video_reader *r = NULL;
    CHECK(cg_video_open(&r, path, 0) == CG_OK, "%s: %s", path, cg_last_error());
    if (!r) return;
    uint8_t *rgb = malloc((size_t)cg_video_get_info(r)->width * cg_video_get_info(r)->height * 3);
    int got = 1, n = 0;
    int64_t pts, dur;
    cg_status s = CG_OK;
    while (got && (s = cg_video_read(r, rgb, &pts, &dur, &got)) == CG_OK) n += got;
    CHECK(s == CG_ERR_FORMAT, "%s: read %d frames without an error", path, n);
    CHECK(strstr(cg_last_error(), path) == cg_last_error() && strstr(cg_last_error(), text),
          "%s: message '%s' lacks '%s'", path, cg_last_error(), text);
    free(rgb);
    cg_video_close(r);
}

static void test_video_bad(void) {
    expect_video_open_error(MEDIA "audio_only.mp4", CG_ERR_FORMAT, "no video track", 0);
    expect_video_open_error(MEDIA "unsupported.mp4", CG_ERR_FORMAT, "unsupported video codec", 0);
    expect_video_open_error(MEDIA "notgif.gif", CG_ERR_FORMAT, "not a video file", 0);
    expect_video_open_error(MEDIA "missing.mp4", CG_ERR_IO, "no such file", 0);
    expect_video_open_error(MEDIA "clip.mp4", CG_ERR_LIMIT, "32x24", 500);
    expect_video_read_error(MEDIA "corrupt.mp4", "corrupt");
    expect_video_read_error(MEDIA "truncated.mp4", "truncated");
}

/* ---- video writing ---- */

/* clip.mp4 through the writer, its audio copied: frame count, rate, duration and audio
 * come back the same, and the pictures at H.264 quality. */
static void test_video_roundtrip(void) {
    cg_video_reader *r;
    CHECK(cg_video_open(&r, MEDIA "clip.mp4", 0) == CG_OK, "%s", cg_last_error());
    if (!r) return;
    const cg_video_info *in = cg_video_get_info(r);
    cg_video_writer_opts o = {in->width,   in->height,  in->tb_num, in->tb_den,
                              in->fps_num, in->fps_den, r};
    cg_video_writer *w;
    const char *out = tmp_path("rt.mp4");
    CHECK(cg_video_writer_open(&w, out, &o) == CG_OK, "%s", cg_last_error());
    if (!w) return;
    size_t bytes = (size_t)in->width * in->height * 3;
    uint8_t *all = malloc(bytes * 12), *rgb = malloc(bytes);
    int n = 0, got = 1;
    int64_t pts, dur;
    while (got && cg_video_read(r, rgb, &pts, &dur, &got) == CG_OK && got) {
        if (n < 12) memcpy(all + bytes * n, rgb, bytes);
        n++;
        CHECK(cg_video_write(w, rgb, pts, dur) == CG_OK, "%s", cg_last_error());
    }
    CHECK(cg_video_writer_finish(w) == CG_OK, "%s", cg_last_error());
    cg_video_close(r);
    CHECK(n == 12, "%d frames", n);

    probe_info p, q;
    CHECK(probe_video(MEDIA "clip.mp4", &q) == 0 && probe_video(out, &p) == 0, "cannot probe");
    CHECK(p.frames == 12 && p.w == 32 && p.h == 24, "%d frames %dx%d", p.frames, p.w, p.h);
    CHECK(p.fps.num == 12 * p.fps.den, "%d/%d fps", p.fps.num, p.fps.den);
    CHECK(fabs(p.duration - 1.0) < 1e-3, "lasts %.4f s", p.duration);
    CHECK(fabs(p.duration - q.duration) < 1e-3, "%.4f s vs the input's %.4f s", p.duration,
          q.duration);
    CHECK(!strcmp(p.vcodec, "h264"), "video codec %s", p.vcodec);
    CHECK(p.has_audio && !strcmp(p.acodec, "aac"), "audio: %d %s", p.has_audio, p.acodec);
    CHECK(fabs(p.audio_end - q.audio_end) < 1e-3, "audio ends at %.3f s, the input's at %.3f s",
          p.audio_end, q.audio_end);

    CHECK(cg_video_open(&r, out, 0) == CG_OK, "%s", cg_last_error());
    if (!r) return;
    double worst = 99;
    for (int i = 0; i < 12; i++) {
        CHECK(cg_video_read(r, rgb, &pts, &dur, &got) == CG_OK && got, "frame %d: %s", i,
              cg_last_error());
        double v = psnr(rgb, all + bytes * i, bytes);
        if (v < worst) worst = v;
    }
    CHECK(worst >= MIN_PSNR, "worst frame %.1f dB", worst);
    printf("  mp4 round trip (H.264 crf 18, 32x24): worst frame %.1f dB\n", worst);
    cg_video_close(r);
    free(all);
    free(rgb);
}

/* A limit of 5 frames: 5 are written, the reader says it cut, and the copied audio ends
 * where the fifth frame does (give or take one AAC frame of 1024/8000 s). */
static void test_video_max_frames(void) {
    cg_video_reader *r;
    CHECK(cg_video_open(&r, MEDIA "clip.mp4", 0) == CG_OK, "%s", cg_last_error());
    if (!r) return;
    const cg_video_info *in = cg_video_get_info(r);
    cg_video_set_max_frames(r, 5);
    cg_video_writer_opts o = {in->width,   in->height,  in->tb_num, in->tb_den,
                              in->fps_num, in->fps_den, r};
    cg_video_writer *w;
    const char *out = tmp_path("cut.mp4");
    CHECK(cg_video_writer_open(&w, out, &o) == CG_OK, "%s", cg_last_error());
    if (!w) return;
    uint8_t *rgb = malloc((size_t)in->width * in->height * 3);
    int n = 0, got = 1;
    int64_t pts, dur;
    while (got && cg_video_read(r, rgb, &pts, &dur, &got) == CG_OK && got) {
        n++;
        cg_video_write(w, rgb, pts, dur);
    }
    CHECK(n == 5 && cg_video_was_cut(r), "%d frames, cut %d", n, cg_video_was_cut(r));
    CHECK(cg_video_writer_finish(w) == CG_OK, "%s", cg_last_error());
    cg_video_close(r);
    free(rgb);
    probe_info p;
    CHECK(probe_video(out, &p) == 0, "cannot probe");
    CHECK(p.frames == 5, "%d frames", p.frames);
    CHECK(fabs(p.duration - 5 / 12.0) < 1e-3, "lasts %.3f s", p.duration);
    CHECK(p.has_audio && p.audio_end > 5 / 12.0 - 0.01 &&
              p.audio_end < 5 / 12.0 + 1024 / 8000.0 + 0.01,
          "audio ends at %.3f s", p.audio_end);

    /* a limit above the length cuts nothing */
    CHECK(cg_video_open(&r, MEDIA "clip.mkv", 0) == CG_OK, "%s", cg_last_error());
    if (!r) return;
    cg_video_set_max_frames(r, 10);
    rgb = malloc(32 * 24 * 3);
    n = 0, got = 1;
    while (got && cg_video_read(r, rgb, &pts, &dur, &got) == CG_OK && got) n++;
    CHECK(n == 10 && !cg_video_was_cut(r), "%d frames, cut %d", n, cg_video_was_cut(r));
    free(rgb);
    cg_video_close(r);
}

/* GIF-style timing (1/100 s, uneven delays), odd sides, and a side of 1. */
static void test_video_writer_shapes(void) {
    static const int delays[5] = {10, 20, 5, 7, 30};
    static const struct {
        int w, h, ew, eh;
    } shapes[] = {{31, 23, 30, 22}, {1, 7, 2, 6}, {16, 16, 16, 16}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int w = shapes[s].w, h = shapes[s].h;
        cg_video_writer_opts o = {w, h, 1, 100, 100, 14, NULL};
        cg_video_writer *vw;
        const char *out = tmp_path("shape.mp4");
        CHECK(cg_video_writer_open(&vw, out, &o) == CG_OK, "%s", cg_last_error());
        if (!vw) return;
        uint8_t *rgb = malloc((size_t)w * h * 3);
        int64_t t = 0;
        for (int i = 0; i < 5; i++) {
            for (size_t k = 0; k < (size_t)w * h * 3; k++) rgb[k] = (uint8_t)(k * 7 + i * 40);
            CHECK(cg_video_write(vw, rgb, t, delays[i]) == CG_OK, "%s", cg_last_error());
            t += delays[i];
        }
        CHECK(cg_video_writer_finish(vw) == CG_OK, "%s", cg_last_error());
        free(rgb);
        probe_info p;
        CHECK(probe_video(out, &p) == 0, "cannot probe");
        CHECK(p.w == shapes[s].ew && p.h == shapes[s].eh, "%dx%d gave %dx%d", w, h, p.w, p.h);
        CHECK(p.frames == 5, "%d frames", p.frames);
        CHECK(fabs(p.duration - 0.72) < 1e-3, "lasts %.3f s, want 0.72", p.duration);
    }
}

static void test_video_writer_failures(void) {
    cg_video_writer_opts o = {8, 8, 1, 25, 25, 1, NULL};
    cg_video_writer *w = NULL;
    mkdir(tmp_path("vabort"), 0777);
    CHECK(cg_video_writer_open(&w, tmp_path("vabort/x.mp4"), &o) == CG_OK, "%s", cg_last_error());
    uint8_t rgb[8 * 8 * 3] = {0};
    cg_video_write(w, rgb, 0, 1);
    CHECK(count_files(tmp_path("vabort")) == 1, "no temporary file while writing");
    cg_video_writer_abort(w);
    CHECK(count_files(tmp_path("vabort")) == 0, "the aborted MP4 left %d files",
          count_files(tmp_path("vabort")));
    /* no frames at all is a failure, and leaves nothing */
    CHECK(cg_video_writer_open(&w, tmp_path("vabort/y.mp4"), &o) == CG_OK, "%s", cg_last_error());
    CHECK(cg_video_writer_finish(w) == CG_ERR_FORMAT, "an empty MP4 was accepted");
    CHECK(count_files(tmp_path("vabort")) == 0, "the empty MP4 left files");
    o.width = 0;
    CHECK(cg_video_writer_open(&w, tmp_path("vabort/z.mp4"), &o) == CG_ERR_ARG, "0 wide");
}

/* ---- the probe for test_media_cli.sh ---- */

static int cmd_probe(const char *path) {
    size_t n = strlen(path);
    if (n > 4 && !strcasecmp(path + n - 4, ".gif")) {
        cg_gif_reader *r;
        if (cg_gif_open(&r, path, 0) != CG_OK) {
            fprintf(stderr, "%s\n", cg_last_error());
            return 1;
        }
        const cg_gif_info *in = cg_gif_get_info(r);
        printf("gif %dx%d frames=%d loop=%d delays=", in->width, in->height, in->frame_count,
               in->loop_count);
        for (int i = 0; i < in->frame_count; i++) printf("%s%d", i ? "," : "", in->delays[i]);
        printf("\n");
        cg_gif_close(r);
        return 0;
    }
    if (is_webp(path)) {
        frames f;
        cg_webp_anim_reader *r;
        if (cg_webp_anim_open(&r, path, 0) != CG_OK || read_all_webp_frames(path, &f) < 0) {
            fprintf(stderr, "%s\n", cg_last_error());
            return 1;
        }
        const cg_webp_anim_info *in = cg_webp_anim_get_info(r);
        /* alpha: whether any composited pixel is see-through (not the file's flag) */
        int alpha = 0;
        for (size_t i = 0; i < (size_t)f.w * f.h * f.n; i++) alpha |= f.rgba[4 * i + 3] != 255;
        printf("webp %dx%d frames=%d loop=%d alpha=%d durations=", in->width, in->height,
               in->frame_count, in->loop_count, alpha);
        for (int i = 0; i < in->frame_count; i++) printf("%s%d", i ? "," : "", in->durations[i]);
        printf("\n");
        free_frames(&f);
        cg_webp_anim_close(r);
        return 0;
    }
    probe_info p;
    if (probe_video(path, &p) < 0) {
        fprintf(stderr, "%s: cannot probe\n", path);
        return 1;
    }
    printf("video %dx%d frames=%d fps=%d/%d duration=%.3f codec=%s audio=%s\n", p.w, p.h, p.frames,
           p.fps.num, p.fps.den, p.duration, p.vcodec, p.has_audio ? p.acodec : "none");
    return 0;
}

/* Writes a GIF's frames as an animated WebP (webp_anim.c's writer) with its delays in ms,
 * its loop count and, when a frame is see-through, its alpha: the CLI tests' WebP inputs,
 * made from the committed GIFs rather than committed themselves. */
static int cmd_towebp(const char *gif, const char *out) {
    frames f;
    cg_gif_reader *r;
    if (cg_gif_open(&r, gif, 0) != CG_OK || read_all_frames(gif, &f) < 0) {
        fprintf(stderr, "%s\n", cg_last_error());
        return 1;
    }
    const cg_gif_info *in = cg_gif_get_info(r);
    size_t px = (size_t)f.w * f.h;
    int alpha = 0;
    for (size_t i = 0; i < px * f.n; i++) alpha |= f.rgba[4 * i + 3] != 255;
    cg_webp_anim_writer *w;
    cg_status s = cg_webp_anim_writer_open(&w, out, f.w, f.h, in->loop_count < 0 ? 1 : in->loop_count, alpha);
    for (int i = 0; s == CG_OK && i < f.n; i++)
        s = cg_webp_anim_writer_add(w, alpha ? f.rgba + px * 4 * i : f.rgb + px * 3 * i,
                                    10 * in->delays[i]);
    if (s == CG_OK) s = cg_webp_anim_writer_finish(w);
    else cg_webp_anim_writer_abort(w);
    if (s != CG_OK) fprintf(stderr, "%s\n", cg_last_error());
    cg_gif_close(r);
    free_frames(&f);
    return s == CG_OK ? 0 : 1;
}

static int cmd_frames(const char *gif, const char *dir) {
    frames f;
    if (read_all_frames(gif, &f) < 0) {
        fprintf(stderr, "%s\n", cg_last_error());
        return 1;
    }
    for (int i = 0; i < f.n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/frame_%03d.png", dir, i);
        cg_image im = {.w = f.w, .h = f.h, .rgb = f.rgb + (size_t)f.w * f.h * 3 * i};
        if (cg_image_save(&im, path, CG_FMT_PNG) != CG_OK) {
            fprintf(stderr, "%s\n", cg_last_error());
            return 1;
        }
    }
    free_frames(&f);
    return 0;
}

static int cmd_psnr(const char *gif, const char *dir) {
    frames f;
    if (read_all_frames(gif, &f) < 0) {
        fprintf(stderr, "%s\n", cg_last_error());
        return 1;
    }
    double worst = 99;
    printf("PSNR per frame (dB):");
    for (int i = 0; i < f.n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/frame_%03d.png", dir, i);
        cg_image im;
        if (cg_image_load(&im, path, 0) != CG_OK || im.w != f.w || im.h != f.h) {
            fprintf(stderr, "%s: missing or of another size\n", path);
            return 1;
        }
        double q = psnr(im.rgb, f.rgb + (size_t)f.w * f.h * 3 * i, (size_t)f.w * f.h * 3);
        printf(" %.1f", q);
        if (q < worst) worst = q;
        cg_image_free(&im);
    }
    printf("; worst %.1f\n", worst);
    free_frames(&f);
    return worst >= MIN_PSNR ? 0 : 1;
}

int main(int argc, char **argv) {
    cg_video_quiet_log();
    if (argc == 3 && !strcmp(argv[1], "probe")) return cmd_probe(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "frames")) return cmd_frames(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "psnr")) return cmd_psnr(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "towebp")) return cmd_towebp(argv[2], argv[3]);
    if (test_make_dir(tmpdir, sizeof tmpdir, "test_media") != 0) return 1;
    RUN(test_gif_info);
    RUN(test_gif_dispose_none);
    RUN(test_gif_dispose_background);
    RUN(test_gif_dispose_previous);
    RUN(test_gif_transparency);
    RUN(test_gif_offscreen);
    RUN(test_gif_interlaced);
    RUN(test_gif_against_reference);
    RUN(test_gif_missing_trailer);
    RUN(test_gif_bad);
    RUN(test_gif_roundtrip);
    RUN(test_gif_writer_failures);
    RUN(test_video_fixtures);
    RUN(test_video_rotation);
    RUN(test_video_hdr);
    RUN(test_video_bad);
    RUN(test_video_roundtrip);
    RUN(test_video_max_frames);
    RUN(test_video_writer_shapes);
    RUN(test_video_writer_failures);
    test_remove_dir(tmpdir);
    return TEST_SUMMARY("test_media");
}
