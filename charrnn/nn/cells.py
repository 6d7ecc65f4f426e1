"""The compiled LSTM / GRU / RNN kernels behind a checked Python API.

Same signatures and semantics as charrnn.nn.reference (the specification; read its docstring
for the maths and shapes): forward returns (y, hT[, cT], cache); backward *adds* into the
gradient arrays it is given. x may also be a Lookup(ids, E), x = E[ids] for a first layer
after an embedding: the layer then multiplies the embedding table, not its gathered rows,
and backward's dx is E's gradient (charrnn.nn.table). Everything is validated here, before the kernels release
the GIL: wrong shape, dtype, memory layout or a read-only gradient raises ShapeError (a
ValueError) with a message naming the argument; nothing reaches C that could fail there.

Resets: forward's `reset=` (T, N) of bool or uint8 zeroes the state entering step t of
the streams n where reset[t, n] (reference.py's docstring has the semantics); backward
reads it from the cache. None, or a mask without a true entry, runs the kernels exactly
as without one. The cache keeps a view of the mask: leave it alone until backward.

Speed: pass `workspace=Workspace()` to reuse buffers between calls of the same shape
(the training loop keeps one per layer). A cache then lives in the workspace, so call
backward before the next forward on the same workspace. Backward's scratch buffers come
from the forward's workspace, or from `workspace=` given to backward: layers run their
backward one after another, so they can share one. Pass `parallel=Parallel(k)` to
split each pass over k threads (batch rows for the recurrence, output rows for the
whole-sequence GEMMs); BLAS must then be limited to one thread (threadpoolctl), which
the training loop does.

GEMMs: float32 runs on charrnn's own sgemm (kernels/sgemm.h) on the ISA tier in use
(charrnn.nn.isa: AVX-512, AVX2+FMA or NEON micro-kernels), with the weights packed once per
pass; float64, and float32 on the scalar tier, on SciPy's BLAS. `gemm_backend("blas")`
(or CHARRNN_SGEMM=blas in the environment) makes float32 use BLAS too. A workspace of
precision "bf16" (`Workspace(precision="bf16")`) packs the weights in bfloat16 instead:
every product with a packed weight then rounds its inputs to bf16 and sums in float32
(kernels/sgemm_bf16.h, always the own GEMM; charrnn.nn.precision says where it may run).
"""
import numpy as np

from charrnn import _gru, _lstm, _rnn
from charrnn.nn import isa
from charrnn.nn.packing import (DTYPES, _pack_two, current_gemm_backend, gemm_backend,
                                pack)
from charrnn.nn import table
from charrnn.errors import ShapeError
from charrnn.nn.table import Lookup
from charrnn.nn.parallel import (Parallel, Workspace, each, empty as _empty, serial as _serial,
                                 set_precision)

# The checked API (charrnn.cells): the cells, and the buffers and threads a pass runs
# with (defined in charrnn.nn.parallel, public here).
__all__ = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "rnn_forward",
           "rnn_backward", "Workspace", "Parallel", "gemm_backend", "current_gemm_backend",
           "pack", "DTYPES"]

isa.apply_env()

_INT_MAX = 2**31 - 1  # BLAS takes 32-bit sizes

_NO_RESET = np.empty((0, 0), np.uint8)               # the kernels' "no reset anywhere"
# scratch the kernels need only with resets: empty stand-ins otherwise, (N, H) and (T+1, N, H)
_NO_SCRATCH = {dt: (np.empty((0, 0), dt), np.empty((0, 0, 0), dt)) for dt in DTYPES}


def _packs_forward(ws, W_ih, W_hh, parallel=None):
    """The B operands of x W_ih^T and h W_hh^T."""
    return _pack_two(ws, ("Wpf_ih", "Wpf_hh"), (W_ih, W_hh), True, parallel)


def _packs_backward(ws, W_ih, W_hh, parallel=None):
    """The B operands of dG W_ih and dG W_hh."""
    return _pack_two(ws, ("Wpb_ih", "Wpb_hh"), (W_ih, W_hh), False, parallel)


