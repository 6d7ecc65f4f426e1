/* Templated over REAL (float/double), SFX (name suffix), SIGM, TANH: by cellmath.h for
 * double, by tier_impl.h for float once per ISA tier.
 * Layout: every per-step array is row-major (N, width); gate blocks sit side by side in
 * a row in PyTorch's order. "act" arrays hold pre-activations on the way in and
 * activations on the way out. Sizes: N batch, H hidden. */

/* ---- shared helpers ---------------------------------------------------------------- */

#ifndef CR_ROWS_AHEAD
/* The backward step functions hint the arrays of the batch row this many rows on while
 * they compute one: every per-step array except the state is new memory at each step
 * (the whole sequence is kept for backward), so it comes from L3, in more streams (up to
 * 9) than the hardware prefetchers follow, and the lines a row writes would each wait for
 * a read from L3 before their stores could drain. Xeon (Intel, AVX-512), min of 6
 * alternating runs: LSTM 2x128 batch 50 backward 4.7 -> 3.8 ms per layer, GRU 2x256
 * batch 32 10.7 -> 9.8; hints of the rows read alone did nothing, of the rows written
 * alone half of that. The same hints in the forward steps changed nothing (8.2 ms GRU,
 * 4.2 LSTM both ways), so those have none. */
#define CR_ROWS_AHEAD 2
#endif

/* out[r, :] = b1 + b2 for every row r: the bias, laid down before a GEMM with beta = 1. */
CR_UNUSED static void SFX(fill_bias)(REAL *out, const REAL *b1, const REAL *b2, idx_t rows, idx_t cols)
{
    for (idx_t r = 0; r < rows; r++) {
        REAL *__restrict o = out + r * cols;
        if (b2)
            for (idx_t j = 0; j < cols; j++) o[j] = b1[j] + b2[j];
        else
            for (idx_t j = 0; j < cols; j++) o[j] = b1[j];
    }
}

/* out[j] += sum_r A[r, j] for r < rows, j < cols; A has row stride ld: bias gradients.
 * The sum is formed first and added once, like BLAS with beta = 1, so that two backward
 * calls accumulate exactly twice the gradient. out2, if not NULL, gets the same sums
 * added (the LSTM's b_ih and b_hh have the same gradient: one pass serves both). */
CR_UNUSED static void SFX(colsum_add)(REAL *__restrict out, REAL *__restrict out2,
                                             const REAL *A, idx_t rows, idx_t cols, idx_t ld)
{
    enum { BLOCK = 256 };
    REAL acc[BLOCK];
    for (idx_t j0 = 0; j0 < cols; j0 += BLOCK) {
        idx_t w = cols - j0 < BLOCK ? cols - j0 : BLOCK;
        for (idx_t j = 0; j < w; j++) acc[j] = 0;
        for (idx_t r = 0; r < rows; r++) {
            const REAL *__restrict a = A + r * ld + j0;
            for (idx_t j = 0; j < w; j++) acc[j] += a[j];
        }
        for (idx_t j = 0; j < w; j++) out[j0 + j] += acc[j];
        if (out2)
            for (idx_t j = 0; j < w; j++) out2[j0 + j] += acc[j];
    }
}

CR_UNUSED static void SFX(add_inplace)(REAL *__restrict out, const REAL *__restrict a, idx_t n)
{
    for (idx_t j = 0; j < n; j++) out[j] += a[j];
}

/* ---- LSTM (gates i, f, g, o) --------------------------------------------------------- */

/* c = f * c_prev + i * g, tc = tanh(c), h = o * tc over one row of H units. */
static inline void SFX(lstm_fwd_row)(const REAL *__restrict gi, const REAL *__restrict gf,
                                     const REAL *__restrict gg, const REAL *__restrict go,
                                     const REAL *__restrict cp, REAL *__restrict cn,
                                     REAL *__restrict tn, REAL *__restrict hn, idx_t H)
{
    for (idx_t j = 0; j < H; j++) {
        REAL cv = gf[j] * cp[j] + gi[j] * gg[j];
        REAL tv = TANH(cv);
        cn[j] = cv;
        tn[j] = tv;
        hn[j] = go[j] * tv;
    }
}

/* act (N, 4H): in a = x W_ih^T + h W_hh^T + b, out [σ(a_i) σ(a_f) tanh(a_g) σ(a_o)].
 * c_prev (N, H) -> c (N, H), tc = tanh(c) (N, H), h = o * tc (N, H). */
