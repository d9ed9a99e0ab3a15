/* styles.c: the style names `cartoongan cartoonize` (--styles) and `cartoongan bench`
 * (--style) take: the six built-in ones (the four released full styles and the two light
 * ones, in any case) and custom ones, NAME for WEIGHTS_DIR/NAME.safetensors (as typed),
 * checked against the weights folders so that a typo is a usage error naming what there
 * is. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cartoongan.h"
#include "cli/cli.h"
#include "cli/media.h"

#define BUILTIN_LIST "shinkai, hayao, hosoda, paprika, light_shinkai, light_paprika"

int cli_style_is_released(const char *name) {
    for (int s = 0; s < CG_NUM_STYLES; s++)
        if (!strcmp(name, cg_style_names[s])) return 1;
    return 0;
}

int cli_style_is_builtin(const char *name) {
    return cli_style_fetchable(name);
}

/* A custom style's name becomes a file name (WEIGHTS_DIR/NAME.safetensors) and a folder
 * (OUTPUT_DIR/NAME/), so only characters safe in both are taken: no '/', no '.' (hence
 * no "..", no hidden files, no "x.safetensors" typed for "x"). */
int cli_style_name_valid(const char *p, size_t n) {
    if (n == 0 || n > CLI_STYLE_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* The styles dir holds, for the unknown-style message: the built-in ones there in their
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
        if (!cli_style_name_valid(e->d_name, n - ext)) continue;
        char *name = cli_printf("%.*s", (int)(n - ext), e->d_name);
        if (cli_style_is_builtin(name) || !cli_style_in_dir(dir, name)) {
            free(name);
            continue;
        }
        cli_list_push(&custom, name);
    }
    closedir(d);
    if (custom.n > 1) qsort(custom.v, (size_t)custom.n, sizeof *custom.v, cli_cmp_str);
    char *out = cli_xcheck(strdup(""));
    for (int s = 0; s < CLI_NUM_FETCHABLE + custom.n; s++) {
        const char *name = s < CLI_NUM_FETCHABLE ? cli_fetchable_styles[s] : custom.v[s - CLI_NUM_FETCHABLE];
        if (s < CLI_NUM_FETCHABLE && !cli_style_in_dir(dir, name)) continue;
        char *next = cli_printf("%s%s%s", out, *out ? ", " : "", name);
        free(out);
        out = next;
    }
    for (int i = 0; i < custom.n; i++) free(custom.v[i]);
    free(custom.v);
    return out;
}

/* Every custom style must have weights in a place styles are looked up in (weights.c),
 * checked once all the options are read (--weights-dir may come after --styles), so that a
 * typo is a usage error naming what there is, before any input is read. Built-in names
 * always pass: a missing built-in style is reported when loading, with the command that
 * fetches it. */
int cli_styles_check_custom(const char *cmd, char styles[][CLI_STYLE_NAME_MAX + 1], int nstyles,
                            const char *weights_dir) {
    const char *places[CLI_MAX_WEIGHTS_PLACES];
    int nplaces = cli_weights_places(weights_dir, places);
    for (int k = 0; k < nstyles; k++) {
        const char *name = styles[k];
        if (cli_style_is_builtin(name) || cli_find_style(weights_dir, name)) continue;
        if (nplaces == 1) {
            const char *dir = places[0];
            char *have = styles_in_dir(dir);
            if (!have)
                cli_usage_error(cmd, "unknown style '%s' (not one of " BUILTIN_LIST ", and the weights "
                                     "directory %s cannot be read: %s)",
                                name, dir, cli_errno_text(errno));
            else if (!*have)
                cli_usage_error(cmd, "unknown style '%s': no %s/%s.safetensors (%s holds no styles; "
                                     "the built-in ones are " BUILTIN_LIST ")",
                                name, dir, name, dir);
            else
                cli_usage_error(cmd, "unknown style '%s': no %s/%s.safetensors (styles in %s: %s)",
                                name, dir, name, dir, have);
            free(have);
            return -1;
        }
        /* several places: what each holds, the unreadable ones left out */
        char *where = cli_xcheck(strdup("")), *have = cli_xcheck(strdup(""));
        for (int i = 0; i < nplaces; i++) {
            char *next = cli_printf("%s%s%s", where, i == 0 ? "" : i == nplaces - 1 ? " or " : ", ",
                                    places[i]);
            free(where);
            where = next;
            char *here = styles_in_dir(places[i]);
            if (here && *here) {
                next = cli_printf("%s%s%s: %s", have, *have ? "; " : "", places[i], here);
                free(have);
                have = next;
            }
            free(here);
        }
        cli_usage_error(cmd, "unknown style '%s': no %s.safetensors in %s (%s)", name, name, where,
                        *have ? have : "none of them holds any style");
        free(where);
        free(have);
        return -1;
    }
    return 0;
}

/* Adds comma-separated style names; returns -1 after a usage error. The six built-in
 * names are matched in any case (the released ones were before custom styles existed, and
 * the light ones are alike); custom ones are file names and kept as typed. */
int cli_styles_add(const char *cmd, char styles[][CLI_STYLE_NAME_MAX + 1], int *nstyles,
                   const char *list) {
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        /* "shinkai, hayao" (one argument, spaces after the commas) is a list too */
        while (n > 0 && (*p == ' ' || *p == '\t')) p++, n--;
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if (n > 0) {
            const char *name = NULL;
            for (int s = 0; s < CLI_NUM_FETCHABLE; s++)
                if (strlen(cli_fetchable_styles[s]) == n && !strncasecmp(p, cli_fetchable_styles[s], n))
                    name = cli_fetchable_styles[s];
            if (!name && !cli_style_name_valid(p, n)) {
                cli_usage_error(cmd, "invalid style name '%.*s' (a style is " BUILTIN_LIST ", or a "
                                     "NAME of 1 to %d letters, digits, '_' or '-' for "
                                     "WEIGHTS_DIR/NAME.safetensors)",
                                (int)n, p, CLI_STYLE_NAME_MAX);
                return -1;
            }
            int dup = 0;
            for (int k = 0; k < *nstyles; k++)
                dup |= name ? !strcmp(styles[k], name)
                            : strlen(styles[k]) == n && !strncmp(styles[k], p, n);
            if (!dup) {
                if (*nstyles == CLI_MAX_STYLES) {
                    cli_usage_error(cmd, "too many styles (at most %d in one run)", CLI_MAX_STYLES);
                    return -1;
                }
                snprintf(styles[(*nstyles)++], CLI_STYLE_NAME_MAX + 1, "%.*s", (int)n, name ? name : p);
            }
        }
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

