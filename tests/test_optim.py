"""Optimizers and the clipping norm (charrnn.optim, charrnn._ops)."""
import numpy as np
import pytest

from charrnn import _ops
from charrnn.nn import cells
from charrnn.nn import optim


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 17, 100_003])
def test_sum_squares_is_the_double_sum(n):
    g = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    want = float(np.sum(g.astype(np.float64) ** 2))
    assert _ops.sum_squares(g) == pytest.approx(want, rel=1e-13, abs=0)


def test_clip_scale_brings_the_norm_down_to_the_limit():
    g = np.full(400, 0.5, np.float32)                       # norm 10
    norm, f = optim.clip_scale(g, 5.0)
    assert norm == pytest.approx(10.0, rel=1e-12)
    assert f * norm == pytest.approx(5.0, rel=1e-6)
    assert optim.clip_scale(g, 20.0) == (pytest.approx(10.0), 1.0)


def numpy_adam(p, g, m, v, lr, t, b1=0.9, b2=0.999, eps=1e-8):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    a = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    return p - a * m / (np.sqrt(v) + eps), m, v


def run(name, threads, steps=3, n=10_001):
    rng = np.random.default_rng(7)
    p = rng.standard_normal(n).astype(np.float32)
    opt = optim.make(name, n)
    P = cells.Parallel(threads) if threads > 1 else None
    for _ in range(steps):
        g = rng.standard_normal(n).astype(np.float32)
        opt.step(p, g, 1e-2, 0.5, parallel=P)
    return p, opt.state


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_threads_give_the_same_update_bit_for_bit(name, threads):
    p1, s1 = run(name, 1)
    pt, st = run(name, threads)
    np.testing.assert_array_equal(p1, pt)
    for k in s1:
        np.testing.assert_array_equal(s1[k], st[k])


def test_adam_step_is_adam():
    rng = np.random.default_rng(3)
    p = rng.standard_normal(50).astype(np.float32)
    g = rng.standard_normal(50).astype(np.float32)
    opt = optim.make("adam", 50)
    want = p.astype(np.float64), np.zeros(50), np.zeros(50)
    for t in (1, 2):
        opt.step(p, g, 1e-2, 0.5, parallel=cells.Parallel(2))
        want = numpy_adam(want[0], 0.5 * g.astype(np.float64), want[1], want[2], 1e-2, t)
    np.testing.assert_allclose(p, want[0], rtol=1e-6, atol=1e-7)
