/* export.c: `cartoongan export`, two forms:
 *   export SRC DEST.safetensors
 *     loads a style's weights from an upstream .npy directory (or a .safetensors file) and
 *     writes them as one .safetensors file; `make` uses it to convert the released weights.
 *     When SRC is a TensorFlow 2 checkpoint (a directory with a `checkpoint` or *.index
 *     file, or the .index file), it must be the seed project's light generator (every
 *     tensor of light_params.h with its shape, nothing else): its tensors are written as
 *     they are, TensorFlow layouts and all, with "architecture": "cartoongan-light";
 *   export --checkpoint-dir DIR --name NAME
 *     takes the generator G out of the newest valid training checkpoint that
 *     `cartoongan train` left in DIR (ckpt-<step>.safetensors, which also hold D and both
 *     Adam states) and writes it as WEIGHTS_DIR/NAME.safetensors, a style that
 *     `cartoonize --styles NAME` and the browser app load like a released one.
 * Either way the written file is checked by loading it back before it takes its final
 * name, so a file this command leaves is known to be complete and loadable. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cartoongan.h"
#include "cli/cli.h"
#include "io/image.h"
#include "io/tfckpt.h"
#include "model/generator.h"
#include "model/light_params.h"
#include "model/safetensors.h"
#include "status.h"

#define CMD "export"
#define CKPT_PREFIX "ckpt-"
#define CKPT_SUFFIX ".safetensors"
#define CKPT_MODEL "cartoongan-checkpoint"

static void print_help(void) {
    printf("usage: cartoongan export [--force] [--fp16] [--quiet] SRC DEST.safetensors\n"
           "       cartoongan export --checkpoint-dir DIR --name NAME [--out-dir DIR]\n"
           "                         [--force] [--fp16] [--quiet]\n"
           "\n"
           "First form: load a CartoonGAN generator from SRC (a directory of the upstream\n"
           "release's .npy files, or a .safetensors file), check every tensor's name, type and\n"
           "shape, and write it to DEST as a single .safetensors file (atomically).\n"
           "SRC may also be a TensorFlow 2 checkpoint of the seed project's light generator\n"
           "(a directory such as light_shinkai_ckpt/ with `checkpoint`, generator.index and\n"
           "generator.data-00000-of-00001, or the .index file): every CRC32C is checked, all\n"
           "%d of its tensors must be there with their shapes, and they are written unchanged\n"
           "(TensorFlow layouts, float32 unless --fp16) with \"architecture\":\n"
           "\"" LIGHT_ARCHITECTURE "\" in the file's metadata.\n"
           "\n"
           "Second form: take the generator out of the newest training checkpoint in DIR\n"
           "(DIR/ckpt-<step>.safetensors, written by `cartoongan train`; the highest step wins,\n"
           "and a damaged one is skipped with a warning for the next newest) and write it to\n"
           "OUT_DIR/NAME.safetensors, a custom style: `cartoongan cartoonize --styles NAME`\n"
           "then uses it. The file is loaded back before it is renamed into place.\n"
           "\n"
           "options:\n"
           "  -h, --help            show this help and exit\n"
           "  --checkpoint-dir DIR  export G from the newest valid checkpoint in DIR\n"
           "                        (default: none, the SRC DEST form)\n"
           "  --name NAME           the style's name: letters, digits, '_' and '-', at most %d\n"
           "                        characters (required with --checkpoint-dir)\n"
           "  --out-dir DIR         where to write NAME.safetensors (default: the user's\n"
           "                        weights folder: $CARTOONGAN_WEIGHTS if set, else the\n"
           "                        first place cartoonize looks in, as 'weights' below\n"
           "                        says)\n"
           "  --force               overwrite DEST or OUT_DIR/NAME.safetensors if it exists\n"
           "                        (default: refuse)\n"
           "  --fp16                store the tensors as half floats (F16): half the size, for\n"
           "                        the browser app's download (default: float32, exact)\n"
           "  --quiet               print nothing on success (warnings still go to stderr)\n",
           LIGHT_NUM_TENSORS, CLI_STYLE_NAME_MAX);
    cli_print_weights_help();
}

/* The first form, as it always was. */
static int export_file(const char *src, const char *dest, int force, int fp16, int quiet) {
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

/* ---- the checkpoint form ---- */

typedef struct {
    uint64_t step;
    char *name; /* the file name inside the directory */
} ckpt;

/* The step of "ckpt-<digits>.safetensors" (8 digits as train writes them; more once a
 * run passes 99,999,999 steps), or -1 for any other name: a hidden temporary file of an
 * interrupted save starts with '.' and never matches. */
static int ckpt_step(const char *name, uint64_t *step) {
    size_t np = strlen(CKPT_PREFIX), ns = strlen(CKPT_SUFFIX), n = strlen(name);
    if (n <= np + ns || strncmp(name, CKPT_PREFIX, np) || strcmp(name + n - ns, CKPT_SUFFIX))
        return -1;
    size_t digits = n - np - ns;
    if (digits < 8 || digits > 19) return -1;
    uint64_t v = 0;
    for (size_t i = np; i < np + digits; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *step = v;
    return 0;
}

static int by_step_desc(const void *a, const void *b) {
    const ckpt *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? 1 : -1;
    return strcmp(x->name, y->name); /* ckpt-00000001 and ckpt-000000001: any fixed order */
}

/* Lists DIR's checkpoints, newest first. Returns the count, or -1 after an error line. */
static int list_checkpoints(const char *dir, ckpt **out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "cartoongan export: %s: cannot open the checkpoint directory: %s\n", dir,
                strerror(errno));
        return -1;
    }
    ckpt *v = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t step;
        if (ckpt_step(e->d_name, &step) < 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            ckpt *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) break;
            v = nv;
        }
        v[n].step = step;
        if ((v[n].name = strdup(e->d_name)) == NULL) break;
        n++;
    }
    int oom = e != NULL;
    closedir(d);
    if (oom) {
        for (int i = 0; i < n; i++) free(v[i].name);
        free(v);
        fprintf(stderr, "cartoongan export: %s: out of memory\n", dir);
        return -1;
    }
    if (n > 1) qsort(v, (size_t)n, sizeof *v, by_step_desc);
    *out = v;
    return n;
}

