/* tfckpt.c: TensorFlow checkpoints (tfckpt.h). The .index file is a LevelDB table
 * (leveldb/doc/table_format.md, as TensorFlow's tensorflow/core/lib/io/table writes it):
 *
 *   data blocks | metaindex block | index block | footer (48 bytes)
 *
 * The footer holds the metaindex's and the index's block handles (two varints each: offset,
 * size) and ends with the magic number. The index block maps a separator key to each data
 * block's handle. Every block is followed by a 1-byte compression type and the masked
 * CRC32C of block and type. Inside a block, entries are [shared][non_shared][value_length]
 * varints, the key's non-shared bytes and the value; keys are prefix-compressed against the
 * previous key except at the restart points, whose offsets (uint32) and count (uint32) end
 * the block. The first key is empty and its value is the BundleHeaderProto; every other
 * value is a BundleEntryProto (proto/tensor_bundle.proto, parsed with protobuf-c).
 *
 * The walk is in three steps, so that a damaged file is refused before anything is
 * allocated for the tensors: (1) the table: its structure, CRCs, keys and protos; (2) the
 * header and every entry's byte range against the data file's size; (3) the float tensors'
 * bytes, read into one aligned buffer and checked against their CRC32C. */
#include "io/tfckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/crc32c.h"
#include "status.h"
#include "tensor_bundle.pb-c.h"

#define TABLE_MAGIC 0xdb4775248b80fb57ull
#define FOOTER_BYTES 48
#define BLOCK_TRAILER 5 /* compression type, masked CRC32C */
#define VAR_SUFFIX "/.ATTRIBUTES/VARIABLE_VALUE"
#define DATA_SUFFIX ".data-00000-of-00001"
#define DT_FLOAT 1
#define BUNDLE_VERSION 1 /* TensorFlow's kTensorBundleVersion: what this reader is */
#define MAX_CHECKPOINT_FILE (64u << 10)

struct tfckpt {
    char *index_path;
    tfckpt_tensor *t; /* sorted by name */
    int n;
    float *values; /* every tensor's data */
};


/* ---- reading the table -------------------------------------------------------------- */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A varint of at most 10 bytes ending before `end`; 0 if it does not, or overflows. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        if (shift == 63 && b > 1) return 0;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 1;
        }
    }
    return 0;
}

typedef struct {
    uint64_t off, size;
} handle;

/* One entry of the table, kept between the walk and the range checks. */
typedef struct {
    char *key;       /* NUL-terminated (keys with a NUL byte are refused) */
    int is_var;      /* a VARIABLE_VALUE entry: a float tensor */
    int ndim;
    int64_t shape[TFCKPT_MAX_DIMS];
    uint64_t count;  /* values */
    uint64_t off, size;
    uint32_t crc;    /* masked */
} entry;

typedef struct {
    const char *ipath; /* for messages */
    const uint8_t *p;  /* the .index file */
    size_t n;
    /* the walk */
    uint8_t *prev;     /* the previous key */
    size_t prev_len, prev_cap;
    int have_prev, have_header;
    Tensorflow__BundleHeaderProto *header;
    entry *e;
    size_t ne, cap;
    uint64_t tensor_bytes;
} table;

/* The block `h` as `what` (for messages), its CRC and compression type checked. */
static cg_status read_block(table *t, handle h, const char *what, const uint8_t **out, size_t *len) {
    size_t end = t->n - FOOTER_BYTES;
    if (h.off > end || h.size > end - h.off || end - h.off - h.size < BLOCK_TRAILER)
        return cg_fail(CG_ERR_FORMAT, "%s: the %s block [%llu, +%llu) lies outside the table "
                                      "(%zu bytes; truncated?)", t->ipath, what,
                       (unsigned long long)h.off, (unsigned long long)h.size, t->n);
    const uint8_t *b = t->p + h.off;
    uint32_t stored = le32(b + h.size + 1);
    if (cg_crc32c_mask(cg_crc32c(b, (size_t)h.size + 1)) != stored)
        return cg_fail(CG_ERR_FORMAT, "%s: the %s block at offset %llu: CRC32C mismatch (the file "
                                      "is damaged)", t->ipath, what, (unsigned long long)h.off);
    uint8_t type = b[h.size];
    if (type == 1)
        return cg_fail(CG_ERR_FORMAT, "%s: the %s block at offset %llu is Snappy-compressed "
                                      "(compression type 1): only uncompressed tables are read",
                       t->ipath, what, (unsigned long long)h.off);
    if (type != 0)
        return cg_fail(CG_ERR_FORMAT, "%s: the %s block at offset %llu has the unknown compression "
                                      "type %u", t->ipath, what, (unsigned long long)h.off, type);
    *out = b;
    *len = (size_t)h.size;
    return CG_OK;
}

