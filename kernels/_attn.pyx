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
from libc.string cimport memset
from _blas cimport mm

include "_dispatch.pxi"

cdef enum:
    BAHDANAU = 0
    LUONG = 1
KINDS = {"bahdanau": BAHDANAU, "luong": LUONG}


cdef int _lengths_ok(const int64_t[::1] lengths, Py_ssize_t N, Py_ssize_t S) except -1:
    cdef Py_ssize_t n
    if lengths.shape[0] != N:
        raise ValueError(f"attention kernel: lengths has {lengths.shape[0]} rows, expected {N}")
    for n in range(N):
        if lengths[n] < 1 or lengths[n] > S:
            raise ValueError(f"attention kernel: lengths[{n}] = {lengths[n]} outside 1..{S}")
    return 0


cdef int _need(bint ok, str what) except -1:
    if not ok:
        raise ValueError(f"attention kernel: inconsistent shapes ({what})")
    return 0


def keys_forward(const floating[:, :, ::1] E, const floating[:, ::1] W_k,
                 const int64_t[::1] lengths, bint own, floating[:, :, ::1] K):
    """K[n, :l] = E[n, :l] @ W_k (C, A); K[n, l:] = 0."""
    cdef Py_ssize_t N = E.shape[0], S = E.shape[1], C = E.shape[2], A = W_k.shape[1], n, l
    _need(W_k.shape[0] == C and K.shape[0] == N and K.shape[1] == S and K.shape[2] == A, "keys")
    _lengths_ok(lengths, N, S)
    own = own and floating is float
    if A == 0:
        return
    with nogil:
        for n in range(N):
            l = lengths[n]
            mm(own, False, False, <int>l, <int>A, <int>C, &E[n, 0, 0], <int>C, &W_k[0, 0],
               <int>A, NULL, False, &K[n, 0, 0], <int>A)
            if l < S:
                memset(&K[n, l, 0], 0, (S - l) * A * sizeof(floating))


def keys_backward(const floating[:, :, ::1] dK, const floating[:, :, ::1] E,
                  const floating[:, ::1] W_kT, const int64_t[::1] lengths, bint own,
                  floating[:, :, ::1] dE, floating[:, ::1] dW_k):
    """dE[n, :l] += dK[n, :l] @ W_k^T;  dW_k (C, A) += sum_n E[n, :l]^T @ dK[n, :l]."""
    cdef Py_ssize_t N = E.shape[0], S = E.shape[1], C = E.shape[2], A = W_kT.shape[0], n, l
    _need(W_kT.shape[1] == C and dK.shape[0] == N and dK.shape[1] == S and dK.shape[2] == A
          and dE.shape[0] == N and dE.shape[1] == S and dE.shape[2] == C
          and dW_k.shape[0] == C and dW_k.shape[1] == A, "keys backward")
    _lengths_ok(lengths, N, S)
    own = own and floating is float
    if A == 0 or C == 0:
        return
    with nogil:
        for n in range(N):
            l = lengths[n]
            mm(own, False, False, <int>l, <int>C, <int>A, &dK[n, 0, 0], <int>A, &W_kT[0, 0],
               <int>C, NULL, True, &dE[n, 0, 0], <int>C)
            mm(own, True, False, <int>C, <int>A, <int>l, &E[n, 0, 0], <int>C, &dK[n, 0, 0],
               <int>A, NULL, True, &dW_k[0, 0], <int>A)


cdef inline void _softmax(floating *s, Py_ssize_t l, Py_ssize_t S) noexcept nogil:
    # s[:l] := softmax(s[:l]) in place (max subtracted), s[l:S] := 0
    cdef Py_ssize_t j
    cdef floating mx = s[0], tot = 0
    for j in range(1, l):
        if s[j] > mx:
            mx = s[j]
    for j in range(l):
        s[j] = exp(s[j] - mx)
        tot += s[j]
    for j in range(l):
        s[j] /= tot
    for j in range(l, S):
        s[j] = 0


