/* heif.c: HEIC/HEIF and AVIF decoding through libheif (heif.h). libheif parses the
 * ISO-BMFF boxes, runs the codec (libde265 for HEVC, dav1d or aom for AV1), converts
 * YCbCr to RGB with the file's colour matrix, adds the alpha plane and applies
 * irot/imir/clap; this file sets the limits before any of that runs, picks an output
 * layout that keeps 10/12-bit samples, and turns the result into packed RGB8 on white. */
#include "io/heif.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libheif/heif.h>

#include "status.h"

/* libheif's own default limit on either side (MAX_IMAGE_WIDTH / _HEIGHT in its
 * heif_limits.h, not in its public header): only ever lowered here, never raised. */
#define LIBHEIF_DEFAULT_MAX_SIDE 32768

static const char *or_memory(const char *name) { return name && *name ? name : "<memory>"; }

/* ---- sniffing -------------------------------------------------------------------------- */

static int heif_brand(const uint8_t *b) {
    static const char brands[][4] = {"heic", "heix", "hevc", "hevx", "heim", "heis",
                                     "hevm", "hevs", "mif1", "msf1", "avif", "avis"};
    for (size_t i = 0; i < sizeof brands / sizeof brands[0]; i++)
        if (!memcmp(b, brands[i], 4)) return 1;
    return 0;
}

int cg_heif_sniff(const uint8_t *d, size_t n) {
    if (!d || n < 12 || memcmp(d + 4, "ftyp", 4) != 0) return 0;
    if (heif_brand(d + 8)) return 1;
    /* major brand, minor version, then compatible brands up to the end of the box */
    size_t size = (size_t)d[0] << 24 | (size_t)d[1] << 16 | (size_t)d[2] << 8 | d[3];
    if (size < 16) return 0;
    if (size > n) size = n;
    for (size_t i = 16; i + 4 <= size; i += 4)
        if (heif_brand(d + i)) return 1;
    return 0;
}

/* ---- limits ---------------------------------------------------------------------------- */

/* The same wording as image.c's check_size, so every format's refusal reads alike. */
static void format_pixels(char *buf, size_t n, uint64_t px) {
    if (px >= 1000000 && (px % 1000000 == 0 || px >= 10000000))
        snprintf(buf, n, "%.0f megapixels", (double)px / 1e6);
    else if (px >= 1000000)
        snprintf(buf, n, "%.1f megapixels", (double)px / 1e6);
    else
        snprintf(buf, n, "%llu pixels", (unsigned long long)px);
}

/* `is`: "is" for a size read from the file, "decodes to" for what libheif returned. */
static cg_status check_size(const char *name, int64_t w, int64_t h, uint64_t max_pixels,
                            const char *is) {
    if (w <= 0 || h <= 0) return cg_fail(CG_ERR_FORMAT, "%s: image has zero width or height", name);
    uint64_t px = (uint64_t)w * (uint64_t)h; /* both sides are below 2^32: no overflow */
    if (px > max_pixels || w > INT_MAX || h > INT_MAX || px > SIZE_MAX / 8) {
        char have[48], lim[48];
        format_pixels(have, sizeof have, px);
        format_pixels(lim, sizeof lim, max_pixels);
        return cg_fail(CG_ERR_LIMIT, "%s: image %s %lldx%lld (%s), over the limit of %s", name, is,
                       (long long)w, (long long)h, have, lim);
    }
    return CG_OK;
}

/* ---- sizes declared inside the file ----------------------------------------------------- */

/* libheif 1.15 checks only the ispe sizes, and neither compares what the codec then
 * decodes nor a grid's canvas with them: a 984-byte AVIF whose ispe said 96x64 decoded to
 * 8192x8192, and an 861-byte HEIC whose 'grid' (how cameras store big photos: tiles)
 * claimed a 30000x30000 canvas made libheif allocate 2 GB and crash. So before libheif
 * decodes anything, the boxes are walked here the way libheif reads them, and every size
 * a decoder would allocate is checked against the limit: each grid or overlay canvas,
 * each HEVC sequence parameter set (in the hvcC boxes and inside the items' data) and
 * each AV1 sequence header's maximum frame size (in av1C and the items' data). Anything
 * this walk cannot follow is left to libheif, which then fails on the same bytes. */

#define MAX_ITEMS 20000 /* libheif's own limit on boxes in a box and on iloc items */

enum { ITEM_OTHER, ITEM_GRID, ITEM_IOVL, ITEM_HVC1, ITEM_AV01 };

