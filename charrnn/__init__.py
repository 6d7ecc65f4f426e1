"""charrnn: character-level RNN text generation on Cython/BLAS kernels.

    import charrnn
    charrnn.train("corpus.txt", max_minutes=5)        # what `charrnn train` runs
    model = charrnn.load("charrnn-runs/corpus-...")    # run directory or .safetensors
    print(model.generate(prime="ROMEO:", length=300, temperature=0.8))

Heavy modules (NumPy, the kernels) are imported on first use, so `charrnn --help`
starts fast.
"""
from .errors import (CharRNNError, CheckpointError, ConfigError, CorpusError,
                     DivergenceError, RunDirError, ShapeError)

__version__ = "0.1.0"

_LAZY = {"CharRNN": "model", "load": "model", "evaluate": "model", "train": "training",
         "ModelConfig": "model", "TrainConfig": "training"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")


__all__ = ["CharRNN", "load", "evaluate", "train", "ModelConfig", "TrainConfig",
           "CharRNNError", "CheckpointError", "ConfigError", "CorpusError",
           "DivergenceError", "RunDirError", "ShapeError"]
