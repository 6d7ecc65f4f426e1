"""LSTM forward and truncated-BPTT backward over a whole sequence; PyTorch's math.

Sizes: T time steps, N batch, D input, H hidden; 4 gates in PyTorch's order i, f, g, o.

    a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh            (N, 4H)
    i, f, g, o = σ(a_i), σ(a_f), tanh(a_g), σ(a_o)
    c_t = f * c_{t-1} + i * g                                   (N, H)
    h_t = o * tanh(c_t)                                         (N, H)

Weights in PyTorch's layout: W_ih (4H, D), W_hh (4H, H), b_ih (4H), b_hh (4H).
Saved for backward (allocated by the caller, charrnn.cells):
    hs  (T+1, N, H)   hs[0] = h0, hs[1:] = the output y
    cs  (T+1, N, H)   cs[0] = c0
    act (T, N, 4H)    gate activations
    tc  (T, N, H)     tanh(c_t)
Backward adds (+=) into every gradient it is given. Shapes are checked by charrnn.cells;
the checks here are the last line of defence so that no call can touch memory out of
bounds.
"""
from cython cimport floating
from libc.string cimport memcpy

from _blas cimport gemm
from _cellmath cimport (need, shape2, shape3, cr_ftz_begin, cr_ftz_end, fill_bias, colsum_add, add_inplace,
                        lstm_fwd_step_f32, lstm_fwd_step_f64,
                        lstm_bwd_step_f32, lstm_bwd_step_f64)


cdef inline int _need(bint ok, str what) except -1:
    return need(ok, "lstm", what)


def forward(const floating[:, :, ::1] x, const floating[:, ::1] h0, const floating[:, ::1] c0,
            const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
            const floating[::1] b_ih, const floating[::1] b_hh,
            floating[:, :, ::1] hs, floating[:, :, ::1] cs,
            floating[:, :, ::1] act, floating[:, :, ::1] tc):
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], D = x.shape[2], H = h0.shape[1]
    cdef Py_ssize_t G = 4 * H, t
    _need(T >= 1 and N >= 1 and D >= 1 and H >= 1, "empty dimension")
    _need(h0.shape[0] == N and c0.shape[0] == N and c0.shape[1] == H, "h0/c0")
    _need(W_ih.shape[0] == G and W_ih.shape[1] == D and W_hh.shape[0] == G
          and W_hh.shape[1] == H and b_ih.shape[0] == G and b_hh.shape[0] == G, "weights")
    _need(shape3(hs.shape, T + 1, N, H) and shape3(cs.shape, T + 1, N, H), "hs/cs")
    _need(shape3(act.shape, T, N, G) and shape3(tc.shape, T, N, H), "act/tc")
    cdef floating *A = &act[0, 0, 0]
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        memcpy(&hs[0, 0, 0], &h0[0, 0], N * H * sizeof(floating))
        memcpy(&cs[0, 0, 0], &c0[0, 0], N * H * sizeof(floating))
        # Input projection of all T steps in one GEMM, on top of both biases.
        fill_bias(A, &b_ih[0], &b_hh[0], T * N, G)
        gemm(False, True, <int>(T * N), <int>G, <int>D, 1, &x[0, 0, 0], <int>D,
             &W_ih[0, 0], <int>D, 1, A, <int>G)
        for t in range(T):
            # Recurrent part: act[t] += h_{t-1} W_hh^T, then the fused gate math.
            gemm(False, True, <int>N, <int>G, <int>H, 1, &hs[t, 0, 0], <int>H,
                 &W_hh[0, 0], <int>H, 1, A + t * N * G, <int>G)
            if floating is float:
                lstm_fwd_step_f32(A + t * N * G, &cs[t, 0, 0], &cs[t + 1, 0, 0],
                                  &tc[t, 0, 0], &hs[t + 1, 0, 0], N, H)
            else:
                lstm_fwd_step_f64(A + t * N * G, &cs[t, 0, 0], &cs[t + 1, 0, 0],
                                  &tc[t, 0, 0], &hs[t + 1, 0, 0], N, H)
        cr_ftz_end(fpmode)


