/* test_tfckpt.c: the TensorFlow checkpoint reader (src/io/tfckpt.c).
 *  - CRC32C against RFC 3720's test vectors;
 *  - the seed project's two light checkpoints (set up by `make` in
 *    $CARTOONGAN_WEIGHTS/ckpt/, default weights/ckpt/): 126 tensors, names and shapes
 *    equal to light_params.h, values at known offsets equal to what an independent Python
 *    reading of the files gave, and weights/light_*.safetensors (written by `cartoongan
 *    export` in make) holding the same bytes for every tensor;
 *  - damaged copies of the real files (a byte flipped in a data block, the index block, a
 *    tensor's data; truncated index and data; a bad magic), each refused with its reason;
 *  - small checkpoints written here by a table writer of its own (LevelDB blocks with
 *    prefix-compressed keys and restart arrays, protobuf-c for the protos), valid in several
 *    block layouts, and with one thing wrong at a time (dtype, shape, size, offset,
 *    overlap, compression, key order, header fields, restart array, separator keys, ...).
 * `test_tfckpt fixtures DIR` writes tests/data/tfckpt/tiny_ckpt/ (a checkpoint that is not
 * the light generator, for test_export_cli.sh), and `test_tfckpt seeds DIR` writes the
 * fuzz_tfckpt seeds ([u32 index length][index][data]). Run from the repository root. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "cartoongan.h"
#include "io/crc32c.h"
#include "io/tfckpt.h"
#include "model/light_params.h"
#include "model/safetensors.h"
#include "tensor_bundle.pb-c.h"
#include "test.h"

#define VAR "/.ATTRIBUTES/VARIABLE_VALUE"
#define DATA_NAME ".data-00000-of-00001"

/* ---- bytes ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u8(buf *b, uint8_t v) { put(b, &v, 1); }
static void put_le32(buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}
static void put_varint(buf *b, uint64_t v) {
    while (v >= 0x80) {
        put_u8(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_u8(b, (uint8_t)v);
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    buf b = {0};
    uint8_t tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) put(&b, tmp, k);
    fclose(f);
    *n = b.n;
    if (!b.p) b.p = malloc(1);
    return b.p;
}

static int write_all(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int write_str(const char *path, const char *text) { return write_all(path, text, strlen(text)); }

/* ---- a LevelDB table writer ---- */

typedef struct {
    char *key;
    size_t klen;
    uint8_t *val;
    size_t vlen;
} kv;

typedef struct {
    int per_block;   /* entries per data block (0: all in one) */
    int restart;     /* restart interval (0: 16, as LevelDB) */
    int compression; /* the first data block's type byte (0: none) */
    int bad_restart; /* the first data block's second restart point inside an entry */
    int bad_sep;     /* the first index key below its block's last key */
} layout;

/* Appends one block (entries e[0..n), trailer with the masked CRC) to f; its handle out. */
static void write_block(buf *f, const kv *e, int n, int restart, int type, int bad_restart,
                        uint64_t *off, uint64_t *size) {
    buf b = {0};
    uint32_t *rest = malloc(sizeof *rest * (size_t)(n + 2));
    int nr = 0;
    for (int i = 0; i < n; i++) {
        size_t shared = 0;
        if (i % restart) {
            while (shared < e[i].klen && shared < e[i - 1].klen && e[i].key[shared] == e[i - 1].key[shared])
                shared++;
        } else {
            rest[nr++] = (uint32_t)b.n;
        }
        put_varint(&b, shared);
        put_varint(&b, e[i].klen - shared);
        put_varint(&b, e[i].vlen);
        put(&b, e[i].key + shared, e[i].klen - shared);
        put(&b, e[i].val, e[i].vlen);
    }
    if (n == 0) rest[nr++] = 0;
    if (bad_restart && nr >= 2) rest[1] += 1;
    for (int i = 0; i < nr; i++) put_le32(&b, rest[i]);
    put_le32(&b, (uint32_t)nr);
    *off = f->n;
    *size = b.n;
    put_u8(&b, (uint8_t)type);
    uint32_t crc = cg_crc32c_mask(cg_crc32c(b.p, b.n));
    put(f, b.p, b.n);
    put_le32(f, crc);
    free(b.p);
    free(rest);
}

/* The whole .index file for the sorted entries e[0..n). */
static void write_table(buf *f, const kv *e, int n, const layout *L) {
    int per = L->per_block ? L->per_block : n, restart = L->restart ? L->restart : 16;
    int nb = n ? (n + per - 1) / per : 0;
    kv *idx = calloc((size_t)nb + 1, sizeof *idx);
    buf *hv = calloc((size_t)nb + 1, sizeof *hv);
    for (int bi = 0; bi < nb; bi++) {
        int first = bi * per, cnt = n - first < per ? n - first : per;
        uint64_t off, size;
        write_block(f, e + first, cnt, restart, bi == 0 ? L->compression : 0,
                    bi == 0 && L->bad_restart, &off, &size);
        put_varint(&hv[bi], off);
        put_varint(&hv[bi], size);
        /* the block's greatest key is a valid separator (the last, unless the test put
         * keys out of order); bad_sep: its first instead */
        const kv *last = &e[first];
        for (int i = first + 1; i < first + cnt; i++) {
            size_t m = last->klen < e[i].klen ? last->klen : e[i].klen;
            int c = memcmp(e[i].key, last->key, m);
            if (c > 0 || (c == 0 && e[i].klen > last->klen)) last = &e[i];
        }
        idx[bi] = (kv){last->key, last->klen, hv[bi].p, hv[bi].n};
        if (bi == 0 && L->bad_sep) idx[bi].key = e[first].key, idx[bi].klen = e[first].klen;
    }
    uint64_t moff, msize, ioff, isize;
    write_block(f, NULL, 0, 16, 0, 0, &moff, &msize);
    write_block(f, idx, nb, 1, 0, 0, &ioff, &isize);
    buf foot = {0};
    put_varint(&foot, moff);
    put_varint(&foot, msize);
    put_varint(&foot, ioff);
    put_varint(&foot, isize);
    while (foot.n < 40) put_u8(&foot, 0);
    put_le32(&foot, 0x8b80fb57u);
    put_le32(&foot, 0xdb477524u);
    put(f, foot.p, foot.n);
    free(foot.p);
    for (int i = 0; i < nb; i++) free(hv[i].p);
    free(hv);
    free(idx);
}

