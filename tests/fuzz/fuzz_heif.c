/* fuzz_heif.c: libFuzzer target: HEIC/AVIF decoding through cg_image_decode (see image_common.c).
 * Its seed corpus (corpus/fuzz_heif/) and dictionary (fuzz_heif.dict) are HEIF-specific, so the
 * fuzzer starts from, and mostly stays in, the HEIF decoder (libheif, libde265, dav1d). */
#include "fuzz.h"

int fuzz_heif(const uint8_t *data, size_t size) { return fuzz_image_decode(data, size); }

FUZZ_TARGET(fuzz_heif)
