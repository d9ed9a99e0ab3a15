/* model.h: what a loaded cg_model holds. Parameters live in one allocation in the order of
 * gen_tensors; the packed copies of the convolution weights (GEMM panels, or Winograd-
 * transformed panels for the 3x3 stride-1 convolutions) in a second one. */
#ifndef CG_MODEL_MODEL_H
#define CG_MODEL_MODEL_H

#include "generator.h"

/* The convolutions the generator runs, by index into cg_model.conv. */
enum {
    C01_1, C02_1, C02_2, C03_1, C03_2,
    C_RES, /* conv04_1, conv04_2, ..., conv11_2: 16 convolutions */
    C_DE01_2 = C_RES + 16, C_DE02_2, C_DE03_1,
    NUM_CONVS
};
enum { D01_1, D02_1, NUM_DECONVS };
enum { N01_1, N02_1, N03_1, N_RES, N12_1 = N_RES + 16, N13_1, NUM_NORMS };

struct cg_model {
    float *params;                     /* GEN_NUM_PARAMS floats */
    void *map;                         /* non-NULL: params lie in this read-only mapping of
                                          the weights file, map_len bytes */
    size_t map_len;
    const float *tensor[GEN_NUM_TENSORS];
    float *packed;                     /* packed weights of every conv and deconv */
    packed_weights conv[NUM_CONVS];
    winograd_weights *wino[NUM_CONVS]; /* non-NULL: this 3x3 stride-1 conv runs Winograd */
    /* Non-NULL (at_use models only): this conv runs Winograd on weights transformed from
     * these, at each use, into the arena (generator.c), instead of wino's */
    const float *wino_at_use[NUM_CONVS];
    int at_use;                        /* loaded by model_load_at_use */
    winograd_weights *wino_store;      /* NUM_CONVS slots the above point into */
    const float *direct[NUM_CONVS];    /* non-NULL: few outputs, direct convolution on these */
    const float *conv_bias[NUM_CONVS];
    packed_deconv deconv[NUM_DECONVS];
    const float *deconv_bias[NUM_DECONVS];
    /* Non-NULL: this stride-2 conv (conv02_1, conv03_1) or deconv runs Winograd
     * (winograd_s2.c) on these instead of conv's or deconv's packed weights */
    winograd_s2_weights *wino_s2[NUM_CONVS], *deconv_wino[NUM_DECONVS];
    winograd_s2_weights s2_store[2 + NUM_DECONVS]; /* what the above point to */
    /* in01_1, in02_1, in03_1, in04_1, in04_2, ..., in11_2, in12_1, in13_1 */
    const float *norm_scale[NUM_NORMS], *norm_shift[NUM_NORMS];
    int threads;
    cg_pool *pool;
    void *arena;                       /* grown to fit the largest image seen */
    size_t arena_bytes;
    /* Non-NULL: a light generator (light.h), loaded from a file whose metadata says
     * "architecture": "cartoongan-light"; the fields above but threads, pool and arena are
     * then unused. */
    struct light_model *light;
};

/* A model of a copy of `params` (GEN_NUM_PARAMS floats in gen_tensors order), packed for
 * stylizing: how training stylizes its validation photos with the current G. */
cg_status model_from_params(struct cg_model **out, const float *params);

/* Loads like cg_model_load, for a caller that stylizes one image with the model: the
 * Winograd layers' weights (the bulk of a loaded model's memory: about four times the 3x3
 * weights' 37 MB) are not transformed and stored at load but transformed at each use
 * into one buffer in the arena, which is ready sooner and touches about 150 MB less
 * memory; every further image pays the transforms again (about 3.5 ms per 256-channel
 * layer). The command uses it when it has exactly one image to cartoonize. */
cg_status model_load_at_use(struct cg_model **out, const char *path);

/* Gives m the largest working memory (cg_stylize's arena) among models[0..n) (m may be
 * one of them), in exchange for its own; none of them may be stylizing. A caller that runs
 * several styles one after the other calls it before each, so that they share one arena
 * instead of each touching its own (about 200 MB at 512x512). */
void model_take_arena(struct cg_model *m, struct cg_model *const *models, int n);

/* Fills the packed weights and layer pointers from params; CG_ERR_NOMEM on failure. */
cg_status model_prepare(struct cg_model *m);

/* Checks a .safetensors file's header (every generator tensor present once, F32, with its
 * shape and a byte range inside the file): buf holds the file's first n bytes (at least the
 * 8-byte length and the JSON header), file_size is the whole file's size. On success
 * offsets[i] is where gen_tensors[i]'s data starts in the file. `path` names it in messages. */
cg_status safetensors_parse_header(const uint8_t *buf, size_t n, uint64_t file_size,
                                   const char *path, uint64_t offsets[GEN_NUM_TENSORS]);

#endif
