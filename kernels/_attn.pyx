"""Attention over an encoder's outputs, one decoder step over a batch (charrnn/nn/seq2seq.py).

The specification is charrnn.nn.reference_seq2seq's attend_forward / attend_backward.
Sizes: N rows, S source steps, C encoder output, A key size (Luong: A = Hd), Hd query.
    q (N, Hd) queries           K (N, S, A) keys = E W_k       E (N, S, C) encoder outputs
    lengths (N,) int64 in 1..S: only K[n, :l], E[n, :l] are read or written (l = lengths[n]),
    so padding (even NaN) never reaches a result, and alpha[n, l:] = 0.
kind 0 "bahdanau": score_j = v . tanh(q W_q + k_j), W_q (Hd, A), v (A,), tanh saved (N, S, A)
kind 1 "luong":    score_j = q . k_j
alpha = softmax over j < l, ctx = alpha E.

Every product goes through _blas.pxd's mm: float32 on charrnn's own sgemm on the current
ISA tier when `own` (B untransposed: the transposed weights W_k^T, W_q^T are passed in,
made once per batch by the caller), BLAS otherwise. Shapes are checked here before the
GIL is released; nothing inside nogil can fail. Backward *adds* into its gradients.
"""
from cython cimport floating
from libc.math cimport exp, tanh
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset
import numpy as np
from _blas cimport mm
from _cellmath cimport cr_ftz_begin, cr_ftz_end

include "_dispatch.pxi"
include "_attn_core.pxi"

cdef enum:
    BAHDANAU = 0
    LUONG = 1
KINDS = {"bahdanau": BAHDANAU, "luong": LUONG}


cdef int _need(bint ok, str what) except -1:
    if not ok:
        raise ValueError(f"attention kernel: inconsistent shapes ({what})")
    return 0


def keys_forward(const floating[:, :, ::1] E, const floating[:, ::1] W_k,
                 const int64_t[::1] lengths, bint own, floating[:, :, ::1] K):
    """K[n, :l] = E[n, :l] @ W_k (C, A); K[n, l:] = 0."""
    cdef Py_ssize_t N = E.shape[0], S = E.shape[1], C = E.shape[2], A = W_k.shape[1], n, l, r, R
    _need(W_k.shape[0] == C and K.shape[0] == N and K.shape[1] == S and K.shape[2] == A, "keys")
    _lengths_ok(lengths, N, S)
    own = own and floating is float
    if A == 0 or N == 0:
        return
    # the valid rows of every source gathered into one (R, C) block: one GEMM instead of
    # N small ones (each of which packed W_k again), and padding is still never read
    R = int(np.sum(lengths))
    cdef floating[:, ::1] Ec = np.empty((R, C), np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] Kc = np.empty((R, A), np.float32 if floating is float else np.float64)
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()   # denormals cost 100x on Intel (cellmath.h)
        r = 0
        for n in range(N):
            l = lengths[n]
            memcpy(&Ec[r, 0], &E[n, 0, 0], l * C * sizeof(floating))
            r = r + l
        mm(own, False, False, <int>R, <int>A, <int>C, &Ec[0, 0], <int>C, &W_k[0, 0],
           <int>A, NULL, False, &Kc[0, 0], <int>A)
        r = 0
        for n in range(N):
            l = lengths[n]
            memcpy(&K[n, 0, 0], &Kc[r, 0], l * A * sizeof(floating))
            if l < S:
                memset(&K[n, l, 0], 0, (S - l) * A * sizeof(floating))
            r = r + l
        cr_ftz_end(fpmode)


def keys_backward(const floating[:, :, ::1] dK, const floating[:, :, ::1] E,
                  const floating[:, ::1] W_kT, const int64_t[::1] lengths, bint own,
                  floating[:, :, ::1] dE, floating[:, ::1] dW_k):
    """dE[n, :l] += dK[n, :l] @ W_k^T;  dW_k (C, A) += sum_n E[n, :l]^T @ dK[n, :l]."""
    cdef Py_ssize_t N = E.shape[0], S = E.shape[1], C = E.shape[2], A = W_kT.shape[0]
    cdef Py_ssize_t n, l, r, j, R
    _need(W_kT.shape[1] == C and dK.shape[0] == N and dK.shape[1] == S and dK.shape[2] == A
          and dE.shape[0] == N and dE.shape[1] == S and dE.shape[2] == C
          and dW_k.shape[0] == C and dW_k.shape[1] == A, "keys backward")
    _lengths_ok(lengths, N, S)
    own = own and floating is float
    if A == 0 or C == 0 or N == 0:
        return
    # as keys_forward: the valid rows gathered, then one GEMM per gradient
    R = int(np.sum(lengths))
    dt = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] Ec = np.empty((R, C), dt), dEc = np.empty((R, C), dt)
    cdef floating[:, ::1] dKc = np.empty((R, A), dt)
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()   # denormals cost 100x on Intel (cellmath.h)
        r = 0
        for n in range(N):
            l = lengths[n]
            memcpy(&Ec[r, 0], &E[n, 0, 0], l * C * sizeof(floating))
            memcpy(&dKc[r, 0], &dK[n, 0, 0], l * A * sizeof(floating))
            r = r + l
        mm(own, False, False, <int>R, <int>C, <int>A, &dKc[0, 0], <int>A, &W_kT[0, 0],
           <int>C, NULL, False, &dEc[0, 0], <int>C)
        mm(own, True, False, <int>C, <int>A, <int>R, &Ec[0, 0], <int>C, &dKc[0, 0],
           <int>A, NULL, True, &dW_k[0, 0], <int>A)
        r = 0
        for n in range(N):
            for j in range(lengths[n] * C):
                (&dE[n, 0, 0])[j] += (&dEc[r, 0])[j]
            r = r + lengths[n]
        cr_ftz_end(fpmode)


