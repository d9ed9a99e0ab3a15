/* amx.h: the Intel AMX pieces shared by the Winograd and im2col convolutions: bf16
 * rounding, the tile configuration, B panels converted to tiles, and the panel product.
 *
 * "bf16x3": an fp32 operand x is split into bf16 halves, x = hi + lo + e with hi and lo
 * rounded to nearest (|e| <= 2^-16 |x|), and a.b is computed as hi_a.hi_b + lo_a.hi_b +
 * hi_a.lo_b with fp32 accumulation in the tiles, leaving out lo_a.lo_b (<= 2^-16 |a.b|).
 * Each product is within about 3 * 2^-16 of fp32's rather than 2^-24, and the tile unit
 * does the three in less time than AVX-512 FMAs do one.
 *
 * Layouts, in bf16 (unsigned short), for a product C[16 x 32] += A[16 x K] . B[K x 32]:
 *   A: per 32 columns of K, tiles [hi, lo], each 16 rows x 32 bf16 (row-major);
 *   B: per 32 rows of K, tiles [hi, lo][columns 0-15, 16-31], each 16 rows (pairs of K
 *      rows) x 16 columns x 2 (the pair): AMX's "VNNI" layout.
 * Tiles are 512 bf16 (1 KB). Only x86-64 with GCC or Clang. */
#ifndef CG_NN_AMX_H
#define CG_NN_AMX_H

#if defined(__x86_64__) && defined(__GNUC__)
#define CG_HAVE_AMX 1

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AMX_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16,amx-tile,amx-bf16")))
#define AMX_TILE 512 /* bf16 per tile */

/* A [m][k] (row stride ldk) into tiles [m/16][ceil(k/32)][hi, lo], zero past k; 16
 * values at a time (this is most of loading a model). */
static inline AMX_TARGET void amx_pack_a(unsigned short *t, const float *a, int m, int k, size_t ldk) {
    const int kb = (k + 31) / 32;
    for (int r = 0; r < m; r++)
        for (int c = 0; c < kb * 32; c += 16) {
            int left = k - c;
            __mmask16 mask = left <= 0 ? 0 : left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
            __m512 x = _mm512_maskz_loadu_ps(mask, a + (size_t)r * ldk + c);
            __m256i hi = (__m256i)_mm512_cvtneps_pbh(x);
            __m512 hf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
            __m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(x, hf));
            size_t tile = ((size_t)(r / 16) * kb + c / 32) * 2;
            unsigned short *at = t + tile * AMX_TILE + (size_t)(r % 16) * 32 + c % 32;
            _mm256_storeu_si256((__m256i *)at, hi);
            _mm256_storeu_si256((__m256i *)(at + AMX_TILE), lo);
        }
}

/* Rows c and c + 1 of B for 16 columns (y0, y1: fp32 vectors) into row c/2 % 16 of the hi
 * and lo tiles: `hi` points at that row of the hi tile; lo's is 2 tiles on. */
static inline AMX_TARGET void amx_put_pair(unsigned short *hi, __m512 y0, __m512 y1) {
    /* interleave two 16-element halves: element 2n <- n, 2n + 1 <- 16 + n */
    const __m512i pair = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                          23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512i h = (__m512i)_mm512_cvtne2ps_pbh(y1, y0);
    __m512 h0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16));
    __m512 h1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16));
    __m512i l = (__m512i)_mm512_cvtne2ps_pbh(_mm512_sub_ps(y1, h1), _mm512_sub_ps(y0, h0));
    _mm512_storeu_si512(hi, _mm512_permutexvar_epi16(pair, h));
    _mm512_storeu_si512(hi + 2 * AMX_TILE, _mm512_permutexvar_epi16(pair, l));
}

/* A packed panel of B, [k][32] fp32, into tiles [ceil(k/32)][hi, lo][2], zero past k. */
static inline AMX_TARGET void amx_pack_b_panel(unsigned short *t, const float *p, int k) {
    for (int r = 0; r < (k + 31) / 32 * 32; r += 2) {
        __m512 y0a = _mm512_setzero_ps(), y0b = y0a, y1a = y0a, y1b = y0a;
        if (r < k) y0a = _mm512_load_ps(p + (size_t)r * 32), y0b = _mm512_load_ps(p + (size_t)r * 32 + 16);
        if (r + 1 < k) y1a = _mm512_load_ps(p + (size_t)(r + 1) * 32), y1b = _mm512_load_ps(p + (size_t)(r + 1) * 32 + 16);
        unsigned short *row = t + (size_t)(r / 32) * 4 * AMX_TILE + (size_t)(r % 32 / 2) * 32;
        amx_put_pair(row, y0a, y1a);
        amx_put_pair(row + AMX_TILE, y0b, y1b);
    }
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

/* All 8 tiles 16 x 64 bytes. Once per thread before amx_gemm; amx_release after. */
static inline AMX_TARGET void amx_configure(void) {
    amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    /* ldtilecfg reads cfg, which the compiler does not know: keep its stores */
    __asm__ volatile("" : : "m"(cfg) : "memory");
    _tile_loadconfig(&cfg);
}

static inline AMX_TARGET void amx_release(void) { _tile_release(); }

/* c[16][32] (row stride ldc floats) = init + a . b over kb blocks of 32, where init is c
 * itself, or (bias16 != NULL) the tile bias16 ([16][16], row r all bias r). a: 2 tiles per
 * block, b: 4. Tiles: 0-1 C, 2-3 A hi/lo, 4-5 B hi, 6-7 B lo. */
static inline AMX_TARGET void amx_gemm(float *c, size_t ldc, const unsigned short *a,
                                       const unsigned short *b, int kb, const float *bias16) {
    if (bias16) {
        _tile_loadd(0, bias16, 64);
        _tile_loadd(1, bias16, 64);
    } else {
        _tile_loadd(0, c, ldc * sizeof(float));
        _tile_loadd(1, c + 16, ldc * sizeof(float));
    }
    for (int k = 0; k < kb; k++, a += 2 * AMX_TILE, b += 4 * AMX_TILE) {
        _tile_loadd(2, a, 64);
        _tile_loadd(3, a + AMX_TILE, 64);
        _tile_loadd(4, b, 64);
        _tile_loadd(5, b + AMX_TILE, 64);
        _tile_dpbf16ps(0, 2, 4);
        _tile_dpbf16ps(1, 2, 5);
        _tile_dpbf16ps(0, 3, 4);
        _tile_dpbf16ps(1, 3, 5);
        _tile_loadd(6, b + 2 * AMX_TILE, 64);
        _tile_loadd(7, b + 3 * AMX_TILE, 64);
        _tile_dpbf16ps(0, 2, 6);
        _tile_dpbf16ps(1, 2, 7);
    }
    _tile_stored(0, c, ldc * sizeof(float));
    _tile_stored(1, c + 16, ldc * sizeof(float));
}
#endif

#endif