typedef struct {
    uint32_t id;
    int kind;
} item_kind;

typedef struct {
    const uint8_t *d;
    size_t n;
    size_t idat, idat_size; /* the idat box's payload offset and whole size; 0 when none */
    const char *name;
    uint64_t max_pixels;
} heif_walk;

static uint64_t be(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = v << 8 | p[i];
    return v;
}

/* The box at *pos in d[.. end): its type and payload [*body, *stop); *pos moves past it.
 * 0 at the end or on a malformed header. Sizes as libheif reads them: 1 means a 64-bit
 * size follows, 0 means "to the end", 'uuid' boxes have 16 more header bytes. */
static int next_box(const uint8_t *d, size_t end, size_t *pos, const uint8_t **type, size_t *body,
                    size_t *stop) {
    size_t p = *pos, hdr = 8;
    if (p > end || end - p < 8) return 0;
    uint64_t size = be(d + p, 4);
    *type = d + p + 4;
    if (size == 1) {
        if (end - p < 16) return 0;
        size = be(d + p + 8, 8), hdr = 16;
    } else if (size == 0) {
        size = end - p;
    }
    if (!memcmp(*type, "uuid", 4)) hdr += 16;
    if (size < hdr || size > end - p) return 0;
    *body = p + hdr, *stop = p + (size_t)size, *pos = p + (size_t)size;
    return 1;
}

/* The first box of `type` in d[from .. end); *start (may be NULL) gets its header's offset. */
static int find_box_at(const uint8_t *d, size_t from, size_t end, const char *type, size_t *start,
                       size_t *body, size_t *stop) {
    const uint8_t *t;
    for (size_t pos = from, at = pos; next_box(d, end, &pos, &t, body, stop); at = pos)
        if (!memcmp(t, type, 4)) {
            if (start) *start = at;
            return 1;
        }
    return 0;
}

static int find_box(const uint8_t *d, size_t from, size_t end, const char *type, size_t *body,
                    size_t *stop) {
    return find_box_at(d, from, end, type, NULL, body, stop);
}

static cg_status check_declared(const heif_walk *w, uint64_t width, uint64_t height) {
    if (width == 0 || height == 0 || width <= w->max_pixels / height) return CG_OK;
    return check_size(w->name, (int64_t)width, (int64_t)height, w->max_pixels, "is");
}

/* -- bitstream headers -- */

typedef struct {
    const uint8_t *p;
    size_t n, at; /* in bits */
    int bad;
} bit_reader;

static uint32_t read_bits(bit_reader *b, int k) {
    uint32_t v = 0;
    for (; k > 0; k--) {
        if (b->at >= b->n * 8) {
            b->bad = 1;
            return 0;
        }
        v = v << 1 | (uint32_t)(b->p[b->at >> 3] >> (7 - (b->at & 7)) & 1);
        b->at++;
    }
    return v;
}

static void skip_bits(bit_reader *b, int k) {
    while (k > 24) read_bits(b, 24), k -= 24;
    read_bits(b, k);
}

/* Exp-Golomb ue(v) (HEVC), up to 32 bits. */
static uint32_t read_ue(bit_reader *b) {
    int zeros = 0;
    while (!read_bits(b, 1) && !b->bad)
        if (++zeros > 31) b->bad = 1;
    if (b->bad) return 0;
    return zeros ? (uint32_t)((1ull << zeros) - 1 + read_bits(b, zeros)) : 0;
}

/* pic_width/height_in_luma_samples of an HEVC SPS NAL unit (2-byte header first). */
static int hevc_sps_size(const uint8_t *nal, size_t n, uint64_t *w, uint64_t *h) {
    uint8_t rbsp[192]; /* enough for the longest profile_tier_level before the size */
    size_t m = 0;
    int zeros = 0;
    for (size_t i = 2; i < n && m < sizeof rbsp; i++) {
        if (zeros >= 2 && nal[i] == 3) { /* emulation prevention byte */
            zeros = 0;
            continue;
        }
        zeros = nal[i] == 0 ? zeros + 1 : 0;
        rbsp[m++] = nal[i];
    }
    bit_reader b = {rbsp, m, 0, 0};
    skip_bits(&b, 4); /* sps_video_parameter_set_id */
    int sub = (int)read_bits(&b, 3);
    skip_bits(&b, 1 + 88 + 8); /* temporal nesting, general profile, general level */
    int profile[8] = {0}, level[8] = {0};
    for (int i = 0; i < sub; i++)
        profile[i] = (int)read_bits(&b, 1), level[i] = (int)read_bits(&b, 1);
    if (sub > 0) skip_bits(&b, 2 * (8 - sub));
    for (int i = 0; i < sub; i++) skip_bits(&b, (profile[i] ? 88 : 0) + (level[i] ? 8 : 0));
    read_ue(&b);                            /* sps_seq_parameter_set_id */
    if (read_ue(&b) == 3) skip_bits(&b, 1); /* chroma_format_idc 4:4:4: separate planes flag */
    *w = read_ue(&b);
    *h = read_ue(&b);
    return !b.bad;
}

