/* cartoongan.h: the public C API of the CartoonGAN engine.
 *
 * Load a style's generator weights once, then stylize as many RGB8 images as you like:
 *
 *     cg_model *m;
 *     if (cg_model_load(&m, "weights/hayao.safetensors") != CG_OK)
 *         fprintf(stderr, "%s\n", cg_last_error());
 *     cg_model_set_threads(m, 2);
 *     cg_stylize(m, out_rgb, in_rgb, width, height, NULL);
 *     cg_model_free(m);
 *
 * Every function reports failure through its return value; cg_last_error() then holds a
 * one-line message for the calling thread. The library never exits or aborts on bad input.
 */
#ifndef CARTOONGAN_H
#define CARTOONGAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libcartoongan.so is compiled with -fvisibility=hidden, so that of all the library's
 * functions only those declared here are exported (packaging/libcartoongan.map then keeps
 * only cg_ names; tests/test_install.sh checks the list). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define CG_VERSION "0.1.0"

typedef enum {
    CG_OK = 0,
    CG_ERR_ARG,     /* invalid argument (null pointer, zero size, ...) */
    CG_ERR_IO,      /* a file could not be opened, read or written */
    CG_ERR_FORMAT,  /* a file is not in the expected format, or is corrupt */
    CG_ERR_WEIGHTS, /* weights are missing a tensor or have a wrong name, shape or type */
    CG_ERR_LIMIT,   /* an input exceeds a documented limit (pixels, file size) */
    CG_ERR_NOMEM,   /* an allocation failed */
    CG_ERR_CANCELLED, /* a progress callback asked to stop */
    CG_ERR_DIVERGED /* training: a loss or gradient became NaN or infinite */
} cg_status;

/* A generic description of a status code ("invalid argument", ...). */
const char *cg_status_string(cg_status s);

/* The message of the last failure on the calling thread, e.g.
 * "weights/hayao.safetensors: tensor conv04_1.weight has shape [256,256,3,1], expected [256,256,3,3]".
 * Empty when nothing has failed yet. */
const char *cg_last_error(void);

typedef struct cg_model cg_model;

/* Load a generator: `path` is either a single-file `.safetensors` checkpoint or a
 * directory holding the upstream release's `.npy` files (one per tensor). Every tensor's
 * name, dtype and shape is checked. The weights are then packed for the compute kernel,
 * on all the CPU's cores (cg_model_set_threads applies to stylizing). A `.safetensors`
 * file whose metadata says "architecture": "cartoongan-light" (what `cartoongan export`
 * makes of the seed project's light checkpoints) loads the light generator instead; every
 * function below takes either. */
cg_status cg_model_load(cg_model **out, const char *path);
/* Load a generator from a `.safetensors` file's bytes already in memory (`n` bytes at
 * `data`, which the caller keeps and may free afterwards), with the same checks as
 * cg_model_load; `name` (may be NULL) names it in messages. The browser build uses it. */
cg_status cg_model_load_memory(cg_model **out, const void *data, size_t n, const char *name);
void cg_model_free(cg_model *m);

/* Number of worker threads used by cg_stylize (0 = one per online CPU; default 0). */
cg_status cg_model_set_threads(cg_model *m, int threads);

/* Called between layers with the fraction of work done; return non-zero to cancel
 * (cg_stylize then returns CG_ERR_CANCELLED). */
typedef int (*cg_progress_fn)(void *user, float fraction);

typedef struct {
    cg_progress_fn progress; /* may be NULL */
    void *user;
} cg_stylize_opts;

/* Stylize an image: `in` and `out` are packed RGB8 rows of `width * 3` bytes, `height`
 * rows; `out` may equal `in`. Any size from 1x1 up to CG_MAX_NETWORK_PIXELS works: sides
 * that are not multiples of 4 are reflect-padded for the network and cropped back, so the
 * output always has the input's size. `opts` may be NULL. The light generator runs the
 * image as it is (zero padding, as the seed project's) up to 16 megapixels (CG_ERR_LIMIT
 * beyond), in about 600 bytes of working memory per pixel, and truncates its output to
 * 8 bits as the seed project does (the original generator rounds). */
cg_status cg_stylize(cg_model *m, uint8_t *out, const uint8_t *in, int width, int height,
                     const cg_stylize_opts *opts);

/* The largest image cg_stylize accepts (pixels). The network runs in row bands with exact
 * whole-image statistics, so it needs about 150 bytes of working memory per pixel plus
 * about 190 MB of band buffers (0.54 GB at 1920x1200, 1.45 GB at 3840x2160, 6.3 GB at 40
 * megapixels; see cg_stylize_memory); an image that needs more than the machine's
 * physical memory is refused with CG_ERR_NOMEM before anything is allocated. */
