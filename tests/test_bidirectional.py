"""Bidirectional stacks over padded batches (charrnn.nn.bidirectional) against their
specification (charrnn.nn.reference_bidir), and the specification against finite
differences and its defining properties: a padded batch is its rows run apart, padding
never reaches anything. A test taking `dtype` runs float64 once and float32 on every ISA
tier with both GEMMs (conftest.py). PyTorch parity: test_bidirectional_pytorch.py."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn import _bidir
from charrnn.errors import ShapeError
from charrnn.nn import bidirectional as bi
from charrnn.nn import reference_bidir as rb

CELLS = ["lstm", "gru", "rnn"]
TOL = {np.float64: 1e-10, np.float32: 2e-4}
# (T, N, D, H, lengths): one step; ragged with 1 and T; all full (no reset at all); one
# larger, random lengths, where the own sgemm's blocks are crossed
CASES = [(1, 1, 2, 3, [1]), (6, 4, 3, 5, [6, 1, 3, 6]), (4, 3, 2, 4, [4, 4, 4]),
         (5, 5, 4, 3, [1, 1, 2, 1, 5]), (23, 13, 17, 20, None)]


def lengths_of(case, seed=0):
    T, N, _, _, lengths = case
    if lengths is None:
        lengths = np.random.default_rng(seed).integers(1, T + 1, N)
        lengths[0], lengths[-1] = 1, T
    return np.array(lengths)


def make(cell, T, N, D, H, L, seed=0, pad=np.nan, lengths=None):
    """Parameters, a padded x (pad in the padding), and the gradients of a random loss."""
    rng = np.random.default_rng(seed)
    params = {k: rng.uniform(-0.6, 0.6, s) for k, s in rb.param_shapes(cell, D, H, L).items()}
    x = rng.standard_normal((T, N, D))
    if lengths is not None:
        for n, l in enumerate(lengths):
            x[l:, n] = pad
    dout = rng.standard_normal((T, N, 2 * H))
    dfinals = tuple(rng.standard_normal((2 * L, N, H)) for _ in range(2 if cell == "lstm" else 1))
    return params, x, dout, dfinals


def run(impl, cell, params, x, lengths, dout, dfinals, **kw):
    out, finals, cache = impl.forward(cell, x, lengths, params, **kw)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dx = impl.backward(dout, dfinals, cache, grads)
    return out.copy(), [f.copy() for f in finals], dx, grads


def cast(d, dt):
    if isinstance(d, dict):
        return {k: v.astype(dt) for k, v in d.items()}
    return tuple(v.astype(dt) for v in d) if isinstance(d, tuple) else d.astype(dt)


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"T{c[0]}N{c[1]}")
def test_kernels_match_the_reference(cell, L, case, dtype):
    T, N, D, H, _ = case
    lengths = lengths_of(case)
    params, x, dout, dfinals = make(cell, T, N, D, H, L, lengths=lengths)
    want = run(rb, cell, params, x, lengths, dout, dfinals)
    got = run(bi, cell, cast(params, dtype), x.astype(dtype), lengths, cast(dout, dtype),
              cast(dfinals, dtype))
    tol = TOL[dtype]
    assert got[0].dtype == dtype and got[2].dtype == dtype
    assert rel(got[0], want[0]) < tol, "out"
    for g, w in zip(got[1], want[1]):
        assert rel(g, w) < tol, "finals"
    assert rel(got[2], want[2]) < tol, "dx"
    for k in params:
        assert rel(got[3][k], want[3][k]) < tol, k
    # padded positions: zero output, zero dx (exactly, whatever the dtype)
    pad = np.arange(T)[:, None] >= lengths[None, :]
    assert not got[0][pad].any() and not got[2][pad].any()


def loss(cell, params, x, lengths, dout, dfinals):
    out, finals, _ = rb.forward(cell, x, lengths, params)
    return float(np.sum(out * dout) + sum(np.sum(f * d) for f, d in zip(finals, dfinals)))


@pytest.mark.parametrize("cell", CELLS)
def test_reference_matches_finite_differences(cell):
    T, N, D, H, L = 4, 3, 2, 3, 2
    lengths = np.array([4, 1, 2])
    params, x, dout, dfinals = make(cell, T, N, D, H, L, seed=1, pad=0.0, lengths=lengths)
    _, _, dx, grads = run(rb, cell, params, x, lengths, dout, dfinals)
    eps = 1e-6
    for name, a, g in [("x", x, dx)] + [(k, params[k], grads[k]) for k in params]:
        num = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            old = a[i]
            a[i] = old + eps
            up = loss(cell, params, x, lengths, dout, dfinals)
            a[i] = old - eps
            down = loss(cell, params, x, lengths, dout, dfinals)
            a[i] = old
            num[i] = (up - down) / (2 * eps)
        err = np.max(np.abs(num - g)) / max(np.max(np.abs(num)), 1e-8)
        assert err < 1e-6, name


@pytest.mark.parametrize("cell", CELLS)
def test_a_padded_batch_is_its_rows_run_apart(cell):
    T, N, D, H, L = 7, 5, 3, 4, 2
    lengths = np.array([7, 2, 5, 1, 7])
    params, x, dout, dfinals = make(cell, T, N, D, H, L, seed=2, lengths=lengths)
    out, finals, dx, grads = run(bi, cell, params, x, lengths, dout, dfinals)
    summed = {k: np.zeros_like(v) for k, v in params.items()}
    for n, l in enumerate(lengths):
        # row n alone, exactly as long as it is: no padding, no reset anywhere
        o, f, d, g = run(bi, cell, params, np.ascontiguousarray(x[:l, n:n + 1]), [l],
                         np.ascontiguousarray(dout[:l, n:n + 1]),
                         tuple(np.ascontiguousarray(a[:, n:n + 1]) for a in dfinals))
        np.testing.assert_allclose(out[:l, n], o[:, 0], atol=1e-13)
        for a, b in zip(finals, f):
            np.testing.assert_allclose(a[:, n], b[:, 0], atol=1e-13)
        np.testing.assert_allclose(dx[:l, n], d[:, 0], atol=1e-13)
        for k in g:
            summed[k] += g[k]
    for k in grads:
        np.testing.assert_allclose(grads[k], summed[k], atol=1e-12, err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
def test_padding_never_leaks(cell, dtype):
    """NaN, huge values or zeros in x's padding and in dout's padded part: same results,
    all finite."""
    T, N, D, H, L = 6, 4, 3, 5, 2
    lengths = np.array([6, 1, 3, 4])
    results = []
    for pad in (np.nan, 1e30, 0.0):
        params, x, dout, dfinals = make(cell, T, N, D, H, L, seed=3, pad=pad, lengths=lengths)
        for n, l in enumerate(lengths):
            dout[l:, n] = pad
        r = run(bi, cell, cast(params, dtype), x.astype(dtype), lengths,
                cast(dout, dtype), cast(dfinals, dtype))
        arrays = [r[0], *r[1], r[2], *r[3].values()]
        assert all(np.isfinite(a).all() for a in arrays), pad
        results.append(arrays)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_backward_twice_adds_twice():
    T, N, D, H, L = 5, 3, 2, 4, 2
    lengths = np.array([5, 2, 3])
    params, x, dout, dfinals = make("lstm", T, N, D, H, L, seed=4, lengths=lengths)
    out, finals, cache = bi.forward("lstm", x, lengths, params)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dx1 = bi.backward(dout, dfinals, cache, grads)
    once = {k: v.copy() for k, v in grads.items()}
    dx2 = bi.backward(dout, None, cache, grads)   # no final-state gradient this time
    _, _, dx3, g3 = run(bi, "lstm", params, x, lengths, dout, None)
    np.testing.assert_array_equal(dx2, dx3)
    for k in grads:
        np.testing.assert_allclose(grads[k], once[k] + g3[k], rtol=1e-13, atol=1e-15)
    assert not np.array_equal(dx1, dx2)


def test_workspaces_reuse_buffers_and_give_the_same_results():
    from charrnn.nn import cells
    T, N, D, H, L = 5, 3, 2, 4, 2
    lengths = np.array([5, 2, 3])
    params, x, dout, dfinals = make("gru", T, N, D, H, L, seed=5, lengths=lengths)
    want = run(bi, "gru", params, x, lengths, dout, dfinals)
    wss = [cells.Workspace() for _ in range(2 * L)]
    for _ in range(2):
        got = run(bi, "gru", params, x, lengths, dout, dfinals, workspaces=wss)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[2], want[2])


@pytest.mark.parametrize("lengths, message", [
    ([0, 2, 3], "lengths must be in 1..4 (T, x's steps): row 0 has 0"),
    ([1, 5, 3], "row 1 has 5"),
    ([-1, 2, 3], "row 0 has -1"),
    ([1, 2], "lengths has shape (2,), expected (3,)"),
    ([[1, 2, 3]], "lengths has shape (1, 3)"),
    ([1.0, 2.0, 3.0], "lengths must be integers (N,), got dtype float64"),
    ([True, True, False], "got dtype bool"),
])
def test_bad_lengths_are_one_line_shape_errors(lengths, message):
    params, x, _, _ = make("rnn", 4, 3, 2, 3, 1)
    with pytest.raises(ShapeError) as e:
        bi.forward("rnn", x, lengths, params)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_arguments_are_shape_errors():
    params, x, dout, dfinals = make("lstm", 4, 3, 2, 3, 1)
    with pytest.raises(ShapeError, match="3-d"):
        bi.forward("lstm", x[0], [1, 2, 3], params)
    with pytest.raises(ShapeError, match="float32 or float64"):
        bi.forward("lstm", x.astype(np.float16), [1, 2, 3], params)
    with pytest.raises(ShapeError, match="missing parameter weight_ih_l0_reverse"):
        bi.forward("lstm", x, [1, 2, 3], {k: v for k, v in params.items() if k != "weight_ih_l0_reverse"})
    out, finals, cache = bi.forward("lstm", x, [1, 2, 3], params)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    with pytest.raises(ShapeError, match="dout must be a float64 array"):
        bi.backward(dout[:, :, :3], None, cache, grads)
    with pytest.raises(ShapeError, match="dfinals"):
        bi.backward(dout, dfinals[:1], cache, grads)


def test_gather_checks_its_indices_and_columns():
    src, dst = np.zeros((3, 2, 4)), np.zeros((3, 2, 4))
    idx = np.zeros((3, 2), np.int32)
    idx[1, 1] = 3
    with pytest.raises(ValueError, match=r"index 3 at \(1, 1\) outside src's 3 steps"):
        _bidir.gather(src, 0, idx, dst, 0, 4, False)
    with pytest.raises(ValueError, match="columns"):
        _bidir.gather(src, 2, np.zeros((3, 2), np.int32), dst, 0, 3, False)
    with pytest.raises(ValueError, match="do not fit"):
        _bidir.gather(src, 0, np.zeros((2, 2), np.int32), dst, 0, 4, False)


@pytest.mark.parametrize("cell", CELLS)
def test_two_threads_run_the_directions_at_once_with_the_same_results(cell, dtype):
    from charrnn.nn import cells
    T, N, D, H, L = 9, 6, 5, 7, 2
    lengths = np.array([9, 1, 4, 9, 2, 6])
    params, x, dout, dfinals = make(cell, T, N, D, H, L, seed=6, lengths=lengths)
    args = (cast(params, dtype), x.astype(dtype), lengths, cast(dout, dtype), cast(dfinals, dtype))
    want = run(bi, cell, *args)
    P = cells.Parallel(2)
    try:
        wss = [cells.Workspace() for _ in range(2 * L)]
        got = run(bi, cell, *args, parallel=P, workspaces=wss)
    finally:
        P.close()
    for a, b in zip([want[0], *want[1], want[2], *want[3].values()],
                    [got[0], *got[1], got[2], *got[3].values()]):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=40, deadline=None)
@given(cell=st.sampled_from(CELLS), L=st.integers(1, 3), T=st.integers(1, 9),
       N=st.integers(1, 6), D=st.integers(1, 5), H=st.integers(1, 6), data=st.data())
def test_any_lengths_match_the_reference(cell, L, T, N, D, H, data):
    lengths = np.array(data.draw(st.lists(st.integers(1, T), min_size=N, max_size=N)))
    params, x, dout, dfinals = make(cell, T, N, D, H, L, seed=T * 100 + N, lengths=lengths)
    want = run(rb, cell, params, x, lengths, dout, dfinals)
    got = run(bi, cell, params, x, lengths, dout, dfinals)
    for a, b in zip([got[0], *got[1], got[2], *got[3].values()],
                    [want[0], *want[1], want[2], *want[3].values()]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
