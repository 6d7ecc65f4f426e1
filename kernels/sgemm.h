/* charrnn's own float32 GEMM for CPUs with AVX-512, used by the cell kernels in place of
 * BLAS sgemm for the shapes of a recurrent network.
 *
 * Why not BLAS: the per-step recurrent product is a short, wide GEMM (M = batch rows,
 * 16-64) repeated T times with the same weights. A BLAS packs the weights again on every
 * call and its kernels are tuned for large square matrices; and a BLAS built for many
 * CPUs may run AVX2 kernels on an AVX-512 CPU (OpenBLAS does whenever
 * OPENBLAS_CORETYPE=Haswell is set, as on our benchmark machine). Here the weights are
 * packed once per pass (cr_sgemm_pack) and reused by every step, and the micro-kernel
 * is AVX-512: on CPUs with full-width AVX-512 units that doubles the FLOPs per cycle.
 *
 *     C (M, N) := op(A) @ B  (+ C if accumulate)  (+ b1 + b2 in every row)   all row-major
 *
 * op(A) is (M, K): A stored (M, K) with row stride lda, or (K, M) if trans_a.
 * B is (K, N) either plain row-major with row stride ldb, or packed: column panels of
 * CR_NR, each panel K rows of CR_NR floats, zero-padded past column N.
 *
 * Nothing here allocates or can fail. Each output element is one dot product summed in
 * k order, so results do not depend on how callers split M or N between threads.
 * cr_sgemm_cpu() says whether this CPU and build have the kernel; callers fall
 * back to BLAS when it does not.
 */
#ifndef CHARRNN_SGEMM_H
#define CHARRNN_SGEMM_H

#include <stddef.h>
#include <string.h>

#define CR_MR 8    /* rows of C per micro-tile: 8 x 2 accumulators of 16 floats */
#define CR_NR 32   /* columns of C per micro-tile = packed panel width */

/* Floats needed to pack a (K, N) matrix. */
static inline size_t cr_sgemm_packed_size(ptrdiff_t K, ptrdiff_t N)
{
    return (size_t)((N + CR_NR - 1) / CR_NR) * CR_NR * (size_t)K;
}

/* Pack B (K, N) for cr_sgemm. B is stored (K, N) with row stride ldb, or (N, K) if
 * trans_b (so that packing W (N, K) gives the B of x @ W^T). Bp has
 * cr_sgemm_packed_size(K, N) floats. Plain C: it runs once per pass, not per step. */
static inline void cr_sgemm_pack(int trans_b, ptrdiff_t K, ptrdiff_t N, const float *B,
                                 ptrdiff_t ldb, float *Bp)
{
    for (ptrdiff_t j0 = 0; j0 < N; j0 += CR_NR) {
        ptrdiff_t nr = N - j0 < CR_NR ? N - j0 : CR_NR;
        float *P = Bp + (j0 / CR_NR) * CR_NR * K;             /* panel: (K, CR_NR) */
        if (!trans_b) {
            for (ptrdiff_t k = 0; k < K; k++) {
                memcpy(P + k * CR_NR, B + k * ldb + j0, (size_t)nr * sizeof(float));
                memset(P + k * CR_NR + nr, 0, (size_t)(CR_NR - nr) * sizeof(float));
            }
        } else {
            for (ptrdiff_t j = 0; j < CR_NR; j++) {
                const float *src = B + (j0 + j) * ldb;        /* row j0+j of (N, K) */
                for (ptrdiff_t k = 0; k < K; k++)
                    P[k * CR_NR + j] = j < nr ? src[k] : 0.0f;
            }
        }
    }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(CHARRNN_NO_AVX512)
#define CR_HAVE_SGEMM 1
#include <immintrin.h>

#define CR_AVX512 __attribute__((target("avx512f")))

/* One micro-tile: C[0:mr, 0:nr] (+)= sum_k a_k b_k^T, where a_k is column k of the
 * tile's rows of op(A) and b_k row k of B's panel. 16 zmm accumulators; per k two
 * vector loads of B and eight broadcasts of A feed 16 FMAs.
 * Rows r >= mr read row mr-1 again (never past the end of A) and are not stored.
 * a_ofs[r]: offset of row r's element k=0 from A; a_step: from k to k+1.
 * B: b_step floats from k to k+1; b_mask: columns that exist (edge panel of plain B). */
#define CR_FMA_ROW(r)                                                      \
    {                                                                      \
        __m512 a = _mm512_set1_ps(Ak[a_ofs[r]]);                           \
        c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);                         \
        c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);                         \
    }
