/* gemm.c: the GEMM micro-kernels and their selection. Each kernel keeps its whole tile of
 * accumulators in registers for the length of a panel; accumulators are spelled out as
 * separate variables because GCC keeps an array of vectors in memory. */
#include "gemm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CG_X86 1
#endif

/* Plain C, 6x16: what any compiler vectorises to some degree. */
static void kernel_portable(int kc, const float *a, const float *b, float *c, size_t ldc,
                            const float *bias) {
    enum { MR = 6, NR = 16 };
    float acc[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) acc[r][j] = bias ? bias[r] : c[r * ldc + j];
    for (int k = 0; k < kc; k++)
        for (int r = 0; r < MR; r++)
            for (int j = 0; j < NR; j++) acc[r][j] += a[k * MR + r] * b[k * NR + j];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) c[r * ldc + j] = acc[r][j];
}

#ifdef CG_X86
/* AVX2 + FMA, 6x16: 12 ymm accumulators, 2 for the b row, 1 broadcast. */
__attribute__((target("avx2,fma"))) static void kernel_avx2(int kc, const float *a,
                                                             const float *b, float *c,
                                                             size_t ldc, const float *bias) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (bias) {
        c00 = c01 = _mm256_set1_ps(bias[0]);
        c10 = c11 = _mm256_set1_ps(bias[1]);
        c20 = c21 = _mm256_set1_ps(bias[2]);
        c30 = c31 = _mm256_set1_ps(bias[3]);
        c40 = c41 = _mm256_set1_ps(bias[4]);
        c50 = c51 = _mm256_set1_ps(bias[5]);
    } else {
        c00 = _mm256_loadu_ps(c), c01 = _mm256_loadu_ps(c + 8);
        c10 = _mm256_loadu_ps(c + ldc), c11 = _mm256_loadu_ps(c + ldc + 8);
        c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
        c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
        c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
        c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
    }
    for (int k = 0; k < kc; k++, a += 6, b += 16) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), av;
        av = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(av, b0, c00), c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(av, b0, c10), c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(av, b0, c20), c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(av, b0, c30), c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(av, b0, c40), c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(av, b0, c50), c51 = _mm256_fmadd_ps(av, b1, c51);
    }
    _mm256_storeu_ps(c, c00), _mm256_storeu_ps(c + 8, c01);
    _mm256_storeu_ps(c + ldc, c10), _mm256_storeu_ps(c + ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
    _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
    _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

/* AVX-512, 8x32: 16 zmm accumulators. 8 rows rather than the 6 of AVX2's shape: 16
 * independent FMA chains measured 6 % faster than 12 on this kernel alone, and 8 divides
 * the model's channel counts (64, 128, 256), where 6 left up to 3 % of each tile empty. */
#define AVX512_ROW(r) c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0), c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1)
/* The kernel's body with its 8 output rows at any addresses cr[0..8). */
__attribute__((target("avx512f"), always_inline)) static inline void
kernel_avx512_body(int kc, const float *a, const float *b, float *const cr[8], const float *bias) {
    __m512 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
    if (bias) {
        c00 = c01 = _mm512_set1_ps(bias[0]);
        c10 = c11 = _mm512_set1_ps(bias[1]);
        c20 = c21 = _mm512_set1_ps(bias[2]);
        c30 = c31 = _mm512_set1_ps(bias[3]);
        c40 = c41 = _mm512_set1_ps(bias[4]);
        c50 = c51 = _mm512_set1_ps(bias[5]);
        c60 = c61 = _mm512_set1_ps(bias[6]);
        c70 = c71 = _mm512_set1_ps(bias[7]);
    } else {
        c00 = _mm512_loadu_ps(cr[0]), c01 = _mm512_loadu_ps(cr[0] + 16);
        c10 = _mm512_loadu_ps(cr[1]), c11 = _mm512_loadu_ps(cr[1] + 16);
        c20 = _mm512_loadu_ps(cr[2]), c21 = _mm512_loadu_ps(cr[2] + 16);
        c30 = _mm512_loadu_ps(cr[3]), c31 = _mm512_loadu_ps(cr[3] + 16);
        c40 = _mm512_loadu_ps(cr[4]), c41 = _mm512_loadu_ps(cr[4] + 16);
        c50 = _mm512_loadu_ps(cr[5]), c51 = _mm512_loadu_ps(cr[5] + 16);
        c60 = _mm512_loadu_ps(cr[6]), c61 = _mm512_loadu_ps(cr[6] + 16);
        c70 = _mm512_loadu_ps(cr[7]), c71 = _mm512_loadu_ps(cr[7] + 16);
    }
    for (int k = 0; k < kc; k++, a += 8, b += 32) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), av;
        av = _mm512_set1_ps(a[0]), AVX512_ROW(0);
        av = _mm512_set1_ps(a[1]), AVX512_ROW(1);
        av = _mm512_set1_ps(a[2]), AVX512_ROW(2);
        av = _mm512_set1_ps(a[3]), AVX512_ROW(3);
        av = _mm512_set1_ps(a[4]), AVX512_ROW(4);
        av = _mm512_set1_ps(a[5]), AVX512_ROW(5);
        av = _mm512_set1_ps(a[6]), AVX512_ROW(6);
        av = _mm512_set1_ps(a[7]), AVX512_ROW(7);
    }
    _mm512_storeu_ps(cr[0], c00), _mm512_storeu_ps(cr[0] + 16, c01);
    _mm512_storeu_ps(cr[1], c10), _mm512_storeu_ps(cr[1] + 16, c11);
    _mm512_storeu_ps(cr[2], c20), _mm512_storeu_ps(cr[2] + 16, c21);
    _mm512_storeu_ps(cr[3], c30), _mm512_storeu_ps(cr[3] + 16, c31);
    _mm512_storeu_ps(cr[4], c40), _mm512_storeu_ps(cr[4] + 16, c41);
    _mm512_storeu_ps(cr[5], c50), _mm512_storeu_ps(cr[5] + 16, c51);
    _mm512_storeu_ps(cr[6], c60), _mm512_storeu_ps(cr[6] + 16, c61);
    _mm512_storeu_ps(cr[7], c70), _mm512_storeu_ps(cr[7] + 16, c71);
}

