"""Property-based tests of the compiled kernels (charrnn.cells) against the specification.

test_kernels.py checks a handful of chosen sizes; here hypothesis draws them:
- any valid T, N, D, H (small, including 1), cell, dtype, weight scale and with or
  without a final-state gradient: forward outputs and every gradient match the NumPy
  reference, serially and with each pass split over 2 or 3 threads;
- any argument made invalid in one way (one dimension off by one, wrong dtype, or a
  non-contiguous view): a ShapeError (a ValueError), never a crash, and nothing written.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.nn import cells
from charrnn.nn import isa
from charrnn.nn import reference as ref
from charrnn.errors import ShapeError

from test_reference import backward, forward, input_names, make_inputs, random_dout, zero_grads

CELLS = ["lstm", "gru", "rnn"]
# max |kernel - reference| / max |reference|; float32 kernels are compared with the
# float64 reference, so their tolerance is float32 rounding plus the fast float32 math.
TOL = {np.float64: 1e-9, np.float32: 1e-4}
# Weights are PyTorch's initialisation times one of these. Larger weights saturate the
# gates, and the derivative s * (1 - s) taken from a saturated s amplifies the rounding of
# s: 1 - s = 2e-4 turns one float32 ulp into a 3e-4 relative error in the gradient (the
# float64 kernels reach 1e-7 that way at scale 4): conditioning, not a kernel bug. With
# these scales the worst errors seen over ~1500 drawn problems per dtype were 1e-12
# (float64) and 1.3e-5 (float32), well inside TOL.
WEIGHT_SCALES = {np.float64: [0.25, 1.0, 2.0], np.float32: [0.25, 0.5]}
EXAMPLES = settings(max_examples=100, deadline=None)
# float32 runs on charrnn's own sgemm or on BLAS, on any ISA tier this CPU has: draw them.
BACKENDS = ["own", "blas"]
TIERS = isa.available()


@st.composite
def problems(draw):
    """A valid problem: sizes, dtype, seeded random inputs and output gradients."""
    cell = draw(st.sampled_from(CELLS))
    T = draw(st.integers(1, 6))
    N = draw(st.integers(1, 5))
    D = draw(st.integers(1, 7))
    H = draw(st.integers(1, 9))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    gemm = draw(st.sampled_from(BACKENDS)) if dtype == np.float32 else "blas"
    tier = draw(st.sampled_from(TIERS))
    scale = draw(st.sampled_from(WEIGHT_SCALES[dtype]))
    seed = draw(st.integers(0, 2**32 - 1))
    inp = make_inputs(cell, T, N, D, H, seed)
    for k in ("W_ih", "W_hh", "b_ih", "b_hh"):
        inp[k] *= scale
    dout = random_dout(cell, T, N, H, seed + 1)
    for k in ("hT", "cT"):
        if k in dout and draw(st.booleans()):
            dout[k] = None  # no gradient w.r.t. the final state
    return dict(cell=cell, dtype=dtype, inp=inp, dout=dout, gemm=gemm, tier=tier)


def cast(d, dtype):
    return {k: None if v is None else v.astype(dtype) for k, v in d.items()}


class _Calls:
    """charrnn.cells with a workspace and/or parallel passed to every forward."""

    def __init__(self, workspace, parallel):
        self.kwargs = dict(workspace=workspace, parallel=parallel)

    def __getattr__(self, name):
        fn = getattr(cells, name)
        if name.endswith("_forward"):
            return lambda *a: fn(*a, **self.kwargs)
        return fn


def assert_matches_reference(p, impl):
    cell, dtype, inp, dout = p["cell"], p["dtype"], p["inp"], p["dout"]
    out_r, cache_r = forward(cell, inp, impl=ref)
    g_r = zero_grads(inp)
    backward(cell, dout, cache_r, g_r, impl=ref)

    inp_k = cast(inp, dtype)
    with isa.use(p["tier"]), cells.gemm_backend(p["gemm"]):
        out_k, cache_k = forward(cell, inp_k, impl=impl)
        got = dict(out_k)  # copied now: with a workspace, y is a view into its buffers
        g_k = zero_grads(inp_k)
        backward(cell, cast(dout, dtype), cache_k, g_k, impl=impl)
    got.update({"d" + k: v for k, v in g_k.items()})
    want = dict(out_r, **{"d" + k: v for k, v in g_r.items()})

    for k, w in want.items():
        assert got[k].dtype == dtype, k
        err = np.max(np.abs(got[k] - w)) / max(np.max(np.abs(w)), 1e-30)
        assert err <= TOL[dtype], f"{k}: max error {err:.3g} relative to max |{k}|"


@EXAMPLES
@given(p=problems(), use_workspace=st.booleans())
def test_serial_kernels_match_reference(p, use_workspace):
    ws = cells.Workspace() if use_workspace else None
    assert_matches_reference(p, _Calls(ws, None))


@EXAMPLES
@given(p=problems(), threads=st.integers(2, 3), use_workspace=st.booleans())
def test_threaded_kernels_match_reference(p, threads, use_workspace):
    par = cells.Parallel(threads)
    try:
        ws = cells.Workspace() if use_workspace else None
        assert_matches_reference(p, _Calls(ws, par))
    finally:
        par.close()


# ---- invalid arguments -------------------------------------------------------------

def _bad_copy(a, data, free_axis=None):
    """A copy of array `a` that is wrong in exactly one way, drawn by hypothesis.
    free_axis: an axis whose length is not checked against anything (left alone)."""
    long_axes = [i for i, n in enumerate(a.shape) if n >= 2]
    kind = data.draw(st.sampled_from(["shape", "dtype"] + (["layout"] if long_axes else [])),
                     label="kind")
    if kind == "shape":
        axis = data.draw(st.sampled_from([i for i in range(a.ndim) if i != free_axis]), label="axis")
        shape = list(a.shape)
        shape[axis] += data.draw(st.sampled_from([-1, 1]), label="delta")
        return np.zeros(shape, a.dtype)
    if kind == "dtype":
        other = np.float32 if a.dtype == np.float64 else np.float64
        return a.astype(data.draw(st.sampled_from([other, np.float16, np.int64]), label="dtype"))
    # Same shape and dtype, every other element of a twice-as-long axis: not C-contiguous.
    axis = data.draw(st.sampled_from(long_axes), label="axis")
    base = np.repeat(a, 2, axis=axis)
    view = base[tuple(slice(None, None, 2) if i == axis else slice(None) for i in range(a.ndim))]
    assert view.shape == a.shape and not view.flags.c_contiguous
    return view


@EXAMPLES
@given(p=problems(), data=st.data())
def test_invalid_argument_raises_shape_error(p, data):
    cell, dtype = p["cell"], p["dtype"]
    inp = cast(p["inp"], dtype)
    dout = {k: np.ones_like(inp["h0"]) if v is None else v for k, v in cast(p["dout"], dtype).items()}
    grads = zero_grads(inp)
    targets = ([("inp", k) for k in input_names(cell)] + [("dout", k) for k in dout]
               + [("grads", k) for k in grads])
    group, name = data.draw(st.sampled_from(targets), label="argument")
    if group == "inp":
        # x's first axis is T, which forward takes from x alone: T +- 1 is valid there.
        bad = _bad_copy(inp[name], data, free_axis=0 if name == "x" else None)
        with pytest.raises(ShapeError):
            forward(cell, dict(inp, **{name: bad}), impl=cells)
        return
    _, cache = forward(cell, inp, impl=cells)
    if group == "dout":
        dout = dict(dout, **{name: _bad_copy(dout[name], data)})
    else:
        grads = dict(grads, **{name: _bad_copy(grads[name], data)})
    with pytest.raises(ShapeError):
        backward(cell, dout, cache, grads, impl=cells)
    for k, g in grads.items():  # checked before anything is written
        assert not np.any(g), k
