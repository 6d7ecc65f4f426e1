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

Writes are atomic (charrnn.rundir.atomic_write: temp file in the same directory, fsync,
os.replace, fsync of the directory): a process killed at any instant leaves the previous
file loadable. Loads parse and bound the header themselves before anything is
allocated, then validate everything; whatever the bytes, they return or raise
CheckpointError.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np
import safetensors
import safetensors.numpy

from .errors import CheckpointError, ConfigError
# The run directory (lock, atomic writes, stale temp files) lives in charrnn.rundir;
# these names stay importable from here.
from .rundir import (BEST_FILE, LOCK_FILE, MODEL_FILE, STATE_FILE,  # noqa: F401
                     RunLock, atomic_write, atomic_write_bytes, remove_stale_temps, _reason)

FORMAT_VERSION = 1
MODEL_FORMAT = "charrnn"
STATE_FORMAT = "charrnn-state"


MAX_HEADER_BYTES = 100 * 2**20     # a real header is a few kB; refuse to read more

_GATES = {"lstm": 4, "gru": 3, "rnn": 1}
_SIZE_KEYS = ("hidden", "layers", "embed", "vocab_size")

# safetensors dtype code -> little-endian NumPy dtype (the codes NumPy can represent)
_DTYPES = {"BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
           "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
           "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
           "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8")}
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


class _Corrupt(Exception):
    """Internal: what is wrong with the file being loaded; becomes a CheckpointError."""


# --------------------------------------------------------------------------- config

def expected_shapes(config):
    """Tensor name -> shape of a model with this config (PyTorch RNNModel naming).

    Raises ConfigError if config lacks cell/hidden/layers/embed/vocab_size or has bad
    values there (or a dropout outside [0, 1)).
    """
    _check_config(config)
    G, H, L = _GATES[config["cell"]], config["hidden"], config["layers"]
    E, V = config["embed"], config["vocab_size"]
    shapes = {"encoder.weight": (V, E)}
    for k in range(L):
        shapes[f"rnn.weight_ih_l{k}"] = (G * H, E if k == 0 else H)
        shapes[f"rnn.weight_hh_l{k}"] = (G * H, H)
        shapes[f"rnn.bias_ih_l{k}"] = (G * H,)
        shapes[f"rnn.bias_hh_l{k}"] = (G * H,)
    shapes["decoder.weight"] = (V, H)
    shapes["decoder.bias"] = (V,)
    return shapes


def _check_config(config):
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a JSON object, not {type(config).__name__}")
    missing = [k for k in ("cell",) + _SIZE_KEYS if k not in config]
    if missing:
        raise ConfigError(f"config lacks {', '.join(missing)}")
    if not isinstance(config["cell"], str) or config["cell"] not in _GATES:
        raise ConfigError(f"config cell is {_short(config['cell'])}; expected one of "
                          f"{', '.join(_GATES)}")
    for key in _SIZE_KEYS:
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"config {key} is {_short(value)}; "
                              f"expected a positive integer")
    dropout = config.get("dropout", 0.0)
    if (isinstance(dropout, bool) or not isinstance(dropout, (int, float))
            or not 0.0 <= dropout < 1.0):
        raise ConfigError(f"config dropout is {_short(dropout)}; "
                          f"expected a number in [0, 1)")


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
    _save(path, tensors, metadata)


def save_state(path, arrays, meta):
    """Write a training state atomically: named arrays (optimizer moments, carried
    hidden state...) of bool/int/uint/float dtypes, and a JSON-able dict `meta` (step,
    epoch, cursor, lr, rng state from rng_state_to_json...). Errors as save_model."""
    where = f"cannot save {path}"
    tensors = {}
    for name, a in arrays.items():
        a = np.asarray(a)
        if not isinstance(name, str) or name == "__metadata__":
            raise CheckpointError(f"{where}: bad array name {_short(name)}")
        if a.dtype.newbyteorder("<") not in _DTYPES.values():
            raise CheckpointError(f"{where}: array {name} has unsupported "
                                  f"dtype {a.dtype}")
        tensors[name] = np.asarray(a, dtype=a.dtype.newbyteorder("<"), order="C")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: meta must be a dict, "
                              f"not {type(meta).__name__}")
    metadata = {"format": STATE_FORMAT, "format_version": str(FORMAT_VERSION),
                "meta": _to_json(meta, "meta", where)}
    _save(path, tensors, metadata)


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


