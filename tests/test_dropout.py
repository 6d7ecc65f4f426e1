"""Dropout masks keyed by (seed, step, stream, site): Philox4x32-10 known answers, the
mask kernel against a per-element reference, and masks that do not depend on which
block of streams is computed together (what makes N ranks equal one process)."""
import numpy as np
import pytest

from charrnn import _dropout
from charrnn.model import CharRNN
from charrnn.nn.network import StreamMasks

# Random123's known-answer vectors for philox4x32_10: (counter, key) -> output
KAT = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
       ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
       ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]


@pytest.mark.parametrize("counter,key,want", KAT)
def test_philox_known_answers(counter, key, want):
    assert _dropout.philox4x32_10(counter, key) == want


def reference_mask(T, n, D, seed, step, stream0, site, p):
    out = np.empty((T, n, D))
    thr = int(p * 2**32)
    key = (seed & 0xFFFFFFFF, seed >> 32)
    for j in range(n):
        for t in range(T):
            for d in range(D):
                e = t * D + d
                c = (e >> 2, stream0 + j, step & 0xFFFFFFFF, site | (step >> 32) << 8)
                u = _dropout.philox4x32_10(c, key)[e & 3]
                out[t, j, d] = 1 / (1 - p) if u >= thr else 0
    return out


@pytest.mark.parametrize("T,n,D", [(3, 2, 5), (4, 3, 8), (2, 1, 37), (5, 2, 1), (1, 1, 70)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_kernel_matches_reference(T, n, D, dtype):
    seed, step, stream0, site, p = 2**40 + 7, 2**33 + 5, 3, 2, 0.3
    got = np.empty((T, n, D), dtype)
    _dropout.dropout_mask(got, seed, step, stream0, site, p)
    want = reference_mask(T, n, D, seed, step, stream0, site, p)
    np.testing.assert_allclose(got, want, rtol=1e-7)


def test_masks_of_a_stream_do_not_depend_on_its_neighbours():
    whole = StreamMasks(99, 12, 0).mask(1, 7, 6, 33, 0.4, np.float32).reshape(7, 6, 33)
    part = StreamMasks(99, 12, 4).mask(1, 7, 2, 33, 0.4, np.float32).reshape(7, 2, 33)
    np.testing.assert_array_equal(part, whole[:, 4:6])
    assert 0.5 < (whole > 0).mean() < 0.7                  # keep rate about 1 - p
    other_step = StreamMasks(99, 13, 0).mask(1, 7, 6, 33, 0.4, np.float32)
    other_site = StreamMasks(99, 12, 0).mask(2, 7, 6, 33, 0.4, np.float32)
    assert not np.array_equal(other_step, whole.reshape(42, 33))
    assert not np.array_equal(other_site, whole.reshape(42, 33))


def test_half_batches_with_stream_masks_add_up_to_the_whole():
    """Two halves of a batch, each with the masks of its own streams, give the loss and
    (summed) gradients of the whole batch: the rank-count independence of training."""
    cfg = dict(cell="lstm", hidden=6, layers=2, embed=4, vocab_size=7, dropout=0.3)
    model = CharRNN(cfg, list("abcdefg"), dtype=np.float64, seed=1)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 7, (5, 4)), rng.integers(0, 7, (5, 4))
    model.grad_flat.fill(0)
    loss, _ = model.forward_backward(x, y, rng=StreamMasks(3, 8, 0))
    whole = model.grad_flat.copy()
    total = 0.0
    model.grad_flat.fill(0)
    for lo in (0, 2):
        part, _ = model.forward_backward(x[:, lo:lo + 2], y[:, lo:lo + 2], rng=StreamMasks(3, 8, lo))
        total += part / 2
    # each half's gradient is of its own mean: halve to compare with the whole's mean
    np.testing.assert_allclose(model.grad_flat / 2, whole, rtol=1e-10, atol=1e-14)
    assert abs(total - loss) < 1e-12
    model.grad_flat.fill(0)
    loss_other, _ = model.forward_backward(x, y, rng=StreamMasks(3, 9, 0))
    assert loss_other != loss                               # the step is part of the key
