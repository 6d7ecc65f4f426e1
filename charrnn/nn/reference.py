"""The specification: LSTM, GRU and tanh-RNN layers in plain NumPy.

The compiled kernels (kernels/_lstm.pyx, _gru.pyx, _rnn.pyx) have the same signatures
and are tested against these functions, so this file is written to be read, not to be
fast. Math and weight layout are exactly PyTorch's single-layer torch.nn.LSTM / GRU / RNN
(nonlinearity="tanh"), so weights load into PyTorch unchanged.

Sizes:  T time steps, N batch, D input size, H hidden size,
        G gates per cell (LSTM 4, GRU 3, RNN 1).
Arrays: x (T, N, D) time-major input       y (T, N, H) every hidden state h_1..h_T
        h0, c0, hT, cT (N, H)              W_ih (G*H, D)  W_hh (G*H, H)
        b_ih, b_hh (G*H,)                  rows of the G*H axis are gate blocks of H

LSTM, gate blocks i, f, g, o:
    a   = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh             # (N, 4H)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), tanh(a_g), sigmoid(a_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

GRU, gate blocks r, z, n (the hidden bias b_hn sits *inside* r * (...), as in PyTorch):
    r   = sigmoid(x_t W_ir^T + b_ir + h_{t-1} W_hr^T + b_hr)
    z   = sigmoid(x_t W_iz^T + b_iz + h_{t-1} W_hz^T + b_hz)
    n   = tanh(x_t W_in^T + b_in + r * (h_{t-1} W_hn^T + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}

RNN:
    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)

Conventions shared with the kernels:
- forward returns the outputs and a `cache` (here a dict) that backward reads and never
  modifies; the cache holds references to the inputs and to y, so treat x, h0, c0, the
  weights and the returned y as read-only between a forward and its backward.
- backward receives dy (T, N, H), the gradient of the loss w.r.t. every y, and dhT/dcT,
  the gradient w.r.t. the final state (None means zero). A non-zero dhT/dcT is how
  truncated BPTT chains chunks: chunk k's backward gets the dh0/dc0 of chunk k+1's.
- backward *adds* (+=) into dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, so gradients of
  several calls accumulate and the caller zeroes them once per step.
- Everything is computed in the dtype of x (float64 is the spec; float32 is accepted).

Resets (documents, and per-row lengths): forward takes an optional `reset` (T, N) of bool
(or uint8, nonzero meaning true); None means no reset anywhere. reset[t, n] true means
the state entering step t of stream n is zero: h_{t-1} and, for the LSTM, c_{t-1} are
replaced by zeros, exactly as if stream n began at step t from h0 = c0 = 0. Nothing else
changes: y[t-1] is still the real output of step t-1, and the final state is the real
state after step T-1. Backward reads reset from the cache; consequently
- no gradient flows from step t back through the recurrence into the steps before t of
  that stream (nor into dh0, dc0 when t == 0): the running dh, dc are cut there;
- dW_hh gets nothing from that stream at step t (its h_{t-1} is zero), and for the GRU
  neither does dz's h_{t-1} term, for the LSTM df's c_{t-1} term;
- dW_ih, db_ih, db_hh, dx and the gradient that reaches y[t-1] from dy are unchanged.
A reset at t == 0 makes h0 (and c0) irrelevant to that stream. reset=None and an
all-False reset give the same results.
"""
import numpy as np

from charrnn.errors import ConfigError

_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def gates(cell):
    """Number of gate blocks G of `cell` ("lstm" 4, "gru" 3, "rnn" 1)."""
    try:
        return _GATES[cell]
    except KeyError:
        raise ConfigError(f"unknown cell {cell!r}: use one of {sorted(_GATES)}") from None


def init_params(cell, D, H, rng, dtype=np.float64):
    """PyTorch's default initialisation: every tensor uniform in [-1/sqrt(H), 1/sqrt(H)].

    rng is a np.random.Generator. Returns dict(W_ih, W_hh, b_ih, b_hh).
    """
    G = gates(cell)
    k = 1.0 / np.sqrt(H)
    shapes = {"W_ih": (G * H, D), "W_hh": (G * H, H), "b_ih": (G * H,), "b_hh": (G * H,)}
    return {name: rng.uniform(-k, k, size=shape).astype(dtype)
            for name, shape in shapes.items()}