/* Walking one block's entries: the key rebuilt from the shared prefix, the value in place. */
typedef struct {
    const uint8_t *b;
    size_t entries_end, pos;
    uint32_t nrest, next_rest;
    uint8_t *key;
    size_t klen, kcap;
    const uint8_t *val;
    size_t vlen;
} block_iter;

static cg_status block_start(table *t, block_iter *it, const uint8_t *b, size_t len,
                             const char *what, uint64_t off) {
    memset(it, 0, sizeof *it);
    it->b = b;
    if (len < 4)
        return cg_fail(CG_ERR_FORMAT, "%s: the %s block at offset %llu is too short", t->ipath,
                       what, (unsigned long long)off);
    it->nrest = le32(b + len - 4);
    if (it->nrest > (len - 4) / 4)
        return cg_fail(CG_ERR_FORMAT, "%s: the %s block at offset %llu claims %u restart points, "
                                      "more than fit", t->ipath, what, (unsigned long long)off,
                       it->nrest);
    it->entries_end = len - 4 - 4 * (size_t)it->nrest;
    /* A block with entries starts with a restart point, and the points increase. An empty
     * block (LevelDB writes one restart at 0) has nothing to check. */
    if (it->entries_end == 0) {
        it->nrest = 0;
        return CG_OK;
    }
    const uint8_t *r = b + it->entries_end;
    for (uint32_t i = 0; i < it->nrest; i++) {
        uint32_t v = le32(r + 4 * (size_t)i);
        if ((i == 0 && v != 0) || (i > 0 && v <= le32(r + 4 * (size_t)(i - 1))) ||
            v >= it->entries_end)
            return cg_fail(CG_ERR_FORMAT, "%s: the %s block at offset %llu has a bad restart "
                                          "array (point %u at %u)", t->ipath, what,
                           (unsigned long long)off, i, v);
    }
    if (it->nrest == 0)
        return cg_fail(CG_ERR_FORMAT, "%s: the %s block at offset %llu has entries but no restart "
                                      "point", t->ipath, what, (unsigned long long)off);
    return CG_OK;
}

/* The next entry into it->key/klen and it->val/vlen: CG_OK with *done = 0, or *done = 1 at
 * the end of the block. */
static cg_status block_next(table *t, block_iter *it, const char *what, uint64_t off, int *done) {
    *done = 0;
    if (it->pos == it->entries_end) {
        if (it->next_rest != it->nrest) goto bad_restart;
        *done = 1;
        return CG_OK;
    }
    const uint8_t *p = it->b + it->pos, *end = it->b + it->entries_end;
    uint64_t shared, non_shared, vlen;
    if (!varint(&p, end, &shared) || !varint(&p, end, &non_shared) || !varint(&p, end, &vlen) ||
        shared > it->klen || non_shared > (size_t)(end - p) || vlen > (size_t)(end - p) - non_shared)
        return cg_fail(CG_ERR_FORMAT, "%s: the %s block at offset %llu has a malformed entry at "
                                      "byte %zu", t->ipath, what, (unsigned long long)off, it->pos);
    /* restart points are where keys are stored whole */
    if (it->next_rest < it->nrest) {
        uint32_t r = le32(it->b + it->entries_end + 4 * (size_t)it->next_rest);
        if (r < it->pos) goto bad_restart;
        if (r == it->pos) {
            if (shared != 0) goto bad_restart;
            it->next_rest++;
        }
    }
    size_t klen = (size_t)(shared + non_shared);
    if (klen > it->kcap) {
        size_t cap = klen < 64 ? 64 : klen;
        uint8_t *k = realloc(it->key, cap);
        if (!k) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", t->ipath);
        it->key = k, it->kcap = cap;
    }
    if (non_shared) memcpy(it->key + shared, p, (size_t)non_shared);
    it->klen = klen;
    it->val = p + non_shared;
    it->vlen = (size_t)vlen;
    it->pos = (size_t)(it->val + it->vlen - it->b);
    return CG_OK;
bad_restart:
    return cg_fail(CG_ERR_FORMAT, "%s: the %s block at offset %llu has a restart point that is "
                                  "not at an entry with a whole key", t->ipath, what,
                   (unsigned long long)off);
}

