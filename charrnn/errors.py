"""One base exception with clear subclasses; the CLI turns any of them into a one-line
message and a non-zero exit. Messages say what was wrong and what to do."""


class CharRNNError(Exception):
    """Base class of every error charrnn raises on purpose."""


class ShapeError(CharRNNError, ValueError):
    """An array passed to a kernel has the wrong shape, dtype or memory layout."""


class CorpusError(CharRNNError):
    """The training text cannot be used (missing, empty, undecodable, too short...)."""


class CheckpointError(CharRNNError):
    """A checkpoint or training-state file is missing, corrupt or incompatible."""


class RunDirError(CharRNNError):
    """The run directory cannot be used (not writable, locked, already holds a run)."""


class DivergenceError(CharRNNError):
    """Training produced a NaN/Inf loss or gradient."""


class ConfigError(CharRNNError, ValueError):
    """An option value is out of range."""


class ExportError(CharRNNError):
    """A model cannot be exported (an optional dependency missing, too large a model)."""


def plural(n, word):
    """'1 step', '2 steps', '1,000 steps': a count and its noun, for messages."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def short(x):
    """repr(x) cut to one short line, for names and values read from a bad file."""
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."
