/* The kernels' C code on its own, without Python: every ISA tier this build and CPU have
 * against double-precision references, and every SIMD tier against the scalar tier too.
 *
 *   sgemm    every tier's micro-kernel through the shared driver, on tile edges in rows
 *            and columns, K = 0, k blocks (256), transposed A, packed and plain B,
 *            accumulate, bias; nothing written outside C
 *   cells    the float32 gate math (LSTM, GRU, RNN; forward and backward) vs the float64
 *            functions on the same inputs
 *   math     sigmoid/tanh max abs error vs libm's double; softmax cross-entropy row
 *
 * Each tier starts from the same random seed, so every tier sees the same inputs. The
 * scalar tier runs first and its float32 results are kept, in order (vs_scalar); each
 * later tier's results are compared with them at a bound tighter than the one against
 * double (the tiers differ only in FMA contraction and summation order): sgemm 1/8 of
 * it, gate math 1/4, sigmoid and tanh 8 ulps of the value (where the double bound is
 * 3e-7 absolute). A SIMD tier whose error stays inside the double bound but is not the
 * scalar tier's computation still fails. Largest difference seen, GCC and Clang on AVX2,
 * GCC on NEON under qemu: 0.36 of the bound (Clang contracts the scalar tier's gate math
 * into FMAs, 1 ulp; GCC in -std=c99 does not, and its tiers agree bit for bit there).
 *
 * Built natively by tests/test_c_harness.py (gcc and clang), cross-compiled for arm64
 * and run under qemu-aarch64 by tests/cross/arm64.sh, and for Windows x64 with mingw-w64
 * and run under Wine by tests/cross/windows.sh (which also checks the Windows calling
 * convention around every kernel: test_win64_abi). Prints one line per failure and a
 * closing "N passed, M failed"; exit 0 only if nothing failed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellmath.h"

static int passed, failed;

static void check(int ok, const char *what, const char *tier, double got, double limit)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s [%s]: %.3g > %.3g\n", what, tier, got, limit);
    }
}

#define SEED 88172645463325252ULL
static unsigned long long rng_state = SEED;
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

/* ---- the scalar tier's results, and the other tiers' against them ------------------- */

static float *scalar_log;          /* every vs_scalar result of the scalar tier, in order */
static size_t log_len, log_cap, log_pos;
static int recording;              /* 1 while the scalar tier runs */
static double worst_vs_scalar;     /* the largest err / limit seen, for the closing line */

/* Scalar tier: keep got[0..n). Other tiers: |got[i] - scalar's| <= abs + rel * |scalar's|
 * for every i (a failure prints the largest difference / bound). */
static void vs_scalar(const char *what, const char *tier, const float *got, size_t n,
                      double abs, double rel)
{
    if (recording) {
        if (log_len + n > log_cap) {
            log_cap = 2 * (log_len + n);
            scalar_log = realloc(scalar_log, log_cap * sizeof(float));
        }
        for (size_t i = 0; i < n; i++) scalar_log[log_len + i] = got[i];
        log_len += n;
        return;
    }
    char label[200];
    snprintf(label, sizeof label, "%s vs scalar", what);
    if (log_pos + n > log_len) {   /* the tiers ran different cases: a harness bug */
        check(0, label, tier, (double)(log_pos + n), (double)log_len);
        return;
    }
    double r = 0;
    for (size_t i = 0; i < n; i++) {
        double want = scalar_log[log_pos + i];
        double d = fabs((double)got[i] - want) / (abs + rel * fabs(want));
        r = d > r ? d : r;
    }
    log_pos += n;
    worst_vs_scalar = r > worst_vs_scalar ? r : worst_vs_scalar;
    check(r <= 1, label, tier, r, 1);
}

/* ---- sgemm -------------------------------------------------------------------------- */

static void test_sgemm_case(const char *tier, int trans_a, int packed, int accumulate,
                            int bias, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K)
{
    float *A = randv((size_t)(M * K)), *B = randv((size_t)(K * N));
    float *b1 = randv((size_t)N), *b2 = randv((size_t)N);
    float *C = randv((size_t)((M + 1) * N));          /* one guard row after C */
    double *want = malloc((size_t)(M * N) * sizeof(double));
    float guard = 12345.0f;
    for (ptrdiff_t j = 0; j < N; j++) C[M * N + j] = guard;
    double scale = 1.0;
    for (ptrdiff_t i = 0; i < M; i++)
        for (ptrdiff_t j = 0; j < N; j++) {
            double s = 0;
            for (ptrdiff_t k = 0; k < K; k++) {
                double a = trans_a ? A[k * M + i] : A[i * K + k];
                s += a * B[k * N + j];
            }
            if (bias) s += (double)b1[j] + b2[j];
            if (accumulate) s += C[i * N + j];
            want[i * N + j] = s;
            scale = fabs(s) > scale ? fabs(s) : scale;
        }
    float *Bp = NULL;
    if (packed) {
        Bp = malloc(cr_sgemm_packed_size(K, N) * sizeof(float));
        cr_sgemm_pack(0, K, N, B, N, Bp);
    }
    cr_sgemm(trans_a, M, N, K, A, trans_a ? M : K, packed ? Bp : B, packed ? -1 : N, C, N,
             accumulate, bias ? b1 : NULL, bias ? b2 : NULL);
    double err = 0;
    for (ptrdiff_t i = 0; i < M * N; i++) {
        double e = fabs(C[i] - want[i]);
        err = e > err ? e : err;
    }
    int guard_ok = 1;
    for (ptrdiff_t j = 0; j < N; j++) guard_ok &= C[M * N + j] == guard;
    double limit = 2e-6 * scale * sqrt((double)(K > 0 ? K : 1));
    char what[160];
    snprintf(what, sizeof what, "sgemm M=%td N=%td K=%td trans_a=%d packed=%d acc=%d bias=%d",
             M, N, K, trans_a, packed, accumulate, bias);
    check(err <= limit, what, tier, err, limit);
    check(guard_ok, "sgemm writes only C", tier, 0, 0);
    vs_scalar(what, tier, C, (size_t)(M * N), limit / 8, 0);
    free(A); free(B); free(b1); free(b2); free(C); free(want); free(Bp);
}

static void test_sgemm(const char *tier)
{
    static const ptrdiff_t Ms[] = {1, 3, 4, 5, 6, 7, 8, 9, 10, 13, 16, 17, 50};
    static const ptrdiff_t Ns[] = {1, 11, 12, 13, 16, 17, 32, 33, 40};
    static const ptrdiff_t Ks[] = {0, 1, 5, 64, 257};
    for (size_t m = 0; m < sizeof Ms / sizeof *Ms; m++)
        for (size_t n = 0; n < sizeof Ns / sizeof *Ns; n++)
            for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++) {
                int v = (int)(m + n + k);             /* vary the flags across the grid */
                test_sgemm_case(tier, v & 1, (v >> 1) & 1, (v >> 2) & 1, (v % 3) == 0,
                                Ms[m], Ns[n], Ks[k]);
            }
    /* every flag combination on one ragged shape, and a long transposed K */
    for (int f = 0; f < 16; f++)
        test_sgemm_case(tier, f & 1, (f >> 1) & 1, (f >> 2) & 1, (f >> 3) & 1, 19, 37, 300);
    test_sgemm_case(tier, 1, 1, 1, 1, 40, 48, 600);
    /* more rows than one block of A in place (64 rows at k-blocks of 256) and K past
     * CR_K_LONG; then more than two blocks of transposed A (CR_MC_T = 192) */
    for (int f = 0; f < 4; f++)
        test_sgemm_case(tier, f & 1, (f >> 1) & 1, 1, 1, 101, 37, 600);
    test_sgemm_case(tier, 1, 1, 1, 1, 389, 37, 600);      /* two full blocks and 5 rows */
    test_sgemm_case(tier, 0, 1, 0, 1, 200, 33, 130);
}