#define CG_MAX_NETWORK_PIXELS (40 * 1000 * 1000)

/* Bytes of working memory cg_stylize needs for a width x height image with m's thread
 * count (m may be NULL: one thread per CPU); 0 if too large. */
size_t cg_stylize_memory(const cg_model *m, int width, int height);

/* Multiply-adds the network performs for a width x height image (for rates and ETAs). */
double cg_stylize_macs(int width, int height);

/* The compute kernel models loaded now use, chosen from the CPU's features: "amx" (Intel
 * AMX tiles, bf16x3 products: each within ~3 * 2^-16 of fp32's), "avx512", "avx2",
 * "portable" or "wasm" (fp32). The environment variable CARTOONGAN_KERNEL, read once,
 * picks another the CPU has (e.g. avx512 to keep every product in fp32); a name the CPU
 * lacks, or no kernel's name, leaves the best one it has. */
const char *cg_kernel_name(void);

/* Write a model's weights as a single `.safetensors` file (atomically: a temporary file
 * is renamed into place). */
cg_status cg_model_save(const cg_model *m, const char *path);
/* The same with every tensor stored as IEEE half floats (dtype F16, rounded to nearest):
 * half the size, for the browser's download; loading widens them back to float32. */
cg_status cg_model_save_fp16(const cg_model *m, const char *path);

/* The four released styles, in canonical order. */
#define CG_NUM_STYLES 4
extern const char *const cg_style_names[CG_NUM_STYLES];

/* ---- training (src/train; doc/training-engine.md) ----
 *
 * A trainer holds the generator G, the discriminator D, a frozen VGG19 for the content
 * loss, both networks' Adam states and all working memory, sized once for a batch of
 * `batch` images of height x width: a step allocates nothing.
 *
 *     cg_train_config c;
 *     cg_train_config_default(&c);          (batch 4, 256x256, the seed project's rates)
 *     cg_trainer *t;
 *     cg_trainer_create(&t, &c, "vgg19.safetensors");
 *     cg_trainer_load(t, CG_NET_G, "weights/hayao.safetensors");   (else from scratch)
 *     cg_trainer_step(t, CG_PHASE_GAN, photo, cartoon, smooth, &losses);
 *     cg_trainer_save(t, CG_NET_G, "mystyle.safetensors");
 *
 * Images are float32 [batch][3][height][width], G's input convention: BGR in [-1, 1]. */

typedef enum { CG_GAN_LSGAN, CG_GAN_BCE } cg_gan_loss; /* D's loss: MSE (LSGAN) or BCE with logits */
typedef enum { CG_DNORM_BATCH, CG_DNORM_INSTANCE } cg_d_norm;
typedef enum { CG_PHASE_INIT, CG_PHASE_GAN } cg_train_phase;
typedef enum { CG_NET_G, CG_NET_D, CG_GRAD_G, CG_GRAD_D } cg_train_tensors;

typedef struct {
    int batch, height, width;     /* height and width multiples of 4, at least 8 */
    float lr_g, lr_d;             /* Adam learning rates (betas 0.5, 0.999; eps 1e-8) */
    float content_weight;         /* w_c: 10, the paper's omega */
    float style_weight;           /* w_s: 0 (the seed project's --style_lambda) */
    cg_gan_loss gan_loss;         /* CG_GAN_LSGAN */
    cg_d_norm d_norm;             /* CG_DNORM_BATCH */
    uint64_t seed;                /* initialisation of a fresh G and D: 0 */
    int threads;                  /* 0: one per online CPU */
} cg_train_config;

/* Losses of one step, unweighted (NaN where a term does not apply to the phase):
 * g_total = g_adversarial + w_c content + w_s style (init phase: w_c content);
 * d_total = d_real + d_smooth + d_fake. */
typedef struct {
    double content, style, g_adversarial, g_total;
    double d_real, d_smooth, d_fake, d_total;
} cg_train_losses;

typedef struct cg_trainer cg_trainer;

/* Defaults: batch 4, 256x256, lr_g 8e-5, lr_d 3e-5 (the seed project's GAN phase; its init
 * phase uses 2e-4), the rest as noted above. */
void cg_train_config_default(cg_train_config *c);
/* `vgg_path`: VGG19 weights, torchvision's as .safetensors or Keras's notop .h5 (see
 * README, "Training"); NULL for none: the content loss is then the mean L1 between G's
 * output and the photo (the seed project's --ignore_vgg, weaker). G and D start from the
 * seeded initialisation: conv weights N(0, 0.02), biases 0, norm scales 1 and shifts 0.
 * CG_ERR_ARG for a bad configuration, CG_ERR_NOMEM, or the VGG file's error. */
