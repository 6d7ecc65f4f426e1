/* The sampler's bf16 product (kernels/gemv_bf16.h) in its three forms, run on any x86
 * CPU: the portable loop, the AVX2 one, and the AVX-512 one with its intrinsics resolved
 * to SIMDe's (Debian libsimde-dev, native aliases), since no emulator here runs AVX-512.
 * Built with -mavx2 -mfma so that SIMDe's 512-bit FMA is two fused 256-bit ones (one
 * rounding per lane, as the instruction): then all three must give the same bits.
 * Every shape of a grid (rows 1-9, 16, 65; D 1-70, 96, 100, 255, 256, 512, 513): against
 * double on the rounded weights (float32 summation bound) and bit for bit against each
 * other. Prints "N passed, M failed" (tests/test_c_harness.py). */
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <immintrin.h>
#include <simde/x86/avx512.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef ptrdiff_t idx_t;
#include "bf16_rows.h"

#define TIER(name) name##_portable
#include "gemv_bf16.h"
#undef TIER
#define CR_GEMV_BF16_AVX2 1
#define TIER(name) name##_avx2
#include "gemv_bf16.h"
#undef TIER
#undef CR_GEMV_BF16_AVX2
#define CR_GEMV_BF16_AVX512 1
#define TIER(name) name##_avx512
#include "gemv_bf16.h"
#undef TIER
#undef CR_GEMV_BF16_AVX512

static unsigned long long state = 88172645463325252ull;
static float uniform(void)    /* xorshift64, in [-1, 1) */
{
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return (float)((state >> 40) / 8388608.0 - 1.0);
}

/* cr_fmaf_exact (the scalar tier's FMA) against the FMA instruction: random triples over
 * a wide range of exponents, many of them sums where the product lies far below the
 * accumulator's last bit (where a plain double sum rounds twice). */
static int check_fmaf_exact(void)
{
    int bad = 0;
    for (int i = 0; i < 2000000; i++) {
        float w = cr_bf16_round(uniform() * ldexpf(1.0f, (int)(uniform() * 20))),
              x = uniform() * ldexpf(1.0f, (int)(uniform() * 20)),
              a = uniform() * ldexpf(1.0f, (int)(uniform() * 60));
        if (i % 3 == 0)   /* a halfway point of a's float spacing, plus a tiny product */
            a = nextafterf(a, 2 * a) * 0.5f + a * 0.5f;
        float want = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(w), _mm_set_ss(x), _mm_set_ss(a)));
        float got = cr_fmaf_exact(w, x, a);
        if (memcmp(&want, &got, sizeof got) != 0 && bad++ < 5)
            printf("FAIL fma(%a, %a, %a): %a, the instruction %a\n", w, x, a, got, want);
    }
    return bad;
}

int main(void)
{
    static const int Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 65};
    static const int Ds[] = {96, 100, 255, 256, 512, 513};
    int ok = 0, bad = 0;
    for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
        for (int d = 1; d <= 70 + (int)(sizeof Ds / sizeof *Ds); d++) {
            int M = Ms[a], D = d <= 70 ? d : Ds[d - 71];
            float *W = malloc(sizeof(float) * M * D), *x = malloc(sizeof(float) * D);
            uint16_t *P = malloc(sizeof(uint16_t) * M * D);
            float y[3][65];
            for (int i = 0; i < M * D; i++) W[i] = uniform() * (i % 7 == 0 ? 100.0f : 1.0f);
            for (int k = 0; k < D; k++) x[k] = uniform();
            cr_bf16_rows_pack(M, D, W, D, P);
            for (int t = 0; t < 3; t++)
                for (int i = 0; i < M; i++) y[t][i] = 0.5f;
            cr_gemv_bf16_portable(M, D, P, x, y[0]);
            cr_gemv_bf16_avx2(M, D, P, x, y[1]);
            cr_gemv_bf16_avx512(M, D, P, x, y[2]);
            int good = 1;
            for (int i = 0; i < M; i++) {
                double want = 0.5, mag = 0.5;
                for (int k = 0; k < D; k++) {
                    double w = cr_bf16_round(W[i * D + k]);
                    want += w * x[k];
                    mag += fabs(w * x[k]);
                }
                double bound = (D / 32 + 32 + 2) * 0x1p-24 * mag;
                for (int t = 0; t < 3; t++) {
                    if (fabs(y[t][i] - want) > bound) good = 0;
                    if (memcmp(&y[t][i], &y[0][i], sizeof(float)) != 0) good = 0;
                }
            }
            if (good) ok++;
            else {
                bad++;
                printf("FAIL M=%d D=%d: portable %.9g avx2 %.9g avx512 %.9g\n", M, D,
                       y[0][0], y[1][0], y[2][0]);
            }
            free(W); free(x); free(P);
        }
    if (check_fmaf_exact()) bad++;
    else ok++;
    printf("%d passed, %d failed\n", ok, bad);
    return bad != 0;
}