_CODES = {dt: code for code, dt in _DTYPES.items()}


def _save(path, tensors, metadata):
    """Write a safetensors file, streaming each array's own memory to the file.

    safetensors.numpy.save would first copy every tensor into one bytes object (twice,
    in fact): for a training state that is the parameters and both Adam moments, and it
    was the peak memory of a whole training run. The format is simple (8-byte header
    length, JSON header, the tensors' bytes back to back), so we write it ourselves;
    reading still goes through the safetensors library, which checks what we write.
    """
    metadata["sha256"] = _digest(tensors, metadata)
    # Widest dtypes first, then by name (as safetensors orders them): every tensor then
    # starts at a multiple of its item size.
    names = sorted(tensors, key=lambda n: (-tensors[n].dtype.itemsize, n))
    header, offset = {"__metadata__": metadata}, 0
    for name in names:
        a = tensors[name]
        header[name] = {"dtype": _CODES[a.dtype.newbyteorder("<")], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    try:
        head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:  # a name or value that is not valid UTF-8
        raise CheckpointError(f"cannot save {path}: {e}") from None
    head += b" " * (-len(head) % 8)                    # the data starts 8-byte aligned

    def write(f):
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for name in names:
            a = np.ascontiguousarray(tensors[name], dtype=tensors[name].dtype.newbyteorder("<"))
            if a.size:
                f.write(a.reshape(-1).view(np.uint8).data)
    atomic_write(path, write)


def _digest(tensors, metadata):
    """sha256 over the metadata (all but itself) and the tensors (name, dtype, shape,
    little-endian bytes), each field length-prefixed so fields cannot run together."""
    h = hashlib.sha256()

    def put(b):
        h.update(struct.pack("<Q", len(b)))
        h.update(b)
    for key in sorted(metadata):
        if key != "sha256":
            put(key.encode("utf-8", "surrogatepass"))
            put(metadata[key].encode("utf-8", "surrogatepass"))
    for name in sorted(tensors):
        a = tensors[name]
        put(f"{name}\0{a.dtype.newbyteorder('<').str}\0{list(a.shape)}"
            .encode("utf-8", "surrogatepass"))
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        # hash the array's own memory: a .tobytes() copy would add the largest tensor
        # (the flat optimizer moments) to the peak memory of every save
        h.update(struct.pack("<Q", a.nbytes))
        h.update(a.reshape(-1).view(np.uint8) if a.size else b"")
    return h.hexdigest()


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
    except _Corrupt as e:
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
        _check_config(config)
    except ConfigError as e:
        raise _Corrupt(f"bad config: {e}") from None
    if len(tensors) != 4 * config["layers"] + 3:   # before building a huge name list
        raise _Corrupt(f"config says {config['layers']} layers ("
                       f"{4 * config['layers'] + 3} tensors) but the file holds "
                       f"{len(tensors)} tensors")
    shapes = expected_shapes(config)
    vocab = _json_field(meta, "vocab")
    try:
        _check_vocab(vocab, config["vocab_size"])
    except ConfigError as e:
        raise _Corrupt(str(e)) from None
    info = _json_field(meta, "info") if "info" in meta else None
    if info is not None and not isinstance(info, dict):
        raise _Corrupt("info is not a JSON object")
    _check_names(set(tensors), shapes, _Corrupt)
    params = {}
    for name, shape in shapes.items():
        a, code = tensors[name]
        if a.shape != shape:
            raise _Corrupt(f"{name} has shape {list(a.shape)}; the config "
                           f"({config['cell']}, hidden {config['hidden']}, embed "
                           f"{config['embed']}, vocab {config['vocab_size']}) needs "
                           f"{list(shape)}")
        if code not in _MODEL_DTYPES:
            raise _Corrupt(f"{name} has dtype {code}; expected F32")
        if not np.isfinite(a).all():
            raise _Corrupt(f"{name} has NaN or Inf values")
        params[name] = a.astype(dtype)
    return ModelCheckpoint(params, config, vocab, info)


def _load_state(path):
    tensors, meta = _read(path, STATE_FORMAT)
    state_meta = _json_field(meta, "meta")
    if not isinstance(state_meta, dict):
        raise _Corrupt("meta is not a JSON object")
    arrays = {}
    for name, (a, _) in tensors.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise _Corrupt(f"array {name} has NaN or Inf values")
        arrays[name] = a.copy()
    return TrainingState(arrays, state_meta)


def _check_names(names, shapes, error):
    missing = [n for n in shapes if n not in names]
    extra = sorted(map(str, names - set(shapes)))
    for what, found in (("missing", missing), ("unexpected", extra)):
        if found:
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            raise error(f"{what} tensors {', '.join(map(_short, found[:5]))}{more}")


def _json_field(meta, key):
    if key not in meta:
        raise _Corrupt(f"metadata lacks {key!r}")
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError):
        raise _Corrupt(f"metadata {key!r} is not valid JSON") from None


