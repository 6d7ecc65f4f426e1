/* The x86 AVX512_BF16 micro-kernel for bf16 products (sgemm_bf16.h): tile 8 x 32,
 * VDPBF16PS (Cooper Lake, Sapphire Rapids and later Xeons; AMD Zen 4 and Zen 5). 16 zmm
 * accumulators (8 rows x 2 x 16 columns) as in the float32 AVX-512 kernel; per pair of k,
 * two loads of B (16 columns x a pair each), eight broadcasts of A (row r's pair in every
 * lane) feed 16 VDPBF16PS: each adds, per column, row r's pair times the column's pair.
 * A last tile of at most 4 rows runs a 4-row copy (half the work, as in the fp32 kernel).
 * Partial column panels are stored through a row buffer and cr_store_row rather than
 * masks, so the kernel needs nothing beyond VDPBF16PS and plain AVX-512F loads and stores
 * (which is also what lets the C harness run this very source on SIMDe, on any x86 CPU).
 *
 * Arithmetic (Intel SDM, VDPBF16PS): per lane, acc += a[2j+1] * b[2j+1], then acc +=
 * a[2j] * b[2j], each product exact, each add rounded to nearest even, input subnormals
 * read as zero and output subnormals flushed (DAZ, FTZ), MXCSR neither read nor written.
 * The portable kernel adds the even element's product first: the results differ from it
 * by rounding only (bounded in the C harness), and agree where no add rounds.
 *
 * Compiled inside a target region that adds AVX512_BF16 to the avx512 tier's features for
 * these functions only (tiers.h); called only where cpu.h finds AVX512_BF16 with ZMM
 * state. Plain intrinsics; the one reinterpretation of integer lanes as bf16 pairs is
 * CR_AS_BH, a vector cast in GCC (>= 10) and Clang (>= 9), which the SIMDe build of the C
 * harness may redefine. MSVC builds none (its vector types are unions, not castable). */
#define CR_AVX512_BF16_MR 8
#define CR_AVX512_BF16_NR 32

#ifndef CR_AS_BH
#define CR_AS_BH(v) ((__m512bh)(v))
#endif

/* acc(r, 0..1) += row r's pair . B's pairs, for 32 columns */
#define CRX_ROW(r)                                                                    \
    {                                                                                 \
        __m512bh a = CR_AS_BH(_mm512_set1_epi32((int)A[r]));                          \
        c##r##0 = _mm512_dpbf16_ps(c##r##0, a, b0);                                   \
        c##r##1 = _mm512_dpbf16_ps(c##r##1, a, b1);                                   \
    }
#define CRX_STORE_ROW(r)                                                              \
    if (r < mr) {                                                                     \
        float *c = C + r * ldc;                                                       \
        if (bias) {                                                                   \
            c##r##0 = _mm512_add_ps(c##r##0, bias0);                                  \
            c##r##1 = _mm512_add_ps(c##r##1, bias1);                                  \
        }                                                                             \
        if (nr == 32) {                                                               \
            if (accumulate) {                                                         \
                c##r##0 = _mm512_add_ps(c##r##0, _mm512_loadu_ps(c));                 \
                c##r##1 = _mm512_add_ps(c##r##1, _mm512_loadu_ps(c + 16));            \
            }                                                                         \
            _mm512_storeu_ps(c, c##r##0);                                             \
            _mm512_storeu_ps(c + 16, c##r##1);                                        \
        } else {                                                                      \
            float v[32];                                                              \
            _mm512_storeu_ps(v, c##r##0);                                             \
            _mm512_storeu_ps(v + 16, c##r##1);                                        \
            cr_store_row(c, v, nr, accumulate);                                       \
        }                                                                             \
    }
#define CRX_BIAS                                                                      \
    __m512 bias0 = _mm512_setzero_ps(), bias1 = bias0;                                \
    if (bias) {                                                                       \
        bias0 = _mm512_loadu_ps(bias);                                                \
        bias1 = _mm512_loadu_ps(bias + 16);                                           \
    }
#define CRX_LOAD_B                                                                    \
    __m512bh b0 = CR_AS_BH(_mm512_loadu_si512((const void *)B));                      \
    __m512bh b1 = CR_AS_BH(_mm512_loadu_si512((const void *)(B + 16)));

static void cr_ukernel_avx512_bf16_8(ptrdiff_t KP, const uint32_t *A, const uint32_t *B,
                                     float *C, ptrdiff_t ldc, int mr, int nr, int accumulate,
                                     const float *bias)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00,
           c61 = c00, c70 = c00, c71 = c00;
    for (ptrdiff_t p = 0; p < KP; p++, A += CR_AVX512_BF16_MR, B += CR_AVX512_BF16_NR) {
        CRX_LOAD_B
        CRX_ROW(0) CRX_ROW(1) CRX_ROW(2) CRX_ROW(3)
        CRX_ROW(4) CRX_ROW(5) CRX_ROW(6) CRX_ROW(7)
    }
    CRX_BIAS
    CRX_STORE_ROW(0) CRX_STORE_ROW(1) CRX_STORE_ROW(2) CRX_STORE_ROW(3)
    CRX_STORE_ROW(4) CRX_STORE_ROW(5) CRX_STORE_ROW(6) CRX_STORE_ROW(7)
}

/* A last tile of at most 4 rows: half the VDPBF16PS (rows 4-7 of the tile are zeros). */
static void cr_ukernel_avx512_bf16_4(ptrdiff_t KP, const uint32_t *A, const uint32_t *B,
                                     float *C, ptrdiff_t ldc, int mr, int nr, int accumulate,
                                     const float *bias)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00;
    for (ptrdiff_t p = 0; p < KP; p++, A += CR_AVX512_BF16_MR, B += CR_AVX512_BF16_NR) {
        CRX_LOAD_B
        CRX_ROW(0) CRX_ROW(1) CRX_ROW(2) CRX_ROW(3)
    }
    CRX_BIAS
    CRX_STORE_ROW(0) CRX_STORE_ROW(1) CRX_STORE_ROW(2) CRX_STORE_ROW(3)
}
#undef CRX_ROW
#undef CRX_STORE_ROW
#undef CRX_BIAS
#undef CRX_LOAD_B

static void cr_ukernel_avx512_bf16(ptrdiff_t KP, const uint32_t *A, const uint32_t *B,
                                   float *C, ptrdiff_t ldc, int mr, int nr, int accumulate,
                                   const float *bias)
{
    (mr > 4 ? cr_ukernel_avx512_bf16_8 : cr_ukernel_avx512_bf16_4)(KP, A, B, C, ldc, mr, nr,
                                                                   accumulate, bias);
}
