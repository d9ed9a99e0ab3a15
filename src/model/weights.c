/* weights.c: loading and saving a generator's parameters.
 *
 * Two formats: the upstream release's directory of .npy files (one per tensor), and a
 * single .safetensors file (8-byte little-endian header length, a JSON header mapping
 * tensor names to dtype, shape and byte range, then the raw data), which is what `make`
 * converts the release to and what PyTorch and most other tools read. Either way every
 * tensor of gen_tensors must be present with its exact shape and dtype (F32, or F16 that
 * is widened to float32 on load), and nothing else. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/image.h"
#include "model.h"
#include "npy.h"
#include "status.h"

/* A weights file larger than this is refused before reading (the real ones are 44.5 MB). */
#define MAX_WEIGHTS_BYTES (256u << 20)
#define MAX_HEADER_BYTES (1u << 20)

static size_t tensor_count(const gen_tensor_info *t) {
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

static cg_status check_shape(const char *path, const gen_tensor_info *t, const long *shape,
                             int ndim) {
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

/* ---- .npy directory ---- */

static cg_status load_npy_dir(float *params, const char *dir) {
    float *dst = params;
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        const gen_tensor_info *t = &gen_tensors[i];
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.npy", dir, t->name);
        if (access(path, F_OK) != 0)
            return cg_fail(CG_ERR_WEIGHTS, "%s: missing tensor %s (no file %s.npy)", dir, t->name, t->name);
        npy_array a;
        cg_status st = npy_load(&a, path, MAX_WEIGHTS_BYTES);
        if (st != CG_OK) return st == CG_ERR_NOMEM ? st : CG_ERR_WEIGHTS;
        st = check_shape(path, t, a.shape, a.ndim);
        if (st == CG_OK) memcpy(dst, a.data, tensor_count(t) * sizeof(float));
        npy_free(&a);
        if (st != CG_OK) return st;
        dst += tensor_count(t);
    }
    return CG_OK;
}

/* ---- safetensors: a JSON reader for exactly the header's grammar ---- */

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

/* Reads a string without escapes (tensor names and dtypes never have them) into buf. */
static int str(json *j, char *buf, size_t n) {
    if (!eat(j, '"')) return 0;
    size_t o = 0;
    while (j->p < j->end && *j->p != '"') {
        if (*j->p == '\\') {
            /* An escape: keep it verbatim-ish; such names never match ours anyway. */
            if (++j->p == j->end) return 0;
        }
        if (o + 1 < n) buf[o++] = *j->p;
        j->p++;
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

/* Skips any JSON value (used for __metadata__). */
static int skip_value(json *j, int depth) {
    ws(j);
    if (j->p >= j->end || depth > 8) return 0;
    char buf[8];
    if (*j->p == '"') return str(j, buf, sizeof buf);
    if (*j->p == '{' || *j->p == '[') {
        char close = *j->p == '{' ? '}' : ']';
        int obj = *j->p == '{';
        j->p++;
        if (eat(j, close)) return 1;
        do {
            if (obj && (!str(j, buf, sizeof buf) || !eat(j, ':'))) return 0;
            if (!skip_value(j, depth + 1)) return 0;
        } while (eat(j, ','));
        return eat(j, close);
    }
    while (j->p < j->end && strchr(",}] \n\t\r", *j->p) == NULL) j->p++;
    return 1;
}

typedef struct {
    int found;
    int f16; /* stored as IEEE half floats (a smaller download for the browser) */
    long long begin, end;
} st_entry;

static cg_status parse_st_header(st_entry *ent, const char *hdr, size_t n, const char *path,
                                 size_t data_bytes) {
    json j = {hdr, hdr + n};
    if (!eat(&j, '{')) return cg_fail(CG_ERR_FORMAT, "%s: safetensors header is not a JSON object", path);
    if (eat(&j, '}')) goto end;
    do {
        char name[128];
        if (!str(&j, name, sizeof name) || !eat(&j, ':'))
            return cg_fail(CG_ERR_FORMAT, "%s: malformed safetensors header", path);
        if (strcmp(name, "__metadata__") == 0) {
            if (!skip_value(&j, 0)) return cg_fail(CG_ERR_FORMAT, "%s: malformed __metadata__", path);
            continue;
        }
        int idx = -1;
        for (int i = 0; i < GEN_NUM_TENSORS; i++)
            if (strcmp(gen_tensors[i].name, name) == 0) idx = i;
        if (idx < 0) return cg_fail(CG_ERR_WEIGHTS, "%s: unexpected tensor '%s' (not a CartoonGAN generator)", path, name);
        if (ent[idx].found) return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s appears twice", path, name);
        char dtype[16] = "";
        long long shape[8], off[2];
        int ndim = -1, noff = 0;
        if (!eat(&j, '{')) return cg_fail(CG_ERR_FORMAT, "%s: malformed entry for %s", path, name);
        do {
            char key[32];
            if (!str(&j, key, sizeof key) || !eat(&j, ':'))
                return cg_fail(CG_ERR_FORMAT, "%s: malformed entry for %s", path, name);
            int ok;
            if (strcmp(key, "dtype") == 0) ok = str(&j, dtype, sizeof dtype);
            else if (strcmp(key, "shape") == 0) ok = num_array(&j, shape, 8, &ndim);
            else if (strcmp(key, "data_offsets") == 0) ok = num_array(&j, off, 2, &noff) && noff == 2;
            else ok = skip_value(&j, 0);
            if (!ok) return cg_fail(CG_ERR_FORMAT, "%s: malformed '%s' of %s", path, key, name);
        } while (eat(&j, ','));
        if (!eat(&j, '}')) return cg_fail(CG_ERR_FORMAT, "%s: malformed entry for %s", path, name);
        const gen_tensor_info *t = &gen_tensors[idx];
        int f16 = strcmp(dtype, "F16") == 0;
        if (!f16 && strcmp(dtype, "F32") != 0)
            return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s has dtype '%s', expected F32 or F16", path, name, dtype);
        if (ndim < 0 || noff != 2) return cg_fail(CG_ERR_FORMAT, "%s: tensor %s lacks shape or data_offsets", path, name);
        long ls[8];
        for (int i = 0; i < ndim; i++) ls[i] = (long)shape[i];
        cg_status st = check_shape(path, t, ls, ndim);
        if (st != CG_OK) return st;
        if (off[0] > off[1] || (size_t)off[1] > data_bytes ||
            (size_t)(off[1] - off[0]) != tensor_count(t) * (f16 ? 2 : sizeof(float)))
            return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s has data range [%lld, %lld), outside the %zu bytes of data or of the wrong size%s",
                           path, name, off[0], off[1], data_bytes,
                           (size_t)off[1] > data_bytes ? " (file truncated?)" : "");
        ent[idx] = (st_entry){1, f16, off[0], off[1]};
    } while (eat(&j, ','));
    if (!eat(&j, '}')) return cg_fail(CG_ERR_FORMAT, "%s: malformed safetensors header", path);
end:
    for (int i = 0; i < GEN_NUM_TENSORS; i++)
        if (!ent[i].found) return cg_fail(CG_ERR_WEIGHTS, "%s: missing tensor %s", path, gen_tensors[i].name);
    return CG_OK;
}

/* safetensors_parse_header, also telling which tensors are F16 (is_f16 may be NULL). */
static cg_status parse_header(const uint8_t *buf, size_t n, uint64_t file_size, const char *path,
                              uint64_t offsets[GEN_NUM_TENSORS], int *is_f16) {
    if (n < 8) return cg_fail(CG_ERR_FORMAT, "%s: too short to be a safetensors file", path);
    unsigned long long hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    if (hlen < 2 || hlen > MAX_HEADER_BYTES || 8 + hlen > file_size)
        return cg_fail(CG_ERR_FORMAT, "%s: not a safetensors file (header length %llu)", path, hlen);
    if (n - 8 < hlen) return cg_fail(CG_ERR_FORMAT, "%s: truncated safetensors header", path);
    st_entry ent[GEN_NUM_TENSORS] = {{0}};
    cg_status st = parse_st_header(ent, (const char *)buf + 8, (size_t)hlen, path,
                                   (size_t)(file_size - 8 - hlen));
    if (st != CG_OK) return st;
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        offsets[i] = 8 + hlen + (uint64_t)ent[i].begin;
        if (is_f16) is_f16[i] = ent[i].f16;
    }
    return CG_OK;
}

cg_status safetensors_parse_header(const uint8_t *buf, size_t n, uint64_t file_size,
                                   const char *path, uint64_t offsets[GEN_NUM_TENSORS]) {
    return parse_header(buf, n, file_size, path, offsets, NULL);
}

/* IEEE half -> float, exactly (subnormals included; inf and NaN stay so, and are refused
 * later by check_finite). */
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

static cg_status load_safetensors(float *params, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    cg_status st = CG_OK;
    uint8_t *hdr = NULL;
    unsigned char len8[8];
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) { st = cg_fail(CG_ERR_IO, "%s: not a regular file", path); goto done; }
    if ((unsigned long long)sb.st_size > MAX_WEIGHTS_BYTES) {
        st = cg_fail(CG_ERR_LIMIT, "%s: %lld bytes, over the weights size limit of %u MB", path, (long long)sb.st_size, MAX_WEIGHTS_BYTES >> 20);
        goto done;
    }
    if (fread(len8, 1, 8, f) != 8) { st = cg_fail(CG_ERR_FORMAT, "%s: too short to be a safetensors file", path); goto done; }
    unsigned long long hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    /* the header is read only when its length is plausible; otherwise the parser below
     * refuses it from the length alone */
    size_t n = 8;
    if (hlen <= MAX_HEADER_BYTES && 8 + hlen <= (unsigned long long)sb.st_size) n += (size_t)hlen;
    hdr = malloc(n);
    if (!hdr) { st = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path); goto done; }
    memcpy(hdr, len8, 8);
    if (fread(hdr + 8, 1, n - 8, f) != n - 8) { st = cg_fail(CG_ERR_IO, "%s: read error", path); goto done; }
    uint64_t off[GEN_NUM_TENSORS];
    int f16[GEN_NUM_TENSORS];
    if ((st = parse_header(hdr, n, (uint64_t)sb.st_size, path, off, f16)) != CG_OK) goto done;
    float *dst = params;
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        size_t cnt = tensor_count(&gen_tensors[i]), size = f16[i] ? 2 : sizeof(float);
        void *to = f16[i] ? (unsigned char *)dst + 2 * cnt : (void *)dst;
        if (fseek(f, (long)off[i], SEEK_SET) != 0 || fread(to, size, cnt, f) != cnt) {
            st = cg_fail(CG_ERR_IO, "%s: cannot read tensor %s", path, gen_tensors[i].name);
            goto done;
        }
        if (f16[i]) widen_f16(dst, cnt);
        dst += cnt;
    }