__attribute__((target("avx512f"))) static void kernel_avx512(int kc, const float *a, const float *b, float *c,
                                                              size_t ldc, const float *bias) {
    float *const cr[8] = {c, c + ldc, c + 2 * ldc, c + 3 * ldc, c + 4 * ldc, c + 5 * ldc, c + 6 * ldc, c + 7 * ldc};
    kernel_avx512_body(kc, a, b, cr, bias);
}

__attribute__((target("avx512f"))) static void kernel_avx512_rows(int kc, const float *a, const float *b,
                                                                   float *const *rows, size_t col,
                                                                   const float *bias) {
    float *const cr[8] = {rows[0] + col, rows[1] + col, rows[2] + col, rows[3] + col,
                          rows[4] + col, rows[5] + col, rows[6] + col, rows[7] + col};
    kernel_avx512_body(kc, a, b, cr, bias);
}
#undef AVX512_ROW
#endif

#ifdef __wasm_simd128__
#include <wasm_simd128.h>
/* WebAssembly SIMD128, 2x16: 8 accumulators, 4 for the b row, 1 broadcast. SIMD128 has no
 * FMA (relaxed SIMD's is not in Debian's emscripten), so each step is a multiply and an
 * add, and V8 gives wasm only 16 vector registers: measured in node on the whole network
 * at 256x256 (CPU time, one thread), 2x16 took 1.39 s, 3x16 1.55 s, 1x16 1.63 s, 4x16
 * 1.96 s (it spills), and the 8-wide shapes over 5 s, since the Winograd convolutions
 * need NR to be a multiple of 16. Clang keeps these constant-indexed arrays in registers. */
