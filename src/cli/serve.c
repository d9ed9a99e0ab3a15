/* serve.c: `cartoongan serve`: a small static file server for the browser app (build/web,
 * made by `make web`; PREFIX/share/cartoongan/web once installed), on libmicrohttpd, which
 * parses HTTP so this file does not have to.
 *
 * What it adds to plain file serving:
 *   - the headers that make the page cross-origin isolated, which browsers require before
 *     they give a page SharedArrayBuffer and so wasm threads (Cross-Origin-Opener-Policy
 *     and Cross-Origin-Embedder-Policy; --no-isolation leaves them out, to try the
 *     single-threaded fallback);
 *   - the MIME types browsers insist on (application/wasm for streaming compilation,
 *     text/javascript for workers and modules);
 *   - nothing outside the root: URLs are decoded once, strictly (bad or NUL escapes are
 *     refused), any "." or ".." segment or hidden name is refused, and the file's real
 *     path (symbolic links resolved) must lie inside the root's real path; the one
 *     exception is a style's weights, /weights/NAME.safetensors or NAME.f16.safetensors
 *     that the root lacks, taken from the folders cartoonize looks styles up in (weights.c),
 *     so that an installed app (installed without weights: one copy is enough) finds the
 *     styles `make install` or `cartoongan fetch-weights` put there;
 *   - no lock-out by slow clients ("slowloris": many connections, each sending its
 *     headers a byte at a time): a per-address and an overall connection limit, and a
 *     deadline for a request's headers (see "The header deadline" below). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#define CMD "serve"
#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 8080
#define MAX_URL 1024
/* A browser opens at most 6 HTTP/1.1 connections to one host (Chrome, Firefox, Safari), so
 * 16 lets one address have two or three tabs loading at once, or a few people behind one
 * NAT, while 256 / 16 = 16 different addresses are needed to fill the server. */
#define DEFAULT_PER_IP 16
#define DEFAULT_MAX_CONN 256
#define DEFAULT_HEADER_TIMEOUT 10 /* s; a request's headers are one packet from a browser */
#define IDLE_TIMEOUT 30u          /* s without a byte either way, e.g. a stalled download */
#define POOL_THREADS 4u

/* One per open connection, from MHD's connection notifications to the watchdog thread
 * that enforces the header deadline. */
typedef struct conn_rec {
    struct conn_rec *prev, *next;
    int fd;
    int waiting;  /* 1 while the connection owes us a request's headers */
    double since; /* monotonic seconds: when it began to owe them */
} conn_rec;

