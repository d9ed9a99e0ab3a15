/* generator.c: the CartoonGAN generator (Chen, Lai, Liu, CVPR 2018) as released by its
 * authors, written out layer by layer: no graph, no dispatch, just the calls in order.
 *
 * Note the padding, which is the original's and not the TensorFlow port's: reflection
 * around the 7x7 convolutions and inside the residual blocks, zeros everywhere else.
 *
 * It runs in bands of rows, so that a full-size photo fits in bounded memory: about 150
 * bytes per pixel instead of 800 (see the plan below). Instance norm needs the whole
 * image's statistics, so the 64-channel full-resolution tensors are computed twice, once
 * for their statistics and once to be used, and the rest is stored whole in a compact
 * layout. The output is exactly what running the image as one band gives. */
#include "generator.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "band.h"
#include "model.h"
#include "nn/gemm.h"
#include "status.h"

const gen_tensor_info gen_tensors[GEN_NUM_TENSORS] = {
    {"conv01_1.bias", 1, {64}},
    {"conv01_1.weight", 4, {64, 3, 7, 7}},
    {"conv02_1.bias", 1, {128}},
    {"conv02_1.weight", 4, {128, 64, 3, 3}},
    {"conv02_2.bias", 1, {128}},
    {"conv02_2.weight", 4, {128, 128, 3, 3}},
    {"conv03_1.bias", 1, {256}},
    {"conv03_1.weight", 4, {256, 128, 3, 3}},
    {"conv03_2.bias", 1, {256}},
    {"conv03_2.weight", 4, {256, 256, 3, 3}},
    {"conv04_1.bias", 1, {256}},
    {"conv04_1.weight", 4, {256, 256, 3, 3}},
    {"conv04_2.bias", 1, {256}},
    {"conv04_2.weight", 4, {256, 256, 3, 3}},
    {"conv05_1.bias", 1, {256}},
    {"conv05_1.weight", 4, {256, 256, 3, 3}},
    {"conv05_2.bias", 1, {256}},
    {"conv05_2.weight", 4, {256, 256, 3, 3}},
    {"conv06_1.bias", 1, {256}},
    {"conv06_1.weight", 4, {256, 256, 3, 3}},
    {"conv06_2.bias", 1, {256}},
    {"conv06_2.weight", 4, {256, 256, 3, 3}},
    {"conv07_1.bias", 1, {256}},
    {"conv07_1.weight", 4, {256, 256, 3, 3}},
    {"conv07_2.bias", 1, {256}},
    {"conv07_2.weight", 4, {256, 256, 3, 3}},
    {"conv08_1.bias", 1, {256}},
    {"conv08_1.weight", 4, {256, 256, 3, 3}},
    {"conv08_2.bias", 1, {256}},
    {"conv08_2.weight", 4, {256, 256, 3, 3}},
    {"conv09_1.bias", 1, {256}},
    {"conv09_1.weight", 4, {256, 256, 3, 3}},
    {"conv09_2.bias", 1, {256}},
    {"conv09_2.weight", 4, {256, 256, 3, 3}},
    {"conv10_1.bias", 1, {256}},
    {"conv10_1.weight", 4, {256, 256, 3, 3}},
    {"conv10_2.bias", 1, {256}},
    {"conv10_2.weight", 4, {256, 256, 3, 3}},
    {"conv11_1.bias", 1, {256}},
    {"conv11_1.weight", 4, {256, 256, 3, 3}},
    {"conv11_2.bias", 1, {256}},
    {"conv11_2.weight", 4, {256, 256, 3, 3}},
    {"deconv01_1.bias", 1, {128}},
    {"deconv01_1.weight", 4, {256, 128, 3, 3}},
    {"deconv01_2.bias", 1, {128}},
    {"deconv01_2.weight", 4, {128, 128, 3, 3}},
    {"deconv02_1.bias", 1, {64}},
    {"deconv02_1.weight", 4, {128, 64, 3, 3}},
    {"deconv02_2.bias", 1, {64}},
    {"deconv02_2.weight", 4, {64, 64, 3, 3}},
    {"deconv03_1.bias", 1, {3}},
    {"deconv03_1.weight", 4, {3, 64, 7, 7}},
    {"in01_1.scale", 1, {64}},
    {"in01_1.shift", 1, {64}},
    {"in02_1.scale", 1, {128}},
    {"in02_1.shift", 1, {128}},
    {"in03_1.scale", 1, {256}},
    {"in03_1.shift", 1, {256}},
    {"in04_1.scale", 1, {256}},
    {"in04_1.shift", 1, {256}},
    {"in04_2.scale", 1, {256}},
    {"in04_2.shift", 1, {256}},
    {"in05_1.scale", 1, {256}},
    {"in05_1.shift", 1, {256}},
    {"in05_2.scale", 1, {256}},
    {"in05_2.shift", 1, {256}},
    {"in06_1.scale", 1, {256}},
    {"in06_1.shift", 1, {256}},
    {"in06_2.scale", 1, {256}},
    {"in06_2.shift", 1, {256}},
    {"in07_1.scale", 1, {256}},
    {"in07_1.shift", 1, {256}},
    {"in07_2.scale", 1, {256}},
    {"in07_2.shift", 1, {256}},
    {"in08_1.scale", 1, {256}},
    {"in08_1.shift", 1, {256}},
    {"in08_2.scale", 1, {256}},
    {"in08_2.shift", 1, {256}},
    {"in09_1.scale", 1, {256}},
    {"in09_1.shift", 1, {256}},
    {"in09_2.scale", 1, {256}},
    {"in09_2.shift", 1, {256}},
    {"in10_1.scale", 1, {256}},
    {"in10_1.shift", 1, {256}},
    {"in10_2.scale", 1, {256}},
    {"in10_2.shift", 1, {256}},
    {"in11_1.scale", 1, {256}},
    {"in11_1.shift", 1, {256}},
    {"in11_2.scale", 1, {256}},
    {"in11_2.shift", 1, {256}},
    {"in12_1.scale", 1, {128}},
    {"in12_1.shift", 1, {128}},
    {"in13_1.scale", 1, {64}},
    {"in13_1.shift", 1, {64}},
};

