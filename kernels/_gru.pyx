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
Resets: as in _lstm.pyx. reset (T, N) uint8 or empty (0, 0): none; the forward's steps
with resets read h_{t-1} from scratch hz (N, H), backward's from hp (T+1, N, H), the
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
                        gru_fwd_step_f32, gru_fwd_step_f64,
                        gru_bwd_step_f32, gru_bwd_step_f64)

include "_dispatch.pxi"


cdef inline int _need(bint ok, str what) except -1:
    return need(ok, "gru", what)


cdef inline int _range(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n, str what) except -1:
    return need_range(lo, hi, n, "gru", what)


# ---- forward --------------------------------------------------------------------------

def forward_input(const floating[:, :, ::1] x, const floating[:, ::1] W_ih,
                  const floating[::1] Wp_ih, const floating[::1] b_ih, floating[:, :, ::1] act,
                  Py_ssize_t r0, Py_ssize_t r1):
    """act rows [r0, r1) of (T*N, 3H) := x W_ih^T + b_ih."""
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], D = x.shape[2], G = W_ih.shape[0]
    _need(T >= 1 and N >= 1 and D >= 1 and G >= 3 and G % 3 == 0, "empty dimension")
    _need(W_ih.shape[1] == D and b_ih.shape[0] == G, "weights")
    _need(shape3(act.shape, T, N, G), "act")
    _range(r0, r1, T * N, "row")
    cdef const floating *Wp = packed(Wp_ih, D, G, "gru", "Wp_ih")
    if r1 == r0:
        return
    cdef floating *A = &act[0, 0, 0] + r0 * G
    with nogil:
        mm_bias(<int>(r1 - r0), <int>G, <int>D, &x[0, 0, 0] + r0 * D, <int>D, &W_ih[0, 0],
                <int>D, Wp, &b_ih[0], <floating *> NULL, A, <int>G)


def forward_recur(const floating[:, ::1] h0, const uint8_t[:, ::1] reset,
                  const floating[:, ::1] W_hh,
                  const floating[::1] Wp_hh, const floating[::1] b_hh, floating[:, :, ::1] hs,
                  floating[:, :, ::1] act, floating[:, :, ::1] ghn, floating[:, ::1] gh,
                  floating[:, ::1] hz, Py_ssize_t n0, Py_ssize_t n1):
    """The recurrence for batch rows [n0, n1). hz (N, H): scratch for steps with resets
    (empty when reset is)."""
    cdef Py_ssize_t T = act.shape[0], N = act.shape[1], H = h0.shape[1], G = 3 * H
    cdef Py_ssize_t t, M = n1 - n0
    _need(T >= 1 and N >= 1 and H >= 1, "empty dimension")
    _need(shape2(h0.shape, N, H), "h0")
    _need(shape2(W_hh.shape, G, H) and b_hh.shape[0] == G, "W_hh/b_hh")
    _need(shape3(hs.shape, T + 1, N, H), "hs")
    _need(shape3(act.shape, T, N, G) and shape3(ghn.shape, T, N, H), "act/ghn")
    _need(shape2(gh.shape, N, G), "gh")
    _range(n0, n1, N, "batch")
    cdef bint resets = reset_given(reset, T, N, "gru")
    _need(not resets or shape2(hz.shape, N, H), "hz")
    cdef const floating *Wp = packed(Wp_hh, H, G, "gru", "Wp_hh")
    if M == 0:
        return
    cdef floating *A = &act[0, 0, 0]
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
            mm_bias(<int>M, <int>G, <int>H, hp, <int>H, &W_hh[0, 0], <int>H, Wp,
                    &b_hh[0], <floating *> NULL, &gh[n0, 0], <int>G)
            if floating is float:
                gru_fwd_step_f32(A + (t * N + n0) * G, &gh[n0, 0], &ghn[t, n0, 0],
                                 hp, &hs[t + 1, n0, 0], M, H)
            else:
                gru_fwd_step_f64(A + (t * N + n0) * G, &gh[n0, 0], &ghn[t, n0, 0],
                                 hp, &hs[t + 1, n0, 0], M, H)
        cr_ftz_end(fpmode)