def sigmoid(a):
    # The identity sigmoid(a) = (1 + tanh(a/2)) / 2: unlike 1/(1+exp(-a)) it never
    # overflows (no warning for a << 0), and it keeps float32 as float32.
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _input_projection(x, W, b):
    # x_t W^T + b for all t at once: it does not depend on h, so one (T*N, D) matmul
    # replaces T small ones.
    T, N, D = x.shape
    return (x.reshape(T * N, D) @ W.T + b).reshape(T, N, -1)  # (T, N, G*H)


def _resets(reset, T, N):
    # (T, N, 1) bool, True where the state entering step t of stream n is zero;
    # broadcasts against (N, H) states at one step and (T, N, H) at all steps.
    if reset is None:
        return np.zeros((T, N, 1), bool)
    return np.asarray(reset).astype(bool).reshape(T, N, 1)


def _cut(a, r):
    # a with the rows of the streams that reset (r True) zeroed: the state they start
    # from, or the gradient that must not flow back past their start.
    return np.where(r, a.dtype.type(0), a)


def _previous_states(h0, y, resets):
    # h_{t-1} as step t saw it, for t = 1..T: h0 followed by y without its last step,
    # zero where the stream reset.
    return _cut(np.concatenate([h0[None], y[:-1]], axis=0), resets)  # (T, N, H)


def _zeros_or_copy(d, like):
    # A fresh (N, H) buffer in the compute dtype for the running gradient, so that
    # dhT/dcT are never written to.
    if d is None:
        return np.zeros_like(like)
    return np.array(d, dtype=like.dtype, copy=True)


def _affine_backward(da_x, da_h, x, h_prev, W_ih, dx, dW_ih, dW_hh, db_ih, db_hh):
    """Backward through the two affine maps of every cell, for all steps at once.

    da_x (T, N, G*H) is the gradient w.r.t. x_t W_ih^T + b_ih and da_h (T, N, G*H) the
    gradient w.r.t. h_{t-1} W_hh^T + b_hh (they differ only in the GRU's n block). The
    h-path into dh_{t-1} is done inside the time loop; this adds the rest: dx, dW_ih,
    dW_hh, db_ih, db_hh. Done after the loop because none of it feeds back in time.
    """
    T, N, D = x.shape
    H = h_prev.shape[2]
    GH = da_x.shape[2]
    da_x = da_x.reshape(T * N, GH)                                # (T*N, G*H)
    da_h = da_h.reshape(T * N, GH)                                # (T*N, G*H)
    dx += (da_x @ W_ih).reshape(T, N, D)                          # (T, N, D)
    dW_ih += da_x.T @ x.reshape(T * N, D)                         # (G*H, D)
    dW_hh += da_h.T @ h_prev.reshape(T * N, H)                    # (G*H, H)
    db_ih += da_x.sum(axis=0)                                     # (G*H,)
    db_hh += da_h.sum(axis=0)                                     # (G*H,)


# ----------------------------------------------------------------------------- LSTM

def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, reset=None):
    """LSTM over a whole sequence. Returns (y (T,N,H), hT (N,H), cT (N,H), cache)."""
    T, N, D = x.shape
    resets = _resets(reset, T, N)                                 # (T, N, 1)
    H = h0.shape[1]
    dt = x.dtype
    # Both biases can be folded into the input projection: they are only ever summed.
    xa = _input_projection(x, W_ih, b_ih + b_hh)                  # (T, N, 4H)
    act = np.empty((T, N, 4 * H), dt)   # i, f, g, o after their nonlinearities
    c = np.empty((T, N, H), dt)         # c_1..c_T
    tanh_c = np.empty((T, N, H), dt)    # tanh(c_t), kept so backward need not recompute
    y = np.empty((T, N, H), dt)         # h_1..h_T
    h_prev, c_prev = h0, c0
    for t in range(T):
        h_prev, c_prev = _cut(h_prev, resets[t]), _cut(c_prev, resets[t])
        a = xa[t] + h_prev @ W_hh.T                               # (N, 4H)
        act[t, :, :2 * H] = sigmoid(a[:, :2 * H])                 # i, f
        act[t, :, 2 * H:3 * H] = np.tanh(a[:, 2 * H:3 * H])       # g
        act[t, :, 3 * H:] = sigmoid(a[:, 3 * H:])                 # o
        i, f, g, o = np.split(act[t], 4, axis=1)                  # 4 x (N, H)
        c[t] = f * c_prev + i * g
        tanh_c[t] = np.tanh(c[t])
        y[t] = o * tanh_c[t]
        h_prev, c_prev = y[t], c[t]
    cache = dict(x=x, h0=h0, c0=c0, W_ih=W_ih, W_hh=W_hh,
                 act=act, c=c, tanh_c=tanh_c, y=y, resets=resets)
    return y, y[-1].copy(), c[-1].copy(), cache


