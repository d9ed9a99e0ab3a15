/* test_events.c: TensorBoard event files (src/io/events.c). The files are read back by a
 * reader written here, independent of the writer: its own TFRecord framing parser, its own
 * bitwise CRC32C (the library's is table-driven) and its own protobuf wire-format decoder
 * that walks Event / Summary / Value / Image by TensorFlow's field numbers, so a mistake
 * shared with protobuf-c or the writer's CRC cannot cancel out. PNGs are decoded with
 * libpng's simplified API (not image.c). */
#include <dirent.h>
#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "io/events.h"
#include "test.h"

static char tmp[256];

/* ---- the independent reader ------------------------------------------------------------ */

/* Bit by bit, reflected Castagnoli polynomial; checked against the standard test vector. */
static uint32_t ref_crc32c(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static uint32_t ref_masked(const uint8_t *p, size_t n) {
    uint32_t c = ref_crc32c(p, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static uint64_t rd_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

enum { REC_VERSION = 1, REC_SCALAR, REC_IMAGE };

typedef struct {
    int kind;
    double wall_time;
    int has_wall_time;
    int64_t step;
    char version[32];
    char tag[64];
    int n_values;       /* Summary.value entries */
    int has_value;      /* simple_value seen (even when 0) */
    float value;
    int64_t h, w, colorspace;
    const uint8_t *png; /* into the file's bytes */
    size_t png_len;
} rec;

typedef struct {
    const uint8_t *p, *end;
} pb;

static int pb_varint(pb *b, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return -1;
        uint8_t c = *b->p++;
        *v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) return 0;
    }
    return -1;
}

/* One field: 1 and its number, wire type and value (varint, fixed64 and fixed32 in *v,
 * length-delimited in *data and *len); 0 at the end; -1 on malformed input. */
static int pb_field(pb *b, uint32_t *num, int *wt, uint64_t *v, const uint8_t **data, size_t *len) {
    if (b->p == b->end) return 0;
    uint64_t key;
    if (pb_varint(b, &key) != 0 || (key >> 3) == 0 || (key >> 3) > UINT32_MAX) return -1;
    *num = (uint32_t)(key >> 3), *wt = (int)(key & 7);
    switch (*wt) {
    case 0: return pb_varint(b, v) == 0 ? 1 : -1;
    case 1:
        if (b->end - b->p < 8) return -1;
        *v = rd_le(b->p, 8), b->p += 8;
        return 1;
    case 5:
        if (b->end - b->p < 4) return -1;
        *v = rd_le(b->p, 4), b->p += 4;
        return 1;
    case 2:
        if (pb_varint(b, v) != 0 || *v > (uint64_t)(b->end - b->p)) return -1;
        *data = b->p, *len = (size_t)*v, b->p += *len;
        return 1;
    default: return -1;
    }
}

static void copy_str(char *dst, size_t cap, const uint8_t *s, size_t n) {
    if (n >= cap) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

/* Each decoder takes only the fields and wire types TensorFlow defines for them; anything
 * else is an error, since the writer sets nothing else. */
static int dec_image(rec *r, const uint8_t *d, size_t n) {
    pb b = {d, d + n};
    uint32_t num; int wt, k; uint64_t v = 0; const uint8_t *s = NULL; size_t len = 0;
    while ((k = pb_field(&b, &num, &wt, &v, &s, &len)) == 1) {
        if (num == 1 && wt == 0) r->h = (int64_t)v;
        else if (num == 2 && wt == 0) r->w = (int64_t)v;
        else if (num == 3 && wt == 0) r->colorspace = (int64_t)v;
        else if (num == 4 && wt == 2) r->png = s, r->png_len = len;
        else return -1;
    }
    return k;
}

static int dec_value(rec *r, const uint8_t *d, size_t n) {
    pb b = {d, d + n};
    uint32_t num; int wt, k; uint64_t v = 0; const uint8_t *s = NULL; size_t len = 0;
    while ((k = pb_field(&b, &num, &wt, &v, &s, &len)) == 1) {
        if (num == 1 && wt == 2) copy_str(r->tag, sizeof r->tag, s, len);
        else if (num == 2 && wt == 5) {
            uint32_t bits = (uint32_t)v;
            memcpy(&r->value, &bits, 4);
            r->has_value = 1, r->kind = REC_SCALAR;
        } else if (num == 4 && wt == 2) {
            r->kind = REC_IMAGE;
            if (dec_image(r, s, len) != 0) return -1;
        } else return -1;
    }
    return k;
}

static int dec_summary(rec *r, const uint8_t *d, size_t n) {
    pb b = {d, d + n};
    uint32_t num; int wt, k; uint64_t v = 0; const uint8_t *s = NULL; size_t len = 0;
    while ((k = pb_field(&b, &num, &wt, &v, &s, &len)) == 1) {
        if (num != 1 || wt != 2) return -1;
        r->n_values++;
        if (dec_value(r, s, len) != 0) return -1;
    }
    return k;
}

static int dec_event(rec *r, const uint8_t *d, size_t n) {
    memset(r, 0, sizeof *r);
    pb b = {d, d + n};
    uint32_t num; int wt, k; uint64_t v = 0; const uint8_t *s = NULL; size_t len = 0;
    while ((k = pb_field(&b, &num, &wt, &v, &s, &len)) == 1) {
        if (num == 1 && wt == 1) memcpy(&r->wall_time, &v, 8), r->has_wall_time = 1;
        else if (num == 2 && wt == 0) r->step = (int64_t)v;
        else if (num == 3 && wt == 2) copy_str(r->version, sizeof r->version, s, len), r->kind = REC_VERSION;
        else if (num == 5 && wt == 2) {
            if (dec_summary(r, s, len) != 0) return -1;
        } else return -1;
    }
    return k;
}

enum { RD_OK = 0, RD_LEN_CRC = -1, RD_DATA_CRC = -2, RD_TRUNCATED = -3, RD_PROTO = -4, RD_TOO_MANY = -5 };

/* Walks the TFRecords of a whole file; *count records decoded into out before any error. */
static int read_records(const uint8_t *d, size_t n, rec *out, int max, int *count) {
    size_t pos = 0;
    *count = 0;
    while (pos < n) {
        if (n - pos < 12) return RD_TRUNCATED;
        uint64_t len = rd_le(d + pos, 8);
        if ((uint32_t)rd_le(d + pos + 8, 4) != ref_masked(d + pos, 8)) return RD_LEN_CRC;
        if (len > n - pos - 12 || n - pos - 12 - len < 4) return RD_TRUNCATED;
        const uint8_t *data = d + pos + 12;
        if ((uint32_t)rd_le(data + len, 4) != ref_masked(data, (size_t)len)) return RD_DATA_CRC;
        if (*count == max) return RD_TOO_MANY;
        if (dec_event(&out[*count], data, (size_t)len) != 0) return RD_PROTO;
        (*count)++;
        pos += 12 + (size_t)len + 4;
    }
    return RD_OK;
}

/* ---- helpers --------------------------------------------------------------------------- */

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(sz > 0 ? (size_t)sz : 1);
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) free(buf), buf = NULL;
    fclose(f);
    *n = (size_t)sz;
    return buf;
}

