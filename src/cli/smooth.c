/* smooth.c: `cartoongan smooth --path DATASET`: the CartoonGAN paper's edge-promoting step
 * over a training set, as the seed project's scripts/smooth.py: every image of
 * DATASET/trainB goes through cg_edge_smooth (src/io/smooth.h) to
 * DATASET/trainB_smooth/<same name>, same size and format. Images are independent and
 * small, so they are spread over a thread pool, one image per task; a bad image is
 * reported on its own line and the run goes on; the exit status says whether anything
 * failed. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cartoongan.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "io/image.h"
#include "io/smooth.h"
#include "nn/pool.h"

#define CMD "smooth"
#define IN_DIR "trainB"         /* smooth.py's names, which the trainer reads too */
#define OUT_DIR "trainB_smooth"
#define IMAGE_TYPES ".jpg, .jpeg, .png or .webp"

typedef struct {
    const char *path; /* the dataset */
    int threads, overwrite, quiet;
} options;

typedef struct {
    char *in, *out; /* DATASET/trainB/<name>, DATASET/trainB_smooth/<name> */
} job;

/* What the workers share; the mutex covers the counters, the failure list and the bar. */
typedef struct {
    job *jobs; /* only those to do */
    int njobs;
    pthread_mutex_t mu;
    progress bar;
    int finished, smoothed;
    str_list failures;
} run_ctx;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

/* ---- options ---- */

static void print_help(void) {
    printf("usage: cartoongan smooth [-h] --path DATASET [--threads N] [--overwrite] [--quiet]\n"
           "\n"
           "Prepare a training set's smoothed cartoons (the CartoonGAN paper's edge promoting,\n"
           "as the seed's scripts/smooth.py): each image in DATASET/" IN_DIR " has the 5x5\n"
           "neighbourhood of its Canny edges (thresholds 100 and 200) blurred with a 5x5\n"
           "Gaussian, and is written to DATASET/" OUT_DIR "/<same name>, same size and format.\n"
           "\n"
           "options:\n"
           "  -h, --help      show this help and exit\n"
           "  --path DATASET  the dataset folder; DATASET/" IN_DIR " holds the cartoon images\n"
           "                  (" IMAGE_TYPES ") (required; no default)\n"
           "  --threads N     images smoothed at once, 0 = one per CPU (default: 0, here %d)\n"
           "  --overwrite     redo outputs that already exist (default: skip them)\n"
           "  --quiet         no progress bar and no summary; errors are still printed\n"
           "                  (default: off)\n",
           cg_cpu_count());
}

/* Returns -1 to run, otherwise the exit status (help or a usage error). */
static int parse_options(options *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    int r;
    const char *v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_help();
            return CLI_EXIT_OK;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--path", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            if (!*v) return cli_usage_error(CMD, "--path needs the dataset folder");
            o->path = v;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--threads", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--threads", v, 0, 4096, &o->threads) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--overwrite")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            o->overwrite = 1;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--quiet")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            o->quiet = 1;
        } else if (a[0] == '-') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s' (the dataset is given as "
                                        "--path DATASET)", a);
        }
    }
    if (!o->path)
        return cli_usage_error(CMD, "--path DATASET is required (the folder holding " IN_DIR
                                    "/, the cartoon images to smooth)");
    return -1;
}

/* ---- the work ---- */

/* Records a failed image: one line on stderr now, and again in the summary. The library's
 * messages usually start with the file they are about; the input's name is added when
 * they do not, so each line names its file. Called with c->mu held. */
static void fail_locked(run_ctx *c, const job *j, const char *err) {
    size_t ni = strlen(j->in), no = strlen(j->out);
    char *msg;
    if ((!strncmp(err, j->in, ni) && err[ni] == ':') || (!strncmp(err, j->out, no) && err[no] == ':'))
        msg = cli_printf("%s", err);
    else
        msg = cli_printf("%s: %s", j->in, *err ? err : "unknown error");
    progress_message(&c->bar, "cartoongan: %s", msg);
    cli_list_push(&c->failures, msg);
}

