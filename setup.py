"""Build: kernels/*.pyx -> charrnn._<name> extension modules; data/ -> charrnn._data.

Environment switches (source builds only):
  CHARRNN_DEBUG=1   Cython bounds/initialisation checks on, -O0 -g (for tests/debugging).
  CHARRNN_NATIVE=1  add -march=native (faster on the build machine, not portable).
  CHARRNN_ONLY=_lstm,_ops   build only these extensions (quick rebuilds while developing);
                            _isa, which the others import their kernels from, always.
  CHARRNN_NO_AVX512=1       leave the AVX-512 tier out (a compiler too old for it).
  CHARRNN_NO_AMX=1          leave the AMX bf16 driver out (an assembler too old for it).
"""
import glob
import os
import sys

from setuptools import Extension, find_packages, setup

DEBUG = os.environ.get("CHARRNN_DEBUG", "") not in ("", "0")
NATIVE = os.environ.get("CHARRNN_NATIVE", "") not in ("", "0")
NO_AVX512 = os.environ.get("CHARRNN_NO_AVX512", "") not in ("", "0")
NO_AMX = os.environ.get("CHARRNN_NO_AMX", "") not in ("", "0")
ONLY = [n for n in os.environ.get("CHARRNN_ONLY", "").split(",") if n]
# Cythonize and compile the extensions side by side, one job per core.
JOBS = os.cpu_count() or 1
SHARED = "charrnn._cyutility"


def extensions():
    from Cython.Build import cythonize

    # Never -ffast-math: it lets the compiler delete NaN checks (the divergence guard).
    if DEBUG:
        cflags = ["-O0", "-g"]
    else:
        # -g0: Python's own CFLAGS ask for -g, and debug information for Cython's generated
        # C (tens of thousands of lines a module) was about half of the compile time. It
        # never changes the code; CHARRNN_DEBUG=1 keeps it.
        cflags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-g0"]
    if NATIVE:
        cflags.append("-march=native")
    if sys.platform == "win32":   # MSVC: no pragma regions needed for its intrinsics
        cflags = ["/O2", "/fp:precise"] if not DEBUG else ["/Od", "/Zi"]
    # _isa holds every ISA tier's kernels (kernels/tiers.h), compiled once; the others
    # import them from it at their import (CHARRNN_TIERS_IMPORTED, kernels/dispatch.h).
    # Longest compile first (GCC 12 -O3: the cells ~5-6 s, _copylen ~1 s), so that the
    # parallel jobs end together.
    names = ["_lstm", "_gru", "_rnn", "_ops", "_isa", "_sample", "_table", "_dropout", "_twins",
             "_copylen", "_batch", "_bidir", "_attn", "_decoder", "_decode", "_align"]
    common = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    common += [("CHARRNN_DEBUG_BUILD", "1")] if DEBUG else []
    common += [("CHARRNN_NO_AVX512", "1")] if NO_AVX512 else []
    common += [("CHARRNN_NO_AMX", "1")] if NO_AMX else []
    exts = [
        Extension(
            f"charrnn.{name}",
            [f"kernels/{name}.pyx"],
            include_dirs=["kernels"],
            depends=sorted(glob.glob("kernels/*.h") + glob.glob("kernels/*.pxi")),
            extra_compile_args=cflags,
            define_macros=common + ([] if name == "_isa" else [("CHARRNN_TIERS_IMPORTED", "1")]),
        )
        for name in names
        if os.path.exists(f"kernels/{name}.pyx") and (not ONLY or name in ONLY or name == "_isa")
    ]
    # Cython's own utility code (memoryviews, fused-type dispatch: ~30,000 lines of C in
    # every module) generated and compiled once, into charrnn._cyutility, which the
    # others import (Cython >= 3.1, "shared utility module"). First: ~4 s to compile.
    exts.insert(0, Extension(SHARED, [f"kernels/{SHARED.split('.')[1]}.c"],
                             extra_compile_args=cflags))
    directives = {
        "language_level": 3,
        "boundscheck": DEBUG,
        "wraparound": False,
        "initializedcheck": DEBUG,
        "cdivision": True,
        "embedsignature": True,
    }
    # Linux only: there multiprocessing forks; the spawning platforms are untested.
    nthreads = JOBS if JOBS > 1 and sys.platform.startswith("linux") else 0
    return cythonize(exts, compiler_directives=directives, include_path=["kernels"],
                     nthreads=nthreads, shared_utility_qualified_name=SHARED)


setup(
    packages=find_packages(include=["charrnn", "charrnn.*"]) + ["charrnn._data"],
    # The bundled corpora live in data/ at the top of the repository and install as the
    # package charrnn._data, so `charrnn train` finds them after a non-editable install.
    package_dir={"charrnn._data": "data"},
    # The web runtime (charrnn export --format html|web): its C source, the prebuilt
    # charrnn.wasm (python -m charrnn.export.web_build), the ES module and the page; the
    # serve playground.
    package_data={"charrnn._data": ["*.txt"],
                  "charrnn.export": ["webrt/*.c", "webrt/*.js", "webrt/*.html",
                                     "webrt/*.wasm"],
                  "charrnn.serve": ["playground.html"]},
    ext_modules=extensions(),
    zip_safe=False,
    options={"build_ext": {"parallel": JOBS}},
)