static cg_status check_hevc_nal(const heif_walk *w, const uint8_t *nal, size_t n) {
    uint64_t width, height;
    if (n < 3 || (nal[0] >> 1 & 63) != 33 || !hevc_sps_size(nal, n, &width, &height)) return CG_OK;
    return check_declared(w, width, height);
}

/* AV1 uvlc(). */
static uint32_t read_uvlc(bit_reader *b) {
    int zeros = 0;
    while (!read_bits(b, 1) && !b->bad) zeros++;
    if (b->bad || zeros >= 32) return UINT32_MAX;
    return (uint32_t)((1ull << zeros) - 1 + read_bits(b, zeros));
}

/* max_frame_width/height of an AV1 sequence header OBU's payload (AV1 spec 5.5). */
static int av1_sequence_size(const uint8_t *p, size_t n, uint64_t *w, uint64_t *h) {
    bit_reader b = {p, n, 0, 0};
    skip_bits(&b, 4);       /* seq_profile, still_picture */
    if (read_bits(&b, 1)) { /* reduced_still_picture_header */
        skip_bits(&b, 5);
    } else {
        int model = 0, delay_bits = 0;
        if (read_bits(&b, 1)) { /* timing_info_present_flag */
            skip_bits(&b, 64);
            if (read_bits(&b, 1)) read_uvlc(&b);
            model = (int)read_bits(&b, 1);
            if (model) delay_bits = (int)read_bits(&b, 5) + 1, skip_bits(&b, 32 + 5 + 5);
        }
        int initial_delay = (int)read_bits(&b, 1);
        int points = (int)read_bits(&b, 5) + 1;
        for (int i = 0; i < points && !b.bad; i++) {
            skip_bits(&b, 12);
            if (read_bits(&b, 5) > 7) skip_bits(&b, 1);
            if (model && read_bits(&b, 1)) skip_bits(&b, 2 * delay_bits + 1);
            if (initial_delay && read_bits(&b, 1)) skip_bits(&b, 4);
        }
    }
    int wbits = (int)read_bits(&b, 4) + 1, hbits = (int)read_bits(&b, 4) + 1;
    *w = (uint64_t)read_bits(&b, wbits) + 1;
    *h = (uint64_t)read_bits(&b, hbits) + 1;
    return !b.bad;
}

/* Every sequence header among the OBUs in p[0 .. n). */
static cg_status check_av1_obus(const heif_walk *w, const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        int type = p[i] >> 3 & 15, ext = p[i] >> 2 & 1, sized = p[i] >> 1 & 1;
        size_t at = i + 1 + (size_t)ext;
        uint64_t size = 0;
        if (at > n) break;
        if (sized) { /* leb128 */
            int k = 0;
            for (;; k++) {
                if (at >= n || k == 8) return CG_OK;
                size |= (uint64_t)(p[at] & 127) << (7 * k);
                if (!(p[at++] & 128)) break;
            }
        } else {
            size = n - at;
        }
        if (size > n - at) break;
        uint64_t width, height;
        if (type == 1 && av1_sequence_size(p + at, (size_t)size, &width, &height)) {
            cg_status s = check_declared(w, width, height);
            if (s != CG_OK) return s;
        }
        i = at + (size_t)size;
    }
    return CG_OK;
}

/* -- items -- */

/* The canvas size at the start of a grid or overlay item's data; 0 when unreadable. As in
 * libheif 1.15: a grid's version is not looked at, an overlay's must be 0. */
static int canvas_size(const uint8_t *b, size_t got, int overlay, uint64_t *w, uint64_t *h) {
    size_t at = overlay ? 2 + 8 : 4; /* version, flags, (overlay: 4 fill colours), rows, columns */
    if (got < 2 || (overlay && b[0] != 0)) return 0;
    int field = b[1] & 1 ? 4 : 2;
    if (got < at + 2 * (size_t)field) return 0;
    *w = be(b + at, field), *h = be(b + at + field, field);
    return 1;
}

