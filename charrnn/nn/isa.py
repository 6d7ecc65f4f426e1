"""Which ISA tier the compiled kernels run on: detection, CHARRNN_ISA, forcing a tier.

Every kernel module (charrnn._ops, _lstm, _gru, _rnn, _table, _sample) holds a table of function
pointers (kernels/dispatch.h), filled at import with the best tier this CPU runs:

    scalar   plain C, any CPU and compiler
    avx2     AVX2 + FMA (x86-64-v3)
    avx512   AVX-512 F/DQ/BW/VL (x86-64-v4)
    neon     arm64 Advanced SIMD

CHARRNN_ISA=auto|scalar|avx2|avx512|neon picks one for the whole process (read once, when
charrnn.nn.cells is first imported); `use(name)` switches all modules together within a
block (tests). Asking for a tier this CPU or build cannot run is a ConfigError.
"""
import contextlib
import os

from charrnn import _gru, _lstm, _ops, _rnn, _sample, _table
from charrnn.errors import ConfigError

TIERS = ("scalar", "avx2", "avx512", "neon")
ENV = "CHARRNN_ISA"
_MODULES = (_ops, _lstm, _gru, _rnn, _table, _sample)


def available():
    """The tiers this build has and this CPU runs, lowest first."""
    return [name for i, name in enumerate(TIERS) if all(_ops.isa_info(i)[1:])]


def best():
    return TIERS[_ops.isa_best()]


def current():
    """The tier the kernels run on now."""
    return TIERS[_ops._current_isa()]


def _set(name):
    if name == "auto":
        name = best()
    if name not in TIERS:
        raise ConfigError(f"{ENV}={name}: not a tier; use auto, {', '.join(TIERS)}")
    i = TIERS.index(name)
    _, built, runs = _ops.isa_info(i)
    if not runs:
        raise ConfigError(f"{ENV}={name}: this CPU cannot run the {name} kernels "
                          f"(it can run: {', '.join(available())})")
    if not built:   # e.g. built with CHARRNN_NO_AVX512
        raise ConfigError(f"{ENV}={name}: this build of charrnn has no {name} kernels "
                          f"(it has: {', '.join(available())})")
    for m in _MODULES:
        if m._set_isa(i) != 0:   # cannot happen after the checks above: all share cpu.h
            raise ConfigError(f"{ENV}={name}: {m.__name__} refused the tier")


def set_isa(name):
    """Run every kernel on tier `name` ("auto": the best) from now on, process-wide."""
    _set(name)


@contextlib.contextmanager
def use(name):
    """Within the block, every kernel runs on tier `name`. Packed weights made before the
    switch are refused by the kernels afterwards (they are per tier), never misread."""
    old = current()
    _set(name)
    try:
        yield
    finally:
        _set(old)


def apply_env():
    """Apply CHARRNN_ISA if it is set (ConfigError if it names a tier that cannot run)."""
    value = os.environ.get(ENV, "").strip().lower()
    if value:
        _set(value)
