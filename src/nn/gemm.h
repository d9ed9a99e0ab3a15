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

typedef struct gemm_arch {
    const char *name; /* "avx512", "avx2", "portable", ... */
    int mr, nr;
    gemm_kernel_fn kernel;
} gemm_arch;

/* The best kernel for this CPU, chosen once. CARTOONGAN_KERNEL=portable|avx2|avx512|wasm forces
 * one (if the CPU has it), for tests and benchmarks. */
const gemm_arch *gemm_arch_get(void);
/* All kernels this CPU can run (for the tests); returns the count. */
int gemm_arch_list(const gemm_arch **out, int max);

#endif
