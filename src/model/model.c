/* model.c: the rest of the public API: preparing a loaded model for the fast kernels,
 * threads, and cg_stylize, which wraps the generator with the pixel conversions
 * (RGB8 <-> BGR in [-1, 1]) and the pad-to-a-multiple-of-4-and-crop rule; or, for the
 * light generator (light.h), with its own: RGB in [-1, 1] (x / 127.5 - 1), the image as it
 * is (its stride-2 stages pad as TensorFlow's "SAME"), the output cropped from
 * 4 ceil(side / 4) and converted as the seed project does, ((y + 1) * 127.5) truncated. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bigmem.h"
#include "light.h"
#include "model.h"
#include "nn/gemm.h"
#include "status.h"

const char *const cg_style_names[CG_NUM_STYLES] = {"shinkai", "hayao", "hosoda", "paprika"};

const char *cg_kernel_name(void) { return gemm_arch_get()->name; }

static int tensor_index(const char *name) {
    for (int i = 0; i < GEN_NUM_TENSORS; i++)
        if (strcmp(gen_tensors[i].name, name) == 0) return i;
    return -1;
}

static const float *param(const cg_model *m, const char *layer, const char *what) {
    char name[64];
    snprintf(name, sizeof name, "%s%s", layer, what);
    return m->tensor[tensor_index(name)];
}

/* Conv layer names in the order of the C_* indices in model.h. */
static void conv_name(char *buf, size_t n, int c) {
    static const char *const head[] = {"conv01_1", "conv02_1", "conv02_2", "conv03_1", "conv03_2"};
    static const char *const tail[] = {"deconv01_2", "deconv02_2", "deconv03_1"};
    if (c < C_RES) snprintf(buf, n, "%s", head[c]);
    else if (c < C_DE01_2) snprintf(buf, n, "conv%02d_%d", 4 + (c - C_RES) / 2, 1 + (c - C_RES) % 2);
    else snprintf(buf, n, "%s", tail[c - C_DE01_2]);
}

/* Norm layer names in the order of the N_* indices. */
static void norm_name(char *buf, size_t n, int i) {
    if (i < N_RES) snprintf(buf, n, "in%02d_1", i + 1);
    else if (i < N12_1) snprintf(buf, n, "in%02d_%d", 4 + (i - N_RES) / 2, 1 + (i - N_RES) % 2);
    else snprintf(buf, n, "in%02d_1", 12 + (i - N12_1));
}

/* The 3x3 stride-1 convolutions, which run Winograd F(4x4, 3x3) when the micro-kernel
 * allows it (and CARTOONGAN_WINOGRAD is not 0, for comparisons). */
static int is_winograd_layer(int c) {
    return c == C02_2 || c == C03_2 || (c >= C_RES && c < C_DE01_2) || c == C_DE01_2 || c == C_DE02_2;
}

static int use_winograd(int c) {
    const char *env = getenv("CARTOONGAN_WINOGRAD");
    return is_winograd_layer(c) && winograd_supported(gemm_arch_get()) && !(env && !strcmp(env, "0"));
}

/* The stride-2 convolutions and the deconvolutions, which run Winograd (winograd_s2.c)
 * on the kernels that allow it: all but AMX, which keeps its packed GEMM (a Winograd
 * variant on AMX tiles is neither written nor measured). */
static int use_winograd_s2(void) {
    const char *env = getenv("CARTOONGAN_WINOGRAD");
    return winograd_s2_supported(gemm_arch_get()) && !(env && !strcmp(env, "0"));
}

static int is_strided(int c) { return c == C02_1 || c == C03_1; }

/* The layers an at_use model transforms at use (generator.c): the 256 x 256 Winograd
 * ones, conv03_2 and the residual blocks', nearly all of the transformed weights. */
static int at_use(const cg_model *m, int c) {
    return m->at_use && use_winograd(c) && (c == C03_2 || (c >= C_RES && c < C_DE01_2));
}

/* Packing the weights (the Winograd transform in double, the AMX split) is most of a
 * load's time, so the layers are packed in parallel, each into its own part of m->packed. */