/* ---- a small checkpoint, with one thing wrong at a time ---- */

/* Tensors: a [2][3] and b/x (a scalar), plus two string entries that the reader skips. */
static const float A_VALUES[6] = {0.0f, 1.0f, -2.0f, 3.5f, 1e-9f, 1e9f};
static const float B_VALUE = 42.0f;

typedef struct {
    layout L;
    int no_header, num_shards, endianness, min_consumer, bad_consumer;
    int dtype_b;          /* 0: float */
    int64_t size_a_delta; /* added to a's size */
    int64_t offset_b;     /* > 0: b's offset */
    int b_overlaps_a;     /* b's 4 bytes inside a's */
    int flip_data;        /* a byte of a's data flipped after the CRC */
    int swap_keys, dup_key, nul_key, empty_name;
    int slices, unknown_rank, rank9;
    int64_t dim0;         /* != 0: a's first dimension */
    int huge_dims;        /* a's shape overflows 64 bits */
    int bad_string_crc;   /* the string entries' CRCs wrong (not checked by the reader) */
    int negative_offset, shard1;
} mutate;

typedef struct {
    buf index, data;
} ckpt;

static void pack_entry(kv *e, const char *key, size_t klen, Tensorflow__BundleEntryProto *pe) {
    e->key = malloc(klen + 1);
    memcpy(e->key, key, klen);
    e->klen = klen;
    e->vlen = tensorflow__bundle_entry_proto__get_packed_size(pe);
    e->val = malloc(e->vlen + 1);
    tensorflow__bundle_entry_proto__pack(pe, e->val);
}

static void make_ckpt(ckpt *c, const mutate *m) {
    memset(c, 0, sizeof *c);
    /* the data file: the graph, the config, a, b */
    const char *graph = "graph", *config = "{}";
    uint64_t off_graph = c->data.n;
    put(&c->data, graph, 5);
    uint64_t off_config = c->data.n;
    put(&c->data, config, 2);
    uint64_t off_a = c->data.n; /* 7: not aligned, as real checkpoints' offsets are not */
    for (int i = 0; i < 6; i++) {
        uint32_t u;
        memcpy(&u, &A_VALUES[i], 4);
        put_le32(&c->data, u);
    }
    uint64_t off_b = c->data.n;
    uint32_t ub;
    memcpy(&ub, &B_VALUE, 4);
    put_le32(&c->data, ub);
    uint32_t crc_a = cg_crc32c_mask(cg_crc32c(c->data.p + off_a, 24));
    uint32_t crc_b = cg_crc32c_mask(cg_crc32c(c->data.p + off_b, 4));
    if (m->flip_data) c->data.p[off_a + 5] ^= 0x10;

    kv e[8];
    int n = 0;
    if (!m->no_header) {
        Tensorflow__VersionDef v = TENSORFLOW__VERSION_DEF__INIT;
        v.producer = 1;
        v.min_consumer = m->min_consumer;
        int32_t bad[1] = {1};
        if (m->bad_consumer) v.n_bad_consumers = 1, v.bad_consumers = bad;
        Tensorflow__BundleHeaderProto h = TENSORFLOW__BUNDLE_HEADER_PROTO__INIT;
        h.num_shards = m->num_shards ? m->num_shards : 1;
        h.endianness = m->endianness;
        h.version = &v;
        e[n].key = malloc(1);
        e[n].klen = 0;
        e[n].vlen = tensorflow__bundle_header_proto__get_packed_size(&h);
        e[n].val = malloc(e[n].vlen + 1);
        tensorflow__bundle_header_proto__pack(&h, e[n].val);
        n++;
    }
    Tensorflow__TensorShapeProto empty_shape = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    Tensorflow__BundleEntryProto s = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
    s.dtype = 7;
    s.shape = &empty_shape;
    s.offset = (int64_t)off_graph;
    s.size = 5;
    s.crc32c = m->bad_string_crc ? 0xdeadbeef : cg_crc32c_mask(cg_crc32c(graph, 5));
    /* empty_name: the graph's entry keyed as a variable without a name (still first) */
    if (m->empty_name) pack_entry(&e[n++], VAR, strlen(VAR), &s);
    else pack_entry(&e[n++], "_CHECKPOINTABLE_OBJECT_GRAPH", 28, &s);
    s.offset = (int64_t)off_config;
    s.size = 2;
    s.crc32c = m->bad_string_crc ? 0x12345678 : cg_crc32c_mask(cg_crc32c(config, 2));
    const char *ck = "a/.ATTRIBUTES/OBJECT_CONFIG_JSON";
    pack_entry(&e[n++], ck, strlen(ck), &s);

    /* a [2][3] */
    Tensorflow__TensorShapeProto__Dim dims[10], *dimp[10];
    for (int i = 0; i < 10; i++) {
        tensorflow__tensor_shape_proto__dim__init(&dims[i]);
        dims[i].size = 1;
        dimp[i] = &dims[i];
    }
    dims[0].size = m->dim0 ? m->dim0 : 2;
    dims[1].size = 3;
    Tensorflow__TensorShapeProto sa = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    sa.n_dim = m->rank9 ? 9 : 2;
    sa.dim = dimp;
    sa.unknown_rank = m->unknown_rank;
    if (m->huge_dims) {
        sa.n_dim = 4;
        dims[0].size = dims[1].size = dims[2].size = dims[3].size = (int64_t)1 << 20;
    }
    Tensorflow__TensorSliceProto slice = TENSORFLOW__TENSOR_SLICE_PROTO__INIT, *slicep = &slice;
    Tensorflow__BundleEntryProto a = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
    a.dtype = 1;
    a.shape = &sa;
    a.offset = m->negative_offset ? -4 : (int64_t)off_a;
    a.size = 24 + m->size_a_delta;
    a.crc32c = crc_a;
    a.shard_id = m->shard1;
    if (m->slices) a.n_slices = 1, a.slices = &slicep;
    pack_entry(&e[n++], "a" VAR, strlen("a" VAR), &a);

    /* b/x, a scalar (no dims) */
    Tensorflow__TensorShapeProto sb = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    Tensorflow__BundleEntryProto b = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
    b.dtype = m->dtype_b ? m->dtype_b : 1;
    b.shape = &sb;
    b.offset = m->offset_b > 0 ? m->offset_b : m->b_overlaps_a ? (int64_t)off_a + 8 : (int64_t)off_b;
    b.size = 4;
    b.crc32c = crc_b;
    /* nul_key: "b\0x/.ATTRIBUTES/...", still after a's key */
    pack_entry(&e[n++], m->nul_key ? "b\0x" VAR : "b/x" VAR, strlen("b/x" VAR), &b);

    if (m->swap_keys) {
        kv t = e[n - 1];
        e[n - 1] = e[n - 2];
        e[n - 2] = t;
    }
    if (m->dup_key) {
        free(e[n - 1].key);
        e[n - 1].key = malloc(e[n - 2].klen);
        memcpy(e[n - 1].key, e[n - 2].key, e[n - 2].klen);
        e[n - 1].klen = e[n - 2].klen;
    }
    write_table(&c->index, e, n, &m->L);
    for (int i = 0; i < n; i++) {
        free(e[i].key);
        free(e[i].val);
    }
}