static double max_diff(const float *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]);
        m = e > m ? e : m;
    }
    return m;
}

/* ---- bf16 products (sgemm_bf16.h) --------------------------------------------------- */

/* Rounding to bfloat16: ties to even, overflow to infinity, NaN kept NaN (also a NaN
 * whose payload is all in the low 16 bits), signed zeros and subnormals kept. */
static void test_bf16_rounding(void)
{
    static const struct { uint32_t in, out; } cases[] = {
        {0x3f800000u, 0x3f80u},   /* 1.0 */
        {0x3f808000u, 0x3f80u},   /* halfway, even below: down */
        {0x3f818000u, 0x3f82u},   /* halfway, odd below: up */
        {0x3f808001u, 0x3f81u},   /* just above halfway: up */
        {0x3f807fffu, 0x3f80u},   /* just below halfway: down */
        {0xbf818000u, 0xbf82u},   /* negative: by magnitude */
        {0x7f7fffffu, 0x7f80u},   /* FLT_MAX: to infinity */
        {0x7f800000u, 0x7f80u},   /* infinity */
        {0xff800000u, 0xff80u},
        {0x80000000u, 0x8000u},   /* -0 */
        {0x00018000u, 0x0002u},   /* a subnormal, halfway, odd below: up */
        {0x7fc00000u, 0x7fc0u},   /* quiet NaN */
        {0x7f800001u, 0x7fc0u},   /* signalling NaN, payload in the low bits: still NaN */
        {0xffffffffu, 0xffffu},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        float f;
        memcpy(&f, &cases[i].in, sizeof f);
        uint32_t got = cr_bf16_bits(f);
        if (got != cases[i].out) {
            printf("  bf16(0x%08x) = 0x%04x, want 0x%04x\n", (unsigned)cases[i].in,
                   (unsigned)got, (unsigned)cases[i].out);
            ok = 0;
        }
    }
    check(ok, "bf16 rounding: nearest even, inf, NaN, -0, subnormal", "-", 0, 0);
    /* every pair element back to float32 exactly */
    uint32_t pair = cr_bf16_pair(1.5f, -2.25f);
    check(cr_bf16_lo(pair) == 1.5f && cr_bf16_hi(pair) == -2.25f, "bf16 pair round trip", "-",
          0, 0);
}

/* The bf16 GEMM's result, computed as its specification says in plain float32: inputs
 * rounded, k in pairs, each product added in k order, blocks of CR_KC summed from zero
 * and added to C (bias with the first block). The portable kernel must give these bits
 * on every tier. */
static void bf16_spec(int trans_a, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A,
                      const float *B, float *C, int accumulate, const float *b1, const float *b2)
{
    for (ptrdiff_t i = 0; i < M; i++)
        for (ptrdiff_t j = 0; j < N; j++) {
            float c = C[i * N + j];
            for (ptrdiff_t pc = 0; pc < K || pc == 0; pc += CR_KC) {
                ptrdiff_t k1 = K - pc < CR_KC ? K : pc + CR_KC;
                float sum = 0.0f;
                for (ptrdiff_t k = pc; k < k1; k++) {
                    float a = cr_bf16_round(trans_a ? A[k * M + i] : A[i * K + k]);
                    float p = a * cr_bf16_round(B[k * N + j]);    /* exact */
                    sum = sum + p;
                }
                if (pc == 0 && b1)
                    sum = sum + (b2 ? b1[j] + b2[j] : b1[j]);
                c = pc == 0 && !accumulate ? sum : sum + c;
            }
            C[i * N + j] = c;
        }
}

static int bf16_kinds_native;   /* cases the native kernels ran, over every tier */
static int bf16_cases_amx;      /* of which on AMX tiles (then again on the micro-kernel) */
static double worst_native;     /* the largest |native - portable| / bound */

/* C := bf16(op(A)) @ bf16(B) (+ C) (+ b1 + b2) through cr_sgemm on a bf16 pack of kind,
 * against double precision on the rounded inputs (float32 summation's bound), against
 * double on the raw inputs (bf16's bound: each product within 2^-7 of its exact value),
 * and bit for bit against bf16_spec (portable) or within a bound of the portable kernel
 * (native). C has ldc = N + 3 and a guard row: nothing outside C's M x N is written. */
static void test_bf16_case(const char *tier, int kind, int trans_a, int trans_b,
                           int accumulate, int bias, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K)
{
    const ptrdiff_t ldc = N + 3;
    float *A = randv((size_t)(M * K)), *B = randv((size_t)(K * N));
    float *b1 = randv((size_t)N), *b2 = randv((size_t)N);
    float *C0 = randv((size_t)(M * N));
    float *C = malloc((size_t)((M + 1) * ldc) * sizeof(float));
    const float guard = 12345.0f;
    for (ptrdiff_t i = 0; i < (M + 1) * ldc; i++) C[i] = guard;
    for (ptrdiff_t i = 0; i < M; i++) memcpy(C + i * ldc, C0 + i * N, (size_t)N * sizeof(float));
    /* B as given to the packing: (K, N), or (N, K) if trans_b */
    float *Bs = malloc((size_t)(K * N + 1) * sizeof(float));
    for (ptrdiff_t k = 0; k < K; k++)
        for (ptrdiff_t j = 0; j < N; j++) Bs[trans_b ? j * K + k : k * N + j] = B[k * N + j];
    double lim_r = 0, lim_x = 0, err_r = 0, err_x = 0;
    double *want_r = malloc((size_t)(M * N) * sizeof(double));
    double *want_x = malloc((size_t)(M * N) * sizeof(double));
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
            want_r[i * N + j] = sr + base;
            want_x[i * N + j] = sx + base;
            double scale = fabs(sr + base) > 1 ? fabs(sr + base) : 1;
            double lr = 2e-6 * scale * sqrt((double)(K > 0 ? K : 1));
            lim_r = lr > lim_r ? lr : lim_r;
            double lx = lr + 1.0 / 128 * mag;   /* bf16's unit roundoff 2^-8, twice */
            lim_x = lx > lim_x ? lx : lim_x;
        }
    size_t np = cr_sgemm_bf16_packed_size(K, N, kind);
    float *Bp = malloc(np * sizeof(float));
    check(cr_sgemm_pack_bf16(trans_b, K, N, Bs, trans_b ? K : N, Bp, kind) == 0
          && cr_sgemm_packed_ok(Bp, np, K, N) && !cr_sgemm_packed_ok(Bp, np, K + 1, N)
          && !cr_sgemm_packed_ok(Bp, np - 1, K, N), "bf16 pack accepted for its own shape only",
          tier, 0, 0);
    cr_sgemm(trans_a, M, N, K, A, trans_a ? M : K, Bp, -1, C, ldc, accumulate,
             bias ? b1 : NULL, bias ? b2 : NULL);
    int guard_ok = 1;
    float *got = malloc((size_t)(M * N + 1) * sizeof(float));
    for (ptrdiff_t i = 0; i <= M; i++)
        for (ptrdiff_t j = 0; j < ldc; j++) {
            float v = C[i * ldc + j];
            if (i < M && j < N)
                got[i * N + j] = v;
            else
                guard_ok &= v == guard;
        }
    /* (maxima as ternaries, never fmax: aarch64 GCC 12's vectoriser crashes on an fmax
     * reduction here, an internal compiler error) */
    err_r = max_diff(got, want_r, (size_t)(M * N));
    err_x = max_diff(got, want_x, (size_t)(M * N));
    char what[200];
    snprintf(what, sizeof what, "bf16 %s M=%td N=%td K=%td trans_a=%d trans_b=%d acc=%d bias=%d",
             kind ? "native" : "portable", M, N, K, trans_a, trans_b, accumulate, bias);
    check(err_r <= lim_r, what, tier, err_r, lim_r);
    char what_x[240];
    snprintf(what_x, sizeof what_x, "%s vs unrounded inputs", what);
    check(err_x <= lim_x, what_x, tier, err_x, lim_x);
    check(guard_ok, "bf16 sgemm writes only C", tier, 0, 0);
    float *spec = malloc((size_t)(M * N + 1) * sizeof(float));
    memcpy(spec, C0, (size_t)(M * N) * sizeof(float));
    bf16_spec(trans_a, M, N, K, A, B, spec, accumulate, bias ? b1 : NULL, bias ? b2 : NULL);
    if (kind == 0) {
        int same = memcmp(got, spec, (size_t)(M * N) * sizeof(float)) == 0;
        check(same, "bf16 portable: the specification's bits", tier, 0, 0);
        vs_scalar(what, tier, got, (size_t)(M * N), 1e-300, 0);   /* bit for bit */
    } else {
        bf16_kinds_native++;
        double r = 0;
        for (ptrdiff_t i = 0; i < M * N; i++) {
            double d = fabs((double)got[i] - spec[i]) / (lim_r / 4);
            r = d > r ? d : r;
        }
        worst_native = r > worst_native ? r : worst_native;
        char label[240];
        snprintf(label, sizeof label, "%s vs portable", what);
        check(r <= 1, label, tier, r, 1);
    }
    free(A); free(B); free(b1); free(b2); free(C0); free(C); free(Bs); free(want_r);
    free(want_x); free(Bp); free(got); free(spec);
}

