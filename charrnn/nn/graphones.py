"""A joint-sequence ("graphone") model of source-target pairs (Bisani and Ney 2008), the
counting model that re-ranks an encoder-decoder's n-best outputs (issue 32).

Training: each pair is cut into graphones, a chunk of 1-2 source characters with 0-2
target tokens ("ph" with F, "e" with nothing), by EM over all the ways to cut it
(kernels/_align.pyx: forward-backward on a joint unigram table, then each pair's best
cut), and an n-gram model (charrnn.nn.ngram, modified Kneser-Ney) learns the graphone
sequences. Scoring a candidate output: its best cut under the unigram table, then the
n-gram's log-probability of that graphone sequence. Phonetisaurus and Sequitur are such
models; an LSTM's n-best re-scored by one is how Rao et al. (2015) reached 21.3% WER on
CMUdict from 25.8%.

    j = JointModel.train(pairs)                  # [(source, [token, ...]), ...]
    j.logprobs(["cat"], [["K", "AE1", "T"]])     # log P(source, target), natural log
    j.pick(sources, nbest_lists, str.split)      # re-ranked: the best output of each
"""
import numpy as np

from charrnn import _align
from charrnn.nn.ngram import NGram

ORDER = 6        # n-gram order (Phonetisaurus: 8, which scored the same: docs/internals/graphones.md)
EM_STEPS = 8
MAX_TABLE = 1 << 23   # cells of the dense tables (8 bytes each, two of them): larger
# alphabets cut in chunks of one on one side, or both (see chunk_sizes)
SEEN = 1e-10          # a graphone EM gave less probability than this is not kept
UNSEEN_LOGP = np.log(1e-12)   # the cut model's log-probability of a graphone not kept
MARGIN = 5.0          # a pair with no cut at all ranks this far below the worst that has one


def chunk_sizes(nx, ny):
    """(max_x, max_y): 2 and 2 where the tables fit MAX_TABLE cells, else the side with
    the smaller alphabet keeps chunks of two (a target longer than twice its source can
    then still be cut when that is the target side), else 1 and 1."""
    for mx, my in ((2, 2), (1, 2), (2, 1)) if ny <= nx else ((2, 2), (2, 1), (1, 2)):
        if nx ** mx * ny ** my <= MAX_TABLE:
            return mx, my
    return 1, 1


def _index(vocab):
    return {c: i + 1 for i, c in enumerate(vocab)}


def _encode(src, tgt, sources, targets):
    """The kernels' arrays of the pairs (src, tgt: symbol -> id); a symbol missing from
    them becomes 0, which the kernels refuse (callers filter first)."""
    xs = [np.array([src.get(c, 0) for c in s], np.int32) for s in sources]
    ys = [np.array([tgt.get(t, 0) for t in y], np.int32) for y in targets]
    xoff = np.cumsum([0] + [len(x) for x in xs]).astype(np.int64)
    yoff = np.cumsum([0] + [len(y) for y in ys]).astype(np.int64)
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int32)  # noqa: E731
    return cat(xs), xoff, cat(ys), yoff


def rerank(lists, joint, weight):
    """The place in its list of each n-best list's output that maximises log-probability
    + weight * joint (joint: one score per output, the lists' outputs in order; -1 for an
    empty list; the first of equals)."""
    best, at = [], 0
    for lst in lists:
        s = [lp + weight * j for (_, lp), j in zip(lst, joint[at:at + len(lst)])]
        best.append(int(np.argmax(s)) if s else -1)
        at += len(lst)
    return best


