/* Batch-1 sampling's products on bf16 weights (charrnn sample --precision bf16):
 *
 *     y (M) += W (M, D) @ x (D)      W bfloat16 in bf16_rows.h's layout, rounded once at
 *                                     load; x, y and every sum float32
 *
 * At batch 1 a step reads every weight once for two flops, so it is bound by reading the
 * weights; bf16 halves the bytes (bench/sample.py --precision). A bf16 is the upper half
 * of a float32, so widening one is exact: a shift or a mask (bf16_rows.h's layout makes
 * that shuffle-free).
 *
 * The order of the sums is fixed, so every tier gives the same bits (tests check it): row
 * i's k run over 32 lanes, lane j taking every k = j (mod 32) below D32 = D - D % 32 in k
 * order, acc = fma(w, x, acc) (one rounding each); then each k = D32 + j of the tail into
 * lane j the same way; then the lanes are added as a tree (lane j + 16, + 8, + 4, + 2,
 * + 1) and the sum added to y[i]. AVX2 holds a row's lanes in four ymm registers (two rows
 * at a time), AVX-512 in two zmm (four rows at a time); the scalar and NEON tiers run the
 * plain C loop (NEON by FMADD; the x86 scalar tier by an exact emulation of FMA, slow:
 * the readable statement rather than a fast path).
 *
 * Template over TIER(name): tiers.h includes it in every tier's region, with
 * CR_GEMV_BF16_AVX2 or CR_GEMV_BF16_AVX512 defined in those two; no include guard.
 * Nothing here allocates or can fail.
 */

/* One fused multiply-add, rounded once, on every tier: the FMA instruction where the
 * region has it (x86 AVX2/AVX-512: by intrinsic, so no C library is involved; arm64:
 * fmaf is its FMADD), else exactly emulated (bf16_rows.h). */
#if defined(CR_GEMV_BF16_AVX2) || defined(CR_GEMV_BF16_AVX512)
#define CR_FMA1(w, x, acc) _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(w), _mm_set_ss(x), _mm_set_ss(acc)))
#elif CR_ARM64
#define CR_FMA1(w, x, acc) fmaf(w, x, acc)
#else
#define CR_FMA1(w, x, acc) cr_fmaf_exact(w, x, acc)
#endif

/* The tail (k >= D32) into the lanes, the tree, the sum into *y: one copy per tier of
 * the same C, so the order cannot differ between tiers. */
static inline void TIER(cr_gemv_bf16_finish)(float *l, idx_t D32, idx_t D, const uint16_t *w,
                                             const float *x, float *y)
{
    for (idx_t k = D32; k < D; k++) l[k - D32] = CR_FMA1(cr_bf16_f32(w[k]), x[k], l[k - D32]);
    for (int h = 16; h >= 1; h /= 2)
        for (int j = 0; j < h; j++) l[j] += l[j + h];
    *y += l[0];
}

#if defined(CR_GEMV_BF16_AVX512)

/* A row's 32 lanes: lo = lanes 0-15 (low halves of 16 pairs), hi = lanes 16-31. */
#define CR_LO16(v) _mm512_castsi512_ps(_mm512_slli_epi32(v, 16))
#define CR_HI16(v) _mm512_castsi512_ps(_mm512_and_si512(v, mask))

/* The 8 lanes t (a row's lanes after the tree's first two levels) down to one, in the
 * tree's order; shared with the AVX2 tier's copy below (the same source per region). */
static inline float TIER(cr_tree8)(__m256 t)
{
    __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)); /* + 4 */
    u = _mm_add_ps(u, _mm_movehl_ps(u, u));                                        /* + 2 */
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));                       /* + 1 */
}

