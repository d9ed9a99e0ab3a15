/* test_webp_anim.c: tests for src/io/webp_anim.c. The compositing tests build animated
 * WebPs here with libwebpmux (WebPMuxPushFrame: explicit offsets, dispose none/background,
 * blend or not, lossless frames so every pixel is known) and compare each frame the reader
 * gives with a canvas composited by this file's own implementation of the container spec
 * (and with values worked out by hand at a few pixels). The writer is checked by reading
 * its files back: frame count, durations and loop count exact, even across identical
 * frames, pixels within a stated PSNR, alpha within a stated error. Then the hunt file
 * tests/data/media/webp_animated_2frames.webp (copied from shared/data/hunt: an 8x8 red
 * frame, then a blue one, 200 ms each, looping forever), every kind of bad input, and the
 * reader's memory over many frames. Run from the repository root.
 *
 *   test_webp_anim seeds DIR   writes the crafted animations to DIR (the fuzz seeds of
 *                              tests/fuzz/corpus/fuzz_webp_anim, see make_seeds.sh) */
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <unistd.h>
#include <webp/decode.h>
#include <webp/demux.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include "io/webp_anim.h"
#include "io/image.h"
#include "status.h"
#include "test.h"

#define HUNT "tests/data/media/webp_animated_2frames.webp"

/* The writer at CG_WEBP_ANIM_QUALITY (90) gives 35.8-37.0 dB (lowest frame of each round
 * trip, printed) on the 96x64 pattern below, whose dark outlines around saturated colour
 * are hard on 4:2:0 chroma (quality 95 gains only 0.3 dB there); 32 dB leaves about 4 dB
 * for other libwebp builds, and the check can fail: each frame is also compared with the
 * next input frame, which must score under the bar (it does by over 10 dB). For an alpha
 * writer the PSNR is of what a page shows: both composited onto white. */
#define MIN_PSNR 32.0
/* Alpha is stored losslessly, but WebPAnimEncoder treats a pixel within its lossy
 * tolerance of the previous frame's (3 per channel at quality 90, alpha included) as
 * unchanged; measured: exact on the frames below. */
#define MAX_ALPHA_ERR 3

static char tmpdir[64];
static double min_psnr = MIN_PSNR; /* 0 when writing seeds, which are not a quality test */

