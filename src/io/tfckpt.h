/* tfckpt.h: reading the float tensors of a TensorFlow 2 checkpoint (a "tensor bundle":
 * PREFIX.index, a LevelDB-format table mapping each tensor's name to a BundleEntryProto,
 * and PREFIX.data-00000-of-00001, the tensors' raw bytes), such as the seed project's
 * light_shinkai_ckpt/ (generator.index, generator.data-00000-of-00001, checkpoint).
 *
 * Everything is checked, as the files come from outside: the table's footer and magic, every
 * block's masked CRC32C and compression type (only uncompressed tables are read), the
 * blocks' entries and restart arrays, keys strictly increasing, the header entry (one
 * shard, little-endian, a version this reader may read), and for every tensor its dtype
 * (float32), shape (known, rank <= TFCKPT_MAX_DIMS, product * 4 == size), byte range
 * (inside the data file, not overlapping another tensor) and the masked CRC32C of its
 * data. Only the entries whose key ends in "/.ATTRIBUTES/VARIABLE_VALUE" are tensors here
 * (a TF2 object checkpoint's variables); the others (the object graph, the layers' JSON
 * configs) are range-checked and skipped. Errors go through cg_fail ("PATH: reason",
 * naming the .index or .data file); nothing is printed. The whole checkpoint is read and
 * checked by tfckpt_open; afterwards nothing can fail. */
#ifndef CG_IO_TFCKPT_H
#define CG_IO_TFCKPT_H

#include <stddef.h>
#include <stdint.h>

#include "cartoongan.h"

#define TFCKPT_MAX_DIMS 8
/* The float tensors together may hold at most this many bytes (the light generator: 3.5
 * MB; the full CartoonGAN generator would be 44.5 MB). */
#define TFCKPT_MAX_TENSOR_BYTES (256u << 20)
/* .index files over this are refused before they are read (the light generator's: 15 KB). */
#define TFCKPT_MAX_INDEX_BYTES (64u << 20)

typedef struct {
    const char *name;              /* the key without "/.ATTRIBUTES/VARIABLE_VALUE", e.g.
                                      "flat_conv1/model/layer-1/kernel" */
    int ndim;                      /* 0 (a scalar) .. TFCKPT_MAX_DIMS */
    int64_t shape[TFCKPT_MAX_DIMS]; /* TensorFlow's order (kernels HWIO), outermost first */
    size_t count;                  /* the product of shape (1 for a scalar) */
    const float *data;             /* count floats in C order, bit-exact from the file;
                                      aligned; owned by the tfckpt */
} tfckpt_tensor;

typedef struct tfckpt tfckpt;

/* Opens and reads a checkpoint. `path` is a directory, whose `checkpoint` file names the
 * prefix (model_checkpoint_path, relative to the directory or absolute) or, without one,
 * which holds exactly one *.index file; or the PREFIX.index file itself. Returns
 * CG_ERR_IO (missing or unreadable files), CG_ERR_FORMAT (not a table or a bundle,
 * damaged: every CRC mismatch), CG_ERR_WEIGHTS (a tensor of another dtype or a bad
 * shape), CG_ERR_LIMIT (over the size limits above) or CG_ERR_NOMEM. */
cg_status tfckpt_open(tfckpt **out, const char *path);

/* The same from the two files' bytes in memory; `name` (e.g. "x") stands for the prefix
 * in messages ("x.index: ..."). The bytes are not kept. */
cg_status tfckpt_open_memory(tfckpt **out, const void *index, size_t index_size,
                             const void *data, size_t data_size, const char *name);

/* The float tensors, sorted by name (the table's order); i in [0, tfckpt_count). */
int tfckpt_count(const tfckpt *c);
const tfckpt_tensor *tfckpt_tensor_at(const tfckpt *c, int i);
/* The tensor of that name, or NULL. */
const tfckpt_tensor *tfckpt_find(const tfckpt *c, const char *name);
/* The .index file's path (or "NAME.index"), for messages. */
const char *tfckpt_index_path(const tfckpt *c);
/* NULL does nothing. */
void tfckpt_close(tfckpt *c);


#endif
