"""The attention decoder's loop over target steps, forward and backward, in one nogil call
each (charrnn/nn/seq2seq.py; the specification is charrnn.nn.reference_seq2seq).

Sizes: T target steps, N rows, Em embedding, C encoder output, D = Em + C the cell input,
Hd decoder hidden, G gate blocks (LSTM 4, GRU 3), GH = G*Hd, S source steps, A key size.
Per step s (0-based), with hs[0] = cs[0] = 0 and ctxs[0] = 0 laid down by the caller:
    xs[s]     = [emb[s] ; ctxs[s]]                                   (N, D)  input feeding
    LSTM      act[s] = xs[s] W_ih^T + b_ih + hs[s] W_hh^T + b_hh; lstm_fwd_step -> hs[s+1], cs[s+1]
    GRU       act[s] = xs[s] W_ih^T + b_ih, gh = hs[s] W_hh^T + b_hh; gru_fwd_step -> hs[s+1]
    attention (kernels/_attn_core.pxi) with query hs[s+1] -> alphas[s], ctxs[s+1]
The cells' step maths are cellmath.h's, the very functions the LSTM / GRU kernels run, on
the current ISA tier; products go through mm / mm_bias (_cellmath.pxd): float32 on
charrnn's own sgemm when packs are given (cells.pack), BLAS otherwise.
Backward takes dfeat (T, N, Hd + C), the gradient of every [h_s ; ctx_s], and adds into
dK, dE (and Bahdanau's dW_q, dv); demb (T, N, Em) is assigned. Gate gradients of all
steps are kept (dact, dgh) so the weight gradients are one GEMM each after the loop:
weight_grads(), a separate call so that threads can cut the loop by rows and the GEMMs by
gate rows.
"""
from cython cimport floating
from libc.math cimport exp, tanh
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset
from _blas cimport mm
from _cellmath cimport (cr_ftz_begin, cr_ftz_end, lstm_fwd_step_f32, lstm_fwd_step_f64, lstm_bwd_step_f32,
                        lstm_bwd_step_f64, gru_fwd_step_f32, gru_fwd_step_f64,
                        gru_bwd_step_f32, gru_bwd_step_f64, mm_bias, packed,
                        sequence_weight_grads)

include "_dispatch.pxi"

KERNEL = "decoder"
include "_s2s_common.pxi"   # BAHDANAU, LUONG, the attention step, LSTM, GRU, CELLS, _need


cdef inline void _lstm_fwd(floating *act, const floating *c_prev, floating *c, floating *tc,
                           floating *h, Py_ssize_t N, Py_ssize_t H) noexcept nogil:
    if floating is float:
        lstm_fwd_step_f32(act, c_prev, c, tc, h, N, H)
    else:
        lstm_fwd_step_f64(act, c_prev, c, tc, h, N, H)


cdef inline void _gru_fwd(floating *act, const floating *gh, floating *ghn,
                          const floating *h_prev, floating *h, Py_ssize_t N,
                          Py_ssize_t H) noexcept nogil:
    if floating is float:
        gru_fwd_step_f32(act, gh, ghn, h_prev, h, N, H)
    else:
        gru_fwd_step_f64(act, gh, ghn, h_prev, h, N, H)


cdef int _active_ok(const int64_t[::1] active, Py_ssize_t T, Py_ssize_t N) except -1:
    cdef Py_ssize_t s
    _need(active.shape[0] == T, f"active has {active.shape[0]} steps, expected {T}")
    for s in range(T):
        _need(0 <= active[s] <= N and (s == 0 or active[s] <= active[s - 1]),
              f"active[{s}] = {active[s]}: must be non-increasing in 0..{N}")
    return 0


cdef tuple _sh(Py_ssize_t *shape, int nd):
    return tuple([shape[i] for i in range(nd)])