/* Rows split between two calls (as threads split them) give the same bits as one call;
 * a NaN in A reaches its row only, a NaN in B its column only. */
static void test_bf16_split_and_nan(const char *tier, int kind)
{
    const ptrdiff_t M = 23, N = 29, K = 300;
    float *A = randv((size_t)(M * K)), *B = randv((size_t)(K * N));
    float *C1 = calloc((size_t)(M * N), sizeof(float)), *C2 = calloc((size_t)(M * N), sizeof(float));
    size_t np = cr_sgemm_bf16_packed_size(K, N, kind);
    float *Bp = malloc(np * sizeof(float));
    cr_sgemm_pack_bf16(0, K, N, B, N, Bp, kind);
    cr_sgemm(0, M, N, K, A, K, Bp, -1, C1, N, 0, NULL, NULL);
    cr_sgemm(0, 7, N, K, A, K, Bp, -1, C2, N, 0, NULL, NULL);
    cr_sgemm(0, M - 7, N, K, A + 7 * K, K, Bp, -1, C2 + 7 * N, N, 0, NULL, NULL);
    check(memcmp(C1, C2, (size_t)(M * N) * sizeof(float)) == 0,
          kind ? "bf16 native: rows split = one call" : "bf16 portable: rows split = one call",
          tier, 0, 0);
    A[5 * K + 17] = NAN;
    B[123 * N + 4] = NAN;
    cr_sgemm_pack_bf16(0, K, N, B, N, Bp, kind);
    cr_sgemm(0, M, N, K, A, K, Bp, -1, C1, N, 0, NULL, NULL);
    int ok = 1;
    for (ptrdiff_t i = 0; i < M; i++)
        for (ptrdiff_t j = 0; j < N; j++)
            ok &= (i == 5 || j == 4) == (isnan(C1[i * N + j]) != 0);
    check(ok, kind ? "bf16 native: NaN propagates" : "bf16 portable: NaN propagates", tier, 0, 0);
    free(A); free(B); free(C1); free(C2); free(Bp);
}

/* One case on the portable kernel and, where the tier has a native one on this CPU, on it
 * with the same inputs; the random stream then goes on as if only the portable kernel
 * ran, so every tier sees the same inputs in every later test (vs_scalar). */
static void test_bf16_kinds(const char *tier, int trans_a, int trans_b, int accumulate,
                            int bias, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K)
{
    unsigned long long before = rng_state;
    test_bf16_case(tier, 0, trans_a, trans_b, accumulate, bias, M, N, K);
    if (cr_bf16_kernel(1)) {
        unsigned long long after = rng_state;
        rng_state = before;
        test_bf16_case(tier, 1, trans_a, trans_b, accumulate, bias, M, N, K);
        if (cr_bf16_amx(-1)) {   /* that ran on AMX: the micro-kernel too, on the same packs */
            bf16_cases_amx++;
            rng_state = before;
            cr_bf16_amx(0);
            test_bf16_case(tier, 1, trans_a, trans_b, accumulate, bias, M, N, K);
            cr_bf16_amx(1);
        }
        rng_state = after;
    }
}

static void test_bf16(const char *tier)
{
    static const ptrdiff_t Ms[] = {1, 2, 3, 4, 5, 8, 9, 13, 17};
    static const ptrdiff_t Ns[] = {1, 11, 12, 13, 16, 17, 25, 33};
    static const ptrdiff_t Ks[] = {0, 1, 2, 3, 7, 64, 257};
    for (size_t m = 0; m < sizeof Ms / sizeof *Ms; m++)
        for (size_t n = 0; n < sizeof Ns / sizeof *Ns; n++)
            for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++) {
                int v = (int)(m + n + k);
                test_bf16_kinds(tier, v & 1, (v >> 1) & 1, (v >> 2) & 1, v % 3 == 0, Ms[m], Ns[n],
                                Ks[k]);
            }
    /* every row remainder (tiles of 4 and 8) and column remainder (panels of 12 and 16)
     * on an odd K */
    for (ptrdiff_t m = 1; m <= 17; m++) test_bf16_kinds(tier, 0, 0, 1, 1, m, 33, 5);
    for (ptrdiff_t n = 1; n <= 33; n++) test_bf16_kinds(tier, 0, 1, 0, 1, 9, n, 5);
    /* every flag on a ragged shape; k blocks (256) with an odd K past CR_K_LONG; more rows
     * than a copied block of A (CR_BF16_MC = 96) */
    for (int f = 0; f < 16; f++)
        test_bf16_kinds(tier, f & 1, (f >> 1) & 1, (f >> 2) & 1, (f >> 3) & 1, 19, 37, 301);
    test_bf16_kinds(tier, 0, 1, 1, 1, 40, 48, 601);
    test_bf16_kinds(tier, 1, 0, 1, 1, 101, 37, 513);
    test_bf16_kinds(tier, 0, 1, 0, 1, 200, 33, 130);
    /* AMX's edges: row tiles of 16 and blocks of 32 rows, chunks of 32 k */
    static const ptrdiff_t amx_M[] = {15, 16, 31, 32, 33, 47, 48, 49, 95, 96, 97};
    static const ptrdiff_t amx_K[] = {31, 32, 33, 63, 64, 65, 255, 256, 258};
    for (size_t m = 0; m < sizeof amx_M / sizeof *amx_M; m++)
        for (size_t k = 0; k < sizeof amx_K / sizeof *amx_K; k++)
            test_bf16_kinds(tier, (int)(m + k) & 1, (int)k & 1, (int)m & 1, (int)(m + k) % 3 == 0,
                            amx_M[m], 31 + (ptrdiff_t)(2 * k), amx_K[k]);
    unsigned long long before = rng_state;
    test_bf16_split_and_nan(tier, 0);
    if (cr_bf16_kernel(1)) {
        unsigned long long after = rng_state;
        rng_state = before;
        test_bf16_split_and_nan(tier, 1);
        if (cr_bf16_amx(-1)) {
            rng_state = before;
            cr_bf16_amx(0);
            test_bf16_split_and_nan(tier, 1);
            cr_bf16_amx(1);
        }
        rng_state = after;
    }
}