static void free_ckpt(ckpt *c) {
    free(c->index.p);
    free(c->data.p);
}

/* Opens c from memory; CG_OK or the error, with the message in msg. */
static cg_status open_ckpt(const ckpt *c, tfckpt **out, char *msg, size_t n) {
    *out = NULL;
    cg_status s = tfckpt_open_memory(out, c->index.p, c->index.n, c->data.p, c->data.n, "t");
    snprintf(msg, n, "%s", s == CG_OK ? "" : cg_last_error());
    return s;
}

/* The mutated checkpoint must be refused with a message holding `want`. */
static void expect_refused(const mutate *m, const char *want, const char *what) {
    ckpt c;
    make_ckpt(&c, m);
    tfckpt *k;
    char msg[512];
    cg_status s = open_ckpt(&c, &k, msg, sizeof msg);
    CHECK(s != CG_OK && k == NULL, "%s: accepted", what);
    CHECK(strstr(msg, want) != NULL, "%s: message '%s' lacks '%s'", what, msg, want);
    CHECK(strncmp(msg, "t.index: ", 9) == 0 || strncmp(msg, "t" DATA_NAME ": ", 22) == 0,
          "%s: message '%s' does not name the file", what, msg);
    tfckpt_close(k);
    free_ckpt(&c);
}

/* ---- tests ---- */

static void test_crc32c(void) {
    /* RFC 3720 B.4 */
    uint8_t v[32];
    memset(v, 0, 32);
    CHECK(cg_crc32c(v, 32) == 0x8a9136aau, "zeros: %08x", cg_crc32c(v, 32));
    memset(v, 0xff, 32);
    CHECK(cg_crc32c(v, 32) == 0x62a8ab43u, "ones: %08x", cg_crc32c(v, 32));
    for (int i = 0; i < 32; i++) v[i] = (uint8_t)i;
    CHECK(cg_crc32c(v, 32) == 0x46dd794eu, "incrementing: %08x", cg_crc32c(v, 32));
    for (int i = 0; i < 32; i++) v[i] = (uint8_t)(31 - i);
    CHECK(cg_crc32c(v, 32) == 0x113fdb5cu, "decrementing: %08x", cg_crc32c(v, 32));
    CHECK(cg_crc32c("123456789", 9) == 0xe3069283u, "check value: %08x", cg_crc32c("123456789", 9));
    CHECK(cg_crc32c("", 0) == 0, "empty");
    /* mask: rotate right 15, add 0xa282ead8 (computed by hand: 0x12345678 -> 0x4f730f40) */
    CHECK(cg_crc32c_mask(0x12345678u) == 0x4f730f40u, "mask: %08x", cg_crc32c_mask(0x12345678u));
    CHECK(cg_crc32c_mask(0) == 0xa282ead8u, "mask(0)");
}

