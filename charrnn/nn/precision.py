"""The precision of the matrix products: fp32, or bf16 (mixed precision).

    fp32   every product in float32 (charrnn's own sgemm, or BLAS)
    bf16   the products whose B operand is a weight -- the input and recurrent products of
           every layer, forward and backward through the weights (dh, dx), and the
           decoder's forward -- take their inputs rounded to bfloat16 (weights when they
           are packed, once per pass; activations as they enter the tiles) and sum in
           float32 (kernels/sgemm_bf16.h). Everything else stays float32: the weights
           themselves (the master copy), the optimizer's state, the gradients and their
           accumulation, the weight-gradient products, the gate math and cell state, the
           softmax. Always on charrnn's own GEMM: a BLAS has no bf16.
    auto   bf16 where the current tier has a native bf16 kernel that is faster than
           float32 on this CPU: x86 AMX-BF16 (the avx512 tier's AMX driver: Sapphire
           Rapids and later Xeons), AVX512_BF16 on AMD (its VDPBF16PS kernel: Zen 4/5)
           and arm64 FEAT_BF16 (the neon tier's BFDOT kernel); fp32 everywhere else. On an
           Intel CPU without AMX (Cooper Lake, or AMX turned off: CHARRNN_AMX=0, a kernel
           before Linux 5.16) VDPBF16PS issues on one port where float32 FMAs issue on
           two, and bf16 training measured 0.77-0.80x of float32 (bench/results/), so
           auto keeps fp32 there; --precision bf16 still runs it.

Asking for bf16 where no native kernel runs is a ConfigError, because the portable
kernel (plain C, every tier) is no faster than float32. For tests, CHARRNN_BF16=portable
lets bf16 run on it anywhere, so the whole pipeline (packing, rounding, training, exact
resume) is tested on every CPU. Where a native kernel exists, CHARRNN_BF16=portable still
picks the portable one (the same bits on every machine).

A network's precision is its workspaces' (charrnn.nn.network.Network.precision);
charrnn.nn.cells packs the weights accordingly.

Sampling has a precision of its own (SAMPLE_PRECISIONS, default fp32): bf16 keeps a bf16
copy of the weight matrices, rounded once when the sampler is built, and every
matrix-vector product of a step reads it, summing in float32 (kernels/gemv_bf16.h: the
same bits on every tier and CPU, so no native bf16 instruction is needed). Batch-1
sampling is bound by reading the weights, which bf16 halves (docs/sampling.md has the
measurements: faster at every model size on both machines measured). It changes
a draw wherever the rounding moves the uniform across a boundary of the cumulative
probabilities, and the text differs from fp32's from there on.
Importing this module loads no kernel (charrnn.training.options reads PRECISIONS at the
CLI's start-up); the functions do.
"""
import os

from charrnn.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")
ENV = "CHARRNN_BF16"


# Sampling (charrnn sample --precision, Sampler(precision=)): one source for the CLI's
# choices, default and help.
SAMPLE_PRECISIONS = ("fp32", "bf16")
SAMPLE_DEFAULT = "fp32"
SAMPLE_HELP = ("fp32 (the default: --seed gives the texts it always gave) or bf16: "
               "weights read as bfloat16, half the bytes: 1.1-1.3x faster on a Zen 3, "
               "1.4-3.3x on a Sapphire Rapids Xeon (bench/results/sample/); its text "
               "follows fp32's until the first draw the rounding changes. Example: "
               "--precision bf16")


def sample_precision(value):
    """value if it is one of SAMPLE_PRECISIONS, else ConfigError."""
    if not isinstance(value, str) or value not in SAMPLE_PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(SAMPLE_PRECISIONS)} for "
                          f"sampling, got {value!r}")
    return value


_checked = {}   # tier -> the start-up check's verdict (None: passed), once per process
TOLERANCE = 1e-4   # relative: both kernels sum the same bf16 products in float32


def native():
    """True if the current tier has a native bf16 kernel, this CPU runs it, and it passed
    the start-up check."""
    from charrnn import _isa
    return bool(_isa.bf16_native()) and _startup_failure() is None


def _startup_failure():
    """None if the native kernel agrees with the portable one on a fixed product with
    every tile edge (13 x 40 x 31: odd K, partial row and column tiles), else why not.
    The x86 kernel was verified on SIMDe and a model of the instruction, not on silicon
    (no AVX512_BF16 CPU was at hand): a kernel that misbehaves on a real CPU must cost
    speed (float32), never a wrong model."""
    from charrnn import _isa
    from charrnn.nn import isa
    key = (isa.current(), _isa.amx())   # AMX, or the tier's micro-kernel
    if key not in _checked:
        _checked[key] = check_agreement(*(lambda A, B, n=n: _gemm(A, B, n) for n in (True, False)))
    return _checked[key]


def _gemm(A, B, native):
    import numpy as np
    from charrnn import _ops, _twins
    Bp = np.empty(_ops.sgemm_packed_size_bf16(*B.shape, native), np.float32)
    _ops.sgemm_pack_bf16(False, B, Bp, native)
    C = np.zeros((A.shape[0], B.shape[1]), np.float32)
    _twins.sgemm(False, A, B, Bp, False, C)
    return C


