/* bench.c: `cartoongan bench`, timing the engine alone (no decoding or encoding) on images
 * of given sizes: median and best of several runs, the achieved GFLOP/s (two flops per
 * multiply-add of the direct convolutions), working memory and peak resident memory. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cartoongan.h"
#include "cli/cli.h"
#include "cli/media.h"
#include "cli/progress.h"
#include "io/image.h"
#include "model/light.h"
#include "model/model.h"

#define MAX_SIZES 16

static void print_help(void) {
    printf("usage: cartoongan bench [options]\n"
           "\n"
           "Time the generator on images of the given sizes (engine only: no decoding or\n"
           "encoding) and print median and best times, GFLOP/s and memory.\n"
           "\n"
           "options:\n"
           "  --sizes WxH[,WxH...]  image sizes (default: 256x256,512x512)\n"
           "  --runs N              timed runs per size, after one warm-up (default: 3)\n"
           "  --threads N           worker threads, 0 = one per CPU (default: 0)\n"
           "  --style S             style whose weights are used: shinkai, hayao, hosoda,\n"
           "                        paprika, light_shinkai, light_paprika (in any case), or a\n"
           "                        custom NAME for WEIGHTS_DIR/NAME.safetensors (default:\n"
           "                        shinkai)\n"
           "  --weights-dir DIR     where the style is looked up (default: as 'weights' below\n"
           "                        says)\n"
           "  --input FILE          a photo resized to each size (default: a synthetic image)\n"
           "  -h, --help            show this help and exit\n"
           "\n"
           "The first line names the compute kernel: the best this CPU has (amx, avx512,\n"
           "avx2 or portable), or the one CARTOONGAN_KERNEL names (e.g. CARTOONGAN_KERNEL=avx512\n"
           "to time fp32 products where amx would be chosen).\n");
    cli_print_weights_help();
}

/* The multiply-adds one stylization does: the light generator's or the full one's. */
static double macs(const cg_model *m, int w, int h) {
    return m->light ? light_macs(h, w) : cg_stylize_macs(w, h);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int parse_sizes(const char *s, int *w, int *h, int *n) {
    *n = 0;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10);
        if (end == s || *end != 'x') return -1;
        s = end + 1;
        long b = strtol(s, &end, 10);
        if (end == s || (*end && *end != ',') || a < 1 || b < 1 || a > 65536 || b > 65536 || *n == MAX_SIZES)
            return -1;
        w[*n] = (int)a, h[*n] = (int)b, (*n)++;
        s = *end ? end + 1 : end;
    }
    return *n ? 0 : -1;
}