/* The event files in dir (names starting "events.out.tfevents."), up to max, sorted. */
static int list_event_files(const char *dir, char names[][512], int max) {
    DIR *d = opendir(dir);
    int k = 0;
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "events.out.tfevents.", 20) && k < max)
            snprintf(names[k++], 512, "%s/%s", dir, de->d_name);
    closedir(d);
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[512];
            memcpy(t, names[j], 512), memcpy(names[j], names[j - 1], 512), memcpy(names[j - 1], t, 512);
        }
    return k;
}

static void make_pixels(uint8_t *rgb, int w, int h, unsigned seed) {
    for (int i = 0; i < w * h * 3; i++) {
        seed = seed * 1103515245u + 12345u;
        rgb[i] = (uint8_t)(i % 3 == 0 ? (unsigned)((i / 3) % w * 7) : seed >> 16);
    }
}

static int png_matches(const uint8_t *png, size_t n, const uint8_t *rgb, int w, int h) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&im, png, n)) return 0;
    im.format = PNG_FORMAT_RGB;
    if ((int)im.width != w || (int)im.height != h) {
        png_image_free(&im);
        return 0;
    }
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(im));
    int ok = buf && png_image_finish_read(&im, NULL, buf, 0, NULL) &&
             memcmp(buf, rgb, (size_t)w * h * 3) == 0;
    free(buf);
    png_image_free(&im);
    return ok;
}

