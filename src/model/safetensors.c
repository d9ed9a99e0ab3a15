/* safetensors.c: the .safetensors reader and writer (safetensors.h). The header is read
 * by a small JSON parser for exactly its grammar (objects, arrays, strings, non-negative
 * integers), and everything the header claims is checked against the expected tensors and
 * the file's size before any data is read, so a damaged or foreign file is refused with one
 * line naming the file and the tensor, never a crash. Only the C library is used: this file
 * is also compiled to WebAssembly. */
#include "model/safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "io/image.h"
#include "status.h"

/* Real headers are a few KB (the full torchvision VGG19 with its classifier: under 4 KB); a
 * larger one is refused before it is read. */
#define MAX_HEADER_BYTES (1u << 20)

size_t tensor_info_count(const tensor_info *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

static void shape_str(char *buf, size_t n, const long *shape, int ndim) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%ld", i ? "," : "", shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

cg_status tensor_check_shape(const char *path, const tensor_info *t, const long *shape, int ndim) {
    int ok = ndim == t->ndim;
    for (int i = 0; ok && i < ndim; i++) ok = shape[i] == t->shape[i];
    if (ok) return CG_OK;
    char got[96], want[96];
    long ws[4];
    for (int i = 0; i < t->ndim; i++) ws[i] = t->shape[i];
    shape_str(got, sizeof got, shape, ndim);
    shape_str(want, sizeof want, ws, t->ndim);
    return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s has shape %s, expected %s", path, t->name, got, want);
}

/* ---- a JSON reader for exactly the header's grammar ---- */

typedef struct {
    const char *p, *end;
} json;

static void ws(json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

static int eat(json *j, char c) {
    ws(j);
    if (j->p < j->end && *j->p == c) { j->p++; return 1; }
    return 0;
}

static int hex4(json *j, unsigned *v) {
    if (j->end - j->p < 4) return 0;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *j->p++;
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d == 16) return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

/* Reads a string into buf (n > 0 bytes, NUL-terminated), decoding escapes (\uXXXX to
 * UTF-8). *lossy is set when the string did not fit or held a NUL, so that it can never be
 * taken for a shorter name. 0 on a syntax error. */
static int str(json *j, char *buf, size_t n, int *lossy) {
    *lossy = 0;
    if (!eat(j, '"')) return 0;
    size_t o = 0;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c[4] = {(unsigned char)*j->p++};
        int k = 1;
        if (c[0] == '\\') {
            if (j->p == j->end) return 0;
            char e = *j->p++;
            unsigned cp;
            switch (e) {
            case '"': case '\\': case '/': c[0] = (unsigned char)e; break;
            case 'b': c[0] = '\b'; break;
            case 'f': c[0] = '\f'; break;
            case 'n': c[0] = '\n'; break;
            case 'r': c[0] = '\r'; break;
            case 't': c[0] = '\t'; break;
            case 'u':
                if (!hex4(j, &cp) || (cp >= 0xdc00 && cp < 0xe000)) return 0;
                if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
                    unsigned lo;
                    if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') return 0;
                    j->p += 2;
                    if (!hex4(j, &lo) || lo < 0xdc00 || lo >= 0xe000) return 0;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                if (cp == 0) *lossy = 1;
                if (cp < 0x80) c[0] = (unsigned char)cp;
                else if (cp < 0x800) c[0] = (unsigned char)(0xc0 | cp >> 6), c[1] = (unsigned char)(0x80 | (cp & 0x3f)), k = 2;
                else if (cp < 0x10000) {
                    c[0] = (unsigned char)(0xe0 | cp >> 12), c[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                    c[2] = (unsigned char)(0x80 | (cp & 0x3f)), k = 3;
                } else {
                    c[0] = (unsigned char)(0xf0 | cp >> 18), c[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
                    c[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f)), c[3] = (unsigned char)(0x80 | (cp & 0x3f)), k = 4;
                }
                break;
            default: return 0;
            }
        }
        for (int i = 0; i < k; i++) {
            if (o + 1 < n) buf[o++] = (char)c[i];
            else *lossy = 1;
        }
    }
    if (j->p == j->end) return 0;
    j->p++;
    buf[o] = 0;
    return 1;
}

static int num(json *j, long long *v) {
    ws(j);
    const char *s = j->p;
    long long x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (x > (1LL << 50)) return 0;
        x = x * 10 + (*j->p++ - '0');
    }
    *v = x;
    return j->p > s;
}

static int num_array(json *j, long long *v, int max, int *n) {
    if (!eat(j, '[')) return 0;
    *n = 0;
    if (eat(j, ']')) return 1;
    do {
        if (*n == max || !num(j, &v[(*n)++])) return 0;
    } while (eat(j, ','));
    return eat(j, ']');
}

/* Skips any JSON value (__metadata__, and tensors not asked for). */
static int skip_value(json *j, int depth) {
    ws(j);
    if (j->p >= j->end || depth > 8) return 0;
    char buf[8];
    int lossy;
    if (*j->p == '"') return str(j, buf, sizeof buf, &lossy);
    if (*j->p == '{' || *j->p == '[') {
        char close = *j->p == '{' ? '}' : ']';
        int obj = *j->p == '{';
        j->p++;
        if (eat(j, close)) return 1;
        do {
            if (obj && (!str(j, buf, sizeof buf, &lossy) || !eat(j, ':'))) return 0;
            if (!skip_value(j, depth + 1)) return 0;
        } while (eat(j, ','));
        return eat(j, close);
    }
    while (j->p < j->end && strchr(",}] \n\t\r", *j->p) == NULL) j->p++;
    return 1;
}

/* ---- checking a header ---- */

typedef struct {
    int found;
    int f16; /* stored as IEEE half floats (a smaller download for the browser) */
    long long begin, end;
} st_entry;

/* " (not WHAT?)" after a missing tensor's message, or nothing. */
static const char *not_what(char *buf, size_t n, const char *what, int question) {
    if (!what) return "";
    snprintf(buf, n, " (not %s%s)", what, question ? "?" : "");
    return buf;
}

/* Parses one listed tensor's entry {"dtype":..,"shape":..,"data_offsets":..} into *e. */
static cg_status parse_entry(json *j, st_entry *e, const tensor_info *t, const char *path,
                             size_t data_bytes) {
    const char *name = t->name;
    char dtype[16] = "";
    long long shape[8], off[2];
    int ndim = -1, noff = 0, lossy;
    if (!eat(j, '{')) return cg_fail(CG_ERR_FORMAT, "%s: malformed entry for %s", path, name);
    do {
        char key[32];
        if (!str(j, key, sizeof key, &lossy) || !eat(j, ':'))
            return cg_fail(CG_ERR_FORMAT, "%s: malformed entry for %s", path, name);
        int ok;
        if (strcmp(key, "dtype") == 0) ok = str(j, dtype, sizeof dtype, &lossy);
        else if (strcmp(key, "shape") == 0) ok = num_array(j, shape, 8, &ndim);
        else if (strcmp(key, "data_offsets") == 0) ok = num_array(j, off, 2, &noff) && noff == 2;
        else ok = skip_value(j, 0);
        if (!ok) return cg_fail(CG_ERR_FORMAT, "%s: malformed '%s' of %s", path, key, name);
    } while (eat(j, ','));
    if (!eat(j, '}')) return cg_fail(CG_ERR_FORMAT, "%s: malformed entry for %s", path, name);
    int f16 = strcmp(dtype, "F16") == 0;
    if (!f16 && strcmp(dtype, "F32") != 0)
        return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s has dtype '%s', expected F32 or F16", path, name, dtype);
    if (ndim < 0 || noff != 2) return cg_fail(CG_ERR_FORMAT, "%s: tensor %s lacks shape or data_offsets", path, name);
    long ls[8];
    for (int i = 0; i < ndim; i++) ls[i] = (long)shape[i];
    cg_status st = tensor_check_shape(path, t, ls, ndim);
    if (st != CG_OK) return st;
    if (off[0] > off[1] || (unsigned long long)off[1] > data_bytes ||
        (size_t)(off[1] - off[0]) != tensor_info_count(t) * (f16 ? 2 : sizeof(float)))
        return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s has data range [%lld, %lld), outside the %zu bytes of data or of the wrong size%s",
                       path, name, off[0], off[1], data_bytes,
                       (unsigned long long)off[1] > data_bytes ? " (file truncated?)" : "");
    *e = (st_entry){1, f16, off[0], off[1]};
    return CG_OK;
}

