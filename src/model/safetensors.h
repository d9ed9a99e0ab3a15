/* safetensors.h: reading and writing .safetensors files (an 8-byte little-endian header
 * length, a JSON header mapping tensor names to dtype, shape and byte range, then the raw
 * data) against a fixed list of expected tensors. Used for the generator's weights
 * (weights.c), the training engine's VGG19 and discriminator weights, gradients and
 * checkpoints. Free of anything but the C library, so it also builds for WebAssembly. */
#ifndef CG_MODEL_SAFETENSORS_H
#define CG_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "cartoongan.h"

/* One expected tensor: its name in the file and its shape (PyTorch layout, C order). */
typedef struct {
    const char *name; /* e.g. "conv01_1.weight" */
    int ndim;
    int shape[4];
} tensor_info;

/* The number of values in t (the product of its shape; 1 for a scalar). */
size_t tensor_info_count(const tensor_info *t);

/* CG_OK when shape[0..ndim) is t's shape, else CG_ERR_WEIGHTS with
 * "PATH: tensor NAME has shape [a,b], expected [c,d]" (for loaders of other formats). */
cg_status tensor_check_shape(const char *path, const tensor_info *t, const long *shape, int ndim);

/* Checks a header: buf holds the file's first n bytes (at least the 8-byte length and the
 * JSON header), file_size is the whole file's size. Every tensor of specs[0..count) must be
 * present once with its exact shape, dtype F32 or F16, and a byte range of the right size
 * inside the file; a tensor not listed is refused unless allow_extra (then only its JSON
 * syntax is checked). `what` says what the file should be ("a VGG19"; may be NULL) and
 * `path` names it in messages. On success offsets[i] is where specs[i]'s data starts in the
 * file and, if is_f16 is not NULL, is_f16[i] tells whether it is stored as F16. */
cg_status st_parse_header(const uint8_t *buf, size_t n, uint64_t file_size, const char *path,
                          const tensor_info *specs, int count, int allow_extra, const char *what,
                          uint64_t *offsets, int *is_f16);

/* Reads the tensors of specs[0..count) from the file into dst, concatenated in list order
 * (F16 widened to float), after st_parse_header's checks; only the listed tensors are read
 * (by seeking), so large files with extra tensors cost only what is read. Files over
 * max_bytes (0: no limit) are refused before reading, and so is any value that is NaN or
 * infinite (naming the tensor). Messages name the file and the tensor. dst is left
 * partly written on failure. */
cg_status st_load(const char *path, const tensor_info *specs, int count, float *dst,
                  int allow_extra, size_t max_bytes, const char *what);

/* The same from a whole file's `size` bytes already in memory; `name` is used in messages. */
cg_status st_load_memory(const void *data, size_t size, const char *name, const tensor_info *specs,
                         int count, float *dst, int allow_extra, size_t max_bytes, const char *what);

/* Writes specs[0..count)'s values from data (concatenated in list order) to path, as F32,
 * or as F16 (rounded to nearest even) when f16, atomically (no partial file is ever left
 * under path). The header's __metadata__ holds "format":"pt" followed by `metadata` when
 * not NULL: more "key":"value" pairs, already JSON-escaped, e.g. "\"model\":\"x\"". The
 * data starts 8-byte aligned. */
cg_status st_save(const char *path, const tensor_info *specs, int count, const float *data,
                  int f16, const char *metadata);

/* The string value of `key` in path's __metadata__, into value (n bytes, NUL-terminated;
 * JSON escapes decoded). CG_ERR_FORMAT when the file has no such string (or is not a
 * safetensors file), CG_ERR_LIMIT when it does not fit in n bytes. */
cg_status st_read_metadata(const char *path, const char *key, char *value, size_t n);
/* The same from a whole file's `size` bytes in memory; `name` is used in messages. */
cg_status st_read_metadata_memory(const void *data, size_t size, const char *name, const char *key,
                                  char *value, size_t n);

#endif
