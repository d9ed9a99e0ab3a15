/* fetch.c: `cartoongan fetch-weights [STYLE...]`: sets up the released styles' weights
 * for a user, what `make weights` does for a checkout (tools/fetch_weights.sh and
 * tools/fetch_light_ckpt.sh), so that an installed cartoongan works without the source.
 *
 * Each style's files (the four full styles: the 94 .npy files of the upstream release; the
 * two light ones: the seed project's TensorFlow 2 checkpoint) are downloaded from the
 * upstream repository at a pinned commit, or taken from a local copy (--from), then checked
 * against the SHA-256 of the release's bytes pinned here, and converted by
 * `cartoongan export` (which checks every tensor's name and shape, and every CRC32C of a
 * checkpoint) to DEST/<style>.safetensors. Downloads go to a hidden temporary folder in
 * DEST, removed whatever happens (Ctrl-C included), and the .safetensors file is written
 * atomically: an interrupted or failed fetch leaves DEST as it was (a DEST it had to make,
 * and the folders it made above it, are removed again when no style was fetched). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cartoongan.h"
#include "cli/cli.h"
#include <openssl/evp.h>
#include "io/image.h"
#include "io/url.h"
#include "model/generator.h"

#define CMD "fetch-weights"
/* mnicnc404/CartoonGan-tensorflow (Apache-2.0) at the commit tools/fetch_light_ckpt.sh pins;
 * its pretrained_weights/ are the same files as on master. */
#define UPSTREAM "https://raw.githubusercontent.com/mnicnc404/CartoonGan-tensorflow/" \
                 "2f26a525f8b604b8e98fb84ebad0af5aef727944"
#define NPY_PATH "style_transfer/cartoongan/pretrained_weights"

typedef struct {
    const char *name;
    int light;
    const char *mb;     /* download size (the .safetensors is 44.5 or 3.5 MB), for the messages */
    const char *sha256; /* of the style's files concatenated in the order files_of() lists */
} style_info;

/* Digests computed with sha256sum over the upstream files (git blob hashes checked equal
 * to the repository's at the pinned commit). */
static const style_info styles[CLI_NUM_FETCHABLE] = {
    {"shinkai", 0, "44.5", "e208cbb2068e8ed825d4c01addb19318311a57ed76497b6509ef96e78c14d23f"},
    {"hayao", 0, "44.5", "ac4dff7c5407ae3a1fedd1ee82ab21e1c534aa58e191e77b7e614feebe1a8c62"},
    {"hosoda", 0, "44.5", "2344b20785f5acba1ae0aed03e3f45f4bb5b5125d9264a0994c9362c5d76b5c1"},
    {"paprika", 0, "44.5", "ca8161d9f3b5c7a38a1afb1386eaa3dda55da975258a362304d03cf885a144d9"},
    {"light_shinkai", 1, "3.7", "2bb2f8ad3d6c63831ecaca955641a6cf1b33aee4c1c812510f4082dfcb55b849"},
    {"light_paprika", 1, "3.7", "04f2280da9b1b7f67df270f0e105d0bfadfd00b94ad7ed69e6b816175df279ac"},
};

static const char *const light_files[] = {"checkpoint", "generator.index",
                                          "generator.data-00000-of-00001"};
#define NUM_LIGHT_FILES 3

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static int poll_interrupted(void *user) {
    (void)user;
    return interrupted;
}

typedef struct {
    const char *dest, *from, *base_url;
    int force, quiet;
    long connect_timeout, timeout;
} fetch_opts;

