"""Compiled kernels (charrnn.cells) against the NumPy specification (charrnn.reference).

A test that takes `dtype` runs float64 once and float32 on every ISA tier with both
GEMMs; `gemm`, float32 on every tier and GEMM; `tier`, on every tier (it picks its GEMM
itself, or uses none); a test with none of them runs once (float64, or input checks made
before any kernel runs). The fixtures are in conftest.py."""
import numpy as np
import pytest

from charrnn import _ops, _gru, _lstm, _rnn, _twins
from charrnn.nn import cells, isa
from charrnn.nn import reference as ref
from charrnn.errors import ShapeError

from test_reference import (backward, forward, input_names, make_inputs, numerical_grad,
                            random_dout, rel_error, zero_grads)

CELLS = ["lstm", "gru", "rnn"]
# (T, N, D, H): includes T=1, N=1, D=1, H=1, a size where the vectorised loops matter, and
# one whose T*N = 260 crosses the own sgemm's k blocks (256) with ragged row and column tiles
SIZES = [(1, 1, 2, 3), (5, 3, 4, 6), (7, 1, 1, 5), (3, 4, 9, 17), (2, 2, 3, 1), (4, 8, 32, 64),
         (20, 13, 33, 40)]
TOL = {np.float64: 1e-10, np.float32: 1e-4}


def cast(d, dtype):
    return {k: v.astype(dtype) for k, v in d.items()}