static char *tmp_path(const char *name) {
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static int write_bytes(const char *path, const uint8_t *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t k = fwrite(d, 1, n, f);
    return fclose(f) == 0 && k == n ? 0 : -1;
}

static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc(len > 0 ? (size_t)len : 1);
    *n = d ? fread(d, 1, (size_t)len, f) : 0;
    fclose(f);
    return d;
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

static int contains(const char *s, const char *part) { return s && strstr(s, part) != NULL; }

/* ---- building animations with libwebpmux ---- */

typedef struct {
    int x, y, w, h;      /* the frame rectangle (x, y even) */
    uint8_t color[4];    /* every pixel of the frame: straight RGBA */
    int duration;
    int dispose_bg;      /* 1: dispose to background; 0: none */
    int blend;           /* 1: alpha-blend over the canvas; 0: replace */
} frame_spec;

/* An animated WebP of the given frames (lossless, so the reader sees exactly `color`),
 * with this canvas, loop count and background colour; NULL on failure. */
static uint8_t *build_anim(int cw, int ch, const frame_spec *fs, int n, int loop, uint32_t bg,
                           size_t *size) {
    WebPMux *mux = WebPMuxNew();
    int ok = mux != NULL;
    for (int i = 0; ok && i < n; i++) {
        const frame_spec *s = &fs[i];
        uint8_t *px = malloc((size_t)s->w * s->h * 4);
        ok = px != NULL;
        for (int k = 0; ok && k < s->w * s->h; k++) memcpy(px + 4 * k, s->color, 4);
        WebPConfig cfg;
        WebPPicture pic;
        WebPMemoryWriter mw;
        WebPMemoryWriterInit(&mw);
        ok = ok && WebPConfigInit(&cfg) && WebPPictureInit(&pic);
        if (ok) {
            cfg.lossless = 1;
            cfg.exact = 1; /* keep the colour under alpha 0 too */
            pic.use_argb = 1;
            pic.width = s->w;
            pic.height = s->h;
            pic.writer = WebPMemoryWrite;
            pic.custom_ptr = &mw;
            ok = WebPPictureImportRGBA(&pic, px, s->w * 4) && WebPEncode(&cfg, &pic);
            WebPPictureFree(&pic);
        }
        free(px);
        WebPMuxFrameInfo fi;
        memset(&fi, 0, sizeof fi);
        fi.bitstream.bytes = mw.mem;
        fi.bitstream.size = mw.size;
        fi.x_offset = s->x;
        fi.y_offset = s->y;
        fi.duration = s->duration;
        fi.id = WEBP_CHUNK_ANMF;
        fi.dispose_method = s->dispose_bg ? WEBP_MUX_DISPOSE_BACKGROUND : WEBP_MUX_DISPOSE_NONE;
        fi.blend_method = s->blend ? WEBP_MUX_BLEND : WEBP_MUX_NO_BLEND;
        ok = ok && WebPMuxPushFrame(mux, &fi, 1) == WEBP_MUX_OK;
        WebPMemoryWriterClear(&mw);
    }
    WebPMuxAnimParams params = {bg, loop};
    WebPData out;
    WebPDataInit(&out);
    ok = ok && WebPMuxSetCanvasSize(mux, cw, ch) == WEBP_MUX_OK &&
         WebPMuxSetAnimationParams(mux, &params) == WEBP_MUX_OK &&
         WebPMuxAssemble(mux, &out) == WEBP_MUX_OK;
    WebPMuxDelete(mux);
    uint8_t *d = NULL;
    if (ok && (d = malloc(out.size))) {
        memcpy(d, out.bytes, out.size);
        *size = out.size;
    }
    WebPDataClear(&out);
    return d;
}

static char *build_anim_file(const char *name, int cw, int ch, const frame_spec *fs, int n,
                             int loop, uint32_t bg) {
    size_t size = 0;
    uint8_t *d = build_anim(cw, ch, fs, n, loop, bg, &size);
    char *path = tmp_path(name);
    int ok = d && write_bytes(path, d, size) == 0;
    free(d);
    CHECK(ok, "cannot build %s", name);
    return path;
}

/* ---- the container spec's compositing, done independently ---- */

/* "Alpha-blending": dst.A' = src.A + dst.A * (1 - src.A/255); dst.RGB' = (src.RGB * src.A
 * + dst.RGB * dst.A * (1 - src.A/255)) / dst.A', and 0 when dst.A' is 0; in exact
 * arithmetic, rounded. */
static void blend_px(uint8_t *d, const uint8_t *s) {
    double sa = s[3] / 255.0, da = d[3] / 255.0 * (1.0 - sa), a = sa + da;
    for (int c = 0; c < 3; c++) d[c] = a > 0 ? (uint8_t)lround((s[c] * sa + d[c] * da) / a) : 0;
    d[3] = (uint8_t)lround(a * 255.0);
}

/* The canvas after each frame, as the spec's pseudo-code draws it: starts transparent
 * (browsers ignore the background colour), each frame blended or copied into its
 * rectangle, then its rectangle cleared to transparent if it disposes to background,
 * before the next frame (dispose() below). `canvas` holds the state between calls. */
static void composite(uint8_t *canvas, int cw, const frame_spec *s) {
    for (int y = s->y; y < s->y + s->h; y++)
        for (int x = s->x; x < s->x + s->w; x++) {
            uint8_t *d = canvas + ((size_t)y * cw + x) * 4;
            if (s->blend)
                blend_px(d, s->color);
            else
                memcpy(d, s->color, 4);
        }
}

static void dispose(uint8_t *canvas, int cw, const frame_spec *s) {
    if (!s->dispose_bg) return;
    for (int y = s->y; y < s->y + s->h; y++) memset(canvas + ((size_t)y * cw + s->x) * 4, 0, (size_t)s->w * 4);
}

/* The reader's frame against the spec's: every channel within 1 (libwebp and Chromium
 * blend in 8-bit fixed point, which can land 1 below the exact value: 50% blue over red
 * gives blue 127 where the formula gives 128); fully transparent pixels exactly 0,0,0,0;
 * `rgb` the reader's own RGBA over white, exactly, and so within 2 of the spec's. Returns
 * the number of bad pixels, printing the first. */
static int compare_frame(const uint8_t *want, const uint8_t *rgba, const uint8_t *rgb, int w,
                         int h, int frame) {
    int bad = 0;
    for (int i = 0; i < w * h; i++) {
        const uint8_t *e = want + 4 * i, *g = rgba + 4 * i, *c = rgb + 3 * i;
        int ok = 1;
        if (e[3] == 0) {
            ok = g[0] == 0 && g[1] == 0 && g[2] == 0 && g[3] == 0;
        } else {
            for (int k = 0; k < 4; k++) ok &= abs((int)g[k] - e[k]) <= 1;
        }
        for (int k = 0; k < 3; k++) {
            unsigned a = g[3], v = (g[k] * a + 255u * (255u - a) + 127u) / 255u;
            ok &= c[k] == v;
        }
        if (!ok && bad++ == 0)
            fprintf(stderr, "  frame %d pixel (%d,%d): rgba %d,%d,%d,%d rgb %d,%d,%d, want %d,%d,%d,%d\n",
                    frame, i % w, i / w, g[0], g[1], g[2], g[3], c[0], c[1], c[2], e[0], e[1],
                    e[2], e[3]);
    }
    return bad;
}

/* The compositing case: an 8x8 canvas and five frames that use every combination. */
static const frame_spec case_frames[] = {
    /* 1: opaque red over the whole canvas */
    {0, 0, 8, 8, {255, 0, 0, 255}, 100, 0, 0},
    /* 2: 4x4 at (2,2), blue at alpha 128 blended over the red, then disposed to background */
    {2, 2, 4, 4, {0, 0, 255, 128}, 50, 1, 1},
    /* 3: 4x2 at (4,4), green at alpha 64 blended: its left half falls on the hole frame 2
     * left (transparent), its right half on red */
    {4, 4, 4, 2, {0, 255, 0, 64}, 0, 0, 1},
    /* 4: 2x2 at (0,0), alpha 100 without blending: replaces the red, then disposed */
    {0, 0, 2, 2, {10, 20, 30, 100}, 1000, 1, 0},
    /* 5: 2x2 at (6,6), opaque white blended, on a canvas where frame 4's square is gone */
    {6, 6, 2, 2, {255, 255, 255, 255}, 7, 0, 1},
};
#define CASE_N ((int)(sizeof case_frames / sizeof case_frames[0]))

static void test_compositing(void) {
    char *path = build_anim_file("case.webp", 8, 8, case_frames, CASE_N, 3, 0x11223344u);
    cg_webp_anim_reader *r = NULL;
    cg_status s = cg_webp_anim_open(&r, path, 0);
    CHECK(s == CG_OK, "open: %s", cg_last_error());
    if (s != CG_OK) return;
    const cg_webp_anim_info *info = cg_webp_anim_get_info(r);
    CHECK(info->width == 8 && info->height == 8, "canvas %dx%d", info->width, info->height);
    CHECK(info->frame_count == CASE_N, "%d frames", info->frame_count);
    CHECK(info->loop_count == 3, "loop count %d", info->loop_count);
    CHECK(info->has_alpha == 1, "has_alpha %d", info->has_alpha);
    CHECK(info->bgcolor == 0x11223344u, "bgcolor %08x", (unsigned)info->bgcolor);
    for (int i = 0; i < CASE_N && i < info->frame_count; i++)
        CHECK(info->durations[i] == case_frames[i].duration, "frame %d duration %d, want %d",
              i + 1, info->durations[i], case_frames[i].duration);

    uint8_t canvas[8 * 8 * 4] = {0}, rgba[8 * 8 * 4], rgb[8 * 8 * 3], first[8 * 8 * 4];
    for (int i = 0; i < CASE_N; i++) {
        if (i > 0) dispose(canvas, 8, &case_frames[i - 1]);
        composite(canvas, 8, &case_frames[i]);
        memset(rgba, 0xab, sizeof rgba);
        s = cg_webp_anim_read_frame(r, rgb, rgba);
        CHECK(s == CG_OK, "frame %d: %s", i + 1, cg_last_error());
        CHECK(compare_frame(canvas, rgba, rgb, 8, 8, i + 1) == 0, "frame %d differs from the spec's",
              i + 1);
        if (i == 0) memcpy(first, rgba, sizeof rgba);
#define PX(x, y) (rgba + ((y) * 8 + (x)) * 4)
        /* by hand, a few pixels of each frame */
        if (i == 1) {
            /* 128/255 of blue over red: R = 255 * 127/255 = 127, B = 255 * 128/255 = 128;
             * libwebp gets 126 and 127 (its 2^24/255 scale is rounded down) */
            uint8_t *p = PX(3, 3);
            CHECK(abs(p[0] - 127) <= 1 && p[1] == 0 && abs(p[2] - 128) <= 1 && p[3] == 255,
                  "(3,3) after frame 2: %d,%d,%d,%d", p[0], p[1], p[2], p[3]);
            CHECK(PX(1, 1)[0] == 255 && PX(1, 1)[3] == 255, "(1,1) after frame 2 is not red");
        }
        if (i == 2) {
            /* frame 2's square is transparent again; frame 3's left half is alone there */
            CHECK(PX(3, 3)[3] == 0, "(3,3) after frame 3 has alpha %d, want 0", PX(3, 3)[3]);
            uint8_t *p = PX(4, 4);
            CHECK(p[0] == 0 && abs(p[1] - 255) <= 1 && p[2] == 0 && p[3] == 64,
                  "(4,4) after frame 3: %d,%d,%d,%d, want 0,255,0,64", p[0], p[1], p[2], p[3]);
            /* green at 64/255 over red: R = 255 * 191/255 = 191, G = 255 * 64/255 = 64 */
            p = PX(6, 4);
            CHECK(abs(p[0] - 191) <= 1 && abs(p[1] - 64) <= 1 && p[2] == 0 && p[3] == 255,
                  "(6,4) after frame 3: %d,%d,%d,%d, want 191,64,0,255", p[0], p[1], p[2], p[3]);
            /* over white: 255 - 64/255 * 255 (R, B) and 255 (G) */
            const uint8_t *c = rgb + (4 * 8 + 4) * 3;
            CHECK(c[0] == 191 && c[1] == 255 && c[2] == 191, "(4,4) over white: %d,%d,%d", c[0],
                  c[1], c[2]);
        }
        if (i == 3) {
            uint8_t *p = PX(1, 0);
            CHECK(p[0] == 10 && p[1] == 20 && p[2] == 30 && p[3] == 100,
                  "(1,0) after frame 4: %d,%d,%d,%d, want 10,20,30,100 (not blended)", p[0],
                  p[1], p[2], p[3]);
        }
        if (i == 4) {
            CHECK(PX(0, 0)[3] == 0 && PX(1, 1)[3] == 0, "frame 4's square was not disposed");
            CHECK(PX(7, 7)[0] == 255 && PX(7, 7)[1] == 255 && PX(7, 7)[3] == 255,
                  "(7,7) after frame 5 is not white");
            CHECK(PX(4, 4)[3] == 64, "(4,4) after frame 5: alpha %d, want 64", PX(4, 4)[3]);
        }
#undef PX
    }
    CHECK(cg_webp_anim_read_frame(r, rgb, NULL) == CG_ERR_ARG, "a frame after the last");
    CHECK(contains(cg_last_error(), "no frame after frame 5"), "message: %s", cg_last_error());
    cg_webp_anim_close(r);

    /* from memory, the same; and rgb or rgba alone */
    size_t n = 0;
    uint8_t *d = read_bytes(path, &n);
    s = cg_webp_anim_open_memory(&r, d, n, "case", 0);
    free(d); /* open_memory copies */
    CHECK(s == CG_OK, "open_memory: %s", cg_last_error());
    if (s == CG_OK) {
        CHECK(cg_webp_anim_read_frame(r, NULL, rgba) == CG_OK && !memcmp(rgba, first, sizeof rgba),
              "open_memory's first frame differs");
        CHECK(cg_webp_anim_read_frame(r, rgb, NULL) == CG_OK, "rgb alone: %s", cg_last_error());
        CHECK(cg_webp_anim_read_frame(r, NULL, NULL) == CG_OK, "neither: %s", cg_last_error());
        cg_webp_anim_close(r);
    }
}

/* An opaque animation: no alpha flag; frames that cover only part of the canvas leave
 * the rest transparent until something is drawn there. */
static void test_opaque_info(void) {
    const frame_spec fs[] = {
        {2, 0, 2, 2, {1, 2, 3, 255}, 20, 0, 1},
        {0, 0, 4, 2, {9, 8, 7, 255}, 30, 0, 0},
    };
    char *path = build_anim_file("opaque.webp", 4, 2, fs, 2, 0, 0xffffffffu);
    cg_webp_anim_reader *r = NULL;
    cg_status s = cg_webp_anim_open(&r, path, 0);
    CHECK(s == CG_OK, "open: %s", cg_last_error());
    if (s != CG_OK) return;
    const cg_webp_anim_info *info = cg_webp_anim_get_info(r);
    CHECK(info->has_alpha == 0, "has_alpha %d", info->has_alpha);
    CHECK(info->loop_count == 0 && info->frame_count == 2, "loop %d, %d frames", info->loop_count,
          info->frame_count);
    uint8_t rgba[4 * 2 * 4], rgb[4 * 2 * 3];
    CHECK(cg_webp_anim_read_frame(r, rgb, rgba) == CG_OK, "frame 1: %s", cg_last_error());
    CHECK(rgba[3] == 0 && rgb[0] == 255 && rgb[1] == 255 && rgb[2] == 255,
          "(0,0) of frame 1 is not transparent (white in rgb)");
    CHECK(rgba[8] == 1 && rgba[9] == 2 && rgba[10] == 3 && rgba[11] == 255, "(2,0) of frame 1");
    CHECK(cg_webp_anim_read_frame(r, rgb, rgba) == CG_OK, "frame 2: %s", cg_last_error());
    CHECK(rgb[0] == 9 && rgb[1] == 8 && rgb[2] == 7, "(0,0) of frame 2: %d,%d,%d", rgb[0], rgb[1],
          rgb[2]);
    cg_webp_anim_close(r);
}

static void test_probe_and_playback(void) {
    size_t n = 0;
    uint8_t *d = read_bytes(HUNT, &n);
    CHECK(d && cg_webp_is_animated(d, n), "the hunt file is not seen as animated");
    CHECK(d && cg_webp_is_animated(d, 21) && !cg_webp_is_animated(d, 20), "the 21-byte probe");
    free(d);
    uint8_t px[4 * 4 * 4] = {0}, *still = NULL;
    size_t sn = WebPEncodeLosslessRGBA(px, 4, 4, 16, &still);
    CHECK(sn > 0 && !cg_webp_is_animated(still, sn), "a still WebP is seen as animated");
    WebPFree(still);
    CHECK(!cg_webp_is_animated(NULL, 100), "NULL");
    CHECK(!cg_webp_is_animated((const uint8_t *)"GIF89a", 6), "a GIF");
    CHECK(cg_webp_anim_playback_ms(0) == 100 && cg_webp_anim_playback_ms(10) == 100 &&
              cg_webp_anim_playback_ms(11) == 11 && cg_webp_anim_playback_ms(200) == 200,
          "playback durations");
}

static void test_hunt_file(void) {
    cg_webp_anim_reader *r = NULL;
    cg_status s = cg_webp_anim_open(&r, HUNT, 0);
    CHECK(s == CG_OK, "%s", cg_last_error());
    if (s != CG_OK) return;
    const cg_webp_anim_info *info = cg_webp_anim_get_info(r);
    printf("  %s: %dx%d, %d frames, durations", HUNT, info->width, info->height, info->frame_count);
    for (int i = 0; i < info->frame_count; i++) printf(" %d", info->durations[i]);
    printf(" ms, loop count %d, alpha %d, bgcolor %08x\n", info->loop_count, info->has_alpha,
           (unsigned)info->bgcolor);
    CHECK(info->width == 8 && info->height == 8, "%dx%d", info->width, info->height);
    CHECK(info->frame_count == 2, "%d frames", info->frame_count);
    CHECK(info->frame_count == 2 && info->durations[0] == 200 && info->durations[1] == 200,
          "durations");
    CHECK(info->loop_count == 0, "loop count %d", info->loop_count);
    CHECK(info->has_alpha == 0, "has_alpha %d", info->has_alpha);
    uint8_t rgb[8 * 8 * 3];
    static const uint8_t want[2][3] = {{255, 0, 0}, {0, 0, 255}};
    for (int f = 0; f < 2; f++) {
        s = cg_webp_anim_read_frame(r, rgb, NULL);
        CHECK(s == CG_OK, "frame %d: %s", f + 1, cg_last_error());
        int same = 1;
        for (int i = 0; i < 64; i++) same &= !memcmp(rgb + 3 * i, want[f], 3);
        CHECK(s == CG_OK && same, "frame %d is not all %d,%d,%d", f + 1, want[f][0], want[f][1],
              want[f][2]);
    }
    cg_webp_anim_close(r);
}

/* ---- the writer ---- */

/* A test frame, cartoon-like: smooth shading, and a flat disc with a dark outline that
 * moves 6 pixels a frame; with alpha, an alpha ramp from left to right, a fully
 * transparent band at the top and the disc opaque. */
static void pattern(uint8_t *px, int w, int h, int t, int ch) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + ((size_t)y * w + x) * ch;
            int dx = x - (12 + 6 * t), dy = y - h / 2, r2 = dx * dx + dy * dy;
            int disc = r2 < 100, outline = r2 >= 100 && r2 < 144;
            p[0] = (uint8_t)(outline ? 30 : disc ? 250 : 128 + 60 * sin(x / 9.0));
            p[1] = (uint8_t)(outline ? 30 : disc ? 200 : 100 + 2 * y);
            p[2] = (uint8_t)(outline ? 40 : disc ? 80 : 150 - x);
            if (ch == 4) p[3] = (uint8_t)(disc || outline ? 255 : y < 4 ? 0 : 255 * x / (w - 1));
        }
}

