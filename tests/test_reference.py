"""Tests of the NumPy specification (charrnn/reference.py).

The compiled kernels are tested against the reference; these tests make sure the
reference itself is right:
- forward against an independent scalar recomputation of the PyTorch equations;
- backward against central finite differences, w.r.t. every input, at tiny sizes;
- backward accumulates (twice = exactly double), leaves its inputs alone, treats
  dhT/dcT=None as zero;
- two chunks with carried state equal one long sequence, forward and backward
  (truncated BPTT);
- float32 in, float32 out.
"""
import copy
import math

import numpy as np
import pytest

from charrnn import ConfigError
from charrnn.nn import reference as ref

CELLS = ["lstm", "gru", "rnn"]
# (T, N, D, H): includes T=1 (no recurrence at all) and N=1 (no batch).
SIZES = [(1, 1, 2, 3), (3, 2, 4, 5), (4, 1, 3, 2), (2, 3, 1, 4)]


# ----------------------------------------------------------------------------- helpers

def input_names(cell):
    state = ["h0", "c0"] if cell == "lstm" else ["h0"]
    return ["x"] + state + ["W_ih", "W_hh", "b_ih", "b_hh"]


def make_inputs(cell, T, N, D, H, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    inp = ref.init_params(cell, D, H, rng, dtype)
    inp["x"] = rng.standard_normal((T, N, D)).astype(dtype)
    inp["h0"] = (0.5 * rng.standard_normal((N, H))).astype(dtype)
    if cell == "lstm":
        # Non-zero so that dc0 (and f's gradient at t=0) is actually exercised.
        inp["c0"] = rng.standard_normal((N, H)).astype(dtype)
    return inp


def forward(cell, inp, impl=ref):
    """Runs `cell` on the dict `inp`; returns (outputs dict, cache)."""
    w = (inp["W_ih"], inp["W_hh"], inp["b_ih"], inp["b_hh"])
    if cell == "lstm":
        y, hT, cT, cache = impl.lstm_forward(inp["x"], inp["h0"], inp["c0"], *w)
        return dict(y=y, hT=hT, cT=cT), cache
    fwd = {"gru": impl.gru_forward, "rnn": impl.rnn_forward}[cell]
    y, hT, cache = fwd(inp["x"], inp["h0"], *w)
    return dict(y=y, hT=hT), cache


def backward(cell, dout, cache, grads, impl=ref):
    """Adds the gradients into `grads` (keyed like the inputs); dout keyed like outputs."""
    w = (grads["W_ih"], grads["W_hh"], grads["b_ih"], grads["b_hh"])
    if cell == "lstm":
        impl.lstm_backward(dout["y"], dout["hT"], dout["cT"], cache,
                           grads["x"], grads["h0"], grads["c0"], *w)
        return
    bwd = {"gru": impl.gru_backward, "rnn": impl.rnn_backward}[cell]
    bwd(dout["y"], dout["hT"], cache, grads["x"], grads["h0"], *w)


def random_dout(cell, T, N, H, seed, dtype=np.float64):
    # Random weights on every output make L = sum(dout * out) a generic scalar loss,
    # whose gradient w.r.t. every input is then exactly what backward computes.
    rng = np.random.default_rng(seed)
    dout = dict(y=rng.standard_normal((T, N, H)), hT=rng.standard_normal((N, H)))
    if cell == "lstm":
        dout["cT"] = rng.standard_normal((N, H))
    return {k: v.astype(dtype) for k, v in dout.items()}


def zero_grads(inp):
    return {k: np.zeros_like(v) for k, v in inp.items()}


def loss(cell, inp, dout):
    out, _ = forward(cell, inp)
    return sum(float(np.sum(dout[k] * out[k])) for k in out)


def numerical_grad(cell, inp, dout, name, eps=1e-6):
    a = inp[name]
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        orig = a[idx]
        a[idx] = orig + eps
        plus = loss(cell, inp, dout)
        a[idx] = orig - eps
        minus = loss(cell, inp, dout)
        a[idx] = orig  # restored exactly: the same float is written back
        g[idx] = (plus - minus) / (2 * eps)
    return g


def rel_error(a, n):
    return np.max(np.abs(a - n)) / max(np.max(np.abs(a)), np.max(np.abs(n)), 1e-12)


def snapshot(obj):
    # Deep copy of arrays inside dicts/tuples/lists, whatever the cache's layout.
    return copy.deepcopy(obj)


def assert_same(a, b, path="cache"):
    if isinstance(a, np.ndarray):
        assert np.array_equal(a, b), f"{path} was modified"
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for i, (u, v) in enumerate(zip(a, b)):
            assert_same(u, v, f"{path}[{i}]")


# ----------------------------------------------------------------------------- forward

def sig(a):
    return 1.0 / (1.0 + math.exp(-a))


def scalar_forward(cell, inp):
    """The PyTorch equations written out one number at a time, on Python floats.

    Deliberately shares nothing with the reference (no slicing, no matmul, a different
    sigmoid formula), so that the spec is checked against the equations, not itself.
    Returns (y as nested lists [t][n][j], final c or None).
    """
    x = inp["x"].tolist()
    W_ih, W_hh = inp["W_ih"].tolist(), inp["W_hh"].tolist()
    b_ih, b_hh = inp["b_ih"].tolist(), inp["b_hh"].tolist()
    h = inp["h0"].tolist()
    c = inp["c0"].tolist() if cell == "lstm" else None
    T, N, D = len(x), len(x[0]), len(x[0][0])
    H = len(h[0])

    def xa(gate, t, n, j):  # row gate*H + j of W_ih x_t + b_ih
        row = gate * H + j
        return sum(W_ih[row][k] * x[t][n][k] for k in range(D)) + b_ih[row]

    def ha(gate, n, j):     # row gate*H + j of W_hh h_{t-1} + b_hh
        row = gate * H + j
        return sum(W_hh[row][k] * h[n][k] for k in range(H)) + b_hh[row]

    ys = []
    for t in range(T):
        h_new = [[0.0] * H for _ in range(N)]
        c_new = [[0.0] * H for _ in range(N)] if cell == "lstm" else None
        for n in range(N):
            for j in range(H):
                if cell == "lstm":
                    i = sig(xa(0, t, n, j) + ha(0, n, j))
                    f = sig(xa(1, t, n, j) + ha(1, n, j))
                    g = math.tanh(xa(2, t, n, j) + ha(2, n, j))
                    o = sig(xa(3, t, n, j) + ha(3, n, j))
                    c_new[n][j] = f * c[n][j] + i * g
                    h_new[n][j] = o * math.tanh(c_new[n][j])
                elif cell == "gru":
                    r = sig(xa(0, t, n, j) + ha(0, n, j))
                    z = sig(xa(1, t, n, j) + ha(1, n, j))
                    nn = math.tanh(xa(2, t, n, j) + r * ha(2, n, j))
                    h_new[n][j] = (1 - z) * nn + z * h[n][j]
                else:
                    h_new[n][j] = math.tanh(xa(0, t, n, j) + ha(0, n, j))
        h, c = h_new, c_new
        ys.append(h)
    return ys, c


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("cell", CELLS)
def test_forward_matches_scalar_equations(cell, size):
    T, N, D, H = size
    inp = make_inputs(cell, T, N, D, H, seed=1)
    out, _ = forward(cell, inp)
    ys, cT = scalar_forward(cell, inp)
    assert out["y"].shape == (T, N, H) and out["y"].dtype == np.float64
    np.testing.assert_allclose(out["y"], np.array(ys), rtol=0, atol=1e-13)
    np.testing.assert_allclose(out["hT"], np.array(ys[-1]), rtol=0, atol=1e-13)
    if cell == "lstm":
        np.testing.assert_allclose(out["cT"], np.array(cT), rtol=0, atol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_final_state_is_a_copy(cell):
    # hT/cT are handed to the next chunk; they must not alias y (or the cache).
    inp = make_inputs(cell, 2, 2, 3, 4, seed=2)
    out, _ = forward(cell, inp)
    assert not np.shares_memory(out["hT"], out["y"])
    np.testing.assert_array_equal(out["hT"], out["y"][-1])


# ----------------------------------------------------------------------------- backward

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("cell", CELLS)
def test_backward_matches_finite_differences(cell, size):
    T, N, D, H = size
    inp = make_inputs(cell, T, N, D, H, seed=3)
    dout = random_dout(cell, T, N, H, seed=4)
    _, cache = forward(cell, inp)
    grads = zero_grads(inp)
    backward(cell, dout, cache, grads)
    errors = {}
    for name in input_names(cell):
        num = numerical_grad(cell, inp, dout, name)
        assert grads[name].shape == inp[name].shape
        errors[name] = rel_error(grads[name], num)
    bad = {k: e for k, e in errors.items() if not e <= 1e-6}
    assert not bad, f"relative errors above 1e-6: {bad}"


@pytest.mark.parametrize("cell", CELLS)
def test_backward_twice_is_exactly_double(cell):
    T, N, D, H = 3, 2, 4, 5
    inp = make_inputs(cell, T, N, D, H, seed=5)
    dout = random_dout(cell, T, N, H, seed=6)
    _, cache = forward(cell, inp)
    once, twice = zero_grads(inp), zero_grads(inp)
    backward(cell, dout, cache, once)
    backward(cell, dout, cache, twice)
    backward(cell, dout, cache, twice)
    for name in input_names(cell):
        np.testing.assert_array_equal(twice[name], 2 * once[name], err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_adds_to_existing_values(cell):
    T, N, D, H = 3, 2, 4, 5
    inp = make_inputs(cell, T, N, D, H, seed=7)
    dout = random_dout(cell, T, N, H, seed=8)
    _, cache = forward(cell, inp)
    fresh = zero_grads(inp)
    backward(cell, dout, cache, fresh)
    rng = np.random.default_rng(9)
    start = {k: rng.standard_normal(v.shape) for k, v in inp.items()}
    grads = copy.deepcopy(start)
    backward(cell, dout, cache, grads)
    for name in input_names(cell):
        np.testing.assert_allclose(grads[name], start[name] + fresh[name],
                                   rtol=1e-14, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_leaves_inputs_unmodified(cell):
    T, N, D, H = 3, 2, 4, 5
    inp = make_inputs(cell, T, N, D, H, seed=10)
    dout = random_dout(cell, T, N, H, seed=11)
    inp_before = snapshot(inp)
    out, cache = forward(cell, inp)
    assert_same(inp_before, inp, "forward input")
    out_before, cache_before, dout_before = snapshot(out), snapshot(cache), snapshot(dout)
    backward(cell, dout, cache, zero_grads(inp))
    assert_same(dout_before, dout, "dout")
    assert_same(cache_before, cache, "cache")
    assert_same(out_before, out, "forward output")
    assert_same(inp_before, inp, "input")


@pytest.mark.parametrize("cell", CELLS)
def test_none_final_gradient_means_zero(cell):
    T, N, D, H = 3, 2, 4, 5
    inp = make_inputs(cell, T, N, D, H, seed=12)
    dout = random_dout(cell, T, N, H, seed=13)
    dout_zero = {k: (v if k == "y" else np.zeros_like(v)) for k, v in dout.items()}
    dout_none = {k: (v if k == "y" else None) for k, v in dout.items()}
    _, cache = forward(cell, inp)
    with_zero, with_none = zero_grads(inp), zero_grads(inp)
    backward(cell, dout_zero, cache, with_zero)
    backward(cell, dout_none, cache, with_none)
    for name in input_names(cell):
        np.testing.assert_array_equal(with_none[name], with_zero[name], err_msg=name)


# ----------------------------------------------------------------------------- chunks

@pytest.mark.parametrize("split", [1, 2, 4])
@pytest.mark.parametrize("cell", CELLS)
def test_two_chunks_equal_one_sequence(cell, split):
    T, N, D, H = 5, 2, 3, 4
    inp = make_inputs(cell, T, N, D, H, seed=14)
    dout = random_dout(cell, T, N, H, seed=15)
    tol = dict(rtol=1e-12, atol=1e-14)

    full_out, full_cache = forward(cell, inp)
    full = zero_grads(inp)
    backward(cell, dout, full_cache, full)

    # Forward: chunk 2 starts from chunk 1's final state.
    first = dict(inp, x=inp["x"][:split])
    out1, cache1 = forward(cell, first)
    second = dict(inp, x=inp["x"][split:], h0=out1["hT"])
    if cell == "lstm":
        second["c0"] = out1["cT"]
    out2, cache2 = forward(cell, second)
    np.testing.assert_allclose(np.concatenate([out1["y"], out2["y"]]), full_out["y"], **tol)
    for k in out2:
        if k != "y":
            np.testing.assert_allclose(out2[k], full_out[k], **tol)

    # Backward: chunk 2 first; its dh0/dc0 is chunk 1's dhT/dcT. Weight gradients of
    # both chunks accumulate into the same arrays, as in training.
    g1, g2 = zero_grads(first), zero_grads(second)
    for name in ["W_ih", "W_hh", "b_ih", "b_hh"]:
        g2[name] = g1[name]
    backward(cell, dict(dout, y=dout["y"][split:]), cache2, g2)
    dout1 = {"y": dout["y"][:split], "hT": g2["h0"]}
    if cell == "lstm":
        dout1["cT"] = g2["c0"]
    backward(cell, dout1, cache1, g1)

    np.testing.assert_allclose(np.concatenate([g1["x"], g2["x"]]), full["x"], **tol)
    for name in input_names(cell)[1:]:
        np.testing.assert_allclose(g1[name], full[name], err_msg=name, **tol)


# ----------------------------------------------------------------------------- dtypes, init

@pytest.mark.parametrize("cell", CELLS)
def test_float32_stays_float32_and_agrees(cell):
    T, N, D, H = 3, 2, 4, 5
    inp64 = make_inputs(cell, T, N, D, H, seed=16)
    inp32 = {k: v.astype(np.float32) for k, v in inp64.items()}
    dout64 = random_dout(cell, T, N, H, seed=17)
    dout32 = {k: v.astype(np.float32) for k, v in dout64.items()}
    out64, cache64 = forward(cell, inp64)
    out32, cache32 = forward(cell, inp32)
    g64, g32 = zero_grads(inp64), zero_grads(inp32)
    backward(cell, dout64, cache64, g64)
    backward(cell, dout32, cache32, g32)
    for k in out32:
        assert out32[k].dtype == np.float32, k
        np.testing.assert_allclose(out32[k], out64[k], rtol=1e-5, atol=1e-5, err_msg=k)
    for name in input_names(cell):
        assert g32[name].dtype == np.float32, name
        np.testing.assert_allclose(g32[name], g64[name], rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("cell,G", [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_init_params_shapes_and_range(cell, G):
    D, H = 7, 16
    assert ref.gates(cell) == G
    for dtype in (np.float64, np.float32):
        p = ref.init_params(cell, D, H, np.random.default_rng(0), dtype=dtype)
        shapes = {"W_ih": (G * H, D), "W_hh": (G * H, H), "b_ih": (G * H,), "b_hh": (G * H,)}
        assert {k: v.shape for k, v in p.items()} == shapes
        for v in p.values():
            assert v.dtype == dtype
            assert np.all(np.abs(v) <= 1 / math.sqrt(H))
    # Same generator state, same parameters: runs are reproducible from a seed.
    a = ref.init_params(cell, D, H, np.random.default_rng(0))
    b = ref.init_params(cell, D, H, np.random.default_rng(0))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_unknown_cell_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown cell"):
        ref.gates("transformer")


def test_sigmoid_is_stable_at_the_extremes():
    with np.errstate(all="raise"):
        s = ref.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])