/* The library's message without a leading "PATH: " (the caller names the file itself). */
static const char *reason(const char *path) {
    const char *e = cg_last_error();
    size_t n = strlen(path);
    if (!strncmp(e, path, n) && e[n] == ':' && e[n + 1] == ' ') e += n + 2;
    return *e ? e : "unknown error";
}

/* Reads G out of one checkpoint into params (GEN_NUM_PARAMS floats): st_load checks every
 * G tensor's shape, its byte range inside the file (a truncated file fails here) and its
 * values (finite). The metadata is checked after, so that some other .safetensors file
 * that happens to hold "G." tensors is not taken for a checkpoint. */
static cg_status read_generator(const char *path, const tensor_info *specs, float *params) {
    cg_status s = st_load(path, specs, GEN_NUM_TENSORS, params, 1, 0, "a CartoonGAN training checkpoint");
    if (s != CG_OK) return s;
    char model[64];
    if (st_read_metadata(path, "model", model, sizeof model) != CG_OK || strcmp(model, CKPT_MODEL))
        return cg_fail(CG_ERR_FORMAT, "%s: not a training checkpoint (its metadata lacks "
                                      "\"model\": \"" CKPT_MODEL "\")", path);
    return CG_OK;
}

/* Puts the verified temporary file at dest: with --force by rename (replacing any file);
 * without, by link(), which fails if dest appeared since the check at the start, so a
 * file another process wrote meanwhile is never overwritten. */
static int publish(cg_atomic_file *f, const char *dest, int force) {
    if (!force) {
        if (link(f->tmp, dest) == 0) {
            cg_atomic_abort(f); /* removes the temporary name; dest keeps the file */
            return 0;
        }
        if (errno == EEXIST) {
            cg_atomic_abort(f);
            fprintf(stderr, "cartoongan export: %s already exists (use --force to overwrite)\n",
                    dest);
            return -1;
        }
        /* a file system without hard links: rename, after the check at the start */
    }
    if (cg_atomic_commit(f) != CG_OK) {
        fprintf(stderr, "cartoongan export: %s\n", cg_last_error());
        return -1;
    }
    return 0;
}

/* ---- a TensorFlow 2 checkpoint of the light generator ---- */

/* Whether src is a TF checkpoint: a directory holding `checkpoint` or a *.index file, or an
 * .index file itself. Anything else goes to cg_model_load as before. */
static int is_tf_checkpoint(const char *src) {
    struct stat st;
    if (stat(src, &st) != 0) return 0;
    size_t n = strlen(src);
    if (!S_ISDIR(st.st_mode)) return n > 6 && !strcmp(src + n - 6, ".index");
    DIR *d = opendir(src);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL) {
        size_t k = strlen(e->d_name);
        found = !strcmp(e->d_name, "checkpoint") || (k > 6 && !strcmp(e->d_name + k - 6, ".index"));
    }
    closedir(d);
    return found;
}

