/* weights.c: where the cartoongan command finds a style's weights, and what it says when
 * they are not there.
 *
 * A style S is DIR/S.safetensors, or DIR/S/ holding the upstream release's .npy files. DIR
 * is --weights-dir when given, else $CARTOONGAN_WEIGHTS when set: a folder named outright
 * is the only one looked in, so that a misspelt one is reported rather than silently
 * replaced by weights found elsewhere. Otherwise the default places are tried in order and
 * the first holding S wins:
 *   an uninstalled build (build/cartoongan, run from the checkout): the checkout's
 *     weights/ (CG_DEFAULT_WEIGHTS_DIR, where `make` puts them), then the user's folder;
 *   an installed one (CG_INSTALLED_WEIGHTS_DIR, PREFIX/share/cartoongan/weights):
 *     the user's folder, then that shared one.
 * The user's folder is $XDG_DATA_HOME/cartoongan/weights (~/.local/share/cartoongan/weights
 * when unset), as the XDG base directory specification has it; `cartoongan fetch-weights`
 * writes there. This file is the only one compiled differently for the installed binary
 * (install.mk defines CG_INSTALLED_DATA_DIR, PREFIX/share/cartoongan), so the rest of the
 * command is the same code either way; it also tells the rest whether it is installed
 * (cli_installed_data_dir: `serve` then serves PREFIX/share/cartoongan/web). */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cartoongan.h"
#include "cli/cli.h"
#include "model/model.h"

#ifdef CG_INSTALLED_DATA_DIR
#define CG_INSTALLED_WEIGHTS_DIR CG_INSTALLED_DATA_DIR "/weights"
#elif !defined(CG_DEFAULT_WEIGHTS_DIR)
#define CG_DEFAULT_WEIGHTS_DIR "weights"
#endif

#define USER_SUBDIR "cartoongan/weights"
#define USER_DIR_SHOWN "$XDG_DATA_HOME/" USER_SUBDIR

const char *const cli_fetchable_styles[CLI_NUM_FETCHABLE] = {"shinkai", "hayao", "hosoda", "paprika",
                                                             "light_shinkai", "light_paprika"};

const char *cli_installed_data_dir(void) {
#ifdef CG_INSTALLED_DATA_DIR
    return CG_INSTALLED_DATA_DIR;
#else
    return NULL;
#endif
}

int cli_style_fetchable(const char *style) {
    for (int i = 0; i < CLI_NUM_FETCHABLE; i++)
        if (!strcmp(style, cli_fetchable_styles[i])) return 1;
    return 0;
}

/* $XDG_DATA_HOME/cartoongan/weights; the specification ignores a relative XDG_DATA_HOME,
 * and without HOME the password database says where home is. NULL when nothing does. */
static const char *xdg_weights_dir(void) {
    static char *dir;
    static int done;
    if (done) return dir;
    done = 1;
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && xdg[0] == '/') {
        dir = cli_path_join(xdg, USER_SUBDIR);
        return dir;
    }
    const char *home = getenv("HOME");
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
    }
    if (home) dir = cli_printf("%s%s.local/share/" USER_SUBDIR, home,
                               home[strlen(home) - 1] == '/' ? "" : "/");
    return dir;
}

static const char *env_weights_dir(void) {
    const char *env = getenv("CARTOONGAN_WEIGHTS");
    return env && *env ? env : NULL;
}

int cli_weights_places(const char *weights_dir, const char *places[CLI_MAX_WEIGHTS_PLACES]) {
    int n = 0;
    if (weights_dir || (weights_dir = env_weights_dir()) != NULL) {
        places[n++] = weights_dir;
        return n;
    }
#ifndef CG_INSTALLED_WEIGHTS_DIR
    places[n++] = CG_DEFAULT_WEIGHTS_DIR;
#endif
    const char *user = xdg_weights_dir();
    if (user) places[n++] = user;
#ifdef CG_INSTALLED_WEIGHTS_DIR
    places[n++] = CG_INSTALLED_WEIGHTS_DIR;
#endif
    return n;
}

int cli_weights_explicit(const char *weights_dir) {
    return weights_dir || env_weights_dir();
}

const char *cli_user_weights_dir(void) {
    const char *env = env_weights_dir();
    if (env) return env;
#ifndef CG_INSTALLED_WEIGHTS_DIR
    return CG_DEFAULT_WEIGHTS_DIR;
#else
    return xdg_weights_dir();
#endif
}

int cli_style_in_dir(const char *dir, const char *style) {
    struct stat st;
    char *p = cli_printf("%s/%s.safetensors", dir, style);
    int ok = stat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    if (ok) return 1;
    p = cli_printf("%s/%s", dir, style);
    ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    return ok;
}

