"""The specification of the encoder-decoder with attention (issue 32), in NumPy, float64.

Read one row at a time: this file says *what* charrnn.nn.seq2seq computes; the tests hold
the compiled path to it, to finite differences and to PyTorch.

Sizes: S source steps, T target steps, N rows, Vs / Vt source / target vocabularies,
       E embedding, He encoder hidden per direction, C = 2He encoder output,
       Hd decoder hidden, A attention size (Bahdanau; Luong: A = Hd), G gate blocks.
Inputs: src (S, N) ids, row n valid in src[:src_len[n], n];
        tgt (T+1, N) ids, tgt[0, n] = BOS; row n predicts tgt[1..tgt_len[n], n] (its
        tokens then EOS) from the inputs tgt[0..tgt_len[n]-1, n]: teacher forcing.
Parameters (a dict; PyTorch names where a torch module has them):
    src_embed                    (Vs, E)
    enc.<bidirectional names>    reference_bidir's, e.g. enc.weight_ih_l0 (G*He, E)
    tgt_embed                    (Vt, E)
    dec.weight_ih (G*Hd, E + C)  dec.weight_hh (G*Hd, Hd)  dec.bias_ih, dec.bias_hh (G*Hd,)
    attn.W_k   (C, A)            keys:  k_j = e_j W_k           (stored input-major)
    attn.W_q   (Hd, A)           Bahdanau only: the query map   (stored input-major)
    attn.v     (A,)              Bahdanau only
    out.weight (Vt, Hd + C)      out.bias (Vt,)

The model, per row (e_1..e_l the encoder outputs, l = src_len):
    e = bidirectional stack over src_embed[src]            (l, C)   reference_bidir
    h_0 = c_0 = 0, ctx_0 = 0
    for s = 1..T:
        x_s   = [tgt_embed[tgt[s-1]] ; ctx_{s-1}]          (E + C)  input feeding
        h_s   = cell(x_s, h_{s-1})                         LSTM (with c) or GRU, reference.py
        score_j = v . tanh(h_s W_q + e_j W_k)              "bahdanau" (additive)
                = h_s . (e_j W_k)                          "luong" (multiplicative, general)
        a     = softmax(score_1..score_l)                  positions >= l get weight 0
        ctx_s = sum_j a_j e_j                              (C)
        logits_s = [h_s ; ctx_s] out.weight^T + out.bias   (Vt)
    loss = sum over rows and s <= tgt_len of -log softmax(logits_s)[tgt[s]],
           divided by the number of predicted tokens (mean nats per target token).

Decisions:
- Both attentions query the *current* state h_s. With input feeding the cell already
  reads ctx_{s-1}, the attention of the previous state, so querying h_{s-1} again
  (Bahdanau's paper) adds nothing the loop lacks; one loop then serves both, and they
  differ only in the score.
- The decoder starts from zeros, not from a map of the encoder's final states: the
  attention gives every step the whole source, the encoder and decoder sizes stay
  independent, and there is no extra layer whose gradient could hide a mistake.
- Keys e_j W_k are computed once per batch: the per-step work is then only the scores,
  the softmax and the weighted sum.
"""
import numpy as np

from charrnn.nn import reference as ref
from charrnn.nn import reference_bidir as rb

ATTENTIONS = ("bahdanau", "luong")


def param_shapes(cell, attention, Vs, Vt, E, He, Hd, A, L=1):
    """Name -> shape, in a fixed order (the flat buffer's)."""
    G, C = ref.gates(cell), 2 * He
    shapes = {"src_embed": (Vs, E)}
    shapes.update({"enc." + k: s for k, s in rb.param_shapes(cell, E, He, L).items()})
    shapes["tgt_embed"] = (Vt, E)
    shapes.update({"dec.weight_ih": (G * Hd, E + C), "dec.weight_hh": (G * Hd, Hd),
                   "dec.bias_ih": (G * Hd,), "dec.bias_hh": (G * Hd,)})
    if attention == "bahdanau":
        shapes.update({"attn.W_k": (C, A), "attn.W_q": (Hd, A), "attn.v": (A,)})
    else:
        shapes["attn.W_k"] = (C, Hd)
    shapes.update({"out.weight": (Vt, Hd + C), "out.bias": (Vt,)})
    return shapes