typedef struct {
    char root[PATH_MAX]; /* real path, no trailing slash */
    size_t root_len;
    int isolation;
    int quiet;
    int header_timeout; /* s */
    /* The watchdog's state, all under `lock`. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    conn_rec *conns;
    int stop;
} server;

/* <directory of this executable>/web: build/cartoongan serves build/web wherever it is
 * started from; the installed command serves PREFIX/share/cartoongan/web, where
 * `make install` puts the app. */
static int default_root(char *buf, size_t n) {
    const char *data = cli_installed_data_dir();
    if (data) return snprintf(buf, n, "%s/web", data) < (int)n ? 0 : -1;
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return -1;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = '\0';
    return snprintf(buf, n, "%s/web", exe) < (int)n ? 0 : -1;
}

static void print_help(void) {
    char root[PATH_MAX];
    const char *data = cli_installed_data_dir();
    if (data) snprintf(root, sizeof root, "%s/web", data);
    printf("usage: cartoongan serve [--host ADDR] [--port N] [--root DIR] [--no-isolation] [--quiet]\n"
           "                        [--max-per-ip N] [--max-connections N] [--header-timeout S]\n"
           "\n"
           "Serve the browser app (built by `make web`) over HTTP, so that a browser can open it\n"
           "at http://ADDR:N/. The page runs the engine on the visitor's own device; this\n"
           "server only hands out files: those inside DIR, and the styles' weights (below).\n"
           "\n"
           "options:\n"
           "  -h, --help       show this help and exit\n"
           "  --host ADDR      address to listen on (default: " DEFAULT_HOST ", this machine only;\n"
           "                   0.0.0.0 or :: for every interface)\n"
           "  --port N         TCP port (default: %d; 0 picks a free one, printed at start)\n"
           "  --root DIR       folder to serve (default: %s)\n"
           "  --no-isolation   leave out the Cross-Origin-Opener/Embedder-Policy headers, so the\n"
           "                   page is not cross-origin isolated and uses its single-threaded\n"
           "                   build (default: send them, and the page uses threads)\n"
           "  --quiet          do not log requests (default: one line per request on stderr)\n"
           "  --max-per-ip N   connections one client address may hold open at once; more are\n"
           "                   closed at once (default: %d; a browser uses at most 6; 0: no limit)\n"
           "  --max-connections N\n"
           "                   connections open at once, all clients together (default: %d)\n"
           "  --header-timeout S\n"
           "                   seconds a connection has to send a whole request's headers, from\n"
           "                   when it opens or its previous answer ends; it is closed otherwise,\n"
           "                   however steadily it trickles bytes (default: %d). A connection\n"
           "                   silent for %u s, e.g. a stalled download, is closed too\n"
           "\n"
           "The styles' weights the page asks for (weights/<style>.safetensors, and\n"
           "weights/<style>.f16.safetensors for its fp16 option) come from the root's\n"
           "weights/ when it has them, else from the first of the folders 'weights' below\n"
           "lists that does (not from .npy folders): an installed app has no weights of its\n"
           "own, and finds those `make install` or `cartoongan fetch-weights` set up.\n",
           DEFAULT_PORT, data ? root : "web/ beside this program,\n                   i.e. build/web",
           DEFAULT_PER_IP, DEFAULT_MAX_CONN, DEFAULT_HEADER_TIMEOUT, IDLE_TIMEOUT);
    cli_print_weights_help();
}

static const char *mime_type(const char *path) {
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".wasm", "application/wasm"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".webp", "image/webp"},
        {".svg", "image/svg+xml"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".md", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcasecmp(dot, types[i].ext)) return types[i].type;
    return "application/octet-stream";
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* MHD's unescaper, made strict: a malformed escape or an encoded NUL turns the whole
 * string into "\x01", which the handler (and any path check) refuses, rather than being
 * passed on as something else. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls, (void)c;
    char *o = s;
    for (const char *p = s; *p; p++) {
        if (*p != '%') {
            *o++ = *p;
            continue;
        }
        int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            s[0] = '\x01', s[1] = '\0';
            return 1;
        }
        *o++ = (char)(hi << 4 | lo);
        p += 2;
    }
    *o = '\0';
    return (size_t)(o - s);
}

/* Whether the decoded URL path is one this server may map into the root: absolute, short,
 * no backslashes or control characters, and no empty-named, ".", ".." or hidden segments
 * (a trailing slash is allowed and means index.html). */
static int path_ok(const char *url) {
    size_t n = strlen(url);
    if (url[0] != '/' || n > MAX_URL) return 0;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\') return 0;
    for (const char *seg = url + 1; *seg;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0 && end) return 0; /* "//" */
        if (len > 0 && seg[0] == '.') return 0; /* ".", "..", ".hidden" */
        if (!end) break;
        seg = end + 1;
    }
    return 1;
}

static void add_common_headers(const server *s, struct MHD_Response *r) {
    if (s->isolation) {
        MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
        MHD_add_response_header(r, "Cross-Origin-Embedder-Policy", "require-corp");
    }
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
}

static enum MHD_Result reply_text(const server *s, struct MHD_Connection *c, unsigned code,
                                  const char *text, const char *method, const char *url) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    add_common_headers(s, r);
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, "Allow", "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    if (!s->quiet) fprintf(stderr, "%s %.200s %u\n", method, url[0] == '\x01' ? "(bad escape)" : url, code);
    return ret;
}

