/* ops.h: the neural-network ops of the engine, as plain functions on NCHW float arrays
 * (batch 1, so CHW), outputs first, sizes in a small dims struct.
 *
 * Each op has a naive reference (`*_ref`, in ops_ref.c) that is the definition, and the
 * ops the generator runs (conv.c, norm.c) are tested against it. */
#ifndef CG_NN_OPS_H
#define CG_NN_OPS_H

#include <stddef.h>

struct cg_pool;

/* A 2-D convolution with zero padding: in [cin][h][w] -> out [cout][oh][ow],
 * weight [cout][cin][kh][kw], bias [cout] (may be NULL). */
typedef struct {
    int cin, h, w;      /* input */
    int cout, kh, kw;   /* kernel */
    int stride, pad;    /* zero padding on every side */
} conv_dims;

int conv_out_h(const conv_dims *d);
int conv_out_w(const conv_dims *d);

/* A transposed convolution: weight [cin][cout][kh][kw] (PyTorch's layout),
 * out side = (side - 1) * stride - 2 * pad + k + out_pad. */
typedef struct {
    int cin, h, w;
    int cout, kh, kw;
    int stride, pad, out_pad;
} deconv_dims;

int deconv_out_h(const deconv_dims *d);
int deconv_out_w(const deconv_dims *d);

/* Naive references: the definitions the fast kernels are tested against. */
void conv2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                        const conv_dims *d);
void conv_transpose2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                                  const deconv_dims *d);
/* y = (x - mean) / sqrt(biased var + eps) * scale + shift, per channel over h*w. */
void instance_norm_forward_ref(float *out, const float *in, const float *scale,
                               const float *shift, int c, int hw, float eps);
void pad_reflect_forward(float *out, const float *in, int c, int h, int w, int pad);
/* Index i in [-n, 2n) reflected into [0, n) without repeating the edge, folded again as
 * often as needed (so a pad larger than the side still works; n = 1 gives 0). */
int reflect_index(int i, int n);
void relu_forward(float *out, const float *in, size_t n);
void add_forward(float *out, const float *a, const float *b, size_t n);
void tanh_forward(float *out, const float *in, size_t n);

/* ---- fast kernels (conv.c, norm.c) ---- */

/* Weights pre-packed for the GEMM micro-kernel. A convolution is the product
 * W[cout x cin*kh*kw] . im2col(in)[cin*kh*kw x oh*ow], and W is packed once at load time
 * into panels of CG_MR rows. */
struct gemm_arch;
typedef struct {
    int m, k;       /* rows (cout) and depth (cin*kh*kw) */
    float *panels;  /* ceil(m/mr) panels of [k][mr], zero-filled past m */
    const struct gemm_arch *arch; /* the micro-kernel the panels were packed for */
    int amx;        /* panels hold AMX tiles instead (amx.h: "amx" kernel, m a multiple of 16) */
} packed_weights;

size_t packed_weights_floats(int m, int k);
/* `panels` must hold packed_weights_floats(m, k) floats; w is [m][k]. Packs for this CPU's
 * best micro-kernel (gemm.h), or for `arch`. */
void pack_weights(packed_weights *pw, float *panels, const float *w, int m, int k);
void pack_weights_arch(packed_weights *pw, float *panels, const float *w, int m, int k,
                       const struct gemm_arch *arch);

/* Floats of packing scratch the fast convolutions need for a pool of `threads`. */
size_t conv_scratch_floats(int threads);

/* out = conv(in) + bias using pre-packed weights; parallel over output pixels.
 * `scratch` holds conv_scratch_floats(threads of pool) floats. */
void conv2d_forward(float *out, const float *in, const packed_weights *pw, const float *b,
                    const conv_dims *d, float *scratch, struct cg_pool *pool);

/* Direct convolution for layers with at most CONV_DIRECT_MAX_COUT outputs, stride 1 and
 * no padding (the caller pads): w is [cout][cin][kh][kw] as stored, no packing. */
