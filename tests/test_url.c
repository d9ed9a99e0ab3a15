/* test_url.c: tests for src/io/url.c, the downloader of inputs given as URLs, against
 * tests/http_stub.py, a local server this program starts itself (python3, standard library
 * only) on ports the system picks, over plain HTTP and over TLS with the self-signed
 * tests/data/tls/localhost.crt. Checked: downloads byte for byte with their name, type and
 * final URL; HTTP errors; redirects (chains, the limit, loops, non-http(s) targets, the
 * https -> http downgrade); the size limit both from Content-Length and while streaming;
 * the connect and whole-download timeouts, timed; cancelling; refused, truncated and
 * unresolvable connections; TLS trust; file names from Content-Disposition and from the
 * URL, made safe; URLs refused up front; and that no failure leaves a file behind. No
 * network is needed. Without python3 the server cannot start and this program FAILS
 * (nothing is skipped). Run from the repository root. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io/url.h"
#include "status.h"
#include "test.h"

#define STUB "tests/http_stub.py"
#define CA_FILE "tests/data/tls/localhost.crt"
#define STARTUP_S 20.0 /* python3 starting under a loaded CI machine */
/* Timing checks: a limit of T seconds must stop the download after at least 0.9 T (libcurl
 * measures from the start of each hop, within milliseconds) and before 2 T. */
#define TIME_LOW 0.9
#define TIME_HIGH 2.0

static char tmpdir[64];
static pid_t stub_pid = -1;
static int http_port, https_port, stall_port;
static char stub_error[512];

/* ---- helpers ---- */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static const char *http_url(const char *path) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "http://127.0.0.1:%d%s", http_port, path);
    return p;
}

static const char *https_url(const char *path) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "https://127.0.0.1:%d%s", https_port, path);
    return p;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* A new empty folder under tmpdir for one download; its path (static storage, 4 live). */
static const char *fresh_dir(void) {
    static char buf[4][128];
    static int k, serial;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/d%03d", tmpdir, serial++);
    if (mkdir(p, 0777) != 0) perror(p);
    return p;
}

