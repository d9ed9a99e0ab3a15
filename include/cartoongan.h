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

#define CG_VERSION "0.1.0"

typedef enum {
    CG_OK = 0,
    CG_ERR_ARG,     /* invalid argument (null pointer, zero size, ...) */
    CG_ERR_IO,      /* a file could not be opened, read or written */
    CG_ERR_FORMAT,  /* a file is not in the expected format, or is corrupt */
    CG_ERR_WEIGHTS, /* weights are missing a tensor or have a wrong name, shape or type */
    CG_ERR_LIMIT,   /* an input exceeds a documented limit (pixels, file size) */
    CG_ERR_NOMEM,   /* an allocation failed */
    CG_ERR_CANCELLED /* a progress callback asked to stop */
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
 * on all the CPU's cores (cg_model_set_threads applies to stylizing). */
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
 * output always has the input's size. `opts` may be NULL. */
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
 * picks another the CPU has (e.g. avx512 to keep every product in fp32). */
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

#ifdef __cplusplus
}
#endif
#endif
