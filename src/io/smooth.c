/* smooth.c: the edge-promoting step of smooth.h (gray, Canny, 5x5 dilation, Gaussian on
 * the dilated edges), written to give OpenCV's and numpy's bytes exactly. The Canny
 * follows OpenCV's canny.cpp: the same integer magnitudes, the same direction sectors
 * (tan 22.5 degrees in 15-bit fixed point), the same > / >= tie rules in non-maximum
 * suppression, and the same hysteresis over a map with a border of "never an edge". */
#include "io/smooth.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"

/* OpenCV 4's 15-bit cvtColor coefficients (0.299, 0.587, 0.114 scaled so they sum to
 * 2^15); OpenCV 2 and 3 used 14 bits, which rounds 43864 colours differently. */
#define GRAY_R 9798
#define GRAY_G 19235
#define GRAY_B 3735
#define GRAY_SHIFT 15

void cg_rgb_to_gray(uint8_t *gray, const uint8_t *rgb, size_t npixels) {
    for (size_t i = 0; i < npixels; i++, rgb += 3)
        gray[i] = (uint8_t)((GRAY_R * rgb[0] + GRAY_G * rgb[1] + GRAY_B * rgb[2] +
                             (1 << (GRAY_SHIFT - 1))) >> GRAY_SHIFT);
}

/* ---- Canny ---- */

/* Map values, as canny.cpp names them: a candidate (passed non-maximum suppression, above
 * the low threshold, not yet reached from an edge), not an edge, an edge. */
enum { MAP_MAYBE = 0, MAP_NO = 1, MAP_EDGE = 2 };

/* Sobel 3x3 of gray row y into dx, dy (w each), with BORDER_REPLICATE: rows and columns
 * outside the image repeat the nearest one. dx = [-1 0 1] x [1 2 1]^T, dy its transpose
 * (down minus up), as cv::Sobel(src, CV_16S, 1, 0) and (0, 1) give them. */
static void sobel_row(int *dx, int *dy, const uint8_t *gray, int w, int h, int y) {
    const uint8_t *u = gray + (size_t)(y > 0 ? y - 1 : 0) * w;
    const uint8_t *c = gray + (size_t)y * w;
    const uint8_t *d = gray + (size_t)(y + 1 < h ? y + 1 : h - 1) * w;
    for (int x = 0; x < w; x++) {
        int l = x > 0 ? x - 1 : 0, r = x + 1 < w ? x + 1 : w - 1;
        dx[x] = (u[r] - u[l]) + 2 * (c[r] - c[l]) + (d[r] - d[l]);
        dy[x] = (d[l] + 2 * d[x] + d[r]) - (u[l] + 2 * u[x] + u[r]);
    }
}

/* The stack of hysteresis: map offsets of edge pixels whose neighbours are still to be
 * looked at. Each pixel is pushed at most once (it is marked MAP_EDGE as it is pushed), so
 * it never holds more than w*h entries; it starts small and grows, as most maps are
 * sparse. */
typedef struct {
    size_t *v;
    size_t n, cap;
    int failed;
} edge_stack;

static void push(edge_stack *s, uint8_t *map, size_t at) {
    map[at] = MAP_EDGE;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        size_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            s->failed = 1;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = at;
}