def _check(int cell, int kind, T, N, Em, C, Hd, S, A, shapes):
    """Every array's shape against the sizes, or one ValueError naming the first misfit."""
    G = 4 if cell == LSTM else 3
    D, GH = Em + C, G * Hd
    _need(cell in (LSTM, GRU) and kind in (BAHDANAU, LUONG), f"cell {cell}, kind {kind}")
    _need(kind == BAHDANAU or A == Hd, "Luong keys must have the decoder's size")
    want = dict(W_ih=(GH, D), W_hh=(GH, Hd), b_ih=(GH,), b_hh=(GH,), K=(N, S, A), E=(N, S, C),
                emb=(T, N, Em), xs=(T, N, D), hs=(T + 1, N, Hd), act=(T, N, GH),
                tc=(T, N, Hd), alphas=(T, N, S), ctxs=(T + 1, N, C),
                cs=(T + 1, N, Hd) if cell == LSTM else (0, 0, 0),
                gh=(N, GH) if cell == GRU else (0, 0),
                W_q=(Hd, A) if kind == BAHDANAU else (0, 0), v=(A,) if kind == BAHDANAU else (0,),
                tanhs=(T, N, S, A) if kind == BAHDANAU else (T, 0, 0, 0),   # Luong: none
                qW=(N, A) if kind == BAHDANAU else (0, 0),
                dfeat=(T, N, Hd + C), demb=(T, N, Em), dK=(N, S, A), dE=(N, S, C),
                dW_ih=(GH, D), dW_hh=(GH, Hd), db_ih=(GH,), db_hh=(GH,),
                dW_q=(Hd, A) if kind == BAHDANAU else (0, 0), dv=(A,) if kind == BAHDANAU else (0,),
                dact=(T, N, GH), dgh=(T, N, GH) if cell == GRU else (0, 0, 0), dctx=(N, C),
                dq=(N, Hd), dy=(N, Hd), dh=(N, Hd), dc=(N, Hd), dhp=(N, Hd), dx=(N, D),
                ds=(N, S), dqW=(N, A) if kind == BAHDANAU else (0, 0),
                W_qT=(A, Hd) if kind == BAHDANAU else (0, 0))
    for name, shape in shapes.items():
        _need(tuple(shape) == want[name], f"{name} {tuple(shape)}, expected {want[name]}")


def forward(int cell, int kind, const floating[:, :, ::1] emb,
            const floating[:, ::1] W_ih, const floating[::1] Wp_ih,
            const floating[:, ::1] W_hh, const floating[::1] Wp_hh,
            const floating[::1] b_ih, const floating[::1] b_hh,
            const floating[:, :, ::1] K, const floating[:, :, ::1] E,
            const floating[:, ::1] W_q, const floating[::1] v, const int64_t[::1] lengths,
            bint own, floating[:, :, ::1] xs, floating[:, :, ::1] hs, floating[:, :, ::1] cs,
            floating[:, :, ::1] act, floating[:, :, ::1] tc, floating[:, ::1] gh,
            floating[:, :, ::1] alphas, floating[:, :, ::1] ctxs,
            floating[:, :, :, ::1] tanhs, floating[:, ::1] qW, const int64_t[::1] active,
            Py_ssize_t r0=0, Py_ssize_t r1=-1):
    """The loop above over rows [r0, r1) (r1 = -1: N); tc holds the LSTM's tanh(c) or the
    GRU's ghn. hs and ctxs must be zeros (all of them) from the caller. Rows never meet,
    so threads may run disjoint ranges at once (charrnn/nn/seq2seq.py).
    active (T,): step s runs rows n < active[s] only (non-increasing; rows sorted by
    target length, longest first): a row's steps past its target are never scored, so
    they are skipped; their xs are zeroed (weight_grads reads them) and hs stays 0."""
    cdef Py_ssize_t T = emb.shape[0], N = emb.shape[1], Em = emb.shape[2], C = E.shape[2]
    cdef Py_ssize_t Hd = W_hh.shape[1], S = E.shape[1], A = K.shape[2], s, n, M
    cdef Py_ssize_t D = Em + C, GH = W_hh.shape[0]
    _check(cell, kind, T, N, Em, C, Hd, S, A, dict(
        W_ih=_sh(W_ih.shape, 2), W_hh=_sh(W_hh.shape, 2), b_ih=_sh(b_ih.shape, 1), b_hh=_sh(b_hh.shape, 1),
        K=_sh(K.shape, 3), E=_sh(E.shape, 3), emb=_sh(emb.shape, 3), xs=_sh(xs.shape, 3), hs=_sh(hs.shape, 3),
        cs=_sh(cs.shape, 3), act=_sh(act.shape, 3), tc=_sh(tc.shape, 3), gh=_sh(gh.shape, 2),
        alphas=_sh(alphas.shape, 3), ctxs=_sh(ctxs.shape, 3), W_q=_sh(W_q.shape, 2), v=_sh(v.shape, 1),
        tanhs=_sh(tanhs.shape, 4), qW=_sh(qW.shape, 2)))
    own = own and floating is float
    cdef const floating *P_ih = packed(Wp_ih, D, GH, "decoder", "Wp_ih")
    cdef const floating *P_hh = packed(Wp_hh, Hd, GH, "decoder", "Wp_hh")
    _lengths_ok(lengths, N, S)
    _active_ok(active, T, N)
    r1 = N if r1 < 0 else r1
    _need(0 <= r0 <= r1 <= N, f"rows [{r0}, {r1}) of {N}")
    cdef Py_ssize_t e
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()   # denormals cost 100x on Intel (cellmath.h)
        for s in range(T):
            e = min(r1, active[s])            # rows [r0, e) run this step
            for n in range(max(r0, e), r1):
                memset(&xs[s, n, 0], 0, D * sizeof(floating))
            M = e - r0
            if M <= 0:
                continue
            for n in range(r0, e):
                memcpy(&xs[s, n, 0], &emb[s, n, 0], Em * sizeof(floating))
                memcpy(&xs[s, n, Em], &ctxs[s, n, 0], C * sizeof(floating))
            if cell == LSTM:
                mm_bias(<int>M, <int>GH, <int>D, &xs[s, r0, 0], <int>D, &W_ih[0, 0], <int>D, P_ih,
                        &b_ih[0], &b_hh[0], &act[s, r0, 0], <int>GH)
                mm(P_hh != NULL, False, True, <int>M, <int>GH, <int>Hd, &hs[s, r0, 0], <int>Hd,
                   &W_hh[0, 0], <int>Hd, P_hh, True, &act[s, r0, 0], <int>GH)
                _lstm_fwd(&act[s, r0, 0], &cs[s, r0, 0], &cs[s + 1, r0, 0], &tc[s, r0, 0],
                          &hs[s + 1, r0, 0], M, Hd)
            else:
                mm_bias(<int>M, <int>GH, <int>D, &xs[s, r0, 0], <int>D, &W_ih[0, 0], <int>D, P_ih,
                        &b_ih[0], NULL, &act[s, r0, 0], <int>GH)
                mm_bias(<int>M, <int>GH, <int>Hd, &hs[s, r0, 0], <int>Hd, &W_hh[0, 0], <int>Hd,
                        P_hh, &b_hh[0], NULL, &gh[r0, 0], <int>GH)
                _gru_fwd(&act[s, r0, 0], &gh[r0, 0], &tc[s, r0, 0], &hs[s, r0, 0],
                         &hs[s + 1, r0, 0], M, Hd)
            attend_fwd(kind, hs[s + 1], K, E, W_q, v, lengths, own, alphas[s], ctxs[s + 1],
                       tanhs[s], qW, r0, e)
        cr_ftz_end(fpmode)


