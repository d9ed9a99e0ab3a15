/* band.h: the pieces the generator (generator.c) is banded with: views of rows of a tensor,
 * filling a convolution's explicitly padded input for a band of rows, and instance-norm
 * statistics merged band by band.
 *
 * Tensors stored whole between stages are kept in blocks of STORE_ROWS rows, each block
 * [channel][row][column], so that a band of rows is one contiguous stretch of memory: a
 * stage can then write its output over rows of its input that no later band reads. (Whole
 * rows, [row][channel][column], would do too, but each channel's run would be one row, too
 * short for the hardware prefetchers.) Band buffers, which the convolutions take, are CHW. */
#ifndef CG_MODEL_BAND_H
#define CG_MODEL_BAND_H

#include <stddef.h>

#include "nn/ops.h"
#include "nn/pool.h"

#define BAND_MAX_CHANNELS 256

#define STORE_ROWS 4

/* Rows [y0, y1) of a tensor of c channels and width w, in blocks of `block` rows [c][block]
 * [w], bstride floats apart: element (ch, y, x), with i = y - y0, is at
 * base[i / block * bstride + (ch * block + i % block) * w + x]. A CHW band buffer is one
 * block; a stored tensor has blocks of STORE_ROWS rows. */
typedef struct {
    float *base;
    int c, w, y0, y1, block;
    size_t bstride;
} rows_view;

rows_view view_chw(float *base, int c, int w, int y0, int y1);
/* Rows [y0, y1) of a stored tensor whose blocks start at `base`, bstride apart; y0 must be
 * a multiple of STORE_ROWS. */
rows_view view_stored(float *base, int c, int w, int y0, int y1, size_t bstride);

/* Per channel: pixel count, mean and sum of squared deviations from the mean, merged row
 * by row in row order (Chan, Golub and LeVeque's pairwise update), so that the statistics
 * are the whole image's, bit for bit the same whatever the banding. */
typedef struct {
    double n, mean, m2;
} chan_stats;

/* An instance norm ready to apply: y = (x - m[ch]) * a[ch] + c[ch]. */
typedef struct {
    float m[BAND_MAX_CHANNELS], a[BAND_MAX_CHANNELS], c[BAND_MAX_CHANNELS];
} norm_params;

void stats_reset(chan_stats *s, int c);
/* Merges the moments of the next group of rows (group_moments) into s (Chan, Golub and
 * LeVeque's pairwise update). */
void stats_merge(chan_stats *s, const moments *g);
/* The norm from finished statistics, computed as instance_norm_forward does (biased
 * variance, eps inside the square root). */
void stats_finish(norm_params *p, const chan_stats *s, int c, const float *scale,
                  const float *shift, float eps);

/* How a band's padded input is built. Row y of the image (height h) lands in dst row
 * y - y0, for y in [y0, y1); rows outside [0, h) are zero, or reflected (reflect_rows).
 * Each row gets px columns of zeros, or of reflection (reflect_cols), on either side. The
 * source is normalised with `norm` (may be NULL) and then ReLU'd if relu. A source row
 * before src.y0 (overwritten in place by the stage's own output) must be src.y0 - 1, and
 * is taken, already padded, from `saved` ([c][w + 2 px]). */
typedef struct {
    float *dst; /* [c][y1 - y0][src.w + 2 px] */
    int y0, y1, h, px;
    int reflect_rows, reflect_cols;
    rows_view src;
    const norm_params *norm;
    int relu;
    const float *saved;
} fill_spec;

void band_fill(const fill_spec *f, cg_pool *pool);

/* A band's convolution output [c][rows][w], image rows [y0, y0 + rows): merges its rows'
 * statistics into s (may be NULL; bands must come in row order) and copies it into rows
 * of `store` (may be NULL). */
void band_emit(const float *band, int c, int rows, int w, int y0, chan_stats *s,
               const rows_view *store, cg_pool *pool);

/* On stored tensors of the same shape: dst = norm(src) + residual (may be NULL), then ReLU'd
 * if relu (relu with no residual only). dst may be src or residual. */
void stored_norm(const rows_view *dst, const rows_view *src, const rows_view *residual,
                 const norm_params *p, int relu, cg_pool *pool);

/* out [c][h][w] rows [y0, y0 + rows) = tanh(band [c][rows][w]). */
void band_tanh(float *out, int h, const float *band, int c, int rows, int w, int y0,
               cg_pool *pool);

#endif