def _check(name, a, shape, dtype, writable=False):
    if isinstance(a, Lookup) and name == "x":   # checked when made; its rows when gathered
        return
    if not isinstance(a, np.ndarray):
        raise ShapeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise ShapeError(f"{name} has dtype {a.dtype}, expected {dtype} (the dtype of x)")
    if a.shape != shape:
        raise ShapeError(f"{name} has shape {a.shape}, expected {shape}")
    if not a.flags.c_contiguous:
        raise ShapeError(f"{name} is not C-contiguous: pass np.ascontiguousarray({name})")
    if writable and not a.flags.writeable:
        raise ShapeError(f"{name} is read-only: gradients are accumulated into it")


def _sizes(cell, G, x, h0, W_ih):
    """Validate x, h0 and W_ih enough to read T, N, D, H and the dtype."""
    if not isinstance(x, (np.ndarray, Lookup)) or x.ndim != 3:
        got = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ShapeError(f"{cell}: x must be a 3-d array (T, N, D), got {got}")
    if x.dtype not in DTYPES:
        raise ShapeError(f"{cell}: x has dtype {x.dtype}; the kernels take float32 or float64")
    T, N, D = x.shape
    if not isinstance(h0, np.ndarray) or h0.ndim != 2:
        got = f"shape {h0.shape}" if isinstance(h0, np.ndarray) else type(h0).__name__
        raise ShapeError(f"{cell}: h0 must be a 2-d array (N, H), got {got}")
    H = h0.shape[1]
    if min(T, N, D, H) < 1:
        raise ShapeError(f"{cell}: every size must be >= 1, got T={T} N={N} D={D} H={H}")
    if max(T * N * max(D, G * H), G * H * max(D, H)) > _INT_MAX:
        raise ShapeError(f"{cell}: arrays too large for 32-bit BLAS sizes (T={T} N={N} D={D} H={H})")
    return T, N, D, H, x.dtype


def _reset_mask(reset, T, N):
    """reset as the kernels take it: a (T, N) uint8 view, or _NO_RESET for None or a
    mask with no true entry (then no step looks for resets, and nothing is copied)."""
    if reset is None:
        return _NO_RESET
    if not isinstance(reset, np.ndarray):
        raise ShapeError(f"reset must be a numpy array (T, N) of bool or uint8, got {type(reset).__name__}")
    if reset.dtype not in (np.bool_, np.uint8):
        raise ShapeError(f"reset has dtype {reset.dtype}, expected bool or uint8")
    if reset.shape != (T, N):
        raise ShapeError(f"reset has shape {reset.shape}, expected {(T, N)} (T, N like x's first two)")
    if not reset.flags.c_contiguous:
        raise ShapeError("reset is not C-contiguous: pass np.ascontiguousarray(reset)")
    r = reset.view(np.uint8)
    return r if r.any() else _NO_RESET


def _reset_scratch(ws, reset, names, shape, dt):
    """Buffers `names` of `shape` for the kernels' steps with resets; empty without."""
    if not reset.size:
        return [_NO_SCRATCH[dt][len(shape) - 2]] * len(names)
    return [_empty(ws, n, shape, dt) for n in names]


def _check_dx(dx, cache, dt):
    """dx: (T, N, D) like x, or the (V, D) gradient of a Lookup's table (checked there)."""
    if not isinstance(cache.x, Lookup):
        _check("dx", dx, cache.x.shape, dt, writable=True)


def _check_weights(G, H, D, dt, W_ih, W_hh, b_ih, b_hh, prefix=""):
    _check(prefix + "W_ih", W_ih, (G * H, D), dt, writable=bool(prefix))
    _check(prefix + "W_hh", W_hh, (G * H, H), dt, writable=bool(prefix))
    _check(prefix + "b_ih", b_ih, (G * H,), dt, writable=bool(prefix))
    _check(prefix + "b_hh", b_hh, (G * H,), dt, writable=bool(prefix))


def _state_grad(name, d, N, H, dt):
    if d is None:
        return np.zeros((N, H), dt)
    _check(name, d, (N, H), dt)
    return d


class _Cache:
    """What backward needs; opaque to callers."""
    __slots__ = ("cell", "x", "W_ih", "W_hh", "saved", "ws", "parallel", "reset")

    def __init__(self, cell, x, W_ih, W_hh, saved, ws, parallel, reset):
        self.cell, self.x, self.W_ih, self.W_hh = cell, x, W_ih, W_hh
        self.saved, self.ws, self.parallel, self.reset = saved, ws, parallel, reset


