"""The specification of a stack of bidirectional layers over a padded batch, in NumPy.

Read one row at a time: this file says *what* charrnn.nn.bidirectional computes, and
the tests hold the compiled path to it. Cells are charrnn.nn.reference's; names and
layout are PyTorch's torch.nn.LSTM / GRU / RNN(bidirectional=True).

Sizes: T time steps, N rows, D input size, H hidden size per direction, L layers,
       G gate blocks (LSTM 4, GRU 3, RNN 1).
Arrays: x (T, N, D) padded, row n valid in x[:lengths[n], n]; lengths (N,), 1..T.
        out (T, N, 2H): out[t, n] = [h_fwd_t ; h_rev_t] for t < lengths[n], 0 after.
        finals: (hN,) or, for the LSTM, (hN, cN), each (2L, N, H), ordered like
        PyTorch's h_n: layer 0 forward, layer 0 reverse, layer 1 forward, ...
Parameters (a dict), for k = 0..L-1 and sfx in ("", "_reverse"):
        weight_ih_l{k}{sfx} (G*H, D if k == 0 else 2H)   weight_hh_l{k}{sfx} (G*H, H)
        bias_ih_l{k}{sfx} (G*H,)                         bias_hh_l{k}{sfx} (G*H,)

Per row n with length l, per layer: the forward direction reads x[0..l-1] from a zero
state; the reverse direction reads x[l-1], x[l-2], ..., x[0] from a zero state, so its
first step is the row's last real character and its output for position t is the state
after reading x[t]. Padding (x[l:, n]) is never read: NaN there changes nothing. The
forward final state is the state after x[l-1]; the reverse one, after x[0]. Layer k > 0
reads layer k-1's out. backward takes dout (T, N, 2H), whose padded positions are
ignored, and dfinals shaped like finals (None: zero), *adds* the parameter gradients into
grads (a dict like params) and returns dx (T, N, D), zero at padded positions.
"""
import numpy as np

from charrnn.nn import reference as ref

DIRECTIONS = ("", "_reverse")


def names(k, sfx):
    """PyTorch's names of layer k's parameters in direction sfx ("" or "_reverse")."""
    return (f"weight_ih_l{k}{sfx}", f"weight_hh_l{k}{sfx}",
            f"bias_ih_l{k}{sfx}", f"bias_hh_l{k}{sfx}")


def param_shapes(cell, D, H, L):
    """Name -> shape, in PyTorch's named_parameters() order."""
    G = ref.gates(cell)
    shapes = {}
    for k in range(L):
        for sfx in DIRECTIONS:
            w_ih, w_hh, b_ih, b_hh = names(k, sfx)
            shapes[w_ih] = (G * H, D if k == 0 else 2 * H)
            shapes[w_hh] = (G * H, H)
            shapes[b_ih] = (G * H,)
            shapes[b_hh] = (G * H,)
    return shapes


def _run(cell, xs, params, k, sfx):
    # One direction of one layer over one row's valid part xs (l, 1, D), from zeros.
    H = params[names(k, sfx)[1]].shape[1]
    z = np.zeros((1, H), xs.dtype)
    w = [params[n] for n in names(k, sfx)]
    if cell == "lstm":
        y, hT, cT, cache = ref.lstm_forward(xs, z, z, *w)
        return y, (hT, cT), cache
    y, hT, cache = getattr(ref, cell + "_forward")(xs, z, *w)
    return y, (hT,), cache


def forward(cell, x, lengths, params):
    """-> (out (T, N, 2H), finals, cache)."""
    T, N, _ = x.shape
    L = sum(1 for n in params if n.startswith("weight_hh_l") and not n.endswith("_reverse"))
    H = params["weight_hh_l0"].shape[1]
    out = np.zeros((T, N, 2 * H), x.dtype)
    n_states = 2 if cell == "lstm" else 1
    finals = [np.zeros((2 * L, N, H), x.dtype) for _ in range(n_states)]
    caches = {}
    for n in range(N):
        inp = x[:lengths[n], n:n + 1]                              # (l, 1, D)
        for k in range(L):
            y_f, fin_f, c_f = _run(cell, inp, params, k, "")
            y_r, fin_r, c_r = _run(cell, inp[::-1], params, k, "_reverse")
            inp = np.concatenate([y_f, y_r[::-1]], axis=2)         # (l, 1, 2H)
            for s in range(n_states):
                finals[s][2 * k, n] = fin_f[s][0]
                finals[s][2 * k + 1, n] = fin_r[s][0]
            caches[n, k] = (c_f, c_r)
        out[:lengths[n], n] = inp[:, 0]
    return out, tuple(finals), dict(cell=cell, x=x, lengths=lengths, L=L, H=H, caches=caches)


def backward(dout, dfinals, cache, grads):
    """Adds the parameter gradients into grads; returns dx (T, N, D)."""
    cell, x, lengths, L, H = (cache[k] for k in ("cell", "x", "lengths", "L", "H"))
    dx = np.zeros_like(x)
    for n in range(x.shape[1]):
        l = lengths[n]
        d = dout[:l, n:n + 1]                                      # (l, 1, 2H)
        for k in reversed(range(L)):
            c_f, c_r = cache["caches"][n, k]
            D = c_f["x"].shape[2]
            d_f = np.zeros((l, 1, D), x.dtype)
            _back(cell, d[:, :, :H], _final_grads(dfinals, 2 * k, n), c_f, d_f, grads, k, "")
            d_r = np.zeros((l, 1, D), x.dtype)
            # the reverse direction saw the row backwards: its dy and dx are flipped too
            _back(cell, np.ascontiguousarray(d[::-1, :, H:]), _final_grads(dfinals, 2 * k + 1, n),
                  c_r, d_r, grads, k, "_reverse")
            d = d_f + d_r[::-1]                                    # (l, 1, D)
        dx[:l, n] = d[:, 0]
    return dx


def _final_grads(dfinals, i, n):
    # The gradient w.r.t. one direction's final state(s) of row n, (1, H) each, or None.
    if dfinals is None:
        return None
    return tuple(None if d is None else d[i, n:n + 1] for d in dfinals)


def _back(cell, dy, dfin, cache, dx, grads, k, sfx):
    H = cache["W_hh"].shape[1]
    dw = [grads[name] for name in names(k, sfx)]
    dh0 = np.zeros((1, H), dx.dtype)
    dhT = None if dfin is None else dfin[0]
    if cell == "lstm":
        dcT = None if dfin is None else dfin[1]
        ref.lstm_backward(dy, dhT, dcT, cache, dx, dh0, np.zeros_like(dh0), *dw)
    else:
        getattr(ref, cell + "_backward")(dy, dhT, cache, dx, dh0, *dw)
