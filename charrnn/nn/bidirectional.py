"""A stack of bidirectional LSTM / GRU / RNN layers over a padded batch, on the compiled cells.

Semantics, names and layout: charrnn.nn.reference_bidir (the specification; PyTorch's
torch.nn.LSTM / GRU / RNN(bidirectional=True) fed a pack_padded_sequence).

Sizes: T time steps, N rows, D input size, H hidden size per direction, L layers.
    x (T, N, D) padded, row n valid in x[:lengths[n], n]      lengths (N,) in 1..T
    out (T, N, 2H) = [forward ; reverse] at valid positions, 0 at padded ones
    finals (hN,) or (hN, cN), each (2L, N, H): PyTorch's h_n order (l0, l0_reverse, l1...)

How: each direction of each layer runs one compiled cell call over the whole batch,
*right-aligned*: row n's valid part is moved to steps T-len[n]..T-1 of a (T, N, D)
buffer, zeros before it, and the cell's reset mask (cells' reset=) zeroes the state
entering step T-len[n]. So
- every row ends at step T-1: the cell's final state (h and, for the LSTM, c) *is* each
  row's state at its own end, and the gradient of a final state enters as the cell's
  dhT / dcT, with no per-row bookkeeping;
- the reverse direction's buffer is simply x reversed in time with the padding zeroed:
  its step T-len[n] is row n's last real character, its step T-1 is x[0];
- padding never enters a state (the reset cuts it off; it is zeros, never x's padding,
  so NaN there cannot reach anything: not even 0 * NaN in a weight gradient), and the
  cells' backward sees zero dy there, so nothing flows into it.
Moving rows between the padded batch and the direction buffers (inputs and outputs
forward; dy and dx backward) is one compiled gather (kernels/_bidir.pyx, nogil) with a
(T, N) index array per direction and way, built once per batch by Plan.
"""
import numpy as np

from charrnn import _bidir
from charrnn.errors import ShapeError
from charrnn.nn import cells
from charrnn.nn.parallel import serial as _serial
from charrnn.nn.reference_bidir import DIRECTIONS, names, param_shapes

__all__ = ["Plan", "forward", "backward", "param_shapes", "names", "check_lengths"]

_FORWARD = {"lstm": cells.lstm_forward, "gru": cells.gru_forward, "rnn": cells.rnn_forward}
_BACKWARD = {"lstm": cells.lstm_backward, "gru": cells.gru_backward, "rnn": cells.rnn_backward}


def check_lengths(lengths, T, N):
    """lengths as an int64 (N,) array, or a one-line ShapeError."""
    a = np.asarray(lengths)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ShapeError(f"lengths must be integers (N,), got dtype {a.dtype}")
    if a.shape != (N,):
        raise ShapeError(f"lengths has shape {a.shape}, expected ({N},): one per row of x")
    bad = np.flatnonzero((a < 1) | (a > T))
    if bad.size:
        raise ShapeError(f"lengths must be in 1..{T} (T, x's steps): row {bad[0]} has {a[bad[0]]}")
    return a.astype(np.int64)


class Plan:
    """The index arrays of one batch's gathers, (T, N) int32 each, -1 meaning zero:

    into[d][t, n]  padded position that direction d's step t reads (right-aligned)
    back[d][s, n]  direction d's step that produced padded position s
    reset (T, N)   True at step T-len[n] of rows shorter than T; None if none is.
    """

    def __init__(self, lengths, T):
        self.T, self.N = T, len(lengths)
        self.lengths = lengths
        t = np.arange(T)[:, None]                                   # (T, 1)
        off = (T - lengths)[None, :]                                # (1, N) first real step
        valid_step, valid_pos = t >= off, t < lengths[None, :]      # (T, N) each
        # forward: step t reads position t - off; reverse: step t reads T-1-t
        self.into = [np.where(valid_step, t - off, -1).astype(np.int32),
                     np.where(valid_step, T - 1 - t, -1).astype(np.int32)]
        self.back = [np.where(valid_pos, t + off, -1).astype(np.int32),
                     np.where(valid_pos, T - 1 - t, -1).astype(np.int32)]
        short = np.flatnonzero(lengths < T)
        self.reset = None
        if short.size:
            self.reset = np.zeros((T, self.N), np.bool_)
            self.reset[T - lengths[short], short] = True


def _layers(params, prefix):
    L = 0
    while f"{prefix}weight_hh_l{L}" in params:
        L += 1
    if L == 0:
        raise ShapeError(f"no parameter {prefix}weight_hh_l0: not a bidirectional stack")
    return L


def _weights(params, prefix, k, sfx):
    try:
        return [params[prefix + n] for n in names(k, sfx)]
    except KeyError as e:
        raise ShapeError(f"missing parameter {e.args[0]}") from None


class _Cache:
    __slots__ = ("cell", "plan", "dims", "layers", "dtype", "parallel")

    def __init__(self, cell, plan, dims, layers, dtype, parallel):
        self.cell, self.plan, self.dims, self.layers = cell, plan, dims, layers
        self.dtype, self.parallel = dtype, parallel


