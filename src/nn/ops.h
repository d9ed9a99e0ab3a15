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

/* ---- the light generator's ops (issue 13; light_ops.c, light_ops_ref.c) ----
 * Its norm is global (one mean and variance over all channels and pixels), so its fast
 * kernels take a tensor as per-channel plane pointers, each channel read through a pending
 * affine map: a norm (and ReLU) is never applied in a pass of its own but by whatever reads
 * the tensor next, and a channel shuffle or a concatenation only reorders pointers. */

/* Channel ci of a tensor read as max((x - mean) * scale + shift, lo): lo = 0 is a ReLU,
 * lo = -INFINITY none; {0, 1, 0, -INFINITY} reads x as stored. Zero padding is applied
 * after the map (the padded tensor is the normalised one). */
typedef struct {
    float mean, scale, shift, lo;
} chan_affine;

/* Moments of a set of values: count, mean, and sum of squared deviations from the mean. */
typedef struct {
    double n, mean, m2;
} moments;

/* A depthwise 3x3 convolution with TensorFlow's "SAME" zero padding: in [c][h][w] ->
 * out [c][oh][ow], oh = ceil(h / stride), ow = ceil(w / stride); stride 1 or 2. */
typedef struct {
    int c, h, w;
    int stride;
    /* dwconv3x3_forward only (0 elsewhere): the input planes hold the tensor at half its
     * size, h/2 x w/2 (h and w even, stride 1), which is upsampled as
     * upsample2_bilinear_forward does while its rows are read, before their map. */
    int up2;
} dw_dims;

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

/* Light generator references (light_ops_ref.c). */
int dw_out_side(int n, int stride);
/* TF "SAME" padding before the first row/column of a side of n: floor(total / 2) with
 * total = max((out - 1) * stride + 3 - n, 0); the rest (total - before) goes after. */
int dw_pad_before(int n, int stride);
/* w [c][3][3] (the engine's layout; the file's is [3][3][c][1]), no bias. */
void dwconv3x3_same_forward_ref(float *out, const float *in, const float *w, const dw_dims *d);
/* keras-contrib InstanceNormalization(axis=None): over all c * hw values of the tensor,
 * y = (x - mean) / (sqrt(var) + eps) * gamma + beta with the biased variance (eps added to
 * the standard deviation), then max(y, 0) if relu; scalar gamma and beta. */
void global_norm_forward_ref(float *out, const float *in, int c, size_t hw, float gamma,
                             float beta, float eps, int relu);
/* out[2j + g] = in[g * c/2 + j] for g in {0, 1}, j < c/2 (c even): ShuffleNet V2's
 * shuffle of two groups. `out` must not be `in`. */
void channel_shuffle_forward_ref(float *out, const float *in, int c, size_t hw);
/* TensorFlow 1's resize_bilinear to twice the size (align_corners and half_pixel_centers
 * false): in [c][h][w] -> out [c][2h][2w]; along each axis out[2i] = in[i] and
 * out[2i + 1] = a + (b - a) * 0.5 with a = in[i], b = in[min(i + 1, n - 1)], the width
 * first, then the height (float32 throughout, as TensorFlow computes it). */
void upsample2_bilinear_forward_ref(float *out, const float *in, int c, int h, int w);


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
/* Where conv3x3_winograd_forward_to writes: output row y of channel k, in units of floats,
 * starts at base + (y / 4) * tile_row_stride + k * chan_stride + (y % 4) * ow (ow the
 * output's width): rows in groups of 4, one group per row of Winograd tiles. CHW is
 * {out, 4 ow, oh ow}; the generator's stored tensors (model/band.h, blocks of 4 rows each
 * [c][4][w]) are {block, block stride, 4 ow}, which spares a copy of each output. */