static int same_float(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ---- tests ----------------------------------------------------------------------------- */

static void test_reference_crc(void) {
    /* The CRC-32C check value (RFC 3720's polynomial, "123456789"). */
    CHECK(ref_crc32c((const uint8_t *)"123456789", 9) == 0xE3069283u, "got %08x",
          ref_crc32c((const uint8_t *)"123456789", 9));
    uint8_t zeros[32] = {0};
    CHECK(ref_crc32c(zeros, 32) == 0x8A9136AAu, "32 zero bytes (RFC 3720 B.4)");
}

#define IW 37
#define IH 23

static const struct {
    const char *tag;
    int64_t step;
    float value;
} scalars[] = {
    {"loss/generator", 0, 1.5f},      {"loss/discriminator", 1, -0.25f}, {"zero", 2, 0.0f},
    {"big", INT64_C(1) << 40, 3.0e38f}, {"negative_step", -7, 1e-30f},  {"loss/generator", 3, 0.75f},
};
#define NSCALARS (int)(sizeof scalars / sizeof scalars[0])

static void test_roundtrip(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/run/a/b", tmp); /* parents created */
    uint8_t rgb[IW * IH * 3];
    make_pixels(rgb, IW, IH, 1);
    time_t t0 = time(NULL);
    cg_events *e = NULL;
    CHECK(cg_events_open(&e, dir) == CG_OK, "%s", cg_last_error());
    if (!e) return;
    for (int i = 0; i < NSCALARS; i++)
        CHECK(cg_events_scalar(e, scalars[i].tag, scalars[i].step, scalars[i].value) == CG_OK, "%s",
              cg_last_error());
    CHECK(cg_events_image(e, "samples/photo", 5, rgb, IW, IH) == CG_OK, "%s", cg_last_error());
    CHECK(cg_events_flush(e) == CG_OK, "%s", cg_last_error());

    char names[4][512];
    int nf = list_event_files(dir, names, 4);
    CHECK(nf == 1, "%d event files", nf);
    if (nf != 1) {
        cg_events_close(e);
        return;
    }
    /* Flushed, so all of it is in the file before close. */
    size_t n = 0;
    uint8_t *d = read_all(names[0], &n);
    CHECK(d != NULL, "cannot read %s", names[0]);
    cg_events_close(e);
    time_t t1 = time(NULL);
    if (!d) return;

    /* events.out.tfevents.<unix seconds>.<hostname>... */
    const char *base = strrchr(names[0], '/') + 1;
    char *endp;
    long long secs = strtoll(base + 20, &endp, 10);
    char host[256] = "";
    gethostname(host, sizeof host);
    CHECK(secs >= (long long)t0 && secs <= (long long)t1, "time in the name: %s", base);
    CHECK(*endp == '.' && !strncmp(endp + 1, host, strlen(host)), "hostname in %s (%s)", base, host);

    rec r[16];
    int count = 0;
    int rc = read_records(d, n, r, 16, &count);
    CHECK(rc == RD_OK, "reader: %d after %d records", rc, count);
    CHECK(count == 1 + NSCALARS + 1, "%d records", count);
    if (count == 1 + NSCALARS + 1) {
        CHECK(r[0].kind == REC_VERSION && !strcmp(r[0].version, "brain.Event:2"), "first record: %s",
              r[0].version);
        CHECK(r[0].step == 0, "version step");
        for (int i = 0; i < count; i++) {
            CHECK(r[i].has_wall_time && r[i].wall_time >= (double)t0 - 1 && r[i].wall_time <= (double)t1 + 1,
                  "record %d wall_time %.3f not in [%lld, %lld]", i, r[i].wall_time, (long long)t0,
                  (long long)t1);
            if (i) CHECK(r[i].wall_time >= r[i - 1].wall_time, "wall_time goes back at %d", i);
        }
        for (int i = 0; i < NSCALARS; i++) {
            const rec *s = &r[1 + i];
            CHECK(s->kind == REC_SCALAR && s->n_values == 1, "record %d: kind %d, %d values", 1 + i, s->kind,
                  s->n_values);
            CHECK(!strcmp(s->tag, scalars[i].tag), "tag %s, want %s", s->tag, scalars[i].tag);
            CHECK(s->step == scalars[i].step, "step %lld, want %lld", (long long)s->step,
                  (long long)scalars[i].step);
            CHECK(s->has_value && same_float(s->value, scalars[i].value), "value %g, want %g", s->value,
                  scalars[i].value);
        }
        const rec *im = &r[1 + NSCALARS];
        CHECK(im->kind == REC_IMAGE && im->n_values == 1, "image record kind %d", im->kind);
        CHECK(!strcmp(im->tag, "samples/photo") && im->step == 5, "image tag %s step %lld", im->tag,
              (long long)im->step);
        CHECK(im->w == IW && im->h == IH && im->colorspace == 3, "image %lldx%lld colorspace %lld",
              (long long)im->w, (long long)im->h, (long long)im->colorspace);
        CHECK(im->png_len > 8 && !memcmp(im->png, "\x89PNG\r\n\x1a\n", 8), "not a PNG");
        CHECK(png_matches(im->png, im->png_len, rgb, IW, IH), "PNG pixels differ from the input");
    }
    free(d);
}

/* A changed byte anywhere is caught by one of the two CRCs; a cut file reads as truncated. */
static void test_corruption(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/corrupt", tmp);
    uint8_t rgb[IW * IH * 3];
    make_pixels(rgb, IW, IH, 2);
    cg_events *e = NULL;
    CHECK(cg_events_open(&e, dir) == CG_OK, "%s", cg_last_error());
    if (!e) return;
    CHECK(cg_events_scalar(e, "a", 1, 2.0f) == CG_OK, "%s", cg_last_error());
    CHECK(cg_events_image(e, "img", 1, rgb, IW, IH) == CG_OK, "%s", cg_last_error());
    cg_events_close(e);
    char names[2][512];
    if (list_event_files(dir, names, 2) != 1) {
        CHECK(0, "expected one file");
        return;
    }
    size_t n = 0;
    uint8_t *d = read_all(names[0], &n);
    if (!d) return;
    rec r[4];
    int count;
    CHECK(read_records(d, n, r, 4, &count) == RD_OK && count == 3, "clean file: %d records", count);
    size_t first = 12 + (size_t)rd_le(d, 8) + 4; /* start of the scalar's record */
    size_t second = first + 12 + (size_t)rd_le(d + first, 8) + 4;

    d[n - 100] ^= 0x01; /* inside the PNG bytes */
    CHECK(read_records(d, n, r, 4, &count) == RD_DATA_CRC && count == 2, "PNG byte flip: %d", count);
    d[n - 100] ^= 0x01;
    d[first + 14] ^= 0x80; /* inside the scalar's Event */
    CHECK(read_records(d, n, r, 4, &count) == RD_DATA_CRC && count == 1, "event byte flip");
    d[first + 14] ^= 0x80;
    d[second + 1] ^= 0x04; /* the image record's length */
    CHECK(read_records(d, n, r, 4, &count) == RD_LEN_CRC && count == 2, "length byte flip");
    d[second + 1] ^= 0x04;
    d[n - 2] ^= 0xFF; /* the final CRC itself */
    CHECK(read_records(d, n, r, 4, &count) == RD_DATA_CRC, "CRC byte flip");
    d[n - 2] ^= 0xFF;
    CHECK(read_records(d, n - 1, r, 4, &count) == RD_TRUNCATED && count == 2, "cut by one byte");
    CHECK(read_records(d, n, r, 4, &count) == RD_OK, "restored");
    free(d);
}

static void test_unique_names(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/two", tmp);
    cg_events *a = NULL, *b = NULL;
    CHECK(cg_events_open(&a, dir) == CG_OK, "%s", cg_last_error());
    CHECK(cg_events_open(&b, dir) == CG_OK, "%s", cg_last_error());
    CHECK(cg_events_scalar(a, "x", 1, 1.0f) == CG_OK, "%s", cg_last_error());
    CHECK(cg_events_scalar(b, "x", 1, 2.0f) == CG_OK, "%s", cg_last_error());
    cg_events_close(a);
    cg_events_close(b);
    char names[4][512];
    int nf = list_event_files(dir, names, 4);
    CHECK(nf == 2, "two writers in one second: %d files", nf);
    for (int i = 0; i < nf; i++) {
        size_t n = 0;
        uint8_t *d = read_all(names[i], &n);
        rec r[4];
        int count = 0;
        CHECK(d && read_records(d, n, r, 4, &count) == RD_OK && count == 2, "%s: %d records", names[i], count);
        free(d);
    }
}

static void test_errors(void) {
    /* A directory that cannot be made: its parent is a regular file (root ignores
     * permission bits, so a read-only folder would not do). */
    char file[512], dir[600];
    snprintf(file, sizeof file, "%s/plainfile", tmp);
    FILE *f = fopen(file, "w");
    if (f) fclose(f);
    snprintf(dir, sizeof dir, "%s/sub", file);
    cg_events *e = (cg_events *)1;
    CHECK(cg_events_open(&e, dir) == CG_ERR_IO, "open under a file");
    CHECK(e == NULL, "out not cleared");
    CHECK(strstr(cg_last_error(), "plainfile") && !strchr(cg_last_error(), '\n'), "message: %s",
          cg_last_error());
    CHECK(cg_events_open(&e, NULL) == CG_ERR_ARG, "NULL dir");
    CHECK(cg_events_open(NULL, tmp) == CG_ERR_ARG, "NULL out");

    snprintf(dir, sizeof dir, "%s/args", tmp);
    CHECK(cg_events_open(&e, dir) == CG_OK, "%s", cg_last_error());
    if (!e) return;
    uint8_t px[12] = {0};
    CHECK(cg_events_scalar(e, NULL, 0, 1.0f) == CG_ERR_ARG, "NULL tag");
    CHECK(cg_events_scalar(e, "", 0, 1.0f) == CG_ERR_ARG, "empty tag");
    CHECK(cg_events_scalar(NULL, "x", 0, 1.0f) == CG_ERR_ARG, "NULL writer");
    CHECK(cg_events_image(e, "i", 0, NULL, 2, 2) == CG_ERR_ARG, "NULL pixels");
    CHECK(cg_events_image(e, "i", 0, px, 0, 2) == CG_ERR_ARG, "zero width");
    CHECK(cg_events_image(e, "i", 0, px, 2, -1) == CG_ERR_ARG, "negative height");
    CHECK(cg_events_image(e, "i", 0, px, 2000000, 1) == CG_ERR_LIMIT, "too wide");
    CHECK(strstr(cg_last_error(), "events.out.tfevents."), "message names the file: %s", cg_last_error());
    CHECK(cg_events_flush(NULL) == CG_ERR_ARG, "flush NULL");
    cg_events_close(NULL);
    CHECK(cg_events_scalar(e, "ok", 1, 1.0f) == CG_OK, "%s", cg_last_error());
    cg_events_close(e);
    /* The refused calls left nothing behind: version + one scalar. */
    char names[2][512];
    if (list_event_files(dir, names, 2) == 1) {
        size_t n = 0;
        uint8_t *d = read_all(names[0], &n);
        rec r[4];
        int count = 0;
        CHECK(d && read_records(d, n, r, 4, &count) == RD_OK && count == 2, "%d records", count);
        free(d);
    } else CHECK(0, "expected one file");
}

/* A full disk, as RLIMIT_FSIZE makes it (EFBIG past the limit, with SIGXFSZ ignored):
 * the flush fails with the file's name, the file is cut back to its last whole record,
 * and logging goes on once there is room. */
static void test_disk_full(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/full", tmp);
    cg_events *e = NULL;
    CHECK(cg_events_open(&e, dir) == CG_OK, "%s", cg_last_error());
    if (!e) return;
    CHECK(cg_events_scalar(e, "before", 1, 1.0f) == CG_OK && cg_events_flush(e) == CG_OK, "%s",
          cg_last_error());
    char names[2][512];
    if (list_event_files(dir, names, 2) != 1) {
        CHECK(0, "expected one file");
        cg_events_close(e);
        return;
    }
    size_t before = 0;
    free(read_all(names[0], &before));

    enum { W = 200, H = 200 }; /* noise: the PNG stays near 120 KB */
    uint8_t *rgb = malloc(W * H * 3);
    make_pixels(rgb, W, H, 3);
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {(rlim_t)before + 4096, old.rlim_max};
    int limited = setrlimit(RLIMIT_FSIZE, &lim) == 0;
    CHECK(limited, "setrlimit");
    CHECK(cg_events_image(e, "big", 2, rgb, W, H) == CG_OK, "buffered: %s", cg_last_error());
    cg_status s = cg_events_flush(e);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_sig);
    CHECK(!limited || s == CG_ERR_IO, "flush past the limit gave %d", s);
    CHECK(!limited || (strstr(cg_last_error(), names[0]) && !strchr(cg_last_error(), '\n')), "message: %s",
          cg_last_error());
    size_t after = 0;
    free(read_all(names[0], &after));
    CHECK(after == before, "file not cut back: %zu bytes, was %zu", after, before);

    CHECK(cg_events_scalar(e, "after", 3, 3.0f) == CG_OK && cg_events_flush(e) == CG_OK, "%s",
          cg_last_error());
    cg_events_close(e);
    size_t n = 0;
    uint8_t *d = read_all(names[0], &n);
    rec r[4];
    int count = 0;
    CHECK(d && read_records(d, n, r, 4, &count) == RD_OK && count == 3, "%d records", count);
    if (count == 3) CHECK(!strcmp(r[1].tag, "before") && !strcmp(r[2].tag, "after"), "%s %s", r[1].tag, r[2].tag);
    free(d);
    free(rgb);
}

