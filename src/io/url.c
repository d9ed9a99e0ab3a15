/* url.c: the downloader of url.h, on libcurl's easy interface. Redirects are not left to
 * libcurl (CURLOPT_FOLLOWLOCATION): each hop is its own curl_easy_perform on one handle, so
 * this file can refuse an https -> http downgrade, count hops itself, keep one deadline for
 * the whole chain, and let only the final response's body reach the file. The callbacks
 * never fail silently: when one stops the transfer it notes why in the context, and that
 * reason wins over libcurl's generic CURLE_WRITE_ERROR. No fuzz target: what a server
 * sends is parsed by libcurl; the little parsed here (the status line, Content-Length,
 * Content-Disposition, names) is driven through crafted cases by tests/test_url.c. */
#include "io/url.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "io/image.h"
#include "status.h"

#define SHOWN_MAX 300 /* bytes of a URL quoted in a message */

/* ---- global setup ---- */

/* curl_global_init is not thread-safe and must run before any other libcurl call; running
 * it once here means callers need no setup of their own. It is never undone: libcurl's
 * global state lives until exit, like the process's other libraries. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_result = CURLE_FAILED_INIT;

static void global_init(void) { init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

int cg_is_url(const char *s) {
    return s && (strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0);
}

static int is_https(const char *s) { return strncasecmp(s, "https://", 8) == 0; }

/* ---- text helpers ---- */

/* A copy of an absolute URL without its user information ("user:password@"), which may
 * be secret; NULL when out of memory. */
static char *without_userinfo(const char *url) {
    const char *auth = strstr(url, "://"), *at = NULL;
    if (auth) {
        auth += 3;
        size_t alen = strcspn(auth, "/?#");
        for (const char *a = auth; (a = memchr(a, '@', alen - (size_t)(a - auth))); a++)
            at = a; /* the last '@' of the authority ends the user information */
    }
    char *out = strdup(url);
    if (out && at) memmove(out + (auth - url), out + (at + 1 - url), strlen(at + 1) + 1);
    return out;
}

/* The URL as messages quote it: no user information, spaces and control characters
 * percent-encoded (a message stays one clean line), at most SHOWN_MAX bytes. NULL when
 * out of memory. */
static char *show_url(const char *url) {
    char *bare = without_userinfo(url);
    char *out = bare ? malloc(SHOWN_MAX + 8) : NULL;
    if (!out) {
        free(bare);
        return NULL;
    }
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)bare;
    for (; *p && k < SHOWN_MAX; p++) {
        if (*p <= 0x20 || *p == 0x7f) k += (size_t)sprintf(out + k, "%%%02X", *p);
        else out[k++] = (char)*p;
    }
    if (*p) { /* cut short; inside a character, drop its first bytes too */
        if ((*p & 0xC0) == 0x80) {
            while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80) k--;
            if (k > 0) k--;
        }
        strcpy(out + k, "...");
    } else {
        out[k] = '\0';
    }
    free(bare);
    return out;
}

/* A part of an absolute URL (CURLUPART_HOST, ...) as a new string, or NULL. */
static char *url_part(const char *url, CURLUPart part, unsigned flags) {
    CURLU *u = curl_url();
    char *v = NULL, *copy = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, part, &v, flags) == CURLUE_OK && v) {
        copy = strdup(v);
    }
    curl_free(v);
    curl_url_cleanup(u);
    return copy;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes n bytes of s into dst (room for n bytes); returns the decoded length.
 * A '%' not followed by two hex digits stays as it is, or fails the whole decode (returns
 * -1) when `strict`. The result may hold NUL bytes. */
static long pct_decode(char *dst, const char *s, size_t n, int strict) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            dst[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            if (s[i] == '%' && strict) return -1;
            dst[k++] = s[i];
        }
    }
    return (long)k;
}

/* The length of the valid UTF-8 sequence at p (n bytes left) that encodes a character we
 * accept in a name (not a C1 control), or 0. */