static void print_help(void) {
    printf("usage: cartoongan fetch-weights [-h] [--dest DIR] [--from DIR] [--base-url URL]\n"
           "                                [--connect-timeout S] [--download-timeout S]\n"
           "                                [--force] [--quiet] [STYLE ...]\n"
           "\n"
           "Download the released styles' generator weights, check them against the SHA-256\n"
           "of the release, and convert each with `cartoongan export` to\n"
           "DEST/<style>.safetensors, where cartoonize finds it. The full styles are the\n"
           "CartoonGAN authors' weights as converted by mnicnc404/CartoonGan-tensorflow\n"
           "(Apache-2.0), the light ones that project's own checkpoints; both come from its\n"
           "repository at a pinned commit:\n"
           "  " UPSTREAM "\n"
           "A failed or interrupted fetch leaves DEST as it was.\n"
           "\n"
           "positional arguments:\n"
           "  STYLE                 shinkai, hayao, hosoda, paprika (44.5 MB each to download,\n"
           "                        44.5 MB each once converted), light_shinkai,\n"
           "                        light_paprika (3.7 MB each to download, 3.5 MB each once\n"
           "                        converted) (default: all six)\n"
           "\n"
           "options:\n"
           "  -h, --help            show this help and exit\n"
           "  --dest DIR            where to write the .safetensors files (default: the user's\n"
           "                        weights folder: $CARTOONGAN_WEIGHTS if set, else the\n"
           "                        first place 'weights' below lists)\n"
           "  --from DIR            copy the files from DIR instead of downloading them: a\n"
           "                        folder holding <style>/ (the .npy files) and\n"
           "                        light_<style>_ckpt/ folders, directly or under\n"
           "                        cartoongan/ and cartoongan_light/ (as ../shared/weights\n"
           "                        does) (default: download)\n"
           "  --base-url URL        where the upstream repository's files are: URL/" NPY_PATH "/\n"
           "                        <style>/<tensor>.npy and URL/light_<style>_ckpt/<file>\n"
           "                        (default: the address above)\n"
           "  --connect-timeout S   give up on a server that does not answer within S seconds\n"
           "                        (default: %d)\n"
           "  --download-timeout S  give up on a file not downloaded within S seconds\n"
           "                        (default: %d)\n"
           "  --force               fetch a style again even if DEST already holds it\n"
           "                        (default: skip it)\n"
           "  --quiet               print nothing but errors (default: off)\n",
           CG_URL_DEFAULT_CONNECT_TIMEOUT, CG_URL_DEFAULT_TIMEOUT);
    cli_print_weights_help();
}

/* The style's file names in the order its digest covers them (the 94 tensors in the
 * order the loader lists them; the checkpoint's three files). */
static int files_of(const style_info *s, const char *names[GEN_NUM_TENSORS], char buf[][64]) {
    if (s->light) {
        for (int i = 0; i < NUM_LIGHT_FILES; i++) names[i] = light_files[i];
        return NUM_LIGHT_FILES;
    }
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        snprintf(buf[i], 64, "%s.npy", gen_tensors[i].name);
        names[i] = buf[i];
    }
    return GEN_NUM_TENSORS;
}

/* The style's folder inside a --from copy, or NULL. */
static char *local_source(const char *from, const style_info *s) {
    char *sub = s->light ? cli_printf("%s_ckpt", s->name) : cli_xcheck(strdup(s->name));
    const char *parent = s->light ? "cartoongan_light" : "cartoongan";
    char *cands[2] = {cli_path_join(from, sub), cli_printf("%s/%s/%s", from, parent, sub)};
    free(sub);
    char *found = NULL;
    struct stat st;
    for (int i = 0; i < 2; i++) {
        if (!found && stat(cands[i], &st) == 0 && S_ISDIR(st.st_mode))
            found = cands[i];
        else
            free(cands[i]);
    }
    return found;
}

/* SHA-256 of the files concatenated (OpenSSL's libcrypto); -1 after a message when one
 * cannot be read. */
