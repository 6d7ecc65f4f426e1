/* Mixed-precision products for bf16 training: charrnn's own GEMM with its inputs rounded
 * to bfloat16 and its sums kept in float32. The ISA-free part (rounding, packing,
 * blocking, edges); each tier's table brings a micro-kernel (the portable one,
 * ukernel_bf16.h, on every tier; a native one where the CPU has bf16 dot products,
 * ukernel_neon_bf16.h).
 *
 *     C (M, N) := bf16(op(A)) @ bf16(B)  (+ C if accumulate)  (+ b1 + b2 in every row)
 *
 * products exact (a bfloat16 times a bfloat16 fits a float32's mantissa), summed in
 * float32; all row-major, op(A) (M, K) as in sgemm.h. Only B packed: it is a weight,
 * rounded and packed once per pass (cr_sgemm_pack_bf16), as sgemm.h packs it in float32.
 * A (activations, or gate gradients) is rounded as it is copied into the tiles, a block of
 * CR_BF16_MC rows x CR_KC k at a time, and each block serves every column panel.
 *
 * bfloat16 is a float32's upper 16 bits: 8 exponent bits, 7 stored mantissa bits; float32
 * is rounded to it to nearest, ties to even, and a NaN stays a NaN (quietened), as every
 * hardware conversion does (Arm BFCVT, x86 VCVTNEPS2BF16).
 *
 * Layout: k runs in pairs, as bf16 dot-product instructions read it (Arm BFDOT, x86
 * VDPBF16PS: each 32-bit lane holds elements k and k+1, and multiplies a pair by a pair).
 * One uint32 holds a pair: bits 0-15 element k, bits 16-31 element k+1 (zero past K).
 * B packed: a header of CR_PACK_HDR floats [magic, NR, K, N, kind] (kind 0: for the
 * portable kernel, 1: for the tier's native one), then column panels of NR, each
 * ceil(K/2) rows of NR pairs, zero-padded past column N; stored in a float32 array (so
 * that the cells pass it where a float32 pack goes, and cr_sgemm finds it by its magic).
 * A copied: tiles of MR rows, each ceil(kc/2) rows of MR pairs, zero rows past M.
 *
 * Results: each output element is summed in k order within blocks of CR_KC (fixed by K
 * alone), each block's sum added to C as it is stored, so results do not depend on how
 * callers split M between threads. The portable kernel's results are the same on every
 * tier, bit for bit (exact products, then float32 adds in k order: nothing for FMA
 * contraction or vector width to change); a native kernel's differ from them by
 * rounding only (Arm BFDOT adds each pair's two products first and rounds to odd).
 *
 * Nothing here allocates or can fail: the copied block of A (48 KiB) lives on the stack.
 */
#ifndef CHARRNN_SGEMM_BF16_H
#define CHARRNN_SGEMM_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sgemm.h"

#define CR_PACK_MAGIC_BF16 0x43524e42   /* "BNRC": a bf16 pack, where sgemm.h's is "PNRC" */
#define CR_BF16_MC 96                   /* rows per copied block of A: a multiple of every MR */

/* One micro-tile: C[0:mr, 0:nr] (+)= bias + sum over KP pairs of k of A's pairs times
 * B's. A: KP rows of MR pairs (row r of the tile at A[p * MR + r]), zero past mr.
 * B: a full panel, KP rows of NR pairs. bias: NR floats (zero past nr) or NULL.
 * Store: c = (sum + bias) (+ C if accumulate), only rows < mr and columns < nr. */
typedef void (*cr_ukernel_bf16_fn)(ptrdiff_t KP, const uint32_t *A, const uint32_t *B,
                                   float *C, ptrdiff_t ldc, int mr, int nr, int accumulate,
                                   const float *bias);

/* A whole product run another way than by micro-tiles (gemm_amx_bf16.h): returns 0, having
 * done nothing, where it does not run (then the micro-kernel does). Its control: set < 0
 * asks, 0 or 1 stops or starts it; returns 1 if it runs from now on. */
typedef int (*cr_bf16_driver_fn)(int trans_a, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                                 const float *A, ptrdiff_t lda, const float *Bp, float *C,
                                 ptrdiff_t ldc, int accumulate, const float *b1,
                                 const float *b2);

typedef struct {
    int mr, nr;
    cr_ukernel_bf16_fn kernel;   /* NULL: none (a tier without a native bf16 kernel) */
    cr_bf16_driver_fn driver;    /* NULL: none; else tried first, on the same packs */
    int (*driver_ctl)(int set);
    /* the weight gradients of a bf16 network (cr_sgemm_tn's contract, inputs rounded to
     * bf16): 0, having done nothing, where it does not run (then float32 does) */
    int (*tn_driver)(ptrdiff_t M, ptrdiff_t K, const float *A, ptrdiff_t lda,
                     const cr_tn_out *out, int n_out, float *asum, float *asum2);
} cr_bf16_tier;

/* float32 -> bfloat16 bits, round to nearest even; NaN stays NaN (quiet bit set, so a
 * NaN whose payload lives in the low bits cannot become an infinity). */
