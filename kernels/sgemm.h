/* charrnn's own float32 GEMM, used by the cell kernels in place of BLAS sgemm for the
 * shapes of a recurrent network. This file is the ISA-free part (packing, blocking,
 * edges); each tier brings one micro-kernel (ukernel_*.h) with its tile shape MR x NR.
 *
 * Why not BLAS: the per-step recurrent product is a short, wide GEMM (M = batch rows,
 * 16-64) repeated T times with the same weights. A BLAS packs the weights again on every
 * call and its kernels are tuned for large square matrices; and a BLAS built for many
 * CPUs may run AVX2 kernels on an AVX-512 CPU. Here the weights are packed once per pass
 * (cr_sgemm_pack) and reused by every step.
 *
 *     C (M, N) := op(A) @ B  (+ C if accumulate)  (+ b1 + b2 in every row)   all row-major
 *
 * op(A) is (M, K): A stored (M, K) with row stride lda, or (K, M) if trans_a.
 * B is (K, N) either plain row-major with row stride ldb, or packed (ldb < 0): a header
 * of CR_PACK_HDR floats naming the tile width NR it was packed for, then column panels of
 * NR, each panel K rows of NR floats, zero-padded past column N. A pack is only valid
 * for tiers with the same NR: cr_sgemm_pack_ok checks that at the Python boundary.
 *
 * Nothing here allocates or can fail: the copies it makes (a block of transposed A, 192
 * KiB, panels of plain B, 64 KiB, and the block's row sums) live on the stack. Each
 * output element is a dot product summed in k order within blocks of k fixed by K alone,
 * so results do not depend on how callers split M between threads.
 */
#ifndef CHARRNN_SGEMM_H
#define CHARRNN_SGEMM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "prefetch.h"

#define CR_PACK_HDR 16     /* header floats: [magic, NR, K, N] as int32 bits; 64 B */
#define CR_PACK_MAGIC 0x43524e50
#define CR_MR_MAX 10        /* the tallest tile of any tier (AVX-512's last tile) */
#define CR_NR_MAX 32
#define CR_KC 256          /* k per block: long K, A transposed, or an edge of B copied */
#define CR_K_LONG 512      /* K above this runs in blocks of CR_KC (B panels stay in L1) */
/* Rows per copied block of transposed A, a multiple of every MR. Every row block copies
 * each panel of B again, and B (T*N rows of x or h) is larger than L2, so taller blocks
 * mean fewer copies from L3; 192 rows x CR_KC (192 KiB) plus the copied panels of B
 * (64 KiB, CR_NB below) just fit the 256 KiB L2 of older laptop CPUs. Zen 4, weight
 * gradients of LSTM 2x128 / 2x256 (dG 2500x512 / 2048x1024): 96 rows 62 / 62 GFLOP/s,
 * 192 rows 73 / 76, 288 rows 79 / 80. */
#define CR_MC_T 192
#define CR_A_BLOCK (64 * 1024)
/* Rows of A per chunk of the transposed copy: a chunk's rows (CR_KCH x CR_MC_T floats,
 * 12 KiB) stay in L1 while it is copied tile by tile. */
#define CR_KCH 16

/* One micro-tile: C[0:mr, 0:nr] (+)= bias + sum_k op(A)[row r, k] * B[k, 0:NR].
 * A: row r's element k=0 at A + a_ofs[r], element k+1 a_step floats further; rows
 * r >= mr repeat row mr-1 (never read past A) and are not stored. B: a full panel of NR
 * floats per k, b_step apart. bias: NR floats (b1 + b2, zero past nr) or NULL.
 * Store: c = (sum + bias) (+ C if accumulate), only columns < nr. */
typedef void (*cr_ukernel_fn)(ptrdiff_t K, const float *A, const ptrdiff_t *a_ofs,
                              ptrdiff_t a_step, const float *B, ptrdiff_t b_step, float *C,
                              ptrdiff_t ldc, int mr, int nr, int accumulate, const float *bias);

/* split: 0, or a tile height the tier's kernel runs at full speed below mr (AVX2: 4 rows
 * still keep 8 accumulators in flight). When the rows left are mr + 1 or mr + 2, a tile
 * of `split` rows goes first, so the last two tiles are split + (1 or 2 more) rows, not
 * a full tile and a nearly empty one (M = 32 on 6-row tiles: 6,6,6,6,4,4, not 6x5 + 2
 * rows in a 3-row kernel). tall: 0, or a tile height above mr (at most CR_MR_MAX) the
 * kernel also runs: when the rows left are more than mr and at most tall, they go in one
 * tile (AVX-512, tall 10: M = 50 as 8x5 + 10, not 8x6 + 2 rows in a 4-row kernel).
 * Each row's sums are the same whatever the tile height. */