int cmd_bench(int argc, char **argv) {
    const char *cmd = "bench", *sizes = "256x256,512x512", *style = "shinkai", *input = NULL;
    const char *weights_dir = NULL; /* the default places (weights.c) */
    int runs = 3, threads = 0, r;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            print_help();
            return CLI_EXIT_OK;
        } else if ((r = cli_opt_value(cmd, argc, argv, &i, "--sizes", &v))) {
            if (r < 0) return CLI_EXIT_USAGE;
            sizes = v;
        } else if ((r = cli_opt_value(cmd, argc, argv, &i, "--runs", &v))) {
            if (r < 0 || cli_parse_int(cmd, "--runs", v, 1, 1000, &runs) < 0) return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_value(cmd, argc, argv, &i, "--threads", &v))) {
            if (r < 0 || cli_parse_int(cmd, "--threads", v, 0, 1024, &threads) < 0) return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_value(cmd, argc, argv, &i, "--style", &v))) {
            if (r < 0) return CLI_EXIT_USAGE;
            style = v;
        } else if ((r = cli_opt_value(cmd, argc, argv, &i, "--weights-dir", &v))) {
            if (r < 0) return CLI_EXIT_USAGE;
            weights_dir = v;
        } else if ((r = cli_opt_value(cmd, argc, argv, &i, "--input", &v))) {
            if (r < 0) return CLI_EXIT_USAGE;
            input = v;
        } else {
            return cli_usage_error(cmd, "unknown argument '%s'", argv[i]);
        }
    }
    int ws[MAX_SIZES], hs[MAX_SIZES], nsizes;
    if (parse_sizes(sizes, ws, hs, &nsizes) < 0)
        return cli_usage_error(cmd, "invalid --sizes '%s' (expected WxH[,WxH...])", sizes);
    /* the names cartoonize takes, checked as it checks them: a built-in one in any case, a
     * custom one with weights where styles are looked up, else a usage error naming those
     * there are */
    char styles[CLI_MAX_STYLES][CLI_STYLE_NAME_MAX + 1];
    int nstyles = 0;
    if (cli_styles_add(cmd, styles, &nstyles, style) < 0) return CLI_EXIT_USAGE;
    if (nstyles != 1)
        return cli_usage_error(cmd, "--style needs one style name (got '%s')", style);
    if (cli_styles_check_custom(cmd, styles, nstyles, weights_dir) < 0) return CLI_EXIT_USAGE;
    style = styles[0];

    cg_image photo = {0};
    if (input && cg_image_load(&photo, input, 0) != CG_OK) {
        fprintf(stderr, "cartoongan: %s\n", cg_last_error());
        return CLI_EXIT_FAIL;
    }
    cg_model *m;
    if (cli_load_style(weights_dir, style, threads, 0, &m) < 0) {
        cg_image_free(&photo);
        return CLI_EXIT_FAIL;
    }
    printf("kernel: %s\n", cg_kernel_name());
    printf("%-11s %8s %10s %10s %9s %12s\n", "size", "threads", "median s", "best s", "GFLOP/s", "work MB");
    int status = CLI_EXIT_OK;
    for (int s = 0; s < nsizes && status == CLI_EXIT_OK; s++) {
        int w = ws[s], h = hs[s];
        uint8_t *img = malloc((size_t)w * h * 3), *out = malloc((size_t)w * h * 3);
        double *t = malloc((size_t)runs * sizeof *t);
        if (!img || !out || !t) {
            fprintf(stderr, "cartoongan: out of memory for %dx%d\n", w, h);
            status = CLI_EXIT_FAIL;
        } else {
            if (photo.rgb) cg_resize_rgb(img, w, h, photo.rgb, photo.w, photo.h);
            else
                for (size_t i = 0; i < (size_t)w * h * 3; i++) /* smooth ramps plus a little texture */
                    img[i] = (uint8_t)((i % 3 * 80 + (i / 3 % w) * 255 / w + (i / 3 / w) * 128 / h + (i * 2654435761u >> 28)) & 255);
            for (int k = -1; k < runs && status == CLI_EXIT_OK; k++) {
                double t0 = progress_now();
                if (cg_stylize(m, out, img, w, h, NULL) != CG_OK) {
                    fprintf(stderr, "cartoongan: %dx%d: %s\n", w, h, cg_last_error());
                    status = CLI_EXIT_FAIL;
                }
                if (k >= 0) t[k] = progress_now() - t0;
            }
            if (status == CLI_EXIT_OK) {
                qsort(t, (size_t)runs, sizeof *t, cmp_double);
                double med = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
                char label[32];
                snprintf(label, sizeof label, "%dx%d", w, h);
                printf("%-11s %8d %10.3f %10.3f %9.1f %12.1f\n", label, threads ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN),
                       med, t[0], 2 * macs(m, w, h) / med / 1e9, cg_stylize_memory(m, w, h) / 1e6);
                fflush(stdout);
            }
        }
        free(img), free(out), free(t);
    }
    struct rusage ru;
    if (status == CLI_EXIT_OK && getrusage(RUSAGE_SELF, &ru) == 0)
        printf("peak resident memory: %.1f MB\n", ru.ru_maxrss / 1024.0);
    cg_model_free(m);
    cg_image_free(&photo);
    return status;
}