/* One image: read (EXIF orientation, gray, alpha and 16-bit handled by the reader, as for
 * cartoonize), smooth, write atomically in the format its name says, as smooth.py's
 * cv2.imwrite does. Returns NULL, or the library's message on failure (thread-local, so
 * it is copied under the lock by the caller). */
static const char *smooth_one(const job *j) {
    cg_image img = {0};
    if (cg_image_load(&img, j->in, CG_DEFAULT_MAX_PIXELS) != CG_OK) return cg_last_error();
    cg_image out = {.w = img.w, .h = img.h, .rgb = malloc((size_t)img.w * img.h * 3)};
    const char *err = NULL;
    if (!out.rgb) {
        static _Thread_local char msg[128];
        snprintf(msg, sizeof msg, "out of memory for a %dx%d image", img.w, img.h);
        err = msg;
    } else if (cg_edge_smooth(out.rgb, img.rgb, img.w, img.h, NULL) != CG_OK ||
               cg_image_save(&out, j->out, cg_format_from_path(j->out)) != CG_OK) {
        err = cg_last_error();
    }
    free(out.rgb);
    cg_image_free(&img);
    return err;
}

static void task(void *arg, int i, int n) {
    (void)n;
    run_ctx *c = arg;
    if (interrupted) return; /* images under way finish; no new one starts */
    const char *err = smooth_one(&c->jobs[i]);
    pthread_mutex_lock(&c->mu);
    if (err)
        fail_locked(c, &c->jobs[i], err);
    else
        c->smoothed++;
    c->finished++;
    progress_update(&c->bar, c->finished);
    pthread_mutex_unlock(&c->mu);
}

/* The images of DATASET/trainB: regular files (or links to them) with an image
 * extension, sorted by name; hidden files (a killed run's temporaries among them) are
 * never taken. Returns -1 after printing why the folder cannot be used. */
static int list_images(const char *in_dir, const char *dataset, str_list *names, int *ignored) {
    DIR *d = opendir(in_dir);
    if (!d) {
        int e = errno;
        struct stat st;
        int missing = stat(dataset, &st) != 0;
        if (missing || !S_ISDIR(st.st_mode))
            fprintf(stderr, "cartoongan: no dataset at %s: %s (--path is the dataset folder, "
                            "which holds " IN_DIR "/ with the cartoon images)\n",
                    dataset, missing ? cli_errno_text(errno) : "not a directory");
        else if (e == ENOENT)
            fprintf(stderr, "cartoongan: %s: no such directory; put the cartoon images to "
                            "smooth (" IMAGE_TYPES ") in %s\n", in_dir, in_dir);
        else
            fprintf(stderr, "cartoongan: cannot read %s: %s (it should be the folder of "
                            "cartoon images to smooth)\n", in_dir, cli_errno_text(e));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = cli_path_join(in_dir, e->d_name);
        struct stat st;
        int is_file = stat(p, &st) == 0 && S_ISREG(st.st_mode);
        free(p);
        cg_format f = cg_format_from_path(e->d_name);
        /* the smoothed copy keeps its name and format: HEIF, read but not written, is not taken */
        if (is_file && f != CG_FMT_UNKNOWN && f != CG_FMT_HEIF)
            cli_list_push(names, cli_xcheck(strdup(e->d_name)));
        else if (is_file)
            ++*ignored;
    }
    closedir(d);
    if (names->n > 1) qsort(names->v, (size_t)names->n, sizeof *names->v, cli_cmp_str);
    return 0;
}

