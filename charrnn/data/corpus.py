"""The data layer: text file -> vocabulary + compact id array -> batches.

    corpus.txt --(decode in chunks, 2 passes)--> vocab: sorted list of distinct characters
                                                 ids:   (N,) uint8/16/32, id i <-> vocab[i]
    ids --charrnn.data.batches--> train/validation split, (T, B) windows of B streams

Memory: the file is decoded chunk_size bytes at a time, so no Python object per
character ever exists; the result is 1, 2 or 4 bytes per character, in RAM or (with
cache_dir) in a .npy file opened with np.load(mmap_mode="r").

Characters are Unicode code points, NUL included: "\\x00" is an ordinary character
(binary-ish corpora then train instead of failing). With encoding="bytes" the model is
byte-level: byte b is the character chr(b), so the vocabulary is still a list of 1-char
strings, and decode_ids() turns ids back into bytes.
"""
import codecs
import hashlib
import json
import operator
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from charrnn.data.text import BYTES, id_dtype, normalize_encoding, show_chars
from charrnn.errors import ConfigError, CorpusError, RunDirError

DEFAULT_CHUNK_SIZE = 8 << 20  # bytes read per step: big enough for NumPy, small next to RAM
CACHE_FORMAT = 1              # bump when the cache layout or the id mapping changes


# ----------------------------------------------------------------------------------------
# Finding and naming things


def bundled_corpus(name: str = "tinyshakespeare.txt") -> Path:
    """Path of a corpus shipped with charrnn (data/ installs as the package charrnn._data)."""
    try:
        from importlib.resources import files

        candidate = Path(str(files("charrnn._data") / name))
        if candidate.is_file():
            return candidate
    except (ImportError, TypeError):
        pass  # running from a source tree without install: charrnn._data does not exist
    candidate = Path(__file__).resolve().parents[2] / "data" / name
    if candidate.is_file():
        return candidate
    raise CorpusError(f"the bundled corpus {name} is missing from this installation; "
                      "reinstall charrnn or pass the path of a text file")


# ----------------------------------------------------------------------------------------
# Reading the corpus: two streaming passes over the file


@dataclass
class Corpus:
    ids: np.ndarray   # (N,) uint8/uint16/uint32, a read-only memmap when cached
    vocab: list       # sorted distinct characters (1-char strings); id i is vocab[i]
    encoding: str     # codec the file was read with, or "bytes" (byte-level model)
    path: Path        # the text file it came from
    dropped_tail: int = 0   # bytes of an incomplete final character left out (a file
                            # cut mid-character, as `head -c` leaves it)
    parts: Optional[list] = None   # several files: (name, start, end) of each in ids
                                   # (charrnn.data.several); None: one file, all of ids

    def __len__(self) -> int:
        return len(self.ids)


ERRORS = ("strict", "replace", "ignore")   # --encoding-errors: Python's codec handlers