def lstm_backward(dy, dhT, dcT, cache, dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh):
    """Adds the gradients of lstm_forward into dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh."""
    x, h0, c0, W_ih, W_hh = (cache[k] for k in ("x", "h0", "c0", "W_ih", "W_hh"))
    act, c, tanh_c, y = (cache[k] for k in ("act", "c", "tanh_c", "y"))
    resets = cache["resets"]
    T, N, H = y.shape
    dh = _zeros_or_copy(dhT, y[0])     # dL/dh_t from later steps, running backwards
    dc = _zeros_or_copy(dcT, y[0])     # dL/dc_t from later steps
    da = np.empty((T, N, 4 * H), y.dtype)  # dL/da_t for every step, blocks i, f, g, o
    for t in reversed(range(T)):
        dh += dy[t]                     # h_t is both an output and the next step's input
        i, f, g, o = np.split(act[t], 4, axis=1)                  # 4 x (N, H)
        c_prev = _cut(c[t - 1] if t > 0 else c0, resets[t])
        # h_t = o * tanh(c_t)
        do = dh * tanh_c[t]
        dc += dh * o * (1.0 - tanh_c[t] ** 2)
        # c_t = f * c_{t-1} + i * g
        di, df, dg = dc * g, dc * c_prev, dc * i
        # through the nonlinearities: sigmoid' = s(1-s), tanh' = 1-tanh^2
        da[t, :, 0 * H:1 * H] = di * i * (1.0 - i)
        da[t, :, 1 * H:2 * H] = df * f * (1.0 - f)
        da[t, :, 2 * H:3 * H] = dg * (1.0 - g ** 2)
        da[t, :, 3 * H:4 * H] = do * o * (1.0 - o)
        dc = dc * f                     # dL/dc_{t-1}
        dh = da[t] @ W_hh               # dL/dh_{t-1}: (N, 4H) @ (4H, H)
        # a stream that reset at t never saw its earlier states: nothing flows back to them
        dh, dc = _cut(dh, resets[t]), _cut(dc, resets[t])
    dh0 += dh
    dc0 += dc
    # a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh: both maps see the same da.
    _affine_backward(da, da, x, _previous_states(h0, y, resets), W_ih,
                     dx, dW_ih, dW_hh, db_ih, db_hh)


# ----------------------------------------------------------------------------- GRU

def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, reset=None):
    """GRU over a whole sequence. Returns (y (T,N,H), hT (N,H), cache)."""
    T, N, D = x.shape
    resets = _resets(reset, T, N)                                 # (T, N, 1)
    H = h0.shape[1]
    dt = x.dtype
    # b_hh cannot be folded in here: b_hn is multiplied by r.
    xa = _input_projection(x, W_ih, b_ih)                         # (T, N, 3H)
    act = np.empty((T, N, 3 * H), dt)   # r, z, n after their nonlinearities
    hn = np.empty((T, N, H), dt)        # h_{t-1} W_hn^T + b_hn, needed for dr
    y = np.empty((T, N, H), dt)
    h_prev = h0
    for t in range(T):
        h_prev = _cut(h_prev, resets[t])
        ha = h_prev @ W_hh.T + b_hh                               # (N, 3H)
        r = sigmoid(xa[t, :, 0 * H:1 * H] + ha[:, 0 * H:1 * H])
        z = sigmoid(xa[t, :, 1 * H:2 * H] + ha[:, 1 * H:2 * H])
        n = np.tanh(xa[t, :, 2 * H:3 * H] + r * ha[:, 2 * H:3 * H])
        act[t, :, 0 * H:1 * H] = r
        act[t, :, 1 * H:2 * H] = z
        act[t, :, 2 * H:3 * H] = n
        hn[t] = ha[:, 2 * H:3 * H]
        y[t] = (1.0 - z) * n + z * h_prev
        h_prev = y[t]
    cache = dict(x=x, h0=h0, W_ih=W_ih, W_hh=W_hh, act=act, hn=hn, y=y, resets=resets)
    return y, y[-1].copy(), cache


