"""A many-to-one classifier: embedding -> bidirectional stack -> pooling -> linear -> softmax.

Sizes: T time steps, N rows (strings), V vocabulary, E embedding, H hidden per direction,
L layers, C classes. Input is a padded batch, time-major like PyTorch: ids (T, N) with
row n valid in ids[:lengths[n], n] (what lies beyond is never read), lengths (N,) in
1..T, labels (N,) in 0..C-1. charrnn.nn.bidirectional has the stack's semantics.

Pooled features, (N, 2H):
    "final": [h_fwd at the row's last character ; h_rev after reading its first]
             (the top layer's final states: PyTorch's torch.cat([h_n[-2], h_n[-1]], 1))
    "mean":  the mean of the top layer's outputs over the row's valid positions
Loss: mean over rows of -log softmax(features W^T + b)[label], in nats.

Parameters live in one flat buffer with named views, in PyTorch's named_parameters()
order of Embedding + LSTM/GRU/RNN(bidirectional=True) + Linear, so charrnn.nn.optim's
optimizers work unchanged (float32) and a state_dict loads into the equivalent torch
module by name:
    encoder.weight                 (V, E)
    rnn.weight_ih_l{k}[_reverse]   (G*H, E if k == 0 else 2H)   G: LSTM 4, GRU 3, RNN 1
    rnn.weight_hh_l{k}[_reverse]   (G*H, H)
    rnn.bias_ih_l{k}[_reverse]     (G*H,)
    rnn.bias_hh_l{k}[_reverse]     (G*H,)
    decoder.weight                 (C, 2H)
    decoder.bias                   (C,)
"""
from dataclasses import asdict, dataclass

import numpy as np

from charrnn import _ops
from charrnn.errors import ConfigError, ShapeError
from charrnn.nn import bidirectional as bi
from charrnn.nn import cells, flat
from charrnn.nn.shapes import GATES

POOLS = ("final", "mean")