def max_rel(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def run_both(cell, size, dtype, seed=0):
    """Forward+backward through the reference (float64) and the kernels (dtype)."""
    T, N, D, H = size
    inp = make_inputs(cell, T, N, D, H, seed)
    dout = random_dout(cell, T, N, H, seed + 1)
    out_r, cache_r = forward(cell, inp, impl=ref)
    g_r = zero_grads(inp)
    backward(cell, dout, cache_r, g_r, impl=ref)
    inp_k = cast(inp, dtype)
    out_k, cache_k = forward(cell, inp_k, impl=cells)
    g_k = zero_grads(inp_k)
    backward(cell, cast(dout, dtype), cache_k, g_k, impl=cells)
    return out_r, g_r, out_k, g_k


@pytest.mark.parametrize("cell", CELLS)
def test_float64_ignores_tier_and_backend(cell):
    """The premise of running float64 cases once: on every tier and with either GEMM
    selected, float64 forward and backward give the same bits."""
    inp = make_inputs(cell, 5, 3, 7, 9, 1)
    dout = random_dout(cell, 5, 3, 9, 2)
    res = []
    for tier in isa.available():
        for backend in ("own", "blas"):
            with isa.use(tier), cells.gemm_backend(backend):
                out, cache = forward(cell, inp, impl=cells)
                g = zero_grads(inp)
                backward(cell, dout, cache, g, impl=cells)
                res.append({**out, **g})
    for r in res[1:]:
        for k in res[0]:
            np.testing.assert_array_equal(r[k], res[0][k], err_msg=k)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("cell", CELLS)
def test_kernels_match_reference(cell, size, dtype):
    out_r, g_r, out_k, g_k = run_both(cell, size, dtype)
    for k in out_r:
        assert out_k[k].dtype == dtype
        assert max_rel(out_k[k], out_r[k]) <= TOL[dtype], k
    for k in g_r:
        assert g_k[k].dtype == dtype
        assert max_rel(g_k[k], g_r[k]) <= TOL[dtype], k


@pytest.mark.parametrize("cell", CELLS)
def test_kernel_gradients_match_finite_differences(cell):
    T, N, D, H = 3, 2, 3, 4
    inp = make_inputs(cell, T, N, D, H, 5)
    dout = random_dout(cell, T, N, H, 6)
    _, cache = forward(cell, inp, impl=cells)
    g = zero_grads(inp)
    backward(cell, dout, cache, g, impl=cells)
    for name in input_names(cell):
        assert rel_error(g[name], numerical_grad(cell, inp, dout, name)) <= 1e-6, name


@pytest.mark.parametrize("cell", CELLS)
def test_backward_twice_accumulates_exactly_double(cell, dtype):
    T, N, D, H = 4, 3, 5, 8
    inp = cast(make_inputs(cell, T, N, D, H, 2), dtype)
    dout = cast(random_dout(cell, T, N, H, 3), dtype)
    _, cache = forward(cell, inp, impl=cells)
    once = zero_grads(inp)
    backward(cell, dout, cache, once, impl=cells)
    twice = zero_grads(inp)
    backward(cell, dout, cache, twice, impl=cells)
    backward(cell, dout, cache, twice, impl=cells)
    for k in once:
        assert np.any(once[k] != 0), k
        np.testing.assert_array_equal(twice[k], 2 * once[k], err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
def test_two_chunks_with_carried_state_equal_one_sequence(cell, dtype):
    T, N, D, H, split = 9, 3, 4, 6, 4
    inp = cast(make_inputs(cell, T, N, D, H, 7), dtype)
    dout = cast(random_dout(cell, T, N, H, 8), dtype)
    out, cache = forward(cell, inp, impl=cells)
    g = zero_grads(inp)
    backward(cell, dout, cache, g, impl=cells)

    first = dict(inp, x=np.ascontiguousarray(inp["x"][:split]))
    out1, cache1 = forward(cell, first, impl=cells)
    second = dict(inp, x=np.ascontiguousarray(inp["x"][split:]), h0=out1["hT"])
    if cell == "lstm":
        second["c0"] = out1["cT"]
    out2, cache2 = forward(cell, second, impl=cells)
    tol = TOL[dtype]
    assert max_rel(np.concatenate([out1["y"], out2["y"]]), out["y"]) <= tol
    assert max_rel(out2["hT"], out["hT"]) <= tol

    g2 = zero_grads(second)
    backward(cell, dict(dout, y=np.ascontiguousarray(dout["y"][split:])), cache2, g2, impl=cells)
    d1 = dict(y=np.ascontiguousarray(dout["y"][:split]), hT=g2["h0"])
    if cell == "lstm":
        d1["cT"] = g2["c0"]
    g1 = zero_grads(first)
    backward(cell, d1, cache1, g1, impl=cells)
    assert max_rel(np.concatenate([g1["x"], g2["x"]]), g["x"]) <= tol
    for k in ["W_ih", "W_hh", "b_ih", "b_hh"]:
        assert max_rel(g1[k] + g2[k], g[k]) <= tol, k
    assert max_rel(g1["h0"], g["h0"]) <= tol


class _Threaded:
    """charrnn.cells with every pass split over k threads (and a workspace)."""

    def __init__(self, k):
        self.par = cells.Parallel(k)

    def __getattr__(self, name):
        fn = getattr(cells, name)
        if name.endswith("_forward"):
            return lambda *a: fn(*a, workspace=cells.Workspace(), parallel=self.par)
        return fn


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("size", [(1, 1, 2, 3), (5, 3, 4, 6), (4, 8, 32, 64), (3, 2, 2, 1)])
@pytest.mark.parametrize("cell", CELLS)
def test_threaded_passes_match_serial(cell, size, threads):
    T, N, D, H = size
    inp = make_inputs(cell, T, N, D, H, 4)
    dout = random_dout(cell, T, N, H, 5)
    out_s, cache_s = forward(cell, inp, impl=cells)
    g_s = zero_grads(inp)
    backward(cell, dout, cache_s, g_s, impl=cells)
    out_p, cache_p = forward(cell, inp, impl=_Threaded(threads))
    g_p = zero_grads(inp)
    backward(cell, dout, cache_p, g_p, impl=cells)
    for k in out_s:
        assert max_rel(out_p[k], out_s[k]) <= 1e-12, k
    for k in g_s:
        assert max_rel(g_p[k], g_s[k]) <= 1e-12, k


def test_workspace_reuse_gives_identical_results():
    inp = make_inputs("lstm", 4, 2, 3, 5, 11)
    ws = cells.Workspace()
    a, _ = forward("lstm", inp, impl=cells)
    for _ in range(2):
        y, hT, cT, _ = cells.lstm_forward(inp["x"], inp["h0"], inp["c0"], inp["W_ih"],
                                          inp["W_hh"], inp["b_ih"], inp["b_hh"], workspace=ws)
        np.testing.assert_array_equal(y, a["y"])


# ---- bad input: a clear ValueError, never a crash ---------------------------------------

def call_forward(cell, inp):
    return forward(cell, inp, impl=cells)


@pytest.mark.parametrize("cell", CELLS)
def test_bad_forward_inputs_raise_value_error(cell):
    T, N, D, H = 3, 2, 4, 5
    good = make_inputs(cell, T, N, D, H, 0)
    bad_cases = {
        "x 2-d": dict(x=good["x"][0]),
        "x int": dict(x=good["x"].astype(np.int64)),
        "x list": dict(x=good["x"].tolist()),
        "x float16": dict(x=good["x"].astype(np.float16)),
        "h0 wrong N": dict(h0=np.zeros((N + 1, H))),
        "h0 1-d": dict(h0=np.zeros(H)),
        "W_ih wrong D": dict(W_ih=np.zeros((good["W_ih"].shape[0], D + 1))),
        "W_hh wrong H": dict(W_hh=np.zeros((good["W_hh"].shape[0], H + 1))),
        "b_ih short": dict(b_ih=good["b_ih"][:-1].copy()),
        "b_hh float32": dict(b_hh=good["b_hh"].astype(np.float32)),
        "W_ih Fortran": dict(W_ih=np.asfortranarray(good["W_ih"])),
        "empty T": dict(x=np.zeros((0, N, D))),
        "empty H": dict(h0=np.zeros((N, 0))),
    }
    if cell != "rnn":  # (G*H, H) transposed is a wrong shape unless G = 1
        bad_cases["W_hh transposed"] = dict(W_hh=np.ascontiguousarray(good["W_hh"].T))
    if cell == "lstm":
        bad_cases["c0 wrong H"] = dict(c0=np.zeros((N, H + 2)))
    for what, change in bad_cases.items():
        with pytest.raises(ValueError):
            call_forward(cell, dict(good, **change))
    # every argument as a strided view of the right shape and dtype (every other element
    # of a doubled copy): refused for its layout, by name, never read as if contiguous
    for name, a in good.items():
        view = np.repeat(a, 2, axis=-1)[..., ::2]
        assert view.shape == a.shape and view.dtype == a.dtype and not view.flags.c_contiguous
        np.testing.assert_array_equal(view, a)
        with pytest.raises(ShapeError, match=f"^{name} is not C-contiguous"):
            call_forward(cell, dict(good, **{name: view}))


def test_non_contiguous_message_names_argument():
    good = make_inputs("lstm", 3, 2, 4, 5, 0)
    x = np.zeros((3, 2, 8))[:, :, ::2]
    with pytest.raises(ShapeError, match="x is not C-contiguous"):
        call_forward("lstm", dict(good, x=x))


@pytest.mark.parametrize("cell", CELLS)
def test_bad_backward_inputs_raise_value_error(cell):
    T, N, D, H = 3, 2, 4, 5
    inp = make_inputs(cell, T, N, D, H, 0)
    dout = random_dout(cell, T, N, H, 1)
    _, cache = forward(cell, inp, impl=cells)
    good = zero_grads(inp)
    bad_cases = [
        ("grads", dict(W_ih=np.zeros((1, 1)))),
        ("grads", dict(x=np.zeros((T, N, D), np.float32))),
        ("grads", dict(h0=np.zeros((N, H + 1)))),
        ("dout", dict(y=np.zeros((T + 1, N, H)))),
        ("dout", dict(hT=np.zeros((N + 1, H)))),
    ]
    ro = np.zeros_like(inp["W_hh"])
    ro.flags.writeable = False
    bad_cases.append(("grads", dict(W_hh=ro)))
    for which, change in bad_cases:
        grads = dict(good, **change) if which == "grads" else good
        d = dict(dout, **change) if which == "dout" else dout
        with pytest.raises(ValueError):
            backward(cell, d, cache, grads, impl=cells)
    with pytest.raises(ValueError, match="cache"):
        backward(cell, dout, {"not": "a cache"}, good, impl=cells)


def test_raw_kernels_check_shapes_themselves(tier):
    """Called directly, bypassing charrnn.cells, the extensions still refuse bad shapes."""
    T, N, D, H = 3, 2, 4, 5
    f = np.zeros
    x, h0 = f((T, N, D)), f((N, H))
    nop = f(0)   # no packed weights: BLAS
    none, z2, z3 = np.zeros((0, 0), np.uint8), f((0, 0)), f((0, 0, 0))   # no resets, no scratch
    with pytest.raises(ValueError):  # hs one step too short
        _lstm.forward(x, h0, h0, none, f((4 * H, D)), f((4 * H, H)), nop, nop, f(4 * H), f(4 * H),
                      f((T, N, H)), f((T + 1, N, H)), f((T, N, 4 * H)), f((T, N, H)), z2, z2)
    with pytest.raises(ValueError):  # W_hh has the wrong number of gates
        _gru.forward(x, h0, none, f((3 * H, D)), f((2 * H, H)), nop, nop, f(3 * H), f(3 * H),
                     f((T + 1, N, H)), f((T, N, 3 * H)), f((T, N, H)), f((N, 3 * H)), z2)
    with pytest.raises(ValueError):  # mixed dtypes
        _rnn.forward(x.astype(np.float32), h0, none, f((H, D)), f((H, H)), nop, nop, f(H), f(H),
                     f((T + 1, N, H)), f((T, N, H)), z2)
    with pytest.raises(ValueError):  # dx has the wrong D
        _rnn.backward(f((T, N, H)), h0, none, x, f((H, D)), f((H, H)), nop, nop, f((T + 1, N, H)),
                      f((T, N, H)), f((N, H)), z3, f((T, N, D + 1)), f((N, H)),
                      f((H, D)), f((H, H)), f(H), f(H))
    x32, h32 = x.astype(np.float32), h0.astype(np.float32)
    g = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    good = g(_ops.sgemm_packed_size(H, 4 * H))
    with pytest.raises(ValueError):  # a packed W_hh^T one float short
        _lstm.forward_recur(h32, h32, none, g(4 * H, H), good[1:], g(T + 1, N, H), g(T + 1, N, H),
                            g(T, N, 4 * H), g(T, N, H), g(0, 0), g(0, 0), 0, N)
    with pytest.raises(ValueError):  # packed weights with float64 (the own sgemm is float32)
        _lstm.forward_recur(h0, h0, none, f((4 * H, H)), f(good.size), f((T + 1, N, H)),
                            f((T + 1, N, H)), f((T, N, 4 * H)), f((T, N, H)), z2, z2, 0, N)
    with pytest.raises(ValueError):  # a packed W_ih^T of the wrong shape
        _gru.forward_input(x32, g(3 * H, D), g(_ops.sgemm_packed_size(D + 1, 3 * H)), g(3 * H),
                           g(T, N, 3 * H), 0, T * N)


# ---- the pieces underneath ----------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_row_major_gemm(ta, tb, dtype):
    """SciPy's BLAS through the row-major wrapper: no tier or own sgemm involved."""
    rng = np.random.default_rng(0)
    M, N, K = 5, 7, 3
    A = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    C = rng.standard_normal((M, N)).astype(dtype)
    want = 2.0 * (A.T if ta else A) @ (B.T if tb else B) + 0.5 * C
    _twins.gemm(ta, tb, dtype(2.0), A, B, dtype(0.5), C)
    np.testing.assert_allclose(C, want, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("K,N", [(1, 1), (3, 16), (17, 31), (33, 65), (130, 40), (577, 100)])
def test_sgemm_pack_layout(K, N, tier):
    """The float32 pack, read back by the layout sgemm.h documents (a header, then column
    panels of NR, each K rows of NR floats, zeros past N), from B and from B^T alike:
    every edge of the transposed copy's k blocks of 16."""
    B = np.random.default_rng(K * 100 + N).standard_normal((K, N)).astype(np.float32)
    Bp = np.full(_ops.sgemm_packed_size(K, N), np.nan, np.float32)
    _ops.sgemm_pack(False, B, Bp)
    Bt = np.full_like(Bp, np.nan)
    _ops.sgemm_pack(True, np.ascontiguousarray(B.T), Bt)
    np.testing.assert_array_equal(Bp, Bt)
    NR = int(Bp[:16].view(np.int32)[1])
    panels = -(-N // NR)
    full = np.zeros((K, panels * NR), np.float32)
    full[:, :N] = B
    np.testing.assert_array_equal(Bp[16:], full.reshape(K, panels, NR).transpose(1, 0, 2).ravel())


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (8, 32, 16), (7, 33, 5), (9, 31, 300), (33, 65, 257),
                                   (16, 1024, 256), (50, 128, 512), (3, 100, 0), (70, 17, 513),
                                   (101, 40, 600), (200, 33, 130), (389, 20, 300)])
def test_own_sgemm_matches_numpy(M, N, K, trans_a, packed, tier):
    """Tile edges in rows (MR: 4, 6, 8; last tiles of 9 and 10 rows on avx512) and columns
    (NR: 16, 32), k blocks (256: transposed A, a plain B, or K > 512), several blocks of
    rows, K = 0; on the current tier's micro-kernel."""
    rng = np.random.default_rng(M * 1000 + N + K)
    A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)
    Bp = np.full(_ops.sgemm_packed_size(K, N), np.nan, np.float32) if packed else np.empty(0, np.float32)
    if packed:
        _ops.sgemm_pack(False, B, Bp)
        # packing W^T from W gives the same panels
        Bp_t = np.empty_like(Bp)
        _ops.sgemm_pack(True, np.ascontiguousarray(B.T), Bp_t)
        np.testing.assert_array_equal(Bp, Bp_t)
    want = (A.T if trans_a else A).astype(np.float64) @ B.astype(np.float64)
    C0 = rng.standard_normal((M, N)).astype(np.float32)
    C = C0.copy()
    _twins.sgemm(trans_a, A, B, Bp, False, C)
    scale = max(1.0, float(np.abs(want).max()))
    assert np.abs(C - want).max() <= 1e-5 * scale * max(1, K) ** 0.5
    C = C0.copy()
    _twins.sgemm(trans_a, A, B, Bp, True, C)
    assert np.abs(C - (want + C0)).max() <= 1e-5 * scale * max(1, K) ** 0.5
    # writes only C: a neighbouring row of a larger buffer is untouched
    big = np.zeros((M + 1, N), np.float32)
    _twins.sgemm(trans_a, A, B, Bp, False, big[:M])
    assert not big[M].any()


@pytest.mark.parametrize("cell", CELLS)
def test_backends_agree_and_really_differ(cell, tier):
    """The backend switch reaches the kernels: own and BLAS agree to float32 rounding, but
    not bit for bit (different summation orders), so the tests above exercise both.
    D = 600 > CR_K_LONG: the own sgemm sums such a K in k-blocks, which no BLAS does; for
    short K an arm64 BLAS sums k in order with FMAs exactly as the own sgemm does."""
    inp = cast(make_inputs(cell, 6, 8, 600, 48, 11), np.float32)
    dout = cast(random_dout(cell, 6, 8, 48, 12), np.float32)
    res = {}
    for name in ("own", "blas"):
        with cells.gemm_backend(name):
            assert cells.current_gemm_backend() == name
            out, cache = forward(cell, inp, impl=cells)
            g = zero_grads(inp)
            backward(cell, dout, cache, g, impl=cells)
            res[name] = {**{k: v.copy() for k, v in out.items()}, **g}
    for k in res["own"]:
        assert max_rel(res["own"][k], res["blas"][k]) <= 1e-5, k
    assert any(not np.array_equal(res["own"][k], res["blas"][k]) for k in res["own"])


def test_gemm_backend_rejects_unknown_name():
    with pytest.raises(ValueError):
        with cells.gemm_backend("mkl"):
            pass


@pytest.mark.parametrize("V", [1, 5, 16, 17, 65, 1000])
@pytest.mark.parametrize("scale", [0.0, 0.25])
def test_softmax_xent_float32_matches_float64(V, scale, tier):
    rng = np.random.default_rng(V)
    R = 37
    z = (rng.standard_normal((R, V)) * 4).astype(np.float32)
    t = rng.integers(0, V, R).astype(np.int32)
    zd = z.astype(np.float64)
    logp = zd - zd.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    want_loss = -logp[np.arange(R), t].sum()
    want_grad = (np.exp(logp) - np.eye(V)[t]) * scale
    g = z.copy()
    loss = _ops.softmax_xent(g, t, scale)
    assert abs(loss - want_loss) <= 1e-5 * max(1.0, abs(want_loss))
    if scale:
        np.testing.assert_allclose(g, want_grad, atol=1e-6)
    else:
        np.testing.assert_array_equal(g, z)   # untouched without a gradient
    z[3, 0] = np.nan
    assert np.isnan(_ops.softmax_xent(z, t, scale))


@pytest.mark.parametrize("R,H,V", [(1, 3, 2), (37, 20, 65), (300, 64, 33)])
def test_decoder_linear_float32_on_both_gemms(R, H, V, gemm):
    rng = np.random.default_rng(R)
    x = rng.standard_normal((R, H)).astype(np.float32)
    W = rng.standard_normal((V, H)).astype(np.float32)
    b = rng.standard_normal(V).astype(np.float32)
    dout = rng.standard_normal((R, V)).astype(np.float32)
    Wp = cells.pack(cells.Workspace(), "W", W, True)
    assert (Wp.size > 0) == (gemm == "own")
    out = np.empty((R, V), np.float32)
    _ops.linear_forward(x, W, Wp, b, out)
    xd, Wd = x.astype(np.float64), W.astype(np.float64)
    np.testing.assert_allclose(out, xd @ Wd.T + b, rtol=1e-4, atol=1e-4)
    dx = np.full((R, H), np.nan, np.float32)
    dW, db = np.ones((V, H), np.float32), np.ones(V, np.float32)
    _ops.linear_backward(dout, x, W, dx, dW, db, own=Wp.size > 0)
    np.testing.assert_allclose(dx, dout.astype(np.float64) @ Wd, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dW, 1 + dout.astype(np.float64).T @ xd, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, 1 + dout.astype(np.float64).sum(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tier_loops", [False, True])
def test_fast_float32_math_accuracy_and_nan(tier_loops, tier):
    """The scalar definitions, and the current tier's vector loops (FMA contraction and
    width change the rounding, not the bounds)."""
    x = np.concatenate([np.linspace(-100, 100, 200001), np.linspace(-1e-3, 1e-3, 2001),
                        [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-30]]).astype(np.float32)
    e, s, t = (np.empty_like(x) for _ in range(3))
    _twins.fast_math_f32(x, e, s, t, tier_loops)
    xd = x.astype(np.float64)
    with np.errstate(over="ignore"):
        exact_s = 0.5 * (1 + np.tanh(0.5 * xd))
    exact_t = np.tanh(xd)
    finite = np.isfinite(x)
    assert np.max(np.abs(s - exact_s)[finite]) <= 3e-7
    assert np.max(np.abs(t - exact_t)[finite]) <= 3e-7
    small = finite & (np.abs(xd) < 0.1) & (xd != 0)
    assert np.max(np.abs(t - exact_t)[small] / np.abs(exact_t[small])) <= 1e-6
    mid = finite & (np.abs(xd) < 80)
    assert np.max(np.abs(e - np.exp(xd))[mid] / np.exp(xd[mid])) <= 5e-7
    assert np.isnan(s[np.isnan(x)]).all() and np.isnan(t[np.isnan(x)]).all()
    assert s[x == np.inf][0] == 1.0 and s[x == -np.inf][0] < 1e-37
    assert t[x == np.inf][0] == 1.0 and t[x == -np.inf][0] == -1.0


@pytest.mark.parametrize("cell", CELLS)
def test_nan_propagates_through_kernels(cell, gemm):
    inp = cast(make_inputs(cell, 3, 2, 4, 5, 0), np.float32)
    inp["x"][1, 0, 2] = np.nan
    out, _ = forward(cell, inp, impl=cells)
    # the NaN enters every gate of stream 0 at t = 1 (through W_ih's column 2), so every
    # unit of that stream is NaN from then on, its final state too; before t = 1, and in
    # stream 1 throughout, nothing is. A min/max clamp or a vector loop that turned NaN into
    # a number, or a NaN leaking into another stream, fails here.
    y = out["y"]
    assert np.isnan(y[1:, 0]).all() and np.isfinite(y[0]).all() and np.isfinite(y[:, 1]).all()
    for k in ("hT", "cT") if cell == "lstm" else ("hT",):
        assert np.isnan(out[k][0]).all() and np.isfinite(out[k][1]).all(), k