/* "source" in the metadata: the checkpoint directory's name (light_shinkai_ckpt), JSON-
 * escaped into buf. */
static void source_name(const char *src, char *buf, size_t n) {
    char *real = realpath(src, NULL);
    const char *dir = real ? real : src;
    struct stat st;
    char *copy = strdup(dir);
    const char *name = dir;
    if (copy) {
        size_t len = strlen(copy);
        while (len > 1 && copy[len - 1] == '/') copy[--len] = 0;
        if (stat(copy, &st) == 0 && !S_ISDIR(st.st_mode)) { /* the .index file: its folder */
            char *slash = strrchr(copy, '/');
            if (slash && slash != copy) *slash = 0;
            else if (!slash) strcpy(copy, ".");
        }
        char *slash = strrchr(copy, '/');
        name = slash && slash[1] ? slash + 1 : copy;
    }
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)name; *c && o + 7 < n; c++) {
        if (*c == '"' || *c == '\\') buf[o++] = '\\', buf[o++] = (char)*c;
        else if (*c < 0x20) o += (size_t)snprintf(buf + o, n - o, "\\u%04x", *c);
        else buf[o++] = (char)*c;
    }
    buf[o] = 0;
    free(copy);
    free(real);
}

/* The light generator's tensors out of c, in light_tensors order, into params: each must
 * be there with its shape and finite values, and c must hold nothing else. An error line
 * has been printed when this returns -1. */
static int light_params_from(const tfckpt *c, const char *src, float *params) {
    const char *what = "not the light generator's checkpoint";
    size_t at = 0;
    for (int i = 0; i < LIGHT_NUM_TENSORS; i++) {
        const tensor_info *ti = &light_tensors[i];
        const tfckpt_tensor *t = tfckpt_find(c, ti->name);
        if (!t) {
            fprintf(stderr, "cartoongan export: %s: %s: it has no tensor %s\n", src, what, ti->name);
            return -1;
        }
        long shape[TFCKPT_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++) shape[d] = (long)t->shape[d];
        if (tensor_check_shape(src, ti, shape, t->ndim) != CG_OK) {
            fprintf(stderr, "cartoongan export: %s (%s)\n", cg_last_error(), what);
            return -1;
        }
        for (size_t k = 0; k < t->count; k++)
            if (!isfinite(t->data[k])) {
                fprintf(stderr, "cartoongan export: %s: tensor %s holds a NaN or infinity\n", src,
                        ti->name);
                return -1;
            }
        memcpy(params + at, t->data, t->count * sizeof(float));
        at += t->count;
    }
    if (tfckpt_count(c) != LIGHT_NUM_TENSORS) {
        /* every expected one is there, so some other one is too: name the first */
        const char *extra = "?";
        for (int i = 0; i < tfckpt_count(c); i++) {
            const char *name = tfckpt_tensor_at(c, i)->name;
            int known = 0;
            for (int j = 0; j < LIGHT_NUM_TENSORS && !known; j++) known = !strcmp(name, light_tensors[j].name);
            if (!known) {
                extra = name;
                break;
            }
        }
        fprintf(stderr, "cartoongan export: %s: %s: %d float tensors, expected %d (%s is not one "
                        "of them)\n", src, what, tfckpt_count(c), LIGHT_NUM_TENSORS, extra);
        return -1;
    }
    return 0;
}