cg_status cg_canny(uint8_t *edges, const uint8_t *gray, int w, int h, int low, int high) {
    if (!edges || !gray || w < 1 || h < 1)
        return cg_fail(CG_ERR_ARG, "cg_canny: %s", !edges || !gray ? "null image" : "size < 1");
    if (low > high) {
        int t = low;
        low = high;
        high = t;
    }
    size_t mw = (size_t)w + 2; /* the map and the magnitude rows have a 1-pixel border */
    if ((size_t)h + 2 > SIZE_MAX / mw)
        return cg_fail(CG_ERR_NOMEM, "cg_canny: %dx%d is too large", w, h);
    uint8_t *map = malloc(mw * ((size_t)h + 2));
    /* three magnitude rows (above, this, below) and the Sobel rows of this and the next */
    int *buf = calloc(3 * mw + 4 * (size_t)w, sizeof *buf);
    if (!map || !buf) {
        free(map);
        free(buf);
        return cg_fail(CG_ERR_NOMEM, "cg_canny: out of memory for a %dx%d image", w, h);
    }
    /* mag[k] + 1 is row y-1+k; index -1 and w stay 0, so a magnitude outside the image is
     * 0, as canny.cpp's zeroed border entries and zero rows above and below make it */
    int *mag[3] = {buf, buf + mw, buf + 2 * mw};
    int *dx = buf + 3 * mw, *dy = dx + w, *dx_next = dy + w, *dy_next = dx_next + w;
    memset(map, MAP_NO, mw);
    memset(map + mw * ((size_t)h + 1), MAP_NO, mw);
    edge_stack st = {0};

    /* row 0's magnitude into mag[1]; mag[0] (above the image) stays all zeros */
    sobel_row(dx_next, dy_next, gray, w, h, 0);
    for (int x = 0; x < w; x++) mag[1][x + 1] = abs(dx_next[x]) + abs(dy_next[x]);
    /* tan(22.5 degrees) * 2^15, rounded: canny.cpp's TG22 */
    const int tg22 = 13573;
    for (int y = 0; y < h; y++) {
        int *t = dx;
        dx = dx_next, dx_next = t;
        t = dy;
        dy = dy_next, dy_next = t;
        int *below = mag[2] + 1;
        if (y + 1 < h) {
            sobel_row(dx_next, dy_next, gray, w, h, y + 1);
            for (int x = 0; x < w; x++) below[x] = abs(dx_next[x]) + abs(dy_next[x]);
        } else {
            memset(below, 0, (size_t)w * sizeof *below);
        }
        const int *above = mag[0] + 1, *here = mag[1] + 1;
        uint8_t *row = map + mw * ((size_t)y + 1) + 1;
        row[-1] = row[w] = MAP_NO;
        for (int x = 0; x < w; x++) {
            int m = here[x];
            row[x] = MAP_NO;
            /* m is always even (|dx| + |dy| has the parity of dx + dy, which is twice a sum
             * of pixel differences), so only m == low and m == high test the strict
             * comparisons; the fixtures have both */
            if (m <= low) continue;
            int xs = dx[x], ys = dy[x];
            int ax = abs(xs), ay = abs(ys) << 15;
            int tg22x = ax * tg22;
            int peak;
            if (ay < tg22x) { /* within 22.5 degrees of horizontal: compare left, right */
                peak = m > here[x - 1] && m >= here[x + 1];
            } else {
                int tg67x = tg22x + (ax << 16); /* tan 67.5 = tan 22.5 + 2 */
                if (ay > tg67x) { /* near vertical: compare above, below */
                    peak = m > above[x] && m >= below[x];
                } else { /* diagonal: the pair along the gradient's sign, strict both sides */
                    int s = (xs ^ ys) < 0 ? -1 : 1;
                    peak = m > above[x - s] && m > below[x + s];
                }
            }
            if (!peak) continue;
            if (m > high)
                push(&st, map, (size_t)(row + x - map));
            else
                row[x] = MAP_MAYBE;
        }
        int *r = mag[0];
        mag[0] = mag[1], mag[1] = mag[2], mag[2] = r;
    }

    /* hysteresis: every candidate 8-connected to an edge becomes one; the map's border is
     * MAP_NO, so the walk never leaves the image */
    while (st.n > 0 && !st.failed) {
        size_t at = st.v[--st.n];
        const size_t nb[8] = {at - mw - 1, at - mw, at - mw + 1, at - 1,
                              at + 1,      at + mw - 1, at + mw, at + mw + 1};
        for (int k = 0; k < 8; k++)
            if (map[nb[k]] == MAP_MAYBE) push(&st, map, nb[k]);
    }
    int failed = st.failed;
    free(st.v);
    free(buf);
    if (failed) {
        free(map);
        return cg_fail(CG_ERR_NOMEM, "cg_canny: out of memory for a %dx%d image", w, h);
    }
    for (int y = 0; y < h; y++) {
        const uint8_t *row = map + mw * ((size_t)y + 1) + 1;
        uint8_t *e = edges + (size_t)y * w;
        for (int x = 0; x < w; x++) e[x] = row[x] == MAP_EDGE ? 255 : 0;
    }
    free(map);
    return CG_OK;
}

/* ---- dilation and the Gaussian ---- */