static void print_summary(const run_ctx *c, int skipped, int ignored, int threads, double s) {
    printf("smoothed %d image%s in %.1f s (%d thread%s)", c->smoothed, c->smoothed == 1 ? "" : "s",
           s, threads, threads == 1 ? "" : "s");
    const char *sep = "; ";
    if (skipped) {
        printf("%s%d skipped (already done; --overwrite redoes them)", sep, skipped);
        sep = ", ";
    }
    if (ignored) {
        printf("%s%d other file%s ignored (not " IMAGE_TYPES ")", sep, ignored,
               ignored == 1 ? "" : "s");
        sep = ", ";
    }
    if (c->failures.n) printf("%s%d failed", sep, c->failures.n);
    printf("\n");
    for (int i = 0; i < c->failures.n; i++) printf("failed: %s\n", c->failures.v[i]);
    fflush(stdout);
}

int cmd_smooth(int argc, char **argv) {
    double start = progress_now();
    options o;
    int r = parse_options(&o, argc, argv);
    if (r >= 0) return r;

    char *in_dir = cli_path_join(o.path, IN_DIR), *out_dir = cli_path_join(o.path, OUT_DIR);
    str_list names = {0};
    int ignored = 0, status = CLI_EXIT_FAIL;
    run_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    run_ctx *c = &ctx;
    pthread_mutex_init(&c->mu, NULL);
    if (list_images(in_dir, o.path, &names, &ignored) < 0) goto out;
    if (names.n == 0) {
        fprintf(stderr, "cartoongan: no images in %s (it should hold the cartoon images to "
                        "smooth: " IMAGE_TYPES " files", in_dir);
        if (ignored) fprintf(stderr, "; %d other file%s there", ignored, ignored == 1 ? " is" : "s are");
        fprintf(stderr, ")\n");
        goto out;
    }
    if (cg_mkdir_p(out_dir) != CG_OK) {
        fprintf(stderr, "cartoongan: cannot create %s: %s\n", out_dir, cg_last_error());
        goto out;
    }
    /* a run killed outright leaves at most hidden temporaries; take those no one holds */
    cg_clean_stale_temps(out_dir, CG_STALE_TEMP_SECONDS);

    c->jobs = cli_xcheck(calloc((size_t)names.n, sizeof *c->jobs));
    int skipped = 0;
    for (int i = 0; i < names.n; i++) {
        char *out = cli_path_join(out_dir, names.v[i]);
        struct stat st;
        if (!o.overwrite && stat(out, &st) == 0) {
            free(out);
            skipped++;
            continue;
        }
        c->jobs[c->njobs].in = cli_path_join(in_dir, names.v[i]);
        c->jobs[c->njobs++].out = out;
    }

    int threads = o.threads > 0 ? o.threads : cg_cpu_count();
    if (threads > c->njobs) threads = c->njobs > 0 ? c->njobs : 1;
    /* without a pool (threads failed to start) cg_pool_run runs the tasks here */
    cg_pool *pool = threads > 1 ? cg_pool_create(threads) : NULL;
    threads = cg_pool_threads(pool);

    cli_catch_interrupts(on_signal);
    progress_init(&c->bar, c->njobs, "images", "img/s", !o.quiet && c->njobs > 1);
    if (c->njobs > 0) {
        progress_update(&c->bar, 0);
        cg_pool_run(pool, task, c, c->njobs);
    }
    progress_finish(&c->bar);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    cg_pool_free(pool);

    /* workers finish in any order; the list reads better sorted */
    if (c->failures.n > 1) qsort(c->failures.v, (size_t)c->failures.n, sizeof *c->failures.v, cli_cmp_str);
    status = c->failures.n ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    if (interrupted) {
        fprintf(stderr, "cartoongan: interrupted\n");
        status = 130; /* the shell's code for death by SIGINT */
    }
    if (!o.quiet) print_summary(c, skipped, ignored, threads, progress_now() - start);
out:
    for (int i = 0; i < c->njobs; i++) {
        free(c->jobs[i].in);
        free(c->jobs[i].out);
    }
    free(c->jobs);
    cli_list_free(&c->failures);
    cli_list_free(&names);
    pthread_mutex_destroy(&c->mu);
    free(in_dir);
    free(out_dir);
    return status;
}