/* ---- The header deadline ----
 * libmicrohttpd 0.9.75 has no limit on the total time a request's headers may take: its
 * MHD_OPTION_CONNECTION_TIMEOUT is an idle timeout, restarted by every byte received, so
 * a client sending a header byte every few seconds holds its connection forever (and
 * MHD_OPTION_CONNECTION_MEMORY_LIMIT, 32 KB of headers, would take it 9 hours at a byte a
 * second). The per-address limit caps what one such client holds at --max-per-ip
 * connections, but many addresses together could still fill --max-connections and keep
 * everyone else out. So a watchdog thread closes each connection that has owed us a
 * request's headers for longer than --header-timeout: from when it opened, or from when
 * its previous answer ended (an idle keep-alive connection is closed that long after it
 * went quiet, which browsers expect). While an answer is being sent there is no deadline:
 * a 45 MB download on a slow link may take minutes, and only the idle timeout applies.
 *
 * The records come from MHD's connection notifications: STARTED before the connection is
 * served, CLOSED always after it and before MHD closes the socket, so under `lock` a
 * record's fd is still that connection's. The watchdog only shuts the socket down (it
 * never closes it): MHD then reads end-of-file and closes the connection itself. */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe) {
    server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_rec *r = ci ? calloc(1, sizeof *r) : NULL;
        if (!r) {
            /* Without a record there is no deadline to enforce: refuse the connection. */
            if (ci) shutdown(ci->connect_fd, SHUT_RDWR);
            return;
        }
        r->fd = ci->connect_fd;
        r->waiting = 1;
        r->since = now_s();
        pthread_mutex_lock(&s->lock);
        r->next = s->conns;
        if (s->conns) s->conns->prev = r;
        s->conns = r;
        pthread_mutex_unlock(&s->lock);
        *socket_context = r;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        conn_rec *r = *socket_context;
        pthread_mutex_lock(&s->lock);
        if (r->prev) r->prev->next = r->next;
        else s->conns = r->next;
        if (r->next) r->next->prev = r->prev;
        pthread_mutex_unlock(&s->lock);
        free(r);
        *socket_context = NULL;
    }
}

/* Marks the connection as owing headers (waiting 1, from now) or not (0). */
static void set_waiting(server *s, struct MHD_Connection *c, int waiting) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_rec *r = ci ? ci->socket_context : NULL;
    if (!r) return;
    pthread_mutex_lock(&s->lock);
    r->waiting = waiting;
    r->since = now_s();
    pthread_mutex_unlock(&s->lock);
}

/* An answer has been sent (or given up on): the next request's headers are owed. */
static void request_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                              enum MHD_RequestTerminationCode toe) {
    (void)req_cls, (void)toe;
    set_waiting(cls, c, 1);
}

/* Checks every connection a few times per deadline (at most 1 s apart) until stopped. */
static void *watchdog(void *arg) {
    server *s = arg;
    double period = s->header_timeout / 4.0 < 1.0 ? s->header_timeout / 4.0 : 1.0;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long ns = t.tv_nsec + (long)(period * 1e9);
        t.tv_sec += ns / 1000000000L;
        t.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&s->wake, &s->lock, &t);
        double now = now_s();
        for (conn_rec *r = s->conns; r; r = r->next)
            if (r->waiting && now - r->since >= s->header_timeout) {
                shutdown(r->fd, SHUT_RDWR);
                r->waiting = 0; /* once is enough; MHD closes it */
            }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* A style's weights that the root lacks: /weights/NAME.safetensors or
 * /weights/NAME.f16.safetensors, NAME a style name (cli_style_name_valid: no '/', no '.'),
 * from the first folder styles are looked up in that holds that file (weights.c; as
 * `cartoonize` finds the style, but only .safetensors files). Sets path and returns 1, or
 * returns 0. */