/* np.pad(mode='reflect')'s source index for i in [-2, n + 2): mirrored about the first
 * and last pixel without repeating them, and for sides too short for one mirror (n = 2)
 * mirrored again, i.e. periodic with period 2(n - 1); a 1-pixel side repeats its pixel. */
static int reflect(int i, int n) {
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

cg_status cg_edge_smooth(uint8_t *out_rgb, const uint8_t *in_rgb, int w, int h,
                         uint8_t *edges_out) {
    if (!out_rgb || !in_rgb || w < 1 || h < 1)
        return cg_fail(CG_ERR_ARG, "cg_edge_smooth: %s",
                       !out_rgb || !in_rgb ? "null image" : "size < 1");
    if (out_rgb == in_rgb)
        return cg_fail(CG_ERR_ARG, "cg_edge_smooth: the output must not be the input");
    if ((size_t)h > SIZE_MAX / 4 / (size_t)w)
        return cg_fail(CG_ERR_NOMEM, "cg_edge_smooth: %dx%d is too large", w, h);
    size_t n = (size_t)w * (size_t)h;
    /* gray, edges, the horizontal pass of the dilation, and the reflect tables */
    uint8_t *scratch = malloc(3 * n);
    int *rx = malloc(((size_t)w + 4 + (size_t)h + 4) * sizeof *rx);
    if (!scratch || !rx) {
        free(scratch);
        free(rx);
        return cg_fail(CG_ERR_NOMEM, "cg_edge_smooth: out of memory for a %dx%d image", w, h);
    }
    uint8_t *gray = scratch, *edges = scratch + n, *wide = scratch + 2 * n;
    cg_rgb_to_gray(gray, in_rgb, n);
    cg_status s = cg_canny(edges, gray, w, h, CG_SMOOTH_CANNY_LOW, CG_SMOOTH_CANNY_HIGH);
    if (s != CG_OK) {
        free(scratch);
        free(rx);
        return s;
    }
    if (edges_out) memcpy(edges_out, edges, n);

    /* cv2.dilate with a 5x5 square, done as a row pass then a column pass (a square is
     * separable for max); its default border counts pixels outside as unset */
    for (int y = 0; y < h; y++) {
        const uint8_t *e = edges + (size_t)y * w;
        uint8_t *o = wide + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            int x0 = x - 2 < 0 ? 0 : x - 2, x1 = x + 2 >= w ? w - 1 : x + 2;
            uint8_t any = 0;
            for (int k = x0; k <= x1; k++) any |= e[k];
            o[x] = any;
        }
    }

    /* rx[i + 2] / ry[i + 2]: where padded column / row i comes from */
    int *ry = rx + w + 4;
    for (int i = -2; i < w + 2; i++) rx[i + 2] = reflect(i, w);
    for (int i = -2; i < h + 2; i++) ry[i + 2] = reflect(i, h);
    static const int k5[5] = {1, 4, 6, 4, 1};
    size_t stride = (size_t)w * 3;
    memcpy(out_rgb, in_rgb, n * 3);
    for (int y = 0; y < h; y++) {
        int y0 = y - 2 < 0 ? 0 : y - 2, y1 = y + 2 >= h ? h - 1 : y + 2;
        for (int x = 0; x < w; x++) {
            uint8_t any = 0;
            for (int k = y0; k <= y1; k++) any |= wide[(size_t)k * w + x];
            if (!any) continue;
            /* numpy sums float64 products of exact multiples of 1/256 below 256, so every
             * partial sum is exact: the integer sum / 256, truncated on the uint8 store */
            int acc[3] = {0, 0, 0};
            for (int i = 0; i < 5; i++) {
                const uint8_t *src = in_rgb + (size_t)ry[y + i] * stride;
                for (int j = 0; j < 5; j++) {
                    const uint8_t *p = src + (size_t)rx[x + j] * 3;
                    int kk = k5[i] * k5[j];
                    acc[0] += kk * p[0];
                    acc[1] += kk * p[1];
                    acc[2] += kk * p[2];
                }
            }
            uint8_t *o = out_rgb + (size_t)y * stride + (size_t)x * 3;
            o[0] = (uint8_t)(acc[0] >> 8);
            o[1] = (uint8_t)(acc[1] >> 8);
            o[2] = (uint8_t)(acc[2] >> 8);
        }
    }
    free(scratch);
    free(rx);
    return CG_OK;
}