static size_t utf8_char(const unsigned char *p, size_t n) {
    unsigned cp;
    size_t len;
    if (p[0] < 0xC2) return 0; /* continuation bytes and overlong 2-byte leads */
    if (p[0] < 0xE0) len = 2, cp = p[0] & 0x1Fu;
    else if (p[0] < 0xF0) len = 3, cp = p[0] & 0x0Fu;
    else if (p[0] < 0xF5) len = 4, cp = p[0] & 0x07u;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if ((cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x80 && cp <= 0x9F)) return 0;
    return len;
}

/* The safe-name rule (url.h, cg_url_info.file_name). *out gets a new string, or NULL when
 * nothing usable is left; returns CG_ERR_NOMEM only. */
static cg_status safe_name(const char *name, size_t n, char **out) {
    *out = NULL;
    for (size_t i = n; i > 0; i--) { /* only what follows the last separator */
        if (name[i - 1] == '/' || name[i - 1] == '\\') {
            name += i;
            n -= i;
            break;
        }
    }
    char *s = malloc(n + 1);
    if (!s) return CG_ERR_NOMEM;
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)name;
    for (size_t i = 0; i < n;) {
        size_t len = p[i] < 0x80 ? 1 : utf8_char(p + i, n - i);
        if (len == 0 || (len == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
            s[k++] = '_'; /* a control character, NUL or a byte that is not UTF-8 */
            i++;
        } else {
            memcpy(s + k, p + i, len);
            k += len;
            i += len;
        }
    }
    /* No leading dot (no hidden file, no "." or ".."), no surrounding spaces. */
    size_t start = 0;
    while (start < k && (s[start] == '.' || s[start] == ' ')) start++;
    while (k > start && s[k - 1] == ' ') k--;
    memmove(s, s + start, k - start);
    k -= start;
    if (k > CG_URL_MAX_NAME) {
        /* Keep the extension when it is a plausible one; cut the stem at a UTF-8 boundary. */
        const char *dot = memrchr(s, '.', k);
        size_t ext = dot && dot > s ? k - (size_t)(dot - s) : 0;
        if (ext > 16 || memchr(dot ? dot : s, ' ', ext)) ext = 0;
        size_t stem = CG_URL_MAX_NAME - ext;
        while (stem > 0 && ((unsigned char)s[stem] & 0xC0) == 0x80) stem--;
        while (stem > 0 && s[stem - 1] == ' ') stem--;
        memmove(s + stem, s + k - ext, ext);
        k = stem + ext;
    }
    s[k] = '\0';
    if (k == 0 || s[0] == '.') { /* ".png" left of an all-dots stem is a hidden name */
        free(s);
        return CG_OK;
    }
    *out = s;
    return CG_OK;
}

char *cg_url_safe_name(const char *name, size_t n) {
    char *s = NULL;
    if (safe_name(name ? name : "", name ? n : 0, &s) != CG_OK) return NULL;
    return s ? s : strdup("download");
}

/* ---- Content-Disposition ---- */

/* Reads one parameter value at *p (a quoted-string with backslash escapes, or a token up
 * to ';'), into a new string of *n bytes; advances *p past it. NULL when out of memory. */
static char *param_value(const char **p, size_t *n) {
    const char *s = *p;
    char *v = malloc(strlen(s) + 1);
    if (!v) return NULL;
    size_t k = 0;
    if (*s == '"') {
        for (s++; *s && *s != '"'; s++) {
            if (*s == '\\' && s[1]) s++;
            v[k++] = *s;
        }
        if (*s == '"') s++;
    } else {
        for (; *s && *s != ';'; s++) v[k++] = *s;
        while (k > 0 && (v[k - 1] == ' ' || v[k - 1] == '\t')) k--;
    }
    v[k] = '\0';
    *n = k;
    *p = s;
    return v;
}

/* RFC 5987's charset'language'value of filename*: decoded to UTF-8 when the charset is
 * UTF-8 or ISO-8859-1 and the value decodes cleanly, else NULL (the caller falls back to
 * plain filename). Returns CG_ERR_NOMEM only. */