int gen_padded_side(int side) { return (side + 3) / 4 * 4; }
int gen_out_side(int side) { return 4 * ((side + 3) / 4); }

/* ---- the plan: sizes, band heights, and where everything lives in the arena ----
 *
 * Tensor sizes: h1 x w1 the input, h2 = ceil(h1/2) after the first stride-2 stage, h3 =
 * ceil(h2/2) the residual blocks', h4 = 2 h3 after the first deconvolution, h5 = 2 h4 the
 * output. Only three tensors are ever stored whole, one after another in the same region
 * (about 32 floats per input pixel), in blocks of 4 rows (band.h):
 *   C22 (conv02_2's output before its norm, 128 x h2 x w2),
 *   x and t (the residual blocks' activation and temporary, 256 x h3 x w3 each, x in the
 *            region's first half and t in its second, until the last residual block
 *            leaves x in the second half),
 *   D12 (deconv01_2's output before its norm, 128 x h4 x w4).
 * A row of any of them takes at most 256 w3 floats, so the region is 2 hb blocks of 4 such
 * rows (hb = ceil(h3 / 4), each half hb blocks), and block k of each tensor is block k of
 * the region (of its half for x and t). Each stage writes over blocks of its input that no
 * later band reads. Everything at full resolution with 64 channels exists only a band at a
 * time: its statistics come from one pass, and the next stage computes it again.
 *
 * Bands are whole multiples of 4 rows (or the rest of the image), so that they are whole
 * blocks and a band's Winograd tiles are the whole image's; and the statistics are merged
 * in groups of 4 rows, in order: a banded run computes exactly what a single band does. */

enum { B_D1, B_D2, B_D3, B_RES, B_U1, B_U2, B_U3, NUM_BANDED };

/* Floats per band buffer (there are two): 80 MB, which runs images up to about 512x512 as
 * one band (nothing computed twice) and full-resolution bands of 70 to 80 rows at 4K. */
#define BAND_FLOATS ((size_t)20 << 20)

static int band_override;
void generator_set_band_rows(int rows) { band_override = rows > 0 ? (rows + 3) / 4 * 4 : 0; }

typedef struct {
    int h1, w1, h2, w2, h3, w3, h4, w4, h5, w5;
    int band[NUM_BANDED]; /* rows per band, counted in the stage's own rows */
    int hb;               /* blocks of STORE_ROWS rows in each half of the region */
    size_t bpitch;        /* floats per block: STORE_ROWS rows of 256 w3 */
    size_t region, buf, saved, scratch;
    int mom_rows; /* rows of tiles of the largest band wino_stats takes statistics of */
    /* at_use models: slots of wslot floats, each for a 256 x 256 Winograd layer's
     * transformed weights and the temporary of their packing, one for D3 (conv03_2) and
     * two for the residual stage, at these offsets in the arena (floats): in A or B past
     * what the stage uses of them where they fit (images of about 512x512 and more), else
     * in `extra` floats at the arena's end */
    size_t wslot, slot_at[2][2], extra;
} plan;

static size_t max2(size_t a, size_t b) { return a > b ? a : b; }
static size_t max3(size_t a, size_t b, size_t c) { return max2(a, max2(b, c)); }
static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* Rows each stage produces (the unit of its bands). U1's band is counted in rows of x, its
 * input, as its in-place rule is about x's rows (each gives two rows of D12). */
static int stage_rows(const plan *p, int s) {
    switch (s) {
    case B_D1: return p->h1;
    case B_D2: return p->h2;
    case B_U2: case B_U3: return p->h5;
    default: return p->h3;
    }
}

/* Floats that band buffers A and B need when stage s runs in
 * bands of n rows: the largest of each buffer's uses in the stage's sequence below (with
 * the halos a band in the middle of the image has, but never more rows than the image). */
typedef struct {
    size_t a, b;
} band_need;

