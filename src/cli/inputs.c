/* inputs.c: finding what `cartoongan cartoonize` is to cartoonize (see inputs.h). */
#include "cli/inputs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/heif.h"
#include "io/image.h"
#include "io/url.h"
#include "io/webp_anim.h"

#define MAX_WALK_DEPTH 64 /* deeper trees are almost surely a mistake (or a bind-mount loop) */

/* What a file holds, by its extension; a .webp is looked into (animated or still). */
static const struct {
    const char *ext;
    media_kind kind;
} media_exts[] = {
    {".jpg", MEDIA_IMAGE},  {".jpeg", MEDIA_IMAGE}, {".png", MEDIA_IMAGE},
    {".webp", MEDIA_IMAGE}, {".heic", MEDIA_IMAGE}, {".heif", MEDIA_IMAGE},
    {".avif", MEDIA_IMAGE}, {".gif", MEDIA_GIF},    {".mp4", MEDIA_VIDEO},
    {".mov", MEDIA_VIDEO},  {".webm", MEDIA_VIDEO}, {".mkv", MEDIA_VIDEO},
};

static void report(const input_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(const input_opts *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    o->fail(o->user, msg ? msg : "out of memory");
    free(msg);
}

char *cli_with_ext(const char *name, const char *ext) {
    const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
    int n = dot && (!slash || dot > slash) && dot != name && (!slash || dot > slash + 1)
                ? (int)(dot - name)
                : (int)strlen(name);
    return cli_printf("%.*s%s", n, name, ext);
}

static const char *extension(const char *path) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash) || dot == path || (slash && dot == slash + 1)) return NULL;
    return dot;
}

static media_kind kind_from_ext(const char *path) {
    const char *dot = extension(path);
    if (!dot) return MEDIA_NONE;
    for (size_t i = 0; i < sizeof media_exts / sizeof media_exts[0]; i++)
        if (!strcasecmp(dot, media_exts[i].ext)) return media_exts[i].kind;
    return MEDIA_NONE;
}

/* The first bytes of a file (n at most cap); 0 when it cannot be read. */
static size_t head_of(const char *path, uint8_t *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, cap);
    close(fd);
    return n > 0 ? (size_t)n : 0;
}

/* A .webp is an animation or a still by its content; unreadable, it goes the still way
 * and the decoder says what is wrong. */
static media_kind refine_kind(const char *path, media_kind kind) {
    if (kind != MEDIA_IMAGE || strcasecmp(extension(path), ".webp")) return kind;
    uint8_t head[64];
    size_t n = head_of(path, head, sizeof head);
    return cg_webp_is_animated(head, n) ? MEDIA_WEBP : MEDIA_IMAGE;
}

/* The outputs' name: videos become MP4s, HEIC and AVIF photos JPEGs (PNGs when they
 * have alpha) since those formats are read, not written. */
static char *output_rel(const char *path, const char *rel, media_kind kind) {
    if (kind == MEDIA_VIDEO) return cli_with_ext(rel, ".mp4");
    if (kind == MEDIA_IMAGE && cg_format_from_path(path) == CG_FMT_HEIF)
        return cli_with_ext(rel, cg_heif_file_has_alpha(path) ? ".png" : ".jpg");
    return cli_xcheck(strdup(rel));
}

static void add_file(input_set *s, const input_opts *o, const char *path, const char *name,
                     const char *rel, media_kind kind, const struct stat *st) {
    if (kind == MEDIA_GIF && o->ignore_gif) {
        s->ignored_gifs++;
        return;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        input_file *v = cli_xcheck(realloc(s->v, (size_t)cap * sizeof *v));
        s->v = v;
        s->cap = cap;
    }
    input_file *f = &s->v[s->n++];
    memset(f, 0, sizeof *f);
    f->path = cli_xcheck(strdup(path));
    f->name = cli_xcheck(strdup(name));
    f->rel = output_rel(path, rel, kind);
    f->kind = kind;
    f->dev = st->st_dev;
    f->ino = st->st_ino;
}