typedef struct {
    int t;        /* the pattern's time */
    int duration; /* ms */
} wframe;

/* Writes frames, reads the file back and checks it. Returns the lowest PSNR. */
static double round_trip(const char *name, int w, int h, const wframe *fr, int n, int loop,
                         int alpha) {
    const int ch = alpha ? 4 : 3;
    size_t px = (size_t)w * h;
    uint8_t *in = malloc(px * ch), *rgba = malloc(px * 4), *rgb = malloc(px * 3),
            *prev = malloc(px * 4);
    char *path = tmp_path(name);
    cg_webp_anim_writer *wr = NULL;
    cg_status s = cg_webp_anim_writer_open(&wr, path, w, h, loop, alpha);
    CHECK(s == CG_OK, "writer_open: %s", cg_last_error());
    for (int i = 0; s == CG_OK && i < n; i++) {
        pattern(in, w, h, fr[i].t, ch);
        s = cg_webp_anim_writer_add(wr, in, fr[i].duration);
        CHECK(s == CG_OK, "add %d: %s", i + 1, cg_last_error());
    }
    if (s == CG_OK) {
        s = cg_webp_anim_writer_finish(wr);
        CHECK(s == CG_OK, "finish: %s", cg_last_error());
    } else {
        cg_webp_anim_writer_abort(wr);
    }
    double worst = 99.0, worst_next = 0;
    cg_webp_anim_reader *r = NULL;
    if (s == CG_OK) {
        s = cg_webp_anim_open(&r, path, 0);
        CHECK(s == CG_OK, "read back: %s", cg_last_error());
    }
    if (s == CG_OK) {
        const cg_webp_anim_info *info = cg_webp_anim_get_info(r);
        CHECK(info->width == w && info->height == h, "%dx%d", info->width, info->height);
        CHECK(info->frame_count == n, "%d frames, want %d", info->frame_count, n);
        CHECK(info->loop_count == loop, "loop count %d, want %d", info->loop_count, loop);
        for (int i = 0; i < n && i < info->frame_count; i++)
            CHECK(info->durations[i] == fr[i].duration, "frame %d duration %d, want %d", i + 1,
                  info->durations[i], fr[i].duration);
        int max_alpha_err = 0;
        for (int i = 0; i < n && i < info->frame_count; i++) {
            s = cg_webp_anim_read_frame(r, rgb, rgba);
            CHECK(s == CG_OK, "frame %d: %s", i + 1, cg_last_error());
            if (s != CG_OK) break;
            pattern(in, w, h, fr[i].t, ch);
            double p;
            if (!alpha) {
                p = psnr(rgb, in, px * 3);
            } else {
                /* what a page shows: both over white; and the alpha plane */
                uint8_t *in_rgb = malloc(px * 3);
                for (size_t k = 0; k < px; k++) {
                    unsigned a = in[4 * k + 3];
                    int e = abs((int)rgba[4 * k + 3] - (int)a);
                    if (e > max_alpha_err) max_alpha_err = e;
                    for (int c = 0; c < 3; c++)
                        in_rgb[3 * k + c] =
                            (uint8_t)((in[4 * k + c] * a + 255u * (255u - a) + 127u) / 255u);
                }
                p = psnr(rgb, in_rgb, px * 3);
                free(in_rgb);
            }
            if (p < worst) worst = p;
            CHECK(p >= min_psnr, "frame %d: PSNR %.1f dB", i + 1, p);
            /* the bar can fail: the next input frame, where it differs, is far below it */
            if (i + 1 < n && fr[i + 1].t != fr[i].t) {
                uint8_t *next = malloc(px * ch);
                pattern(next, w, h, fr[i + 1].t, ch);
                double q = alpha ? 0 : psnr(rgb, next, px * 3);
                if (!alpha && q > worst_next) worst_next = q;
                if (!alpha) CHECK(q < MIN_PSNR, "frame %d is as close to frame %d (%.1f dB)", i + 1,
                                  i + 2, q);
                free(next);
            }
            if (!alpha) {
                /* an opaque animation is opaque once composited, whatever its alpha flag
                 * says (WebPAnimEncoder codes unchanged pixels as transparent) */
                int opaque = 1;
                for (size_t k = 0; k < px; k++) opaque &= rgba[4 * k + 3] == 255;
                CHECK(opaque, "frame %d of an opaque writer has transparent pixels", i + 1);
            }
            /* the same input twice in a row is shown the same: the encoder's merged frame
             * is stood in for by one that leaves the canvas as it was */
            if (i > 0 && fr[i].t == fr[i - 1].t)
                CHECK(!memcmp(rgba, prev, px * 4), "frame %d (a repeat) is not shown as frame %d",
                      i + 1, i);
            memcpy(prev, rgba, px * 4);
        }
        if (alpha) {
            CHECK(max_alpha_err <= MAX_ALPHA_ERR, "alpha off by %d", max_alpha_err);
            printf("  %s: largest alpha error %d\n", name, max_alpha_err);
        }
        cg_webp_anim_close(r);
    }
    size_t fsize = 0;
    free(read_bytes(path, &fsize));
    printf("  %s: %d frames %dx%d, %zu bytes, lowest PSNR %.1f dB", name, n, w, h, fsize, worst);
    if (worst_next > 0) printf(" (against the next frame: at most %.1f dB)", worst_next);
    printf("\n");
    free(in);
    free(rgba);
    free(rgb);
    free(prev);
    return worst;
}

