/* conv_train.h: what the two files of the training convolutions share (conv_train.c: the
 * forward and input-gradient paths and gemm_strided; conv_train_dw.c: the weight
 * gradients): carving the caller's workspace, and the weight-gradient entry points.
 * Internal to src/nn. */
#ifndef CG_NN_CONV_TRAIN_H
#define CG_NN_CONV_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "train_ops.h"

/* Each piece of workspace starts on a 64-byte boundary (the micro-kernels load packed B
 * aligned), so each is sized with 16 floats of slack. */
static inline size_t carved(size_t n) { return n + 16; }

static inline float *carve(float **ws, size_t n) {
    float *p = (float *)(((uintptr_t)*ws + 63) & ~(uintptr_t)63);
    *ws = p + n;
    return p;
}

static inline size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }
static inline int min_i(int a, int b) { return a < b ? a : b; }

/* dw [M][N kh kw] += sum over the batch and the grid of g [M][oh][ow] times the taps of
 * x [N][H][W] (the convolution x -> g with kh x kw, stride s, zero padding pad; its output
 * grid is oh x ow). For a convolution g is dout and x the input; for a transposed one,
 * g is its input and x its dout. */
typedef struct {
    int M, N, H, W, kh, kw, s, pad, oh, ow;
} wgeom;

/* Floats of workspace conv_dw_accumulate needs for g on `threads` threads. */
size_t conv_dw_ws(const wgeom *g, int threads);
/* dw += the weight gradient over a batch of n: gall [n][M][oh][ow], xall [n][N][H][W]. */
void conv_dw_accumulate(float *dw, const float *gall, const float *xall, const wgeom *g, int n, float *ws,
                        cg_pool *pool);

#endif
