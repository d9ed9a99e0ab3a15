/* mutate.c: writes mutated copies of image files for tools/mutation_check.sh: bit flips,
 * truncations, overwritten or inserted byte runs, and format-aware header edits (PNG IHDR
 * sizes and chunk lengths, JPEG SOF sizes and segment lengths, WebP RIFF/chunk sizes and
 * canvas sizes) set to the values that break parsers (0, 1, 0xffff, 0x7fffffff, off by one).
 * Deterministic for a given seed, so a failure can be reproduced.
 * Usage: mutate SEED COUNT OUTDIR FILE...   (plain C, no dependencies) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

static uint32_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static size_t below(size_t n) { return n ? ((size_t)rnd() << 32 | rnd()) % n : 0; }

/* A value that is interesting for a field that held `old`. */
static uint32_t interesting(uint32_t old, uint32_t max) {
    static const uint32_t v[] = {0, 1, 2, 3, 7, 8, 15, 16, 127, 128, 255, 256, 4095, 16383,
                                 16384, 32767, 32768, 65535, 65536, 100000, 0x7fffffff,
                                 0x80000000, 0xffffffff};
    uint32_t x;
    switch (rnd() % 4) {
    case 0: x = old + 1; break;
    case 1: x = old - 1; break;
    case 2: x = rnd(); break;
    default: x = v[rnd() % (sizeof v / sizeof v[0])]; break;
    }
    return max ? x & max : x;
}

static void put_be(uint8_t *p, int bytes, uint32_t x) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(x >> (8 * (bytes - 1 - i)));
}
static void put_le(uint8_t *p, int bytes, uint32_t x) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(x >> (8 * i));
}
static uint32_t get_be(const uint8_t *p, int bytes) {
    uint32_t x = 0;
    for (int i = 0; i < bytes; i++) x = x << 8 | p[i];
    return x;
}
static uint32_t get_le(const uint8_t *p, int bytes) {
    uint32_t x = 0;
    for (int i = bytes - 1; i >= 0; i--) x = x << 8 | p[i];
    return x;
}

/* PNG: IHDR width/height/depth/type, or some chunk's length. Returns 0 if not a PNG. */
static int edit_png(uint8_t *d, size_t n) {
    if (n < 33 || memcmp(d, "\x89PNG", 4) != 0) return 0;
    size_t offs[64];
    int k = 0;
    for (size_t p = 8; p + 12 <= n && k < 64;) {
        offs[k++] = p;
        size_t len = get_be(d + p, 4);
        if (len > n - p - 12) break;
        p += 12 + len;
    }
    switch (rnd() % 4) {
    case 0: put_be(d + 16, 4, interesting(get_be(d + 16, 4), 0)); break; /* width */
    case 1: put_be(d + 20, 4, interesting(get_be(d + 20, 4), 0)); break; /* height */
    case 2: d[24 + rnd() % 5] = (uint8_t)interesting(d[24], 0xff); break; /* depth, type, ... */
    default: {
        size_t p = offs[below((size_t)k)];
        put_be(d + p, 4, interesting(get_be(d + p, 4), 0));
    }
    }
    return 1;
}

/* JPEG: a SOF's height/width/component count, or some segment's length. */
static int edit_jpeg(uint8_t *d, size_t n) {
    if (n < 4 || d[0] != 0xff || d[1] != 0xd8) return 0;
    size_t segs[64], sof = 0;
    int k = 0;
    for (size_t p = 2; p + 4 <= n && k < 64;) {
        if (d[p] != 0xff) break;
        uint8_t m = d[p + 1];
        if (m == 0xd8 || m == 0x01 || (m >= 0xd0 && m <= 0xd7) || m == 0xff) { p += m == 0xff ? 1 : 2; continue; }
        segs[k++] = p;
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc && !sof) sof = p;
        if (m == 0xda) break; /* entropy-coded data follows */
        p += 2 + get_be(d + p + 2, 2);
    }
    if (!k) return 0;
    int what = rnd() % 3;
    if (sof && sof + 10 <= n && what < 2) {
        size_t f = sof + 5 + 2 * (rnd() % 2); /* height or width */
        if (rnd() % 4 == 0) f = sof + 9;      /* component count */
        if (f == sof + 9) d[f] = (uint8_t)interesting(d[f], 0xff);
        else put_be(d + f, 2, interesting(get_be(d + f, 2), 0xffff));
    } else {
        size_t p = segs[below((size_t)k)];
        put_be(d + p + 2, 2, interesting(get_be(d + p + 2, 2), 0xffff));
    }
    return 1;
}