def check_agreement(native_gemm, portable_gemm):
    """None if native_gemm(A, B) agrees with portable_gemm(A, B) within TOLERANCE of
    the products' scale, else a reason (for why_not)."""
    import numpy as np
    rng = np.random.default_rng(20261205)
    A = rng.standard_normal((13, 31)).astype(np.float32)
    B = rng.standard_normal((31, 40)).astype(np.float32)
    got, want = native_gemm(A, B), portable_gemm(A, B)
    scale = float((np.abs(A) @ np.abs(B)).max())
    err = float(np.max(np.abs(got - want))) if np.all(np.isfinite(got)) else float("inf")
    if err <= TOLERANCE * scale:
        return None
    return (f"its native bf16 kernel disagreed with the portable one at start-up (error "
            f"{err:.3g} on products of scale {scale:.3g}); float32 is used: please report "
            "this CPU (charrnn info)")


def _env():
    value = os.environ.get(ENV, "").strip().lower()
    if value not in ("", "portable"):
        raise ConfigError(f"{ENV}={value}: not a choice; set it to portable (bf16 products "
                          "on the portable kernel, for tests) or leave it unset")
    return value


def path():
    """The kernel bf16 products run on now: "native", "portable" (CHARRNN_BF16=portable)
    or None (none allowed: no native kernel on this tier and CPU)."""
    if _env() == "portable":
        return "portable"
    return "native" if native() else None


def why_not():
    """Why this process has no native bf16 kernel (for messages), or None if it has."""
    from charrnn import _isa
    from charrnn.nn import isa
    if native():
        return None
    tier = isa.current()
    if _isa.bf16_native():
        return f"this CPU: {_startup_failure()}"
    if _isa.cpu_bf16():
        x86 = "avx512bf16" in _isa.cpu_features()
        feature, home = ("AVX512_BF16", "avx512") if x86 else ("FEAT_BF16", "neon")
        if tier != home:
            return f"the {tier} tier has no bf16 kernel (this CPU's {feature} is used by the {home} tier)"
        return (f"this build of charrnn has no {feature} kernel (built with CHARRNN_NO_BF16, "
                "or by a compiler without one: MSVC, GCC < 10, Clang < 9)")
    return ("this CPU has no bf16 dot products (x86 AVX512_BF16 with AVX-512 state, or arm64 "
            "FEAT_BF16)")


def resolve(name, resumed=False):
    """"fp32" or "bf16" for a --precision of auto, fp32 or bf16; a ConfigError (one line)
    for bf16 where it cannot run (resumed: the precision a run recorded)."""
    if name not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    if name == "auto":
        return "bf16" if native() and _env() == "" and native_is_faster() else "fp32"
    if name == "bf16" and path() is None:
        if resumed:
            raise ConfigError(f"cannot resume: this run trains in bf16 (its recorded "
                              f"precision), but {why_not()}; resume it where it can run "
                              f"({ENV}=portable runs it on the portable kernel, slowly)")
        raise ConfigError(f"--precision bf16: {why_not()}; use --precision fp32 or auto "
                          f"({ENV}=portable runs bf16 on the portable kernel, for tests)")
    return name


def native_is_faster():
    """True unless the native kernel is x86's VDPBF16PS on an Intel CPU, where it is slower
    than float32 (it issues on one port, float32 FMAs on two: 99 against 192 GFLOP/s per
    core on a Sapphire Rapids-class Xeon, bench/peak_bf16.py). AMX, AMD's VDPBF16PS and
    Arm's BFDOT count as faster."""
    from charrnn import _isa
    return _isa.amx() or not _isa.cpu_intel()


def kernel_native():
    """For packing in bf16: True for the native kernel, False for the portable one; a
    ConfigError if bf16 cannot run here (the network's precision was set elsewhere)."""
    p = path()
    if p is None:
        raise ConfigError(f"bf16 products: {why_not()}")
    return p == "native"


def describe(name):
    """One line for the log: what the products of a run in precision `name` run on."""
    from charrnn import _isa
    from charrnn.nn import isa
    if name != "bf16":
        return "float32"
    mr, nr = _isa.bf16_tile(path() == "native")
    if path() == "native" and _isa.amx():
        kernel, (mr, nr) = f"the {isa.current()} tier's AMX tiles, TDPBF16PS", (32, 32)
    elif path() == "native":
        kernel = f"the {isa.current()} tier's BF16 kernel"
    else:
        kernel = f"the portable kernel, {ENV}=portable"
    return f"inputs in bf16, sums in float32 ({kernel}, {mr}x{nr})"


def log_line():
    """The run log's line for a bf16 run."""
    return f"charrnn: precision bf16: the matrix products' {describe('bf16')}"


def info():
    """The bf16 facts of `charrnn info`."""
    from charrnn import _isa
    hw = [f for f in ("avx512bf16", "bf16") if f in _isa.cpu_features()]
    return {
        "bf16_cpu": ("yes (" + ", ".join(["AVX512_BF16" if f == "avx512bf16" else "FEAT_BF16"
                                          for f in hw] + (["AMX-BF16"] if _isa.cpu_amx() else []))
                     + ")") if _isa.cpu_bf16() else "no",
        "bf16_products": describe("bf16") if path() else f"not available: {why_not()}",
        "precision_auto": resolve("auto") + ("" if not native() or native_is_faster() else
                                             " (VDPBF16PS is slower than float32 on Intel "
                                             "CPUs, and AMX is " + ("turned off: CHARRNN_AMX=0)"
                                                                    if _isa.cpu_amx() else
                                                                    "not available)")),
    }
