/* The row layout of the sampler's bf16 weights (gemv_bf16.h), shared by the module that
 * packs them (charrnn._sample, at load) and the tiers that read them (charrnn._isa).
 *
 * A matrix W (M, D) is kept as M rows of D bf16 (uint16, row stride D). Row i's first
 * D32 = D - D % 32 elements go in blocks of 32: in block k0 (a multiple of 32), the pair
 * of uint16 at 2j, 2j + 1 (j < 16) holds w[k0 + j], w[k0 + 16 + j]; read as one uint32
 * (little-endian), the low half is w[k0 + j] and the high half w[k0 + 16 + j], so a
 * 16-bit shift left widens the first to float32 and a mask of the high half the second,
 * 8 or 16 lanes at a time, in k order: no shuffle. The last D - D32 elements follow as
 * they are. Rounding: nearest even, once (cr_bf16_bits; a NaN stays a NaN).
 */
#ifndef CHARRNN_BF16_ROWS_H
#define CHARRNN_BF16_ROWS_H

#include <stdint.h>
#include <string.h>

#include "cpu.h"
#include "sgemm_bf16.h"

/* bf16 bits -> float32, exact. */
static inline float cr_bf16_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* fma(w, x, acc) rounded once, as a hardware FMA gives it, without one: the portable
 * bf16 product's step on CPUs (or C libraries: mingw-w64's fmaf is not correctly
 * rounded) where fmaf cannot be trusted or is slow. w * x is exact in double (w has 8
 * significant bits, x 24); the sum is rounded to odd in double (TwoSum finds whether
 * it was exact; if not, the neighbour with an odd last bit is taken), and a round to odd
 * with 29 bits to spare rounds to nearest float exactly as one rounding would. Infinities
 * and NaN pass through. */
static inline float cr_fmaf_exact(float w, float x, float acc)
{
    double p = (double)w * (double)x, a = (double)acc;
    double s = p + a;
    double t = s - p;
    double e = (a - t) + (p - (s - t));          /* s + e == p + a exactly */
    if (e != 0 && s - s == 0) {
        uint64_t u;
        memcpy(&u, &s, sizeof u);
        if ((u & 1) == 0) {                        /* step to the odd neighbour, toward e */
            u = ((e > 0) == (s > 0)) ? u + 1 : u - 1;
            memcpy(&s, &u, sizeof s);
        }
    }
    return (float)s;
}

/* P (M, D) := W (M, D, row stride ldw) rounded to bf16, in the layout above. */
CR_UNUSED static void cr_bf16_rows_pack(ptrdiff_t M, ptrdiff_t D, const float *W, ptrdiff_t ldw,
                              uint16_t *P)
{
    const ptrdiff_t D32 = D - D % 32;
    for (ptrdiff_t i = 0; i < M; i++) {
        const float *w = W + i * ldw;
        uint16_t *p = P + i * D;
        for (ptrdiff_t k0 = 0; k0 < D32; k0 += 32)
            for (int j = 0; j < 16; j++) {
                p[k0 + 2 * j] = (uint16_t)cr_bf16_bits(w[k0 + j]);
                p[k0 + 2 * j + 1] = (uint16_t)cr_bf16_bits(w[k0 + 16 + j]);
            }
        for (ptrdiff_t k = D32; k < D; k++) p[k] = (uint16_t)cr_bf16_bits(w[k]);
    }
}

#endif