static void count_skipped(input_set *s, const char *name) {
    const char *dot = extension(name);
    char *ext = cli_xcheck(strdup(dot ? dot : "no extension"));
    for (char *p = ext; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    for (int i = 0; i < s->skipped_ext.n; i++)
        if (!strcmp(s->skipped_ext.v[i], ext)) {
            s->skipped_count[i]++;
            free(ext);
            return;
        }
    s->skipped_count = cli_xcheck(realloc(s->skipped_count, (size_t)(s->skipped_ext.n + 1) * sizeof(int)));
    s->skipped_count[s->skipped_ext.n] = 1;
    cli_list_push(&s->skipped_ext, ext);
}

/* Whether skipped extension a is listed before b. */
static int skipped_before(const input_set *s, int a, int b) {
    if (s->skipped_count[a] != s->skipped_count[b]) return s->skipped_count[a] > s->skipped_count[b];
    const char *x = s->skipped_ext.v[a], *y = s->skipped_ext.v[b];
    if ((*x == '.') != (*y == '.')) return *x == '.';
    return strcmp(x, y) < 0;
}

char *inputs_skipped_text(const input_set *s) {
    if (s->skipped_ext.n <= 0) return NULL;
    int total = 0;
    for (int i = 0; i < s->skipped_ext.n; i++) total += s->skipped_count[i];
    /* the commonest first; ties by name, files without an extension last */
    int *order = cli_xcheck(calloc((size_t)s->skipped_ext.n, sizeof *order));
    for (int i = 0; i < s->skipped_ext.n; i++) {
        int k = i;
        while (k > 0 && skipped_before(s, i, order[k - 1])) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = i;
    }
    char *out = cli_printf("skipped %d file%s of types not handled:", total, total == 1 ? "" : "s");
    for (int i = 0; i < s->skipped_ext.n; i++) {
        char *next = cli_printf("%s%s %s (%d)", out, i ? "," : "", s->skipped_ext.v[order[i]],
                                s->skipped_count[order[i]]);
        free(out);
        out = next;
    }
    free(order);
    return out;
}

typedef struct ancestor {
    dev_t dev;
    ino_t ino;
    const struct ancestor *up;
} ancestor;

/* Adds the media files under `dir` (rel: its path relative to the directory the user
 * named), in name order so runs are reproducible; hidden entries are skipped. */
static void walk(input_set *s, const input_opts *o, const char *dir, const char *rel,
                 const ancestor *up, int depth) {
    DIR *d = opendir(dir);
    if (!d) {
        report(o, "%s: cannot read directory: %s", dir, cli_errno_text(errno));
        return;
    }
    str_list names = {0};
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') cli_list_push(&names, cli_xcheck(strdup(e->d_name)));
    closedir(d);
    if (names.n) qsort(names.v, (size_t)names.n, sizeof *names.v, cli_cmp_str);

    for (int i = 0; i < names.n; i++) {
        char *path = cli_path_join(dir, names.v[i]);
        char *sub = *rel ? cli_path_join(rel, names.v[i]) : cli_xcheck(strdup(names.v[i]));
        media_kind kind = kind_from_ext(names.v[i]);
        struct stat st;
        if (stat(path, &st) != 0) {
            /* a dangling link to something that looks like an image is worth a word */
            if (kind != MEDIA_NONE) report(o, "%s: %s", path, cli_errno_text(errno));
        } else if (S_ISDIR(st.st_mode)) {
            int loop = 0;
            for (const ancestor *a = up; a; a = a->up) loop |= a->dev == st.st_dev && a->ino == st.st_ino;
            int is_output = o->have_out_dir && st.st_dev == o->out_dev && st.st_ino == o->out_ino;
            if (!loop && !is_output) {
                if (depth >= MAX_WALK_DEPTH) {
                    report(o, "%s: directory tree deeper than %d levels; not searched", path,
                           MAX_WALK_DEPTH);
                } else {
                    ancestor me = {st.st_dev, st.st_ino, up};
                    walk(s, o, path, sub, &me, depth + 1);
                }
            }
        } else if (S_ISREG(st.st_mode)) {
            if (kind != MEDIA_NONE)
                add_file(s, o, path, path, sub, refine_kind(path, kind), &st);
            else
                count_skipped(s, names.v[i]);
        }
        free(path);
        free(sub);
        free(names.v[i]);
    }
    free(names.v);
}

/* "ftp://...", "file://...": an address, not a file name */
static int other_scheme(const char *arg) {
    const char *p = arg;
    if (!isalpha((unsigned char)*p)) return 0;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.') p++;
    return !strncmp(p, "://", 3);
}

void inputs_add(input_set *s, const char *arg, const input_opts *o) {
    if (cg_is_url(arg)) {
        cli_list_push(&s->urls, cli_xcheck(strdup(arg)));
        return;
    }
    struct stat st;
    if (stat(arg, &st) != 0) {
        if (other_scheme(arg))
            report(o, "%s: only http and https URLs are supported", arg);
        else
            report(o, "%s: %s", arg, cli_errno_text(errno));
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        if (o->have_out_dir && st.st_dev == o->out_dev && st.st_ino == o->out_ino) return;
        ancestor me = {st.st_dev, st.st_ino, NULL};
        walk(s, o, arg, "", &me, 0);
        return;
    }
    media_kind kind = kind_from_ext(arg);
    if (kind == MEDIA_NONE) {
        report(o, "%s: unsupported file type (use " INPUT_TYPES ")", arg);
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        report(o, "%s: not a regular file", arg);
        return;
    }
    const char *base = strrchr(arg, '/');
    add_file(s, o, arg, arg, base ? base + 1 : arg, refine_kind(arg, kind), &st);
}

/* What a download holds, from its first bytes; *ext is the extension it is saved with. */
static media_kind sniff_kind(const uint8_t *d, size_t n, const char **ext) {
    switch (cg_format_sniff(d, n)) {
    case CG_FMT_JPEG: *ext = ".jpg"; return MEDIA_IMAGE;
    case CG_FMT_PNG: *ext = ".png"; return MEDIA_IMAGE;
    case CG_FMT_WEBP: *ext = ".webp"; return cg_webp_is_animated(d, n) ? MEDIA_WEBP : MEDIA_IMAGE;
    case CG_FMT_HEIF: *ext = ".heic"; return MEDIA_IMAGE;
    default: break;
    }
    if (n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6))) {
        *ext = ".gif";
        return MEDIA_GIF;
    }
    if (n >= 12 && !memcmp(d + 4, "ftyp", 4)) { /* MP4 and QuickTime (HEIF was taken above) */
        *ext = memcmp(d + 8, "qt  ", 4) ? ".mp4" : ".mov";
        return MEDIA_VIDEO;
    }
    if (n >= 4 && !memcmp(d, "\x1a\x45\xdf\xa3", 4)) { /* Matroska / WebM */
        *ext = memmem(d, n, "webm", 4) ? ".webm" : ".mkv";
        return MEDIA_VIDEO;
    }
    return MEDIA_NONE;
}