typedef struct {
    cg_model *m;
    float *dst[NUM_CONVS + NUM_DECONVS];
    int failed[NUM_CONVS + NUM_DECONVS];
} pack_job;

static const char *const deconv_names[NUM_DECONVS] = {"deconv01_1", "deconv02_1"};
static const int deconv_cin[NUM_DECONVS] = {256, 128}, deconv_cout[NUM_DECONVS] = {128, 64};

static void pack_task(void *ctx, int i, int n) {
    (void)n;
    pack_job *j = ctx;
    cg_model *m = j->m;
    char name[32];
    if (i >= NUM_CONVS) {
        int d = i - NUM_CONVS;
        const float *w = param(m, deconv_names[d], ".weight");
        if (use_winograd_s2()) {
            m->deconv_wino[d] = &m->s2_store[2 + d];
            j->failed[i] = pack_winograd_s2_weights(m->deconv_wino[d], j->dst[i], w, deconv_cout[d], deconv_cin[d], 1,
                                                    gemm_arch_get()) != 0;
        } else {
            j->failed[i] = pack_deconv_weights(&m->deconv[d], j->dst[i], w, deconv_cin[d], deconv_cout[d]) != 0;
        }
        m->deconv_bias[d] = param(m, deconv_names[d], ".bias");
        return;
    }
    const int c = i;
    conv_name(name, sizeof name, c);
    const gen_tensor_info *t = &gen_tensors[tensor_index(strcat(name, ".weight"))];
    int rows = t->shape[0], k = t->shape[1] * t->shape[2] * t->shape[3];
    conv_name(name, sizeof name, c);
    const float *w = param(m, name, ".weight");
    if (rows <= CONV_DIRECT_MAX_COUT) {
        m->direct[c] = w;
    } else if (at_use(m, c)) {
        m->wino_at_use[c] = w;
    } else if (use_winograd(c)) {
        m->wino[c] = &m->wino_store[c];
        j->failed[i] = pack_winograd_weights(m->wino[c], j->dst[i], w, rows, t->shape[1]) != 0;
    } else if (is_strided(c) && use_winograd_s2()) {
        m->wino_s2[c] = &m->s2_store[c == C03_1];
        j->failed[i] = pack_winograd_s2_weights(m->wino_s2[c], j->dst[i], w, rows, t->shape[1], 0, gemm_arch_get()) != 0;
    } else {
        pack_weights(&m->conv[c], j->dst[i], w, rows, k);
    }
    m->conv_bias[c] = param(m, name, ".bias");
}

cg_status model_prepare(cg_model *m) {
    const float *p = m->params;
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        m->tensor[i] = p;
        size_t n = 1;
        for (int d = 0; d < gen_tensors[i].ndim; d++) n *= (size_t)gen_tensors[i].shape[d];
        p += n;
    }
    size_t offset[NUM_CONVS + NUM_DECONVS], total = 0;
    char name[32];
    for (int c = 0; c < NUM_CONVS; c++) {
        conv_name(name, sizeof name, c);
        const gen_tensor_info *t = &gen_tensors[tensor_index(strcat(name, ".weight"))];
        int rows = t->shape[0], k = t->shape[1] * t->shape[2] * t->shape[3];
        offset[c] = total;
        if (rows > CONV_DIRECT_MAX_COUT && !at_use(m, c))
            total += use_winograd(c)                     ? winograd_weights_floats(rows, t->shape[1])
                     : is_strided(c) && use_winograd_s2() ? winograd_s2_weights_floats(rows, t->shape[1])
                                                          : packed_weights_floats(rows, k);
    }
    for (int d = 0; d < NUM_DECONVS; d++) {
        offset[NUM_CONVS + d] = total;
        total += use_winograd_s2() ? winograd_s2_weights_floats(deconv_cout[d], deconv_cin[d])
                                   : packed_deconv_floats(deconv_cin[d], deconv_cout[d]);
    }
    m->packed = big_alloc(total * sizeof(float));
    m->wino_store = calloc(NUM_CONVS, sizeof *m->wino_store);
    if (!m->packed || !m->wino_store) return cg_fail(CG_ERR_NOMEM, "out of memory packing weights");
    pack_job j = {.m = m};
    for (int i = 0; i < NUM_CONVS + NUM_DECONVS; i++) j.dst[i] = m->packed + offset[i];
    cg_pool *pool = cg_pool_create(0); /* NULL (no threads to spare): runs the tasks here */
    cg_pool_run(pool, pack_task, &j, NUM_CONVS + NUM_DECONVS);
    cg_pool_free(pool);
    for (int i = 0; i < NUM_CONVS + NUM_DECONVS; i++)
        if (j.failed[i]) return cg_fail(CG_ERR_NOMEM, "out of memory packing weights");
    int any_at_use = 0;
    for (int c = 0; c < NUM_CONVS; c++) any_at_use |= m->wino_at_use[c] != NULL;
    m->at_use = any_at_use; /* none without Winograd: no room for them in the arena */
    for (int n = 0; n < NUM_NORMS; n++) {
        norm_name(name, sizeof name, n);
        m->norm_scale[n] = param(m, name, ".scale");
        m->norm_shift[n] = param(m, name, ".shift");
    }
    return CG_OK;
}