/* ---- gate math vs float64 ------------------------------------------------------------ */

static double *tod(const float *a, size_t n)
{
    double *d = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = a[i];
    return d;
}

static void scaled(float *a, size_t n, float s) { for (size_t i = 0; i < n; i++) a[i] *= s; }

/* cr_sgemm_tn: C1 += A^T B1 and C2 += A^T B2 from one set of copies of A (K, M), with
 * the row sums of A^T added into asum and asum2; against double precision, guard rows. */
static void test_sgemm_tn_case(const char *tier, ptrdiff_t M, ptrdiff_t N1, ptrdiff_t N2,
                               ptrdiff_t K, int sums)
{
    float *A = randv((size_t)(K * M)), *B1 = randv((size_t)(K * N1)), *B2 = randv((size_t)(K * N2));
    float *C1 = randv((size_t)((M + 1) * N1)), *C2 = randv((size_t)((M + 1) * N2 + 1));
    float *s1 = randv((size_t)M + 1), *s2 = randv((size_t)M + 1);
    double *w1 = malloc((size_t)(M * N1 + 1) * sizeof(double));
    double *w2 = malloc((size_t)(M * N2 + 1) * sizeof(double));
    double *ws1 = malloc((size_t)M * sizeof(double)), *ws2 = malloc((size_t)M * sizeof(double));
    const float guard = 12345.0f;
    for (ptrdiff_t j = 0; j < N1; j++) C1[M * N1 + j] = guard;
    for (ptrdiff_t j = 0; j < N2; j++) C2[M * N2 + j] = guard;
    s1[M] = s2[M] = guard;
    double scale = 1.0;
    for (ptrdiff_t i = 0; i < M; i++) {
        double rsum = 0;
        for (ptrdiff_t k = 0; k < K; k++) rsum += A[k * M + i];
        ws1[i] = s1[i] + rsum;
        ws2[i] = s2[i] + rsum;
        for (int o = 0; o < 2; o++) {
            ptrdiff_t N = o ? N2 : N1;
            const float *B = o ? B2 : B1;
            const float *C = o ? C2 : C1;
            for (ptrdiff_t j = 0; j < N; j++) {
                double s = C[i * N + j];
                for (ptrdiff_t k = 0; k < K; k++) s += (double)A[k * M + i] * B[k * N + j];
                (o ? w2 : w1)[i * N + j] = s;
                scale = fabs(s) > scale ? fabs(s) : scale;
            }
        }
    }
    cr_sgemm_tn(M, K, A, M, N1, B1, N1, C1, N1, N2, B2, N2, C2, N2, sums ? s1 : NULL,
                sums ? s2 : NULL);
    double e1 = max_diff(C1, w1, (size_t)(M * N1)), e2 = N2 ? max_diff(C2, w2, (size_t)(M * N2)) : 0;
    double es = sums ? fmax(max_diff(s1, ws1, (size_t)M), max_diff(s2, ws2, (size_t)M)) : 0;
    int guard_ok = s1[M] == guard && s2[M] == guard;
    for (ptrdiff_t j = 0; j < N1; j++) guard_ok &= C1[M * N1 + j] == guard;
    for (ptrdiff_t j = 0; j < N2; j++) guard_ok &= C2[M * N2 + j] == guard;
    double limit = 2e-6 * scale * sqrt((double)(K > 0 ? K : 1));
    char what[160];
    snprintf(what, sizeof what, "sgemm_tn M=%td N1=%td N2=%td K=%td sums=%d", M, N1, N2, K, sums);
    check(fmax(e1, e2) <= limit, what, tier, fmax(e1, e2), limit);
    check(es <= 2e-6 * (K + 1), "sgemm_tn row sums", tier, es, 2e-6 * (K + 1));
    check(guard_ok, "sgemm_tn writes only C1, C2 and the sums", tier, 0, 0);
    vs_scalar(what, tier, C1, (size_t)(M * N1), limit / 8, 0);
    vs_scalar(what, tier, C2, (size_t)(M * N2), limit / 8, 0);
    if (sums) {
        vs_scalar("sgemm_tn row sums", tier, s1, (size_t)M, 2e-6 * (K + 1) / 8, 0);
        vs_scalar("sgemm_tn row sums", tier, s2, (size_t)M, 2e-6 * (K + 1) / 8, 0);
    }
    free(A); free(B1); free(B2); free(C1); free(C2); free(s1); free(s2);
    free(w1); free(w2); free(ws1); free(ws2);
}

static void test_sgemm_tn(const char *tier)
{
    static const ptrdiff_t Ms[] = {1, 5, 8, 13, 97, 200, 389};   /* CR_MC_T = 192 */
    static const ptrdiff_t Ks[] = {0, 1, 70, 257, 600};
    for (size_t m = 0; m < sizeof Ms / sizeof *Ms; m++)
        for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++) {
            int v = (int)(m + k);
            test_sgemm_tn_case(tier, Ms[m], 33, v & 1 ? 17 : 0, Ks[k], (v >> 1) & 1 ? 0 : 1);
        }
    test_sgemm_tn_case(tier, 40, 64, 32, 300, 1);
}

/* cr_sgemm_tn_for on a native bf16 pack, where AMX runs it (only there: elsewhere it is
 * cr_sgemm_tn in float32, tested above): C1 += bf16(A)^T bf16(B1), C2 likewise, against
 * double on the rounded inputs; the row sums the bits of float32 cr_sgemm_tn's; guards. */
static int tn_cases_amx;

