"""Decoding the attention encoder-decoder: greedy and beam search, each one nogil call over
a whole batch (charrnn/nn/seq2seq_decode.py wraps them; the model is charrnn.nn.seq2seq,
its specification charrnn.nn.reference_seq2seq).

Sizes: R rows (sources for greedy, sources x beam for beam search), Em embedding,
C encoder output, D = Em + C the cell input, Hd decoder hidden, GH = G*Hd (G: LSTM 4,
GRU 3), S source steps, A key size, F = Hd + C the output layer's input, Vt target
vocabulary, L = max_len.
One step, for every row r at once, from the previous token prev[r] and the state
(h, c, ctx) it left (h = c = ctx = 0 before the first step, prev = BOS):
    xs        = [tgt_embed[prev] ; ctx]                              (R, D)   input feeding
    LSTM      act = xs W_ih^T + b_ih + b_hh + h W_hh^T; lstm_fwd_step -> h', c'
    GRU       act = xs W_ih^T + b_ih, gh = h W_hh^T + b_hh; gru_fwd_step -> h'
    attention (kernels/_attn_core.pxi) with query h' -> ctx'         (R, C)
    logits    = [h' ; ctx'] W_out^T + b_out                          (R, Vt)
    lp        = log_softmax(logits) in float64, lp[:, BOS] = -inf    (R, Vt)
These are the training loop's maths (kernels/_decoder.pyx: cellmath.h's step functions,
mm / mm_bias, attend_fwd), so decoding scores exactly what training optimises.
The search rules (charrnn/nn/seq2seq_decode.py's docstring) are then applied per row in
C: greedy takes the argmax (the first one among equals), beam search keeps the `width`
best expansions of each source in the order of a stable sort by descending score.
Every shape is checked, and every buffer allocated, before the GIL is released.
"""
import numpy as np

from cython cimport floating
from libc.math cimport exp, log, tanh, INFINITY, isfinite
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.string cimport memcpy, memset
from _blas cimport mm
from _cellmath cimport (lstm_fwd_step_f32, lstm_fwd_step_f64, gru_fwd_step_f32,
                        gru_fwd_step_f64, mm_bias, packed)

include "_dispatch.pxi"

KERNEL = "decode"
include "_s2s_common.pxi"   # BAHDANAU, LUONG, the attention step, LSTM, GRU, CELLS, _need

cdef enum:
    BOS = 0
    EOS = 1


cdef tuple _sh(Py_ssize_t *shape, int nd):
    return tuple([shape[i] for i in range(nd)])


def _check(int cell, int kind, R, Vt, Em, C, Hd, S, A, shapes):
    """Every array's shape against the sizes, or one ValueError naming the first misfit."""
    G = 4 if cell == LSTM else 3
    _need(cell in (LSTM, GRU) and kind in (BAHDANAU, LUONG), f"cell {cell}, kind {kind}")
    _need(kind == BAHDANAU or A == Hd, "Luong keys must have the decoder's size")
    _need(Vt >= 3, f"a target vocabulary of {Vt}: BOS, EOS and at least one token")
    want = dict(emb=(Vt, Em), W_ih=(G * Hd, Em + C), W_hh=(G * Hd, Hd), b_ih=(G * Hd,),
                b_hh=(G * Hd,), K=(R, S, A), E=(R, S, C),
                W_q=(Hd, A) if kind == BAHDANAU else (0, 0),
                v=(A,) if kind == BAHDANAU else (0,), W_out=(Vt, Hd + C), b_out=(Vt,))
    for name, shape in shapes.items():
        _need(tuple(shape) == want[name], f"{name} {tuple(shape)}, expected {want[name]}")


def _scratch(dt, int cell, int kind, K, E, lengths, D, Hd, Vt):
    """The scratch of one decoding call, allocated with the GIL: the state in two slots
    (current, next), the step's intermediates, float64 log-probabilities, and the rows'
    own copies of K, E and lengths (what compacting the rows moves)."""
    R, S, C, A = E.shape[0], E.shape[1], E.shape[2], K.shape[2]
    GH = (4 if cell == LSTM else 3) * Hd
    bah = kind == BAHDANAU
    return dict(K=np.array(K, dt), E=np.array(E, dt), lengths=np.array(lengths, np.int64),
                h=np.zeros((2, R, Hd), dt),
                c=np.zeros((2, R, Hd) if cell == LSTM else (2, 0, 0), dt),
                ctx=np.zeros((2, R, C), dt), xs=np.empty((R, D), dt), act=np.empty((R, GH), dt),
                tc=np.empty((R, Hd), dt), gh=np.empty((R, GH) if cell == GRU else (0, 0), dt),
                alpha=np.empty((R, S), dt), tanhs=np.empty((R, S, A) if bah else (0, 0, 0), dt),
                qW=np.empty((R, A) if bah else (0, 0), dt), feat=np.empty((R, Hd + C), dt),
                logits=np.empty((R, Vt), dt), lp=np.empty((R, Vt), np.float64))


