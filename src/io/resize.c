/* resize.c: separable Lanczos-3 resampling of packed RGB8 images, used to fit photos to the
 * network's pixel budget and to scale results back. Like PIL's Image.LANCZOS, the filter is
 * stretched by the downscale factor so that every source pixel contributes (antialiasing),
 * and the taps are cut at the image border and renormalised. */
#include "io/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LANCZOS_A 3.0

static double lanczos3(double x) {
    x = fabs(x);
    if (x < 1e-12) return 1.0;
    if (x >= LANCZOS_A) return 0.0;
    double px = M_PI * x;
    return LANCZOS_A * sin(px) * sin(px / LANCZOS_A) / (px * px);
}

/* Weights for one axis: output pixel i reads `taps` source pixels starting at first[i],
 * with weights w[i * taps ...] (zero-padded past count[i]). */
typedef struct {
    int taps;
    int *first, *count;
    float *w;
} axis_weights;

static void axis_free(axis_weights *a) {
    free(a->first);
    free(a->count);
    free(a->w);
}

static int axis_init(axis_weights *a, int out, int in) {
    double scale = (double)in / out;
    double fscale = scale > 1.0 ? scale : 1.0;
    double support = LANCZOS_A * fscale;
    a->taps = (int)ceil(support) * 2 + 1;
    a->first = malloc(sizeof(int) * (size_t)out);
    a->count = malloc(sizeof(int) * (size_t)out);
    a->w = calloc((size_t)out * (size_t)a->taps, sizeof(float));
    if (!a->first || !a->count || !a->w) {
        axis_free(a);
        return 0;
    }
    for (int i = 0; i < out; i++) {
        /* Pixel centres sit at half-integers, so the mapping keeps the image's edges
         * aligned rather than its first and last pixel centres. */
        double center = (i + 0.5) * scale;
        int lo = (int)floor(center - support + 0.5);
        int hi = (int)floor(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        if (hi - lo > a->taps) hi = lo + a->taps;
        float *w = a->w + (size_t)i * a->taps;
        double sum = 0.0;
        for (int k = lo; k < hi; k++) {
            double v = lanczos3((k + 0.5 - center) / fscale);
            w[k - lo] = (float)v;
            sum += v;
        }
        if (sum == 0.0) { /* cannot happen for Lanczos-3, but never divide by zero */
            int k = (int)center < in ? (int)center : in - 1;
            lo = k, hi = k + 1, w[0] = 1.0f, sum = 1.0;
        }
        for (int k = 0; k < hi - lo; k++) w[k] = (float)(w[k] / sum);
        a->first[i] = lo;
        a->count[i] = hi - lo;
    }
    return 1;
}

static inline uint8_t to_u8(float v) {
    if (!(v > 0.0f)) return 0; /* also catches NaN */
    if (v >= 255.0f) return 255;
    return (uint8_t)(v + 0.5f);
}

void cg_resize_rgb(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh) {
    if (!dst || !src || dw <= 0 || dh <= 0 || sw <= 0 || sh <= 0) return;
    if (dw == sw && dh == sh) {
        memcpy(dst, src, (size_t)sw * sh * 3);
        return;
    }
    axis_weights ax = {0}, ay = {0};
    float *tmp = NULL, *acc = NULL;
    int hpass = dw != sw, vpass = dh != sh;
    if ((hpass && !axis_init(&ax, dw, sw)) || (vpass && !axis_init(&ay, dh, sh))) goto oom;

    /* Horizontal pass: sh rows of dw pixels, kept in float so that the vertical pass does
     * not compound a second rounding. Skipped when only the height changes. */
    size_t trow = (size_t)dw * 3;
    acc = malloc(sizeof(float) * trow);
    if (!acc) goto oom;
    if (hpass) {
        tmp = malloc(sizeof(float) * trow * (size_t)sh);
        if (!tmp) goto oom;
        for (int y = 0; y < sh; y++) {
            const uint8_t *s = src + (size_t)y * sw * 3;
            float *t = tmp + (size_t)y * trow;
            for (int x = 0; x < dw; x++) {
                const float *w = ax.w + (size_t)x * ax.taps;
                const uint8_t *p = s + (size_t)ax.first[x] * 3;
                float r = 0, g = 0, b = 0;
                for (int k = 0, n = ax.count[x]; k < n; k++, p += 3) {
                    r += w[k] * p[0];
                    g += w[k] * p[1];
                    b += w[k] * p[2];
                }
                t[3 * x] = r, t[3 * x + 1] = g, t[3 * x + 2] = b;
            }
        }
    }

    /* Vertical pass: each output row is a weighted sum of whole input rows, which walks
     * memory linearly and vectorises. */
    for (int y = 0; y < dh; y++) {
        uint8_t *d = dst + (size_t)y * trow;
        if (!vpass) {
            const float *t = tmp + (size_t)y * trow;
            for (size_t k = 0; k < trow; k++) d[k] = to_u8(t[k]);
            continue;
        }
        const float *w = ay.w + (size_t)y * ay.taps;
        int n = ay.count[y];
        if (hpass) {
            const float *t = tmp + (size_t)ay.first[y] * trow;
            for (size_t k = 0; k < trow; k++) acc[k] = w[0] * t[k];
            for (int j = 1; j < n; j++) {
                const float *tj = t + (size_t)j * trow;
                float wj = w[j];
                for (size_t k = 0; k < trow; k++) acc[k] += wj * tj[k];
            }
        } else {
            const uint8_t *t = src + (size_t)ay.first[y] * trow;
            for (size_t k = 0; k < trow; k++) acc[k] = w[0] * t[k];
            for (int j = 1; j < n; j++) {
                const uint8_t *tj = t + (size_t)j * trow;
                float wj = w[j];
                for (size_t k = 0; k < trow; k++) acc[k] += wj * tj[k];
            }
        }
        for (size_t k = 0; k < trow; k++) d[k] = to_u8(acc[k]);
    }
    goto done;
oom:
    /* The interface has no error channel; a nearest-neighbour fallback keeps the output
     * defined when the (small) weight tables or the row buffer cannot be allocated. */
    for (int y = 0; y < dh; y++) {
        int sy = (int)(((long long)y * 2 + 1) * sh / (2LL * dh));
        for (int x = 0; x < dw; x++) {
            int sx = (int)(((long long)x * 2 + 1) * sw / (2LL * dw));
            memcpy(dst + ((size_t)y * dw + x) * 3, src + ((size_t)sy * sw + sx) * 3, 3);
        }
    }
done:
    axis_free(&ax);
    axis_free(&ay);
    free(tmp);
    free(acc);
}