def backward(int cell, int kind, const floating[:, :, ::1] dfeat,
             const floating[:, ::1] W_ih, const floating[::1] Wp_ih,
             const floating[:, ::1] W_hh, const floating[::1] Wp_hh,
             const floating[:, :, ::1] K, const floating[:, :, ::1] E,
             const floating[:, ::1] W_qT, const floating[::1] v, const int64_t[::1] lengths,
             bint own, const floating[:, :, ::1] xs, const floating[:, :, ::1] hs,
             const floating[:, :, ::1] cs, const floating[:, :, ::1] act,
             const floating[:, :, ::1] tc, const floating[:, :, ::1] alphas,
             const floating[:, :, :, ::1] tanhs,
             floating[:, :, ::1] demb, floating[:, :, ::1] dK, floating[:, :, ::1] dE,
             floating[:, ::1] dW_q, floating[::1] dv,
             floating[:, :, ::1] dact, floating[:, :, ::1] dgh, floating[:, ::1] dctx,
             floating[:, ::1] dq, floating[:, ::1] dy, floating[:, ::1] dh, floating[:, ::1] dc,
             floating[:, ::1] dhp, floating[:, ::1] dx, floating[:, ::1] ds, floating[:, ::1] dqW,
             const int64_t[::1] active, Py_ssize_t r0=0, Py_ssize_t r1=-1):
    """Backward of forward() through the steps, rows [r0, r1) (r1 = -1: N), leaving the
    gate gradients of every step in dact (and the GRU's dgh) for weight_grads(), which
    must run after every range. Wp_ih, Wp_hh: W_ih, W_hh packed *untransposed* (the B of
    dG @ W), or empty. dctx and what follows it are scratch. Disjoint ranges may run on
    threads at once, for Luong only (Bahdanau's dW_q and dv sum over the rows). active as
    forward's: the skipped steps' dact (dgh) and demb are zeros (nothing is scored there)."""
    cdef Py_ssize_t T = xs.shape[0], N = xs.shape[1], C = E.shape[2], D = xs.shape[2]
    cdef Py_ssize_t Em = D - C, Hd = W_hh.shape[1], S = E.shape[1], A = K.shape[2], s, n, j
    cdef Py_ssize_t GH = W_hh.shape[0]
    _check(cell, kind, T, N, Em, C, Hd, S, A, dict(
        dfeat=_sh(dfeat.shape, 3), W_ih=_sh(W_ih.shape, 2), W_hh=_sh(W_hh.shape, 2), K=_sh(K.shape, 3),
        E=_sh(E.shape, 3), W_qT=_sh(W_qT.shape, 2), v=_sh(v.shape, 1), xs=_sh(xs.shape, 3), hs=_sh(hs.shape, 3),
        cs=_sh(cs.shape, 3), act=_sh(act.shape, 3), tc=_sh(tc.shape, 3), alphas=_sh(alphas.shape, 3),
        tanhs=_sh(tanhs.shape, 4), demb=_sh(demb.shape, 3), dK=_sh(dK.shape, 3), dE=_sh(dE.shape, 3),
        dW_q=_sh(dW_q.shape, 2), dv=_sh(dv.shape, 1), dact=_sh(dact.shape, 3),
        dgh=_sh(dgh.shape, 3), dctx=_sh(dctx.shape, 2), dq=_sh(dq.shape, 2), dy=_sh(dy.shape, 2),
        dh=_sh(dh.shape, 2), dc=_sh(dc.shape, 2), dhp=_sh(dhp.shape, 2), dx=_sh(dx.shape, 2), ds=_sh(ds.shape, 2),
        dqW=_sh(dqW.shape, 2)))
    _lengths_ok(lengths, N, S)
    _active_ok(active, T, N)
    own = own and floating is float
    cdef const floating *P_ih = packed(Wp_ih, GH, D, "decoder", "Wp_ih")
    cdef const floating *P_hh = packed(Wp_hh, GH, Hd, "decoder", "Wp_hh")
    r1 = N if r1 < 0 else r1
    _need(0 <= r0 <= r1 <= N, f"rows [{r0}, {r1}) of {N}")
    cdef Py_ssize_t M = r1 - r0, e
    if T == 0 or M == 0:
        return
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()   # denormals cost 100x on Intel (cellmath.h)
        memset(&dh[r0, 0], 0, M * Hd * sizeof(floating))
        memset(&dc[r0, 0], 0, M * Hd * sizeof(floating))
        memset(&dx[r0, 0], 0, M * D * sizeof(floating))
        for s in range(T - 1, -1, -1):
            e = min(r1, active[s])            # rows [r0, e) ran this step
            for n in range(max(r0, e), r1):
                memset(&dact[s, n, 0], 0, GH * sizeof(floating))
                if cell == GRU:
                    memset(&dgh[s, n, 0], 0, GH * sizeof(floating))
                memset(&demb[s, n, 0], 0, Em * sizeof(floating))
            M = e - r0
            if M <= 0:
                continue
            # ctx_{s+1} feeds the output and step s+1's input (dx's ctx columns)
            for n in range(r0, e):
                for j in range(C):
                    dctx[n, j] = dfeat[s, n, Hd + j] + dx[n, Em + j]
            memset(&dq[r0, 0], 0, M * Hd * sizeof(floating))
            attend_bwd(kind, dctx, hs[s + 1], K, E, W_qT, v, lengths, alphas[s],
                       tanhs[s], own,
                       dq, dK, dE, dW_q, dv, ds, dqW, r0, e)
            for n in range(r0, e):
                for j in range(Hd):
                    dy[n, j] = dfeat[s, n, j] + dq[n, j]
            if cell == LSTM:
                if floating is float:
                    lstm_bwd_step_f32(&act[s, r0, 0], &cs[s, r0, 0], &tc[s, r0, 0], &dy[r0, 0],
                                      &dh[r0, 0], &dc[r0, 0], &dact[s, r0, 0], M, Hd)
                else:
                    lstm_bwd_step_f64(&act[s, r0, 0], &cs[s, r0, 0], &tc[s, r0, 0], &dy[r0, 0],
                                      &dh[r0, 0], &dc[r0, 0], &dact[s, r0, 0], M, Hd)
                # dh_{s-1} = dact W_hh (the running dh is read above, before this)
                mm(own, False, False, <int>M, <int>Hd, <int>GH, &dact[s, r0, 0], <int>GH,
                   &W_hh[0, 0], <int>Hd, P_hh, False, &dh[r0, 0], <int>Hd)
            else:
                if floating is float:
                    gru_bwd_step_f32(&act[s, r0, 0], &tc[s, r0, 0], &hs[s, r0, 0], &dy[r0, 0],
                                     &dh[r0, 0], &dact[s, r0, 0], &dgh[s, r0, 0], &dhp[r0, 0],
                                     M, Hd)
                else:
                    gru_bwd_step_f64(&act[s, r0, 0], &tc[s, r0, 0], &hs[s, r0, 0], &dy[r0, 0],
                                     &dh[r0, 0], &dact[s, r0, 0], &dgh[s, r0, 0], &dhp[r0, 0],
                                     M, Hd)
                mm(own, False, False, <int>M, <int>Hd, <int>GH, &dgh[s, r0, 0], <int>GH,
                   &W_hh[0, 0], <int>Hd, P_hh, True, &dhp[r0, 0], <int>Hd)
                memcpy(&dh[r0, 0], &dhp[r0, 0], M * Hd * sizeof(floating))
            mm(own, False, False, <int>M, <int>D, <int>GH, &dact[s, r0, 0], <int>GH,
               &W_ih[0, 0], <int>D, P_ih, False, &dx[r0, 0], <int>D)
            for n in range(r0, e):
                memcpy(&demb[s, n, 0], &dx[n, 0], Em * sizeof(floating))
        cr_ftz_end(fpmode)


