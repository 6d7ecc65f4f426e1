/* The x86 AVX512_BF16 micro-kernel (kernels/ukernel_avx512_bf16.h) run on a CPU without
 * AVX-512: the same source, its intrinsics resolved to SIMDe's portable implementations
 * (Debian libsimde-dev, native aliases) instead of the compiler's. No emulator runs
 * AVX-512 here (qemu-x86_64 7.2 stops at SIGILL), so this is how the kernel's data
 * movement (pairs, broadcasts, panels, tile edges, bias, accumulate, K = 0, odd K) is
 * tested; its speed cannot be.
 *
 * Two builds (tests/test_c_harness.py), chosen by CR_DPBF16:
 *   simde  VDPBF16PS as SIMDe 0.7.4 computes it
 *   sdm    VDPBF16PS as the Intel SDM defines it (sdm_dpbf16 below: per lane, the odd
 *          element's product added first, then the even one's, each add rounded to
 *          nearest even, subnormal inputs read as zero and subnormal results flushed);
 *          the kernel then gives exactly the bits a real AVX512_BF16 CPU should, and
 *          they are checked bit for bit against a scalar GEMM in that order.
 * Both are checked against double precision (inputs rounded, and raw: bf16's bound) and
 * against the portable bf16 kernel (ukernel_bf16.h: the even element first; a bound of
 * 1/4 of the float32 summation bound, as for Arm BFDOT in harness.c), on every shape of
 * harness.c's float32 and bf16 grids; writes only C, rows split = one call, NaN.
 *
 * And SIMDe's instruction itself against the SDM model (probe_simde), printed as one line:
 * which order of adds SIMDe's lanes follow (measured on random lanes) and whether it keeps
 * subnormals. SIMDe 0.7.4 differs from the SDM in both (see docs/internals/kernels.md):
 * built with GCC 12 or Clang 14 on x86 it rounds the two products' sum, then adds it to
 * the lane (one rounding fewer than the SDM's two adds in a row, odd element first); and
 * it keeps subnormals (it follows MXCSR, where the instruction flushes them). The probe
 * does not change the verdict of the kernel checks; tests/test_c_harness.py reads its line
 * so that the documented difference cannot go stale. Prints "N passed, M failed". */
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <immintrin.h>            /* the compiler's own vector types first, then SIMDe's */
#include <simde/x86/avx512.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgemm_bf16.h"

/* ---- VDPBF16PS as the Intel SDM defines it --------------------------------------- */

static float daz(float x) { return fpclassify(x) == FP_SUBNORMAL ? copysignf(0.0f, x) : x; }

/* One lane: acc += a.hi * b.hi, then acc += a.lo * b.lo (DAZ on every input, FTZ on each
 * result, round to nearest even: the C default). Products of two bf16 are exact. */
static float sdm_lane(float acc, uint32_t a, uint32_t b)
{
    acc = daz(acc);
    acc = daz(acc + daz(cr_bf16_hi(a)) * daz(cr_bf16_hi(b)));
    return daz(acc + daz(cr_bf16_lo(a)) * daz(cr_bf16_lo(b)));
}

static simde__m512 sdm_dpbf16(simde__m512 src, simde__m512bh a, simde__m512bh b)
{
    float s[16];
    uint32_t x[16], y[16];
    memcpy(s, &src, sizeof s);
    memcpy(x, &a, sizeof x);
    memcpy(y, &b, sizeof y);
    for (int j = 0; j < 16; j++) s[j] = sdm_lane(s[j], x[j], y[j]);
    memcpy(&src, s, sizeof s);
    return src;
}

#if defined(CR_DPBF16_SDM)
#undef _mm512_dpbf16_ps
#define _mm512_dpbf16_ps(src, a, b) sdm_dpbf16(src, a, b)
#define MODEL "sdm"
#else
#define MODEL "simde"
#endif

/* The kernels: the portable one (as every tier builds it) and the x86 one, unchanged. */
#define TIER(name) name##_portable
#include "ukernel_bf16.h"
#undef TIER
#include "ukernel_avx512_bf16.h"

static const cr_bf16_tier portable = {CR_BF16_MR, CR_BF16_NR, cr_ukernel_bf16_portable, NULL, NULL, NULL};
static const cr_bf16_tier x86 = {CR_AVX512_BF16_MR, CR_AVX512_BF16_NR, cr_ukernel_avx512_bf16, NULL,
                                  NULL, NULL};

/* ---- checks ------------------------------------------------------------------------ */

static int passed, failed, cases, same_bits_as_portable;
static double worst_vs_portable;

static void check(int ok, const char *what, double got, double limit)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s [%s]: %.3g > %.3g\n", what, MODEL, got, limit);
    }
}

