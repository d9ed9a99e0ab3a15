/* image_common.c: what the four image fuzz targets (fuzz_jpeg, fuzz_png, fuzz_webp,
 * fuzz_heif) run: cg_image_decode, the loader `cartoonize` reads every input with, then the
 * downscale it does next, on whatever bytes the fuzzer makes. Not a target itself. */
#include <stdlib.h>

#include "fuzz.h"
#include "io/image.h"

/* Small enough that a header claiming a huge image is refused quickly, large enough that
 * real decoding paths (progressive JPEG, interlaced PNG, WebP alpha) run on real sizes. */
#define FUZZ_MAX_PIXELS (4u << 20)

static volatile unsigned sink; /* keeps the reads above from being optimized away */

int fuzz_image_decode(const uint8_t *data, size_t size) {
    cg_image img;
    if (cg_image_decode(&img, data, size, "fuzz", FUZZ_MAX_PIXELS) != CG_OK) {
        if (img.rgb || img.w || img.h) abort(); /* a failure must leave nothing behind */
        return 0;
    }
    if (img.w <= 0 || img.h <= 0 || (uint64_t)img.w * img.h > FUZZ_MAX_PIXELS) abort();
    /* every byte of the image is read, so ASan sees a buffer smaller than w*h*3 */
    size_t n = (size_t)img.w * img.h * 3;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) sum += img.rgb[i];
    /* the CLI's next step: --max-height 32 */
    int h = img.h > 32 ? 32 : img.h, w = (int)((double)img.w * h / img.h + 0.5);
    if (w < 1) w = 1;
    uint8_t *small = malloc((size_t)w * h * 3);
    if (small) {
        cg_resize_rgb(small, w, h, img.rgb, img.w, img.h);
        sum += small[(size_t)w * h * 3 - 1];
    }
    free(small);
    cg_image_free(&img);
    sink = sum;
    return 0;
}
