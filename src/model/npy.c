/* npy.c: the NumPy .npy reader and writer. Only what the weights and fixtures use is
 * accepted (little-endian float32, C order); anything else is refused with a reason. */
#include "npy.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "status.h"

/* The longest header dict accepted (NumPy writes a few hundred bytes at most). */
#define NPY_MAX_HEADER 65536

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
        /* the value may be empty: the header can end right after the colon */
        const char *end = *descr ? strchr(descr + 1, '\'') : NULL;
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
        /* 2^40 elements, or what a 32-bit size_t can count in bytes (the wasm build) */
        const uint64_t max_count = SIZE_MAX / 8 < ((uint64_t)1 << 40) ? SIZE_MAX / 8 : (uint64_t)1 << 40;
        if (v > 0 && a->count > max_count / (uint64_t)v)
            return cg_fail(CG_ERR_LIMIT, "%s: array too large", path);
        a->shape[a->ndim++] = v;
        a->count *= (size_t)v;
        sh = end;
    }
    return CG_OK;
}

/* Parses the magic, version and header dict from the first n bytes of a .npy file (n may
 * be less than the whole file, as long as it holds the header); sets a's shape and count
 * and *data_off to where the data starts. Shared by npy_load, which then reads the data
 * from the file, and npy_parse, which takes it from memory. */
static cg_status parse_prefix(npy_array *a, const uint8_t *buf, size_t n, const char *path,
                              size_t max_bytes, size_t *data_off) {
    if (n < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return cg_fail(CG_ERR_FORMAT, "%s: not a .npy file%s", path, n == 0 ? " (empty)" : "");
    size_t hlen, off;
    if (buf[6] == 1) {
        hlen = buf[8] | (size_t)buf[9] << 8;
        off = 10;
    } else if (buf[6] == 2 || buf[6] == 3) {
        if (n < 12) return cg_fail(CG_ERR_FORMAT, "%s: truncated .npy header", path);
        hlen = buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        off = 12;
    } else {
        return cg_fail(CG_ERR_FORMAT, "%s: unsupported .npy version %d", path, buf[6]);
    }
    if (hlen > NPY_MAX_HEADER) return cg_fail(CG_ERR_FORMAT, "%s: .npy header too long", path);
    if (n - off < hlen) return cg_fail(CG_ERR_FORMAT, "%s: truncated .npy header", path);
    /* a NUL-terminated copy, so the dict can be searched with the string functions */
    char *hdr = malloc(hlen + 1);
    if (!hdr) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    memcpy(hdr, buf + off, hlen);
    hdr[hlen] = 0;
    cg_status st = parse_header(a, hdr, path);
    free(hdr);
    if (st != CG_OK) return st;
    size_t bytes = a->count * sizeof(float);
    if (max_bytes && bytes > max_bytes)
        return cg_fail(CG_ERR_LIMIT, "%s: %zu bytes of data, over the limit of %zu", path, bytes, max_bytes);
    *data_off = off + hlen;
    return CG_OK;
}

/* The size check comes before allocating: the header must not promise more than the file
 * has (a 100-byte file claiming a terabyte is refused, not allocated). */
static cg_status check_file_size(const npy_array *a, size_t fsize, size_t off, const char *path) {
    size_t bytes = a->count * sizeof(float);
    if (fsize == off + bytes) return CG_OK;
    return cg_fail(CG_ERR_FORMAT, "%s: file is %zu bytes, expected %zu for shape with %zu floats%s",
                   path, fsize, off + bytes, a->count, fsize < off + bytes ? " (truncated)" : "");
}

cg_status npy_parse(npy_array *a, const uint8_t *buf, size_t n, const char *name, size_t max_bytes) {
    memset(a, 0, sizeof *a);
    if (!buf) n = 0;
    size_t off;
    cg_status st = parse_prefix(a, buf, n, name, max_bytes, &off);
    if (st == CG_OK) st = check_file_size(a, n, off, name);
    if (st == CG_OK) {
        size_t bytes = a->count * sizeof(float);
        a->data = malloc(bytes ? bytes : 1);
        if (!a->data) st = cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
        else if (bytes) memcpy(a->data, buf + off, bytes);
    }
    if (st != CG_OK) npy_free(a);
    return st;
}

cg_status npy_load(npy_array *a, const char *path, size_t max_bytes) {
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "rb");
    if (!f) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    cg_status st = CG_OK;
    /* only the header is read first: the data is read straight into the array once the
     * header and the file's size agree */
    size_t cap = 12 + NPY_MAX_HEADER, off;
    uint8_t *pre = malloc(cap);
    if (!pre) { st = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path); goto done; }
    size_t got = fread(pre, 1, cap, f);
    if ((st = parse_prefix(a, pre, got, path, max_bytes, &off)) != CG_OK) goto done;
    if (fseek(f, 0, SEEK_END) != 0) { st = cg_fail(CG_ERR_IO, "%s: cannot seek", path); goto done; }
    long fsize = ftell(f);
    if (fsize < 0) { st = cg_fail(CG_ERR_IO, "%s: cannot seek", path); goto done; }
    if ((st = check_file_size(a, (size_t)fsize, off, path)) != CG_OK) goto done;
    size_t bytes = a->count * sizeof(float);
    fseek(f, (long)off, SEEK_SET);
    a->data = malloc(bytes ? bytes : 1);
    if (!a->data) { st = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path); goto done; }
    if (fread(a->data, 1, bytes, f) != bytes) { st = cg_fail(CG_ERR_IO, "%s: read error", path); goto done; }
done:
    free(pre);
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
