/* cartoonize.c: `cartoongan cartoonize`: finds the input images (and GIFs and videos,
 * which media.c handles frame by frame), loads each requested style once (a released one,
 * or a custom one: any NAME with WEIGHTS_DIR/NAME.safetensors, e.g. from `cartoongan
 * export --checkpoint-dir`), and writes OUTPUT_DIR/<style>/<name> plus a side-by-side
 * comparison for every input. A bad input is reported on its own line and the batch goes
 * on; the exit status says whether anything failed. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cartoongan.h"
#include "cli/cli.h"
#include "cli/media.h"
#include "cli/progress.h"
#include "io/image.h"

#ifndef CG_DEFAULT_WEIGHTS_DIR
#define CG_DEFAULT_WEIGHTS_DIR "weights"
#endif

#define CMD "cartoonize"
#define DEFAULT_INPUT_DIR "input_images"
#define DEFAULT_OUTPUT_DIR "output_images"
#define DEFAULT_MAX_HEIGHT 300
#define DEFAULT_MAX_FRAMES 100 /* as the seed: a GIF or video longer than that is cut */
#define COMPARISON_DIR "comparison"
#define MAX_WALK_DEPTH 64 /* deeper trees are almost surely a mistake (or a bind-mount loop) */
#define STYLE_NAME_MAX 64 /* a custom style's name: a file name and an output folder */

typedef enum { VIEW_SMART, VIEW_HORIZONTAL, VIEW_VERTICAL, VIEW_GRID } view_kind;
static const char *const view_names[] = {"smart", "horizontal", "vertical", "grid"};

/* What a file holds, decided by its extension; process_job hands GIFs and videos to
 * media.c. */
typedef enum { MEDIA_NONE = 0, MEDIA_IMAGE, MEDIA_GIF, MEDIA_VIDEO } media_kind;
static const struct {
    const char *ext;
    media_kind kind;
} media_exts[] = {
    {".jpg", MEDIA_IMAGE},
    {".jpeg", MEDIA_IMAGE},
    {".png", MEDIA_IMAGE},
    {".webp", MEDIA_IMAGE},
    {".gif", MEDIA_GIF},
    {".mp4", MEDIA_VIDEO},
    {".mov", MEDIA_VIDEO},
    {".webm", MEDIA_VIDEO},
    {".mkv", MEDIA_VIDEO},
};
#define SUPPORTED_TYPES ".jpg, .jpeg, .png, .webp, .gif, .mp4, .mov, .webm or .mkv"
#define MP4_DIR "mp4" /* --convert-gif-to-mp4 writes OUTPUT_DIR/<style>/mp4/<name>.mp4 */

typedef struct {
    /* style names in the order requested: a released one as cg_style_names spells it, or a
     * custom one as given (checked against WEIGHTS_DIR once the options are read) */
    char styles[CLI_MAX_STYLES][STYLE_NAME_MAX + 1];
    int nstyles;
    char **inputs;
    int ninputs;
    const char *input_dir, *output_dir, *weights_dir;
    int max_height; /* 0: keep the original size */
    uint64_t max_pixels; /* decode limit, checked from each file's header */
    view_kind view;
    int skip_comparison, overwrite, threads, quiet;
    int ignore_gif, gif_frequency, max_frames, gif_to_mp4, dither; /* GIFs and videos */
} options;

typedef struct {
    char *path;  /* the input file */
    char *rel;   /* its name under each output directory (a video's ends in .mp4) */
    media_kind kind;
    dev_t dev;
    ino_t ino;
    int drop;                      /* a duplicate of an earlier job */
    int todo;                      /* some output is missing (or --overwrite) */
    int need_style[CLI_MAX_STYLES]; /* per requested style (same order as options.styles) */
    int need_comparison;
    int need_mp4[CLI_MAX_STYLES]; /* GIFs with --convert-gif-to-mp4: <style>/mp4/<name>.mp4 */
    int need_comparison_mp4;
} job;

/* Everything a run shares: options, the work list, failures, models and buffers that are
 * grown, never shrunk, so a batch does not allocate per image beyond decoding. */
typedef struct {
    options opt;
    job *jobs;
    int njobs, cap_jobs;
    int ignored; /* GIFs skipped for --ignore-gif */
    str_list failures;
    int have_out_dir;
    dev_t out_dev;
    ino_t out_ino;
    cg_model *models[CLI_MAX_STYLES];
    progress bar;
    double base, step; /* progress: where the current stylization sits in the batch */
    uint8_t *work;     /* the (resized) input */
    size_t work_cap;
    uint8_t *styled[CLI_MAX_STYLES];
    size_t styled_cap[CLI_MAX_STYLES];
    uint8_t *grid;
    size_t grid_cap;
} run_ctx;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

/* ---- small helpers ---- */

static int path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Grows a buffer to at least n bytes; 0 on success. */
static int reserve(uint8_t **buf, size_t *cap, size_t n) {
    if (n <= *cap) return 0;
    uint8_t *p = realloc(*buf, n);
    if (!p) return -1;
    *buf = p;
    *cap = n;
    return 0;
}

/* `name` with its extension (if any) replaced by `ext` ("a/clip.mov" -> "a/clip.mp4"). */
static char *with_ext(const char *name, const char *ext) {
    const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
    int n = dot && (!slash || dot > slash) ? (int)(dot - name) : (int)strlen(name);
    return cli_printf("%.*s%s", n, name, ext);
}