static band_need stage_need(const plan *p, int s, int n) {
    const size_t w1 = p->w1, w2 = p->w2, w3 = p->w3, w4 = p->w4, w5 = p->w5;
    band_need r = {0, 0};
    size_t nn = (size_t)imin(n, stage_rows(p, s));
    if (s == B_D1) {
        r.a = 3 * (nn + 6) * (w1 + 6);
        r.b = 64 * nn * w1;
    } else if (s == B_D2) {
        /* (+ 8: the strided convolution's rows widened to whole tiles, strided_rows) */
        size_t nq = (size_t)imin((int)nn + 8, (p->h2 + 3) / 4 * 4), na = (size_t)imin(2 * (int)nq + 1, p->h1);
        r.a = max3(3 * (na + 6) * (w1 + 6), 64 * (2 * nq + 1) * (w1 + 2), 128 * (nn + 2) * (w2 + 2));
        r.b = max3(64 * na * w1, 128 * nq * w2, 128 * nn * w2);
    } else if (s == B_D3) {
        size_t nq = (size_t)imin((int)nn + 8, (p->h3 + 3) / 4 * 4);
        r.a = max2(128 * (2 * nq + 1) * (w2 + 2), 256 * (nn + 2) * (w3 + 2));
        r.b = 256 * nq * w3;
    } else if (s == B_RES) {
        r.a = 256 * (nn + 2) * (w3 + 2);
        r.b = 256 * nn * w3;
    } else {
        /* up_rows: deconvolution input rows (A), its phases (B), the padded 3x3 input (A,
         * written by the deconvolution) and the 3x3's output (B); U3 adds the 7x7's
         * reflect-padded input and its 3-channel output. */
        int cin = s == B_U1 ? 256 : 128, cout = cin / 2;
        size_t win = s == B_U1 ? w3 : w4, wout = 2 * win;
        int hin = s == B_U1 ? p->h3 : p->h4;
        size_t ne = s == B_U1 ? 2 * nn : s == B_U2 ? nn : (size_t)imin((int)nn + 8, p->h5);
        size_t nx = (size_t)imin((int)ne / 2 + 10, hin); /* + 10: whole tiles (up_rows) */
        r.a = max2(cin * nx * win, cout * (ne + 2) * (wout + 2));
        r.b = max2(cout * 2 * nx * wout, cout * ne * wout);
        if (s == B_U3) {
            r.a = max2(r.a, 64 * (nn + 6) * (w5 + 6));
            r.b = max2(r.b, 3 * nn * w5);
        }
    }
    return r;
}

/* D3's bands are at least 12 rows: a band from row r0 reads C22 from row 2 r0 - 9 on (its
 * strided convolution's rows widened to whole tiles, strided_rows), which the bands above
 * it, having written x over C22's rows [0, r0), have left intact only from r0 >= 9. */
#define D3_MIN_BAND 12

/* The tallest band that keeps each of the buffers A and B within BAND_FLOATS: the whole
 * stage if it fits, else a multiple of 4 rows (whole Winograd tiles), at least 4 (12 for
 * D3). */
static int choose_band(const plan *p, int s) {
    int rows = stage_rows(p, s), least = s == B_D3 ? D3_MIN_BAND : 4;
    if (band_override) return imin(imax(band_override, least), rows);
    band_need r = stage_need(p, s, rows);
    if (max2(r.a, r.b) <= BAND_FLOATS) return rows;
    for (int n = rows / 4 * 4; n > least; n -= 4) {
        r = stage_need(p, s, n);
        if (max2(r.a, r.b) <= BAND_FLOATS) return n;
    }
    return imin(least, rows);
}

static int num_bands(const plan *p, int s) { return (stage_rows(p, s) + p->band[s] - 1) / p->band[s]; }

static size_t up16(size_t n) { return (n + 15) & ~(size_t)15; }

enum { PARAMS_FLOATS = NUM_NORMS * sizeof(norm_params) / sizeof(float),
       STATS_FLOATS = BAND_MAX_CHANNELS * sizeof(chan_stats) / sizeof(float) };

/* wino_stats' moments per row of tiles and channel, and their counters (winograd_out). */
static size_t moments_floats(const plan *p) {
    return up16((size_t)p->mom_rows * BAND_MAX_CHANNELS * sizeof(moments) / sizeof(float)) +
           up16((size_t)p->mom_rows * sizeof(int) / sizeof(float) + 1);
}

/* The arena, in order: region, A, B, saved, scratch, then the norms' parameters, the
 * running statistics, wino_stats' moments and the weights slots that A and B have no
 * room for. Each piece starts on a 64-byte boundary. */
static double arena_floats(const plan *p) {
    return (double)up16(p->region) + 2.0 * up16(p->buf) + up16(p->saved) +
           up16(p->scratch) + up16(PARAMS_FLOATS) + up16(STATS_FLOATS) + moments_floats(p) + p->extra;
}

/* Places an at_use model's weights slots (see plan). D3 and the residual blocks, the
 * stages that run the 256 x 256 layers, use A and B only up to their bands' needs, while
 * the full-resolution stages need about four times that: at 512x512 the slots (21 MB each)
 * fit in what those two stages leave free, and the arena is no larger than a packed
 * model's. The extra region is shared: the stages
 * run one after the other. */
static void place_slots(plan *p) {
    static const int stage[2] = {B_D3, B_RES}, count[2] = {1, 2};
    p->wslot = up16(winograd_weights_floats(256, 256)) + up16(winograd_pack_tmp_floats(256, 256));
    const size_t end = (size_t)arena_floats(p), buf = up16(p->buf);
    for (int s = 0; s < 2; s++) {
        band_need u = stage_need(p, stage[s], p->band[stage[s]]);
        size_t at[2] = {up16(p->region) + up16(u.a), up16(p->region) + buf + up16(u.b)}; /* in A, in B */
        size_t room[2] = {buf - up16(u.a), buf - up16(u.b)}, extra = 0;
        for (int k = 0; k < count[s]; k++) {
            int in = room[1] >= room[0] ? 1 : 0; /* the roomier buffer */
            if (room[in] >= p->wslot) {
                p->slot_at[s][k] = at[in];
                at[in] += p->wslot, room[in] -= p->wslot;
            } else {
                p->slot_at[s][k] = end + extra;
                extra += p->wslot;
            }
        }
        p->extra = max2(p->extra, extra);
    }
}

