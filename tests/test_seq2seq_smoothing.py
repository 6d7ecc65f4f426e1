"""Label smoothing of the transducer's loss (--label-smoothing): the float64
specification against finite differences, the compiled model against it on float64 and
float32, and the smoothed loss's relation to the plain one. PyTorch's
cross_entropy(label_smoothing=) reads it independently: tests/test_seq2seq_pytorch.py."""
import itertools

import numpy as np
import pytest

from charrnn.nn import reference_seq2seq as rs
from charrnn.nn.seq2seq import smoothed_xent
from test_seq2seq import CASES, batch, model, params64


@pytest.mark.parametrize("cell,attention", CASES)
def test_smoothed_reference_matches_finite_differences(cell, attention):
    m = model(cell, attention)
    p = params64(m)
    b = batch(np.random.default_rng(1))
    loss, g = rs.loss_and_grad(cell, attention, p, *b, smoothing=0.15)
    rng = np.random.default_rng(2)
    for name in p:
        for i in rng.choice(p[name].size, min(4, p[name].size), replace=False):
            old = p[name].flat[i]
            p[name].flat[i] = old + 1e-6
            up = rs.loss_and_grad(cell, attention, p, *b, smoothing=0.15)[0]
            p[name].flat[i] = old - 1e-6
            down = rs.loss_and_grad(cell, attention, p, *b, smoothing=0.15)[0]
            p[name].flat[i] = old
            assert abs((up - down) / 2e-6 - g[name].flat[i]) < 1e-7, (name, i)


@pytest.mark.parametrize("cell,attention", CASES)
@pytest.mark.parametrize("dt,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_smoothed_model_matches_reference(cell, attention, dt, tol):
    m = model(cell, attention, dt)
    b = batch(np.random.default_rng(5))
    loss, g = m.loss_and_grad(*b, smoothing=0.1)
    want, wg = rs.loss_and_grad(cell, attention, params64(m), *b, smoothing=0.1)
    plain = rs.loss_and_grad(cell, attention, params64(m), *b)[0]
    assert abs(loss - want) < tol and abs(want - plain) > 1e-3   # it changes something
    for name in wg:
        np.testing.assert_allclose(g[name], wg[name], atol=tol, rtol=tol, err_msg=name)


def test_smoothed_xent_is_the_cross_entropy_against_the_smoothed_targets():
    rng = np.random.default_rng(3)
    for eps, (M, V), scale in itertools.product((0.0, 0.1, 0.5), ((5, 7), (1, 2)), (0.0, 0.25)):
        z = rng.normal(0, 3, (M, V))
        labels = rng.integers(0, V, M).astype(np.int32)
        logp = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) \
            - z.max(1, keepdims=True)
        want = np.full((M, V), eps / V)
        want[np.arange(M), labels] += 1 - eps
        work = z.copy()
        total = smoothed_xent(work, labels, scale, eps)
        assert abs(total + (want * logp).sum()) < 1e-10
        if scale:
            np.testing.assert_allclose(work, (np.exp(logp) - want) * scale, atol=1e-12)
        else:
            np.testing.assert_array_equal(work, z)   # scale 0: z left alone
