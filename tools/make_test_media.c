/* make_test_media.c: writes the GIF and video fixtures of tests/data/media/ (giflib,
 * libimagequant and FFmpeg's libraries, the same ones the project reads them with), and
 * makes longer clips for demos and memory measurements. Build and run from the repository
 * root:
 *
 *     make build/tools/make_test_media
 *     build/tools/make_test_media fixtures tests/data/media
 *     build/tools/make_test_media video OUT.mp4 FRAMES WIDTH HEIGHT FPS [PHOTO]
 *     build/tools/make_test_media gif OUT.gif FRAMES WIDTH HEIGHT [PHOTO]
 *
 * `video` pans across PHOTO (default: tests/data/model/input_64x48.png) with a 440 Hz tone
 * as AAC audio; `gif` pans the same way, 8/100 s a frame, looping forever. What each
 * fixture holds is written next to the code that makes it; test_media.c checks those
 * values. */
#include <gif_lib.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/display.h>
#include <libavutil/opt.h>
#include <libimagequant.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cartoongan.h"
#include "io/image.h"

#define DEFAULT_PHOTO "tests/data/model/input_64x48.png"

static void die(const char *what) {
    fprintf(stderr, "make_test_media: %s\n", what);
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory");
    return p;
}

/* ---- pictures ---- */

typedef struct {
    int w, h;
    uint8_t *rgb;
} picture;

static picture load_photo(const char *path) {
    cg_image im;
    if (cg_image_load(&im, path, 0) != CG_OK) die(cg_last_error());
    picture p = {im.w, im.h, im.rgb};
    return p;
}

/* A w x h window of the photo, scaled so that its height is 5/4 of h, at a horizontal
 * position t in [0, 1] (wrapping) and with a small vertical bob, so frames differ. */
static void pan_frame(uint8_t *out, int w, int h, const picture *ph, double t) {
    int sh = h + h / 4 + 2;
    int sw = (int)((double)ph->w * sh / ph->h + 0.5);
    if (sw < w + 2) sw = w + 2;
    static uint8_t *scaled;
    static int cached_w, cached_h;
    if (!scaled || cached_w != sw || cached_h != sh) {
        free(scaled);
        scaled = xmalloc((size_t)sw * sh * 3);
        cg_resize_rgb(scaled, sw, sh, ph->rgb, ph->w, ph->h);
        cached_w = sw, cached_h = sh;
    }
    double u = t - floor(t);
    int x0 = (int)(u * (sw - w));
    int y0 = (int)((0.5 + 0.5 * sin(6.283 * t)) * (sh - h));
    for (int y = 0; y < h; y++)
        memcpy(out + (size_t)y * w * 3, scaled + ((size_t)(y0 + y) * sw + x0) * 3, (size_t)w * 3);
}

/* A copy of the photo moved by (dx, dy), wrapping. */
static void shifted(uint8_t *out, const picture *ph, int dx, int dy) {
    for (int y = 0; y < ph->h; y++)
        for (int x = 0; x < ph->w; x++)
            memcpy(out + ((size_t)y * ph->w + x) * 3,
                   ph->rgb + ((size_t)((y + dy) % ph->h) * ph->w + (x + dx) % ph->w) * 3, 3);
}

/* ---- GIFs ---- */

typedef struct {
    int left, top, w, h;
    int disposal, delay, transparent; /* transparent: an index, or -1 */
    int interlace;
    GifColorType colors[256];
    int ncolors;  /* 0: use the global colour table */
    uint8_t *idx; /* w*h, in display order */
} gframe;

/* Quantizes an RGB block into a frame's local palette; with `keep` (may be NULL, w*h
 * flags), pixels not kept get the transparent index (the palette's last entry). */
