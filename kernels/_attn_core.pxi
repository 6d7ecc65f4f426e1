# The attention step's maths over memoryviews, shared by kernels/_attn.pyx (one checked
# step from Python) and kernels/_decoder.pyx (the decoder's loop). Callers check every
# shape first: nothing here can fail, and all of it runs without the GIL.
# Needs: floating, int64_t, mm (_blas), exp, tanh, memset, and BAHDANAU / LUONG.

cdef int _lengths_ok(const int64_t[::1] lengths, Py_ssize_t N, Py_ssize_t S) except -1:
    cdef Py_ssize_t n
    if lengths.shape[0] != N:
        raise ValueError(f"attention: lengths has {lengths.shape[0]} rows, expected {N}")
    for n in range(N):
        if lengths[n] < 1 or lengths[n] > S:
            raise ValueError(f"attention: lengths[{n}] = {lengths[n]} outside 1..{S}")
    return 0

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


cdef void attend_fwd(int kind, const floating[:, ::1] q, const floating[:, :, ::1] K,
                     const floating[:, :, ::1] E, const floating[:, ::1] W_q,
                     const floating[::1] v, const int64_t[::1] lengths, bint own,
                     floating[:, ::1] alpha, floating[:, ::1] ctx, floating[:, :, ::1] tanhs,
                     floating[:, ::1] qW, Py_ssize_t r0=0, Py_ssize_t r1=-1) noexcept nogil:
    """ctx (N, C), alpha (N, S) of rows [r0, r1) (default: all); Bahdanau: tanhs (N, S, A)
    saved, qW (N, A) scratch. Rows are independent: threads may take disjoint ranges."""
    cdef Py_ssize_t N = E.shape[0], S = E.shape[1], C = E.shape[2], A = K.shape[2]
    cdef Py_ssize_t Hd = q.shape[1], n, j, a, l
    if r1 < 0:
        r1 = N      # the default: every row
    if r1 <= r0 or A == 0 or C == 0:
        return
    if kind == BAHDANAU:
        mm(own, False, False, <int>(r1 - r0), <int>A, <int>Hd, &q[r0, 0], <int>Hd, &W_q[0, 0],
           <int>A, NULL, False, &qW[r0, 0], <int>A)
    for n in range(r0, r1):
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


cdef void attend_bwd(int kind, const floating[:, ::1] dctx, const floating[:, ::1] q,
                     const floating[:, :, ::1] K, const floating[:, :, ::1] E,
                     const floating[:, ::1] W_qT, const floating[::1] v,
                     const int64_t[::1] lengths, const floating[:, ::1] alpha,
                     const floating[:, :, ::1] tanhs, bint own,
                     floating[:, ::1] dq, floating[:, :, ::1] dK, floating[:, :, ::1] dE,
                     floating[:, ::1] dW_q, floating[::1] dv,
                     floating[:, ::1] ds, floating[:, ::1] dqW, Py_ssize_t r0=0,
                     Py_ssize_t r1=-1) noexcept nogil:
    """Adds the gradients of sum(dctx * ctx) of rows [r0, r1) (default: all) into dq, dK,
    dE (and dW_q, dv: Bahdanau). Disjoint ranges may run on threads for Luong only:
    Bahdanau's dW_q and dv sum over the rows."""
    cdef Py_ssize_t N = E.shape[0], S = E.shape[1], C = E.shape[2], A = K.shape[2]
    cdef Py_ssize_t Hd = q.shape[1], n, j, a, l
    cdef floating dot, g
    if r1 < 0:
        r1 = N      # the default: every row
    if r1 <= r0 or A == 0 or C == 0:
        return
    for n in range(r0, r1):
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
        mm(own, False, False, <int>(r1 - r0), <int>Hd, <int>A, &dqW[r0, 0], <int>A,
           &W_qT[0, 0], <int>Hd, NULL, True, &dq[r0, 0], <int>Hd)
        mm(own, True, False, <int>Hd, <int>A, <int>(r1 - r0), &q[r0, 0], <int>Hd, &dqW[r0, 0],
           <int>A, NULL, True, &dW_q[0, 0], <int>A)
