/* The arm64 BF16 micro-kernel for bf16 products (sgemm_bf16.h): tile 8 x 12, BFDOT by
 * element (FEAT_BF16: optional from Armv8.2-A, required from Armv8.6-A; Neoverse V1/N2,
 * Graviton 3/4, Apple M2 and later, Cortex-A510/A710 and later). 24 q-register
 * accumulators (8 rows x 3 x 4 columns) as in the float32 NEON kernel; per pair of k,
 * three loads of B (4 columns x a pair each), two of A (a pair per row), 24 BFDOTs: each
 * adds, per column, row r's pair times the column's pair.
 *
 * BFDOT's arithmetic is not the portable kernel's: it rounds the two products' sum to odd
 * before adding it, flushes subnormals and ignores FPCR (Arm ARM, BFDotAdd), so its
 * results differ from the portable kernel's by rounding (the C harness bounds the
 * difference under qemu-aarch64 -cpu max).
 *
 * Compiled inside a target region that adds BF16 to these functions only (tiers.h: GCC
 * "+bf16", Clang "bf16"), so the rest of the neon tier stays Armv8.0 and runs on every
 * arm64 CPU; this kernel is called only where cpu.h found FEAT_BF16. The BFDOTs are
 * inline assembly rather than intrinsics: Clang before 17 declares the bf16 intrinsics
 * only when the whole build targets BF16 (-march), not inside a target region. Built with
 * GCC >= 10 and Clang >= 11 (verified: GCC 12, Clang 14, under qemu-aarch64 -cpu max);
 * MSVC has no arm64 inline assembly and builds none. BFMMLA (a 2x4 by 4x2 block per
 * instruction, twice BFDOT's products on some cores) would need another packing of A and
 * B; it has not been tried, since no arm64 machine was at hand to time either. */
#define CR_NEON_BF16_MR 8
#define CR_NEON_BF16_NR 12

/* acc[j] += b.pair[j] . a.pair[lane], j = 0..3 */
#define CRB_DOT(acc, b, a, lane)                                                    \
    __asm__("bfdot %0.4s, %1.8h, %2.2h[" #lane "]" : "+w"(acc) : "w"(b), "w"(a))
#define CRB_ROW(r, a, lane)                                                         \
    CRB_DOT(c##r##0, b0, a, lane);                                                  \
    CRB_DOT(c##r##1, b1, a, lane);                                                  \
    CRB_DOT(c##r##2, b2, a, lane);
#define CRB_STORE_ROW(r)                                                            \
    if (r < mr) {                                                                   \
        float *c = C + r * ldc;                                                     \
        if (bias) {                                                                 \
            c##r##0 = vaddq_f32(c##r##0, bias0);                                    \
            c##r##1 = vaddq_f32(c##r##1, bias1);                                    \
            c##r##2 = vaddq_f32(c##r##2, bias2);                                    \
        }                                                                           \
        if (nr == 12) {                                                             \
            if (accumulate) {                                                       \
                c##r##0 = vaddq_f32(c##r##0, vld1q_f32(c));                         \
                c##r##1 = vaddq_f32(c##r##1, vld1q_f32(c + 4));                     \
                c##r##2 = vaddq_f32(c##r##2, vld1q_f32(c + 8));                     \
            }                                                                       \
            vst1q_f32(c, c##r##0);                                                  \
            vst1q_f32(c + 4, c##r##1);                                              \
            vst1q_f32(c + 8, c##r##2);                                              \
        } else {                                                                    \
            float v[12];                                                            \
            vst1q_f32(v, c##r##0);                                                  \
            vst1q_f32(v + 4, c##r##1);                                              \
            vst1q_f32(v + 8, c##r##2);                                              \
            cr_store_row(c, v, nr, accumulate);                                     \
        }                                                                           \
    }
#define CRB_BIAS                                                                    \
    float32x4_t bias0 = vdupq_n_f32(0.0f), bias1 = bias0, bias2 = bias0;            \
    if (bias) {                                                                     \
        bias0 = vld1q_f32(bias);                                                    \
        bias1 = vld1q_f32(bias + 4);                                                \
        bias2 = vld1q_f32(bias + 8);                                                \
    }

static void cr_ukernel_neon_bf16_8(ptrdiff_t KP, const uint32_t *A, const uint32_t *B,
                                   float *C, ptrdiff_t ldc, int mr, int nr, int accumulate,
                                   const float *bias)
{
    float32x4_t z = vdupq_n_f32(0.0f);
    float32x4_t c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z, c20 = z, c21 = z,
                c22 = z, c30 = z, c31 = z, c32 = z, c40 = z, c41 = z, c42 = z, c50 = z,
                c51 = z, c52 = z, c60 = z, c61 = z, c62 = z, c70 = z, c71 = z, c72 = z;
    for (ptrdiff_t p = 0; p < KP; p++, A += CR_NEON_BF16_MR, B += CR_NEON_BF16_NR) {
        uint32x4_t b0 = vld1q_u32(B), b1 = vld1q_u32(B + 4), b2 = vld1q_u32(B + 8);
        uint32x4_t a0 = vld1q_u32(A), a1 = vld1q_u32(A + 4);
        CRB_ROW(0, a0, 0) CRB_ROW(1, a0, 1) CRB_ROW(2, a0, 2) CRB_ROW(3, a0, 3)
        CRB_ROW(4, a1, 0) CRB_ROW(5, a1, 1) CRB_ROW(6, a1, 2) CRB_ROW(7, a1, 3)
    }
    CRB_BIAS
    CRB_STORE_ROW(0) CRB_STORE_ROW(1) CRB_STORE_ROW(2) CRB_STORE_ROW(3)
    CRB_STORE_ROW(4) CRB_STORE_ROW(5) CRB_STORE_ROW(6) CRB_STORE_ROW(7)
}

/* A last tile of at most 4 rows: half the BFDOTs (rows 4-7 of the tile are zeros). */
static void cr_ukernel_neon_bf16_4(ptrdiff_t KP, const uint32_t *A, const uint32_t *B,
                                   float *C, ptrdiff_t ldc, int mr, int nr, int accumulate,
                                   const float *bias)
{
    float32x4_t z = vdupq_n_f32(0.0f);
    float32x4_t c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z, c20 = z, c21 = z,
                c22 = z, c30 = z, c31 = z, c32 = z;
    for (ptrdiff_t p = 0; p < KP; p++, A += CR_NEON_BF16_MR, B += CR_NEON_BF16_NR) {
        uint32x4_t b0 = vld1q_u32(B), b1 = vld1q_u32(B + 4), b2 = vld1q_u32(B + 8);
        uint32x4_t a0 = vld1q_u32(A);
        CRB_ROW(0, a0, 0) CRB_ROW(1, a0, 1) CRB_ROW(2, a0, 2) CRB_ROW(3, a0, 3)
    }
    CRB_BIAS
    CRB_STORE_ROW(0) CRB_STORE_ROW(1) CRB_STORE_ROW(2) CRB_STORE_ROW(3)
}
#undef CRB_DOT
#undef CRB_ROW
#undef CRB_STORE_ROW
#undef CRB_BIAS

static void cr_ukernel_neon_bf16(ptrdiff_t KP, const uint32_t *A, const uint32_t *B, float *C,
                                 ptrdiff_t ldc, int mr, int nr, int accumulate,
                                 const float *bias)
{
    (mr > 4 ? cr_ukernel_neon_bf16_8 : cr_ukernel_neon_bf16_4)(KP, A, B, C, ldc, mr, nr,
                                                               accumulate, bias);
}