static int key_cmp(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
    size_t n = na < nb ? na : nb;
    int c = n ? memcmp(a, b, n) : 0; /* an empty key may have no buffer at all */
    if (c) return c;
    return na < nb ? -1 : na > nb;
}

/* A key for messages: printable ASCII, at most 200 characters, into buf. */
static const char *show_key(char *buf, size_t n, const uint8_t *k, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < n; i++) {
        if (i == 200) {
            o += (size_t)snprintf(buf + o, n - o, "...");
            break;
        }
        o += (size_t)snprintf(buf + o, n - o, k[i] >= 32 && k[i] < 127 ? "%c" : "\\x%02x", k[i]);
    }
    buf[o < n ? o : n - 1] = 0;
    return buf;
}

static size_t var_suffix_at(const uint8_t *k, size_t len) {
    size_t s = strlen(VAR_SUFFIX);
    return len >= s && memcmp(k + len - s, VAR_SUFFIX, s) == 0 ? len - s : (size_t)-1;
}

/* One BundleEntryProto: parsed and checked as far as it can be without the data file. */
static cg_status add_entry(table *t, const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen) {
    char kb[256];
    if (memchr(k, 0, klen))
        return cg_fail(CG_ERR_FORMAT, "%s: key '%s' holds a NUL byte", t->ipath,
                       show_key(kb, sizeof kb, k, klen));
    Tensorflow__BundleEntryProto *pe = tensorflow__bundle_entry_proto__unpack(NULL, vlen, v);
    if (!pe)
        return cg_fail(CG_ERR_FORMAT, "%s: the entry of '%s' is not a BundleEntryProto", t->ipath,
                       show_key(kb, sizeof kb, k, klen));
    cg_status s = CG_OK;
    if (t->ne == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 256;
        entry *ne = realloc(t->e, cap * sizeof *ne);
        if (!ne) {
            s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", t->ipath);
            goto done;
        }
        t->e = ne, t->cap = cap;
    }
    entry *e = &t->e[t->ne];
    memset(e, 0, sizeof *e);
    size_t name_len = var_suffix_at(k, klen);
    e->is_var = name_len != (size_t)-1;
    if (!e->is_var) name_len = klen;
    if ((e->key = malloc(name_len + 1)) == NULL) {
        s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", t->ipath);
        goto done;
    }
    memcpy(e->key, k, name_len);
    e->key[name_len] = 0;
    t->ne++;
    const char *name = show_key(kb, sizeof kb, k, name_len);
    if (pe->shard_id != 0 || pe->offset < 0 || pe->size < 0) {
        s = cg_fail(CG_ERR_FORMAT, "%s: %s '%s' has shard %d, offset %lld, size %lld (expected "
                                   "shard 0 and no negative numbers)", t->ipath,
                    e->is_var ? "tensor" : "entry", name, (int)pe->shard_id,
                    (long long)pe->offset, (long long)pe->size);
        goto done;
    }
    e->off = (uint64_t)pe->offset;
    e->size = (uint64_t)pe->size;
    e->crc = pe->crc32c;
    if (!e->is_var) goto done; /* the object graph and the layers' configs: not read */

    if (name_len == 0) {
        s = cg_fail(CG_ERR_FORMAT, "%s: a variable with an empty name", t->ipath);
        goto done;
    }
    if (pe->n_slices) {
        s = cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s is a partitioned variable (%zu slices), which is "
                                    "not supported", t->ipath, name, pe->n_slices);
        goto done;
    }
    if (pe->dtype != DT_FLOAT) {
        s = cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s has TensorFlow dtype %d%s, expected float32 "
                                    "(DT_FLOAT, 1)", t->ipath, name, (int)pe->dtype,
                    pe->dtype == 2 ? " (DT_DOUBLE)" : pe->dtype == 19 ? " (DT_HALF)"
                    : pe->dtype == 14 ? " (DT_BFLOAT16)" : pe->dtype == 9 ? " (DT_INT64)" : "");
        goto done;
    }
    /* no shape message: a scalar, as proto3 reads an absent message as its default */
    Tensorflow__TensorShapeProto *sh = pe->shape;
    if (sh && (sh->unknown_rank || sh->n_dim > TFCKPT_MAX_DIMS)) {
        s = sh->unknown_rank
                ? cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s has an unknown rank", t->ipath, name)
                : cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s has %zu dimensions, more than %d", t->ipath,
                          name, sh->n_dim, TFCKPT_MAX_DIMS);
        goto done;
    }
    e->ndim = sh ? (int)sh->n_dim : 0;
    /* the values' count, unless it overflows (then it cannot match any size) */
    uint64_t count = 1;
    int overflow = 0;
    for (int i = 0; i < e->ndim; i++) {
        int64_t d = sh->dim[i]->size;
        if (d < 0) {
            s = cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s has a dimension of unknown size (%lld)",
                        t->ipath, name, (long long)d);
            goto done;
        }
        e->shape[i] = d;
        if (d && count > UINT64_MAX / 4 / (uint64_t)d) overflow = 1;
        else count *= (uint64_t)d;
    }
    if (overflow || count * 4 != e->size) {
        char vals[32];
        snprintf(vals, sizeof vals, overflow ? "over 2^62" : "%llu", (unsigned long long)count);
        s = cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s has a shape of %s values of 4 bytes but %llu "
                                    "bytes of data", t->ipath, name, vals,
                    (unsigned long long)e->size);
        goto done;
    }
    e->count = count;
    if (e->size > TFCKPT_MAX_TENSOR_BYTES - t->tensor_bytes) {
        s = cg_fail(CG_ERR_LIMIT, "%s: the float tensors hold more than %u MB", t->ipath,
                    TFCKPT_MAX_TENSOR_BYTES >> 20);
        goto done;
    }
    t->tensor_bytes += e->size;
