"""Documents: a text read as a list of items (--docs lines, --docs files), each read
from a zero state and ended by an end marker the model learns to emit.

    docs = Documents(corpus, "lines", seed)   # the documents' ranges, shuffled once
    docs.held_out_chars(val_frac)             # characters a split would score
    ids = docs.lay_out()                      # the stream trained on (below)
    docs.hashes()                             # a fingerprint of each document (--novel)

The end marker END is one character, U+0003 (END OF TEXT; the byte 0x03 of a
byte-level model); a text that holds it cannot be read as documents (CorpusError
naming the file and the position). The model's vocabulary is the characters the
documents hold (so not the line breaks between lines) and END, sorted.

    ids:  END d1 END d2 END ... dk END v1 END ... vm END
          train = ids[:n_train]  (d1..dk, ends with END)
          held out = ids[n_train - 1:]  (END v1 END ... vm END: starts with END too)

The network zeroes its state on every step whose input is END (ModelConfig.end_marker),
so each document is read from a zero state starting with the input END, and the
character after its last one is END, which the model learns to predict. Sampling an
item does the same: zero state, feed END, sample until END.

Documents are shuffled once with the run's seed (a sorted list of names must not put
every Z name in one place) and the last val_frac of that order (at least one, whole
documents) is held out; the same seed gives the same order, so a resumed run is exact.
lines: every line (split at "\\n"; a "\\r" before it is dropped) that is not empty or
only whitespace; files: every file (charrnn.data.several) that is not.
"""
import hashlib
from statistics import median

import numpy as np

from charrnn.data.text import BYTES, id_dtype, show_chars
from charrnn.errors import ConfigError, CorpusError, plural

END = "\x03"                     # the end marker: U+0003 END OF TEXT
MODES = ("none", "lines", "files")
BLOCK = 1 << 22                  # characters handled at a time: bounded scratch memory
_SHUFFLE = 0x646f6373            # seeds the documents' order apart from the weights'