#define CR_STORE_ROW(r)                                                    \
    if (r < mr) {                                                          \
        float *c = C + r * ldc;                                            \
        if (bias) {                                                        \
            c##r##0 = _mm512_add_ps(c##r##0, bias0);                       \
            c##r##1 = _mm512_add_ps(c##r##1, bias1);                       \
        }                                                                  \
        if (accumulate) {                                                  \
            c##r##0 = _mm512_add_ps(c##r##0, _mm512_maskz_loadu_ps(m0, c));      \
            c##r##1 = _mm512_add_ps(c##r##1, _mm512_maskz_loadu_ps(m1, c + 16)); \
        }                                                                  \
        _mm512_mask_storeu_ps(c, m0, c##r##0);                             \
        _mm512_mask_storeu_ps(c + 16, m1, c##r##1);                        \
    }

static CR_AVX512 void cr_sgemm_tile(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                                    ptrdiff_t a_step, const float *B, ptrdiff_t b_step,
                                    int full, __mmask16 m0, __mmask16 m1,
                                    float *C, ptrdiff_t ldc, int mr, int accumulate,
                                    int bias, __m512 bias0, __m512 bias1)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00,
           c61 = c00, c70 = c00, c71 = c00;
    const float *Ak = A;
    const float *Bk = B;
    if (full) {
        for (ptrdiff_t k = 0; k < K; k++) {
            __m512 b0 = _mm512_loadu_ps(Bk), b1 = _mm512_loadu_ps(Bk + 16);
            CR_FMA_ROW(0) CR_FMA_ROW(1) CR_FMA_ROW(2) CR_FMA_ROW(3)
            CR_FMA_ROW(4) CR_FMA_ROW(5) CR_FMA_ROW(6) CR_FMA_ROW(7)
            Ak += a_step;
            Bk += b_step;
        }
    } else {
        for (ptrdiff_t k = 0; k < K; k++) {
            __m512 b0 = _mm512_maskz_loadu_ps(m0, Bk), b1 = _mm512_maskz_loadu_ps(m1, Bk + 16);
            CR_FMA_ROW(0) CR_FMA_ROW(1) CR_FMA_ROW(2) CR_FMA_ROW(3)
            CR_FMA_ROW(4) CR_FMA_ROW(5) CR_FMA_ROW(6) CR_FMA_ROW(7)
            Ak += a_step;
            Bk += b_step;
        }
    }
    CR_STORE_ROW(0) CR_STORE_ROW(1) CR_STORE_ROW(2) CR_STORE_ROW(3)
    CR_STORE_ROW(4) CR_STORE_ROW(5) CR_STORE_ROW(6) CR_STORE_ROW(7)
}

/* The same for a last tile of at most 4 rows (M = 50 or 25 leaves 2 or 1): half the work
 * of the 8-row tile instead of wasting it on copies of the last row. */
static CR_AVX512 void cr_sgemm_tile4(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                                     ptrdiff_t a_step, const float *B, ptrdiff_t b_step,
                                     int full, __mmask16 m0, __mmask16 m1,
                                     float *C, ptrdiff_t ldc, int mr, int accumulate,
                                     int bias, __m512 bias0, __m512 bias1)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00;
    const float *Ak = A;
    const float *Bk = B;
    for (ptrdiff_t k = 0; k < K; k++) {
        __m512 b0 = full ? _mm512_loadu_ps(Bk) : _mm512_maskz_loadu_ps(m0, Bk);
        __m512 b1 = full ? _mm512_loadu_ps(Bk + 16) : _mm512_maskz_loadu_ps(m1, Bk + 16);
        CR_FMA_ROW(0) CR_FMA_ROW(1) CR_FMA_ROW(2) CR_FMA_ROW(3)
        Ak += a_step;
        Bk += b_step;
    }
    CR_STORE_ROW(0) CR_STORE_ROW(1) CR_STORE_ROW(2) CR_STORE_ROW(3)
}
#undef CR_FMA_ROW
#undef CR_STORE_ROW

/* Row tiles [ib, ie) of C against every column panel of B: the panel (K x 32 floats)
 * stays in L1/L2 while the tiles stream past it. B packed (ldb < 0, Bp at k = 0 of the
 * pass) or plain with row stride ldb; a_ofs_of gives each tile's row offsets. */
