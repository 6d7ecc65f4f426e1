"""Checkpoints: a model is one safetensors file that PyTorch can load unchanged.

Tensor names and shapes are those of PyTorch's word_language_model `RNNModel`
(nn.Embedding -> nn.LSTM/GRU/RNN(num_layers=L) -> nn.Linear), so
`model.load_state_dict(safetensors.torch.load_file(path), strict=True)` works:

    encoder.weight       (V, E)
    rnn.weight_ih_l{k}   (G*H, E if k == 0 else H)       for each layer k < L
    rnn.weight_hh_l{k}   (G*H, H)
    rnn.bias_ih_l{k}     (G*H,)
    rnn.bias_hh_l{k}     (G*H,)
    decoder.weight       (V, H)
    decoder.bias         (V,)

V vocabulary size, E embedding size, H hidden size, L layers, G gates (lstm 4, gru 3,
rnn 1). Tensors are float32. The safetensors `__metadata__` (str -> str) holds:

    format          "charrnn" (a model) or "charrnn-state" (a training state)
    format_version  "1"
    config          JSON object: cell, hidden, layers, embed, vocab_size, ...
    vocab           JSON list of the V one-character strings (model files)
    info            JSON object, optional: step, val_loss, ... (model files)
    meta            JSON object: step, epoch, cursor, lr, seed, ... (state files)
    sha256          checksum of all other metadata and all tensors; optional on load

A training state (optimizer moments, carried hidden state, cursor...) is a safetensors
file too: nothing here uses pickle, so loading a file can never run code.

Writes are atomic (charrnn.io.files.atomic_write: temp file in the same directory, fsync,
os.replace, fsync of the directory): a process killed at any instant leaves the previous
file loadable. Loads parse and bound the header themselves before anything is
allocated, then validate everything; whatever the bytes, they return or raise
CheckpointError.
"""
from __future__ import annotations

import json
import re
from typing import NamedTuple

import numpy as np

from charrnn.errors import CheckpointError, ConfigError, short
from charrnn.io import safetensors_file as stfile
from charrnn.io.rundir import BEST_FILE, MODEL_FILE, STATE_FILE
from charrnn.io.safetensors_file import Corrupt
from charrnn.nn.shapes import check_config, expected_shapes

FORMAT_VERSION = 1
MODEL_FORMAT = "charrnn"
STATE_FORMAT = "charrnn-state"


_MODEL_DTYPES = ("F32", "F64")
# Metadata keys each format may hold. Unknown keys are refused so that a damaged
# "sha256" key cannot switch the checksum off.
_META_KEYS = {MODEL_FORMAT: {"format", "format_version", "config", "vocab", "info",
                             "sha256"},
              STATE_FORMAT: {"format", "format_version", "meta", "sha256"}}


class ModelCheckpoint(NamedTuple):
    params: dict    # name -> np.ndarray, in expected_shapes() order
    config: dict
    vocab: list     # V one-character strings; index i is token i
    info: dict | None


class TrainingState(NamedTuple):
    arrays: dict    # name -> np.ndarray (writable copies)
    meta: dict


# --------------------------------------------------------------------------- vocab

def _check_vocab(vocab, vocab_size):
    if not isinstance(vocab, list) or not all(isinstance(c, str) and len(c) == 1
                                              for c in vocab):
        raise ConfigError("vocab must be a list of one-character strings")
    if len(set(vocab)) != len(vocab):
        raise ConfigError("vocab has repeated characters")
    if len(vocab) != vocab_size:
        raise ConfigError(f"vocab has {len(vocab)} characters but config vocab_size "
                          f"is {vocab_size}")


# --------------------------------------------------------------------------- saving