static plan make_plan(int h, int w, int threads, int at_use) {
    plan p;
    p.h1 = h, p.w1 = w;
    p.h2 = (h + 1) / 2, p.w2 = (w + 1) / 2;
    p.h3 = (p.h2 + 1) / 2, p.w3 = (p.w2 + 1) / 2;
    p.h4 = 2 * p.h3, p.w4 = 2 * p.w3;
    p.h5 = 2 * p.h4, p.w5 = 2 * p.w4;
    p.hb = (p.h3 + STORE_ROWS - 1) / STORE_ROWS;
    p.bpitch = STORE_ROWS * 256 * (size_t)p.w3;
    p.region = 2 * (size_t)p.hb * p.bpitch;
    p.buf = 0;
    for (int s = 0; s < NUM_BANDED; s++) {
        p.band[s] = choose_band(&p, s);
        band_need r = stage_need(&p, s, p.band[s]);
        p.buf = max3(p.buf, r.a, r.b);
    }
    p.saved = 256 * ((size_t)p.w3 + 2);
    p.mom_rows = imax(imax(p.band[B_D2], p.band[B_D3]), imax(imax(p.band[B_RES], 2 * p.band[B_U1]), p.band[B_U2])) / 4 + 1;
    p.scratch = max3(conv_scratch_floats(threads), winograd_scratch_floats(threads, 256, 256),
                     winograd_s2_scratch_floats(threads, 256, 128));
    p.wslot = p.extra = 0;
    memset(p.slot_at, 0, sizeof p.slot_at);
    if (at_use) place_slots(&p);
    return p;
}

size_t generator_arena_bytes_for(const struct cg_model *m, int h, int w, int threads) {
    if (h < 1 || w < 1 || (size_t)h * w > 4 * (size_t)CG_MAX_NETWORK_PIXELS) return 0;
    plan p = make_plan(h, w, threads, m && m->at_use);
    double bytes = arena_floats(&p) * sizeof(float) + 64; /* + 64: aligning the start */
    return bytes > (double)SIZE_MAX / 2 ? 0 : (size_t)bytes;
}

size_t generator_arena_bytes(int h, int w, int threads) { return generator_arena_bytes_for(NULL, h, w, threads); }

/* ---- progress: the fraction of multiply-adds done so far ---- */

typedef struct {
    cg_progress_fn fn;
    void *user;
    double done, total;
    int cancelled;
} progress;

static double layer_macs(int cout, int cin, int k, int oh, int ow) {
    return (double)cout * cin * k * k * oh * ow;
}

static int step(progress *pr, double macs) {
    pr->done += macs;
    if (pr->fn && !pr->cancelled && pr->fn(pr->user, (float)(pr->done / pr->total)))
        pr->cancelled = 1;
    return pr->cancelled;
}

/* Multiply-adds of each banded stage (the eight residual blocks are one stage here), with
 * the recomputation banding costs when `recompute`: conv01 again in D2 and deconv02_1 and
 * deconv02_2 again in U3, unless both stages of the pair run as one band. */
static double stage_macs(const plan *p, double s[NUM_BANDED], int recompute) {
    double c01 = layer_macs(64, 3, 7, p->h1, p->w1);
    double de02 = layer_macs(64, 128, 3, p->h4, p->w4) + layer_macs(64, 64, 3, p->h5, p->w5);
    int down_again = recompute && (num_bands(p, B_D1) > 1 || num_bands(p, B_D2) > 1);
    int up_again = recompute && (num_bands(p, B_U2) > 1 || num_bands(p, B_U3) > 1);
    s[B_D1] = c01;
    s[B_D2] = layer_macs(128, 64, 3, p->h2, p->w2) + layer_macs(128, 128, 3, p->h2, p->w2) + (down_again ? c01 : 0);
    s[B_D3] = layer_macs(256, 128, 3, p->h3, p->w3) + layer_macs(256, 256, 3, p->h3, p->w3);
    s[B_RES] = 16 * layer_macs(256, 256, 3, p->h3, p->w3);
    s[B_U1] = layer_macs(128, 256, 3, p->h3, p->w3) + layer_macs(128, 128, 3, p->h4, p->w4);
    s[B_U2] = de02;
    s[B_U3] = layer_macs(3, 64, 7, p->h5, p->w5) + (up_again ? de02 : 0);
    double total = 0;
    for (int i = 0; i < NUM_BANDED; i++) total += s[i];
    return total;
}

/* The network's own multiply-adds, without recomputation. */
double cg_stylize_macs(int width, int height) {
    if (width < 1 || height < 1) return 0;
    plan p = make_plan(gen_padded_side(height), gen_padded_side(width), 1, 0);
    double s[NUM_BANDED];
    return stage_macs(&p, s, 0);
}

/* ---- the network ---- */

typedef struct {
    const plan *p;
    const struct cg_model *m;
    cg_pool *pool;
    const float *in;
    float *out;
    float *region, *A, *B, *saved, *scratch;
    /* at_use models: the weights slots of D3 and the residual stage (plan), the layers
     * whose transformed weights they hold, which conv finds in use_ww */
    float *slot[2][2];
    winograd_weights slot_ww[2];
    const winograd_weights *use_ww[NUM_CONVS];
    norm_params *np; /* one per norm layer, N01_1 ... N13_1 */
    chan_stats *st;  /* the statistics being gathered */
    moments *row_mom; /* wino_stats' moments per row of tiles and channel, and their counts */
    int *row_count;
    int memo_y0, memo_y1; /* B still holds these rows of conv01's or deconv02_2's output */
    progress pr;
    double macs[NUM_BANDED];
} gen;

