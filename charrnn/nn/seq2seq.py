"""The encoder-decoder with attention (issue 32) on the compiled kernels.

The specification, names and shapes: charrnn.nn.reference_seq2seq (read its docstring:
input feeding, both attentions query the current decoder state, the decoder starts from
zeros). Sizes: S source steps, T target steps, N rows, E embedding, C = 2He encoder
output, Hd decoder hidden, A attention size, Vt target vocabulary.
    src (S, N) ids, src_len (N,) in 1..S      tgt (T+1, N) ids, tgt[0] = BOS,
    tgt_len (N,) in 1..T: row n predicts tgt[1..tgt_len[n], n] (its tokens, then EOS)

How, per batch:
- the rows are sorted by target length, longest first (forward_backward): results do not
  depend on the order, and decoder step s then runs only the prefix of rows still inside
  their target (active[s]), skipping the padded steps of the shorter targets;
- encoder: embedding gather (_ops) -> charrnn.nn.bidirectional (compiled cells over the
  padded batch) -> batch-major E (N, S, C) -> keys K = E W_k (_attn.keys_forward), once;
- decoder, s = 1..T: one compiled call runs every step (kernels/_decoder.pyx, nogil):
  the cell's step maths (cellmath.h) on [embedding ; ctx_{s-1}], then the attention step
  (kernels/_attn_core.pxi); backward is one call too, then one GEMM per weight gradient.
  Decoding (charrnn.nn.seq2seq_decode): one call per batch (kernels/_decode.pyx);
- output layer and cross-entropy over the valid steps only, one (M, Hd + C) GEMM:
  padded steps are never scored, so nothing flows back from them;
- threads (self.parallel, as --threads sets it): the encoder's two directions at once,
  the decoder's loop cut by rows (rows never meet; Bahdanau's dW_q and dv, which sum
  over them, take one accumulator per range) and its weight gradients by gate rows;
  float32 results are bit-identical to one thread (Bahdanau's dW_q, dv: to rounding).
Backward runs them in reverse; everything reaches the encoder through dK and dE.

Parameters live in one flat buffer (self.flat, named views self.params) so that
charrnn.nn.optim's optimizers work unchanged (float32); float64 for the tests.
"""
from dataclasses import asdict, dataclass

import numpy as np

from charrnn import _attn, _decoder, _ops
from charrnn.errors import ConfigError, ShapeError
from charrnn.nn import bidirectional as bi
from charrnn.nn import cells, flat
from charrnn.nn.network import draw_mask
from charrnn.nn.parallel import each
from charrnn.nn.reference_seq2seq import ATTENTIONS, param_shapes

BOS, EOS = 0, 1   # target ids every target vocabulary starts with
# where training drops units (inverted dropout, masks keyed by site): what the encoder
# reads, what the decoder's cell reads of the previous token, and what the output layer
# reads. The recurrences and the attention's inputs are left whole, as Zaremba et al. and
# OpenNMT do: a dropped state would be forgotten, not regularised.
SITES = ("source embeddings", "target embeddings", "output features")