def save_model(path, params, config, vocab, info=None, dtype=np.float32):
    """Write a model checkpoint atomically.

    params: name -> array for exactly the names of expected_shapes(config), float32 or
    float64 (stored as `dtype`, float32 unless told float64). vocab: the V characters.
    info: optional JSON-able dict (step, val_loss...). Raises CheckpointError for bad
    arguments (nothing is written) and RunDirError if the file cannot be written (the
    previous file is then unchanged).
    """
    where = f"cannot save {path}"
    vocab = list(vocab) if isinstance(vocab, (list, tuple, str)) else vocab
    try:
        shapes = expected_shapes(config)
        _check_vocab(vocab, config["vocab_size"])
    except ConfigError as e:
        raise CheckpointError(f"{where}: {e}") from None
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise CheckpointError(f"{where}: dtype must be float32 or float64, not {dtype}")
    _check_names(set(params), shapes, lambda msg: CheckpointError(f"{where}: {msg}"))
    tensors = {}
    for name, shape in shapes.items():
        a = np.asarray(params[name])
        if a.shape != shape or a.dtype.kind != "f":
            raise CheckpointError(f"{where}: {name} is {a.dtype}{list(a.shape)}; "
                                  f"expected float{list(shape)}")
        with np.errstate(over="ignore"):   # a float64 too big for float32: Inf, below
            a = np.asarray(a, dtype=dtype.newbyteorder("<"), order="C")
        if not np.isfinite(a).all():
            raise CheckpointError(f"{where}: {name} has NaN or Inf values "
                                  f"(did training diverge?)")
        tensors[name] = a
    if info is not None and not isinstance(info, dict):
        raise CheckpointError(f"{where}: info must be a dict, "
                              f"not {type(info).__name__}")
    metadata = {"format": MODEL_FORMAT, "format_version": str(FORMAT_VERSION),
                "config": _to_json(config, "config", where),
                "vocab": _to_json(vocab, "vocab", where)}
    if info is not None:
        metadata["info"] = _to_json(info, "info", where)
    stfile.write(path, tensors, metadata)


def save_state(path, arrays, meta):
    """Write a training state atomically: named arrays (optimizer moments, carried
    hidden state...) of bool/int/uint/float dtypes, and a JSON-able dict `meta` (step,
    epoch, cursor, lr, rng state). Errors as save_model."""
    where = f"cannot save {path}"
    tensors = {}
    for name, a in arrays.items():
        a = np.asarray(a)
        if not isinstance(name, str) or name == "__metadata__":
            raise CheckpointError(f"{where}: bad array name {short(name)}")
        if a.dtype.newbyteorder("<") not in stfile.DTYPES.values():
            raise CheckpointError(f"{where}: array {name} has unsupported "
                                  f"dtype {a.dtype}")
        tensors[name] = np.asarray(a, dtype=a.dtype.newbyteorder("<"), order="C")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: meta must be a dict, "
                              f"not {type(meta).__name__}")
    metadata = {"format": STATE_FORMAT, "format_version": str(FORMAT_VERSION),
                "meta": _to_json(meta, "meta", where)}
    stfile.write(path, tensors, metadata)


def _json_default(o):
    """json.dumps hook: NumPy scalars and arrays (a np.float32 loss, an RNG key)."""
    if isinstance(o, (np.generic, np.ndarray)):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def _to_json(obj, what, where):
    try:
        return json.dumps(obj, default=_json_default)
    except (TypeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{where}: {what} cannot be written as JSON: "
                              f"{e}") from None


# --------------------------------------------------------------------------- loading

def load_model(path, dtype=np.float32):
    """Read and validate a model checkpoint -> ModelCheckpoint(params, config, vocab,
    info), a tuple. params are `dtype` arrays in expected_shapes() order. Raises
    CheckpointError (saying what is wrong with which file) and nothing else."""
    return _guarded(path, lambda: _load_model(path, np.dtype(dtype)))


def load_state(path):
    """Read and validate a training state -> TrainingState(arrays, meta), a tuple.
    Raises CheckpointError and nothing else."""
    return _guarded(path, lambda: _load_state(path))


def _guarded(path, load):
    try:
        return load()
    except Corrupt as e:
        raise CheckpointError(f"cannot load {path}: {e}") from None
    except CheckpointError:
        raise
    except MemoryError:
        raise CheckpointError(f"cannot load {path}: out of memory") from None
    except Exception as e:  # last line of defence: no file content may escape otherwise
        raise CheckpointError(f"cannot load {path}: unreadable "
                              f"({type(e).__name__}: {e})") from e