cg_status cg_trainer_create(cg_trainer **out, const cg_train_config *c, const char *vgg_path);
void cg_trainer_free(cg_trainer *t);
/* Loads G (a generator .safetensors, e.g. a released style) or D (its 20 tensors: see
 * doc/training-engine.md) over the current parameters; Adam's state restarts. */
cg_status cg_trainer_load(cg_trainer *t, cg_train_tensors which, const char *path);
/* One training step (doc/training-engine.md, "Losses and the step"): in the init phase G
 * alone against the content loss (cartoon, smooth unused, may be NULL); in the GAN phase
 * D's update, then G's. Reports the losses (may be NULL). A non-finite loss or gradient
 * stops the step before any parameter changes: CG_ERR_DIVERGED, naming the step and the
 * loss. */
cg_status cg_trainer_step(cg_trainer *t, cg_train_phase phase, const float *photo,
                          const float *cartoon, const float *smooth, cg_train_losses *losses);
/* Writes G's or D's parameters, or the gradients of the last step, as .safetensors
 * (atomically; G's loads with cg_model_load like a released style). */
cg_status cg_trainer_save(const cg_trainer *t, cg_train_tensors which, const char *path);
/* G's output for the last step's photos, [batch][3][height][width] (tanh, BGR). */
const float *cg_trainer_generated(const cg_trainer *t);
/* A model of G's current parameters (a copy), for cg_stylize: validation at full size
 * through the inference engine. Free it with cg_model_free. */
cg_status cg_trainer_generator(const cg_trainer *t, cg_model **out);
/* Sets a network's (CG_NET_G or CG_NET_D) learning rate from the next step on. */
cg_status cg_trainer_set_learning_rate(cg_trainer *t, cg_train_tensors which, float lr);
/* Restarts a network's Adam moments and step count (the init and GAN phases use two
 * optimizers for G, as the seed project). */
cg_status cg_trainer_restart_optimizer(cg_trainer *t, cg_train_tensors which);
/* A training checkpoint: G, D and both Adam states (moments and step counts) in one
 * .safetensors file (tensors G.<name>, G.adam_m.<name>, G.adam_v.<name>, D.<name>,
 * D.adam_m.<name>, D.adam_v.<name>; __metadata__ "model": "cartoongan-checkpoint",
 * "g_adam_t", "d_adam_t", plus `metadata`: more "key":"value" pairs, JSON-escaped, or
 * NULL). Written atomically (temporary file, fsync, rename): an interrupted save leaves
 * the previous file as it was. */
cg_status cg_trainer_save_checkpoint(const cg_trainer *t, const char *path, const char *metadata);
/* Restores what cg_trainer_save_checkpoint wrote. Every tensor is checked (names, shapes,
 * finite values) before anything changes: on failure the trainer is as it was. */
cg_status cg_trainer_load_checkpoint(cg_trainer *t, const char *path);

/* ---- data-parallel training across processes ----
 *
 * K processes (e.g. the ranks of an MPI job: `mpirun -np K cartoongan train`), each with
 * a trainer of the same configuration and the same parameters, each stepping on its own
 * `batch` images of a global batch of K x batch, compute together what one trainer with
 * batch K x batch computes: the losses reported are the global batch's means, each
 * network's gradients are summed across the processes in one call (its one-allocation
 * gradient array) and averaged before the Adam update, and D's batch norm takes its
 * statistics over all K x batch images. The library does no communication itself: the
 * caller supplies the sums (for MPI, MPI_Allreduce with MPI_SUM), so it never depends on
 * a message-passing library. Every process must make the same calls in the same order,
 * and a sum must give every process the same bits (MPI_Allreduce does), so that the
 * parameters stay identical everywhere. */
typedef struct {
    int processes; /* K >= 1; 1 means alone (the callbacks are then never called) */
    /* Each replaces buf[0..n) in place by its element-wise sum over the K processes;
     * returns 0, or non-zero on failure (the step then fails with CG_ERR_IO). */
    int (*sum_floats)(void *user, float *buf, size_t n);
    int (*sum_doubles)(void *user, double *buf, size_t n);
    /* Replaces buf's `bytes` bytes by process 0's (for cg_trainer_sync). */
    int (*broadcast)(void *user, void *buf, size_t bytes);
    void *user;
} cg_train_comm;

/* Makes the trainer one of comm->processes (copied; NULL or processes 1: alone again).
 * CG_ERR_ARG when a callback is missing. */
cg_status cg_trainer_set_comm(cg_trainer *t, const cg_train_comm *comm);
/* Gives this process's trainer process 0's G, D, Adam moments and step counts (through
 * comm's broadcast), e.g. after process 0 alone has resumed from a checkpoint. Every
 * process calls it at the same point. CG_ERR_IO if the broadcast fails. */
cg_status cg_trainer_sync(cg_trainer *t);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