static int digest(const char *dir, const char **names, int n, char hex[65]) {
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    if (!h || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "cartoongan " CMD ": SHA-256 is not available from libcrypto\n");
        EVP_MD_CTX_free(h);
        return -1;
    }
    static unsigned char buf[1 << 16];
    for (int i = 0; i < n; i++) {
        char *path = cli_path_join(dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "cartoongan " CMD ": %s: %s\n", path, cli_errno_text(errno));
            free(path);
            EVP_MD_CTX_free(h);
            return -1;
        }
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(h, buf, got);
        int bad = ferror(f);
        fclose(f);
        if (bad) {
            fprintf(stderr, "cartoongan " CMD ": %s: read error\n", path);
            free(path);
            EVP_MD_CTX_free(h);
            return -1;
        }
        free(path);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(h, md, &len);
    EVP_MD_CTX_free(h);
    for (unsigned i = 0; i < len && i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* Removes a temporary folder and the plain files in it (all that is ever put there). */
static void remove_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *p = cli_path_join(dir, e->d_name);
            unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int download(const fetch_opts *o, const style_info *s, const char *tmp, const char **names,
                    int n) {
    cg_url_opts uo = {.connect_timeout_s = o->connect_timeout, .timeout_s = o->timeout,
                      .max_bytes = 64ull << 20, .cancel = poll_interrupted};
    const char *base = o->base_url;
    size_t bl = strlen(base);
    const char *slash = bl && base[bl - 1] == '/' ? "" : "/";
    for (int i = 0; i < n && !interrupted; i++) {
        char *url = s->light ? cli_printf("%s%s%s_ckpt/%s", base, slash, s->name, names[i])
                             : cli_printf("%s%s" NPY_PATH "/%s/%s", base, slash, s->name, names[i]);
        char *dest = cli_path_join(tmp, names[i]);
        cg_status st = cg_url_download(url, &uo, dest, NULL);
        free(url);
        free(dest);
        if (st == CG_ERR_CANCELLED || interrupted) return -1;
        if (st != CG_OK) {
            fprintf(stderr, "cartoongan " CMD ": %s: %s\n", s->name, cg_last_error());
            return -1;
        }
        if (!o->quiet && isatty(STDERR_FILENO))
            fprintf(stderr, "\r%s: %d of %d files", s->name, i + 1, n);
    }
    if (!o->quiet && isatty(STDERR_FILENO)) fprintf(stderr, "\r\033[K");
    return interrupted ? -1 : 0;
}

/* 0 fetched, 1 already there, -1 failed (after a message). */
static int fetch_style(const fetch_opts *o, const style_info *s) {
    char *out = cli_printf("%s/%s.safetensors", o->dest, s->name);
    struct stat st;
    if (!o->force && stat(out, &st) == 0) {
        if (!o->quiet) printf("%s: already in %s (--force fetches it again)\n", s->name, o->dest);
        free(out);
        return 1;
    }
    const char *names[GEN_NUM_TENSORS];
    char buf[GEN_NUM_TENSORS][64];
    int n = files_of(s, names, buf);
    char *src = NULL, *tmp = NULL;
    int rc = -1;
    if (o->from) {
        src = local_source(o->from, s);
        if (!src) {
            fprintf(stderr, "cartoongan " CMD ": %s: no %s%s/ or %s/%s%s/ in %s\n", s->name,
                    s->name, s->light ? "_ckpt" : "", s->light ? "cartoongan_light" : "cartoongan",
                    s->name, s->light ? "_ckpt" : "", o->from);
            goto done;
        }
    } else {
        tmp = cli_printf("%s/.fetch-%s.tmp-XXXXXX", o->dest, s->name);
        if (!mkdtemp(tmp)) {
            fprintf(stderr, "cartoongan " CMD ": cannot make a temporary folder in %s: %s\n",
                    o->dest, cli_errno_text(errno));
            free(tmp);
            tmp = NULL;
            goto done;
        }
        /* a checkpoint keeps its folder's name (light_shinkai_ckpt): export records it */
        src = s->light ? cli_printf("%s/%s_ckpt", tmp, s->name) : cli_xcheck(strdup(tmp));
        if (s->light && mkdir(src, 0700) != 0) {
            fprintf(stderr, "cartoongan " CMD ": %s: %s\n", src, cli_errno_text(errno));
            goto done;
        }
        if (!o->quiet) printf("%s: downloading %s MB from %s\n", s->name, s->mb, o->base_url);
        fflush(stdout);
        if (download(o, s, src, names, n) < 0) goto done;
    }
    char hex[65];
    if (digest(src, names, n, hex) < 0) goto done;
    if (strcmp(hex, s->sha256)) {
        fprintf(stderr, "cartoongan " CMD ": %s: the files %s are not the release's (SHA-256 %s, "
                        "expected %s)\n", s->name, o->from ? "in" : "downloaded to", hex, s->sha256);
        if (o->from) fprintf(stderr, "  (in %s)\n", src);
        goto done;
    }
    /* the conversion, with every check `cartoongan export` makes */
    char *args[6];
    int na = 0;
    args[na++] = "export";
    args[na++] = "--quiet";
    if (o->force) args[na++] = "--force";
    args[na++] = src;
    args[na++] = out;
    args[na] = NULL;
    if (cmd_export(na, args) != CLI_EXIT_OK) goto done;
    if (!o->quiet) printf("%s: %s\n", s->name, out);
    rc = 0;
done:
    if (tmp) {
        if (src && strcmp(src, tmp)) remove_tmp(src);
        remove_tmp(tmp);
    }
    free(tmp);
    free(src);
    free(out);
    return rc;
}

/* The folders of path that do not exist yet, deepest first ("a/b/c" with only "a" there:
 * "a/b/c", "a/b"), for remove_dirs. */
static void missing_dirs(const char *path, str_list *out) {
    char *p = cli_xcheck(strdup(path));
    struct stat st;
    for (;;) {
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/') p[--n] = '\0'; /* "a/b/" */
        if (n == 0 || stat(p, &st) == 0 || errno != ENOENT) break;
        cli_list_push(out, cli_xcheck(strdup(p)));
        char *slash = strrchr(p, '/');
        if (!slash || slash == p) break; /* "a" or "/a": nothing above to make */
        *slash = '\0';
    }
    free(p);
}

/* Removes the folders missing_dirs listed, deepest first, as long as they are empty: a run
 * that fetched nothing leaves no trace (its temporary folders are gone by then). */
static void remove_dirs(const str_list *dirs) {
    for (int i = 0; i < dirs->n; i++)
        if (rmdir(dirs->v[i]) != 0) break;
}

static const style_info *find_info(const char *name) {
    for (int i = 0; i < CLI_NUM_FETCHABLE; i++)
        if (!strcmp(name, styles[i].name)) return &styles[i];
    return NULL;
}

static int parse_seconds(const char *opt, const char *v, long *out) {
    int s;
    if (cli_parse_int(CMD, opt, v, 1, 86400, &s) < 0) return -1;
    *out = s;
    return 0;
}

int cmd_fetch_weights(int argc, char **argv) {
    fetch_opts o = {.base_url = UPSTREAM};
    const style_info *want[CLI_NUM_FETCHABLE];
    int nwant = 0, only_args = 0, r;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!only_args && a[0] == '-' && a[1]) {
            if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                print_help();
                return CLI_EXIT_OK;
            } else if (!strcmp(a, "--")) {
                only_args = 1;
            } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--dest", &v)) != 0) {
                if (r < 0) return CLI_EXIT_USAGE;
                if (!*v) return cli_usage_error(CMD, "--dest needs a directory");
                o.dest = v;
            } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--from", &v)) != 0) {
                if (r < 0) return CLI_EXIT_USAGE;
                if (!*v) return cli_usage_error(CMD, "--from needs a directory");
                o.from = v;
            } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--base-url", &v)) != 0) {
                if (r < 0) return CLI_EXIT_USAGE;
                if (!cg_is_url(v)) return cli_usage_error(CMD, "--base-url '%s' is not an http(s) URL", v);
                o.base_url = v;
            } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--connect-timeout", &v)) != 0) {
                if (r < 0 || parse_seconds("--connect-timeout", v, &o.connect_timeout) < 0)
                    return CLI_EXIT_USAGE;
            } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--download-timeout", &v)) != 0) {
                if (r < 0 || parse_seconds("--download-timeout", v, &o.timeout) < 0)
                    return CLI_EXIT_USAGE;
            } else if ((r = cli_opt_flag(CMD, argv, i, "--force")) != 0) {
                if (r < 0) return CLI_EXIT_USAGE;
                o.force = 1;
            } else if ((r = cli_opt_flag(CMD, argv, i, "--quiet")) != 0) {
                if (r < 0) return CLI_EXIT_USAGE;
                o.quiet = 1;
            } else {
                return cli_usage_error(CMD, "unknown option '%s'", a);
            }
            continue;
        }
        const style_info *s = find_info(a);
        if (!s)
            return cli_usage_error(CMD, "unknown style '%s' (the released ones are shinkai, hayao, "
                                        "hosoda, paprika, light_shinkai, light_paprika)", a);
        int dup = 0;
        for (int k = 0; k < nwant; k++) dup |= want[k] == s;
        if (!dup) want[nwant++] = s;
    }
    if (nwant == 0)
        for (int i = 0; i < CLI_NUM_FETCHABLE; i++) want[nwant++] = &styles[i];
    if (!o.dest) {
        o.dest = cli_user_weights_dir();
        if (!o.dest) {
            fprintf(stderr, "cartoongan " CMD ": no --dest, and no home folder for the user's "
                            "weights folder (HOME and XDG_DATA_HOME are unset)\n");
            return CLI_EXIT_FAIL;
        }
    }
    /* DEST and the folders above it that are missing are made now (the downloads go to a
     * temporary folder inside it) and removed again if nothing comes of the run */
    str_list made = {0};
    missing_dirs(o.dest, &made);
    if (cg_mkdir_p(o.dest) != CG_OK) {
        fprintf(stderr, "cartoongan " CMD ": %s\n", cg_last_error());
        remove_dirs(&made);
        return CLI_EXIT_FAIL;
    }
    cli_catch_interrupts(on_signal);
    int failed = 0, fetched = 0;
    for (int k = 0; k < nwant && !interrupted; k++) {
        int rc = fetch_style(&o, want[k]);
        failed += rc < 0 && !interrupted;
        fetched += rc == 0;
    }
    if (fetched == 0) remove_dirs(&made);
    cli_list_free(&made);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (interrupted) {
        fprintf(stderr, "cartoongan: interrupted\n");
        return 130; /* the shell's code for death by SIGINT */
    }
    if (!o.quiet && nwant > 1)
        printf("fetched %d style%s into %s\n", fetched, fetched == 1 ? "" : "s", o.dest);
    if (failed) {
        fprintf(stderr, "cartoongan " CMD ": %d of %d styles failed\n", failed, nwant);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}