static const char *dest_in(const char *dir, const char *name) {
    static char buf[4][192];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* The whole file, or NULL; *n its size. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* 1 if the two files hold the same bytes. */
static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static off_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Downloads url into a fresh folder as out.bin and checks it succeeded and that the file
 * equals `fixture` (which sets the expected byte count), with nothing else left in the
 * folder. Returns the info (free it). */
static cg_url_info expect_ok(const char *url, const cg_url_opts *o, const char *fixture) {
    const char *dir = fresh_dir();
    const char *dest = dest_in(dir, "out.bin");
    cg_url_info info;
    cg_status s = cg_url_download(url, o, dest, &info);
    CHECK(s == CG_OK, "%s: status %d: %s", url, s, cg_last_error());
    if (s != CG_OK) return info;
    CHECK(info.http_status == 200, "%s: HTTP status %ld", url, info.http_status);
    CHECK(info.file_name != NULL, "%s: no file name", url);
    CHECK(info.final_url != NULL, "%s: no final URL", url);
    CHECK(count_files(dir) == 1, "%s: %d files in the folder, want just the download", url,
          count_files(dir));
    if (fixture) {
        off_t want = file_size(fixture);
        CHECK(want > 0, "fixture %s is missing", fixture);
        CHECK((off_t)info.bytes == want, "%s: %llu bytes reported, the fixture has %lld", url,
              (unsigned long long)info.bytes, (long long)want);
        CHECK(same_file(dest, fixture), "%s: the download differs from %s", url, fixture);
    }
    return info;
}

/* Expects the download to fail with `want` and a message holding `text`, within
 * `max_s` seconds (0: any), leaving its folder empty. Returns the seconds it took. */
static double expect_fail_info(const char *url, const cg_url_opts *o, cg_status want,
                               const char *text, double max_s, cg_url_info *out) {
    const char *dir = fresh_dir();
    const char *dest = dest_in(dir, "out.bin");
    cg_url_info info;
    double t0 = now_s();
    cg_status s = cg_url_download(url, o, dest, &info);
    double dt = now_s() - t0;
    const char *msg = cg_last_error();
    CHECK(s == want, "%s: status %d, want %d (%s)", url, s, want, s ? msg : "succeeded");
    CHECK(s == CG_OK || strstr(msg, text), "%s: message \"%s\" lacks \"%s\"", url, msg, text);
    CHECK(s == CG_OK || !strpbrk(msg, "\r\n"), "%s: message \"%s\" holds a line break", url, msg);
    CHECK(count_files(dir) == 0, "%s: failed but left %d files in %s", url, count_files(dir), dir);
    CHECK(info.file_name == NULL, "%s: failed but named the file %s", url, info.file_name);
    CHECK(max_s <= 0 || dt < max_s, "%s: took %.2f s, want under %.2f s", url, dt, max_s);
    if (out) *out = info;
    else cg_url_info_free(&info);
    return dt;
}

static double expect_fail(const char *url, const cg_url_opts *o, cg_status want, const char *text,
                          double max_s) {
    return expect_fail_info(url, o, want, text, max_s, NULL);
}

/* ---- the stub server ---- */

static void stop_stub(void) {
    if (stub_pid > 0) {
        kill(stub_pid, SIGTERM);
        waitpid(stub_pid, NULL, 0);
        stub_pid = -1;
    }
}

/* Starts tests/http_stub.py and reads its ports; 0, or -1 with stub_error set. */
static int start_stub(void) {
    char port_file[128];
    snprintf(port_file, sizeof port_file, "%s/ports", tmpdir);
    if (access(STUB, R_OK) != 0) {
        snprintf(stub_error, sizeof stub_error, "%s: %s (run from the repository root)", STUB,
                 strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(stub_error, sizeof stub_error, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive this test, even if it crashes */
        execlp("python3", "python3", STUB, "--port-file", port_file, "--stall", "30", (char *)NULL);
        fprintf(stderr, "test_url: cannot run python3: %s\n", strerror(errno));
        _exit(127);
    }
    stub_pid = pid;
    for (double t0 = now_s(); now_s() - t0 < STARTUP_S; usleep(20000)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            stub_pid = -1;
            if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
                snprintf(stub_error, sizeof stub_error,
                         "python3 is not installed, so the test server %s cannot run "
                         "(tools/install_deps.sh installs python3)", STUB);
            else
                snprintf(stub_error, sizeof stub_error, "%s exited early (status %d)", STUB,
                         WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            return -1;
        }
        FILE *f = fopen(port_file, "r");
        if (!f) continue;
        char name[16];
        int port, got = 0;
        while (fscanf(f, "%15s %d", name, &port) == 2) {
            if (!strcmp(name, "http")) http_port = port, got |= 1;
            if (!strcmp(name, "https")) https_port = port, got |= 2;
            if (!strcmp(name, "stall")) stall_port = port, got |= 4;
        }
        fclose(f);
        if (got == 7) return 0;
        snprintf(stub_error, sizeof stub_error, "%s: the port file lacks a port", STUB);
        return -1;
    }
    snprintf(stub_error, sizeof stub_error, "%s did not start within %.0f s", STUB, STARTUP_S);
    stop_stub();
    return -1;
}

static void test_stub_started(void) { CHECK(stub_pid > 0, "%s", stub_error); }

/* ---- tests that need no server ---- */

static void test_is_url(void) {
    CHECK(cg_is_url("http://example.com/a.jpg") == 1, "plain http");
    CHECK(cg_is_url("https://example.com/a.jpg") == 1, "plain https");
    CHECK(cg_is_url("HTTPS://EXAMPLE.COM/") == 1, "scheme in capitals");
    CHECK(cg_is_url("hTTp://x") == 1, "mixed case");
    CHECK(cg_is_url("ftp://example.com/a.jpg") == 0, "ftp");
    CHECK(cg_is_url("file:///etc/passwd") == 0, "file");
    CHECK(cg_is_url("http:/x") == 0, "one slash");
    CHECK(cg_is_url("httpx://x") == 0, "httpx");
    CHECK(cg_is_url("photos/http://x.jpg") == 0, "a path holding a URL");
    CHECK(cg_is_url("") == 0, "empty");
    CHECK(cg_is_url(NULL) == 0, "NULL");
}

static void check_name(const char *in, size_t n, const char *want) {
    char *got = cg_url_safe_name(in, n);
    CHECK(got && !strcmp(got, want), "safe name of \"%.*s\": \"%s\", want \"%s\"", (int)n, in,
          got ? got : "(null)", want);
    free(got);
}
#define NAME(in, want) check_name(in, sizeof in - 1, want)

static void test_safe_name(void) {
    NAME("photo.jpg", "photo.jpg");
    NAME("holiday photo.png", "holiday photo.png");
    NAME("../../etc/passwd", "passwd");
    NAME("..\\..\\windows\\win.ini", "win.ini");
    NAME("..", "download");
    NAME(".", "download");
    NAME("", "download");
    NAME("dir/", "download");
    NAME(".hidden", "hidden");
    NAME("...png", "png");
    NAME("  spaced.jpg  ", "spaced.jpg");
    NAME("a\nb.jpg", "a_b.jpg");
    NAME("a\0b.jpg", "a_b.jpg");
    NAME("a\x7f" "b.jpg", "a_b.jpg");
    NAME("\xff.jpg", "_.jpg");                   /* not UTF-8 */
    NAME("\xc0\xaf.jpg", "__.jpg");              /* an overlong '/' */
    NAME("\xed\xa0\x80.jpg", "___.jpg");         /* a UTF-16 surrogate */
    NAME("\xc2\x85.jpg", "__.jpg");              /* U+0085, a C1 control */
    NAME("\xc3\xa9t\xc3\xa9.png", "\xc3\xa9t\xc3\xa9.png"); /* "été.png" stays */
    char *d = cg_url_safe_name(NULL, 5);
    CHECK(d && !strcmp(d, "download"), "NULL name gives %s", d ? d : "(null)");
    free(d);

    /* Long names: cut to CG_URL_MAX_NAME bytes, the extension kept, UTF-8 kept whole. */
    char in[400], want[200];
    memset(in, 'x', 300);
    strcpy(in + 300, ".png");
    memset(want, 'x', CG_URL_MAX_NAME - 4);
    strcpy(want + CG_URL_MAX_NAME - 4, ".png");
    check_name(in, strlen(in), want);
    memset(in, 'y', 300);
    in[300] = '\0';
    memset(want, 'y', CG_URL_MAX_NAME);
    want[CG_URL_MAX_NAME] = '\0';
    check_name(in, strlen(in), want);
    for (int i = 0; i < 80; i++) memcpy(in + 2 * i, "\xc3\xa9", 2); /* 160 bytes of é */
    strcpy(in + 160, ".jpeg");
    char *got = cg_url_safe_name(in, strlen(in));
    /* 95 bytes of stem would split an é: 94 are kept, then ".jpeg" */
    CHECK(got && strlen(got) == 99 && !strcmp(got + 94, ".jpeg") && !memcmp(got, in, 94),
          "long UTF-8 name: \"%s\" (%zu bytes)", got ? got : "(null)", got ? strlen(got) : 0);
    free(got);
    memset(in, 'z', 200);
    in[1] = '.'; /* "z.zzzz...": an "extension" too long to be one */
    in[200] = '\0';
    got = cg_url_safe_name(in, strlen(in));
    CHECK(got && strlen(got) == CG_URL_MAX_NAME && !memcmp(got, in, CG_URL_MAX_NAME),
          "long extension: %s", got ? got : "(null)");
    free(got);
}

static void test_refused_urls(void) {
    char url[512];
    expect_fail("ftp://127.0.0.1/photo.jpg", NULL, CG_ERR_ARG, "only http and https", 1);
    expect_fail("file:///etc/passwd", NULL, CG_ERR_ARG, "only http and https", 1);
    expect_fail("/etc/passwd", NULL, CG_ERR_ARG, "only http and https", 1);
    expect_fail("http://", NULL, CG_ERR_ARG, "not a valid URL", 1);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/a b.jpg", http_port ? http_port : 1);
    expect_fail(url, NULL, CG_ERR_ARG, "a%20b.jpg: a URL cannot hold spaces or control characters",
                1);
    expect_fail("http://127.0.0.1/x\r\nHost: evil", NULL, CG_ERR_ARG,
                "http://127.0.0.1/x%0D%0AHost:%20evil: a URL cannot hold", 1);
    expect_fail("http://127.0.0.1/\ttab", NULL, CG_ERR_ARG, "spaces or control characters", 1);
    /* The password never reaches a message. */
    cg_url_download("http://user:s3cret@no-such-host.invalid/x", NULL, dest_in(fresh_dir(), "x"),
                    NULL);
    CHECK(!strstr(cg_last_error(), "s3cret") &&
              strstr(cg_last_error(), "http://no-such-host.invalid/x"),
          "credentials shown: %s", cg_last_error());
    /* A long URL is cut in a message, never inside a UTF-8 character. */
    strcpy(url, "http://no-such-host.invalid/");
    for (int i = 0; i < 200; i++) strcat(url, "\xc3\xa9");
    cg_url_download(url, NULL, dest_in(fresh_dir(), "x"), NULL);
    const char *msg = cg_last_error();
    int lead = 0, cont = 0;
    for (const char *m = msg; *m; m++) lead += *m == '\xc3', cont += *m == '\xa9';
    CHECK(strstr(msg, "...: cannot resolve host") && lead == cont && lead < 200 &&
              strlen(msg) < 400,
          "long URL shown as %s", msg);
    CHECK(cg_url_download(NULL, NULL, "x", NULL) == CG_ERR_ARG, "NULL url");
    CHECK(cg_url_download("http://127.0.0.1/", NULL, NULL, NULL) == CG_ERR_ARG, "NULL dest");
}

static void test_dns_failure(void) {
    /* .invalid never resolves (RFC 6761); there is no network here either way. */
    cg_url_opts o = {.connect_timeout_s = 5};
    expect_fail("http://no-such-host.invalid/photo.jpg", &o, CG_ERR_IO,
                "http://no-such-host.invalid/photo.jpg: cannot resolve host no-such-host.invalid",
                5.5);
    expect_fail("https://no-such-host.invalid/photo.jpg", &o, CG_ERR_IO,
                "cannot resolve host no-such-host.invalid", 5.5);
}

static void test_connection_refused(void) {
    /* A port nothing listens on: bound by the system, then released. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0,
          "cannot get a free port: %s", strerror(errno));
    close(fd);
    char url[128], text[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/photo.jpg", ntohs(a.sin_port));
    snprintf(text, sizeof text, "cannot connect to 127.0.0.1 port %d: Connection refused",
             ntohs(a.sin_port));
    expect_fail(url, NULL, CG_ERR_IO, text, 2);
}

static void test_dest_errors(void) {
    /* A destination under a regular file fails before any network traffic. */
    const char *dir = fresh_dir();
    const char *file = dest_in(dir, "file");
    FILE *f = fopen(file, "w");
    if (f) fclose(f);
    char dest[256];
    snprintf(dest, sizeof dest, "%s/x.jpg", file);
    cg_url_info info;
    cg_status s = cg_url_download("http://no-such-host.invalid/x.jpg", NULL, dest, &info);
    CHECK(s == CG_ERR_IO && strstr(cg_last_error(), dest) && !strstr(cg_last_error(), "resolve"),
          "status %d: %s", s, cg_last_error());
    CHECK(count_files(dir) == 1, "%d files left", count_files(dir));
    cg_url_info_free(&info);
    cg_url_info_free(&info); /* cleared: a second free does nothing */
    cg_url_info_free(NULL);
}

/* ---- tests against the stub ---- */

static void test_download(void) {
    cg_url_info info = expect_ok(http_url("/photo.jpg"), NULL, "tests/data/images/plain.jpg");
    CHECK(info.file_name && !strcmp(info.file_name, "photo.jpg"), "name %s", info.file_name);
    CHECK(info.content_type && !strcmp(info.content_type, "image/jpeg"), "type %s",
          info.content_type);
    CHECK(info.final_url && !strcmp(info.final_url, http_url("/photo.jpg")), "final URL %s",
          info.final_url);
    cg_url_info_free(&info);
    CHECK(!info.file_name && !info.final_url && !info.content_type && !info.bytes,
          "info not cleared");

    info = expect_ok(http_url("/anim.gif"), NULL, "tests/data/media/anim.gif");
    CHECK(info.file_name && !strcmp(info.file_name, "anim.gif"), "name %s", info.file_name);
    CHECK(info.content_type && !strcmp(info.content_type, "image/gif"), "type %s",
          info.content_type);
    cg_url_info_free(&info);

    info = expect_ok(http_url("/clip.mp4"), NULL, "tests/data/media/clip.mp4");
    CHECK(info.file_name && !strcmp(info.file_name, "clip.mp4"), "name %s", info.file_name);
    CHECK(info.content_type && !strcmp(info.content_type, "video/mp4"), "type %s",
          info.content_type);
    cg_url_info_free(&info);

    /* the scheme in capitals; info may be NULL */
    char url[128];
    snprintf(url, sizeof url, "HTTP://127.0.0.1:%d/photo.jpg", http_port);
    const char *dest = dest_in(fresh_dir(), "photo.jpg");
    CHECK(cg_url_download(url, NULL, dest, NULL) == CG_OK, "%s: %s", url, cg_last_error());
    CHECK(same_file(dest, "tests/data/images/plain.jpg"), "%s: wrong bytes", url);

    /* Credentials are sent but never reported back. */
    snprintf(url, sizeof url, "http://user:s3cret@127.0.0.1:%d/photo.jpg", http_port);
    cg_url_info info2 = expect_ok(url, NULL, "tests/data/images/plain.jpg");
    CHECK(info2.final_url && !strcmp(info2.final_url, http_url("/photo.jpg")), "final URL %s",
          info2.final_url);
    cg_url_info_free(&info2);

    /* An existing file is replaced whole. */
    FILE *f = fopen(dest, "w");
    if (f) fputs("old content that is longer than nothing", f), fclose(f);
    CHECK(cg_url_download(http_url("/photo.jpg"), NULL, dest, NULL) == CG_OK, "%s",
          cg_last_error());
    CHECK(same_file(dest, "tests/data/images/plain.jpg"), "not replaced");

    /* Parent folders are created. */
    char deep[256];
    snprintf(deep, sizeof deep, "%s/a/b/c.jpg", fresh_dir());
    CHECK(cg_url_download(http_url("/photo.jpg"), NULL, deep, NULL) == CG_OK, "%s",
          cg_last_error());
    CHECK(same_file(deep, "tests/data/images/plain.jpg"), "%s: wrong bytes", deep);
}

static void test_http_errors(void) {
    cg_url_info info;
    expect_fail_info(http_url("/missing"), NULL, CG_ERR_IO, ": HTTP 404 Not Found", 2, &info);
    CHECK(info.http_status == 404, "status %ld", info.http_status);
    CHECK(info.final_url && !strcmp(info.final_url, http_url("/missing")), "final URL %s",
          info.final_url);
    cg_url_info_free(&info);
    /* No reason text on the status line: the table's. */
    expect_fail_info(http_url("/no-reason"), NULL, CG_ERR_IO, ": HTTP 503 Service Unavailable", 2,
                     &info);
    CHECK(info.http_status == 503, "status %ld", info.http_status);
    cg_url_info_free(&info);
}

static void test_content_type_not_checked(void) {
    /* An HTML page is downloaded like anything else: the caller sniffs the bytes. */
    cg_url_info info = expect_ok(http_url("/page.html"), NULL, NULL);
    CHECK(info.content_type && !strcmp(info.content_type, "text/html; charset=utf-8"), "type %s",
          info.content_type);
    CHECK(info.file_name && !strcmp(info.file_name, "page.html"), "name %s", info.file_name);
    CHECK(info.bytes == 55, "%llu bytes, the page has 55", (unsigned long long)info.bytes);
    cg_url_info_free(&info);
}

static void test_redirects(void) {
    cg_url_info info = expect_ok(http_url("/redirect"), NULL, "tests/data/images/plain.jpg");
    CHECK(info.final_url && !strcmp(info.final_url, http_url("/photo.jpg")), "final URL %s",
          info.final_url);
    CHECK(info.file_name && !strcmp(info.file_name, "photo.jpg"), "name %s (from the final URL)",
          info.file_name);
    cg_url_info_free(&info);

    /* The default limit is 5: five redirects pass, six do not. */
    info = expect_ok(http_url("/redirect-chain/5"), NULL, "tests/data/images/plain.jpg");
    CHECK(info.final_url && !strcmp(info.final_url, http_url("/photo.jpg")), "final URL %s",
          info.final_url);
    cg_url_info_free(&info);
    expect_fail(http_url("/redirect-chain/6"), NULL, CG_ERR_IO,
                ": too many redirects (more than 5)", 3);
    expect_fail(http_url("/loop"), NULL, CG_ERR_IO, ": too many redirects (more than 5)", 3);

    cg_url_opts o = {.max_redirects = 2};
    info = expect_ok(http_url("/redirect-chain/2"), &o, "tests/data/images/plain.jpg");
    cg_url_info_free(&info);
    expect_fail(http_url("/redirect-chain/3"), &o, CG_ERR_IO, ": too many redirects (more than 2)",
                3);
    o.max_redirects = -1; /* none */
    expect_fail(http_url("/redirect"), &o, CG_ERR_IO, ": too many redirects (more than 0)", 3);
    o.max_redirects = 20;
    expect_fail(http_url("/loop"), &o, CG_ERR_IO, ": too many redirects (more than 20)", 5);

    /* Only http(s) targets are followed. */
    expect_fail(http_url("/redirect-ftp"), NULL, CG_ERR_IO,
                ": redirect to a non-http(s) URL refused: ftp://127.0.0.1/photo.jpg", 2);
    expect_fail(http_url("/redirect-file"), NULL, CG_ERR_IO,
                ": redirect to a non-http(s) URL refused: file:///etc/passwd", 2);
}

static void test_https(void) {
    cg_url_opts o = {.ca_file = CA_FILE};
    cg_url_info info = expect_ok(https_url("/photo.jpg"), &o, "tests/data/images/plain.jpg");
    CHECK(info.final_url && !strcmp(info.final_url, https_url("/photo.jpg")), "final URL %s",
          info.final_url);
    cg_url_info_free(&info);
    /* https -> https */
    info = expect_ok(https_url("/redirect"), &o, "tests/data/images/plain.jpg");
    cg_url_info_free(&info);
    info = expect_ok(http_url("/to-https"), &o, "tests/data/images/plain.jpg"); /* http -> https */
    CHECK(info.final_url && !strcmp(info.final_url, https_url("/photo.jpg")), "final URL %s",
          info.final_url);
    cg_url_info_free(&info);
    /* The downgrade is refused, though the http target itself is fine. */
    expect_fail(https_url("/to-http"), &o, CG_ERR_IO, ": redirect from https to http refused", 2);
    /* The system's CAs do not trust the self-signed test certificate. */
    expect_fail(https_url("/photo.jpg"), NULL, CG_ERR_IO, ": TLS certificate not trusted", 3);
    o.ca_file = "tests/data/tls/no-such-file.crt";
    expect_fail(https_url("/photo.jpg"), &o, CG_ERR_IO, ": TLS", 3);
    /* Plain HTTP spoken to the TLS port, and TLS to the plain one. */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/photo.jpg", https_port);
    expect_fail(url, NULL, CG_ERR_IO, "", 3);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/photo.jpg", http_port);
    o.ca_file = CA_FILE;
    expect_fail(url, &o, CG_ERR_IO, ": TLS", 3);
}

static void test_too_large(void) {
    /* Content-Length up front: refused at once, though the server would send 1 TB. */
    cg_url_opts o = {.max_bytes = 100000};
    expect_fail(http_url("/big"), &o, CG_ERR_LIMIT,
                ": larger than the 100000-byte limit (the server announces 1000000000000 bytes)",
                2);
    /* No length: refused once the limit is passed while streaming. */
    o.max_bytes = 1 << 20;
    expect_fail(http_url("/big-chunked"), &o, CG_ERR_LIMIT, ": larger than the 1048576-byte limit",
                5);
    /* The limit is inclusive: the 445-byte photo fits 445 and not 444. */
    o.max_bytes = 445;
    cg_url_info info = expect_ok(http_url("/photo.jpg"), &o, "tests/data/images/plain.jpg");
    cg_url_info_free(&info);
    o.max_bytes = 444;
    expect_fail(http_url("/photo.jpg"), &o, CG_ERR_LIMIT, ": larger than the 444-byte limit", 2);
}

static void check_time(const char *what, double dt, double limit) {
    CHECK(dt >= TIME_LOW * limit && dt < TIME_HIGH * limit,
          "%s: stopped after %.2f s, the limit is %.0f s", what, dt, limit);
}

static void test_timeouts(void) {
    cg_url_opts o = {.timeout_s = 1};
    double dt = expect_fail(http_url("/slow"), &o, CG_ERR_IO,
                            ": timed out after 1 s (the limit for the whole download)", 0);
    check_time("/slow", dt, 1);
    dt = expect_fail(http_url("/slow-headers"), &o, CG_ERR_IO,
                     ": timed out after 1 s (the limit for the whole download)", 0);
    check_time("/slow-headers", dt, 1);
    /* The stall listener never completes the connection. */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/photo.jpg", stall_port);
    o.connect_timeout_s = 1;
    o.timeout_s = 30;
    dt = expect_fail(url, &o, CG_ERR_IO, ": timed out after 1 s connecting", 0);
    check_time("connecting", dt, 1);
    /* ... and when the whole limit is the nearer one, that one is named. */
    o.connect_timeout_s = 10;
    o.timeout_s = 1;
    dt = expect_fail(url, &o, CG_ERR_IO, ": timed out after 1 s (the limit for the whole download)",
                     0);
    check_time("connecting, whole limit", dt, 1);
}

static void test_truncated(void) {
    expect_fail(http_url("/truncated"), NULL, CG_ERR_IO,
                ": connection closed before the whole body came", 3);
}

typedef struct {
    double start, after;
    int calls;
} cancel_state;

static int cancel_after(void *user) {
    cancel_state *c = user;
    c->calls++;
    return now_s() - c->start >= c->after;
}

static void test_cancel(void) {
    /* A stalled download stops within about a second of the request (libcurl polls the
     * callback about once a second while nothing arrives), long before its 20 s limit. */
    cancel_state c = {.start = now_s(), .after = 0.3};
    cg_url_opts o = {.timeout_s = 20, .cancel = cancel_after, .cancel_user = &c};
    double dt = expect_fail(http_url("/slow"), &o, CG_ERR_CANCELLED, ": cancelled", 2.5);
    CHECK(dt >= 0.3 && c.calls > 0, "cancelled after %.2f s, %d polls", dt, c.calls);
    c.start = now_s();
    c.after = 0;
    c.calls = 0;
    expect_fail(http_url("/photo.jpg"), &o, CG_ERR_CANCELLED, ": cancelled", 2);
    CHECK(c.calls == 1, "%d polls after the first said stop", c.calls);
    /* A callback that never cancels changes nothing. */
    c.after = 1e9;
    cg_url_info info = expect_ok(http_url("/anim.gif"), &o, "tests/data/media/anim.gif");
    CHECK(c.calls > 0, "the cancel callback was never polled");
    cg_url_info_free(&info);
}

static void check_url_name(const char *url, const char *want_name, const char *fixture) {
    cg_url_info info = expect_ok(url, NULL, fixture);
    CHECK(info.file_name && !strcmp(info.file_name, want_name), "%s: name \"%s\", want \"%s\"", url,
          info.file_name ? info.file_name : "(null)", want_name);
    cg_url_info_free(&info);
}

static void test_names(void) {
    const char *png = "tests/data/images/plain.png", *webp = "tests/data/images/plain.webp";
    /* from Content-Disposition */
    check_url_name(http_url("/cd"), "holiday photo.png", png);
    check_url_name(http_url("/cd-star"), "\xc3\xa9t\xc3\xa9 photo.png", png); /* filename* wins */
    check_url_name(http_url("/cd-evil"), "passwd", png);
    check_url_name(http_url("/cd-dots"), "cd-dots", png); /* unusable: the URL's name */
    check_url_name(http_url("/cd-hidden"), "hidden", png);
    char want[128];
    memset(want, 'x', CG_URL_MAX_NAME - 4);
    strcpy(want + CG_URL_MAX_NAME - 4, ".png");
    check_url_name(http_url("/cd-long"), want, png);
    cg_url_info info = expect_ok(http_url("/cd"), NULL, png);
    CHECK(info.content_type && !strcmp(info.content_type, "image/png"), "type %s",
          info.content_type);
    cg_url_info_free(&info);
    /* from the URL: percent-decoded, query and fragment dropped */
    check_url_name(http_url("/path/with%20space/img.webp"), "img.webp", webp);
    check_url_name(http_url("/path/with%20space/my%20img.webp"), "my img.webp", webp);
    check_url_name(http_url("/path/%2e%2E"), "download", webp);
    check_url_name(http_url("/path/%2Fetc%2Fpasswd"), "passwd", webp);
    check_url_name(http_url("/path/a%0Ab.webp"), "a_b.webp", webp);
    check_url_name(http_url("/path/"), "download", webp);
    check_url_name(http_url("/query.jpg?x=1"), "query.jpg", "tests/data/images/plain.jpg");
    check_url_name(http_url("/query.jpg?x=1#frag"), "query.jpg", "tests/data/images/plain.jpg");
    info = expect_ok(http_url("/query.jpg?x=1"), NULL, NULL);
    CHECK(info.final_url && !strcmp(info.final_url, http_url("/query.jpg?x=1")), "final URL %s",
          info.final_url);
    cg_url_info_free(&info);
}

/* Several downloads at once, each on its own thread: the one-time global setup and the
 * per-call state must not interfere. */
typedef struct {
    char dest[192];
    cg_status s;
} thread_job;

static void *download_thread(void *arg) {
    thread_job *j = arg;
    j->s = cg_url_download(http_url("/anim.gif"), NULL, j->dest, NULL);
    return NULL;
}

static void test_threads(void) {
    enum { N = 4 };
    thread_job jobs[N];
    pthread_t t[N];
    const char *dir = fresh_dir();
    for (int i = 0; i < N; i++) {
        snprintf(jobs[i].dest, sizeof jobs[i].dest, "%s/%d.gif", dir, i);
        CHECK(pthread_create(&t[i], NULL, download_thread, &jobs[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK(jobs[i].s == CG_OK, "thread %d: status %d", i, jobs[i].s);
        CHECK(same_file(jobs[i].dest, "tests/data/media/anim.gif"), "thread %d: wrong bytes", i);
    }
    CHECK(count_files(dir) == N, "%d files, want %d", count_files(dir), N);
}

int main(void) {
    /* A proxy from the environment would take 127.0.0.1 elsewhere. */
    const char *proxies[] = {"http_proxy",  "https_proxy", "all_proxy", "ALL_PROXY",
                             "HTTPS_PROXY", "no_proxy",    "NO_PROXY"};
    for (size_t i = 0; i < sizeof proxies / sizeof *proxies; i++) unsetenv(proxies[i]);
    if (test_make_dir(tmpdir, sizeof tmpdir, "test_url") != 0) return 1;
    start_stub();
    atexit(stop_stub); /* also on a failing exit below */
    RUN(test_is_url);
    RUN(test_safe_name);
    RUN(test_refused_urls);
    RUN(test_dns_failure);
    RUN(test_connection_refused);
    RUN(test_dest_errors);
    RUN(test_stub_started);
    if (stub_pid > 0) {
        RUN(test_download);
        RUN(test_http_errors);
        RUN(test_content_type_not_checked);
        RUN(test_redirects);
        RUN(test_https);
        RUN(test_too_large);
        RUN(test_timeouts);
        RUN(test_truncated);
        RUN(test_cancel);
        RUN(test_names);
        RUN(test_threads);
    } else {
        printf("FAIL the tests against the server: not run, as the server did not start (%s)\n",
               stub_error);
        tests_failed += 11;
    }
    stop_stub();
    test_remove_dir(tmpdir);
    return TEST_SUMMARY("test_url");
}
