/* light.h: the seed project's light generator (ShuffleNet-V2 units, issue 13) as
 * straight-line code over the ops in src/nn, and the model handle it runs from.
 *
 * The network (issue 13 and tools/light_reference.py give its exact definitions): RGB
 * in [-1, 1]; flat_conv1 (zero pad 2, 5x5 3->96, IN, ReLU); two DownShuffleUnitV2 (96->192,
 * 192->384); eight BasicShuffleUnitV2 on 384 channels; two up stages (bilinear x2, 1x1
 * conv, BasicShuffleUnitV2) to 192 and 96; final_conv (zero pad 2, 5x5 96->3, tanh).
 * "IN" is keras-contrib's InstanceNormalization(axis=None): one mean and variance over
 * all channels and pixels, eps 1e-3 added to the standard deviation, scalar gamma, beta. */
#ifndef CG_MODEL_LIGHT_H
#define CG_MODEL_LIGHT_H

#include <stddef.h>

#include "cartoongan.h"
#include "model/light_params.h"
#include "nn/pool.h"

/* The largest image the light model takes (pixels). It runs the whole image at once (its
 * norms are over the whole tensor, so bands would have to compute everything twice), in
 * about 600 bytes of working memory per pixel: 0.16 GB at 512x512, 1.25 GB at 1920x1080,
 * 5 GB at 3840x2160, 9.6 GB at the limit (see light_arena_bytes). */
#define LIGHT_MAX_PIXELS (16 * 1000 * 1000)

typedef struct light_model light_model;

/* A model of `params` (LIGHT_NUM_PARAMS floats in light_tensors order, TensorFlow layouts,
 * as st_load fills them), which it takes over (freed by light_model_free, also on
 * failure): the convolutions' weights converted to the engine's layouts and packed for
 * this CPU's fp32 micro-kernel. CG_ERR_NOMEM on failure. */
cg_status light_model_create(light_model **out, float *params);
void light_model_free(light_model *lm);
/* The parameters it was made from (light_tensors order, TensorFlow layouts), and one of
 * them by name (NULL if there is none). */
const float *light_model_params(const light_model *lm);
const float *light_model_tensor(const light_model *lm, const char *name);

/* The network's output side for an input side: 4 * ceil(side / 4) (two stride-2 "SAME"
 * stages give ceil(ceil(side / 2) / 2), and two x2 upsamplings). */
int light_out_side(int side);

/* Bytes of arena light_forward needs for an h x w input on `threads` threads; 0 when
 * h * w is over LIGHT_MAX_PIXELS (or a side is below 1). */
size_t light_arena_bytes(int h, int w, int threads);

/* Multiply-adds light_forward performs for an h x w input (the up stages' 1x1
 * convolutions run before their upsampling, at a quarter of the network's own count). */
double light_macs(int h, int w);

/* Runs the network on an RGB [-1, 1] input [3][h][w] (any size, no padding needed) into
 * out [3][light_out_side(h)][light_out_side(w)] (the tanh output, not cropped). `arena`
 * holds light_arena_bytes(h, w, threads of pool) bytes. progress (may be NULL) is called
 * after each layer with the fraction of multiply-adds done; CG_ERR_CANCELLED if it asks
 * to stop. */
cg_status light_forward(float *out, const float *in, int h, int w, const light_model *lm, void *arena,
                        cg_pool *pool, cg_progress_fn progress, void *user);

#endif
