/* The arm64 NEON micro-kernel: tile 8 x 12. 24 q-register accumulators (8 rows x 3 x 4
 * floats); per k three loads of B and eight scalars of A feed 24 FMAs by element
 * (vfmaq_n_f32), 27 of the 32 vector registers. NEON is baseline on arm64, so this is
 * compiled with the default flags. A last tile of at most 4 rows runs a 4-row copy. */
#define CR_NEON_MR 8
#define CR_NEON_NR 12

#define CRN_FMA_ROW(r)                                                     \
    {                                                                      \
        float a = Ak[a_ofs[r]];                                            \
        c##r##0 = vfmaq_n_f32(c##r##0, b0, a);                             \
        c##r##1 = vfmaq_n_f32(c##r##1, b1, a);                             \
        c##r##2 = vfmaq_n_f32(c##r##2, b2, a);                             \
    }
#define CRN_STORE_ROW(r)                                                   \
    if (r < mr) {                                                          \
        float *c = C + r * ldc;                                            \
        if (bias) {                                                        \
            c##r##0 = vaddq_f32(c##r##0, bias0);                           \
            c##r##1 = vaddq_f32(c##r##1, bias1);                           \
            c##r##2 = vaddq_f32(c##r##2, bias2);                           \
        }                                                                  \
        if (nr == 12) {                                                    \
            if (accumulate) {                                              \
                c##r##0 = vaddq_f32(c##r##0, vld1q_f32(c));                \
                c##r##1 = vaddq_f32(c##r##1, vld1q_f32(c + 4));            \
                c##r##2 = vaddq_f32(c##r##2, vld1q_f32(c + 8));            \
            }                                                              \
            vst1q_f32(c, c##r##0);                                         \
            vst1q_f32(c + 4, c##r##1);                                     \
            vst1q_f32(c + 8, c##r##2);                                     \
        } else {                                                           \
            float v[12];                                                   \
            vst1q_f32(v, c##r##0);                                         \
            vst1q_f32(v + 4, c##r##1);                                     \
            vst1q_f32(v + 8, c##r##2);                                     \
            cr_store_row(c, v, nr, accumulate);                            \
        }                                                                  \
    }
#define CRN_EPILOGUE_SETUP                                                 \
    float32x4_t bias0 = vdupq_n_f32(0.0f), bias1 = bias0, bias2 = bias0;   \
    if (bias) {                                                            \
        bias0 = vld1q_f32(bias);                                           \
        bias1 = vld1q_f32(bias + 4);                                       \
        bias2 = vld1q_f32(bias + 8);                                       \
    }

static void cr_ukernel_neon_8(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                              ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                              ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias)
{
    float32x4_t z = vdupq_n_f32(0.0f);
    float32x4_t c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z, c20 = z, c21 = z,
                c22 = z, c30 = z, c31 = z, c32 = z, c40 = z, c41 = z, c42 = z, c50 = z,
                c51 = z, c52 = z, c60 = z, c61 = z, c62 = z, c70 = z, c71 = z, c72 = z;
    const float *Ak = A, *Bk = B;
    for (ptrdiff_t k = 0; k < K; k++) {
        float32x4_t b0 = vld1q_f32(Bk), b1 = vld1q_f32(Bk + 4), b2 = vld1q_f32(Bk + 8);
        CRN_FMA_ROW(0) CRN_FMA_ROW(1) CRN_FMA_ROW(2) CRN_FMA_ROW(3)
        CRN_FMA_ROW(4) CRN_FMA_ROW(5) CRN_FMA_ROW(6) CRN_FMA_ROW(7)
        Ak += a_step;
        Bk += b_step;
    }
    CRN_EPILOGUE_SETUP
    CRN_STORE_ROW(0) CRN_STORE_ROW(1) CRN_STORE_ROW(2) CRN_STORE_ROW(3)
    CRN_STORE_ROW(4) CRN_STORE_ROW(5) CRN_STORE_ROW(6) CRN_STORE_ROW(7)
}

static void cr_ukernel_neon_4(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                              ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                              ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias)
{
    float32x4_t z = vdupq_n_f32(0.0f);
    float32x4_t c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z, c20 = z, c21 = z,
                c22 = z, c30 = z, c31 = z, c32 = z;
    const float *Ak = A, *Bk = B;
    for (ptrdiff_t k = 0; k < K; k++) {
        float32x4_t b0 = vld1q_f32(Bk), b1 = vld1q_f32(Bk + 4), b2 = vld1q_f32(Bk + 8);
        CRN_FMA_ROW(0) CRN_FMA_ROW(1) CRN_FMA_ROW(2) CRN_FMA_ROW(3)
        Ak += a_step;
        Bk += b_step;
    }
    CRN_EPILOGUE_SETUP
    CRN_STORE_ROW(0) CRN_STORE_ROW(1) CRN_STORE_ROW(2) CRN_STORE_ROW(3)
}
#undef CRN_FMA_ROW
#undef CRN_STORE_ROW
#undef CRN_EPILOGUE_SETUP

static void cr_ukernel_neon(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                            ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                            ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias)
{
    (mr > 4 ? cr_ukernel_neon_8 : cr_ukernel_neon_4)(K, A, a_ofs, a_step, B, b_step, C, ldc,
                                                     mr, nr, accumulate, bias);
}
