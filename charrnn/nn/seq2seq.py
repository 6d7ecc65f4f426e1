"""The encoder-decoder with attention (issue 32) on the compiled kernels.

The specification, names and shapes: charrnn.nn.reference_seq2seq (read its docstring:
input feeding, both attentions query the current decoder state, the decoder starts from
zeros). Sizes: S source steps, T target steps, N rows, E embedding, C = 2He encoder
output, Hd decoder hidden, A attention size, Vt target vocabulary.
    src (S, N) ids, src_len (N,) in 1..S      tgt (T+1, N) ids, tgt[0] = BOS,
    tgt_len (N,) in 1..T: row n predicts tgt[1..tgt_len[n], n] (its tokens, then EOS)

How, per batch:
- encoder: embedding gather (_ops) -> charrnn.nn.bidirectional (compiled cells over the
  padded batch) -> batch-major E (N, S, C) -> keys K = E W_k (_attn.keys_forward), once;
- decoder, s = 1..T: one compiled cell step (charrnn.nn.cells with T = 1) on
  [embedding ; ctx_{s-1}], then the attention step (_attn.step_forward, nogil); the loop
  over s is Python for now (issue 32 asks for it in C: see docs/internals/seq2seq.md);
- output layer and cross-entropy over the valid steps only, as one (M, Hd + C) GEMM
  (_ops.linear_forward / softmax_xent): padded steps are never scored, so nothing flows
  back from them.
Backward runs the same pieces in reverse, the gradient of ctx_{s-1} coming back from
step s's cell input; everything reaches the encoder through dK and dE.

Parameters live in one flat buffer (self.flat, named views self.params) so that
charrnn.nn.optim's optimizers work unchanged (float32); float64 for the tests.
"""
from dataclasses import asdict, dataclass

import numpy as np

from charrnn import _attn, _ops
from charrnn.errors import ConfigError, ShapeError
from charrnn.nn import bidirectional as bi
from charrnn.nn import cells
from charrnn.nn.reference_seq2seq import ATTENTIONS, param_shapes

BOS, EOS = 0, 1   # target ids every target vocabulary starts with


