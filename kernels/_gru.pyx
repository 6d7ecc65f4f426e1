"""GRU forward and truncated-BPTT backward over a whole sequence; PyTorch's math.

Sizes: T time steps, N batch, D input, H hidden; 3 gates in PyTorch's order r, z, n.

    gx_t = x_t W_ih^T + b_ih                                    (N, 3H)
    gh_t = h_{t-1} W_hh^T + b_hh                                (N, 3H)
    r = σ(gx_r + gh_r),  z = σ(gx_z + gh_z)
    n = tanh(gx_n + r * gh_n)
    h_t = (1 - z) * n + z * h_{t-1}

Unlike the LSTM, b_hh cannot be folded into the input projection: gh_n is multiplied by r.
Weights in PyTorch's layout: W_ih (3H, D), W_hh (3H, H), b_ih (3H), b_hh (3H).
Saved for backward (allocated by the caller, charrnn.cells):
    hs  (T+1, N, H)   hs[0] = h0, hs[1:] = the output y
    act (T, N, 3H)    r, z, n
    ghn (T, N, H)     gh_n = W_hn h_{t-1} + b_hn
Scratch: gh (N, 3H) in forward; dgx, dgh (T, N, 3H), dh_a, dh_b (N, H) in backward.
Backward adds (+=) into every gradient it is given.
"""
from cython cimport floating
from libc.string cimport memcpy

from _blas cimport gemm
from _cellmath cimport (need, shape2, shape3, cr_ftz_begin, cr_ftz_end, fill_bias, colsum_add, add_inplace,
                        gru_fwd_step_f32, gru_fwd_step_f64,
                        gru_bwd_step_f32, gru_bwd_step_f64)


cdef inline int _need(bint ok, str what) except -1:
    return need(ok, "gru", what)


def forward(const floating[:, :, ::1] x, const floating[:, ::1] h0,
            const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
            const floating[::1] b_ih, const floating[::1] b_hh,
            floating[:, :, ::1] hs, floating[:, :, ::1] act, floating[:, :, ::1] ghn,
            floating[:, ::1] gh):
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], D = x.shape[2], H = h0.shape[1]
    cdef Py_ssize_t G = 3 * H, t
    _need(T >= 1 and N >= 1 and D >= 1 and H >= 1, "empty dimension")
    _need(h0.shape[0] == N, "h0")
    _need(W_ih.shape[0] == G and W_ih.shape[1] == D and W_hh.shape[0] == G
          and W_hh.shape[1] == H and b_ih.shape[0] == G and b_hh.shape[0] == G, "weights")
    _need(hs.shape[0] == T + 1 and hs.shape[1] == N and hs.shape[2] == H, "hs")
    _need(act.shape[0] == T and act.shape[1] == N and act.shape[2] == G, "act")
    _need(ghn.shape[0] == T and ghn.shape[1] == N and ghn.shape[2] == H, "ghn")
    _need(gh.shape[0] == N and gh.shape[1] == G, "gh")
    cdef floating *A = &act[0, 0, 0]
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        memcpy(&hs[0, 0, 0], &h0[0, 0], N * H * sizeof(floating))
        fill_bias(A, &b_ih[0], <floating *> NULL, T * N, G)
        gemm(False, True, <int>(T * N), <int>G, <int>D, 1, &x[0, 0, 0], <int>D,
             &W_ih[0, 0], <int>D, 1, A, <int>G)
        for t in range(T):
            fill_bias(&gh[0, 0], &b_hh[0], <floating *> NULL, N, G)
            gemm(False, True, <int>N, <int>G, <int>H, 1, &hs[t, 0, 0], <int>H,
                 &W_hh[0, 0], <int>H, 1, &gh[0, 0], <int>G)
            if floating is float:
                gru_fwd_step_f32(A + t * N * G, &gh[0, 0], &ghn[t, 0, 0], &hs[t, 0, 0],
                                 &hs[t + 1, 0, 0], N, H)
            else:
                gru_fwd_step_f64(A + t * N * G, &gh[0, 0], &ghn[t, 0, 0], &hs[t, 0, 0],
                                 &hs[t + 1, 0, 0], N, H)
        cr_ftz_end(fpmode)