def forward(cell, x, lengths, params, prefix="", workspaces=None, parallel=None):
    """-> (out (T, N, 2H), finals, cache). params maps prefix + PyTorch name -> array;
    workspaces: None or 2L cells.Workspace (layer k forward, reverse at 2k, 2k+1), reused
    between calls (a cache then lives in them: backward before the next forward);
    parallel: a cells.Parallel, whose threads run the two directions at once (forward
    and backward), or None."""
    if cell not in _FORWARD:
        raise ShapeError(f"unknown cell {cell!r}: use one of lstm, gru, rnn")
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise ShapeError(f"x must be a 3-d array (T, N, D), got {getattr(x, 'shape', type(x).__name__)}")
    if x.dtype not in cells.DTYPES:
        raise ShapeError(f"x has dtype {x.dtype}; the kernels take float32 or float64")
    x = np.ascontiguousarray(x)
    T, N, _ = x.shape
    plan = Plan(check_lengths(lengths, T, N), T)
    L = _layers(params, prefix)
    if workspaces is not None and len(workspaces) != 2 * L:
        raise ShapeError(f"workspaces: expected {2 * L} (two per layer), got {len(workspaces)}")
    inp, layers, dims = x, [], []
    finals = None
    for k in range(L):
        H = params[f"{prefix}weight_hh_l{k}"].shape[1]
        D = inp.shape[2]
        out = np.empty((T, N, 2 * H), x.dtype)                      # (T, N, 2H)
        if finals is None:
            finals = [np.empty((2 * L, N, H), x.dtype) for _ in range(2 if cell == "lstm" else 1)]
        h0 = np.zeros((N, H), x.dtype)
        caches = [None, None]

        def direction(d, par):   # called at once, below: the loop variables are current
            ws = None if workspaces is None else workspaces[2 * k + d]
            xd = cells._empty(ws, "bidir_x", (T, N, D), x.dtype)   # (T, N, D) right-aligned
            _bidir.gather(inp, 0, plan.into[d], xd, 0, D, False)
            state0 = (h0, h0) if cell == "lstm" else (h0,)
            res = _FORWARD[cell](xd, *state0, *_weights(params, prefix, k, DIRECTIONS[d]),
                                 workspace=ws, parallel=par, reset=plan.reset)
            y, fin, caches[d] = res[0], res[1:-1], res[-1]
            # the two directions write disjoint columns of out and slots of finals
            _bidir.gather(y, 0, plan.back[d], out, d * H, H, False)
            for s, f in enumerate(fin):
                finals[s][2 * k + d] = f
        _both(parallel, direction)
        layers.append(caches)
        dims.append((D, H))
        inp = out
    return inp, tuple(finals), _Cache(cell, plan, dims, layers, x.dtype, parallel)


def backward(dout, dfinals, cache, grads, prefix="", workspace=None):
    """Adds the parameter gradients into grads (prefix + name -> array, like params) and
    returns dx (T, N, D), zero at padded positions. dout (T, N, 2H): its padded positions
    are ignored; dfinals: like forward's finals, or None (zero)."""
    if not isinstance(cache, _Cache):
        raise ShapeError("backward: cache must come from charrnn.nn.bidirectional.forward")
    plan, dt, parallel = cache.plan, cache.dtype, cache.parallel   # threads as forward's
    T, N = plan.T, plan.N
    H_top = cache.dims[-1][1]
    _check("dout", dout, (T, N, 2 * H_top), dt)
    L = len(cache.layers)
    if dfinals is not None:
        want = 2 if cache.cell == "lstm" else 1
        if len(dfinals) != want:
            raise ShapeError(f"dfinals: expected {want} arrays like forward's finals, got {len(dfinals)}")
    d = dout
    for k in reversed(range(L)):
        D, H = cache.dims[k]
        if dfinals is not None:
            for a in dfinals:
                if a is not None:
                    _check("dfinals[i]", a, (2 * L, N, H), dt, contiguous=False)
        dxs = [None, None]

        def direction(dirn, par):   # called at once, below
            dy = np.empty((T, N, H), dt)                            # (T, N, H) right-aligned
            _bidir.gather(d, dirn * H, plan.into[dirn], dy, 0, H, False)
            dfin = [None if dfinals is None or a is None else np.ascontiguousarray(a[2 * k + dirn])
                    for a in (dfinals or [None, None])]
            dxs[dirn] = dxd = np.zeros((T, N, D), dt)               # (T, N, D) right-aligned
            dh0 = np.zeros((N, H), dt)
            dw = _weights(grads, prefix, k, DIRECTIONS[dirn])
            # concurrent directions each take scratch from their own forward workspace
            ws = workspace if _serial(parallel) else None
            if cache.cell == "lstm":
                _BACKWARD["lstm"](dy, dfin[0], dfin[1], cache.layers[k][dirn], dxd, dh0,
                                  np.zeros_like(dh0), *dw, workspace=ws)
            else:
                _BACKWARD[cache.cell](dy, dfin[0], cache.layers[k][dirn], dxd, dh0, *dw,
                                      workspace=ws)
        _both(parallel, direction)
        # both directions' dx into the padded layout: the first sets (zeros at padding),
        # the second adds, after both have finished
        dprev = np.empty((T, N, D), dt)                             # (T, N, D)
        for dirn in range(2):
            _bidir.gather(dxs[dirn], 0, plan.back[dirn], dprev, 0, D, dirn == 1)
        d = dprev
    return d


def _both(parallel, direction):
    """direction(d, parallel) for d = 0 (forward) and 1 (reverse). They are independent, so
    with threads (a cells.Parallel of 2 or more) they run at once, one per thread, each
    cell call serial (the cells release the GIL); a third thread and more stay idle.
    Without, one after the other."""
    if _serial(parallel):
        direction(0, parallel)
        direction(1, parallel)
    else:
        parallel.run(direction, [(0, None), (1, None)])


def _check(name, a, shape, dtype, contiguous=True):
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape:
        got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise ShapeError(f"{name} must be a {np.dtype(dtype)} array {shape}, got {got}")
    if contiguous and not a.flags.c_contiguous:
        raise ShapeError(f"{name} is not C-contiguous: pass np.ascontiguousarray({name})")
