/* cartoonize.c: `cartoongan cartoonize`: reads the options, has inputs.c find the inputs
 * (files, folders, URLs), decides which outputs are missing, checks the output folder,
 * loads each requested style once (a released one, or a custom one: any NAME with
 * WEIGHTS_DIR/NAME.safetensors, e.g. from `cartoongan export --checkpoint-dir`), has
 * media.c write OUTPUT_DIR/<style>/<name> plus a side-by-side comparison for every input,
 * and prints the summary. A bad input is reported on its own line and the batch goes on;
 * the exit status says whether anything failed. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cartoongan.h"
#include "cli/cli.h"
#include "cli/dist.h"
#include "cli/inputs.h"
#include "cli/media.h"
#include "cli/progress.h"
#include "io/image.h"

#define CMD "cartoonize"
#define DEFAULT_INPUT_DIR "input_images"
#define DEFAULT_OUTPUT_DIR "output_images"
#define DEFAULT_MAX_HEIGHT 300
#define DEFAULT_MAX_FRAMES 100 /* as the seed: a GIF or video longer than that is cut */
#define DEFAULT_CONNECT_TIMEOUT 10   /* s: a server that does not answer in that is down */
#define DEFAULT_DOWNLOAD_TIMEOUT 300 /* s: a whole download, long enough for a short video */
#define DEFAULT_MAX_DOWNLOAD_MB 1024 /* as the largest image file read (1 GiB) */
#define DEFAULT_MPI_TIMEOUT 600      /* s: a process that has not answered in that is stuck */
#define COMPARISON_DIR "comparison"

typedef enum { VIEW_SMART, VIEW_HORIZONTAL, VIEW_VERTICAL, VIEW_GRID } view_kind;
static const char *const view_names[] = {"smart", "horizontal", "vertical", "grid"};

#define MP4_DIR "mp4" /* --convert-gif-to-mp4 writes OUTPUT_DIR/<style>/mp4/<name>.mp4 */

typedef struct {
    /* style names in the order requested: a released one as cg_style_names spells it, or a
     * custom one as given (checked against WEIGHTS_DIR once the options are read) */
    char styles[CLI_MAX_STYLES][CLI_STYLE_NAME_MAX + 1];
    int nstyles;
    char **inputs;
    int ninputs;
    const char *input_dir, *output_dir, *weights_dir;
    int max_height; /* 0: keep the original size */
    uint64_t max_pixels; /* decode limit, checked from each file's header */
    view_kind view;
    int skip_comparison, overwrite, threads, quiet;
    int ignore_gif, frame_frequency, max_frames, gif_to_mp4, dither; /* animations, videos */
    int connect_timeout, download_timeout, max_download_mb;         /* URLs */
    int mpi_timeout; /* under mpirun: how long a process waits for rank 0's answer */
} options;

typedef struct {
    const input_file *in;
    int todo;                      /* some output is missing (or --overwrite) */
    int need_style[CLI_MAX_STYLES]; /* per requested style (same order as options.styles) */
    int need_comparison;
    int need_mp4[CLI_MAX_STYLES]; /* GIFs with --convert-gif-to-mp4: <style>/mp4/<name>.mp4 */
    int need_comparison_mp4;
} job;

