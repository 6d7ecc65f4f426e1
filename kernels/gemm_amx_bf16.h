/* bf16 products on Intel AMX (Sapphire Rapids and later Xeons): TDPBF16PS on tiles, for
 * the avx512 tier's native bf16 packs. Not a micro-kernel but a whole driver: AMX's tiles
 * want A row-major (16 rows of 32 bf16 each), where the micro-kernels want it interleaved
 * by row tile, so it copies A its own way; B is the VDPBF16PS kernel's pack unchanged.
 *
 *     C (M, N) := bf16(op(A)) @ Bp (+ C if accumulate) (+ b1 + b2 in every row)
 *
 * Why a second x86 bf16 path: on this CPU family VDPBF16PS runs on one port while float32
 * FMAs run on two, so the VDPBF16PS kernel is slower than float32 (bench/peak_bf16.py on
 * a Sapphire Rapids-class Xeon: 94 against 159 GFLOP/s per core); one TDPBF16PS multiplies
 * a 16 x 32 tile by a 32 x 16 one (16,384 flops).
 *
 * The pack (sgemm_bf16.h, NR = 32): per column panel, ceil(K/2) rows of 32 pairs, 128
 * bytes a row. A B tile is 16 rows (16 pairs of k) of 64 bytes (16 columns' pairs): the
 * panel's left half at the panel, stride 128, and its right half 64 bytes on. The last
 * chunk of k (fewer than 16 pairs) is copied into a zero-padded buffer first, so that no
 * tile reads past a panel (or the pack's end).
 *
 * A block of at most CR_AMX_MC rows and CR_KC k is rounded into Ab as rows of kq pairs
 * (kq: the block's pairs rounded up to 16), zero past the block's k and past its rows,
 * so every tile is a full 16 x 64 bytes and no configuration changes between tiles. C is
 * computed 32 x 32 at a time (four accumulator tiles: rows 0-15 and 16-31, columns 0-15
 * and 16-31; a last 16-row tile uses two), stored to a buffer, then added to C with the
 * bias, for the rows and columns that exist.
 *
 * Results: each output element is summed in k order within blocks of CR_KC, as the other
 * bf16 kernels; the arithmetic is TDPBF16PS's (Intel SDM: per pair, the odd element's
 * product added first, then the even one's, each add rounded to nearest even, DAZ and
 * FTZ), the same as VDPBF16PS's, so the two x86 paths can give the same bits (the tests
 * say whether they do on the CPU at hand; they bound both against the portable kernel).
 *
 * Use of AMX needs the OS's leave: on Linux, arch_prctl(ARCH_REQ_XCOMP_PERM,
 * XFEATURE_XTILEDATA) once per process (cr_amx_ctl does it, from charrnn._isa's import,
 * before any kernel runs). Built for Linux only (tiers.h): elsewhere AMX is not used. Each call loads the tile configuration and releases the tiles when it returns,
 * so a thread holds no tile state (8 KiB more per context switch) between products.
 *
 * Compiled only in charrnn._isa, in a target region that adds AMX-TILE and AMX-BF16 to
 * the avx512 tier's features (tiers.h). Nothing here allocates or can fail: the buffers
 * (56 KiB) live on the stack. */
#ifndef CHARRNN_GEMM_AMX_BF16_H
#define CHARRNN_GEMM_AMX_BF16_H

#include <sys/syscall.h>
/* unistd.h declares it only for _DEFAULT_SOURCE, which -std=c99 turns off (the C harness) */
long syscall(long number, ...);

#define CR_AMX_MC 96                     /* rows of A per copied block (6 tiles of 16) */
#define CR_AMX_KQ (CR_KC / 2)            /* pairs per row of the A block, at most */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} cr_amx_config;

/* -1 not asked yet; 0 no AMX here (CPU, OS or its leave); 1 usable. And whether to use
 * it (charrnn._isa.set_amx: benchmarks and tests compare it with VDPBF16PS). */
static int cr_amx_usable = -1, cr_amx_wanted = 1;