static media_kind media_from_path(const char *path) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return MEDIA_NONE;
    for (size_t i = 0; i < sizeof media_exts / sizeof media_exts[0]; i++)
        if (!strcasecmp(dot, media_exts[i].ext)) return media_exts[i].kind;
    return MEDIA_NONE;
}

/* Records a failed input: one line on stderr now, and again in the summary. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void fail(run_ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = cli_xcheck(malloc(n < 0 ? 1 : (size_t)n + 1));
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)(n < 0 ? 1 : n + 1), fmt, ap);
    va_end(ap);
    progress_message(&c->bar, "cartoongan: %s", msg);
    cli_list_push(&c->failures, msg);
}

/* The library's messages usually start with the file they are about; add the input's name
 * when they do not (e.g. a network error), so each failure line names its file. */
static void fail_lib(run_ctx *c, const char *path) {
    const char *e = cg_last_error();
    size_t n = strlen(path);
    if (!strncmp(e, path, n) && e[n] == ':')
        fail(c, "%s", e);
    else
        fail(c, "%s: %s", path, *e ? e : "unknown error");
}

/* ---- options ---- */

static void print_help(void) {
    const char *env = getenv("CARTOONGAN_WEIGHTS");
    printf(
        "usage: cartoongan cartoonize [-h] [--styles S [S ...]] [--all-styles]\n"
        "                             [--input-dir DIR] [--output-dir DIR] [--weights-dir DIR]\n"
        "                             [--max-height N] [--keep-original-size] [--max-pixels N]\n"
        "                             [--comparison-view {smart,horizontal,vertical,grid}]\n"
        "                             [--skip-comparison] [--overwrite] [--ignore-gif]\n"
        "                             [--gif-frame-frequency N] [--max-num-frames N]\n"
        "                             [--convert-gif-to-mp4] [--dither] [--threads N]\n"
        "                             [--quiet] [INPUT ...]\n"
        "\n"
        "Turn photos, animated GIFs and videos into anime style. Each style's result goes to\n"
        "OUTPUT_DIR/<style>/<name>, and a side-by-side comparison of the original and every\n"
        "style to OUTPUT_DIR/comparison/<name>, in the input's format (videos as .mp4).\n"
        "\n"
        "positional arguments:\n"
        "  INPUT                 files or directories; directories are searched recursively\n"
        "                        for " SUPPORTED_TYPES "\n"
        "                        files, and outputs keep their path relative to the\n"
        "                        directory (default: the files under --input-dir)\n"
        "\n"
        "options:\n"
        "  -h, --help            show this help and exit\n"
        "  --styles S [S ...]    styles to apply, space- or comma-separated, in this order:\n"
        "                        the released shinkai, hayao, hosoda, paprika, or a custom\n"
        "                        style NAME whose weights are WEIGHTS_DIR/NAME.safetensors\n"
        "                        (made by `cartoongan export --checkpoint-dir`; NAME is\n"
        "                        letters, digits, '_' and '-'); at most %d (default: shinkai)\n"
        "  --all-styles          apply the four released styles (plus the custom ones that\n"
        "                        --styles names)\n"
        "  --input-dir DIR       where to look for images when no INPUT is given\n"
        "                        (default: " DEFAULT_INPUT_DIR ")\n"
        "  --output-dir DIR      where to write the results (default: " DEFAULT_OUTPUT_DIR ")\n"
        "  --weights-dir DIR     where the styles' weights are: DIR/<style>.safetensors, or\n"
        "                        DIR/<style>/ holding the upstream .npy files (default:\n"
        "                        $CARTOONGAN_WEIGHTS if set, else %s)\n"
        "  --max-height N        downscale images taller than N pixels to height N, keeping\n"
        "                        the aspect ratio (default: %d)\n"
        "  --keep-original-size  do not downscale\n"
        "  --max-pixels N        refuse images of more than N pixels, checked from the file's\n"
        "                        header before decoding (default: %llu)\n"
        "  --comparison-view {smart,horizontal,vertical,grid}\n"
        "                        layout of the comparison image: one row, one column, two\n"
        "                        rows, or smart: two rows when the panel count is even and\n"
        "                        the image is not portrait, one row for portrait images,\n"
        "                        one column otherwise (default: smart)\n"
        "  --skip-comparison     do not write comparison images\n"
        "  --overwrite           redo outputs that already exist (default: skip them)\n"
        "  --ignore-gif          skip .gif files\n"
        "  --gif-frame-frequency N\n"
        "                        cartoonize every Nth frame of a GIF; each kept frame is\n"
        "                        shown as long as the N it stands for (default: 1)\n"
        "  --max-num-frames N    cartoonize at most N frames of each GIF (after\n"
        "                        --gif-frame-frequency) or video, with a warning when that\n"
        "                        cuts it; 0 = no limit (default: %d)\n"
        "  --convert-gif-to-mp4  also write each GIF's results as MP4 (H.264) to\n"
        "                        OUTPUT_DIR/<style>/mp4/<name>.mp4\n"
        "  --dither              dither the GIF palettes (Floyd-Steinberg): smoother\n"
        "                        gradients, but the pattern changes from frame to frame and\n"
        "                        shimmers (default: off)\n"
        "  --threads N           worker threads per image, 0 = one per CPU (default: 0)\n"
        "  --quiet               no progress bar and no summary; errors are still printed\n"
        "  --                    treat every later argument as an INPUT\n",
        CLI_MAX_STYLES, env && *env ? env : CG_DEFAULT_WEIGHTS_DIR, DEFAULT_MAX_HEIGHT,
        (unsigned long long)CG_DEFAULT_MAX_PIXELS, DEFAULT_MAX_FRAMES);
}