/* WebP: the RIFF size, a chunk's size, the VP8X canvas, the VP8 or VP8L frame size. */
static int edit_webp(uint8_t *d, size_t n) {
    if (n < 30 || memcmp(d, "RIFF", 4) != 0 || memcmp(d + 8, "WEBP", 4) != 0) return 0;
    switch (rnd() % 4) {
    case 0: put_le(d + 4, 4, interesting(get_le(d + 4, 4), 0)); break;
    case 1: put_le(d + 16, 4, interesting(get_le(d + 16, 4), 0)); break; /* first chunk */
    case 2:
        if (!memcmp(d + 12, "VP8X", 4)) put_le(d + 24 + 3 * (rnd() % 2), 3, interesting(get_le(d + 24, 3), 0xffffff));
        else if (!memcmp(d + 12, "VP8 ", 4)) put_le(d + 26 + 2 * (rnd() % 2), 2, interesting(get_le(d + 26, 2), 0xffff));
        else put_le(d + 21, 4, interesting(get_le(d + 21, 4), 0)); /* VP8L packed sizes */
        break;
    default: { /* a later chunk's size */
        size_t p = 12, last = 12;
        while (p + 8 <= n && rnd() % 3) {
            last = p;
            size_t len = get_le(d + p + 4, 4);
            if (len > n - p - 8) break;
            p += 8 + len + (len & 1);
        }
        put_le(d + last + 4, 4, interesting(get_le(d + last + 4, 4), 0));
    }
    }
    return 1;
}

/* Mutates d (n bytes, capacity cap) in place; returns the new size and names the kind. */
static size_t mutate(uint8_t *d, size_t n, size_t cap, const char **kind) {
    size_t head = n < 2048 ? n : 2048; /* headers live near the start */
    switch (rnd() % 6) {
    case 0: { /* bit flips */
        int flips = 1 + (int)(rnd() % 16);
        for (int i = 0; i < flips; i++) {
            size_t p = rnd() % 2 ? below(head) : below(n);
            d[p] ^= (uint8_t)(1u << (rnd() % 8));
        }
        *kind = "bitflip";
        return n;
    }
    case 1: /* truncation */
        *kind = "truncate";
        return rnd() % 2 ? below(head) : below(n);
    case 2: { /* a run of bytes overwritten with 0x00, 0xff or noise */
        size_t p = below(n), len = 1 + below(rnd() % 2 ? 16 : 512);
        if (len > n - p) len = n - p;
        uint8_t fill = rnd() % 2 ? 0x00 : 0xff;
        for (size_t i = 0; i < len; i++) d[p + i] = rnd() % 3 ? fill : (uint8_t)rnd();
        *kind = "overwrite";
        return n;
    }
    case 3: { /* bytes inserted (or a slice duplicated) */
        size_t p = below(n), len = 1 + below(64);
        if (n + len > cap) len = cap - n;
        memmove(d + p + len, d + p, n - p);
        for (size_t i = 0; i < len; i++) d[p + i] = (uint8_t)rnd();
        *kind = "insert";
        return n + len;
    }
    default: /* header field edits, by format */
        *kind = "header";
        if (edit_png(d, n) || edit_jpeg(d, n) || edit_webp(d, n)) {
            if (rnd() % 3 == 0) { /* sometimes two edits */
                if (!edit_png(d, n) && !edit_jpeg(d, n)) edit_webp(d, n);
            }
            return n;
        }
        d[below(head)] ^= 0xff;
        return n;
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: mutate SEED COUNT OUTDIR FILE...\n");
        return 2;
    }
    rng_state = strtoull(argv[1], NULL, 10) * 0x9E3779B97F4A7C15ull + 1;
    int count = atoi(argv[2]);
    const char *out = argv[3];
    int nfiles = argc - 4;
    for (int i = 0; i < count; i++) {
        const char *src = argv[4 + i % nfiles];
        FILE *f = fopen(src, "rb");
        if (!f) {
            fprintf(stderr, "mutate: cannot open %s\n", src);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        size_t n = len > 0 ? (size_t)len : 0, cap = n + 64;
        uint8_t *d = malloc(cap);
        if (!d || fread(d, 1, n, f) != n) {
            fprintf(stderr, "mutate: cannot read %s\n", src);
            return 1;
        }
        fclose(f);
        const char *kind = "none";
        if (n > 0) n = mutate(d, n, cap, &kind);
        const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
        char path[4096];
        snprintf(path, sizeof path, "%s/m%04d-%s-%s", out, i, kind, base);
        FILE *o = fopen(path, "wb");
        if (!o || fwrite(d, 1, n, o) != n || fclose(o) != 0) {
            fprintf(stderr, "mutate: cannot write %s\n", path);
            return 1;
        }
        free(d);
    }
    return 0;
}