typedef struct {
    int mr, nr;
    cr_ukernel_fn kernel;
    int split, tall;
} cr_gemm_tier;

/* The scalar tail of a micro-kernel's store for a partial tile: row values v (nr of
 * them, sum + bias already) into C, adding C first if accumulate. */
static inline void cr_store_row(float *c, const float *v, int nr, int accumulate)
{
    for (int j = 0; j < nr; j++) c[j] = accumulate ? v[j] + c[j] : v[j];
}

/* dst[0:n] = src[0:n] for the short rows of a tile or panel. Constant sizes for the
 * widths in use, so that compilers inline the copy: a plain loop becomes a call to
 * memcpy (GCC's loop idioms), and a call per 24 bytes costs more than the copy. */
static inline void cr_copy_short(float *dst, const float *src, int n)
{
    switch (n) {
    case 4: memcpy(dst, src, 4 * sizeof(float)); return;
    case 6: memcpy(dst, src, 6 * sizeof(float)); return;
    case 8: memcpy(dst, src, 8 * sizeof(float)); return;
    case 12: memcpy(dst, src, 12 * sizeof(float)); return;
    case 16: memcpy(dst, src, 16 * sizeof(float)); return;
    case 32: memcpy(dst, src, 32 * sizeof(float)); return;
    default: memcpy(dst, src, (size_t)n * sizeof(float)); return;
    }
}

/* Floats needed to pack a (K, N) matrix for tile width nr. */
static inline size_t cr_sgemm_packed_size_nr(ptrdiff_t K, ptrdiff_t N, int nr)
{
    return CR_PACK_HDR + (size_t)((N + nr - 1) / nr) * nr * (size_t)K;
}