def _load_model(path, dtype):
    tensors, meta = _read(path, MODEL_FORMAT)
    config = _json_field(meta, "config")
    try:
        check_config(config)
    except ConfigError as e:
        raise Corrupt(f"bad config: {e}") from None
    if len(tensors) != 4 * config["layers"] + 3:   # before building a huge name list
        raise Corrupt(f"config says {config['layers']} layers ("
                       f"{4 * config['layers'] + 3} tensors) but the file holds "
                       f"{len(tensors)} tensors")
    shapes = expected_shapes(config)
    vocab = _json_field(meta, "vocab")
    try:
        _check_vocab(vocab, config["vocab_size"])
    except ConfigError as e:
        raise Corrupt(str(e)) from None
    info = _json_field(meta, "info") if "info" in meta else None
    if info is not None and not isinstance(info, dict):
        raise Corrupt("info is not a JSON object")
    _check_names(set(tensors), shapes, Corrupt)
    params = {}
    for name, shape in shapes.items():
        a, code = tensors[name]
        if a.shape != shape:
            raise Corrupt(f"{name} has shape {list(a.shape)}; the config "
                           f"({config['cell']}, hidden {config['hidden']}, embed "
                           f"{config['embed']}, vocab {config['vocab_size']}) needs "
                           f"{list(shape)}")
        if code not in _MODEL_DTYPES:
            raise Corrupt(f"{name} has dtype {code}; expected F32")
        if not np.isfinite(a).all():
            raise Corrupt(f"{name} has NaN or Inf values")
        params[name] = a.astype(dtype)
    return ModelCheckpoint(params, config, vocab, info)


def _load_state(path):
    tensors, meta = _read(path, STATE_FORMAT)
    state_meta = _json_field(meta, "meta")
    if not isinstance(state_meta, dict):
        raise Corrupt("meta is not a JSON object")
    arrays = {}
    for name, (a, _) in tensors.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise Corrupt(f"array {name} has NaN or Inf values")
        arrays[name] = a.copy()
    return TrainingState(arrays, state_meta)


def _check_names(names, shapes, error):
    missing = [n for n in shapes if n not in names]
    extra = sorted(map(str, names - set(shapes)))
    for what, found in (("missing", missing), ("unexpected", extra)):
        if found:
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            raise error(f"{what} tensors {', '.join(map(short, found[:5]))}{more}")


def _json_field(meta, key):
    if key not in meta:
        raise Corrupt(f"metadata lacks {key!r}")
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError):
        raise Corrupt(f"metadata {key!r} is not valid JSON") from None


def _read(path, fmt):
    """A safetensors file that must be charrnn's format `fmt` (stfile.read)."""
    def check_meta(meta):
        _check_format(meta, fmt)
        unknown = sorted(set(meta) - _META_KEYS[fmt])
        if unknown:
            raise Corrupt(f"unexpected metadata {', '.join(map(short, unknown))}")
    return stfile.read(path, check_meta)


def _check_format(meta, fmt):
    found = meta.get("format")
    if found != fmt:
        if found == STATE_FORMAT:
            raise Corrupt("this is a charrnn training state, not a model checkpoint "
                           f"(load {MODEL_FILE} or {BEST_FILE})")
        if found == MODEL_FORMAT:
            raise Corrupt("this is a charrnn model checkpoint, not a training state "
                           f"(load {STATE_FILE})")
        if found == "charrnn-classifier":
            raise Corrupt("this is a classifier (trained with --task classify), not a "
                          "language model: use charrnn classify / charrnn eval (in Python: "
                          "charrnn.load_classifier)")
        if found == "charrnn-seq2seq":
            raise Corrupt("this is a transducer (trained with --task seq2seq), not a "
                          "language model: use charrnn transduce / charrnn eval (in Python: "
                          "charrnn.load_transducer)")
        if found is None:
            raise Corrupt("not a charrnn file: a safetensors file without charrnn "
                           "metadata (written by another program?)")
        raise Corrupt(f"not a charrnn file (format {short(found)})")
    version = meta.get("format_version")
    if version is None:
        raise Corrupt("metadata lacks format_version")
    if not isinstance(version, str) or not re.fullmatch(r"[0-9]{1,9}", version):
        raise Corrupt(f"bad format_version {short(version)}")
    if int(version) != FORMAT_VERSION:
        age = "newer" if int(version) > FORMAT_VERSION else "older"
        hint = ": upgrade charrnn" if age == "newer" else ""
        raise Corrupt(f"written by a {age} charrnn (format version {int(version)}); "
                       f"this charrnn reads format version {FORMAT_VERSION}{hint}")
