/* wasm_api.c: the engine's entry points for the browser (web/worker.js) and the node test.
 *
 * JavaScript owns the bytes: it copies the weights file and the RGB pixels into the wasm
 * heap (cgw_alloc), calls in, and reads the result back. One model is loaded at a time,
 * since a page shows one style at a time and each costs about 90 MB. Progress goes out
 * through Module.onProgress, called on the thread that called cgw_stylize (the generator
 * reports between layers on its caller's thread, never from a pool worker). */
#include <emscripten.h>
#include <stdint.h>
#include <stdlib.h>

#include "cartoongan.h"
#include "io/image.h"
#include "model/model.h"
#include "nn/gemm.h"

static cg_model *model;

/* Returns non-zero to cancel; Module.onProgress may return true for that. */
EM_JS(int, cgw_report_progress, (float fraction), {
    return Module["onProgress"] ? (Module["onProgress"](fraction) ? 1 : 0) : 0;
})

static int on_progress(void *user, float fraction) {
    (void)user;
    return cgw_report_progress(fraction);
}

EMSCRIPTEN_KEEPALIVE void *cgw_alloc(size_t n) { return malloc(n ? n : 1); }
EMSCRIPTEN_KEEPALIVE void cgw_free(void *p) { free(p); }

/* Loads a .safetensors file (F32 or F16) from n bytes at data, replacing the model loaded
 * before; threads as for cg_model_set_threads. Returns a cg_status. */
EMSCRIPTEN_KEEPALIVE int cgw_load(const void *data, size_t n, const char *name, int threads) {
    cg_model_free(model);
    model = NULL;
    cg_status st = cg_model_load_memory(&model, data, n, name);
    if (st == CG_OK) st = cg_model_set_threads(model, threads);
    return (int)st;
}

EMSCRIPTEN_KEEPALIVE int cgw_set_threads(int threads) {
    return model ? (int)cg_model_set_threads(model, threads) : (int)CG_ERR_ARG;
}

/* Threads the last cgw_stylize actually ran on: fewer than asked for when the browser
 * could not start them (no SharedArrayBuffer: the single-threaded build's pthread_create
 * always fails, and the pool falls back to the calling thread). */
EMSCRIPTEN_KEEPALIVE int cgw_threads_used(void) {
    return model && model->pool ? cg_pool_threads(model->pool) : 0;
}

/* Stylizes width x height packed RGB8 pixels from in into out (which may equal in). */
EMSCRIPTEN_KEEPALIVE int cgw_stylize(uint8_t *out, const uint8_t *in, int width, int height) {
    if (!model) return (int)CG_ERR_ARG;
    cg_stylize_opts opts = {on_progress, NULL};
    return (int)cg_stylize(model, out, in, width, height, &opts);
}

/* Bytes of working memory a width x height image needs (0: over the network's limit). */
EMSCRIPTEN_KEEPALIVE double cgw_memory(int width, int height) {
    return (double)cg_stylize_memory(model, width, height);
}

/* The CLI's antialiased Lanczos-3 downscale (src/io/resize.c), so a capped photo gets the
 * same pixels here as with `cartoongan cartoonize --max-height`. */
EMSCRIPTEN_KEEPALIVE void cgw_resize(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh) {
    cg_resize_rgb(dst, dw, dh, src, sw, sh);
}

EMSCRIPTEN_KEEPALIVE const char *cgw_last_error(void) { return cg_last_error(); }
EMSCRIPTEN_KEEPALIVE const char *cgw_kernel(void) { return gemm_arch_get()->name; }
EMSCRIPTEN_KEEPALIVE void cgw_unload(void) {
    cg_model_free(model);
    model = NULL;
}