cg_status cg_model_set_threads(cg_model *m, int threads) {
    if (!m || threads < 0) return cg_fail(CG_ERR_ARG, "cg_model_set_threads: invalid argument");
    if (threads == 0) threads = cg_cpu_count();
    if (m->pool && cg_pool_threads(m->pool) == threads) return CG_OK;
    cg_pool_free(m->pool);
    m->pool = NULL;
    m->threads = threads;
    return CG_OK;
}

static int net_threads(const cg_model *m) { return m->threads ? m->threads : cg_cpu_count(); }

void model_take_arena(cg_model *m, cg_model *const *models, int n) {
    cg_model *from = m;
    for (int i = 0; i < n; i++)
        if (models[i] && models[i]->arena_bytes > from->arena_bytes) from = models[i];
    void *arena = m->arena;
    size_t bytes = m->arena_bytes;
    m->arena = from->arena, m->arena_bytes = from->arena_bytes;
    from->arena = arena, from->arena_bytes = bytes;
}

/* The light generator's working memory: its arena, its float input and output. */
static size_t light_memory(const cg_model *m, int width, int height) {
    size_t arena = light_arena_bytes(height, width, net_threads(m));
    if (!arena) return 0;
    size_t io = (3 * (size_t)width * height + 3 * (size_t)light_out_side(height) * light_out_side(width)) * sizeof(float);
    return arena + io;
}

size_t cg_stylize_memory(const cg_model *m, int width, int height) {
    if (m && m->light) return light_memory(m, width, height);
    if (width < 1 || height < 1 || (size_t)width * height > CG_MAX_NETWORK_PIXELS) return 0;
    int hp = gen_padded_side(height), wp = gen_padded_side(width);
    size_t io = (3 * (size_t)hp * wp + 3 * (size_t)gen_out_side(hp) * gen_out_side(wp)) * sizeof(float);
    return generator_arena_bytes_for(m, hp, wp, m ? net_threads(m) : cg_cpu_count()) + io;
}

/* cg_stylize's light half, once the arena fits: the image as RGB planes in [-1, 1], the
 * network, and its output's top-left width x height, ((y + 1) * 127.5) truncated to 8 bits
 * (in float32, as the seed project's numpy code computes it). */
static cg_status stylize_light(cg_model *m, uint8_t *out, const uint8_t *in, int width, int height,
                               const cg_stylize_opts *opts) {
    const size_t plane = (size_t)width * height;
    const int oh = light_out_side(height), ow = light_out_side(width);
    float *x = m->arena, *y = x + 3 * plane, *work = y + 3 * (size_t)oh * ow;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) x[c * plane + i] = in[i * 3 + c] / 127.5f - 1.f;
    cg_status st = light_forward(y, x, height, width, m->light, work, m->pool, opts ? opts->progress : NULL,
                                 opts ? opts->user : NULL);
    if (st != CG_OK) return st == CG_ERR_CANCELLED ? cg_fail(st, "cancelled") : st;
    for (int yy = 0; yy < height; yy++)
        for (int xx = 0; xx < width; xx++) {
            uint8_t *px = out + ((size_t)yy * width + xx) * 3;
            for (int c = 0; c < 3; c++) {
                float v = (y[((size_t)c * oh + yy) * ow + xx] + 1.f) * 127.5f;
                px[c] = v >= 255.f ? 255 : v >= 0.f ? (uint8_t)v : 0; /* NaN gives 0 */
            }
        }
    return CG_OK;
}

