/* Runtime dispatch: every float32 kernel of every ISA tier this compiler can build, and
 * the table of function pointers that the public names (cellmath.h, sgemm.h) call.
 *
 * Each tier's code is compiled inside a region for its ISA (GCC: #pragma GCC target,
 * Clang: #pragma clang attribute), so one build serves every CPU; every function is
 * static, so no linker can ever hand an AVX-512 copy to a baseline caller. MSVC has no
 * such regions: its intrinsics need none (the micro-kernels keep their width), while its
 * auto-vectorised loops stay SSE2 in every tier.
 *
 * Each extension module that includes this has its own table, set once at import to the
 * best tier of the CPU (cr_isa_set(cr_isa_best())); charrnn.isa sets all of them
 * together when CHARRNN_ISA or a test asks for another tier. Kernels never run while the
 * table changes: it is set from Python, with the GIL held, between calls.
 */
#ifndef CHARRNN_DISPATCH_H
#define CHARRNN_DISPATCH_H

#include "cpu.h"
#include "sgemm.h"

#if CR_X86
#include <immintrin.h>
#endif
#if CR_ARM64
#include <arm_neon.h>
#endif

#if CR_X86 && !defined(CHARRNN_NO_SIMD)
#define CR_BUILD_AVX2 1
#if !defined(CHARRNN_NO_AVX512)
#define CR_BUILD_AVX512 1
#endif
#endif
#if CR_ARM64 && !defined(CHARRNN_NO_SIMD)
#define CR_BUILD_NEON 1
#endif

/* ---- scalar: baseline flags ------------------------------------------------------- */
#define TIER(name) name##_scalar
#include "tier_impl.h"
#undef TIER
#include "ukernel_scalar.h"

/* ---- AVX2 + FMA ---------------------------------------------------------------------- */
#ifdef CR_BUILD_AVX2
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define TIER(name) name##_avx2
#include "tier_impl.h"
#undef TIER
#include "ukernel_avx2.h"
#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
#endif

/* ---- AVX-512 (F, DQ, BW, VL: x86-64-v4) ---------------------------------------------- */
#ifdef CR_BUILD_AVX512
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,prefer-vector-width=512")
#endif
#define TIER(name) name##_avx512
#include "tier_impl.h"
#undef TIER
#include "ukernel_avx512.h"
#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
#endif

/* ---- NEON: baseline on arm64 --------------------------------------------------------- */
#ifdef CR_BUILD_NEON
#define TIER(name) name##_neon
#include "tier_impl.h"
#undef TIER
#include "ukernel_neon.h"
#endif

/* ---- the table ----------------------------------------------------------------------- */
typedef struct {
    int isa;
    const char *name;
    cr_gemm_tier gemm;
    int gemm_default;   /* 1: the own sgemm by default on this tier; 0: BLAS */
    void (*fill_bias)(float *, const float *, const float *, idx_t, idx_t);
    void (*colsum_add)(float *, float *, const float *, idx_t, idx_t, idx_t);
    void (*add_inplace)(float *, const float *, idx_t);
    void (*lstm_fwd)(float *, const float *, float *, float *, float *, idx_t, idx_t);
    void (*lstm_bwd)(const float *, const float *, const float *, const float *,
                     const float *, float *, float *, idx_t, idx_t);
    void (*gru_fwd)(float *, const float *, float *, const float *, float *, idx_t, idx_t);
    void (*gru_bwd)(const float *, const float *, const float *, const float *,
                    const float *, float *, float *, float *, idx_t, idx_t);
    void (*rnn_fwd)(const float *, float *, idx_t);
    void (*rnn_bwd)(const float *, const float *, const float *, float *, idx_t);
    double (*softmax_xent_row)(float *, idx_t, idx_t, float);
    void (*weights)(float *, const float *, float, float, idx_t);
    void (*fast_math)(const float *, float *, float *, float *, idx_t);
} cr_kernels;