/* Checks one iloc item's data: its extents are gathered as libheif 1.15's
 * Box_iloc::read_data does (an extent outside the file fails the whole read for
 * construction method 0, while one outside the idat box is skipped for method 1, as libheif
 * ignores that error), then read as a canvas, as HEVC NAL units with 4-byte lengths (as
 * libheif 1.15 feeds them to libde265) or as AV1 OBUs. */
static cg_status check_item(const heif_walk *w, int kind, int method, uint64_t base,
                            const uint8_t *ext, int count, int index_size, int offset_size,
                            int length_size) {
    size_t ext_size = (size_t)index_size + offset_size + length_size, total = 0;
    const uint8_t *one = NULL;
    for (int pass = 0; pass < 2; pass++) {
        uint8_t *buf = NULL;
        if (pass == 1) {
            if (count == 1) break;
            if (!(buf = malloc(total ? total : 1)))
                return cg_fail(CG_ERR_NOMEM, "%s: out of memory", w->name);
        }
        size_t got = 0;
        for (int e = 0; e < count; e++) {
            const uint8_t *x = ext + (size_t)e * ext_size + index_size;
            uint64_t off = be(x, offset_size), len = be(x + offset_size, length_size), start;
            if (method != 0 && method != 1) return CG_OK;  /* libheif: not implemented */
            if (base > w->n || off > w->n || len > w->n) { /* libheif: out of the file */
                if (method == 0) return CG_OK;
                continue;
            }
            start = base + off;
            if (method == 1) {
                /* libheif 1.15 bounds it by the idat box's whole size, header included */
                if (!w->idat || start + len > w->idat_size) continue;
                start += w->idat;
            }
            if (start > w->n || len > w->n - start) {
                if (method == 0) return CG_OK;
                continue;
            }
            if (pass == 0) {
                if (len > w->n - total) /* extents adding up to more than the file overlap */
                    return cg_fail(CG_ERR_FORMAT,
                                   "%s: corrupt HEIF data (an item's extents overlap)", w->name);
                total += (size_t)len, one = w->d + start;
            } else {
                memcpy(buf + got, w->d + start, (size_t)len), got += (size_t)len;
            }
        }
        if (pass == 0 && count != 1) continue;
        const uint8_t *p = buf ? buf : one;
        size_t n = buf ? got : total;
        cg_status s = CG_OK;
        uint64_t width, height;
        if (!p) n = 0;
        if (kind == ITEM_GRID || kind == ITEM_IOVL) {
            if (canvas_size(p, n, kind == ITEM_IOVL, &width, &height))
                s = check_declared(w, width, height);
        } else if (kind == ITEM_HVC1) {
            for (size_t i = 0; s == CG_OK && n - i >= 4;) {
                uint64_t len = be(p + i, 4);
                if (len > n - i - 4) break;
                s = check_hevc_nal(w, p + i + 4, (size_t)len);
                i += 4 + (size_t)len;
            }
        } else {
            s = check_av1_obus(w, p, n);
        }
        free(buf);
        return s;
    }
    return CG_OK;
}

static int by_id(const void *a, const void *b) {
    uint32_t x = ((const item_kind *)a)->id, y = ((const item_kind *)b)->id;
    return x < y ? -1 : x > y;
}