static void quantize(gframe *f, const uint8_t *rgb, const uint8_t *keep) {
    size_t n = (size_t)f->w * f->h;
    uint8_t *rgba = xmalloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        memcpy(rgba + 4 * i, rgb + 3 * i, 3);
        rgba[4 * i + 3] = 255;
    }
    liq_attr *attr = liq_attr_create();
    liq_set_max_colors(attr, keep ? 255 : 256);
    liq_image *img = liq_image_create_rgba(attr, rgba, f->w, f->h, 0);
    liq_result *res;
    if (liq_image_quantize(img, attr, &res) != LIQ_OK) die("quantization failed");
    liq_set_dithering_level(res, 1.0f);
    f->idx = xmalloc(n);
    liq_write_remapped_image(res, img, f->idx, n);
    const liq_palette *pal = liq_get_palette(res);
    int count = (int)pal->count;
    for (int i = 0; i < count; i++) {
        f->colors[i].Red = pal->entries[i].r;
        f->colors[i].Green = pal->entries[i].g;
        f->colors[i].Blue = pal->entries[i].b;
    }
    f->transparent = -1;
    if (keep) {
        f->colors[count].Red = f->colors[count].Green = f->colors[count].Blue = 0;
        f->transparent = count++;
        for (size_t i = 0; i < n; i++)
            if (!keep[i]) f->idx[i] = (uint8_t)f->transparent;
    }
    int size = 2;
    while (size < count) size *= 2;
    for (int i = count; i < size; i++)
        f->colors[i].Red = f->colors[i].Green = f->colors[i].Blue = 0;
    f->ncolors = size;
    liq_result_destroy(res);
    liq_image_destroy(img);
    liq_attr_destroy(attr);
    free(rgba);
}

/* Writes a GIF. loop < 0: no NETSCAPE2.0 block; gce 0: no graphics control blocks. */
static void write_gif(const char *path, int sw, int sh, int bg, const GifColorType *global,
                      int nglobal, int loop, int gce, gframe *f, int nf) {
    int err;
    GifFileType *g = EGifOpenFileName(path, false, &err);
    if (!g) die(path);
    EGifSetGifVersion(g, true);
    ColorMapObject *gmap = nglobal ? GifMakeMapObject(nglobal, global) : NULL;
    if (EGifPutScreenDesc(g, sw, sh, 8, bg, gmap) != GIF_OK) die(path);
    if (loop >= 0) {
        unsigned char sub[3] = {1, (unsigned char)(loop & 255), (unsigned char)(loop >> 8)};
        EGifPutExtensionLeader(g, APPLICATION_EXT_FUNC_CODE);
        EGifPutExtensionBlock(g, 11, "NETSCAPE2.0");
        EGifPutExtensionBlock(g, 3, sub);
        EGifPutExtensionTrailer(g);
    }
    for (int i = 0; i < nf; i++) {
        if (gce) {
            GraphicsControlBlock b = {f[i].disposal, false, f[i].delay, f[i].transparent};
            GifByteType ext[4];
            size_t n = EGifGCBToExtension(&b, ext);
            EGifPutExtension(g, GRAPHICS_EXT_FUNC_CODE, (int)n, ext);
        }
        ColorMapObject *map = f[i].ncolors ? GifMakeMapObject(f[i].ncolors, f[i].colors) : NULL;
        if (EGifPutImageDesc(g, f[i].left, f[i].top, f[i].w, f[i].h, f[i].interlace, map) != GIF_OK)
            die(path);
        if (f[i].interlace) {
            static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
            for (int p = 0; p < 4; p++)
                for (int y = start[p]; y < f[i].h; y += step[p])
                    EGifPutLine(g, f[i].idx + (size_t)y * f[i].w, f[i].w);
        } else {
            for (int y = 0; y < f[i].h; y++) EGifPutLine(g, f[i].idx + (size_t)y * f[i].w, f[i].w);
        }
        GifFreeMapObject(map);
    }
    GifFreeMapObject(gmap);
    if (EGifCloseFile(g, &err) != GIF_OK) die(path);
    chmod(path, 0644); /* giflib creates files 0600 */
}

static void crop(uint8_t *out, const uint8_t *src, int sw, int x0, int y0, int w, int h) {
    for (int y = 0; y < h; y++)
        memcpy(out + (size_t)y * w * 3, src + ((size_t)(y0 + y) * sw + x0) * 3, (size_t)w * 3);
}