typedef struct {
    float *base;
    size_t tile_row_stride, chan_stride;
    /* Optional (NULL: not taken): for each row of tiles R (output rows [4R, 4R + 4), fewer
     * at the end) and channel k, the group_moments of those rows, in row_moments[R * cout
     * + k], taken by the thread that finishes the row, while it is in cache. row_count:
     * one int per row of tiles, all zero on entry. */
    moments *row_moments;
    int *row_count;
} winograd_out;
void conv3x3_winograd_forward_to(const winograd_out *o, const float *in, const winograd_weights *ww,
                                 const float *b, const conv_dims *d, float *scratch,
                                 struct cg_pool *pool);

/* The stride-2 3x3 convolution and the 3x3 stride-2 transposed convolution (k3 s2 p1
 * op1) by Winograd, 81 products per 4x4 tile and input channel instead of 144
 * (winograd_s2.c): 36 transformed weight matrices (cout x cin), packed for the
 * micro-kernel, made from conv weights [cout][cin][3][3] (deconv 0) or transposed-conv
 * weights [cin][cout][3][3] (deconv 1). Needs a kernel whose nr is a multiple of 16, and
 * not the AMX one (winograd_s2_supported). */
typedef struct {
    int cout, cin, deconv;
    packed_weights u[36];
} winograd_s2_weights;

int winograd_s2_supported(const struct gemm_arch *arch);
size_t winograd_s2_weights_floats(int cout, int cin);
/* Returns 0, or -1 when out of memory. */
int pack_winograd_s2_weights(winograd_s2_weights *ww, float *buf, const float *w, int cout, int cin, int deconv,
                             const struct gemm_arch *arch);
size_t winograd_s2_scratch_floats(int threads, int cin, int cout);
/* d: stride 2, 3x3, any zero padding; ww made with deconv 0. Output [cout][oh][ow]. */
void conv3x3_s2_winograd_forward(float *out, const float *in, const winograd_s2_weights *ww, const float *b,
                                 const conv_dims *d, float *scratch, struct cg_pool *pool);
/* d: k3 s2 p1 op1; ww made with deconv 1; `win` as for deconv_s2_forward, but `out` must
 * not overlap `in`. */
void deconv_s2_winograd_forward(float *out, const float *in, const winograd_s2_weights *ww, const float *b,
                                const deconv_dims *d, const deconv_window *win, float *scratch,
                                struct cg_pool *pool);

/* Instance norm with the ReLU and residual add fused in: out = norm(in) [+ residual]
 * [then relu]. `out` may equal `in`. */
void instance_norm_forward(float *out, const float *in, const float *scale, const float *shift,
                           const float *residual, int relu, int c, int hw, float eps,
                           struct cg_pool *pool);

/* ---- the light generator's fast kernels (conv.c, light_ops.c) ---- */

/* Packs like pack_weights_arch but never as AMX tiles: conv2d_forward_io runs only on the
 * fp32 micro-kernels. */
void pack_weights_fp32(packed_weights *pw, float *panels, const float *w, int m, int k,
                       const struct gemm_arch *arch);

/* What conv2d_forward_io reads and writes besides the weights. */
typedef struct {
    const float *const *in;  /* [cin] input planes of h * w floats */
    const chan_affine *aff;  /* [cin] maps the input is read through, or NULL */
    float *const *out;       /* [cout] output planes of oh * ow floats */
    moments *stats;          /* NULL, or receives the moments of the whole output */
    moments *partial;        /* with stats: conv_io_tasks(d) slots of scratch */
} conv_io;

/* The column blocks (tasks) conv2d_forward_io splits d's output pixels into, and the
 * scratch it needs for the given thread count. */
int conv_io_tasks(const conv_dims *d);
size_t conv_io_scratch_floats(int threads);
/* conv2d_forward with the input and output as plane pointers, the input read through its
 * maps (zero padding d->pad after them) and, optionally, the moments of the output
 * gathered while it is still in cache (per column block of the product, merged in a fixed
 * order: the same whatever the thread count). `pw` must come from pack_weights_fp32. An
 * output plane may be an input plane (in place) when the kernel is 1x1 with stride 1, no
 * padding and cin <= 256: each column block of the input is then read whole before that
 * block of the output is written. `scratch` holds conv_io_scratch_floats(threads of pool)
 * floats. */