def backward(const floating[:, :, ::1] dy, const floating[:, ::1] dhT,
             const floating[:, :, ::1] x, const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
             const floating[:, :, ::1] hs, const floating[:, :, ::1] act,
             const floating[:, :, ::1] ghn,
             floating[:, :, ::1] dgx, floating[:, :, ::1] dgh,
             floating[:, ::1] dh_a, floating[:, ::1] dh_b,
             floating[:, :, ::1] dx, floating[:, ::1] dh0,
             floating[:, ::1] dW_ih, floating[:, ::1] dW_hh,
             floating[::1] db_ih, floating[::1] db_hh):
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], D = x.shape[2], H = W_hh.shape[1]
    cdef Py_ssize_t G = 3 * H, t
    _need(T >= 1 and N >= 1 and D >= 1 and H >= 1, "empty dimension")
    _need(W_ih.shape[0] == G and W_ih.shape[1] == D and W_hh.shape[0] == G, "weights")
    _need(hs.shape[0] == T + 1 and hs.shape[1] == N and hs.shape[2] == H, "hs")
    _need(shape3(act.shape, T, N, G) and shape3(dgx.shape, T, N, G)
          and shape3(dgh.shape, T, N, G), "act/dgx/dgh")
    _need(shape3(ghn.shape, T, N, H) and shape3(dy.shape, T, N, H)
          and shape3(dx.shape, T, N, D), "ghn/dy/dx")
    _need(shape2(dhT.shape, N, H) and shape2(dh_a.shape, N, H) and shape2(dh_b.shape, N, H)
          and shape2(dh0.shape, N, H), "state gradients")
    _need(dW_ih.shape[0] == G and dW_ih.shape[1] == D and dW_hh.shape[0] == G
          and dW_hh.shape[1] == H and db_ih.shape[0] == G and db_hh.shape[0] == G, "weight gradients")
    cdef floating *dX = &dgx[0, 0, 0]
    cdef floating *dH = &dgh[0, 0, 0]
    cdef floating *dh_next = &dh_a[0, 0]
    cdef floating *dh_prev
    cdef floating *swap
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        memcpy(dh_next, &dhT[0, 0], N * H * sizeof(floating))
        for t in range(T - 1, -1, -1):
            dh_prev = &dh_b[0, 0] if dh_next == &dh_a[0, 0] else &dh_a[0, 0]
            if floating is float:
                gru_bwd_step_f32(&act[t, 0, 0], &ghn[t, 0, 0], &hs[t, 0, 0], &dy[t, 0, 0],
                                 dh_next, dX + t * N * G, dH + t * N * G, dh_prev, N, H)
            else:
                gru_bwd_step_f64(&act[t, 0, 0], &ghn[t, 0, 0], &hs[t, 0, 0], &dy[t, 0, 0],
                                 dh_next, dX + t * N * G, dH + t * N * G, dh_prev, N, H)
            gemm(False, False, <int>N, <int>H, <int>G, 1, dH + t * N * G, <int>G,
                 &W_hh[0, 0], <int>H, 1, dh_prev, <int>H)
            dh_next = dh_prev
        # The gradient of h_{-1} is the gradient of h0. Formed in full, then added once, so
        # that repeated calls accumulate exactly.
        add_inplace(&dh0[0, 0], dh_next, N * H)
        gemm(True, False, <int>G, <int>D, <int>(T * N), 1, dX, <int>G,
             &x[0, 0, 0], <int>D, 1, &dW_ih[0, 0], <int>D)
        gemm(True, False, <int>G, <int>H, <int>(T * N), 1, dH, <int>G,
             &hs[0, 0, 0], <int>H, 1, &dW_hh[0, 0], <int>H)
        colsum_add(&db_ih[0], dX, T * N, G)
        colsum_add(&db_hh[0], dH, T * N, G)
        gemm(False, False, <int>(T * N), <int>D, <int>G, 1, dX, <int>G,
             &W_ih[0, 0], <int>D, 1, &dx[0, 0, 0], <int>D)
        cr_ftz_end(fpmode)