static cg_status parse_entries(st_entry *ent, const char *hdr, size_t n, const char *path,
                               size_t data_bytes, const tensor_info *specs, int count,
                               int allow_extra, const char *what) {
    json j = {hdr, hdr + n};
    char nw[128];
    if (!eat(&j, '{')) return cg_fail(CG_ERR_FORMAT, "%s: safetensors header is not a JSON object", path);
    if (eat(&j, '}')) goto end;
    do {
        char name[256];
        int lossy;
        if (!str(&j, name, sizeof name, &lossy) || !eat(&j, ':'))
            return cg_fail(CG_ERR_FORMAT, "%s: malformed safetensors header", path);
        int idx = -1;
        for (int i = 0; !lossy && i < count && idx < 0; i++)
            if (strcmp(specs[i].name, name) == 0) idx = i;
        if (idx < 0) {
            if (!lossy && strcmp(name, "__metadata__") == 0) {
                if (!skip_value(&j, 0)) return cg_fail(CG_ERR_FORMAT, "%s: malformed __metadata__", path);
                continue;
            }
            if (!allow_extra)
                return cg_fail(CG_ERR_WEIGHTS, "%s: unexpected tensor '%s'%s", path, name, not_what(nw, sizeof nw, what, 0));
            if (!skip_value(&j, 0)) return cg_fail(CG_ERR_FORMAT, "%s: malformed entry for %s", path, name);
            continue;
        }
        if (ent[idx].found) return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s appears twice", path, name);
        cg_status st = parse_entry(&j, &ent[idx], &specs[idx], path, data_bytes);
        if (st != CG_OK) return st;
    } while (eat(&j, ','));
    if (!eat(&j, '}')) return cg_fail(CG_ERR_FORMAT, "%s: malformed safetensors header", path);
end:
    for (int i = 0; i < count; i++)
        if (!ent[i].found)
            return cg_fail(CG_ERR_WEIGHTS, "%s: missing tensor %s%s", path, specs[i].name, not_what(nw, sizeof nw, what, 1));
    return CG_OK;
}