static CR_AVX512 void cr_sgemm_rows(ptrdiff_t ib, ptrdiff_t ie, ptrdiff_t N, ptrdiff_t K,
                                    ptrdiff_t Kfull, const float *A, int a_packed,
                                    ptrdiff_t lda, int trans_a, const float *B, ptrdiff_t ldb,
                                    float *C, ptrdiff_t ldc, int accumulate,
                                    const float *b1, const float *b2)
{
    for (ptrdiff_t j0 = 0; j0 < N; j0 += CR_NR) {
        ptrdiff_t nr = N - j0 < CR_NR ? N - j0 : CR_NR;
        __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
        __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
        const float *Bj = ldb < 0 ? B + (j0 / CR_NR) * CR_NR * Kfull : B + j0;
        ptrdiff_t b_step = ldb < 0 ? CR_NR : ldb;
        int full = ldb < 0 || nr == CR_NR;
        /* the bias row of this panel, b1 + b2 summed as fill_bias does */
        __m512 bias0 = _mm512_setzero_ps(), bias1 = bias0;
        if (b1) {
            bias0 = _mm512_maskz_loadu_ps(m0, b1 + j0);
            bias1 = _mm512_maskz_loadu_ps(m1, b1 + j0 + 16);
            if (b2) {
                bias0 = _mm512_add_ps(bias0, _mm512_maskz_loadu_ps(m0, b2 + j0));
                bias1 = _mm512_add_ps(bias1, _mm512_maskz_loadu_ps(m1, b2 + j0 + 16));
            }
        }
        for (ptrdiff_t i0 = ib; i0 < ie; i0 += CR_MR) {
            int mr = ie - i0 < CR_MR ? (int)(ie - i0) : CR_MR;
            ptrdiff_t a_ofs[CR_MR];
            const float *Ai = A;
            for (int r = 0; r < CR_MR; r++) {
                ptrdiff_t i = i0 + (r < mr ? r : mr - 1);
                a_ofs[r] = a_packed ? r : trans_a ? i : i * lda;
            }
            if (a_packed)                       /* tiles of CR_MR rows, each (K, CR_MR) */
                Ai = A + (i0 - ib) * K;
            (mr > 4 ? cr_sgemm_tile : cr_sgemm_tile4)(
                K, Ai, a_ofs, a_packed ? CR_MR : trans_a ? lda : 1, Bj, b_step, full,
                m0, m1, C + i0 * ldc + j0, ldc, mr, accumulate, b1 != NULL, bias0, bias1);
        }
    }
}

/* The driver.
 * A not transposed: blocks of rows of A small enough to stay in L1/L2 (CR_A_BLOCK bytes)
 * outside, then cr_sgemm_rows; A is read in place.
 * A transposed (the weight gradients, K = T*N is long): in place, each k would touch a
 * new page per tile, so A is copied in blocks of CR_MC_T rows x CR_KC k into a buffer on
 * the stack (32 KB), tile-major, and k runs in blocks of CR_KC; C is accumulated block
 * by block. */
#define CR_A_BLOCK (64 * 1024)
#define CR_KC 256
#define CR_MC_T 32
static CR_AVX512 void cr_sgemm_avx512(int trans_a, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                                      const float *A, ptrdiff_t lda, const float *B,
                                      ptrdiff_t ldb, float *C, ptrdiff_t ldc, int accumulate,
                                      const float *b1, const float *b2)
{
    if (!trans_a) {
        ptrdiff_t MC = (CR_A_BLOCK / (ptrdiff_t)sizeof(float) / (K > 0 ? K : 1)) / CR_MR * CR_MR;
        MC = MC < CR_MR ? CR_MR : MC;
        for (ptrdiff_t ib = 0; ib < M; ib += MC)
            cr_sgemm_rows(ib, M - ib < MC ? M : ib + MC, N, K, K, A, 0, lda, 0, B, ldb,
                          C, ldc, accumulate, b1, b2);
        return;
    }
    float Ap[CR_MC_T * CR_KC] __attribute__((aligned(64)));
    for (ptrdiff_t pc = 0; pc < K || pc == 0; pc += CR_KC) {
        ptrdiff_t kc = K - pc < CR_KC ? K - pc : CR_KC;
        const float *Bk = ldb < 0 ? B + pc * CR_NR : B + pc * ldb;
        for (ptrdiff_t ib = 0; ib < M; ib += CR_MC_T) {
            ptrdiff_t mc = M - ib < CR_MC_T ? M - ib : CR_MC_T;
            for (ptrdiff_t t = 0; t < mc; t += CR_MR) {          /* pack: (kc, CR_MR) per tile */
                float *P = Ap + t * kc;
                for (ptrdiff_t k = 0; k < kc; k++) {
                    const float *src = A + (pc + k) * lda + ib + t;
                    for (int r = 0; r < CR_MR; r++)
                        P[k * CR_MR + r] = t + r < mc ? src[r] : 0.0f;
                }
            }
            cr_sgemm_rows(ib, ib + mc, N, kc, K, Ap, 1, 0, 1, Bk, ldb, C, ldc,
                          accumulate || pc > 0, pc == 0 ? b1 : NULL, pc == 0 ? b2 : NULL);
        }
    }
}

/* 1 if this CPU runs the AVX-512 kernel. Cached; a race only computes it twice. */
static int cr_sgemm_cpu(void)
{
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return known;
}
#else
static int cr_sgemm_cpu(void) { return 0; }   /* not built: callers use BLAS */
static void cr_sgemm_avx512(int trans_a, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                            const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                            float *C, ptrdiff_t ldc, int accumulate,
                            const float *b1, const float *b2)
{
    (void)trans_a; (void)M; (void)N; (void)K; (void)A; (void)lda; (void)B; (void)ldb;
    (void)C; (void)ldc; (void)accumulate; (void)b1; (void)b2;
}
#endif

#endif