static cg_status ext_value(const char *v, size_t n, char **out, size_t *outn) {
    *out = NULL;
    const char *q1 = memchr(v, '\'', n);
    const char *q2 = q1 ? memchr(q1 + 1, '\'', n - (size_t)(q1 + 1 - v)) : NULL;
    if (!q2) return CG_OK;
    int utf8 = q1 - v == 5 && strncasecmp(v, "UTF-8", 5) == 0;
    int latin1 = q1 - v == 10 && strncasecmp(v, "ISO-8859-1", 10) == 0;
    if (!utf8 && !latin1) return CG_OK;
    const char *enc = q2 + 1;
    size_t en = n - (size_t)(enc - v);
    char *d = malloc(2 * en + 1);
    if (!d) return CG_ERR_NOMEM;
    long dn = pct_decode(d, enc, en, 1);
    if (dn < 0) {
        free(d);
        return CG_OK;
    }
    if (latin1) { /* widen to UTF-8 from the end, in place (the buffer has room) */
        size_t wide = (size_t)dn;
        for (long i = 0; i < dn; i++) wide += (unsigned char)d[i] >= 0x80;
        for (long i = dn - 1, j = (long)wide - 1; i >= 0; i--) {
            unsigned char c = (unsigned char)d[i];
            if (c < 0x80) {
                d[j--] = (char)c;
            } else {
                d[j--] = (char)(0x80 | (c & 0x3F));
                d[j--] = (char)(0xC0 | c >> 6);
            }
        }
        dn = (long)wide;
    }
    *out = d;
    *outn = (size_t)dn;
    return CG_OK;
}

/* The safe name from a Content-Disposition value (filename* first, then filename), or
 * NULL in *out when it names nothing usable. Returns CG_ERR_NOMEM only. */
static cg_status disposition_name(const char *cd, char **out) {
    *out = NULL;
    char *plain = NULL, *star = NULL;
    size_t plain_n = 0, star_n = 0;
    cg_status s = CG_OK;
    const char *p = strchr(cd, ';'); /* past the disposition type */
    while (p && *p && s == CG_OK) {
        p += strspn(p, "; \t");
        size_t nl = strcspn(p, "=; \t");
        const char *name = p;
        p += nl;
        p += strspn(p, " \t");
        if (*p != '=') continue; /* a parameter without a value */
        p++;
        p += strspn(p, " \t");
        size_t vn;
        char *v = param_value(&p, &vn);
        if (!v) {
            s = CG_ERR_NOMEM;
        } else if (nl == 9 && strncasecmp(name, "filename*", 9) == 0 && !star) {
            s = ext_value(v, vn, &star, &star_n);
        } else if (nl == 8 && strncasecmp(name, "filename", 8) == 0 && !plain) {
            plain = v, plain_n = vn, v = NULL;
        }
        free(v);
        p = strchr(p, ';');
    }
    if (s == CG_OK && star) s = safe_name(star, star_n, out);
    if (s == CG_OK && !*out && plain) s = safe_name(plain, plain_n, out);
    free(plain);
    free(star);
    return s;
}

/* ---- the transfer ---- */

enum stop_reason { STOP_NONE, STOP_TOO_LARGE, STOP_WRITE, STOP_HTTP, STOP_NOMEM };

typedef struct {
    cg_atomic_file out;
    uint64_t max_bytes, bytes;
    int (*cancel)(void *user);
    void *cancel_user;
    int cancelled;
    enum stop_reason stop;
    int write_errno;
    /* the response being received; reset at each status line (interim 1xx included) */
    long status;
    char reason[64];
    char *disposition;
    int has_length;
    uint64_t length;
    int keep_body; /* a 2xx: its body goes to the file */
} dl_ctx;