static unsigned long long header_length(const uint8_t *b) {
    unsigned long long hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    return hlen;
}

cg_status st_parse_header(const uint8_t *buf, size_t n, uint64_t file_size, const char *path,
                          const tensor_info *specs, int count, int allow_extra, const char *what,
                          uint64_t *offsets, int *is_f16) {
    if (n < 8) return cg_fail(CG_ERR_FORMAT, "%s: too short to be a safetensors file", path);
    unsigned long long hlen = header_length(buf);
    if (hlen < 2 || hlen > MAX_HEADER_BYTES || 8 + hlen > file_size)
        return cg_fail(CG_ERR_FORMAT, "%s: not a safetensors file (header length %llu)", path, hlen);
    if (n - 8 < hlen) return cg_fail(CG_ERR_FORMAT, "%s: truncated safetensors header", path);
    st_entry *ent = calloc(count > 0 ? (size_t)count : 1, sizeof *ent);
    if (!ent) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    cg_status st = parse_entries(ent, (const char *)buf + 8, (size_t)hlen, path,
                                 (size_t)(file_size - 8 - hlen), specs, count, allow_extra, what);
    for (int i = 0; st == CG_OK && i < count; i++) {
        offsets[i] = 8 + hlen + (uint64_t)ent[i].begin;
        if (is_f16) is_f16[i] = ent[i].f16;
    }
    free(ent);
    return st;
}

/* ---- half floats ---- */