cdef inline void _log_softmax(const floating *z, double *lp, Py_ssize_t V) noexcept nogil:
    # lp := z - logsumexp(z) in float64 (seq2seq_decode's formula), then lp[BOS] := -inf
    cdef Py_ssize_t j
    cdef double mx = z[0], tot = 0
    for j in range(1, V):
        if z[j] > mx:
            mx = z[j]
    for j in range(V):
        lp[j] = <double>z[j] - mx
        tot += exp(lp[j])
    tot = log(tot)
    for j in range(V):
        lp[j] = lp[j] - tot
    lp[BOS] = -INFINITY


cdef void _step(int cell, int kind, const int32_t *prev, const floating[:, ::1] emb,
                const floating[:, ::1] W_ih, const floating *P_ih,
                const floating[:, ::1] W_hh, const floating *P_hh,
                const floating[::1] b_ih, const floating[::1] b_hh,
                const floating[:, :, ::1] K, const floating[:, :, ::1] E,
                const floating[:, ::1] W_q, const floating[::1] v,
                const int64_t[::1] lengths, bint own,
                const floating[:, ::1] W_out, const floating *P_out, const floating[::1] b_out,
                floating[:, ::1] h, floating[:, ::1] c, floating[:, ::1] ctx,
                floating[:, ::1] h2, floating[:, ::1] c2, floating[:, ::1] ctx2,
                floating[:, ::1] xs, floating[:, ::1] act, floating[:, ::1] tc,
                floating[:, ::1] gh, floating[:, ::1] alpha, floating[:, :, ::1] tanhs,
                floating[:, ::1] qW, floating[:, ::1] feat, floating[:, ::1] logits,
                double[:, ::1] lp) noexcept nogil:
    """One step over every row: (h, c, ctx) and prev -> (h2, c2, ctx2) and lp."""
    cdef Py_ssize_t R = xs.shape[0], D = xs.shape[1], Em = emb.shape[1], C = ctx.shape[1]
    cdef Py_ssize_t Hd = h.shape[1], GH = act.shape[1], Vt = W_out.shape[0], F = Hd + C, n
    for n in range(R):
        memcpy(&xs[n, 0], &emb[prev[n], 0], Em * sizeof(floating))
        memcpy(&xs[n, Em], &ctx[n, 0], C * sizeof(floating))
    if cell == LSTM:
        mm_bias(<int>R, <int>GH, <int>D, &xs[0, 0], <int>D, &W_ih[0, 0], <int>D, P_ih,
                &b_ih[0], &b_hh[0], &act[0, 0], <int>GH)
        mm(P_hh != NULL, False, True, <int>R, <int>GH, <int>Hd, &h[0, 0], <int>Hd,
           &W_hh[0, 0], <int>Hd, P_hh, True, &act[0, 0], <int>GH)
        if floating is float:
            lstm_fwd_step_f32(&act[0, 0], &c[0, 0], &c2[0, 0], &tc[0, 0], &h2[0, 0], R, Hd)
        else:
            lstm_fwd_step_f64(&act[0, 0], &c[0, 0], &c2[0, 0], &tc[0, 0], &h2[0, 0], R, Hd)
    else:
        mm_bias(<int>R, <int>GH, <int>D, &xs[0, 0], <int>D, &W_ih[0, 0], <int>D, P_ih,
                &b_ih[0], NULL, &act[0, 0], <int>GH)
        mm_bias(<int>R, <int>GH, <int>Hd, &h[0, 0], <int>Hd, &W_hh[0, 0], <int>Hd, P_hh,
                &b_hh[0], NULL, &gh[0, 0], <int>GH)
        if floating is float:
            gru_fwd_step_f32(&act[0, 0], &gh[0, 0], &tc[0, 0], &h[0, 0], &h2[0, 0], R, Hd)
        else:
            gru_fwd_step_f64(&act[0, 0], &gh[0, 0], &tc[0, 0], &h[0, 0], &h2[0, 0], R, Hd)
    attend_fwd(kind, h2, K, E, W_q, v, lengths, own, alpha, ctx2, tanhs, qW)
    for n in range(R):
        memcpy(&feat[n, 0], &h2[n, 0], Hd * sizeof(floating))
        memcpy(&feat[n, Hd], &ctx2[n, 0], C * sizeof(floating))
    mm_bias(<int>R, <int>Vt, <int>F, &feat[0, 0], <int>F, &W_out[0, 0], <int>F, P_out,
            &b_out[0], NULL, &logits[0, 0], <int>Vt)
    for n in range(R):
        _log_softmax(&logits[n, 0], &lp[n, 0], Vt)