/* The iloc box: each item of a kind that matters is checked. */
static cg_status check_iloc(const heif_walk *w, size_t body, size_t stop, const item_kind *kinds,
                            size_t nkinds) {
    const uint8_t *d = w->d;
    if (stop - body < 8) return CG_OK;
    int v = d[body];
    int sizes = (int)be(d + body + 4, 2);
    /* as libheif 1.15 parses it: field sizes other than 4 and 8 read nothing, and the
     * index size is read from version 2 on */
#define FIELD(x) ((x) == 4 || (x) == 8 ? (x) : 0)
    int offset_size = FIELD(sizes >> 12 & 15), length_size = FIELD(sizes >> 8 & 15);
    int base_size = FIELD(sizes >> 4 & 15), index_size = v > 1 ? FIELD(sizes & 15) : 0;
#undef FIELD
    size_t p = body + 6;
    int idlen = v < 2 ? 2 : 4;
    if (stop - p < (size_t)idlen) return CG_OK;
    uint64_t items = be(d + p, idlen);
    p += (size_t)idlen;
    for (uint64_t i = 0; i < items && i < MAX_ITEMS; i++) {
        size_t head = (size_t)idlen + (v >= 1 ? 2 : 0) + 2 + (size_t)base_size + 2;
        if (stop - p < head) return CG_OK;
        item_kind key = {(uint32_t)be(d + p, idlen), 0};
        int method = v >= 1 ? (int)(be(d + p + idlen, 2) & 15) : 0;
        uint64_t base = be(d + p + head - 2 - base_size, base_size);
        int count = (int)be(d + p + head - 2, 2);
        p += head;
        size_t ext_size = (size_t)index_size + offset_size + length_size;
        if (count > 32 || stop - p < (size_t)count * ext_size)
            return CG_OK; /* libheif refuses these */
        const item_kind *k = bsearch(&key, kinds, nkinds, sizeof *kinds, by_id);
        /* an ID given twice in iinf: each kind it was given is checked */
        while (k && k > kinds && k[-1].id == key.id) k--;
        for (; k && count > 0 && k < kinds + nkinds && k->id == key.id; k++) {
            cg_status s = check_item(w, k->kind, method, base, d + p, count, index_size,
                                     offset_size, length_size);
            if (s != CG_OK) return s;
        }
        p += (size_t)count * ext_size;
    }
    return CG_OK;
}

/* The hvcC and av1C boxes in ipco: the decoders get their headers first. */
static cg_status check_configs(const heif_walk *w, size_t meta, size_t meta_stop) {
    const uint8_t *d = w->d, *t;
    size_t body, stop, c_body, c_stop;
    if (!find_box(d, meta, meta_stop, "iprp", &body, &stop) ||
        !find_box(d, body, stop, "ipco", &body, &stop))
        return CG_OK;
    for (size_t pos = body; next_box(d, stop, &pos, &t, &c_body, &c_stop);) {
        cg_status s = CG_OK;
        if (!memcmp(t, "av1C", 4) && c_stop - c_body >= 4) {
            s = check_av1_obus(w, d + c_body + 4, c_stop - c_body - 4);
        } else if (!memcmp(t, "hvcC", 4) && c_stop - c_body >= 23) {
            size_t p = c_body + 23;
            for (int a = d[c_body + 22]; a > 0 && s == CG_OK && c_stop - p >= 3; a--) {
                int nalus = (int)be(d + p + 1, 2);
                p += 3;
                for (; nalus > 0 && s == CG_OK && c_stop - p >= 2; nalus--) {
                    size_t len = (size_t)be(d + p, 2);
                    if (len > c_stop - p - 2) return CG_OK;
                    s = check_hevc_nal(w, d + p + 2, len);
                    p += 2 + len;
                }
            }
        }
        if (s != CG_OK) return s;
    }
    return CG_OK;
}

static cg_status check_declared_sizes(const uint8_t *d, size_t n, const char *name,
                                      uint64_t max_pixels) {
    heif_walk w = {d, n, 0, 0, name, max_pixels};
    size_t meta, meta_stop, body, stop;
    if (!find_box(d, 0, n, "meta", &meta, &meta_stop) || meta_stop - meta < 4) return CG_OK;
    meta += 4; /* full box: version, flags */
    cg_status s = check_configs(&w, meta, meta_stop);
    if (s != CG_OK) return s;

    /* the kinds of the items (iinf: infe entries of version 2 or 3), sorted by ID */
    if (!find_box(d, meta, meta_stop, "iinf", &body, &stop) || stop - body < 6) return CG_OK;
    item_kind *kinds = malloc(sizeof *kinds * MAX_ITEMS);
    if (!kinds) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    size_t nkinds = 0, e_body, e_stop;
    const uint8_t *t;
    for (size_t pos = body + 4 + (d[body] == 0 ? 2 : 4);
         nkinds < MAX_ITEMS && next_box(d, stop, &pos, &t, &e_body, &e_stop);) {
        if (memcmp(t, "infe", 4) != 0 || e_stop - e_body < 4 || d[e_body] < 2) continue;
        size_t idlen = d[e_body] == 2 ? 2 : 4;
        if (e_stop - e_body < 4 + idlen + 2 + 4) continue;
        const uint8_t *type = d + e_body + 4 + idlen + 2;
        int kind = !memcmp(type, "grid", 4)   ? ITEM_GRID
                   : !memcmp(type, "iovl", 4) ? ITEM_IOVL
                   : !memcmp(type, "hvc1", 4) ? ITEM_HVC1
                   : !memcmp(type, "av01", 4) ? ITEM_AV01
                                              : ITEM_OTHER;
        if (kind == ITEM_OTHER) continue;
        kinds[nkinds].id = (uint32_t)be(d + e_body + 4, (int)idlen);
        kinds[nkinds++].kind = kind;
    }
    qsort(kinds, nkinds, sizeof *kinds, by_id);
    size_t idat_at;
    if (find_box_at(d, meta, meta_stop, "idat", &idat_at, &body, &stop))
        w.idat = body, w.idat_size = stop - idat_at;
    if (nkinds > 0 && find_box(d, meta, meta_stop, "iloc", &body, &stop))
        s = check_iloc(&w, body, stop, kinds, nkinds);
    free(kinds);
    return s;
}

