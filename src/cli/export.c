/* export.c: `cartoongan export`: loads a style's weights from an upstream .npy directory
 * (or a .safetensors file) and writes them as one .safetensors file. `make` uses it to
 * convert the released weights; loading validates every tensor, so a file it writes is
 * known to be complete. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cartoongan.h"
#include "cli/cli.h"

static void print_help(void) {
    printf("usage: cartoongan export [--force] [--fp16] [--quiet] SRC DEST.safetensors\n"
           "\n"
           "Load a CartoonGAN generator from SRC (a directory of the upstream release's .npy\n"
           "files, or a .safetensors file), check every tensor's name, type and shape, and\n"
           "write it to DEST as a single .safetensors file (atomically).\n"
           "\n"
           "options:\n"
           "  -h, --help   show this help and exit\n"
           "  --force      overwrite DEST if it exists (default: refuse)\n"
           "  --fp16       store the tensors as half floats (F16): half the size, for the\n"
           "               browser app's download (default: float32, exact)\n"
           "  --quiet      print nothing on success\n");
}

int cmd_export(int argc, char **argv) {
    const char *cmd = "export";
    int force = 0, quiet = 0, fp16 = 0, r;
    const char *pos[2];
    int npos = 0, options_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (npos == 2) return cli_usage_error(cmd, "unexpected argument '%s'", a);
            pos[npos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            options_done = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_help();
            return CLI_EXIT_OK;
        } else if ((r = cli_opt_flag(cmd, argv, i, "--force")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            force = 1;
        } else if ((r = cli_opt_flag(cmd, argv, i, "--fp16")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            fp16 = 1;
        } else if ((r = cli_opt_flag(cmd, argv, i, "--quiet")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            quiet = 1;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
    }
    if (npos < 2)
        return cli_usage_error(cmd, npos ? "missing DEST" : "missing SRC and DEST");
    const char *src = pos[0], *dest = pos[1];

    struct stat st;
    if (!force && stat(dest, &st) == 0) {
        fprintf(stderr, "cartoongan export: %s already exists (use --force to overwrite)\n",
                dest);
        return CLI_EXIT_FAIL;
    }
    cg_model *m;
    if (cg_model_load(&m, src) != CG_OK) {
        fprintf(stderr, "cartoongan export: %s\n", cg_last_error());
        return CLI_EXIT_FAIL;
    }
    cg_status s = fp16 ? cg_model_save_fp16(m, dest) : cg_model_save(m, dest);
    cg_model_free(m);
    if (s != CG_OK) {
        fprintf(stderr, "cartoongan export: %s\n", cg_last_error());
        return CLI_EXIT_FAIL;
    }
    if (!quiet) printf("exported %s -> %s\n", src, dest);
    return CLI_EXIT_OK;
}