static void test_writer_round_trip(void) {
    /* distinct durations (0 included), frames 3 and 4 identical, frames 6..8 identical */
    static const wframe fr[] = {{0, 100}, {1, 40}, {2, 0}, {2, 250}, {3, 15},
                                {4, 1000}, {4, 33}, {4, 34}, {5, 70}};
    round_trip("rgb.webp", 96, 64, fr, (int)(sizeof fr / sizeof fr[0]), 3, 0);
    round_trip("rgba.webp", 96, 64, fr, (int)(sizeof fr / sizeof fr[0]), 0, 1);
    /* one frame; and only repeats, which the encoder makes a still image of */
    static const wframe one[] = {{1, 120}};
    round_trip("one.webp", 96, 64, one, 1, 1, 0);
    static const wframe same[] = {{1, 10}, {1, 20}, {1, 30}};
    round_trip("same.webp", 96, 64, same, 3, 2, 0);
    round_trip("same_alpha.webp", 96, 64, same, 3, 2, 1);
    /* the largest duration and loop count; out-of-range durations are clamped */
    static const wframe big[] = {{0, CG_WEBP_ANIM_MAX_DURATION}, {1, 1}};
    round_trip("big.webp", 96, 64, big, 2, CG_WEBP_ANIM_MAX_LOOP, 0);
    cg_webp_anim_writer *w = NULL;
    uint8_t px[16 * 16 * 3] = {0};
    char *path = tmp_path("clamp.webp");
    cg_status s = cg_webp_anim_writer_open(&w, path, 16, 16, 0, 0);
    CHECK(s == CG_OK, "%s", cg_last_error());
    if (s == CG_OK) {
        px[0] = 1;
        cg_webp_anim_writer_add(w, px, -5);
        px[0] = 200;
        cg_webp_anim_writer_add(w, px, 1 << 30);
        CHECK(cg_webp_anim_writer_finish(w) == CG_OK, "%s", cg_last_error());
        cg_webp_anim_reader *r = NULL;
        if (cg_webp_anim_open(&r, path, 0) == CG_OK) {
            const cg_webp_anim_info *info = cg_webp_anim_get_info(r);
            CHECK(info->frame_count == 2 && info->durations[0] == 0 &&
                      info->durations[1] == CG_WEBP_ANIM_MAX_DURATION,
                  "clamped durations");
            cg_webp_anim_close(r);
        }
    }
}

