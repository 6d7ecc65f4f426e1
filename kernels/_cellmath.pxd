# C-level API of cellmath.h (see there for the maths and layouts).
cdef extern from "cellmath.h" nogil:
    unsigned int cr_ftz_begin()
    void cr_ftz_end(unsigned int old)
    float cr_expf(float x)
    float cr_sigmoidf(float x)
    float cr_tanhf(float x)

    void fill_bias_f32(float *out, const float *b1, const float *b2, Py_ssize_t rows, Py_ssize_t cols)
    void fill_bias_f64(double *out, const double *b1, const double *b2, Py_ssize_t rows, Py_ssize_t cols)
    void colsum_add_f32(float *out, const float *A, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld)
    void colsum_add_f64(double *out, const double *A, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld)
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

cdef inline void fill_bias(floating *out, const floating *b1, const floating *b2,
                           Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    if floating is float:
        fill_bias_f32(out, b1, b2, rows, cols)
    else:
        fill_bias_f64(out, b1, b2, rows, cols)

cdef inline void colsum_add(floating *out, const floating *A, Py_ssize_t rows, Py_ssize_t cols,
                            Py_ssize_t ld) noexcept nogil:
    if floating is float:
        colsum_add_f32(out, A, rows, cols, ld)
    else:
        colsum_add_f64(out, A, rows, cols, ld)

cdef inline void add_inplace(floating *out, const floating *a, Py_ssize_t n) noexcept nogil:
    if floating is float:
        add_inplace_f32(out, a, n)
    else:
        add_inplace_f64(out, a, n)


# Shape checks used before the GIL is released. memoryview.shape is a C array.
cdef inline bint shape3(Py_ssize_t *s, Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) noexcept:
    return s[0] == a and s[1] == b and s[2] == c

cdef inline bint shape2(Py_ssize_t *s, Py_ssize_t a, Py_ssize_t b) noexcept:
    return s[0] == a and s[1] == b

cdef inline int need(bint ok, str kernel, str what) except -1:
    if not ok:
        raise ValueError(f"{kernel} kernel: inconsistent shapes ({what})")
    return 0