done:
    free(hdr);
    fclose(f);
    return st;
}

static cg_status save(const cg_model *m, const char *path, int f16) {
    if (!m || !path) return cg_fail(CG_ERR_ARG, "cg_model_save: null argument");
    size_t cap = 16384, o = 0;
    char *hdr = malloc(cap);
    if (!hdr) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    o += (size_t)snprintf(hdr + o, cap - o, "{\"__metadata__\":{\"format\":\"pt\",\"model\":\"cartoongan-generator\"}");
    size_t off = 0;
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        const gen_tensor_info *t = &gen_tensors[i];
        size_t bytes = tensor_count(t) * (f16 ? 2 : sizeof(float));
        o += (size_t)snprintf(hdr + o, cap - o, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, f16 ? "F16" : "F32");
        for (int d = 0; d < t->ndim; d++) o += (size_t)snprintf(hdr + o, cap - o, "%s%d", d ? "," : "", t->shape[d]);
        o += (size_t)snprintf(hdr + o, cap - o, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
        off += bytes;
    }
    o += (size_t)snprintf(hdr + o, cap - o, "}");
    if (o + 8 >= cap) { free(hdr); return cg_fail(CG_ERR_ARG, "%s: header overflow", path); }
    while (o % 8) hdr[o++] = ' '; /* the data starts 8-byte aligned */
    size_t total = 8 + o + off;
    unsigned char *buf = malloc(total);
    if (!buf) { free(hdr); return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path); }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((unsigned long long)o >> (8 * i));
    memcpy(buf + 8, hdr, o);
    if (f16) {
        unsigned char *d = buf + 8 + o;
        for (size_t i = 0; i < off / 2; i++) {
            uint16_t h = float_to_half(m->params[i]);
            d[2 * i] = (unsigned char)h, d[2 * i + 1] = (unsigned char)(h >> 8);
        }
    } else {
        memcpy(buf + 8 + o, m->params, off);
    }
    free(hdr);
    cg_status st = cg_write_file_atomic(path, buf, total);
    free(buf);
    return st;
}