static int download_cancelled(void *user) { return *(volatile sig_atomic_t *)user; }

static void download_one(input_set *s, const input_opts *o, const char *url, int index) {
    if (!s->tmp_dir) {
        const char *t = getenv("TMPDIR");
        char *tmpl = cli_printf("%s/cartoongan-download-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpl)) {
            report(o, "%s: cannot create a folder for downloads in %s: %s", url,
                   t && *t ? t : "/tmp", cli_errno_text(errno));
            free(tmpl);
            return;
        }
        s->tmp_dir = tmpl;
    }
    char *dest = cli_printf("%s/%d", s->tmp_dir, index);
    cg_url_opts uo = {.max_bytes = o->max_download_bytes,
                      .connect_timeout_s = o->connect_timeout_s,
                      .timeout_s = o->download_timeout_s,
                      .max_redirects = 5,
                      .cancel = download_cancelled,
                      .cancel_user = (void *)o->interrupted};
    cg_url_info info = {0};
    if (cg_url_download(url, &uo, dest, &info) != CG_OK) {
        o->fail(o->user, cg_last_error());
        free(dest);
        cg_url_info_free(&info);
        return;
    }
    uint8_t head[64];
    size_t n = head_of(dest, head, sizeof head);
    const char *ext = NULL;
    media_kind kind = sniff_kind(head, n, &ext);
    if (kind == MEDIA_NONE) {
        report(o, "%s: not an image, GIF, WebP or video (the server sent %s%s%s)", url,
               info.content_type ? "content type " : "", info.content_type ? info.content_type : "",
               info.content_type ? "" : "something else");
    } else if (kind == MEDIA_GIF && o->ignore_gif) {
        s->ignored_gifs++;
    } else {
        /* the saved copy's name carries the extension of what it holds, so every reader
         * takes it as a file of that kind; the outputs are named after the URL */
        char *typed = cli_printf("%s%s", dest, ext);
        struct stat st;
        if (rename(dest, typed) != 0 || stat(typed, &st) != 0) {
            report(o, "%s: cannot keep the download in %s: %s", url, s->tmp_dir, cli_errno_text(errno));
        } else {
            const char *e = extension(info.file_name);
            /* the name from the URL keeps its extension when it says the same kind */
            int same = e && kind_from_ext(info.file_name) == (kind == MEDIA_WEBP ? MEDIA_IMAGE : kind) &&
                       (kind != MEDIA_IMAGE || cg_format_from_path(info.file_name) ==
                                                   cg_format_from_path(typed));
            char *rel = same ? cli_xcheck(strdup(info.file_name)) : cli_with_ext(info.file_name, ext);
            add_file(s, o, typed, url, rel, kind, &st);
            free(rel);
        }
        free(typed);
    }
    unlink(dest);
    free(dest);
    cg_url_info_free(&info);
}