static size_t on_header(char *buf, size_t size, size_t count, void *user) {
    dl_ctx *c = user;
    size_t n = size * count, len = n;
    while (len > 0 && (buf[len - 1] == '\r' || buf[len - 1] == '\n')) len--;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* "HTTP/1.1 404 Not Found", or "HTTP/2 200 " (HTTP/2 has no reason text) */
        size_t i = 5;
        while (i < len && buf[i] != ' ') i++;
        while (i < len && buf[i] == ' ') i++;
        long code = 0;
        int digits = 0;
        while (i < len && buf[i] >= '0' && buf[i] <= '9' && digits < 3)
            code = code * 10 + (buf[i++] - '0'), digits++;
        while (i < len && buf[i] == ' ') i++;
        size_t k = 0;
        for (; i < len && k + 1 < sizeof c->reason; i++) /* shown in messages: printable only */
            c->reason[k++] = buf[i] >= 0x20 && buf[i] < 0x7f ? buf[i] : '?';
        while (k > 0 && c->reason[k - 1] == ' ') k--;
        c->reason[k] = '\0';
        c->status = code;
        free(c->disposition);
        c->disposition = NULL;
        c->has_length = 0;
        c->keep_body = 0;
        return n;
    }
    if (len == 0) { /* the end of this response's headers */
        if (c->status >= 400) {
            c->stop = STOP_HTTP; /* the error page is of no use: stop before its body */
            return 0;
        }
        if (c->status >= 200 && c->status < 300) {
            if (c->has_length && c->length > c->max_bytes) {
                c->stop = STOP_TOO_LARGE;
                return 0;
            }
            c->keep_body = 1;
        }
        return n;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon) return n;
    size_t nl = (size_t)(colon - buf);
    const char *v = colon + 1;
    while (v < buf + len && (*v == ' ' || *v == '\t')) v++;
    size_t vn = (size_t)(buf + len - v);
    if (nl == 19 && strncasecmp(buf, "Content-Disposition", 19) == 0) {
        free(c->disposition);
        c->disposition = strndup(v, vn);
        if (!c->disposition) {
            c->stop = STOP_NOMEM;
            return 0;
        }
    } else if (nl == 14 && strncasecmp(buf, "Content-Length", 14) == 0) {
        /* Digits only; a number too long for 64 bits counts as too large, anything else
         * is left to libcurl, which refuses a malformed length itself. */
        uint64_t x = 0;
        size_t i = 0;
        for (; i < vn && v[i] >= '0' && v[i] <= '9'; i++)
            x = x > (UINT64_MAX - 9) / 10 ? UINT64_MAX : x * 10 + (uint64_t)(v[i] - '0');
        c->has_length = vn > 0 && i == vn;
        c->length = c->has_length ? x : 0;
    }
    return n;
}

static size_t on_body(char *buf, size_t size, size_t count, void *user) {
    dl_ctx *c = user;
    size_t n = size * count;
    if (!c->keep_body) return n; /* a redirect's body */
    if (n > c->max_bytes - c->bytes) {
        c->stop = STOP_TOO_LARGE;
        return 0;
    }
    for (size_t done = 0; done < n;) {
        ssize_t w = write(c->out.fd, buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            c->write_errno = w < 0 ? errno : EIO;
            c->stop = STOP_WRITE;
            return 0;
        }
        done += (size_t)w;
    }
    c->bytes += n;
    return n;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    dl_ctx *c = user;
    if (c->cancel(c->cancel_user)) c->cancelled = 1;
    return c->cancelled;
}