/* ---- errors ---------------------------------------------------------------------------- */

static const char *have_decoder(enum heif_compression_format f) {
    return heif_have_decoder_for_format(f) ? "yes" : "no";
}

/* A libheif error as "NAME: reason (libheif: its message)"; `what` says which step. */
static cg_status heif_failure(struct heif_error e, const char *name, const char *what) {
    const char *msg = e.message && *e.message ? e.message : "no details";
    switch (e.code) {
    case heif_error_Memory_allocation_error:
        if (e.subcode == heif_suberror_Security_limit_exceeded)
            return cg_fail(CG_ERR_LIMIT, "%s: over a safety limit while %s (libheif: %s)", name,
                           what, msg);
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    case heif_error_Unsupported_filetype:
        return cg_fail(CG_ERR_FORMAT, "%s: not a HEIF or AVIF file libheif can read (libheif: %s)",
                       name, msg);
    case heif_error_Unsupported_feature:
        if (e.subcode == heif_suberror_Unsupported_codec)
            return cg_fail(CG_ERR_FORMAT,
                           "%s: unsupported codec: this libheif has no decoder for the image's "
                           "compression (HEVC decoder: %s, AV1 decoder: %s)",
                           name, have_decoder(heif_compression_HEVC),
                           have_decoder(heif_compression_AV1));
        return cg_fail(CG_ERR_FORMAT, "%s: unsupported HEIF feature while %s (libheif: %s)", name,
                       what, msg);
    case heif_error_Invalid_input:
        if (e.subcode == heif_suberror_End_of_data)
            return cg_fail(CG_ERR_FORMAT, "%s: truncated HEIF data (libheif: %s)", name, msg);
        /* libheif 1.15 reports a pitm naming a missing item as a missing item, in words */
        if (e.subcode == heif_suberror_No_pitm_box ||
            e.subcode == heif_suberror_No_or_invalid_primary_item ||
            (e.subcode == heif_suberror_Nonexisting_item_referenced && strstr(msg, "'pitm'")))
            return cg_fail(CG_ERR_FORMAT, "%s: no primary image (libheif: %s)", name, msg);
        return cg_fail(CG_ERR_FORMAT, "%s: corrupt HEIF data (libheif: %s)", name, msg);
    case heif_error_Decoder_plugin_error:
        if (e.subcode == heif_suberror_End_of_data)
            return cg_fail(CG_ERR_FORMAT,
                           "%s: truncated or corrupt compressed image data (libheif: %s)", name,
                           msg);
        return cg_fail(CG_ERR_FORMAT, "%s: corrupt compressed image data (libheif: %s)", name, msg);
    default:
        return cg_fail(CG_ERR_FORMAT, "%s: cannot decode HEIF data while %s (libheif: %s)", name,
                       what, msg);
    }
}

/* ---- pixels ---------------------------------------------------------------------------- */

/* Alpha onto white with image.c's rgba_to_rgb_on_white rounding: (c*a + 255*(255-a) +
 * 127) / 255. Premultiplied colour already holds c*a/255, so white's share is added:
 * c + 255 - a, capped (a bad file can hold colour above its alpha). */
static void on_white(uint8_t *d, const unsigned *s, int premultiplied) {
    unsigned a = s[3];
    for (int c = 0; c < 3; c++) {
        unsigned v = premultiplied ? s[c] + 255u - a : (s[c] * a + 255u * (255u - a) + 127u) / 255u;
        d[c] = (uint8_t)(v > 255u ? 255u : v);
    }
}

/* Copies the decoded interleaved plane (8-bit RGB/RGBA or 16-bit little-endian
 * RRGGBB(AA) holding `bits`-bit samples) into packed RGB8. */
