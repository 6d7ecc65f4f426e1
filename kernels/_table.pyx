"""A first layer whose input is an embedding, through its table of input pre-activations.

Sizes: T time steps, N batch, R = T*N characters, V vocabulary, D embedding, G gate rows
(4H LSTM, 3H GRU, H RNN), H hidden.

When layer 0 reads x[r] = E[ids[r]] (no dropout on the embedding), its input product
x W_ih^T (R, G) has only V distinct rows: the rows of the table

    P (V, G) = E W_ih^T + bias                         (forward: V rows, not R)
    act[r]   = P[ids[r]]                               (a gather: embedding_forward)

and its backward needs the gate gradients only summed per character:

    dP[v]    = sum_{r: ids[r] = v} dG[r]               (a scatter: gather_add_rows)
    dW_ih   += dP^T E        dE += dP W_ih             (V rows, not R: table_backward)

For a character vocabulary (V ~ 100) against R = batch x seq (~2,500) that removes two
thirds of the first layer's input FLOPs; the sums are the same sums in another order.
The table itself is made by each cell's forward_input with x = E as a (1, V, D) array.

recurrent_grads is the rest of that layer's whole-sequence backward (sequence_weight_grads
without the input part): dW_hh, db_ih, db_hh.
"""
from cython cimport floating
from libc.stdint cimport int32_t

from _blas cimport mm, cr_sgemm_tn, cr_sgemm_tn_for
from _cellmath cimport need, need_range, packed, colsum_add, shape2, shape3

include "_dispatch.pxi"


cdef inline int _need(bint ok, str what) except -1:
    return need(ok, "table", what)


def gather_add_rows(const int32_t[::1] ids, const floating[:, ::1] dG, floating[:, ::1] dP,
                    Py_ssize_t g0, Py_ssize_t g1):
    """dP[ids[r], g0:g1] += dG[r, g0:g1] for every r, in r order (a thread's gate range)."""
    cdef Py_ssize_t r, j, R = ids.shape[0], V = dP.shape[0], G = dP.shape[1]
    _need(dG.shape[0] == R and dG.shape[1] == G, "dG/dP columns")
    need_range(g0, g1, G, "table", "gate")
    cdef Py_ssize_t bad = -1
    with nogil:
        for r in range(R):
            if ids[r] < 0 or ids[r] >= V:
                bad = r
                break
    if bad >= 0:
        raise ValueError(f"character id {ids[bad]} at position {bad} is outside the vocabulary (size {V})")
    cdef floating *dst
    cdef const floating *src
    with nogil:
        for r in range(R):
            dst = &dP[ids[r], 0]
            src = &dG[r, 0]
            for j in range(g0, g1):
                dst[j] += src[j]


def table_backward(const floating[:, ::1] dP, const floating[:, ::1] E,
                   const floating[:, ::1] W_ih, const floating[::1] Wp_ih,
                   floating[:, ::1] dW_ih, floating[:, ::1] dE,
                   Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t v0, Py_ssize_t v1):
    """dW_ih[g0:g1] += dP[:, g0:g1]^T E, and dE[v0:v1] += dP[v0:v1] W_ih.
    Wp_ih: W_ih packed as a (G, D) B for the own sgemm, or empty: BLAS."""
    cdef Py_ssize_t V = dP.shape[0], G = dP.shape[1], D = E.shape[1]
    _need(V >= 1 and G >= 1 and D >= 1, "empty dimension")
    _need(shape2(E.shape, V, D) and shape2(W_ih.shape, G, D), "E/W_ih")
    _need(shape2(dW_ih.shape, G, D) and shape2(dE.shape, V, D), "dW_ih/dE")
    need_range(g0, g1, G, "table", "gate")
    need_range(v0, v1, V, "table", "row")
    cdef const floating *Wp = packed(Wp_ih, G, D, "table", "Wp_ih")
    cdef bint own = Wp != NULL
    cdef bint done = False
    with nogil:
        if floating is float:
            if own and g1 > g0:
                cr_sgemm_tn(g1 - g0, V, &dP[0, 0] + g0, G, D, &E[0, 0], D, &dW_ih[g0, 0], D,
                            0, NULL, 0, NULL, 0, NULL, NULL)
                done = True
        if g1 > g0 and not done:
            mm(own, True, False, <int>(g1 - g0), <int>D, <int>V, &dP[0, 0] + g0, <int>G,
               &E[0, 0], <int>D, NULL, True, &dW_ih[g0, 0], <int>D)
        if v1 > v0:
            mm(own, False, False, <int>(v1 - v0), <int>D, <int>G, &dP[v0, 0], <int>G,
               &W_ih[0, 0], <int>D, Wp, True, &dE[v0, 0], <int>D)


def recurrent_grads(const floating[:, :, ::1] dGx, const floating[:, :, ::1] dGh,
                    const floating[:, :, ::1] hs, floating[:, ::1] dW_hh,
                    floating[::1] db_ih, floating[::1] db_hh, const floating[::1] Wp_ih,
                    Py_ssize_t g0, Py_ssize_t g1):
    """Gate rows [g0, g1): dW_hh += dGh^T h_prev (hs[:T], the states before each step),
    db_ih += sum_r dGx[r], db_hh += sum_r dGh[r]. dGx and dGh are one array except for
    the GRU. Wp_ih: the layer's W_ih pack (float32 on the own sgemm; a native bf16 pack:
    dW_hh in bf16 where AMX runs), or empty: BLAS."""
    cdef bint own = Wp_ih.shape[0] > 0
    cdef Py_ssize_t T = dGh.shape[0], N = dGh.shape[1], G = dGh.shape[2], H = hs.shape[2]
    cdef Py_ssize_t R = T * N
    _need(T >= 1 and N >= 1 and G >= 1 and H >= 1, "empty dimension")
    _need(shape3(dGx.shape, T, N, G) and shape3(hs.shape, T + 1, N, H), "dGx/hs")
    _need(shape2(dW_hh.shape, G, H) and db_ih.shape[0] == G and db_hh.shape[0] == G,
          "weight gradients")
    need_range(g0, g1, G, "table", "gate")
    if g1 == g0:
        return
    cdef const floating *Ax = &dGx[0, 0, 0] + g0
    cdef const floating *Ah = &dGh[0, 0, 0] + g0
    cdef bint same = Ax == Ah, done = False
    with nogil:
        if floating is float:
            if own:
                # one pass over the copies of dG: the product and both bias sums (sgemm.h)
                cr_sgemm_tn_for(&Wp_ih[0] if Wp_ih.shape[0] >= 16 else NULL, g1 - g0, R, Ah, G, H,
                                &hs[0, 0, 0], H,
                                &dW_hh[g0, 0], H, 0, NULL, 0, NULL, 0, &db_hh[g0],
                                &db_ih[g0] if same else NULL)
                if not same:
                    colsum_add(&db_ih[g0], Ax, R, g1 - g0, G, <float *> NULL)
                done = True
        if not done:
            mm(False, True, False, <int>(g1 - g0), <int>H, <int>R, Ah, <int>G,
               &hs[0, 0, 0], <int>H, NULL, True, &dW_hh[g0, 0], <int>H)
            if same:
                colsum_add(&db_ih[g0], Ax, R, g1 - g0, G, &db_hh[g0])
            else:
                colsum_add(&db_ih[g0], Ax, R, g1 - g0, G, <floating *> NULL)
                colsum_add(&db_hh[g0], Ah, R, g1 - g0, G, <floating *> NULL)
