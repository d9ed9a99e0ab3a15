/* npy.c: the NumPy .npy reader and writer. Only what the weights and fixtures use is
 * accepted (little-endian float32, C order); anything else is refused with a reason. */
#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "status.h"

/* Finds `'key':` in the header dict and returns the text after the colon, or NULL. */
static const char *dict_value(const char *hdr, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static cg_status parse_header(npy_array *a, const char *hdr, const char *path) {
    const char *descr = dict_value(hdr, "descr");
    if (!descr) return cg_fail(CG_ERR_FORMAT, "%s: .npy header has no 'descr'", path);
    if (strncmp(descr, "'<f4'", 5) != 0) {
        const char *end = strchr(descr + 1, '\'');
        int n = end ? (int)(end - descr + 1) : 8;
        return cg_fail(CG_ERR_FORMAT, "%s: dtype %.*s is not little-endian float32 '<f4'", path,
                       n > 16 ? 16 : n, descr);
    }
    const char *fo = dict_value(hdr, "fortran_order");
    if (!fo || strncmp(fo, "False", 5) != 0)
        return cg_fail(CG_ERR_FORMAT, "%s: only C-order arrays are supported", path);
    const char *sh = dict_value(hdr, "shape");
    if (!sh || *sh != '(') return cg_fail(CG_ERR_FORMAT, "%s: .npy header has no shape", path);
    sh++;
    a->ndim = 0;
    a->count = 1;
    for (;;) {
        while (*sh == ' ' || *sh == ',') sh++;
        if (*sh == ')') break;
        char *end;
        errno = 0;
        long v = strtol(sh, &end, 10);
        if (end == sh || errno || v < 0 || a->ndim == NPY_MAX_DIMS)
            return cg_fail(CG_ERR_FORMAT, "%s: bad shape in .npy header", path);
        if (v > 0 && a->count > ((size_t)1 << 40) / (size_t)v)
            return cg_fail(CG_ERR_LIMIT, "%s: array too large", path);
        a->shape[a->ndim++] = v;
        a->count *= (size_t)v;
        sh = end;
    }
    return CG_OK;
}

cg_status npy_load(npy_array *a, const char *path, size_t max_bytes) {
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "rb");
    if (!f) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    cg_status st = CG_OK;
    unsigned char pre[12];
    char *hdr = NULL;
    size_t got = fread(pre, 1, 10, f);
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = cg_fail(CG_ERR_FORMAT, "%s: not a .npy file%s", path, got == 0 ? " (empty)" : "");
        goto done;
    }
    size_t hlen, off;
    if (pre[6] == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
        off = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) { st = cg_fail(CG_ERR_FORMAT, "%s: truncated .npy header", path); goto done; }
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        off = 12;
    } else {
        st = cg_fail(CG_ERR_FORMAT, "%s: unsupported .npy version %d", path, pre[6]);
        goto done;
    }
    if (hlen > 65536) { st = cg_fail(CG_ERR_FORMAT, "%s: .npy header too long", path); goto done; }
    hdr = malloc(hlen + 1);
    if (!hdr) { st = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path); goto done; }
    if (fread(hdr, 1, hlen, f) != hlen) { st = cg_fail(CG_ERR_FORMAT, "%s: truncated .npy header", path); goto done; }
    hdr[hlen] = 0;
    if ((st = parse_header(a, hdr, path)) != CG_OK) goto done;
    size_t bytes = a->count * sizeof(float);
    if (max_bytes && bytes > max_bytes) {
        st = cg_fail(CG_ERR_LIMIT, "%s: %zu bytes of data, over the limit of %zu", path, bytes, max_bytes);
        goto done;
    }
    /* Size check before allocating: the header must not promise more than the file has. */
    if (fseek(f, 0, SEEK_END) != 0) { st = cg_fail(CG_ERR_IO, "%s: cannot seek", path); goto done; }
    long fsize = ftell(f);
    if (fsize < 0 || (size_t)fsize != off + hlen + bytes) {
        st = cg_fail(CG_ERR_FORMAT, "%s: file is %ld bytes, expected %zu for shape with %zu floats%s",
                     path, fsize, off + hlen + bytes, a->count,
                     fsize >= 0 && (size_t)fsize < off + hlen + bytes ? " (truncated)" : "");
        goto done;
    }
    fseek(f, (long)(off + hlen), SEEK_SET);
    a->data = malloc(bytes ? bytes : 1);
    if (!a->data) { st = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path); goto done; }
    if (fread(a->data, 1, bytes, f) != bytes) { st = cg_fail(CG_ERR_IO, "%s: read error", path); goto done; }
done:
    free(hdr);
    fclose(f);
    if (st != CG_OK) npy_free(a);
    return st;
}

void npy_free(npy_array *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}

cg_status npy_save(const char *path, const float *data, const long *shape, int ndim) {
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(hdr + n, sizeof hdr - n, "%ld%s", shape[i], ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
        count *= (size_t)shape[i];
    }
    n += snprintf(hdr + n, sizeof hdr - n, "), }");
    /* Pad with spaces so the data starts on a 64-byte boundary, ending in a newline. */
    int total = ((10 + n + 1 + 63) / 64) * 64;
    size_t bytes = (size_t)total + count * sizeof(float);
    unsigned char *buf = malloc(bytes);
    if (!buf) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)((total - 10) & 0xff);
    buf[9] = (unsigned char)((total - 10) >> 8);
    memcpy(buf + 10, hdr, n);
    memset(buf + 10 + n, ' ', total - 10 - n - 1);
    buf[total - 1] = '\n';
    memcpy(buf + total, data, count * sizeof(float));
    cg_status st = cg_write_file_atomic(path, buf, bytes);
    free(buf);
    return st;
}