cdef int check_step(int kind, const floating[:, ::1] q, const floating[:, :, ::1] K,
                    const floating[:, :, ::1] E, tuple wq, const floating[::1] v,
                    const int64_t[::1] lengths, const floating[:, :, ::1] tanhs,
                    const floating[:, ::1] alpha, const floating[:, ::1] nc) except -1:
    """The shapes one attention step reads (wq: W_q's shape, (Hd, A)), or ValueError."""
    cdef Py_ssize_t N = E.shape[0], S = E.shape[1], C = E.shape[2], A = K.shape[2], Hd = q.shape[1]
    _need(kind == BAHDANAU or kind == LUONG, f"kind {kind}")
    _need(q.shape[0] == N and K.shape[0] == N and K.shape[1] == S and alpha.shape[0] == N
          and alpha.shape[1] == S and nc.shape[0] == N and nc.shape[1] == C, "q, K, E, alpha, ctx")
    if kind == BAHDANAU:
        _need(wq == (Hd, A) and v.shape[0] == A
              and tanhs.shape[0] == N and tanhs.shape[1] == S and tanhs.shape[2] == A,
              "W_q, v, tanhs")
    else:
        _need(A == Hd, "Luong keys must have the query's size")
    _lengths_ok(lengths, N, S)
    return 0


cdef int check_step_grads(int kind, Py_ssize_t N, Py_ssize_t S, Py_ssize_t C, Py_ssize_t A,
                          Py_ssize_t Hd, const floating[:, ::1] dq, const floating[:, :, ::1] dK,
                          const floating[:, :, ::1] dE, const floating[:, ::1] dW_q,
                          const floating[::1] dv, const floating[:, ::1] ds,
                          const floating[:, ::1] dqW) except -1:
    _need(dq.shape[0] == N and dq.shape[1] == Hd and dK.shape[0] == N and dK.shape[1] == S
          and dK.shape[2] == A and dE.shape[0] == N and dE.shape[1] == S and dE.shape[2] == C
          and ds.shape[0] == N and ds.shape[1] == S, "dq, dK, dE, ds")
    if kind == BAHDANAU:
        _need(dW_q.shape[0] == Hd and dW_q.shape[1] == A and dv.shape[0] == A
              and dqW.shape[0] == N and dqW.shape[1] == A, "dW_q, dv, dqW")
    return 0


def step_forward(int kind, const floating[:, ::1] q, const floating[:, :, ::1] K,
                 const floating[:, :, ::1] E, const floating[:, ::1] W_q, const floating[::1] v,
                 const int64_t[::1] lengths, bint own, floating[:, ::1] alpha,
                 floating[:, ::1] ctx, floating[:, :, ::1] tanhs, floating[:, ::1] qW):
    """ctx (N, C), alpha (N, S); Bahdanau also fills tanhs (N, S, A) (saved for backward)
    and uses qW (N, A) as scratch; Luong takes W_q, v, tanhs, qW empty."""
    cdef Py_ssize_t N = E.shape[0]
    check_step(kind, q, K, E, (W_q.shape[0], W_q.shape[1]), v, lengths, tanhs, alpha, ctx)
    _need(kind == LUONG or (qW.shape[0] == E.shape[0] and qW.shape[1] == K.shape[2]), "qW")
    _need(ctx.shape[0] == E.shape[0] and ctx.shape[1] == E.shape[2], "ctx")
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()   # denormals cost 100x on Intel (cellmath.h)
        attend_fwd(kind, q, K, E, W_q, v, lengths, own and floating is float, alpha, ctx,
                   tanhs, qW, 0, N)
        cr_ftz_end(fpmode)


def step_backward(int kind, const floating[:, ::1] dctx, const floating[:, ::1] q,
                  const floating[:, :, ::1] K, const floating[:, :, ::1] E,
                  const floating[:, ::1] W_qT, const floating[::1] v,
                  const int64_t[::1] lengths, const floating[:, ::1] alpha,
                  const floating[:, :, ::1] tanhs, bint own,
                  floating[:, ::1] dq, floating[:, :, ::1] dK, floating[:, :, ::1] dE,
                  floating[:, ::1] dW_q, floating[::1] dv,
                  floating[:, ::1] ds, floating[:, ::1] dqW):
    """Adds the gradients of sum(dctx * ctx) into dq (N, Hd), dK[n, :l], dE[n, :l] and,
    Bahdanau, dW_q (Hd, A), dv (A,). ds (N, S), dqW (N, A) are scratch; W_qT (A, Hd)."""
    cdef Py_ssize_t N = E.shape[0], S = E.shape[1], C = E.shape[2], A = K.shape[2], Hd = q.shape[1]
    check_step(kind, q, K, E, (W_qT.shape[1], W_qT.shape[0]), v, lengths, tanhs, alpha, dctx)
    check_step_grads(kind, N, S, C, A, Hd, dq, dK, dE, dW_q, dv, ds, dqW)
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()   # denormals cost 100x on Intel (cellmath.h)
        attend_bwd(kind, dctx, q, K, E, W_qT, v, lengths, alpha, tanhs, own and floating is float,
                   dq, dK, dE, dW_q, dv, ds, dqW, 0, N)
        cr_ftz_end(fpmode)