static void check_tiny(const tfckpt *k, const char *what) {
    CHECK(tfckpt_count(k) == 2, "%s: %d tensors, expected 2", what, tfckpt_count(k));
    if (tfckpt_count(k) != 2) return;
    const tfckpt_tensor *a = tfckpt_tensor_at(k, 0), *b = tfckpt_tensor_at(k, 1);
    CHECK(!strcmp(a->name, "a") && !strcmp(b->name, "b/x"), "%s: names %s, %s", what, a->name, b->name);
    CHECK(a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3 && a->count == 6, "%s: a's shape", what);
    CHECK(b->ndim == 0 && b->count == 1, "%s: b's shape", what);
    CHECK(!memcmp(a->data, A_VALUES, sizeof A_VALUES), "%s: a's values", what);
    CHECK(b->data[0] == B_VALUE, "%s: b's value %g", what, b->data[0]);
    CHECK(((uintptr_t)a->data & 3) == 0 && ((uintptr_t)b->data & 3) == 0, "%s: unaligned", what);
    CHECK(tfckpt_find(k, "b/x") == b && tfckpt_find(k, "a") == a, "%s: find", what);
    CHECK(tfckpt_find(k, "b") == NULL && tfckpt_find(k, "a" VAR) == NULL &&
          tfckpt_find(k, "_CHECKPOINTABLE_OBJECT_GRAPH") == NULL, "%s: find of others", what);
    CHECK(tfckpt_tensor_at(k, 2) == NULL && tfckpt_tensor_at(k, -1) == NULL, "%s: out of range", what);
}

static void test_tiny_layouts(void) {
    /* one block; one entry a block; two a block with restarts every entry, every 2, every 16 */
    static const layout layouts[] = {{0, 0, 0, 0, 0}, {1, 1, 0, 0, 0}, {2, 1, 0, 0, 0}, {2, 2, 0, 0, 0},
                                     {3, 2, 0, 0, 0}, {0, 1, 0, 0, 0}, {0, 3, 0, 0, 0}};
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        mutate m = {.L = layouts[i]};
        ckpt c;
        make_ckpt(&c, &m);
        tfckpt *k;
        char msg[512], what[64];
        snprintf(what, sizeof what, "layout %zu", i);
        cg_status s = open_ckpt(&c, &k, msg, sizeof msg);
        CHECK(s == CG_OK, "%s: %s", what, msg);
        if (s == CG_OK) check_tiny(k, what);
        tfckpt_close(k);
        free_ckpt(&c);
    }
    /* string entries keep TensorFlow's own checksum, which the reader does not check */
    mutate m = {.bad_string_crc = 1};
    ckpt c;
    make_ckpt(&c, &m);
    tfckpt *k;
    char msg[512];
    CHECK(open_ckpt(&c, &k, msg, sizeof msg) == CG_OK, "string entries' CRCs: %s", msg);
    tfckpt_close(k);
    free_ckpt(&c);
}

static void test_tiny_refused(void) {
    /* the tensors */
    expect_refused(&(mutate){.dtype_b = 2}, "tensor b/x has TensorFlow dtype 2 (DT_DOUBLE), expected float32", "double");
    expect_refused(&(mutate){.dtype_b = 9}, "dtype 9 (DT_INT64)", "int64");
    expect_refused(&(mutate){.size_a_delta = -4}, "tensor a has a shape of 6 values of 4 bytes but 20 bytes", "size");
    expect_refused(&(mutate){.dim0 = 3}, "tensor a has a shape of 9 values of 4 bytes but 24 bytes", "shape");
    expect_refused(&(mutate){.dim0 = -1}, "tensor a has a dimension of unknown size (-1)", "unknown dim");
    expect_refused(&(mutate){.unknown_rank = 1}, "tensor a has an unknown rank", "unknown rank");
    expect_refused(&(mutate){.rank9 = 1}, "tensor a has 9 dimensions, more than 8", "rank 9");
    expect_refused(&(mutate){.huge_dims = 1}, "tensor a has a shape of over 2^62 values of 4 bytes but 24 bytes", "overflow");
    expect_refused(&(mutate){.slices = 1}, "tensor a is a partitioned variable", "slices");
    expect_refused(&(mutate){.offset_b = 1000}, "t" DATA_NAME ": tensor 'b/x' has bytes [1000, 1004) past the end of the data file (35 bytes", "offset");
    expect_refused(&(mutate){.dim0 = 1000, .size_a_delta = 1000 * 3 * 4 - 24},
                   "tensor 'a' has bytes [7, 12007) past the end of the data file", "size past the end");
    expect_refused(&(mutate){.b_overlaps_a = 1}, "tensors a and b/x overlap", "overlap");
    expect_refused(&(mutate){.dim0 = 1 << 25, .size_a_delta = (int64_t)3 * 4 * (1 << 25) - 24},
                   "t.index: the float tensors hold more than 256 MB", "size limit");
    expect_refused(&(mutate){.flip_data = 1}, "t" DATA_NAME ": tensor a: CRC32C mismatch", "data CRC");
    expect_refused(&(mutate){.negative_offset = 1}, "offset -4", "negative offset");
    expect_refused(&(mutate){.shard1 = 1}, "has shard 1", "shard id");
    expect_refused(&(mutate){.empty_name = 1}, "a variable with an empty name", "empty name");
    expect_refused(&(mutate){.nul_key = 1}, "holds a NUL byte", "NUL in a key");
    /* the header */
    expect_refused(&(mutate){.no_header = 1}, "no header entry", "no header");
    expect_refused(&(mutate){.num_shards = 2}, "the checkpoint has 2 data files", "shards");
    expect_refused(&(mutate){.endianness = 1}, "big-endian", "big-endian");
    expect_refused(&(mutate){.min_consumer = 2}, "newer than this reader", "min_consumer");
    expect_refused(&(mutate){.bad_consumer = 1}, "newer than this reader", "bad_consumers");
    /* the table */
    expect_refused(&(mutate){.swap_keys = 1}, "is out of order or repeated", "key order");
    expect_refused(&(mutate){.dup_key = 1}, "is out of order or repeated", "duplicate key");
    expect_refused(&(mutate){.L = {.compression = 1}}, "Snappy-compressed (compression type 1): only uncompressed", "snappy");
    expect_refused(&(mutate){.L = {.compression = 7}}, "unknown compression type 7", "type 7");
    expect_refused(&(mutate){.L = {.restart = 2, .bad_restart = 1}}, "restart", "restart array");
    expect_refused(&(mutate){.L = {.per_block = 2, .bad_sep = 1}}, "lies outside data block 0's range", "separator");
}