@dataclass
class Seq2SeqConfig:
    cell: str = "lstm"          # lstm or gru: the encoder's and the decoder's
    attention: str = "luong"    # luong (h . W e) or bahdanau (v . tanh(W_q h + W_k e))
    embed: int = 32             # E: source and target embedding size
    hidden: int = 64            # He: encoder units per direction (C = 2He)
    decoder: int = 128          # Hd: decoder units
    attn: int = 64              # A: Bahdanau's attention size (Luong: Hd)
    layers: int = 1             # encoder layers
    src_vocab: int = 0          # Vs: set from the data
    tgt_vocab: int = 0          # Vt: set from the data, BOS and EOS included

    def validate(self):
        if self.cell not in ("lstm", "gru"):
            raise ConfigError(f"cell must be lstm or gru, not {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"attention must be one of {', '.join(ATTENTIONS)}, not {self.attention!r}")
        for name in ("embed", "hidden", "decoder", "attn", "layers", "src_vocab", "tgt_vocab"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.tgt_vocab < 3:
            raise ConfigError(f"tgt_vocab must count BOS, EOS and at least one token, got {self.tgt_vocab}")
        return self


class Seq2Seq:
    def __init__(self, config, seed=0, dtype=np.float32):
        cfg = config if isinstance(config, Seq2SeqConfig) else Seq2SeqConfig(**config)
        self.cfg = cfg.validate()
        self.dtype = np.dtype(dtype)
        if self.dtype not in cells.DTYPES:
            raise ConfigError(f"dtype must be float32 or float64, not {self.dtype}")
        self.shapes = param_shapes(cfg.cell, cfg.attention, cfg.src_vocab, cfg.tgt_vocab,
                                   cfg.embed, cfg.hidden, cfg.decoder, cfg.attn, cfg.layers)
        sizes = [int(np.prod(s)) for s in self.shapes.values()]
        self.flat = np.zeros(sum(sizes), self.dtype)
        self.grad_flat = np.zeros_like(self.flat)
        self.params = self._views(self.flat, sizes)
        self.grads = self._views(self.grad_flat, sizes)
        self._init(np.random.default_rng(seed))

    @property
    def config(self):
        return asdict(self.cfg)

    def _views(self, flat, sizes):
        views, off = {}, 0
        for (name, shape), n in zip(self.shapes.items(), sizes):
            views[name] = flat[off:off + n].reshape(shape)
            off += n
        return views

    def _init(self, rng):
        # PyTorch's defaults: cells and linear maps uniform(+-1/sqrt(fan)), embeddings
        # uniform(-0.1, 0.1); the LSTM forget-gate biases start at 1 (torch-rnn's habit)
        cfg = self.cfg
        for name, p in self.params.items():
            if name.endswith("embed"):
                p[...] = rng.uniform(-0.1, 0.1, p.shape)
            elif name == "out.bias":
                p[...] = 0
            else:
                fan = p.shape[-1] if name.startswith(("enc.", "dec.", "out.")) else p.shape[0]
                k = 1 / np.sqrt(fan)
                p[...] = rng.uniform(-k, k, p.shape)
        if cfg.cell == "lstm":
            for name, p in self.params.items():
                if name.startswith(("enc.bias_ih", "dec.bias_ih")):
                    H = p.shape[0] // 4
                    p[H:2 * H] += 1

    # ---- checks ------------------------------------------------------------------------

    def check(self, src, src_len, tgt=None, tgt_len=None):
        """(src, src_len, tgt, tgt_len) as int arrays, padding replaced by id 0; or a
        one-line ShapeError."""
        src, src_len = self._ids("src", src, src_len, self.cfg.src_vocab)
        if tgt is None:
            return src, src_len, None, None
        tgt = np.asarray(tgt)
        if tgt.ndim != 2 or tgt.shape[1] != src.shape[1] or tgt.shape[0] < 2:
            raise ShapeError(f"tgt must be (T+1, {src.shape[1]}) ids with T >= 1, got {tgt.shape}")
        tgt_len = bi.check_lengths(tgt_len, tgt.shape[0] - 1, tgt.shape[1])
        tgt, _ = self._ids("tgt", tgt, tgt_len + 1, self.cfg.tgt_vocab)
        return src, src_len, tgt, tgt_len

    def _ids(self, name, ids, lengths, V):
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise ShapeError(f"{name} must be a non-empty 2-d integer array (S, N), got {ids.dtype} {ids.shape}")
        lengths = bi.check_lengths(lengths, *ids.shape)
        valid = np.arange(ids.shape[0])[:, None] < lengths[None, :]
        ids = np.where(valid, ids, 0).astype(np.int32)                  # padding reads id 0
        bad = np.flatnonzero((ids < 0) | (ids >= V))
        if bad.size:
            t, n = divmod(int(bad[0]), ids.shape[1])
            raise ShapeError(f"{name}[{t}, {n}] = {ids[t, n]} is outside the vocabulary (size {V})")
        return ids, lengths

    def _own(self):
        return self.dtype == np.float32 and cells.current_gemm_backend() == "own"

    # ---- pieces shared by training and decoding ------------------------------------------

    def encode(self, src, src_len):
        """-> (E (N, S, C), K (N, S, A), cache): encoder outputs and attention keys."""
        cfg, P, dt = self.cfg, self.params, self.dtype
        S, N = src.shape
        x = np.empty((S * N, cfg.embed), dt)                            # (S*N, E)
        _ops.embedding_forward(src.reshape(-1), P["src_embed"], x)
        enc = {k[4:]: v for k, v in P.items() if k.startswith("enc.")}
        out, _, bcache = bi.forward(cfg.cell, x.reshape(S, N, cfg.embed), src_len, enc)
        E = np.ascontiguousarray(out.transpose(1, 0, 2))                # (N, S, C)
        K = np.empty(E.shape[:2] + (P["attn.W_k"].shape[1],), dt)       # (N, S, A)
        _attn.keys_forward(E, P["attn.W_k"], src_len, self._own(), K)
        return E, K, bcache

    def zero_state(self, N, C):
        """(state, ctx): the decoder's start, zeros ((h,) or (h, c), each (N, Hd); (N, C))."""
        z = np.zeros((N, self.cfg.decoder), self.dtype)
        return ((z, z.copy()) if self.cfg.cell == "lstm" else (z,)), np.zeros((N, C), self.dtype)

    def step(self, prev, state, ctx, E, K, src_len):
        """One decoder step: prev (N,) target ids -> (state, ctx, feat (N, Hd + C), saved)."""
        cfg, P, dt = self.cfg, self.params, self.dtype
        N, S, C = E.shape
        x = np.empty((1, N, cfg.embed + C), dt)                         # (1, N, E + C)
        emb = np.empty((N, cfg.embed), dt)
        _ops.embedding_forward(np.ascontiguousarray(prev, np.int32), P["tgt_embed"], emb)
        x[0, :, :cfg.embed], x[0, :, cfg.embed:] = emb, ctx
        w = (P["dec.weight_ih"], P["dec.weight_hh"], P["dec.bias_ih"], P["dec.bias_hh"])
        res = getattr(cells, cfg.cell + "_forward")(x, *state, *w)
        state, ccache = tuple(res[1:-1]), res[-1]
        h = state[0]                                                    # (N, Hd)
        A = K.shape[2]
        bahdanau = cfg.attention == "bahdanau"
        alpha, ctx = np.empty((N, S), dt), np.empty((N, C), dt)
        tanhs = np.empty((N, S, A) if bahdanau else (0, 0, 0), dt)
        qW = np.empty((N, A) if bahdanau else (0, 0), dt)
        W_q, v = (P["attn.W_q"], P["attn.v"]) if bahdanau else (np.empty((0, 0), dt), np.empty(0, dt))
        _attn.step_forward(_attn.KINDS[cfg.attention], h, K, E, W_q, v, src_len, self._own(),
                           alpha, ctx, tanhs, qW)
        feat = np.concatenate([h, ctx], axis=1)                         # (N, Hd + C)
        return state, ctx, feat, (ccache, h, alpha, tanhs)

    def logits(self, feat):
        """(R, Vt) from features (R, Hd + C)."""
        out = np.empty((feat.shape[0], self.cfg.tgt_vocab), self.dtype)
        _ops.linear_forward(np.ascontiguousarray(feat), self.params["out.weight"],
                            np.empty(0, self.dtype), self.params["out.bias"], out)
        return out

    # ---- training ----------------------------------------------------------------------

    def forward_backward(self, src, src_len, tgt, tgt_len, grad=True):
        """Mean cross-entropy per predicted token (nats); with grad, its gradients *added*
        to self.grads."""
        src, src_len, tgt, tgt_len = self.check(src, src_len, tgt, tgt_len)
        T, N = tgt.shape[0] - 1, tgt.shape[1]
        E, K, bcache = self.encode(src, src_len)
        state, ctx = self.zero_state(N, E.shape[2])
        feats, saved = [], []
        for s in range(T):
            state, ctx, feat, sv = self.step(tgt[s], state, ctx, E, K, src_len)
            feats.append(feat)
            saved.append(sv)
        valid = np.arange(T)[:, None] < tgt_len[None, :]               # (T, N)
        rows = np.ascontiguousarray(np.stack(feats)[valid])            # (M, Hd + C)
        labels = np.ascontiguousarray(tgt[1:][valid])                   # (M,)
        z = self.logits(rows)                                           # (M, Vt)
        M = rows.shape[0]
        # softmax_xent overwrites z with d(mean loss)/dz when its scale != 0
        total = _ops.softmax_xent(z, labels, 1.0 / M if grad else 0.0)
        if grad:
            self._backward(z, rows, valid, tgt, src, src_len, E, K, bcache, saved)
        return total / M

    def _backward(self, dz, rows, valid, tgt, src, src_len, E, K, bcache, saved):
        cfg, P, g, dt = self.cfg, self.params, self.grads, self.dtype
        own = self._own()
        T, N = valid.shape
        Hd, Em = cfg.decoder, cfg.embed
        drows = np.empty_like(rows)                                     # (M, Hd + C)
        _ops.linear_backward(dz, rows, P["out.weight"], drows, g["out.weight"], g["out.bias"], own)
        dfeat = np.zeros((T, N, rows.shape[1]), dt)                     # (T, N, Hd + C)
        dfeat[valid] = drows
        dK, dE = np.zeros_like(K), np.zeros_like(E)
        bahdanau = cfg.attention == "bahdanau"
        S, A = K.shape[1], K.shape[2]
        if bahdanau:
            W_qT, v, dW_q, dv = (np.ascontiguousarray(P["attn.W_q"].T), P["attn.v"],
                                 g["attn.W_q"], g["attn.v"])
        else:
            W_qT, v, dW_q, dv = (np.empty((0, 0), dt), np.empty(0, dt), np.empty((0, 0), dt),
                                 np.empty(0, dt))
        ds, dqW = np.empty((N, S), dt), np.empty((N, A) if bahdanau else (0, 0), dt)
        demb = np.zeros((T, N, Em), dt)                                 # (T, N, E)
        dstate = [None, None]
        dctx_next = np.zeros((N, E.shape[2]), dt)
        dw = (g["dec.weight_ih"], g["dec.weight_hh"], g["dec.bias_ih"], g["dec.bias_hh"])
        for s in reversed(range(T)):
            ccache, h, alpha, tanhs = saved[s]
            dctx = np.ascontiguousarray(dfeat[s, :, Hd:]) + dctx_next   # (N, C)
            dq = np.zeros((N, Hd), dt)
            _attn.step_backward(_attn.KINDS[cfg.attention], dctx, h, K, E, W_qT, v, src_len,
                                alpha, tanhs, own, dq, dK, dE, dW_q, dv, ds, dqW)
            dy = (dfeat[s, :, :Hd] + dq)[None]                          # (1, N, Hd)
            dx = np.zeros((1, N, Em + E.shape[2]), dt)
            dh0 = np.zeros((N, Hd), dt)
            if cfg.cell == "lstm":
                dc0 = np.zeros((N, Hd), dt)
                cells.lstm_backward(dy, dstate[0], dstate[1], ccache, dx, dh0, dc0, *dw)
                dstate = [dh0, dc0]
            else:
                cells.gru_backward(dy, dstate[0], ccache, dx, dh0, *dw)
                dstate = [dh0, None]
            demb[s] = dx[0, :, :Em]
            dctx_next = np.ascontiguousarray(dx[0, :, Em:])
        _ops.embedding_backward(np.ascontiguousarray(tgt[:T]).reshape(-1),
                                demb.reshape(T * N, Em), g["tgt_embed"])
        _attn.keys_backward(dK, E, np.ascontiguousarray(P["attn.W_k"].T), src_len, own, dE,
                            g["attn.W_k"])
        genc = {k[4:]: v for k, v in g.items() if k.startswith("enc.")}
        dout = np.ascontiguousarray(dE.transpose(1, 0, 2))              # (S, N, C)
        dx = bi.backward(dout, None, bcache, genc)                      # (S, N, E)
        _ops.embedding_backward(src.reshape(-1), dx.reshape(-1, Em), g["src_embed"])

    def loss_and_grad(self, src, src_len, tgt, tgt_len):
        """(mean loss, gradients as a dict like params: a copy)."""
        self.grad_flat.fill(0)
        loss = self.forward_backward(src, src_len, tgt, tgt_len)
        return loss, {k: v.copy() for k, v in self.grads.items()}

    def loss(self, src, src_len, tgt, tgt_len):
        return self.forward_backward(src, src_len, tgt, tgt_len, grad=False)