CR_UNUSED static void SFX(lstm_fwd_step)(REAL *act, const REAL *c_prev, REAL *c, REAL *tc, REAL *h,
                               idx_t N, idx_t H)
{
    for (idx_t n = 0; n < N; n++) {
        REAL *a = act + n * 4 * H;
        /* separate simple passes vectorise; one loop with a branch per gate would not */
        for (idx_t j = 0; j < 2 * H; j++) a[j] = SIGM(a[j]);
        for (idx_t j = 2 * H; j < 3 * H; j++) a[j] = TANH(a[j]);
        for (idx_t j = 3 * H; j < 4 * H; j++) a[j] = SIGM(a[j]);
        SFX(lstm_fwd_row)(a, a + H, a + 2 * H, a + 3 * H, c_prev + n * H, c + n * H,
                          tc + n * H, h + n * H, H);
    }
}

/* Gate gradients over one row of H units (see lstm_bwd_step). */
static inline void SFX(lstm_bwd_row)(const REAL *__restrict gi, const REAL *__restrict gf,
                                     const REAL *__restrict gg, const REAL *__restrict go,
                                     const REAL *__restrict cp, const REAL *__restrict tn,
                                     const REAL *__restrict dyn, const REAL *__restrict dhn,
                                     REAL *__restrict dcn, REAL *__restrict di,
                                     REAL *__restrict df, REAL *__restrict dg,
                                     REAL *__restrict dout, idx_t H)
{
    for (idx_t j = 0; j < H; j++) {
        REAL dh = dyn[j] + dhn[j];
        REAL i = gi[j], f = gf[j], g = gg[j], o = go[j], t = tn[j];
        REAL dcv = dcn[j] + dh * o * (1 - t * t);
        di[j] = dcv * g * i * (1 - i);
        df[j] = dcv * cp[j] * f * (1 - f);
        dg[j] = dcv * i * (1 - g * g);
        dout[j] = dh * t * o * (1 - o);
        dcn[j] = dcv * f;
    }
}

/* Backward of one step. act (N, 4H) activations, c_prev, tc (N, H) as saved by forward;
 * dy (N, H) gradient reaching h_t from above, dh_next (N, H) from step t+1 through W_hh;
 * dc (N, H) in: gradient of c_t from step t+1, out: gradient of c_{t-1}.
 * dact (N, 4H) out: gradient of the pre-activations a. */
CR_UNUSED static void SFX(lstm_bwd_step)(const REAL *act, const REAL *c_prev, const REAL *tc,
                               const REAL *dy, const REAL *dh_next, REAL *dc, REAL *dact,
                               idx_t N, idx_t H)
{
    const ptrdiff_t row = H * (ptrdiff_t)sizeof(REAL);
    for (idx_t n = 0; n < N; n++) {
        const REAL *a = act + n * 4 * H;
        REAL *d = dact + n * 4 * H;
        if (n + CR_ROWS_AHEAD < N) {
            idx_t m = n + CR_ROWS_AHEAD;
            cr_prefetch_span(act + m * 4 * H, 4 * row, 0);
            cr_prefetch_span(c_prev + m * H, row, 0);
            cr_prefetch_span(tc + m * H, row, 0);
            cr_prefetch_span(dy + m * H, row, 0);
            cr_prefetch_span(dact + m * 4 * H, 4 * row, 1);
        }
        SFX(lstm_bwd_row)(a, a + H, a + 2 * H, a + 3 * H, c_prev + n * H, tc + n * H,
                          dy + n * H, dh_next + n * H, dc + n * H,
                          d, d + H, d + 2 * H, d + 3 * H, H);
    }
}

/* ---- GRU (gates r, z, n) ------------------------------------------------------------- */

/* n = tanh(gx_n + r * gh_n), h = (1 - z) * n + z * h_prev over one row of H units;
 * gh_n is kept for backward. */
static inline void SFX(gru_fwd_row)(const REAL *__restrict gr, const REAL *__restrict gz,
                                    REAL *__restrict gn, const REAL *__restrict bn,
                                    REAL *__restrict sn, const REAL *__restrict hp,
                                    REAL *__restrict hn, idx_t H)
{
    for (idx_t j = 0; j < H; j++) {
        REAL nv = TANH(gn[j] + gr[j] * bn[j]);
        REAL z = gz[j];
        sn[j] = bn[j];
        gn[j] = nv;
        hn[j] = (1 - z) * nv + z * hp[j];
    }
}

/* act (N, 3H): in x W_ih^T + b_ih, out [r z n]; gh (N, 3H) = h_prev W_hh^T + b_hh;
 * ghn (N, H) out: gh's n block (W_hn h + b_hn), which backward needs;
 * h = (1 - z) * n + z * h_prev. */