#if CR_X86   /* AMX is x86's (and GCC 12's arm64 vectoriser fails on this function: an ICE) */
static void test_sgemm_tn_bf16_case(ptrdiff_t M, ptrdiff_t N1, ptrdiff_t N2, ptrdiff_t K)
{
    float *A = randv((size_t)(K * M) + 1), *B1 = randv((size_t)(K * N1)), *B2 = randv((size_t)(K * N2) + 1);
    float *C1 = randv((size_t)((M + 1) * N1)), *C2 = randv((size_t)((M + 1) * N2) + 1);
    float *s1 = randv((size_t)M + 1), *s2 = calloc((size_t)M + 1, sizeof(float));
    float *f1 = malloc((size_t)(M + 1) * sizeof(float));
    float W[4] = {1, 2, 3, 4}, Wp[CR_PACK_HDR + 64];
    const float guard = 12345.0f;
    cr_sgemm_pack_bf16(0, 2, 2, W, 2, Wp, 1);                 /* any native pack */
    for (ptrdiff_t j = 0; j < N1; j++) C1[M * N1 + j] = guard;
    for (ptrdiff_t j = 0; j < N2; j++) C2[M * N2 + j] = guard;
    memcpy(f1, s1, (size_t)(M + 1) * sizeof(float));
    s1[M] = f1[M] = guard;
    double worst = 0, limit = 0;
    double *w1 = malloc((size_t)(M * N1 + 1) * sizeof(double));
    double *w2 = malloc((size_t)(M * N2 + 1) * sizeof(double));
    for (ptrdiff_t i = 0; i < M; i++)
        for (int o = 0; o < 2; o++) {
            ptrdiff_t N = o ? N2 : N1;
            const float *B = o ? B2 : B1, *C = o ? C2 : C1;
            for (ptrdiff_t j = 0; j < N; j++) {
                double s = C[i * N + j], mag = fabs(C[i * N + j]);
                for (ptrdiff_t k = 0; k < K; k++) {
                    double p = (double)cr_bf16_round(A[k * M + i]) * cr_bf16_round(B[k * N + j]);
                    s += p;
                    mag += fabs(p);
                }
                (o ? w2 : w1)[i * N + j] = s;
                limit = fmax(limit, 2e-7 * sqrt((double)K + 1) * mag);
            }
        }
    cr_sgemm_tn_for(Wp, M, K, A, M, N1, B1, N1, C1, N1, N2, B2, N2, C2, N2, s1, s2);
    cr_sgemm_tn(M, K, A, M, 0, B1, N1, NULL, N1, 0, NULL, 0, NULL, 0, f1, NULL);
    for (ptrdiff_t i = 0; i < M * N1; i++) worst = fmax(worst, fabs(C1[i] - w1[i]));
    for (ptrdiff_t i = 0; i < M * N2; i++) worst = fmax(worst, fabs(C2[i] - w2[i]));
    int guard_ok = s1[M] == guard, sums_ok = 1;
    for (ptrdiff_t j = 0; j < N1; j++) guard_ok &= C1[M * N1 + j] == guard;
    for (ptrdiff_t j = 0; j < N2; j++) guard_ok &= C2[M * N2 + j] == guard;
    for (ptrdiff_t i = 0; i < M; i++) sums_ok &= s1[i] == f1[i];
    char what[160];
    snprintf(what, sizeof what, "sgemm_tn bf16 (AMX) M=%td N1=%td N2=%td K=%td", M, N1, N2, K);
    check(worst <= limit + 1e-30, what, "avx512", worst, limit);
    check(sums_ok, "sgemm_tn bf16 (AMX): row sums = float32 cr_sgemm_tn's", "avx512", 0, 0);
    check(guard_ok, "sgemm_tn bf16 (AMX) writes only C1, C2 and the sums", "avx512", 0, 0);
    tn_cases_amx++;
    free(A); free(B1); free(B2); free(C1); free(C2); free(s1); free(s2); free(f1);
    free(w1); free(w2);
}

static void test_sgemm_tn_bf16(void)
{
    if (!cr_bf16_amx(-1))
        return;
    unsigned long long before = rng_state;
    static const ptrdiff_t Ms[] = {1, 15, 16, 17, 33, 97, 192, 193, 389};
    static const ptrdiff_t Ks[] = {1, 2, 31, 32, 33, 127, 128, 129, 300};
    for (size_t m = 0; m < sizeof Ms / sizeof *Ms; m++)
        for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++)
            test_sgemm_tn_bf16_case(Ms[m], 31 + (ptrdiff_t)k, (m + k) & 1 ? 17 : 0, Ks[k]);
    test_sgemm_tn_bf16_case(64, 64, 32, 1000);
    rng_state = before;
}
#else
static void test_sgemm_tn_bf16(void) {}
#endif

static void test_cells(const char *tier)
{
    const idx_t N = 5, H = 37;
    const double tol = 2e-6, tol_s = tol / 4;
    /* LSTM */
    {
        size_t G = (size_t)(4 * N * H), S = (size_t)(N * H);
        float *act = randv(G), *cp = randv(S), *c = randv(S), *tc = randv(S), *h = randv(S);
        scaled(act, G, 4.0f);
        double *actd = tod(act, G), *cpd = tod(cp, S), *cd = tod(c, S), *tcd = tod(tc, S), *hd = tod(h, S);
        lstm_fwd_step_f32(act, cp, c, tc, h, N, H);
        lstm_fwd_step_f64(actd, cpd, cd, tcd, hd, N, H);
        check(max_diff(act, actd, G) <= tol && max_diff(c, cd, S) <= tol && max_diff(h, hd, S) <= tol,
              "lstm forward", tier, max_diff(h, hd, S), tol);
        vs_scalar("lstm forward gates", tier, act, G, tol_s, 0);
        vs_scalar("lstm forward c", tier, c, S, tol_s, 0);
        vs_scalar("lstm forward h", tier, h, S, tol_s, 0);
        float *dy = randv(S), *dhn = randv(S), *dc = randv(S), *dact = randv(G);
        double *dyd = tod(dy, S), *dhnd = tod(dhn, S), *dcd = tod(dc, S), *dactd = tod(dact, G);
        double *actd2 = tod(act, G), *tcd2 = tod(tc, S);
        lstm_bwd_step_f32(act, cp, tc, dy, dhn, dc, dact, N, H);
        lstm_bwd_step_f64(actd2, cpd, tcd2, dyd, dhnd, dcd, dactd, N, H);
        check(max_diff(dact, dactd, G) <= tol && max_diff(dc, dcd, S) <= tol, "lstm backward",
              tier, max_diff(dact, dactd, G), tol);
        vs_scalar("lstm backward dgates", tier, dact, G, tol_s, 0);
        vs_scalar("lstm backward dc", tier, dc, S, tol_s, 0);
        free(act); free(cp); free(c); free(tc); free(h); free(actd); free(cpd); free(cd);
        free(tcd); free(hd); free(dy); free(dhn); free(dc); free(dact); free(dyd); free(dhnd);
        free(dcd); free(dactd); free(actd2); free(tcd2);
    }
    /* GRU */
    {
        size_t G = (size_t)(3 * N * H), S = (size_t)(N * H);
        float *act = randv(G), *gh = randv(G), *ghn = randv(S), *hp = randv(S), *h = randv(S);
        scaled(act, G, 3.0f);
        double *actd = tod(act, G), *ghd = tod(gh, G), *ghnd = tod(ghn, S), *hpd = tod(hp, S), *hd = tod(h, S);
        gru_fwd_step_f32(act, gh, ghn, hp, h, N, H);
        gru_fwd_step_f64(actd, ghd, ghnd, hpd, hd, N, H);
        check(max_diff(act, actd, G) <= tol && max_diff(h, hd, S) <= tol, "gru forward", tier,
              max_diff(h, hd, S), tol);
        vs_scalar("gru forward gates", tier, act, G, tol_s, 0);
        vs_scalar("gru forward h", tier, h, S, tol_s, 0);
        float *dy = randv(S), *dhn = randv(S), *dgx = randv(G), *dgh = randv(G), *dhp = randv(S);
        double *dyd = tod(dy, S), *dhnd = tod(dhn, S), *dgxd = tod(dgx, G), *dghd = tod(dgh, G), *dhpd = tod(dhp, S);
        double *actd2 = tod(act, G), *ghnd2 = tod(ghn, S);
        gru_bwd_step_f32(act, ghn, hp, dy, dhn, dgx, dgh, dhp, N, H);
        gru_bwd_step_f64(actd2, ghnd2, hpd, dyd, dhnd, dgxd, dghd, dhpd, N, H);
        check(max_diff(dgx, dgxd, G) <= tol && max_diff(dgh, dghd, G) <= tol
              && max_diff(dhp, dhpd, S) <= tol, "gru backward", tier, max_diff(dgx, dgxd, G), tol);
        vs_scalar("gru backward dgx", tier, dgx, G, tol_s, 0);
        vs_scalar("gru backward dgh", tier, dgh, G, tol_s, 0);
        vs_scalar("gru backward dhp", tier, dhp, S, tol_s, 0);
        free(act); free(gh); free(ghn); free(hp); free(h); free(actd); free(ghd); free(ghnd);
        free(hpd); free(hd); free(dy); free(dhn); free(dgx); free(dgh); free(dhp); free(dyd);
        free(dhnd); free(dgxd); free(dghd); free(dhpd); free(actd2); free(ghnd2);
    }
    /* RNN */
    {
        size_t S = (size_t)(N * H);
        float *pre = randv(S), *h = randv(S), *dy = randv(S), *dhn = randv(S), *da = randv(S);
        scaled(pre, S, 3.0f);
        double *pred = tod(pre, S), *hd = tod(h, S), *dyd = tod(dy, S), *dhnd = tod(dhn, S), *dad = tod(da, S);
        rnn_fwd_step_f32(pre, h, (idx_t)S);
        rnn_fwd_step_f64(pred, hd, (idx_t)S);
        check(max_diff(h, hd, S) <= tol, "rnn forward", tier, max_diff(h, hd, S), tol);
        vs_scalar("rnn forward", tier, h, S, tol_s, 0);
        double *hd2 = tod(h, S);
        rnn_bwd_step_f32(h, dy, dhn, da, (idx_t)S);
        rnn_bwd_step_f64(hd2, dyd, dhnd, dad, (idx_t)S);
        check(max_diff(da, dad, S) <= tol, "rnn backward", tier, max_diff(da, dad, S), tol);
        vs_scalar("rnn backward", tier, da, S, tol_s, 0);
        free(pre); free(h); free(dy); free(dhn); free(da); free(pred); free(hd); free(dyd);
        free(dhnd); free(dad); free(hd2);
    }
}

