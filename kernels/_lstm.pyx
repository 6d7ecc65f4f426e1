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
Backward adds (+=) into every gradient it is given.

Resets (the semantics: charrnn.nn.reference): reset (T, N) uint8, or an empty (0, 0)
array for none, which costs one test per step. At a step where some of a thread's
streams reset, the step reads its h_{t-1}, c_{t-1} from scratch copies hz, cz (N, H)
with those rows zeroed, so hs and cs stay the true outputs. Backward cuts dh, dc there,
and writes hp (T+1, N, H): hs with the states a reset replaced zeroed (hp[T] unused),
which backward_weights then reads instead of hs, so dW_hh is exact, not corrected.

Packed weights (float32; charrnn.cells makes them with _ops.sgemm_pack for the current tier):
Wp_ih, Wp_hh are W_ih^T, W_hh^T packed for the forward, W_ih, W_hh packed for the
backward; with them every product runs on charrnn's own sgemm (sgemm.h), the recurrent
weights packed once for all T steps. Empty arrays instead: BLAS.

Each pass is split in two phases so that charrnn.cells can run them on several threads
with single-threaded BLAS: the recurrences touch only batch rows [n0, n1) (streams are
independent), the whole-sequence GEMMs only output rows [r0, r1) or gate rows [g0, g1).
`forward` and `backward` run all phases on the calling thread.