def step_forward(int kind, const floating[:, ::1] q, const floating[:, :, ::1] K,
                 const floating[:, :, ::1] E, const floating[:, ::1] W_q, const floating[::1] v,
                 const int64_t[::1] lengths, bint own, floating[:, ::1] alpha,
                 floating[:, ::1] ctx, floating[:, :, ::1] tanhs, floating[:, ::1] qW):
    """ctx (N, C), alpha (N, S); Bahdanau also fills tanhs (N, S, A) (saved for backward)
    and uses qW (N, A) as scratch; Luong takes W_q, v, tanhs, qW empty."""
    cdef Py_ssize_t N = E.shape[0], S = E.shape[1], C = E.shape[2], A = K.shape[2]
    cdef Py_ssize_t Hd = q.shape[1], n, j, a, l
    _need(kind in (BAHDANAU, LUONG), f"kind {kind}")
    _need(q.shape[0] == N and K.shape[0] == N and K.shape[1] == S and alpha.shape[0] == N
          and alpha.shape[1] == S and ctx.shape[0] == N and ctx.shape[1] == C, "q, K, alpha, ctx")
    if kind == BAHDANAU:
        _need(W_q.shape[0] == Hd and W_q.shape[1] == A and v.shape[0] == A
              and tanhs.shape[0] == N and tanhs.shape[1] == S and tanhs.shape[2] == A
              and qW.shape[0] == N and qW.shape[1] == A, "W_q, v, tanhs, qW")
    else:
        _need(A == Hd, "Luong keys must have the query's size")
    _lengths_ok(lengths, N, S)
    own = own and floating is float
    if N == 0 or A == 0 or C == 0:
        return
    with nogil:
        if kind == BAHDANAU:
            mm(own, False, False, <int>N, <int>A, <int>Hd, &q[0, 0], <int>Hd, &W_q[0, 0],
               <int>A, NULL, False, &qW[0, 0], <int>A)
        for n in range(N):
            l = lengths[n]
            if kind == BAHDANAU:
                for j in range(l):
                    for a in range(A):
                        tanhs[n, j, a] = tanh(qW[n, a] + K[n, j, a])
                # scores as a column: (l, A) @ v (A, 1)
                mm(own, False, False, <int>l, 1, <int>A, &tanhs[n, 0, 0], <int>A, &v[0], 1,
                   NULL, False, &alpha[n, 0], 1)
            else:
                mm(own, False, False, <int>l, 1, <int>Hd, &K[n, 0, 0], <int>A, &q[n, 0], 1,
                   NULL, False, &alpha[n, 0], 1)
            _softmax(&alpha[n, 0], l, S)
            mm(own, False, False, 1, <int>C, <int>l, &alpha[n, 0], <int>S, &E[n, 0, 0],
               <int>C, NULL, False, &ctx[n, 0], <int>C)


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
    cdef Py_ssize_t N = E.shape[0], S = E.shape[1], C = E.shape[2], A = K.shape[2]
    cdef Py_ssize_t Hd = q.shape[1], n, j, a, l
    cdef floating dot, g
    _need(kind in (BAHDANAU, LUONG), f"kind {kind}")
    _need(q.shape[0] == N and K.shape[0] == N and K.shape[1] == S and alpha.shape[0] == N
          and alpha.shape[1] == S and dctx.shape[0] == N and dctx.shape[1] == C
          and dq.shape[0] == N and dq.shape[1] == Hd and dK.shape[0] == N and dK.shape[1] == S
          and dK.shape[2] == A and dE.shape[0] == N and dE.shape[1] == S and dE.shape[2] == C
          and ds.shape[0] == N and ds.shape[1] == S, "q, K, alpha, dctx, dq, dK, dE, ds")
    if kind == BAHDANAU:
        _need(W_qT.shape[0] == A and W_qT.shape[1] == Hd and v.shape[0] == A
              and tanhs.shape[0] == N and tanhs.shape[1] == S and tanhs.shape[2] == A
              and dW_q.shape[0] == Hd and dW_q.shape[1] == A and dv.shape[0] == A
              and dqW.shape[0] == N and dqW.shape[1] == A, "W_qT, v, tanhs, dW_q, dv, dqW")
    else:
        _need(A == Hd, "Luong keys must have the query's size")
    _lengths_ok(lengths, N, S)
    own = own and floating is float
    if N == 0 or A == 0 or C == 0:
        return
    with nogil:
        for n in range(N):
            l = lengths[n]
            # d alpha_j = dctx . e_j, as a column (l, C) @ (C, 1)
            mm(own, False, False, <int>l, 1, <int>C, &E[n, 0, 0], <int>C, &dctx[n, 0], 1,
               NULL, False, &ds[n, 0], 1)
            # dE[n, :l] += alpha^T (l, 1) @ dctx (1, C)
            mm(own, True, False, <int>l, <int>C, 1, &alpha[n, 0], <int>S, &dctx[n, 0],
               <int>C, NULL, True, &dE[n, 0, 0], <int>C)
            # softmax backward: ds_j = a_j (da_j - sum_k a_k da_k)
            dot = 0
            for j in range(l):
                dot = dot + alpha[n, j] * ds[n, j]
            for j in range(l):
                ds[n, j] = alpha[n, j] * (ds[n, j] - dot)
            if kind == BAHDANAU:
                mm(own, False, False, 1, <int>A, <int>l, &ds[n, 0], <int>S, &tanhs[n, 0, 0],
                   <int>A, NULL, True, &dv[0], <int>A)
                memset(&dqW[n, 0], 0, A * sizeof(floating))
                for j in range(l):
                    for a in range(A):
                        g = ds[n, j] * v[a] * (1 - tanhs[n, j, a] * tanhs[n, j, a])
                        dK[n, j, a] += g
                        dqW[n, a] += g
            else:
                mm(own, False, False, 1, <int>Hd, <int>l, &ds[n, 0], <int>S, &K[n, 0, 0],
                   <int>A, NULL, True, &dq[n, 0], <int>Hd)
                mm(own, True, False, <int>l, <int>Hd, 1, &ds[n, 0], <int>S, &q[n, 0], <int>Hd,
                   NULL, True, &dK[n, 0, 0], <int>A)
        if kind == BAHDANAU:
            mm(own, False, False, <int>N, <int>Hd, <int>A, &dqW[0, 0], <int>A, &W_qT[0, 0],
               <int>Hd, NULL, True, &dq[0, 0], <int>Hd)
            mm(own, True, False, <int>Hd, <int>A, <int>N, &q[0, 0], <int>Hd, &dqW[0, 0],
               <int>A, NULL, True, &dW_q[0, 0], <int>A)