static int weights_file(const char *url, char *path, size_t size) {
    static const char prefix[] = "/weights/", ext[] = ".safetensors", f16[] = ".f16";
    size_t n = strlen(url), pl = sizeof prefix - 1, el = sizeof ext - 1, fl = sizeof f16 - 1;
    if (strncmp(url, prefix, pl) != 0 || n <= pl + el || strcmp(url + n - el, ext) != 0) return 0;
    const char *name = url + pl;
    size_t len = n - pl - el; /* NAME, or NAME.f16 */
    if (len > fl && !strncmp(name + len - fl, f16, fl)) len -= fl;
    if (!cli_style_name_valid(name, len)) return 0;
    const char *places[CLI_MAX_WEIGHTS_PLACES];
    int np = cli_weights_places(NULL, places);
    for (int i = 0; i < np; i++) {
        struct stat st;
        if (snprintf(path, size, "%s/%s", places[i], name) < (int)size && stat(path, &st) == 0 &&
            S_ISREG(st.st_mode))
            return 1;
    }
    return 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls) {
    (void)version, (void)upload_data;
    server *s = cls;
    /* The first call for a request comes before any body; answer on the second, so that
     * a body sent with the request is drained and ignored rather than left unread. The
     * headers are all in by then: the deadline stops. */
    if (*req_cls == NULL) {
        *req_cls = (void *)1;
        set_waiting(s, c, 0);
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return reply_text(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "405 method not allowed\n", method, url);
    if (url[0] == '\x01') return reply_text(s, c, MHD_HTTP_BAD_REQUEST, "400 bad request\n", method, url);
    if (!path_ok(url)) return reply_text(s, c, MHD_HTTP_NOT_FOUND, "404 not found\n", method, url);

    char want[PATH_MAX], real[PATH_MAX];
    size_t n = strlen(url);
    if (snprintf(want, sizeof want, "%s%s%s", s->root, url, url[n - 1] == '/' ? "index.html" : "") >= (int)sizeof want ||
        !realpath(want, real)) {
        if (!weights_file(url, real, sizeof real))
            return reply_text(s, c, MHD_HTTP_NOT_FOUND, "404 not found\n", method, url);
    } else if (strncmp(real, s->root, s->root_len) != 0 || real[s->root_len] != '/') {
        /* Symbolic links inside the root may point anywhere; only what they resolve to counts. */
        return reply_text(s, c, MHD_HTTP_NOT_FOUND, "404 not found\n", method, url);
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return reply_text(s, c, MHD_HTTP_NOT_FOUND, "404 not found\n", method, url);
    }
    /* A weak validator from size and time: a reload revalidates instead of downloading
     * the 45 MB weights again (the page also keeps them in the Cache API). */
    char etag[64];
    snprintf(etag, sizeof etag, "W/\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtime);
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    struct MHD_Response *r;
    unsigned code;
    if (inm && !strcmp(inm, etag)) {
        close(fd);
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        code = MHD_HTTP_NOT_MODIFIED;
    } else {
        r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd); /* owns fd from here */
        code = MHD_HTTP_OK;
        if (!r) close(fd);
    }
    if (!r) return MHD_NO;
    add_common_headers(s, r);
    MHD_add_response_header(r, "Content-Type", mime_type(real));
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "ETag", etag);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    if (!s->quiet) fprintf(stderr, "%s %.200s %u\n", method, url, code);
    return ret;
}

