/* fuzz_serve.c: libFuzzer target: what `cartoongan serve` does with a request's URL before
 * touching the file system: the strict unescaper (bad or NUL escapes poison the URL) and
 * the path check (no "." or ".." or hidden segments, no "//", no backslash or control
 * byte). libmicrohttpd parses the HTTP itself; this is the part we own. Besides never
 * crashing, every URL the check lets through must be one that cannot leave the root.
 * serve.c's helpers are static, so the file is included whole, its command renamed. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define cmd_serve fuzz_serve_cmd_unused
#include "../../src/cli/serve.c"
#undef cmd_serve

/* The property the server relies on, checked independently of path_ok's code. */
static int stays_inside(const char *p) {
    if (p[0] != '/') return 0;
    for (const char *seg = p + 1;; ) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len >= 1 && seg[0] == '.') return 0;
        if (!end) return 1;
        if (len == 0) return 0;
        seg = end + 1;
    }
}

int fuzz_serve(const uint8_t *data, size_t size) {
    char *url = malloc(size + 1);
    if (!url) return 0;
    memcpy(url, data, size);
    url[size] = 0; /* MHD hands the handler a C string: anything after a NUL is gone */
    size_t n = unescape(NULL, NULL, url);
    if (n != strlen(url)) abort();
    if (path_ok(url)) {
        if (url[0] == '\x01' || !stays_inside(url) || strlen(url) > MAX_URL) abort();
        for (const char *p = url; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\') abort();
        if (!mime_type(url)) abort();
    }
    free(url);
    return 0;
}

FUZZ_TARGET(fuzz_serve)
