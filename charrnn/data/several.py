"""Several text files as one corpus: `charrnn train notes/`, `charrnn train a.txt b.txt`,
`charrnn train 'notes/*.md'`.

    expand(args)                       -> FileSet: the regular files, in order, and names
    load_files(fileset, encoding=...)  -> Corpus whose .parts say where each file is

A folder gives its regular files, recursively, in sorted path order; hidden files and
folders (a name starting with ".") are skipped, and so are empty files (Corpus.notes
says how many). An argument with *, ? or [ that names no existing path is a pattern
the shell did not expand (it was quoted): it is expanded here, ** spanning folders.

Each file is read as one file is (charrnn.data.corpus: the same encoding checks, and
every message names the file), all of them before any training starts. The files are
joined into one stream in that order, with a newline between two files unless the
first already ends with one, so that a file's last line never runs into the next
file's first. Corpus.parts holds each file's [start, end) in the ids, the joining
newline left out: the documents of --docs files are exactly the files.

The encoded corpus is cached as one file's is (corpus.npy and corpus.json in the run
directory); corpus.json lists every file with its size, modification time, SHA-256 and
range, so a change in any of them is seen.
"""
import glob
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.data import corpus as data
from charrnn.data.text import BYTES, id_dtype, normalize_encoding
from charrnn.errors import ConfigError, CorpusError, plural

GLOB_CHARS = "*?["
NEWLINE = 10   # the code point (and byte) that joins two files


@dataclass
class FileSet:
    files: list                 # Paths of the regular files, in order
    label: str                  # what the run records as its corpus: "/abs/notes/", ...
    name: str                   # short, for tables: "notes/ (12 files)"
    stem: str                   # for the default run directory's name
    notes: list = field(default_factory=list)   # one line each: empty files skipped

    def resolved(self):
        return [str(p.resolve()) for p in self.files]


def is_pattern(arg) -> bool:
    return any(c in str(arg) for c in GLOB_CHARS) and not os.path.lexists(arg)