static inline void cr_put_i32(float *p, int32_t v) { memcpy(p, &v, sizeof v); }
static inline int32_t cr_get_i32(const float *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Pack B (K, N) for tile width nr. B is stored (K, N) with row stride ldb, or (N, K) if
 * trans_b (so that packing W (N, K) gives the B of x @ W^T). Bp has
 * cr_sgemm_packed_size_nr(K, N, nr) floats. Plain C: it runs once per pass, not per step,
 * but a pass is short (a transducer's step packs its 3.6M weights twice: 4-7% of the
 * step when this walked a panel's K rows for each column).
 *
 * The transposed copy goes CR_PACK_KB values of k at a time: the block's NR rows of W
 * are read along k and its CR_PACK_KB panel rows written along j, both within L1. */
#define CR_PACK_KB 16
static void cr_sgemm_pack_nr(int trans_b, ptrdiff_t K, ptrdiff_t N, const float *B,
                             ptrdiff_t ldb, float *Bp, int NR)
{
    memset(Bp, 0, CR_PACK_HDR * sizeof(float));
    cr_put_i32(Bp, CR_PACK_MAGIC);
    cr_put_i32(Bp + 1, NR);
    cr_put_i32(Bp + 2, (int32_t)K);
    cr_put_i32(Bp + 3, (int32_t)N);
    Bp += CR_PACK_HDR;
    if (K == 0)
        return;                                          /* no panel rows */
    for (ptrdiff_t j0 = 0; j0 < N; j0 += NR) {
        ptrdiff_t nr = N - j0 < NR ? N - j0 : NR;
        float *P = Bp + (j0 / NR) * NR * K;                   /* panel: (K, NR) */
        if (!trans_b) {
            for (ptrdiff_t k = 0; k < K; k++) {
                memcpy(P + k * NR, B + k * ldb + j0, (size_t)nr * sizeof(float));
                memset(P + k * NR + nr, 0, (size_t)(NR - nr) * sizeof(float));
            }
            continue;
        }
        for (ptrdiff_t k0 = 0; k0 < K; k0 += CR_PACK_KB) {
            ptrdiff_t kb = K - k0 < CR_PACK_KB ? K - k0 : CR_PACK_KB;
            float *Pk = P + k0 * NR;
            for (ptrdiff_t j = 0; j < nr; j++) {
                const float *src = B + (j0 + j) * ldb + k0;   /* row j0+j of (N, K) */
                for (ptrdiff_t k = 0; k < kb; k++)
                    Pk[k * NR + j] = src[k];
            }
            for (ptrdiff_t k = 0; k < kb && nr < NR; k++)
                memset(Pk + k * NR + nr, 0, (size_t)(NR - nr) * sizeof(float));
        }
    }
}

/* 1 if Bp (n floats) is a pack of a (K, N) matrix for tile width nr. */
static int cr_sgemm_pack_ok(const float *Bp, size_t n, ptrdiff_t K, ptrdiff_t N, int nr)
{
    return n == cr_sgemm_packed_size_nr(K, N, nr) && cr_get_i32(Bp) == CR_PACK_MAGIC
           && cr_get_i32(Bp + 1) == nr && cr_get_i32(Bp + 2) == K && cr_get_i32(Bp + 3) == N;
}

/* The height of the next row tile when `left` rows are left (split and tall above). */
static inline int cr_tile_rows(const cr_gemm_tier *t, ptrdiff_t left, int a_packed)
{
    const int MR = t->mr;
    if (left < MR)
        return (int)left;
    if (a_packed)                                      /* packed A comes in MR-row tiles */
        return MR;
    if (t->tall && left <= t->tall)
        return (int)left;
    return t->split && left > MR && left <= MR + 2 ? t->split : MR;
}

/* Row tiles [ib, ie) of C against one column panel (K x NR floats, b_step apart).
 * A packed (tile-major (K, MR) blocks, from cr_sgemm's transposed path) or in place. */
static void cr_sgemm_panel(const cr_gemm_tier *t, ptrdiff_t ib, ptrdiff_t ie, ptrdiff_t K,
                           const float *A, int a_packed, ptrdiff_t lda, const float *Bj,
                           ptrdiff_t b_step, float *C, ptrdiff_t ldc, int nr, int accumulate,
                           const float *bias)
{
    const int MR = t->mr;
    int mr;
    for (ptrdiff_t i0 = ib; i0 < ie; i0 += mr) {
        mr = cr_tile_rows(t, ie - i0, a_packed);
        ptrdiff_t a_ofs[CR_MR_MAX];
        for (int r = 0, rows = mr > MR ? t->tall : MR; r < rows; r++) {
            ptrdiff_t i = i0 + (r < mr ? r : mr - 1);
            a_ofs[r] = a_packed ? r : i * lda;
        }
        /* The next tile's rows of C, a whole micro-kernel ahead: with C much larger than
         * the caches (the whole-sequence products write T*N rows), its stores and the
         * loads of accumulate otherwise wait on memory at the end of every tile. */
        ptrdiff_t in = i0 + mr < ie ? i0 + mr : i0;
        int mn = ie - in < MR ? (int)(ie - in) : MR;
        for (int r = 0; r < mn; r++) {
            CR_PREFETCH_W(C + (in + r) * ldc);
            CR_PREFETCH_W(C + (in + r) * ldc + nr - 1);
        }
        const float *Ai = a_packed ? A + (i0 - ib) * K : A;
        t->kernel(K, Ai, a_ofs, a_packed ? MR : 1, Bj, b_step, C + i0 * ldc, ldc, mr, nr,
                  accumulate, bias);
    }
}

/* Full panels of a plain B copied together: the copy reads CR_NB consecutive floats of
 * each row of B (four lines), not one panel's NR. B (T*N rows of x or h, larger than L2)
 * streams from L3 here, rows ldb floats apart; one line per row kept too few loads in
 * flight (Intel Xeon, dW of GRU 2x256 on avx2: the copy took 11% of the product). */
#define CR_NB 64

/* Rows [ib, ie) of C for k in [pc, pc + kc) against every column panel of B.
 * A_k: op(A) at k = pc (in place) or the packed block. The bias (b1 + b2, summed as
 * fill_bias does) is added with the first k-block only. A panel of a plain B is copied
 * (kc x NR, zero-padded past N) when it is an edge panel, so that the micro-kernels only
 * ever see full panels, and when more than one row tile reads it: rows of B in place
 * are ldb floats apart, often a multiple of 4 KiB, so a panel's kc lines fall into a few
 * L1 sets and would be fetched again for every tile. Full panels are copied CR_NB / NR
 * at a time (above). kc <= CR_KC here (cr_sgemm_run). */
static void cr_sgemm_block(const cr_gemm_tier *t, ptrdiff_t ib, ptrdiff_t ie, ptrdiff_t N,
                           ptrdiff_t pc, ptrdiff_t kc, ptrdiff_t Kfull, const float *A_k,
                           int a_packed, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                           float *C, ptrdiff_t ldc, int accumulate, const float *b1,
                           const float *b2)
{
    const int NR = t->nr;
    const ptrdiff_t per_copy = CR_NB / NR;              /* full panels per copy */
    float bias[CR_NR_MAX];
    float panel[CR_KC * CR_NB];                          /* per_copy panels (kc, NR) */
    ptrdiff_t g0 = -1;                                   /* first column of the copied group */
    for (ptrdiff_t j0 = 0; j0 < N; j0 += NR) {
        int nr = N - j0 < NR ? (int)(N - j0) : NR;
        if (b1 && pc == 0) {
            for (int j = 0; j < NR; j++)
                bias[j] = j < nr ? (b2 ? b1[j0 + j] + b2[j0 + j] : b1[j0 + j]) : 0.0f;
        }
        const float *bp = b1 && pc == 0 ? bias : NULL;
        int acc = accumulate || pc > 0;
        const float *Bj;
        ptrdiff_t b_step = NR;
        if (ldb < 0) {                                   /* packed: panel j0 / NR at row pc */
            Bj = B + CR_PACK_HDR + (j0 / NR) * NR * Kfull + pc * NR;
        } else if (nr == NR && cr_tile_rows(t, ie - ib, a_packed) == ie - ib) {
            /* one tile (of MR rows or fewer, or AVX-512's tall last tile): in place */
            Bj = B + pc * ldb + j0;
            b_step = ldb;
        } else if (nr == NR) {
            if (g0 < 0 || j0 >= g0 + per_copy * NR) {    /* copy the next group of panels */
                g0 = j0;
                ptrdiff_t np = (N - j0) / NR < per_copy ? (N - j0) / NR : per_copy;
                for (ptrdiff_t k = 0; k < kc; k++) {
                    const float *src = B + (pc + k) * ldb + j0;
                    /* Rows of B 8 ahead. */
                    if (pc + k + 8 < Kfull)
                        cr_prefetch_span(src + 8 * ldb, np * NR * (ptrdiff_t)sizeof(float), 0);
                    for (ptrdiff_t p = 0; p < np; p++)
                        cr_copy_short(panel + (p * kc + k) * NR, src + p * NR, NR);
                }
            }
            Bj = panel + (j0 - g0) * kc;
        } else {                                         /* the edge panel, after the groups */
            for (ptrdiff_t k = 0; k < kc; k++) {
                memcpy(panel + k * NR, B + (pc + k) * ldb + j0, (size_t)nr * sizeof(float));
                memset(panel + k * NR + nr, 0, (size_t)(NR - nr) * sizeof(float));
            }
            Bj = panel;
        }
        cr_sgemm_panel(t, ib, ie, kc, A_k, a_packed, lda, Bj, b_step, C + j0, ldc, nr, acc, bp);
    }
}

/* One product of cr_sgemm_tn_run: C (M, N) (+)= A^T @ B, B plain (K, N), row stride ldb. */
typedef struct {
    ptrdiff_t N, ldb, ldc;
    const float *B;
    float *C;
} cr_tn_out;

/* Transposed A, for one or more products that share it (the weight gradients: A is the
 * gates' gradient stored (K, M), K = T*N long; the LSTM's dW_ih and dW_hh both read it):
 * C_o (M, N_o) (+)= A^T @ B_o. In place, each k would touch a new page per tile (rows of
 * A are lda floats apart, often a multiple of 4 KiB), so A is copied in blocks of
 * CR_MC_T rows x CR_KC k into a buffer on the stack, tile-major, each block once for all
 * the products; each row of A is read whole, once per block.
 * asum (M floats, or NULL) += the row sums of A^T, the bias gradients (asum2, if not
 * NULL, gets the same sums, as colsum_add's out2): summed in k order while the blocks
 * are copied and added once per element, so that two calls add exactly twice the sums.
 * Row blocks are outermost: their sums then need only CR_MC_T floats. */
static void cr_sgemm_tn_run(const cr_gemm_tier *t, ptrdiff_t M, ptrdiff_t K, const float *A,
                            ptrdiff_t lda, const cr_tn_out *out, int n_out, int accumulate,
                            const float *b1, const float *b2, float *asum, float *asum2)
{
    const int MR = t->mr;
    float Ap[CR_MC_T * CR_KC];
    float rs[CR_MC_T];
    for (ptrdiff_t ib = 0; ib < M; ib += CR_MC_T) {
        ptrdiff_t mc = M - ib < CR_MC_T ? M - ib : CR_MC_T;
        ptrdiff_t mfull = mc / MR * MR;
        for (ptrdiff_t i = 0; i < mc; i++)
            rs[i] = 0.0f;
        for (ptrdiff_t pc = 0; pc < K || pc == 0; pc += CR_KC) {
            ptrdiff_t kc = K - pc < CR_KC ? K - pc : CR_KC;
            /* Tile i at Ap + i * kc. Tile by tile within CR_KCH rows of A: going across
             * each row instead writes one line per tile, kc * MR floats (a multiple of
             * 4 KiB) apart, and tens of tiles in a few L1 sets evict each other's lines
             * before they fill (the store then stalled 2/3 of the copy's time). */
            for (ptrdiff_t k0 = 0; k0 < kc; k0 += CR_KCH) {
                ptrdiff_t k1 = kc - k0 < CR_KCH ? kc : k0 + CR_KCH;
                const float *src0 = A + (pc + k0) * lda + ib;
                /* The next chunk's rows, one chunk ahead: A streams from L3 (the gates'
                 * gradient of the whole sequence), rows lda apart, and the hardware
                 * prefetchers keep too few of those loads in flight. */
                for (ptrdiff_t k = k1; k < k1 + CR_KCH && pc + k < K; k++)
                    cr_prefetch_span(src0 + (k - k0) * lda, mc * (ptrdiff_t)sizeof(float), 0);
                for (ptrdiff_t i = 0; i < mfull; i += MR) {
                    float *P = Ap + i * kc + k0 * MR;
                    const float *src = src0 + i;
                    for (ptrdiff_t k = k0; k < k1; k++, P += MR, src += lda)
                        cr_copy_short(P, src, MR);
                }
                if (mc > mfull) {                             /* last tile: zero-padded */
                    float *P = Ap + mfull * kc + k0 * MR;
                    const float *src = src0 + mfull;
                    for (ptrdiff_t k = k0; k < k1; k++, P += MR, src += lda)
                        for (int r = 0; r < MR; r++)
                            P[r] = mfull + r < mc ? src[r] : 0.0f;
                }
                if (asum)
                    for (ptrdiff_t k = k0; k < k1; k++) {
                        const float *src = src0 + (k - k0) * lda;
                        for (ptrdiff_t i = 0; i < mc; i++)
                            rs[i] += src[i];
                    }
            }
            for (int o = 0; o < n_out; o++)
                cr_sgemm_block(t, ib, ib + mc, out[o].N, pc, kc, K, Ap, 1, 0, out[o].B,
                               out[o].ldb, out[o].C, out[o].ldc, accumulate, b1, b2);
        }
        for (ptrdiff_t i = 0; asum && i < mc; i++) {
            asum[ib + i] += rs[i];
            if (asum2)
                asum2[ib + i] += rs[i];
        }
    }
}

/* The driver. k runs in blocks of CR_KC when K > CR_K_LONG, when A is transposed or
 * when B is plain (its panels are copied per block), else whole; the blocks depend on K
 * alone, so each output element's sums, and so the results, do not depend on how
 * callers split M between threads.
 * A not transposed: read in place, in blocks of rows small enough to stay in L2
 * (CR_A_BLOCK bytes of one k-block) outside the k-blocks, so a block of B (kc x N) is
 * read once per block of rows. A transposed: cr_sgemm_tn_run. */
static void cr_sgemm_run(const cr_gemm_tier *t, int trans_a, ptrdiff_t M, ptrdiff_t N,
                         ptrdiff_t K, const float *A, ptrdiff_t lda, const float *B,
                         ptrdiff_t ldb, float *C, ptrdiff_t ldc, int accumulate,
                         const float *b1, const float *b2)
{
    const int MR = t->mr;
    if (M <= 0 || N <= 0)
        return;
    if (trans_a) {
        cr_tn_out o = {N, ldb, ldc, B, C};
        cr_sgemm_tn_run(t, M, K, A, lda, &o, 1, accumulate, b1, b2, NULL, NULL);
        return;
    }
    ptrdiff_t KB = K > CR_K_LONG || ldb >= 0 ? CR_KC : (K > 0 ? K : 1);
    ptrdiff_t MC = (CR_A_BLOCK / (ptrdiff_t)sizeof(float) / KB) / MR * MR;
    MC = MC < MR ? MR : MC;
    for (ptrdiff_t ib = 0; ib < M; ib += MC)
        for (ptrdiff_t pc = 0; pc < K || pc == 0; pc += KB) {
            ptrdiff_t kc = K - pc < KB ? K - pc : KB;
            cr_sgemm_block(t, ib, M - ib < MC ? M : ib + MC, N, pc, kc, K, A + pc, 0, lda,
                           B, ldb, C, ldc, accumulate, b1, b2);
        }
}

#endif
