/* fuzz_npy.c: libFuzzer target: the .npy reader (npy_parse, the in-memory half of npy_load
 * that loads the upstream weight release), on whatever bytes the fuzzer makes. */
#include <stdlib.h>

#include "fuzz.h"
#include "model/npy.h"

static volatile float sink;

int fuzz_npy(const uint8_t *data, size_t size) {
    npy_array a;
    /* the weights loader's limit is 256 MB; a small one keeps each run fast */
    if (npy_parse(&a, data, size, "fuzz.npy", 1u << 20) != CG_OK) {
        if (a.data || a.count || a.ndim) abort();
        return 0;
    }
    size_t count = 1;
    for (int i = 0; i < a.ndim; i++) {
        if (a.shape[i] < 0) abort();
        count *= (size_t)a.shape[i];
    }
    if (count != a.count || a.ndim < 0 || a.ndim > NPY_MAX_DIMS) abort();
    float s = 0;
    for (size_t i = 0; i < a.count; i++) s += a.data[i];
    sink = s;
    npy_free(&a);
    return 0;
}

FUZZ_TARGET(fuzz_npy)
