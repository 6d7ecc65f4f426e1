"""Decoding an encoder-decoder (charrnn.nn.seq2seq.Seq2Seq): greedy and beam search.

Both score a hypothesis by the sum of its tokens' log-probabilities (float64, no length
normalisation) and never emit BOS. A hypothesis ends when it emits EOS (not part of the
output) or after max_len tokens (then it is cut there, without EOS). Under these rules
beam search with a beam as wide as the number of hypotheses is exhaustive search, and a
beam of 1 is greedy decoding: the tests check both.

How: the sources are encoded once (Seq2Seq.encode), then one compiled call
(kernels/_decode.pyx, GIL released) runs the whole search over the batch: per step the
decoder cell, the attention and the output layer for every row as one batched product
each, then the argmax (greedy) or each source's beam bookkeeping. Beam search runs
`beam` rows per source, so all hypotheses of all sources of a batch step together; it
keeps the n best finished hypotheses (nbest_batch), or the best one.
"""
import numpy as np

from charrnn import _attn, _decode
from charrnn.errors import ConfigError, ShapeError
from charrnn.nn import cells


def _check_len(max_len):
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ConfigError(f"max_len must be a positive integer, got {max_len!r}")


def check_counts(**counts):
    """A one-line ConfigError unless every count (beam=..., n=...) is a positive integer."""
    for name, k in counts.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"{name} must be a positive integer, got {k!r}")


def _weights(model):
    # the decoder's arguments after (cell, kind): embedding, cell weights with their packs
    # (as the training loop's: empty for float64 or BLAS), then the attention's W_q, v
    P = model.params
    W_ih, W_hh = P["dec.weight_ih"], P["dec.weight_hh"]
    W_q, v = model._attn_weights()
    return (P["tgt_embed"], W_ih, cells.pack(None, "", W_ih, True), W_hh,
            cells.pack(None, "", W_hh, True), P["dec.bias_ih"], P["dec.bias_hh"]), (W_q, v)


def _output(model):
    W = model.params["out.weight"]
    return W, cells.pack(None, "", W, True), model.params["out.bias"]


def _rows(out, out_len):
    return [out[n, :out_len[n]].tolist() for n in range(out.shape[0])]


def greedy(model, src, src_len, max_len):
    """(outputs, scores): per row the argmax token at every step, a list of target ids
    (EOS excluded), and its summed log-probability (float64 array)."""
    _check_len(max_len)
    src, src_len, _, _ = model.check(src, src_len)
    N = src.shape[1]
    E, K, _ = model.encode(src, src_len)                               # (N, S, C), (N, S, A)
    cell, (W_q, v) = _weights(model)
    out, out_len, scores = np.empty((N, max_len), np.int32), np.empty(N, np.int64), np.empty(N)
    _decode.greedy(_decode.CELLS[model.cfg.cell], _attn.KINDS[model.cfg.attention], *cell,
                   K, E, W_q, v, src_len, model._own(), *_output(model), out, out_len, scores)
    return _rows(out, out_len), scores


def beam_search_batch(model, src, src_len, beam, max_len):
    """(outputs, scores): per source (columns of src (S, N), as greedy's) the best
    hypothesis found keeping the `beam` best expansions at every step (finished ones
    take a place), as a list of target ids, and its score."""
    best = nbest_batch(model, src, src_len, beam, max_len, 1)
    return [b[0][0] for b in best], np.array([b[0][1] for b in best])


def nbest_batch(model, src, src_len, beam, max_len, n):
    """Per source, the n <= beam best finished hypotheses of beam_search_batch's search,
    best first, as [(target ids, score), ...]: fewer when fewer finished."""
    _check_len(max_len)
    check_counts(beam=beam, n=n)
    if n > beam:
        raise ConfigError(f"n ({n}) can be at most the beam ({beam}): a beam keeps that many")
    src, src_len, _, _ = model.check(src, src_len)
    N = src.shape[1]
    E, K, _ = model.encode(src, src_len)
    # source n's hypotheses are rows n*beam .. n*beam + beam - 1 of the repeated keys
    E, K, lens = np.repeat(E, beam, 0), np.repeat(K, beam, 0), np.repeat(src_len, beam)
    cell, (W_q, v) = _weights(model)
    out, out_len = np.empty((N, n, max_len), np.int32), np.empty((N, n), np.int64)
    scores = np.empty((N, n))
    _decode.beam(_decode.CELLS[model.cfg.cell], _attn.KINDS[model.cfg.attention], *cell,
                 K, E, W_q, v, lens, model._own(), *_output(model), int(beam), out, out_len,
                 scores)
    return [[(out[i, k, :out_len[i, k]].tolist(), float(scores[i, k]))
             for k in range(n) if out_len[i, k] >= 0] for i in range(N)]


def beam_search(model, src_ids, beam, max_len):
    """(output, score): beam_search_batch of one source (a sequence of source ids)."""
    src = np.asarray(src_ids).reshape(-1, 1)
    outs, scores = beam_search_batch(model, src, [src.shape[0]], beam, max_len)
    return outs[0], float(scores[0])


def score_targets(model, src, src_len, tgt, tgt_len, of=None):
    """(N,) float64: the log-probability the decoder gives each row's target (tgt (T+1, N)
    from BOS, tgt_len (N,) counting EOS, as forward_backward takes them), summed over its
    tokens and EOS: what greedy and beam search score a hypothesis that ends with EOS.
    Teacher-forced, so one decoder pass scores any outputs: another model's n best (an
    ensemble re-ranks its members' candidates by their summed scores). of (N,): target
    row n is of source column of[n] (each source encoded once for all its targets);
    None: column n."""
    src, src_len = model.check(src, src_len)[:2]
    of = np.arange(src.shape[1]) if of is None else np.asarray(of, np.int64)
    if of.ndim != 1 or (of.size and not 0 <= of.min() <= of.max() < src.shape[1]):
        raise ShapeError(f"of must be (N,) source columns in 0..{src.shape[1] - 1}")
    E, K, _ = model.encode(src, src_len)                               # (U, S, C), (U, S, A)
    # rows longest target first, as training sorts them: decoder step s then runs only
    # the prefix of rows still inside their target (active[s]), not their padding
    tgt, tgt_len = model.check(src[:, of], src_len[of], tgt, tgt_len)[2:]
    order = np.argsort(-tgt_len, kind="stable")
    tgt, tgt_len, of = np.ascontiguousarray(tgt[:, order]), tgt_len[order], of[order]
    T, N = tgt.shape[0] - 1, tgt.shape[1]
    _, feats, valid, _ = model.teacher_forced(tgt, tgt_len, np.ascontiguousarray(E[of]),
                                              np.ascontiguousarray(K[of]), src_len[of])
    z = model.logits(feats[valid]).astype(np.float64)                 # (M, Vt) scored steps
    z -= z.max(1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(1, keepdims=True))                  # log softmax
    picked = np.zeros((T, N))
    picked[valid] = lp[np.arange(len(z)), tgt[1:][valid]]
    out = np.empty(N)
    out[order] = picked.sum(0)
    return out