done:
    tensorflow__bundle_entry_proto__free_unpacked(pe, NULL);
    return s;
}

/* One key/value of a data block: in order, then the header or an entry. */
static cg_status table_entry(table *t, const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen) {
    char kb[256];
    if (t->have_prev && key_cmp(t->prev, t->prev_len, k, klen) >= 0)
        return cg_fail(CG_ERR_FORMAT, "%s: key '%s' is out of order or repeated", t->ipath,
                       show_key(kb, sizeof kb, k, klen));
    if (klen > t->prev_cap) {
        uint8_t *nk = realloc(t->prev, klen);
        if (!nk) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", t->ipath);
        t->prev = nk, t->prev_cap = klen;
    }
    if (klen) memcpy(t->prev, k, klen);
    t->prev_len = klen;
    t->have_prev = 1;
    if (klen == 0) { /* the smallest key: the table's first entry */
        t->header = tensorflow__bundle_header_proto__unpack(NULL, vlen, v);
        if (!t->header)
            return cg_fail(CG_ERR_FORMAT, "%s: the header entry is not a BundleHeaderProto", t->ipath);
        t->have_header = 1;
        return CG_OK;
    }
    if (!t->have_header)
        return cg_fail(CG_ERR_FORMAT, "%s: not a TensorFlow checkpoint index (no header entry "
                                      "before '%s')", t->ipath, show_key(kb, sizeof kb, k, klen));
    return add_entry(t, k, klen, v, vlen);
}

