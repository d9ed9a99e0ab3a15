/* generator.h: the CartoonGAN generator of the original release, as straight-line code
 * over the ops in src/nn. */
#ifndef CG_MODEL_GENERATOR_H
#define CG_MODEL_GENERATOR_H

#include <stddef.h>

#include "cartoongan.h"
#include "model/safetensors.h"
#include "nn/ops.h"
#include "nn/pool.h"

/* The generator's tensors in file order, with their shapes (PyTorch layouts). */
typedef tensor_info gen_tensor_info;

#define GEN_NUM_TENSORS 94
extern const gen_tensor_info gen_tensors[GEN_NUM_TENSORS];
#define GEN_NUM_PARAMS 11129667

/* The side length the network runs at for a given image side (next multiple of 4). */
int gen_padded_side(int side);

/* Bytes of arena generator_forward needs for an h x w input on a pool of `threads`
 * (0 when too large): about 128 bytes per pixel for the tensors it keeps whole, plus about
 * 200 MB of band buffers and scratch (less for small images). */
size_t generator_arena_bytes(int h, int w, int threads);
/* The same for model m (NULL: as above), whose at_use flag adds room for transforming a
 * layer's weights. */
struct cg_model;
size_t generator_arena_bytes_for(const struct cg_model *m, int h, int w, int threads);

/* Runs the network on a BGR [-1,1] CHW input [3][h][w] of any size (sides need not be
 * multiples of 4: strided convs round as PyTorch does, so the output is
 * [3][4*ceil(ceil(h/2)/2)][...], as the original test code produced). `out` must hold
 * 3 * gen_out_side(h) * gen_out_side(w) floats; `arena` generator_arena_bytes(h, w).
 * Returns CG_ERR_CANCELLED if progress asks to stop. */
int gen_out_side(int side);
struct cg_model;
cg_status generator_forward(float *out, const float *in, int h, int w,
                            const struct cg_model *m, void *arena, cg_pool *pool,
                            cg_progress_fn progress, void *user);

/* For tests: run every banded stage of generator_forward in bands of `rows` rows (some
 * stages need a few more), so that small images take many bands; 0 restores the bands
 * chosen from the memory budget. Not thread-safe: set it before generator_arena_bytes and
 * generator_forward, with no network running. */
void generator_set_band_rows(int rows);

/* Raw parameter access for tests and tools: the tensor called `name`, or NULL. */
const float *cg_model_tensor(const struct cg_model *m, const char *name);

#endif
