/* url.h: inputs given as http:// or https:// URLs, downloaded with libcurl to a local file
 * that is then read like any other input. Only http and https are spoken, redirects are
 * followed one by one under this module's own rules (a limit, http(s) only, never from
 * https down to http), the body is capped, and the file is written atomically, so a failed
 * download leaves nothing behind. Errors go through cg_fail ("URL: reason"); nothing is
 * printed and nothing exits. Safe to call from several threads at once (each call has its
 * own libcurl handle; libcurl's global setup runs once). */
#ifndef CG_IO_URL_H
#define CG_IO_URL_H

#include <stdint.h>

#include "cartoongan.h"

/* Defaults for the zero fields of cg_url_opts. */
#define CG_URL_DEFAULT_MAX_BYTES (1ull << 30) /* 1 GiB */
#define CG_URL_DEFAULT_CONNECT_TIMEOUT 10     /* seconds */
#define CG_URL_DEFAULT_TIMEOUT 60             /* seconds */
#define CG_URL_DEFAULT_MAX_REDIRECTS 5

/* 1 if s starts with "http://" or "https://" (the scheme in any case), else 0 (NULL: 0).
 * Only the prefix is looked at: cg_url_download may still refuse the URL. */
int cg_is_url(const char *s);

/* Download settings. A zero field takes the default above, so `cg_url_opts o = {0}` (or a
 * NULL pointer) means all defaults. */
typedef struct {
    uint64_t max_bytes;     /* refuse a body larger than this many bytes: up front when the
                               server sends Content-Length, else once that much has come */
    long connect_timeout_s; /* resolving, connecting and the TLS handshake, per server */
    long timeout_s;         /* the whole download, every redirect included */
    int max_redirects;      /* redirects followed at most; negative: none */
    /* Polled while the download runs: often while data flows, about once a second while
     * it stalls; a non-zero return stops it with CG_ERR_CANCELLED. NULL: never. */
    int (*cancel)(void *user);
    void *cancel_user;
    /* A PEM file of the certificates to trust for https instead of the system's (a
     * private CA, or the tests' self-signed server); NULL: the system's. */
    const char *ca_file;
} cg_url_opts;

/* What a download found out. Strings are owned (cg_url_info_free); any may be NULL. */
typedef struct {
    /* A name to save the result under, safe to join to a directory: the
     * Content-Disposition filename (filename*=UTF-8''... preferred when it decodes cleanly)
     * or else the last path segment of final_url, percent-decoded, query and fragment
     * dropped. Made safe: only what follows the last '/' or '\', control characters and
     * bytes that are not UTF-8 become '_', leading dots and surrounding spaces removed, at
     * most CG_URL_MAX_NAME bytes (the extension kept). "download" when nothing is left.
     * Set only on success. */
    char *file_name;
    char *content_type; /* the final response's Content-Type as sent, or NULL */
    char *final_url;    /* the URL the body came from, after redirects, without any
                           "user:password@" (safe to show) */
    long http_status;   /* the final response's status code; 0 if none came */
    uint64_t bytes;     /* body bytes written to dest */
} cg_url_info;

#define CG_URL_MAX_NAME 100

/* Downloads `url` to the file `dest` (parents created; written to a temporary file next to
 * it and renamed into place only when the whole body has come, so nothing is left on
 * failure). `opts` may be NULL (all defaults); `info` may be NULL, and otherwise is
 * cleared first and, on failure too, holds what was learned (http_status, final_url,
 * content_type): free it with cg_url_info_free either way. Any 2xx status is success,
 * whatever the content type (the caller sniffs the bytes). Errors, as "URL: reason" with
 * the URL shown without its password and control characters:
 *   CG_ERR_ARG       not an http(s) URL ("only http and https URLs are supported"), a URL
 *                    with a space or control character, or one libcurl cannot parse
 *   CG_ERR_IO        "cannot resolve host NAME", "cannot connect to HOST port N: REASON",
 *                    "timed out after N s connecting", "timed out after N s (the limit for
 *                    the whole download)", "HTTP 404 Not Found" (any status >= 400, or a
 *                    3xx without a Location), "too many redirects (more than N)",
 *                    "redirect from https to http refused", "redirect to a non-http(s) URL
 *                    refused: URL", "TLS ...: DETAIL" (certificate not trusted, handshake
 *                    failed), "connection closed before the whole body came: DETAIL",
 *                    other network failures with libcurl's text; writing dest: "DEST: ..."
 *   CG_ERR_LIMIT     "larger than the N-byte limit"
 *   CG_ERR_CANCELLED "cancelled"
 *   CG_ERR_NOMEM     out of memory */
cg_status cg_url_download(const char *url, const cg_url_opts *opts, const char *dest,
                          cg_url_info *info);
/* Frees info's strings and clears it; NULL does nothing. */
void cg_url_info_free(cg_url_info *info);

/* The safe-name rule of cg_url_info.file_name applied to n bytes of `name` (which may hold
 * NUL bytes): a new string (free it), "download" when nothing usable remains; NULL only
 * when out of memory. */
char *cg_url_safe_name(const char *name, size_t n);

#endif
