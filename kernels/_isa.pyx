"""The ISA tiers (cpu.h, dispatch.h, tiers.h): every tier's float32 kernels, compiled
once into this module, and the table that says which one runs.

Detection and selection live here; charrnn.isa is the Python side. The other kernel
modules import this one at their own import (through the capsule _tiers) and call every
float32 kernel through its table, so switching the tier here switches it everywhere.
"""
from cpython.pycapsule cimport PyCapsule_New

cdef extern from "cellmath.h":
    unsigned cr_cpu_features()
    int cr_cpu_has(int isa)
    int cr_isa_built(int isa)
    int cr_isa_best()
    int cr_isa_set(int isa)
    int cr_isa_current()
    const char *cr_isa_name(int isa)
    int cr_sgemm_mr()
    int cr_sgemm_nr()
    int cr_sgemm_default()
    const char *cr_compiler()
    const void *cr_tiers_api_ptr()
    int cr_cpu_has_bf16()
    int cr_cpu_intel()
    int cr_bf16_native()
    ctypedef struct cr_bf16_tier:
        int mr, nr
        void *kernel
    const cr_bf16_tier *cr_bf16_kernel(int kind)
    int cr_bf16_amx(int set)

cdef extern from *:
    """
    #ifndef CHARRNN_DEBUG_BUILD
    #define CHARRNN_DEBUG_BUILD 0
    #endif
    """
    const int CHARRNN_DEBUG_BUILD

# True iff the extensions were compiled by `CHARRNN_DEBUG=1 python setup.py ...` (setup.py
# then defines the C macro CHARRNN_DEBUG_BUILD): bounds and initialisation checks on, -O0.
# Lets a test prove that it really runs the checked build.
DEBUG_BUILD = bool(CHARRNN_DEBUG_BUILD)

cr_isa_set(cr_isa_best())

# The name must be this module's dotted path + "._tiers": PyCapsule_Import checks it.
_tiers = PyCapsule_New(<void *>cr_tiers_api_ptr(), b"charrnn._isa._tiers", NULL)

_FEATURES = ["sse2", "avx", "fma", "avx2", "avx512f", "avx512dq", "avx512bw", "avx512vl",
             "os-ymm", "os-zmm", "neon", "avx512bf16", "bf16"]


def cpu_features():
    """Names of the CPU (and OS) features charrnn's detection found."""
    cdef unsigned f = cr_cpu_features()
    return [name for i, name in enumerate(_FEATURES) if f & (1u << i)]


def isa_info(int isa):
    """(name, built into this extension, this CPU runs it) for tier isa."""
    return cr_isa_name(isa).decode(), bool(cr_isa_built(isa)), bool(cr_cpu_has(isa))


def isa_best():
    return cr_isa_best()


def _set_isa(int isa):
    """Run every module's kernels on tier isa (0 scalar, 1 avx2, 2 avx512, 3 neon).
    Returns 0, -1 if this CPU cannot run it, -2 if this build has no such tier."""
    return cr_isa_set(isa)


def _current_isa():
    """The tier the kernels run on now."""
    return cr_isa_current()


def compiler():
    """The C compiler that built the kernels."""
    return cr_compiler().decode()


def sgemm_tile():
    """(MR, NR): the current tier's micro-tile of charrnn's own sgemm (sgemm.h)."""
    return cr_sgemm_mr(), cr_sgemm_nr()


def sgemm_default():
    """True if the current tier runs float32 products on the own sgemm by default."""
    return bool(cr_sgemm_default())


def cpu_bf16():
    """True if this CPU (and OS) has bf16 dot products: x86 AVX512_BF16 with the avx512
    tier's features and ZMM state, or Arm FEAT_BF16 (kernels/cpu.h)."""
    return bool(cr_cpu_has_bf16())


def cpu_intel():
    """True on an Intel x86 CPU (CPUID vendor GenuineIntel)."""
    return bool(cr_cpu_intel())


def bf16_native():
    """True if the current tier has a native bf16 micro-kernel and this CPU runs it."""
    return bool(cr_bf16_native())


def bf16_tile(bint native=False):
    """(MR, NR) of the current tier's bf16 micro-kernel, portable or native; None if it
    has no native one on this CPU."""
    cdef const cr_bf16_tier *t = cr_bf16_kernel(native)
    return None if t == NULL else (t.mr, t.nr)


def amx():
    """True if the current tier's native bf16 products run on AMX tiles (TDPBF16PS,
    kernels/gemm_amx_bf16.h) rather than its VDPBF16PS micro-kernel: the avx512 tier on a
    CPU with AMX-BF16 whose OS (Linux) gave this process leave to use it."""
    return bool(cr_bf16_amx(-1))


def cpu_amx():
    """True if the current tier could run bf16 products on AMX here (the CPU has AMX-BF16,
    Linux gave leave, this build has the driver), whether or not set_amx turned it off."""
    return bool(cr_bf16_amx(2))


def set_amx(bint on):
    """Use AMX for native bf16 products (on: where it exists) or not (off: the VDPBF16PS
    micro-kernel), process-wide; returns amx()."""
    return bool(cr_bf16_amx(1 if on else 0))
