/* train_ops.h: the ops training needs beyond inference, forward and backward, on NCHW
 * batches ([n][c][h][w] float arrays, outputs first).
 *
 * Conventions (llm.c's): every *_backward ACCUMULATES into its d* outputs (+=), so a
 * tensor used twice (a residual input) just receives both gradients; a NULL d* output is
 * skipped. Each op has a naive reference (*_ref, train_ops_ref.c / conv_train_ref.c) that
 * is its definition; the fast versions are tested against it and the references against
 * finite differences (tests/test_grad_ops.c, tests/test_grad_conv.c).
 *
 * Nothing here assumes the CPU beyond taking a cg_pool for parallelism (NULL runs on the
 * caller): a GPU backend can provide the same calls. */
#ifndef CG_NN_TRAIN_OPS_H
#define CG_NN_TRAIN_OPS_H

#include <stddef.h>

#include "ops.h"

struct cg_pool;

/* ---- elementwise (n = element count; batch-agnostic) ---- */

/* dx += dy where y > 0 (y: the ReLU's output). */
void relu_backward(float *dx, const float *dy, const float *y, size_t n);
/* y = x > 0 ? x : slope * x (out may equal in). */
void leaky_relu_forward(float *out, const float *in, size_t n, float slope);
/* dx += dy * (y > 0 ? 1 : slope); y: the forward output (same sign as its input). */
void leaky_relu_backward(float *dx, const float *dy, const float *y, size_t n, float slope);
/* dx += dy * (1 - y^2); y: tanh's output. */
void tanh_backward(float *dx, const float *dy, const float *y, size_t n);
/* dst += src (the backward of a residual add, and gradient accumulation). */
void accumulate(float *dst, const float *src, size_t n);

/* ---- reflection padding (nc = n * c planes of h x w) ---- */

/* din [nc][h][w] += the gradient of pad_reflect_forward (ops.h) from dout
 * [nc][h + 2 pad][w + 2 pad]: each padded pixel's gradient goes to the pixel it copies. */
void pad_reflect_backward(float *din, const float *dout, int nc, int h, int w, int pad);

/* ---- normalisation ---- */

/* Instance norm over each sample's channel (h*w values), affine, biased variance:
 * y = (x - mean) * rstd * scale[c] + shift[c], rstd = 1 / sqrt(var + eps).
 * x, y [n][c][hw]; mean and rstd [n][c] are saved for the backward. eps: 1e-9 in the
 * generator (the released model), 1e-5 in the discriminator (PyTorch's default). */
void instance_norm_train_forward(float *out, float *mean, float *rstd, const float *in,
                                 const float *scale, const float *shift, int n, int c, int hw,
                                 float eps, struct cg_pool *pool);
void instance_norm_backward(float *din, float *dscale, float *dshift, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *scale, int n, int c, int hw, struct cg_pool *pool);
/* Batch norm in training mode: statistics per channel over n*h*w values (biased variance,
 * as torch.nn.BatchNorm2d normalises with in training), affine. mean, rstd [c]. */
void batch_norm_train_forward(float *out, float *mean, float *rstd, const float *in,
                              const float *scale, const float *shift, int n, int c, int hw,
                              float eps, struct cg_pool *pool);
void batch_norm_backward(float *din, float *dscale, float *dshift, const float *dout,
                         const float *in, const float *mean, const float *rstd,
                         const float *scale, int n, int c, int hw, struct cg_pool *pool);

/* ---- max pooling 2x2, stride 2 (nc planes of h x w -> h/2 x w/2, rounded down as
 * PyTorch does: an odd last row or column is left out, and gets no gradient) ---- */

void maxpool2_forward(float *out, const float *in, int nc, int h, int w, struct cg_pool *pool);
/* din += dout routed to each window's maximum: the first in row-major window order on
 * ties, as PyTorch's CPU kernel (ReLU zeros tie often). */
void maxpool2_backward(float *din, const float *dout, const float *in, int nc, int h, int w,
                       struct cg_pool *pool);

/* ---- losses: forward returns the mean loss (accumulated in double); backward adds
 * dloss * d(loss)/dx, dloss being the weight the loss enters the total with ---- */

/* mean |a - b|; backward: da += dloss * sign(a - b) / n (sign(0) = 0, as torch). */
double l1_loss_forward(const float *a, const float *b, size_t n);
void l1_loss_backward(float *da, const float *a, const float *b, size_t n, float dloss);
/* mean (x - target)^2; backward: dx += dloss * 2 (x - target) / n. */
double mse_loss_forward(const float *x, float target, size_t n);
void mse_loss_backward(float *dx, const float *x, float target, size_t n, float dloss);
/* Binary cross-entropy with logits, mean: max(x,0) - x t + log1p(exp(-|x|)) (the stable
 * form torch uses); backward: dx += dloss * (sigmoid(x) - t) / n. */