static int released_style(const char *name) {
    for (int s = 0; s < CG_NUM_STYLES; s++)
        if (!strcmp(name, cg_style_names[s])) return 1;
    return 0;
}

/* A custom style's name becomes a file name (WEIGHTS_DIR/NAME.safetensors) and a folder
 * (OUTPUT_DIR/NAME/), so only characters safe in both are taken: no '/', no '.' (hence
 * no "..", no hidden files, no "x.safetensors" typed for "x"). */
static int safe_style_name(const char *p, size_t n) {
    if (n == 0 || n > STYLE_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Whether `name` has weights in dir, in either of the forms cli_load_style reads. */
static int style_in_dir(const char *dir, const char *name) {
    struct stat st;
    char *p = cli_printf("%s/%s.safetensors", dir, name);
    int ok = stat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    if (ok) return 1;
    p = cli_printf("%s/%s", dir, name);
    ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    return ok;
}

/* The styles dir holds, for the unknown-style message: the released ones there in their
 * canonical order, then the custom NAME.safetensors files by name (hidden temporary files
 * and "x.f16.safetensors" copies have unsafe names and are left out). Returns a malloc'd
 * "a, b, c" (empty when there is none), or NULL when dir cannot be read (errno set). */
static char *styles_in_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    str_list custom = {0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name), ext = strlen(".safetensors");
        if (n <= ext || strcmp(e->d_name + n - ext, ".safetensors")) continue;
        if (!safe_style_name(e->d_name, n - ext)) continue;
        char *name = cli_printf("%.*s", (int)(n - ext), e->d_name);
        if (released_style(name) || !style_in_dir(dir, name)) {
            free(name);
            continue;
        }
        cli_list_push(&custom, name);
    }
    closedir(d);
    if (custom.n > 1) qsort(custom.v, (size_t)custom.n, sizeof *custom.v, cli_cmp_str);
    char *out = cli_xcheck(strdup(""));
    for (int s = 0; s < CG_NUM_STYLES + custom.n; s++) {
        const char *name = s < CG_NUM_STYLES ? cg_style_names[s] : custom.v[s - CG_NUM_STYLES];
        if (s < CG_NUM_STYLES && !style_in_dir(dir, name)) continue;
        char *next = cli_printf("%s%s%s", out, *out ? ", " : "", name);
        free(out);
        out = next;
    }
    for (int i = 0; i < custom.n; i++) free(custom.v[i]);
    free(custom.v);
    return out;
}

/* Every custom style must have weights in the weights directory, checked once all the
 * options are read (--weights-dir may come after --styles), so that a typo is a usage
 * error naming what there is, before any input is read. Released names always pass: a
 * missing released style is reported when loading, with the hint to run `make weights`. */
static int check_custom_styles(const options *o) {
    for (int k = 0; k < o->nstyles; k++) {
        const char *name = o->styles[k];
        if (released_style(name) || style_in_dir(o->weights_dir, name)) continue;
        char *have = styles_in_dir(o->weights_dir);
        if (!have)
            cli_usage_error(CMD, "unknown style '%s' (not one of shinkai, hayao, hosoda, paprika, and "
                                 "the weights directory %s cannot be read: %s)",
                            name, o->weights_dir, cli_errno_text(errno));
        else if (!*have)
            cli_usage_error(CMD, "unknown style '%s': no %s/%s.safetensors (%s holds no styles; "
                                 "the released ones are shinkai, hayao, hosoda, paprika)",
                            name, o->weights_dir, name, o->weights_dir);
        else
            cli_usage_error(CMD, "unknown style '%s': no %s/%s.safetensors (styles in %s: %s)",
                            name, o->weights_dir, name, o->weights_dir, have);
        free(have);
        return -1;
    }
    return 0;
}

/* Adds comma-separated style names; returns -1 after a usage error. The released names
 * are matched in any case (as before custom styles existed); custom ones are file names
 * and kept as typed. */
static int add_styles(options *o, const char *list) {
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0) {
            const char *name = NULL;
            for (int s = 0; s < CG_NUM_STYLES; s++)
                if (strlen(cg_style_names[s]) == n && !strncasecmp(p, cg_style_names[s], n))
                    name = cg_style_names[s];
            if (!name && !safe_style_name(p, n)) {
                cli_usage_error(CMD, "invalid style name '%.*s' (a style is shinkai, hayao, hosoda, "
                                     "paprika, or a NAME of 1 to %d letters, digits, '_' or '-' "
                                     "for WEIGHTS_DIR/NAME.safetensors)",
                                (int)n, p, STYLE_NAME_MAX);
                return -1;
            }
            int dup = 0;
            for (int k = 0; k < o->nstyles; k++)
                dup |= name ? !strcmp(o->styles[k], name)
                            : strlen(o->styles[k]) == n && !strncmp(o->styles[k], p, n);
            if (!dup) {
                if (o->nstyles == CLI_MAX_STYLES) {
                    cli_usage_error(CMD, "too many styles (at most %d in one run)", CLI_MAX_STYLES);
                    return -1;
                }
                snprintf(o->styles[o->nstyles++], STYLE_NAME_MAX + 1, "%.*s", (int)n, name ? name : p);
            }
        }
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