/* A frame drawn with alpha blending and then repeated: the writer's stand-in for the
 * repeat must be a transparent frame, since drawing a half-transparent frame twice would
 * blend it twice (alpha 120 would become 183). The square of b is half transparent on a
 * transparent canvas, so the encoder can (and, in libwebp 1.2.4, does) blend it; the
 * frames the file holds are printed. */
static void test_writer_repeat_kinds(void) {
    const int w = 32, h = 32;
    uint8_t *a = calloc((size_t)w * h, 4), *b = malloc((size_t)w * h * 4);
    for (int i = 0; i < w * h; i++) {
        int x = i % w, y = i / w;
        uint8_t *p = a + 4 * i, *q = b + 4 * i;
        if (x < 4 && y < 4) p[0] = 200, p[1] = 30, p[2] = 30, p[3] = 255; /* a red dot */
        memcpy(q, p, 4);
        if (x >= 8 && x < 24 && y >= 8 && y < 24) q[0] = 0, q[1] = 0, q[2] = 220, q[3] = 120;
    }
    const uint8_t *seq[] = {a, b, b, b, a};
    const int dur[] = {10, 20, 30, 40, 50};
    char *path = tmp_path("repeat_kinds.webp");
    cg_webp_anim_writer *wr = NULL;
    cg_status s = cg_webp_anim_writer_open(&wr, path, w, h, 0, 1);
    for (int i = 0; s == CG_OK && i < 5; i++) s = cg_webp_anim_writer_add(wr, seq[i], dur[i]);
    if (s == CG_OK) s = cg_webp_anim_writer_finish(wr);
    CHECK(s == CG_OK, "%s", cg_last_error());
    cg_webp_anim_reader *r = NULL;
    if (s == CG_OK) s = cg_webp_anim_open(&r, path, 0);
    CHECK(s == CG_OK, "%s", cg_last_error());
    if (s == CG_OK) {
        const cg_webp_anim_info *info = cg_webp_anim_get_info(r);
        CHECK(info->frame_count == 5, "%d frames", info->frame_count);
        uint8_t *got[5];
        for (int i = 0; i < 5; i++) {
            got[i] = malloc((size_t)w * h * 4);
            CHECK(i >= info->frame_count || cg_webp_anim_read_frame(r, NULL, got[i]) == CG_OK,
                  "frame %d: %s", i + 1, cg_last_error());
        }
        CHECK(!memcmp(got[1], got[2], (size_t)w * h * 4) && !memcmp(got[2], got[3], (size_t)w * h * 4),
              "the repeats are not shown as frame 2");
        const uint8_t *p = got[3] + (16 * w + 16) * 4;
        CHECK(abs(p[3] - 120) <= MAX_ALPHA_ERR && abs(p[2] - 220) <= 12,
              "frame 4 centre %d,%d,%d,%d, want about 0,0,220,120", p[0], p[1], p[2], p[3]);
        p = got[4] + (16 * w + 16) * 4;
        CHECK(p[3] == 0, "frame 5 centre %d,%d,%d,%d, want transparent", p[0], p[1], p[2], p[3]);
        p = got[4];
        CHECK(p[3] == 255 && abs(p[0] - 200) <= 12, "frame 5 corner %d,%d,%d,%d, want about "
              "200,30,30,255", p[0], p[1], p[2], p[3]);
        for (int i = 0; i < 5; i++) free(got[i]);
        cg_webp_anim_close(r);
    }
    /* what the file holds, for the record */
    size_t n = 0;
    uint8_t *d = read_bytes(path, &n);
    WebPData wd = {d, n};
    WebPDemuxer *dmx = d ? WebPDemux(&wd) : NULL;
    WebPIterator it;
    if (dmx && WebPDemuxGetFrame(dmx, 1, &it)) {
        printf("  repeat_kinds.webp frames:");
        do printf(" [%dx%d+%d+%d %s %s%s %d ms]", it.width, it.height, it.x_offset, it.y_offset,
                  it.blend_method == WEBP_MUX_BLEND ? "blend" : "no-blend",
                  it.dispose_method == WEBP_MUX_DISPOSE_BACKGROUND ? "dispose-bg" : "keep",
                  it.has_alpha ? " alpha" : "", it.duration);
        while (WebPDemuxNextFrame(&it));
        printf("\n");
        WebPDemuxReleaseIterator(&it);
    }
    WebPDemuxDelete(dmx);
    free(d);
    free(a);
    free(b);
}