static char *join(const char *dir, const char *name) {
    char *p = xmalloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* anim.gif: 64x48 from the photo, loop 0, 8 frames, delays 10 20 5 7 0 30 15 10, and on
 * the way every kind of frame real GIFs hold:
 *   0 full frame                              disposal none
 *   1 32x24 at (8,6), the photo moved (4,2)    none
 *   2 32x24 at (24,12), moved (9,5)            background (cleared before frame 3)
 *   3 full screen, all transparent but a 12x12 square at (40,20), moved (17,11); previous
 *   4 40x30 at (0,0), moved (3,3)              none
 *   5 20x20 at (50,36): reaches past the screen, clipped to 14x12
 *   6 full frame, the photo moved (32,0)
 *   7 16x16 at (10,10), interlaced, moved (5,7) */
static void make_anim(const char *dir, const picture *ph) {
    static const int delays[8] = {10, 20, 5, 7, 0, 30, 15, 10};
    static const int rect[8][4] = {{0, 0, 64, 48}, {8, 6, 32, 24},  {24, 12, 32, 24},
                                   {0, 0, 64, 48}, {0, 0, 40, 30},  {50, 36, 20, 20},
                                   {0, 0, 64, 48}, {10, 10, 16, 16}};
    static const int shift[8][2] = {{0, 0}, {4, 2}, {9, 5},  {17, 11},
                                    {3, 3}, {0, 0}, {32, 0}, {5, 7}};
    static const int disposal[8] = {DISPOSE_DO_NOT,   DISPOSE_DO_NOT, DISPOSE_BACKGROUND,
                                    DISPOSE_PREVIOUS, DISPOSE_DO_NOT, DISPOSE_DO_NOT,
                                    DISPOSE_DO_NOT,   DISPOSE_DO_NOT};
    gframe f[8];
    uint8_t *moved = xmalloc((size_t)ph->w * ph->h * 3);
    uint8_t *block = xmalloc(64 * 48 * 3), keep[64 * 48];
    for (int i = 0; i < 8; i++) {
        memset(&f[i], 0, sizeof f[i]);
        f[i].left = rect[i][0], f[i].top = rect[i][1], f[i].w = rect[i][2], f[i].h = rect[i][3];
        f[i].delay = delays[i];
        f[i].disposal = disposal[i];
        f[i].interlace = i == 7;
        shifted(moved, ph, shift[i][0], shift[i][1]);
        /* frame 5 pokes out of the screen: its pixels come from a wrapped window */
        for (int y = 0; y < f[i].h; y++)
            for (int x = 0; x < f[i].w; x++)
                memcpy(block + ((size_t)y * f[i].w + x) * 3,
                       moved + ((size_t)((f[i].top + y) % 48) * 64 + (f[i].left + x) % 64) * 3, 3);
        if (i == 3) {
            for (int y = 0; y < 48; y++)
                for (int x = 0; x < 64; x++)
                    keep[y * 64 + x] = x >= 40 && x < 52 && y >= 20 && y < 32;
            quantize(&f[i], block, keep);
        } else {
            quantize(&f[i], block, NULL);
        }
    }
    char *p = join(dir, "anim.gif");
    write_gif(p, 64, 48, 0, NULL, 0, 0, 1, f, 8);
    free(p);
    for (int i = 0; i < 8; i++) free(f[i].idx);
    free(moved);
    free(block);
}

/* The disposal cases, on an 8x6 screen with a global palette of red, green, blue, white
 * and the background index set to blue (which browsers ignore: they clear to transparent):
 *   frame 0: all red, disposal none
 *   frame 1: blue 2x2 at (1,1), disposal none / background / previous (one file each)
 *   frame 2: green 2x2 at (5,3)
 * After frame 2, (1,1) is blue, transparent, or red again. */
static const GifColorType small_palette[4] = {
    {255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};

static void make_disposals(const char *dir) {
    static const char *names[3] = {"dispose_none.gif", "dispose_background.gif",
                                   "dispose_previous.gif"};
    static const int modes[3] = {DISPOSE_DO_NOT, DISPOSE_BACKGROUND, DISPOSE_PREVIOUS};
    uint8_t red[48], blue[4], green[4];
    memset(red, 0, sizeof red);
    memset(blue, 2, sizeof blue);
    memset(green, 1, sizeof green);
    for (int m = 0; m < 3; m++) {
        gframe f[3] = {{0, 0, 8, 6, DISPOSE_DO_NOT, 10, -1, 0, {{0}}, 0, red},
                       {1, 1, 2, 2, modes[m], 10, -1, 0, {{0}}, 0, blue},
                       {5, 3, 2, 2, DISPOSE_DO_NOT, 10, -1, 0, {{0}}, 0, green}};
        char *p = join(dir, names[m]);
        write_gif(p, 8, 6, 2, small_palette, 4, 0, 1, f, 3);
        free(p);
    }
}

/* transparent.gif, 8x6:
 *   frame 0: columns 0-3 transparent (index 3), 4-7 red
 *   frame 1: all transparent but one green pixel at (6,2) and one blue at (1,4)
 * After frame 1: columns 0-3 transparent except (1,4) blue; 4-7 red except (6,2) green. */
static void make_transparent(const char *dir) {
    uint8_t a[48], b[48];
    for (int i = 0; i < 48; i++) a[i] = i % 8 < 4 ? 3 : 0;
    memset(b, 3, sizeof b);
    b[2 * 8 + 6] = 1;
    b[4 * 8 + 1] = 2;
    gframe f[2] = {{0, 0, 8, 6, DISPOSE_DO_NOT, 10, 3, 0, {{0}}, 0, a},
                   {0, 0, 8, 6, DISPOSE_DO_NOT, 10, 3, 0, {{0}}, 0, b}};
    char *p = join(dir, "transparent.gif");
    write_gif(p, 8, 6, 0, small_palette, 4, 0, 1, f, 2);
    free(p);
}

/* offscreen.gif, 8x6: frame 0 all red; frame 1 blue 4x4 at (6,4), clipped to 2x2;
 * frame 2 green 2x2 at (20,20), entirely outside (draws nothing). */
static void make_offscreen(const char *dir) {
    uint8_t red[48], blue[16], green[4];
    memset(red, 0, sizeof red);
    memset(blue, 2, sizeof blue);
    memset(green, 1, sizeof green);
    gframe f[3] = {{0, 0, 8, 6, DISPOSE_DO_NOT, 10, -1, 0, {{0}}, 0, red},
                   {6, 4, 4, 4, DISPOSE_DO_NOT, 10, -1, 0, {{0}}, 0, blue},
                   {20, 20, 2, 2, DISPOSE_DO_NOT, 10, -1, 0, {{0}}, 0, green}};
    char *p = join(dir, "offscreen.gif");
    write_gif(p, 8, 6, 0, small_palette, 4, 0, 1, f, 3);
    free(p);
}

/* interlaced.gif: one 3x10 interlaced frame, row y coloured small_palette[y % 4]. */
static void make_interlaced(const char *dir) {
    uint8_t idx[30];
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 3; x++) idx[y * 3 + x] = (uint8_t)(y % 4);
    gframe f = {0, 0, 3, 10, DISPOSE_DO_NOT, 0, -1, 1, {{0}}, 0, idx};
    char *p = join(dir, "interlaced.gif");
    write_gif(p, 3, 10, 0, small_palette, 4, -1, 0, &f, 1);
    free(p);
}

/* still.gif: the photo's top-left 24x18, one frame, no loop block, no control block. */
static void make_still(const char *dir, const picture *ph) {
    uint8_t block[24 * 18 * 3];
    crop(block, ph->rgb, ph->w, 10, 10, 24, 18);
    gframe f;
    memset(&f, 0, sizeof f);
    f.w = 24, f.h = 18;
    quantize(&f, block, NULL);
    char *p = join(dir, "still.gif");
    write_gif(p, 24, 18, 0, NULL, 0, -1, 0, &f, 1);
    free(p);
    free(f.idx);
}

/* many.gif: 2x2, 2000 frames cycling through the four colours, no control blocks, loop 0. */
static void make_many(const char *dir) {
    enum { N = 2000 };
    gframe *f = xmalloc(N * sizeof *f);
    uint8_t idx[4][4];
    for (int c = 0; c < 4; c++) memset(idx[c], c, 4);
    for (int i = 0; i < N; i++) {
        memset(&f[i], 0, sizeof f[i]);
        f[i].w = f[i].h = 2;
        f[i].transparent = -1;
        f[i].idx = idx[i % 4];
    }
    char *p = join(dir, "many.gif");
    write_gif(p, 2, 2, 0, small_palette, 4, 0, 0, f, N);
    free(p);
    free(f);
}

/* Bad GIFs: empty.gif (a valid header and trailer, no frame), huge.gif (a 60000x60000
 * screen holding one 1x1 frame: 3.6 gigapixels), notgif.gif (text). truncated.gif is
 * anim.gif cut inside frame 4's image data. */
static void make_bad_gifs(const char *dir) {
    char *p = join(dir, "empty.gif");
    write_gif(p, 8, 6, 0, small_palette, 4, 0, 1, NULL, 0);
    free(p);
    uint8_t one = 0;
    gframe f = {0, 0, 1, 1, DISPOSE_DO_NOT, 10, -1, 0, {{0}}, 0, &one};
    p = join(dir, "huge.gif");
    write_gif(p, 60000, 60000, 0, small_palette, 4, -1, 1, &f, 1);
    free(p);
    p = join(dir, "notgif.gif");
    FILE *o = fopen(p, "wb");
    if (!o) die(p);
    fputs("this is not a GIF, only text with a .gif name\n", o);
    fclose(o);
    free(p);

    p = join(dir, "anim.gif");
    FILE *in = fopen(p, "rb");
    if (!in) die(p);
    uint8_t buf[65536];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    free(p);
    /* the fifth image descriptor (0x2C) after a graphics control block (0x21 0xF9 ...) */
    size_t pos = 0;
    int seen = 0;
    for (size_t i = 0; i + 8 < n; i++)
        if (buf[i] == 0x21 && buf[i + 1] == 0xF9 && buf[i + 2] == 4 && buf[i + 7] == 0 &&
            buf[i + 8] == 0x2C && ++seen == 5) {
            pos = i + 8;
            break;
        }
    if (!pos) die("anim.gif: frame 5 not found");
    p = join(dir, "truncated.gif");
    o = fopen(p, "wb");
    if (!o) die(p);
    size_t palette = buf[pos + 9] & 0x80 ? 3u << ((buf[pos + 9] & 7) + 1) : 0;
    fwrite(buf, 1, pos + 10 + palette + 1 + 40, o); /* descriptor, palette, some LZW data */
    fclose(o);
    free(p);
}

/* ---- videos ---- */

typedef struct {
    const char *codec; /* encoder name */
    enum AVPixelFormat pix;
    int w, h, frames, fps;
    const char *audio; /* audio encoder name, or NULL */
    int no_video;
    int rotate; /* clockwise degrees players are told to turn the frames */
} vspec;

typedef struct {
    AVCodecContext *enc;
    AVStream *st;
    AVFrame *frame;
    int64_t next_pts;
} track;

static AVCodecContext *open_encoder(const char *name, AVFormatContext *oc,
                                    void (*setup)(AVCodecContext *, const vspec *),
                                    const vspec *v) {
    const AVCodec *c = avcodec_find_encoder_by_name(name);
    if (!c) die(name);
    AVCodecContext *e = avcodec_alloc_context3(c);
    setup(e, v);
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    e->thread_count = 1;
    e->flags |= AV_CODEC_FLAG_BITEXACT;
    if (avcodec_open2(e, c, NULL) < 0) die(name);
    return e;
}

static void video_setup(AVCodecContext *e, const vspec *v) {
    e->width = v->w;
    e->height = v->h;
    e->pix_fmt = v->pix;
    e->time_base = (AVRational){1, v->fps};
    e->framerate = (AVRational){v->fps, 1};
    e->gop_size = 12;
    e->bit_rate = 400000;
    if (v->pix == AV_PIX_FMT_YUVJ420P) e->color_range = AVCOL_RANGE_JPEG;
}

static void audio_setup(AVCodecContext *e, const vspec *v) {
    (void)v;
    e->sample_rate = 8000;
    av_channel_layout_default(&e->ch_layout, 1);
    e->sample_fmt = e->codec->sample_fmts ? e->codec->sample_fmts[0] : AV_SAMPLE_FMT_S16;
    e->bit_rate = 16000;
    e->time_base = (AVRational){1, 8000};
}

static void write_packets(AVFormatContext *oc, track *t) {
    AVPacket *pkt = av_packet_alloc();
    while (avcodec_receive_packet(t->enc, pkt) == 0) {
        /* x264 leaves durations out, and the MP4 would give the last frame none */
        if (t->enc->codec_type == AVMEDIA_TYPE_VIDEO && pkt->duration <= 0) pkt->duration = 1;
        av_packet_rescale_ts(pkt, t->enc->time_base, t->st->time_base);
        pkt->stream_index = t->st->index;
        if (av_interleaved_write_frame(oc, pkt) < 0) die("cannot write a packet");
    }
    av_packet_free(&pkt);
}

/* A video panning across the photo, with a 440 Hz tone when v->audio is set. */
static void write_video(const char *path, const vspec *v, const picture *ph) {
    AVFormatContext *oc = NULL;
    if (avformat_alloc_output_context2(&oc, NULL, NULL, path) < 0) die(path);
    oc->flags |= AVFMT_FLAG_BITEXACT; /* no random IDs or dates: reruns give the same bytes */
    track vt = {0}, at = {0};
    if (!v->no_video) {
        vt.enc = open_encoder(v->codec, oc, video_setup, v);
        vt.st = avformat_new_stream(oc, NULL);
        avcodec_parameters_from_context(vt.st->codecpar, vt.enc);
        if (v->rotate) {
            uint8_t *m = av_stream_new_side_data(vt.st, AV_PKT_DATA_DISPLAYMATRIX, 36);
            if (!m) die("out of memory");
            av_display_rotation_set((int32_t *)m, v->rotate); /* clockwise, unlike _get */
        }
        vt.st->time_base = vt.enc->time_base;
        vt.frame = av_frame_alloc();
        vt.frame->format = v->pix;
        vt.frame->width = v->w;
        vt.frame->height = v->h;
        av_frame_get_buffer(vt.frame, 0);
    }
    if (v->audio) {
        at.enc = open_encoder(v->audio, oc, audio_setup, v);
        at.st = avformat_new_stream(oc, NULL);
        avcodec_parameters_from_context(at.st->codecpar, at.enc);
        at.st->time_base = at.enc->time_base;
        at.frame = av_frame_alloc();
        at.frame->format = at.enc->sample_fmt;
        av_channel_layout_copy(&at.frame->ch_layout, &at.enc->ch_layout);
        at.frame->sample_rate = 8000;
        at.frame->nb_samples = at.enc->frame_size ? at.enc->frame_size : 400;
        av_frame_get_buffer(at.frame, 0);
    }
    if (avio_open(&oc->pb, path, AVIO_FLAG_WRITE) < 0) die(path);
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "movflags", "+faststart", 0);
    if (avformat_write_header(oc, &opts) < 0) die("cannot write the header");
    av_dict_free(&opts);

    struct SwsContext *sws = sws_getContext(v->w, v->h, AV_PIX_FMT_RGB24, v->w, v->h, v->pix,
                                            SWS_BICUBIC, NULL, NULL, NULL);
    uint8_t *rgb = xmalloc((size_t)v->w * v->h * 3);
    int64_t total_samples = (int64_t)v->frames * 8000 / v->fps;
    int vf = v->no_video ? v->frames : 0;
    while (vf < v->frames || (at.enc && at.next_pts < total_samples)) {
        /* whichever track is behind goes next */
        int video_next = vf < v->frames && (!at.enc || at.next_pts >= total_samples ||
                                            (int64_t)vf * 8000 < at.next_pts * v->fps);
        if (video_next) {
            pan_frame(rgb, v->w, v->h, ph, vf / 24.0);
            const uint8_t *src = rgb;
            int stride = v->w * 3;
            av_frame_make_writable(vt.frame);
            sws_scale(sws, &src, &stride, 0, v->h, vt.frame->data, vt.frame->linesize);
            vt.frame->pts = vf++;
            avcodec_send_frame(vt.enc, vt.frame);
            write_packets(oc, &vt);
        } else {
            av_frame_make_writable(at.frame);
            int n = at.frame->nb_samples;
            for (int i = 0; i < n; i++) {
                double s = 0.3 * sin(6.283185307 * 440.0 * (double)(at.next_pts + i) / 8000.0);
                if (at.enc->sample_fmt == AV_SAMPLE_FMT_FLTP ||
                    at.enc->sample_fmt == AV_SAMPLE_FMT_FLT)
                    ((float *)at.frame->data[0])[i] = (float)s;
                else
                    ((int16_t *)at.frame->data[0])[i] = (int16_t)(s * 32767);
            }
            at.frame->pts = at.next_pts;
            at.next_pts += n;
            avcodec_send_frame(at.enc, at.frame);
            write_packets(oc, &at);
        }
    }
    if (vt.enc) {
        avcodec_send_frame(vt.enc, NULL);
        write_packets(oc, &vt);
    }
    if (at.enc) {
        avcodec_send_frame(at.enc, NULL);
        write_packets(oc, &at);
    }
    if (av_write_trailer(oc) < 0) die("cannot finish the file");
    avio_closep(&oc->pb);
    avformat_free_context(oc);
    avcodec_free_context(&vt.enc);
    avcodec_free_context(&at.enc);
    av_frame_free(&vt.frame);
    av_frame_free(&at.frame);
    sws_freeContext(sws);
    free(rgb);
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = xmalloc(*n);
    if (fread(b, 1, *n, f) != *n) die(path);
    fclose(f);
    return b;
}