CR_UNUSED static void SFX(gru_fwd_step)(REAL *act, const REAL *gh, REAL *ghn, const REAL *h_prev, REAL *h,
                              idx_t N, idx_t H)
{
    for (idx_t n = 0; n < N; n++) {
        REAL *a = act + n * 3 * H;
        const REAL *b = gh + n * 3 * H;
        for (idx_t j = 0; j < 2 * H; j++) a[j] = SIGM(a[j] + b[j]);
        SFX(gru_fwd_row)(a, a + H, a + 2 * H, b + 2 * H, ghn + n * H, h_prev + n * H,
                         h + n * H, H);
    }
}

static inline void SFX(gru_bwd_row)(const REAL *__restrict gr, const REAL *__restrict gz,
                                    const REAL *__restrict gn, const REAL *__restrict sn,
                                    const REAL *__restrict hp, const REAL *__restrict dyn,
                                    const REAL *__restrict dhn,
                                    REAL *__restrict xr, REAL *__restrict xz, REAL *__restrict xn,
                                    REAL *__restrict hr, REAL *__restrict hz, REAL *__restrict hnn,
                                    REAL *__restrict dp, idx_t H)
{
    for (idx_t j = 0; j < H; j++) {
        REAL dh = dyn[j] + dhn[j];
        REAL r = gr[j], z = gz[j], nv = gn[j];
        REAL dan = dh * (1 - z) * (1 - nv * nv);      /* d pre-tanh of n */
        REAL dar = dan * sn[j] * r * (1 - r);
        REAL daz = dh * (hp[j] - nv) * z * (1 - z);
        xr[j] = dar;
        xz[j] = daz;
        xn[j] = dan;
        hr[j] = dar;
        hz[j] = daz;
        hnn[j] = dan * r;
        dp[j] = dh * z;
    }
}

/* Backward of one step. dgx (N, 3H): gradient of x W_ih^T + b_ih; dgh (N, 3H): gradient of
 * h_prev W_hh^T + b_hh; dh_prev (N, H) gets the direct part dh * z -- the caller adds
 * dgh W_hh with a GEMM. */
CR_UNUSED static void SFX(gru_bwd_step)(const REAL *act, const REAL *ghn, const REAL *h_prev,
                              const REAL *dy, const REAL *dh_next,
                              REAL *dgx, REAL *dgh, REAL *dh_prev,
                              idx_t N, idx_t H)
{
    const ptrdiff_t row = H * (ptrdiff_t)sizeof(REAL);
    for (idx_t n = 0; n < N; n++) {
        const REAL *a = act + n * 3 * H;
        REAL *x = dgx + n * 3 * H, *g = dgh + n * 3 * H;
        if (n + CR_ROWS_AHEAD < N) {
            idx_t m = n + CR_ROWS_AHEAD;
            cr_prefetch_span(act + m * 3 * H, 3 * row, 0);
            cr_prefetch_span(ghn + m * H, row, 0);
            cr_prefetch_span(h_prev + m * H, row, 0);
            cr_prefetch_span(dy + m * H, row, 0);
            cr_prefetch_span(dgx + m * 3 * H, 3 * row, 1);
            cr_prefetch_span(dgh + m * 3 * H, 3 * row, 1);
        }
        SFX(gru_bwd_row)(a, a + H, a + 2 * H, ghn + n * H, h_prev + n * H, dy + n * H,
                         dh_next + n * H, x, x + H, x + 2 * H, g, g + H, g + 2 * H,
                         dh_prev + n * H, H);
    }
}

/* ---- vanilla RNN (tanh) -------------------------------------------------------------- */

/* h = tanh(pre), pre (N, H) = x W_ih^T + h_prev W_hh^T + b. */
CR_UNUSED static void SFX(rnn_fwd_step)(const REAL *__restrict pre, REAL *__restrict h, idx_t NH)
{
    for (idx_t j = 0; j < NH; j++) h[j] = TANH(pre[j]);
}

/* da (N, H) = (dy + dh_next) * (1 - h^2): gradient of the pre-activation. */
CR_UNUSED static void SFX(rnn_bwd_step)(const REAL *__restrict h, const REAL *__restrict dy,
                              const REAL *__restrict dh_next, REAL *__restrict da, idx_t NH)
{
    for (idx_t j = 0; j < NH; j++) da[j] = (dy[j] + dh_next[j]) * (1 - h[j] * h[j]);
}