cdef inline void _copy_state(int cell, floating[:, :, ::1] hb, floating[:, :, ::1] cb,
                             floating[:, :, ::1] xb, int to, Py_ssize_t dst, int frm,
                             Py_ssize_t src) noexcept nogil:
    """The decoder state (h, c, ctx) of row src in slot frm -> row dst in slot to."""
    memcpy(&hb[to, dst, 0], &hb[frm, src, 0], hb.shape[2] * sizeof(floating))
    if cell == LSTM:
        memcpy(&cb[to, dst, 0], &cb[frm, src, 0], cb.shape[2] * sizeof(floating))
    memcpy(&xb[to, dst, 0], &xb[frm, src, 0], xb.shape[2] * sizeof(floating))


cdef inline void _copy_source(floating[:, :, ::1] Kc, floating[:, :, ::1] Ec,
                              int64_t[::1] lc, Py_ssize_t dst, Py_ssize_t src) noexcept nogil:
    """Row src's keys, encoder outputs and length -> row dst."""
    memcpy(&Kc[dst, 0, 0], &Kc[src, 0, 0], Kc.shape[1] * Kc.shape[2] * sizeof(floating))
    memcpy(&Ec[dst, 0, 0], &Ec[src, 0, 0], Ec.shape[1] * Ec.shape[2] * sizeof(floating))
    lc[dst] = lc[src]


cdef int _prepare(int cell, int kind, const floating[:, ::1] emb,
                  const floating[:, ::1] W_ih, const floating[:, ::1] W_hh,
                  const floating[::1] b_ih, const floating[::1] b_hh,
                  const floating[:, :, ::1] K, const floating[:, :, ::1] E,
                  const floating[:, ::1] W_q, const floating[::1] v,
                  const int64_t[::1] lengths, const floating[:, ::1] W_out,
                  const floating[::1] b_out) except -1:
    cdef Py_ssize_t R = E.shape[0], C = E.shape[2], Hd = W_hh.shape[1]
    _check(cell, kind, R, W_out.shape[0], emb.shape[1], C, Hd, E.shape[1], K.shape[2], dict(
        emb=_sh(emb.shape, 2), W_ih=_sh(W_ih.shape, 2), W_hh=_sh(W_hh.shape, 2),
        b_ih=_sh(b_ih.shape, 1), b_hh=_sh(b_hh.shape, 1), K=_sh(K.shape, 3),
        E=_sh(E.shape, 3), W_q=_sh(W_q.shape, 2), v=_sh(v.shape, 1),
        W_out=_sh(W_out.shape, 2), b_out=_sh(b_out.shape, 1)))
    _lengths_ok(lengths, R, E.shape[1])
    return 0