void inputs_download(input_set *s, const input_opts *o) {
    for (int i = 0; i < s->urls.n && !*o->interrupted; i++) download_one(s, o, s->urls.v[i], i);
}

static int cmp_rel(const void *a, const void *b) {
    const input_file *x = *(input_file *const *)a, *y = *(input_file *const *)b;
    int r = strcmp(x->rel, y->rel);
    return r ? r : (x < y ? -1 : x > y);
}

void inputs_drop_duplicates(input_set *s, const input_opts *o) {
    if (s->n < 2) return;
    input_file **by_rel = cli_xcheck(malloc((size_t)s->n * sizeof *by_rel));
    for (int i = 0; i < s->n; i++) by_rel[i] = &s->v[i];
    qsort(by_rel, (size_t)s->n, sizeof *by_rel, cmp_rel);
    for (int i = 1; i < s->n; i++) {
        input_file *first = by_rel[i - 1], *f = by_rel[i];
        if (strcmp(first->rel, f->rel)) continue;
        f->drop = 1;
        by_rel[i] = first; /* compare later ones with the kept input */
        if (f->dev == first->dev && f->ino == first->ino) continue;
        report(o, "%s: has the same output name (%s) as %s; not processed", f->name, f->rel,
               first->name);
    }
    free(by_rel);
}

void inputs_free(input_set *s) {
    for (int i = 0; i < s->n; i++) {
        if (s->tmp_dir && !strncmp(s->v[i].path, s->tmp_dir, strlen(s->tmp_dir))) unlink(s->v[i].path);
        free(s->v[i].path);
        free(s->v[i].name);
        free(s->v[i].rel);
    }
    free(s->v);
    cli_list_free(&s->skipped_ext);
    free(s->skipped_count);
    cli_list_free(&s->urls);
    if (s->tmp_dir) rmdir(s->tmp_dir);
    free(s->tmp_dir);
    memset(s, 0, sizeof *s);
}