def gru_backward(dy, dhT, cache, dx, dh0, dW_ih, dW_hh, db_ih, db_hh):
    """Adds the gradients of gru_forward into dx, dh0, dW_ih, dW_hh, db_ih, db_hh."""
    x, h0, W_ih, W_hh = (cache[k] for k in ("x", "h0", "W_ih", "W_hh"))
    act, hn, y, resets = cache["act"], cache["hn"], cache["y"], cache["resets"]
    T, N, H = y.shape
    h_prevs = _previous_states(h0, y, resets)                     # (T, N, H)
    dh = _zeros_or_copy(dhT, y[0])
    da_x = np.empty((T, N, 3 * H), y.dtype)  # dL/d(x_t W_ih^T + b_ih), blocks r, z, n
    da_h = np.empty((T, N, 3 * H), y.dtype)  # dL/d(h_{t-1} W_hh^T + b_hh)
    for t in reversed(range(T)):
        dh += dy[t]
        r, z, n = np.split(act[t], 3, axis=1)                     # 3 x (N, H)
        # h_t = (1 - z) * n + z * h_{t-1}
        dn = dh * (1.0 - z)
        dz = dh * (h_prevs[t] - n)
        dh_prev = dh * z                # the direct path; the matmul path is added below
        # n = tanh(an), an = xa_n + r * hn
        dan = dn * (1.0 - n ** 2)
        dr = dan * hn[t]
        dar = dr * r * (1.0 - r)
        daz = dz * z * (1.0 - z)
        da_x[t, :, 0 * H:1 * H] = dar
        da_x[t, :, 1 * H:2 * H] = daz
        da_x[t, :, 2 * H:3 * H] = dan
        # r and z see the hidden projection as a plain sum, n sees it scaled by r.
        da_h[t, :, 0 * H:1 * H] = dar
        da_h[t, :, 1 * H:2 * H] = daz
        da_h[t, :, 2 * H:3 * H] = dan * r
        dh = dh_prev + da_h[t] @ W_hh   # dL/dh_{t-1}: (N, 3H) @ (3H, H)
        dh = _cut(dh, resets[t])        # not past a reset
    dh0 += dh
    _affine_backward(da_x, da_h, x, h_prevs, W_ih,
                     dx, dW_ih, dW_hh, db_ih, db_hh)


# ----------------------------------------------------------------------------- RNN

def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh, reset=None):
    """Elman RNN with tanh over a whole sequence. Returns (y (T,N,H), hT (N,H), cache)."""
    T, N, D = x.shape
    resets = _resets(reset, T, N)                                 # (T, N, 1)
    H = h0.shape[1]
    xa = _input_projection(x, W_ih, b_ih + b_hh)                  # (T, N, H)
    y = np.empty((T, N, H), x.dtype)
    h_prev = h0
    for t in range(T):
        y[t] = np.tanh(xa[t] + _cut(h_prev, resets[t]) @ W_hh.T)
        h_prev = y[t]
    # y alone suffices for backward: tanh' = 1 - y^2.
    cache = dict(x=x, h0=h0, W_ih=W_ih, W_hh=W_hh, y=y, resets=resets)
    return y, y[-1].copy(), cache


def rnn_backward(dy, dhT, cache, dx, dh0, dW_ih, dW_hh, db_ih, db_hh):
    """Adds the gradients of rnn_forward into dx, dh0, dW_ih, dW_hh, db_ih, db_hh."""
    x, h0, W_ih, W_hh, y = (cache[k] for k in ("x", "h0", "W_ih", "W_hh", "y"))
    resets = cache["resets"]
    T, N, H = y.shape
    dh = _zeros_or_copy(dhT, y[0])
    da = np.empty((T, N, H), y.dtype)
    for t in reversed(range(T)):
        dh += dy[t]
        da[t] = dh * (1.0 - y[t] ** 2)
        dh = _cut(da[t] @ W_hh, resets[t])                        # (N, H) @ (H, H)
    dh0 += dh
    _affine_backward(da, da, x, _previous_states(h0, y, resets), W_ih,
                     dx, dW_ih, dW_hh, db_ih, db_hh)
