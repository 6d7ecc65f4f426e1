# C-level API of cellmath.h (see there for the maths and layouts).
cdef extern from "cellmath.h" nogil:
    unsigned int cr_ftz_begin()
    void cr_ftz_end(unsigned int old)
    float cr_expf(float x)
    float cr_sigmoidf(float x)
    float cr_tanhf(float x)

    void fill_bias_f32(float *out, const float *b1, const float *b2, Py_ssize_t rows, Py_ssize_t cols)
    void fill_bias_f64(double *out, const double *b1, const double *b2, Py_ssize_t rows, Py_ssize_t cols)
    void colsum_add_f32(float *out, float *out2, const float *A, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld)
    void colsum_add_f64(double *out, double *out2, const double *A, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld)
    double softmax_xent_row_f32(float *row, Py_ssize_t V, Py_ssize_t target, float scale)
    void fast_math_f32_tier(const float *x, float *e, float *s, float *t, Py_ssize_t n)
    void add_inplace_f32(float *out, const float *a, Py_ssize_t n)
    void add_inplace_f64(double *out, const double *a, Py_ssize_t n)

    void lstm_fwd_step_f32(float *act, const float *c_prev, float *c, float *tc, float *h, Py_ssize_t N, Py_ssize_t H)
    void lstm_fwd_step_f64(double *act, const double *c_prev, double *c, double *tc, double *h, Py_ssize_t N, Py_ssize_t H)
    void lstm_bwd_step_f32(const float *act, const float *c_prev, const float *tc, const float *dy,
                           const float *dh_next, float *dc, float *dact, Py_ssize_t N, Py_ssize_t H)
    void lstm_bwd_step_f64(const double *act, const double *c_prev, const double *tc, const double *dy,
                           const double *dh_next, double *dc, double *dact, Py_ssize_t N, Py_ssize_t H)

    void gru_fwd_step_f32(float *act, const float *gh, float *ghn, const float *h_prev, float *h, Py_ssize_t N, Py_ssize_t H)
    void gru_fwd_step_f64(double *act, const double *gh, double *ghn, const double *h_prev, double *h, Py_ssize_t N, Py_ssize_t H)
    void gru_bwd_step_f32(const float *act, const float *ghn, const float *h_prev, const float *dy,
                          const float *dh_next, float *dgx, float *dgh, float *dh_prev,
                          Py_ssize_t N, Py_ssize_t H)
    void gru_bwd_step_f64(const double *act, const double *ghn, const double *h_prev, const double *dy,
                          const double *dh_next, double *dgx, double *dgh, double *dh_prev,
                          Py_ssize_t N, Py_ssize_t H)

    void rnn_fwd_step_f32(const float *pre, float *h, Py_ssize_t NH)
    void rnn_fwd_step_f64(const double *pre, double *h, Py_ssize_t NH)
    void rnn_bwd_step_f32(const float *h, const float *dy, const float *dh_next, float *da, Py_ssize_t NH)
    void rnn_bwd_step_f64(const double *h, const double *dy, const double *dh_next, double *da, Py_ssize_t NH)


# Typed dispatch over `floating` so the kernels read like one function for both dtypes.
from cython cimport floating
from libc.stdint cimport uint8_t
from libc.string cimport memcpy, memset
from _blas cimport gemm, mm, cr_sgemm_packed_size, cr_sgemm_packed_ok, cr_sgemm, cr_sgemm_tn_for