static int export_tf_checkpoint(const char *src, const char *dest, int force, int fp16, int quiet) {
    struct stat st;
    if (!force && stat(dest, &st) == 0) {
        fprintf(stderr, "cartoongan export: %s already exists (use --force to overwrite)\n", dest);
        return CLI_EXIT_FAIL;
    }
    tfckpt *c;
    if (tfckpt_open(&c, src) != CG_OK) {
        fprintf(stderr, "cartoongan export: %s\n", cg_last_error());
        return CLI_EXIT_FAIL;
    }
    int status = CLI_EXIT_FAIL;
    float *params = malloc(LIGHT_NUM_PARAMS * sizeof(float));
    float *back = malloc(LIGHT_NUM_PARAMS * sizeof(float));
    if (!params || !back) {
        fprintf(stderr, "cartoongan export: out of memory\n");
        goto done;
    }
    if (light_params_from(c, src, params) < 0) goto done;

    /* Written under a hidden temporary name next to dest and read back against the same
     * list (names, shapes, F32 values bit for bit) before it gets its name. */
    char source[512], meta[640], arch[64];
    source_name(src, source, sizeof source);
    snprintf(meta, sizeof meta, "\"architecture\":\"" LIGHT_ARCHITECTURE "\",\"source\":\"%s\"",
             source);
    cg_atomic_file f;
    if (cg_atomic_begin(&f, dest) != CG_OK) {
        fprintf(stderr, "cartoongan export: %s\n", cg_last_error());
        goto done;
    }
    close(f.fd); /* st_save replaces the file by name; commit reopens it to sync */
    f.fd = -1;
    if (st_save(f.tmp, light_tensors, LIGHT_NUM_TENSORS, params, fp16, meta) != CG_OK) {
        fprintf(stderr, "cartoongan export: %s: %s\n", dest, reason(f.tmp));
        cg_atomic_abort(&f);
        goto done;
    }
    const char *bad = NULL;
    if (st_load(f.tmp, light_tensors, LIGHT_NUM_TENSORS, back, 0, 0, "the light generator") != CG_OK ||
        st_read_metadata(f.tmp, "architecture", arch, sizeof arch) != CG_OK)
        bad = reason(f.tmp);
    else if (strcmp(arch, LIGHT_ARCHITECTURE))
        bad = "its architecture differs";
    else if (!fp16 && memcmp(back, params, LIGHT_NUM_PARAMS * sizeof(float)))
        bad = "its values differ";
    if (bad) {
        fprintf(stderr, "cartoongan export: %s: the written file does not read back as written: %s\n",
                dest, bad);
        cg_atomic_abort(&f);
        goto done;
    }
    if (publish(&f, dest, force) < 0) goto done;
    if (!quiet)
        printf("exported %s (TensorFlow checkpoint of the light generator, %d tensors) -> %s\n",
               src, LIGHT_NUM_TENSORS, dest);
    status = CLI_EXIT_OK;
done:
    free(params);
    free(back);
    tfckpt_close(c);
    return status;
}

