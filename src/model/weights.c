/* weights.c: loading and saving a generator's parameters.
 *
 * Two formats: the upstream release's directory of .npy files (one per tensor), and a
 * single .safetensors file (read and written by safetensors.c), which is what `make`
 * converts the release to and what PyTorch and most other tools read. Either way every
 * tensor of gen_tensors must be present with its exact shape and dtype (F32, or F16 that
 * is widened to float32 on load), and nothing else.
 *
 * A .safetensors file whose __metadata__ says "architecture": "cartoongan-light" holds the
 * light generator instead (light.h): its 126 tensors of light_tensors, checked the same
 * way, in TensorFlow's layouts, which light_model_create converts. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__linux__) && !defined(__EMSCRIPTEN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#include <fcntl.h>
#include <sys/mman.h>
#define MAP_WEIGHTS 1
#endif

#include "bigmem.h"
#include "light.h"
#include "model.h"
#include "npy.h"
#include "safetensors.h"
#include "status.h"

/* A weights file larger than this is refused before reading (the real ones are 44.5 MB). */
#define MAX_WEIGHTS_BYTES (256u << 20)
/* What a foreign file is told it is not, in messages. */
#define WHAT "a CartoonGAN generator"
#define WHAT_LIGHT "a light CartoonGAN generator"

/* ---- .npy directory ---- */

static cg_status check_finite(const float *p, const char *path) {
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        size_t n = tensor_info_count(&gen_tensors[i]);
        for (size_t k = 0; k < n; k++)
            if (!isfinite(p[k]))
                return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s holds a NaN or infinity", path, gen_tensors[i].name);
        p += n;
    }
    return CG_OK;
}

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
        st = tensor_check_shape(path, t, a.shape, a.ndim);
        if (st == CG_OK) memcpy(dst, a.data, tensor_info_count(t) * sizeof(float));
        npy_free(&a);
        if (st != CG_OK) return st;
        dst += tensor_info_count(t);
    }
    /* st_load checks this itself, tensor by tensor */
    return check_finite(params, dir);
}

/* ---- safetensors (safetensors.c) ---- */

cg_status safetensors_parse_header(const uint8_t *buf, size_t n, uint64_t file_size,
                                   const char *path, uint64_t offsets[GEN_NUM_TENSORS]) {
    return st_parse_header(buf, n, file_size, path, gen_tensors, GEN_NUM_TENSORS, 0, WHAT, offsets, NULL);
}

static cg_status save(const cg_model *m, const char *path, int f16) {
    if (!m || !path) return cg_fail(CG_ERR_ARG, "cg_model_save: null argument");
    if (m->light)
        return st_save(path, light_tensors, LIGHT_NUM_TENSORS, light_model_params(m->light), f16,
                       "\"architecture\":\"" LIGHT_ARCHITECTURE "\"");
    return st_save(path, gen_tensors, GEN_NUM_TENSORS, m->params, f16, "\"model\":\"cartoongan-generator\"");
}

cg_status cg_model_save(const cg_model *m, const char *path) { return save(m, path, 0); }
cg_status cg_model_save_fp16(const cg_model *m, const char *path) { return save(m, path, 1); }

/* ---- mapping a file's parameters instead of reading them ----
 *
 * A model loaded for one image (model_load_at_use) uses its parameters where the file's
 * pages are, when the file holds them as they lie in memory: every tensor F32, 4-byte
 * aligned, one after another in gen_tensors' order (as st_save writes them). That copies
 * nothing and faults about 700 times (the kernel maps 16 pages of the page cache per
 * fault) instead of 11 000 times on fresh pages for the 44.5 MB: 27 -> 8 ms here. The file
 * must not be cut short while the model lives (reading the lost pages would kill the
 * process), which for the one-photo command is about a second. Any other file is read. */

#ifdef MAP_WEIGHTS
/* CG_OK with m->params in the mapping; CG_ERR_FORMAT (no message) when the file is not
 * laid out for it; another status, with the message st_load would give, when it is bad. */
static cg_status map_params(cg_model *m, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return CG_ERR_FORMAT; /* st_load says why */
    struct stat sb;
    void *map = MAP_FAILED;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size >= 8 && (uint64_t)sb.st_size <= MAX_WEIGHTS_BYTES)
        map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return CG_ERR_FORMAT;
    const size_t len = (size_t)sb.st_size;
    uint64_t off[GEN_NUM_TENSORS];
    int f16[GEN_NUM_TENSORS];
    cg_status st = st_parse_header(map, len, len, path, gen_tensors, GEN_NUM_TENSORS, 0, WHAT, off, f16);
    int laid_out = st == CG_OK && off[0] % sizeof(float) == 0;
    for (int i = 0; laid_out && i < GEN_NUM_TENSORS; i++)
        laid_out = !f16[i] && (i == 0 || off[i] == off[i - 1] + tensor_info_count(&gen_tensors[i - 1]) * sizeof(float));
    if (laid_out) {
        madvise(map, len, MADV_WILLNEED); /* read ahead what the page cache lacks */
        m->params = (float *)((uint8_t *)map + off[0]);
        st = check_finite(m->params, path);
    }
    if (st == CG_OK && laid_out) {
        m->map = map, m->map_len = len;
        return CG_OK;
    }
    m->params = NULL;
    munmap(map, len);
    return st == CG_OK ? CG_ERR_FORMAT : st;
}
#endif

/* ---- the model handle ---- */

/* The architecture a .safetensors file's metadata names: 1 for the light generator, 0 for
 * none (the original generator's files have no such key), or -1 (with the message set)
 * for one this engine does not know. `st` is st_read_metadata's result. */