static void write_file(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) die(path);
    fclose(f);
}

static size_t find(const uint8_t *b, size_t n, const char *s) {
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(b + i, s, k)) return i;
    die(s);
    return 0;
}

/* The damaged copies of clip.mp4 (whose index comes first, so these are all about the
 * media data): unsupported.mp4, the video's 'avc1' sample entry renamed 'zzzz' (no
 * decoder knows it); corrupt.mp4, the second half of the media data overwritten with
 * pseudo-random bytes; truncated.mp4, cut in the middle of the media data. */
static void make_bad_videos(const char *dir) {
    char *p = join(dir, "clip.mp4");
    size_t n;
    uint8_t *b = read_file(p, &n);
    free(p);
    uint8_t *c = xmalloc(n);

    memcpy(c, b, n);
    size_t stsd = find(c, n, "stsd");
    memcpy(c + stsd + find(c + stsd, n - stsd, "avc1"), "zzzz", 4);
    p = join(dir, "unsupported.mp4");
    write_file(p, c, n);
    free(p);

    size_t mdat = find(b, n, "mdat") + 4;
    memcpy(c, b, n);
    uint32_t seed = 12345;
    for (size_t i = mdat + (n - mdat) / 2; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        c[i] = (uint8_t)(seed >> 24);
    }
    p = join(dir, "corrupt.mp4");
    write_file(p, c, n);
    free(p);

    p = join(dir, "truncated.mp4");
    write_file(p, b, mdat + (n - mdat) / 2);
    free(p);
    free(b);
    free(c);
}