/* Damage done to the bytes of a good tiny checkpoint's index. */
static void test_tiny_damaged_index(void) {
    ckpt c;
    make_ckpt(&c, &(mutate){0});
    buf saved = {0};
    put(&saved, c.index.p, c.index.n);
    tfckpt *k;
    char msg[512];
    struct {
        size_t at;
        const char *want;
    } flips[] = {
        {3, "the data block at offset 0: CRC32C mismatch"},
        {c.index.n - 48 - 6, "the index block at offset"}, /* inside the index block */
        {c.index.n - 1, "no table magic number"},
    };
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(c.index.p, saved.p, saved.n);
        c.index.p[flips[i].at] ^= 0x01;
        CHECK(open_ckpt(&c, &k, msg, sizeof msg) != CG_OK && strstr(msg, flips[i].want),
              "flip at %zu: '%s', expected '%s'", flips[i].at, msg, flips[i].want);
        tfckpt_close(k);
    }
    memcpy(c.index.p, saved.p, saved.n);
    for (size_t cut = 0; cut < saved.n; cut += 7) { /* every truncation is refused */
        c.index.n = cut;
        CHECK(open_ckpt(&c, &k, msg, sizeof msg) != CG_OK, "truncated to %zu: accepted", cut);
        tfckpt_close(k);
    }
    c.index.n = 20;
    CHECK(open_ckpt(&c, &k, msg, sizeof msg) != CG_OK && strstr(msg, "t.index: 20 bytes, too short"),
          "20 bytes: %s", msg);
    c.index.n = saved.n;
    c.data.n -= 1; /* b's last byte gone */
    CHECK(open_ckpt(&c, &k, msg, sizeof msg) != CG_OK && strstr(msg, "past the end of the data file (34 bytes"),
          "data truncated: %s", msg);
    free(saved.p);
    free_ckpt(&c);
}

/* ---- the real checkpoints ---- */

static const char *weights_dir(void) {
    const char *w = getenv("CARTOONGAN_WEIGHTS");
    return w && *w ? w : "weights";
}

static int ckpt_dir(char *path, size_t n, const char *style) {
    snprintf(path, n, "%s/ckpt/light_%s_ckpt", weights_dir(), style);
    struct stat st;
    int ok = stat(path, &st) == 0;
    CHECK(ok, "%s: missing: the light checkpoints are set up by `make` (weights/ckpt/)", path);
    return ok;
}

/* Values read from the files with Python (struct.unpack('<I') at offset + 4 * index, the
 * offsets printed by an independent reader of the index written for this check). */
static const struct {
    const char *style, *name;
    size_t index;
    uint32_t bits;
} known[] = {
    {"shinkai", "flat_conv1/model/layer-1/kernel", 0, 0xbd98da91u},     /* -0.0746356 */
    {"shinkai", "flat_conv1/model/layer-1/kernel", 7199, 0x3cc2ac8eu},  /* 0.0237639 */
    {"shinkai", "final_conv/layer-1/bias", 2, 0xbbb85ebau},             /* -0.00562653 */
    {"shinkai", "down_conv1/bn_act/layer-0/gamma", 0, 0x3f74b09du},     /* 0.95582 */
    {"shinkai", "residual_blocks/layer-7/model/layer-5/kernel", 12345, 0xbc4dbdc5u},
    {"paprika", "flat_conv1/model/layer-1/kernel", 0, 0xbc0f4de2u},
    {"paprika", "final_conv/layer-1/bias", 2, 0xbcaf7036u},
    {"paprika", "down_conv1/bn_act/layer-0/gamma", 0, 0x3f7d0945u},     /* 0.988423 */
    {"paprika", "residual_blocks/layer-7/model/layer-5/kernel", 12345, 0x3d5975f6u},
};