def _open_cache(cell, cache, dy):
    if not isinstance(cache, _Cache) or cache.cell != cell:
        raise ShapeError(f"{cell}_backward: cache must come from charrnn.nn.cells.{cell}_forward")
    T, N, _ = cache.x.shape
    H = cache.W_hh.shape[1]
    _check("dy", dy, (T, N, H), cache.x.dtype)
    return T, N, cache.x.shape[2], H, cache.x.dtype


# ---- the passes every cell runs the same way ---------------------------------------------
# A layer's forward is an input projection over all T*N rows, then the recurrence over
# the N streams; backward is the recurrence back in time, then the weight gradients. Each
# runs one of three ways: through the embedding table (x is a Lookup), as one compiled
# call on this thread (serial), or cut over the threads of `parallel` (rows, streams and
# gate blocks). The cells differ only in their buffers, which they pass in.

def _forward(kernel, x, weights, out, recur, whole, parallel, ws):
    """weights: the input projection's (W_ih, Wp_ih, biases...); out: its (T, N, G*H)
    result; recur(n0, n1): the recurrence's arguments for streams [n0, n1); whole: the
    arguments of kernel.forward, the layer in one call."""
    T, N = x.shape[:2]
    if isinstance(x, Lookup):
        table.forward_input(x, kernel.forward_input, weights, out, ws, parallel)
    elif _serial(parallel):
        kernel.forward(*whole)
        return
    else:
        parallel.run(kernel.forward_input,
                     [(x, *weights, out, r0, r1) for r0, r1 in parallel.split(T * N)])
    each(parallel, kernel.forward_recur, N, recur)


def _backward(kernel, cache, G, recur, whole, dgates, hs, Wp_ih, grads, ws):
    """recur(n0, n1): the backward recurrence's arguments for streams [n0, n1); whole:
    kernel.backward's, the layer in one call; dgates: the gate gradients the weight
    gradients read ((dact,) or (dgx, dgh)); hs: the h_{t-1} they read (with resets, the
    recurrence's hp); grads: (dx, dW_ih, dW_hh, db_ih, db_hh)."""
    P, x = cache.parallel, cache.x
    T, N = x.shape[:2]
    H = cache.W_hh.shape[1]
    if _serial(P) and not isinstance(x, Lookup):
        kernel.backward(*whole)
        return
    each(P, kernel.backward_recur, N, recur)
    if isinstance(x, Lookup):
        table.backward_weights(x, dgates[0], dgates[-1], hs, cache.W_ih, Wp_ih, *grads, ws, P)
    else:
        P.run(kernel.backward_weights,
              [(x, cache.W_ih, Wp_ih, hs, *dgates, *grads, g0, g1, r0, r1)
               for (g0, g1), (r0, r1) in zip(P.split(G * H), P.split(T * N))])


# ---- LSTM ------------------------------------------------------------------------------

def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, workspace=None, parallel=None,
                 reset=None):
    T, N, D, H, dt = _sizes("lstm", 4, x, h0, W_ih)
    _check("x", x, (T, N, D), dt)
    _check("h0", h0, (N, H), dt)
    _check("c0", c0, (N, H), dt)
    _check_weights(4, H, D, dt, W_ih, W_hh, b_ih, b_hh)
    r = _reset_mask(reset, T, N)
    ws = workspace
    hz, cz = _reset_scratch(ws, r, ("hz", "cz"), (N, H), dt)
    hs = _empty(ws, "hs", (T + 1, N, H), dt)
    cs = _empty(ws, "cs", (T + 1, N, H), dt)
    act = _empty(ws, "act", (T, N, 4 * H), dt)
    tc = _empty(ws, "tc", (T, N, H), dt)
    Wp_ih, Wp_hh = _packs_forward(ws, W_ih, W_hh, parallel)
    _forward(_lstm, x, (W_ih, Wp_ih, b_ih, b_hh), act,
             lambda n0, n1: (h0, c0, r, W_hh, Wp_hh, hs, cs, act, tc, hz, cz, n0, n1),
             (x, h0, c0, r, W_ih, W_hh, Wp_ih, Wp_hh, b_ih, b_hh, hs, cs, act, tc, hz, cz),
             parallel, ws)
    cache = _Cache("lstm", x, W_ih, W_hh, (hs, cs, act, tc), ws, parallel, r)
    return hs[1:], hs[T].copy(), cs[T].copy(), cache


