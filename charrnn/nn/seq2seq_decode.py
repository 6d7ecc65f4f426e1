"""Decoding an encoder-decoder (charrnn.nn.seq2seq.Seq2Seq): greedy and beam search.

Both score a hypothesis by the sum of its tokens' log-probabilities (float64, no length
normalisation) and never emit BOS. A hypothesis ends when it emits EOS (not part of the
output) or after max_len tokens (then it is cut there, without EOS). Under these rules
beam search with a beam as wide as the number of hypotheses is exhaustive search, and a
beam of 1 is greedy decoding: the tests check both.
"""
import numpy as np

from charrnn.errors import ConfigError
from charrnn.nn.seq2seq import BOS, EOS


def _log_probs(model, feat):
    # (R, Vt) float64 log-softmax of the output layer, BOS forbidden
    z = model.logits(feat).astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    lp[:, BOS] = -np.inf
    return lp


def _check_len(max_len):
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ConfigError(f"max_len must be a positive integer, got {max_len!r}")


def greedy(model, src, src_len, max_len):
    """(outputs, scores): per row the argmax token at every step, a list of target ids
    (EOS excluded), and its summed log-probability."""
    _check_len(max_len)
    src, src_len, _, _ = model.check(src, src_len)
    N = src.shape[1]
    E, K, _ = model.encode(src, src_len)
    state, ctx = model.zero_state(N, E.shape[2])
    prev = np.full(N, BOS, np.int32)
    outs, scores, done = [[] for _ in range(N)], np.zeros(N), np.zeros(N, bool)
    for s in range(max_len):
        state, ctx, feat, _ = model.step(prev, state, ctx, E, K, src_len)
        lp = _log_probs(model, feat)                                    # (N, Vt)
        prev = lp.argmax(axis=1).astype(np.int32)
        for n in np.flatnonzero(~done):
            scores[n] += lp[n, prev[n]]
            if prev[n] == EOS:
                done[n] = True
            else:
                outs[n].append(int(prev[n]))
        if done.all():
            break
    return outs, scores


def beam_search(model, src_ids, beam, max_len):
    """(output, score): the best hypothesis found for one source (a sequence of source
    ids), keeping the `beam` best expansions at every step (finished ones take a place)."""
    _check_len(max_len)
    if isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) or beam < 1:
        raise ConfigError(f"beam must be a positive integer, got {beam!r}")
    src = np.asarray(src_ids).reshape(-1, 1)
    src, src_len, _, _ = model.check(src, [src.shape[0]])
    E, K, _ = model.encode(src, src_len)                               # (1, S, C), (1, S, A)
    state, ctx = model.zero_state(1, E.shape[2])
    scores, tokens = np.zeros(1), [[]]
    finished = []                                                       # (score, tokens)
    for s in range(max_len):
        B = len(tokens)
        prev = np.array([t[-1] if t else BOS for t in tokens], np.int32)
        state, ctx, feat, _ = model.step(prev, state, ctx, np.repeat(E, B, 0),
                                         np.repeat(K, B, 0), np.repeat(src_len, B))
        cand = scores[:, None] + _log_probs(model, feat)                # (B, Vt)
        order = np.argsort(-cand.ravel(), kind="stable")[:beam]
        keep = []
        for i in order:
            b, t = divmod(int(i), cand.shape[1])
            if not np.isfinite(cand[b, t]):
                continue
            if t == EOS:
                finished.append((cand[b, t], tokens[b]))
            elif s == max_len - 1:
                finished.append((cand[b, t], tokens[b] + [t]))          # cut at max_len
            else:
                keep.append((b, t))
        if not keep:
            break
        rows = [b for b, _ in keep]
        new_scores = np.array([cand[b, t] for b, t in keep])
        # log-probabilities only lower a score: nothing alive can beat a finished one
        if finished and max(f[0] for f in finished) >= new_scores.max():
            break
        scores, tokens = new_scores, [tokens[b] + [t] for b, t in keep]
        state, ctx = tuple(a[rows] for a in state), ctx[rows]
    best = max(range(len(finished)), key=lambda i: (finished[i][0], -i))
    return finished[best][1], float(finished[best][0])
