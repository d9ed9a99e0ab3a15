/* npy.h: reading NumPy .npy files (v1/v2/v3 headers, little-endian float32, C order),
 * used for the upstream weight release and for the test fixtures. */
#ifndef CG_MODEL_NPY_H
#define CG_MODEL_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "cartoongan.h"

#define NPY_MAX_DIMS 8

typedef struct {
    int ndim;
    long shape[NPY_MAX_DIMS];
    size_t count; /* product of shape */
    float *data;  /* owned; free with npy_free */
} npy_array;

/* Loads a float32 array; refuses other dtypes, Fortran order, truncated data, files larger
 * than max_bytes (0 = no limit) and trailing garbage, naming the file in cg_last_error(). */
cg_status npy_load(npy_array *a, const char *path, size_t max_bytes);
/* The same from a whole .npy file in memory (n bytes); `name` is used in messages. */
cg_status npy_parse(npy_array *a, const uint8_t *buf, size_t n, const char *name, size_t max_bytes);
void npy_free(npy_array *a);

/* Writes a float32 C-order array (used by tests and tools to dump tensors). */
cg_status npy_save(const char *path, const float *data, const long *shape, int ndim);

#endif