/* Returns -1 to run, otherwise the exit status (help or a usage error). */
static int parse_options(options *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->input_dir = DEFAULT_INPUT_DIR;
    o->output_dir = DEFAULT_OUTPUT_DIR;
    o->weights_dir = cli_default_weights_dir();
    o->max_height = DEFAULT_MAX_HEIGHT;
    o->max_pixels = CG_DEFAULT_MAX_PIXELS;
    o->view = VIEW_SMART;
    o->gif_frequency = 1;
    o->max_frames = DEFAULT_MAX_FRAMES;
    o->inputs = calloc((size_t)argc, sizeof *o->inputs);
    if (!o->inputs) cli_xcheck(NULL);

    int all_styles = 0, keep_size = 0, options_done = 0, r;
    const char *v;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            o->inputs[o->ninputs++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            options_done = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_help();
            return CLI_EXIT_OK;
        } else if (!strncmp(a, "--styles", 8) && (a[8] == '\0' || a[8] == '=')) {
            if (a[8] == '=') {
                if (add_styles(o, a + 9) < 0) return CLI_EXIT_USAGE;
                if (o->nstyles == 0) return cli_usage_error(CMD, "--styles needs a style name");
                continue;
            }
            /* argparse's nargs='+': names follow until an option, or an argument that
             * names an existing file or directory (that one is an INPUT). After the first
             * name, anything with '.' or '/' is taken as an INPUT too: no style (custom
             * ones included) has them, and a mistyped file name then reads "no such
             * file", not "unknown style". */
            int taken = 0;
            while (i + 1 < argc && argv[i + 1][0] != '-' && !path_exists(argv[i + 1]) &&
                   !(taken && strpbrk(argv[i + 1], "./"))) {
                if (add_styles(o, argv[++i]) < 0) return CLI_EXIT_USAGE;
                taken++;
            }
            if (!taken) {
                if (i + 1 < argc && argv[i + 1][0] != '-')
                    return cli_usage_error(CMD, "--styles needs a style name ('%s' is an existing "
                                                "file; write --styles=%s to use it as a style)",
                                           argv[i + 1], argv[i + 1]);
                return cli_usage_error(CMD, "--styles needs a style name");
            }
        } else if ((r = cli_opt_flag(CMD, argv, i, "--all-styles")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            all_styles = 1;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--input-dir", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            if (!*v) return cli_usage_error(CMD, "--input-dir needs a directory");
            o->input_dir = v;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--output-dir", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            if (!*v) return cli_usage_error(CMD, "--output-dir needs a directory");
            o->output_dir = v;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--weights-dir", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            if (!*v) return cli_usage_error(CMD, "--weights-dir needs a directory");
            o->weights_dir = v;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--max-height", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--max-height", v, 1, INT_MAX, &o->max_height) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--max-pixels", &v)) != 0) {
            int px;
            if (r < 0 || cli_parse_int(CMD, "--max-pixels", v, 1, INT_MAX, &px) < 0)
                return CLI_EXIT_USAGE;
            o->max_pixels = (uint64_t)px;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--keep-original-size")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            keep_size = 1;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--comparison-view", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            int found = -1;
            for (int k = 0; k < 4; k++)
                if (!strcmp(v, view_names[k])) found = k;
            if (found < 0)
                return cli_usage_error(CMD, "invalid --comparison-view '%s' (choose from smart, "
                                            "horizontal, vertical, grid)", v);
            o->view = (view_kind)found;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--skip-comparison")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            o->skip_comparison = 1;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--overwrite")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            o->overwrite = 1;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--ignore-gif")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            o->ignore_gif = 1;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--gif-frame-frequency", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--gif-frame-frequency", v, 1, INT_MAX, &o->gif_frequency) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--max-num-frames", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--max-num-frames", v, 0, INT_MAX, &o->max_frames) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--convert-gif-to-mp4")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            o->gif_to_mp4 = 1;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--dither")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            o->dither = 1;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--threads", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--threads", v, 0, 4096, &o->threads) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--quiet")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            o->quiet = 1;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
    }
    if (all_styles) {
        /* the seed's meaning, the four released styles in canonical order; custom styles
         * named by --styles follow them, in their order */
        options named = *o;
        o->nstyles = 0;
        for (int s = 0; s < CG_NUM_STYLES; s++)
            snprintf(o->styles[o->nstyles++], STYLE_NAME_MAX + 1, "%s", cg_style_names[s]);
        for (int k = 0; k < named.nstyles; k++) {
            if (released_style(named.styles[k])) continue;
            if (o->nstyles == CLI_MAX_STYLES)
                return cli_usage_error(CMD, "too many styles (at most %d in one run)", CLI_MAX_STYLES);
            memcpy(o->styles[o->nstyles++], named.styles[k], sizeof named.styles[k]);
        }
    } else if (o->nstyles == 0) {
        snprintf(o->styles[0], STYLE_NAME_MAX + 1, "%s", cg_style_names[0]); /* shinkai */
        o->nstyles = 1;
    }
    if (check_custom_styles(o) < 0) return CLI_EXIT_USAGE;
    if (keep_size) o->max_height = 0;
    return -1;
}