static void test_real(void) {
    const char *styles[] = {"shinkai", "paprika"};
    for (int si = 0; si < 2; si++) {
        char dir[4096];
        if (!ckpt_dir(dir, sizeof dir, styles[si])) continue;
        tfckpt *k;
        cg_status s = tfckpt_open(&k, dir);
        CHECK(s == CG_OK, "%s: %s", dir, cg_last_error());
        if (s != CG_OK) continue;
        CHECK(tfckpt_count(k) == LIGHT_NUM_TENSORS, "%s: %d tensors", dir, tfckpt_count(k));
        size_t total = 0;
        for (int i = 0; i < LIGHT_NUM_TENSORS; i++) {
            const tensor_info *ti = &light_tensors[i];
            const tfckpt_tensor *t = tfckpt_find(k, ti->name);
            CHECK(t != NULL, "%s: no %s", dir, ti->name);
            if (!t) continue;
            int same = t->ndim == ti->ndim;
            for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == ti->shape[d];
            CHECK(same, "%s: %s: shape differs from light_params.c", dir, ti->name);
            CHECK(t->count == tensor_info_count(ti), "%s: %s: count", dir, ti->name);
            total += t->count;
            int finite = 1;
            for (size_t j = 0; j < t->count; j++) finite &= isfinite(t->data[j]) != 0;
            CHECK(finite, "%s: %s: not finite", dir, ti->name);
        }
        CHECK(total == LIGHT_NUM_PARAMS, "%s: %zu values", dir, total);
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
            if (strcmp(known[i].style, styles[si])) continue;
            const tfckpt_tensor *t = tfckpt_find(k, known[i].name);
            uint32_t bits = 0;
            if (t && known[i].index < t->count) memcpy(&bits, &t->data[known[i].index], 4);
            CHECK(bits == known[i].bits, "%s: %s[%zu] = %08x, expected %08x", dir, known[i].name,
                  known[i].index, bits, known[i].bits);
        }
        /* the same through every way of naming it: the .index file, no `checkpoint` file */
        char ipath[4200];
        snprintf(ipath, sizeof ipath, "%s/generator.index", dir);
        tfckpt *k2;
        s = tfckpt_open(&k2, ipath);
        CHECK(s == CG_OK && tfckpt_count(k2) == LIGHT_NUM_TENSORS &&
              !memcmp(tfckpt_find(k2, "final_conv/layer-1/kernel")->data,
                      tfckpt_find(k, "final_conv/layer-1/kernel")->data, 7200 * 4),
              "%s: %s", ipath, s == CG_OK ? "differs" : cg_last_error());
        tfckpt_close(k2);

        /* the safetensors file make wrote with `cartoongan export`: the same bytes */
        char st[4200];
        snprintf(st, sizeof st, "%s/light_%s.safetensors", weights_dir(), styles[si]);
        float *p = malloc(LIGHT_NUM_PARAMS * sizeof(float));
        s = st_load(st, light_tensors, LIGHT_NUM_TENSORS, p, 0, 0, "the light generator");
        CHECK(s == CG_OK, "%s: %s (made by make)", st, cg_last_error());
        if (s == CG_OK) {
            size_t at = 0;
            for (int i = 0; i < LIGHT_NUM_TENSORS; i++) {
                const tfckpt_tensor *t = tfckpt_find(k, light_tensors[i].name);
                CHECK(!t || !memcmp(p + at, t->data, t->count * 4), "%s: %s differs from the "
                      "checkpoint", st, light_tensors[i].name);
                at += tensor_info_count(&light_tensors[i]);
            }
            char v[64] = "", src[64] = "";
            st_read_metadata(st, "architecture", v, sizeof v);
            st_read_metadata(st, "source", src, sizeof src);
            char want[64];
            snprintf(want, sizeof want, "light_%s_ckpt", styles[si]);
            CHECK(!strcmp(v, LIGHT_ARCHITECTURE) && !strcmp(src, want), "%s: metadata '%s', '%s'",
                  st, v, src);
        }
        free(p);
        tfckpt_close(k);
    }
}

