"""Vanilla (tanh) RNN forward and truncated-BPTT backward over a whole sequence; PyTorch's math.

Sizes: T time steps, N batch, D input, H hidden.

    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)       (N, H)

Weights in PyTorch's layout: W_ih (H, D), W_hh (H, H), b_ih (H), b_hh (H).
Saved for backward (allocated by the caller, charrnn.cells):
    hs  (T+1, N, H)   hs[0] = h0, hs[1:] = the output y  (tanh' = 1 - h^2 needs only h)
Scratch: pre (T, N, H) in forward; da (T, N, H), dh (N, H) in backward.
Backward adds (+=) into every gradient it is given.
Resets: as in _lstm.pyx. reset (T, N) uint8 or empty (0, 0): none; the forward's steps
with resets read h_{t-1} from scratch hz (N, H); backward writes hp (T+1, N, H), the
states each step saw, which the weight gradients then read instead of hs.
Packed weights Wp_ih, Wp_hh: as in _lstm.pyx (empty arrays: BLAS).

As in _lstm.pyx, each pass has two phases that charrnn.cells can spread over threads:
recurrences over batch rows [n0, n1), whole-sequence GEMMs over output rows.
"""
from cython cimport floating
from libc.stdint cimport uint8_t
from libc.string cimport memcpy

from _blas cimport mm
from _cellmath cimport (need, need_range, packed, mm_bias, shape2, shape3, sequence_weight_grads, cr_ftz_begin, cr_ftz_end, fill_bias,
                        colsum_add, add_inplace, reset_given, any_reset, copy_live, zero_reset,
                        rnn_fwd_step_f32, rnn_fwd_step_f64,
                        rnn_bwd_step_f32, rnn_bwd_step_f64)

include "_dispatch.pxi"


cdef inline int _need(bint ok, str what) except -1:
    return need(ok, "rnn", what)


cdef inline int _range(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n, str what) except -1:
    return need_range(lo, hi, n, "rnn", what)


# ---- forward --------------------------------------------------------------------------

def forward_input(const floating[:, :, ::1] x, const floating[:, ::1] W_ih,
                  const floating[::1] Wp_ih, const floating[::1] b_ih, const floating[::1] b_hh,
                  floating[:, :, ::1] pre, Py_ssize_t r0, Py_ssize_t r1):
    """pre rows [r0, r1) of (T*N, H) := x W_ih^T + b_ih + b_hh."""
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], D = x.shape[2], H = W_ih.shape[0]
    _need(T >= 1 and N >= 1 and D >= 1 and H >= 1, "empty dimension")
    _need(W_ih.shape[1] == D and b_ih.shape[0] == H and b_hh.shape[0] == H, "weights")
    _need(shape3(pre.shape, T, N, H), "pre")
    _range(r0, r1, T * N, "row")
    cdef const floating *Wp = packed(Wp_ih, D, H, "rnn", "Wp_ih")
    if r1 == r0:
        return
    cdef floating *P = &pre[0, 0, 0] + r0 * H
    with nogil:
        mm_bias(<int>(r1 - r0), <int>H, <int>D, &x[0, 0, 0] + r0 * D, <int>D, &W_ih[0, 0],
                <int>D, Wp, &b_ih[0], &b_hh[0], P, <int>H)