# ---- attention over a batch, one decoder step (the compiled kernel's specification) ----
# q (N, Hd) queries; K (N, S, A) keys; E (N, S, C) encoder outputs (batch-major);
# lengths (N,). Only K[n, :l], E[n, :l] are read (l = lengths[n]).

def attend_forward(attention, q, K, E, lengths, W_q=None, v=None):
    """-> (ctx (N, C), alpha (N, S), cache)."""
    N, S, C = E.shape
    ctx = np.zeros((N, C), E.dtype)
    alpha = np.zeros((N, S), E.dtype)
    tanhs = [None] * N
    for n in range(N):
        l = lengths[n]
        if attention == "bahdanau":
            tanhs[n] = np.tanh(q[n] @ W_q + K[n, :l])            # (l, A)
            score = tanhs[n] @ v                                 # (l,)
        else:
            score = K[n, :l] @ q[n]                              # (l,)
        w = np.exp(score - score.max())
        alpha[n, :l] = w / w.sum()
        ctx[n] = alpha[n, :l] @ E[n, :l]                         # (C,)
    return ctx, alpha, dict(attention=attention, q=q, K=K, E=E, lengths=lengths,
                            W_q=W_q, v=v, alpha=alpha, tanhs=tanhs)


def attend_backward(dctx, cache, dq, dK, dE, dW_q=None, dv=None):
    """Adds the gradients of sum(dctx * ctx) into dq, dK, dE (and dW_q, dv: Bahdanau)."""
    q, K, E, alpha = cache["q"], cache["K"], cache["E"], cache["alpha"]
    for n in range(E.shape[0]):
        l = cache["lengths"][n]
        a = alpha[n, :l]                                         # (l,)
        da = E[n, :l] @ dctx[n]                                  # (l,)
        dE[n, :l] += np.outer(a, dctx[n])                        # (l, C)
        ds = a * (da - a @ da)                                   # softmax backward (l,)
        if cache["attention"] == "bahdanau":
            t = cache["tanhs"][n]                                # (l, A)
            dv += ds @ t
            du = ds[:, None] * cache["v"][None, :] * (1 - t * t)  # (l, A) d(pre-tanh)
            dK[n, :l] += du
            dqW = du.sum(axis=0)                                 # (A,)
            dq[n] += cache["W_q"] @ dqW
            dW_q += np.outer(q[n], dqW)
        else:
            dq[n] += ds @ K[n, :l]
            dK[n, :l] += np.outer(ds, q[n])


# ---- the whole model, one row at a time ----------------------------------------------

def _cell_step(cell, x, state, p):
    w = (p["dec.weight_ih"], p["dec.weight_hh"], p["dec.bias_ih"], p["dec.bias_hh"])
    if cell == "lstm":
        y, h, c, cache = ref.lstm_forward(x[None, None], state[0][None], state[1][None], *w)
        return (h[0], c[0]), cache
    y, h, cache = ref.gru_forward(x[None, None], state[0][None], *w)
    return (h[0],), cache


def _cell_back(cell, dh, dstate, cache, g):
    # dh: gradient into h_s from above (output, attention); dstate: into the state from
    # step s+1. Returns (dx (D,), gradient into the state entering step s).
    Hd = dh.shape[0]
    D = cache["x"].shape[2]
    dx = np.zeros((1, 1, D))
    dh0 = np.zeros((1, Hd))
    dw = (g["dec.weight_ih"], g["dec.weight_hh"], g["dec.bias_ih"], g["dec.bias_hh"])
    if cell == "lstm":
        dc0 = np.zeros((1, Hd))
        ref.lstm_backward(dh[None, None], dstate[0][None], dstate[1][None], cache, dx, dh0, dc0, *dw)
        return dx[0, 0], (dh0[0], dc0[0])
    ref.gru_backward(dh[None, None], dstate[0][None], cache, dx, dh0, *dw)
    return dx[0, 0], (dh0[0],)


