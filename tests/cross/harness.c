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
 * Built natively by tests/test_c_harness.py (gcc and clang) and cross-compiled for arm64
 * and run under qemu-aarch64 by tests/cross/arm64.sh. Prints one line per failure and a
 * closing "N passed, M failed"; exit 0 only if nothing failed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

/* ---- gate math vs float64 ------------------------------------------------------------ */

static double max_diff(const float *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]);
        m = e > m ? e : m;
    }
    return m;
}

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

int main(void)
{
    int ran = 0;
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
        test_cells(tier);
        test_math(tier);
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
    printf("%d passed, %d failed\n", passed, failed);
    free(scalar_log);
    return failed == 0 && ran > 0 ? 0 : 1;
}
