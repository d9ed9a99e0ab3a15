/* bigmem.h: allocations of tens to hundreds of megabytes (a model's parameters and packed
 * weights, cg_stylize's arena), made as cheap to first touch as the machine allows.
 *
 * A process that cartoonizes one photo spends a good part of its time in page faults on
 * these buffers: about 70 000 of them at 512x512 with 4 KB pages. What a fault costs
 * depends on the machine: about 2 us on an ordinary one, 17 us on some virtual machines,
 * where transparent huge pages (one fault per 2 MB) then win by 2.3x. But huge pages are
 * not always cheaper: on a virtual machine whose host takes back the guest's free memory
 * (free page reporting), a huge page that has been free for a few seconds costs about
 * 2 ms per MB to touch again, against 0.4 ms for 4 KB pages. So the first call times a few
 * 4 KB faults, and the buffers ask for huge pages (MADV_HUGEPAGE, honoured where THP is
 * "always" or "madvise", the usual default) only where those cost more than a huge page
 * does per 4 KB at worst. Elsewhere (other systems, the WebAssembly build) they are
 * plain aligned_alloc. */
#ifndef CG_MODEL_BIGMEM_H
#define CG_MODEL_BIGMEM_H

#include <stddef.h>

/* n bytes, 64-byte aligned, or NULL; their contents are undefined. */
void *big_alloc(size_t n);
/* Frees what big_alloc returned (NULL is fine). */
void big_free(void *p);

#endif
