/* fuzz_jpeg.c: libFuzzer target: JPEG decoding through cg_image_decode (see image_common.c).
 * Its seed corpus (corpus/fuzz_jpeg/) and dictionary (fuzz_jpeg.dict) are JPEG-specific, so the
 * fuzzer starts from, and mostly stays in, the JPEG decoder. */
#include "fuzz.h"

int fuzz_jpeg(const uint8_t *data, size_t size) { return fuzz_image_decode(data, size); }

FUZZ_TARGET(fuzz_jpeg)