@dataclass
class ClassifierConfig:
    cell: str = "lstm"        # lstm, gru or rnn (tanh)
    hidden: int = 64          # H: units per direction and layer
    layers: int = 1           # L: stacked bidirectional layers
    embed: int = 32           # E: embedding size
    vocab_size: int = 0       # V: set from the texts
    classes: int = 2          # C: number of labels
    pool: str = "final"       # "final" (both directions' end states) or "mean" (of outputs)

    def validate(self):
        if self.cell not in GATES:
            raise ConfigError(f"cell must be one of lstm, gru, rnn, not {self.cell!r}")
        for name in ("hidden", "layers", "embed", "vocab_size", "classes"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.pool not in POOLS:
            raise ConfigError(f"pool must be one of {', '.join(POOLS)}, not {self.pool!r}")
        return self


def expected_shapes(cfg):
    """Name -> shape, in the order of the flat buffer (PyTorch's)."""
    shapes = {"encoder.weight": (cfg.vocab_size, cfg.embed)}
    for name, shape in bi.param_shapes(cfg.cell, cfg.embed, cfg.hidden, cfg.layers).items():
        shapes["rnn." + name] = shape
    shapes["decoder.weight"] = (cfg.classes, 2 * cfg.hidden)
    shapes["decoder.bias"] = (cfg.classes,)
    return shapes


def pad_batch(seqs, pad=0):
    """A list of N non-empty id sequences -> (ids (T, N) int32 padded with `pad`, lengths (N,))."""
    lengths = np.array([len(s) for s in seqs], np.int64)
    if not len(seqs) or lengths.min() < 1:
        raise ShapeError("pad_batch: need at least one sequence, and no empty one")
    ids = np.full((int(lengths.max()), len(seqs)), pad, np.int32)   # (T, N)
    for n, s in enumerate(seqs):
        ids[:len(s), n] = s
    return ids, lengths


class Classifier:
    """Parameters, forward and backward of a bidirectional many-to-one classifier."""

    def __init__(self, config, params=None, seed=0, dtype=np.float32, forget_bias=1.0):
        if isinstance(config, dict):
            config = ClassifierConfig(**config)
        self.cfg = config.validate()
        self.dtype = np.dtype(dtype)
        if self.dtype not in cells.DTYPES:
            raise ConfigError(f"dtype must be float32 or float64, not {self.dtype}")
        self.shapes = expected_shapes(self.cfg)
        # every parameter and its gradient, (P,) each, and their named views
        self.flat, self.grad_flat, self.params, self.grads = flat.allocate(self.shapes, self.dtype)
        if params is None:
            self._init(np.random.default_rng(seed), forget_bias)
        else:
            flat.assign(self.params, params)
        # per layer and direction: buffers reused between steps, holding forward's caches
        self._ws = [cells.Workspace() for _ in range(2 * self.cfg.layers)]
        self._bws = cells.Workspace()   # backward's scratch, shared by the layers in turn
        self.parallel = None   # a cells.Parallel: its threads run the two directions at once

    @property
    def precision(self):
        """"fp32" or "bf16": the precision of the cells' products (charrnn.nn.precision),
        as charrnn.nn.network.Network's; the parameters and gradients stay float32."""
        return self._bws.precision

    @precision.setter
    def precision(self, name):
        cells.set_precision((*self._ws, self._bws), name, self.dtype)

    @property
    def config(self):
        return asdict(self.cfg)


    def _init(self, rng, forget_bias):
        # as charrnn.nn.network: cells PyTorch's uniform(-1/sqrt(H), 1/sqrt(H)), embedding
        # and decoder uniform(-0.1, 0.1), decoder bias 0, LSTM forget-gate bias + 1
        k = 1.0 / np.sqrt(self.cfg.hidden)
        H = self.cfg.hidden
        for name, p in self.params.items():
            if name.startswith("rnn."):
                p[...] = rng.uniform(-k, k, p.shape)
                if self.cfg.cell == "lstm" and name.startswith("rnn.bias_ih"):
                    p[H:2 * H] += forget_bias
            elif name == "decoder.bias":
                p[...] = 0
            else:
                p[...] = rng.uniform(-0.1, 0.1, p.shape)

    # ---- forward and backward -----------------------------------------------------------

    def _check(self, ids, lengths, labels):
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise ShapeError(f"ids must be a non-empty 2-d integer array (T, N), got {ids.dtype} {ids.shape}")
        T, N = ids.shape
        lengths = bi.check_lengths(lengths, T, N)
        valid = np.arange(T)[:, None] < lengths[None, :]               # (T, N)
        ids = np.where(valid, ids, 0).astype(np.int32)                 # padding reads id 0
        bad = np.flatnonzero((ids < 0) | (ids >= self.cfg.vocab_size))
        if bad.size:
            t, n = divmod(int(bad[0]), N)
            raise ShapeError(f"ids[{t}, {n}] = {ids[t, n]} is outside the vocabulary (size {self.cfg.vocab_size})")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (N,) or not np.issubdtype(labels.dtype, np.integer):
                raise ShapeError(f"labels must be integers ({N},), got {labels.dtype} {labels.shape}")
            if labels.min() < 0 or labels.max() >= self.cfg.classes:
                raise ShapeError(f"labels must be in 0..{self.cfg.classes - 1}, got {labels.min()}..{labels.max()}")
            labels = labels.astype(np.int32)
        return ids, lengths, labels

    def forward(self, ids, lengths):
        """-> (logits (N, C), cache for backward)."""
        ids, lengths, _ = self._check(ids, lengths, None)
        cfg, dt = self.cfg, self.dtype
        T, N = ids.shape
        x = np.empty((T * N, cfg.embed), dt)                            # (T*N, E)
        _ops.embedding_forward(ids.reshape(-1), self.params["encoder.weight"], x)
        rnn = {k[4:]: v for k, v in self.params.items() if k.startswith("rnn.")}
        out, finals, bcache = bi.forward(cfg.cell, x.reshape(T, N, cfg.embed), lengths, rnn,
                                         workspaces=self._ws, parallel=self.parallel)
        if cfg.pool == "final":
            feat = np.concatenate([finals[0][-2], finals[0][-1]], axis=1)   # (N, 2H)
        else:   # out is zero at padded positions: the sum is over the valid ones
            feat = out.sum(axis=0) / lengths[:, None].astype(dt)          # (N, 2H)
        feat = np.ascontiguousarray(feat, dt)
        logits = np.empty((N, cfg.classes), dt)                         # (N, C)
        _ops.linear_forward(feat, self.params["decoder.weight"], np.empty(0, dt),
                            self.params["decoder.bias"], logits)
        return logits, (ids, lengths, feat, bcache)

    def backward(self, dlogits, cache):
        """Adds the gradients of sum(dlogits * logits) into self.grads."""
        ids, lengths, feat, bcache = cache
        cfg, dt, g = self.cfg, self.dtype, self.grads
        T, N = ids.shape
        L, H = cfg.layers, cfg.hidden
        dlogits = np.ascontiguousarray(dlogits, dt)
        dfeat = np.empty_like(feat)                                     # (N, 2H)
        _ops.linear_backward(dlogits, feat, self.params["decoder.weight"], dfeat,
                             g["decoder.weight"], g["decoder.bias"])
        dout = np.zeros((T, N, 2 * H), dt)                              # (T, N, 2H)
        dfinals = None
        if cfg.pool == "final":
            dh = np.zeros((2 * L, N, H), dt)                            # (2L, N, H)
            dh[-2], dh[-1] = dfeat[:, :H], dfeat[:, H:]
            dfinals = (dh, None) if cfg.cell == "lstm" else (dh,)
        else:   # padded positions of dout are ignored by the stack
            dout[...] = dfeat / lengths[:, None].astype(dt)
        rgrads = {k[4:]: v for k, v in g.items() if k.startswith("rnn.")}
        dx = bi.backward(dout, dfinals, bcache, rgrads, workspace=self._bws)  # (T, N, E)
        _ops.embedding_backward(ids.reshape(-1), dx.reshape(T * N, cfg.embed),
                                g["encoder.weight"])

    def forward_backward(self, ids, lengths, labels, grad=True):
        """Mean cross-entropy (nats per row); with grad, its gradients *added* to self.grads."""
        labels = self._check(ids, lengths, labels)[2]
        logits, cache = self.forward(ids, lengths)
        N = logits.shape[0]
        # softmax_xent overwrites logits with d(mean loss)/d(logits) when its scale != 0
        total = _ops.softmax_xent(logits, labels, 1.0 / N if grad else 0.0)
        if grad:
            self.backward(logits, cache)
        return total / N

    # ---- public API -------------------------------------------------------------------

    def loss_and_grad(self, ids, lengths, labels):
        """(mean loss, gradients as a dict like params: a copy)."""
        self.grad_flat.fill(0)
        loss = self.forward_backward(ids, lengths, labels)
        return loss, {k: v.copy() for k, v in self.grads.items()}

    def loss(self, ids, lengths, labels):
        return self.forward_backward(ids, lengths, labels, grad=False)

    def predict_proba(self, ids, lengths):
        """(N, C) class probabilities, float64. Reuses forward's buffers: call it between
        steps, not between a forward and its backward."""
        logits, _ = self.forward(ids, lengths)
        z = logits.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, ids, lengths):
        """(N,) the most probable class of each row."""
        return self.predict_proba(ids, lengths).argmax(axis=1)