/* Copies of the real files with one thing damaged, written to a folder and opened there. */
static void test_real_damaged(void) {
    char dir[4096];
    if (!ckpt_dir(dir, sizeof dir, "shinkai")) return;
    char path[4200];
    size_t ni, nd;
    snprintf(path, sizeof path, "%s/generator.index", dir);
    uint8_t *index = read_all(path, &ni);
    snprintf(path, sizeof path, "%s/generator" DATA_NAME, dir);
    uint8_t *data = read_all(path, &nd);
    CHECK(index && data && ni == 15265 && nd == 3643727, "cannot read %s", dir);
    char tmp[256];
    if (!index || !data || ni != 15265 || nd != 3643727 || test_make_dir(tmp, sizeof tmp, "test_tfckpt") != 0) {
        free(index);
        free(data);
        return;
    }
    /* Layout of this index (read with Python): one data block [0, 15179), the metaindex at
     * 15184, the index block at 15197 (15 bytes), the footer. flat_conv1/model/layer-1/kernel
     * starts at byte 80625 of the data. */
    struct {
        int in_data;
        size_t at;
        long keep; /* >= 0: truncate to this many bytes instead of flipping */
        const char *want;
    } cases[] = {
        {0, 100, -1, "generator.index: the data block at offset 0: CRC32C mismatch (the file is damaged)"},
        {0, 15200, -1, "generator.index: the index block at offset 15197: CRC32C mismatch"},
        {0, 15179, -1, "generator.index: the data block at offset 0: CRC32C mismatch"}, /* its type byte */
        {0, 15264, -1, "generator.index: not a TensorFlow checkpoint index (no table magic number"},
        {0, 0, 15000, "generator.index: not a TensorFlow checkpoint index (no table magic number"},
        {0, 0, 30, "generator.index: 30 bytes, too short to be a table"},
        {1, 80625 + 1000, -1, "generator" DATA_NAME ": tensor flat_conv1/model/layer-1/kernel: CRC32C mismatch"},
        {1, 0, 3000000, "past the end of the data file (3000000 bytes; truncated?)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *p = cases[i].in_data ? data : index;
        size_t n = cases[i].in_data ? nd : ni;
        if (cases[i].keep >= 0) n = (size_t)cases[i].keep;
        else p[cases[i].at] ^= 0x40;
        char f[400];
        snprintf(f, sizeof f, "%s/generator.index", tmp);
        int w = write_all(f, index, cases[i].in_data ? ni : n);
        snprintf(f, sizeof f, "%s/generator" DATA_NAME, tmp);
        w |= write_all(f, data, cases[i].in_data ? n : nd);
        if (cases[i].keep < 0) p[cases[i].at] ^= 0x40;
        tfckpt *k;
        cg_status s = w ? CG_ERR_IO : tfckpt_open(&k, tmp);
        CHECK(s != CG_OK && strstr(cg_last_error(), cases[i].want) && strstr(cg_last_error(), tmp),
              "case %zu: '%s', expected '%s'", i, s == CG_OK ? "accepted" : cg_last_error(), cases[i].want);
        if (s == CG_OK) tfckpt_close(k);
    }
    /* the snappy type, with the block's CRC made to match, says what it is */
    index[15179] = 1;
    uint32_t crc = cg_crc32c_mask(cg_crc32c(index, 15180));
    for (int b = 0; b < 4; b++) index[15180 + b] = (uint8_t)(crc >> (8 * b));
    char f[400];
    snprintf(f, sizeof f, "%s/generator.index", tmp);
    write_all(f, index, ni);
    snprintf(f, sizeof f, "%s/generator" DATA_NAME, tmp);
    write_all(f, data, nd);
    tfckpt *k;
    cg_status s = tfckpt_open(&k, tmp);
    CHECK(s != CG_OK && strstr(cg_last_error(), "is Snappy-compressed (compression type 1)"), "snappy: %s",
          s == CG_OK ? "accepted" : cg_last_error());
    if (s == CG_OK) tfckpt_close(k);
    free(index);
    free(data);
    test_remove_dir(tmp);
}

/* How a folder names its checkpoint: `checkpoint` (relative or absolute prefix), a lone
 * .index file, or neither. Tiny checkpoints, written to files. */
static void test_folders(void) {
    char tmp[256];
    if (test_make_dir(tmp, sizeof tmp, "test_tfckpt") != 0) return;
    ckpt c;
    make_ckpt(&c, &(mutate){0});
    char f[1024], sub[400];
    tfckpt *k;
    cg_status s;

    /* no checkpoint file, one .index */
    snprintf(sub, sizeof sub, "%s/one", tmp);
    mkdir(sub, 0755);
    snprintf(f, sizeof f, "%s/model.index", sub);
    write_all(f, c.index.p, c.index.n);
    snprintf(f, sizeof f, "%s/model" DATA_NAME, sub);
    write_all(f, c.data.p, c.data.n);
    s = tfckpt_open(&k, sub);
    CHECK(s == CG_OK, "lone .index: %s", cg_last_error());
    if (s == CG_OK) {
        check_tiny(k, "lone .index");
        CHECK(strstr(tfckpt_index_path(k), "/one/model.index") != NULL, "index path %s", tfckpt_index_path(k));
        tfckpt_close(k);
    }
    /* a second .index and no checkpoint file: which one? */
    snprintf(f, sizeof f, "%s/other.index", sub);
    write_all(f, c.index.p, c.index.n);
    s = tfckpt_open(&k, sub);
    CHECK(s != CG_OK && strstr(cg_last_error(), "2 .index files and no `checkpoint` file"), "two: %s",
          s == CG_OK ? "accepted" : cg_last_error());
    if (s == CG_OK) tfckpt_close(k);
    /* a checkpoint file says: relative */
    snprintf(f, sizeof f, "%s/checkpoint", sub);
    write_str(f, "model_checkpoint_path: \"model\"\nall_model_checkpoint_paths: \"model\"\n");
    s = tfckpt_open(&k, sub);
    CHECK(s == CG_OK, "checkpoint file: %s", cg_last_error());
    if (s == CG_OK) check_tiny(k, "checkpoint file");
    tfckpt_close(k);
    /* absolute, with an escaped quote in the name */
    char text[1024], prefix[600];
    snprintf(prefix, sizeof prefix, "%s/q\"x", sub);
    snprintf(f, sizeof f, "%s.index", prefix);
    write_all(f, c.index.p, c.index.n);
    snprintf(f, sizeof f, "%s" DATA_NAME, prefix);
    write_all(f, c.data.p, c.data.n);
    snprintf(text, sizeof text, "model_checkpoint_path: \"%s/q\\\"x\"\n", sub);
    snprintf(f, sizeof f, "%s/checkpoint", sub);
    write_str(f, text);
    s = tfckpt_open(&k, sub);
    CHECK(s == CG_OK, "absolute: %s", cg_last_error());
    if (s == CG_OK) check_tiny(k, "absolute");
    tfckpt_close(k);
    /* a checkpoint file naming nothing there; one without the line */
    write_str(f, "model_checkpoint_path: \"gone\"\n");
    s = tfckpt_open(&k, sub);
    CHECK(s != CG_OK && strstr(cg_last_error(), "/one/gone.index: cannot open"), "gone: %s",
          s == CG_OK ? "accepted" : cg_last_error());
    if (s == CG_OK) tfckpt_close(k);
    write_str(f, "all_model_checkpoint_paths: \"model\"\n");
    s = tfckpt_open(&k, sub);
    CHECK(s != CG_OK && strstr(cg_last_error(), "checkpoint: no model_checkpoint_path"), "no line: %s",
          s == CG_OK ? "accepted" : cg_last_error());
    if (s == CG_OK) tfckpt_close(k);
    /* the data file missing */
    snprintf(f, sizeof f, "%s/model" DATA_NAME, sub);
    remove(f);
    snprintf(f, sizeof f, "%s/model.index", sub);
    s = tfckpt_open(&k, f);
    CHECK(s != CG_OK && strstr(cg_last_error(), "model" DATA_NAME ": cannot open"), "no data: %s",
          s == CG_OK ? "accepted" : cg_last_error());
    if (s == CG_OK) tfckpt_close(k);
    /* an empty folder; a file that is not an .index */
    snprintf(sub, sizeof sub, "%s/empty", tmp);
    mkdir(sub, 0755);
    s = tfckpt_open(&k, sub);
    CHECK(s != CG_OK && strstr(cg_last_error(), "no TensorFlow checkpoint here"), "empty: %s",
          s == CG_OK ? "accepted" : cg_last_error());
    if (s == CG_OK) tfckpt_close(k);
    snprintf(f, sizeof f, "%s/checkpoint", tmp);
    write_str(f, "x");
    s = tfckpt_open(&k, f);
    CHECK(s != CG_OK && strstr(cg_last_error(), "not a checkpoint directory or .index file"), "file: %s",
          s == CG_OK ? "accepted" : cg_last_error());
    if (s == CG_OK) tfckpt_close(k);
    free_ckpt(&c);
    test_remove_dir(tmp);
}

/* The committed fixture is what the writer makes now (so it can be made again). */
static void test_fixture(void) {
    ckpt c;
    make_ckpt(&c, &(mutate){0});
    size_t n;
    uint8_t *p = read_all("tests/data/tfckpt/tiny_ckpt/tiny.index", &n);
    CHECK(p && n == c.index.n && !memcmp(p, c.index.p, n), "tests/data/tfckpt/tiny_ckpt/tiny.index "
          "differs from what `test_tfckpt fixtures tests/data/tfckpt` writes");
    free(p);
    tfckpt *k;
    cg_status s = tfckpt_open(&k, "tests/data/tfckpt/tiny_ckpt");
    CHECK(s == CG_OK, "%s", cg_last_error());
    if (s == CG_OK) check_tiny(k, "fixture");
    tfckpt_close(k);
    free_ckpt(&c);
}

/* ---- the fixture and the fuzz seeds ---- */

static int write_fixture(const char *dir) {
    char d[1024], f[1200];
    snprintf(d, sizeof d, "%s/tiny_ckpt", dir);
    mkdir(dir, 0755);
    mkdir(d, 0755);
    ckpt c;
    make_ckpt(&c, &(mutate){0});
    const char *state = "model_checkpoint_path: \"tiny\"\nall_model_checkpoint_paths: \"tiny\"\n";
    int r = 0;
    snprintf(f, sizeof f, "%s/checkpoint", d);
    r |= write_str(f, state);
    snprintf(f, sizeof f, "%s/tiny.index", d);
    r |= write_all(f, c.index.p, c.index.n);
    snprintf(f, sizeof f, "%s/tiny" DATA_NAME, d);
    r |= write_all(f, c.data.p, c.data.n);
    free_ckpt(&c);
    return r;
}

/* The fuzz target's input: [index length, u32 LE][index][data]. */
static int write_seed(const char *dir, const char *name, const mutate *m) {
    ckpt c;
    make_ckpt(&c, m);
    buf s = {0};
    put_le32(&s, (uint32_t)c.index.n);
    put(&s, c.index.p, c.index.n);
    put(&s, c.data.p, c.data.n);
    char f[1200];
    snprintf(f, sizeof f, "%s/%s", dir, name);
    int r = write_all(f, s.p, s.n);
    free(s.p);
    free_ckpt(&c);
    return r;
}

static int write_seeds(const char *dir) {
    mkdir(dir, 0755);
    int r = 0;
    r |= write_seed(dir, "tiny", &(mutate){0});
    r |= write_seed(dir, "tiny_blocks_of_2", &(mutate){.L = {.per_block = 2, .restart = 1}});
    r |= write_seed(dir, "tiny_restarts_of_2", &(mutate){.L = {.restart = 2}});
    r |= write_seed(dir, "tiny_double", &(mutate){.dtype_b = 2});
    r |= write_seed(dir, "tiny_slices", &(mutate){.slices = 1});
    r |= write_seed(dir, "tiny_snappy", &(mutate){.L = {.compression = 1}});
    r |= write_seed(dir, "tiny_overlap", &(mutate){.b_overlaps_a = 1});
    return r;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "fixtures")) return write_fixture(argv[2]) ? 1 : 0;
    if (argc == 3 && !strcmp(argv[1], "seeds")) return write_seeds(argv[2]) ? 1 : 0;
    RUN(test_crc32c);
    RUN(test_tiny_layouts);
    RUN(test_tiny_refused);
    RUN(test_tiny_damaged_index);
    RUN(test_folders);
    RUN(test_fixture);
    RUN(test_real);
    RUN(test_real_damaged);
    return TEST_SUMMARY("test_tfckpt");
}