/* One convolution of the model, by the method the model prepared it for. */
static void conv(gen *g, float *out, const float *in, int c, const conv_dims *d) {
    const struct cg_model *m = g->m;
    const winograd_weights *ww = m->wino[c] ? m->wino[c] : g->use_ww[c];
    if (m->direct[c]) conv2d_direct_forward(out, in, m->direct[c], m->conv_bias[c], d, g->pool);
    else if (ww) conv3x3_winograd_forward(out, in, ww, m->conv_bias[c], d, g->scratch, g->pool);
    else if (m->wino_s2[c]) conv3x3_s2_winograd_forward(out, in, m->wino_s2[c], m->conv_bias[c], d, g->scratch, g->pool);
    else conv2d_forward(out, in, &m->conv[c], m->conv_bias[c], d, g->scratch, g->pool);
}

/* Winograd convolution c into o, with its statistics merged into g->st: each row of tiles
 * is a group of STORE_ROWS rows (the band starts on a multiple of 4), whose moments are
 * taken as band_emit takes them, by the thread that finishes the row while it is in
 * cache, and merged here in row order. */
static void wino_stats(gen *g, int c, const winograd_weights *ww, const conv_dims *d, winograd_out *o) {
    const int nr = (conv_out_h(d) + 3) / 4, cout = d->cout;
    memset(g->row_count, 0, (size_t)nr * sizeof *g->row_count);
    conv3x3_winograd_forward_to(o, g->A, ww, g->m->conv_bias[c], d, g->scratch, g->pool);
    for (int k = 0; k < cout; k++)
        for (int r = 0; r < nr; r++) stats_merge(&g->st[k], &g->row_mom[(size_t)r * cout + k]);
}

/* A band's last convolution c, whose output rows [r0, r1) (r0 a multiple of STORE_ROWS)
 * are kept in `store`, with their statistics merged into g->st. A Winograd convolution
 * writes them there itself; any other goes through B and a copy (band_emit). */
static void conv_store(gen *g, int c, const conv_dims *d, const rows_view *store, int r0, int r1) {
    const struct cg_model *m = g->m;
    const winograd_weights *ww = m->wino[c] ? m->wino[c] : g->use_ww[c];
    if (!ww) {
        conv(g, g->B, g->A, c, d);
        band_emit(g->B, store->c, r1 - r0, store->w, r0, g->st, store, g->pool);
        return;
    }
    winograd_out o = {store->base + (size_t)((r0 - store->y0) / STORE_ROWS) * store->bstride, store->bstride,
                      (size_t)STORE_ROWS * store->w, g->row_mom, g->row_count};
    wino_stats(g, c, ww, d, &o);
}

/* The same with the output in B (CHW): a 64-channel full-resolution tensor whose
 * statistics are all a stats_pass keeps of it. */
static void conv_stats(gen *g, int c, const conv_dims *d, int r0, int r1) {
    const winograd_weights *ww = g->m->wino[c] ? g->m->wino[c] : g->use_ww[c];
    const size_t ow = (size_t)conv_out_w(d);
    if (!ww) {
        conv(g, g->B, g->A, c, d);
        band_emit(g->B, d->cout, r1 - r0, (int)ow, r0, g->st, NULL, g->pool);
        return;
    }
    winograd_out o = {g->B, 4 * ow, (size_t)(r1 - r0) * ow, g->row_mom, g->row_count};
    wino_stats(g, c, ww, d, &o);
}

/* at_use models: before a stage, the weights of its 256 x 256 Winograd layers (one or
 * two) are transformed into its slots, one per pool thread: the bands that follow share
 * them. */
typedef struct {
    gen *g;
    int stage, conv[2];
} at_use_job;

static void at_use_task(void *ctx, int k, int n) {
    (void)n;
    at_use_job *j = ctx;
    gen *g = j->g;
    float *slot = g->slot[j->stage][k], *tmp = slot + up16(winograd_weights_floats(256, 256));
    /* with a tmp it cannot fail */
    pack_winograd_weights_tmp(&g->slot_ww[k], slot, g->m->wino_at_use[j->conv[k]], 256, 256, gemm_arch_get(), tmp);
}

/* stage: 0 for D3 (conv03_2 alone), 1 for a residual block (its two convolutions). */
static void transform_at_use(gen *g, int stage, int c0, int c1) {
    if (!g->m->wino_at_use[c0]) return; /* packed at load, or not Winograd */
    at_use_job j = {g, stage, {c0, c1}};
    const int n = stage ? 2 : 1;
    memset(g->use_ww, 0, sizeof g->use_ww);
    for (int k = 0; k < n; k++) g->use_ww[j.conv[k]] = &g->slot_ww[k];
    cg_pool_run(g->pool, at_use_task, &j, n);
}

/* Fills dst (A or B) with rows [y0, y1) of src (image height h) as a band's padded input. */
static void fill_to(gen *g, float *dst, int y0, int y1, int h, int px, int reflect, rows_view src,
                    const norm_params *norm, int relu, const float *saved) {
    fill_spec f = {dst, y0, y1, h, px, reflect, reflect, src, norm, relu, saved};
    band_fill(&f, g->pool);
}

static void fill(gen *g, int y0, int y1, int h, int px, int reflect, rows_view src,
                 const norm_params *norm, int relu, const float *saved) {
    fill_to(g, g->A, y0, y1, h, px, reflect, src, norm, relu, saved);
}

static void finish_norm(gen *g, int n, int c) {
    stats_finish(&g->np[n], g->st, c, g->m->norm_scale[n], g->m->norm_shift[n], 1e-9f);
}

/* The stored tensors, as views of the region or (second_half) of its blocks hb on. */
static float *half(gen *g, int second_half) {
    return g->region + (second_half ? (size_t)g->p->hb * g->p->bpitch : 0);
}