@dataclass
class Seq2SeqConfig:
    cell: str = "lstm"          # lstm or gru: the encoder's and the decoder's
    attention: str = "luong"    # luong (h . W e) or bahdanau (v . tanh(W_q h + W_k e))
    embed: int = 32             # E: source and target embedding size
    hidden: int = 64            # He: encoder units per direction (C = 2He)
    decoder: int = 128          # Hd: decoder units
    attn: int = 64              # A: Bahdanau's attention size (Luong: Hd)
    layers: int = 1             # encoder layers
    dropout: float = 0.0        # drop probability in training, at the three SITES
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
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
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
        self.flat, self.grad_flat, self.params, self.grads = flat.allocate(self.shapes, self.dtype)
        self._init(np.random.default_rng(seed))
        # a cells.Parallel (the training loop's): the encoder's directions at once, the
        # decoder's loop cut by rows, its weight gradients by gate rows (see the top)
        self.parallel = None
        self._ws = cells.Workspace()   # the decoder's packed weights, reused across batches

    @property
    def precision(self):
        """"fp32" or "bf16": the precision of the encoder's and decoder's cell products;
        attention, the output layer, parameters and gradients stay float32."""
        return self._ws.precision

    @precision.setter
    def precision(self, name):
        cells.set_precision((self._ws,), name, self.dtype)

    @property
    def config(self):
        return asdict(self.cfg)


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

    def encode(self, src, src_len, drop=None):
        """-> (E (N, S, C), K (N, S, A), cache): encoder outputs and attention keys.
        drop (training with dropout): a Drop, which keeps the mask for backward."""
        cfg, P, dt = self.cfg, self.params, self.dtype
        S, N = src.shape
        x = np.empty((S * N, cfg.embed), dt)                            # (S*N, E)
        _ops.embedding_forward(src.reshape(-1), P["src_embed"], x)
        if drop:
            x *= drop.mask(0, S, N, cfg.embed)
        enc = {k[4:]: v for k, v in P.items() if k.startswith("enc.")}
        # bf16: workspaces of that precision, made per call (encode may run in several
        # threads at once when decoding), so that the cells pack their weights in bf16
        ws = (None if self.precision == "fp32" else
              [cells.Workspace(precision=self.precision) for _ in range(2 * cfg.layers)])
        out, _, bcache = bi.forward(cfg.cell, x.reshape(S, N, cfg.embed), src_len, enc,
                                    workspaces=ws, parallel=self.parallel)
        E = np.ascontiguousarray(out.transpose(1, 0, 2))                # (N, S, C)
        K = np.empty(E.shape[:2] + (P["attn.W_k"].shape[1],), dt)       # (N, S, A)
        _attn.keys_forward(E, P["attn.W_k"], src_len, self._own(), K)
        return E, K, bcache

    def logits(self, feat):
        """(R, Vt) from features (R, Hd + C)."""
        out = np.empty((feat.shape[0], self.cfg.tgt_vocab), self.dtype)
        _ops.linear_forward(np.ascontiguousarray(feat), self.params["out.weight"],
                            np.empty(0, self.dtype), self.params["out.bias"], out)
        return out

    # ---- training ----------------------------------------------------------------------

    def forward_backward(self, src, src_len, tgt, tgt_len, grad=True, rng=None,
                         smoothing=0.0):
        """Mean cross-entropy per predicted token (nats); with grad, its gradients *added*
        to self.grads. rng (a network.StreamMasks or a numpy Generator) turns on
        cfg.dropout's masks at the SITES; drawn after the rows are sorted (below).
        smoothing: label smoothing (smoothed_xent): the loss and gradients are then the
        smoothed objective's."""
        src, src_len, tgt, tgt_len = self.check(src, src_len, tgt, tgt_len)
        # rows sorted by target length, longest first (nothing depends on the order): decoder
        # step s then runs a prefix of rows, skipping a bucketed batch's ~20% padded steps
        order = np.argsort(-tgt_len, kind="stable")
        src, src_len = np.ascontiguousarray(src[:, order]), src_len[order]
        tgt, tgt_len = np.ascontiguousarray(tgt[:, order]), tgt_len[order]
        drop = Drop(rng, self.cfg.dropout, self.dtype) if grad and rng is not None else None
        E, K, bcache = self.encode(src, src_len, drop)
        sv, feats, valid, active = self.teacher_forced(tgt, tgt_len, E, K, src_len, drop)
        T = tgt.shape[0] - 1
        rows = np.ascontiguousarray(feats[valid])                      # (M, Hd + C)
        if drop:   # the scored steps' part of the mask, which backward reads
            drop.masks[2] = drop.mask(2, T, feats.shape[1], feats.shape[2])[valid.reshape(-1)]
            rows *= drop.masks[2]
        labels = np.ascontiguousarray(tgt[1:][valid])                   # (M,)
        z = self.logits(rows)                                           # (M, Vt)
        M = rows.shape[0]
        # overwrites z with d(mean loss)/dz when its scale != 0
        total = smoothed_xent(z, labels, 1.0 / M if grad else 0.0, smoothing)
        if grad:
            self._backward(z, rows, valid, tgt, src, src_len, E, K, bcache, sv, active, drop)
        return total / M

    def teacher_forced(self, tgt, tgt_len, E, K, src_len, drop=None):
        """Decoder over targets sorted longest first -> (saved, feats (T, N, Hd + C), valid
        (T, N), active (T,)): forward_backward's and seq2seq_decode.score_targets'."""
        T = tgt.shape[0] - 1
        active = (tgt_len[None, :] > np.arange(T)[:, None]).sum(1).astype(np.int64)   # (T,)
        sv = self._decode_forward(np.ascontiguousarray(tgt[:T]), E, K, src_len, active, drop)
        feats = np.concatenate([sv["hs"][1:], sv["ctxs"][1:]], axis=2)
        return sv, feats, np.arange(T)[:, None] < tgt_len[None, :], active

    def _attn_weights(self, grads=False):
        # (W_q, v) for Bahdanau, or empty stand-ins for Luong (the kernels ignore them)
        dt = self.dtype
        if self.cfg.attention != "bahdanau":
            return np.empty((0, 0), dt), np.empty(0, dt)
        d = self.grads if grads else self.params
        return d["attn.W_q"], d["attn.v"]

    def _decode_forward(self, tgt_in, E, K, src_len, active=None, drop=None):
        """The decoder over every target step, one compiled call (kernels/_decoder.pyx);
        -> the arrays its backward reads. active (T,): the rows each step runs (a
        prefix: forward_backward sorts them); None: all."""
        cfg, P, dt = self.cfg, self.params, self.dtype
        T, N = tgt_in.shape
        S, C, A = E.shape[1], E.shape[2], K.shape[2]
        Hd, Em, lstm = cfg.decoder, cfg.embed, cfg.cell == "lstm"
        GH = (4 if lstm else 3) * Hd
        bah = cfg.attention == "bahdanau"
        emb = np.empty((T * N, Em), dt)                                 # (T*N, E)
        _ops.embedding_forward(tgt_in.reshape(-1), P["tgt_embed"], emb)
        if drop:
            emb *= drop.mask(1, T, N, Em)
        sv = dict(emb_ids=tgt_in,
                  xs=np.empty((T, N, Em + C), dt),                      # cell inputs
                  hs=np.zeros((T + 1, N, Hd), dt),                      # hs[0] = 0
                  cs=np.zeros((T + 1, N, Hd) if lstm else (0, 0, 0), dt),
                  act=np.empty((T, N, GH), dt),
                  tc=np.empty((T, N, Hd), dt),                          # tanh(c) or ghn
                  alphas=np.empty((T, N, S), dt),
                  ctxs=np.zeros((T + 1, N, C), dt),                     # ctxs[0] = 0
                  tanhs=np.empty((T, N, S, A) if bah else (T, 0, 0, 0), dt))
        W_ih, W_hh = P["dec.weight_ih"], P["dec.weight_hh"]
        sv["active"] = np.full(T, N, np.int64) if active is None else active
        Wp_ih, Wp_hh = cells._packs_forward(self._ws, W_ih, W_hh, self.parallel)
        args = (_decoder.CELLS[cfg.cell], _attn.KINDS[cfg.attention], emb.reshape(T, N, Em),
                W_ih, Wp_ih, W_hh, Wp_hh, P["dec.bias_ih"], P["dec.bias_hh"], K, E,
                *self._attn_weights(), src_len, self._own(), sv["xs"], sv["hs"], sv["cs"],
                sv["act"], sv["tc"], np.empty((0, 0) if lstm else (N, GH), dt), sv["alphas"],
                sv["ctxs"], sv["tanhs"], np.empty((N, A) if bah else (0, 0), dt), sv["active"])
        self._each_row_range(_decoder.forward, args, N, sv["active"])
        return sv

    def _each_row_range(self, fn, args, N, active):
        """fn(*args, lo, hi) over row ranges, one per thread, cut so that each holds about
        as many row-steps (rows sorted longest first: equal counts would not balance).
        args: a tuple, or args(i) -> range i's (when each range has its own accumulators)."""
        P = self.parallel
        of = args if callable(args) else (lambda i: args)
        if P is None or P.threads == 1 or N < 2:
            return fn(*of(0), 0, N)
        work = np.cumsum((np.arange(N)[:, None] < active[None, :]).sum(1))   # (N,)
        cuts = [0] + [min(N, int(np.searchsorted(work, work[-1] * i / P.threads)) + 1)
                      for i in range(1, P.threads)] + [N]
        P.run(fn, [(*of(i), lo, hi) for i, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:]))])

    def _backward(self, dz, rows, valid, tgt, src, src_len, E, K, bcache, sv, active, drop):
        cfg, P, g, dt = self.cfg, self.params, self.grads, self.dtype
        own = self._own()
        T, N = valid.shape
        S, C, A = E.shape[1], E.shape[2], K.shape[2]
        Hd, Em, lstm = cfg.decoder, cfg.embed, cfg.cell == "lstm"
        GH = (4 if lstm else 3) * Hd
        bah = cfg.attention == "bahdanau"
        drows = np.empty_like(rows)                                     # (M, Hd + C)
        _ops.linear_backward(dz, rows, P["out.weight"], drows, g["out.weight"], g["out.bias"], own)
        if drop:
            drows *= drop.masks[2]
        dfeat = np.zeros((T, N, Hd + C), dt)                            # (T, N, Hd + C)
        dfeat[valid] = drows
        dK, dE = np.zeros_like(K), np.zeros_like(E)
        demb = np.empty((T, N, Em), dt)                                 # (T, N, E)
        W_q, v = self._attn_weights()
        W_qT = np.ascontiguousarray(W_q.T)
        W_ih, W_hh = P["dec.weight_ih"], P["dec.weight_hh"]
        e = lambda *shape: np.empty(shape, dt)  # noqa: E731   scratch
        dact, dgh = e(T, N, GH), e(0, 0, 0) if lstm else e(T, N, GH)
        Wp_ih, Wp_hh = cells._packs_backward(self._ws, W_ih, W_hh, self.parallel)
        head = (_decoder.CELLS[cfg.cell], _attn.KINDS[cfg.attention], dfeat, W_ih, Wp_ih,
                W_hh, Wp_hh, K, E, W_qT, v, src_len, own, sv["xs"], sv["hs"], sv["cs"],
                sv["act"], sv["tc"], sv["alphas"], sv["tanhs"], demb, dK, dE)
        tail = (dact, dgh, e(N, C), e(N, Hd), e(N, Hd), e(N, Hd), e(N, Hd), e(N, Hd),
                e(N, Em + C), e(N, S), e(N, A) if bah else e(0, 0), active)
        ranges = 1 if self.parallel is None else self.parallel.threads
        if bah and ranges > 1:
            # Bahdanau's dW_q and dv sum over the rows: each range adds into a pair of
            # its own, summed after in range order (the serial sum, to rounding)
            parts = np.zeros((ranges,) + W_q.shape, dt), np.zeros((ranges, A), dt)
            self._each_row_range(_decoder.backward,
                                 lambda i: (*head, parts[0][i], parts[1][i], *tail), N, active)
            g["attn.W_q"] += parts[0].sum(0)
            g["attn.v"] += parts[1].sum(0)
        else:
            self._each_row_range(_decoder.backward,
                                 (*head, *self._attn_weights(grads=True), *tail), N, active)
        wargs = (_decoder.CELLS[cfg.cell], *self._ran(valid, dact, dgh, sv), W_ih, Wp_ih,
                 g["dec.weight_ih"], g["dec.weight_hh"], g["dec.bias_ih"], g["dec.bias_hh"])
        each(self.parallel, _decoder.weight_grads, GH,
             lambda lo, hi: (*wargs, lo, hi))
        if drop:
            demb *= drop.masks[1].reshape(demb.shape)
        _ops.embedding_backward(sv["emb_ids"].reshape(-1), demb.reshape(T * N, Em),
                                g["tgt_embed"])
        _attn.keys_backward(dK, E, np.ascontiguousarray(P["attn.W_k"].T), src_len, own, dE,
                            g["attn.W_k"])
        genc = {k[4:]: v for k, v in g.items() if k.startswith("enc.")}
        dout = np.ascontiguousarray(dE.transpose(1, 0, 2))              # (S, N, C)
        dx = bi.backward(dout, None, bcache, genc)                      # (S, N, E)
        if drop:
            dx *= drop.masks[0].reshape(dx.shape)
        _ops.embedding_backward(src.reshape(-1), dx.reshape(-1, Em), g["src_embed"])

    @staticmethod
    def _ran(valid, dact, dgh, sv):
        """(dact, dgh, xs, hs) of the steps that ran, as one step of M rows: the weight
        gradients' GEMMs then skip the padded steps (on CMUdict ~20% of the row-steps)
        instead of multiplying their zeros. LSTM 1x256 / 512, batches of 64, 1 thread:
        the GEMMs' CPU time fell from 1.35 to 1.06 s per 40 batches, for 0.11 s of copies."""
        T, N = valid.shape
        M = int(valid.sum())
        if M == T * N:
            return dact, dgh, sv["xs"], sv["hs"]
        sel = valid.reshape(-1)
        ran = lambda a: a.reshape(T * N, a.shape[-1])[sel][None]  # noqa: E731  (1, M, .)
        hs = np.empty((2, M, sv["hs"].shape[2]), sv["hs"].dtype)        # hs[1]: not read
        hs[0] = sv["hs"][:T].reshape(T * N, -1)[sel]                    # h_{s-1} of each
        return ran(dact), dgh if dgh.size == 0 else ran(dgh), ran(sv["xs"]), hs

    def loss_and_grad(self, src, src_len, tgt, tgt_len, smoothing=0.0):
        """(mean loss, gradients as a dict like params: a copy)."""
        self.grad_flat.fill(0)
        loss = self.forward_backward(src, src_len, tgt, tgt_len, smoothing=smoothing)
        return loss, {k: v.copy() for k, v in self.grads.items()}

    def loss(self, src, src_len, tgt, tgt_len):
        return self.forward_backward(src, src_len, tgt, tgt_len, grad=False)


