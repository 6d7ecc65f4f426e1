"""Which ISA tier the compiled kernels run on: detection, CHARRNN_ISA, forcing a tier.

The kernel modules (charrnn._ops, _lstm, _gru, _rnn, _table, _sample, _twins) call every
float32 kernel through one table of function pointers, held by charrnn._isa (kernels/
dispatch.h) and set at import to the best tier this CPU runs:

    scalar   plain C, any CPU and compiler
    avx2     AVX2 + FMA (x86-64-v3)
    avx512   AVX-512 F/DQ/BW/VL (x86-64-v4)
    neon     arm64 Advanced SIMD

CHARRNN_ISA=auto|scalar|avx2|avx512|neon picks one for the whole process (read once, when
charrnn.nn.cells is first imported); `use(name)` switches it within a block (tests). Asking
for a tier this CPU or build cannot run is a ConfigError.
"""
import contextlib
import os

from charrnn import _isa
from charrnn.errors import ConfigError

TIERS = ("scalar", "avx2", "avx512", "neon")
ENV = "CHARRNN_ISA"
# bf16 products on the avx512 tier run on AMX tiles where the CPU (and the OS) has AMX-BF16
# (kernels/gemm_amx_bf16.h); CHARRNN_AMX=0 keeps them on the VDPBF16PS micro-kernel.
AMX_ENV = "CHARRNN_AMX"


def available():
    """The tiers this build has and this CPU runs, lowest first."""
    return [name for i, name in enumerate(TIERS) if all(_isa.isa_info(i)[1:])]


def best():
    return TIERS[_isa.isa_best()]


def current():
    """The tier the kernels run on now."""
    return TIERS[_isa._current_isa()]


def _set(name):
    if name == "auto":
        name = best()
    if name not in TIERS:
        raise ConfigError(f"{ENV}={name}: not a tier; use auto, {', '.join(TIERS)}")
    i = TIERS.index(name)
    _, built, runs = _isa.isa_info(i)
    if not runs:
        raise ConfigError(f"{ENV}={name}: this CPU cannot run the {name} kernels "
                          f"(it can run: {', '.join(available())})")
    if not built:   # e.g. built with CHARRNN_NO_AVX512
        raise ConfigError(f"{ENV}={name}: this build of charrnn has no {name} kernels "
                          f"(it has: {', '.join(available())})")
    if _isa._set_isa(i) != 0:   # cannot happen after the checks above
        raise ConfigError(f"{ENV}={name}: charrnn._isa refused the tier")
    _isa.amx()   # asks the OS for AMX now, with the GIL, if this tier can use it


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
    """Apply CHARRNN_ISA and CHARRNN_AMX if they are set (ConfigError if CHARRNN_ISA names
    a tier that cannot run, or either is not a choice)."""
    value = os.environ.get(ENV, "").strip().lower()
    if value:
        _set(value)
    amx = os.environ.get(AMX_ENV, "").strip()
    if amx not in ("", "0", "1"):
        raise ConfigError(f"{AMX_ENV}={amx}: use 0 (bf16 products on the VDPBF16PS kernel) "
                          "or 1 (on AMX where the CPU has it: the default)")
    _isa.set_amx(amx != "0")