/* ---- finding the inputs ---- */

typedef struct ancestor {
    dev_t dev;
    ino_t ino;
    const struct ancestor *up;
} ancestor;

static void add_job(run_ctx *c, const char *path, const char *rel, media_kind kind,
                    const struct stat *st) {
    if (kind == MEDIA_GIF && c->opt.ignore_gif) {
        c->ignored++;
        return;
    }
    if (c->njobs == c->cap_jobs) {
        int cap = c->cap_jobs ? 2 * c->cap_jobs : 64;
        job *v = realloc(c->jobs, (size_t)cap * sizeof *v);
        if (!v) cli_xcheck(NULL);
        c->jobs = v;
        c->cap_jobs = cap;
    }
    job *j = &c->jobs[c->njobs++];
    memset(j, 0, sizeof *j);
    j->path = cli_xcheck(strdup(path));
    /* a video's results are MP4s whatever it came in, so clip.mov and clip.mp4 clash */
    j->rel = kind == MEDIA_VIDEO ? with_ext(rel, ".mp4") : cli_xcheck(strdup(rel));
    j->kind = kind;
    j->dev = st->st_dev;
    j->ino = st->st_ino;
}

/* Adds the media files under `dir` (rel: its path relative to the directory the user
 * named), in name order so runs are reproducible; hidden entries are skipped. */
static void walk(run_ctx *c, const char *dir, const char *rel, const ancestor *up, int depth) {
    DIR *d = opendir(dir);
    if (!d) {
        fail(c, "%s: cannot read directory: %s", dir, cli_errno_text(errno));
        return;
    }
    str_list names = {0};
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') cli_list_push(&names, cli_xcheck(strdup(e->d_name)));
    closedir(d);
    if (names.n) qsort(names.v, (size_t)names.n, sizeof *names.v, cli_cmp_str);

    for (int i = 0; i < names.n; i++) {
        char *path = cli_path_join(dir, names.v[i]);
        char *sub = *rel ? cli_path_join(rel, names.v[i]) : cli_xcheck(strdup(names.v[i]));
        media_kind kind = media_from_path(names.v[i]);
        struct stat st;
        if (stat(path, &st) != 0) {
            /* a dangling link to something that looks like an image is worth a word */
            if (kind != MEDIA_NONE) fail(c, "%s: %s", path, cli_errno_text(errno));
        } else if (S_ISDIR(st.st_mode)) {
            int loop = 0;
            for (const ancestor *a = up; a; a = a->up)
                loop |= a->dev == st.st_dev && a->ino == st.st_ino;
            int is_output = c->have_out_dir && st.st_dev == c->out_dev && st.st_ino == c->out_ino;
            if (!loop && !is_output) {
                if (depth >= MAX_WALK_DEPTH) {
                    fail(c, "%s: directory tree deeper than %d levels; not searched", path,
                         MAX_WALK_DEPTH);
                } else {
                    ancestor me = {st.st_dev, st.st_ino, up};
                    walk(c, path, sub, &me, depth + 1);
                }
            }
        } else if (S_ISREG(st.st_mode) && kind != MEDIA_NONE) {
            add_job(c, path, sub, kind, &st);
        }
        free(path);
        free(sub);
        free(names.v[i]);
    }
    free(names.v);
}

static void add_input(run_ctx *c, const char *arg) {
    struct stat st;
    if (stat(arg, &st) != 0) {
        fail(c, "%s: %s", arg, cli_errno_text(errno));
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        if (c->have_out_dir && st.st_dev == c->out_dev && st.st_ino == c->out_ino) return;
        ancestor me = {st.st_dev, st.st_ino, NULL};
        walk(c, arg, "", &me, 0);
        return;
    }
    media_kind kind = media_from_path(arg);
    if (kind == MEDIA_NONE) {
        fail(c, "%s: unsupported file type (use " SUPPORTED_TYPES ")", arg);
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(c, "%s: not a regular file", arg);
        return;
    }
    const char *base = strrchr(arg, '/');
    add_job(c, arg, base ? base + 1 : arg, kind, &st);
}

static int cmp_job_rel(const void *a, const void *b) {
    const job *x = *(job *const *)a, *y = *(job *const *)b;
    int r = strcmp(x->rel, y->rel);
    return r ? r : (x < y ? -1 : x > y);
}

/* Two inputs that map to the same output name would overwrite each other: the same file
 * named twice is simply done once; different files are an error for the later one. */
static void drop_duplicates(run_ctx *c) {
    if (c->njobs < 2) return;
    job **by_rel = malloc((size_t)c->njobs * sizeof *by_rel);
    if (!by_rel) cli_xcheck(NULL);
    for (int i = 0; i < c->njobs; i++) by_rel[i] = &c->jobs[i];
    qsort(by_rel, (size_t)c->njobs, sizeof *by_rel, cmp_job_rel);
    for (int i = 1; i < c->njobs; i++) {
        job *first = by_rel[i - 1], *j = by_rel[i];
        if (strcmp(first->rel, j->rel)) continue;
        j->drop = 1;
        by_rel[i] = first; /* compare later ones with the kept job */
        if (j->dev == first->dev && j->ino == first->ino) continue;
        fail(c, "%s: has the same output name (%s) as %s; not processed", j->path, j->rel,
             first->path);
    }
    free(by_rel);
}

