/* main.c: the cartoongan command: picks a subcommand (`cartoongan <command> [options]`),
 * answers --help / --version, and holds the option-parsing helpers of cli.h. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cartoongan.h"
#include "cli/cli.h"
#include "cli/dist.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"cartoonize", cmd_cartoonize, "turn photos, GIFs and videos into anime (shinkai, hayao, hosoda, paprika, light_shinkai, light_paprika, or your own)"},
    {"bench", cmd_bench, "time the engine on images of given sizes (synthetic, or a photo resized)"},
    {"export", cmd_export, "convert a style's weights, or a training checkpoint's G, to one .safetensors file"},
    {"serve", cmd_serve, "serve the browser app over HTTP on this machine"},
    {"train", cmd_train, "train a style on a dataset of photos and cartoons (TensorBoard, checkpoints, --resume)"},
    {"smooth", cmd_smooth, "blur the edges of a training set's cartoons (DATASET/trainB -> trainB_smooth)"},
    {"fetch-weights", cmd_fetch_weights, "download the released styles' weights into the user's weights folder"},
};
#define NUM_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void print_help(FILE *f) {
    fprintf(f,
            "usage: cartoongan <command> [options]\n"
            "\n"
            "CartoonGAN in C: turns photos, GIFs and videos into anime in six built-in styles\n"
            "(four full ones and two light, fast ones) or styles you train.\n"
            "\n"
            "commands:\n");
    for (int i = 0; i < NUM_COMMANDS; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "options:\n"
            "  -h, --help   show this help and exit\n"
            "  --version    print the version (%s) and exit\n"
            "\n"
            "Run 'cartoongan <command> --help' for a command's options.\n",
            CG_VERSION);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cartoongan %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\ntry 'cartoongan %s --help'\n", cmd);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_opt_value(const char *cmd, int argc, char **argv, int *i, const char *name,
                  const char **value) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "option %s needs a value", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int cli_opt_flag(const char *cmd, char **argv, int i, const char *name) {
    const char *a = argv[i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '\0') return 1;
    if (a[n] == '=') {
        cli_usage_error(cmd, "option %s takes no value", name);
        return -1;
    }
    return 0;
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, int min, int max,
                  int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno == ERANGE || v < min || v > max) {
        if (max == INT_MAX)
            cli_usage_error(cmd, "invalid value '%s' for %s (expected an integer >= %d)", s,
                            opt, min);
        else
            cli_usage_error(cmd, "invalid value '%s' for %s (expected an integer from %d to %d)",
                            s, opt, min, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        print_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V") || !strcmp(cmd, "version")) {
        printf("cartoongan %s\n", CG_VERSION);
        if (dist_mpi_library()) /* README, "On several machines" */
            printf("built with MPI (%s): mpirun -np K cartoongan train|cartoonize ...\n", dist_mpi_library());
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "help")) {
        /* `cartoongan help cartoonize` reads as naturally as `cartoonize --help` */
        if (argc < 3) {
            print_help(stdout);
            return CLI_EXIT_OK;
        }
        for (int i = 0; i < NUM_COMMANDS; i++)
            if (!strcmp(argv[2], commands[i].name)) {
                char *args[] = {argv[2], "--help", NULL};
                return commands[i].run(2, args);
            }
        fprintf(stderr, "cartoongan: unknown command '%s'\ntry 'cartoongan --help'\n", argv[2]);
        return CLI_EXIT_USAGE;
    }
    /* a CARTOONGAN_KERNEL this CPU lacks (or misspelt) is not an error, but says so */
    const char *want = getenv("CARTOONGAN_KERNEL");
    if (want && *want && strcmp(want, cg_kernel_name()))
        fprintf(stderr, "cartoongan: CARTOONGAN_KERNEL=%s: not a kernel this CPU has; using %s\n", want,
                cg_kernel_name());
    for (int i = 0; i < NUM_COMMANDS; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    if (cmd[0] == '-')
        fprintf(stderr, "cartoongan: unknown option '%s'\ntry 'cartoongan --help'\n", cmd);
    else
        fprintf(stderr, "cartoongan: unknown command '%s'\ntry 'cartoongan --help'\n", cmd);
    return CLI_EXIT_USAGE;
}