def check_mode(mode):
    if mode not in MODES:
        raise ConfigError(f"--docs must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


class Documents:
    """The documents of a corpus (charrnn.data.corpus.Corpus) in the order of the run:
    starts[i], lens[i] locate document i in corpus.ids. vocab: the characters the
    documents hold, and END in its sorted place (the model's: in lines mode without
    the line breaks, which no document holds)."""

    def __init__(self, corpus, mode, seed, also=()):
        """also: characters the vocabulary holds even if no document does (a run
        fine-tuned from another keeps every character of its base's)."""
        self.corpus, self.mode = corpus, check_mode(mode)
        if mode == "none":
            raise ConfigError("Documents needs --docs lines or files")
        _refuse_end(corpus)
        starts, ends = (_lines if mode == "lines" else _files)(corpus)
        blank = _space_table(corpus)
        content = _count_before(corpus.ids, ~blank, ends) - _count_before(corpus.ids, ~blank, starts)
        keep = content > 0
        self.dropped = int(len(starts) - keep.sum())   # empty or whitespace-only
        starts, ends = starts[keep], ends[keep]
        if len(starts) == 0:
            raise CorpusError(f"{corpus.path} holds no document: every "
                              f"{'line' if mode == 'lines' else 'file'} is empty or "
                              "whitespace; pass a text with some content")
        present, self._hashes = _scan(corpus, starts, ends)
        self.vocab = sorted({c for c, p in zip(corpus.vocab, present) if p} | {END} | set(also))
        self.end_id = self.vocab.index(END)
        index = {c: i for i, c in enumerate(self.vocab)}
        # corpus id -> model id (characters no document holds: never looked up)
        self.table = np.array([index.get(c, 0) for c in corpus.vocab],
                              id_dtype(len(self.vocab)))
        order = np.random.default_rng([_SHUFFLE, seed]).permutation(len(starts))
        self.starts = starts[order]
        self.lens = (ends - starts)[order]

    def __len__(self):
        return len(self.starts)

    @property
    def stream_length(self):
        """Characters of the laid-out stream: every document and one END each, plus the
        END it starts with."""
        return int(self.lens.sum()) + len(self) + 1

    @property
    def median_length(self):
        """Median characters of a document, its END included."""
        return int(median(self.lens.tolist())) + 1

    def held_out(self, val_frac):
        """How many documents val_frac holds out: at least one, never all (0 if there
        are fewer than two documents, or val_frac is 0)."""
        if not val_frac or len(self) < 2:
            return 0
        return min(len(self) - 1, max(1, int(len(self) * val_frac)))

    def held_out_chars(self, val_frac):
        """Characters scored in the held-out part: each held-out document and its END."""
        k = self.held_out(val_frac)
        return int(self.lens[len(self) - k:].sum()) + k if k else 0

    def describe(self, val_frac):
        what = "lines" if self.mode == "lines" else "files"
        dropped = (f"; {plural(self.dropped, 'empty ' + what[:-1])} left out" if self.dropped
                   else "")
        k = self.held_out(val_frac)
        held = f", {k:,} held out for validation" if k else ""
        return (f"{plural(len(self), 'document')} ({what}, median {self.median_length - 1:,} "
                f"characters{dropped}){held}, each ended by the marker U+0003")

    def lay_out(self):
        """The stream END d1 END ... dn END in the model's vocabulary (module docstring),
        in the run's order, so whatever val_frac holds out is last: held_out_chars(val_frac)
        characters. (N,) of the smallest id dtype, in memory."""
        table = self.table
        out = np.empty(self.stream_length, table.dtype)
        out[0] = self.end_id
        pos, i, n, ids = 1, 0, len(self), self.corpus.ids
        while i < n:
            # documents i..j-1 together: BLOCK characters at most, or one long one
            j = i + max(1, int(np.searchsorted(np.cumsum(self.lens[i:i + BLOCK]), BLOCK,
                                               "right")))
            if j == i + 1 and self.lens[i] > BLOCK:   # one long document: in slices
                s, m = int(self.starts[i]), int(self.lens[i])
                for a in range(0, m, BLOCK):
                    b = min(m, a + BLOCK)
                    out[pos + a:pos + b] = table[ids[s + a:s + b]]
                out[pos + m] = self.end_id
                pos += m + 1
            else:
                L, S = self.lens[i:j], self.starts[i:j]
                offs = np.cumsum(L + 1) - (L + 1)              # each one's start in the block
                doc = np.repeat(np.arange(j - i), L)           # document of each character
                within = np.arange(int(L.sum())) - np.repeat(np.cumsum(L) - L, L)
                block = out[pos:pos + int(offs[-1] + L[-1] + 1)]
                block[offs[doc] + within] = table[np.asarray(ids[S[doc] + within])]
                block[offs + L] = self.end_id
                pos += len(block)
            i = j
        return out

    def hashes(self):
        """Sorted distinct fingerprints of every document (training and held out): the
        first 8 bytes of BLAKE2b over its code points as UTF-32-LE (text_hash)."""
        return self._hashes


def text_hash(code_points) -> int:
    """The fingerprint of a text given as its code points (byte values for a byte-level
    model): what Documents.hashes() holds for a document."""
    return _digest(np.asarray(code_points, "<u4").tobytes())


def _digest(raw) -> int:
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


class Known:
    """A set of document fingerprints (Documents.hashes(), or documents.npy of a run):
    `code_points in known` says whether a text is one of those documents."""

    def __init__(self, hashes):
        self.hashes = np.unique(np.asarray(hashes, np.uint64))

    def __len__(self):
        return len(self.hashes)

    def __contains__(self, code_points):
        h = np.uint64(text_hash(code_points))
        i = int(np.searchsorted(self.hashes, h))
        return i < len(self.hashes) and self.hashes[i] == h

    def save(self, path):
        """Written whole to a temporary name, then renamed: never half a file."""
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.save(f, self.hashes)
        tmp.replace(path)

    @classmethod
    def load(cls, path):
        a = np.load(path, allow_pickle=False)
        if a.dtype != np.uint64 or a.ndim != 1:
            raise ValueError(f"{path} is not a set of document fingerprints")
        return cls(a)


# ---- finding the documents ------------------------------------------------------------

def _scan(corpus, starts, ends):
    """One pass over the documents (starts, ends in file order): (which corpus ids they
    hold (V,) bool, their sorted distinct fingerprints)."""
    cps = np.array([ord(c) for c in corpus.vocab], "<u4")
    present = np.zeros(len(corpus.vocab), bool)
    lens, ids = ends - starts, corpus.ids
    found, i = [], 0
    while i < len(starts):
        a = int(starts[i])
        j = max(i + 1, int(np.searchsorted(ends, a + BLOCK, "right")))
        if lens[i] > BLOCK:   # one long document (a file): slice by slice
            h = hashlib.blake2b(digest_size=8)
            for s in range(a, int(ends[i]), BLOCK):
                part = np.asarray(ids[s:min(int(ends[i]), s + BLOCK)])
                present[part] = True
                h.update(cps[part].tobytes())
            found.append(int.from_bytes(h.digest(), "little"))
            i += 1
            continue
        b = int(ends[j - 1])
        region = np.asarray(ids[a:b])
        inside = np.zeros(b - a + 1, np.int64)    # +1 where a document starts, -1 after it
        np.add.at(inside, starts[i:j] - a, 1)
        np.add.at(inside, ends[i:j] - a, -1)
        present[region[np.cumsum(inside)[:-1] > 0]] = True
        buf = cps[region].tobytes()
        for s, m in zip((starts[i:j] - a).tolist(), lens[i:j].tolist()):
            found.append(_digest(buf[4 * s:4 * (s + m)]))
        i = j
    return present, np.unique(np.array(found, np.uint64))


def _parts(corpus):
    return corpus.parts or [(str(corpus.path), 0, len(corpus.ids))]


def _refuse_end(corpus):
    if END not in corpus.vocab:
        return
    end = corpus.vocab.index(END)
    for a in range(0, len(corpus.ids), BLOCK):
        hit = np.flatnonzero(np.asarray(corpus.ids[a:a + BLOCK]) == end)
        if len(hit):
            pos = a + int(hit[0])
            break
    else:   # in the vocabulary only: merged from a base run's (--init), not in the text
        return
    name, start = next(((n, s) for n, s, e in _parts(corpus) if s <= pos < e),
                        (str(corpus.path), 0))
    unit = "byte" if corpus.encoding == BYTES else "character"
    raise CorpusError(f"{name} contains {show_chars([END])}, END OF TEXT, at {unit} "
                      f"{pos - start:,}: --docs uses it to mark where a document ends, so "
                      "the text must not hold it; remove it (tr -d '\\003'), or train "
                      "without --docs")


def _files(corpus):
    parts = _parts(corpus)
    return (np.array([s for _, s, _ in parts], np.int64),
            np.array([e for _, _, e in parts], np.int64))


def _lines(corpus):
    """(starts, ends) of every line: split at "\\n", a "\\r" before it left out."""
    ids, vocab = corpus.ids, corpus.vocab
    nl = vocab.index("\n") if "\n" in vocab else -1
    breaks = [np.flatnonzero(np.asarray(ids[a:a + BLOCK]) == nl) + a
              for a in range(0, len(ids), BLOCK)] if nl >= 0 else []
    breaks = np.concatenate(breaks) if breaks else np.zeros(0, np.int64)
    starts = np.concatenate([[0], breaks + 1]).astype(np.int64)
    ends = np.concatenate([breaks, [len(ids)]]).astype(np.int64)
    if starts[-1] == len(ids):   # the text ends with a line break: no line after it
        starts, ends = starts[:-1], ends[:-1]
    if "\r" in vocab:
        cr = vocab.index("\r")
        has = ends > starts
        last = np.zeros(len(ends), bool)
        last[has] = np.asarray(ids[ends[has] - 1]) == cr
        ends = ends - last
    return starts, ends


def _space_table(corpus):
    """(V,) bool: which ids are whitespace."""
    if corpus.encoding == BYTES:
        return np.array([bytes([ord(c)]).isspace() for c in corpus.vocab], bool)
    return np.array([c.isspace() for c in corpus.vocab], bool)


def _count_before(ids, table, positions):
    """For each position p (sorted), how many of ids[:p] have table[id] true; in blocks,
    so the scratch stays small whatever the text's length."""
    order = np.argsort(positions, kind="stable")
    pos = np.asarray(positions)[order]
    out = np.zeros(len(pos), np.int64)
    total = 0
    for a in range(0, len(ids), BLOCK):
        c = np.cumsum(table[np.asarray(ids[a:a + BLOCK])], dtype=np.int64)
        lo, hi = np.searchsorted(pos, a, "left"), np.searchsorted(pos, a + len(c), "left")
        q = pos[lo:hi] - a
        out[lo:hi] = total + np.where(q > 0, c[np.maximum(q - 1, 0)], 0)
        total += int(c[-1])
    out[pos >= len(ids)] = total
    result = np.empty_like(out)
    result[order] = out
    return result