/* Repeats of a frame that the encoder disposes to background (a square that moves on a
 * transparent canvas): the disposal must happen after the last repeat, not after the
 * first, or the repeats would show an empty canvas. */
static void test_writer_repeat_dispose(void) {
    const int w = 48, h = 32;
    uint8_t *f[2];
    for (int k = 0; k < 2; k++) {
        f[k] = calloc((size_t)w * h, 4);
        for (int y = 8; y < 24; y++)
            for (int x = 4 + 24 * k; x < 20 + 24 * k; x++) {
                uint8_t *p = f[k] + ((size_t)y * w + x) * 4;
                p[0] = 40, p[1] = 160, p[2] = 90, p[3] = 255;
            }
    }
    const int seq[] = {0, 0, 0, 1, 1, 0};
    const int n = (int)(sizeof seq / sizeof seq[0]);
    char *path = tmp_path("repeat_dispose.webp");
    cg_webp_anim_writer *wr = NULL;
    cg_status s = cg_webp_anim_writer_open(&wr, path, w, h, 0, 1);
    for (int i = 0; s == CG_OK && i < n; i++) s = cg_webp_anim_writer_add(wr, f[seq[i]], 10 * (i + 1));
    if (s == CG_OK) s = cg_webp_anim_writer_finish(wr);
    CHECK(s == CG_OK, "%s", cg_last_error());
    cg_webp_anim_reader *r = NULL;
    if (s == CG_OK) s = cg_webp_anim_open(&r, path, 0);
    CHECK(s == CG_OK, "%s", cg_last_error());
    uint8_t *got = malloc((size_t)w * h * 4);
    for (int i = 0; s == CG_OK && i < n; i++) {
        s = cg_webp_anim_read_frame(r, NULL, got);
        CHECK(s == CG_OK, "frame %d: %s", i + 1, cg_last_error());
        CHECK(cg_webp_anim_get_info(r)->durations[i] == 10 * (i + 1), "frame %d duration", i + 1);
        /* the square where it should be, and nothing where the other one was */
        const uint8_t *in = got + ((size_t)16 * w + 12 + 24 * seq[i]) * 4;
        const uint8_t *out = got + ((size_t)16 * w + 12 + 24 * !seq[i]) * 4;
        CHECK(s != CG_OK || (in[3] == 255 && abs(in[1] - 160) <= 8 && out[3] == 0),
              "frame %d: square alpha %d green %d, other place alpha %d", i + 1, in[3], in[1],
              out[3]);
    }
    if (r) cg_webp_anim_close(r);
    free(got);
    free(f[0]);
    free(f[1]);
    size_t nb = 0;
    uint8_t *d = read_bytes(path, &nb);
    WebPData wd = {d, nb};
    WebPDemuxer *dmx = d ? WebPDemux(&wd) : NULL;
    WebPIterator it;
    if (dmx && WebPDemuxGetFrame(dmx, 1, &it)) {
        printf("  repeat_dispose.webp frames:");
        do printf(" [%dx%d+%d+%d %s %s%s]", it.width, it.height, it.x_offset, it.y_offset,
                  it.blend_method == WEBP_MUX_BLEND ? "blend" : "no-blend",
                  it.dispose_method == WEBP_MUX_DISPOSE_BACKGROUND ? "dispose-bg" : "keep",
                  it.has_alpha ? " alpha" : "");
        while (WebPDemuxNextFrame(&it));
        printf("\n");
        WebPDemuxReleaseIterator(&it);
    }
    WebPDemuxDelete(dmx);
    free(d);
}

/* A half-transparent square, then the same square with two opaque dots inside it: left to
 * itself, libwebp's lossy WebPAnimEncoder codes frame 2 as a blended rectangle that still
 * holds the square's unchanged half-transparent pixels, which decoders blend over the
 * square again (alpha 120 shows as 183). The alpha writer codes every frame whole. */
static void test_writer_alpha_blend(void) {
    const int w = 48, h = 48;
    uint8_t *a = calloc((size_t)w * h, 4), *b = malloc((size_t)w * h * 4);
    for (int y = 8; y < 40; y++)
        for (int x = 8; x < 40; x++) {
            uint8_t *p = a + ((size_t)y * w + x) * 4;
            p[2] = 220, p[3] = 120;
        }
    memcpy(b, a, (size_t)w * h * 4);
    for (int k = 0; k < 8; k++) {
        int x = (k & 4 ? 37 : 9) + (k & 1), y = (k & 4 ? 37 : 9) + (k >> 1 & 1);
        uint8_t *p = b + ((size_t)y * w + x) * 4;
        p[0] = 255, p[1] = 255, p[2] = 0, p[3] = 255;
    }
    const uint8_t *seq[] = {a, b, b};
    char *path = tmp_path("alpha_blend.webp");
    cg_webp_anim_writer *wr = NULL;
    cg_status s = cg_webp_anim_writer_open(&wr, path, w, h, 0, 1);
    for (int i = 0; s == CG_OK && i < 3; i++) s = cg_webp_anim_writer_add(wr, seq[i], 100);
    if (s == CG_OK) s = cg_webp_anim_writer_finish(wr);
    CHECK(s == CG_OK, "%s", cg_last_error());
    cg_webp_anim_reader *r = NULL;
    if (s == CG_OK) s = cg_webp_anim_open(&r, path, 0);
    uint8_t *got = malloc((size_t)w * h * 4);
    for (int i = 0; s == CG_OK && i < 3; i++) {
        s = cg_webp_anim_read_frame(r, NULL, got);
        CHECK(s == CG_OK, "frame %d: %s", i + 1, cg_last_error());
        int worst = 0;
        for (int k = 0; s == CG_OK && k < w * h; k++) {
            int e = abs((int)got[4 * k + 3] - seq[i][4 * k + 3]);
            if (e > worst) worst = e;
        }
        CHECK(worst <= MAX_ALPHA_ERR, "frame %d: alpha off by %d (centre %d, want 120)", i + 1,
              worst, got[(24 * w + 24) * 4 + 3]);
    }
    if (r) cg_webp_anim_close(r);
    free(got);
    free(a);
    free(b);
}

