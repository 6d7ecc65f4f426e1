"""Tab-separated pairs, one per line: `left<TAB>right`, for tasks that map a string to
another thing rather than model one stream.

    read_pairs(path) -> Pairs(left, right, lines)     classify: left is the label,
                                                      right the text; seq2seq (later):
                                                      source and target
    split_pairs(keys, val_frac, seed) -> (train indices, held-out indices)

The reader knows nothing of tasks: a classifier reads (label, text) and splits
stratified by label; a seq2seq run (to come) reads (source, target) with
names=("source", "target"), splits with one key for all pairs, and tokenizes the
target itself (--target-tokens chars|space).

A line is split at its *first* tab (the right side may hold more tabs); a trailing
"\\n" or "\\r\\n" is not part of it; blank lines are skipped. Every refusal is one line
naming the file and the line number: a line without a tab, an empty side, bytes that
are not in the encoding.
"""
from typing import NamedTuple

import numpy as np

from charrnn.errors import CorpusError


class Pairs(NamedTuple):
    left: list      # str per pair: the label (classify) or the source (seq2seq)
    right: list     # str per pair: the text (classify) or the target (seq2seq)
    lines: list     # int per pair: its line number in the file (1-based)


def read_pairs(path, encoding="utf-8", errors="strict", names=("label", "text")):
    """The pairs of a TSV file. names: what the two sides are called in messages."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise CorpusError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a directory: pass one TSV file") from None
    except OSError as e:
        raise CorpusError(f"cannot read {path}: {e.strerror or e}") from None
    left, right, lines = [], [], []
    for n, line in enumerate(raw.split(b"\n"), 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            text = line.decode(encoding, errors)
        except UnicodeDecodeError as e:
            raise CorpusError(f"{path}, line {n}: not valid {encoding} ({e.reason} at byte "
                              f"{e.start} of the line); pass --encoding or "
                              "--encoding-errors replace") from None
        except LookupError:
            raise CorpusError(f"unknown encoding {encoding!r}") from None
        if not text.strip():
            continue
        a, tab, b = text.partition("\t")
        if not tab:
            raise CorpusError(f"{path}, line {n}: no tab; each line must be "
                              f"{names[0]}<TAB>{names[1]}")
        for side, value in ((names[0], a), (names[1], b)):
            if not value:
                raise CorpusError(f"{path}, line {n}: empty {side}; each line must be "
                                  f"{names[0]}<TAB>{names[1]}, neither empty")
        left.append(a)
        right.append(b)
        lines.append(n)
    if not left:
        raise CorpusError(f"{path} holds no {names[0]}<TAB>{names[1]} lines")
    return Pairs(left, right, lines)


def split_pairs(keys, val_frac, seed):
    """(train, held out): sorted index arrays of whole pairs. Stratified by `keys` (the
    labels; for seq2seq pass one key for all): each key holds out round(val_frac * its
    count) of its pairs, chosen by the seed; the same seed, the same split."""
    keys = list(keys)
    rng = np.random.default_rng([seed, 0x5e1])
    held = []
    for k in sorted(set(keys)):
        idx = np.array([i for i, x in enumerate(keys) if x == k])
        m = int(round(val_frac * len(idx)))
        if m:
            held.extend(rng.permutation(idx)[:m].tolist())
    held = np.array(sorted(held), np.int64)
    mask = np.ones(len(keys), bool)
    mask[held] = False
    return np.flatnonzero(mask), held
