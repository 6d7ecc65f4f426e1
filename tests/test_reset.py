"""Resets: streams that start afresh from a zero state at chosen steps of a window.

The semantics are charrnn.nn.reference's (its docstring); here the compiled kernels are
held to them on every path (serial, threaded, embedding table), every ISA tier and both
GEMMs (the `dtype` fixture, conftest.py), and the reference itself to finite differences
and to the defining property: a window with a reset equals its pieces run apart.
Network-level tests (a whole model with resets) are in test_reset_network.py."""
import numpy as np
import pytest

from charrnn.errors import ShapeError
from charrnn.nn import cells
from charrnn.nn import reference as ref

from test_kernels import CELLS, TOL, cast, max_rel
from test_reference import backward, input_names, make_inputs, random_dout, rel_error, zero_grads

# (T, N, D, H): one step, one stream; odd sizes; one whose T*N = 260 crosses the own
# sgemm's k blocks (the weight gradients read the reset-masked states there)
SIZES = [(1, 1, 2, 3), (5, 3, 4, 6), (7, 4, 3, 5), (20, 13, 33, 40)]
KINDS = ["none", "t0", "last", "several", "all", "random"]


def make_reset(kind, T, N, seed=0):
    """A (T, N) bool mask of one kind: resets at t = 0 (some streams), at t = T-1, several
    in one stream, every stream at once, random, or none."""
    r = np.zeros((T, N), bool)
    if kind == "t0":
        r[0, ::2] = True
    elif kind == "last":
        r[T - 1, N // 2] = True
    elif kind == "several":
        r[1::2, 0] = True
        r[0, N - 1] = True
    elif kind == "all":
        r[T // 2, :] = True
    elif kind == "random":
        r[...] = np.random.default_rng(seed).random((T, N)) < 0.3
    return r


def forward(cell, inp, impl, reset, **kw):
    """test_reference.forward with a reset (and keywords for charrnn.nn.cells)."""
    w = (inp["W_ih"], inp["W_hh"], inp["b_ih"], inp["b_hh"])
    if cell == "lstm":
        y, hT, cT, cache = impl.lstm_forward(inp["x"], inp["h0"], inp["c0"], *w, reset=reset, **kw)
        return dict(y=np.array(y), hT=hT, cT=cT), cache
    y, hT, cache = getattr(impl, cell + "_forward")(inp["x"], inp["h0"], *w, reset=reset, **kw)
    return dict(y=np.array(y), hT=hT), cache


def run(cell, inp, dout, impl, reset, **kw):
    out, cache = forward(cell, inp, impl, reset, **kw)
    g = zero_grads(inp)
    backward(cell, dout, cache, g, impl=impl)
    return out, g


def reference_run(cell, size, kind, seed=0):
    T, N, D, H = size
    inp = make_inputs(cell, T, N, D, H, seed)
    dout = random_dout(cell, T, N, H, seed + 1)
    reset = make_reset(kind, T, N, seed + 2)
    return inp, dout, reset, run(cell, inp, dout, ref, reset)


def assert_close(got, want, tol, what=""):
    for k in want:
        assert got[k].dtype == (np.float32 if tol > 1e-6 else np.float64), f"{what} {k}"
        assert max_rel(got[k], want[k]) <= tol, f"{what} {k}"


# ---- the kernels against the reference ------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("cell", CELLS)
def test_kernels_match_reference(cell, size, kind, dtype):
    inp, dout, reset, (out_r, g_r) = reference_run(cell, size, kind)
    out_k, g_k = run(cell, cast(inp, dtype), cast(dout, dtype), cells, reset)
    assert_close(out_k, out_r, TOL[dtype], "output")
    assert_close(g_k, g_r, TOL[dtype], "gradient")


class _Threaded:
    """charrnn.nn.cells with every pass split over 2 or 3 threads (streams, rows and
    gate blocks), and a workspace, as training runs it."""

    def __init__(self, k):
        self.par = cells.Parallel(k)

    def __getattr__(self, name):
        fn = getattr(cells, name)
        if name.endswith("_forward"):
            return lambda *a, **kw: fn(*a, workspace=cells.Workspace(), parallel=self.par, **kw)
        return fn


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("kind", ["t0", "several", "all", "random"])
@pytest.mark.parametrize("cell", CELLS)
def test_threaded_passes_match_reference(cell, kind, threads, dtype):
    """Threads each run a range of streams: a reset in one range must not touch another,
    and the weight gradients, split by gate rows, all read the masked states."""
    inp, dout, reset, (out_r, g_r) = reference_run(cell, (6, 7, 5, 9), kind, seed=3)
    out_k, g_k = run(cell, cast(inp, dtype), cast(dout, dtype), _Threaded(threads), reset)
    assert_close(out_k, out_r, TOL[dtype], "output")
    assert_close(g_k, g_r, TOL[dtype], "gradient")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["t0", "several", "random"])
@pytest.mark.parametrize("cell", CELLS)
def test_table_input_matches_reference(cell, kind, threads, dtype):
    """x = E[ids] through the embedding table (charrnn.nn.table): its dW_hh comes from
    _table.recurrent_grads, which must read the masked states too; dx is E's gradient."""
    T, N, V, D, H = 8, 5, 4, 3, 6
    rng = np.random.default_rng(9)
    ids = rng.integers(0, V, (T, N)).astype(np.int32)
    E = rng.standard_normal((V, D))
    inp = make_inputs(cell, T, N, D, H, 10)
    dout = random_dout(cell, T, N, H, 11)
    reset = make_reset(kind, T, N, 12)
    out_r, g_r = run(cell, dict(inp, x=E[ids]), dout, ref, reset)
    dE = np.zeros_like(E)
    np.add.at(dE, ids, g_r["x"])
    g_r["x"] = dE
    impl = _Threaded(threads) if threads > 1 else cells
    inp_k = cast(inp, dtype)
    inp_k["x"] = cells.Lookup(ids, E.astype(dtype))
    out_k, cache = forward(cell, inp_k, impl, reset)
    g_k = zero_grads(dict(inp_k, x=E.astype(dtype)))
    backward(cell, cast(dout, dtype), cache, g_k, impl=cells)
    assert_close(out_k, out_r, TOL[dtype], "output")
    assert_close(g_k, g_r, TOL[dtype], "gradient")


def test_uint8_mask_nonzero_means_reset():
    inp, dout, reset, (out_r, g_r) = reference_run("lstm", (6, 4, 3, 5), "random", seed=4)
    as_bytes = reset.astype(np.uint8) * 7
    for impl in (ref, cells):
        out, g = run("lstm", inp, dout, impl, as_bytes)
        assert_close(out, out_r, 1e-12, impl.__name__)
        assert_close(g, g_r, 1e-12, impl.__name__)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_twice_accumulates_exactly_double(cell, dtype):
    T, N, D, H = 5, 4, 3, 6
    inp = cast(make_inputs(cell, T, N, D, H, 5), dtype)
    dout = cast(random_dout(cell, T, N, H, 6), dtype)
    reset = make_reset("several", T, N)
    _, cache = forward(cell, inp, cells, reset)
    once, twice = zero_grads(inp), zero_grads(inp)
    backward(cell, dout, cache, once, impl=cells)
    backward(cell, dout, cache, twice, impl=cells)
    backward(cell, dout, cache, twice, impl=cells)
    for k in once:
        np.testing.assert_array_equal(twice[k], 2 * once[k], err_msg=k)


# ---- finite differences -----------------------------------------------------------------

def numerical_grad(cell, inp, dout, reset, impl, name, eps=1e-6):
    def loss():
        out, _ = forward(cell, inp, impl, reset)
        return sum(float(np.sum(dout[k] * out[k])) for k in out)
    a = inp[name]
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        orig = a[idx]
        a[idx] = orig + eps
        plus = loss()
        a[idx] = orig - eps
        minus = loss()
        a[idx] = orig
        g[idx] = (plus - minus) / (2 * eps)
    return g


@pytest.mark.parametrize("impl", [ref, cells], ids=["reference", "kernels"])
@pytest.mark.parametrize("cell", CELLS)
def test_gradients_match_finite_differences(cell, impl):
    """float64: the reference (the spec) and the kernels, with resets at t = 0 (so h0 and
    c0 of those streams get no gradient), in the middle and at the last step."""
    T, N, D, H = 4, 3, 2, 3
    inp = make_inputs(cell, T, N, D, H, 7)
    dout = random_dout(cell, T, N, H, 8)
    reset = np.zeros((T, N), bool)
    reset[0, 0] = reset[2, 0] = reset[1, 1] = reset[3, 2] = True
    _, g = run(cell, inp, dout, impl, reset)
    for name in input_names(cell):
        num = numerical_grad(cell, inp, dout, reset, impl, name)
        assert rel_error(g[name], num) <= 1e-6, name
    assert not g["h0"][0].any()   # stream 0 reset at t = 0: h0 plays no part
    assert g["h0"][1:].all()


# ---- the defining property: a window with resets is its pieces run apart ----------------

def pieces(reset_col):
    """[(t0, t1), ...]: the steps of one stream cut where it resets."""
    cuts = [0] + [t for t in np.flatnonzero(reset_col) if t > 0] + [len(reset_col)]
    return list(zip(cuts[:-1], cuts[1:]))


@pytest.mark.parametrize("kind", ["t0", "last", "several", "all", "random"])
@pytest.mark.parametrize("cell", CELLS)
def test_window_equals_its_pieces_run_apart(cell, kind, dtype):
    """Stream n of a window that resets at t: steps before t as a sequence of their own,
    from h0[n]; steps from t on as another, from zero (and from zero at t = 0 too). The
    outputs, the final state, dx and dh0 of every stream, and the weight gradients
    summed over every piece, are the window's."""
    T, N, D, H = 9, 4, 3, 5
    inp = cast(make_inputs(cell, T, N, D, H, 13), dtype)
    dout = cast(random_dout(cell, T, N, H, 14), dtype)
    reset = make_reset(kind, T, N, 15)
    out, g = run(cell, inp, dout, cells, reset)
    states = ["h0", "c0"] if cell == "lstm" else ["h0"]
    weights = ["W_ih", "W_hh", "b_ih", "b_hh"]
    tol = TOL[dtype]
    summed = {k: np.zeros_like(inp[k]) for k in weights}
    for n in range(N):
        parts = pieces(reset[:, n])
        for i, (t0, t1) in enumerate(parts):
            piece = {k: inp[k] for k in weights}
            piece["x"] = np.ascontiguousarray(inp["x"][t0:t1, n:n + 1])
            for s in states:
                start = inp[s][n:n + 1] if t0 == 0 and not reset[0, n] else np.zeros((1, H), dtype)
                piece[s] = np.ascontiguousarray(start)
            last = i == len(parts) - 1
            d = {"y": np.ascontiguousarray(dout["y"][t0:t1, n:n + 1])}
            for k in ("hT", "cT")[:len(states)]:
                d[k] = np.ascontiguousarray(dout[k][n:n + 1]) if last else None
            o, gp = run(cell, piece, d, cells, None)
            assert max_rel(o["y"][:, 0], out["y"][t0:t1, n]) <= tol, (n, t0)
            assert max_rel(gp["x"][:, 0], g["x"][t0:t1, n]) <= tol, (n, t0)
            if last:
                for k in ("hT", "cT")[:len(states)]:
                    assert max_rel(o[k][0], out[k][n]) <= tol, (n, k)
            if t0 == 0:
                for s in states:   # zero when the stream resets at t = 0
                    np.testing.assert_allclose(g[s][n], gp[s][0] * (not reset[0, n]),
                                               rtol=tol, atol=tol * float(np.abs(g[s]).max()))
            for k in weights:
                summed[k] += gp[k]
    for k in weights:
        assert max_rel(g[k], summed[k]) <= tol, k


# ---- no reset: exactly today's arithmetic -------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_no_reset_is_bit_identical(cell, dtype, monkeypatch):
    """reset=None, an all-False bool mask, and an all-False mask the kernels really scan
    (the shortcut that drops a mask without a true entry turned off): the same bits."""
    T, N, D, H = 6, 5, 7, 9
    inp = cast(make_inputs(cell, T, N, D, H, 16), dtype)
    dout = cast(random_dout(cell, T, N, H, 17), dtype)
    base_out, base_g = run(cell, inp, dout, cells, None)
    zeros = np.zeros((T, N), bool)
    results = [run(cell, inp, dout, cells, zeros)]
    monkeypatch.setattr(cells, "_reset_mask", lambda r, T, N: cells._NO_RESET if r is None else r.view(np.uint8))
    out, cache = forward(cell, inp, cells, zeros)
    assert cache.reset.shape == (T, N)                 # the kernels got the mask itself
    g = zero_grads(inp)
    backward(cell, dout, cache, g, impl=cells)
    results.append((out, g))
    for out, g in results:
        for k in base_out:
            np.testing.assert_array_equal(out[k], base_out[k], err_msg=k)
        for k in base_g:
            np.testing.assert_array_equal(g[k], base_g[k], err_msg=k)


# ---- bad masks: one-line errors naming the argument ---------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_bad_reset_is_a_one_line_shape_error(cell):
    T, N, D, H = 4, 3, 2, 5
    inp = make_inputs(cell, T, N, D, H, 0)
    good = np.zeros((T, N), bool)
    bad = {
        "shape": (np.zeros((T + 1, N), bool), r"reset has shape \(5, 3\), expected \(4, 3\)"),
        "transposed": (np.zeros((N, T), bool), "reset has shape"),
        "1-d": (np.zeros(T * N, bool), "reset has shape"),
        "dtype": (np.zeros((T, N), np.int32), "reset has dtype int32, expected bool or uint8"),
        "float": (np.zeros((T, N)), "reset has dtype float64"),
        "layout": (np.zeros((T, 2 * N), bool)[:, ::2], "reset is not C-contiguous"),
        "list": (good.tolist(), "reset must be a numpy array"),
    }
    for what, (r, match) in bad.items():
        with pytest.raises(ShapeError, match=match) as e:
            forward(cell, inp, cells, r)
        assert "\n" not in str(e.value), what


def test_raw_kernels_check_the_mask_and_its_scratch():
    """Called directly, the extensions refuse a mask of the wrong shape, and scratch
    buffers too small for a real mask, before any C runs."""
    from charrnn import _rnn
    T, N, H = 3, 2, 4
    f = np.zeros
    h0, W, hs, pre = f((N, H)), f((H, H)), f((T + 1, N, H)), f((T, N, H))
    nop = f(0)
    with pytest.raises(ValueError, match="reset"):
        _rnn.forward_recur(h0, np.zeros((T, N + 1), np.uint8), W, nop, hs, pre, f((N, H)), 0, N)
    with pytest.raises(ValueError, match="hz"):
        _rnn.forward_recur(h0, np.ones((T, N), np.uint8), W, nop, hs, pre, f((0, 0)), 0, N)
    with pytest.raises(ValueError, match="hp"):
        _rnn.backward_recur(pre, h0, np.ones((T, N), np.uint8), W, nop, hs, pre, f((N, H)),
                            f((T, N, H)), f((N, H)), 0, N)