def backward(const floating[:, :, ::1] dy, const floating[:, ::1] dhT, const floating[:, ::1] dcT,
             const floating[:, :, ::1] x, const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
             const floating[:, :, ::1] hs, const floating[:, :, ::1] cs,
             const floating[:, :, ::1] act, const floating[:, :, ::1] tc,
             floating[:, :, ::1] dact, floating[:, ::1] dh, floating[:, ::1] dc,
             floating[:, :, ::1] dx, floating[:, ::1] dh0, floating[:, ::1] dc0,
             floating[:, ::1] dW_ih, floating[:, ::1] dW_hh,
             floating[::1] db_ih, floating[::1] db_hh):
    """dact (T, N, 4H), dh (N, H), dc (N, H) are scratch; the rest as in forward."""
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], D = x.shape[2], H = W_hh.shape[1]
    cdef Py_ssize_t G = 4 * H, t
    _need(T >= 1 and N >= 1 and D >= 1 and H >= 1, "empty dimension")
    _need(W_ih.shape[0] == G and W_ih.shape[1] == D and W_hh.shape[0] == G, "weights")
    _need(shape3(hs.shape, T + 1, N, H) and shape3(cs.shape, T + 1, N, H), "hs/cs")
    _need(shape3(act.shape, T, N, G) and shape3(dact.shape, T, N, G), "act/dact")
    _need(shape3(tc.shape, T, N, H) and shape3(dy.shape, T, N, H)
          and shape3(dx.shape, T, N, D), "tc/dy/dx")
    _need(shape2(dhT.shape, N, H) and shape2(dcT.shape, N, H) and shape2(dh.shape, N, H)
          and shape2(dc.shape, N, H) and shape2(dh0.shape, N, H) and shape2(dc0.shape, N, H),
          "state gradients")
    _need(dW_ih.shape[0] == G and dW_ih.shape[1] == D and dW_hh.shape[0] == G
          and dW_hh.shape[1] == H and db_ih.shape[0] == G and db_hh.shape[0] == G, "weight gradients")
    cdef floating *dA = &dact[0, 0, 0]
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        memcpy(&dh[0, 0], &dhT[0, 0], N * H * sizeof(floating))
        memcpy(&dc[0, 0], &dcT[0, 0], N * H * sizeof(floating))
        for t in range(T - 1, -1, -1):
            if floating is float:
                lstm_bwd_step_f32(&act[t, 0, 0], &cs[t, 0, 0], &tc[t, 0, 0], &dy[t, 0, 0],
                                  &dh[0, 0], &dc[0, 0], dA + t * N * G, N, H)
            else:
                lstm_bwd_step_f64(&act[t, 0, 0], &cs[t, 0, 0], &tc[t, 0, 0], &dy[t, 0, 0],
                                  &dh[0, 0], &dc[0, 0], dA + t * N * G, N, H)
            # dh_{t-1} = dact[t] W_hh; at t = 0 it is the gradient of h0: add it there.
            if t > 0:
                gemm(False, False, <int>N, <int>H, <int>G, 1, dA + t * N * G, <int>G,
                     &W_hh[0, 0], <int>H, 0, &dh[0, 0], <int>H)
            else:
                gemm(False, False, <int>N, <int>H, <int>G, 1, dA, <int>G,
                     &W_hh[0, 0], <int>H, 1, &dh0[0, 0], <int>H)
        add_inplace(&dc0[0, 0], &dc[0, 0], N * H)
        # Weight gradients: one GEMM each over all T*N rows.
        gemm(True, False, <int>G, <int>D, <int>(T * N), 1, dA, <int>G,
             &x[0, 0, 0], <int>D, 1, &dW_ih[0, 0], <int>D)
        gemm(True, False, <int>G, <int>H, <int>(T * N), 1, dA, <int>G,
             &hs[0, 0, 0], <int>H, 1, &dW_hh[0, 0], <int>H)
        colsum_add(&db_ih[0], dA, T * N, G)
        colsum_add(&db_hh[0], dA, T * N, G)
        gemm(False, False, <int>(T * N), <int>D, <int>G, 1, dA, <int>G,
             &W_ih[0, 0], <int>D, 1, &dx[0, 0, 0], <int>D)
        cr_ftz_end(fpmode)
