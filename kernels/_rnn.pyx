"""Vanilla (tanh) RNN forward and truncated-BPTT backward over a whole sequence; PyTorch's math.

Sizes: T time steps, N batch, D input, H hidden.

    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)       (N, H)

Weights in PyTorch's layout: W_ih (H, D), W_hh (H, H), b_ih (H), b_hh (H).
Saved for backward (allocated by the caller, charrnn.cells):
    hs  (T+1, N, H)   hs[0] = h0, hs[1:] = the output y  (tanh' = 1 - h^2 needs only h)
Scratch: pre (T, N, H) in forward; da (T, N, H), dh (N, H) in backward.
Backward adds (+=) into every gradient it is given.
"""
from cython cimport floating
from libc.string cimport memcpy

from _blas cimport gemm
from _cellmath cimport (need, shape2, shape3, cr_ftz_begin, cr_ftz_end, fill_bias, colsum_add,
                        rnn_fwd_step_f32, rnn_fwd_step_f64,
                        rnn_bwd_step_f32, rnn_bwd_step_f64)


cdef inline int _need(bint ok, str what) except -1:
    return need(ok, "rnn", what)


def forward(const floating[:, :, ::1] x, const floating[:, ::1] h0,
            const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
            const floating[::1] b_ih, const floating[::1] b_hh,
            floating[:, :, ::1] hs, floating[:, :, ::1] pre):
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], D = x.shape[2], H = h0.shape[1], t
    _need(T >= 1 and N >= 1 and D >= 1 and H >= 1, "empty dimension")
    _need(h0.shape[0] == N, "h0")
    _need(W_ih.shape[0] == H and W_ih.shape[1] == D and W_hh.shape[0] == H
          and W_hh.shape[1] == H and b_ih.shape[0] == H and b_hh.shape[0] == H, "weights")
    _need(hs.shape[0] == T + 1 and hs.shape[1] == N and hs.shape[2] == H, "hs")
    _need(pre.shape[0] == T and pre.shape[1] == N and pre.shape[2] == H, "pre")
    cdef floating *P = &pre[0, 0, 0]
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        memcpy(&hs[0, 0, 0], &h0[0, 0], N * H * sizeof(floating))
        fill_bias(P, &b_ih[0], &b_hh[0], T * N, H)
        gemm(False, True, <int>(T * N), <int>H, <int>D, 1, &x[0, 0, 0], <int>D,
             &W_ih[0, 0], <int>D, 1, P, <int>H)
        for t in range(T):
            gemm(False, True, <int>N, <int>H, <int>H, 1, &hs[t, 0, 0], <int>H,
                 &W_hh[0, 0], <int>H, 1, P + t * N * H, <int>H)
            if floating is float:
                rnn_fwd_step_f32(P + t * N * H, &hs[t + 1, 0, 0], N * H)
            else:
                rnn_fwd_step_f64(P + t * N * H, &hs[t + 1, 0, 0], N * H)
        cr_ftz_end(fpmode)


def backward(const floating[:, :, ::1] dy, const floating[:, ::1] dhT,
             const floating[:, :, ::1] x, const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
             const floating[:, :, ::1] hs,
             floating[:, :, ::1] da, floating[:, ::1] dh,
             floating[:, :, ::1] dx, floating[:, ::1] dh0,
             floating[:, ::1] dW_ih, floating[:, ::1] dW_hh,
             floating[::1] db_ih, floating[::1] db_hh):
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], D = x.shape[2], H = W_hh.shape[1], t
    _need(T >= 1 and N >= 1 and D >= 1 and H >= 1, "empty dimension")
    _need(W_ih.shape[0] == H and W_ih.shape[1] == D and W_hh.shape[0] == H, "weights")
    _need(hs.shape[0] == T + 1 and hs.shape[1] == N and hs.shape[2] == H, "hs")
    _need(shape3(da.shape, T, N, H) and shape3(dy.shape, T, N, H)
          and shape3(dx.shape, T, N, D), "da/dy/dx")
    _need(shape2(dhT.shape, N, H) and shape2(dh.shape, N, H) and shape2(dh0.shape, N, H),
          "state gradients")
    _need(dW_ih.shape[0] == H and dW_ih.shape[1] == D and dW_hh.shape[0] == H
          and dW_hh.shape[1] == H and db_ih.shape[0] == H and db_hh.shape[0] == H, "weight gradients")
    cdef floating *dA = &da[0, 0, 0]
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        memcpy(&dh[0, 0], &dhT[0, 0], N * H * sizeof(floating))
        for t in range(T - 1, -1, -1):
            if floating is float:
                rnn_bwd_step_f32(&hs[t + 1, 0, 0], &dy[t, 0, 0], &dh[0, 0], dA + t * N * H, N * H)
            else:
                rnn_bwd_step_f64(&hs[t + 1, 0, 0], &dy[t, 0, 0], &dh[0, 0], dA + t * N * H, N * H)
            if t > 0:
                gemm(False, False, <int>N, <int>H, <int>H, 1, dA + t * N * H, <int>H,
                     &W_hh[0, 0], <int>H, 0, &dh[0, 0], <int>H)
            else:
                gemm(False, False, <int>N, <int>H, <int>H, 1, dA, <int>H,
                     &W_hh[0, 0], <int>H, 1, &dh0[0, 0], <int>H)
        gemm(True, False, <int>H, <int>D, <int>(T * N), 1, dA, <int>H,
             &x[0, 0, 0], <int>D, 1, &dW_ih[0, 0], <int>D)
        gemm(True, False, <int>H, <int>H, <int>(T * N), 1, dA, <int>H,
             &hs[0, 0, 0], <int>H, 1, &dW_hh[0, 0], <int>H)
        colsum_add(&db_ih[0], dA, T * N, H)
        colsum_add(&db_hh[0], dA, T * N, H)
        gemm(False, False, <int>(T * N), <int>D, <int>H, 1, dA, <int>H,
             &W_ih[0, 0], <int>D, 1, &dx[0, 0, 0], <int>D)
        cr_ftz_end(fpmode)
