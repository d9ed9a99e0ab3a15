/* media.h: how `cartoongan cartoonize` turns one input into its outputs, whatever its kind.
 *
 * Every kind of input (a still image, an animated GIF, an animated WebP, a video) is a
 * frame source; every kind of output is a frame sink. media.c runs the one pipeline they
 * share: read a frame, resize it to --max-height, stylize it with every style needed, lay
 * out the comparison, and hand the frames to the sinks, whose temporary files are renamed
 * into place only when the whole input has succeeded. Each kind is one file beside the
 * others (media_image.c, media_gif.c, media_webp.c, media_video.c) filling in a
 * media_kind_ops; adding a kind is adding a file and a line in media.c's table.
 * cartoonize.c finds the inputs (inputs.c), decides which outputs are missing, loads the
 * styles, and prints the summary. */
#ifndef CG_CLI_MEDIA_H
#define CG_CLI_MEDIA_H

#include <signal.h>
#include <stdint.h>

#include "cartoongan.h"
#include "cli/progress.h"

/* The most styles one cartoonize run applies: the four released ones plus custom styles
 * (WEIGHTS_DIR/<name>.safetensors); each loaded style holds about 90 MB. */
#define CLI_MAX_STYLES 16

typedef enum { MEDIA_NONE = 0, MEDIA_IMAGE, MEDIA_GIF, MEDIA_WEBP, MEDIA_VIDEO, MEDIA_KINDS } media_kind;

/* What a source says of its frames before the first is read. */
typedef struct {
    int width, height;         /* every frame's size, upright */
    int64_t frame_count;       /* frames in the file (an estimate for some videos; 0: unknown) */
    int frame_count_exact;
    int loop_count;            /* animated images: 0 = forever, N > 0 as the format stores it,
                                  -1 = the file has none */
    int has_alpha;             /* frames carry transparency worth keeping (animated WebP) */
    int tb_num, tb_den;        /* the unit of frame_time's fields, in seconds */
    int fps_num, fps_den;      /* nominal frame rate; 0/1 when unknown */
    int hdr;                   /* a PQ or HLG video: its colours are taken as they are */
    char transfer[16];         /* "PQ" or "HLG" when hdr */
} frame_info;

/* When a frame is shown, in the source's time base. */
typedef struct {
    int64_t pts;      /* start, as shown (browsers' timing for animated images) */
    int64_t duration; /* as stored in the file (a GIF's 0 stays 0) */
    int64_t shown;    /* as shown (a GIF's 0 plays as 10/100 s): what an MP4 needs */
} frame_time;

typedef struct frame_source frame_source;
struct frame_source {
    frame_info info;
    /* Decodes the next frame: rgb (width*height*3) composited onto white as a page shows
     * it; alpha (width*height, may be NULL) its opacity. *got = 0 after the last. */
    cg_status (*read)(frame_source *s, uint8_t *rgb, uint8_t *alpha, frame_time *t, int *got);
    /* Animated images: how long the first n frames are shown, in the time base (for an
     * MP4's nominal rate); NULL for other kinds. */
    int64_t (*shown_total)(const frame_source *s, int64_t n);
    /* After the end: whether frames were left (cut by max_frames); may be NULL. */
    int (*was_cut)(const frame_source *s);
    void (*close)(frame_source *s); /* frees s */
    void *audio; /* a video's reader, whose audio an MP4 sink copies; else NULL */
    char warning[200]; /* damage the decoder went past ("" if none), printed after opening */
};

typedef struct frame_sink frame_sink;
struct frame_sink {
    /* Appends a frame (rgb width*height*3; alpha width*height or NULL). */
    cg_status (*add)(frame_sink *k, const uint8_t *rgb, const uint8_t *alpha, const frame_time *t);
    cg_status (*finish)(frame_sink *k); /* renames the file into place; frees k */
    void (*abort)(frame_sink *k);       /* leaves nothing behind; frees k */
};

/* The sinks' settings that come from the command line. */
typedef struct {
    int dither; /* GIF palettes */
} sink_opts;

typedef struct {
    const char *noun, *nouns; /* in the summary: "image", "images" */
    /* what the output of an input of this kind is called: NULL keeps the input's
     * extension; ".mp4" for videos */
    const char *out_ext;
    int animated; /* an animated image: --frame-frequency and --convert-gif-to-mp4 apply */
    cg_status (*open_source)(frame_source **out, const char *path, uint64_t max_pixels,
                             int64_t max_frames);
    /* `in` is the source's info with width and height set to the sink's frame size; `src`
     * is the source (a video sink copies its audio). `alpha`: frames come with alpha. */
    cg_status (*open_sink)(frame_sink **out, const char *path, const frame_info *in,
                           const frame_source *src, int alpha, const sink_opts *o);
} media_kind_ops;

extern const media_kind_ops media_image_ops, media_gif_ops, media_webp_ops, media_video_ops;
const media_kind_ops *media_ops(media_kind kind);

typedef struct {
    const char *path;             /* the input file */
    const char *name;             /* what messages call it (the path, or the URL it came from) */
    media_kind kind;
    int nstyles;                  /* styles requested, in order (<= CLI_MAX_STYLES) */
    cg_model *const *models;      /* per style */
    const char *const *style_out; /* per style: the output in the input's kind, or NULL when
                                     it is there already */
    const char *const *style_mp4; /* per style, animated images with --convert-gif-to-mp4:
                                     the MP4, or NULL */
    const char *comparison_out;   /* the side-by-side output, or NULL */
    const char *comparison_mp4;   /* the comparison's MP4, or NULL */
    int max_height;               /* 0: keep the original size */
    uint64_t max_pixels;          /* decode limit for the picture size */
    int view;                     /* the comparison layout (cartoonize.c's view_kind) */
    int frame_frequency;          /* animated images: keep every Nth frame */
    int max_frames;               /* animated images and videos: 0 = no limit */
    sink_opts sink;
    int threads;                  /* --threads (0: one per CPU): a still image's outputs
                                     are encoded on up to this many at once */
    int quiet;
    volatile sig_atomic_t *interrupted;
    /* The run's bar. own_bar: this is the run's only input, so the bar is this input's
     * (frames for animations, a percentage for a still image); otherwise the bar counts
     * inputs and this one moves it from `base` to base + 1. */
    progress *bar;
    int own_bar;
    double base;
} media_job;

typedef enum { MEDIA_OK, MEDIA_FAILED, MEDIA_CANCELLED } media_result;

/* On MEDIA_FAILED, cg_last_error() says why (usually starting with j->path); nothing is
 * left behind. Warnings (damaged but readable files, frames cut by --max-num-frames, audio
 * that cannot be copied, HDR) are printed unless quiet. */
media_result media_process(const media_job *j);

/* The photo comparison's layout rules (in cartoonize.c), so frames are laid out alike. */
void cli_comparison_layout(int view, int n, int w, int h, int *rows, int *cols);

/* Prints "cartoongan: warning: MSG" through the job's bar unless quiet. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void media_warn(const media_job *j, const char *fmt, ...);

#endif