static inline uint32_t cr_bf16_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (u >> 16) | 0x0040u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* The two elements of a pair, as float32 (exact). */
static inline float cr_bf16_lo(uint32_t pair)
{
    uint32_t u = pair << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline float cr_bf16_hi(uint32_t pair)
{
    uint32_t u = pair & 0xffff0000u;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t cr_bf16_pair(float k0, float k1)
{
    return cr_bf16_bits(k0) | (cr_bf16_bits(k1) << 16);
}

/* f rounded to bfloat16, as a float32 (tests, references). */
static inline float cr_bf16_round(float f) { return cr_bf16_lo(cr_bf16_bits(f)); }

/* Floats needed to pack a (K, N) matrix in bf16 for tile width nr. */
static inline size_t cr_sgemm_bf16_packed_size_nr(ptrdiff_t K, ptrdiff_t N, int nr)
{
    return CR_PACK_HDR + (size_t)((N + nr - 1) / nr) * nr * (size_t)((K + 1) / 2);
}

/* Pack B (K, N), or B stored (N, K) if trans_b, rounded to bf16, for tile width NR and
 * kernel kind (0 portable, 1 native). Bp has cr_sgemm_bf16_packed_size_nr floats. Plain
 * C: it runs once per pass, not per step; like cr_sgemm_pack_nr it keeps its loops free
 * of tests (a zero column or k past the matrix is written apart) and copies a transposed
 * W CR_PACK_KB values of k (CR_PACK_KB / 2 pair rows) at a time. */
static void cr_sgemm_pack_bf16_nr(int trans_b, ptrdiff_t K, ptrdiff_t N, const float *B,
                                  ptrdiff_t ldb, float *Bp, int NR, int kind)
{
    memset(Bp, 0, CR_PACK_HDR * sizeof(float));
    cr_put_i32(Bp, CR_PACK_MAGIC_BF16);
    cr_put_i32(Bp + 1, NR);
    cr_put_i32(Bp + 2, (int32_t)K);
    cr_put_i32(Bp + 3, (int32_t)N);
    cr_put_i32(Bp + 4, kind);
    uint32_t *P = (uint32_t *)(Bp + CR_PACK_HDR);
    const ptrdiff_t KP = (K + 1) / 2, KF = K / 2;       /* pairs; pairs without a zero */
    for (ptrdiff_t j0 = 0; j0 < N; j0 += NR) {
        const ptrdiff_t nr = N - j0 < NR ? N - j0 : NR;
        uint32_t *panel = P + (j0 / NR) * NR * KP;            /* (KP, NR) pairs */
        if (!trans_b) {
            for (ptrdiff_t p = 0; p < KF; p++) {
                const float *r0 = B + 2 * p * ldb + j0, *r1 = r0 + ldb;
                uint32_t *out = panel + p * NR;
                for (ptrdiff_t j = 0; j < nr; j++)
                    out[j] = cr_bf16_pair(r0[j], r1[j]);
            }
            if (KF < KP)                                       /* K odd: k = K-1 and a zero */
                for (ptrdiff_t j = 0; j < nr; j++)
                    panel[KF * NR + j] = cr_bf16_pair(B[(K - 1) * ldb + j0 + j], 0.0f);
        } else {
            for (ptrdiff_t p0 = 0; p0 < KF; p0 += CR_PACK_KB / 2) {
                const ptrdiff_t pb = KF - p0 < CR_PACK_KB / 2 ? KF - p0 : CR_PACK_KB / 2;
                for (ptrdiff_t j = 0; j < nr; j++) {
                    const float *src = B + (j0 + j) * ldb + 2 * p0;   /* row j0+j of (N, K) */
                    for (ptrdiff_t p = 0; p < pb; p++)
                        panel[(p0 + p) * NR + j] = cr_bf16_pair(src[2 * p], src[2 * p + 1]);
                }
            }
            if (KF < KP)
                for (ptrdiff_t j = 0; j < nr; j++)
                    panel[KF * NR + j] = cr_bf16_pair(B[(j0 + j) * ldb + K - 1], 0.0f);
        }
        for (ptrdiff_t p = 0; p < KP && nr < NR; p++)         /* columns past N: zeros */
            memset(panel + p * NR + nr, 0, (size_t)(NR - nr) * sizeof(uint32_t));
    }
}

/* 1 if Bp (n floats) is a bf16 pack of a (K, N) matrix for tile width nr and kind. */
static int cr_sgemm_bf16_pack_ok(const float *Bp, size_t n, ptrdiff_t K, ptrdiff_t N, int nr,
                                 int kind)
{
    return n == cr_sgemm_bf16_packed_size_nr(K, N, nr) && cr_get_i32(Bp) == CR_PACK_MAGIC_BF16
           && cr_get_i32(Bp + 1) == nr && cr_get_i32(Bp + 2) == K && cr_get_i32(Bp + 3) == N
           && cr_get_i32(Bp + 4) == kind;
}

/* 1 if Bp (n >= 1 floats) starts like a bf16 pack (then its kind is at Bp[4]). */
static inline int cr_is_bf16_pack(const float *Bp, size_t n)
{
    return n >= CR_PACK_HDR && cr_get_i32(Bp) == CR_PACK_MAGIC_BF16;
}

/* kc elements a[0], a[step], a[2 step], ... rounded into ceil(kc/2) pairs, out[p * ostride]
 * (the second of a last odd pair zero): one row of op(A), in place (step 1) or a column
 * of A stored (K, M) (step lda), as the micro-kernels' tiles and AMX's rows take it. */
static inline void cr_bf16_row_pairs(const float *a, ptrdiff_t step, ptrdiff_t kc,
                                     uint32_t *out, ptrdiff_t ostride)
{
    ptrdiff_t p = 0;
    for (; 2 * p + 1 < kc; p++) out[p * ostride] = cr_bf16_pair(a[2 * p * step], a[(2 * p + 1) * step]);
    if (2 * p < kc) out[p * ostride] = cr_bf16_pair(a[2 * p * step], 0.0f);
}

/* Rows [i0, i0 + mc) and k [pc, pc + kc) of op(A) rounded into tiles of MR rows at Ap:
 * tile t at Ap + t * MR * kp, (kp, MR) pairs; rows past mc and the k past kc zero. */
static void cr_bf16_copy_a(int trans_a, const float *A, ptrdiff_t lda, ptrdiff_t i0,
                           ptrdiff_t mc, ptrdiff_t pc, ptrdiff_t kc, int MR, uint32_t *Ap)
{
    const ptrdiff_t kp = (kc + 1) / 2;
    for (ptrdiff_t t0 = 0; t0 < mc; t0 += MR) {
        uint32_t *T = Ap + t0 * kp;
        for (int r = 0; r < MR; r++) {
            ptrdiff_t i = i0 + t0 + r;
            if (t0 + r >= mc) {                              /* padding rows */
                for (ptrdiff_t p = 0; p < kp; p++) T[p * MR + r] = 0;
            } else if (!trans_a) {                           /* row i in place, k along it */
                cr_bf16_row_pairs(A + i * lda + pc, 1, kc, T + r, MR);
            } else {                                         /* A stored (K, M): column i */
                cr_bf16_row_pairs(A + pc * lda + i, lda, kc, T + r, MR);
            }
        }
    }
}

/* The driver: C (M, N) := bf16(op(A)) @ B (+ C) (+ b1 + b2), B a bf16 pack for t's NR
 * (the caller has checked it: cr_sgemm_packed_ok). Blocks of CR_BF16_MC rows of A, each
 * rounded once per block of CR_KC k and reused by every column panel; the bias (b1 + b2,
 * summed as sgemm.h does) goes in with the first k-block's store. */
static void cr_sgemm_bf16_run(const cr_bf16_tier *t, int trans_a, ptrdiff_t M, ptrdiff_t N,
                              ptrdiff_t K, const float *A, ptrdiff_t lda, const float *Bp,
                              float *C, ptrdiff_t ldc, int accumulate, const float *b1,
                              const float *b2)
{
    const int MR = t->mr, NR = t->nr;
    const ptrdiff_t KP = (K + 1) / 2;
    const uint32_t *B = (const uint32_t *)(Bp + CR_PACK_HDR);
    uint32_t Ap[CR_BF16_MC * (CR_KC / 2)];
    float bias[CR_NR_MAX];
    if (M <= 0 || N <= 0)
        return;
    for (ptrdiff_t ib = 0; ib < M; ib += CR_BF16_MC) {
        ptrdiff_t mc = M - ib < CR_BF16_MC ? M - ib : CR_BF16_MC;
        for (ptrdiff_t pc = 0; pc < K || pc == 0; pc += CR_KC) {
            ptrdiff_t kc = K - pc < CR_KC ? K - pc : CR_KC, kp = (kc + 1) / 2;
            cr_bf16_copy_a(trans_a, A, lda, ib, mc, pc, kc, MR, Ap);
            for (ptrdiff_t j0 = 0; j0 < N; j0 += NR) {
                int nr = N - j0 < NR ? (int)(N - j0) : NR;
                if (b1 && pc == 0)
                    for (int j = 0; j < NR; j++)
                        bias[j] = j < nr ? (b2 ? b1[j0 + j] + b2[j0 + j] : b1[j0 + j]) : 0.0f;
                const float *bp = b1 && pc == 0 ? bias : NULL;
                int acc = accumulate || pc > 0;
                const uint32_t *Bj = B + (j0 / NR) * NR * KP + (pc / 2) * NR;
                for (ptrdiff_t i0 = 0; i0 < mc; i0 += MR) {
                    int mr = mc - i0 < MR ? (int)(mc - i0) : MR;
                    t->kernel(kp, Ap + i0 * kp, Bj, C + (ib + i0) * ldc + j0, ldc, mr, nr, acc,
                              bp);
                }
            }
        }
    }
}

#endif
