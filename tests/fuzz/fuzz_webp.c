/* fuzz_webp.c: libFuzzer target: WEBP decoding through cg_image_decode (see image_common.c).
 * Its seed corpus (corpus/fuzz_webp/) and dictionary (fuzz_webp.dict) are WEBP-specific, so the
 * fuzzer starts from, and mostly stays in, the WEBP decoder. */
#include "fuzz.h"

int fuzz_webp(const uint8_t *data, size_t size) { return fuzz_image_decode(data, size); }

FUZZ_TARGET(fuzz_webp)