int cmd_serve(int argc, char **argv) {
    const char *host = DEFAULT_HOST, *root_arg = NULL, *v;
    int port = DEFAULT_PORT, per_ip = DEFAULT_PER_IP, max_conn = DEFAULT_MAX_CONN, r;
    static server s;
    s.isolation = 1;
    s.header_timeout = DEFAULT_HEADER_TIMEOUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_help();
            return CLI_EXIT_OK;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--host", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            host = v;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--port", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--port", v, 0, 65535, &port) < 0) return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--root", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            root_arg = v;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--no-isolation")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            s.isolation = 0;
        } else if ((r = cli_opt_flag(CMD, argv, i, "--quiet")) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            s.quiet = 1;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--max-per-ip", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--max-per-ip", v, 0, 100000, &per_ip) < 0) return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--max-connections", &v)) != 0) {
            /* at least one per pool thread: MHD shares the limit out among them */
            if (r < 0 || cli_parse_int(CMD, "--max-connections", v, (int)POOL_THREADS, 100000, &max_conn) < 0)
                return CLI_EXIT_USAGE;
        } else if ((r = cli_opt_value(CMD, argc, argv, &i, "--header-timeout", &v)) != 0) {
            if (r < 0 || cli_parse_int(CMD, "--header-timeout", v, 1, 3600, &s.header_timeout) < 0)
                return CLI_EXIT_USAGE;
        } else {
            return cli_usage_error(CMD, a[0] == '-' ? "unknown option '%s'" : "unexpected argument '%s'", a);
        }
    }

    char root[PATH_MAX];
    if (root_arg) snprintf(root, sizeof root, "%s", root_arg);
    else if (default_root(root, sizeof root) != 0) snprintf(root, sizeof root, "build/web");
    struct stat st;
    if (!realpath(root, s.root) || stat(s.root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "cartoongan serve: %s: not a folder%s\n", root,
                root_arg ? ""
                : cli_installed_data_dir()
                    ? " (this cartoongan was installed without the browser app: in the source "
                      "tree, 'make web' builds it and 'make install' then puts it there; or give "
                      "--root DIR)"
                    : " (run 'make web' to build the app, or give --root)");
        return CLI_EXIT_FAIL;
    }
    s.root_len = strlen(s.root);
    if (s.root_len == 1) s.root_len = 0; /* "/": every real path starts with "/" */

    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%d", port);
    int gai = getaddrinfo(host, port_s, &hints, &ai);
    if (gai != 0 || !ai) {
        fprintf(stderr, "cartoongan serve: --host %s: %s\n", host, gai ? gai_strerror(gai) : "no address");
        return CLI_EXIT_USAGE;
    }

    /* SIGINT and SIGTERM are taken by sigwait below, in this thread only: blocked before
     * the server's threads start, so they inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the watchdog's waits, as now_s() */
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t wd;
    if (pthread_create(&wd, NULL, watchdog, &s) != 0) {
        freeaddrinfo(ai);
        fprintf(stderr, "cartoongan serve: cannot start a thread\n");
        return CLI_EXIT_FAIL;
    }

    /* A pool of POOL_THREADS threads, each polling its share of the connections (epoll on
     * Linux, chosen by MHD_USE_AUTO), not a thread per connection: a thousand slow
     * connections cost a thousand sockets and records, not a thousand threads. Nothing
     * here blocks for long: a request is answered at once from a file, which MHD then
     * sends as the socket takes it. Connections beyond a limit are accepted and closed at
     * once (the per-address count is kept for the whole pool). MHD_USE_ITC: a pipe to wake
     * each thread when stopping; without it MHD wakes them by shutting the listening socket
     * down, which a thread at its share of the limit is not watching, so Ctrl-C on a full
     * server waited for a connection to time out (up to 30 s). */
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, handle, &s,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        /* strict HTTP: e.g. an HTTP/1.1 request without Host is refused with 400 */
        MHD_OPTION_STRICT_FOR_CLIENT, 1,
        MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conn,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)per_ip,
        MHD_OPTION_NOTIFY_CONNECTION, notify_connection, &s,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, &s,
        MHD_OPTION_THREAD_POOL_SIZE, POOL_THREADS,
        MHD_OPTION_END);
    char shown[INET6_ADDRSTRLEN + 2] = "";
    if (ai->ai_family == AF_INET6) {
        char b[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, b, sizeof b);
        snprintf(shown, sizeof shown, "[%s]", b);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, shown, sizeof shown);
    }
    freeaddrinfo(ai);
    int status = CLI_EXIT_OK;
    if (!d) {
        fprintf(stderr, "cartoongan serve: cannot listen on %s port %d (in use, or not an address of this machine?)\n",
                shown, port);
        status = CLI_EXIT_FAIL;
        goto stop_watchdog;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (info) port = info->port;
    printf("cartoongan serve: serving %s at http://%s:%d/ (%s); Ctrl-C stops\n", s.root, shown, port,
           s.isolation ? "cross-origin isolated: the page uses threads" : "not isolated: the page runs single-threaded");
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    MHD_stop_daemon(d); /* every connection closed and its record freed */
stop_watchdog:
    pthread_mutex_lock(&s.lock);
    s.stop = 1;
    pthread_cond_signal(&s.wake);
    pthread_mutex_unlock(&s.lock);
    pthread_join(wd, NULL);
    return status;
}