static int cr_amx_detect(void)
{
    unsigned r[4];
    if (!cr_cpu_has_bf16())
        return 0;
    cr_cpuid(7, 0, r);
    if (!(r[3] & (1u << 24)) || !(r[3] & (1u << 22)))    /* AMX-TILE, AMX-BF16 */
        return 0;
    if ((cr_xcr0() & (3ull << 17)) != (3ull << 17))      /* XTILECFG, XTILEDATA */
        return 0;
    /* ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18): fails on kernels before
     * 5.16, and where a signal stack is too small for the tile state. */
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

/* set < 0: ask; 0 or 1: stop or start using AMX. Returns 1 if bf16 products run on AMX
 * from now on. set = 2: returns 1 if the CPU and OS allow AMX, used or not. */
static int cr_amx_ctl(int set)
{
    if (cr_amx_usable < 0)
        cr_amx_usable = cr_amx_detect();
    if (set == 2)
        return cr_amx_usable;
    if (set >= 0)
        cr_amx_wanted = set != 0;
    return cr_amx_usable && cr_amx_wanted;
}

/* Rows [i0, i0 + mc) and k [pc, pc + kc) of op(A), rounded, into Ab as rows of kq pairs;
 * zero past kc and for rows mc..mpad. */
static void cr_amx_copy_a(int trans_a, const float *A, ptrdiff_t lda, ptrdiff_t i0,
                          ptrdiff_t mc, ptrdiff_t mpad, ptrdiff_t pc, ptrdiff_t kc,
                          ptrdiff_t kq, uint32_t *Ab)
{
    const ptrdiff_t kp = (kc + 1) / 2;
    for (ptrdiff_t r = 0; r < mpad; r++) {
        uint32_t *row = Ab + r * kq;
        ptrdiff_t p = 0;
        if (r < mc) {                    /* a row in place, or a column of A stored (K, M) */
            cr_bf16_row_pairs(trans_a ? A + pc * lda + i0 + r : A + (i0 + r) * lda + pc,
                              trans_a ? lda : 1, kc, row, 1);
            p = kp;
        }
        for (; p < kq; p++) row[p] = 0;
    }
}

/* The tiles of a 32 x 32 (two = 1) or 16 x 32 block of C, added into C: rows < mr,
 * columns < nr, with the bias (NULL: none) and C's old values if accumulate. */
static void cr_amx_store(const float *T, float *C, ptrdiff_t ldc, int mr, int nr,
                         int accumulate, const float *bias)
{
    __m512 bias0 = _mm512_setzero_ps(), bias1 = bias0;
    if (bias) {
        bias0 = _mm512_loadu_ps(bias);
        bias1 = _mm512_loadu_ps(bias + 16);
    }
    for (int r = 0; r < mr; r++) {
        const float *t = T + (r >= 16 ? 512 : 0) + (r & 15) * 16;  /* tiles 0,1 or 2,3 */
        __m512 v0 = _mm512_add_ps(_mm512_loadu_ps(t), bias0);
        __m512 v1 = _mm512_add_ps(_mm512_loadu_ps(t + 256), bias1);
        float *c = C + r * ldc;
        if (nr == 32) {
            if (accumulate) {
                v0 = _mm512_add_ps(v0, _mm512_loadu_ps(c));
                v1 = _mm512_add_ps(v1, _mm512_loadu_ps(c + 16));
            }
            _mm512_storeu_ps(c, v0);
            _mm512_storeu_ps(c + 16, v1);
        } else {
            float v[32];
            _mm512_storeu_ps(v, v0);
            _mm512_storeu_ps(v + 16, v1);
            cr_store_row(c, v, nr, accumulate);
        }
    }
}

/* Load the tile configuration every product here uses: palette 1, tiles 0-3 the C
 * accumulators, 4-5 A, 6-7 B, all 16 rows x 64 bytes. */
static void cr_amx_begin(void)
{
    cr_amx_config cfg __attribute__((aligned(64)));
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}

/* T := the 16 x 32 (two = 0) or 32 x 32 block of A's rows at a (rows of kq pairs) times
 * a panel of 32 columns, over kq pairs of k: chunk q of the panel at B + q * 32 while
 * q + 16 <= kfull, else at tail (the panel's last chunk, zero-padded). T as cr_amx_store
 * reads it (tiles 0-3 at T, T + 256, T + 512, T + 768). */
static void cr_amx_block(const uint32_t *a, ptrdiff_t kq, const uint32_t *B, ptrdiff_t kfull,
                         const uint32_t *tail, int two, float *T)
{
    _tile_zero(0);
    _tile_zero(1);
    if (two) {
        _tile_zero(2);
        _tile_zero(3);
    }
    for (ptrdiff_t q = 0; q < kq; q += 16) {
        const uint32_t *b = q + 16 <= kfull ? B + q * 32 : tail;
        _tile_loadd(6, b, 128);
        _tile_loadd(7, b + 16, 128);
        _tile_loadd(4, a + q, kq * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if (two) {
            _tile_loadd(5, a + 16 * kq + q, kq * 4);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
    _tile_stored(0, T, 64);
    _tile_stored(1, T + 256, 64);
    if (two) {
        _tile_stored(2, T + 512, 64);
        _tile_stored(3, T + 768, 64);
    }
}

/* The driver. Returns 0 (and does nothing) if AMX is not in use, or for K = 0, so that the
 * caller runs the VDPBF16PS kernel instead; Bp is a native bf16 pack of the avx512 tier (NR = 32)
 * that the caller has checked. */
static int cr_sgemm_amx_run(int trans_a, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                            const float *A, ptrdiff_t lda, const float *Bp, float *C,
                            ptrdiff_t ldc, int accumulate, const float *b1, const float *b2)
{
    if (!cr_amx_ctl(-1) || K <= 0)                      /* K = 0: C = bias (+ C) there */
        return 0;
    if (M <= 0 || N <= 0)
        return 1;
    const ptrdiff_t KP = (K + 1) / 2;
    const uint32_t *B = (const uint32_t *)(Bp + CR_PACK_HDR);
    uint32_t Ab[CR_AMX_MC * CR_AMX_KQ];                  /* 48 KiB */
    uint32_t Bt[16 * 32];                                /* a last chunk of k, 2 KiB */
    float T[4 * 256];                                    /* four stored tiles, 4 KiB */
    float bias[32];
    cr_amx_begin();
    for (ptrdiff_t ib = 0; ib < M; ib += CR_AMX_MC) {
        const ptrdiff_t mc = M - ib < CR_AMX_MC ? M - ib : CR_AMX_MC;
        const ptrdiff_t mpad = (mc + 15) / 16 * 16;
        for (ptrdiff_t pc = 0; pc < K || pc == 0; pc += CR_KC) {
            const ptrdiff_t kc = K - pc < CR_KC ? K - pc : CR_KC, kp = (kc + 1) / 2;
            const ptrdiff_t kq = (kp + 15) / 16 * 16;
            cr_amx_copy_a(trans_a, A, lda, ib, mc, mpad, pc, kc, kq, Ab);
            for (ptrdiff_t j0 = 0; j0 < N; j0 += 32) {
                const int nr = N - j0 < 32 ? (int)(N - j0) : 32;
                if (b1 && pc == 0)
                    for (int j = 0; j < 32; j++)
                        bias[j] = j < nr ? (b2 ? b1[j0 + j] + b2[j0 + j] : b1[j0 + j]) : 0.0f;
                const float *bp = b1 && pc == 0 ? bias : NULL;
                const int acc = accumulate || pc > 0;
                const uint32_t *Bj = B + (j0 / 32) * 32 * KP + (pc / 2) * 32;
                const uint32_t *tail = Bj;
                if (kp % 16) {                           /* the last chunk, zero-padded */
                    const ptrdiff_t q = kp / 16 * 16;
                    memset(Bt, 0, sizeof Bt);
                    memcpy(Bt, Bj + q * 32, (size_t)(kp - q) * 32 * sizeof(uint32_t));
                    tail = Bt;
                }
                for (ptrdiff_t i0 = 0; i0 < mpad; i0 += 32) {
                    const int two = mpad - i0 >= 32;
                    cr_amx_block(Ab + i0 * kq, kq, Bj, kp, tail, two, T);
                    const ptrdiff_t left = mc - i0;
                    const int mr = left < (two ? 32 : 16) ? (int)left : (two ? 32 : 16);
                    cr_amx_store(T, C + (ib + i0) * ldc + j0, ldc, mr, nr, acc, bp);
                }
            }
        }
    }
    _tile_release();
    return 1;
}

/* ---- the weight gradients: C_o (M, N_o) += bf16(A)^T bf16(B_o) -----------------------
 * cr_sgemm_tn's contract (sgemm.h: A the gates' gradient stored (K, M), K = T*N long, the
 * B_o plain activations (K, N_o), asum/asum2 += the row sums of A^T) with the products'
 * inputs rounded to bf16, for bf16 networks on AMX. Both operands are laid out k-major,
 * so neither is a pack: per block of CR_AMX_TN_MC rows of A^T and CR_AMX_TN_KC k, A^T is
 * copied into row-major pairs (a scatter of 16 rows' pairs at a time) and shared by every
 * product, and each 32-column panel of B_o is paired into Bt (k and k+1 of a column in a
 * word, as the packs are) just before its tiles use it. Each block's sums are added to C
 * as it is stored: each element summed in k order within blocks fixed by K, so splitting
 * M between threads changes no bit. The row sums are float32 adds in k order, as
 * cr_sgemm_tn's (the same bits). */
#define CR_AMX_TN_MC 192                 /* rows of A^T per block */
#define CR_AMX_TN_KC 128                 /* k per block: 64 pairs */

/* 16 float32 rounded to bf16 bits (in the low halves), as cr_bf16_bits rounds each. */
static inline __m512i cr_amx_bf16_bits16(__m512 x)
{
    const __m512i u = _mm512_castps_si512(x);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), odd), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
}

/* 16 pairs (x0[j], x1[j]) for j < 16 */
static inline __m512i cr_amx_pairs16(__m512 x0, __m512 x1)
{
    return _mm512_or_si512(cr_amx_bf16_bits16(x0), _mm512_slli_epi32(cr_amx_bf16_bits16(x1), 16));
}

/* Rows [ib, ib + mc) of A^T and k [pc, pc + kc) into Ab (rows of kq pairs, zero past kc
 * and for rows mc..mpad); rs[i] += A[k][ib + i] for every k, in order. */
static void cr_amx_copy_at(const float *A, ptrdiff_t lda, ptrdiff_t ib, ptrdiff_t mc,
                           ptrdiff_t mpad, ptrdiff_t pc, ptrdiff_t kc, ptrdiff_t kq,
                           uint32_t *Ab, float *rs)
{
    const ptrdiff_t kp = (kc + 1) / 2;
    const __m512i rows = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32((int)kq));
    ptrdiff_t i = 0;
    for (; i + 16 <= mc; i += 16) {
        __m512 s = _mm512_loadu_ps(rs + i);
        for (ptrdiff_t p = 0; p < kp; p++) {
            const float *a0 = A + (pc + 2 * p) * lda + ib + i;
            __m512 x0 = _mm512_loadu_ps(a0), x1 = _mm512_setzero_ps();
            s = _mm512_add_ps(s, x0);
            if (2 * p + 1 < kc) {
                x1 = _mm512_loadu_ps(a0 + lda);
                s = _mm512_add_ps(s, x1);
            }
            _mm512_i32scatter_epi32(Ab + i * kq + p, rows, cr_amx_pairs16(x0, x1), 4);
        }
        _mm512_storeu_ps(rs + i, s);
        for (ptrdiff_t r = 0; r < 16; r++)
            for (ptrdiff_t p = kp; p < kq; p++) Ab[(i + r) * kq + p] = 0;
    }
    for (; i < mpad; i++) {                              /* the last rows, one at a time */
        uint32_t *row = Ab + i * kq;
        ptrdiff_t p = 0;
        if (i < mc) {
            const float *a = A + pc * lda + ib + i;
            for (; p < kp; p++) {
                float x0 = a[2 * p * lda], x1 = 2 * p + 1 < kc ? a[(2 * p + 1) * lda] : 0.0f;
                rs[i] += x0;
                if (2 * p + 1 < kc)
                    rs[i] += x1;
                row[p] = cr_bf16_pair(x0, x1);
            }
        }
        for (; p < kq; p++) row[p] = 0;
    }
}

/* Columns [j0, j0 + nr) of B's rows [pc, pc + kc) as kq rows of 32 pairs (zero past nr
 * and past kc). */
static void cr_amx_pair_b(const float *B, ptrdiff_t ldb, ptrdiff_t pc, ptrdiff_t kc,
                          ptrdiff_t kq, ptrdiff_t j0, int nr, uint32_t *Bt)
{
    const ptrdiff_t kp = (kc + 1) / 2;
    for (ptrdiff_t p = 0; p < kq; p++) {
        uint32_t *row = Bt + p * 32;
        const float *b0 = B + (pc + 2 * p) * ldb + j0;
        const int two = 2 * p + 1 < kc;
        if (p < kp && nr == 32) {
            __m512 z = _mm512_setzero_ps();
            _mm512_storeu_si512((void *)row, cr_amx_pairs16(_mm512_loadu_ps(b0),
                                                          two ? _mm512_loadu_ps(b0 + ldb) : z));
            _mm512_storeu_si512((void *)(row + 16),
                                cr_amx_pairs16(_mm512_loadu_ps(b0 + 16),
                                               two ? _mm512_loadu_ps(b0 + ldb + 16) : z));
        } else {
            for (int j = 0; j < 32; j++)
                row[j] = p < kp && j < nr ? cr_bf16_pair(b0[j], two ? b0[ldb + j] : 0.0f) : 0;
        }
    }
}

/* Returns 0 (having done nothing) where AMX is not in use, or for K = 0: then the caller
 * runs cr_sgemm_tn in float32. */
static int cr_sgemm_tn_amx(ptrdiff_t M, ptrdiff_t K, const float *A, ptrdiff_t lda,
                           const cr_tn_out *out, int n_out, float *asum, float *asum2)
{
    if (!cr_amx_ctl(-1) || K <= 0)
        return 0;
    uint32_t Ab[CR_AMX_TN_MC * (CR_AMX_TN_KC / 2)];    /* 48 KiB */
    uint32_t Bt[(CR_AMX_TN_KC / 2) * 32];              /* 8 KiB */
    float T[4 * 256];
    float rs[CR_AMX_TN_MC];
    cr_amx_begin();
    for (ptrdiff_t ib = 0; ib < M; ib += CR_AMX_TN_MC) {
        const ptrdiff_t mc = M - ib < CR_AMX_TN_MC ? M - ib : CR_AMX_TN_MC;
        const ptrdiff_t mpad = (mc + 15) / 16 * 16;
        for (ptrdiff_t i = 0; i < mc; i++) rs[i] = 0.0f;
        for (ptrdiff_t pc = 0; pc < K; pc += CR_AMX_TN_KC) {
            const ptrdiff_t kc = K - pc < CR_AMX_TN_KC ? K - pc : CR_AMX_TN_KC;
            const ptrdiff_t kq = ((kc + 1) / 2 + 15) / 16 * 16;
            cr_amx_copy_at(A, lda, ib, mc, mpad, pc, kc, kq, Ab, rs);
            for (int o = 0; o < n_out; o++) {
                for (ptrdiff_t j0 = 0; j0 < out[o].N; j0 += 32) {
                    const int nr = out[o].N - j0 < 32 ? (int)(out[o].N - j0) : 32;
                    cr_amx_pair_b(out[o].B, out[o].ldb, pc, kc, kq, j0, nr, Bt);
                    for (ptrdiff_t i0 = 0; i0 < mpad; i0 += 32) {
                        const int two = mpad - i0 >= 32;
                        cr_amx_block(Ab + i0 * kq, kq, Bt, kq, NULL, two, T);
                        const ptrdiff_t left = mc - i0;
                        const int mr = left < (two ? 32 : 16) ? (int)left : (two ? 32 : 16);
                        cr_amx_store(T, out[o].C + (ib + i0) * out[o].ldc + j0, out[o].ldc, mr,
                                     nr, 1, NULL);
                    }
                }
            }
        }
        for (ptrdiff_t i = 0; asum && i < mc; i++) {
            asum[ib + i] += rs[i];
            if (asum2)
                asum2[ib + i] += rs[i];
        }
    }
    _tile_release();
    return 1;
}

#endif
