/* Element-wise math of the recurrent cells, one time step at a time, fused into as few
 * passes as possible. The Cython kernels (_lstm.pyx, _gru.pyx, _rnn.pyx) do the GEMMs
 * and call these for everything between them.
 *
 * Why C and not Cython: these loops must vectorise, and gcc vectorises them only when
 * they are simple, use a signed pointer-sized index, and the pointers are __restrict;
 * Cython emits none of that reliably.
 *
 * The loops themselves live in cellmath_impl.h, a template: instantiated here for
 * float64 (libm, so gradient checks stay exact) and by tier_impl.h for float32 once per
 * ISA tier (fast exp; see there), picked at run time (dispatch.h).
 * No -ffast-math anywhere: NaN must propagate (the trainer's divergence check relies on it).
 */
#ifndef CHARRNN_CELLMATH_H
#define CHARRNN_CELLMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cpu.h"
#include "prefetch.h"

/* MSVC's C compiler spells C99's inline __inline before VS 2019 16.8. */
#if defined(_MSC_VER) && !defined(__cplusplus) && !defined(inline)
#define inline __inline
#endif

typedef ptrdiff_t idx_t;

static inline double cr_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline double cr_tanh(double x) { return tanh(x); }

/* Flush denormals to zero while a kernel runs: a gradient decaying through many steps
 * otherwise hits denormal floats, which cost 10-100x per operation on x86. The control
 * register (MXCSR on x86, FPCR on arm64) is per-thread and restored afterwards, so the
 * caller's floating-point mode is untouched. */
#if CR_X86
#include <xmmintrin.h>
static inline unsigned int cr_ftz_begin(void)
{
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | 0x8040);                     /* FTZ (bit 15) | DAZ (bit 6) */
    return old;
}
static inline void cr_ftz_end(unsigned int old) { _mm_setcsr(old); }
#elif CR_ARM64 && defined(__GNUC__)
static inline unsigned int cr_ftz_begin(void)
{
    uint64_t old;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(old));
    __asm__ __volatile__("msr fpcr, %0" : : "r"(old | (1u << 24)));   /* FZ */
    return (unsigned int)old;
}
static inline void cr_ftz_end(unsigned int old)
{
    uint64_t v = old;
    __asm__ __volatile__("msr fpcr, %0" : : "r"(v));
}
#else
static inline unsigned int cr_ftz_begin(void) { return 0; }
static inline void cr_ftz_end(unsigned int old) { (void)old; }
#endif

/* The float64 step functions: libm, baseline flags (they serve the gradient checks). */
#define REAL double
#define SFX(name) name##_f64
#define SIGM cr_sigmoid
#define TANH cr_tanh
#include "cellmath_impl.h"
#undef REAL
#undef SFX
#undef SIGM
#undef TANH

/* Every float32 kernel, per ISA tier, behind the public names (fill_bias_f32, ...). */
#include "dispatch.h"

#endif