/* Everything a run shares: options, the work list, failures, models. */
typedef struct {
    options opt;
    input_set inputs;
    job *jobs; /* one per input, same order */
    str_list failures;
    cg_model *models[CLI_MAX_STYLES];
    progress bar;
    int done[MEDIA_KINDS]; /* inputs cartoonized, by kind */
    int *per_rank;         /* under mpirun: inputs each process did (rank 0's count) */
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

static void fail_input(void *user, const char *msg) { fail(user, "%s", msg); }

/* The library's messages usually start with the file they are about; add the input's name
 * when they do not, so each failure line names its file. A download's temporary copy is
 * called by its URL. */
static void fail_lib(run_ctx *c, const input_file *in) {
    const char *e = cg_last_error();
    size_t n = strlen(in->path);
    if (!strncmp(e, in->path, n) && e[n] == ':')
        fail(c, "%s%s", in->name, e + n);
    else
        fail(c, "%s: %s", in->name, *e ? e : "unknown error");
}

/* ---- options ---- */

static void print_help(void) {
    printf(
        "usage: cartoongan cartoonize [-h] [--styles S [S ...]] [--all-styles]\n"
        "                             [--input-dir DIR] [--output-dir DIR] [--weights-dir DIR]\n"
        "                             [--max-height N] [--keep-original-size] [--max-pixels N]\n"
        "                             [--comparison-view {smart,horizontal,vertical,grid}]\n"
        "                             [--skip-comparison] [--overwrite] [--ignore-gif]\n"
        "                             [--frame-frequency N] [--max-num-frames N]\n"
        "                             [--convert-gif-to-mp4] [--dither] [--threads N]\n"
        "                             [--connect-timeout S] [--download-timeout S]\n"
        "                             [--max-download MB] [--mpi-timeout S] [--quiet]\n"
        "                             [INPUT ...]\n"
        "\n"
        "Turn photos, animated GIFs and WebPs, and videos into anime style. Each style's\n"
        "result goes to OUTPUT_DIR/<style>/<name>, and a side-by-side comparison of the\n"
        "original and every style to OUTPUT_DIR/comparison/<name>, in the input's format;\n"
        "videos become .mp4, HEIC and AVIF photos .jpg (.png when they have alpha).\n"
        "\n"
        "positional arguments:\n"
        "  INPUT                 files, directories or http(s):// URLs; directories are\n"
        "                        searched recursively for\n"
        "                        " INPUT_TYPES_WRAPPED "\n"
        "                        files (others are counted in the summary), and outputs\n"
        "                        keep their path relative to the directory; a URL is\n"
        "                        downloaded and named after its last path segment, with\n"
        "                        the extension of what it holds (default: the files under\n"
        "                        --input-dir)\n"
        "\n");
    printf(
        "options:\n"
        "  -h, --help            show this help and exit\n"
        "  --styles S [S ...]    styles to apply, space- or comma-separated, in this order:\n"
        "                        the released shinkai, hayao, hosoda, paprika, the seed\n"
        "                        project's light (fast) light_shinkai, light_paprika (these\n"
        "                        six in any case), or a custom style NAME whose weights are\n"
        "                        WEIGHTS_DIR/NAME.safetensors\n"
        "                        (made by `cartoongan export --checkpoint-dir`; NAME is\n"
        "                        letters, digits, '_' and '-', as typed); at most %d\n"
        "                        (default: shinkai)\n"
        "  --all-styles          apply the four released full styles (plus the custom ones\n"
        "                        --styles names; the light ones only when named there)\n"
        "                        (default: off)\n"
        "  --input-dir DIR       where to look for images when no INPUT is given\n"
        "                        (default: " DEFAULT_INPUT_DIR ")\n"
        "  --output-dir DIR      where to write the results (default: " DEFAULT_OUTPUT_DIR ")\n"
        "  --weights-dir DIR     where the styles' weights are: DIR/<style>.safetensors, or\n"
        "                        DIR/<style>/ holding the upstream .npy files (default:\n"
        "                        looked up as 'weights' below says)\n"
        "  --max-height N        downscale images taller than N pixels to height N, keeping\n"
        "                        the aspect ratio (default: %d)\n"
        "  --keep-original-size  do not downscale (default: off)\n"
        "  --max-pixels N        refuse images of more than N pixels, checked from the file's\n"
        "                        header before decoding (default: %llu)\n"
        "  --comparison-view {smart,horizontal,vertical,grid}\n"
        "                        layout of the comparison image: one row, one column, two\n"
        "                        rows, or smart: two rows when the panel count is even and\n"
        "                        the image is not portrait, one row for portrait images,\n"
        "                        one column otherwise (default: smart)\n"
        "  --skip-comparison     do not write comparison images (default: off)\n"
        "  --overwrite           redo outputs that already exist (default: skip them)\n"
        "  --ignore-gif          skip .gif files (default: off)\n"
        "  --frame-frequency N, --gif-frame-frequency N\n"
        "                        cartoonize every Nth frame of an animated GIF or WebP;\n"
        "                        each kept frame is shown as long as the N it stands for\n"
        "                        (default: 1)\n"
        "  --max-num-frames N    cartoonize at most N frames of each animation (after\n"
        "                        --frame-frequency) or video, with a warning when that\n"
        "                        cuts it; 0 = no limit (default: %d)\n"
        "  --convert-gif-to-mp4  also write each animated GIF's or WebP's results as MP4\n"
        "                        (H.264) to OUTPUT_DIR/<style>/mp4/<name>.mp4 (default: off)\n"
        "  --dither              dither the GIF palettes (Floyd-Steinberg): smoother\n"
        "                        gradients, but the pattern changes from frame to frame and\n"
        "                        shimmers (default: off)\n"
        "  --threads N           worker threads per image, 0 = one per CPU (default: 0)\n"
        "  --connect-timeout S   give up on a URL whose server does not answer within S\n"
        "                        seconds (default: %d)\n"
        "  --download-timeout S  give up on a URL not downloaded within S seconds\n"
        "                        (default: %d)\n"
        "  --max-download MB     refuse a URL's file larger than MB megabytes (default: %d)\n"
        "  --mpi-timeout S       under mpirun (see README, On several machines): stop the\n"
        "                        job when a process has not answered within S seconds\n"
        "                        while handing out work or loading the styles; 0 = wait\n"
        "                        forever (default: %d)\n"
        "  --quiet               no progress bar, warnings or summary; errors are still\n"
        "                        printed (default: off)\n"
        "  --                    treat every later argument as an INPUT\n",
        CLI_MAX_STYLES, DEFAULT_MAX_HEIGHT, (unsigned long long)CG_DEFAULT_MAX_PIXELS,
        DEFAULT_MAX_FRAMES, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DOWNLOAD_TIMEOUT,
        DEFAULT_MAX_DOWNLOAD_MB, DEFAULT_MPI_TIMEOUT);
    cli_print_weights_help();
}

/* Returns -1 to run, otherwise the exit status (help or a usage error). */
static int parse_options(options *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->input_dir = DEFAULT_INPUT_DIR;
    o->output_dir = DEFAULT_OUTPUT_DIR;
    o->weights_dir = NULL; /* the default places (weights.c) */
    o->max_height = DEFAULT_MAX_HEIGHT;
    o->max_pixels = CG_DEFAULT_MAX_PIXELS;
    o->view = VIEW_SMART;
    o->frame_frequency = 1;
    o->connect_timeout = DEFAULT_CONNECT_TIMEOUT;
    o->download_timeout = DEFAULT_DOWNLOAD_TIMEOUT;
    o->max_download_mb = DEFAULT_MAX_DOWNLOAD_MB;
    o->max_frames = DEFAULT_MAX_FRAMES;
    o->mpi_timeout = DEFAULT_MPI_TIMEOUT;
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
                if (cli_styles_add(CMD, o->styles, &o->nstyles, a + 9) < 0) return CLI_EXIT_USAGE;
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
                if (cli_styles_add(CMD, o->styles, &o->nstyles, argv[++i]) < 0) return CLI_EXIT_USAGE;
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
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--frame-frequency", &v)) != 0 ||
                   (r = cli_opt_value(CMD, argc, argv, &i, "--gif-frame-frequency", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--frame-frequency", v, 1, INT_MAX, &o->frame_frequency) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--connect-timeout", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--connect-timeout", v, 1, 3600, &o->connect_timeout) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--download-timeout", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--download-timeout", v, 1, 86400, &o->download_timeout) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--max-download", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--max-download", v, 1, 1 << 20, &o->max_download_mb) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--mpi-timeout", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--mpi-timeout", v, 0, INT_MAX, &o->mpi_timeout) < 0)
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
            snprintf(o->styles[o->nstyles++], CLI_STYLE_NAME_MAX + 1, "%s", cg_style_names[s]);
        for (int k = 0; k < named.nstyles; k++) {
            if (cli_style_is_released(named.styles[k])) continue; /* already there */
            if (o->nstyles == CLI_MAX_STYLES)
                return cli_usage_error(CMD, "too many styles (at most %d in one run)", CLI_MAX_STYLES);
            memcpy(o->styles[o->nstyles++], named.styles[k], sizeof named.styles[k]);
        }
    } else if (o->nstyles == 0) {
        snprintf(o->styles[0], CLI_STYLE_NAME_MAX + 1, "%s", cg_style_names[0]); /* shinkai */
        o->nstyles = 1;
    }
    if (cli_styles_check_custom(CMD, o->styles, o->nstyles, o->weights_dir) < 0) return CLI_EXIT_USAGE;
    if (keep_size) o->max_height = 0;
    return -1;
}

/* ---- weights ---- */

/* one_image: the run stylizes a single still image, once per style. */
static int load_models(run_ctx *c, int one_image) {
    const options *o = &c->opt;
    for (int k = 0; k < o->nstyles; k++)
        if (cli_load_style(o->weights_dir, o->styles[k], o->threads, one_image, &c->models[k]) < 0)
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
    const char *rel = j->in->rel;
    int any = 0;
    for (int k = 0; k < o->nstyles; k++) {
        char *p = output_path(o, o->styles[k], rel);
        j->need_style[k] = o->overwrite || !path_exists(p);
        any |= j->need_style[k];
        free(p);
    }
    j->need_comparison = 0;
    if (!o->skip_comparison) {
        char *p = output_path(o, COMPARISON_DIR, rel);
        j->need_comparison = o->overwrite || !path_exists(p);
        any |= j->need_comparison;
        free(p);
    }
    if (media_ops(j->in->kind)->animated && o->gif_to_mp4) {
        char *rel_mp4 = cli_with_ext(rel, ".mp4");
        for (int k = 0; k <= o->nstyles; k++) {
            if (k == o->nstyles && o->skip_comparison) break;
            char *sub = cli_printf("%s/" MP4_DIR, k < o->nstyles ? o->styles[k] : COMPARISON_DIR);
            char *p = output_path(o, sub, rel_mp4);
            int need = o->overwrite || !path_exists(p);
            if (k < o->nstyles) j->need_mp4[k] = need;
            else j->need_comparison_mp4 = need;
            any |= need;
            free(p);
            free(sub);
        }
        free(rel_mp4);
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
    for (int i = 0; i < c->inputs.n; i++) {
        if (c->inputs.v[i].drop) continue;
        for (int k = 0; k <= o->nstyles; k++) {
            if (k == o->nstyles && o->skip_comparison) break;
            char *p = output_path(o, k < o->nstyles ? o->styles[k] : COMPARISON_DIR, c->inputs.v[i].rel);
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
    cli_list_free(&done);
}

/* An output folder that cannot be made or written is said before any weights are read or
 * any input is processed, not after the first image has been stylized for nothing. A
 * folder still to be made is not made here (a run that fails early leaves nothing): the
 * nearest existing folder above it must be one a file can be created in. */
static int check_output_dir(const options *o) {
    char *dir = cli_xcheck(strdup(o->output_dir));
    struct stat st;
    int ok = 0;
    for (;;) { /* up to the nearest thing that exists */
        if (stat(dir, &st) == 0) break;
        if (errno != ENOENT && errno != ENOTDIR) {
            fprintf(stderr, "cartoongan: %s: cannot use as the output folder: %s\n", o->output_dir,
                    cli_errno_text(errno));
            goto out;
        }
        char *slash = strrchr(dir, '/');
        while (slash && slash > dir && slash[1] == '\0') { /* "a/b/" */
            *slash = '\0';
            slash = strrchr(dir, '/');
        }
        if (!slash) strcpy(dir, ".");
        else if (slash == dir) slash[1] = '\0';
        else *slash = '\0';
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "cartoongan: %s: cannot use as the output folder: %s is not a folder\n",
                o->output_dir, dir);
        goto out;
    }
    char *probe = cli_printf("%s/.cartoongan-write-test-XXXXXX", dir);
    int fd = mkstemp(probe);
    if (fd < 0) {
        if (!strcmp(dir, o->output_dir))
            fprintf(stderr, "cartoongan: %s: cannot write in the output folder: %s\n",
                    o->output_dir, cli_errno_text(errno));
        else
            fprintf(stderr, "cartoongan: %s: cannot make the output folder in %s: %s\n",
                    o->output_dir, dir, cli_errno_text(errno));
    } else {
        close(fd);
        unlink(probe);
        ok = 1;
    }
    free(probe);
out:
    free(dir);
    return ok ? 0 : -1;
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

typedef enum { JOB_OK, JOB_FAILED, JOB_CANCELLED } job_result;

static job_result process_job(run_ctx *c, const job *j, int index, int own_bar) {
    const options *o = &c->opt;
    const input_file *in = j->in;
    char *out[CLI_MAX_STYLES] = {0}, *mp4[CLI_MAX_STYLES] = {0}, *cmp = NULL, *cmp_mp4 = NULL;
    char *rel_mp4 = cli_with_ext(in->rel, ".mp4");
    for (int k = 0; k < o->nstyles; k++) {
        const char *style = o->styles[k];
        if (j->need_style[k]) out[k] = output_path(o, style, in->rel);
        if (j->need_mp4[k]) {
            char *sub = cli_printf("%s/" MP4_DIR, style);
            mp4[k] = output_path(o, sub, rel_mp4);
            free(sub);
        }
    }
    if (j->need_comparison) cmp = output_path(o, COMPARISON_DIR, in->rel);
    if (j->need_comparison_mp4) cmp_mp4 = output_path(o, COMPARISON_DIR "/" MP4_DIR, rel_mp4);
    media_job mj = {
        .path = in->path, .name = in->name, .kind = in->kind,
        .nstyles = o->nstyles, .models = c->models,
        .style_out = (const char *const *)out, .style_mp4 = (const char *const *)mp4,
        .comparison_out = cmp, .comparison_mp4 = cmp_mp4,
        .max_height = o->max_height, .max_pixels = o->max_pixels, .view = (int)o->view,
        .frame_frequency = o->frame_frequency, .max_frames = o->max_frames,
        .sink = {o->dither}, .threads = o->threads, .quiet = o->quiet, .interrupted = &interrupted,
        .bar = &c->bar, .own_bar = own_bar, .base = index,
    };
    media_result r = media_process(&mj);
    for (int k = 0; k < CLI_MAX_STYLES; k++) {
        free(out[k]);
        free(mp4[k]);
    }
    free(cmp);
    free(cmp_mp4);
    free(rel_mp4);
    if (r == MEDIA_CANCELLED) return JOB_CANCELLED;
    if (r == MEDIA_FAILED) {
        fail_lib(c, in);
        return JOB_FAILED;
    }
    return JOB_OK;
}

/* "cartoonized 3 images, 1 GIF, 1 video (2 styles) in 4.1 s; 2 skipped (already done)";
 * with nothing done, the kind of input there was: "cartoonized 0 videos ...; 1 failed" */
static void print_summary(const run_ctx *c, int skipped, double seconds) {
    int nst = c->opt.nstyles, any = 0;
    printf("cartoonized");
    for (int k = MEDIA_IMAGE; k < MEDIA_KINDS; k++) {
        const media_kind_ops *ops = media_ops((media_kind)k);
        if (!c->done[k]) continue;
        printf("%s %d %s", any ? "," : "", c->done[k], c->done[k] == 1 ? ops->noun : ops->nouns);
        any = 1;
    }
    if (!any) { /* "0 videos" when that is all there was (failed or skipped), else "0 inputs" */
        int kind = -1;
        for (int i = 0; i < c->inputs.n; i++) {
            if (c->inputs.v[i].drop) continue;
            int k = (int)c->inputs.v[i].kind;
            kind = k > MEDIA_NONE && k < MEDIA_KINDS && (kind == -1 || kind == k) ? k : -2;
        }
        if (kind == -1 && c->inputs.ignored_gifs) kind = MEDIA_GIF; /* only GIFs, all ignored */
        printf(" 0 %s", kind >= 0 ? media_ops((media_kind)kind)->nouns : "inputs");
    }
    printf(" (%d style%s) in %.1f s", nst, nst == 1 ? "" : "s", seconds);
    const char *sep = "; ";
    if (skipped) {
        printf("%s%d skipped (already done)", sep, skipped);
        sep = ", ";
    }
    if (c->inputs.ignored_gifs) {
        int n = c->inputs.ignored_gifs;
        printf("%s%d GIF%s ignored (--ignore-gif)", sep, n, n == 1 ? "" : "s");
        sep = ", ";
    }
    if (c->failures.n) printf("%s%d failed", sep, c->failures.n);
    if (c->per_rank) { /* how the work was shared out */
        printf("; %d processes did", dist_size());
        for (int r = 0; r < dist_size(); r++) printf("%s %d", r ? "," : "", c->per_rank[r]);
    }
    printf("\n");
    char *other = inputs_skipped_text(&c->inputs);
    if (other) printf("%s\n", other);
    free(other);
    for (int i = 0; i < c->failures.n; i++) printf("failed: %s\n", c->failures.v[i]);
    fflush(stdout);
}

static void free_ctx(run_ctx *c) {
    inputs_free(&c->inputs);
    free(c->jobs);
    cli_list_free(&c->failures);
    free(c->per_rank);
    for (int k = 0; k < CLI_MAX_STYLES; k++) cg_model_free(c->models[k]);
    free(c->opt.inputs);
}

int cli_cartoonize_parse(int argc, char **argv) {
    options o;
    int r = parse_options(&o, argc, argv);
    free(o.inputs);
    return r;
}

static void no_inputs_message(const options *o) {
    fprintf(stderr, "cartoongan: no images found in ");
    if (o->ninputs == 0) fprintf(stderr, "%s", o->input_dir);
    for (int i = 0; i < o->ninputs; i++) fprintf(stderr, "%s%s", i ? ", " : "", o->inputs[i]);
    fprintf(stderr, "\n");
}

/* ---- several processes: `mpirun -np K cartoongan cartoonize` (src/cli/dist.h) ----
 * Rank 0 finds the inputs and decides what is missing, as one process does; then every
 * process loads the styles, and rank 0 hands the jobs out one at a time, largest first
 * (so that a long video starts early instead of keeping one process busy after the
 * others are done), to whichever process asks: a thread of rank 0 answers the others'
 * requests while its main thread takes jobs from the same queue. Each process writes its
 * outputs itself (atomically, as always); a bad file fails on its own there; the
 * failures come back with the next request, and rank 0 prints the summary and the exit
 * status of the whole job (every process exits with it). A download lives in rank 0's
 * temporary folder, so rank 0 does those jobs itself. */

enum { TAG_ASK = 11, TAG_JOB = 12 };

/* A job as rank 0 sends it, followed by the input's path, name and rel (NUL-terminated);
 * index -1: no more work. */
typedef struct {
    int32_t index, kind, need_comparison, need_comparison_mp4;
    int32_t need_style[CLI_MAX_STYLES], need_mp4[CLI_MAX_STYLES];
} job_msg;

/* A request for work, with the result of the process's previous job (index -1: none)
 * and, if it failed, its message after the header. `stopping`: interrupted, no more. */
typedef struct {
    int32_t index, result, stopping;
} ask_msg;

typedef struct {
    run_ctx *c;
    pthread_mutex_t mu;
    int *order, n; /* the jobs to do, largest first */
    char *taken;   /* per position in order */
    char **msgs;   /* per input: its failure's message */
    int finished;  /* jobs done, anywhere */
} work_queue;

/* What a job costs, roughly: frames (probed from the file for animations and videos,
 * within --frame-frequency and --max-num-frames) times the pixels each is stylized at;
 * for a photo, its file size stands for its pixels when it is kept whole. */
static double job_cost(const options *o, const input_file *in) {
    struct stat st;
    double bytes = stat(in->path, &st) == 0 ? (double)st.st_size : 0;
    double frames = 1, w = 0, h = 0;
    const media_kind_ops *ops = media_ops(in->kind);
    if (in->kind != MEDIA_IMAGE) {
        frame_source *src = NULL;
        if (ops->open_source(&src, in->path, o->max_pixels, 0) == CG_OK) {
            frames = src->info.frame_count > 0 ? (double)src->info.frame_count : 1;
            w = src->info.width, h = src->info.height;
            src->close(src);
        }
        if (ops->animated) frames = ceil(frames / o->frame_frequency);
        if (o->max_frames > 0 && frames > o->max_frames) frames = o->max_frames;
    }
    double px;
    if (w > 0 && h > 0) px = o->max_height && h > o->max_height ? w * o->max_height / h * o->max_height : w * h;
    else px = o->max_height ? 1.5 * o->max_height * o->max_height : 10 * bytes; /* ~10 pixels a byte */
    return frames * px + bytes * 1e-6; /* the size breaks ties */
}

static double *cost_of; /* by_cost's key, per input */
static int by_cost(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    if (cost_of[x] != cost_of[y]) return cost_of[x] < cost_of[y] ? 1 : -1;
    return x - y; /* input order among equals */
}

static int queue_init(work_queue *q, run_ctx *c) {
    memset(q, 0, sizeof *q);
    q->c = c;
    pthread_mutex_init(&q->mu, NULL);
    q->order = cli_xcheck(malloc(sizeof *q->order * (size_t)(c->inputs.n + 1)));
    q->taken = cli_xcheck(calloc((size_t)c->inputs.n + 1, 1));
    q->msgs = cli_xcheck(calloc((size_t)c->inputs.n + 1, sizeof *q->msgs));
    cost_of = cli_xcheck(calloc((size_t)c->inputs.n + 1, sizeof *cost_of));
    for (int i = 0; i < c->inputs.n; i++)
        if (c->jobs[i].todo) {
            cost_of[i] = job_cost(&c->opt, &c->inputs.v[i]);
            q->order[q->n++] = i;
        }
    qsort(q->order, (size_t)q->n, sizeof *q->order, by_cost);
    free(cost_of);
    cost_of = NULL;
    return 0;
}

static void queue_free(work_queue *q) {
    for (int i = 0; q->msgs && i < q->c->inputs.n; i++) free(q->msgs[i]);
    free(q->msgs), free(q->order), free(q->taken);
    pthread_mutex_destroy(&q->mu);
}

/* A download is in rank 0's private folder: no other process can read it. */
static int rank0_only(const run_ctx *c, const input_file *in) {
    const char *tmp = c->inputs.tmp_dir;
    return tmp && !strncmp(in->path, tmp, strlen(tmp));
}

/* The largest job not yet taken (by another process: one it can read), or -1. */
static int queue_take(work_queue *q, int remote) {
    int j = -1;
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < q->n && !interrupted; i++) {
        if (q->taken[i] || (remote && rank0_only(q->c, &q->c->inputs.v[q->order[i]]))) continue;
        q->taken[i] = 1;
        j = q->order[i];
        break;
    }
    pthread_mutex_unlock(&q->mu);
    return j;
}

static void queue_done(work_queue *q, int rank, int index, job_result r, const char *msg) {
    pthread_mutex_lock(&q->mu);
    if (r != JOB_CANCELLED) q->c->per_rank[rank]++;
    if (r == JOB_OK) q->c->done[q->c->inputs.v[index].kind]++;
    if (r == JOB_FAILED && !q->msgs[index]) q->msgs[index] = cli_xcheck(strdup(msg && *msg ? msg : "failed"));
    if (r != JOB_CANCELLED) q->finished++;
    pthread_mutex_unlock(&q->mu);
}

/* Rank 0's second thread: answers the other processes' requests until each has been told
 * there is no more work (or has stopped). It sleeps between looks, leaving the CPU to
 * the stylizing. */
static void *dispatcher(void *arg) {
    work_queue *q = arg;
    run_ctx *c = q->c;
    int active = dist_size() - 1;
    char *buf = cli_xcheck(malloc(DIST_MAX_MESSAGE));
    while (active > 0) {
        int from;
        size_t n;
        if (!dist_poll(TAG_ASK, &from, &n)) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        dist_recv(from, TAG_ASK, buf, DIST_MAX_MESSAGE - 1, &n);
        buf[n] = '\0';
        ask_msg a;
        memcpy(&a, buf, sizeof a);
        if (a.index >= 0 && a.index < c->inputs.n) queue_done(q, from, a.index, (job_result)a.result, buf + sizeof a);
        if (a.stopping) {
            active--;
            continue;
        }
        int j = queue_take(q, 1);
        job_msg m;
        memset(&m, 0, sizeof m);
        m.index = j;
        size_t len = sizeof m;
        if (j >= 0) {
            const job *jb = &c->jobs[j];
            m.kind = (int32_t)jb->in->kind, m.need_comparison = jb->need_comparison;
            m.need_comparison_mp4 = jb->need_comparison_mp4;
            for (int k = 0; k < CLI_MAX_STYLES; k++) m.need_style[k] = jb->need_style[k], m.need_mp4[k] = jb->need_mp4[k];
            const char *str[3] = {jb->in->path, jb->in->name, jb->in->rel};
            for (int k = 0; k < 3; k++) {
                size_t sl = strlen(str[k]) + 1;
                if (len + sl > DIST_MAX_MESSAGE) sl = 0; /* cannot be: paths are under 4 KB */
                memcpy(buf + len, str[k], sl);
                len += sl;
            }
        } else {
            active--;
        }
        memcpy(buf, &m, sizeof m);
        dist_send(from, TAG_JOB, buf, len);
    }
    free(buf);
    return NULL;
}

/* The job phase on rank 0 of several processes. */
static void rank0_jobs(run_ctx *c, int todo) {
    work_queue q;
    queue_init(&q, c);
    c->per_rank = cli_xcheck(calloc((size_t)dist_size(), sizeof *c->per_rank));
    pthread_t th;
    /* the dispatcher takes no signal: Ctrl-C lands on the main thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int threaded = pthread_create(&th, NULL, dispatcher, &q) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!threaded) dispatcher(&q); /* rank 0 then only hands out work */
    const int n0 = c->failures.n;
    int j;
    while (!interrupted && (j = queue_take(&q, 0)) >= 0) {
        pthread_mutex_lock(&q.mu);
        int base = q.finished;
        pthread_mutex_unlock(&q.mu);
        progress_update(&c->bar, base);
        job_result jr = process_job(c, &c->jobs[j], base, 0);
        queue_done(&q, 0, j, jr, jr == JOB_FAILED && c->failures.n > n0 ? c->failures.v[c->failures.n - 1] : NULL);
    }
    if (threaded) pthread_join(th, NULL);
    progress_update(&c->bar, q.finished);
    (void)todo;
    /* the summary lists the failures in the inputs' order, wherever they happened */
    for (int i = n0; i < c->failures.n; i++) free(c->failures.v[i]);
    c->failures.n = n0;
    for (int i = 0; i < c->inputs.n; i++)
        if (q.msgs[i]) cli_list_push(&c->failures, q.msgs[i]), q.msgs[i] = NULL;
    queue_free(&q);
}

/* The job phase on another rank: asks rank 0 for work until there is none. */
static void worker_jobs(run_ctx *c) {
    char *buf = cli_xcheck(malloc(DIST_MAX_MESSAGE + 1));
    ask_msg a = {-1, JOB_OK, 0};
    const char *msg = "";
    for (;;) {
        a.stopping = interrupted != 0;
        size_t ml = strlen(msg) + 1;
        if (sizeof a + ml > DIST_MAX_MESSAGE) ml = DIST_MAX_MESSAGE - sizeof a;
        memcpy(buf, &a, sizeof a);
        memcpy(buf + sizeof a, msg, ml);
        buf[sizeof a + ml - 1] = '\0';
        dist_send(0, TAG_ASK, buf, sizeof a + ml);
        if (a.stopping) break;
        size_t n;
        dist_set_what("a wait for work from rank 0");
        dist_recv(0, TAG_JOB, buf, DIST_MAX_MESSAGE, &n);
        buf[n < DIST_MAX_MESSAGE ? n : DIST_MAX_MESSAGE] = '\0';
        job_msg m;
        memcpy(&m, buf, sizeof m);
        if (m.index < 0) break;
        input_file in;
        memset(&in, 0, sizeof in);
        in.path = buf + sizeof m;
        in.name = in.path + strlen(in.path) + 1;
        in.rel = in.name + strlen(in.name) + 1;
        in.kind = (media_kind)m.kind;
        job jb;
        memset(&jb, 0, sizeof jb);
        jb.in = &in, jb.todo = 1;
        jb.need_comparison = m.need_comparison, jb.need_comparison_mp4 = m.need_comparison_mp4;
        for (int k = 0; k < CLI_MAX_STYLES; k++) jb.need_style[k] = m.need_style[k], jb.need_mp4[k] = m.need_mp4[k];
        const int n0 = c->failures.n;
        job_result jr = process_job(c, &jb, 0, 0);
        a.index = m.index, a.result = jr;
        msg = jr == JOB_FAILED && c->failures.n > n0 ? c->failures.v[c->failures.n - 1] : "";
    }
    free(buf);
}

/* Whether every process loaded the styles; rank 0 names those that did not. */
static int all_loaded(int ok) {
    const int k = dist_size();
    double *f = cli_xcheck(calloc((size_t)k, sizeof *f));
    f[dist_rank()] = !ok;
    dist_set_what("loading the styles");
    dist_sum_doubles(f, (size_t)k);
    int all = 1;
    for (int i = 0; i < k; i++)
        if (f[i]) {
            all = 0;
            if (dist_rank() == 0 && i) fprintf(stderr, "cartoongan: rank %d could not load the styles (its message is above)\n", i);
        }
    free(f);
    return all;
}

/* Every rank but 0: parse (as rank 0 does), wait for rank 0's word, load the styles, take
 * jobs, and exit with the job's status. */
static int worker_main(run_ctx *c) {
    const options *o = &c->opt;
    progress_init(&c->bar, 0, "images", "img/s", 0);
    cli_catch_interrupts(on_signal);
    int go = 0;
    dist_set_timeout(0); /* rank 0 may take long finding and downloading the inputs */
    dist_bcast(&go, sizeof go);
    dist_set_timeout(o->mpi_timeout);
    if (go > 0) {
        int ok = load_models(c, 0) == 0;
        if (all_loaded(ok)) worker_jobs(c);
    }
    int status = CLI_EXIT_FAIL;
    dist_set_timeout(0); /* and its own last job may be a long video */
    dist_bcast(&status, sizeof status);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    free_ctx(c);
    fflush(stdout), fflush(stderr);
    dist_finish();
    return status;
}

int cmd_cartoonize(int argc, char **argv) {
    static run_ctx ctx;
    run_ctx *c = &ctx;
    memset(c, 0, sizeof *c);
    double start = progress_now();
    if (dist_start("cartoonize") != 0) return CLI_EXIT_FAIL;
    dist_mute_begin(); /* every process parses; rank 0 alone says what it thinks */
    int r = parse_options(&c->opt, argc, argv);
    dist_mute_end();
    if (r >= 0) {
        free(c->opt.inputs);
        dist_finish();
        return r;
    }
    const int mpi = dist_size() > 1;
    int go_sent = 0;
    if (mpi) {
        dist_set_timeout(c->opt.mpi_timeout);
        if (c->opt.threads == 0) c->opt.threads = dist_default_threads();
        if (dist_rank() > 0) return worker_main(c);
    }
    const options *o = &c->opt;
    progress_init(&c->bar, 0, "images", "img/s", 0);

    input_opts io = {.ignore_gif = o->ignore_gif,
                     .max_download_bytes = (uint64_t)o->max_download_mb << 20,
                     .connect_timeout_s = o->connect_timeout,
                     .download_timeout_s = o->download_timeout,
                     .interrupted = &interrupted,
                     .fail = fail_input,
                     .user = c};
    struct stat st;
    if (stat(o->output_dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        io.have_out_dir = 1;
        io.out_dev = st.st_dev;
        io.out_ino = st.st_ino;
    }
    cli_catch_interrupts(on_signal);

    int status = CLI_EXIT_FAIL, todo = 0, skipped = 0, ran = 0;
    if (o->ninputs > 0) {
        for (int i = 0; i < o->ninputs; i++) inputs_add(&c->inputs, o->inputs[i], &io);
    } else if (stat(o->input_dir, &st) != 0) {
        /* the sample photos are a checkout's (make puts them there); an installed
         * command has no folder of its own to offer */
        const char *hint = strcmp(o->input_dir, DEFAULT_INPUT_DIR) ? ""
                           : cli_installed_data_dir()
                               ? ", e.g. 'cartoongan cartoonize photo.jpg'"
                               : "; `make` puts the seed project's two sample photos in " DEFAULT_INPUT_DIR;
        fprintf(stderr, "cartoongan: %s: %s (give files, folders or URLs to cartoonize, or "
                        "--input-dir DIR%s)\n", o->input_dir, cli_errno_text(errno), hint);
        goto out;
    } else {
        inputs_add(&c->inputs, o->input_dir, &io);
    }
    /* the output folder is checked before anything is downloaded, read or written */
    if ((c->inputs.n > 0 || c->inputs.urls.n > 0) && check_output_dir(o) < 0) goto out;
    inputs_download(&c->inputs, &io);
    inputs_drop_duplicates(&c->inputs, &io);

    int njobs = 0;
    for (int i = 0; i < c->inputs.n; i++) njobs += !c->inputs.v[i].drop;
    if (njobs == 0 && c->failures.n == 0) {
        if (c->inputs.ignored_gifs && !interrupted) { /* only GIFs, and told to skip them */
            if (!o->quiet) print_summary(c, 0, progress_now() - start);
            status = CLI_EXIT_OK;
        } else if (!interrupted) {
            no_inputs_message(o);
            char *other = inputs_skipped_text(&c->inputs);
            if (other) fprintf(stderr, "cartoongan: %s\n", other);
            free(other);
        }
        goto out;
    }

    c->jobs = cli_xcheck(calloc((size_t)(c->inputs.n ? c->inputs.n : 1), sizeof *c->jobs));
    for (int i = 0; i < c->inputs.n; i++) {
        job *j = &c->jobs[i];
        j->in = &c->inputs.v[i];
        if (j->in->drop) continue;
        j->todo = plan_job(o, j);
        todo += j->todo;
        skipped += !j->todo;
    }
    clean_output_dirs(c);
    if (mpi) { /* the others wait for this: how much there is to do */
        int go = interrupted ? 0 : todo;
        dist_bcast(&go, sizeof go);
        go_sent = 1;
    }
    /* with nothing left to do there is no need to read the weights at all */
    if (todo > 0 && !interrupted) {
        /* a single still image is stylized once per style: no need to keep every layer's
         * transformed weights (model_load_at_use) */
        int one_image = 0;
        for (int i = 0; i < c->inputs.n && !mpi && todo == 1; i++)
            if (c->jobs[i].todo) one_image = c->inputs.v[i].kind == MEDIA_IMAGE;
        int ok = load_models(c, one_image) == 0;
        if (mpi) ok = all_loaded(ok);
        if (!ok) goto out;
    }

    /* one input: the bar is that input's own (media.c sets it up); several: a count of
     * inputs, the one under way counted by its fraction done */
    progress_init(&c->bar, todo, "images", "img/s", !o->quiet && todo > 1);
    int index = 0;
    if (mpi && todo > 0) rank0_jobs(c, todo), index = todo;
    for (int i = 0; i < c->inputs.n && !interrupted && !mpi; i++) {
        job *j = &c->jobs[i];
        if (!j->todo) continue;
        progress_update(&c->bar, index);
        job_result jr = process_job(c, j, index, todo == 1);
        if (jr == JOB_CANCELLED) break;
        c->done[j->in->kind] += jr == JOB_OK;
        index++;
    }
    if (todo > 1) progress_update(&c->bar, index);
    progress_finish(&c->bar);
    status = c->failures.n ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    ran = 1;
out:
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (interrupted) {
        fprintf(stderr, "cartoongan: interrupted\n");
        status = 130; /* the shell's code for death by SIGINT */
    }
    if (ran && !o->quiet) print_summary(c, skipped, progress_now() - start);
    if (mpi) { /* every process ends with the whole job's status */
        int go = 0;
        if (!go_sent) dist_bcast(&go, sizeof go);
        dist_set_timeout(0);
        dist_bcast(&status, sizeof status);
    }
    free_ctx(c);
    fflush(stdout), fflush(stderr);
    dist_finish();
    return status;
}