static rows_view stored(gen *g, int c, int w, int h, int second_half) {
    return view_stored(half(g, second_half), c, w, 0, h, g->p->bpitch);
}

/* Each stage below reports progress after each band: its share of the stage's work. */
static int band_done(gen *g, int s, int rows) {
    return step(&g->pr, g->macs[s] * rows / stage_rows(g->p, s));
}

/* conv01 (7x7 on the reflection-padded input) for its output rows [y0, y1), into B, with
 * their statistics merged into g->st if `stats`. */
static void conv01_rows(gen *g, int y0, int y1, int stats) {
    const plan *p = g->p;
    fill(g, y0 - 3, y1 + 3, p->h1, 3, 1, view_chw((float *)g->in, 3, p->w1, 0, p->h1), NULL, 0, NULL);
    conv_dims d = {3, y1 - y0 + 6, p->w1 + 6, 64, 7, 7, 1, 0};
    conv(g, g->B, g->A, C01_1, &d);
    if (stats) band_emit(g->B, 64, y1 - y0, p->w1, y0, g->st, NULL, g->pool);
}

/* A 64-channel full-resolution tensor (conv01's or deconv02_2's output), computed band by
 * band by `rows` into B for its statistics only: the next stage computes it again, unless
 * this one ran as a single band, whose rows B then still holds (memo_y0, memo_y1). */
static int stats_pass(gen *g, int s, int h, void (*rows)(gen *, int, int, int), int norm) {
    stats_reset(g->st, 64);
    for (int y0 = 0; y0 < h; y0 += g->p->band[s]) {
        int y1 = imin(y0 + g->p->band[s], h);
        rows(g, y0, y1, 1);
        g->memo_y0 = y0, g->memo_y1 = y1;
        if (band_done(g, s, y1 - y0)) return 1;
    }
    finish_norm(g, norm, 64);
    return 0;
}

/* D1: conv01, for its statistics. */
static int down1(gen *g) { return stats_pass(g, B_D1, g->p->h1, conv01_rows, N01_1); }

/* The rows [*qa, *qb) of strided convolution c1 that the 3x3 needs for its rows [r0, r1)
 * (of h): [r0 - 1, r1 + 1) in the image, widened by Winograd (winograd_s2.c) to whole tiles
 * of 4 rows from a multiple of 4, so that a band's tiles are the whole image's (past the
 * image's last row: as they are in one band). */
static void strided_rows(const gen *g, int c1, int r0, int r1, int h, int *qa, int *qb) {
    *qa = imax(r0 - 1, 0), *qb = imin(r1 + 1, h);
    if (g->m->wino_s2[c1]) *qa = *qa / 4 * 4, *qb = (*qb + 3) / 4 * 4;
}

/* Rows [r0, r1) of conv3x3(conv_s2(relu(norm(src)))) into `store` with their statistics
 * (conv_store): the down path's two-layer unit (src has image height h_src; the output,
 * cout channels, is h x w). The 3x3 (zero padding) needs the strided convolution's rows
 * [r0 - 1, r1 + 1), which need src's rows [2 r0 - 3, 2 r1 + 2); rows outside the image are
 * zero padding. */
static void down_rows(gen *g, rows_view src, int h_src, const norm_params *norm, int c1, int c2, int cout,
                      int h, int w, int r0, int r1, const rows_view *store) {
    int qa, qb; /* the strided convolution's rows */
    strided_rows(g, c1, r0, r1, h, &qa, &qb);
    fill(g, 2 * qa - 1, 2 * qb, h_src, 1, 0, src, norm, 1, NULL);
    conv_dims d = {src.c, 2 * (qb - qa) + 1, src.w + 2, cout, 3, 3, 2, 0};
    conv(g, g->B, g->A, c1, &d);
    fill(g, r0 - 1, r1 + 1, h, 1, 0, view_chw(g->B, cout, w, qa, qb), NULL, 0, NULL);
    d = (conv_dims){cout, r1 - r0 + 2, w + 2, cout, 3, 3, 1, 0};
    conv_store(g, c2, &d, store, r0, r1);
}

/* D2: C22 = conv02_2(conv02_1(relu(in01(conv01)))) rows [r0, r1) per band, stored with
 * its statistics. conv01 is computed again for the band's rows, unless D1 left exactly
 * those rows in B (one band). */
static int down2(gen *g) {
    const plan *p = g->p;
    rows_view c22 = stored(g, 128, p->w2, p->h2, 0);
    stats_reset(g->st, 128);
    for (int r0 = 0; r0 < p->h2; r0 += p->band[B_D2]) {
        int r1 = imin(r0 + p->band[B_D2], p->h2);
        int qa, qb; /* conv02_1 rows, then conv01's */
        strided_rows(g, C02_1, r0, r1, p->h2, &qa, &qb);
        int ya = imax(2 * qa - 1, 0), yb = imin(2 * qb, p->h1);
        if (g->memo_y0 != ya || g->memo_y1 != yb) conv01_rows(g, ya, yb, 0);
        g->memo_y0 = g->memo_y1 = -1;
        down_rows(g, view_chw(g->B, 64, p->w1, ya, yb), p->h1, &g->np[N01_1], C02_1, C02_2, 128, p->h2, p->w2, r0, r1,
                  &c22);
        if (band_done(g, B_D2, r1 - r0)) return 1;
    }
    finish_norm(g, N02_1, 128);
    return 0;
}