def _code_points(path: Path, encoding: str, chunk_size: int, errors: str = "strict",
                 tail: Optional[list] = None, digest=None, training: bool = True):
    """Yield the file's characters chunk by chunk: uint32 code points (uint8 for bytes).

    A multi-byte character cut off by the end of the file is left out; the number of
    its bytes is appended to `tail` (a list) if given. digest (a hashlib object), if
    given, is updated with every byte of the file."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CorpusError(f"cannot read the corpus {path}: {e.strerror}") from None
    with f:
        if encoding == BYTES:
            while chunk := f.read(chunk_size):
                if digest is not None:
                    digest.update(chunk)
                yield np.frombuffer(chunk, np.uint8)
            return
        # The incremental decoder keeps a multi-byte sequence cut by a chunk boundary
        # until the next chunk completes it.
        decoder = codecs.getincrementaldecoder(encoding)(errors)
        head = f.read(4)
        if digest is not None:
            digest.update(head)
        skip = _sniff(path, head, encoding)   # a UTF-8 byte-order mark is no character
        carry, offset = head[skip:], skip     # offset: bytes of the file before `chunk`
        while True:
            chunk = f.read(chunk_size)
            if digest is not None:
                digest.update(chunk)
            chunk, carry = carry + chunk, b""
            final = not chunk
            if final:
                pending = _pending_bytes(decoder)
                if pending:   # the start of a character the file ends before finishing
                    if tail is not None:
                        tail.append(pending)
                    return
            try:
                text = decoder.decode(chunk, final=final)
            except UnicodeDecodeError as e:
                # e.start counts from the start of e.object, which is the bytes the decoder
                # held back from earlier chunks followed by this chunk.
                held_back = len(e.object) - len(chunk)
                raise CorpusError(_decode_message(path, encoding, offset - held_back + e.start,
                                                  e, training)) from None
            if text:
                # UTF-32 is one uint32 per character: code points without a per-char object.
                # surrogatepass: codecs like unicode_escape can produce lone surrogates.
                yield np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
            if final:
                return
            offset += len(chunk)


def _sniff(path, head: bytes, encoding: str) -> int:
    """Bytes to skip at the start of a text file (a UTF-8 byte-order mark: 3), or a
    CorpusError for a file that is not text in this encoding at all."""
    if head.startswith(b"\x1f\x8b"):
        raise CorpusError(f"{path} is gzip-compressed, not text: decompress it first "
                          f"(gunzip -k {path}), or pass --encoding bytes to train on its bytes")
    if encoding in ("utf-8", "ascii") and head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise CorpusError(f"{path} starts with a UTF-16 byte-order mark: it is UTF-16 text; "
                          "pass --encoding utf-16")
    return 3 if encoding == "utf-8" and head.startswith(codecs.BOM_UTF8) else 0


def _pending_bytes(decoder) -> int:
    """Bytes an incremental decoder holds back, waiting for the rest of a character."""
    try:
        state = decoder.getstate()
    except (AttributeError, NotImplementedError):
        return 0
    return len(state[0]) if isinstance(state, tuple) and isinstance(state[0], bytes) else 0


def check_errors(errors: str) -> str:
    if errors not in ERRORS:
        raise ConfigError(f"--encoding-errors must be one of {', '.join(ERRORS)}, not {errors!r}")
    return errors


def _decode_message(path, encoding, offset, e: UnicodeDecodeError, training=True) -> str:
    bad = e.object[e.start:e.start + 1].hex()
    if not training:   # `charrnn eval`: the model's encoding is fixed
        fix = "if the file is in another encoding pass it with --encoding"
    elif encoding == "utf-8":
        fix = ("if the file is in another encoding pass it, e.g. --encoding latin-1, "
               "or train on raw bytes with --encoding bytes")
    else:
        fix = "pass the file's actual encoding with --encoding, or use --encoding bytes"
    return (f"{path} is not valid {encoding}: byte 0x{bad} at byte offset {offset:,} "
            f"({e.reason}); {fix}, or skip such bytes with --encoding-errors replace "
            "(or ignore)")


def _stat(path: Path, training: bool = True):
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CorpusError(f"corpus file not found: {path}; check the path") from None
    except OSError as e:
        raise CorpusError(f"cannot read the corpus {path}: {e.strerror}") from None
    if path.is_dir():
        raise CorpusError(f"{path} is a directory; pass a text file inside it instead")
    if st.st_size == 0 and not training:
        raise CorpusError(f"{path} is empty (0 bytes): there is nothing to evaluate")
    if st.st_size == 0:
        raise CorpusError(f"{path} is empty (0 bytes); pass a text file with some content "
                          "(a few hundred kB or more trains well)")
    return st.st_size, st.st_mtime_ns


def _check_content(path, vocab, n, encoding):
    """Refuse texts with nothing to learn; vocab is the sorted list of characters."""
    if n == 0:  # e.g. only a byte-order mark
        raise CorpusError(f"{path} contains no characters; pass a text file with some content")
    if encoding == BYTES:
        blank = bytes(ord(c) for c in vocab).isspace()
    else:
        blank = all(c.isspace() for c in vocab)
    if blank:
        raise CorpusError(f"{path} contains only whitespace ({show_chars(vocab)}); "
                          "pass a file with actual text")
    if len(vocab) == 1:
        raise CorpusError(f"{path} contains a single distinct character, {show_chars(vocab)}, "
                          f"repeated {n:,} times: there is nothing to learn; "
                          "pass a text with varied characters")


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes (what `sha256sum` prints), read in chunks: how a
    run knows a corpus, a pairs file or a fine-tuning base again."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(DEFAULT_CHUNK_SIZE):
            h.update(chunk)
    return h.hexdigest()


def load_corpus(path, *, encoding: str = "utf-8", cache_dir=None,
                chunk_size: int = DEFAULT_CHUNK_SIZE, errors: str = "strict",
                source: Optional[str] = None, training: bool = True) -> Corpus:
    """Read a text file into a vocabulary and an id array.

    encoding: "utf-8", any Python codec name, or "bytes" for a byte-level model.
    cache_dir: if given (the run directory), the ids are written to cache_dir/corpus.npy
    (+ corpus.json) and memory-mapped; a later call with the same, unchanged file and
    encoding reuses them without reading the file again. Without it the ids live in RAM
    (1-4 bytes per character). errors: "strict" (an invalid byte is a CorpusError
    naming its offset), "replace" (U+FFFD instead) or "ignore" (left out). A character
    cut off by the end of the file is dropped in every mode (Corpus.dropped_tail).
    source: what the cache records as the text's origin instead of `path` (a copy of
    a pipe: "<stdin>"); such a cache is the only copy of the text and is reused by
    load_cache whatever `path` is. training=False (`charrnn eval`): any text is read
    (one repeated character too), and messages speak of evaluation.
    """
    path = Path(path)
    encoding = normalize_encoding(encoding)
    errors = check_errors(errors)
    chunk_size = operator.index(chunk_size)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1 byte, got {chunk_size}")
    fingerprint = _stat(path, training)

    if cache_dir is not None:
        cached = _open_cache(Path(cache_dir), path, encoding, fingerprint, errors)
        if cached is not None:
            return cached

    # Pass 1: which characters occur, and how many characters there are. A presence
    # table over all code points (1.1 MB) is O(n), unlike sorting every chunk.
    seen = np.zeros(256 if encoding == BYTES else sys.maxunicode + 1, dtype=bool)
    n, tail = 0, []
    digest = hashlib.sha256() if cache_dir is not None else None   # to know the text again
    for cps in _code_points(path, encoding, chunk_size, errors, tail, digest, training):
        seen[cps] = True
        n += len(cps)
    codes = np.flatnonzero(seen)  # sorted: the vocabulary, as code points
    vocab = [chr(c) for c in codes]
    if training:
        _check_content(path, vocab, n, encoding)

    # Pass 2: code point -> id through a lookup table (4.5 MB at most), into a compact array.
    dtype = id_dtype(len(vocab))
    to_id = np.zeros(len(seen), dtype=dtype)
    to_id[codes] = np.arange(len(codes))
    # With a cache the ids go to the file with plain writes, never through a writable
    # map: its dirty pages would count in the process's memory, all of them at once.
    if cache_dir is None:
        ids = np.empty(n, dtype=dtype)
    else:
        out, tmp = _create_cache(Path(cache_dir), n, dtype)
    pos = 0
    try:
        for cps in _code_points(path, encoding, chunk_size, errors):
            if pos + len(cps) > n:
                break  # the file grew: caught below
            if cache_dir is None:
                ids[pos:pos + len(cps)] = to_id[cps]
            else:
                _write_cache(out, to_id[cps], cache_dir)
            pos += len(cps)
    finally:
        if cache_dir is not None:
            out.close()
    if pos != n or _stat(path) != fingerprint:
        raise CorpusError(f"{path} changed while it was being read; run again once it is "
                          "complete")

    dropped = sum(tail)
    if cache_dir is None:
        return Corpus(ids, vocab, encoding, path, dropped)
    meta = {"source": source or str(path.resolve()), "streamed": source is not None,
            "sha256": digest.hexdigest()}
    return _finish_cache(Path(cache_dir), tmp, path, encoding, fingerprint, vocab, n, dtype,
                         errors, dropped, meta)


# The cache: corpus.npy holds the ids, corpus.json says which file and encoding they
# came from. corpus.json is removed before and written after corpus.npy, so a crash
# half-way leaves no cache that claims to be valid.


def cache_paths(cache_dir: Path):
    return cache_dir / "corpus.npy", cache_dir / "corpus.json"


def _open_cache(cache_dir, path, encoding, fingerprint, errors) -> Optional[Corpus]:
    npy, meta_path = cache_paths(cache_dir)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if (meta.get("format") != CACHE_FORMAT or meta.get("source") != str(path.resolve())
                or meta.get("encoding") != encoding or meta.get("errors", "strict") != errors
                or [meta.get("size"), meta.get("mtime_ns")] != list(fingerprint)):
            return None
        ids = np.load(npy, mmap_mode="r")
        if ids.shape != (meta["length"],) or ids.dtype != np.dtype(meta["dtype"]):
            return None
        return Corpus(ids, meta["vocab"], encoding, path, int(meta.get("dropped_tail", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged: rebuild it


def _create_cache(cache_dir, n, dtype):
    npy, meta_path = cache_paths(cache_dir)
    tmp = npy.with_name("corpus.npy.tmp")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        meta_path.unlink(missing_ok=True)
        out = open(tmp, "wb")
        np.lib.format.write_array_header_1_0(
            out, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                  "fortran_order": False, "shape": (n,)})
    except OSError as e:
        raise RunDirError(f"cannot write the encoded corpus into {cache_dir}: {e.strerror}; "
                          "check that the directory is writable and has free space") from None
    return out, tmp


def _write_cache(out, ids, cache_dir):
    try:
        out.write(np.ascontiguousarray(ids).data)
    except OSError as e:
        raise RunDirError(f"cannot write the encoded corpus into {cache_dir}: {e.strerror}; "
                          "check that the directory is writable and has free space") from None


def _finish_cache(cache_dir, tmp, path, encoding, fingerprint, vocab, n, dtype, errors,
                  dropped, meta) -> Corpus:
    npy, meta_path = cache_paths(cache_dir)
    meta = {**meta, "format": CACHE_FORMAT, "encoding": encoding,
            "size": fingerprint[0], "mtime_ns": fingerprint[1], "length": n,
            "dtype": np.dtype(dtype).name, "vocab": vocab, "errors": errors,
            "dropped_tail": dropped}
    try:
        os.replace(tmp, npy)
        meta_tmp = meta_path.with_name("corpus.json.tmp")
        meta_tmp.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(meta_tmp, meta_path)
    except OSError as e:
        raise RunDirError(f"cannot write the encoded corpus into {cache_dir}: {e.strerror}; "
                          "check that the directory is writable and has free space") from None
    return Corpus(np.load(npy, mmap_mode="r"), vocab, encoding, path, dropped)


