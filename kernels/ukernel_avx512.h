/* The AVX-512 micro-kernel: tile 8 x 32. 16 zmm accumulators; per k two loads of B and
 * eight broadcasts of A feed 16 FMAs. A last tile of at most 4 rows runs a 4-row copy:
 * half the work instead of computing copies of the last row. A last 9 or 10 rows run a
 * 10-row copy (20 accumulators; tier tall = 10, sgemm.h), so that M = 50 (char-rnn's
 * batch) is 8x5 + 10 rather than 8x6 and 2 rows in the 4-row kernel, whose 8 chains take
 * half an 8-row tile's time for a quarter of its rows. Partial columns are stored through
 * masks. Compiled inside an AVX-512 region (dispatch.h). */
#define CR_AVX512_MR 8
#define CR_AVX512_NR 32
#define CR_AVX512_TALL 10

#define CR5_FMA_ROW(r)                                                     \
    {                                                                      \
        __m512 a = _mm512_set1_ps(Ak[a_ofs[r]]);                           \
        c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);                         \
        c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);                         \
    }
#define CR5_STORE_ROW(r)                                                   \
    if (r < mr) {                                                          \
        float *c = C + r * ldc;                                            \
        if (bias) {                                                        \
            c##r##0 = _mm512_add_ps(c##r##0, bias0);                       \
            c##r##1 = _mm512_add_ps(c##r##1, bias1);                       \
        }                                                                  \
        if (accumulate) {                                                  \
            c##r##0 = _mm512_add_ps(c##r##0, _mm512_maskz_loadu_ps(m0, c));      \
            c##r##1 = _mm512_add_ps(c##r##1, _mm512_maskz_loadu_ps(m1, c + 16)); \
        }                                                                  \
        _mm512_mask_storeu_ps(c, m0, c##r##0);                             \
        _mm512_mask_storeu_ps(c + 16, m1, c##r##1);                        \
    }
#define CR5_EPILOGUE_SETUP                                                 \
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);            \
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF                                          \
                 : nr <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nr - 16)) - 1);          \
    __m512 bias0 = _mm512_setzero_ps(), bias1 = bias0;                     \
    if (bias) {                                                            \
        bias0 = _mm512_loadu_ps(bias);                                     \
        bias1 = _mm512_loadu_ps(bias + 16);                                \
    }

static void cr_ukernel_avx512_8(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                                ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                                ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00,
           c61 = c00, c70 = c00, c71 = c00;
    const float *Ak = A, *Bk = B;
    for (ptrdiff_t k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(Bk), b1 = _mm512_loadu_ps(Bk + 16);
        CR5_FMA_ROW(0) CR5_FMA_ROW(1) CR5_FMA_ROW(2) CR5_FMA_ROW(3)
        CR5_FMA_ROW(4) CR5_FMA_ROW(5) CR5_FMA_ROW(6) CR5_FMA_ROW(7)
        Ak += a_step;
        Bk += b_step;
    }
    CR5_EPILOGUE_SETUP
    CR5_STORE_ROW(0) CR5_STORE_ROW(1) CR5_STORE_ROW(2) CR5_STORE_ROW(3)
    CR5_STORE_ROW(4) CR5_STORE_ROW(5) CR5_STORE_ROW(6) CR5_STORE_ROW(7)
}

static void cr_ukernel_avx512_10(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                                 ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                                 ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00,
           c61 = c00, c70 = c00, c71 = c00, c80 = c00, c81 = c00, c90 = c00, c91 = c00;
    const float *Ak = A, *Bk = B;
    for (ptrdiff_t k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(Bk), b1 = _mm512_loadu_ps(Bk + 16);
        CR5_FMA_ROW(0) CR5_FMA_ROW(1) CR5_FMA_ROW(2) CR5_FMA_ROW(3) CR5_FMA_ROW(4)
        CR5_FMA_ROW(5) CR5_FMA_ROW(6) CR5_FMA_ROW(7) CR5_FMA_ROW(8) CR5_FMA_ROW(9)
        Ak += a_step;
        Bk += b_step;
    }
    CR5_EPILOGUE_SETUP
    CR5_STORE_ROW(0) CR5_STORE_ROW(1) CR5_STORE_ROW(2) CR5_STORE_ROW(3) CR5_STORE_ROW(4)
    CR5_STORE_ROW(5) CR5_STORE_ROW(6) CR5_STORE_ROW(7) CR5_STORE_ROW(8) CR5_STORE_ROW(9)
}

static void cr_ukernel_avx512_4(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                                ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                                ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00;
    const float *Ak = A, *Bk = B;
    for (ptrdiff_t k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(Bk), b1 = _mm512_loadu_ps(Bk + 16);
        CR5_FMA_ROW(0) CR5_FMA_ROW(1) CR5_FMA_ROW(2) CR5_FMA_ROW(3)
        Ak += a_step;
        Bk += b_step;
    }
    CR5_EPILOGUE_SETUP
    CR5_STORE_ROW(0) CR5_STORE_ROW(1) CR5_STORE_ROW(2) CR5_STORE_ROW(3)
}
#undef CR5_FMA_ROW
#undef CR5_STORE_ROW
#undef CR5_EPILOGUE_SETUP

static void cr_ukernel_avx512(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                              ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                              ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias)
{
    (mr > 8 ? cr_ukernel_avx512_10 : mr > 4 ? cr_ukernel_avx512_8 : cr_ukernel_avx512_4)(
        K, A, a_ofs, a_step, B, b_step, C, ldc, mr, nr, accumulate, bias);
}