/* Step 1: the footer, the index block, every data block in turn. */
static cg_status walk_table(table *t) {
    if (t->n < FOOTER_BYTES)
        return cg_fail(CG_ERR_FORMAT, "%s: %zu bytes, too short to be a table (truncated?)",
                       t->ipath, t->n);
    const uint8_t *foot = t->p + t->n - FOOTER_BYTES;
    uint64_t magic = (uint64_t)le32(foot + 40) | (uint64_t)le32(foot + 44) << 32;
    if (magic != TABLE_MAGIC)
        return cg_fail(CG_ERR_FORMAT, "%s: not a TensorFlow checkpoint index (no table magic "
                                      "number at the end; truncated?)", t->ipath);
    const uint8_t *fp = foot;
    handle meta, index;
    if (!varint(&fp, foot + 40, &meta.off) || !varint(&fp, foot + 40, &meta.size) ||
        !varint(&fp, foot + 40, &index.off) || !varint(&fp, foot + 40, &index.size))
        return cg_fail(CG_ERR_FORMAT, "%s: malformed table footer", t->ipath);

    /* the metaindex (filters; TensorFlow writes none): checked, not used */
    const uint8_t *b;
    size_t len;
    block_iter it = {0};
    int done = 0;
    cg_status s = read_block(t, meta, "metaindex", &b, &len);
    if (s == CG_OK) s = block_start(t, &it, b, len, "metaindex", meta.off);
    while (s == CG_OK && !done) s = block_next(t, &it, "metaindex", meta.off, &done);
    free(it.key);
    if (s != CG_OK) return s;

    const uint8_t *ib;
    size_t ilen;
    block_iter ii = {0};
    s = read_block(t, index, "index", &ib, &ilen);
    if (s == CG_OK) s = block_start(t, &ii, ib, ilen, "index", index.off);
    uint8_t *sep = NULL; /* the previous index key */
    size_t sep_len = 0;
    int have_sep = 0;
    uint64_t next_free = 0; /* data blocks lie in order, one after the other */
    for (int bi = 0; s == CG_OK; bi++) {
        s = block_next(t, &ii, "index", index.off, &done);
        if (s != CG_OK || done) break;
        handle h;
        const uint8_t *vp = ii.val, *ve = ii.val + ii.vlen;
        if (!varint(&vp, ve, &h.off) || !varint(&vp, ve, &h.size) || vp != ve) {
            s = cg_fail(CG_ERR_FORMAT, "%s: index entry %d is not a block handle", t->ipath, bi);
            break;
        }
        if (h.off < next_free) {
            s = cg_fail(CG_ERR_FORMAT, "%s: data block %d at offset %llu overlaps the one before",
                        t->ipath, bi, (unsigned long long)h.off);
            break;
        }
        char what[32];
        snprintf(what, sizeof what, "data block %d's", bi);
        block_iter di = {0};
        s = read_block(t, h, "data", &b, &len);
        if (s == CG_OK) s = block_start(t, &di, b, len, "data", h.off);
        while (s == CG_OK) {
            s = block_next(t, &di, "data", h.off, &done);
            if (s != CG_OK || done) break;
            /* every key lies between the previous index key and this one (LevelDB's
             * separators), which is how TensorFlow finds a tensor's block */
            if (key_cmp(di.key, di.klen, ii.key, ii.klen) > 0 ||
                (have_sep && key_cmp(di.key, di.klen, sep, sep_len) <= 0)) {
                char kb[256];
                s = cg_fail(CG_ERR_FORMAT, "%s: key '%s' lies outside %s range in the index",
                            t->ipath, show_key(kb, sizeof kb, di.key, di.klen), what);
                break;
            }
            s = table_entry(t, di.key, di.klen, di.val, di.vlen);
        }
        free(di.key);
        if (s != CG_OK) break;
        next_free = h.off + h.size + BLOCK_TRAILER;
        if (ii.klen > sep_len || !sep) {
            uint8_t *ns = realloc(sep, ii.klen ? ii.klen : 1);
            if (!ns) {
                s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", t->ipath);
                break;
            }
            sep = ns;
        }
        if (ii.klen) memcpy(sep, ii.key, ii.klen);
        sep_len = ii.klen;
        have_sep = 1;
    }
    free(sep);
    free(ii.key);
    if (s != CG_OK) return s;
    if (!t->have_header)
        return cg_fail(CG_ERR_FORMAT, "%s: not a TensorFlow checkpoint index (no header entry)",
                       t->ipath);
    return CG_OK;
}

/* ---- the header, the ranges, the data ----------------------------------------------- */

/* Step 2a: what TensorFlow's reader checks of the header, for the one layout read here. */
static cg_status check_header(const table *t) {
    const Tensorflow__BundleHeaderProto *h = t->header;
    if (h->num_shards != 1)
        return cg_fail(CG_ERR_FORMAT, "%s: the checkpoint has %d data files; only single-file "
                                      "checkpoints (" DATA_SUFFIX ") are read", t->ipath,
                       (int)h->num_shards);
    if (h->endianness != 0)
        return cg_fail(CG_ERR_FORMAT, "%s: the checkpoint is %s; only little-endian ones are read",
                       t->ipath, h->endianness == 1 ? "big-endian" : "of an unknown byte order");
    const Tensorflow__VersionDef *v = h->version;
    if (v) {
        int bad = v->min_consumer > BUNDLE_VERSION;
        for (size_t i = 0; i < v->n_bad_consumers; i++) bad |= v->bad_consumers[i] == BUNDLE_VERSION;
        if (bad || v->producer < 0)
            return cg_fail(CG_ERR_FORMAT, "%s: the checkpoint's format version (producer %d, "
                                          "min_consumer %d) is newer than this reader (%d)",
                           t->ipath, (int)v->producer, (int)v->min_consumer, BUNDLE_VERSION);
    }
    return CG_OK;
}

