"""The attention, decoder and output-layer kernels flush denormals while they run, as
the cells do (kernels/cellmath.h: cr_ftz_begin): a float32 product with subnormal inputs
cost 115x a normal one on an Intel Xeon (bench: 447 ms against 3.9 ms for one attention
keys backward), and an attention gradient holds subnormals whenever a weight is near 0.
Flushed, subnormal inputs read as zero; the caller's floating-point mode comes back."""
import numpy as np

from charrnn import _attn, _ops


def test_keys_backward_reads_subnormals_as_zero_and_restores_the_mode():
    rng = np.random.default_rng(0)
    N, S, C, A = 3, 4, 8, 5
    E = rng.standard_normal((N, S, C)).astype(np.float32)
    W = rng.standard_normal((A, C)).astype(np.float32)
    L = np.full(N, S, np.int64)
    tiny = np.full((N, S, A), 1e-39, np.float32)          # subnormal in float32
    assert 0 < tiny[0, 0, 0] < np.finfo(np.float32).tiny
    dE, dW = np.zeros((N, S, C), np.float32), np.zeros((C, A), np.float32)
    _attn.keys_backward(tiny, E, W, L, True, dE, dW)
    assert not dE.any() and not dW.any()                  # DAZ: the inputs read as 0
    normal = rng.standard_normal((N, S, A)).astype(np.float32)
    _attn.keys_backward(normal, E, W, L, True, dE, dW)
    assert dE.any() and dW.any()
    # the mode is the caller's again: NumPy still makes and keeps subnormals
    assert np.float32(1e-38) * np.float32(0.01) != 0


def test_linear_backward_flushes_too():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    W = rng.standard_normal((3, 4)).astype(np.float32)
    dout = np.full((6, 3), 1e-39, np.float32)
    dx, dW, db = np.zeros_like(x), np.zeros_like(W), np.zeros(3, np.float32)
    _ops.linear_backward(dout, x, W, dx, dW, db, True)
    assert not dx.any() and not dW.any()