/* ---- fast math and softmax ---------------------------------------------------------- */

static void test_math(const char *tier)
{
    enum { n = 40001 };
    float *x = malloc(n * sizeof(float)), *e = malloc(n * sizeof(float));
    float *s = malloc(n * sizeof(float)), *t = malloc(n * sizeof(float));
    for (int i = 0; i < n; i++) x[i] = -50.0f + 100.0f * (float)i / (n - 1);
    fast_math_f32_tier(x, e, s, t, n);
    double es = 0, et = 0;
    for (int i = 0; i < n; i++) {
        double xd = x[i];
        double ds = fabs(s[i] - 1.0 / (1.0 + exp(-xd))), dt = fabs(t[i] - tanh(xd));
        es = ds > es ? ds : es;
        et = dt > et ? dt : et;
    }
    check(es <= 3e-7, "sigmoid max abs error", tier, es, 3e-7);
    check(et <= 3e-7, "tanh max abs error", tier, et, 3e-7);
    /* relative: 8 float32 ulps of the value, so near 0, where the bound against double
     * (3e-7 absolute) allows a large relative error, a tier must still be the scalar one */
    vs_scalar("sigmoid", tier, s, n, 1e-37, 8 * 1.1920929e-7);
    vs_scalar("tanh", tier, t, n, 1e-37, 8 * 1.1920929e-7);
    float nanv = NAN, ne, ns, nt;
    fast_math_f32_tier(&nanv, &ne, &ns, &nt, 1);
    check(isnan(ns) && isnan(nt), "NaN propagates", tier, 0, 0);

    const idx_t V = 67;
    float *row = randv((size_t)V);
    scaled(row, (size_t)V, 5.0f);
    double m = row[0], sum = 0;
    for (idx_t j = 1; j < V; j++) m = row[j] > m ? row[j] : m;
    for (idx_t j = 0; j < V; j++) sum += exp(row[j] - m);
    double want = log(sum) + m - row[3];
    double got = softmax_xent_row_f32(row, V, 3, 0.0f);
    check(fabs(got - want) <= 1e-5, "softmax cross-entropy", tier, fabs(got - want), 1e-5);
    float gotf = (float)got;
    vs_scalar("softmax cross-entropy", tier, &gotf, 1, 1e-5 / 8, 0);
    free(x); free(e); free(s); free(t); free(row);
}

/* ---- the Windows x64 calling convention ---------------------------------------------- */
/* Built for Windows (tests/cross/windows.sh: mingw-w64, run under Wine): every kernel a
 * tier's table holds is called through cr_win64_probe, which fills the registers the
 * Windows x64 convention makes callee-saved -- rbx, rbp, rdi, rsi, r12-r15 and xmm6-xmm15
 * (System V lets a function clobber rdi, rsi and every xmm) -- with known values, calls
 * fn(arg) and reports what they hold afterwards. A compiler keeps the convention in C by
 * itself; a kernel written in assembly for System V, or inline assembly with a missing
 * clobber, breaks it, and the caller's values then change under it without a crash. Each
 * call goes through a small thunk that passes the arguments on and has no use for those
 * registers, so what the probe sees is the kernel's doing. */
#if defined(_WIN32) && CR_X86 && defined(__GNUC__)
#define WIN64_PROBE 1
#include <stdint.h>
/* 8 general registers, then xmm6-xmm15 as two 64-bit halves each */
const uint64_t win64_canary[28] = {
    0x0123456789abcdefULL, 0x1b2b3b4b5b6b7b8bULL, 0x2c2c2c2c2c2c2c2cULL, 0x3d3e3f4041424344ULL,
    0x4a4b4c4d4e4f5051ULL, 0x5a5a5a5a5a5a5a5aULL, 0x6b6c6d6e6f707172ULL, 0x7c7d7e7f80818283ULL,
    0x3ff0000000000001ULL, 0x4000000000000002ULL, 0x4008000000000003ULL, 0x4010000000000004ULL,
    0x4014000000000005ULL, 0x4018000000000006ULL, 0x401c000000000007ULL, 0x4020000000000008ULL,
    0x4022000000000009ULL, 0x402400000000000aULL, 0x402600000000000bULL, 0x402800000000000cULL,
    0x402a00000000000dULL, 0x402c00000000000eULL, 0x402e00000000000fULL, 0x4030000000000010ULL,
    0x4031000000000011ULL, 0x4032000000000012ULL, 0x4033000000000013ULL, 0x4034000000000014ULL,
};
void cr_win64_probe(void (*fn)(void *), void *arg, uint64_t seen[28]);
/* Frame: 8 pushes and 216 bytes leave rsp 16-byte aligned at the call; [rsp, +32) is
 * fn's shadow space, [+32, +192) the caller's xmm6-xmm15, [+192] seen. */
