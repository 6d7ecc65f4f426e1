"""Resets through a whole model: Network.forward_backward / loss / loss_and_grad(reset=).

A window in which stream n resets at step t is, for that stream, two sequences: the
steps before t from the given state, the steps from t on from a zero state in every
layer. So the window's loss and gradients are the pieces' (each stream run alone,
N = 1), weighted by their share of the window's characters, and its final state is
each stream's last piece's. PyTorch checks the same by the same pieces in
test_pytorch_interop.py."""
import numpy as np
import pytest

from charrnn.errors import ShapeError
from charrnn.nn import cells
from charrnn.nn.network import Network

VOCAB = list("abcdefg")


def model(cell, dtype=np.float64, lookup=True, threads=1):
    m = Network(dict(cell=cell, hidden=6, layers=2, embed=4, vocab_size=len(VOCAB)), VOCAB,
                seed=2, dtype=dtype)
    m.lookup_input = lookup
    if threads > 1:
        m.parallel = cells.Parallel(threads)
    return m


def batch(T, N, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, len(VOCAB), (T + 1, N))
    reset = rng.random((T, N)) < 0.2
    reset[0, 0] = True          # a reset at t = 0: the given state plays no part
    reset[T - 1, N - 1] = True  # and at the last step
    reset[:, 1] = False         # a stream without any
    return data[:-1], data[1:], reset


def pieces(col):
    cuts = [0] + [t for t in np.flatnonzero(col) if t > 0] + [len(col)]
    return list(zip(cuts[:-1], cuts[1:]))


def by_pieces(m, x, y, state, reset):
    """(loss, grads, final state) of the window, computed from its pieces run apart."""
    T, N = x.shape
    loss, grads = 0.0, {k: np.zeros_like(v) for k, v in m.params.items()}
    final = [tuple(np.zeros_like(a) for a in layer) for layer in state]
    for n in range(N):
        for t0, t1 in pieces(reset[:, n]):
            fresh = t0 > 0 or reset[0, n]
            s = [tuple(np.zeros((1,) + a.shape[1:], a.dtype) if fresh else a[n:n + 1].copy()
                       for a in layer) for layer in state]
            l, g, s = m.loss_and_grad(x[t0:t1, n:n + 1], y[t0:t1, n:n + 1], s)
            share = (t1 - t0) / (T * N)
            loss += l * share
            for k in grads:
                grads[k] += g[k] * share
        for layer, got in zip(final, s):
            for a, b in zip(layer, got):
                a[n] = b[0]
    return loss, grads, final


@pytest.mark.parametrize("lookup,threads", [(True, 1), (False, 1), (True, 2), (False, 2)])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_window_with_resets_equals_its_pieces(cell, lookup, threads):
    T, N = 12, 5
    x, y, reset = batch(T, N)
    m = model(cell, lookup=lookup, threads=threads)
    rng = np.random.default_rng(1)
    state = [tuple(0.5 * rng.standard_normal(a.shape) for a in layer) for layer in m.init_state(N)]
    loss, grads, final = m.loss_and_grad(x, y, state, reset=reset)
    if lookup:
        assert "lookup_table" in m._ws[0]._bufs     # R = 60 >= 4 V: layer 0 took the table
    want_loss, want_grads, want_final = by_pieces(model(cell), x, y, state, reset)
    assert abs(loss - want_loss) <= 1e-12 * want_loss
    for k in grads:
        np.testing.assert_allclose(grads[k], want_grads[k], rtol=1e-9, atol=1e-13, err_msg=k)
    for layer, want in zip(final, want_final):
        for a, b in zip(layer, want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    no_grad, _ = m.loss(x, y, state, reset=reset)
    assert abs(no_grad - loss) <= 1e-12 * loss   # (loss without gradients: its own sums)


def test_float32_model_with_resets_agrees_with_float64():
    x, y, reset = batch(16, 6, seed=3)
    l64, g64, _ = model("lstm").loss_and_grad(x, y, reset=reset)
    l32, g32, _ = model("lstm", np.float32).loss_and_grad(x, y, reset=reset.astype(np.uint8))
    assert abs(l32 - l64) <= 1e-5 * l64
    for k in g64:
        np.testing.assert_allclose(g32[k], g64[k], rtol=2e-4, atol=2e-6, err_msg=k)


def test_no_reset_and_all_false_are_the_same_bits():
    x, y, _ = batch(10, 4, seed=4)
    m = model("gru", np.float32)
    a = m.loss_and_grad(x, y)
    b = m.loss_and_grad(x, y, reset=np.zeros(x.shape, bool))
    assert a[0] == b[0]
    for k in a[1]:
        np.testing.assert_array_equal(a[1][k], b[1][k], err_msg=k)


def test_bad_reset_is_a_one_line_shape_error():
    x, y, reset = batch(6, 3)
    m = model("lstm")
    for bad, match in [(reset[:-1].copy(), "reset has shape"), (reset.astype(np.int8), "reset has dtype"),
                       (np.asfortranarray(reset), "not C-contiguous"), (reset.tolist(), "numpy array")]:
        with pytest.raises(ShapeError, match=match) as e:
            m.loss_and_grad(x, y, reset=bad)
        assert "\n" not in str(e.value)