def row_loss_and_grad(cell, attention, params, src, tgt, grads, masks=None, smoothing=0.0):
    """Summed cross-entropy of one row (src (l,), tgt (m+1,) with tgt[0] = BOS); adds its
    gradients into grads (a dict like params). Dropout: masks = (source embeddings (l, E),
    target embeddings (m, E), output features (m, Hd + C)) multiply those three values.
    Label smoothing: each step's target distribution is (1 - smoothing) onehot +
    smoothing / Vt (the cross-entropy against it)."""
    p, g = params, grads
    Hd = p["dec.weight_hh"].shape[1]
    ms, mt, mf = masks if masks is not None else (1.0, np.ones((len(tgt) - 1, 1)), 1.0)
    enc = {k[4:]: v for k, v in p.items() if k.startswith("enc.")}
    x = (p["src_embed"][src] * ms)[:, None, :]                   # (l, 1, E)
    l = len(src)
    out, _, ecache = rb.forward(cell, x, np.array([l]), enc)     # (l, 1, C)
    e = out[:, 0]                                                # (l, C)
    K = e @ p["attn.W_k"]                                        # (l, A)
    C = e.shape[1]
    state = tuple(np.zeros(Hd) for _ in range(2 if cell == "lstm" else 1))
    ctx = np.zeros(C)
    lens = np.array([l])
    steps, loss = [], 0.0
    for s in range(1, len(tgt)):
        xs = np.concatenate([p["tgt_embed"][tgt[s - 1]] * mt[s - 1], ctx])   # (E + C,)
        state, ccache = _cell_step(cell, xs, state, p)
        h = state[0]
        ctxb, _, acache = attend_forward(attention, h[None], K[None], e[None], lens,
                                         p.get("attn.W_q"), p.get("attn.v"))
        ctx = ctxb[0]
        feat = np.concatenate([h, ctx])                          # (Hd + C,)
        if masks is not None:
            feat = feat * mf[s - 1]
        z = p["out.weight"] @ feat + p["out.bias"]               # (Vt,)
        z = z - z.max()
        logp = z - np.log(np.exp(z).sum())                       # (Vt,) log softmax
        prob = np.exp(logp)
        want = np.full(len(z), smoothing / len(z))                # (Vt,) target distribution
        want[tgt[s]] += 1 - smoothing
        loss -= want @ logp
        dz = prob - want
        steps.append((ccache, acache, feat, dz))
    # backward, last step first
    de, dK = np.zeros_like(e), np.zeros_like(K)
    dstate = tuple(np.zeros(Hd) for _ in state)
    dctx_next = np.zeros(C)                                      # from x_{s+1}'s ctx part
    E_t = p["tgt_embed"].shape[1]
    for s in reversed(range(1, len(tgt))):
        ccache, acache, feat, dz = steps[s - 1]
        g["out.weight"] += np.outer(dz, feat)
        g["out.bias"] += dz
        dfeat = p["out.weight"].T @ dz
        if masks is not None:
            dfeat = dfeat * mf[s - 1]
        dh, dctx = dfeat[:Hd].copy(), dfeat[Hd:] + dctx_next
        dq = np.zeros((1, Hd))
        attend_backward(dctx[None], acache, dq, dK[None], de[None], g.get("attn.W_q"),
                        g.get("attn.v"))
        dx, dstate = _cell_back(cell, dh + dq[0], dstate, ccache, g)
        g["tgt_embed"][tgt[s - 1]] += dx[:E_t] * mt[s - 1]
        dctx_next = dx[E_t:]
    g["attn.W_k"] += e.T @ dK
    de += dK @ p["attn.W_k"].T
    genc = {k[4:]: v for k, v in g.items() if k.startswith("enc.")}
    dx = rb.backward(de[:, None, :], None, ecache, genc)         # (l, 1, E)
    np.add.at(g["src_embed"], src, dx[:, 0] * ms)
    return loss


def loss_and_grad(cell, attention, params, src, src_len, tgt, tgt_len, masks=None,
                  smoothing=0.0):
    """(mean loss per predicted token, gradients as a dict like params). masks: None, or
    dropout's (S, N, E), (T, N, E), (T, N, Hd + C) masks, row n's part for row n;
    smoothing: label smoothing (row_loss_and_grad)."""
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    total = 0.0
    for n in range(src.shape[1]):
        l, m = src_len[n], tgt_len[n]
        row = None if masks is None else (masks[0][:l, n], masks[1][:m, n], masks[2][:m, n])
        total += row_loss_and_grad(cell, attention, params, src[:l, n], tgt[:m + 1, n],
                                   grads, row, smoothing)
    count = int(np.sum(tgt_len))
    for v in grads.values():
        v /= count
    return total / count, grads
