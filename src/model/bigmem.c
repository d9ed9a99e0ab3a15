/* bigmem.c: large allocations made cheap to first touch (see bigmem.h).
 *
 * Each one is its own anonymous mapping, trimmed so that its first byte is 2 MB aligned:
 * the kernel gives huge pages only to whole aligned 2 MB ranges of a mapping marked
 * MADV_HUGEPAGE. The mapping's length lives in its first 64 bytes, so that big_free needs
 * nothing but the pointer (64 bytes keep the caller's data 64-byte aligned, and the first
 * huge page still covers them). Elsewhere, and in AddressSanitizer builds, they are
 * aligned_alloc's.
 *
 * To measure either way: CARTOONGAN_HUGEPAGES=1 (or 0) asks for huge pages always (or
 * never) without timing faults, and CARTOONGAN_PREFAULT=1 populates each mapping in one
 * call (MADV_POPULATE_WRITE, Linux 5.14) instead of page by page as it is touched. */
#include "bigmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Sanitizer builds keep malloc's buffers, whose overruns AddressSanitizer reports. */
#if defined(__SANITIZE_ADDRESS__)
#define BIGMEM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BIGMEM_SANITIZED 1
#endif
#endif

#if defined(__linux__) && !defined(__EMSCRIPTEN__) && !defined(BIGMEM_SANITIZED)
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>
#define BIGMEM_MMAP 1
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* older kernels answer EINVAL, which is ignored */
#endif
#endif

/* -1 when the variable is unset or empty, else whether it is other than "0". */
static int env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v ? strcmp(v, "0") != 0 : -1;
}

#ifdef BIGMEM_MMAP
enum { HEADER = 64, PROBE_PAGES = 64 };
#define HUGE ((size_t)2 << 20)
/* A huge page that the host must back again costs up to about 2 ms per MB to touch, i.e.
 * 8 us per 4 KB: 4 KB faults dearer than this make huge pages the better bet. */
#define SLOW_FAULT_NS 8000.0

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Nanoseconds per first touch of a 4 KB page, over PROBE_PAGES of them; -1 if unknown. */
static double fault_ns(void) {
    const size_t len = PROBE_PAGES * (size_t)4096;
    volatile uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    madvise((void *)p, len, MADV_NOHUGEPAGE);
    double t0 = now_ns();
    for (size_t i = 0; i < len; i += 4096) p[i] = 1;
    double ns = (now_ns() - t0) / PROBE_PAGES;
    munmap((void *)p, len);
    return ns;
}

/* Whether to ask for huge pages: decided once per process, on the cheaper of two probes
 * (a probe that was preempted reads high). */
static int want_huge(void) {
    static atomic_int decided = -1;
    int d = atomic_load(&decided);
    if (d >= 0) return d;
    d = env_flag("CARTOONGAN_HUGEPAGES");
    if (d < 0) {
        double a = fault_ns(), b = fault_ns();
        d = a > SLOW_FAULT_NS && b > SLOW_FAULT_NS;
    }
    atomic_store(&decided, d);
    return d;
}

void *big_alloc(size_t n) {
    if (n > SIZE_MAX - HEADER - 2 * HUGE) return NULL;
    size_t len = (n + HEADER + HUGE - 1) / HUGE * HUGE; /* whole huge pages */
    uint8_t *raw = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    uint8_t *base = (uint8_t *)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    if (base > raw) munmap(raw, (size_t)(base - raw));
    if (raw + HUGE > base) munmap(base + len, (size_t)(raw + HUGE - base));
    if (want_huge()) madvise(base, len, MADV_HUGEPAGE);
    if (env_flag("CARTOONGAN_PREFAULT") > 0) madvise(base, len, MADV_POPULATE_WRITE);
    memcpy(base, &len, sizeof len);
    return base + HEADER;
}

void big_free(void *p) {
    if (!p) return;
    uint8_t *base = (uint8_t *)p - HEADER;
    size_t len;
    memcpy(&len, base, sizeof len);
    munmap(base, len);
}
#else
void *big_alloc(size_t n) {
    (void)env_flag;
    return n > SIZE_MAX - 63 ? NULL : aligned_alloc(64, (n + 63) & ~(size_t)63);
}

void big_free(void *p) { free(p); }
#endif