def forward(const floating[:, :, ::1] x, const floating[:, ::1] h0,
            const uint8_t[:, ::1] reset,
            const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
            const floating[::1] Wp_ih, const floating[::1] Wp_hh,
            const floating[::1] b_ih, const floating[::1] b_hh,
            floating[:, :, ::1] hs, floating[:, :, ::1] act, floating[:, :, ::1] ghn,
            floating[:, ::1] gh, floating[:, ::1] hz):
    _need(W_ih.shape[0] == W_hh.shape[0], "W_ih/W_hh gates")
    forward_input(x, W_ih, Wp_ih, b_ih, act, 0, x.shape[0] * x.shape[1])
    forward_recur(h0, reset, W_hh, Wp_hh, b_hh, hs, act, ghn, gh, hz, 0, x.shape[1])


# ---- backward -------------------------------------------------------------------------

def backward_recur(const floating[:, :, ::1] dy, const floating[:, ::1] dhT,
                   const uint8_t[:, ::1] reset,
                   const floating[:, ::1] W_hh, const floating[::1] Wp_hh,
                   const floating[:, :, ::1] hs,
                   const floating[:, :, ::1] act, const floating[:, :, ::1] ghn,
                   floating[:, :, ::1] dgx, floating[:, :, ::1] dgh,
                   floating[:, ::1] dh_a, floating[:, ::1] dh_b, floating[:, :, ::1] hp,
                   floating[:, ::1] dh0, Py_ssize_t n0, Py_ssize_t n1):
    """dgx, dgh (T, N, 3H) for batch rows [n0, n1); adds the gradient of h0. With
    resets, also hp[:T, n0:n1] (T+1, N, H) := the h_{t-1} each step saw."""
    cdef Py_ssize_t T = act.shape[0], N = act.shape[1], H = W_hh.shape[1], G = 3 * H
    cdef Py_ssize_t t, M = n1 - n0
    _need(T >= 1 and N >= 1 and H >= 1, "empty dimension")
    _need(shape2(W_hh.shape, G, H), "W_hh")
    _need(shape3(hs.shape, T + 1, N, H), "hs")
    _need(shape3(act.shape, T, N, G) and shape3(dgx.shape, T, N, G)
          and shape3(dgh.shape, T, N, G), "act/dgx/dgh")
    _need(shape3(ghn.shape, T, N, H) and shape3(dy.shape, T, N, H), "ghn/dy")
    _need(shape2(dhT.shape, N, H) and shape2(dh_a.shape, N, H) and shape2(dh_b.shape, N, H)
          and shape2(dh0.shape, N, H), "state gradients")
    _range(n0, n1, N, "batch")
    cdef bint resets = reset_given(reset, T, N, "gru")
    _need(not resets or shape3(hp.shape, T + 1, N, H), "hp")
    cdef const floating *Wp = packed(Wp_hh, G, H, "gru", "Wp_hh")
    if M == 0:
        return
    cdef floating *dX = &dgx[0, 0, 0]
    cdef floating *dH = &dgh[0, 0, 0]
    cdef floating *dh_next = &dh_a[n0, 0]
    cdef floating *dh_prev
    cdef const floating *h_prev
    cdef bint cut
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        memcpy(dh_next, &dhT[n0, 0], M * H * sizeof(floating))
        for t in range(T - 1, -1, -1):
            dh_prev = &dh_b[n0, 0] if dh_next == &dh_a[n0, 0] else &dh_a[n0, 0]
            h_prev, cut = &hs[t, n0, 0], False
            if resets:
                cut = any_reset(&reset[t, n0], M)
                if cut:
                    copy_live(&hp[t, n0, 0], h_prev, &reset[t, n0], M, H)
                else:
                    memcpy(&hp[t, n0, 0], h_prev, M * H * sizeof(floating))
                h_prev = &hp[t, n0, 0]
            if floating is float:
                gru_bwd_step_f32(&act[t, n0, 0], &ghn[t, n0, 0], h_prev, &dy[t, n0, 0],
                                 dh_next, dX + (t * N + n0) * G, dH + (t * N + n0) * G,
                                 dh_prev, M, H)
            else:
                gru_bwd_step_f64(&act[t, n0, 0], &ghn[t, n0, 0], h_prev, &dy[t, n0, 0],
                                 dh_next, dX + (t * N + n0) * G, dH + (t * N + n0) * G,
                                 dh_prev, M, H)
            mm(Wp != NULL, False, False, <int>M, <int>H, <int>G, dH + (t * N + n0) * G, <int>G,
               &W_hh[0, 0], <int>H, Wp, True, dh_prev, <int>H)
            if cut:   # streams that reset at t: nothing flows back past it, nor into dh0
                zero_reset(dh_prev, &reset[t, n0], M, H)
            dh_next = dh_prev
        # The gradient of h_{-1} is the gradient of h0. Formed in full, then added once, so
        # that repeated calls accumulate exactly.
        add_inplace(&dh0[n0, 0], dh_next, M * H)
        cr_ftz_end(fpmode)


