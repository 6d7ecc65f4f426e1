"""An n-gram model of integer token sequences: interpolated modified Kneser-Ney (Chen and
Goodman 1998), estimated and queried with NumPy arrays, no Python loop per n-gram.

Tokens are 1..V; 0 is BOS (context only: each sequence is read after order - 1 of them),
V + 1 is EOS (scored after the last token), and any id outside 1..V + 1 is unknown,
which gets only the unigram's share of the uniform distribution. Stored in backoff form:
for every n-gram seen in training its interpolated log-probability, and for every
context its log backoff weight, so that

    log p(w | h) = logp[hw]                           if hw was seen
                 = logbow[h] + log p(w | h[1:])       else (logbow 0 if h was not seen)

which equals the interpolated model exactly. An n-gram is found by a 64-bit hash of its
tokens in one sorted array per order (searchsorted); a collision needs two of a few
million keys of one order to share 64 bits, about one chance in a million per model.
"""
import numpy as np

MULT = np.uint64(0x9E3779B97F4A7C15)   # odd: the rolling hash's multiplier
MIN_DISCOUNT = 0.05


def _mix(h):
    """A final avalanche (splitmix64's) so that near keys spread over the 64 bits."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _hashes(padded, ends, k):
    """Hash of the k tokens of `padded` that end at each index of `ends`."""
    h = np.zeros(len(ends), np.uint64)
    with np.errstate(over="ignore"):
        for o in range(k - 1, -1, -1):
            h = h * MULT + padded[ends - o].astype(np.uint64) + np.uint64(1)
        return _mix(h + np.uint64(k))


def _lookup(keys, values, h):
    """(the value of each hash of h in the sorted array keys, 0 where absent; found)."""
    if not len(keys):
        return np.zeros(len(h)), np.zeros(len(h), bool)
    i = np.minimum(np.searchsorted(keys, h), len(keys) - 1)
    found = keys[i] == h
    return np.where(found, values[i], 0.0), found


def _layout(seqs, order):
    """All sequences in one array, each after order - 1 BOS and followed by EOS; returns
    (padded, ends, eos_at): the indices of the scored tokens (every token and each EOS),
    and of each EOS."""
    seqs = [np.asarray(s, np.int64) for s in seqs]
    pad = order - 1
    lens = np.array([len(s) + 1 for s in seqs], np.int64)    # tokens + EOS
    starts = np.cumsum(np.concatenate([[0], lens + pad]))[:-1] + pad
    padded = np.zeros(int((lens + pad).sum()), np.int64)
    for s, at in zip(seqs, starts):
        padded[at:at + len(s)] = s
    ends = np.concatenate([np.arange(a, a + n) for a, n in zip(starts, lens)]) if len(seqs) \
        else np.zeros(0, np.int64)
    return padded, ends, starts + lens - 1


def _discounts(counts):
    """Modified Kneser-Ney's D1, D2, D3+ from the counts' count-of-counts, each at least
    MIN_DISCOUNT: on odd counts the estimate can fall to zero or below, and a discount of
    zero would leave no probability for what a context was never seen to precede."""
    n = [max(int(np.sum(counts == i)), 1) for i in (1, 2, 3, 4)]
    y = n[0] / (n[0] + 2 * n[1])
    d = np.array([0.0, 1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1],
                  3 - 4 * y * n[3] / n[2]])
    return np.clip(d, [0.0, MIN_DISCOUNT, MIN_DISCOUNT, MIN_DISCOUNT], [0.0, 1.0, 2.0, 3.0])


class NGram:
    """A trained model: NGram.train(seqs, vocab, order), then logprobs(seqs)."""

    def __init__(self, order, vocab, keys, logp, ctx, logbow, unk_logp):
        self.order, self.vocab = int(order), int(vocab)
        self.keys, self.logp = keys, logp        # per order k = 1..order (index k - 1)
        self.ctx, self.logbow = ctx, logbow      # per order k = 2..order (index k - 2)
        self.unk_logp = float(unk_logp)

    @classmethod
    def train(cls, seqs, vocab, order):
        """seqs: token sequences (ids 1..vocab); order >= 1."""
        if order < 1:
            raise ValueError("order must be at least 1")
        eos = vocab + 1
        padded, ends, eos_at = _layout(seqs, order)
        padded[eos_at] = eos
        keys, logp, ctx, logbow = [], [], [], []
        # level[k]: (sorted unique hashes of k-grams, their KN counts, first index)
        level = {}
        for k in range(order, 0, -1):
            h = _hashes(padded, ends, k)
            uniq, first, raw = np.unique(h, return_index=True, return_counts=True)
            if k == order:
                c = raw.astype(np.float64)
            else:   # continuation count: how many distinct tokens precede it
                above = level[k + 1]
                suffix = _hashes(padded, ends[above[2]], k)   # suffix of each (k+1)-gram
                su, sc = np.unique(suffix, return_counts=True)
                c = sc[np.searchsorted(su, uniq)].astype(np.float64)
            level[k] = (uniq, c, first)
        total_vocab = vocab + 2                                  # tokens, EOS, unknown
        prob = None
        for k in range(1, order + 1):
            uniq, c, first = level[k]
            d = _discounts(c)
            disc = np.maximum(c - d[np.minimum(c, 3).astype(int)], 0.0)
            if k == 1:
                tot = c.sum()
                gamma = (d[1] * np.sum(c == 1) + d[2] * np.sum(c == 2) + d[3] * np.sum(c >= 3)) / tot
                p = disc / tot + gamma / total_vocab
                unk = gamma / total_vocab
                keys.append(uniq), logp.append(np.log(p))
                prob = (uniq, p)
                continue
            idx = ends[first]
            hctx = _hashes(padded, idx - 1, k - 1)               # each k-gram's context
            cu, inv = np.unique(hctx, return_inverse=True)
            ctot = np.bincount(inv, c)
            nb = [np.bincount(inv, m) for m in (c == 1, c == 2, c >= 3)]
            gamma = (d[1] * nb[0] + d[2] * nb[1] + d[3] * nb[2]) / ctot
            lower = _hashes(padded, idx, k - 1)                  # the same k-gram without its first token
            lp = prob[1][np.searchsorted(prob[0], lower)]
            p = disc / ctot[inv] + gamma[inv] * lp
            keys.append(uniq), logp.append(np.log(p))
            ctx.append(cu), logbow.append(np.log(gamma))
            prob = (uniq, p)
        return cls(order, vocab, keys, logp, ctx, logbow, np.log(unk))

    def logprobs(self, seqs):
        """Each sequence's log-probability (natural log), EOS included."""
        r = self.token_logprobs(seqs)
        lens = np.array([len(s) + 1 for s in seqs], np.int64)
        return np.add.reduceat(r, np.cumsum(np.concatenate([[0], lens]))[:-1]) if len(seqs) \
            else np.zeros(0)

    def token_logprobs(self, seqs):
        """log p(token | the order - 1 before it) of every token of every sequence, then
        of its EOS, all in one array (sequence after sequence)."""
        padded, ends, eos_at = _layout(seqs, self.order)
        padded[eos_at] = self.vocab + 1
        bad = (padded[ends] < 1) | (padded[ends] > self.vocab + 1)
        padded[ends[bad]] = self.vocab + 2                       # one unknown token
        r = np.full(len(ends), self.unk_logp)
        for k in range(1, self.order + 1):   # r: log p(w | the last k - 1 tokens)
            lp, hit = _lookup(self.keys[k - 1], self.logp[k - 1], _hashes(padded, ends, k))
            if k > 1:   # an unseen k-gram backs off: its context's weight (0 if unseen)
                r = r + _lookup(self.ctx[k - 2], self.logbow[k - 2],
                                _hashes(padded, ends - 1, k - 1))[0]
            r = np.where(hit, lp, r)
        return r
