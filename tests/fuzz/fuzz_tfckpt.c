/* fuzz_tfckpt.c: libFuzzer target: the TensorFlow checkpoint reader (tfckpt_open_memory, the
 * in-memory half of tfckpt_open that `cartoongan export` runs on a checkpoint folder): the
 * table's footer, block CRCs and compression types, prefix-compressed keys, restart arrays
 * and separators, protobuf-c's parse of the header and entries, and the checks on dtypes,
 * shapes, byte ranges, overlaps and the tensors' CRCs. The input is
 *   [index length n, u32 little-endian][n bytes: the .index file][the rest: the .data file]
 * with n clamped to what there is. When no data bytes follow, the data file is 4 MiB of
 * zeros, so that a real index (the light generator's needs 3.6 MB of data) gets past the
 * range checks to its tensors' CRCs.
 *
 * Each input is read twice: as it is, and with the CRC of every block the footer and the
 * index point to made right again. A mutation inside a block almost always breaks its CRC,
 * so without the second reading the fuzzer would rarely get past the CRC checks to the
 * entries and protos behind them. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "io/crc32c.h"
#include "io/tfckpt.h"

#define ZERO_DATA_BYTES (4u << 20)

static const uint8_t zero_data[ZERO_DATA_BYTES];
static volatile float sink;

/* ---- putting the blocks' CRCs right (a walk of its own, trusting nothing) ---- */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 1;
    }
    return 0;
}

/* Rewrites the masked CRC after the block [off, off+size) when it lies inside the table;
 * 1 if it does. */
static int fix_block(uint8_t *p, size_t n, uint64_t off, uint64_t size) {
    if (n < 48 || off > n - 48 || size > n - 48 - off || n - 48 - off - size < 5) return 0;
    uint32_t crc = cg_crc32c_mask(cg_crc32c(p + off, (size_t)size + 1));
    for (int i = 0; i < 4; i++) p[off + size + 1 + i] = (uint8_t)(crc >> (8 * i));
    return 1;
}

/* The footer's two blocks, then every block handle in the index block's values. */
static void fix_crcs(uint8_t *p, size_t n) {
    if (n < 48) return;
    const uint8_t *f = p + n - 48, *fe = p + n - 8;
    uint64_t moff, msize, ioff, isize;
    if (!varint(&f, fe, &moff) || !varint(&f, fe, &msize) || !varint(&f, fe, &ioff) ||
        !varint(&f, fe, &isize))
        return;
    fix_block(p, n, moff, msize);
    if (!fix_block(p, n, ioff, isize) || isize < 4) return;
    const uint8_t *b = p + ioff;
    uint64_t nrest = le32(b + isize - 4);
    if (nrest > (isize - 4) / 4) return;
    const uint8_t *q = b, *end = b + isize - 4 - 4 * nrest;
    while (q < end) {
        uint64_t shared, non_shared, vlen, off, size;
        if (!varint(&q, end, &shared) || !varint(&q, end, &non_shared) || !varint(&q, end, &vlen) ||
            non_shared > (uint64_t)(end - q) || vlen > (uint64_t)(end - q) - non_shared)
            return;
        q += non_shared;
        const uint8_t *v = q, *ve = q + vlen;
        q = ve;
        if (varint(&v, ve, &off) && varint(&v, ve, &size)) fix_block(p, n, off, size);
    }
    /* the index block's own CRC again, in case a data block's fix landed inside it */
    fix_block(p, n, ioff, isize);
}

/* ---- the target ---- */

static void check(const uint8_t *index, size_t n, const uint8_t *d, size_t dn) {
    tfckpt *c = NULL;
    if (tfckpt_open_memory(&c, index, n, d, dn, "fuzz") != CG_OK) {
        if (c) abort();
        return;
    }
    /* accepted: the tensors are sorted by name, found by name, shaped as their counts say,
     * and their data (all of it touched, so ASan sees any overrun) fits in the data file,
     * which they share without overlapping */
    size_t total = 0;
    float s = 0;
    for (int i = 0; i < tfckpt_count(c); i++) {
        const tfckpt_tensor *t = tfckpt_tensor_at(c, i);
        if (!t || !t->name || t->ndim < 0 || t->ndim > TFCKPT_MAX_DIMS) abort();
        if (i > 0 && strcmp(tfckpt_tensor_at(c, i - 1)->name, t->name) >= 0) abort();
        if (tfckpt_find(c, t->name) != t) abort();
        size_t count = 1;
        for (int k = 0; k < t->ndim; k++) {
            if (t->shape[k] < 0) abort();
            count *= (size_t)t->shape[k];
        }
        if (count != t->count || count > dn / 4 - total / 4) abort();
        total += 4 * count;
        for (size_t k = 0; k < count; k++) s += t->data[k];
    }
    sink = s;
    tfckpt_close(c);
}

int fuzz_tfckpt(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t n = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    if (n > size - 4) n = size - 4;
    const uint8_t *index = data + 4, *d = index + n;
    size_t dn = size - 4 - n;
    if (dn == 0) d = zero_data, dn = ZERO_DATA_BYTES;
    check(index, n, d, dn);
    uint8_t *fixed = malloc(n ? n : 1);
    if (!fixed) return 0;
    if (n) memcpy(fixed, index, n);
    fix_crcs(fixed, n);
    if (n && memcmp(fixed, index, n)) check(fixed, n, d, dn);
    free(fixed);
    return 0;
}

FUZZ_TARGET(fuzz_tfckpt)