/* D3: x = conv03_2(conv03_1(relu(in02(C22)))) rows [r0, r1) per band, written over C22
 * (block k of x at block k of the region): the bands after this one read C22 from row
 * 2 r1 - 3 on (2 r1 - 9 when conv03_1's rows are widened to whole Winograd tiles), in
 * block r1/2 - 3 and later, past the blocks written so far (< r1/4, as r1 >= D3_MIN_BAND).
 * Then x = relu(in03(x)) in place. */
static int down3(gen *g) {
    const plan *p = g->p;
    rows_view c22 = stored(g, 128, p->w2, p->h2, 0), x = stored(g, 256, p->w3, p->h3, 0);
    transform_at_use(g, 0, C03_2, -1);
    stats_reset(g->st, 256);
    for (int r0 = 0; r0 < p->h3; r0 += p->band[B_D3]) {
        int r1 = imin(r0 + p->band[B_D3], p->h3);
        down_rows(g, c22, p->h2, &g->np[N02_1], C03_1, C03_2, 256, p->h3, p->w3, r0, r1, &x);
        if (band_done(g, B_D3, r1 - r0)) return 1;
    }
    finish_norm(g, N03_1, 256);
    stored_norm(&x, &x, NULL, &g->np[N03_1], 1, g->pool);
    return 0;
}

/* Residual block r: t = conv(reflect(x)); u = conv(reflect(relu(in(t)))), written over t
 * band by band; x += in(u). A band of u needs t's row r0 - 1, already overwritten by the
 * band above: each band saves its last input row (padded and normalised) for the next.
 * The last block writes its sum over u instead, leaving x in the region's second half,
 * from where U1 can run top down. */
static int residual(gen *g, int r) {
    const plan *p = g->p;
    const int h3 = p->h3, w3 = p->w3, dw = w3 + 2, n = p->band[B_RES];
    rows_view x = stored(g, 256, w3, h3, 0), t = stored(g, 256, w3, h3, 1);
    const int ca = C_RES + 2 * r, cb = ca + 1, na = N_RES + 2 * r, nb = na + 1;
    const double conv_macs = layer_macs(256, 256, 3, h3, w3);
    transform_at_use(g, 1, ca, cb);
    stats_reset(g->st, 256);
    for (int r0 = 0; r0 < h3; r0 += n) {
        int r1 = imin(r0 + n, h3);
        fill(g, r0 - 1, r1 + 1, h3, 1, 1, x, NULL, 0, NULL);
        conv_dims d = {256, r1 - r0 + 2, dw, 256, 3, 3, 1, 0};
        conv_store(g, ca, &d, &t, r0, r1);
        if (step(&g->pr, conv_macs * (r1 - r0) / h3)) return 1;
    }
    finish_norm(g, na, 256);
    stats_reset(g->st, 256);
    for (int r0 = 0; r0 < h3; r0 += n) {
        int r1 = imin(r0 + n, h3);
        rows_view intact = view_stored(half(g, 1), 256, w3, r0, h3, p->bpitch); /* rows >= r0 */
        fill(g, r0 - 1, r1 + 1, h3, 1, 1, intact, &g->np[na], 1, g->saved);
        for (int c = 0; c < 256; c++) /* input row r1 - 1, the next band's row r0 - 1 */
            memcpy(g->saved + (size_t)c * dw, g->A + ((size_t)c * (r1 - r0 + 2) + (r1 - r0)) * dw, (size_t)dw * sizeof(float));
        conv_dims d = {256, r1 - r0 + 2, dw, 256, 3, 3, 1, 0};
        conv_store(g, cb, &d, &t, r0, r1);
        if (step(&g->pr, conv_macs * (r1 - r0) / h3)) return 1;
    }
    finish_norm(g, nb, 256);
    stored_norm(r == 7 ? &t : &x, &t, &x, &g->np[nb], 0, g->pool);
    return 0;
}

/* Rows [ea, eb) of conv3x3(deconv(src)): into `store` with their statistics (conv_store)
 * when it is not NULL, else into B, with their statistics if `stats` (conv_stats): the up
 * path's two-layer unit. The 3x3
 * (zero padding) needs the deconvolution's rows [ea - 1, eb + 1); its output rows 2i and
 * 2i + 1 come from input rows i and i + 1 (zero past the last), so input rows [xa, xb) give
 * output rows [2 xa, 2 xb), all right but the last unless xb is the last input row. */
static void up_rows(gen *g, rows_view src, const norm_params *norm, int dc, int cc, int ea, int eb,
                    const rows_view *store, int stats) {
    const int hin = src.y1, win = src.w, cin = src.c, cout = cin / 2, wout = 2 * win;
    const winograd_s2_weights *ww = g->m->deconv_wino[dc];
    int xa = imax(ea - 1, 0) / 2, xb = imin((eb + 1) / 2 + 1, hin);
    /* By Winograd, whole tiles of 4 input rows from a multiple of 4, each with the row
     * after it, so that a band's tiles are the whole image's */
    if (ww) xa = xa / 4 * 4, xb = imin((xb + 3) / 4 * 4 + 1, hin);
    /* The deconvolution's rows [ea - 1, eb + 1), zero padded, go to A: the 3x3's padded
     * input, written directly. Its output row 2 xa + i is window row i; the rows outside
     * the image are zeros. By Winograd it reads its input from B; by phases (conv.c) from
     * A, which it reads before writing, and B holds the phases. */
    fill_to(g, ww ? g->B : g->A, xa, xb, hin, 0, 0, src, norm, norm != NULL, NULL);
    deconv_dims dd = {cin, xb - xa, win, cout, 3, 3, 2, 1, 1};
    deconv_window dw = {ea - 1 - 2 * xa, eb + 1 - 2 * xa, 1};
    if (ww)
        deconv_s2_winograd_forward(g->A, g->B, ww, g->m->deconv_bias[dc], &dd, &dw, g->scratch, g->pool);
    else
        deconv_s2_forward(g->A, g->B, g->A, &g->m->deconv[dc], g->m->deconv_bias[dc], &dd, &dw, g->scratch, g->pool);
    conv_dims d = {cout, eb - ea + 2, wout + 2, cout, 3, 3, 1, 0};
    if (store) conv_store(g, cc, &d, store, ea, eb);
    else if (stats) conv_stats(g, cc, &d, ea, eb);
    else conv(g, g->B, g->A, cc, &d);
}