/* IEEE half -> float, exactly (subnormals included; inf and NaN stay so, and are refused
 * by check_finite). */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, f = h & 0x3ff, bits;
    if (e == 0x1f) bits = sign | 0x7f800000u | (f << 13);
    else if (e != 0) bits = sign | ((e + 112) << 23) | (f << 13);
    else if (f == 0) bits = sign;
    else { /* subnormal: normalise */
        e = 113;
        while (!(f & 0x400)) f <<= 1, e--;
        bits = sign | (e << 23) | ((f & 0x3ff) << 13);
    }
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* float -> IEEE half, rounded to nearest even (overflow gives inf, which loading refuses). */
static uint16_t float_to_half(float x) {
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    uint32_t sign = (b >> 16) & 0x8000, e = (b >> 23) & 0xff, f = b & 0x7fffff;
    if (e == 0xff) return (uint16_t)(sign | 0x7c00 | (f ? 0x200 : 0));
    int he = (int)e - 112;
    if (he >= 0x1f) return (uint16_t)(sign | 0x7c00);
    if (he <= 0) { /* subnormal or zero */
        if (he < -10) return (uint16_t)sign;
        f |= 0x800000;
        int shift = 14 - he;
        uint32_t h = f >> shift, rem = f & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)he << 10) | (f >> 13), rem = f & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* a carry into the exponent is right */
    return (uint16_t)(sign | h);
}

/* The tensor's cnt halves sit in the upper half of dst's 4 * cnt bytes; widening from the
 * front never overwrites a half not yet read. */
static void widen_f16(float *dst, size_t cnt) {
    const unsigned char *src = (const unsigned char *)dst + 2 * cnt;
    for (size_t i = 0; i < cnt; i++) {
        uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
        dst[i] = half_to_float(h);
    }
}

static cg_status check_finite(const float *p, size_t n, const char *path, const char *name) {
    for (size_t k = 0; k < n; k++)
        if (!isfinite(p[k])) return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s holds a NaN or infinity", path, name);
    return CG_OK;
}

/* ---- loading ---- */

static int bad_args(const tensor_info *specs, int count, const void *dst) {
    return count < 0 || (count > 0 && (!specs || !dst));
}

cg_status st_load(const char *path, const tensor_info *specs, int count, float *dst,
                  int allow_extra, size_t max_bytes, const char *what) {
    if (!path || bad_args(specs, count, dst)) return cg_fail(CG_ERR_ARG, "st_load: bad argument");
    FILE *f = fopen(path, "rb");
    if (!f) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    cg_status st = CG_OK;
    uint8_t *hdr = NULL;
    uint64_t *off = NULL;
    int *f16 = NULL;
    unsigned char len8[8];
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) { st = cg_fail(CG_ERR_IO, "%s: not a regular file", path); goto done; }
    if (max_bytes && (unsigned long long)sb.st_size > max_bytes) {
        st = cg_fail(CG_ERR_LIMIT, "%s: %lld bytes, over the weights size limit of %zu MB", path,
                     (long long)sb.st_size, max_bytes >> 20);
        goto done;
    }
    if (fread(len8, 1, 8, f) != 8) { st = cg_fail(CG_ERR_FORMAT, "%s: too short to be a safetensors file", path); goto done; }
    unsigned long long hlen = header_length(len8);
    /* the header is read only when its length is plausible; otherwise st_parse_header
     * refuses it from the length alone */
    size_t n = 8;
    if (hlen <= MAX_HEADER_BYTES && 8 + hlen <= (unsigned long long)sb.st_size) n += (size_t)hlen;
    size_t nc = count > 0 ? (size_t)count : 1;
    hdr = malloc(n);
    off = malloc(nc * sizeof *off);
    f16 = malloc(nc * sizeof *f16);
    if (!hdr || !off || !f16) { st = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path); goto done; }
    memcpy(hdr, len8, 8);
    if (fread(hdr + 8, 1, n - 8, f) != n - 8) { st = cg_fail(CG_ERR_IO, "%s: read error", path); goto done; }
    st = st_parse_header(hdr, n, (uint64_t)sb.st_size, path, specs, count, allow_extra, what, off, f16);
    for (int i = 0; st == CG_OK && i < count; i++) {
        size_t cnt = tensor_info_count(&specs[i]), size = f16[i] ? 2 : sizeof(float);
        void *to = f16[i] ? (unsigned char *)dst + 2 * cnt : (void *)dst;
        if (fseeko(f, (off_t)off[i], SEEK_SET) != 0 || fread(to, size, cnt, f) != cnt) {
            st = cg_fail(CG_ERR_IO, "%s: cannot read tensor %s", path, specs[i].name);
            break;
        }
        if (f16[i]) widen_f16(dst, cnt);
        st = check_finite(dst, cnt, path, specs[i].name);
        dst += cnt;
    }