static void kernel_wasm(int kc, const float *a, const float *b, float *c, size_t ldc,
                        const float *bias) {
    enum { MR = 2, NV = 4 };
    v128_t acc[MR][NV];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = bias ? wasm_f32x4_splat(bias[r]) : wasm_v128_load(c + r * ldc + 4 * v);
    for (int k = 0; k < kc; k++, a += MR, b += 4 * NV) {
        v128_t bv[NV];
        for (int v = 0; v < NV; v++) bv[v] = wasm_v128_load(b + 4 * v);
        for (int r = 0; r < MR; r++) {
            v128_t av = wasm_f32x4_splat(a[r]);
            for (int v = 0; v < NV; v++) acc[r][v] = wasm_f32x4_add(acc[r][v], wasm_f32x4_mul(av, bv[v]));
        }
    }
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) wasm_v128_store(c + r * ldc + 4 * v, acc[r][v]);
}
#endif

/* Best first. */
static const gemm_arch archs[] = {
#ifdef __wasm_simd128__
    {"wasm", 2, 16, kernel_wasm, GEMM_PORTABLE, NULL},
#endif
#ifdef CG_X86
    {"amx", 8, 32, kernel_avx512, GEMM_AMX, kernel_avx512_rows},
    {"avx512", 8, 32, kernel_avx512, GEMM_AVX512, kernel_avx512_rows},
    {"avx2", 6, 16, kernel_avx2, GEMM_AVX2, NULL},
#endif
    {"portable", 6, 16, kernel_portable, GEMM_PORTABLE, NULL},
};
#define NUM_ARCHS ((int)(sizeof archs / sizeof archs[0]))

#ifdef CG_X86
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

/* AMX needs the tile and BF16 instructions, AVX512-BF16 for the conversions, and the
 * kernel's permission to use the tile state (Linux 5.16+: arch_prctl(ARCH_REQ_XCOMP_PERM,
 * XFEATURE_XTILEDATA), process-wide). */
static int amx_ok;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 22))) return;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return;
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) return;
#ifdef SYS_arch_prctl
    amx_ok = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
#endif
}
#endif

static int supported(const gemm_arch *g) {
#ifdef CG_X86
    if (!strcmp(g->name, "amx")) {
        pthread_once(&amx_once, amx_probe);
        return amx_ok;
    }
    if (!strcmp(g->name, "avx512")) return __builtin_cpu_supports("avx512f");
    if (!strcmp(g->name, "avx2")) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    (void)g;
    return 1;
}

int gemm_arch_list(const gemm_arch **out, int max) {
    int n = 0;
    for (int i = 0; i < NUM_ARCHS && n < max; i++)
        if (supported(&archs[i])) out[n++] = &archs[i];
    return n;
}

static const gemm_arch *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

/* The kernel CARTOONGAN_KERNEL names if this CPU has it, else the best it has (the first
 * supported): a name it lacks or misspelt must not fall to the portable kernel, 20 times
 * slower (the CLI says which was used: cli/main.c). */
static void choose(void) {
    const char *want = getenv("CARTOONGAN_KERNEL");
    for (int i = 0; i < NUM_ARCHS && !chosen && want && *want; i++)
        if (supported(&archs[i]) && !strcmp(want, archs[i].name)) chosen = &archs[i];
    for (int i = 0; i < NUM_ARCHS && !chosen; i++)
        if (supported(&archs[i])) chosen = &archs[i];
    if (!chosen) chosen = &archs[NUM_ARCHS - 1];
}

const gemm_arch *gemm_arch_get(void) {
    pthread_once(&chosen_once, choose);
    return chosen;
}

void gemm_arch_set(const gemm_arch *arch) {
    pthread_once(&chosen_once, choose);
    chosen = arch;
}