static int export_checkpoint(const char *dir, const char *name, const char *out_dir, int force,
                             int fp16, int quiet) {
    size_t dlen = strlen(out_dir);
    char *dest = malloc(dlen + strlen(name) + sizeof CKPT_SUFFIX + 2);
    if (!dest) {
        fprintf(stderr, "cartoongan export: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    sprintf(dest, "%s%s%s" CKPT_SUFFIX, out_dir, out_dir[dlen - 1] == '/' ? "" : "/", name);
    struct stat st;
    if (!force && stat(dest, &st) == 0) {
        fprintf(stderr, "cartoongan export: %s already exists (use --force to overwrite)\n",
                dest);
        free(dest);
        return CLI_EXIT_FAIL;
    }

    ckpt *list;
    int n = list_checkpoints(dir, &list);
    if (n < 0) {
        free(dest);
        return CLI_EXIT_FAIL;
    }
    if (n == 0) {
        fprintf(stderr, "cartoongan export: %s: no training checkpoint (ckpt-*.safetensors); run "
                        "`cartoongan train` first\n", dir);
        free(list);
        free(dest);
        return CLI_EXIT_FAIL;
    }

    /* G's tensors are stored as "G.<name>" beside D's and the Adam states, which st_load
     * skips (allow_extra) without reading them. */
    tensor_info specs[GEN_NUM_TENSORS];
    char names[GEN_NUM_TENSORS][80];
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        specs[i] = gen_tensors[i];
        snprintf(names[i], sizeof names[i], "G.%s", gen_tensors[i].name);
        specs[i].name = names[i];
    }
    float *params = malloc((size_t)GEN_NUM_PARAMS * sizeof(float));
    char *path = malloc(strlen(dir) + 64);
    int status = CLI_EXIT_FAIL, found = -1;
    if (!params || !path) {
        fprintf(stderr, "cartoongan export: out of memory for the generator's weights\n");
        goto done;
    }
    for (int i = 0; i < n && found < 0; i++) {
        snprintf(path, strlen(dir) + 64, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
                 list[i].name);
        if (read_generator(path, specs, params) == CG_OK) {
            found = i;
        } else {
            /* a run killed mid-save leaves the previous checkpoint whole, but a disk error
             * or a copied half file can still damage the newest: say so, take the next */
            fprintf(stderr, "cartoongan export: warning: skipping %s: %s\n", path, reason(path));
        }
    }
    if (found < 0) {
        fprintf(stderr, "cartoongan export: %s: no valid training checkpoint (%d ckpt-*.safetensors "
                        "file%s, none readable)\n", dir, n, n == 1 ? "" : "s");
        goto done;
    }

    /* Written under a hidden temporary name next to dest, loaded back as cartoonize will
     * load it, and only then given its name. */
    char meta[256];
    snprintf(meta, sizeof meta,
             "\"model\":\"cartoongan-generator\",\"style\":\"%s\",\"checkpoint\":\"%s\","
             "\"step\":\"%" PRIu64 "\"", name, list[found].name, list[found].step);
    cg_atomic_file f;
    if (cg_atomic_begin(&f, dest) != CG_OK) {
        fprintf(stderr, "cartoongan export: %s\n", cg_last_error());
        goto done;
    }
    close(f.fd); /* st_save replaces the file by name; commit reopens it to sync */
    f.fd = -1;
    cg_model *m = NULL;
    if (st_save(f.tmp, gen_tensors, GEN_NUM_TENSORS, params, fp16, meta) != CG_OK) {
        fprintf(stderr, "cartoongan export: %s: %s\n", dest, reason(f.tmp));
        cg_atomic_abort(&f);
        goto done;
    }
    if (cg_model_load(&m, f.tmp) != CG_OK) {
        fprintf(stderr, "cartoongan export: %s: the written file does not load back: %s\n", dest,
                reason(f.tmp));
        cg_atomic_abort(&f);
        goto done;
    }
    cg_model_free(m);
    if (publish(&f, dest, force) < 0) goto done;
    if (!quiet)
        printf("exported G of %s (step %" PRIu64 ") -> %s\n", path, list[found].step, dest);
    status = CLI_EXIT_OK;
done:
    for (int i = 0; i < n; i++) free(list[i].name);
    free(list);
    free(params);
    free(path);
    free(dest);
    return status;
}

int cmd_export(int argc, char **argv) {
    int force = 0, quiet = 0, fp16 = 0, r;
    const char *pos[2];
    const char *ckpt_dir = NULL, *name = NULL, *out_dir = NULL, *v;
    int npos = 0, options_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (npos == 2) return cli_usage_error(CMD, "unexpected argument '%s'", a);
            pos[npos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            options_done = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_help();
            return CLI_EXIT_OK;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--force")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            force = 1;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--fp16")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            fp16 = 1;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--quiet")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            quiet = 1;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--checkpoint-dir", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            if (!*v) return cli_usage_error(CMD, "--checkpoint-dir needs a directory");
            ckpt_dir = v;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--name", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            name = v;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--out-dir", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            if (!*v) return cli_usage_error(CMD, "--out-dir needs a directory");
            out_dir = v;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
    }
    if (ckpt_dir) {
        if (npos) return cli_usage_error(CMD, "unexpected argument '%s' (--checkpoint-dir takes "
                                              "no SRC or DEST)", pos[0]);
        if (!name) return cli_usage_error(CMD, "--checkpoint-dir needs --name NAME");
        if (!cli_style_name_valid(name, strlen(name)))
            return cli_usage_error(CMD, "invalid --name '%s' (a style name: 1 to %d letters, "
                                        "digits, '_' or '-')", name, CLI_STYLE_NAME_MAX);
        if (!out_dir) {
            /* the user's weights folder is ours to make (a fresh ~/.local/share/...) */
            out_dir = cli_user_weights_dir();
            if (!out_dir) {
                fprintf(stderr, "cartoongan export: no --out-dir, and no home folder for the "
                                "user's weights folder (HOME and XDG_DATA_HOME are unset)\n");
                return CLI_EXIT_FAIL;
            }
            if (cg_mkdir_p(out_dir) != CG_OK) {
                fprintf(stderr, "cartoongan export: %s\n", cg_last_error());
                return CLI_EXIT_FAIL;
            }
        }
        return export_checkpoint(ckpt_dir, name, out_dir, force, fp16, quiet);
    }
    if (name || out_dir)
        return cli_usage_error(CMD, "%s needs --checkpoint-dir", name ? "--name" : "--out-dir");
    if (npos < 2)
        return cli_usage_error(CMD, npos ? "missing DEST" : "missing SRC and DEST");
    if (is_tf_checkpoint(pos[0])) return export_tf_checkpoint(pos[0], pos[1], force, fp16, quiet);
    return export_file(pos[0], pos[1], force, fp16, quiet);
}
