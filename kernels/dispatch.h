/* Runtime dispatch: the table of function pointers, one per ISA tier, that the public
 * float32 names (cellmath.h, sgemm.h) call through.
 *
 * The tiers themselves (tiers.h) are compiled once, into charrnn._isa, which owns the
 * table of the current tier. Every other extension module is compiled with
 * CHARRNN_TIERS_IMPORTED (setup.py) and at import takes a pointer to that table from
 * charrnn._isa's capsule (cr_tiers_import): compiling every tier into every module cost
 * most of the build time, and one table means one switch of tier for the whole process.
 * Without CHARRNN_TIERS_IMPORTED (charrnn._isa, the C harness) this header compiles the
 * tiers itself. Kernels never run while the table changes: it is set from Python, with
 * the GIL held, between calls.
 */
#ifndef CHARRNN_DISPATCH_H
#define CHARRNN_DISPATCH_H

#include <math.h>

#include "cpu.h"
#include "sgemm.h"
#include "sgemm_bf16.h"
#include "bf16_rows.h"

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
    cr_bf16_tier bf16;          /* the portable bf16 micro-kernel, in this tier's region */
    cr_bf16_tier bf16_native;   /* the native one (kernel NULL: none); runs only where
                                 * cr_cpu_has_bf16() */
    /* batch-1 sampling on bf16 weights (gemv_bf16.h): the same bits on every tier */
    void (*gemv_bf16)(idx_t, idx_t, const uint16_t *, const float *, float *);
} cr_kernels;

/* The capsule charrnn._isa exports. abi changes whenever cr_kernels does, so that a module
 * built against another layout (a partial rebuild, CHARRNN_ONLY) fails at import instead
 * of calling through the wrong slot. */
#define CR_TIERS_ABI 4
typedef struct {
    int abi;
    size_t size;                          /* sizeof(cr_kernels) where the tiers live */
    const cr_kernels *const *current;     /* the table every kernel runs on now */
} cr_tiers_api;

#ifdef CHARRNN_TIERS_IMPORTED
#include <Python.h>

/* NULL until cr_tiers_import: the module's init runs that before any kernel can be
 * called, and fails the import if it cannot. */
static const cr_kernels *const *cr_k_shared = NULL;
#define CR_K (*cr_k_shared)

#define CR_TIERS_CAPSULE "charrnn._isa._tiers"
/* Not PyCapsule_Import: it imports only "charrnn" and then looks for an attribute _isa,
 * which a submodule not yet imported is not. */
CR_UNUSED static int cr_tiers_import(void)
{
    PyObject *mod = PyImport_ImportModule("charrnn._isa");
    if (mod == NULL) return -1;
    PyObject *cap = PyObject_GetAttrString(mod, "_tiers");
    Py_DECREF(mod);
    if (cap == NULL) return -1;
    const cr_tiers_api *api = (const cr_tiers_api *)PyCapsule_GetPointer(cap, CR_TIERS_CAPSULE);
    Py_DECREF(cap);   /* charrnn._isa keeps it, and the table, for the process's life */
    if (api == NULL) return -1;
    if (api->abi != CR_TIERS_ABI || api->size != sizeof(cr_kernels)) {
        PyErr_SetString(PyExc_ImportError, "charrnn._isa was built from other kernel sources "
                        "than this module: rebuild all of charrnn's extension modules");
        return -1;
    }
    cr_k_shared = api->current;
    return 0;
}
CR_UNUSED static int cr_isa_current(void) { return CR_K->isa; }

/* The scalar tier's single-value math, which some modules call directly (below). */
#define TIER(name) name##_scalar
#include "tier_math.h"
#undef TIER
#else
#include "tiers.h"
#define CR_K cr_k
#endif

