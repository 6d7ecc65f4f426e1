"""The safetensors file format, written and read by charrnn itself.

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor name
-> dtype, shape, byte range; "__metadata__" -> str map) and the tensors' bytes back to
back. charrnn.io.checkpoint builds its model and training-state files on this module:

- write: streams each array's own memory to the file (atomically, through
  charrnn.io.rundir), with a sha256 over metadata and tensors in the metadata;
- read: bounds and parses the header itself before anything is allocated, checks every
  byte range against the real file size, decodes through the safetensors library and
  verifies the checksum. Whatever the bytes, it returns or raises Corrupt.
"""
import hashlib
import json
import os
import stat
import struct

import numpy as np
import safetensors
import safetensors.numpy

from charrnn.errors import CheckpointError, short
from charrnn.io.files import atomic_write, reason

MAX_HEADER_BYTES = 100 * 2**20     # a real header is a few kB; refuse to read more

# safetensors dtype code -> little-endian NumPy dtype (the codes NumPy can represent)
DTYPES = {"BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
           "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
           "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
           "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8")}
CODES = {dt: code for code, dt in DTYPES.items()}


class Corrupt(Exception):
    """What is wrong with the file being read (charrnn.io.checkpoint makes it a CheckpointError)."""


def write(path, tensors, metadata):
    """Write a safetensors file, streaming each array's own memory to the file.

    safetensors.numpy.save would first copy every tensor into one bytes object (twice,
    in fact): for a training state that is the parameters and both Adam moments, and it
    was the peak memory of a whole training run. The format is simple (8-byte header
    length, JSON header, the tensors' bytes back to back), so we write it ourselves;
    reading still goes through the safetensors library, which checks what we write.
    """
    metadata["sha256"] = digest(tensors, metadata)
    # Widest dtypes first, then by name (as safetensors orders them): every tensor then
    # starts at a multiple of its item size.
    names = sorted(tensors, key=lambda n: (-tensors[n].dtype.itemsize, n))
    header, offset = {"__metadata__": metadata}, 0
    for name in names:
        a = tensors[name]
        header[name] = {"dtype": CODES[a.dtype.newbyteorder("<")], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    try:
        head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:  # a name or value that is not valid UTF-8
        raise CheckpointError(f"cannot save {path}: {e}") from None
    head += b" " * (-len(head) % 8)                    # the data starts 8-byte aligned

    def put(f):
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for name in names:
            a = np.ascontiguousarray(tensors[name], dtype=tensors[name].dtype.newbyteorder("<"))
            if a.size:
                f.write(a.reshape(-1).view(np.uint8).data)
    atomic_write(path, put)


def digest(tensors, metadata):
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


def check_format(meta, fmt, version, name):
    """Corrupt unless the metadata says format `fmt` at `version` (name: what the file
    holds, "seq2seq" or "joint", for the messages)."""
    if meta.get("format") != fmt:
        raise Corrupt(f"not a charrnn {name} model (format {meta.get('format')!r})")
    if meta.get("version") != version:
        raise Corrupt(f"{name} file version {meta.get('version')!r}; this charrnn reads "
                      f"version {version}: upgrade charrnn")


def read(path, check_meta):
    """Open, bound, parse and verify a safetensors file -> ({name: (little-endian array,
    dtype code)}, metadata). check_meta(metadata) runs once the header is known good,
    before the tensors are read, and raises Corrupt to refuse the file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise Corrupt("no such file") from None
    except OSError as e:
        raise Corrupt(reason(e)) from None
    if stat.S_ISDIR(st.st_mode):
        raise Corrupt("is a directory, not a checkpoint file (pass the .safetensors "
                       "file inside, or a run directory where one is accepted)")
    if not stat.S_ISREG(st.st_mode):
        raise Corrupt("not a regular file")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            header, header_len = read_header(f, size)
            entries, meta = _check_layout(header, size - 8 - header_len)
            check_meta(meta)
            f.seek(0)
            blob = f.read(size + 1)
    except OSError as e:
        raise Corrupt(f"read error: {reason(e)}") from None
    if len(blob) != size:
        raise Corrupt("the file changed while it was read")
    try:
        decoded = safetensors.numpy.load(blob)
    except safetensors.SafetensorError as e:
        raise Corrupt(f"not a valid safetensors file ({e})") from None
    del blob
    tensors = {}
    for name, (code, shape) in entries.items():
        a = decoded.get(name)
        if a is None or a.shape != shape or a.dtype.newbyteorder("<") != DTYPES[code]:
            # cannot happen after _check_layout; kept so a mismatch is never silent
            raise Corrupt(f"safetensors read tensor {short(name)} differently")
        tensors[name] = (a, code)
    if "sha256" in meta and meta["sha256"] != digest(
            {name: a for name, (a, _) in tensors.items()}, meta):
        raise Corrupt("checksum mismatch: the file is corrupt")
    return tensors, meta


def read_header(f, size):
    """The 8-byte little-endian header length, then the JSON header, both checked
    against the real file size before anything is allocated."""
    if size < 8:
        raise Corrupt(f"only {size} bytes long: truncated, or not a safetensors file")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > min(MAX_HEADER_BYTES, size - 8):
        raise Corrupt(f"header length field says {n} bytes but the file has {size}: "
                       f"truncated, or not a safetensors file")
    raw = f.read(n)
    if len(raw) != n:
        raise Corrupt("the file changed while it was read")
    if not raw.startswith(b"{"):
        raise Corrupt("not a safetensors file (no JSON header)")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError:
        raise Corrupt("header is not UTF-8: corrupt, or not a safetensors "
                       "file") from None
    except (ValueError, RecursionError) as e:
        raise Corrupt(f"header is not valid JSON ({e}): "
                       f"truncated or corrupt") from None
    if not isinstance(header, dict):
        raise Corrupt("header is not a JSON object")
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
        raise Corrupt("header __metadata__ is not a map of strings")
    entries, spans = {}, []
    for name, e in header.items():
        if name == "__metadata__":
            continue
        label = f"tensor {short(name)}"
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise Corrupt(f"bad header entry for {label}")
        code, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
        if not isinstance(code, str) or code not in DTYPES:
            raise Corrupt(f"{label} has unsupported dtype {short(code)}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise Corrupt(f"{label} has a bad shape {short(shape)}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(_is_count(o) for o in offsets) or offsets[0] > offsets[1]):
            raise Corrupt(f"{label} has bad data offsets")
        begin, end = offsets
        if end > data_len:
            raise Corrupt(f"{label} ends {end - data_len} bytes past the end "
                           f"of the file: truncated, or a corrupt header")
        nbytes = _nbytes(DTYPES[code].itemsize, shape, data_len)
        if nbytes > data_len:
            raise Corrupt(f"{label} is {code}{short(shape)}: more bytes than "
                           f"the file holds (truncated, or a corrupt header)")
        if end - begin != nbytes:
            raise Corrupt(f"{label} is {code}{short(shape)} ({nbytes} bytes) but "
                           f"occupies {end - begin} bytes")
        entries[name] = (code, tuple(shape))
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise Corrupt("tensor data overlaps or leaves gaps: corrupt header")
        position = end
    if position != data_len:
        raise Corrupt(f"{data_len - position} stray bytes after the tensor data")
    return entries, meta


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
