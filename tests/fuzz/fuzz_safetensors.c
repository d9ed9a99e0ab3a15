/* fuzz_safetensors.c: libFuzzer target: the .safetensors header parser (the JSON reader and
 * every check on names, dtypes, shapes and byte ranges) that cg_model_load runs on a
 * weights file before reading any tensor. */
#include <stdlib.h>

#include "fuzz.h"
#include "model/model.h"

static void check(const uint8_t *data, size_t size, uint64_t file_size) {
    uint64_t off[GEN_NUM_TENSORS];
    if (safetensors_parse_header(data, size, file_size, "fuzz.safetensors", off) != CG_OK) return;
    /* accepted: every tensor's range must lie inside the file, after the header (at least
     * two bytes a value: F16 tensors are accepted too) */
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        uint64_t bytes = 2;
        for (int d = 0; d < gen_tensors[i].ndim; d++) bytes *= (uint64_t)gen_tensors[i].shape[d];
        if (off[i] < 8 + 2 || off[i] > file_size || bytes > file_size - off[i]) abort();
    }
}

int fuzz_safetensors(const uint8_t *data, size_t size) {
    /* the input as a whole file: its ranges must fit in what follows the header */
    check(data, size, size);
    /* the input as a file's header, followed by exactly one generator's worth of data, so
     * headers with plausible ranges get past the range checks too */
    if (size >= 8) {
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = hlen << 8 | data[i];
        if (hlen <= size - 8) check(data, size, 8 + hlen + (uint64_t)GEN_NUM_PARAMS * sizeof(float));
    }
    return 0;
}

FUZZ_TARGET(fuzz_safetensors)