done:
    free(hdr);
    free(off);
    free(f16);
    fclose(f);
    return st;
}

cg_status st_load_memory(const void *data, size_t size, const char *name, const tensor_info *specs,
                         int count, float *dst, int allow_extra, size_t max_bytes, const char *what) {
    if (!name) name = "safetensors";
    if (!data || bad_args(specs, count, dst)) return cg_fail(CG_ERR_ARG, "st_load_memory: bad argument");
    if (max_bytes && size > max_bytes)
        return cg_fail(CG_ERR_LIMIT, "%s: %zu bytes, over the weights size limit of %zu MB", name, size, max_bytes >> 20);
    size_t nc = count > 0 ? (size_t)count : 1;
    uint64_t *off = malloc(nc * sizeof *off);
    int *f16 = malloc(nc * sizeof *f16);
    cg_status st = off && f16 ? st_parse_header(data, size, size, name, specs, count, allow_extra, what, off, f16)
                              : cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    for (int i = 0; st == CG_OK && i < count; i++) {
        size_t cnt = tensor_info_count(&specs[i]);
        const uint8_t *src = (const uint8_t *)data + off[i];
        if (f16[i]) {
            memcpy((unsigned char *)dst + 2 * cnt, src, 2 * cnt);
            widen_f16(dst, cnt);
        } else {
            memcpy(dst, src, cnt * sizeof(float));
        }
        st = check_finite(dst, cnt, name, specs[i].name);
        dst += cnt;
    }
    free(off);
    free(f16);
    return st;
}

/* ---- saving ---- */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if ((size_t)k < b->cap - b->n) { b->n += (size_t)k; return; }
        size_t cap = b->cap * 2 + (size_t)k + 64;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p, b->cap = cap;
    }
}

/* A tensor name as a JSON string (quotes, backslashes and control characters escaped). */
static void sb_json_str(sbuf *b, const char *s) {
    sb_printf(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') sb_printf(b, "\\%c", c);
        else if (c < 0x20) sb_printf(b, "\\u%04x", c);
        else sb_printf(b, "%c", c);
    }
    sb_printf(b, "\"");
}

cg_status st_save(const char *path, const tensor_info *specs, int count, const float *data,
                  int f16, const char *metadata) {
    if (!path || bad_args(specs, count, data)) return cg_fail(CG_ERR_ARG, "st_save: bad argument");
    sbuf h = {malloc(4096), 0, 4096, 0};
    if (!h.p) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    sb_printf(&h, "{\"__metadata__\":{\"format\":\"pt\"%s%s}", metadata ? "," : "", metadata ? metadata : "");
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        const tensor_info *t = &specs[i];
        size_t bytes = tensor_info_count(t) * (f16 ? 2 : sizeof(float));
        sb_printf(&h, ",");
        sb_json_str(&h, t->name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", f16 ? "F16" : "F32");
        for (int d = 0; d < t->ndim; d++) sb_printf(&h, "%s%d", d ? "," : "", t->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
        off += bytes;
    }
    sb_printf(&h, "}");
    while (!h.oom && h.n % 8) sb_printf(&h, " "); /* the data starts 8-byte aligned */
    if (h.oom) { free(h.p); return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path); }
    if (h.n > MAX_HEADER_BYTES) { free(h.p); return cg_fail(CG_ERR_LIMIT, "%s: header of %zu bytes is too large", path, h.n); }
    size_t total = 8 + h.n + off;
    unsigned char *buf = malloc(total);
    if (!buf) { free(h.p); return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path); }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((unsigned long long)h.n >> (8 * i));
    memcpy(buf + 8, h.p, h.n);
    if (f16) {
        unsigned char *d = buf + 8 + h.n;
        for (size_t i = 0; i < off / 2; i++) {
            uint16_t v = float_to_half(data[i]);
            d[2 * i] = (unsigned char)v, d[2 * i + 1] = (unsigned char)(v >> 8);
        }
    } else if (off) {
        memcpy(buf + 8 + h.n, data, off);
    }
    free(h.p);
    cg_status st = cg_write_file_atomic(path, buf, total);
    free(buf);
    return st;
}