static void to_rgb8(uint8_t *out, const uint8_t *plane, size_t stride, int w, int h, int ch,
                    int bits, int premultiplied) {
    unsigned max = (1u << bits) - 1u, half = max / 2u;
    for (int y = 0; y < h; y++) {
        const uint8_t *s = plane + stride * (size_t)y;
        uint8_t *d = out + (size_t)y * w * 3;
        for (int x = 0; x < w; x++, d += 3) {
            unsigned v[4];
            for (int c = 0; c < ch; c++) {
                if (bits <= 8) {
                    v[c] = *s++;
                } else {
                    unsigned u = (unsigned)s[0] | (unsigned)s[1] << 8;
                    s += 2;
                    if (u > max) u = max; /* bits above the stated depth: clip, do not wrap */
                    v[c] = (u * 255u + half) / max;
                }
            }
            if (ch == 4)
                on_white(d, v, premultiplied);
            else
                d[0] = (uint8_t)v[0], d[1] = (uint8_t)v[1], d[2] = (uint8_t)v[2];
        }
    }
}

/* ---- decoding -------------------------------------------------------------------------- */

typedef struct {
    struct heif_context *ctx;
    struct heif_image_handle *handle;
    struct heif_image *image;
    struct heif_decoding_options *opt;
    uint8_t *rgb;
    int w, h, had_alpha;
    char warning[sizeof((cg_image *)0)->warning];
} heif_dec;

static enum heif_chroma layout(int alpha, int deep) {
    if (deep)
        return alpha ? heif_chroma_interleaved_RRGGBBAA_LE : heif_chroma_interleaved_RRGGBB_LE;
    return alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB;
}

static cg_status heif_decode_run(heif_dec *d, const uint8_t *data, size_t n, const char *name,
                                 uint64_t max_pixels) {
    d->ctx = heif_context_alloc();
    if (!d->ctx) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    /* A tighter side limit makes libheif refuse huge tiles and grids (whose size the
     * public API does not show before decoding) while it reads the boxes. */
    int side = max_pixels < LIBHEIF_DEFAULT_MAX_SIDE ? (int)max_pixels : LIBHEIF_DEFAULT_MAX_SIDE;
    heif_context_set_maximum_image_size_limit(d->ctx, side);
    struct heif_error e = heif_context_read_from_memory_without_copy(d->ctx, data, n, NULL);
    if (e.code != heif_error_Ok) return heif_failure(e, name, "reading the file's structure");
    if (heif_context_get_number_of_top_level_images(d->ctx) < 1)
        return cg_fail(CG_ERR_FORMAT, "%s: no primary image (the file holds no image)", name);
    e = heif_context_get_primary_image_handle(d->ctx, &d->handle);
    if (e.code != heif_error_Ok || !d->handle) {
        if (e.code == heif_error_Memory_allocation_error)
            return heif_failure(e, name, "finding the primary image");
        return cg_fail(CG_ERR_FORMAT, "%s: no primary image (libheif: %s)", name,
                       e.message && *e.message ? e.message : "none marked");
    }

    /* The header's sizes: after the transforms (what is returned) and as coded (ispe,
     * what the codec allocates); 0 when the file has no ispe. */
    cg_status s = check_size(name, heif_image_handle_get_width(d->handle),
                             heif_image_handle_get_height(d->handle), max_pixels, "is");
    if (s != CG_OK) return s;
    int iw = heif_image_handle_get_ispe_width(d->handle),
        ih = heif_image_handle_get_ispe_height(d->handle);
    if (iw > 0 && ih > 0 && (s = check_size(name, iw, ih, max_pixels, "is")) != CG_OK) return s;
    if ((s = check_declared_sizes(data, n, name, max_pixels)) != CG_OK) return s;

    d->opt = heif_decoding_options_alloc();
    if (!d->opt) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    int alpha = heif_image_handle_has_alpha_channel(d->handle) != 0;
    int deep = heif_image_handle_get_luma_bits_per_pixel(d->handle) > 8;
    /* Deep samples are asked for as 16-bit and rounded below: libheif's own 8-bit
     * conversion drops the low bits instead. */
    e = heif_decode_image(d->handle, &d->image, heif_colorspace_RGB, layout(alpha, deep), d->opt);
    if (e.code != heif_error_Ok || !d->image) {
        d->image = NULL;
        return heif_failure(e, name, "decoding the image");
    }

    enum heif_chroma got = heif_image_get_chroma_format(d->image);
    int ch, wide;
    switch (got) {
    case heif_chroma_interleaved_RGB: ch = 3, wide = 0; break;
    case heif_chroma_interleaved_RGBA: ch = 4, wide = 0; break;
    case heif_chroma_interleaved_RRGGBB_LE: ch = 3, wide = 1; break;
    case heif_chroma_interleaved_RRGGBBAA_LE: ch = 4, wide = 1; break;
    default:
        return cg_fail(CG_ERR_FORMAT, "%s: libheif returned an unexpected pixel layout (%d)", name,
                       (int)got);
    }
    int bits = heif_image_get_bits_per_pixel_range(d->image, heif_channel_interleaved);
    if (!wide)
        bits = 8;
    else if (bits <= 8 || bits > 16)
        return cg_fail(CG_ERR_FORMAT, "%s: unsupported HEIF sample depth (%d bits)", name, bits);
    /* libheif 1.15 does not compare the decoded size with the header: the sizes checked
     * above are meant to cover everything it can decode, and this is the last guard. */
    int w = heif_image_get_width(d->image, heif_channel_interleaved);
    int h = heif_image_get_height(d->image, heif_channel_interleaved);
    if ((s = check_size(name, w, h, max_pixels, "decodes to")) != CG_OK) return s;
    int stride = 0;
    const uint8_t *plane =
        heif_image_get_plane_readonly(d->image, heif_channel_interleaved, &stride);
    if (!plane || stride < 0 || (size_t)stride < (size_t)w * ch * (wide ? 2 : 1))
        return cg_fail(CG_ERR_FORMAT, "%s: libheif returned no usable pixel plane", name);

    d->rgb = malloc((size_t)w * h * 3);
    if (!d->rgb) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    to_rgb8(d->rgb, plane, (size_t)stride, w, h, ch, bits,
            ch == 4 && heif_image_is_premultiplied_alpha(d->image));
    d->w = w, d->h = h, d->had_alpha = ch == 4;

    /* libheif 1.15 ignores the buffer size given to heif_image_get_decoding_warnings
     * and writes every warning from the first index asked for (found by fuzz_heif: two
     * warnings overran a one-entry buffer), all sharing one message string. So the count
     * comes first, then only the last warning is fetched, into exactly one entry. */
    int warnings = heif_image_get_decoding_warnings(d->image, 0, NULL, 0);
    if (warnings > 0) {
        struct heif_error warn = {heif_error_Ok, heif_suberror_Unspecified, NULL};
        if (heif_image_get_decoding_warnings(d->image, warnings - 1, &warn, 1) == 1)
            snprintf(d->warning, sizeof d->warning, "libheif: %s",
                     warn.message && *warn.message ? warn.message : "decoding warning");
    }
    return CG_OK;
}

