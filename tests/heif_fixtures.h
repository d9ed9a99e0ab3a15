/* heif_fixtures.h: the picture in the HEIC/AVIF fixtures of tests/data/images/, shared by
 * tools/make_heif_fixtures.c (which encodes it) and tests/test_heif.c (which checks the
 * decoded files against it), so the two cannot drift apart. Header-only.
 *
 * Upright, the picture is 96x64: four flat quadrants of different colours (red top left,
 * green top right, blue bottom left, yellow bottom right) and a white 8x8 marker inside the
 * red one. No rotation or mirror maps the quadrants onto themselves, so a decoder that
 * turns the picture the wrong way is caught by the quadrant colours alone even after lossy
 * coding has blurred the edges; the marker checks the same thing a second way. The alpha
 * variant is opaque on the left half, fully transparent top right and half transparent
 * (128) bottom right. Every region boundary and the marker lie on multiples of 4, so 4:2:0
 * chroma blocks never straddle two of them. Both sides are at least 64 because libheif
 * 1.15's x265 plugin pads smaller sides to 64 and then crops with a grid or `clap`, which
 * the fixtures are meant to do without. */
#ifndef CG_TESTS_HEIF_FIXTURES_H
#define CG_TESTS_HEIF_FIXTURES_H

#include <stdint.h>

#define HEIF_FIX_W 96
#define HEIF_FIX_H 64

/* Quadrant colours: 0 top left, 1 top right, 2 bottom left, 3 bottom right. */
static const uint8_t heif_fix_quadrant_rgb[4][3] = {
    {200, 30, 30}, {30, 180, 60}, {30, 60, 200}, {220, 200, 40}};
/* The marker: x in [MX0, MX1), y in [MY0, MY1), white. */
#define HEIF_FIX_MX0 4
#define HEIF_FIX_MX1 12
#define HEIF_FIX_MY0 4
#define HEIF_FIX_MY1 12

static inline int heif_fix_quadrant(int x, int y) {
    return (y >= HEIF_FIX_H / 2) * 2 + (x >= HEIF_FIX_W / 2);
}

static inline void heif_fix_pixel(int x, int y, uint8_t rgb[3]) {
    if (x >= HEIF_FIX_MX0 && x < HEIF_FIX_MX1 && y >= HEIF_FIX_MY0 && y < HEIF_FIX_MY1) {
        rgb[0] = rgb[1] = rgb[2] = 255;
        return;
    }
    const uint8_t *c = heif_fix_quadrant_rgb[heif_fix_quadrant(x, y)];
    rgb[0] = c[0], rgb[1] = c[1], rgb[2] = c[2];
}

/* The alpha variant's alpha: 255 left half, 0 top right, 128 bottom right. */
static inline uint8_t heif_fix_alpha(int x, int y) {
    if (x < HEIF_FIX_W / 2) return 255;
    return y < HEIF_FIX_H / 2 ? 0 : 128;
}

#endif
