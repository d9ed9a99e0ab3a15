/* strings.c: the small string, list and signal helpers the cartoongan command's files share
 * (cli.h). The command, unlike the library, gives up on running out of memory for a
 * path or a message: one line and exit status 1. */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

void *cli_xcheck(void *p) {
    if (!p) {
        fprintf(stderr, "cartoongan: out of memory\n");
        exit(CLI_EXIT_FAIL);
    }
    return p;
}

char *cli_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = cli_xcheck(malloc(n < 0 ? 1 : (size_t)n + 1));
    va_start(ap, fmt);
    vsnprintf(s, n < 0 ? 1 : (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *cli_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir);
    if (n == 0) return cli_xcheck(strdup(name));
    return cli_printf("%s%s%s", dir, dir[n - 1] == '/' ? "" : "/", name);
}

void cli_list_push(str_list *l, char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        l->v = cli_xcheck(realloc(l->v, (size_t)cap * sizeof *l->v));
        l->cap = cap;
    }
    l->v[l->n++] = s;
}

void cli_list_free(str_list *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL, l->n = l->cap = 0;
}

int cli_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

const char *cli_errno_text(int e) { return e == ENOENT ? "no such file or directory" : strerror(e); }

void cli_catch_interrupts(void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART | SA_RESETHAND; /* a second ^C kills at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