/* A row's 32 lanes (a: 0-15, b: 16-31) into *y, as TIER(cr_gemv_bf16_finish) would. */
static inline void TIER(cr_row512)(__m512 a, __m512 b, float *l, idx_t D32, idx_t D,
                                   const uint16_t *w, const float *x, float *y)
{
    if (D32 == D) {          /* no tail: the tree in registers */
        __m512 s = _mm512_add_ps(a, b);                                            /* + 16 */
        __m256 t = _mm256_add_ps(_mm512_castps512_ps256(s),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
        *y += TIER(cr_tree8)(t);
    } else {
        _mm512_storeu_ps(l, a); _mm512_storeu_ps(l + 16, b);
        TIER(cr_gemv_bf16_finish)(l, D32, D, w, x, y);
    }
}

static void TIER(cr_gemv_bf16)(idx_t M, idx_t D, const uint16_t *W, const float *x, float *y)
{
    const idx_t D32 = D - D % 32;
    const __m512i mask = _mm512_set1_epi32((int)0xffff0000u);
    float l[32];
    idx_t i = 0;
    for (; i + 4 <= M; i += 4) {        /* 4 rows share each load of x */
        const uint16_t *w0 = W + i * D, *w1 = w0 + D, *w2 = w1 + D, *w3 = w2 + D;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        __m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (idx_t k = 0; k < D32; k += 32) {
            __m512 xa = _mm512_loadu_ps(x + k), xb = _mm512_loadu_ps(x + k + 16);
            __m512i v0 = _mm512_loadu_si512((const void *)(w0 + k));
            __m512i v1 = _mm512_loadu_si512((const void *)(w1 + k));
            __m512i v2 = _mm512_loadu_si512((const void *)(w2 + k));
            __m512i v3 = _mm512_loadu_si512((const void *)(w3 + k));
            a0 = _mm512_fmadd_ps(CR_LO16(v0), xa, a0); b0 = _mm512_fmadd_ps(CR_HI16(v0), xb, b0);
            a1 = _mm512_fmadd_ps(CR_LO16(v1), xa, a1); b1 = _mm512_fmadd_ps(CR_HI16(v1), xb, b1);
            a2 = _mm512_fmadd_ps(CR_LO16(v2), xa, a2); b2 = _mm512_fmadd_ps(CR_HI16(v2), xb, b2);
            a3 = _mm512_fmadd_ps(CR_LO16(v3), xa, a3); b3 = _mm512_fmadd_ps(CR_HI16(v3), xb, b3);
        }
        TIER(cr_row512)(a0, b0, l, D32, D, w0, x, y + i);
        TIER(cr_row512)(a1, b1, l, D32, D, w1, x, y + i + 1);
        TIER(cr_row512)(a2, b2, l, D32, D, w2, x, y + i + 2);
        TIER(cr_row512)(a3, b3, l, D32, D, w3, x, y + i + 3);
    }
    for (; i < M; i++) {
        const uint16_t *w0 = W + i * D;
        __m512 a0 = _mm512_setzero_ps(), b0 = a0;
        for (idx_t k = 0; k < D32; k += 32) {
            __m512i v0 = _mm512_loadu_si512((const void *)(w0 + k));
            a0 = _mm512_fmadd_ps(CR_LO16(v0), _mm512_loadu_ps(x + k), a0);
            b0 = _mm512_fmadd_ps(CR_HI16(v0), _mm512_loadu_ps(x + k + 16), b0);
        }
        TIER(cr_row512)(a0, b0, l, D32, D, w0, x, y + i);
    }
}
#undef CR_LO16
#undef CR_HI16

#elif defined(CR_GEMV_BF16_AVX2)

/* 8 pairs v: their low halves (lanes j) and high halves (lanes 16 + j) as float32. */
#define CR_LO8(v) _mm256_castsi256_ps(_mm256_slli_epi32(v, 16))
#define CR_HI8(v) _mm256_castsi256_ps(_mm256_and_si256(v, mask))

/* The 8 lanes t (a row's lanes after the tree's first two levels) down to one, in the
 * tree's order. */
static inline float TIER(cr_tree8)(__m256 t)
{
    __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)); /* + 4 */
    u = _mm_add_ps(u, _mm_movehl_ps(u, u));                                        /* + 2 */
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));                       /* + 1 */
}

/* A row's 32 lanes (a: 0-7, b: 8-15, c: 16-23, d: 24-31) into *y, as
 * TIER(cr_gemv_bf16_finish) would. */
static inline void TIER(cr_row256)(__m256 a, __m256 b, __m256 c, __m256 d, float *l,
                                   idx_t D32, idx_t D, const uint16_t *w, const float *x,
                                   float *y)
{
    if (D32 == D) {          /* no tail: the tree in registers; + 16, then + 8 */
        *y += TIER(cr_tree8)(_mm256_add_ps(_mm256_add_ps(a, c), _mm256_add_ps(b, d)));
    } else {
        _mm256_storeu_ps(l, a); _mm256_storeu_ps(l + 8, b);
        _mm256_storeu_ps(l + 16, c); _mm256_storeu_ps(l + 24, d);
        TIER(cr_gemv_bf16_finish)(l, D32, D, w, x, y);
    }
}