static const char *http_reason(long code) {
    switch (code) {
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 511: return "Network Authentication Required";
    default: return "";
    }
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* The settings of one download, and where it stands. */
typedef struct {
    const char *shown;  /* the original URL as messages show it */
    const char *dest;
    long connect_s, timeout_s;
    double connect_ms, left_ms, hop_ms; /* this hop's limits and how long it ran */
    char err[CURL_ERROR_SIZE];
} dl_run;

/* The message for a failed curl_easy_perform of `hop` (the URL this hop fetched). */
static cg_status transfer_error(const dl_run *r, const dl_ctx *c, CURL *curl, CURLcode rc,
                                const char *hop) {
    const char *detail = r->err[0] ? r->err : curl_easy_strerror(rc);
    if (c->cancelled || rc == CURLE_ABORTED_BY_CALLBACK)
        return cg_fail(CG_ERR_CANCELLED, "%s: cancelled", r->shown);
    switch (c->stop) {
    case STOP_TOO_LARGE:
        if (c->has_length && c->length > c->max_bytes && c->length < UINT64_MAX)
            return cg_fail(CG_ERR_LIMIT,
                           "%s: larger than the %llu-byte limit (the server announces %llu bytes)",
                           r->shown, (unsigned long long)c->max_bytes,
                           (unsigned long long)c->length);
        return cg_fail(CG_ERR_LIMIT, "%s: larger than the %llu-byte limit", r->shown,
                       (unsigned long long)c->max_bytes);
    case STOP_WRITE:
        return cg_fail(CG_ERR_IO, "%s: cannot write: %s", r->dest, strerror(c->write_errno));
    case STOP_NOMEM: return cg_fail(CG_ERR_NOMEM, "%s: out of memory", r->shown);
    case STOP_HTTP: /* the caller reports the status */
    case STOP_NONE: break;
    }
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
        return cg_fail(CG_ERR_ARG, "%s: only http and https URLs are supported", r->shown);
    case CURLE_URL_MALFORMAT:
        return cg_fail(CG_ERR_ARG, "%s: not a valid URL (%s)", r->shown, detail);
    case CURLE_COULDNT_RESOLVE_HOST: {
        char *host = url_part(hop, CURLUPART_HOST, 0);
        cg_status s =
            cg_fail(CG_ERR_IO, "%s: cannot resolve host %s", r->shown, host ? host : "(unknown)");
        free(host);
        return s;
    }
    case CURLE_COULDNT_RESOLVE_PROXY:
        return cg_fail(CG_ERR_IO, "%s: cannot resolve the proxy: %s", r->shown, detail);
    case CURLE_COULDNT_CONNECT: {
        char *host = url_part(hop, CURLUPART_HOST, 0);
        char *port = url_part(hop, CURLUPART_PORT, CURLU_DEFAULT_PORT);
        long os_err = 0;
        curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_err);
        cg_status s = cg_fail(CG_ERR_IO, "%s: cannot connect to %s port %s: %s", r->shown,
                              host ? host : "(unknown)", port ? port : "?",
                              os_err ? strerror((int)os_err) : detail);
        free(host);
        free(port);
        return s;
    }
    case CURLE_OPERATION_TIMEDOUT:
        /* Which limit fired: the connect limit when it was the nearer one and the hop
         * ended nearer to it than to the whole download's. */
        if (r->connect_ms < r->left_ms && r->hop_ms < (r->connect_ms + r->left_ms) / 2)
            return cg_fail(CG_ERR_IO, "%s: timed out after %ld s connecting", r->shown,
                           r->connect_s);
        return cg_fail(CG_ERR_IO, "%s: timed out after %ld s (the limit for the whole download)",
                       r->shown, r->timeout_s);
    case CURLE_PEER_FAILED_VERIFICATION:
        return cg_fail(CG_ERR_IO, "%s: TLS certificate not trusted: %s", r->shown, detail);
    case CURLE_SSL_CONNECT_ERROR:
        return cg_fail(CG_ERR_IO, "%s: TLS handshake failed: %s", r->shown, detail);
    case CURLE_SSL_CACERT_BADFILE:
        return cg_fail(CG_ERR_IO, "%s: TLS: cannot read the CA certificates: %s", r->shown, detail);
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
        return cg_fail(CG_ERR_IO, "%s: TLS error: %s", r->shown, detail);
    case CURLE_GOT_NOTHING:
        return cg_fail(CG_ERR_IO, "%s: the server closed the connection without replying",
                       r->shown);
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
        return cg_fail(CG_ERR_IO, "%s: connection closed before the whole body came: %s", r->shown,
                       detail);
    case CURLE_FILESIZE_EXCEEDED:
        return cg_fail(CG_ERR_LIMIT, "%s: larger than the %llu-byte limit", r->shown,
                       (unsigned long long)c->max_bytes);
    case CURLE_OUT_OF_MEMORY: return cg_fail(CG_ERR_NOMEM, "%s: out of memory", r->shown);
    default: return cg_fail(CG_ERR_IO, "%s: %s", r->shown, detail);
    }
}

static cg_status http_error(const dl_run *r, long code, const char *reason) {
    if (!reason[0]) reason = http_reason(code);
    return cg_fail(CG_ERR_IO, "%s: HTTP %ld%s%s", r->shown, code, reason[0] ? " " : "", reason);
}