static unsigned long long rng_state = 88172645463325252ULL;
static float frand(void)   /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static float *randv(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

/* B (K, N) or stored (N, K) if trans_b, packed for tier t (kind: 0 portable, 1 native) */
static float *pack(const cr_bf16_tier *t, int kind, int trans_b, ptrdiff_t K, ptrdiff_t N,
                   const float *Bs)
{
    float *Bp = malloc(cr_sgemm_bf16_packed_size_nr(K, N, t->nr) * sizeof(float));
    cr_sgemm_pack_bf16_nr(trans_b, K, N, Bs, trans_b ? K : N, Bp, t->nr, kind);
    return Bp;
}

/* The model's GEMM in plain C (CR_DPBF16_SDM): per block of CR_KC k, pairs added to a
 * zero sum in the instruction's order, the block's sum then added to C (bias first), as
 * sgemm_bf16.h's driver and the kernel's store do. */
static void sdm_gemm(int trans_a, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A,
                     const float *B, float *C, ptrdiff_t ldc, int accumulate, const float *b1,
                     const float *b2)
{
    for (ptrdiff_t i = 0; i < M; i++)
        for (ptrdiff_t j = 0; j < N; j++) {
            float c = C[i * ldc + j];
            for (ptrdiff_t pc = 0; pc < K || pc == 0; pc += CR_KC) {
                ptrdiff_t k1 = K - pc < CR_KC ? K : pc + CR_KC;
                float sum = 0.0f;
                for (ptrdiff_t k = pc; k < k1; k += 2) {
                    float a0 = trans_a ? A[k * M + i] : A[i * K + k], b0 = B[k * N + j];
                    float a1 = 0, b1_ = 0;
                    if (k + 1 < k1) {
                        a1 = trans_a ? A[(k + 1) * M + i] : A[i * K + k + 1];
                        b1_ = B[(k + 1) * N + j];
                    }
                    sum = sdm_lane(sum, cr_bf16_pair(a0, a1), cr_bf16_pair(b0, b1_));
                }
                if (pc == 0 && b1) sum = sum + (b2 ? b1[j] + b2[j] : b1[j]);
                c = pc == 0 && !accumulate ? sum : sum + c;
            }
            C[i * ldc + j] = c;
        }
}

static void test_case(int trans_a, int trans_b, int accumulate, int bias, ptrdiff_t M,
                      ptrdiff_t N, ptrdiff_t K)
{
    const ptrdiff_t ldc = N + 3, lda = trans_a ? M : K;
    float *A = randv((size_t)(M * K)), *B = randv((size_t)(K * N));
    float *b1 = randv((size_t)N), *b2 = randv((size_t)N), *C0 = randv((size_t)(M * N));
    const float *p1 = bias ? b1 : NULL, *p2 = bias ? b2 : NULL;
    float *Bs = malloc((size_t)(K * N + 1) * sizeof(float));
    for (ptrdiff_t k = 0; k < K; k++)
        for (ptrdiff_t j = 0; j < N; j++) Bs[trans_b ? j * K + k : k * N + j] = B[k * N + j];
    /* C of both kernels (and the model's) with ldc = N + 3 and a guard row */
    size_t nc = (size_t)((M + 1) * ldc);
    float *Cx = malloc(nc * sizeof(float)), *Cp = malloc(nc * sizeof(float));
    const float guard = 12345.0f;
    for (size_t i = 0; i < nc; i++) Cx[i] = guard;
    for (ptrdiff_t i = 0; i < M; i++) memcpy(Cx + i * ldc, C0 + i * N, (size_t)N * sizeof(float));
    memcpy(Cp, Cx, nc * sizeof(float));
    float *Bx = pack(&x86, 1, trans_b, K, N, Bs), *Bq = pack(&portable, 0, trans_b, K, N, Bs);
    cr_sgemm_bf16_run(&x86, trans_a, M, N, K, A, lda, Bx, Cx, ldc, accumulate, p1, p2);
    cr_sgemm_bf16_run(&portable, trans_a, M, N, K, A, lda, Bq, Cp, ldc, accumulate, p1, p2);
    char what[160];
    snprintf(what, sizeof what, "avx512_bf16 M=%td N=%td K=%td trans_a=%d trans_b=%d acc=%d "
             "bias=%d", M, N, K, trans_a, trans_b, accumulate, bias);
    /* against double: inputs rounded (float32 summation's bound), and raw (bf16's) */
    double lim_r = 0, lim_x = 0, err_r = 0, err_x = 0, vs_p = 0;
    int guard_ok = 1, same = 1;
    for (ptrdiff_t i = 0; i < M; i++)
        for (ptrdiff_t j = 0; j < N; j++) {
            double sr = 0, sx = 0, mag = 0;
            for (ptrdiff_t k = 0; k < K; k++) {
                float a = trans_a ? A[k * M + i] : A[i * K + k], b = B[k * N + j];
                sr += (double)cr_bf16_round(a) * cr_bf16_round(b);
                sx += (double)a * b;
                mag += fabs((double)a * b);
            }
            double base = (bias ? (double)b1[j] + b2[j] : 0) + (accumulate ? C0[i * N + j] : 0);
            double got = Cx[i * ldc + j], scale = fabs(sr + base) > 1 ? fabs(sr + base) : 1;
            double lr = 2e-6 * scale * sqrt((double)(K > 0 ? K : 1)), lx = lr + mag / 128;
            lim_r = lr > lim_r ? lr : lim_r;
            lim_x = lx > lim_x ? lx : lim_x;
            err_r = fabs(got - (sr + base)) > err_r ? fabs(got - (sr + base)) : err_r;
            err_x = fabs(got - (sx + base)) > err_x ? fabs(got - (sx + base)) : err_x;
            double d = fabs(got - Cp[i * ldc + j]);
            vs_p = d > vs_p ? d : vs_p;
            same &= Cx[i * ldc + j] == Cp[i * ldc + j];
        }
    for (ptrdiff_t i = 0; i <= M; i++)
        for (ptrdiff_t j = 0; j < ldc; j++)
            if (i == M || j >= N) guard_ok &= Cx[i * ldc + j] == guard;
    check(err_r <= lim_r, what, err_r, lim_r);
    char w2[200];
    snprintf(w2, sizeof w2, "%s vs unrounded inputs", what);
    check(err_x <= lim_x, w2, err_x, lim_x);
    snprintf(w2, sizeof w2, "%s vs portable", what);
    double r = lim_r > 0 ? vs_p / (lim_r / 4) : 0;
    worst_vs_portable = r > worst_vs_portable ? r : worst_vs_portable;
    check(r <= 1, w2, r, 1);
    check(guard_ok, "avx512_bf16 writes only C", 0, 0);
    cases++;
    same_bits_as_portable += same;
#if defined(CR_DPBF16_SDM)
    /* the model's bits, exactly: any lane, pair or panel mixed up shows here */
    float *Cm = malloc(nc * sizeof(float));
    for (ptrdiff_t i = 0; i < M; i++) memcpy(Cm + i * ldc, C0 + i * N, (size_t)N * sizeof(float));
    sdm_gemm(trans_a, M, N, K, A, B, Cm, ldc, accumulate, p1, p2);
    int exact = 1;
    for (ptrdiff_t i = 0; i < M; i++)
        for (ptrdiff_t j = 0; j < N; j++) exact &= Cm[i * ldc + j] == Cx[i * ldc + j];
    snprintf(w2, sizeof w2, "%s: the SDM model's bits", what);
    check(exact, w2, 0, 0);
    free(Cm);
#endif
    free(A); free(B); free(b1); free(b2); free(C0); free(Bs); free(Cx); free(Cp); free(Bx);
    free(Bq);
}

/* Rows split between two calls give one call's bits; a NaN in A reaches its row only, a
 * NaN in B its column only. */
static void test_split_and_nan(void)
{
    const ptrdiff_t M = 23, N = 29, K = 300;
    float *A = randv((size_t)(M * K)), *B = randv((size_t)(K * N));
    float *C1 = calloc((size_t)(M * N), sizeof(float)), *C2 = calloc((size_t)(M * N), sizeof(float));
    float *Bp = pack(&x86, 1, 0, K, N, B);
    cr_sgemm_bf16_run(&x86, 0, M, N, K, A, K, Bp, C1, N, 0, NULL, NULL);
    cr_sgemm_bf16_run(&x86, 0, 7, N, K, A, K, Bp, C2, N, 0, NULL, NULL);
    cr_sgemm_bf16_run(&x86, 0, M - 7, N, K, A + 7 * K, K, Bp, C2 + 7 * N, N, 0, NULL, NULL);
    check(memcmp(C1, C2, (size_t)(M * N) * sizeof(float)) == 0,
          "avx512_bf16: rows split = one call", 0, 0);
    A[5 * K + 17] = NAN;
    B[123 * N + 4] = NAN;
    free(Bp);
    Bp = pack(&x86, 1, 0, K, N, B);
    cr_sgemm_bf16_run(&x86, 0, M, N, K, A, K, Bp, C1, N, 0, NULL, NULL);
    int ok = 1;
    for (ptrdiff_t i = 0; i < M; i++)
        for (ptrdiff_t j = 0; j < N; j++) ok &= (i == 5 || j == 4) == (isnan(C1[i * N + j]) != 0);
    check(ok, "avx512_bf16: NaN propagates", 0, 0);
    free(A); free(B); free(C1); free(C2); free(Bp);
}

/* SIMDe's VDPBF16PS on random lanes (exponents spread so that adds round), against three
 * orders of the two adds; and on a subnormal product. One line: the orders it matched on
 * every lane, and whether subnormals were flushed. */
static void probe_simde(void)
{
    int n = 0, seq_even = 0, seq_odd = 0, pair_sum = 0;
    for (int rep = 0; rep < 4096; rep++) {
        float s[16], a[32], b[32];
        for (int j = 0; j < 16; j++) s[j] = frand() * 4;
        for (int j = 0; j < 32; j++) {
            a[j] = ldexpf(frand(), (int)(frand() * 12));
            b[j] = frand();
        }
        uint32_t x[16], y[16];
        for (int j = 0; j < 16; j++) {
            x[j] = cr_bf16_pair(a[2 * j], a[2 * j + 1]);
            y[j] = cr_bf16_pair(b[2 * j], b[2 * j + 1]);
        }
        simde__m512 src, r;
        simde__m512bh va, vb;
        memcpy(&src, s, sizeof s);
        memcpy(&va, x, sizeof x);
        memcpy(&vb, y, sizeof y);
        r = simde_mm512_dpbf16_ps(src, va, vb);
        float got[16];
        memcpy(got, &r, sizeof got);
        for (int j = 0; j < 16; j++, n++) {
            float p0 = cr_bf16_lo(x[j]) * cr_bf16_lo(y[j]), p1 = cr_bf16_hi(x[j]) * cr_bf16_hi(y[j]);
            volatile float e = s[j] + p0;   /* volatile: one rounding per add, no contraction */
            e = e + p1;
            volatile float o = s[j] + p1;
            o = o + p0;
            volatile float q = p0 + p1;
            q = s[j] + q;
            seq_even += got[j] == e;
            seq_odd += got[j] == o;
            pair_sum += got[j] == q;
        }
    }
    /* 2^-132 (the bf16 subnormal 0x0002) times 1.0, plus 1.0 times 0: the SDM reads the
     * subnormal as zero (and would flush the result) */
    uint32_t x[16], y[16];
    float z[16] = {0}, got[16];
    for (int j = 0; j < 16; j++) {
        x[j] = 0x3f800002u;                 /* (lo, hi) = (2^-132, 1.0) */
        y[j] = 0x00003f80u;                 /* (lo, hi) = (1.0, 0.0) */
    }
    simde__m512 src, r;
    simde__m512bh va, vb;
    memcpy(&src, z, sizeof z);
    memcpy(&va, x, sizeof x);
    memcpy(&vb, y, sizeof y);
    r = simde_mm512_dpbf16_ps(src, va, vb);
    memcpy(got, &r, sizeof got);
    int flushed = got[0] == 0.0f;
    printf("simde vdpbf16ps on %d lanes: even-then-odd %d, odd-then-even (SDM) %d, pair sum "
           "%d; subnormal input %s\n", n, seq_even, seq_odd, pair_sum,
           flushed ? "flushed" : "kept");
}

/* The shapes of harness.c's float32 grid and its bf16 grid (tile edges of 4, 8, 16 and
 * 32, K = 0, odd K, k blocks, more rows than a copied block of A). */
int main(void)
{
    static const ptrdiff_t Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 16, 17, 50};
    static const ptrdiff_t Ns[] = {1, 11, 12, 13, 16, 17, 25, 31, 32, 33, 40};
    static const ptrdiff_t Ks[] = {0, 1, 2, 3, 5, 7, 64, 257};
    for (size_t m = 0; m < sizeof Ms / sizeof *Ms; m++)
        for (size_t n = 0; n < sizeof Ns / sizeof *Ns; n++)
            for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++) {
                int v = (int)(m + n + k);
                test_case(v & 1, (v >> 1) & 1, (v >> 2) & 1, v % 3 == 0, Ms[m], Ns[n], Ks[k]);
            }
    for (ptrdiff_t m = 1; m <= 17; m++) test_case(0, 0, 1, 1, m, 33, 5);
    for (ptrdiff_t n = 1; n <= 65; n++) test_case(0, 1, 0, 1, 9, n, 5);
    for (int f = 0; f < 16; f++) test_case(f & 1, (f >> 1) & 1, (f >> 2) & 1, (f >> 3) & 1, 19, 37, 301);
    test_case(0, 1, 1, 1, 40, 48, 601);
    test_case(1, 0, 1, 1, 101, 37, 513);
    test_case(1, 1, 1, 1, 389, 37, 600);
    test_case(0, 1, 0, 1, 200, 33, 130);
    test_split_and_nan();
    probe_simde();
    printf("avx512_bf16 kernel (%s): %d cases, %d with the portable kernel's bits, largest "
           "difference from it: %.2f of its bound\n", MODEL, cases, same_bits_as_portable,
           worst_vs_portable);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && cases > 0 ? 0 : 1;
}
