/* Cache hints, for the kernels' streams the hardware prefetchers miss. No-ops where the
 * compiler offers none; a hint never faults, so hinting past an array's end is harmless
 * (the callers still stay inside their arrays). */
#ifndef CHARRNN_PREFETCH_H
#define CHARRNN_PREFETCH_H

#include <stddef.h>
#include <stdint.h>
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#endif

/* The cache line holding p will be read (R) or written (W) soon. On x86 both are
 * prefetcht0 unless the region's target has PRFCHW: even so, a line fetched before it is
 * written no longer stalls its store. */
#if defined(__GNUC__) || defined(__clang__)
#define CR_PREFETCH_W(p) __builtin_prefetch((const void *)(p), 1, 3)
#define CR_PREFETCH_R(p) __builtin_prefetch((const void *)(p), 0, 3)
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#define CR_PREFETCH_W(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define CR_PREFETCH_R(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#elif defined(_MSC_VER) && defined(_M_ARM64)
#define CR_PREFETCH_W(p) __prefetch((const void *)(p))
#define CR_PREFETCH_R(p) __prefetch((const void *)(p))
#else
#define CR_PREFETCH_W(p) ((void)(p))
#define CR_PREFETCH_R(p) ((void)(p))
#endif

/* Every 64-byte line of bytes [p, p + n): read soon, or written soon if write. The walk
 * starts at p's line, so an unaligned span's last line is hinted too. */
static inline void cr_prefetch_span(const void *p, ptrdiff_t n, int write)
{
    /* integer addresses: a pointer to before the array's start would be undefined C */
    const uintptr_t end = (uintptr_t)p + (uintptr_t)n;
    for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)63; a < end; a += 64) {
        if (write)
            CR_PREFETCH_W(a);
        else
            CR_PREFETCH_R(a);
    }
}

#endif