static int by_offset(const void *a, const void *b) {
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Step 2b: every entry's bytes inside the data file; the tensors' bytes not shared. */
static cg_status check_ranges(const table *t, const char *dpath, uint64_t dsize) {
    size_t nv = 0;
    for (size_t i = 0; i < t->ne; i++) {
        const entry *e = &t->e[i];
        if (e->off > dsize || e->size > dsize - e->off)
            return cg_fail(CG_ERR_FORMAT, "%s: %s '%s' has bytes [%llu, %llu) past the end of the "
                                          "data file (%llu bytes; truncated?)", dpath,
                           e->is_var ? "tensor" : "entry", e->key, (unsigned long long)e->off,
                           (unsigned long long)(e->off + e->size), (unsigned long long)dsize);
        nv += e->is_var;
    }
    const entry **v = malloc((nv ? nv : 1) * sizeof *v);
    if (!v) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", dpath);
    nv = 0;
    for (size_t i = 0; i < t->ne; i++)
        if (t->e[i].is_var && t->e[i].size) v[nv++] = &t->e[i];
    qsort(v, nv, sizeof *v, by_offset);
    cg_status s = CG_OK;
    for (size_t i = 1; i < nv && s == CG_OK; i++)
        if (v[i]->off < v[i - 1]->off + v[i - 1]->size)
            s = cg_fail(CG_ERR_FORMAT, "%s: tensors %s and %s overlap in the data file", dpath,
                        v[i - 1]->key, v[i]->key);
    free(v);
    return s;
}

/* Where the data comes from: a file (pread) or memory. */
typedef struct {
    const char *path;
    int fd;
    const uint8_t *mem;
} data_src;

static cg_status read_range(const data_src *d, uint8_t *dst, uint64_t off, size_t n) {
    if (d->mem) {
        if (n) memcpy(dst, d->mem + off, n);
        return CG_OK;
    }
    while (n) {
        ssize_t r = pread(d->fd, dst, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return cg_fail(CG_ERR_IO, "%s: read error: %s", d->path,
                           r < 0 ? strerror(errno) : "the file shrank while being read");
        dst += r, off += (uint64_t)r, n -= (size_t)r;
    }
    return CG_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const tfckpt_tensor *)a)->name, ((const tfckpt_tensor *)b)->name);
}

/* Step 3: the tensors' bytes, CRC-checked, into c. The names move from t to c. */
static cg_status read_tensors(table *t, const data_src *d, tfckpt *c) {
    size_t nv = 0;
    for (size_t i = 0; i < t->ne; i++) nv += t->e[i].is_var;
    if (nv > (size_t)INT32_MAX) return cg_fail(CG_ERR_LIMIT, "%s: too many tensors", t->ipath);
    c->t = calloc(nv ? nv : 1, sizeof *c->t);
    /* tensor_bytes <= TFCKPT_MAX_TENSOR_BYTES, checked entry by entry */
    c->values = malloc(t->tensor_bytes ? (size_t)t->tensor_bytes : 1);
    if (!c->t || !c->values) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", t->ipath);
    size_t at = 0; /* floats used */
    for (size_t i = 0; i < t->ne; i++) {
        entry *e = &t->e[i];
        if (!e->is_var) continue;
        uint8_t *raw = (uint8_t *)(c->values + at);
        cg_status s = read_range(d, raw, e->off, (size_t)e->size);
        if (s != CG_OK) return s;
        if (cg_crc32c_mask(cg_crc32c(raw, (size_t)e->size)) != e->crc)
            return cg_fail(CG_ERR_FORMAT, "%s: tensor %s: CRC32C mismatch (the data is damaged)",
                           d->path, e->key);
        /* little-endian bytes to floats, in place (a no-op on little-endian machines) */
        for (size_t k = 0; k < (size_t)e->count; k++) {
            uint32_t u = le32(raw + 4 * k);
            memcpy(raw + 4 * k, &u, 4);
        }
        tfckpt_tensor *ct = &c->t[c->n++];
        ct->name = e->key;
        e->key = NULL;
        ct->ndim = e->ndim;
        memcpy(ct->shape, e->shape, sizeof ct->shape);
        ct->count = (size_t)e->count;
        ct->data = c->values + at;
        at += (size_t)e->count;
    }
    if (c->n > 1) qsort(c->t, (size_t)c->n, sizeof *c->t, by_name);
    return CG_OK;
}

static void table_free(table *t) {
    for (size_t i = 0; i < t->ne; i++) free(t->e[i].key);
    free(t->e);
    free(t->prev);
    if (t->header) tensorflow__bundle_header_proto__free_unpacked(t->header, NULL);
}