/* clip.mp4: H.264 32x24, 12 frames at 12 fps, AAC tone (1 s);
 * clip.webm: VP8 32x24, 8 frames at 8 fps, no audio;
 * clip.mov: Motion JPEG 31x23 (odd sides), 6 frames at 6 fps, PCM audio (which MP4 cannot
 *   hold: the cartoon is silent, with a warning);
 * clip.mkv: MPEG-4 part 2 32x24, 10 frames at 25 fps;
 * rotated.mp4: clip.mp4's pictures without sound, marked "turn 90 degrees clockwise" (as
 *   phones mark portrait videos): shown 24x32;
 * audio_only.mp4: AAC only, 1 s (no video track). */
static void make_videos(const char *dir, const picture *ph) {
    static const struct {
        const char *name;
        vspec v;
    } list[] = {
        {"clip.mp4", {"libx264", AV_PIX_FMT_YUV420P, 32, 24, 12, 12, "aac", 0, 0}},
        {"clip.webm", {"libvpx", AV_PIX_FMT_YUV420P, 32, 24, 8, 8, NULL, 0, 0}},
        {"clip.mov", {"mjpeg", AV_PIX_FMT_YUVJ420P, 31, 23, 6, 6, "pcm_s16le", 0, 0}},
        {"clip.mkv", {"mpeg4", AV_PIX_FMT_YUV420P, 32, 24, 10, 25, NULL, 0, 0}},
        {"rotated.mp4", {"libx264", AV_PIX_FMT_YUV420P, 32, 24, 12, 12, NULL, 0, 90}},
        {"audio_only.mp4", {"libx264", AV_PIX_FMT_YUV420P, 32, 24, 12, 12, "aac", 1, 0}},
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        char *p = join(dir, list[i].name);
        write_video(p, &list[i].v, ph);
        free(p);
    }
    make_bad_videos(dir);
}

