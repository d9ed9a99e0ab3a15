/* weights.c: loading and saving a generator's parameters.
 *
 * Two formats: the upstream release's directory of .npy files (one per tensor), and a
 * single .safetensors file (8-byte little-endian header length, a JSON header mapping
 * tensor names to dtype, shape and byte range, then the raw data), which is what `make`
 * converts the release to and what PyTorch and most other tools read. Either way every
 * tensor of gen_tensors must be present with its exact shape and dtype, and nothing else. */
#include <errno.h>
#include <math.h>
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
        if (strcmp(dtype, "F32") != 0)
            return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s has dtype '%s', expected F32", path, name, dtype);
        if (ndim < 0 || noff != 2) return cg_fail(CG_ERR_FORMAT, "%s: tensor %s lacks shape or data_offsets", path, name);
        long ls[8];
        for (int i = 0; i < ndim; i++) ls[i] = (long)shape[i];
        cg_status st = check_shape(path, t, ls, ndim);
        if (st != CG_OK) return st;
        if (off[0] > off[1] || (size_t)off[1] > data_bytes ||
            (size_t)(off[1] - off[0]) != tensor_count(t) * sizeof(float))
            return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s has data range [%lld, %lld), outside the %zu bytes of data or of the wrong size%s",
                           path, name, off[0], off[1], data_bytes,
                           (size_t)off[1] > data_bytes ? " (file truncated?)" : "");
        ent[idx] = (st_entry){1, off[0], off[1]};
    } while (eat(&j, ','));
    if (!eat(&j, '}')) return cg_fail(CG_ERR_FORMAT, "%s: malformed safetensors header", path);
end:
    for (int i = 0; i < GEN_NUM_TENSORS; i++)
        if (!ent[i].found) return cg_fail(CG_ERR_WEIGHTS, "%s: missing tensor %s", path, gen_tensors[i].name);
    return CG_OK;
}

static cg_status load_safetensors(float *params, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    cg_status st = CG_OK;
    char *hdr = NULL;
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
    if (hlen < 2 || hlen > MAX_HEADER_BYTES || 8 + hlen > (unsigned long long)sb.st_size) {
        st = cg_fail(CG_ERR_FORMAT, "%s: not a safetensors file (header length %llu)", path, hlen);
        goto done;
    }
    hdr = malloc(hlen);
    if (!hdr) { st = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path); goto done; }
    if (fread(hdr, 1, hlen, f) != hlen) { st = cg_fail(CG_ERR_IO, "%s: read error", path); goto done; }
    size_t data_bytes = (size_t)sb.st_size - 8 - hlen;
    st_entry ent[GEN_NUM_TENSORS] = {{0}};
    if ((st = parse_st_header(ent, hdr, hlen, path, data_bytes)) != CG_OK) goto done;
    float *dst = params;
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        size_t n = tensor_count(&gen_tensors[i]);
        if (fseek(f, (long)(8 + hlen + ent[i].begin), SEEK_SET) != 0 || fread(dst, sizeof(float), n, f) != n) {
            st = cg_fail(CG_ERR_IO, "%s: cannot read tensor %s", path, gen_tensors[i].name);
            goto done;
        }
        dst += n;
    }
done:
    free(hdr);
    fclose(f);
    return st;
}

cg_status cg_model_save(const cg_model *m, const char *path) {
    if (!m || !path) return cg_fail(CG_ERR_ARG, "cg_model_save: null argument");
    size_t cap = 16384, o = 0;
    char *hdr = malloc(cap);
    if (!hdr) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    o += (size_t)snprintf(hdr + o, cap - o, "{\"__metadata__\":{\"format\":\"pt\",\"model\":\"cartoongan-generator\"}");
    size_t off = 0;
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        const gen_tensor_info *t = &gen_tensors[i];
        size_t bytes = tensor_count(t) * sizeof(float);
        o += (size_t)snprintf(hdr + o, cap - o, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", t->name);
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
    memcpy(buf + 8 + o, m->params, off);
    free(hdr);
    cg_status st = cg_write_file_atomic(path, buf, total);
    free(buf);
    return st;
}

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
    if (st == CG_OK) st = check_finite(m->params, path);
    if (st == CG_OK) st = model_prepare(m);
    if (st != CG_OK) {
        cg_model_free(m);
        return st;
    }
    *out = m;
    return CG_OK;
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
