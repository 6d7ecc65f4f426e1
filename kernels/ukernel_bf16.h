/* The portable bf16 micro-kernel (sgemm_bf16.h), tile 4 x 16: plain C, compiled once per
 * tier inside its region (tiers.h: TIER(name) adds the suffix), where the loops over the
 * 16 columns vectorise to that tier's width. The readable statement of what every native
 * bf16 kernel computes, and the kernel of every CPU without one: on those it makes the
 * whole mixed-precision pipeline (packing, rounding, training, resume) testable, but slow
 * (GCC 12 vectorises it poorly: training a 2x256 GRU in bf16 on it runs at 1/7 of the
 * AVX2 float32 kernel's speed). Written to be read, not tuned. No include guard: it is a
 * template over TIER(name).
 *
 * Per pair of k: acc += a_k * b_k, then acc += a_k+1 * b_k+1, every product exact in
 * float32 (two 8-bit mantissas), each add rounded to nearest even: so FMA contraction and
 * the vector width change nothing, and every tier gives the same bits. */
#ifndef CR_BF16_MR
#define CR_BF16_MR 4
#define CR_BF16_NR 16
#endif

static void TIER(cr_ukernel_bf16)(ptrdiff_t KP, const uint32_t *A, const uint32_t *B, float *C,
                                  ptrdiff_t ldc, int mr, int nr, int accumulate,
                                  const float *bias)
{
    float acc[CR_BF16_MR][CR_BF16_NR];
    for (int r = 0; r < CR_BF16_MR; r++)
        for (int j = 0; j < CR_BF16_NR; j++) acc[r][j] = 0.0f;
    for (ptrdiff_t p = 0; p < KP; p++) {
        const uint32_t *Ap = A + p * CR_BF16_MR, *Bp = B + p * CR_BF16_NR;
        float b0[CR_BF16_NR], b1[CR_BF16_NR];
        for (int j = 0; j < CR_BF16_NR; j++) {
            b0[j] = cr_bf16_lo(Bp[j]);
            b1[j] = cr_bf16_hi(Bp[j]);
        }
        for (int r = 0; r < CR_BF16_MR; r++) {
            float a0 = cr_bf16_lo(Ap[r]), a1 = cr_bf16_hi(Ap[r]);
            for (int j = 0; j < CR_BF16_NR; j++) {
                float s = acc[r][j] + a0 * b0[j];
                acc[r][j] = s + a1 * b1[j];
            }
        }
    }
    for (int r = 0; r < mr; r++) {
        if (bias)
            for (int j = 0; j < CR_BF16_NR; j++) acc[r][j] += bias[j];
        cr_store_row(C + r * ldc, acc[r], nr, accumulate);
    }
}