def weight_grads(int cell, const floating[:, :, ::1] dact, const floating[:, :, ::1] dgh,
                 const floating[:, :, ::1] xs, const floating[:, :, ::1] hs,
                 const floating[:, ::1] W_ih, const floating[::1] Wp_ih,
                 floating[:, ::1] dW_ih, floating[:, ::1] dW_hh, floating[::1] db_ih,
                 floating[::1] db_hh, Py_ssize_t g0=0, Py_ssize_t g1=-1):
    """After backward(): the decoder's weight and bias gradients of gate rows [g0, g1)
    (g1 = -1: all), one GEMM each over every step and row (sequence_weight_grads). Each
    gate row's sums run in the same order however the rows are cut, so threads taking
    disjoint ranges give the serial result exactly."""
    cdef Py_ssize_t T = xs.shape[0], N = xs.shape[1], D = xs.shape[2]
    cdef Py_ssize_t GH = W_ih.shape[0], Hd = hs.shape[2]
    cdef int G = 4 if cell == LSTM else 3
    _need(cell in (LSTM, GRU) and GH == G * Hd and W_ih.shape[1] == D, "W_ih")
    _need(_sh(hs.shape, 3) == (T + 1, N, Hd) and _sh(dact.shape, 3) == (T, N, GH)
          and _sh(dgh.shape, 3) == (tuple([T, N, GH]) if cell == GRU else (0, 0, 0)),
          "hs, dact, dgh")
    _need(_sh(dW_ih.shape, 2) == (GH, D) and _sh(dW_hh.shape, 2) == (GH, Hd)
          and db_ih.shape[0] == GH and db_hh.shape[0] == GH, "dW_ih, dW_hh, db_ih, db_hh")
    cdef const floating *P_ih = packed(Wp_ih, GH, D, "decoder", "Wp_ih")
    g1 = GH if g1 < 0 else g1
    _need(0 <= g0 <= g1 <= GH, f"gate rows [{g0}, {g1}) of {GH}")
    if T == 0 or N == 0 or g1 == g0:
        return
    cdef const floating *dGh = &dact[0, 0, 0] if cell == LSTM else &dgh[0, 0, 0]
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()   # denormals cost 100x on Intel (cellmath.h)
        sequence_weight_grads(&dact[0, 0, 0], dGh, T * N, GH, &xs[0, 0, 0], D, &hs[0, 0, 0],
                              Hd, &W_ih[0, 0], P_ih, <floating *>NULL, &dW_ih[0, 0],
                              &dW_hh[0, 0], &db_ih[0], &db_hh[0], g0, g1, 0, 0)
        cr_ftz_end(fpmode)