#define CONV_DIRECT_MAX_COUT 4
void conv2d_direct_forward(float *out, const float *in, const float *w, const float *b,
                           const conv_dims *d, struct cg_pool *pool);

/* Transposed conv k3 s2 p1 op1, decomposed into four stride-1 sub-convolutions (one per
 * output parity), so no multiply touches an inserted zero. `pw` holds the four phases'
 * packed weights (made by pack_deconv_weights); `tmp` holds deconv_tmp_floats(d) floats
 * (the four phases' outputs). `win` says which output rows are written, and how: rows
 * [y0, y1) of the output (rows outside [0, oh) as zeros), each with px zero columns on
 * either side, as [cout][y1 - y0][ow + 2 px]: the next convolution's padded input. NULL
 * writes the whole output as [cout][oh][ow]. `out` may be `in` (which is read first). */
typedef struct {
    int y0, y1, px;
} deconv_window;
typedef struct {
    packed_weights phase[4];
} packed_deconv;

size_t packed_deconv_floats(int cin, int cout);
size_t deconv_tmp_floats(const deconv_dims *d);
/* Returns 0, or -1 when out of memory. */
int pack_deconv_weights(packed_deconv *pd, float *panels, const float *w, int cin, int cout);
int pack_deconv_weights_arch(packed_deconv *pd, float *panels, const float *w, int cin, int cout,
                             const struct gemm_arch *arch);
/* The same with `tmp` (deconv_pack_tmp_floats floats) for the rearranged weights, so that
 * training, which packs at every step, allocates nothing; tmp NULL allocates it. */
size_t deconv_pack_tmp_floats(int cin, int cout);
int pack_deconv_weights_tmp(packed_deconv *pd, float *panels, const float *w, int cin, int cout,
                            const struct gemm_arch *arch, float *tmp);
void deconv_s2_forward(float *out, float *tmp, const float *in, const packed_deconv *pd,
                       const float *b, const deconv_dims *d, const deconv_window *win, float *scratch,
                       struct cg_pool *pool);

/* 3x3 stride-1 convolution (zero padding d->pad) by Winograd F(4x4, 3x3): the 36
 * transformed weight matrices U[xi] = (G g G^T)[xi], packed for the micro-kernel. Needs a
 * kernel whose nr is a multiple of 16 (winograd_supported). */
typedef struct {
    int cout, cin;
    packed_weights u[36];
    /* With the "amx" kernel (cin a multiple of 32, cout of 16): U split into bf16 high and
     * low halves, in AMX tiles, instead of u's panels; NULL otherwise. */
    const unsigned short *amx;
} winograd_weights;

int winograd_supported(const struct gemm_arch *arch);
size_t winograd_weights_floats(int cout, int cin);
/* Returns 0, or -1 when out of memory. */
int pack_winograd_weights(winograd_weights *ww, float *buf, const float *w, int cout, int cin);
int pack_winograd_weights_arch(winograd_weights *ww, float *buf, const float *w, int cout, int cin,
                               const struct gemm_arch *arch);
/* The same with `tmp` (winograd_pack_tmp_floats floats) for the transformed weights before
 * packing; tmp NULL allocates it. */
size_t winograd_pack_tmp_floats(int cout, int cin);
int pack_winograd_weights_tmp(winograd_weights *ww, float *buf, const float *w, int cout, int cin,
                              const struct gemm_arch *arch, float *tmp);
size_t winograd_scratch_floats(int threads, int cin, int cout);
void conv3x3_winograd_forward(float *out, const float *in, const winograd_weights *ww,
                              const float *b, const conv_dims *d, float *scratch,
                              struct cg_pool *pool);

/* Instance norm with the ReLU and residual add fused in: out = norm(in) [+ residual]
 * [then relu]. `out` may equal `in`. */
void instance_norm_forward(float *out, const float *in, const float *scale, const float *shift,
                           const float *residual, int relu, int c, int hw, float eps,
                           struct cg_pool *pool);

#endif