def backward_weights(const floating[:, :, ::1] x, const floating[:, ::1] W_ih,
                     const floating[::1] Wp_ih, const floating[:, :, ::1] hs,
                     const floating[:, :, ::1] dgx, const floating[:, :, ::1] dgh,
                     floating[:, :, ::1] dx, floating[:, ::1] dW_ih, floating[:, ::1] dW_hh,
                     floating[::1] db_ih, floating[::1] db_hh,
                     Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t r0, Py_ssize_t r1):
    """Weight and bias gradients for gate rows [g0, g1) of the 3H, dx for rows [r0, r1)."""
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], D = x.shape[2], G = W_ih.shape[0]
    cdef Py_ssize_t H = G // 3, R = T * N
    _need(T >= 1 and N >= 1 and D >= 1 and H >= 1 and G == 3 * H, "empty dimension")
    _need(W_ih.shape[1] == D, "W_ih")
    _need(shape3(hs.shape, T + 1, N, H) and shape3(dgx.shape, T, N, G)
          and shape3(dgh.shape, T, N, G) and shape3(dx.shape, T, N, D), "hs/dgx/dgh/dx")
    _need(shape2(dW_ih.shape, G, D) and shape2(dW_hh.shape, G, H) and db_ih.shape[0] == G
          and db_hh.shape[0] == G, "weight gradients")
    _range(g0, g1, G, "gate")
    _range(r0, r1, R, "row")
    cdef const floating *Wp = packed(Wp_ih, G, D, "gru", "Wp_ih")
    cdef const floating *dX = &dgx[0, 0, 0]
    cdef const floating *dH = &dgh[0, 0, 0]
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        sequence_weight_grads(dX, dH, R, G, &x[0, 0, 0], D, &hs[0, 0, 0], H, &W_ih[0, 0], Wp,
                              &dx[0, 0, 0], &dW_ih[0, 0], &dW_hh[0, 0], &db_ih[0], &db_hh[0],
                              g0, g1, r0, r1)
        cr_ftz_end(fpmode)


def backward(const floating[:, :, ::1] dy, const floating[:, ::1] dhT,
             const uint8_t[:, ::1] reset,
             const floating[:, :, ::1] x, const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
             const floating[::1] Wp_ih, const floating[::1] Wp_hh,
             const floating[:, :, ::1] hs, const floating[:, :, ::1] act,
             const floating[:, :, ::1] ghn,
             floating[:, :, ::1] dgx, floating[:, :, ::1] dgh,
             floating[:, ::1] dh_a, floating[:, ::1] dh_b, floating[:, :, ::1] hp,
             floating[:, :, ::1] dx, floating[:, ::1] dh0,
             floating[:, ::1] dW_ih, floating[:, ::1] dW_hh,
             floating[::1] db_ih, floating[::1] db_hh):
    _need(W_ih.shape[0] == W_hh.shape[0], "W_ih/W_hh gates")
    _need(shape3(act.shape, x.shape[0], x.shape[1], W_hh.shape[0]), "act")
    backward_recur(dy, dhT, reset, W_hh, Wp_hh, hs, act, ghn, dgx, dgh, dh_a, dh_b, hp, dh0,
                   0, x.shape[1])
    backward_weights(x, W_ih, Wp_ih, hp if reset.shape[0] else hs, dgx, dgh, dx, dW_ih, dW_hh,
                     db_ih, db_hh, 0, W_ih.shape[0], 0, x.shape[0] * x.shape[1])