def smoothed_xent(z, labels, scale, eps):
    """_ops.softmax_xent with label smoothing eps: the summed cross-entropy against the
    target distribution (1 - eps) onehot + eps / V (PyTorch's label_smoothing), and with
    scale != 0, z overwritten with its gradient times scale. Per row that loss is
    lse - z_y + eps (z_y - mean z) and its gradient softmax - onehot + eps (onehot - 1/V):
    softmax_xent's, corrected from z's values read before it overwrites them."""
    if not eps:
        return _ops.softmax_xent(z, labels, scale)
    M, V = z.shape
    rows = np.arange(M)
    correction = eps * (float(z[rows, labels].sum(dtype=np.float64))
                        - float(z.sum(dtype=np.float64)) / V)
    total = _ops.softmax_xent(z, labels, scale)
    if scale:
        z -= z.dtype.type(eps * scale / V)
        z[rows, labels] += z.dtype.type(eps * scale)
    return total + correction


class Drop:
    """The dropout masks of one training pass, by site (SITES), kept for backward."""

    def __init__(self, rng, p, dtype):
        self.rng, self.p, self.dtype, self.masks = rng, p, dtype, {}

    def __bool__(self):
        return self.p > 0

    def mask(self, site, T, N, D):
        """(T*N, D) mask of `site` (row t*N + n: step t of row n)."""
        self.masks[site] = draw_mask(self.rng, site, T, N, D, self.p, self.dtype)
        return self.masks[site]
