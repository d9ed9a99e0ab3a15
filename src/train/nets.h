/* nets.h: the three networks of a CartoonGAN training step as straight-line forward and
 * backward code over the ops of src/nn/train_ops.h: the generator G (the released
 * architecture), the discriminator D and the frozen VGG19 feature extractor. Each network
 * lays out its activations in a caller's arena, sized up front for a batch of n images of
 * h x w (multiples of 4), so a step allocates nothing. See doc/training-engine.md. */
#ifndef CG_TRAIN_NETS_H
#define CG_TRAIN_NETS_H

#include <stddef.h>

#include "cartoongan.h"
#include "model/safetensors.h"
#include "nn/pool.h"
#include "train/vgg_weights.h"

/* A bump allocator over one block: with base NULL it only counts, so the same layout
 * code first sizes the block and then carves it. Pieces are 64-byte aligned. */
typedef struct {
    float *base;
    size_t used; /* floats */
} arena;

float *arena_take(arena *a, size_t n);

/* What every network call shares: the pool and the convolutions' workspace (sized for
 * the largest layer of all three networks), and, in data-parallel training
 * (cg_trainer_set_comm), the sums across processes that D's batch norm takes its
 * statistics with (comm NULL when the trainer is alone). A failed sum sets *comm_failed;
 * later ones are skipped and the step fails. */
typedef struct {
    cg_pool *pool;
    float *ws;
    const cg_train_comm *comm;
    int *comm_failed;
} net_ctx;

/* ---- G ---- */

typedef struct {
    float *w, *b;
} conv_p;
typedef struct {
    float *scale, *shift;
} norm_p;

/* Pointers to G's tensors inside one flat array in gen_tensors order (parameters, or
 * their gradients: same layout). */
typedef struct {
    conv_p c01_1, c02_1, c02_2, c03_1, c03_2, res[8][2], de01_1, de01_2, de02_1, de02_2, de03_1;
    norm_p n01_1, n02_1, n03_1, nres[8][2], n12_1, n13_1;
} gen_layers;

void gen_layers_point(gen_layers *l, float *flat);

typedef struct {
    int n, h, w; /* batch and image size */
    float *c1, *a1;               /* [n][64][h][w]: conv01_1's output, after norm and ReLU */
    float *c21, *c22, *a2;        /* [n][128][h/2][w/2] */
    float *c31, *c32, *x[9];      /* [n][256][h/4][w/4]: x[0] the residual input, x[b + 1] block b's output */
    float *r1[8], *t[8], *r2[8];  /* each block's first conv output, after norm and ReLU, second conv output */
    float *d11, *d12, *a4;        /* [n][128][h/2][w/2] */
    float *d21, *d22, *a5;        /* [n][64][h][w] */
    float *y;                     /* [n][3][h][w]: the tanh output */
    float *mean[21], *rstd[21];   /* [n][c] per instance norm, in gen_tensors' norm order */
    float *pad;                   /* scratch: the reflect-padded input of a convolution */
    float *g[3];                  /* scratch: gradients, each the size of the largest tensor */
} gen_acts;

void gen_acts_layout(gen_acts *a, arena *ar, int n, int h, int w);
/* y = G(x); x [n][3][h][w] BGR in [-1, 1]. Keeps what the backward needs. */
void gen_forward(gen_acts *a, const gen_layers *p, const float *x, const net_ctx *c);
/* Accumulates G's parameter gradients into `grad` from dy = dL/dy (the input x is
 * needed again for conv01_1's weight gradient). */
void gen_backward(const gen_acts *a, const gen_layers *p, const gen_layers *grad, const float *x,
                  const float *dy, const net_ctx *c);

/* ---- D ---- */

#define D_NUM_TENSORS 20
extern const tensor_info d_tensors[D_NUM_TENSORS];

typedef struct {
    conv_p c01, c02_1, c02_2, c03_1, c03_2, c04, c05;
    norm_p n02, n03, n04;
} d_layers;

void d_layers_point(d_layers *l, float *flat);

enum { D_NORM_BATCH, D_NORM_INSTANCE };

typedef struct {
    int n, h, w, norm;
    const float *x;                        /* the input of the last forward (caller's) */
    float *a1, *a21, *a22, *a31, *a32, *a4; /* LeakyReLU outputs */
    float *c22, *c32, *c4;                 /* the normalised convolutions' outputs */
    float *mean[3], *rstd[3];
    float *out;                            /* [n][1][h/4][w/4] logits */
    float *g[2];                           /* scratch gradients */
} d_acts;

void d_acts_layout(d_acts *a, arena *ar, int n, int h, int w, int norm);
void d_forward(d_acts *a, const d_layers *p, const float *x, const net_ctx *c);
/* From dout = dL/dlogits: dx += dL/dx (if dx), grad += parameter gradients (if grad). */
void d_backward(const d_acts *a, const d_layers *p, const d_layers *grad, float *dx,
                const float *dout, const net_ctx *c);

/* ---- VGG19 to conv4_4 (before its ReLU) ---- */

typedef struct {
    int n, h, w;
    float *pre;       /* [n][3][h][w]: the input in VGG's preprocessing */
    float *r[11];     /* ReLU outputs after conv1_1 ... conv4_3 */
    float *pool;      /* scratch: a max pool's output */
    float *feat;      /* [n][512][h/8][w/8]: conv4_4's output */
    float *g[2];      /* scratch gradients */
} vgg_acts;

void vgg_acts_layout(vgg_acts *a, arena *ar, int n, int h, int w);
/* feat = VGG(preprocess(x)), x in G's convention (BGR, [-1, 1]). */
void vgg_forward(vgg_acts *a, const vgg_weights *v, const float *x, const net_ctx *c);
/* dx += dL/dx (G's convention) from dfeat = dL/dfeat. */
void vgg_backward(const vgg_acts *a, const vgg_weights *v, float *dx, const float *dfeat,
                  const net_ctx *c);

/* Where a trainer's steps spent their time so far (seconds, summed over steps), for
 * bench/train_bench.c's breakdown. */
enum { PROF_G_FWD, PROF_D_LOSS, PROF_VGG_FWD, PROF_VGG_BWD, PROF_D_FOR_G, PROF_G_BWD, PROF_ADAM, PROF_N };
extern const char *const trainer_profile_names[PROF_N];
struct cg_trainer;
const double *trainer_profile(const struct cg_trainer *t);

#endif