class JointModel:
    weight = 0.5   # of the joint log-probability beside the transducer's (seq2seq_joint tunes it)
    info = None    # how it was built and tuned (seq2seq_joint), saved with it

    def __init__(self, src_vocab, tgt_vocab, max_x, max_y, cells, logp, ngram):
        self.src_vocab, self.tgt_vocab = list(src_vocab), list(tgt_vocab)
        self.max_x, self.max_y = int(max_x), int(max_y)
        self._src, self._tgt = _index(self.src_vocab), _index(self.tgt_vocab)
        self.nx, self.ny = len(self.src_vocab) + 1, len(self.tgt_vocab) + 1
        shape = (self.nx ** self.max_x, self.ny ** self.max_y)
        # the cut model: log-probability of each graphone; one never seen in training can
        # still be cut (so that a candidate with it gets the n-gram's unknown token, not
        # no score at all), but only where nothing else fits
        self.cells, self.logp = np.asarray(cells, np.int64), np.asarray(logp, np.float64)
        self.table = np.full(shape, UNSEEN_LOGP)
        self.table.flat[self.cells] = self.logp
        # graphone ids for the n-gram: 1.. in the order of `cells`; the rest one unknown
        self.ids = np.full(shape, len(self.cells) + 2, np.int64)
        self.ids.flat[self.cells] = np.arange(1, len(self.cells) + 1)
        self.ngram = ngram

    @classmethod
    def train(cls, pairs, order=ORDER, em_steps=EM_STEPS):
        src_vocab = sorted({c for s, _ in pairs for c in s})
        tgt_vocab = sorted({t for _, y in pairs for t in y})
        nx, ny = len(src_vocab) + 1, len(tgt_vocab) + 1
        max_x, max_y = chunk_sizes(nx, ny)
        arrays = _encode(_index(src_vocab), _index(tgt_vocab), [s for s, _ in pairs],
                         [y for _, y in pairs])
        table = np.ones((nx ** max_x, ny ** max_y))   # every cut equally likely at first
        for _ in range(em_steps):
            counts = np.zeros_like(table)
            _align.em_counts(*arrays, table, counts, nx, ny, max_x, max_y)
            table = counts / max(counts.sum(), 1e-300)
        cells = np.flatnonzero(table > SEEN)
        with np.errstate(divide="ignore"):
            logtable = np.log(table)
        model = cls(src_vocab, tgt_vocab, max_x, max_y, cells, logtable.flat[cells], None)
        seqs = model._cuts(arrays)
        model.ngram = NGram.train([s for s in seqs if s is not None], len(cells), order)
        return model

    def _cuts(self, arrays):
        """Each pair's best graphone sequence (ids 1..), or None where none exists."""
        gx, gy, goff, score = _align.viterbi(*arrays, self.table, self.nx, self.ny,
                                             self.max_x, self.max_y)
        ids = self.ids[gx, gy]
        return [ids[goff[k]:goff[k + 1]] if np.isfinite(score[k]) else None
                for k in range(len(score))]

    def logprobs(self, sources, targets):
        """log P(source, target) of each pair (targets: token lists); -inf where the pair
        has a character or token never seen in training, or no cut at all."""
        out = np.full(len(sources), -np.inf)
        ok = [k for k, (s, y) in enumerate(zip(sources, targets))
              if s and all(c in self._src for c in s) and all(t in self._tgt for t in y)]
        if not ok:
            return out
        seqs = self._cuts(_encode(self._src, self._tgt, [sources[k] for k in ok],
                                  [targets[k] for k in ok]))
        some = [k for k, s in zip(ok, seqs) if s is not None]
        if some:
            out[some] = self.ngram.logprobs([s for s in seqs if s is not None])
        return out

    def ranking_scores(self, sources, targets):
        """logprobs, with a pair that has no cut at all (a character or token never seen
        in training, or more tokens than two per character) MARGIN below the worst pair
        that has one: among one source's candidates it then loses to any that has one,
        and where none has (an unseen character) the transducer's scores decide alone."""
        out = self.logprobs(sources, targets)
        finite = out[np.isfinite(out)]
        out[~np.isfinite(out)] = finite.min() - MARGIN if len(finite) else 0.0
        return out

    def pick(self, sources, lists, split):
        """The output of each source's n-best list [(output, log-probability), ...] that
        maximises log-probability + weight * log P_joint(source, output) (rerank); split
        turns an output into its tokens. An empty list gives ""."""
        joint = self.ranking_scores([s for s, lst in zip(sources, lists) for _ in lst],
                                    [split(o) for lst in lists for o, _ in lst])
        return [lst[b][0] if b >= 0 else "" for lst, b in
                zip(lists, rerank(lists, joint, self.weight))]
