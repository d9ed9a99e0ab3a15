/* gemm.h: the GEMM micro-kernels behind the convolutions, one per instruction set, and the
 * choice among them at run time from the CPU's features.
 *
 * A kernel computes one tile c[mr][nr] (row stride ldc) = init + a[kc][mr] . b[kc][nr],
 * where `a` is a packed weight panel, `b` a packed im2col panel, and init the bias
 * (bias != NULL, mr values) or c's current contents. */
#ifndef CG_NN_GEMM_H
#define CG_NN_GEMM_H

#include <stddef.h>

#define GEMM_MR_MAX 16
#define GEMM_NR_MAX 64

typedef void (*gemm_kernel_fn)(int kc, const float *a, const float *b, float *c, size_t ldc,
                               const float *bias);
/* The same tile with row r of c at rows[r] + col (rows not evenly spaced). */
typedef void (*gemm_rows_fn)(int kc, const float *a, const float *b, float *const *rows, size_t col,
                             const float *bias);

/* What a kernel's CPU can do beyond its own micro-kernel, for the code around it (the
 * Winograd transforms, the direct convolution) to pick its vector width. */
enum { GEMM_PORTABLE, GEMM_AVX2, GEMM_AVX512, GEMM_AMX };

typedef struct gemm_arch {
    const char *name; /* "amx", "avx512", "avx2", "portable", ... */
    int mr, nr;
    gemm_kernel_fn kernel;
    int level; /* GEMM_* */
    gemm_rows_fn kernel_rows; /* NULL: write through a tile (conv.c) */
} gemm_arch;

/* The best kernel for this CPU, chosen once. CARTOONGAN_KERNEL=portable|avx2|avx512|amx|wasm
 * forces one (if the CPU has it), for tests and benchmarks. "amx" is the AVX-512 kernel for
 * the im2col convolutions plus Intel AMX tiles for the Winograd products (winograd.c). */
const gemm_arch *gemm_arch_get(void);
/* For the tests: models loaded from now on use this kernel (one of gemm_arch_list's). Not
 * thread-safe with loading. */
void gemm_arch_set(const gemm_arch *arch);
/* All kernels this CPU can run (for the tests); returns the count. */
int gemm_arch_list(const gemm_arch **out, int max);

#endif