def lstm_backward(dy, dhT, dcT, cache, dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, workspace=None):
    T, N, D, H, dt = _open_cache("lstm", cache, dy)
    dhT = _state_grad("dhT", dhT, N, H, dt)
    dcT = _state_grad("dcT", dcT, N, H, dt)
    _check_dx(dx, cache, dt)
    _check("dh0", dh0, (N, H), dt, writable=True)
    _check("dc0", dc0, (N, H), dt, writable=True)
    _check_weights(4, H, D, dt, dW_ih, dW_hh, db_ih, db_hh, prefix="d")
    hs, cs, act, tc = cache.saved
    ws = workspace if workspace is not None else cache.ws   # scratch only
    dact = _empty(ws, "dact", (T, N, 4 * H), dt)
    dh = _empty(ws, "dh", (N, H), dt)
    dc = _empty(ws, "dc", (N, H), dt)
    r = cache.reset
    (hp,) = _reset_scratch(ws, r, ("hp",), (T + 1, N, H), dt)
    (cz,) = _reset_scratch(ws, r, ("cz",), (N, H), dt)
    Wp_ih, Wp_hh = _packs_backward(ws, cache.W_ih, cache.W_hh, cache.parallel)
    x, W_ih, W_hh = cache.x, cache.W_ih, cache.W_hh
    _backward(_lstm, cache, 4,
              lambda n0, n1: (dy, dhT, dcT, r, W_hh, Wp_hh, hs, cs, act, tc, dact, dh, dc, hp, cz,
                              dh0, dc0, n0, n1),
              (dy, dhT, dcT, r, x, W_ih, W_hh, Wp_ih, Wp_hh, hs, cs, act, tc, dact, dh, dc, hp, cz,
               dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh),
              (dact,), hp if r.size else hs, Wp_ih, (dx, dW_ih, dW_hh, db_ih, db_hh), ws)


# ---- GRU -------------------------------------------------------------------------------

def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, workspace=None, parallel=None, reset=None):
    T, N, D, H, dt = _sizes("gru", 3, x, h0, W_ih)
    _check("x", x, (T, N, D), dt)
    _check("h0", h0, (N, H), dt)
    _check_weights(3, H, D, dt, W_ih, W_hh, b_ih, b_hh)
    r = _reset_mask(reset, T, N)
    ws = workspace
    (hz,) = _reset_scratch(ws, r, ("hz",), (N, H), dt)
    hs = _empty(ws, "hs", (T + 1, N, H), dt)
    act = _empty(ws, "act", (T, N, 3 * H), dt)
    ghn = _empty(ws, "ghn", (T, N, H), dt)
    gh = _empty(ws, "gh", (N, 3 * H), dt)
    Wp_ih, Wp_hh = _packs_forward(ws, W_ih, W_hh, parallel)
    _forward(_gru, x, (W_ih, Wp_ih, b_ih), act,
             lambda n0, n1: (h0, r, W_hh, Wp_hh, b_hh, hs, act, ghn, gh, hz, n0, n1),
             (x, h0, r, W_ih, W_hh, Wp_ih, Wp_hh, b_ih, b_hh, hs, act, ghn, gh, hz), parallel, ws)
    cache = _Cache("gru", x, W_ih, W_hh, (hs, act, ghn), ws, parallel, r)
    return hs[1:], hs[T].copy(), cache