/* ---- weights ---- */

static int load_models(run_ctx *c) {
    const options *o = &c->opt;
    for (int k = 0; k < o->nstyles; k++)
        if (cli_load_style(o->weights_dir, o->styles[k], o->threads, &c->models[k]) < 0)
            return -1;
    return 0;
}

/* ---- processing ---- */

static char *output_path(const options *o, const char *sub, const char *rel) {
    return cli_printf("%s%s%s/%s", o->output_dir,
                           o->output_dir[strlen(o->output_dir) - 1] == '/' ? "" : "/", sub, rel);
}

/* Decides which of a job's outputs are missing; returns whether any is. */
static int plan_job(const options *o, job *j) {
    int any = 0;
    for (int k = 0; k < o->nstyles; k++) {
        char *p = output_path(o, o->styles[k], j->rel);
        j->need_style[k] = o->overwrite || !path_exists(p);
        any |= j->need_style[k];
        free(p);
    }
    j->need_comparison = 0;
    if (!o->skip_comparison) {
        char *p = output_path(o, COMPARISON_DIR, j->rel);
        j->need_comparison = o->overwrite || !path_exists(p);
        any |= j->need_comparison;
        free(p);
    }
    if (j->kind == MEDIA_GIF && o->gif_to_mp4) {
        char *rel = with_ext(j->rel, ".mp4");
        for (int k = 0; k <= o->nstyles; k++) {
            if (k == o->nstyles && o->skip_comparison) break;
            char *sub = cli_printf("%s/" MP4_DIR, k < o->nstyles ? o->styles[k]
                                                                      : COMPARISON_DIR);
            char *p = output_path(o, sub, rel);
            int need = o->overwrite || !path_exists(p);
            if (k < o->nstyles) j->need_mp4[k] = need;
            else j->need_comparison_mp4 = need;
            any |= need;
            free(p);
            free(sub);
        }
        free(rel);
    }
    return any;
}

/* Outputs are written under a hidden temporary name and renamed, so a run killed mid-write
 * (SIGKILL, power loss) leaves at most a ".<name>.tmp-XXXXXX" file, which the input walk
 * never takes as an image. Each output folder of this run is swept for such leftovers
 * once; cg_clean_stale_temps takes only those no live process is writing. */
static void clean_output_dirs(const run_ctx *c) {
    const options *o = &c->opt;
    str_list done = {0};
    for (int i = 0; i < c->njobs; i++) {
        if (c->jobs[i].drop) continue;
        for (int k = 0; k <= o->nstyles; k++) {
            if (k == o->nstyles && o->skip_comparison) break;
            char *p = output_path(o, k < o->nstyles ? o->styles[k] : COMPARISON_DIR,
                                  c->jobs[i].rel);
            *strrchr(p, '/') = '\0'; /* its folder */
            int seen = 0;
            for (int d = done.n - 1; d >= 0 && !seen; d--) seen = !strcmp(done.v[d], p);
            if (seen) {
                free(p);
                continue;
            }
            cg_clean_stale_temps(p, CG_STALE_TEMP_SECONDS);
            cli_list_push(&done, p);
        }
    }
    for (int d = 0; d < done.n; d++) free(done.v[d]);
    free(done.v);
}

static void comparison_layout(view_kind view, int n, int w, int h, int *rows, int *cols) {
    if (view == VIEW_SMART) {
        if (n % 2 == 0 && h <= w)
            view = VIEW_GRID;
        else if (h > w)
            view = VIEW_HORIZONTAL;
        else
            view = VIEW_VERTICAL;
    }
    switch (view) {
    case VIEW_HORIZONTAL: *rows = 1, *cols = n; break;
    case VIEW_VERTICAL: *rows = n, *cols = 1; break;
    default: *rows = 2, *cols = (n + 1) / 2; break;
    }
}

/* media.c lays out GIF and video frames by the same rules. */
void cli_comparison_layout(int view, int n, int w, int h, int *rows, int *cols) {
    comparison_layout((view_kind)view, n, w, h, rows, cols);
}

static int stylize_progress(void *user, float fraction) {
    run_ctx *c = user;
    progress_update(&c->bar, c->base + c->step * fraction);
    return interrupted;
}

typedef enum { JOB_OK, JOB_FAILED, JOB_CANCELLED } job_result;

static job_result save(run_ctx *c, const job *j, const char *sub, uint8_t *rgb, int w, int h) {
    char *p = output_path(&c->opt, sub, j->rel);
    cg_image out = {.w = w, .h = h, .rgb = rgb};
    cg_status s = cg_image_save(&out, p, cg_format_from_path(j->path));
    free(p);
    if (s != CG_OK) {
        fail_lib(c, j->path);
        return JOB_FAILED;
    }
    return JOB_OK;
}

