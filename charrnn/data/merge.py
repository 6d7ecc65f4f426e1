"""A vocabulary grown by a new text's characters, and a corpus re-encoded into it:
what a run fine-tuned from another (`charrnn train --init`) reads.

    merged_vocab(base, chars)            -> sorted union: the base's characters are never
                                            dropped, the new ones slot in by code point
    recode(corpus, vocab, cache_dir)     -> the corpus with its ids in `vocab` (a superset
                                            of corpus.vocab), rewritten into cache_dir's
                                            corpus.npy when the corpus is that cache

Every charrnn vocabulary is sorted by code point, so a merged one is too: a character
new to the base lands between the base's, and the base's ids shift. The ids are
re-encoded through a table (old id -> new id) CHUNK ids at a time, so a corpus of
hundreds of MB, memory-mapped, never needs more than one chunk in RAM; a cached corpus
is rewritten into its run directory (corpus.json then records the merged vocabulary),
so a resumed run, `charrnn report` and the trainer all read ids in the model's own
vocabulary.
"""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from charrnn.data import corpus as data
from charrnn.data.text import id_dtype, show_chars
from charrnn.errors import CorpusError

CHUNK = 1 << 24   # ids re-encoded at a time (16 M: 16-64 MB of ids)


def merged_vocab(base, chars):
    """The base vocabulary plus the characters of `chars` it lacks, sorted."""
    return sorted(set(base) | set(chars))


def recode(corpus, vocab, cache_dir=None):
    """`corpus` with its ids re-expressed in `vocab`, which holds every character of
    corpus.vocab. If corpus.ids is the encoded corpus cached in cache_dir (a run
    directory), that cache is rewritten in the new vocabulary (atomically: a crash
    leaves no cache, and the next run re-encodes the text); else the ids are in RAM."""
    vocab = list(vocab)
    if corpus.vocab == vocab:
        return corpus
    index = {c: i for i, c in enumerate(vocab)}
    missing = [c for c in corpus.vocab if c not in index]
    if missing:
        raise CorpusError(f"{corpus.path} holds characters the vocabulary lacks: "
                          f"{show_chars(missing[:10])}")
    dtype = id_dtype(len(vocab))
    table = np.array([index[c] for c in corpus.vocab], dtype=dtype)   # old id -> new id
    n = len(corpus.ids)
    meta = _cache_of(corpus, cache_dir)
    if meta is None:
        ids = np.empty(n, dtype)
        for a in range(0, n, CHUNK):
            ids[a:a + CHUNK] = table[corpus.ids[a:a + CHUNK]]
        return replace(corpus, ids=ids, vocab=vocab)
    cache_dir = Path(cache_dir)
    out, tmp = data._create_cache(cache_dir, n, dtype)   # removes corpus.json first
    try:
        for a in range(0, n, CHUNK):
            data._write_cache(out, table[corpus.ids[a:a + CHUNK]], cache_dir)
    finally:
        out.close()
    new = data._finish_cache(cache_dir, tmp, corpus.path, corpus.encoding,
                             (meta["size"], meta["mtime_ns"]), vocab, n, dtype,
                             meta.get("errors", "strict"), corpus.dropped_tail, meta)
    return replace(corpus, ids=new.ids, vocab=new.vocab)


def _cache_of(corpus, cache_dir):
    """corpus.json of cache_dir if corpus.ids is that cache's corpus.npy, else None."""
    if cache_dir is None or not isinstance(corpus.ids, np.memmap):
        return None
    npy, meta_path = data.cache_paths(Path(cache_dir))
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        same = Path(corpus.ids.filename).resolve() == npy.resolve()
    except (OSError, ValueError, TypeError):
        return None
    if not same or not isinstance(meta, dict) or meta.get("vocab") != corpus.vocab:
        return None
    return meta