static void test_writer_errors(void) {
    cg_webp_anim_writer *w = (cg_webp_anim_writer *)1;
    CHECK(cg_webp_anim_writer_open(&w, tmp_path("x.webp"), 0, 10, 0, 0) == CG_ERR_LIMIT && !w,
          "0 wide");
    CHECK(contains(cg_last_error(), "1 to 16383 pixels a side"), "message: %s", cg_last_error());
    CHECK(cg_webp_anim_writer_open(&w, tmp_path("x.webp"), 16384, 10, 0, 0) == CG_ERR_LIMIT,
          "16384 wide");
    CHECK(cg_webp_anim_writer_open(&w, tmp_path("x.webp"), 10, 10, -1, 0) == CG_ERR_ARG, "loop -1");
    CHECK(cg_webp_anim_writer_open(&w, tmp_path("x.webp"), 10, 10, 65536, 0) == CG_ERR_ARG,
          "loop 65536");
    CHECK(cg_webp_anim_writer_open(NULL, tmp_path("x.webp"), 10, 10, 0, 0) == CG_ERR_ARG, "NULL");
    /* a folder that cannot be made: its parent is a file */
    char *file = tmp_path("plain_file");
    write_bytes(file, (const uint8_t *)"x", 1);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/sub/out.webp", file);
    CHECK(cg_webp_anim_writer_open(&w, bad, 10, 10, 0, 0) == CG_ERR_IO, "under a file: %s",
          cg_last_error());
    /* finishing without frames and aborting both leave nothing */
    char *path = tmp_path("nothing.webp");
    if (cg_webp_anim_writer_open(&w, path, 10, 10, 0, 0) == CG_OK) {
        CHECK(cg_webp_anim_writer_finish(w) == CG_ERR_ARG, "finish with no frames");
        CHECK(contains(cg_last_error(), "no frames"), "message: %s", cg_last_error());
    }
    CHECK(access(path, F_OK) != 0, "a file was left by a failed finish");
    uint8_t px[10 * 10 * 3] = {0};
    if (cg_webp_anim_writer_open(&w, path, 10, 10, 0, 0) == CG_OK) {
        CHECK(cg_webp_anim_writer_add(w, NULL, 10) == CG_ERR_ARG, "NULL pixels");
        CHECK(cg_webp_anim_writer_add(w, px, 10) == CG_OK, "%s", cg_last_error());
        cg_webp_anim_writer_abort(w);
    }
    CHECK(access(path, F_OK) != 0, "abort left a file");
    cg_webp_anim_writer_abort(NULL);
    /* no temporary files left in the folder either */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls -A %s | grep -q '^\\..*tmp-'", tmpdir);
    CHECK(system(cmd) != 0, "a temporary file is left in %s", tmpdir);
}

/* ---- bad input ---- */

static void expect_open_error(const char *path, cg_status want, const char *part, uint64_t max_px) {
    cg_webp_anim_reader *r = (cg_webp_anim_reader *)1;
    cg_status s = cg_webp_anim_open(&r, path, max_px);
    CHECK(s == want && r == NULL, "%s: status %d, want %d (%s)", path, s, want, cg_last_error());
    CHECK(contains(cg_last_error(), part) && contains(cg_last_error(), path),
          "%s: message '%s' does not say '%s'", path, cg_last_error(), part);
    if (s == CG_OK) cg_webp_anim_close(r);
}

static void test_bad_input(void) {
    size_t n = 0;
    uint8_t *d = build_anim(8, 8, case_frames, CASE_N, 0, 0, &n);
    CHECK(d != NULL, "build");
    if (!d) return;
    /* truncated: inside a frame, inside the RIFF header, inside the VP8X header */
    char *p = tmp_path("truncated.webp");
    const size_t cuts[] = {n - 1, n / 2, 31, 29, 20, 11, 5};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_bytes(p, d, cuts[i]);
        expect_open_error(p, CG_ERR_FORMAT, "truncated", 0);
    }
    /* the same bytes in memory */
    cg_webp_anim_reader *r = NULL;
    CHECK(cg_webp_anim_open_memory(&r, d, n - 1, "mem", 0) == CG_ERR_FORMAT && !r &&
              contains(cg_last_error(), "mem: truncated"),
          "memory, truncated: %s", cg_last_error());
    /* over the pixel limit (8x8 = 64), before anything else */
    p = tmp_path("limit.webp");
    write_bytes(p, d, n);
    expect_open_error(p, CG_ERR_LIMIT, "canvas is 8x8 (64 pixels), over the limit of 63 pixels", 63);
    cg_webp_anim_reader *ok = NULL;
    CHECK(cg_webp_anim_open(&ok, p, 64) == CG_OK, "64 pixels with a limit of 64: %s", cg_last_error());
    cg_webp_anim_close(ok);
    /* a 30-byte file whose VP8X header claims 16384 x 16384: refused for its size (not
     * for having no frames), before libwebp sees it */
    uint8_t huge[30] = {'R', 'I', 'F', 'F', 22, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'X',
                        10, 0, 0, 0, 0x12, 0, 0, 0, 0xff, 0x3f, 0, 0xff, 0x3f, 0};
    p = tmp_path("huge.webp");
    write_bytes(p, huge, sizeof huge);
    expect_open_error(p, CG_ERR_LIMIT, "16384x16384 (268.4 megapixels), over the limit of 100.0 "
                      "megapixels", 0);
    /* with a canvas within the limit, the same file has no frames */
    huge[25] = huge[28] = 0;
    write_bytes(p, huge, sizeof huge);
    expect_open_error(p, CG_ERR_FORMAT, "corrupt WebP", 0);
    /* still WebPs: simple lossless, and extended (VP8X with alpha, no animation flag) */
    uint8_t px[4 * 4 * 4];
    memset(px, 128, sizeof px);
    uint8_t *still = NULL;
    size_t sn = WebPEncodeLosslessRGBA(px, 4, 4, 16, &still);
    p = tmp_path("still.webp");
    write_bytes(p, still, sn);
    WebPFree(still);
    expect_open_error(p, CG_ERR_FORMAT, "a still WebP, not animated: load it with cg_image_load", 0);
    sn = WebPEncodeRGBA(px, 4, 4, 16, 80, &still);
    CHECK(sn > 20 && !memcmp(still + 12, "VP8X", 4), "lossy with alpha is not VP8X");
    write_bytes(p, still, sn);
    WebPFree(still);
    expect_open_error(p, CG_ERR_FORMAT, "not animated", 0);
    /* not WebP at all; empty; missing */
    expect_open_error("tests/data/media/anim.gif", CG_ERR_FORMAT, "not a WebP file", 0);
    p = tmp_path("riff.wav");
    write_bytes(p, (const uint8_t *)"RIFF\x24\0\0\0WAVEfmt ", 16);
    expect_open_error(p, CG_ERR_FORMAT, "not a WebP file", 0);
    p = tmp_path("empty.webp");
    write_bytes(p, d, 0);
    expect_open_error(p, CG_ERR_FORMAT, "empty file", 0);
    expect_open_error(tmp_path("missing.webp"), CG_ERR_IO, "no such file", 0);
    expect_open_error(tmpdir, CG_ERR_IO, "not a regular file", 0);

    /* a frame whose data is corrupt after a sound header: the open succeeds (no pixel is
     * decoded), frame 1 decodes, frame 2 fails and says which */
    const frame_spec two[] = {
        {0, 0, 8, 8, {255, 0, 0, 255}, 100, 0, 0},
        {0, 0, 8, 8, {10, 200, 30, 255}, 100, 0, 0},
    };
    size_t tn = 0;
    uint8_t *t = build_anim(8, 8, two, 2, 0, 0, &tn);
    /* the last VP8L chunk: its 5-byte header (signature, size) stays, the rest is noise */
    size_t at = 0;
    for (size_t i = 12; t && i + 4 <= tn; i++)
        if (!memcmp(t + i, "VP8L", 4)) at = i;
    CHECK(at > 0, "no VP8L chunk");
    if (t && at) {
        for (size_t i = at + 8 + 5; i < tn; i++) t[i] ^= 0x5a;
        p = tmp_path("bad_frame.webp");
        write_bytes(p, t, tn);
        cg_status s = cg_webp_anim_open(&r, p, 0);
        CHECK(s == CG_OK, "open: %s", cg_last_error());
        if (s == CG_OK) {
            uint8_t rgb[8 * 8 * 3];
            CHECK(cg_webp_anim_read_frame(r, rgb, NULL) == CG_OK, "frame 1: %s", cg_last_error());
            s = cg_webp_anim_read_frame(r, rgb, NULL);
            CHECK(s == CG_ERR_FORMAT && contains(cg_last_error(), "frame 2 does not decode") &&
                      contains(cg_last_error(), p),
                  "frame 2: %d %s", s, cg_last_error());
            cg_webp_anim_close(r);
        }
    }
    free(t);
    CHECK(cg_webp_anim_open(NULL, p, 0) == CG_ERR_ARG, "NULL out");
    CHECK(cg_webp_anim_open_memory(&r, NULL, 5, "x", 0) == CG_ERR_ARG, "NULL data");
    cg_webp_anim_close(NULL);
    free(d);
}