def gru_backward(dy, dhT, cache, dx, dh0, dW_ih, dW_hh, db_ih, db_hh, workspace=None):
    T, N, D, H, dt = _open_cache("gru", cache, dy)
    dhT = _state_grad("dhT", dhT, N, H, dt)
    _check_dx(dx, cache, dt)
    _check("dh0", dh0, (N, H), dt, writable=True)
    _check_weights(3, H, D, dt, dW_ih, dW_hh, db_ih, db_hh, prefix="d")
    hs, act, ghn = cache.saved
    ws = workspace if workspace is not None else cache.ws   # scratch only
    dgx = _empty(ws, "dgx", (T, N, 3 * H), dt)
    dgh = _empty(ws, "dgh", (T, N, 3 * H), dt)
    dh_a = _empty(ws, "dh_a", (N, H), dt)
    dh_b = _empty(ws, "dh_b", (N, H), dt)
    r = cache.reset
    (hp,) = _reset_scratch(ws, r, ("hp",), (T + 1, N, H), dt)
    Wp_ih, Wp_hh = _packs_backward(ws, cache.W_ih, cache.W_hh, cache.parallel)
    x, W_ih, W_hh = cache.x, cache.W_ih, cache.W_hh
    _backward(_gru, cache, 3,
              lambda n0, n1: (dy, dhT, r, W_hh, Wp_hh, hs, act, ghn, dgx, dgh, dh_a, dh_b, hp, dh0,
                              n0, n1),
              (dy, dhT, r, x, W_ih, W_hh, Wp_ih, Wp_hh, hs, act, ghn, dgx, dgh, dh_a, dh_b, hp, dx,
               dh0, dW_ih, dW_hh, db_ih, db_hh),
              (dgx, dgh), hp if r.size else hs, Wp_ih, (dx, dW_ih, dW_hh, db_ih, db_hh), ws)


# ---- RNN -------------------------------------------------------------------------------

def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh, workspace=None, parallel=None, reset=None):
    T, N, D, H, dt = _sizes("rnn", 1, x, h0, W_ih)
    _check("x", x, (T, N, D), dt)
    _check("h0", h0, (N, H), dt)
    _check_weights(1, H, D, dt, W_ih, W_hh, b_ih, b_hh)
    r = _reset_mask(reset, T, N)
    ws = workspace
    (hz,) = _reset_scratch(ws, r, ("hz",), (N, H), dt)
    hs = _empty(ws, "hs", (T + 1, N, H), dt)
    pre = _empty(ws, "pre", (T, N, H), dt)
    Wp_ih, Wp_hh = _packs_forward(ws, W_ih, W_hh, parallel)
    _forward(_rnn, x, (W_ih, Wp_ih, b_ih, b_hh), pre,
             lambda n0, n1: (h0, r, W_hh, Wp_hh, hs, pre, hz, n0, n1),
             (x, h0, r, W_ih, W_hh, Wp_ih, Wp_hh, b_ih, b_hh, hs, pre, hz), parallel, ws)
    cache = _Cache("rnn", x, W_ih, W_hh, (hs,), ws, parallel, r)
    return hs[1:], hs[T].copy(), cache


def rnn_backward(dy, dhT, cache, dx, dh0, dW_ih, dW_hh, db_ih, db_hh, workspace=None):
    T, N, D, H, dt = _open_cache("rnn", cache, dy)
    dhT = _state_grad("dhT", dhT, N, H, dt)
    _check_dx(dx, cache, dt)
    _check("dh0", dh0, (N, H), dt, writable=True)
    _check_weights(1, H, D, dt, dW_ih, dW_hh, db_ih, db_hh, prefix="d")
    (hs,) = cache.saved
    ws = workspace if workspace is not None else cache.ws   # scratch only
    da = _empty(ws, "da", (T, N, H), dt)
    dh = _empty(ws, "dh", (N, H), dt)
    r = cache.reset
    (hp,) = _reset_scratch(ws, r, ("hp",), (T + 1, N, H), dt)
    Wp_ih, Wp_hh = _packs_backward(ws, cache.W_ih, cache.W_hh, cache.parallel)
    x, W_ih, W_hh = cache.x, cache.W_ih, cache.W_hh
    _backward(_rnn, cache, 1,
              lambda n0, n1: (dy, dhT, r, W_hh, Wp_hh, hs, da, dh, hp, dh0, n0, n1),
              (dy, dhT, r, x, W_ih, W_hh, Wp_ih, Wp_hh, hs, da, dh, hp, dx, dh0, dW_ih, dW_hh,
               db_ih, db_hh),
              (da,), hp if r.size else hs, Wp_ih, (dx, dW_ih, dW_hh, db_ih, db_hh), ws)
