"""charrnn: character-level RNN text generation on Cython/BLAS kernels.

    import charrnn
    charrnn.train("corpus.txt", max_minutes=5)        # what `charrnn train` runs
    model = charrnn.load("charrnn-runs/corpus-...")    # run directory or .safetensors
    print(model.generate(prime="ROMEO:", length=300, temperature=0.8))
    charrnn.train("pairs.tsv", task="classify")        # label<TAB>text lines
    clf = charrnn.load_classifier("charrnn-runs/pairs-...")
    print(clf.top("some text", 3))                     # [(label, probability), ...]
    charrnn.train("cmudict.tsv", task="seq2seq", target_tokens="space")   # source<TAB>target
    g2p = charrnn.load_transducer("charrnn-runs/cmudict-...")
    print(g2p.transduce(["hello"], beam=5))            # ["HH AH0 L OW1"]

Heavy modules (NumPy, the kernels) are imported on first use, so `charrnn --help`
starts fast.
"""
import os as _os
import sys as _sys


def _prefer_avx512_blas():
    """Ask SciPy's OpenBLAS for its AVX-512 kernels on AMD CPUs that have AVX-512.

    OpenBLAS (0.3.30, in SciPy's wheels) detects AMD Zen 4 as "Zen" and runs its AVX2
    (Haswell) kernels there; its AVX-512 (SkylakeX) kernels run every GEMM of ours about
    twice as fast on such CPUs (sgemm 2048^2, 1 thread: 119 -> 225 GFLOP/s measured on
    a Zen 4 EPYC). OPENBLAS_CORETYPE is read when the library loads, so this must run
    before SciPy's BLAS is imported. A core type the user chose is left alone, and
    CHARRNN_NO_AVX512_BLAS=1 turns this off.
    """
    if "OPENBLAS_CORETYPE" in _os.environ or _os.environ.get("CHARRNN_NO_AVX512_BLAS"):
        return
    if not _sys.platform.startswith("linux"):
        return
    try:
        with open("/proc/cpuinfo") as f:
            head = f.read(8192)
    except OSError:
        return
    flags = set()
    for line in head.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    needed = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
    if "AuthenticAMD" in head and needed <= flags:
        _os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"


_prefer_avx512_blas()

from charrnn.errors import (CharRNNError, CheckpointError, ConfigError, CorpusError, DivergenceError, ExportError, RunDirError, ShapeError)

from charrnn.version import __version__  # noqa: F401  (charrnn.__version__)

# The public API, imported on first use: name -> the module that defines it.
_LAZY = {"CharRNN": "charrnn.model", "load": "charrnn.model", "load_classifier": "charrnn.classifier",
         "load_transducer": "charrnn.training.seq2seq", "Transducer": "charrnn.training.seq2seq",
         "Ensemble": "charrnn.training.seq2seq_ensemble",
         "TextClassifier": "charrnn.classifier", "evaluate": "charrnn.model",
         "train": "charrnn.training.loop", "TrainConfig": "charrnn.training.options",
         "ModelConfig": "charrnn.nn.network", "runs": "charrnn.inspect.runs",
         "export_onnx": "charrnn.export", "export_c": "charrnn.export",
         "export_html": "charrnn.export", "export_web": "charrnn.export",
         "info": "charrnn.inspect.system", "longest_repeat": "charrnn.generate.loops"}
# Modules users reach from the top-level package: charrnn.cells (the checked kernel
# API) and charrnn.reference (the float64 specification).
_MODULES = {"cells": "charrnn.nn.cells", "reference": "charrnn.nn.reference"}


def __getattr__(name):
    import importlib
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")


__all__ = ["CharRNN", "load", "load_classifier", "TextClassifier", "load_transducer", "Transducer", "Ensemble", "evaluate", "train", "runs", "ModelConfig", "TrainConfig",
           "export_onnx", "export_c", "export_html", "export_web", "info", "longest_repeat",
           "cells", "reference",
           "CharRNNError", "CheckpointError", "ConfigError", "CorpusError",
           "DivergenceError", "ExportError", "RunDirError", "ShapeError"]
