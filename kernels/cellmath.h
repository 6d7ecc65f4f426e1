/* Element-wise math of the recurrent cells, one time step at a time, fused into as few
 * passes as possible. The Cython kernels (_lstm.pyx, _gru.pyx, _rnn.pyx) do the GEMMs
 * and call these for everything between them.
 *
 * Why C and not Cython: these loops must vectorise, and gcc vectorises them only when
 * they are simple, use a signed pointer-sized index, and the pointers are __restrict;
 * Cython emits none of that reliably.
 *
 * float32 uses a fast exp (range reduction + degree-7 polynomial, max abs error of
 * sigmoid/tanh ~2e-7); float64 uses libm so gradient checks stay exact.
 * No -ffast-math anywhere: NaN must propagate (the trainer's divergence check relies on it).
 */
#ifndef CHARRNN_CELLMATH_H
#define CHARRNN_CELLMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef ptrdiff_t idx_t;

/* Each kernel module uses only its own cell's functions from this header. */
#if defined(__GNUC__)
#define CR_UNUSED __attribute__((unused))
#else
#define CR_UNUSED
#endif

/* exp(x), float32, branch-free so it vectorises. exp(x) = 2^n * exp(r) with
 * n = round(x / ln2), r = x - n ln2 in [-ln2/2, ln2/2]; exp(r) by its Taylor polynomial
 * (degree 7: truncation error < 6e-9 relative). The clamp keeps 2^n a normal float;
 * comparisons are false for NaN, so NaN passes through. */
static inline float cr_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shifter = 12582912.0f;            /* 1.5 * 2^23: x + shifter rounds x */
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - n * 0.693359375f;               /* ln2 = hi + lo, hi exact in few bits */
    r = r - n * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;      /* 2^n as float bits */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float cr_sigmoidf(float x) { return 1.0f / (1.0f + cr_expf(-x)); }

static inline float cr_tanhf(float x)
{
    float ax = x < 0.0f ? -x : x;
    float e = cr_expf(-2.0f * ax);
    float t = (1.0f - e) / (1.0f + e);
    t = x < 0.0f ? -t : t;
    /* Near 0, 1 - e cancels: use the odd Taylor series there (error < 1e-9). */
    float x2 = x * x;
    float s = x * (1.0f + x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f))));
    return ax < 0.15625f ? s : t;
}

static inline double cr_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline double cr_tanh(double x) { return tanh(x); }

/* Flush denormals to zero while a kernel runs: a gradient decaying through many steps
 * otherwise hits denormal floats, which cost 10-100x per operation on x86. MXCSR is
 * per-thread and restored afterwards, so the caller's floating-point mode is untouched. */
#if defined(__x86_64__) || defined(__SSE2__)
#include <xmmintrin.h>
static inline unsigned int cr_ftz_begin(void)
{
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | 0x8040);                     /* FTZ (bit 15) | DAZ (bit 6) */
    return old;
}
static inline void cr_ftz_end(unsigned int old) { _mm_setcsr(old); }
#else
static inline unsigned int cr_ftz_begin(void) { return 0; }
static inline void cr_ftz_end(unsigned int old) { (void)old; }
#endif

/* The float32 step functions are compiled three times -- AVX-512, AVX2+FMA and plain
 * x86-64 -- and the loader picks the best for the CPU at run time (GCC function
 * multi-versioning). The wheel stays portable while the gate math runs 4x wider
 * than SSE2 on a recent CPU. Double uses libm per element, so it gains nothing. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(CHARRNN_NO_CLONES)
#define CR_CLONES_F32 __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CR_CLONES_F32
#endif

/* Instantiate the step functions for float (suffix _f32) and double (_f64). */
#define CLONES CR_CLONES_F32
#define REAL float
#define SFX(name) name##_f32
#define SIGM cr_sigmoidf
#define TANH cr_tanhf
#include "cellmath_impl.h"
#undef REAL
#undef SFX
#undef SIGM
#undef TANH
#undef CLONES

#define CLONES
#define REAL double
#define SFX(name) name##_f64
#define SIGM cr_sigmoid
#define TANH cr_tanh
#include "cellmath_impl.h"
#undef REAL
#undef SFX
#undef SIGM
#undef TANH
#undef CLONES

/* Softmax cross-entropy of one row of float32 logits: returns -log softmax(row)[target]
 * (float64). If scale != 0, row := (softmax(row) - onehot(target)) * scale, its gradient.
 * Each pass is a simple loop that vectorises; the sum runs in 16 float lanes, then
 * double: V is a vocabulary (tens to thousands), so float partial sums are exact enough. */
CR_UNUSED CR_CLONES_F32 static double softmax_xent_row_f32(float *__restrict row, idx_t V,
                                                           idx_t target, float scale)
{
    float m = row[0];
    for (idx_t j = 1; j < V; j++) m = row[j] > m ? row[j] : m;
    float lane[16] = {0};
    double s = 0;
    float zt = row[target] - m;
    if (scale != 0) {
        for (idx_t j = 0; j < V; j++) row[j] = cr_expf(row[j] - m);
        idx_t j = 0;
        for (; j + 16 <= V; j += 16)
            for (int k = 0; k < 16; k++) lane[k] += row[j + k];
        for (; j < V; j++) s += row[j];
        for (int k = 0; k < 16; k++) s += lane[k];
        float f = (float)((double)scale / s);
        for (idx_t j2 = 0; j2 < V; j2++) row[j2] *= f;
        row[target] -= scale;
    } else {
        idx_t j = 0;
        for (; j + 16 <= V; j += 16)
            for (int k = 0; k < 16; k++) lane[k] += cr_expf(row[j + k] - m);
        for (; j < V; j++) s += cr_expf(row[j] - m);
        for (int k = 0; k < 16; k++) s += lane[k];
    }
    return log(s) - (double)zt;
}

#endif