const char *cli_find_style(const char *weights_dir, const char *style) {
    const char *places[CLI_MAX_WEIGHTS_PLACES];
    int n = cli_weights_places(weights_dir, places);
    for (int i = 0; i < n; i++)
        if (cli_style_in_dir(places[i], style)) return places[i];
    return NULL;
}

/* "A", "A or B", "A, B or C" */
static char *places_text(const char *const *places, int n) {
    char *s = cli_xcheck(strdup(n ? "" : "(no folder: neither XDG_DATA_HOME nor HOME is set)"));
    for (int i = 0; i < n; i++) {
        char *next = cli_printf("%s%s%s", s, i == 0 ? "" : i == n - 1 ? " or " : ", ", places[i]);
        free(s);
        s = next;
    }
    return s;
}

void cli_report_missing_style(const char *weights_dir, const char *style) {
    const char *places[CLI_MAX_WEIGHTS_PLACES];
    int n = cli_weights_places(weights_dir, places);
    struct stat st;
    if (n == 1 && stat(places[0], &st) != 0)
        fprintf(stderr, "cartoongan: cannot load style '%s': weights directory %s: %s\n", style,
                places[0], cli_errno_text(errno));
    else if (n == 1)
        fprintf(stderr, "cartoongan: cannot load style '%s' from %s/%s.safetensors: no such file\n",
                style, places[0], style);
    else {
        char *where = places_text(places, n);
        fprintf(stderr, "cartoongan: cannot load style '%s': no %s.safetensors (or %s/ of .npy files) "
                        "in %s\n", style, style, style, where);
        free(where);
    }
    /* where `fetch-weights` would have to write for this run to find the style */
    const char *dest = cli_weights_explicit(weights_dir) ? places[0] : cli_user_weights_dir();
    char *fetch = NULL;
    if (cli_style_fetchable(style) && dest)
        fetch = weights_dir ? cli_printf("'cartoongan fetch-weights --dest %s %s'", dest, style)
                            : cli_printf("'cartoongan fetch-weights %s'", style);
#ifndef CG_INSTALLED_WEIGHTS_DIR
    if (fetch)
        fprintf(stderr, "hint: run 'make weights' in the source tree, or %s to download it into %s; "
                        "or point", fetch, dest);
    else
        fprintf(stderr, "hint: run 'make weights' in the source tree, or point");
#else
    if (fetch)
        fprintf(stderr, "hint: run %s to download it into %s, or point", fetch, dest);
    else
        fprintf(stderr, "hint: point");
#endif
    fprintf(stderr, " --weights-dir (or CARTOONGAN_WEIGHTS) at a directory holding "
                    "<style>.safetensors files or <style>/ directories of .npy files\n");
    free(fetch);
}

int cli_load_style(const char *weights_dir, const char *style, int threads, int one_image, cg_model **out) {
    *out = NULL;
    const char *dir = cli_find_style(weights_dir, style);
    if (!dir) {
        cli_report_missing_style(weights_dir, style);
        return -1;
    }
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, style);
    if (stat(path, &st) != 0) snprintf(path, sizeof path, "%s/%s", dir, style); /* .npy folder */
    if ((one_image ? model_load_at_use(out, path) : cg_model_load(out, path)) != CG_OK) {
        const char *e = cg_last_error();
        size_t n = strlen(path);
        /* the message usually starts with the path already said */
        if (!strncmp(e, path, n) && e[n] == ':' && e[n + 1] == ' ') e += n + 2;
        fprintf(stderr, "cartoongan: cannot load style '%s' from %s: %s\n", style, path, e);
        return -1;
    }
    if (cg_model_set_threads(*out, threads) != CG_OK) {
        fprintf(stderr, "cartoongan: --threads %d: %s\n", threads, cg_last_error());
        cg_model_free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

void cli_print_weights_help(void) {
    printf("\n"
           "weights:\n"
           "  A style S is DIR/S.safetensors, or DIR/S/ holding the upstream .npy files. DIR is\n"
           "  --weights-dir if given (cartoonize, bench, train), else $CARTOONGAN_WEIGHTS if\n"
           "  set, else the first of these that holds S:\n"
           "\n");
    /* numbered, which help2man also makes a list of in the man pages */
    int k = 1;
#ifndef CG_INSTALLED_WEIGHTS_DIR
    printf("  %d.  %s (where make puts them)\n", k++, CG_DEFAULT_WEIGHTS_DIR);
#endif
    printf("  %d.  " USER_DIR_SHOWN " (unset: ~/.local/share/" USER_SUBDIR ")\n", k++);
#ifdef CG_INSTALLED_WEIGHTS_DIR
    printf("  %d.  %s\n", k++, CG_INSTALLED_WEIGHTS_DIR);
#endif
    printf("\n"
           "  'cartoongan fetch-weights' downloads the released styles into the first of them\n"
           "  (into $CARTOONGAN_WEIGHTS if set).\n");
}