Shapes are checked by charrnn.cells; the checks here are the last line of defence so
that no call can touch memory out of bounds.
"""
from cython cimport floating
from libc.stdint cimport uint8_t
from libc.string cimport memcpy

from _blas cimport mm
from _cellmath cimport (need, need_range, packed, mm_bias, shape2, shape3, sequence_weight_grads, cr_ftz_begin, cr_ftz_end, fill_bias,
                        colsum_add, add_inplace, reset_given, any_reset, copy_live, zero_reset,
                        lstm_fwd_step_f32, lstm_fwd_step_f64,
                        lstm_bwd_step_f32, lstm_bwd_step_f64)

include "_dispatch.pxi"


cdef inline int _need(bint ok, str what) except -1:
    return need(ok, "lstm", what)


cdef inline int _range(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n, str what) except -1:
    return need_range(lo, hi, n, "lstm", what)


# ---- forward --------------------------------------------------------------------------

def forward_input(const floating[:, :, ::1] x, const floating[:, ::1] W_ih,
                  const floating[::1] Wp_ih, const floating[::1] b_ih, const floating[::1] b_hh,
                  floating[:, :, ::1] act, Py_ssize_t r0, Py_ssize_t r1):
    """act rows [r0, r1) of (T*N, 4H) := x W_ih^T + b_ih + b_hh (input part of all steps)."""
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], D = x.shape[2], G = W_ih.shape[0]
    _need(T >= 1 and N >= 1 and D >= 1 and G >= 4 and G % 4 == 0, "empty dimension")
    _need(W_ih.shape[1] == D and b_ih.shape[0] == G and b_hh.shape[0] == G, "weights")
    _need(shape3(act.shape, T, N, G), "act")
    _range(r0, r1, T * N, "row")
    cdef const floating *Wp = packed(Wp_ih, D, G, "lstm", "Wp_ih")
    if r1 == r0:
        return
    cdef floating *A = &act[0, 0, 0] + r0 * G
    with nogil:
        mm_bias(<int>(r1 - r0), <int>G, <int>D, &x[0, 0, 0] + r0 * D, <int>D, &W_ih[0, 0],
                <int>D, Wp, &b_ih[0], &b_hh[0], A, <int>G)


def forward_recur(const floating[:, ::1] h0, const floating[:, ::1] c0,
                  const uint8_t[:, ::1] reset,
                  const floating[:, ::1] W_hh, const floating[::1] Wp_hh,
                  floating[:, :, ::1] hs, floating[:, :, ::1] cs,
                  floating[:, :, ::1] act, floating[:, :, ::1] tc,
                  floating[:, ::1] hz, floating[:, ::1] cz, Py_ssize_t n0, Py_ssize_t n1):
    """The recurrence for batch rows [n0, n1): act[t] += h_{t-1} W_hh^T, then gate math.
    hz, cz (N, H): scratch for steps with resets (empty when reset is)."""
    cdef Py_ssize_t T = act.shape[0], N = act.shape[1], H = h0.shape[1], G = 4 * H
    cdef Py_ssize_t t, M = n1 - n0
    _need(T >= 1 and N >= 1 and H >= 1, "empty dimension")
    _need(shape2(h0.shape, N, H) and shape2(c0.shape, N, H), "h0/c0")
    _need(shape2(W_hh.shape, G, H), "W_hh")
    _need(shape3(hs.shape, T + 1, N, H) and shape3(cs.shape, T + 1, N, H), "hs/cs")
    _need(shape3(act.shape, T, N, G) and shape3(tc.shape, T, N, H), "act/tc")
    _range(n0, n1, N, "batch")
    cdef bint resets = reset_given(reset, T, N, "lstm")
    _need(not resets or (shape2(hz.shape, N, H) and shape2(cz.shape, N, H)), "hz/cz")
    cdef const floating *Wp = packed(Wp_hh, H, G, "lstm", "Wp_hh")
    if M == 0:
        return
    cdef floating *A = &act[0, 0, 0]
    cdef const floating *hp
    cdef const floating *cp
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        memcpy(&hs[0, n0, 0], &h0[n0, 0], M * H * sizeof(floating))
        memcpy(&cs[0, n0, 0], &c0[n0, 0], M * H * sizeof(floating))
        for t in range(T):
            hp, cp = &hs[t, n0, 0], &cs[t, n0, 0]
            if resets and any_reset(&reset[t, n0], M):
                copy_live(&hz[n0, 0], hp, &reset[t, n0], M, H)
                copy_live(&cz[n0, 0], cp, &reset[t, n0], M, H)
                hp, cp = &hz[n0, 0], &cz[n0, 0]
            mm(Wp != NULL, False, True, <int>M, <int>G, <int>H, hp, <int>H,
               &W_hh[0, 0], <int>H, Wp, True, A + (t * N + n0) * G, <int>G)
            if floating is float:
                lstm_fwd_step_f32(A + (t * N + n0) * G, cp, &cs[t + 1, n0, 0],
                                  &tc[t, n0, 0], &hs[t + 1, n0, 0], M, H)
            else:
                lstm_fwd_step_f64(A + (t * N + n0) * G, cp, &cs[t + 1, n0, 0],
                                  &tc[t, n0, 0], &hs[t + 1, n0, 0], M, H)
        cr_ftz_end(fpmode)


def forward(const floating[:, :, ::1] x, const floating[:, ::1] h0, const floating[:, ::1] c0,
            const uint8_t[:, ::1] reset,
            const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
            const floating[::1] Wp_ih, const floating[::1] Wp_hh,
            const floating[::1] b_ih, const floating[::1] b_hh,
            floating[:, :, ::1] hs, floating[:, :, ::1] cs,
            floating[:, :, ::1] act, floating[:, :, ::1] tc,
            floating[:, ::1] hz, floating[:, ::1] cz):
    _need(W_ih.shape[0] == W_hh.shape[0], "W_ih/W_hh gates")
    forward_input(x, W_ih, Wp_ih, b_ih, b_hh, act, 0, x.shape[0] * x.shape[1])
    forward_recur(h0, c0, reset, W_hh, Wp_hh, hs, cs, act, tc, hz, cz, 0, x.shape[1])


# ---- backward -------------------------------------------------------------------------

def backward_recur(const floating[:, :, ::1] dy, const floating[:, ::1] dhT,
                   const floating[:, ::1] dcT, const uint8_t[:, ::1] reset,
                   const floating[:, ::1] W_hh, const floating[::1] Wp_hh,
                   const floating[:, :, ::1] hs, const floating[:, :, ::1] cs,
                   const floating[:, :, ::1] act, const floating[:, :, ::1] tc,
                   floating[:, :, ::1] dact, floating[:, ::1] dh, floating[:, ::1] dc,
                   floating[:, :, ::1] hp, floating[:, ::1] cz,
                   floating[:, ::1] dh0, floating[:, ::1] dc0, Py_ssize_t n0, Py_ssize_t n1):
    """Gate gradients dact (T, N, 4H) for batch rows [n0, n1), walking t = T-1 .. 0;
    adds the gradients of h0 and c0. dh, dc (N, H) are scratch. With resets, also
    hp[:T, n0:n1] (T+1, N, H) := the h_{t-1} each step saw; cz (N, H) is scratch."""
    cdef Py_ssize_t T = act.shape[0], N = act.shape[1], H = W_hh.shape[1], G = 4 * H
    cdef Py_ssize_t t, M = n1 - n0
    _need(T >= 1 and N >= 1 and H >= 1, "empty dimension")
    _need(shape2(W_hh.shape, G, H), "W_hh")
    _need(shape3(hs.shape, T + 1, N, H) and shape3(cs.shape, T + 1, N, H), "hs/cs")
    _need(shape3(act.shape, T, N, G) and shape3(dact.shape, T, N, G), "act/dact")
    _need(shape3(tc.shape, T, N, H) and shape3(dy.shape, T, N, H), "tc/dy")
    _need(shape2(dhT.shape, N, H) and shape2(dcT.shape, N, H) and shape2(dh.shape, N, H)
          and shape2(dc.shape, N, H) and shape2(dh0.shape, N, H) and shape2(dc0.shape, N, H),
          "state gradients")
    _range(n0, n1, N, "batch")
    cdef bint resets = reset_given(reset, T, N, "lstm")
    _need(not resets or (shape3(hp.shape, T + 1, N, H) and shape2(cz.shape, N, H)), "hp/cz")
    cdef const floating *Wp = packed(Wp_hh, G, H, "lstm", "Wp_hh")
    if M == 0:
        return
    cdef floating *dA = &dact[0, 0, 0]
    cdef const floating *cp
    cdef const uint8_t *r = NULL
    cdef bint cut
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        memcpy(&dh[n0, 0], &dhT[n0, 0], M * H * sizeof(floating))
        memcpy(&dc[n0, 0], &dcT[n0, 0], M * H * sizeof(floating))
        for t in range(T - 1, -1, -1):
            cp, cut = &cs[t, n0, 0], False
            if resets:
                r = &reset[t, n0]
                cut = any_reset(r, M)
                if cut:
                    copy_live(&hp[t, n0, 0], &hs[t, n0, 0], r, M, H)
                    copy_live(&cz[n0, 0], cp, r, M, H)
                    cp = &cz[n0, 0]
                else:
                    memcpy(&hp[t, n0, 0], &hs[t, n0, 0], M * H * sizeof(floating))
            if floating is float:
                lstm_bwd_step_f32(&act[t, n0, 0], cp, &tc[t, n0, 0], &dy[t, n0, 0],
                                  &dh[n0, 0], &dc[n0, 0], dA + (t * N + n0) * G, M, H)
            else:
                lstm_bwd_step_f64(&act[t, n0, 0], cp, &tc[t, n0, 0], &dy[t, n0, 0],
                                  &dh[n0, 0], &dc[n0, 0], dA + (t * N + n0) * G, M, H)
            if not cut:
                # dh_{t-1} = dact[t] W_hh; at t = 0 it is the gradient of h0: add it there.
                mm(Wp != NULL, False, False, <int>M, <int>H, <int>G, dA + (t * N + n0) * G,
                   <int>G, &W_hh[0, 0], <int>H, Wp, t == 0,
                   &dh[n0, 0] if t > 0 else &dh0[n0, 0], <int>H)
                continue
            # streams that reset at t: nothing flows back past it, nor into dh0, dc0
            mm(Wp != NULL, False, False, <int>M, <int>H, <int>G, dA + (t * N + n0) * G,
               <int>G, &W_hh[0, 0], <int>H, Wp, False, &dh[n0, 0], <int>H)
            zero_reset(&dh[n0, 0], r, M, H)
            zero_reset(&dc[n0, 0], r, M, H)
            if t == 0:
                add_inplace(&dh0[n0, 0], &dh[n0, 0], M * H)
        add_inplace(&dc0[n0, 0], &dc[n0, 0], M * H)
        cr_ftz_end(fpmode)


def backward_weights(const floating[:, :, ::1] x, const floating[:, ::1] W_ih,
                     const floating[::1] Wp_ih, const floating[:, :, ::1] hs, const floating[:, :, ::1] dact,
                     floating[:, :, ::1] dx, floating[:, ::1] dW_ih, floating[:, ::1] dW_hh,
                     floating[::1] db_ih, floating[::1] db_hh,
                     Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t r0, Py_ssize_t r1):
    """Weight and bias gradients for gate rows [g0, g1) of the 4H, and dx for input rows
    [r0, r1) of the T*N: each one GEMM over the whole sequence."""
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], D = x.shape[2], G = W_ih.shape[0]
    cdef Py_ssize_t H = G // 4, R = T * N
    _need(T >= 1 and N >= 1 and D >= 1 and H >= 1 and G == 4 * H, "empty dimension")
    _need(W_ih.shape[1] == D, "W_ih")
    _need(shape3(hs.shape, T + 1, N, H) and shape3(dact.shape, T, N, G)
          and shape3(dx.shape, T, N, D), "hs/dact/dx")
    _need(shape2(dW_ih.shape, G, D) and shape2(dW_hh.shape, G, H) and db_ih.shape[0] == G
          and db_hh.shape[0] == G, "weight gradients")
    _range(g0, g1, G, "gate")
    _range(r0, r1, R, "row")
    cdef const floating *Wp = packed(Wp_ih, G, D, "lstm", "Wp_ih")
    cdef const floating *dA = &dact[0, 0, 0]
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()
        sequence_weight_grads(dA, dA, R, G, &x[0, 0, 0], D, &hs[0, 0, 0], H, &W_ih[0, 0], Wp,
                              &dx[0, 0, 0], &dW_ih[0, 0], &dW_hh[0, 0], &db_ih[0], &db_hh[0],
                              g0, g1, r0, r1)
        cr_ftz_end(fpmode)


def backward(const floating[:, :, ::1] dy, const floating[:, ::1] dhT, const floating[:, ::1] dcT,
             const uint8_t[:, ::1] reset,
             const floating[:, :, ::1] x, const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
             const floating[::1] Wp_ih, const floating[::1] Wp_hh,
             const floating[:, :, ::1] hs, const floating[:, :, ::1] cs,
             const floating[:, :, ::1] act, const floating[:, :, ::1] tc,
             floating[:, :, ::1] dact, floating[:, ::1] dh, floating[:, ::1] dc,
             floating[:, :, ::1] hp, floating[:, ::1] cz,
             floating[:, :, ::1] dx, floating[:, ::1] dh0, floating[:, ::1] dc0,
             floating[:, ::1] dW_ih, floating[:, ::1] dW_hh,
             floating[::1] db_ih, floating[::1] db_hh):
    """dact (T, N, 4H), dh (N, H), dc (N, H) are scratch, and with resets hp (T+1, N, H),
    cz (N, H) too; the rest as in forward."""
    _need(W_ih.shape[0] == W_hh.shape[0], "W_ih/W_hh gates")
    _need(shape3(hs.shape, x.shape[0] + 1, x.shape[1], W_hh.shape[1]), "hs")
    backward_recur(dy, dhT, dcT, reset, W_hh, Wp_hh, hs, cs, act, tc, dact, dh, dc, hp, cz,
                   dh0, dc0, 0, x.shape[1])
    backward_weights(x, W_ih, Wp_ih, hp if reset.shape[0] else hs, dact, dx, dW_ih, dW_hh,
                     db_ih, db_hh, 0, W_ih.shape[0], 0, x.shape[0] * x.shape[1])
