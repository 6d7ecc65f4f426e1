"""The input of a first layer that is an embedding, multiplied as a table (kernels/_table.pyx).

    x[t, n] = E[ids[t, n]]   (T, N, D)

Passed as `x` to charrnn.nn.cells.lstm_forward / gru_forward / rnn_forward, a Lookup makes
the layer multiply the V rows of the embedding instead of the T*N rows of x: its input
pre-activations are the rows of a table P = E W_ih^T + bias (V, G), gathered per
character; backward sums the gate gradients per character and gets dW_ih and the
embedding's gradient from those V rows. The gradient of the input, `dx` of the cell's
backward, is then the (V, D) gradient of E (added into, as every gradient is).

The same model and the same sums in exact arithmetic; float32 results differ from x = E[ids]
by rounding only (dW_ih and dE are summed in another order). It pays when V is well
below T*N (characters: V ~ 100, T*N ~ 2,500), and does not apply under embedding dropout
(x is then not a row of E): charrnn.nn.network decides (worth_it).
"""
import numpy as np

from charrnn import _ops, _table
from charrnn.errors import ShapeError
from charrnn.nn.parallel import each, empty, serial


def worth_it(V, R):
    """True if a (V, D) table beats the (R, D) input product: the table costs two products
    of V rows per pass and a gather or scatter of R rows, the plain path products of R."""
    return 4 * V <= R


class Lookup:
    """x = E[ids]: ids (T, N) int32, E (V, D) float32 or float64, both C-contiguous."""
    __slots__ = ("ids", "E", "shape", "dtype", "ndim")

    def __init__(self, ids, E):
        if not isinstance(ids, np.ndarray) or ids.ndim != 2 or ids.dtype != np.int32 \
                or not ids.flags.c_contiguous:
            raise ShapeError("Lookup: ids must be a C-contiguous int32 array (T, N)")
        if not isinstance(E, np.ndarray) or E.ndim != 2 or not E.flags.c_contiguous:
            raise ShapeError("Lookup: E must be a C-contiguous 2-d array (V, D)")
        self.ids, self.E = ids, E
        self.shape = (ids.shape[0], ids.shape[1], E.shape[1])
        self.dtype = E.dtype
        self.ndim = 3


def forward_input(lk, forward_input_kernel, args, out, ws, parallel):
    """out (T, N, G) := the input pre-activations of x = lk: forward_input_kernel(x, *args,
    out, r0, r1) (a cell's forward_input) run on the table's V rows, then gathered."""
    V, G = lk.E.shape[0], out.shape[2]
    table = empty(ws, "lookup_table", (V, G), out.dtype)           # (V, G)
    E3, P3 = lk.E.reshape(1, V, -1), table.reshape(1, V, G)
    each(parallel, forward_input_kernel, V, lambda r0, r1: (E3, *args, P3, r0, r1))
    ids = lk.ids.reshape(-1)
    flat = out.reshape(-1, G)
    each(parallel, _ops.embedding_forward, ids.shape[0],
          lambda r0, r1: (ids[r0:r1], table, flat[r0:r1]))


def backward_weights(lk, dGx, dGh, hs, W_ih, Wp_ih, dE, dW_ih, dW_hh, db_ih, db_hh, ws, parallel):
    """Every whole-sequence gradient of a layer whose input is lk, once the recurrence
    has made the gate gradients dGx, dGh (T, N, G; one array but for the GRU):
    dW_ih, dW_hh, db_ih, db_hh and dE (V, D), all added into."""
    V, G = lk.E.shape[0], dGx.shape[2]
    if dE.shape != lk.E.shape or dE.dtype != lk.E.dtype:
        raise ShapeError(f"dx must be the embedding's gradient, shape {lk.E.shape}, got {dE.shape}")
    if not dE.flags.c_contiguous or not dE.flags.writeable:
        raise ShapeError("dx (the embedding's gradient) must be a writable C-contiguous array")
    dP = empty(ws, "lookup_dP", (V, G), dGx.dtype)                  # (V, G)
    dP.fill(0)
    ids = lk.ids.reshape(-1)
    flat = dGx.reshape(-1, G)

    def per_gates(g0, g1):
        _table.gather_add_rows(ids, flat, dP, g0, g1)
        _table.recurrent_grads(dGx, dGh, hs, dW_hh, db_ih, db_hh, Wp_ih, g0, g1)
    each(parallel, per_gates, G, lambda g0, g1: (g0, g1))
    if serial(parallel):
        _table.table_backward(dP, lk.E, W_ih, Wp_ih, dW_ih, dE, 0, G, 0, V)
    else:
        parts = zip(parallel.split(G), parallel.split(V))
        parallel.run(_table.table_backward,
                     [(dP, lk.E, W_ih, Wp_ih, dW_ih, dE, g0, g1, v0, v1) for (g0, g1), (v0, v1) in parts])
