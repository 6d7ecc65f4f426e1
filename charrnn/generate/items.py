"""Sampling whole documents (items) from a model trained with --docs.

    items = sample_items(sampler, 20, length=500, temperature=0.8, seed=1)
    items.texts, items.complete, items.cut, items.dropped, items.copies, items.draws

An item starts exactly where a training document did (charrnn.data.documents): zero
state, the end marker fed as the first input; it is sampled until the model emits the
end marker again, which is not part of the item. `length` caps each item: one cut
there never reached its end and is counted as not well-formed (items.cut), though it
is still returned. All items are made together, one batch of streams (stream j draws
from random stream j of its seed, as --num-samples does).

known (charrnn.data.documents.Known: the fingerprints of the training documents)
counts the drawn items found verbatim among them (items.copies); with novel=True those
are dropped and drawn again, in rounds of as many as are missing (round r seeded from
seed and r), until n are kept or max_draws (default 10 x n) have been drawn: then
fewer than n come back, and items.draws says how many were tried.
"""
from dataclasses import dataclass, field

import numpy as np

from charrnn.errors import ConfigError
from charrnn.generate.options import _count, _seed

FIRST_CHUNK = 32     # characters per call at first: most items are short
MAX_CHUNK = 256      # and at most (each call runs every stream that many steps)
NOVEL_DRAWS = 10     # novel=True draws at most this many times n items


@dataclass
class Items:
    texts: list = field(default_factory=list)      # the items, without end markers
    complete: list = field(default_factory=list)   # per item: it reached its end marker
    draws: int = 0        # items sampled in all (novel: including those dropped)
    copies: int = 0       # sampled items found among the known documents
    dropped: int = 0      # of those, left out because novel=True
    known: bool = False   # whether copies were looked for (a set of documents given)

    @property
    def cut(self):
        """Items cut by `length` before their end marker: not well-formed."""
        return sum(not c for c in self.complete)

    def __len__(self):
        return len(self.texts)

    def __iter__(self):
        return iter(self.texts)

    def __getitem__(self, i):
        return self.texts[i]


def _round_seed(seed, r):
    return (seed + r * 0x9E3779B97F4A7C15) % 2**64   # round 0: the seed itself


def sample_items(sampler, n, *, length=1000, temperature=1.0, top_k=None, top_p=None,
                 seed=None, no_repeat=None, known=None, novel=False, max_draws=None):
    """n items from sampler (a charrnn.generate.sampler.Sampler of a model trained on
    documents): an Items (see the module docstring). Options are checked first."""
    end = sampler.end_marker
    if not end:
        raise ConfigError("this model was trained without documents, so it has no items "
                          "to sample: train it with --docs lines or --docs files")
    n, length = _count(n, "the number of items"), _count(length, "length")
    if isinstance(temperature, (list, tuple, np.ndarray)):
        raise ConfigError("items take one temperature, not a list")
    if novel and known is None:
        raise ConfigError("novel items need the training documents: load the model from "
                          "its run directory (it keeps their fingerprints in documents.npy)")
    max_draws = NOVEL_DRAWS * n if max_draws is None else _count(max_draws, "max_draws")
    seed = _seed(seed)
    end_id = sampler.vocab.index(end)
    out = Items(known=known is not None)
    r = 0
    while len(out.texts) < n and out.draws < max_draws:
        k = min(n - len(out.texts), max_draws - out.draws)
        drawn = _draw(sampler, end_id, k, length, temperature, top_k, top_p,
                      _round_seed(seed, r), no_repeat)
        for ids, ended in drawn:
            out.draws += 1
            found = known is not None and sampler._codes[ids] in known
            out.copies += found
            if novel and found:
                out.dropped += 1
                continue
            out.texts.append(sampler.ids_to_text(ids))
            out.complete.append(ended)
        r += 1
        if not novel:
            break
    return out


def _draw(sampler, end_id, K, length, temperature, top_k, top_p, seed, no_repeat):
    """K items as (ids (m,) int32 without the end marker, whether it was reached)."""
    run, _ = sampler._start_run(sampler.vocab[end_id], temperature, top_k, top_p, seed, K,
                                no_repeat)
    got = [[] for _ in range(K)]
    ended = np.zeros(K, bool)
    buf = np.empty((K, min(MAX_CHUNK, length)), np.int32)
    made, chunk = 0, FIRST_CHUNK
    while made < length and not ended.all():
        m = run.run(buf, min(chunk, buf.shape[1], length - made))
        for j in np.flatnonzero(~ended):
            row = buf[j, :m]
            hit = np.flatnonzero(row == end_id)
            got[j].append(row[:hit[0]].copy() if len(hit) else row.copy())
            ended[j] = len(hit) > 0
        made += m
        chunk = min(MAX_CHUNK, 2 * chunk)
    return [(np.concatenate(g) if g else np.zeros(0, np.int32), bool(e))
            for g, e in zip(got, ended)]


def as_text(texts):
    """Items as one text: one per line; or, when any of them holds a line break, each
    under a header line "--- item J of N ---" (as --num-samples heads samples)."""
    texts = list(texts)
    if not any("\n" in t or "\r" in t for t in texts):
        return "".join(t + "\n" for t in texts)
    return "\n".join(f"--- item {j + 1} of {len(texts)} ---\n{t}"
                     for j, t in enumerate(texts)) + "\n"