/* Sets the options every hop shares. */
static int setup(CURL *curl, dl_ctx *c, dl_run *r, const cg_url_opts *o) {
    int bad = 0;
#define SET(opt, val) bad |= curl_easy_setopt(curl, opt, val) != CURLE_OK
    SET(CURLOPT_NOSIGNAL, 1L); /* the library must not touch the process's signals */
    SET(CURLOPT_ERRORBUFFER, r->err);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* hop by hop, below */
    SET(CURLOPT_USERAGENT, "cartoongan/" CG_VERSION);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, c);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, c);
    if (o && o->cancel) {
        SET(CURLOPT_XFERINFOFUNCTION, on_progress);
        SET(CURLOPT_XFERINFODATA, c);
        SET(CURLOPT_NOPROGRESS, 0L);
    } else {
        SET(CURLOPT_NOPROGRESS, 1L);
    }
    if (o && o->ca_file) SET(CURLOPT_CAINFO, o->ca_file);
#undef SET
    return bad;
}

void cg_url_info_free(cg_url_info *info) {
    if (!info) return;
    free(info->file_name);
    free(info->content_type);
    free(info->final_url);
    memset(info, 0, sizeof *info);
}

/* Notes what the last hop learned in info (strings replaced). 0, or -1 out of memory. */
static int note_response(cg_url_info *info, CURL *curl, const dl_ctx *c) {
    char *eff = NULL, *ct = NULL;
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &eff);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    info->http_status = code ? code : c->status;
    info->bytes = c->bytes;
    free(info->final_url);
    free(info->content_type);
    info->final_url = eff ? without_userinfo(eff) : NULL;
    info->content_type = ct ? strdup(ct) : NULL;
    return (eff && !info->final_url) || (ct && !info->content_type) ? -1 : 0;
}

/* info->file_name for a finished download: Content-Disposition's, else the final URL's
 * last path segment's, else "download". */
static cg_status choose_name(cg_url_info *info, const dl_ctx *c) {
    char *name = NULL;
    cg_status s = c->disposition ? disposition_name(c->disposition, &name) : CG_OK;
    char *path = !name && s == CG_OK && info->final_url
                     ? url_part(info->final_url, CURLUPART_PATH, 0)
                     : NULL;
    if (path) {
        const char *seg = strrchr(path, '/');
        seg = seg ? seg + 1 : path;
        char *dec = malloc(strlen(seg) + 1);
        if (!dec) s = CG_ERR_NOMEM;
        else s = safe_name(dec, (size_t)pct_decode(dec, seg, strlen(seg), 0), &name);
        free(dec);
        free(path);
    }
    if (s == CG_OK && !name && !(name = strdup("download"))) s = CG_ERR_NOMEM;
    info->file_name = name;
    return s;
}