__asm__(
    ".text\n"
    ".globl cr_win64_probe\n"
    "cr_win64_probe:\n"
    "  pushq %rbx\n  pushq %rbp\n  pushq %rdi\n  pushq %rsi\n"
    "  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  subq $216, %rsp\n"
    "  movaps %xmm6, 32(%rsp)\n  movaps %xmm7, 48(%rsp)\n  movaps %xmm8, 64(%rsp)\n"
    "  movaps %xmm9, 80(%rsp)\n  movaps %xmm10, 96(%rsp)\n  movaps %xmm11, 112(%rsp)\n"
    "  movaps %xmm12, 128(%rsp)\n  movaps %xmm13, 144(%rsp)\n  movaps %xmm14, 160(%rsp)\n"
    "  movaps %xmm15, 176(%rsp)\n"
    "  movq %r8, 192(%rsp)\n"
    "  movq %rcx, %rax\n"
    "  movq %rdx, %rcx\n"
    "  leaq win64_canary(%rip), %rdx\n"
    "  movq 0(%rdx), %rbx\n  movq 8(%rdx), %rbp\n  movq 16(%rdx), %rdi\n  movq 24(%rdx), %rsi\n"
    "  movq 32(%rdx), %r12\n  movq 40(%rdx), %r13\n  movq 48(%rdx), %r14\n  movq 56(%rdx), %r15\n"
    "  movups 64(%rdx), %xmm6\n  movups 80(%rdx), %xmm7\n  movups 96(%rdx), %xmm8\n"
    "  movups 112(%rdx), %xmm9\n  movups 128(%rdx), %xmm10\n  movups 144(%rdx), %xmm11\n"
    "  movups 160(%rdx), %xmm12\n  movups 176(%rdx), %xmm13\n  movups 192(%rdx), %xmm14\n"
    "  movups 208(%rdx), %xmm15\n"
    "  callq *%rax\n"
    "  movq 192(%rsp), %r8\n"
    "  movq %rbx, 0(%r8)\n  movq %rbp, 8(%r8)\n  movq %rdi, 16(%r8)\n  movq %rsi, 24(%r8)\n"
    "  movq %r12, 32(%r8)\n  movq %r13, 40(%r8)\n  movq %r14, 48(%r8)\n  movq %r15, 56(%r8)\n"
    "  movups %xmm6, 64(%r8)\n  movups %xmm7, 80(%r8)\n  movups %xmm8, 96(%r8)\n"
    "  movups %xmm9, 112(%r8)\n  movups %xmm10, 128(%r8)\n  movups %xmm11, 144(%r8)\n"
    "  movups %xmm12, 160(%r8)\n  movups %xmm13, 176(%r8)\n  movups %xmm14, 192(%r8)\n"
    "  movups %xmm15, 208(%r8)\n"
    "  movaps 32(%rsp), %xmm6\n  movaps 48(%rsp), %xmm7\n  movaps 64(%rsp), %xmm8\n"
    "  movaps 80(%rsp), %xmm9\n  movaps 96(%rsp), %xmm10\n  movaps 112(%rsp), %xmm11\n"
    "  movaps 128(%rsp), %xmm12\n  movaps 144(%rsp), %xmm13\n  movaps 160(%rsp), %xmm14\n"
    "  movaps 176(%rsp), %xmm15\n"
    "  addq $216, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n"
    "  popq %rsi\n  popq %rdi\n  popq %rbp\n  popq %rbx\n"
    "  ret\n");

static int win64_calls;   /* kernels called through the probe, over every tier */