/* Steps 1-3 with the index in memory and the data from d, whose size is known. */
static cg_status load(tfckpt **out, const uint8_t *index, size_t index_size, const data_src *d,
                      uint64_t data_size, char *index_path) {
    table t = {.ipath = index_path, .p = index, .n = index_size};
    tfckpt *c = calloc(1, sizeof *c);
    cg_status s = c ? CG_OK : cg_fail(CG_ERR_NOMEM, "%s: out of memory", index_path);
    if (s == CG_OK) {
        c->index_path = index_path;
        index_path = NULL;
        s = walk_table(&t);
    }
    if (s == CG_OK) s = check_header(&t);
    if (s == CG_OK) s = check_ranges(&t, d->path, data_size);
    if (s == CG_OK) s = read_tensors(&t, d, c);
    table_free(&t);
    free(index_path);
    if (s != CG_OK) {
        tfckpt_close(c);
        return s;
    }
    *out = c;
    return CG_OK;
}

static char *concat(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *r = malloc(na + nb + 1);
    if (r) {
        memcpy(r, a, na);
        memcpy(r + na, b, nb + 1);
    }
    return r;
}

cg_status tfckpt_open_memory(tfckpt **out, const void *index, size_t index_size,
                             const void *data, size_t data_size, const char *name) {
    if (!out || (!index && index_size) || (!data && data_size) || !name)
        return cg_fail(CG_ERR_ARG, "tfckpt_open_memory: bad argument");
    *out = NULL;
    char *ipath = concat(name, ".index"), *dpath = concat(name, DATA_SUFFIX);
    static const uint8_t none[1];
    data_src d = {.path = dpath, .fd = -1, .mem = data ? data : none};
    cg_status s = ipath && dpath ? load(out, index ? index : none, index_size, &d, data_size, ipath)
                                 : cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    if (!(ipath && dpath)) free(ipath);
    free(dpath);
    return s;
}

/* ---- finding the files -------------------------------------------------------------- */

/* The model_checkpoint_path of DIR/checkpoint (a text-format CheckpointState), malloc'd
 * into *prefix; *prefix stays NULL (and CG_OK) when there is no such file. */
static cg_status checkpoint_file_prefix(const char *dir, char **prefix) {
    *prefix = NULL;
    char *path = concat(dir, "/checkpoint");
    if (!path) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        cg_status s = errno == ENOENT ? CG_OK
                                      : cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        free(path);
        return s;
    }
    char *buf = malloc(MAX_CHECKPOINT_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_CHECKPOINT_FILE + 1, f) : 0;
    fclose(f);
    cg_status s = CG_OK;
    if (!buf) {
        s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (n > MAX_CHECKPOINT_FILE) {
        s = cg_fail(CG_ERR_FORMAT, "%s: over %u KB, not a checkpoint state file", path,
                    MAX_CHECKPOINT_FILE >> 10);
        goto done;
    }
    buf[n] = 0;
    const char *key = "model_checkpoint_path";
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (strncmp(p, key, strlen(key)) != 0) continue;
        p += strlen(key);
        while (*p == ' ' || *p == '\t') p++;
        if (*p++ != ':') continue;
        while (*p == ' ' || *p == '\t') p++;
        if (*p != '"' && *p != '\'') break;
        char quote = *p++, *v = p, *o = p; /* unescaped in place */
        for (; *p && *p != quote && *p != '\n'; p++) {
            if (*p == '\\') {
                p++;
                if (*p != '\\' && *p != '"' && *p != '\'') {
                    s = cg_fail(CG_ERR_FORMAT, "%s: model_checkpoint_path has an escape this "
                                               "reader does not decode", path);
                    goto done;
                }
            }
            *o++ = *p;
        }
        if (*p != quote) break;
        *o = 0;
        if (!*v) break;
        *prefix = v[0] == '/' ? strdup(v) : NULL;
        if (v[0] != '/') {
            char *d = concat(dir, "/");
            *prefix = d ? concat(d, v) : NULL;
            free(d);
        }
        if (!*prefix) s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    s = cg_fail(CG_ERR_FORMAT, "%s: no model_checkpoint_path: \"...\" line", path);
done:
    free(buf);
    free(path);
    return s;
}