def forward_recur(const floating[:, ::1] h0, const uint8_t[:, ::1] reset,
                  const floating[:, ::1] W_hh,
                  const floating[::1] Wp_hh, floating[:, :, ::1] hs, floating[:, :, ::1] pre,
                  floating[:, ::1] hz, Py_ssize_t n0, Py_ssize_t n1):
    """The recurrence for batch rows [n0, n1). hz (N, H): scratch for steps with resets
    (empty when reset is)."""
    cdef Py_ssize_t T = pre.shape[0], N = pre.shape[1], H = h0.shape[1], t, M = n1 - n0
    _need(T >= 1 and N >= 1 and H >= 1, "empty dimension")
    _need(shape2(h0.shape, N, H) and shape2(W_hh.shape, H, H), "h0/W_hh")
    _need(shape3(hs.shape, T + 1, N, H) and shape3(pre.shape, T, N, H), "hs/pre")
    _range(n0, n1, N, "batch")
    cdef bint resets = reset_given(reset, T, N, "rnn")
    _need(not resets or shape2(hz.shape, N, H), "hz")
    cdef const floating *Wp = packed(Wp_hh, H, H, "rnn", "Wp_hh")
    if M == 0:
        return
    cdef floating *P = &pre[0, 0, 0]
    cdef const floating *hp
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        memcpy(&hs[0, n0, 0], &h0[n0, 0], M * H * sizeof(floating))
        for t in range(T):
            hp = &hs[t, n0, 0]
            if resets and any_reset(&reset[t, n0], M):
                copy_live(&hz[n0, 0], hp, &reset[t, n0], M, H)
                hp = &hz[n0, 0]
            mm(Wp != NULL, False, True, <int>M, <int>H, <int>H, hp, <int>H,
               &W_hh[0, 0], <int>H, Wp, True, P + (t * N + n0) * H, <int>H)
            if floating is float:
                rnn_fwd_step_f32(P + (t * N + n0) * H, &hs[t + 1, n0, 0], M * H)
            else:
                rnn_fwd_step_f64(P + (t * N + n0) * H, &hs[t + 1, n0, 0], M * H)
        cr_ftz_end(fpmode)


def forward(const floating[:, :, ::1] x, const floating[:, ::1] h0,
            const uint8_t[:, ::1] reset,
            const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
            const floating[::1] Wp_ih, const floating[::1] Wp_hh,
            const floating[::1] b_ih, const floating[::1] b_hh,
            floating[:, :, ::1] hs, floating[:, :, ::1] pre, floating[:, ::1] hz):
    _need(W_ih.shape[0] == W_hh.shape[0], "W_ih/W_hh")
    forward_input(x, W_ih, Wp_ih, b_ih, b_hh, pre, 0, x.shape[0] * x.shape[1])
    forward_recur(h0, reset, W_hh, Wp_hh, hs, pre, hz, 0, x.shape[1])


# ---- backward -------------------------------------------------------------------------

def backward_recur(const floating[:, :, ::1] dy, const floating[:, ::1] dhT,
                   const uint8_t[:, ::1] reset,
                   const floating[:, ::1] W_hh, const floating[::1] Wp_hh,
                   const floating[:, :, ::1] hs,
                   floating[:, :, ::1] da, floating[:, ::1] dh, floating[:, :, ::1] hp,
                   floating[:, ::1] dh0, Py_ssize_t n0, Py_ssize_t n1):
    """da (T, N, H), the gradient of the pre-activations, for batch rows [n0, n1);
    adds the gradient of h0. With resets, also hp[:T, n0:n1] (T+1, N, H) := the h_{t-1}
    each step saw."""
    cdef Py_ssize_t T = da.shape[0], N = da.shape[1], H = W_hh.shape[1], t, M = n1 - n0
    _need(T >= 1 and N >= 1 and H >= 1, "empty dimension")
    _need(shape2(W_hh.shape, H, H), "W_hh")
    _need(shape3(hs.shape, T + 1, N, H) and shape3(dy.shape, T, N, H), "hs/dy")
    _need(shape2(dhT.shape, N, H) and shape2(dh.shape, N, H) and shape2(dh0.shape, N, H),
          "state gradients")
    _range(n0, n1, N, "batch")
    cdef bint resets = reset_given(reset, T, N, "rnn")
    _need(not resets or shape3(hp.shape, T + 1, N, H), "hp")
    cdef const floating *Wp = packed(Wp_hh, H, H, "rnn", "Wp_hh")
    if M == 0:
        return
    cdef floating *dA = &da[0, 0, 0]
    cdef bint cut
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        memcpy(&dh[n0, 0], &dhT[n0, 0], M * H * sizeof(floating))
        for t in range(T - 1, -1, -1):
            cut = False
            if resets:
                cut = any_reset(&reset[t, n0], M)
                if cut:
                    copy_live(&hp[t, n0, 0], &hs[t, n0, 0], &reset[t, n0], M, H)
                else:
                    memcpy(&hp[t, n0, 0], &hs[t, n0, 0], M * H * sizeof(floating))
            if floating is float:
                rnn_bwd_step_f32(&hs[t + 1, n0, 0], &dy[t, n0, 0], &dh[n0, 0],
                                 dA + (t * N + n0) * H, M * H)
            else:
                rnn_bwd_step_f64(&hs[t + 1, n0, 0], &dy[t, n0, 0], &dh[n0, 0],
                                 dA + (t * N + n0) * H, M * H)
            if not cut:
                mm(Wp != NULL, False, False, <int>M, <int>H, <int>H, dA + (t * N + n0) * H,
                   <int>H, &W_hh[0, 0], <int>H, Wp, t == 0,
                   &dh[n0, 0] if t > 0 else &dh0[n0, 0], <int>H)
                continue
            # streams that reset at t: nothing flows back past it, nor into dh0
            mm(Wp != NULL, False, False, <int>M, <int>H, <int>H, dA + (t * N + n0) * H,
               <int>H, &W_hh[0, 0], <int>H, Wp, False, &dh[n0, 0], <int>H)
            zero_reset(&dh[n0, 0], &reset[t, n0], M, H)
            if t == 0:
                add_inplace(&dh0[n0, 0], &dh[n0, 0], M * H)
        cr_ftz_end(fpmode)