static void TIER(cr_gemv_bf16)(idx_t M, idx_t D, const uint16_t *W, const float *x, float *y)
{
    const idx_t D32 = D - D % 32;
    const __m256i mask = _mm256_set1_epi32((int)0xffff0000u);
    float l[32];
    idx_t i = 0;
    /* 2 rows share each load of x; row r's lanes 0-7, 8-15, 16-23, 24-31 in a, b, c, d */
    for (; i + 2 <= M; i += 2) {
        const uint16_t *w0 = W + i * D, *w1 = w0 + D;
        __m256 a0 = _mm256_setzero_ps(), b0 = a0, c0 = a0, d0 = a0;
        __m256 a1 = a0, b1 = a0, c1 = a0, d1 = a0;
        for (idx_t k = 0; k < D32; k += 32) {
            __m256 xa = _mm256_loadu_ps(x + k), xb = _mm256_loadu_ps(x + k + 8);
            __m256 xc = _mm256_loadu_ps(x + k + 16), xd = _mm256_loadu_ps(x + k + 24);
            __m256i u0 = _mm256_loadu_si256((const __m256i *)(w0 + k));       /* pairs 0-7 */
            __m256i v0 = _mm256_loadu_si256((const __m256i *)(w0 + k + 16));  /* pairs 8-15 */
            __m256i u1 = _mm256_loadu_si256((const __m256i *)(w1 + k));
            __m256i v1 = _mm256_loadu_si256((const __m256i *)(w1 + k + 16));
            a0 = _mm256_fmadd_ps(CR_LO8(u0), xa, a0); c0 = _mm256_fmadd_ps(CR_HI8(u0), xc, c0);
            b0 = _mm256_fmadd_ps(CR_LO8(v0), xb, b0); d0 = _mm256_fmadd_ps(CR_HI8(v0), xd, d0);
            a1 = _mm256_fmadd_ps(CR_LO8(u1), xa, a1); c1 = _mm256_fmadd_ps(CR_HI8(u1), xc, c1);
            b1 = _mm256_fmadd_ps(CR_LO8(v1), xb, b1); d1 = _mm256_fmadd_ps(CR_HI8(v1), xd, d1);
        }
        TIER(cr_row256)(a0, b0, c0, d0, l, D32, D, w0, x, y + i);
        TIER(cr_row256)(a1, b1, c1, d1, l, D32, D, w1, x, y + i + 1);
    }
    for (; i < M; i++) {
        const uint16_t *w0 = W + i * D;
        __m256 a0 = _mm256_setzero_ps(), b0 = a0, c0 = a0, d0 = a0;
        for (idx_t k = 0; k < D32; k += 32) {
            __m256i u0 = _mm256_loadu_si256((const __m256i *)(w0 + k));
            __m256i v0 = _mm256_loadu_si256((const __m256i *)(w0 + k + 16));
            a0 = _mm256_fmadd_ps(CR_LO8(u0), _mm256_loadu_ps(x + k), a0);
            b0 = _mm256_fmadd_ps(CR_LO8(v0), _mm256_loadu_ps(x + k + 8), b0);
            c0 = _mm256_fmadd_ps(CR_HI8(u0), _mm256_loadu_ps(x + k + 16), c0);
            d0 = _mm256_fmadd_ps(CR_HI8(v0), _mm256_loadu_ps(x + k + 24), d0);
        }
        TIER(cr_row256)(a0, b0, c0, d0, l, D32, D, w0, x, y + i);
    }
}
#undef CR_LO8
#undef CR_HI8

#else

/* Portable: the scalar and NEON tiers. */
static void TIER(cr_gemv_bf16)(idx_t M, idx_t D, const uint16_t *W, const float *x, float *y)
{
    const idx_t D32 = D - D % 32;
    for (idx_t i = 0; i < M; i++) {
        const uint16_t *w = W + i * D;
        float l[32];
        for (int j = 0; j < 32; j++) l[j] = 0.0f;
        for (idx_t k = 0; k < D32; k += 32)
            for (int j = 0; j < 16; j++) {
                l[j] = CR_FMA1(cr_bf16_f32(w[k + 2 * j]), x[k + j], l[j]);
                l[16 + j] = CR_FMA1(cr_bf16_f32(w[k + 2 * j + 1]), x[k + 16 + j], l[16 + j]);
            }
        TIER(cr_gemv_bf16_finish)(l, D32, D, w, x, y + i);
    }
}

#endif
#undef CR_FMA1
