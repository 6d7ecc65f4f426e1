/* The AVX2+FMA micro-kernel: tile 6 x 16, as BLIS's Haswell sgemm. 12 ymm accumulators;
 * per k two loads of B and six broadcasts of A feed 12 FMAs (15 of the 16 ymm registers).
 * A tile of 4 rows runs a 4-row copy (8 accumulators: still enough FMAs in flight), one
 * of at most 3 rows a 3-row copy: less work than computing copies of the last row; the
 * driver cuts M = 6q + 1 or 6q + 2 into ..., 4, 3 or ..., 4, 4 (tier split = 4, sgemm.h).
 * Compiled inside an AVX2+FMA region (dispatch.h). */
#define CR_AVX2_MR 6
#define CR_AVX2_NR 16

#define CR2_FMA_ROW(r)                                                     \
    {                                                                      \
        __m256 a = _mm256_broadcast_ss(Ak + a_ofs[r]);                     \
        c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);                         \
        c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);                         \
    }
#define CR2_STORE_ROW(r)                                                   \
    if (r < mr) {                                                          \
        float *c = C + r * ldc;                                            \
        if (bias) {                                                        \
            c##r##0 = _mm256_add_ps(c##r##0, bias0);                       \
            c##r##1 = _mm256_add_ps(c##r##1, bias1);                       \
        }                                                                  \
        if (nr == 16) {                                                    \
            if (accumulate) {                                              \
                c##r##0 = _mm256_add_ps(c##r##0, _mm256_loadu_ps(c));      \
                c##r##1 = _mm256_add_ps(c##r##1, _mm256_loadu_ps(c + 8));  \
            }                                                              \
            _mm256_storeu_ps(c, c##r##0);                                  \
            _mm256_storeu_ps(c + 8, c##r##1);                              \
        } else {                                                           \
            float v[16];                                                   \
            _mm256_storeu_ps(v, c##r##0);                                  \
            _mm256_storeu_ps(v + 8, c##r##1);                              \
            cr_store_row(c, v, nr, accumulate);                            \
        }                                                                  \
    }

#define CR2_BIAS                                                           \
    __m256 bias0 = _mm256_setzero_ps(), bias1 = bias0;                     \
    if (bias) {                                                            \
        bias0 = _mm256_loadu_ps(bias);                                     \
        bias1 = _mm256_loadu_ps(bias + 8);                                 \
    }

static void cr_ukernel_avx2_6(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                              ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                              ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *Ak = A, *Bk = B;
    for (ptrdiff_t k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(Bk), b1 = _mm256_loadu_ps(Bk + 8);
        CR2_FMA_ROW(0) CR2_FMA_ROW(1) CR2_FMA_ROW(2)
        CR2_FMA_ROW(3) CR2_FMA_ROW(4) CR2_FMA_ROW(5)
        Ak += a_step;
        Bk += b_step;
    }
    CR2_BIAS
    CR2_STORE_ROW(0) CR2_STORE_ROW(1) CR2_STORE_ROW(2)
    CR2_STORE_ROW(3) CR2_STORE_ROW(4) CR2_STORE_ROW(5)
}

static void cr_ukernel_avx2_4(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                              ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                              ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00;
    const float *Ak = A, *Bk = B;
    for (ptrdiff_t k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(Bk), b1 = _mm256_loadu_ps(Bk + 8);
        CR2_FMA_ROW(0) CR2_FMA_ROW(1) CR2_FMA_ROW(2) CR2_FMA_ROW(3)
        Ak += a_step;
        Bk += b_step;
    }
    CR2_BIAS
    CR2_STORE_ROW(0) CR2_STORE_ROW(1) CR2_STORE_ROW(2) CR2_STORE_ROW(3)
}

static void cr_ukernel_avx2_3(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                              ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                              ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    const float *Ak = A, *Bk = B;
    for (ptrdiff_t k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(Bk), b1 = _mm256_loadu_ps(Bk + 8);
        CR2_FMA_ROW(0) CR2_FMA_ROW(1) CR2_FMA_ROW(2)
        Ak += a_step;
        Bk += b_step;
    }
    CR2_BIAS
    CR2_STORE_ROW(0) CR2_STORE_ROW(1) CR2_STORE_ROW(2)
}
#undef CR2_FMA_ROW
#undef CR2_STORE_ROW
#undef CR2_BIAS

static void cr_ukernel_avx2(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                            ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                            ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias)
{
    (mr > 4 ? cr_ukernel_avx2_6 : mr == 4 ? cr_ukernel_avx2_4 : cr_ukernel_avx2_3)(
        K, A, a_ofs, a_step, B, b_step, C, ldc, mr, nr, accumulate, bias);
}