/* A GIF or a video: media.c does the frames; only the output names are made here. */
static job_result process_media(run_ctx *c, const job *j) {
    const options *o = &c->opt;
    char *out[CLI_MAX_STYLES] = {0}, *mp4[CLI_MAX_STYLES] = {0}, *cmp = NULL, *cmp_mp4 = NULL;
    char *rel_mp4 = with_ext(j->rel, ".mp4");
    for (int k = 0; k < o->nstyles; k++) {
        const char *style = o->styles[k];
        if (j->need_style[k]) out[k] = output_path(o, style, j->rel);
        if (j->need_mp4[k]) {
            char *sub = cli_printf("%s/" MP4_DIR, style);
            mp4[k] = output_path(o, sub, rel_mp4);
            free(sub);
        }
    }
    if (j->need_comparison) cmp = output_path(o, COMPARISON_DIR, j->rel);
    if (j->need_comparison_mp4) cmp_mp4 = output_path(o, COMPARISON_DIR "/" MP4_DIR, rel_mp4);
    media_job mj = {j->path, o->nstyles, c->models, (const char *const *)out,
                    (const char *const *)mp4, cmp, cmp_mp4, o->max_height, o->max_pixels,
                    (int)o->view, o->gif_frequency, o->max_frames, o->dither, o->quiet,
                    &interrupted, &c->bar};
    media_result r = j->kind == MEDIA_GIF ? media_process_gif(&mj) : media_process_video(&mj);
    for (int k = 0; k < CLI_MAX_STYLES; k++) {
        free(out[k]);
        free(mp4[k]);
    }
    free(cmp);
    free(cmp_mp4);
    free(rel_mp4);
    if (r == MEDIA_CANCELLED) return JOB_CANCELLED;
    if (r == MEDIA_FAILED) {
        fail_lib(c, j->path);
        return JOB_FAILED;
    }
    return JOB_OK;
}

static job_result process_job(run_ctx *c, const job *j, int index) {
    const options *o = &c->opt;
    if (j->kind == MEDIA_GIF || j->kind == MEDIA_VIDEO) return process_media(c, j);
    cg_image img = {0};
    if (cg_image_load(&img, j->path, o->max_pixels) != CG_OK) {
        fail_lib(c, j->path);
        return JOB_FAILED;
    }
    int w = img.w, h = img.h;
    if (o->max_height > 0 && h > o->max_height) {
        w = (int)floor((double)img.w * o->max_height / img.h + 0.5);
        if (w < 1) w = 1;
        h = o->max_height;
    }
    if ((uint64_t)w * (uint64_t)h > CG_MAX_NETWORK_PIXELS) {
        fail(c, "%s: %dx%d is too large for the network (at most %d megapixels); drop "
                "--keep-original-size or lower --max-height", j->path, w, h,
             CG_MAX_NETWORK_PIXELS / 1000000);
        cg_image_free(&img);
        return JOB_FAILED;
    }
    size_t bytes = (size_t)w * (size_t)h * 3;
    if (reserve(&c->work, &c->work_cap, bytes) < 0) {
        fail(c, "%s: out of memory for a %dx%d image", j->path, w, h);
        cg_image_free(&img);
        return JOB_FAILED;
    }
    if (w != img.w || h != img.h)
        cg_resize_rgb(c->work, w, h, img.rgb, img.w, img.h);
    else
        memcpy(c->work, img.rgb, bytes);
    cg_image_free(&img);

    /* every style runs when the comparison needs it; otherwise only the missing ones */
    int nrun = 0;
    for (int k = 0; k < o->nstyles; k++) nrun += j->need_style[k] || j->need_comparison;
    int done_runs = 0;
    cg_stylize_opts sopts = {stylize_progress, c};
    for (int k = 0; k < o->nstyles; k++) {
        if (!j->need_style[k] && !j->need_comparison) continue;
        if (reserve(&c->styled[k], &c->styled_cap[k], bytes) < 0) {
            fail(c, "%s: out of memory for a %dx%d image", j->path, w, h);
            return JOB_FAILED;
        }
        c->step = 1.0 / nrun;
        c->base = index + done_runs * c->step;
        cg_status s = cg_stylize(c->models[k], c->styled[k], c->work, w, h, &sopts);
        if (s == CG_ERR_CANCELLED || interrupted) return JOB_CANCELLED;
        if (s != CG_OK) {
            fail_lib(c, j->path);
            return JOB_FAILED;
        }
        done_runs++;
        if (j->need_style[k] &&
            save(c, j, o->styles[k], c->styled[k], w, h) != JOB_OK)
            return JOB_FAILED;
        if (interrupted) return JOB_CANCELLED;
    }
    if (!j->need_comparison) return JOB_OK;

    int n = 1 + o->nstyles, rows, cols;
    comparison_layout(o->view, n, w, h, &rows, &cols);
    uint64_t gw = (uint64_t)cols * w, gh = (uint64_t)rows * h;
    if (gw > INT_MAX || gh > INT_MAX || gw * gh > SIZE_MAX / 3 ||
        reserve(&c->grid, &c->grid_cap, (size_t)(gw * gh * 3)) < 0) {
        fail(c, "%s: out of memory for a %llux%llu comparison image", j->path,
             (unsigned long long)gw, (unsigned long long)gh);
        return JOB_FAILED;
    }
    memset(c->grid, 255, (size_t)(gw * gh * 3)); /* empty grid cells stay white */
    size_t row_bytes = (size_t)w * 3, grid_row = (size_t)gw * 3;
    for (int p = 0; p < n; p++) {
        const uint8_t *src = p == 0 ? c->work : c->styled[p - 1];
        uint8_t *dst = c->grid + (size_t)(p / cols) * h * grid_row + (size_t)(p % cols) * row_bytes;
        for (int y = 0; y < h; y++) memcpy(dst + y * grid_row, src + y * row_bytes, row_bytes);
    }
    return save(c, j, COMPARISON_DIR, c->grid, (int)gw, (int)gh);
}