cg_status cg_model_save(const cg_model *m, const char *path) { return save(m, path, 0); }
cg_status cg_model_save_fp16(const cg_model *m, const char *path) { return save(m, path, 1); }

/* ---- the model handle ---- */

static cg_status check_finite(const float *p, const char *path) {
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        size_t n = tensor_count(&gen_tensors[i]);
        for (size_t k = 0; k < n; k++)
            if (!isfinite(p[k]))
                return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s holds a NaN or infinity", path, gen_tensors[i].name);
        p += n;
    }
    return CG_OK;
}

/* Checks and prepares freshly loaded parameters; frees m on failure. */
static cg_status finish_load(cg_model **out, cg_model *m, cg_status st, const char *path) {
    if (st == CG_OK) st = check_finite(m->params, path);
    if (st == CG_OK) st = model_prepare(m);
    if (st != CG_OK) {
        cg_model_free(m);
        return st;
    }
    *out = m;
    return CG_OK;
}

cg_status cg_model_load(cg_model **out, const char *path) {
    if (!out || !path) return cg_fail(CG_ERR_ARG, "cg_model_load: null argument");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    cg_model *m = calloc(1, sizeof *m);
    if (!m) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    m->params = malloc((size_t)GEN_NUM_PARAMS * sizeof(float));
    cg_status st;
    if (!m->params) st = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    else if (S_ISDIR(sb.st_mode)) st = load_npy_dir(m->params, path);
    else st = load_safetensors(m->params, path);
    return finish_load(out, m, st, path);
}