def greedy(int cell, int kind, const floating[:, ::1] emb,
           const floating[:, ::1] W_ih, const floating[::1] Wp_ih,
           const floating[:, ::1] W_hh, const floating[::1] Wp_hh,
           const floating[::1] b_ih, const floating[::1] b_hh,
           const floating[:, :, ::1] K, const floating[:, :, ::1] E,
           const floating[:, ::1] W_q, const floating[::1] v, const int64_t[::1] lengths,
           bint own, const floating[:, ::1] W_out, const floating[::1] Wp_out,
           const floating[::1] b_out, int32_t[:, ::1] out, int64_t[::1] out_len,
           double[::1] scores):
    """Greedy decoding of R rows for at most L = out.shape[1] steps: row r's tokens in
    out[r, :out_len[r]] (EOS excluded), its summed log-probability in scores[r]; stops
    when every row has emitted EOS. Wp_*: packs as the training loop's (cells.pack,
    transposed), or empty (BLAS). -> the number of steps run.
    Finished rows stop costing: once an eighth of the rows stepping have emitted EOS,
    the others move to the front (state, keys, encoder outputs, length; `row` maps a
    place back to its source) and the next steps run that prefix only. A row's
    arithmetic does not depend on its place, so the outputs are the same."""
    cdef Py_ssize_t R = E.shape[0], Hd = W_hh.shape[1], C = E.shape[2], Vt = W_out.shape[0]
    cdef Py_ssize_t L = out.shape[1], D = W_ih.shape[1], GH = W_hh.shape[0], s, n, j, a
    cdef Py_ssize_t m = R, live, p, r
    cdef Py_ssize_t steps = 0
    cdef int cur = 0
    _prepare(cell, kind, emb, W_ih, W_hh, b_ih, b_hh, K, E, W_q, v, lengths, W_out, b_out)
    _need(out.shape[0] == R and out_len.shape[0] == R and scores.shape[0] == R and L >= 1,
          "out, out_len, scores")
    own = own and floating is float
    cdef const floating *P_ih = packed(Wp_ih, D, GH, "decode", "Wp_ih")
    cdef const floating *P_hh = packed(Wp_hh, Hd, GH, "decode", "Wp_hh")
    cdef const floating *P_out = packed(Wp_out, Hd + C, Vt, "decode", "Wp_out")
    dt = np.float32 if floating is float else np.float64
    z = _scratch(dt, cell, kind, K, E, lengths, D, Hd, Vt)
    cdef floating[:, :, ::1] hb = z["h"], cb = z["c"], xb = z["ctx"], tanhs = z["tanhs"]
    cdef floating[:, ::1] xs = z["xs"], act = z["act"], tc = z["tc"], gh = z["gh"]
    cdef floating[:, ::1] alpha = z["alpha"], qW = z["qW"], feat = z["feat"]
    cdef floating[:, ::1] logits = z["logits"]
    cdef double[:, ::1] lp = z["lp"]
    cdef int32_t[::1] prev = np.full(R, BOS, np.int32)
    cdef uint8_t[::1] done = np.zeros(R, np.uint8)
    cdef floating[:, :, ::1] Kc = z["K"], Ec = z["E"]
    cdef int64_t[::1] lc = z["lengths"], row = np.arange(R, dtype=np.int64)  # place -> row
    if R == 0:
        return 0
    with nogil:
        for n in range(R):
            out_len[n] = 0
            scores[n] = 0
        for s in range(L):
            _step(cell, kind, &prev[0], emb, W_ih, P_ih, W_hh, P_hh, b_ih, b_hh, Kc[:m],
                  Ec[:m], W_q, v, lc[:m], own, W_out, P_out, b_out, hb[cur][:m],
                  cb[cur][:m], xb[cur][:m], hb[1 - cur][:m], cb[1 - cur][:m],
                  xb[1 - cur][:m], xs[:m], act[:m], tc[:m], gh[:m], alpha[:m], tanhs[:m],
                  qW[:m], feat[:m], logits[:m], lp[:m])
            cur = 1 - cur
            steps += 1
            live = 0
            for n in range(m):
                a = 1                                   # lp[BOS] = -inf: never the argmax
                for j in range(2, Vt):
                    if lp[n, j] > lp[n, a]:
                        a = j
                if not done[n]:
                    r = row[n]
                    scores[r] += lp[n, a]
                    if a == EOS:
                        done[n] = 1
                    else:
                        out[r, out_len[r]] = <int32_t>a
                        out_len[r] += 1
                prev[n] = <int32_t>a
                live += 1 - done[n]
            if live == 0:
                break
            if 8 * (m - live) >= m:
                p = 0
                for n in range(m):
                    if done[n]:
                        continue
                    if p != n:
                        _copy_state(cell, hb, cb, xb, cur, p, cur, n)
                        _copy_source(Kc, Ec, lc, p, n)
                        row[p], prev[p], done[p] = row[n], prev[n], 0
                    p += 1
                m = p
    return steps