double bce_logits_loss_forward(const float *x, float target, size_t n);
void bce_logits_loss_backward(float *dx, const float *x, float target, size_t n, float dloss);

/* ---- naive references (train_ops_ref.c), same semantics, one thread, double sums ---- */

void instance_norm_train_forward_ref(float *out, float *mean, float *rstd, const float *in,
                                     const float *scale, const float *shift, int n, int c,
                                     int hw, float eps);
void instance_norm_backward_ref(float *din, float *dscale, float *dshift, const float *dout,
                                const float *in, const float *scale, int n, int c, int hw,
                                float eps);
void batch_norm_train_forward_ref(float *out, float *mean, float *rstd, const float *in,
                                  const float *scale, const float *shift, int n, int c, int hw,
                                  float eps);
void batch_norm_backward_ref(float *din, float *dscale, float *dshift, const float *dout,
                             const float *in, const float *scale, int n, int c, int hw,
                             float eps);
void maxpool2_forward_ref(float *out, const float *in, int nc, int h, int w);
void maxpool2_backward_ref(float *din, const float *dout, const float *in, int nc, int h, int w);
void pad_reflect_backward_ref(float *din, const float *dout, int nc, int h, int w, int pad);

/* ---- convolutions for training (conv_train.c): batch n, weights as stored, packed
 * anew on each call (they change every step) into the caller's workspace ---- */

/* Floats of workspace the calls below need for layer d (per sample dims) and a pool of
 * `threads`; a network takes the largest over its layers and allocates it once. */
size_t conv_train_ws_floats(const conv_dims *d, int threads);
size_t deconv_train_ws_floats(const deconv_dims *d, int threads);

/* out [n][cout][oh][ow] = conv(in [n][cin][h][w]) + b; w [cout][cin][kh][kw]; b may be
 * NULL. Uses the inference kernels: Winograd for 3x3 stride 1, the packed GEMM otherwise,
 * the direct convolution for few outputs. */
void conv2d_train_forward(float *out, const float *in, const float *w, const float *b,
                          const conv_dims *d, int n, float *ws, struct cg_pool *pool);
/* Accumulates din += dL/din, dw += dL/dw, db += dL/db, each skipped if NULL (a frozen
 * network needs din alone), given dout = dL/dout. w is needed only for din, in only for
 * dw. */
void conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, const conv_dims *d, int n, float *ws,
                     struct cg_pool *pool);
/* Transposed convolution (the generator's: k3, stride 2, pad 1, output pad 1),
 * w [cin][cout][3][3] (PyTorch's layout). */
void deconv2d_train_forward(float *out, const float *in, const float *w, const float *b,
                            const deconv_dims *d, int n, float *ws, struct cg_pool *pool);
void deconv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                       const float *w, const deconv_dims *d, int n, float *ws,
                       struct cg_pool *pool);

/* References, one sample: accumulate like the fast versions. */
void conv2d_backward_ref(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, const conv_dims *d);
void conv_transpose2d_backward_ref(float *din, float *dw, float *db, const float *dout,
                                   const float *in, const float *w, const deconv_dims *d);

/* ---- matrix products (conv_train.c), on the GEMM micro-kernels ---- */

/* C[m][n] (row stride ldc) = (accumulate ? C : 0) + sum_k A(i,k) B(k,j), where A(i,k) is
 * a[i * a_rs + k * a_cs] and B(k,j) is b[k * b_rs + j * b_cs]: any transposition is a
 * choice of strides. `ws` holds gemm_ws_floats(threads) floats. */
size_t gemm_ws_floats(int threads);
void gemm_strided(float *c, size_t ldc, const float *a, size_t a_rs, size_t a_cs,
                  const float *b, size_t b_rs, size_t b_cs, int m, int n, int k, int accumulate,
                  float *ws, struct cg_pool *pool);

/* Gram matrix of one sample's features x [c][hw]: g [c][c] = x x^T / (c * hw) (the seed
 * project's style loss); backward: dx += (dg + dg^T) x / (c * hw). */
void gram_forward(float *g, const float *x, int c, int hw, float *ws, struct cg_pool *pool);
void gram_backward(float *dx, const float *dg, const float *x, int c, int hw, float *ws,
                   struct cg_pool *pool);
void gram_forward_ref(float *g, const float *x, int c, int hw);

#endif