static void win64_check(void (*fn)(void *), void *arg, const char *what, const char *tier)
{
    static const char *names[18] = {"rbx", "rbp", "rdi", "rsi", "r12", "r13", "r14", "r15",
                                    "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                                    "xmm12", "xmm13", "xmm14", "xmm15"};
    uint64_t seen[28];
    cr_win64_probe(fn, arg, seen);
    win64_calls++;
    for (int i = 0; i < 28; i++)
        if (seen[i] != win64_canary[i]) {
            char label[160];
            snprintf(label, sizeof label, "%s keeps %s (Windows x64 callee-saved)", what,
                     names[i < 8 ? i : 8 + (i - 8) / 2]);
            check(0, label, tier, 0, 0);
            return;
        }
    check(1, what, tier, 0, 0);
}

/* The probe's own check: a function that clobbers rsi and xmm7 as System V allows must
 * be caught. */
void win64_sysv_style(void *arg);
__asm__(
    ".text\n"
    ".globl win64_sysv_style\n"
    "win64_sysv_style:\n"
    "  xorl %esi, %esi\n"
    "  xorps %xmm7, %xmm7\n"
    "  ret\n");

static void test_win64_probe(void)
{
    uint64_t seen[28];
    cr_win64_probe(win64_sysv_style, NULL, seen);
    check(seen[3] == 0 && seen[10] == 0 && seen[11] == 0 && seen[2] == win64_canary[2]
          && seen[12] == win64_canary[12], "the probe sees rsi and xmm7 clobbered", "-", 0, 0);
}

typedef struct {
    cr_ukernel_fn fn;
    ptrdiff_t K, a_ofs[CR_MR_MAX];
    const float *A, *B, *bias;
    float *C;
    int NR, mr, nr, accumulate;
} win64_ukernel_call;

static void win64_ukernel(void *p)
{
    win64_ukernel_call *c = p;
    c->fn(c->K, c->A, c->a_ofs, 1, c->B, c->NR, c->C, c->NR, c->mr, c->nr, c->accumulate,
          c->bias);
}

typedef struct {
    cr_ukernel_bf16_fn fn;
    ptrdiff_t KP;
    const uint32_t *A, *B;
    const float *bias;
    float *C;
    int NR, mr, nr, accumulate;
} win64_bf16_call;

static void win64_bf16(void *p)
{
    win64_bf16_call *c = p;
    c->fn(c->KP, c->A, c->B, c->C, c->NR, c->mr, c->nr, c->accumulate, c->bias);
}

typedef struct { float *act, *c_prev, *c, *tc, *h, *dy, *dh, *dc, *dact, *dgh, *dhp; idx_t N, H; } win64_cells_call;
static void win64_lstm_fwd(void *p)
{
    win64_cells_call *c = p;
    cr_k->lstm_fwd(c->act, c->c_prev, c->c, c->tc, c->h, c->N, c->H);
}
static void win64_lstm_bwd(void *p)
{
    win64_cells_call *c = p;
    cr_k->lstm_bwd(c->act, c->c_prev, c->tc, c->dy, c->dh, c->dc, c->dact, c->N, c->H);
}
static void win64_gru_fwd(void *p)
{
    win64_cells_call *c = p;
    cr_k->gru_fwd(c->act, c->dact, c->c, c->c_prev, c->h, c->N, c->H);
}
static void win64_gru_bwd(void *p)
{
    win64_cells_call *c = p;
    cr_k->gru_bwd(c->act, c->c, c->c_prev, c->dy, c->dh, c->dact, c->dgh, c->dhp, c->N, c->H);
}
static void win64_softmax(void *p)
{
    win64_cells_call *c = p;
    cr_k->softmax_xent_row(c->act, c->N * c->H, 1, 1.0f);
}
static void win64_fast_math(void *p)
{
    win64_cells_call *c = p;
    cr_k->fast_math(c->act, c->c, c->tc, c->h, c->N * c->H);
}

/* Every micro-kernel of the tier (float32, bf16) at every tile height and a full and a
 * partial width, with and without accumulate and bias; then the gate math, softmax and
 * fast math. */
static void test_win64_abi(const char *tier)
{
    const cr_gemm_tier *t = &cr_k->gemm;
    const ptrdiff_t K = 37;
    float *A = randv((size_t)(CR_MR_MAX * K)), *B = randv((size_t)(K * t->nr));
    float *bias = randv(CR_NR_MAX), *C = randv((size_t)(CR_MR_MAX * CR_NR_MAX));
    int top = t->tall ? t->tall : t->mr;
    for (int mr = 1; mr <= top; mr++)
        for (int f = 0; f < 4; f++) {
            win64_ukernel_call c = {t->kernel, K, {0}, A, B, f & 1 ? bias : NULL, C, t->nr, mr,
                                    f & 2 ? t->nr : t->nr - 3, f == 3};
            for (int r = 0; r < CR_MR_MAX; r++) c.a_ofs[r] = (r < mr ? r : mr - 1) * K;
            char what[80];
            snprintf(what, sizeof what, "win64 micro-kernel mr=%d nr=%d", mr, c.nr);
            win64_check(win64_ukernel, &c, what, tier);
        }
    for (int kind = 0; kind < 2; kind++) {   /* the bf16 micro-kernels, portable and native */
        const cr_bf16_tier *b = cr_bf16_kernel(kind);
        if (!b)
            continue;
        const ptrdiff_t KP = 19;
        uint32_t *Ab = malloc((size_t)(KP * b->mr) * sizeof(uint32_t));
        uint32_t *Bb = malloc((size_t)(KP * b->nr) * sizeof(uint32_t));
        for (ptrdiff_t i = 0; i < KP * b->mr; i++) Ab[i] = cr_bf16_pair(frand(), frand());
        for (ptrdiff_t i = 0; i < KP * b->nr; i++) Bb[i] = cr_bf16_pair(frand(), frand());
        for (int mr = 1; mr <= b->mr; mr++)
            for (int f = 0; f < 4; f++) {
                win64_bf16_call c = {b->kernel, KP, Ab, Bb, f & 1 ? bias : NULL, C, b->nr, mr,
                                     f & 2 ? b->nr : b->nr - 3, f == 3};
                char what[80];
                snprintf(what, sizeof what, "win64 bf16 %s micro-kernel mr=%d nr=%d",
                         kind ? "native" : "portable", mr, c.nr);
                win64_check(win64_bf16, &c, what, tier);
            }
        free(Ab); free(Bb);
    }
    const idx_t N = 3, H = 21;
    size_t G = (size_t)(4 * N * H), S = (size_t)(N * H);
    win64_cells_call c = {randv(G), randv(S), randv(S), randv(S), randv(S), randv(S),
                          randv(S), randv(S), randv(G), randv(G), randv(S), N, H};
    win64_check(win64_lstm_fwd, &c, "win64 lstm forward", tier);
    win64_check(win64_lstm_bwd, &c, "win64 lstm backward", tier);
    win64_check(win64_gru_fwd, &c, "win64 gru forward", tier);
    win64_check(win64_gru_bwd, &c, "win64 gru backward", tier);
    win64_check(win64_softmax, &c, "win64 softmax row", tier);
    win64_check(win64_fast_math, &c, "win64 fast math", tier);
    free(c.act); free(c.c_prev); free(c.c); free(c.tc); free(c.h); free(c.dy); free(c.dh);
    free(c.dc); free(c.dact); free(c.dgh); free(c.dhp);
    free(A); free(B); free(bias); free(C);
}
#endif

/* The sampler's bf16 product (gemv_bf16.h) on a grid of shapes (tails of the 32-lane
 * blocks, odd rows): within the float32 bound of double on the rounded weights, and the
 * same bits as the scalar tier's (its sums have one fixed order on every tier). */
#define GEMV_LOG_MAX 8192
static float gemv_log[GEMV_LOG_MAX];
static size_t gemv_len, gemv_pos;

static void test_gemv_bf16(const char *tier)
{
    static const int Ms[] = {1, 2, 3, 5, 8, 13};
    static const int Ds[] = {1, 7, 16, 31, 32, 33, 64, 65, 100, 256};
    int same = 1;
    for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
        for (size_t b = 0; b < sizeof Ds / sizeof *Ds; b++) {
            int M = Ms[a], D = Ds[b];
            float *W = randv((size_t)(M * D)), *x = randv((size_t)D), y[13];
            uint16_t *P = malloc((size_t)(M * D) * sizeof(uint16_t));
            cr_bf16_rows_pack(M, D, W, D, P);
            for (int i = 0; i < M; i++) y[i] = 0.5f;
            cr_gemv_bf16(M, D, P, x, y);
            double worst = 0;
            for (int i = 0; i < M; i++) {
                double want = 0.5, mag = 0.5;
                for (int k = 0; k < D; k++) {
                    double w = cr_bf16_round(W[i * D + k]);
                    want += w * x[k];
                    mag += fabs(w * x[k]);
                }
                double lim = (D / 32 + 32 + 2) * 0x1p-24 * mag;
                if (fabs(y[i] - want) / lim > worst) worst = fabs(y[i] - want) / lim;
                if (recording && gemv_len < GEMV_LOG_MAX)
                    gemv_log[gemv_len++] = y[i];
                else if (!recording)
                    same &= gemv_pos < gemv_len && memcmp(&y[i], &gemv_log[gemv_pos++],
                                                          sizeof(float)) == 0;
            }
            char what[80];
            snprintf(what, sizeof what, "bf16 gemv M=%d D=%d vs double", M, D);
            check(worst <= 1, what, tier, worst, 1);
            free(W); free(x); free(P);
        }
    if (!recording)
        check(same && gemv_pos == gemv_len, "bf16 gemv: the scalar tier's bits", tier, 0, 0);
    gemv_pos = 0;
}

int main(void)
{
    int ran = 0;
    test_bf16_rounding();
#ifdef WIN64_PROBE
    test_win64_probe();
#endif
    /* CR_ISA_SCALAR is 0 and always runs: it goes first and records */
    for (int isa = 0; isa < CR_ISA_COUNT; isa++) {
        if (cr_isa_set(isa) != 0)
            continue;
        const char *tier = cr_isa_name(isa);
        int before = failed;
        recording = isa == CR_ISA_SCALAR;
        log_pos = 0;
        rng_state = SEED;
        unsigned ftz = cr_ftz_begin();
        test_sgemm(tier);
        test_sgemm_tn(tier);
        if (isa == CR_ISA_AVX512)
            test_sgemm_tn_bf16();
        test_bf16(tier);
        test_cells(tier);
        test_math(tier);
        test_gemv_bf16(tier);
#ifdef WIN64_PROBE
        test_win64_abi(tier);
#endif
        cr_ftz_end(ftz);
        if (!recording)   /* every scalar result was compared */
            check(log_pos == log_len, "as many results as the scalar tier", tier,
                  (double)log_pos, (double)log_len);
        printf("tier %-7s  %s\n", tier, failed == before ? "ok" : "FAILED");
        ran++;
    }
    printf("tiers run: %d (best on this CPU: %s; built with %s)\n", ran,
           cr_isa_name(cr_isa_best()), cr_compiler());
    printf("largest difference from the scalar tier: %.2f of its bound (%zu values)\n",
           worst_vs_scalar, log_len);
    printf("bf16: cpu %s; native kernel cases: %d, largest difference from the portable "
           "kernel: %.2f of its bound\n", cr_cpu_has_bf16() ? "yes" : "no", bf16_kinds_native,
           worst_native);
    printf("bf16 amx: %s; cases on AMX tiles: %d, weight-gradient cases: %d\n",
           bf16_cases_amx ? "yes" : "no", bf16_cases_amx, tn_cases_amx);
#ifdef WIN64_PROBE
    printf("windows x64: callee-saved registers kept across %d kernel calls\n", win64_calls);
#endif
    printf("%d passed, %d failed\n", passed, failed);
    free(scalar_log);
    return failed == 0 && ran > 0 ? 0 : 1;
}