cg_status cg_url_download(const char *url, const cg_url_opts *opts, const char *dest,
                          cg_url_info *info) {
    cg_url_info scratch;
    if (!info) info = &scratch;
    memset(info, 0, sizeof *info);
    if (!url || !dest) return cg_fail(CG_ERR_ARG, "cg_url_download: null argument");
    dl_run r;
    memset(&r, 0, sizeof r);
    char *shown = show_url(url);
    if (!shown) return cg_fail(CG_ERR_NOMEM, "cg_url_download: out of memory");
    r.shown = shown;
    r.dest = dest;
    cg_status s = CG_OK;
    for (const unsigned char *p = (const unsigned char *)url; *p && s == CG_OK; p++) {
        if (*p <= 0x20 || *p == 0x7f)
            s = cg_fail(CG_ERR_ARG,
                        "%s: a URL cannot hold spaces or control characters (percent-encode them)",
                        shown);
    }
    if (s == CG_OK && !cg_is_url(url))
        s = cg_fail(CG_ERR_ARG, "%s: only http and https URLs are supported", shown);
    if (s == CG_OK && pthread_once(&init_once, global_init) == 0 && init_result != CURLE_OK)
        s = cg_fail(CG_ERR_IO, "%s: libcurl cannot start: %s", shown,
                    curl_easy_strerror(init_result));
    if (s == CG_OK) {
        CURLU *u = curl_url();
        CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
        curl_url_cleanup(u);
        if (uc == CURLUE_OUT_OF_MEMORY) s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", shown);
        else if (uc != CURLUE_OK)
            s = cg_fail(CG_ERR_ARG, "%s: not a valid URL (%s)", shown, curl_url_strerror(uc));
    }
    if (s != CG_OK) {
        free(shown);
        return s;
    }

    long connect_s = opts && opts->connect_timeout_s > 0 ? opts->connect_timeout_s
                                                         : CG_URL_DEFAULT_CONNECT_TIMEOUT;
    long timeout_s = opts && opts->timeout_s > 0 ? opts->timeout_s : CG_URL_DEFAULT_TIMEOUT;
    int max_redirects = !opts || opts->max_redirects == 0 ? CG_URL_DEFAULT_MAX_REDIRECTS
                        : opts->max_redirects < 0       ? 0
                                                         : opts->max_redirects;
    r.connect_s = connect_s;
    r.timeout_s = timeout_s;
    dl_ctx c;
    memset(&c, 0, sizeof c);
    c.out.fd = -1;
    c.max_bytes = opts && opts->max_bytes ? opts->max_bytes : CG_URL_DEFAULT_MAX_BYTES;
    c.cancel = opts ? opts->cancel : NULL;
    c.cancel_user = opts ? opts->cancel_user : NULL;

    CURL *curl = curl_easy_init();
    char *hop = strdup(url);
    if (!curl || !hop) s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", shown);
    else if (setup(curl, &c, &r, opts))
        s = cg_fail(CG_ERR_IO, "%s: libcurl refused an option", shown);
    else s = cg_atomic_begin(&c.out, dest);
    int begun = s == CG_OK;

    double deadline = now_ms() + timeout_s * 1e3;
    for (int hops = 0; s == CG_OK; hops++) {
        double start = now_ms();
        r.left_ms = deadline - start;
        if (r.left_ms < 1) {
            s = cg_fail(CG_ERR_IO, "%s: timed out after %ld s (the limit for the whole download)",
                        shown, timeout_s);
            break;
        }
        r.connect_ms = connect_s * 1e3 < r.left_ms ? connect_s * 1e3 : r.left_ms;
        c.status = 0;
        c.reason[0] = '\0';
        c.stop = STOP_NONE;
        c.keep_body = 0;
        r.err[0] = '\0';
        curl_easy_setopt(curl, CURLOPT_URL, hop);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)r.left_ms);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)r.connect_ms);
        CURLcode rc = curl_easy_perform(curl);
        r.hop_ms = now_ms() - start;
        if (note_response(info, curl, &c) != 0) {
            s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", shown);
            break;
        }
        if (rc != CURLE_OK && c.stop != STOP_HTTP) {
            s = transfer_error(&r, &c, curl, rc, hop);
            break;
        }
        long code = info->http_status;
        if (code >= 300 && code < 400) {
            char *next = NULL;
            curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &next);
            if (!next) {
                s = http_error(&r, code, c.reason);
            } else if (hops >= max_redirects) {
                s = cg_fail(CG_ERR_IO, "%s: too many redirects (more than %d)", shown,
                            max_redirects);
            } else if (!cg_is_url(next)) {
                char *to = show_url(next);
                s = cg_fail(CG_ERR_IO, "%s: redirect to a non-http(s) URL refused: %s", shown,
                            to ? to : "");
                free(to);
            } else if (is_https(hop) && !is_https(next)) {
                s = cg_fail(CG_ERR_IO, "%s: redirect from https to http refused", shown);
            } else {
                char *copy = strdup(next);
                if (!copy) s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", shown);
                free(hop);
                hop = copy;
            }
            continue;
        }
        if (code < 200 || code >= 300) s = http_error(&r, code, c.reason);
        break;
    }
    if (s == CG_OK && choose_name(info, &c) != CG_OK)
        s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", shown);
    if (s == CG_OK) s = cg_atomic_commit(&c.out);
    else if (begun) cg_atomic_abort(&c.out);
    if (s != CG_OK) {
        free(info->file_name);
        info->file_name = NULL;
    }
    if (info == &scratch) cg_url_info_free(info);
    free(c.disposition);
    free(hop);
    free(shown);
    if (curl) curl_easy_cleanup(curl);
    return s;
}
