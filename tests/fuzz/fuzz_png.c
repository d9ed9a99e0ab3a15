/* fuzz_png.c: libFuzzer target: PNG decoding through cg_image_decode (see image_common.c).
 * Its seed corpus (corpus/fuzz_png/) and dictionary (fuzz_png.dict) are PNG-specific, so the
 * fuzzer starts from, and mostly stays in, the PNG decoder. */
#include "fuzz.h"

int fuzz_png(const uint8_t *data, size_t size) { return fuzz_image_decode(data, size); }

FUZZ_TARGET(fuzz_png)
