/* Every ISA tier's float32 kernels and the table that picks one: compiled only where
 * the tiers live, the extension module charrnn._isa (and the C harness, which has no
 * Python). Every other extension module reaches these through charrnn._isa's capsule
 * (dispatch.h), so each tier is compiled once per build, not once per module.
 *
 * Each tier's code is compiled inside a region for its ISA (GCC: #pragma GCC target,
 * Clang: #pragma clang attribute), so one build serves every CPU; every function is
 * static, so no linker can ever hand an AVX-512 copy to a baseline caller. MSVC has no
 * such regions: its intrinsics need none (the micro-kernels keep their width), while its
 * auto-vectorised loops stay SSE2 in every tier.
 *
 * Included by dispatch.h after cr_kernels is declared; not on its own.
 */
#ifndef CHARRNN_TIERS_H
#define CHARRNN_TIERS_H

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

/* A tier without a native bf16 micro-kernel (its table's bf16_native). */
#define CR_NO_BF16 { 0, 0, NULL, NULL, NULL, NULL }

/* ---- scalar: baseline flags ------------------------------------------------------- */
#define TIER(name) name##_scalar
#include "tier_impl.h"
#include "ukernel_bf16.h"
#include "gemv_bf16.h"
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
#include "ukernel_bf16.h"
#define CR_GEMV_BF16_AVX2 1
#include "gemv_bf16.h"
#undef CR_GEMV_BF16_AVX2
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
#include "ukernel_bf16.h"
#define CR_GEMV_BF16_AVX512 1
#include "gemv_bf16.h"
#undef CR_GEMV_BF16_AVX512
#undef TIER
#include "ukernel_avx512.h"
#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
/* The AVX512_BF16 micro-kernel, in a region of its own that adds AVX512_BF16 to the
 * tier's features (so nothing else of the tier can use it), run only where cpu.h finds
 * it. GCC >= 10 and Clang >= 9 have the target and the intrinsics; MSVC and
 * CHARRNN_NO_BF16 builds have no native bf16 kernel on x86. */
#if !defined(CHARRNN_NO_BF16)                                                            \
    && ((defined(__clang__) && __clang_major__ >= (defined(__apple_build_version__) ? 12 : 9)) \
        || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10))
#define CR_BUILD_AVX512_BF16 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,avx2,fma")
#endif
#include "ukernel_avx512_bf16.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
/* AMX (gemm_amx_bf16.h), in a region that adds AMX-TILE and AMX-BF16 as well, run only
 * where the CPU, the OS and its leave allow (cr_amx_ctl). Built for Linux only, the one
 * OS it asks for leave on (and mingw-w64's GCC 12 cannot assemble its tile loads: their
 * stride is a long, 32 bits on Windows, which GCC then uses as an address register); GCC
 * >= 11 and Clang >= 12 have the intrinsics. */
#if !defined(CHARRNN_NO_AMX) && defined(__linux__)                                       \
    && ((defined(__clang__) && __clang_major__ >= 12)                                     \
        || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define CR_BUILD_AMX 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,avx2,fma,amx-tile,amx-bf16"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,avx2,fma,amx-tile,amx-bf16")
#endif
#include "gemm_amx_bf16.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#define CR_AVX512_BF16 { CR_AVX512_BF16_MR, CR_AVX512_BF16_NR, cr_ukernel_avx512_bf16,   \
                         cr_sgemm_amx_run, cr_amx_ctl, cr_sgemm_tn_amx }
#else
#define CR_AVX512_BF16 { CR_AVX512_BF16_MR, CR_AVX512_BF16_NR, cr_ukernel_avx512_bf16,   \
                         NULL, NULL, NULL }
#endif
#else
#define CR_AVX512_BF16 CR_NO_BF16
#endif
#endif

/* ---- NEON: baseline on arm64 --------------------------------------------------------- */
#ifdef CR_BUILD_NEON
#define TIER(name) name##_neon
#include "tier_impl.h"
#include "ukernel_bf16.h"
#include "gemv_bf16.h"
#undef TIER
#include "ukernel_neon.h"
/* The BF16 micro-kernel, in a region of its own that adds BF16 to the NEON baseline (so
 * nothing else of the tier can use it), run only where cpu.h finds FEAT_BF16. GCC >= 10
 * and Clang >= 11 (Apple's >= 13) have the target; MSVC (no arm64 inline assembly) and
 * CHARRNN_NO_BF16 builds have no native bf16 kernel. */