def _walk(root: Path):
    """The regular files under root, hidden ones skipped, in sorted path order."""
    def fail(e):
        raise CorpusError(f"cannot read the folder {e.filename}: {e.strerror}")
    found = []
    for top, dirs, names in os.walk(root, onerror=fail):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(top, n) for n in names if not n.startswith(".")
                  and Path(top, n).is_file()]    # FIFOs, sockets, broken links: not text
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def expand(args) -> FileSet:
    """The files that args (a path, a folder, a pattern, or a list of them) name."""
    args = [args] if isinstance(args, (str, os.PathLike)) else list(args)
    args = [os.fspath(a) for a in args]
    if not args:
        raise ConfigError("no text file given")
    files, seen = [], set()
    for arg in args:
        if arg == "-":
            raise CorpusError("- (standard input) can be read only alone, not with other files")
        if is_pattern(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise CorpusError(f"no file matches {arg}")
            paths = [q for m in matches for q in (_walk(Path(m)) if Path(m).is_dir()
                                                  else [Path(m)] if Path(m).is_file() else [])]
        elif Path(arg).is_dir():
            paths = _walk(Path(arg))
            if not paths:
                raise CorpusError(f"the folder {arg} holds no files (hidden ones are skipped)")
        elif Path(arg).exists():
            if not Path(arg).is_file():
                raise CorpusError(f"{arg} is not a regular file (a pipe can be read only "
                                  "alone, not with other files)")
            paths = [Path(arg)]
        else:
            raise CorpusError(f"no such file or folder: {arg}; check the path")
        for p in paths:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                files.append(p)
    kept = [p for p in files if _size(p) != 0]
    notes = []
    if len(kept) < len(files):
        notes.append(f"{plural(len(files) - len(kept), 'empty file')} left out")
    if not kept:
        raise CorpusError(f"{', '.join(args)}: every file is empty (0 bytes); pass text "
                          "files with some content")
    return FileSet(kept, *_names(args, kept), notes)


def _size(path):
    try:
        return path.stat().st_size
    except OSError:
        return None   # left in: reading it names the problem


def _names(args, files):
    """(label, short name, stem) of a file set."""
    n = f" ({plural(len(files), 'file')})"
    if len(args) == 1:
        arg = args[0]
        if Path(arg).is_dir():
            full = str(Path(arg).resolve())
            return full.rstrip(os.sep) + os.sep, Path(full).name + "/" + n, Path(full).name
        full = os.path.abspath(arg)
        return full, Path(arg).name + n, Path(os.path.dirname(full)).name or "files"
    label = ", ".join(str(Path(a).resolve()) for a in args)
    shown = ", ".join(Path(a).name for a in args[:2]) + (", ..." if len(args) > 2 else "")
    return label, shown + n, Path(args[0]).stem


def from_meta(meta) -> FileSet:
    """The FileSet a run recorded (its state's "files", "corpus", "corpus_name")."""
    files = [Path(f) for f in meta["files"]]
    return FileSet(files, meta.get("corpus", str(files[0])),
                   meta.get("corpus_name", f"{plural(len(files), 'file')}"), files[0].stem)


# ----------------------------------------------------------------------------------------
# Reading: the two passes of charrnn.data.corpus, over every file in turn


def load_files(fs: FileSet, *, encoding="utf-8", cache_dir=None, errors="strict",
               chunk_size=data.DEFAULT_CHUNK_SIZE, training=True) -> data.Corpus:
    """The files of fs as one Corpus (ids joined as the module docstring says), through
    the run's cache when cache_dir is given. Every file is opened and read (pass 1)
    before anything is written: a file that cannot be read is a CorpusError naming it."""
    encoding = normalize_encoding(encoding)
    errors = data.check_errors(errors)
    prints = []
    for p in fs.files:
        prints.append(data._stat(p, training))   # missing, a directory, empty: named
        try:
            open(p, "rb").close()
        except OSError as e:
            raise CorpusError(f"cannot read the corpus {p}: {e.strerror}") from None
    if cache_dir is not None:
        cached = open_cache(Path(cache_dir), fs, encoding, errors, prints)
        if cached is not None:
            return cached

    seen = np.zeros(256 if encoding == BYTES else sys.maxunicode + 1, dtype=bool)
    counts, lasts, digests, tails = [], [], [], []
    for p in fs.files:
        n, last, digest = 0, -1, hashlib.sha256()
        for cps in data._code_points(p, encoding, chunk_size, errors, tails, digest, training):
            seen[cps] = True
            n += len(cps)
            last = int(cps[-1]) if len(cps) else last
        counts.append(n)
        lasts.append(last)
        digests.append(digest.hexdigest())
    # a newline after file i if it has characters, does not end with one, and a later
    # file has characters
    join = [counts[i] > 0 and lasts[i] != NEWLINE and any(counts[i + 1:])
            for i in range(len(counts))]
    if any(join):
        seen[NEWLINE] = True
    codes = np.flatnonzero(seen)
    vocab = [chr(c) for c in codes]
    n = sum(counts) + sum(join)
    if training:
        data._check_content(fs.label, vocab, n, encoding)

    dtype = id_dtype(len(vocab))
    to_id = np.zeros(len(seen), dtype=dtype)
    to_id[codes] = np.arange(len(codes))
    ids = np.empty(n, dtype=dtype) if cache_dir is None else None
    if cache_dir is not None:
        out, tmp = data._create_cache(Path(cache_dir), n, dtype)
    parts, pos = [], 0
    try:
        for p, count, joined in zip(fs.files, counts, join):
            start = pos
            for cps in data._code_points(p, encoding, chunk_size, errors):
                if pos + len(cps) > start + count:
                    break   # the file grew: caught below
                if cache_dir is None:
                    ids[pos:pos + len(cps)] = to_id[cps]
                else:
                    data._write_cache(out, to_id[cps], cache_dir)
                pos += len(cps)
            if pos != start + count or data._stat(p) != prints[len(parts)]:
                raise CorpusError(f"{p} changed while it was being read; run again once it "
                                  "is complete")
            parts.append((str(p), start, pos))
            if joined:
                nl = to_id[[NEWLINE]]
                if cache_dir is None:
                    ids[pos] = nl[0]
                else:
                    data._write_cache(out, nl, cache_dir)
                pos += 1
    finally:
        if cache_dir is not None:
            out.close()
    if cache_dir is None:
        corpus = data.Corpus(ids, vocab, encoding, Path(fs.label), sum(tails))
    else:
        files = [{"path": str(p.resolve()), "size": fp[0], "mtime_ns": fp[1], "sha256": d,
                  "start": a, "end": b}
                 for p, fp, d, (_, a, b) in zip(fs.files, prints, digests, parts)]
        meta = {"source": fs.label, "streamed": False, "files": files}
        corpus = data._finish_cache(Path(cache_dir), tmp, Path(fs.label), encoding,
                                    (None, None), vocab, n, dtype, errors, sum(tails), meta)
    corpus.parts = parts
    return corpus


def open_cache(cache_dir, fs, encoding, errors, prints):
    """The run's encoded corpus if it was made from exactly these files, unchanged."""
    npy, meta_path = data.cache_paths(cache_dir)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        files = meta.get("files") or []
        if (meta.get("format") != data.CACHE_FORMAT or meta.get("encoding") != encoding
                or meta.get("errors", "strict") != errors
                or [f["path"] for f in files] != fs.resolved()
                or [[f["size"], f["mtime_ns"]] for f in files] != [list(p) for p in prints]):
            return None
        ids = np.load(npy, mmap_mode="r")
        if ids.shape != (meta["length"],) or ids.dtype != np.dtype(meta["dtype"]):
            return None
        return with_parts(data.Corpus(ids, meta["vocab"], encoding, Path(fs.label),
                                      int(meta.get("dropped_tail", 0))), meta)
    except (OSError, ValueError, KeyError, TypeError):
        return None   # missing or damaged: rebuild it


def with_parts(corpus, meta):
    """corpus with .parts from a cache's corpus.json (several files), else left as it is."""
    if meta.get("files"):
        corpus.parts = [(f["path"], int(f["start"]), int(f["end"])) for f in meta["files"]]
    return corpus


def same_files(fs: FileSet, meta) -> bool:
    """True if the files of fs hold, in order, the texts a run's cache was made from
    (their SHA-256s): the same files, perhaps moved."""
    want = [f.get("sha256") for f in (meta or {}).get("files") or []]
    if len(want) != len(fs.files):
        return False
    try:
        return all(data.file_sha256(p) == w for p, w in zip(fs.files, want))
    except OSError:
        return False
