/* The scalar micro-kernel (any CPU, any compiler): the plain statement of what every
 * SIMD micro-kernel computes, tile 4 x 16. See sgemm.h for the contract. */
#define CR_SCALAR_MR 4
#define CR_SCALAR_NR 16

static void cr_ukernel_scalar(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                              ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                              ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias)
{
    float acc[CR_SCALAR_MR][CR_SCALAR_NR];
    for (int r = 0; r < CR_SCALAR_MR; r++)
        for (int j = 0; j < CR_SCALAR_NR; j++) acc[r][j] = 0.0f;
    for (ptrdiff_t k = 0; k < K; k++) {
        const float *Ak = A + k * a_step;
        const float *Bk = B + k * b_step;
        for (int r = 0; r < CR_SCALAR_MR; r++) {
            float a = Ak[a_ofs[r]];
            for (int j = 0; j < CR_SCALAR_NR; j++) acc[r][j] += a * Bk[j];
        }
    }
    for (int r = 0; r < mr; r++) {
        if (bias)
            for (int j = 0; j < CR_SCALAR_NR; j++) acc[r][j] += bias[j];
        cr_store_row(C + r * ldc, acc[r], nr, accumulate);
    }
}