static void print_summary(const run_ctx *c, int done, int skipped, double seconds) {
    int nst = c->opt.nstyles;
    printf("cartoonized %d image%s (%d style%s) in %.1f s", done, done == 1 ? "" : "s", nst,
           nst == 1 ? "" : "s", seconds);
    const char *sep = "; ";
    if (skipped) {
        printf("%s%d skipped (already done)", sep, skipped);
        sep = ", ";
    }
    if (c->ignored) {
        printf("%s%d GIF%s ignored (--ignore-gif)", sep, c->ignored, c->ignored == 1 ? "" : "s");
        sep = ", ";
    }
    if (c->failures.n) printf("%s%d failed", sep, c->failures.n);
    printf("\n");
    for (int i = 0; i < c->failures.n; i++) printf("failed: %s\n", c->failures.v[i]);
    fflush(stdout);
}

static void free_ctx(run_ctx *c) {
    for (int i = 0; i < c->njobs; i++) {
        free(c->jobs[i].path);
        free(c->jobs[i].rel);
    }
    free(c->jobs);
    for (int i = 0; i < c->failures.n; i++) free(c->failures.v[i]);
    free(c->failures.v);
    for (int k = 0; k < CLI_MAX_STYLES; k++) {
        cg_model_free(c->models[k]);
        free(c->styled[k]);
    }
    free(c->work);
    free(c->grid);
    free(c->opt.inputs);
}

int cli_cartoonize_parse(int argc, char **argv) {
    options o;
    int r = parse_options(&o, argc, argv);
    free(o.inputs);
    return r;
}

int cmd_cartoonize(int argc, char **argv) {
    static run_ctx ctx;
    run_ctx *c = &ctx;
    memset(c, 0, sizeof *c);
    double start = progress_now();
    int r = parse_options(&c->opt, argc, argv);
    if (r >= 0) {
        free(c->opt.inputs);
        return r;
    }
    const options *o = &c->opt;
    progress_init(&c->bar, 0, "images", "img/s", 0);

    struct stat st;
    if (stat(o->output_dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        c->have_out_dir = 1;
        c->out_dev = st.st_dev;
        c->out_ino = st.st_ino;
    }
    if (o->ninputs > 0) {
        for (int i = 0; i < o->ninputs; i++) add_input(c, o->inputs[i]);
    } else if (stat(o->input_dir, &st) != 0) {
        fprintf(stderr, "cartoongan: no images found: %s: %s (give image files or directories, "
                        "or --input-dir DIR)\n", o->input_dir, cli_errno_text(errno));
        free_ctx(c);
        return CLI_EXIT_FAIL;
    } else {
        add_input(c, o->input_dir);
    }
    drop_duplicates(c);

    int njobs = 0;
    for (int i = 0; i < c->njobs; i++) njobs += !c->jobs[i].drop;
    if (njobs == 0 && c->failures.n == 0 && c->ignored) { /* only GIFs, and told to skip them */
        if (!o->quiet) print_summary(c, 0, 0, progress_now() - start);
        free_ctx(c);
        return CLI_EXIT_OK;
    }
    if (njobs == 0 && c->failures.n == 0) {
        fprintf(stderr, "cartoongan: no images found in ");
        if (o->ninputs == 0) fprintf(stderr, "%s", o->input_dir);
        for (int i = 0; i < o->ninputs; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", o->inputs[i]);
        fprintf(stderr, "\n");
        free_ctx(c);
        return CLI_EXIT_FAIL;
    }

    int todo = 0, skipped = 0;
    for (int i = 0; i < c->njobs; i++) {
        job *j = &c->jobs[i];
        if (j->drop) continue;
        j->todo = plan_job(o, j);
        todo += j->todo;
        skipped += !j->todo;
    }
    clean_output_dirs(c);
    /* with nothing left to do there is no need to read the weights at all */
    if (todo > 0 && load_models(c) < 0) {
        free_ctx(c);
        return CLI_EXIT_FAIL;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART | SA_RESETHAND; /* a second ^C kills at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    progress_init(&c->bar, todo, "images", "img/s", !o->quiet && todo > 1);
    int done = 0, index = 0;
    for (int i = 0; i < c->njobs && !interrupted; i++) {
        job *j = &c->jobs[i];
        if (!j->todo) continue;
        progress_update(&c->bar, index);
        job_result jr = process_job(c, j, index);
        if (jr == JOB_CANCELLED) break;
        done += jr == JOB_OK;
        index++;
    }
    progress_update(&c->bar, index);
    progress_finish(&c->bar);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);

    int status = c->failures.n ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    if (interrupted) {
        fprintf(stderr, "cartoongan: interrupted\n");
        status = 130; /* the shell's code for death by SIGINT */
    }
    if (!o->quiet) print_summary(c, done, skipped, progress_now() - start);
    free_ctx(c);
    return status;
}
