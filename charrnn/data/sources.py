"""Where a run's text comes from: a file, a pipe (`charrnn train -`, /dev/stdin, a FIFO),
or, on resume, the encoded corpus the run directory already holds.

    resolve(corpus)                  one file or pipe (a str), or several files (a
                                     charrnn.data.several.FileSet): folders, patterns, lists
    is_stream(path)                  "-", /dev/stdin, a FIFO, a character device
    display_name(path)               what a run records as its corpus ("<stdin>" for "-")
    load_run_corpus(path, ...)       the Corpus a run trains on (see there)
    same_text(path, run_dir)         whether a file holds the text a run was encoded from
    cache_meta(run_dir), load_cache(run_dir, encoding)   the encoded corpus a run holds

A pipe can be read once only, so its bytes are copied into the run directory
(corpus.stdin.tmp, removed once encoded) and the encoded corpus (corpus.npy and
corpus.json, which says "streamed") is from then on the run's only copy of its text:
a resumed run reads it, as it does when its text file was moved or deleted.
"""
import json
import os
import stat
from pathlib import Path
from typing import Optional

import numpy as np

from charrnn.data import corpus as data
from charrnn.data import several
from charrnn.data.text import normalize_encoding
from charrnn.errors import CorpusError, RunDirError

STDIN = "-"
STDIN_NAME = "<stdin>"
SPOOL_FILE = "corpus.stdin.tmp"
_CHUNK = 1 << 20


def is_stream(path) -> bool:
    """True for text that can be read only once: "-" (stdin), /dev/stdin, a FIFO."""
    if path is None:
        return False
    if str(path) == STDIN:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def resolve(corpus):
    """What a run reads: None (the bundled corpus), a str (one file or a pipe, read as
    always), or a FileSet (a folder, a pattern, or several paths; see
    charrnn.data.several). A list of one path is that path."""
    if corpus is None or isinstance(corpus, several.FileSet):
        return corpus
    if not isinstance(corpus, (str, os.PathLike)):
        corpus = list(corpus)
        if len(corpus) != 1:
            return several.expand(corpus)
        corpus = corpus[0]
    corpus = os.fspath(corpus)
    if corpus != STDIN and (Path(corpus).is_dir() or several.is_pattern(corpus)):
        return several.expand(corpus)
    return corpus


def display_name(path) -> str:
    if isinstance(path, several.FileSet):
        return path.label
    if str(path) in (STDIN, "/dev/stdin"):
        return STDIN_NAME
    return str(Path(path).resolve()) if not is_stream(path) else str(path)


def _spool(path, dest: Path):
    """Copy a pipe's bytes into dest (bounded memory: 1 MiB at a time)."""
    try:
        src = os.fdopen(os.dup(0), "rb") if str(path) == STDIN else open(path, "rb")
    except OSError as e:
        raise CorpusError(f"cannot read the corpus {path}: {e.strerror}") from None
    try:
        with src, open(dest, "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
    except OSError as e:
        dest.unlink(missing_ok=True)
        raise RunDirError(f"cannot copy the piped text into {dest.parent}: {e.strerror}; "
                          "check that the directory is writable and has free space") from None


def load_run_corpus(path, *, encoding, errors, cache_dir, resumed=False, log=None):
    """The Corpus a run trains on.

    - text the run directory already holds from a pipe: that encoded corpus
    - a pipe (new run): copied into the run directory, encoded, the copy removed
    - on resume, a text file that is gone: the run's encoded corpus (log says so)
    - otherwise: the file, through the run's cache (charrnn.data.corpus.load_corpus)
    """
    meta = cache_meta(cache_dir) if cache_dir is not None else None
    if isinstance(path, several.FileSet):
        gone = [p for p in path.files if not Path(p).exists()]
        if resumed and meta is not None and gone:
            corpus = load_cache(cache_dir, encoding, errors)
            if log is not None:
                log(f"charrnn: note: {gone[0]} is gone; resuming from the run's encoded "
                    f"corpus ({Path(cache_dir) / 'corpus.npy'})")
            return corpus
        return several.load_files(path, encoding=encoding, cache_dir=cache_dir, errors=errors)
    name = display_name(path)
    if meta is not None and meta.get("streamed") and (resumed or meta.get("source") == name):
        return load_cache(cache_dir, encoding, errors)
    if is_stream(path):
        if cache_dir is None:
            raise CorpusError(f"{name} is a pipe: it can be read only into a run directory")
        tmp = Path(cache_dir) / SPOOL_FILE
        _spool(path, tmp)
        try:
            return data.load_corpus(tmp, encoding=encoding, cache_dir=cache_dir,
                                    errors=errors, source=name)
        finally:
            tmp.unlink(missing_ok=True)
    if resumed and meta is not None and not Path(path).exists():
        corpus = load_cache(cache_dir, encoding, errors)
        if log is not None:
            log(f"charrnn: note: {path} is gone; resuming from the run's encoded corpus "
                f"({Path(cache_dir) / 'corpus.npy'})")
        return corpus
    return data.load_corpus(path, encoding=encoding, cache_dir=cache_dir, errors=errors)


def cache_meta(cache_dir) -> Optional[dict]:
    """The run's corpus.json (what its encoded corpus came from), or None."""
    try:
        meta = json.loads(data.cache_paths(Path(cache_dir))[1].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == data.CACHE_FORMAT else None


def load_cache(cache_dir, encoding: str, errors: str = "strict") -> data.Corpus:
    """The encoded corpus a run directory holds, without its text file (moved, deleted,
    or a pipe read once). CorpusError if there is none for this encoding."""
    meta = cache_meta(cache_dir)
    encoding = normalize_encoding(encoding)
    source = (meta or {}).get("source", "the text")
    if meta is None or meta.get("encoding") != encoding or meta.get("errors", "strict") != errors:
        raise CorpusError(f"{cache_dir} holds no usable encoded corpus (corpus.npy, "
                          f"corpus.json) of {source}; pass the text file")
    try:
        ids = np.load(data.cache_paths(Path(cache_dir))[0], mmap_mode="r")
        if ids.shape != (meta["length"],) or ids.dtype != np.dtype(meta["dtype"]):
            raise ValueError
        return several.with_parts(data.Corpus(ids, meta["vocab"], encoding, Path(source),
                                              int(meta.get("dropped_tail", 0))), meta)
    except (OSError, ValueError, KeyError, TypeError):
        raise CorpusError(f"the encoded corpus in {cache_dir} (corpus.npy) is damaged; "
                          f"pass the text file {source}") from None


def same_text(path, run_dir) -> bool:
    """True if the file at `path` holds exactly the text the run's corpus was encoded
    from (its SHA-256, recorded in corpus.json)."""
    meta = cache_meta(run_dir)
    if isinstance(path, several.FileSet):
        return several.same_files(path, meta)
    if meta is None or "sha256" not in meta or is_stream(path):
        return False
    try:
        return data.file_sha256(path) == meta["sha256"]
    except OSError:
        return False


def same_source(corpus, meta, run_dir) -> bool:
    """True if corpus (as resolve() gives it) is what a run's state `meta` was trained
    on: the same path(s), or files holding the same text (moved)."""
    if isinstance(corpus, several.FileSet):
        same = corpus.resolved() == meta.get("files")
    else:
        same = "files" not in meta and display_name(corpus) == meta["corpus"]
    return same or same_text(corpus, run_dir)


def recorded(meta):
    """The corpus a run's state `meta` names: a str, or a FileSet for several files."""
    return several.from_meta(meta) if meta.get("files") else meta["corpus"]