/* ---- the public float32 names ------------------------------------------------------- */
static inline void fill_bias_f32(float *out, const float *b1, const float *b2, idx_t rows, idx_t cols)
{ CR_K->fill_bias(out, b1, b2, rows, cols); }
static inline void colsum_add_f32(float *out, float *out2, const float *A, idx_t rows, idx_t cols, idx_t ld)
{ CR_K->colsum_add(out, out2, A, rows, cols, ld); }
static inline void add_inplace_f32(float *out, const float *a, idx_t n) { CR_K->add_inplace(out, a, n); }
static inline void lstm_fwd_step_f32(float *act, const float *c_prev, float *c, float *tc, float *h,
                                     idx_t N, idx_t H)
{ CR_K->lstm_fwd(act, c_prev, c, tc, h, N, H); }
static inline void lstm_bwd_step_f32(const float *act, const float *c_prev, const float *tc,
                                     const float *dy, const float *dh_next, float *dc, float *dact,
                                     idx_t N, idx_t H)
{ CR_K->lstm_bwd(act, c_prev, tc, dy, dh_next, dc, dact, N, H); }
static inline void gru_fwd_step_f32(float *act, const float *gh, float *ghn, const float *h_prev,
                                    float *h, idx_t N, idx_t H)
{ CR_K->gru_fwd(act, gh, ghn, h_prev, h, N, H); }
static inline void gru_bwd_step_f32(const float *act, const float *ghn, const float *h_prev,
                                    const float *dy, const float *dh_next, float *dgx, float *dgh,
                                    float *dh_prev, idx_t N, idx_t H)
{ CR_K->gru_bwd(act, ghn, h_prev, dy, dh_next, dgx, dgh, dh_prev, N, H); }
static inline void rnn_fwd_step_f32(const float *pre, float *h, idx_t NH) { CR_K->rnn_fwd(pre, h, NH); }
static inline void rnn_bwd_step_f32(const float *h, const float *dy, const float *dh_next, float *da,
                                    idx_t NH)
{ CR_K->rnn_bwd(h, dy, dh_next, da, NH); }
static inline double softmax_xent_row_f32(float *row, idx_t V, idx_t target, float scale)
{ return CR_K->softmax_xent_row(row, V, target, scale); }
static inline void cr_weights(float *w, const float *z, float m, float inv_temp, idx_t V)
{ CR_K->weights(w, z, m, inv_temp, V); }
static inline void fast_math_f32_tier(const float *x, float *e, float *s, float *t, idx_t n)
{ CR_K->fast_math(x, e, s, t, n); }

/* The scalar tier's math for single values (tests, the sampler's edge cases). */
static inline float cr_expf(float x) { return cr_expf_scalar(x); }
static inline float cr_sigmoidf(float x) { return cr_sigmoidf_scalar(x); }
static inline float cr_tanhf(float x) { return cr_tanhf_scalar(x); }

/* y (M) += W (M, D) @ x, W bf16 bits row-major (gemv_bf16.h); the same bits on every tier. */
static inline void cr_gemv_bf16(idx_t M, idx_t D, const uint16_t *W, const float *x, float *y)
{ CR_K->gemv_bf16(M, D, W, x, y); }

/* ---- the own sgemm, on the current tier's micro-kernel ------------------------------ */
static inline int cr_sgemm_nr(void) { return CR_K->gemm.nr; }
static inline int cr_sgemm_mr(void) { return CR_K->gemm.mr; }
static inline int cr_sgemm_default(void) { return CR_K->gemm_default; }
static inline size_t cr_sgemm_packed_size(ptrdiff_t K, ptrdiff_t N)
{ return cr_sgemm_packed_size_nr(K, N, CR_K->gemm.nr); }
static inline void cr_sgemm_pack(int trans_b, ptrdiff_t K, ptrdiff_t N, const float *B,
                                 ptrdiff_t ldb, float *Bp)
{ cr_sgemm_pack_nr(trans_b, K, N, B, ldb, Bp, CR_K->gemm.nr); }

/* ---- bf16 products (sgemm_bf16.h) on the current tier --------------------------------
 * A bf16 pack names its kind: 0 for the tier's portable kernel (every tier, every CPU),
 * 1 for its native one (where the tier has one and the CPU runs it). */
static inline int cr_bf16_native(void)
{ return CR_K->bf16_native.kernel != NULL && cr_cpu_has_bf16(); }
/* The kernel a pack of this kind runs on, on the current tier and CPU; NULL if none. */
static inline const cr_bf16_tier *cr_bf16_kernel(int kind)
{
    if (kind == 0) return &CR_K->bf16;
    return kind == 1 && cr_bf16_native() ? &CR_K->bf16_native : NULL;
}
/* Whether native bf16 packs run on AMX tiles (gemm_amx_bf16.h) rather than the tier's
 * micro-kernel: set < 0 asks, 0 or 1 stops or starts it (process-wide: the state lives in
 * charrnn._isa), 2 asks whether it could (used or not). 0 where the tier, the build, the
 * CPU or the OS has no AMX. */