/* U1: D12 = deconv01_2(deconv01_1(x)) rows [2 r0, 2 r1) per band of x's rows [r0, r1),
 * stored with its statistics over t and x: block k of x is region block hb + k, and the
 * bands after this one read x from row r1 - 1 on, in region blocks hb + r1/4 - 1 and
 * later, past the blocks written so far (< r1/2, as r1/4 < hb while r1 < h3). */
static int up1(gen *g) {
    const plan *p = g->p;
    const int n = p->band[B_U1];
    rows_view x = stored(g, 256, p->w3, p->h3, 1), d12 = stored(g, 128, p->w4, p->h4, 0);
    stats_reset(g->st, 128);
    for (int r0 = 0; r0 < p->h3; r0 += n) {
        int r1 = imin(r0 + n, p->h3);
        up_rows(g, x, NULL, D01_1, C_DE01_2, 2 * r0, 2 * r1, &d12, 0);
        if (band_done(g, B_U1, r1 - r0)) return 1;
    }
    finish_norm(g, N12_1, 128);
    return 0;
}

/* U2: deconv02_2(deconv02_1(relu(in12(D12)))), for its statistics. */
static void up2_rows(gen *g, int y0, int y1, int stats) {
    up_rows(g, stored(g, 128, g->p->w4, g->p->h4, 0), &g->np[N12_1], D02_1, C_DE02_2, y0, y1, NULL, stats);
}

static int up2(gen *g) { return stats_pass(g, B_U2, g->p->h5, up2_rows, N13_1); }

/* U3: the same rows again (unless U2 left exactly them in B: one band) with the 7x7's
 * halo of 3 more on each side, computed as 4 (whole Winograd tiles, so the same values as
 * U2's) and clipped to the image: the reflection padding at the top and bottom reads rows
 * 1..3 and h5-4..h5-2, inside them. Then relu(in13), reflection padding, deconv03_1 (7x7)
 * and tanh, into out's rows. */
static int up3(gen *g) {
    const plan *p = g->p;
    for (int y0 = 0; y0 < p->h5; y0 += p->band[B_U3]) {
        int y1 = imin(y0 + p->band[B_U3], p->h5);
        int ea = imax(y0 - 4, 0), eb = imin(y1 + 4, p->h5);
        if (g->memo_y0 != ea || g->memo_y1 != eb) up2_rows(g, ea, eb, 0);
        g->memo_y0 = g->memo_y1 = -1;
        fill(g, y0 - 3, y1 + 3, p->h5, 3, 1, view_chw(g->B, 64, p->w5, ea, eb), &g->np[N13_1], 1, NULL);
        conv_dims d = {64, y1 - y0 + 6, p->w5 + 6, 3, 7, 7, 1, 0};
        conv(g, g->B, g->A, C_DE03_1, &d);
        band_tanh(g->out, p->h5, g->B, 3, y1 - y0, p->w5, y0, g->pool);
        if (band_done(g, B_U3, y1 - y0)) return 1;
    }
    return 0;
}

cg_status generator_forward(float *out, const float *in, int h, int w, const struct cg_model *m,
                            void *arena, cg_pool *pool, cg_progress_fn progress_fn, void *user) {
    plan p = make_plan(h, w, cg_pool_threads(pool), m->at_use);
    gen g = {0};
    g.p = &p, g.m = m, g.pool = pool, g.in = in, g.out = out;
    float *const base = (float *)(((uintptr_t)arena + 63) & ~(uintptr_t)63), *a = base;
    g.region = a, a += up16(p.region);
    g.A = a, a += up16(p.buf);
    g.B = a, a += up16(p.buf);
    g.saved = a, a += up16(p.saved);
    g.scratch = a, a += up16(p.scratch);
    g.np = (norm_params *)a, a += up16(PARAMS_FLOATS);
    g.st = (chan_stats *)a, a += up16(STATS_FLOATS);
    g.row_mom = (moments *)a, a += up16((size_t)p.mom_rows * BAND_MAX_CHANNELS * sizeof(moments) / sizeof(float));
    g.row_count = (int *)a;
    for (int s = 0; s < 2 && p.wslot; s++)
        for (int k = 0; k < 2; k++) g.slot[s][k] = base + p.slot_at[s][k];
    g.memo_y0 = g.memo_y1 = -1;
    g.pr = (progress){progress_fn, user, 0, 0, 0};
    g.pr.total = stage_macs(&p, g.macs, 1);

    if (down1(&g) || down2(&g) || down3(&g)) return CG_ERR_CANCELLED;
    for (int r = 0; r < 8; r++)
        if (residual(&g, r)) return CG_ERR_CANCELLED;
    if (up1(&g) || up2(&g) || up3(&g)) return CG_ERR_CANCELLED;
    return CG_OK;
}
