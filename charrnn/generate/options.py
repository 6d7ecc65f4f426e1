"""Checking the generation options up front: each bad value is a ConfigError with a
one-line message that says what was expected (see charrnn.generate.sampler)."""
import math
import os

import numpy as np

from charrnn.errors import ConfigError


def _is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _options(temperature, top_k, top_p):
    if not _is_number(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"temperature must be a finite number >= 0 (0 = greedy), got "
                          f"{temperature!r}")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ConfigError(f"top_k must be a whole number >= 1 (or None for no limit), "
                              f"got {top_k!r}")
        top_k = int(top_k)
    if top_p is not None:
        if not _is_number(top_p) or not 0.0 < top_p <= 1.0:  # also refuses NaN
            raise ConfigError(f"top_p must be a number in (0, 1] (or None for no limit), "
                              f"got {top_p!r}")
        top_p = float(top_p)
    return float(temperature), top_k, top_p


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _seed(seed):
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed < 2**64:
        raise ConfigError(f"seed must be a whole number in [0, 2**64) or None, got {seed!r}")
    return int(seed)


def _stops(stop):
    stops = (stop,) if isinstance(stop, str) else stop
    try:
        stops = tuple(stops)
    except TypeError:
        raise ConfigError(f"stop must be a string or a list of strings, got {stop!r}") \
            from None
    for s in stops:
        if not isinstance(s, str) or not s:
            raise ConfigError(f"every stop string must be a non-empty str, got {s!r}")
    return stops


def _check_vocab(vocab, V):
    vocab = list(vocab) if isinstance(vocab, (list, tuple)) else vocab
    if not isinstance(vocab, list) or not all(isinstance(c, str) and len(c) == 1
                                              for c in vocab):
        raise ConfigError("vocab must be a list of one-character strings")
    if len(vocab) != V:
        raise ConfigError(f"vocab has {len(vocab)} characters but config vocab_size is {V}")
    if len(set(vocab)) != V:
        raise ConfigError("vocab has repeated characters")
    return vocab


def _check_params(params, shapes):
    missing = [n for n in shapes if n not in params]
    extra = [n for n in params if n not in shapes]
    if missing or extra:
        what = "; ".join(x for x in (missing and f"missing {', '.join(missing)}",
                                     extra and f"unexpected {', '.join(map(str, extra))}") if x)
        raise ConfigError(f"params do not match the config: {what}")
    out = {}
    for name, shape in shapes.items():
        a = np.asarray(params[name])
        if a.shape != shape or a.dtype.kind != "f":
            raise ConfigError(f"params {name} is {a.dtype}{list(a.shape)}; expected "
                              f"float{list(shape)} for this config")
        out[name] = a
    return out


def _no_repeat(n):
    """None or 0: off; else a whole number >= 2 (the length of the n-grams never repeated)."""
    if n is None or (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n == 0):
        return 0
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ConfigError(f"no_repeat must be a whole number >= 2 (the length of the "
                          f"character n-grams that may not repeat) or None, got {n!r}")
    return int(n)


def _temperatures(temperature):
    """A number, or a list of them (a sheet: one sample per temperature) -> (list or
    None, the first); each checked as _options checks one."""
    if isinstance(temperature, (list, tuple, np.ndarray)):
        temps = list(temperature)
        if not temps:
            raise ConfigError("the temperature list is empty; give at least one number")
        for t in temps:
            _options(t, None, None)
        return [float(t) for t in temps], float(temps[0])
    return None, temperature
