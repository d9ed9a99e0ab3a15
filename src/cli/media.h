/* media.h: the cartoonize command's handlers for animated GIFs and videos (media.c).
 * cartoonize.c finds the files, decides which outputs are missing and loads the styles;
 * these decode one frame at a time, stylize it with every style needed, and stream the
 * results into GIF and MP4 writers whose temporary files are renamed into place only when
 * the whole input has succeeded. */
#ifndef CG_CLI_MEDIA_H
#define CG_CLI_MEDIA_H

#include <signal.h>
#include <stdint.h>

#include "cartoongan.h"
#include "cli/progress.h"

/* The most styles one cartoonize run applies: the four released ones plus custom styles
 * (WEIGHTS_DIR/<name>.safetensors); each loaded style holds about 90 MB. */
#define CLI_MAX_STYLES 16

typedef struct {
    const char *path;             /* the input */
    int nstyles;                  /* styles requested, in order (<= CLI_MAX_STYLES) */
    cg_model *const *models;      /* per style */
    const char *const *style_out; /* per style: the GIF (for a video, the MP4) to write, or
                                     NULL when it is there already */
    const char *const *style_mp4; /* per style, GIFs with --convert-gif-to-mp4: the MP4, or NULL */
    const char *comparison_out;   /* the side-by-side GIF or MP4, or NULL */
    const char *comparison_mp4;   /* the comparison GIF's MP4, or NULL */
    int max_height;               /* 0: keep the original size */
    uint64_t max_pixels;          /* decode limit for the screen or picture size */
    int view;                     /* the comparison layout (cartoonize.c's view_kind) */
    int gif_frequency;            /* keep every Nth GIF frame */
    int max_frames;               /* 0: no limit */
    int dither, quiet;
    volatile sig_atomic_t *interrupted;
    progress *batch; /* the batch's bar: warnings are printed through it */
} media_job;

typedef enum { MEDIA_OK, MEDIA_FAILED, MEDIA_CANCELLED } media_result;

/* On MEDIA_FAILED, cg_last_error() says why (usually starting with a file's name); nothing
 * is left behind. Warnings (frames cut by --max-num-frames, audio that cannot be copied)
 * are printed on stderr unless quiet. */
media_result media_process_gif(const media_job *j);
media_result media_process_video(const media_job *j);

/* The photo comparison's layout rules (in cartoonize.c), so frames are laid out alike. */
void cli_comparison_layout(int view, int n, int w, int h, int *rows, int *cols);

#endif