static int light_architecture(cg_status st, const char *arch, const char *name) {
    if (st != CG_OK) return 0;
    if (strcmp(arch, LIGHT_ARCHITECTURE) == 0) return 1;
    cg_fail(CG_ERR_WEIGHTS, "%s: unknown architecture '%s' (this engine runs the original generator and '%s')",
            name, arch, LIGHT_ARCHITECTURE);
    return -1;
}

/* A model of the light generator whose parameters `params` (LIGHT_NUM_PARAMS floats, taken
 * over) st_load or st_load_memory filled with status st. */
static cg_status finish_light(cg_model **out, float *params, cg_status st) {
    cg_model *m = NULL;
    if (st == CG_OK && !(m = calloc(1, sizeof *m))) st = cg_fail(CG_ERR_NOMEM, "out of memory for a light generator");
    if (st != CG_OK) {
        free(params);
        return st;
    }
    st = light_model_create(&m->light, params);
    if (st != CG_OK) {
        free(m);
        return st;
    }
    *out = m;
    return CG_OK;
}

static cg_status load_light(cg_model **out, const char *path) {
    float *params = malloc((size_t)LIGHT_NUM_PARAMS * sizeof(float));
    cg_status st = params ? st_load(path, light_tensors, LIGHT_NUM_TENSORS, params, 0, MAX_WEIGHTS_BYTES, WHAT_LIGHT)
                          : cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    return finish_light(out, params, st);
}

/* Checks and prepares freshly loaded parameters; frees m on failure. */
static cg_status finish_load(cg_model **out, cg_model *m, cg_status st) {
    if (st == CG_OK) st = model_prepare(m);
    if (st != CG_OK) {
        cg_model_free(m);
        return st;
    }
    *out = m;
    return CG_OK;
}

static cg_status load(cg_model **out, const char *path, int at_use) {
    if (!out || !path) return cg_fail(CG_ERR_ARG, "cg_model_load: null argument");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) {
        char arch[64];
        int light = light_architecture(st_read_metadata(path, "architecture", arch, sizeof arch), arch, path);
        if (light < 0) return CG_ERR_WEIGHTS;
        if (light) return load_light(out, path);
    }
    cg_model *m = calloc(1, sizeof *m);
    if (!m) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    m->at_use = at_use;
#ifdef MAP_WEIGHTS
    if (at_use && !S_ISDIR(sb.st_mode)) {
        cg_status st = map_params(m, path);
        if (st != CG_ERR_FORMAT) return finish_load(out, m, st);
    }
#endif
    m->params = big_alloc((size_t)GEN_NUM_PARAMS * sizeof(float));
    cg_status st;
    if (!m->params) st = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    else if (S_ISDIR(sb.st_mode)) st = load_npy_dir(m->params, path);
    else st = st_load(path, gen_tensors, GEN_NUM_TENSORS, m->params, 0, MAX_WEIGHTS_BYTES, WHAT);
    return finish_load(out, m, st);
}

cg_status cg_model_load(cg_model **out, const char *path) { return load(out, path, 0); }
cg_status model_load_at_use(cg_model **out, const char *path) { return load(out, path, 1); }

cg_status model_from_params(cg_model **out, const float *params) {
    if (!out || !params) return cg_fail(CG_ERR_ARG, "model_from_params: null argument");
    *out = NULL;
    cg_model *m = calloc(1, sizeof *m);
    if (!m) return cg_fail(CG_ERR_NOMEM, "out of memory for a generator");
    m->params = big_alloc((size_t)GEN_NUM_PARAMS * sizeof(float));
    if (m->params) memcpy(m->params, params, (size_t)GEN_NUM_PARAMS * sizeof(float));
    return finish_load(out, m, m->params ? CG_OK : cg_fail(CG_ERR_NOMEM, "out of memory for a generator"));
}

cg_status cg_model_load_memory(cg_model **out, const void *data, size_t n, const char *name) {
    if (!out || !data) return cg_fail(CG_ERR_ARG, "cg_model_load_memory: null argument");
    if (!name) name = "weights";
    *out = NULL;
    char arch[64];
    int light = light_architecture(st_read_metadata_memory(data, n, name, "architecture", arch, sizeof arch), arch, name);
    if (light < 0) return CG_ERR_WEIGHTS;
    if (light) {
        float *params = malloc((size_t)LIGHT_NUM_PARAMS * sizeof(float));
        cg_status st = params ? st_load_memory(data, n, name, light_tensors, LIGHT_NUM_TENSORS, params, 0,
                                               MAX_WEIGHTS_BYTES, WHAT_LIGHT)
                              : cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
        return finish_light(out, params, st);
    }
    cg_model *m = calloc(1, sizeof *m);
    if (!m) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    m->params = big_alloc((size_t)GEN_NUM_PARAMS * sizeof(float));
    cg_status st = m->params ? st_load_memory(data, n, name, gen_tensors, GEN_NUM_TENSORS, m->params, 0,
                                              MAX_WEIGHTS_BYTES, WHAT)
                             : cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    return finish_load(out, m, st);
}

void cg_model_free(cg_model *m) {
    if (!m) return;
    cg_pool_free(m->pool);
    light_model_free(m->light);
#ifdef MAP_WEIGHTS
    if (m->map) munmap(m->map, m->map_len);
    else
#endif
        big_free(m->params);
    big_free(m->packed);
    free(m->wino_store);
    big_free(m->arena);
    free(m);
}

const float *cg_model_tensor(const cg_model *m, const char *name) {
    if (m->light) return light_model_tensor(m->light, name);
    for (int i = 0; i < GEN_NUM_TENSORS; i++)
        if (strcmp(gen_tensors[i].name, name) == 0) return m->tensor[i];
    return NULL;
}
