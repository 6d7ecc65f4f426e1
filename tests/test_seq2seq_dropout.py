"""Dropout in the encoder-decoder (charrnn.nn.seq2seq.SITES): the specification with
masks against finite differences, the compiled model against the specification with
the very masks it drew (float64 tight, float32 loose, every ISA tier and both attentions),
the masks keyed and reproducible, and evaluation untouched."""
import itertools

import numpy as np
import pytest

from charrnn.errors import ConfigError
from charrnn.nn import isa
from charrnn.nn import reference_seq2seq as rs
from charrnn.nn.network import StreamMasks
from charrnn.nn.seq2seq import BOS, SITES, Seq2Seq

CASES = list(itertools.product(["lstm", "gru"], rs.ATTENTIONS))
SIZES = dict(embed=3, hidden=2, decoder=3, attn=4, src_vocab=5, tgt_vocab=6)
P = 0.4


def model(cell, attention, dtype=np.float64, dropout=P, seed=0):
    m = Seq2Seq(dict(cell=cell, attention=attention, dropout=dropout, **SIZES), dtype=dtype)
    rng = np.random.default_rng(seed)
    for p in m.params.values():
        p[...] = rng.uniform(-0.8, 0.8, p.shape)
    return m


def batch(rng, S=5, T=4, N=4):
    """Targets already longest first: the model's sort keeps the rows where they are,
    so its masks' rows are the batch's rows."""
    src = rng.integers(0, 5, (S, N))
    tgt = rng.integers(0, 6, (T + 1, N))
    tgt[0] = BOS
    return src, np.array([S, 2, 4, 1])[:N], tgt, np.array([T, 3, 2, 1])[:N]


def masks_of(keys, b, m, dt):
    """The masks StreamMasks(*keys) gives the model's three sites for batch b."""
    src, _, tgt, _ = b
    S, N = src.shape
    T = tgt.shape[0] - 1
    F = m.cfg.decoder + 2 * m.cfg.hidden
    dims = ((S, m.cfg.embed), (T, m.cfg.embed), (T, F))
    return tuple(StreamMasks(*keys).mask(site, t, N, d, P, np.dtype(dt)).reshape(t, N, d)
                 .astype(np.float64) for site, (t, d) in enumerate(dims))


def params64(m):
    return {k: v.astype(np.float64) for k, v in m.params.items()}


@pytest.mark.parametrize("cell,attention", CASES)
def test_reference_with_masks_matches_finite_differences(cell, attention):
    m = model(cell, attention)
    p, b = params64(m), batch(np.random.default_rng(1))
    masks = masks_of((7, 3), b, m, np.float64)
    assert all((mk == 0).any() and (mk > 1).any() for mk in masks)   # real drops, scaled
    _, g = rs.loss_and_grad(cell, attention, p, *b, masks=masks)
    rng = np.random.default_rng(2)
    for name in p:
        for i in rng.choice(p[name].size, min(4, p[name].size), replace=False):
            old = p[name].flat[i]
            p[name].flat[i] = old + 1e-6
            up = rs.loss_and_grad(cell, attention, p, *b, masks=masks)[0]
            p[name].flat[i] = old - 1e-6
            down = rs.loss_and_grad(cell, attention, p, *b, masks=masks)[0]
            p[name].flat[i] = old
            assert abs((up - down) / 2e-6 - g[name].flat[i]) < 1e-7, (name, i)


@pytest.mark.parametrize("cell,attention", CASES)
@pytest.mark.parametrize("dt,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_model_with_dropout_matches_reference(cell, attention, dt, tol):
    b = batch(np.random.default_rng(5))
    for tier in isa.available():
        with isa.use(tier):
            m = model(cell, attention, dt)
            m.grad_flat.fill(0)
            loss = m.forward_backward(*b, rng=StreamMasks(11, 4))
            want, wg = rs.loss_and_grad(cell, attention, params64(m), *b,
                                        masks=masks_of((11, 4), b, m, dt))
            assert abs(loss - want) < tol, tier
            for name in wg:
                np.testing.assert_allclose(m.grads[name], wg[name], atol=tol, rtol=tol,
                                           err_msg=f"{tier} {name}")
            # and dropout changed something: without masks the loss differs
            assert abs(m.loss(*b) - loss) > 1e-3


def test_masks_are_keyed_by_seed_and_step():
    m, b = model("gru", "luong"), batch(np.random.default_rng(3))
    run = lambda *k: m.forward_backward(*b, rng=StreamMasks(*k))   # noqa: E731
    assert run(1, 5) == run(1, 5)
    assert len({run(1, 5), run(1, 6), run(2, 5)}) == 3


def test_no_dropout_without_rng_or_p_or_grad():
    b = batch(np.random.default_rng(4))
    plain = model("lstm", "bahdanau", dropout=0.0)
    plain.grad_flat.fill(0)
    want = plain.forward_backward(*b)
    g0 = plain.grad_flat.copy()
    plain.grad_flat.fill(0)
    assert plain.forward_backward(*b, rng=StreamMasks(1, 1)) == want   # p = 0
    np.testing.assert_array_equal(plain.grad_flat, g0)
    drop = model("lstm", "bahdanau")
    drop.grad_flat.fill(0)
    assert drop.forward_backward(*b) == want                           # no rng
    np.testing.assert_array_equal(drop.grad_flat, g0)
    assert drop.forward_backward(*b, grad=False, rng=StreamMasks(1, 1)) == want  # evaluation
    assert drop.loss(*b) == want


def test_mask_rate_and_scale():
    mk = StreamMasks(3, 9).mask(1, 50, 40, 30, P, np.dtype(np.float32))
    assert set(np.unique(mk)) == {0.0, np.float32(1 / (1 - P))}
    assert abs((mk == 0).mean() - P) < 0.02
    assert len(SITES) == 3


@pytest.mark.parametrize("bad", [1.0, -0.1, "0.2", None])
def test_bad_dropout_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="dropout"):
        Seq2Seq(dict(cell="gru", dropout=bad, **SIZES))