cg_status cg_heif_decode(cg_image *img, const uint8_t *data, size_t n, const char *name,
                         uint64_t max_pixels) {
    name = or_memory(name);
    if (!img) return cg_fail(CG_ERR_ARG, "%s: no image to decode into", name);
    img->w = img->h = 0;
    img->rgb = NULL;
    img->had_alpha = 0;
    img->warning[0] = '\0';
    if (n == 0) return cg_fail(CG_ERR_FORMAT, "%s: empty file", name);
    if (!data) return cg_fail(CG_ERR_ARG, "%s: no data", name);
    if (max_pixels == 0) max_pixels = CG_DEFAULT_MAX_PIXELS;

    heif_dec *d = calloc(1, sizeof *d);
    if (!d) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", name);
    cg_status s = heif_decode_run(d, data, n, name, max_pixels);
    if (d->image) heif_image_release(d->image);
    if (d->opt) heif_decoding_options_free(d->opt);
    if (d->handle) heif_image_handle_release(d->handle);
    if (d->ctx) heif_context_free(d->ctx);
    if (s == CG_OK) {
        img->w = d->w, img->h = d->h, img->rgb = d->rgb, img->had_alpha = d->had_alpha;
        memcpy(img->warning, d->warning, sizeof img->warning);
    } else {
        free(d->rgb);
    }
    free(d);
    return s;
}

int cg_heif_file_has_alpha(const char *path) {
    struct heif_context *ctx = heif_context_alloc();
    struct heif_image_handle *h = NULL;
    int alpha = 0;
    if (ctx && heif_context_read_from_file(ctx, path, NULL).code == heif_error_Ok &&
        heif_context_get_primary_image_handle(ctx, &h).code == heif_error_Ok && h)
        alpha = heif_image_handle_has_alpha_channel(h) != 0;
    if (h) heif_image_handle_release(h);
    if (ctx) heif_context_free(ctx);
    return alpha;
}