static inline int cr_bf16_amx(int set)
{
    const cr_bf16_tier *t = &CR_K->bf16_native;
    return cr_bf16_native() && t->driver_ctl ? t->driver_ctl(set) : 0;
}
/* Floats of a bf16 pack of a (K, N) matrix for kind; 0 if this tier has no such kernel. */
static inline size_t cr_sgemm_bf16_packed_size(ptrdiff_t K, ptrdiff_t N, int kind)
{
    const cr_bf16_tier *t = cr_bf16_kernel(kind);
    return t ? cr_sgemm_bf16_packed_size_nr(K, N, t->nr) : 0;
}
/* B (or B stored (N, K) if trans_b) rounded and packed for kind: 0, or -1 (no such
 * kernel here: nothing written). */
static inline int cr_sgemm_pack_bf16(int trans_b, ptrdiff_t K, ptrdiff_t N, const float *B,
                                     ptrdiff_t ldb, float *Bp, int kind)
{
    const cr_bf16_tier *t = cr_bf16_kernel(kind);
    if (!t) return -1;
    cr_sgemm_pack_bf16_nr(trans_b, K, N, B, ldb, Bp, t->nr, kind);
    return 0;
}

/* 1 if Bp (n >= 1 floats) is a (K, N) matrix packed for the current tier: in float32
 * (cr_sgemm_pack), or in bf16 for a kernel that runs here (cr_sgemm_pack_bf16). */
static inline int cr_sgemm_packed_ok(const float *Bp, size_t n, ptrdiff_t K, ptrdiff_t N)
{
    if (cr_is_bf16_pack(Bp, n)) {
        int kind = cr_get_i32(Bp + 4);
        const cr_bf16_tier *t = cr_bf16_kernel(kind);
        return t != NULL && cr_sgemm_bf16_pack_ok(Bp, n, K, N, t->nr, kind);
    }
    return cr_sgemm_pack_ok(Bp, n, K, N, CR_K->gemm.nr);
}
/* B packed (ldb < 0) in bf16 runs the bf16 product on the kernel its pack names; a pack
 * that cannot run here (which cr_sgemm_packed_ok refuses first) gives NaN rows. */
static inline void cr_sgemm(int trans_a, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A,
                            ptrdiff_t lda, const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc,
                            int accumulate, const float *b1, const float *b2)
{
    if (ldb < 0 && cr_get_i32(B) == CR_PACK_MAGIC_BF16) {
        const cr_bf16_tier *t = cr_bf16_kernel(cr_get_i32(B + 4));
        if (t && cr_get_i32(B + 1) == t->nr) {
            if (!(t->driver && t->driver(trans_a, M, N, K, A, lda, B, C, ldc, accumulate, b1, b2)))
                cr_sgemm_bf16_run(t, trans_a, M, N, K, A, lda, B, C, ldc, accumulate, b1, b2);
        } else {
            for (ptrdiff_t i = 0; i < M; i++)
                for (ptrdiff_t j = 0; j < N; j++) C[i * ldc + j] = NAN;
        }
        return;
    }
    cr_sgemm_run(&CR_K->gemm, trans_a, M, N, K, A, lda, B, ldb, C, ldc, accumulate, b1, b2);
}
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
        cr_sgemm_tn_run(&CR_K->gemm, M, K, A, lda, o, N2 > 0 ? 2 : 1, 1, NULL, NULL, asum, asum2);
}
/* cr_sgemm_tn for the cell whose W_ih pack is Wp (NULL: none): a network in bf16 on the
 * native kernel computes its weight gradients in bf16 too where AMX runs them
 * (gemm_amx_bf16.h); everywhere else they are float32, as cr_sgemm_tn's. */
static inline void cr_sgemm_tn_for(const float *Wp, ptrdiff_t M, ptrdiff_t K, const float *A,
                                   ptrdiff_t lda, ptrdiff_t N1, const float *B1, ptrdiff_t ldb1,
                                   float *C1, ptrdiff_t ldc1, ptrdiff_t N2, const float *B2,
                                   ptrdiff_t ldb2, float *C2, ptrdiff_t ldc2, float *asum,
                                   float *asum2)
{
    const cr_bf16_tier *t = &CR_K->bf16_native;
    if (M > 0 && Wp && cr_get_i32(Wp) == CR_PACK_MAGIC_BF16 && cr_get_i32(Wp + 4) == 1
        && t->tn_driver && cr_bf16_native()) {
        cr_tn_out o[2] = {{N1, ldb1, ldc1, B1, C1}, {N2, ldb2, ldc2, B2, C2}};
        if (t->tn_driver(M, K, A, lda, o, N2 > 0 ? 2 : 1, asum, asum2))
            return;
    }
    cr_sgemm_tn(M, K, A, lda, N1, B1, ldb1, C1, ldc1, N2, B2, ldb2, C2, ldc2, asum, asum2);
}

#endif
