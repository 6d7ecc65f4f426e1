"""A first layer through its embedding table (charrnn.lookup) against x = E[ids] gathered.

`dtype` (conftest.py): float64 once, float32 on every ISA tier with both GEMMs."""
import numpy as np
import pytest

from charrnn import _table
from charrnn.nn import cells
from charrnn.nn import table as lookup
from charrnn.nn import reference as ref
from charrnn.errors import ShapeError
from charrnn.model import CharRNN
from charrnn.nn.network import StreamMasks

CELLS = {"lstm": 4, "gru": 3, "rnn": 1}


def layer_inputs(cell, T, N, V, D, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    G = CELLS[cell] * H
    ids = rng.integers(0, V, (T, N)).astype(np.int32)
    E = rng.standard_normal((V, D)).astype(dtype)
    W = [(rng.standard_normal(s) * 0.4).astype(dtype) for s in ((G, D), (G, H), (G,), (G,))]
    state = [rng.standard_normal((N, H)).astype(dtype) for _ in range(2 if cell == "lstm" else 1)]
    dy = rng.standard_normal((T, N, H)).astype(dtype)
    return ids, E, W, state, dy


def run_layer(cell, x, state, W, dy, dx, parallel=None):
    """Forward and backward of one layer: (y, final states..., dx, dstate..., dW...)."""
    out = getattr(cells, cell + "_forward")(x, *state, *W, parallel=parallel)
    dW = [np.zeros_like(w) for w in W]
    dst = [np.zeros_like(s) for s in state]
    nones = [None] * len(state)
    getattr(cells, cell + "_backward")(dy, *nones, out[-1], dx, *dst, *dW)
    return [np.array(a) for a in out[:-1]] + [dx] + dst + dW


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", [(1, 1, 1, 1, 1), (7, 5, 11, 6, 9), (20, 13, 40, 33, 17)])
@pytest.mark.parametrize("cell", CELLS)
def test_table_input_matches_the_gathered_input(cell, size, dtype, threads):
    backend = cells.current_gemm_backend()
    T, N, V, D, H = size
    ids, E, W, state, dy = layer_inputs(cell, T, N, V, D, H, dtype)
    P = cells.Parallel(threads) if threads > 1 else None
    dE = np.zeros_like(E)
    got = run_layer(cell, cells.Lookup(ids, E), state, W, dy, dE, P)
    want = run_layer(cell, np.ascontiguousarray(E[ids]), state, W, dy, np.zeros((T, N, D), dtype), P)
    dE_want = np.zeros_like(E)
    np.add.at(dE_want, ids, want[len(state) + 1])
    want[len(state) + 1] = dE_want
    n_fwd = 1 + len(state)
    for i, (g, w) in enumerate(zip(got, want)):
        if i < n_fwd and backend == "own" and dtype == np.float32:
            # the own sgemm sums each row in the same order whatever the other rows: the
            # table's rows are exactly the rows of x W_ih^T
            np.testing.assert_array_equal(g, w)
        else:
            tol = 1e-12 if dtype == np.float64 else 2e-5
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol * max(1.0, float(np.abs(w).max())))


@pytest.mark.parametrize("cell", CELLS)
def test_table_input_against_the_reference(cell):
    """float64 against charrnn.reference fed x = E[ids], and dE = scatter of its dx."""
    T, N, V, D, H = 6, 4, 5, 3, 7
    ids, E, W, state, dy = layer_inputs(cell, T, N, V, D, H, np.float64, seed=3)
    dE = np.zeros_like(E)
    got = run_layer(cell, cells.Lookup(ids, E), state, W, dy, dE)
    x = E[ids]
    out = getattr(ref, cell + "_forward")(x, *state, *W)
    dW = [np.zeros_like(w) for w in W]
    dst = [np.zeros_like(s) for s in state]
    dx = np.zeros_like(x)
    getattr(ref, cell + "_backward")(dy, *[None] * len(state), out[-1], dx, *dst, *dW)
    want_dE = np.zeros_like(E)
    np.add.at(want_dE, ids, dx)
    want = list(out[:-1]) + [want_dE] + dst + dW
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_table_gradient_is_added_into():
    ids, E, W, state, dy = layer_inputs("lstm", 5, 3, 4, 3, 6, np.float64)
    once = run_layer("lstm", cells.Lookup(ids, E), state, W, dy, np.zeros_like(E))
    start = np.full_like(E, 0.25)
    twice = run_layer("lstm", cells.Lookup(ids, E), state, W, dy, start)
    np.testing.assert_allclose(twice[3], once[3] + 0.25, rtol=1e-12)


def test_bad_lookups_are_clear_errors():
    ids, E, W, state, dy = layer_inputs("gru", 4, 3, 5, 2, 3, np.float64)
    with pytest.raises(ShapeError, match="int32"):
        cells.Lookup(ids.astype(np.int64), E)
    with pytest.raises(ShapeError, match="C-contiguous 2-d"):
        cells.Lookup(ids, E[:, :1])
    bad = ids.copy()
    bad[2, 1] = 5
    with pytest.raises(ValueError, match="outside the vocabulary"):
        cells.gru_forward(cells.Lookup(bad, E), *state, *W)
    out = cells.gru_forward(cells.Lookup(ids, E), *state, *W)
    dW = [np.zeros_like(w) for w in W]
    with pytest.raises(ShapeError, match="embedding's gradient"):
        cells.gru_backward(dy, None, out[-1], np.zeros((4, 3, 2)), np.zeros_like(state[0]), *dW)
    frozen = np.zeros_like(E)
    frozen.flags.writeable = False
    with pytest.raises(ShapeError, match="writable C-contiguous"):
        cells.gru_backward(dy, None, out[-1], frozen, np.zeros_like(state[0]), *dW)
    with pytest.raises(ValueError, match="character id 5 at position 7 is outside"):
        _table.gather_add_rows(bad.reshape(-1), np.zeros((12, 9)), np.zeros((5, 9)), 0, 9)


def model_step(cell, dtype, table, threads=1, rng=None, dropout=0.0, T=16, N=6):
    vocab = list("abcdefg")
    m = CharRNN(dict(cell=cell, hidden=9, layers=2, embed=5, vocab_size=len(vocab),
                     dropout=dropout), vocab, dtype=dtype, seed=4)
    m.lookup_input = table
    if threads > 1:
        m.parallel = cells.Parallel(threads)
    data = np.random.default_rng(5).integers(0, len(vocab), (T + 1, N))
    m.grad_flat.fill(0)
    loss, _ = m.forward_backward(data[:-1], data[1:], rng=rng)
    return m, loss, m.grad_flat.copy()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_model_takes_the_table_and_gets_the_same_gradients(cell, dtype, threads):
    m, loss, grad = model_step(cell, dtype, True, threads)
    assert "lookup_table" in m._ws[0]._bufs          # the table path ran
    _, loss0, grad0 = model_step(cell, dtype, False, threads)
    tol = 1e-11 if dtype == np.float64 else 2e-5
    assert abs(loss - loss0) <= tol * abs(loss0)
    np.testing.assert_allclose(grad, grad0, rtol=tol, atol=tol * float(np.abs(grad0).max()))


def test_model_skips_the_table_under_embedding_dropout_and_for_short_batches():
    m, _, _ = model_step("lstm", np.float64, True, rng=StreamMasks(1, 0), dropout=0.3)
    assert "lookup_table" not in m._ws[0]._bufs
    m, _, _ = model_step("lstm", np.float64, True, T=3, N=2)         # R = 6 < 4 V
    assert not lookup.worth_it(7, 6)
    assert "lookup_table" not in m._ws[0]._bufs