def _read(path, fmt):
    """Open, bound, parse and verify a safetensors file written by charrnn in format
    `fmt` -> ({name: (little-endian array, dtype code)}, metadata)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _Corrupt("no such file") from None
    except OSError as e:
        raise _Corrupt(_reason(e)) from None
    if stat.S_ISDIR(st.st_mode):
        raise _Corrupt("is a directory, not a checkpoint file (pass the .safetensors "
                       "file inside, or a run directory where one is accepted)")
    if not stat.S_ISREG(st.st_mode):
        raise _Corrupt("not a regular file")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            header, header_len = _read_header(f, size)
            entries, meta = _check_layout(header, size - 8 - header_len)
            _check_format(meta, fmt)
            unknown = sorted(set(meta) - _META_KEYS[fmt])
            if unknown:
                raise _Corrupt(f"unexpected metadata {', '.join(map(_short, unknown))}")
            f.seek(0)
            blob = f.read(size + 1)
    except OSError as e:
        raise _Corrupt(f"read error: {_reason(e)}") from None
    if len(blob) != size:
        raise _Corrupt("the file changed while it was read")
    try:
        decoded = safetensors.numpy.load(blob)
    except safetensors.SafetensorError as e:
        raise _Corrupt(f"not a valid safetensors file ({e})") from None
    del blob
    tensors = {}
    for name, (code, shape) in entries.items():
        a = decoded.get(name)
        if a is None or a.shape != shape or a.dtype.newbyteorder("<") != _DTYPES[code]:
            # cannot happen after _check_layout; kept so a mismatch is never silent
            raise _Corrupt(f"safetensors read tensor {_short(name)} differently")
        tensors[name] = (a, code)
    if "sha256" in meta and meta["sha256"] != _digest(
            {name: a for name, (a, _) in tensors.items()}, meta):
        raise _Corrupt("checksum mismatch: the file is corrupt")
    return tensors, meta


def _read_header(f, size):
    """The 8-byte little-endian header length, then the JSON header, both checked
    against the real file size before anything is allocated."""
    if size < 8:
        raise _Corrupt(f"only {size} bytes long: truncated, or not a safetensors file")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > min(MAX_HEADER_BYTES, size - 8):
        raise _Corrupt(f"header length field says {n} bytes but the file has {size}: "
                       f"truncated, or not a safetensors file")
    raw = f.read(n)
    if len(raw) != n:
        raise _Corrupt("the file changed while it was read")
    if not raw.startswith(b"{"):
        raise _Corrupt("not a safetensors file (no JSON header)")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError:
        raise _Corrupt("header is not UTF-8: corrupt, or not a safetensors "
                       "file") from None
    except (ValueError, RecursionError) as e:
        raise _Corrupt(f"header is not valid JSON ({e}): "
                       f"truncated or corrupt") from None
    if not isinstance(header, dict):
        raise _Corrupt("header is not a JSON object")
    return header, n


def _unique_keys(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError("repeated key in header")
    return d


def _check_layout(header, data_len):
    """Check every tensor's dtype, shape and byte range against the `data_len` bytes
    that follow the header: ranges must tile the data exactly, as safetensors
    requires, so a header cannot claim more bytes (a terabyte tensor) than exist.
    Returns ({name: (dtype code, shape)}, metadata)."""
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _Corrupt("header __metadata__ is not a map of strings")
    entries, spans = {}, []
    for name, e in header.items():
        if name == "__metadata__":
            continue
        label = f"tensor {_short(name)}"
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise _Corrupt(f"bad header entry for {label}")
        code, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
        if not isinstance(code, str) or code not in _DTYPES:
            raise _Corrupt(f"{label} has unsupported dtype {_short(code)}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise _Corrupt(f"{label} has a bad shape {_short(shape)}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(_is_count(o) for o in offsets) or offsets[0] > offsets[1]):
            raise _Corrupt(f"{label} has bad data offsets")
        begin, end = offsets
        if end > data_len:
            raise _Corrupt(f"{label} ends {end - data_len} bytes past the end "
                           f"of the file: truncated, or a corrupt header")
        nbytes = _nbytes(_DTYPES[code].itemsize, shape, data_len)
        if nbytes > data_len:
            raise _Corrupt(f"{label} is {code}{_short(shape)}: more bytes than "
                           f"the file holds (truncated, or a corrupt header)")
        if end - begin != nbytes:
            raise _Corrupt(f"{label} is {code}{_short(shape)} ({nbytes} bytes) but "
                           f"occupies {end - begin} bytes")
        entries[name] = (code, tuple(shape))
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise _Corrupt("tensor data overlaps or leaves gaps: corrupt header")
        position = end
    if position != data_len:
        raise _Corrupt(f"{data_len - position} stray bytes after the tensor data")
    return entries, meta


def _short(x):
    """repr(x) cut to one short line, for names and values read from a bad file."""
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _nbytes(itemsize, shape, limit):
    """itemsize * prod(shape), or limit + 1 as soon as the product exceeds limit (a
    header can list a million huge dimensions; never multiply them all out)."""
    if 0 in shape:
        return 0
    n = itemsize
    for d in shape:
        n *= d
        if n > limit:
            return limit + 1
    return n


def _is_count(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _check_format(meta, fmt):
    found = meta.get("format")
    if found != fmt:
        if found == STATE_FORMAT:
            raise _Corrupt("this is a charrnn training state, not a model checkpoint "
                           f"(load {MODEL_FILE} or {BEST_FILE})")
        if found == MODEL_FORMAT:
            raise _Corrupt("this is a charrnn model checkpoint, not a training state "
                           f"(load {STATE_FILE})")
        if found is None:
            raise _Corrupt("not a charrnn file: a safetensors file without charrnn "
                           "metadata (written by another program?)")
        raise _Corrupt(f"not a charrnn file (format {_short(found)})")
    version = meta.get("format_version")
    if version is None:
        raise _Corrupt("metadata lacks format_version")
    if not isinstance(version, str) or not re.fullmatch(r"[0-9]{1,9}", version):
        raise _Corrupt(f"bad format_version {_short(version)}")
    if int(version) != FORMAT_VERSION:
        age = "newer" if int(version) > FORMAT_VERSION else "older"
        hint = ": upgrade charrnn" if age == "newer" else ""
        raise _Corrupt(f"written by a {age} charrnn (format version {int(version)}); "
                       f"this charrnn reads format version {FORMAT_VERSION}{hint}")


def find_checkpoint(path, best=False):
    """The model file to load for `path`: a .safetensors file itself, or in a run
    directory its model.safetensors (best.safetensors if best). -> Path."""
    p = Path(path)
    if p.is_dir():
        name = BEST_FILE if best else MODEL_FILE
        if (p / name).is_file():
            return p / name
        if best and (p / MODEL_FILE).is_file():
            raise CheckpointError(f"no {BEST_FILE} in {p}: it is written after the "
                                  f"first validation; use {MODEL_FILE} instead (--latest)")
        raise CheckpointError(f"no checkpoint in {p}: run `charrnn train` first")
    if p.is_file():
        if p.suffix != ".safetensors":
            raise CheckpointError(f"{p} is not a .safetensors checkpoint: pass a run "
                                  f"directory or a .safetensors file")
        return p
    raise CheckpointError(f"no such checkpoint or run directory: {p}")


# --------------------------------------------------------------------------- RNG

_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def rng_state_to_json(rng):
    """The state of a np.random.Generator (or bit generator) as a JSON string."""
    bit_generator = getattr(rng, "bit_generator", rng)
    return json.dumps(bit_generator.state, default=_json_default)


def rng_from_json(text):
    """A np.random.Generator continuing from a state saved by rng_state_to_json (the
    JSON string, or the dict it encodes). Raises CheckpointError if it is unusable."""
    try:
        state = json.loads(text) if isinstance(text, (str, bytes)) else text
        name = state["bit_generator"]
        if name not in _BIT_GENERATORS:
            raise ValueError(f"unknown bit generator {_short(name)}")
        bit_generator = getattr(np.random, name)()
        bit_generator.state = state
        return np.random.Generator(bit_generator)
    except Exception as e:
        raise CheckpointError(f"bad random-generator state in training state: "
                              f"{type(e).__name__}: {e}") from None