/* The prefix of the only *.index file in dir, malloc'd into *prefix. */
static cg_status only_index_prefix(const char *dir, char **prefix) {
    *prefix = NULL;
    DIR *d = opendir(dir);
    if (!d) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    int found = 0;
    struct dirent *e;
    cg_status s = CG_OK;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= 6 || strcmp(e->d_name + n - 6, ".index") != 0 || e->d_name[0] == '.') continue;
        if (found++) continue;
        char *dd = concat(dir, "/");
        *prefix = dd ? concat(dd, e->d_name) : NULL;
        free(dd);
        if (!*prefix) {
            s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", dir);
            break;
        }
        (*prefix)[strlen(*prefix) - 6] = 0;
    }
    closedir(d);
    if (s == CG_OK && found != 1)
        s = found ? cg_fail(CG_ERR_IO, "%s: %d .index files and no `checkpoint` file saying which "
                                       "to read", dir, found)
                  : cg_fail(CG_ERR_IO, "%s: no TensorFlow checkpoint here (no `checkpoint` file, no "
                                       "*.index file)", dir);
    if (s != CG_OK) {
        free(*prefix);
        *prefix = NULL;
    }
    return s;
}

/* The whole file (at most max bytes) into *buf. */
static cg_status read_file(const char *path, size_t max, uint8_t **buf, size_t *n) {
    *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    cg_status s = CG_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) s = cg_fail(CG_ERR_IO, "%s: not a regular file", path);
    else if ((uint64_t)st.st_size > max)
        s = cg_fail(CG_ERR_LIMIT, "%s: %lld bytes, over the limit of %zu MB for a checkpoint index",
                    path, (long long)st.st_size, max >> 20);
    else if ((*buf = malloc(st.st_size ? (size_t)st.st_size : 1)) == NULL)
        s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    else {
        data_src d = {.path = path, .fd = fd};
        *n = (size_t)st.st_size;
        s = read_range(&d, *buf, 0, *n);
    }
    close(fd);
    if (s != CG_OK) {
        free(*buf);
        *buf = NULL;
    }
    return s;
}

cg_status tfckpt_open(tfckpt **out, const char *path) {
    if (!out || !path || !*path) return cg_fail(CG_ERR_ARG, "tfckpt_open: no path given");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *prefix = NULL;
    cg_status s = CG_OK;
    if (S_ISDIR(st.st_mode)) {
        s = checkpoint_file_prefix(path, &prefix);
        if (s == CG_OK && !prefix) s = only_index_prefix(path, &prefix);
    } else {
        size_t n = strlen(path);
        if (n <= 6 || strcmp(path + n - 6, ".index") != 0)
            return cg_fail(CG_ERR_FORMAT, "%s: not a checkpoint directory or .index file", path);
        if ((prefix = strdup(path)) == NULL) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
        prefix[n - 6] = 0;
    }
    if (s != CG_OK) return s;
    char *ipath = concat(prefix, ".index"), *dpath = concat(prefix, DATA_SUFFIX);
    free(prefix);
    uint8_t *index = NULL;
    size_t index_size = 0;
    int fd = -1;
    if (!ipath || !dpath) s = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    if (s == CG_OK) s = read_file(ipath, TFCKPT_MAX_INDEX_BYTES, &index, &index_size);
    if (s == CG_OK && (fd = open(dpath, O_RDONLY | O_CLOEXEC)) < 0)
        s = cg_fail(CG_ERR_IO, "%s: cannot open: %s", dpath, strerror(errno));
    if (s == CG_OK && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)))
        s = cg_fail(CG_ERR_IO, "%s: not a regular file", dpath);
    if (s == CG_OK) {
        data_src d = {.path = dpath, .fd = fd};
        s = load(out, index, index_size, &d, (uint64_t)st.st_size, ipath);
        ipath = NULL; /* load owns it */
    }
    if (fd >= 0) close(fd);
    free(index);
    free(ipath);
    free(dpath);
    return s;
}

/* ---- access ------------------------------------------------------------------------- */

int tfckpt_count(const tfckpt *c) { return c ? c->n : 0; }

const tfckpt_tensor *tfckpt_tensor_at(const tfckpt *c, int i) {
    return c && i >= 0 && i < c->n ? &c->t[i] : NULL;
}

const tfckpt_tensor *tfckpt_find(const tfckpt *c, const char *name) {
    if (!c || !name) return NULL;
    tfckpt_tensor key = {.name = name};
    return bsearch(&key, c->t, (size_t)c->n, sizeof *c->t, by_name);
}

const char *tfckpt_index_path(const tfckpt *c) { return c ? c->index_path : ""; }

void tfckpt_close(tfckpt *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) free((char *)c->t[i].name);
    free(c->t);
    free(c->values);
    free(c->index_path);
    free(c);
}