def backward_weights(const floating[:, :, ::1] x, const floating[:, ::1] W_ih,
                     const floating[::1] Wp_ih, const floating[:, :, ::1] hs, const floating[:, :, ::1] da,
                     floating[:, :, ::1] dx, floating[:, ::1] dW_ih, floating[:, ::1] dW_hh,
                     floating[::1] db_ih, floating[::1] db_hh,
                     Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t r0, Py_ssize_t r1):
    """Weight and bias gradients for hidden rows [g0, g1), dx for input rows [r0, r1)."""
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], D = x.shape[2], H = W_ih.shape[0]
    cdef Py_ssize_t R = T * N
    _need(T >= 1 and N >= 1 and D >= 1 and H >= 1, "empty dimension")
    _need(W_ih.shape[1] == D, "W_ih")
    _need(shape3(hs.shape, T + 1, N, H) and shape3(da.shape, T, N, H)
          and shape3(dx.shape, T, N, D), "hs/da/dx")
    _need(shape2(dW_ih.shape, H, D) and shape2(dW_hh.shape, H, H) and db_ih.shape[0] == H
          and db_hh.shape[0] == H, "weight gradients")
    _range(g0, g1, H, "hidden")
    _range(r0, r1, R, "row")
    cdef const floating *Wp = packed(Wp_ih, H, D, "rnn", "Wp_ih")
    cdef const floating *dA = &da[0, 0, 0]
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        sequence_weight_grads(dA, dA, R, H, &x[0, 0, 0], D, &hs[0, 0, 0], H, &W_ih[0, 0], Wp,
                              &dx[0, 0, 0], &dW_ih[0, 0], &dW_hh[0, 0], &db_ih[0], &db_hh[0],
                              g0, g1, r0, r1)
        cr_ftz_end(fpmode)


def backward(const floating[:, :, ::1] dy, const floating[:, ::1] dhT,
             const uint8_t[:, ::1] reset,
             const floating[:, :, ::1] x, const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
             const floating[::1] Wp_ih, const floating[::1] Wp_hh,
             const floating[:, :, ::1] hs,
             floating[:, :, ::1] da, floating[:, ::1] dh, floating[:, :, ::1] hp,
             floating[:, :, ::1] dx, floating[:, ::1] dh0,
             floating[:, ::1] dW_ih, floating[:, ::1] dW_hh,
             floating[::1] db_ih, floating[::1] db_hh):
    _need(W_ih.shape[0] == W_hh.shape[0], "W_ih/W_hh")
    _need(shape3(da.shape, x.shape[0], x.shape[1], W_hh.shape[1]), "da")
    backward_recur(dy, dhT, reset, W_hh, Wp_hh, hs, da, dh, hp, dh0, 0, x.shape[1])
    backward_weights(x, W_ih, Wp_ih, hp if reset.shape[0] else hs, da, dx, dW_ih, dW_hh,
                     db_ih, db_hh, 0, W_ih.shape[0], 0, x.shape[0] * x.shape[1])