/* ---- memory ---- */

/* A reader over 300 frames: the heap in use after the last frame is what it was after the
 * second (the first allocates the decoder's frame state), within 16 KB, where keeping one
 * canvas per frame would add 300 x 16 KB. mallinfo2 counts libwebp's allocations too (it
 * uses malloc); under a sanitizer, whose allocator mallinfo2 does not see, it reads 0 and
 * the check says nothing. */
static void test_memory_flat(void) {
    enum { N = 300, S = 64 };
    frame_spec *fs = calloc(N, sizeof *fs);
    for (int i = 0; i < N; i++) {
        int k = i % 4;
        frame_spec f = {k * 16, k * 16, 16, 16, {(uint8_t)i, (uint8_t)(3 * i), 100, 255}, 10, i % 3 == 0, 1};
        if (i == 0) f.x = f.y = 0, f.w = f.h = S, f.blend = 0;
        fs[i] = f;
    }
    char *path = build_anim_file("many.webp", S, S, fs, N, 0, 0);
    free(fs);
    cg_webp_anim_reader *r = NULL;
    if (cg_webp_anim_open(&r, path, 0) != CG_OK) {
        CHECK(0, "%s", cg_last_error());
        return;
    }
    uint8_t *rgb = malloc(S * S * 3);
    size_t after2 = 0, peak_growth = 0;
    for (int i = 0; i < N; i++) {
        CHECK(cg_webp_anim_read_frame(r, rgb, NULL) == CG_OK, "frame %d: %s", i + 1, cg_last_error());
        size_t used = mallinfo2().uordblks;
        if (i == 1) after2 = used;
        if (i > 1 && used > after2 && used - after2 > peak_growth) peak_growth = used - after2;
    }
    printf("  300 frames of 64x64: heap in use grew by %zu bytes after frame 2%s\n", peak_growth,
           after2 ? "" : " (mallinfo2 sees nothing: a sanitizer's allocator)");
    CHECK(peak_growth <= 16 * 1024, "the heap grew by %zu bytes over 298 frames", peak_growth);
    free(rgb);
    cg_webp_anim_close(r);
}

/* ---- fuzz seeds ---- */

static int write_seeds(const char *dir) {
    snprintf(tmpdir, sizeof tmpdir, "%s", dir);
    min_psnr = 0; /* small frames, whose outlines cost PSNR: seeds only need to be valid */
    build_anim_file("compositing.webp", 8, 8, case_frames, CASE_N, 3, 0x11223344u);
    const frame_spec off[] = {
        {2, 0, 2, 2, {1, 2, 3, 255}, 20, 0, 1},
        {0, 0, 4, 2, {9, 8, 7, 255}, 30, 1, 0},
        {2, 0, 2, 2, {100, 2, 3, 30}, 5, 0, 1},
    };
    build_anim_file("offsets.webp", 4, 2, off, 3, 0, 0xff000000u);
    static const wframe fr[] = {{0, 100}, {1, 40}, {1, 40}, {2, 0}};
    round_trip("written_rgb.webp", 48, 32, fr, 4, 2, 0);
    round_trip("written_alpha.webp", 48, 32, fr, 4, 0, 1);
    printf("seeds written to %s\n", dir);
    return test_failed_checks ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "seeds")) return write_seeds(argv[2]);
    if (test_make_dir(tmpdir, sizeof tmpdir, "test_webp_anim") != 0) return 1;
    RUN(test_compositing);
    RUN(test_opaque_info);
    RUN(test_probe_and_playback);
    RUN(test_hunt_file);
    RUN(test_writer_round_trip);
    RUN(test_writer_repeat_kinds);
    RUN(test_writer_repeat_dispose);
    RUN(test_writer_alpha_blend);
    RUN(test_writer_errors);
    RUN(test_bad_input);
    RUN(test_memory_flat);
    test_remove_dir(tmpdir);
    return TEST_SUMMARY("test_webp_anim");
}