#if !defined(CHARRNN_NO_BF16)                                                            \
    && ((defined(__clang__) && __clang_major__ >= (defined(__apple_build_version__) ? 13 : 11)) \
        || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10))
#define CR_BUILD_NEON_BF16 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("bf16"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("+bf16")
#endif
#include "ukernel_neon_bf16.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#define CR_NEON_BF16 { CR_NEON_BF16_MR, CR_NEON_BF16_NR, cr_ukernel_neon_bf16, NULL, NULL, NULL }
#else
#define CR_NEON_BF16 CR_NO_BF16
#endif
#endif

/* BF16_NATIVE: the tier's native bf16 micro-kernel ({MR, NR, kernel}), or CR_NO_BF16. */
#define CR_TIER_TABLE(T, ISA, MR, NR, SPLIT, TALL, DEFAULT, BF16_NATIVE)             \
    { ISA, #T, { MR, NR, cr_ukernel_##T, SPLIT, TALL }, DEFAULT, fill_bias_f32_##T,           \
      colsum_add_f32_##T, add_inplace_f32_##T, lstm_fwd_step_f32_##T,                 \
      lstm_bwd_step_f32_##T, gru_fwd_step_f32_##T, gru_bwd_step_f32_##T,              \
      rnn_fwd_step_f32_##T, rnn_bwd_step_f32_##T, softmax_xent_row_f32_##T,           \
      cr_weights_##T, fast_math_f32_##T,                                              \
      { CR_BF16_MR, CR_BF16_NR, cr_ukernel_bf16_##T, NULL, NULL, NULL }, BF16_NATIVE, cr_gemv_bf16_##T }

/* The scalar tier's products default to BLAS: a scalar micro-kernel cannot beat a
 * SIMD BLAS; it is there as the readable reference and for CPUs no other tier fits. */
static const cr_kernels cr_tier_scalar =
    CR_TIER_TABLE(scalar, CR_ISA_SCALAR, CR_SCALAR_MR, CR_SCALAR_NR, 0, 0, 0, CR_NO_BF16);
#ifdef CR_BUILD_AVX2
static const cr_kernels cr_tier_avx2 = CR_TIER_TABLE(avx2, CR_ISA_AVX2, CR_AVX2_MR, CR_AVX2_NR, 4, 0, 1,
                                                    CR_NO_BF16);
#endif
#ifdef CR_BUILD_AVX512
static const cr_kernels cr_tier_avx512 =
    CR_TIER_TABLE(avx512, CR_ISA_AVX512, CR_AVX512_MR, CR_AVX512_NR, 0, CR_AVX512_TALL, 1,
                  CR_AVX512_BF16);
#endif
#ifdef CR_BUILD_NEON
/* NEON by default even where SciPy's BLAS is Accelerate: it cannot be timed here; the
 * per-step products are short and wide (M = 16-64), where packing the weights once per
 * pass is what wins on every CPU measured, and Accelerate's small-M sgemm has no such
 * reuse. CHARRNN_SGEMM=blas switches. */
static const cr_kernels cr_tier_neon = CR_TIER_TABLE(neon, CR_ISA_NEON, CR_NEON_MR, CR_NEON_NR, 0, 0, 1, CR_NEON_BF16);
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

/* The tier every kernel runs on: one for the whole process, set once at import to the
 * best tier of the CPU; charrnn.isa changes it when CHARRNN_ISA or a test asks. */
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

/* What charrnn._isa exports (a capsule) to the other extension modules: where the current
 * table is, so that all of them follow one switch of tier. */
static const cr_tiers_api cr_tiers_exported = {CR_TIERS_ABI, sizeof(cr_kernels), &cr_k};
CR_UNUSED static const void *cr_tiers_api_ptr(void) { return &cr_tiers_exported; }

#endif
