"""Optimizers over the model's flat parameter buffer: one compiled loop each.

Both take `gscale`, the global-norm clipping factor, so clipping costs no extra pass,
and `parallel` (a charrnn.nn.cells.Parallel, or None): the update is elementwise, so
threads take slices of the buffer and the result does not depend on how many there are.
Their state is a dict of flat arrays, saved in the training state for exact resumes.
"""
import contextlib

import numpy as np

from charrnn import _ops
from charrnn.errors import ConfigError
from charrnn.nn.parallel import each


def _sliced(parallel, fn, arrays, *args):
    """fn(*[a[lo:hi] for a in arrays], *args) over slices of the buffers, one per thread."""
    each(parallel, fn, arrays[0].shape[0], lambda lo, hi: (*[a[lo:hi] for a in arrays], *args))


class Adam:
    name = "adam"

    def __init__(self, n, beta1=0.9, beta2=0.999, eps=1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.state = {"m": np.zeros(n, np.float32), "v": np.zeros(n, np.float32)}
        self.t = 0

    def step(self, params, grads, lr, gscale=1.0, parallel=None):
        self.t += 1
        _sliced(parallel, _ops.adam_update, (params, grads, self.state["m"], self.state["v"]),
                lr, self.beta1, self.beta2, self.eps, self.t, gscale)


class RMSprop:
    name = "rmsprop"

    def __init__(self, n, alpha=0.95, eps=1e-8):
        # alpha 0.95 as in Karpathy's char-rnn (PyTorch's default is 0.99).
        self.alpha, self.eps = alpha, eps
        self.state = {"v": np.zeros(n, np.float32)}
        self.t = 0

    def step(self, params, grads, lr, gscale=1.0, parallel=None):
        self.t += 1
        _sliced(parallel, _ops.rmsprop_update, (params, grads, self.state["v"]),
                lr, self.alpha, self.eps, gscale)


OPTIMIZERS = {"adam": Adam, "rmsprop": RMSprop}


def make(name, n):
    try:
        return OPTIMIZERS[name](n)
    except KeyError:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}") from None


def clip_scale(grads, max_norm, prescale=1.0):
    """(global L2 norm of g, factor f such that f * grads is g brought down to max_norm),
    where g = prescale * grads (a distributed run passes summed gradients and 1/ranks)."""
    norm = prescale * float(np.sqrt(_ops.sum_squares(grads)))
    if max_norm and max_norm > 0 and norm > max_norm:
        return norm, prescale * max_norm / (norm + 1e-6)
    return norm, prescale


class WeightAverage:
    """An exponential moving average of the parameter buffer (Polyak averaging, as
    TensorFlow's ExponentialMovingAverage with num_updates): after optimizer step t,
    avg = d avg + (1 - d) params with d = min(decay, (1 + t) / (10 + t)), so that early
    on the average follows the weights instead of remembering their random start.

        avg = WeightAverage(decay, params)     # starts equal to params (n,)
        avg.update(params, t, parallel)        # after step t (1, 2, ...)
        with avg.applied(params): ...          # params holds the average inside
    Its state ({"avg": (n,)}) goes in the training state for exact resumes."""

    def __init__(self, decay, params):
        if not 0 < decay < 1:
            raise ConfigError(f"the moving average's decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self.state = {"avg": params.copy()}

    def update(self, params, t, parallel=None):
        d = min(self.decay, (1 + t) / (10 + t))
        _sliced(parallel, _ops.ema_update, (self.state["avg"], params), d)

    @contextlib.contextmanager
    def applied(self, params):
        """params holds the average inside, its own values again after (even after an
        exception)."""
        kept = params.copy()
        params[...] = self.state["avg"]
        try:
            yield params
        finally:
            params[...] = kept
