/* Batch-1 sampling's products, y = W x (W (M, D) row-major), with float32 weights and
 * with bf16 weights (uint16, expanded to float32 by a 16-bit shift: AVX2 has it), both
 * AVX2 + FMA, for bench/gemv_bf16.py. Four rows at a time, 8 columns per load, float32
 * sums; D a multiple of 8 (the script's shapes are). */
#include <immintrin.h>
#include <stdint.h>

__attribute__((target("avx2,fma"))) static float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 bf16 at p as 8 float32 */
#define LOAD_BF16(p) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))

#define GEMV_BODY(LOAD)                                                              \
    int64_t i = 0;                                                                   \
    for (; i + 4 <= M; i += 4) {                                                     \
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                  \
        for (int64_t k = 0; k < D; k += 8) {                                         \
            __m256 xv = _mm256_loadu_ps(x + k);                                      \
            s0 = _mm256_fmadd_ps(LOAD(W + (i + 0) * D + k), xv, s0);                 \
            s1 = _mm256_fmadd_ps(LOAD(W + (i + 1) * D + k), xv, s1);                 \
            s2 = _mm256_fmadd_ps(LOAD(W + (i + 2) * D + k), xv, s2);                 \
            s3 = _mm256_fmadd_ps(LOAD(W + (i + 3) * D + k), xv, s3);                 \
        }                                                                            \
        y[i] += hsum(s0); y[i + 1] += hsum(s1); y[i + 2] += hsum(s2); y[i + 3] += hsum(s3); \
    }                                                                                \
    for (; i < M; i++) {                                                             \
        __m256 s0 = _mm256_setzero_ps();                                             \
        for (int64_t k = 0; k < D; k += 8)                                           \
            s0 = _mm256_fmadd_ps(LOAD(W + i * D + k), _mm256_loadu_ps(x + k), s0);   \
        y[i] += hsum(s0);                                                            \
    }

__attribute__((target("avx2,fma"))) void gemv_f32(int64_t M, int64_t D, const float *W,
                                                  const float *x, float *y)
{
    GEMV_BODY(_mm256_loadu_ps)
}

__attribute__((target("avx2,fma"))) void gemv_bf16(int64_t M, int64_t D, const uint16_t *W,
                                                   const float *x, float *y)
{
    GEMV_BODY(LOAD_BF16)
}