def beam(int cell, int kind, const floating[:, ::1] emb,
         const floating[:, ::1] W_ih, const floating[::1] Wp_ih,
         const floating[:, ::1] W_hh, const floating[::1] Wp_hh,
         const floating[::1] b_ih, const floating[::1] b_hh,
         const floating[:, :, ::1] K, const floating[:, :, ::1] E,
         const floating[:, ::1] W_q, const floating[::1] v, const int64_t[::1] lengths,
         bint own, const floating[:, ::1] W_out, const floating[::1] Wp_out,
         const floating[::1] b_out, int width, int32_t[:, :, ::1] out,
         int64_t[:, ::1] out_len, double[:, ::1] scores):
    """Beam search for W = out.shape[0] sources at once, `width` hypotheses each, at most
    L = out.shape[2] tokens, keeping the NB = out.shape[1] <= width best finished ones:
    source w owns rows w*width .. w*width + width - 1 of K, E, lengths (each source's
    repeated `width` times), and its hypotheses live there, the first nlive[w] of them.
    Per source, each step: candidates score + lp of its live rows, the `width` best by a
    stable descending sort (flat index b*Vt + t breaks ties), finite ones only; EOS, or
    any token at step L, finishes a hypothesis (it joins the source's NB best finished
    ones, best first, after those of equal score), the others live on; the source ends
    when none lives or its NB-th best finished one scores at least the best live one (a
    log-probability never raises a score). out[w, k, :out_len[w, k]], scores[w, k]: the
    k-th best; out_len -1 and score -inf where fewer than NB finished. -> the number of
    steps run.
    Finished sources stop costing: once an eighth of the sources stepping have ended,
    the others' blocks of `width` rows move to the front (place j holds source
    slot[j]) and the next steps run that prefix only, as greedy does."""
    cdef Py_ssize_t R = E.shape[0], Hd = W_hh.shape[1], C = E.shape[2], Vt = W_out.shape[0]
    cdef Py_ssize_t L = out.shape[2], D = W_ih.shape[1], GH = W_hh.shape[0], NW = out.shape[0]
    cdef Py_ssize_t NB = out.shape[1], s, w, k, i, bi, t, r0, src, dst, nk, best_i, left
    cdef Py_ssize_t steps = 0, p, q, j, ns = NW, m
    cdef double val, best_v, last_v
    cdef Py_ssize_t last_i
    _prepare(cell, kind, emb, W_ih, W_hh, b_ih, b_hh, K, E, W_q, v, lengths, W_out, b_out)
    _need(width >= 1 and R == NW * width and 1 <= NB <= width
          and _sh(out_len.shape, 2) == (NW, NB) and _sh(scores.shape, 2) == (NW, NB)
          and L >= 1, f"{R} rows for {NW} sources of beam {width}, {NB} best, out_len, scores")
    own = own and floating is float
    cdef const floating *P_ih = packed(Wp_ih, D, GH, "decode", "Wp_ih")
    cdef const floating *P_hh = packed(Wp_hh, Hd, GH, "decode", "Wp_hh")
    cdef const floating *P_out = packed(Wp_out, Hd + C, Vt, "decode", "Wp_out")
    dt = np.float32 if floating is float else np.float64
    z = _scratch(dt, cell, kind, K, E, lengths, D, Hd, Vt)
    cdef floating[:, :, ::1] hb = z["h"], cb = z["c"], xb = z["ctx"], tanhs = z["tanhs"]
    cdef floating[:, ::1] xs = z["xs"], act = z["act"], tc = z["tc"], gh = z["gh"]
    cdef floating[:, ::1] alpha = z["alpha"], qW = z["qW"], feat = z["feat"]
    cdef floating[:, ::1] logits = z["logits"]
    cdef double[:, ::1] lp = z["lp"]
    cdef int32_t[::1] prev = np.full(R, BOS, np.int32)
    cdef int32_t[:, :, ::1] tok = np.zeros((2, R, L), np.int32)    # hypotheses' tokens
    cdef double[:, ::1] sc = np.zeros((2, R))                       # and their scores
    cdef int64_t[::1] nlive = np.ones(NW, np.int64), parent = np.empty(width, np.int64)
    cdef int64_t[::1] nfin = np.zeros(NW, np.int64)              # finished ones kept
    cdef uint8_t[::1] done = np.zeros(NW, np.uint8)
    cdef floating[:, :, ::1] Kc = z["K"], Ec = z["E"]
    cdef int64_t[::1] lc = z["lengths"], slot = np.arange(NW, dtype=np.int64)  # place -> source
    if NW == 0:
        return 0
    left = NW
    with nogil:
        for w in range(NW):
            for k in range(NB):
                out_len[w, k] = -1
                scores[w, k] = -INFINITY
        for s in range(L):
            # every row steps (slots a source does not use compute harmlessly, on a
            # valid token): one batched product per weight instead of one per source
            m = ns * width
            _step(cell, kind, &prev[0], emb, W_ih, P_ih, W_hh, P_hh, b_ih, b_hh, Kc[:m], Ec[:m],
                  W_q, v, lc[:m], own, W_out, P_out, b_out, hb[0][:m], cb[0][:m], xb[0][:m],
                  hb[1][:m], cb[1][:m], xb[1][:m], xs[:m], act[:m], tc[:m], gh[:m],
                  alpha[:m], tanhs[:m], qW[:m], feat[:m], logits[:m], lp[:m])
            steps += 1
            for j in range(ns):
                w = slot[j]
                if done[w]:
                    continue
                r0 = j * width
                nk = 0
                last_v, last_i = INFINITY, -1
                for k in range(width):
                    # the next candidate in (score descending, flat index ascending) order
                    best_i, best_v = -1, -INFINITY
                    for i in range(nlive[w] * Vt):
                        bi, t = i // Vt, i % Vt
                        val = sc[0, r0 + bi] + lp[r0 + bi, t]
                        if val < last_v or (val == last_v and i > last_i):
                            if best_i < 0 or val > best_v:
                                best_i, best_v = i, val
                    if best_i < 0 or not isfinite(best_v):
                        break
                    last_v, last_i = best_v, best_i
                    bi, t = best_i // Vt, best_i % Vt
                    if t == EOS or s == L - 1:
                        # its place among the kept ones: after every one scoring >= it
                        p = nfin[w]
                        while p > 0 and scores[w, p - 1] < best_v:
                            p -= 1
                        if p < NB:
                            for q in range(min(nfin[w], NB - 1), p, -1):
                                memcpy(&out[w, q, 0], &out[w, q - 1, 0], L * sizeof(int32_t))
                                out_len[w, q], scores[w, q] = out_len[w, q - 1], scores[w, q - 1]
                            nfin[w] = min(nfin[w] + 1, NB)
                            scores[w, p] = best_v
                            memcpy(&out[w, p, 0], &tok[0, r0 + bi, 0], s * sizeof(int32_t))
                            out_len[w, p] = s
                            if t != EOS:                # cut at max_len, without EOS
                                out[w, p, s] = <int32_t>t
                                out_len[w, p] = s + 1
                    else:
                        dst = r0 + nk
                        memcpy(&tok[1, dst, 0], &tok[0, r0 + bi, 0], s * sizeof(int32_t))
                        tok[1, dst, s] = <int32_t>t
                        sc[1, dst] = best_v
                        parent[nk] = r0 + bi
                        nk += 1
                # the first survivor scores best: nothing alive can enter the kept ones
                if nk == 0 or (nfin[w] == NB and scores[w, NB - 1] >= sc[1, r0]):
                    done[w] = 1
                    left -= 1
                    continue
                for k in range(nk):
                    dst, src = r0 + k, parent[k]
                    _copy_state(cell, hb, cb, xb, 0, dst, 1, src)
                    memcpy(&tok[0, dst, 0], &tok[1, dst, 0], (s + 1) * sizeof(int32_t))
                    sc[0, dst] = sc[1, dst]
                    prev[dst] = tok[1, dst, s]
                nlive[w] = nk
            if left == 0:
                break
            if 8 * (ns - left) >= ns:
                p = 0
                for j in range(ns):
                    w = slot[j]
                    if done[w]:
                        continue
                    if p != j:
                        for k in range(nlive[w]):
                            src, dst = j * width + k, p * width + k
                            _copy_state(cell, hb, cb, xb, 0, dst, 0, src)
                            memcpy(&tok[0, dst, 0], &tok[0, src, 0], (s + 1) * sizeof(int32_t))
                            sc[0, dst] = sc[0, src]
                            prev[dst] = prev[src]
                        for k in range(width):   # every row of the block reads its source
                            _copy_source(Kc, Ec, lc, p * width + k, j * width + k)
                        slot[p] = w
                    p += 1
                ns = p
    return steps