cg_status cg_stylize(cg_model *m, uint8_t *out, const uint8_t *in, int width, int height,
                     const cg_stylize_opts *opts) {
    if (!m || !out || !in) return cg_fail(CG_ERR_ARG, "cg_stylize: null argument");
    if (width < 1 || height < 1) return cg_fail(CG_ERR_ARG, "cg_stylize: empty image %dx%d", width, height);
    if ((size_t)width * height > CG_MAX_NETWORK_PIXELS)
        return cg_fail(CG_ERR_LIMIT, "image is %dx%d (%.1f megapixels), over the network's limit of %d megapixels",
                       width, height, (double)width * height / 1e6, CG_MAX_NETWORK_PIXELS / 1000000);
    if (m->light && (size_t)width * height > LIGHT_MAX_PIXELS)
        return cg_fail(CG_ERR_LIMIT, "image is %dx%d (%.1f megapixels), over the light model's limit of %d megapixels",
                       width, height, (double)width * height / 1e6, LIGHT_MAX_PIXELS / 1000000);
    if (!m->pool) {
        m->pool = cg_pool_create(net_threads(m));
        if (!m->pool) return cg_fail(CG_ERR_NOMEM, "cannot start worker threads");
    }
    int hp = gen_padded_side(height), wp = gen_padded_side(width);
    size_t need = cg_stylize_memory(m, width, height);
    if (need > m->arena_bytes) {
        /* Refuse what cannot fit rather than let the system's overcommit hand out memory
         * that the out-of-memory killer then takes back. */
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (pages > 0 && page > 0 && (double)need > (double)pages * page)
            return cg_fail(CG_ERR_NOMEM, "a %dx%d image needs %.1f GB of working memory, more than this machine's %.1f GB",
                           width, height, need / 1e9, (double)pages * page / 1e9);
        big_free(m->arena);
        m->arena = big_alloc(need);
        m->arena_bytes = m->arena ? need : 0;
        if (!m->arena)
            return cg_fail(CG_ERR_NOMEM, "out of memory: a %dx%d image needs %.1f GB of working memory",
                           width, height, need / 1e9);
    }
    if (m->light) return stylize_light(m, out, in, width, height, opts);
    float *x = m->arena, *y = x + 3 * (size_t)hp * wp, *work = y + 3 * (size_t)hp * wp;
    /* RGB8 -> BGR planes in [-1, 1]; rows and columns past the image reflect it. */
    const size_t plane = (size_t)hp * wp;
    for (int yy = 0; yy < hp; yy++) {
        const uint8_t *row = in + (size_t)reflect_index(yy, height) * width * 3;
        for (int xx = 0; xx < wp; xx++) {
            const uint8_t *px = row + (size_t)reflect_index(xx, width) * 3;
            size_t i = (size_t)yy * wp + xx;
            for (int c = 0; c < 3; c++) x[(2 - c) * plane + i] = px[c] / 127.5f - 1.f;
        }
    }
    cg_status st = generator_forward(y, x, hp, wp, m, work, m->pool,
                                     opts ? opts->progress : NULL, opts ? opts->user : NULL);
    if (st != CG_OK) return st == CG_ERR_CANCELLED ? cg_fail(st, "cancelled") : st;
    /* BGR in [-1, 1] -> RGB8, cropped back to the input's size. */
    for (int yy = 0; yy < height; yy++)
        for (int xx = 0; xx < width; xx++) {
            size_t i = (size_t)yy * wp + xx;
            uint8_t *px = out + ((size_t)yy * width + xx) * 3;
            for (int c = 0; c < 3; c++) {
                float v = roundf(255.f * (y[(2 - c) * plane + i] * 0.5f + 0.5f));
                px[c] = (uint8_t)(v < 0.f ? 0.f : v > 255.f ? 255.f : v);
            }
        }
    return CG_OK;
}