void conv2d_forward_io(const conv_io *io, const packed_weights *pw, const float *b,
                       const conv_dims *d, float *scratch, struct cg_pool *pool);

/* The moments of x[0..n): the mean summed in float lanes and added up in double, then the
 * squared deviations from it likewise (two passes: one pass of squares would cancel when
 * the mean is large against the spread). */
moments moments_of(const float *x, size_t n);
/* The same over nrows rows of n values (rows[r][0..n)), taken together. */
moments moments_of_rows(const float *const *rows, int nrows, size_t n);
/* The moments of x[0..n) (n > 0) as the generator's instance norms gather them, a group
 * of rows at a time (norm.c): two passes, each summed in float over blocks of 1024 in 16
 * lanes added pairwise, the blocks in double; M2 about the float-rounded mean. */
moments group_moments(const float *x, size_t n);
/* Adds the moments b into a (Chan, Golub and LeVeque's pairwise update). */
void moments_merge(moments *a, const moments *b);
/* The map that reads a tensor of moments m as the light model's norm (gamma, beta; eps
 * added to the standard deviation), with a ReLU if relu. */
chan_affine global_norm_affine(const moments *m, float gamma, float beta, float eps, int relu);

/* Per-thread floats of scratch the light ops below need for rows of up to w values. */
size_t light_ops_scratch_floats(int w, int threads);

/* Depthwise 3x3 SAME (dwconv3x3_same_forward_ref) on plane pointers: the input read
 * through aff (may be NULL), w [c][3][3], out [c] planes of oh * ow. With stats (not
 * NULL), the output's moments, merged channel by channel in order (partial: d->c slots).
 * The output must not overlap the input. */
void dwconv3x3_forward(float *const *out, const float *const *in, const chan_affine *aff,
                       const float *w, const dw_dims *d, moments *stats, moments *partial,
                       float *scratch, struct cg_pool *pool);

/* upsample2_bilinear_forward_ref on plane pointers, the input read through aff (may be
 * NULL); out [c] planes of 2h * 2w, not overlapping the input. */
void upsample2_bilinear_forward(float *const *out, const float *const *in, const chan_affine *aff,
                                int c, int h, int w, float *scratch, struct cg_pool *pool);
/* The moments of what upsample2_bilinear_forward would write for c planes of h x w read as
 * stored, computed without writing it (partial: c slots), merged in channel order. */
void upsample2_moments(moments *m, const float *const *in, int c, int h, int w, moments *partial,
                       float *scratch, struct cg_pool *pool);

/* conv2d_direct_forward (stride 1, no padding: the caller pads) for the light model's
 * last layer, 3 outputs: with AVX-512, each pair of output rows in blocks of 48 or 64
 * columns whose accumulators stay in registers over all input channels and taps. The
 * CONV_OUT3_SLACK floats after `in` must be readable (their values do not matter): the
 * 64-column blocks read whole vectors past the end of each row. */
#define CONV_OUT3_SLACK 64
void conv_out3_forward(float *out, const float *in, const float *w, const float *b, const conv_dims *d,
                       struct cg_pool *pool);

/* The moments of c planes of hw values (partial: c slots), merged in channel order. */
void planes_moments(moments *m, const float *const *in, int c, size_t hw, moments *partial,
                    struct cg_pool *pool);
/* Rows [y0 - pad, y0 + rows + pad) of c planes of h x w, read through aff (may be NULL)
 * and zero-padded by pad on every side (rows outside the planes are zeros), into dst
 * [c][rows + 2 pad][w + 2 pad]: the input of an unpadded convolution for output rows
 * [y0, y0 + rows) of a padded one. */
void planes_pad_band(float *dst, const float *const *in, const chan_affine *aff, int c, int h, int w, int y0,
                     int rows, int pad, struct cg_pool *pool);
/* out[ci] = in[ci] read through aff[ci], for c planes of hw values; out may be in. */
void planes_apply(float *const *out, const float *const *in, const chan_affine *aff, int c,
                  size_t hw, struct cg_pool *pool);


#endif