/* The same safetensors checks as the file loader, on a file's bytes already in memory (the
 * browser fetches them). */
static cg_status load_safetensors_memory(float *params, const uint8_t *data, size_t n,
                                         const char *name) {
    if (n > MAX_WEIGHTS_BYTES)
        return cg_fail(CG_ERR_LIMIT, "%s: %zu bytes, over the weights size limit of %u MB", name, n, MAX_WEIGHTS_BYTES >> 20);
    uint64_t off[GEN_NUM_TENSORS];
    int f16[GEN_NUM_TENSORS];
    cg_status st = parse_header(data, n, n, name, off, f16);
    if (st != CG_OK) return st;
    float *dst = params;
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        size_t cnt = tensor_count(&gen_tensors[i]);
        if (f16[i]) {
            memcpy((unsigned char *)dst + 2 * cnt, data + off[i], 2 * cnt);
            widen_f16(dst, cnt);
        } else {
            memcpy(dst, data + off[i], cnt * sizeof(float));
        }
        dst += cnt;
    }
    return CG_OK;
}

cg_status cg_model_load_memory(cg_model **out, const void *data, size_t n, const char *name) {
    if (!out || !data) return cg_fail(CG_ERR_ARG, "cg_model_load_memory: null argument");
    if (!name) name = "weights";
    *out = NULL;
    cg_model *m = calloc(1, sizeof *m);
    if (!m) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    m->params = malloc((size_t)GEN_NUM_PARAMS * sizeof(float));
    cg_status st = m->params ? load_safetensors_memory(m->params, data, n, name)
                             : cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    return finish_load(out, m, st, name);
}

void cg_model_free(cg_model *m) {
    if (!m) return;
    cg_pool_free(m->pool);
    free(m->params);
    free(m->packed);
    free(m->wino_store);
    free(m->arena);
    free(m);
}

const float *cg_model_tensor(const cg_model *m, const char *name) {
    for (int i = 0; i < GEN_NUM_TENSORS; i++)
        if (strcmp(gen_tensors[i].name, name) == 0) return m->tensor[i];
    return NULL;
}