int main(int argc, char **argv) {
    av_log_set_level(AV_LOG_ERROR);
    if (argc == 3 && !strcmp(argv[1], "fixtures")) {
        picture ph = load_photo(DEFAULT_PHOTO);
        cg_mkdir_p(argv[2]);
        make_anim(argv[2], &ph);
        make_disposals(argv[2]);
        make_transparent(argv[2]);
        make_offscreen(argv[2]);
        make_interlaced(argv[2]);
        make_still(argv[2], &ph);
        make_many(argv[2]);
        make_bad_gifs(argv[2]);
        make_videos(argv[2], &ph);
        free(ph.rgb);
        return 0;
    }
    if ((argc == 7 || argc == 8) && !strcmp(argv[1], "video")) {
        picture ph = load_photo(argc == 8 ? argv[7] : DEFAULT_PHOTO);
        vspec v = {"libx264",     AV_PIX_FMT_YUV420P, atoi(argv[4]), atoi(argv[5]),
                   atoi(argv[3]), atoi(argv[6]),      "aac",         0, 0};
        if (v.w < 2 || v.h < 2 || v.frames < 1 || v.fps < 1) die("bad size, frame count or rate");
        write_video(argv[2], &v, &ph);
        free(ph.rgb);
        return 0;
    }
    if ((argc == 6 || argc == 7) && !strcmp(argv[1], "gif")) {
        picture ph = load_photo(argc == 7 ? argv[6] : DEFAULT_PHOTO);
        int n = atoi(argv[3]), w = atoi(argv[4]), h = atoi(argv[5]);
        if (w < 2 || h < 2 || n < 1 || w > 4096 || h > 4096) die("bad size or frame count");
        gframe *f = xmalloc((size_t)n * sizeof *f);
        uint8_t *rgb = xmalloc((size_t)w * h * 3);
        for (int i = 0; i < n; i++) {
            memset(&f[i], 0, sizeof f[i]);
            f[i].w = w, f[i].h = h, f[i].delay = 8, f[i].disposal = DISPOSE_DO_NOT;
            pan_frame(rgb, w, h, &ph, i / 24.0);
            quantize(&f[i], rgb, NULL);
        }
        write_gif(argv[2], w, h, 0, NULL, 0, 0, 1, f, n);
        for (int i = 0; i < n; i++) free(f[i].idx);
        free(f);
        free(rgb);
        free(ph.rgb);
        return 0;
    }
    fprintf(stderr, "usage: make_test_media fixtures DIR\n"
                    "       make_test_media video OUT.mp4 FRAMES WIDTH HEIGHT FPS [PHOTO]\n"
                    "       make_test_media gif OUT.gif FRAMES WIDTH HEIGHT [PHOTO]\n");
    return 2;
}
