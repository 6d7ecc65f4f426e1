"""charrnn: character-level RNN text generation on Cython/BLAS kernels."""
from .errors import (CharRNNError, CheckpointError, ConfigError, CorpusError,
                     DivergenceError, RunDirError, ShapeError)

__version__ = "0.1.0"