cdef inline void fill_bias(floating *out, const floating *b1, const floating *b2,
                           Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    if floating is float:
        fill_bias_f32(out, b1, b2, rows, cols)
    else:
        fill_bias_f64(out, b1, b2, rows, cols)

cdef inline void colsum_add(floating *out, const floating *A, Py_ssize_t rows, Py_ssize_t cols,
                            Py_ssize_t ld, floating *out2) noexcept nogil:
    if floating is float:
        colsum_add_f32(out, out2, A, rows, cols, ld)
    else:
        colsum_add_f64(out, out2, A, rows, cols, ld)

cdef inline void add_inplace(floating *out, const floating *a, Py_ssize_t n) noexcept nogil:
    if floating is float:
        add_inplace_f32(out, a, n)
    else:
        add_inplace_f64(out, a, n)


cdef inline void mm_bias(int M, int N, int K, const floating *A, int lda, const floating *B,
                         int ldb, const floating *Bp, const floating *b1, const floating *b2,
                         floating *C, int ldc) noexcept nogil:
    """C (M, N) := A @ B^T + b1 + b2 (b2 may be NULL), B stored (N, K). With Bp (B^T
    packed) the own sgemm adds the bias as it stores C, saving a pass over C; else the
    bias is laid down first and BLAS adds the product (the same sums either way)."""
    if floating is float:
        if Bp != NULL:
            if M > 0 and N > 0:
                cr_sgemm(False, M, N, K, A, lda, Bp, -1, C, ldc, False, b1, b2)
            return
    fill_bias(C, b1, b2, M, N)
    gemm(False, True, M, N, K, 1, A, lda, B, ldb, 1, C, ldc)


# Shape checks used before the GIL is released. memoryview.shape is a C array.
cdef inline bint shape3(Py_ssize_t *s, Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) noexcept:
    return s[0] == a and s[1] == b and s[2] == c

cdef inline bint shape2(Py_ssize_t *s, Py_ssize_t a, Py_ssize_t b) noexcept:
    return s[0] == a and s[1] == b

cdef inline int need(bint ok, str kernel, str what) except -1:
    if not ok:
        raise ValueError(f"{kernel} kernel: inconsistent shapes ({what})")
    return 0


cdef inline int need_range(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n, str kernel,
                           str what) except -1:
    return need(0 <= lo <= hi <= n, kernel, f"{what} range [{lo}, {hi}) outside [0, {n})")


cdef inline const floating *packed(const floating[::1] Wp, Py_ssize_t K, Py_ssize_t N,
                                   str kernel, str what) except? NULL:
    """Wp as the packed (K, N) B of charrnn's own sgemm, or NULL: use BLAS (an empty Wp).
    A pack is checked against the current tier's tile width: one made on another tier
    (CHARRNN_ISA changed in between) is refused, never misread."""
    if Wp.shape[0] == 0:
        return NULL
    need(floating is float and cr_sgemm_packed_ok(<const float *>&Wp[0], Wp.shape[0], K, N),
         kernel, f"{what}: {Wp.shape[0]} floats are not a ({K}, {N}) float32 matrix packed "
         f"for this ISA tier ({cr_sgemm_packed_size(K, N)} floats)")
    return &Wp[0]


cdef inline void _weight_grads_own(
        const float *dGx, const float *dGh, Py_ssize_t R, Py_ssize_t G,
        const float *x, Py_ssize_t D, const float *hs, Py_ssize_t H,
        float *dW_ih, float *dW_hh, float *db_ih, float *db_hh,
        Py_ssize_t g0, Py_ssize_t g1, const float *Wp) noexcept nogil:
    """sequence_weight_grads' weight and bias gradients on the own sgemm: one pass over
    the copies of dG serves both products and the bias sums where dGx is dGh (sgemm.h);
    in bf16 on AMX for a bf16 network (Wp, the W_ih pack, says which)."""
    if dGx == dGh:
        cr_sgemm_tn_for(Wp, g1 - g0, R, dGx + g0, G, D, x, D, dW_ih + g0 * D, D,
                        H, hs, H, dW_hh + g0 * H, H, db_ih + g0, db_hh + g0)
    else:
        cr_sgemm_tn_for(Wp, g1 - g0, R, dGx + g0, G, D, x, D, dW_ih + g0 * D, D,
                        0, NULL, 0, NULL, 0, db_ih + g0, NULL)
        cr_sgemm_tn_for(Wp, g1 - g0, R, dGh + g0, G, H, hs, H, dW_hh + g0 * H, H,
                        0, NULL, 0, NULL, 0, db_hh + g0, NULL)


cdef inline void sequence_weight_grads(
        const floating *dGx, const floating *dGh, Py_ssize_t R, Py_ssize_t G,
        const floating *x, Py_ssize_t D, const floating *hs, Py_ssize_t H,
        const floating *W_ih, const floating *Wp_ih, floating *dx, floating *dW_ih, floating *dW_hh,
        floating *db_ih, floating *db_hh,
        Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """The whole-sequence part of every cell's backward, one GEMM per gradient:

        dW_ih[g0:g1] += dGx[:, g0:g1]^T x         dW_hh[g0:g1] += dGh[:, g0:g1]^T h_prev
        db_ih[g0:g1] += sum_r dGx[r, g0:g1]        db_hh[g0:g1] += sum_r dGh[r, g0:g1]
        dx[r0:r1]    += dGx[r0:r1] W_ih

    dGx, dGh (R, G): gradients of the input and of the recurrent pre-activations (one
    array, except for the GRU); x (R, D); hs (R, H) the previous states h_{t-1}.
    Gate rows [g0, g1) and input rows [r0, r1) let threads split the work.
    Wp_ih: W_ih packed as a (G, D) B for charrnn's sgemm, which then does every product
    here (a native bf16 pack: the weight gradients in bf16 too where AMX runs); NULL: BLAS.
    """
    cdef bint own = Wp_ih != NULL, done = False
    if floating is float:
        if g1 > g0 and own:
            _weight_grads_own(dGx, dGh, R, G, x, D, hs, H, dW_ih, dW_hh, db_ih, db_hh, g0, g1,
                              Wp_ih)
            done = True
    if g1 > g0 and not done:
        mm(own, True, False, <int>(g1 - g0), <int>D, <int>R, dGx + g0, <int>G,
           x, <int>D, NULL, True, dW_ih + g0 * D, <int>D)
        mm(own, True, False, <int>(g1 - g0), <int>H, <int>R, dGh + g0, <int>G,
           hs, <int>H, NULL, True, dW_hh + g0 * H, <int>H)
        if dGx == dGh:
            colsum_add(db_ih + g0, dGx + g0, R, g1 - g0, G, db_hh + g0)
        else:
            colsum_add(db_ih + g0, dGx + g0, R, g1 - g0, G, <floating *> NULL)
            colsum_add(db_hh + g0, dGh + g0, R, g1 - g0, G, <floating *> NULL)
    if r1 > r0:
        mm(own, False, False, <int>(r1 - r0), <int>D, <int>G, dGx + r0 * G, <int>G,
           W_ih, <int>D, Wp_ih, True, dx + r0 * D, <int>D)


# ---- resets: streams that start afresh at a step (charrnn.nn.reference's docstring) ----
# A reset mask is (T, N) uint8, nonzero: the state entering step t of stream n is zero;
# an empty (0, 0) mask means none, and then the kernels never read it nor their reset
# scratch (which may be empty too). Plain byte loops and memcpy: no ISA tier involved.

cdef inline int reset_given(const uint8_t[:, ::1] reset, Py_ssize_t T, Py_ssize_t N,
                            str kernel) except -1:
    """1 if reset is a (T, N) mask, 0 if it is the empty (0, 0) "none"; else ValueError."""
    if reset.shape[0] == 0 and reset.shape[1] == 0:
        return 0
    if not shape2(reset.shape, T, N):
        need(False, kernel, f"reset ({reset.shape[0]}, {reset.shape[1]}), not ({T}, {N})")
    return 1


cdef inline bint any_reset(const uint8_t *r, Py_ssize_t M) noexcept nogil:
    cdef Py_ssize_t m
    for m in range(M):
        if r[m]:
            return True
    return False


cdef inline void copy_live(floating *dst, const floating *src, const uint8_t *r,
                           Py_ssize_t M, Py_ssize_t H) noexcept nogil:
    """dst (M, H) := src (M, H) with the rows m where r[m] zeroed: the states a step
    starts from when some of its M streams reset there."""
    cdef Py_ssize_t m
    for m in range(M):
        if r[m]:
            memset(dst + m * H, 0, H * sizeof(floating))
        else:
            memcpy(dst + m * H, src + m * H, H * sizeof(floating))


cdef inline void zero_reset(floating *a, const uint8_t *r, Py_ssize_t M,
                            Py_ssize_t H) noexcept nogil:
    """Rows m of a (M, H) where r[m]: a gradient that must not flow back past a reset."""
    cdef Py_ssize_t m
    for m in range(M):
        if r[m]:
            memset(a + m * H, 0, H * sizeof(floating))
