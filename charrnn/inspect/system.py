"""What a bug report needs: versions, the ISA tier and GEMM path in use, bf16, threads.

`charrnn info` prints it; `charrnn.info()` returns it as a dict.
"""
import os
import platform
import sys


def info():
    """A dict of the facts `charrnn info` prints."""
    import numpy
    import scipy
    from threadpoolctl import threadpool_info

    from charrnn import _isa
    from charrnn.nn import cells, isa, precision
    from charrnn.version import __version__

    tier = isa.current()
    mr, nr = _isa.sgemm_tile()
    backend = cells.current_gemm_backend()
    blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture') or '?'}, "
            f"{p.get('num_threads')} threads)" for p in threadpool_info()
            if p.get("user_api") == "blas" and _in_scipy(p.get("filepath") or "")]
    if not blas:   # SciPy linked to a system BLAS: list whatever threadpoolctl sees
        blas = [f"{p.get('internal_api')} {p.get('version')}" for p in threadpool_info()
                if p.get("user_api") == "blas"]
    gemm = (f"own sgemm, {tier} micro-kernel {mr}x{nr}" if backend == "own"
            else "BLAS (CHARRNN_SGEMM=blas)" if os.environ.get("CHARRNN_SGEMM") == "blas"
            else f"BLAS (the {tier} tier's default)")
    return {
        "charrnn": __version__,
        "isa": tier,
        "isa_env": os.environ.get(isa.ENV, "") or "auto",
        "isa_available": isa.available(),
        "cpu_features": _isa.cpu_features(),
        "cpu": _cpu_name(),
        "float32_gemm": gemm,
        "float64_gemm": "BLAS",
        **precision.info(),   # bf16_cpu, bf16_products, precision_auto
        "scipy_blas": blas[0] if blas else "unknown",
        "threads": os.cpu_count() or 1,
        "compiler": _isa.compiler(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
    }


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


LABELS = [("charrnn", "charrnn"), ("isa", "ISA tier"), ("isa_env", "CHARRNN_ISA"),
          ("isa_available", "tiers this CPU runs"), ("cpu", "CPU"),
          ("cpu_features", "CPU features"), ("float32_gemm", "float32 GEMM"),
          ("float64_gemm", "float64 GEMM"), ("bf16_cpu", "bf16 dot products"),
          ("bf16_products", "bf16 GEMM"), ("precision_auto", "--precision auto"),
          ("scipy_blas", "SciPy's BLAS"),
          ("threads", "threads (default)"), ("compiler", "built with"),
          ("python", "Python"), ("numpy", "NumPy"), ("scipy", "SciPy"),
          ("platform", "platform")]


def format_info(d):
    width = max(len(label) for _, label in LABELS)
    lines = []
    for key, label in LABELS:
        v = d[key]
        lines.append(f"{label:<{width}}  {', '.join(v) if isinstance(v, list) else v}")
    return "\n".join(lines)


def _in_scipy(path):
    """True for a library SciPy ships (site-packages/scipy/ or scipy.libs/). NumPy's own
    OpenBLAS is named libscipy_openblas64_ too, but lives in numpy.libs/ or numpy/."""
    parts = os.path.normpath(path).split(os.sep)[:-1]
    return any(p in ("scipy", "scipy.libs") for p in parts)