/* Past the 1 MiB buffer the records are written without waiting for a flush, and a file
 * of many records still reads back whole. */
static void test_many(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/many", tmp);
    cg_events *e = NULL;
    CHECK(cg_events_open(&e, dir) == CG_OK, "%s", cg_last_error());
    if (!e) return;
    enum { W = 256, H = 256, N = 12 };
    uint8_t *rgb = malloc(W * H * 3);
    for (int i = 0; i < N; i++) {
        make_pixels(rgb, W, H, 10 + (unsigned)i);
        CHECK(cg_events_image(e, "samples", i, rgb, W, H) == CG_OK, "%s", cg_last_error());
        CHECK(cg_events_scalar(e, "loss", i, (float)i * 0.5f) == CG_OK, "%s", cg_last_error());
    }
    char names[2][512] = {{0}};
    size_t written = 0;
    if (list_event_files(dir, names, 2) == 1) free(read_all(names[0], &written));
    CHECK(written > (1u << 20), "nothing written before the flush: %zu bytes", written);
    cg_events_close(e);
    size_t n = 0;
    uint8_t *d = names[0][0] ? read_all(names[0], &n) : NULL;
    rec *r = calloc(2 * N + 2, sizeof *r);
    int count = 0;
    CHECK(d && read_records(d, n, r, 2 * N + 2, &count) == RD_OK && count == 1 + 2 * N, "%d records", count);
    if (count == 1 + 2 * N) {
        make_pixels(rgb, W, H, 10 + N - 1);
        CHECK(png_matches(r[2 * N - 1].png, r[2 * N - 1].png_len, rgb, W, H), "last image");
        CHECK(r[2 * N].step == N - 1 && same_float(r[2 * N].value, (float)(N - 1) * 0.5f), "last scalar");
    }
    free(r);
    free(d);
    free(rgb);
}