#define CR_TIER_TABLE(T, ISA, MR, NR, SPLIT, TALL, DEFAULT)                          \
    { ISA, #T, { MR, NR, cr_ukernel_##T, SPLIT, TALL }, DEFAULT, fill_bias_f32_##T,           \
      colsum_add_f32_##T, add_inplace_f32_##T, lstm_fwd_step_f32_##T,                 \
      lstm_bwd_step_f32_##T, gru_fwd_step_f32_##T, gru_bwd_step_f32_##T,              \
      rnn_fwd_step_f32_##T, rnn_bwd_step_f32_##T, softmax_xent_row_f32_##T,           \
      cr_weights_##T, fast_math_f32_##T }

/* The scalar tier's products default to BLAS: a scalar micro-kernel cannot beat a
 * SIMD BLAS; it is there as the readable reference and for CPUs no other tier fits. */
static const cr_kernels cr_tier_scalar =
    CR_TIER_TABLE(scalar, CR_ISA_SCALAR, CR_SCALAR_MR, CR_SCALAR_NR, 0, 0, 0);
#ifdef CR_BUILD_AVX2
static const cr_kernels cr_tier_avx2 = CR_TIER_TABLE(avx2, CR_ISA_AVX2, CR_AVX2_MR, CR_AVX2_NR, 4, 0, 1);
#endif
#ifdef CR_BUILD_AVX512
static const cr_kernels cr_tier_avx512 =
    CR_TIER_TABLE(avx512, CR_ISA_AVX512, CR_AVX512_MR, CR_AVX512_NR, 0, CR_AVX512_TALL, 1);
#endif
#ifdef CR_BUILD_NEON
/* NEON by default even where SciPy's BLAS is Accelerate: it cannot be timed here; the
 * per-step products are short and wide (M = 16-64), where packing the weights once per
 * pass is what wins on every CPU measured, and Accelerate's small-M sgemm has no such
 * reuse. CHARRNN_SGEMM=blas switches. */
static const cr_kernels cr_tier_neon = CR_TIER_TABLE(neon, CR_ISA_NEON, CR_NEON_MR, CR_NEON_NR, 0, 0, 1);
#endif

static const cr_kernels *const cr_tiers[CR_ISA_COUNT] = {
    &cr_tier_scalar,
#ifdef CR_BUILD_AVX2
    &cr_tier_avx2,
#else
    NULL,
#endif
#ifdef CR_BUILD_AVX512
    &cr_tier_avx512,
#else
    NULL,
#endif
#ifdef CR_BUILD_NEON
    &cr_tier_neon,
#else
    NULL,
#endif
};

static const cr_kernels *cr_k = &cr_tier_scalar;

/* 1 if tier isa was compiled into this build. */
CR_UNUSED static int cr_isa_built(int isa) { return isa >= 0 && isa < CR_ISA_COUNT && cr_tiers[isa] != NULL; }

/* The best tier that is built and that this CPU runs. */
CR_UNUSED static int cr_isa_best(void)
{
    static const int order[] = {CR_ISA_AVX512, CR_ISA_AVX2, CR_ISA_NEON};
    for (int i = 0; i < 3; i++)
        if (cr_isa_built(order[i]) && cr_cpu_has(order[i])) return order[i];
    return CR_ISA_SCALAR;
}

/* 0: done; -1: this CPU cannot run isa; -2: not built (unknown, or another architecture). */
CR_UNUSED static int cr_isa_set(int isa)
{
    if (!cr_isa_built(isa)) return -2;
    if (!cr_cpu_has(isa)) return -1;
    cr_k = cr_tiers[isa];
    return 0;
}

CR_UNUSED static int cr_isa_current(void) { return cr_k->isa; }
CR_UNUSED static const char *cr_isa_name(int isa)
{
    static const char *names[CR_ISA_COUNT] = {"scalar", "avx2", "avx512", "neon"};
    return isa >= 0 && isa < CR_ISA_COUNT ? names[isa] : "?";
}

/* The compiler that built this module, for bug reports (charrnn info). */
#define CR_STR_(x) #x
#define CR_STR(x) CR_STR_(x)
#if defined(__clang__)
#define CR_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define CR_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#define CR_COMPILER "msvc " CR_STR(_MSC_VER)
#else
#define CR_COMPILER "unknown"
#endif
CR_UNUSED static const char *cr_compiler(void) { return CR_COMPILER; }

/* ---- the public float32 names ------------------------------------------------------- */
static inline void fill_bias_f32(float *out, const float *b1, const float *b2, idx_t rows, idx_t cols)
{ cr_k->fill_bias(out, b1, b2, rows, cols); }
static inline void colsum_add_f32(float *out, float *out2, const float *A, idx_t rows, idx_t cols, idx_t ld)
{ cr_k->colsum_add(out, out2, A, rows, cols, ld); }
static inline void add_inplace_f32(float *out, const float *a, idx_t n) { cr_k->add_inplace(out, a, n); }
static inline void lstm_fwd_step_f32(float *act, const float *c_prev, float *c, float *tc, float *h,
                                     idx_t N, idx_t H)
{ cr_k->lstm_fwd(act, c_prev, c, tc, h, N, H); }
static inline void lstm_bwd_step_f32(const float *act, const float *c_prev, const float *tc,
                                     const float *dy, const float *dh_next, float *dc, float *dact,
                                     idx_t N, idx_t H)
{ cr_k->lstm_bwd(act, c_prev, tc, dy, dh_next, dc, dact, N, H); }
static inline void gru_fwd_step_f32(float *act, const float *gh, float *ghn, const float *h_prev,
                                    float *h, idx_t N, idx_t H)
{ cr_k->gru_fwd(act, gh, ghn, h_prev, h, N, H); }
static inline void gru_bwd_step_f32(const float *act, const float *ghn, const float *h_prev,
                                    const float *dy, const float *dh_next, float *dgx, float *dgh,
                                    float *dh_prev, idx_t N, idx_t H)
{ cr_k->gru_bwd(act, ghn, h_prev, dy, dh_next, dgx, dgh, dh_prev, N, H); }
static inline void rnn_fwd_step_f32(const float *pre, float *h, idx_t NH) { cr_k->rnn_fwd(pre, h, NH); }
static inline void rnn_bwd_step_f32(const float *h, const float *dy, const float *dh_next, float *da,
                                    idx_t NH)
{ cr_k->rnn_bwd(h, dy, dh_next, da, NH); }
static inline double softmax_xent_row_f32(float *row, idx_t V, idx_t target, float scale)
{ return cr_k->softmax_xent_row(row, V, target, scale); }
static inline void cr_weights(float *w, const float *z, float m, float inv_temp, idx_t V)
{ cr_k->weights(w, z, m, inv_temp, V); }
static inline void fast_math_f32_tier(const float *x, float *e, float *s, float *t, idx_t n)
{ cr_k->fast_math(x, e, s, t, n); }

/* The scalar tier's math for single values (tests, the sampler's edge cases). */
static inline float cr_expf(float x) { return cr_expf_scalar(x); }
static inline float cr_sigmoidf(float x) { return cr_sigmoidf_scalar(x); }
static inline float cr_tanhf(float x) { return cr_tanhf_scalar(x); }

/* ---- the own sgemm, on the current tier's micro-kernel ------------------------------ */
static inline int cr_sgemm_nr(void) { return cr_k->gemm.nr; }
static inline int cr_sgemm_mr(void) { return cr_k->gemm.mr; }
static inline int cr_sgemm_default(void) { return cr_k->gemm_default; }
static inline size_t cr_sgemm_packed_size(ptrdiff_t K, ptrdiff_t N)
{ return cr_sgemm_packed_size_nr(K, N, cr_k->gemm.nr); }
static inline void cr_sgemm_pack(int trans_b, ptrdiff_t K, ptrdiff_t N, const float *B,
                                 ptrdiff_t ldb, float *Bp)
{ cr_sgemm_pack_nr(trans_b, K, N, B, ldb, Bp, cr_k->gemm.nr); }
static inline int cr_sgemm_packed_ok(const float *Bp, size_t n, ptrdiff_t K, ptrdiff_t N)
{ return cr_sgemm_pack_ok(Bp, n, K, N, cr_k->gemm.nr); }
static inline void cr_sgemm(int trans_a, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A,
                            ptrdiff_t lda, const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc,
                            int accumulate, const float *b1, const float *b2)
{ cr_sgemm_run(&cr_k->gemm, trans_a, M, N, K, A, lda, B, ldb, C, ldc, accumulate, b1, b2); }
/* The weight gradients of a cell over a whole sequence: C1 (M, N1) += A^T B1 and, if
 * N2 > 0, C2 (M, N2) += A^T B2, sharing the copies of A (stored (K, M), row stride lda);
 * asum (M, or NULL) += the row sums of A^T, asum2 (or NULL) the same (sgemm.h). */
static inline void cr_sgemm_tn(ptrdiff_t M, ptrdiff_t K, const float *A, ptrdiff_t lda,
                               ptrdiff_t N1, const float *B1, ptrdiff_t ldb1, float *C1,
                               ptrdiff_t ldc1, ptrdiff_t N2, const float *B2, ptrdiff_t ldb2,
                               float *C2, ptrdiff_t ldc2, float *asum, float *asum2)
{
    cr_tn_out o[2] = {{N1, ldb1, ldc1, B1, C1}, {N2, ldb2, ldc2, B2, C2}};
    if (M > 0)
        cr_sgemm_tn_run(&cr_k->gemm, M, K, A, lda, o, N2 > 0 ? 2 : 1, 1, NULL, NULL, asum, asum2);
}

#endif