/* ---- metadata ---- */

static cg_status find_metadata(const char *hdr, size_t n, const char *path, const char *key,
                               char *value, size_t vn) {
    json j = {hdr, hdr + n};
    if (!eat(&j, '{')) return cg_fail(CG_ERR_FORMAT, "%s: safetensors header is not a JSON object", path);
    if (eat(&j, '}')) goto absent;
    do {
        char name[256];
        int lossy;
        if (!str(&j, name, sizeof name, &lossy) || !eat(&j, ':'))
            return cg_fail(CG_ERR_FORMAT, "%s: malformed safetensors header", path);
        if (lossy || strcmp(name, "__metadata__") != 0) {
            if (!skip_value(&j, 0)) return cg_fail(CG_ERR_FORMAT, "%s: malformed safetensors header", path);
            continue;
        }
        if (!eat(&j, '{')) return cg_fail(CG_ERR_FORMAT, "%s: malformed __metadata__", path);
        if (eat(&j, '}')) goto absent;
        do {
            if (!str(&j, name, sizeof name, &lossy) || !eat(&j, ':'))
                return cg_fail(CG_ERR_FORMAT, "%s: malformed __metadata__", path);
            ws(&j);
            if (!lossy && strcmp(name, key) == 0 && j.p < j.end && *j.p == '"') {
                if (!str(&j, value, vn, &lossy)) return cg_fail(CG_ERR_FORMAT, "%s: malformed __metadata__", path);
                if (lossy) return cg_fail(CG_ERR_LIMIT, "%s: metadata '%s' is longer than %zu bytes", path, key, vn - 1);
                return CG_OK;
            }
            if (!skip_value(&j, 0)) return cg_fail(CG_ERR_FORMAT, "%s: malformed __metadata__", path);
        } while (eat(&j, ','));
        goto absent; /* safetensors allows one __metadata__ */
    } while (eat(&j, ','));
absent:
    return cg_fail(CG_ERR_FORMAT, "%s: no metadata '%s'", path, key);
}

cg_status st_read_metadata(const char *path, const char *key, char *value, size_t n) {
    if (!path || !key || !value || n == 0) return cg_fail(CG_ERR_ARG, "st_read_metadata: bad argument");
    value[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    cg_status st;
    char *hdr = NULL;
    unsigned char len8[8];
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) { st = cg_fail(CG_ERR_IO, "%s: not a regular file", path); goto done; }
    if (fread(len8, 1, 8, f) != 8) { st = cg_fail(CG_ERR_FORMAT, "%s: too short to be a safetensors file", path); goto done; }
    unsigned long long hlen = header_length(len8);
    if (hlen < 2 || hlen > MAX_HEADER_BYTES || 8 + hlen > (unsigned long long)sb.st_size) {
        st = cg_fail(CG_ERR_FORMAT, "%s: not a safetensors file (header length %llu)", path, hlen);
        goto done;
    }
    hdr = malloc((size_t)hlen);
    if (!hdr) { st = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path); goto done; }
    if (fread(hdr, 1, (size_t)hlen, f) != (size_t)hlen) { st = cg_fail(CG_ERR_IO, "%s: read error", path); goto done; }
    st = find_metadata(hdr, (size_t)hlen, path, key, value, n);
done:
    free(hdr);
    fclose(f);
    return st;
}

cg_status st_read_metadata_memory(const void *data, size_t size, const char *name, const char *key,
                                  char *value, size_t n) {
    if (!data || !key || !value || n == 0) return cg_fail(CG_ERR_ARG, "st_read_metadata_memory: bad argument");
    if (!name) name = "safetensors";
    value[0] = 0;
    if (size < 8) return cg_fail(CG_ERR_FORMAT, "%s: too short to be a safetensors file", name);
    unsigned long long hlen = header_length(data);
    if (hlen < 2 || hlen > MAX_HEADER_BYTES || 8 + hlen > size)
        return cg_fail(CG_ERR_FORMAT, "%s: not a safetensors file (header length %llu)", name, hlen);
    return find_metadata((const char *)data + 8, (size_t)hlen, name, key, value, n);
}