/* `test_events dump FILE`: every record of an event file through this file's independent
 * reader, one line each ("scalar TAG STEP VALUE", "image TAG STEP WxH png-ok|png-bad",
 * "version V"), for tests/test_train_cli.sh to read a training run's logs. Exit 1 if the
 * file does not read back whole. */
static int dump(const char *path) {
    size_t n;
    uint8_t *d = read_all(path, &n);
    enum { MAX = 100000 };
    rec *r = malloc(MAX * sizeof *r);
    int count = 0, st = d && r ? read_records(d, n, r, MAX, &count) : -1;
    for (int i = 0; i < count; i++) {
        if (r[i].version[0]) printf("version %s\n", r[i].version);
        else if (r[i].png) {
            png_image img;
            memset(&img, 0, sizeof img);
            img.version = PNG_IMAGE_VERSION;
            int ok = png_image_begin_read_from_memory(&img, r[i].png, r[i].png_len) && img.width == (png_uint_32)r[i].w &&
                     img.height == (png_uint_32)r[i].h;
            png_image_free(&img);
            printf("image %s %lld %lldx%lld %s\n", r[i].tag, (long long)r[i].step, (long long)r[i].w, (long long)r[i].h,
                   ok ? "png-ok" : "png-bad");
        } else if (r[i].has_value)
            printf("scalar %s %lld %.9g\n", r[i].tag, (long long)r[i].step, r[i].value);
    }
    free(d), free(r);
    if (st != RD_OK) fprintf(stderr, "%s: does not read back whole (reader status %d)\n", path, st);
    return st == RD_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "dump")) return dump(argv[2]);
    if (test_make_dir(tmp, sizeof tmp, "cg_test_events") != 0) return 1;
    RUN(test_reference_crc);
    RUN(test_roundtrip);
    RUN(test_corruption);
    RUN(test_unique_names);
    RUN(test_errors);
    RUN(test_disk_full);
    RUN(test_many);
    test_remove_dir(tmp);
    return TEST_SUMMARY("test_events");
}
