/* fuzz.h: the fuzz targets' entry points. Each tests/fuzz/fuzz_NAME.c defines
 * fuzz_NAME(data, size), which must never crash, leak or hang on any input; built with
 * -DCG_LIBFUZZER it is also the file's LLVMFuzzerTestOneInput (`make fuzz`), and without
 * it tests/test_regressions.c feeds it the saved crash inputs and the seed corpus, so a
 * fixed crash stays fixed in the normal test suite. */
#ifndef CG_FUZZ_H
#define CG_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int fuzz_jpeg(const uint8_t *data, size_t size);
int fuzz_png(const uint8_t *data, size_t size);
int fuzz_webp(const uint8_t *data, size_t size);
int fuzz_heif(const uint8_t *data, size_t size);
int fuzz_npy(const uint8_t *data, size_t size);
int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_cli(const uint8_t *data, size_t size);
int fuzz_gif(const uint8_t *data, size_t size);
int fuzz_serve(const uint8_t *data, size_t size);
int fuzz_webp_anim(const uint8_t *data, size_t size);
int fuzz_tfckpt(const uint8_t *data, size_t size);

/* Decodes with cg_image_decode and checks the result (in image_common.c, shared by the four image targets,
 * which differ only in their seed corpora and dictionaries). */
int fuzz_image_decode(const uint8_t *data, size_t size);

#ifdef CG_LIBFUZZER
#define FUZZ_TARGET(fn)                                                     \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);          \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fn(data, size); }
#else
#define FUZZ_TARGET(fn)
#endif

#endif
