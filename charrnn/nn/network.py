"""The network: embedding -> stacked recurrent cells -> dropout -> linear -> softmax.

Sizes: T time steps, N batch (parallel streams), V vocabulary, E embedding, H hidden,
L layers, R = T*N characters in a batch. Data is time-major like PyTorch: x, y (T, N).

Parameters live in one flat buffer with named views (llm.c style), in the order and with
the PyTorch names of charrnn.nn.shapes.expected_shapes, so the optimizer and gradient
clipping are single loops over one array and a checkpoint is just the views. Gradients
mirror the same layout.

Dropout follows PyTorch's word_language_model: on the embedding output, between layers
and before the decoder. Masks come from the caller: a np.random.Generator, or a
StreamMasks (what training uses), whose masks are a pure function of (seed, step,
stream, site), so a stream's masks do not depend on which process holds it.
"""
from dataclasses import asdict, dataclass

import numpy as np

from charrnn import _dropout, _ops
from charrnn.nn import cells, flat
from charrnn.nn import table as lookup
from charrnn.nn.shapes import GATES, expected_shapes
from charrnn.errors import ConfigError, ShapeError

LOGITS_BYTES = 64 << 20   # the decoder works on this much of the (R, V) logits at a time


class StreamMasks:
    """Dropout masks of one training step for streams stream0, stream0 + 1, ... of the
    global batch, drawn by Philox keyed by (seed, step, stream, site): see
    kernels/_dropout.pyx. Same masks for a stream whichever rank holds it."""

    def __init__(self, seed, step, stream0=0):
        self.seed, self.step, self.stream0 = seed & (2**64 - 1), step, stream0

    def mask(self, site, T, N, D, p, dtype):
        out = np.empty((T, N, D), dtype)                                # (T, N, D)
        _dropout.dropout_mask(out, self.seed, self.step, self.stream0, site, p)
        return out.reshape(T * N, D)


def draw_mask(rng, site, T, N, D, p, dtype):
    """(T*N, D) inverted-dropout mask (0 or 1/(1-p)) for dropout site `site`: from a
    StreamMasks (keyed, reproducible across ranks and resumes) or a numpy Generator."""
    if isinstance(rng, StreamMasks):
        return rng.mask(site, T, N, D, p, dtype)
    keep = rng.random((T * N, D), dtype=dtype) >= p
    return keep * dtype.type(1.0 / (1.0 - p))


@dataclass
class ModelConfig:
    cell: str = "lstm"        # lstm, gru or rnn (tanh)
    hidden: int = 256         # H: units per layer
    layers: int = 2           # L: stacked cells
    embed: int = 64           # E: embedding size
    dropout: float = 0.0      # drop probability for the three dropout sites
    vocab_size: int = 0       # V: set from the corpus
    encoding: str = "utf-8"   # how the corpus was decoded ("bytes" for byte-level models)
    end_marker: str = ""      # documents (--docs): the character that ends one; the state
                              # is zeroed on every step whose input it is. "": no documents

    def validate(self):
        if self.cell not in GATES:
            raise ConfigError(f"cell must be one of lstm, gru, rnn, not {self.cell!r}")
        for name in ("hidden", "layers", "embed", "vocab_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.end_marker, str) or len(self.end_marker) > 1:
            raise ConfigError(f"end_marker must be one character or empty, got "
                              f"{self.end_marker!r}")
        return self


_FORWARD = {"lstm": cells.lstm_forward, "gru": cells.gru_forward, "rnn": cells.rnn_forward}


class Network:
    """The network of a character-level language model over a fixed vocabulary: its
    parameters, forward and backward. charrnn.model.CharRNN adds generation on top."""

    def __init__(self, config, vocab, params=None, seed=0, dtype=np.float32,
                 forget_bias=1.0):
        if isinstance(config, dict):
            known = ModelConfig.__dataclass_fields__
            config = ModelConfig(**{k: v for k, v in config.items() if k in known})
        self.cfg = config.validate()
        self.vocab = list(vocab)
        if len(self.vocab) != self.cfg.vocab_size:
            raise ConfigError(f"vocabulary has {len(self.vocab)} characters, config says {self.cfg.vocab_size}")
        if self.cfg.end_marker and self.cfg.end_marker not in self.vocab:
            raise ConfigError(f"the end marker {self.cfg.end_marker!r} is not in the vocabulary")
        # documents: the id whose input zeroes the state (None: no documents)
        self.end_id = self.vocab.index(self.cfg.end_marker) if self.cfg.end_marker else None
        self.dtype = np.dtype(dtype)
        self.shapes = expected_shapes(self.config)
        # every parameter and its gradient, (P,) each, and their named views
        self.flat, self.grad_flat, self.params, self.grads = flat.allocate(self.shapes, self.dtype)
        if params is None:
            self._init(np.random.default_rng(seed), forget_bias)
        else:
            flat.assign(self.params, params)
        self._ws = [cells.Workspace() for _ in range(self.cfg.layers)]   # per layer: saved for backward
        self._bws = cells.Workspace()   # backward's scratch, shared: layers run it in turn
        self.parallel = None   # a cells.Parallel to split each kernel pass over threads
        self.lookup_input = True   # layer 0 through the embedding table where it pays

    def rebind_grads(self, buf):
        """Use buf (P,) as the gradient buffer (a view into a larger message buffer, so
        a distributed trainer sends gradients and flags in one Allreduce)."""
        if buf.shape != self.grad_flat.shape or buf.dtype != self.dtype:
            raise ShapeError(f"gradient buffer must be {self.dtype}{list(self.grad_flat.shape)}")
        self.grad_flat = buf
        self.grads = flat.views(buf, self.shapes)

    @property
    def config(self):
        return asdict(self.cfg)

    @property
    def precision(self):
        """"fp32" or "bf16": the precision of the matrix products of forward_backward
        (charrnn.nn.precision); the parameters and gradients stay float32. Sampling is
        float32 whatever this says."""
        return self._bws.precision

    @precision.setter
    def precision(self, name):
        # their packs: every layer's, and the decoder's
        cells.set_precision((*self._ws, self._bws), name, self.dtype)

    def _init(self, rng, forget_bias):
        # word_language_model: encoder/decoder uniform(-0.1, 0.1), decoder bias 0;
        # cells as PyTorch does, uniform(-1/sqrt(H), 1/sqrt(H)).
        k = 1.0 / np.sqrt(self.cfg.hidden)
        for name, p in self.params.items():
            if name.startswith("rnn."):
                p[...] = rng.uniform(-k, k, p.shape)
            elif name == "decoder.bias":
                p[...] = 0
            else:
                p[...] = rng.uniform(-0.1, 0.1, p.shape)
        if self.cfg.cell == "lstm" and forget_bias:
            # A forget-gate bias near 1 lets gradients flow through c from the start
            # (Jozefowicz et al. 2015; torch-rnn does the same).
            H = self.cfg.hidden
            for layer in range(self.cfg.layers):
                self.params[f"rnn.bias_ih_l{layer}"][H:2 * H] += forget_bias

    def layer_weights(self, k, source=None):
        p = self.params if source is None else source
        return (p[f"rnn.weight_ih_l{k}"], p[f"rnn.weight_hh_l{k}"],
                p[f"rnn.bias_ih_l{k}"], p[f"rnn.bias_hh_l{k}"])

    # ---- state ----------------------------------------------------------------------

    def init_state(self, N):
        """Zero hidden state for N streams: per layer (h,) or, for the LSTM, (h, c)."""
        n = 2 if self.cfg.cell == "lstm" else 1
        return [tuple(np.zeros((N, self.cfg.hidden), self.dtype) for _ in range(n))
                for _ in range(self.cfg.layers)]

    def _check_batch(self, x, y, state):
        x = np.asarray(x)
        if x.ndim != 2 or x.size == 0 or not np.issubdtype(x.dtype, np.integer):
            raise ShapeError(f"x must be a non-empty 2-d integer array (T, N), got {x.dtype} {x.shape}")
        if y is not None:
            y = np.asarray(y)
            if y.shape != x.shape or not np.issubdtype(y.dtype, np.integer):
                raise ShapeError(f"y must be an integer array shaped like x {x.shape}, got {y.dtype} {y.shape}")
        N = x.shape[1]
        if state is None:
            state = self.init_state(N)
        else:
            want = self.init_state(N)
            if len(state) != len(want) or any(len(s) != len(w) for s, w in zip(state, want)):
                raise ShapeError("state does not match this model (one tuple per layer: (h, c) for LSTM, (h,) otherwise)")
            for s, w in zip(state, want):
                for a, b in zip(s, w):
                    if np.shape(a) != b.shape:
                        raise ShapeError(f"state arrays must be (N, H) = {b.shape}, got {np.shape(a)}")
            state = [tuple(np.ascontiguousarray(a, self.dtype) for a in s) for s in state]
        return x, y, state

    # ---- forward and backward ---------------------------------------------------------

    def forward_backward(self, x, y, state=None, rng=None, grad=True, reset=None):
        """Mean cross-entropy (nats/char) of predicting y from x, and the final state.

        With grad=True the gradients are *added* to self.grads (zero them per step).
        Dropout is applied when rng (a np.random.Generator or StreamMasks) is given and
        dropout > 0. reset (T, N) of bool or uint8: where reset[t, n], stream n starts
        afresh at step t, from a zero state in every layer, as if a new sequence began
        there (charrnn.nn.reference has the exact semantics); None: nowhere. A model
        trained on documents (config end_marker) adds its own: every step whose input
        is the end marker starts from a zero state (charrnn.data.documents).
        """
        x, y, state = self._check_batch(x, y, state)
        reset = self.resets(x, reset)
        cfg, dt = self.cfg, self.dtype
        T, N = x.shape
        R = T * N
        p = cfg.dropout if rng is not None else 0.0
        ids = np.ascontiguousarray(x, np.int32).reshape(R)
        tgt = np.ascontiguousarray(y, np.int32).reshape(R)

        masks = []
        # Without dropout on the embedding, layer 0 multiplies the embedding table, V
        # rows, instead of its R gathered rows (charrnn.nn.table).
        table = self.lookup_input and p <= 0 and lookup.worth_it(cfg.vocab_size, R)
        if table:
            inp = cells.Lookup(ids.reshape(T, N), self.params["encoder.weight"])
        else:
            emb = np.empty((R, cfg.embed), dt)                          # (R, E)
            _ops.embedding_forward(ids, self.params["encoder.weight"], emb)
            inp = self._dropout(emb, p, rng, masks, T, N)
        caches, new_state = [], []
        for k in range(cfg.layers):
            if not isinstance(inp, cells.Lookup):
                inp = inp.reshape(T, N, -1)                             # (T, N, E or H)
            out = _FORWARD[cfg.cell](inp, *state[k], *self.layer_weights(k),
                                     workspace=self._ws[k], parallel=self.parallel, reset=reset)
            y_k, final, cache = out[0], out[1:-1], out[-1]
            caches.append(cache)
            new_state.append(tuple(final))
            inp = self._dropout(y_k.reshape(R, cfg.hidden), p, rng, masks, T, N)
        top = np.ascontiguousarray(inp.reshape(R, cfg.hidden))         # (R, H)
        loss, dtop = self._decode(top, tgt, grad)
        if grad:
            self._backward(dtop, ids, caches, masks, T, N, table)
        return loss, new_state

    def resets(self, x, reset=None):
        """The reset mask of a batch x (T, N): `reset` (or None), and for a model with an
        end marker, also every step whose input it is."""
        if self.end_id is None:
            return reset
        mine = np.asarray(x) == self.end_id                             # (T, N) bool
        if reset is not None:
            mine |= np.asarray(reset, bool)
        return np.ascontiguousarray(mine)

    def _decode(self, top, tgt, grad):
        """Decoder, softmax and cross-entropy (and their backward) -> (mean loss, dtop).

        Rows are split over the threads of self.parallel, each accumulating its own
        decoder gradient (summed afterwards), and each thread works through its rows in
        blocks so the (rows, V) logits stay under LOGITS_BYTES even for a huge vocabulary.
        """
        R = top.shape[0]
        dtop = np.empty_like(top) if grad else None                     # (R, H)
        # W^T packed once for every block and thread, if the own sgemm is in use
        Wp = cells.pack(self._bws, "decoder", self.params["decoder.weight"], True)
        P = self.parallel
        if P is None or P.threads == 1 or R < 2 * P.threads:
            total = self._decode_rows(top, tgt, dtop, 0, R, R, grad, Wp,
                                      self.grads["decoder.weight"], self.grads["decoder.bias"])
            return total / R, dtop
        parts = P.split(R)
        if grad:
            dWs = [self.grads["decoder.weight"]] + [np.zeros_like(self.grads["decoder.weight"]) for _ in parts[1:]]
            dbs = [self.grads["decoder.bias"]] + [np.zeros_like(self.grads["decoder.bias"]) for _ in parts[1:]]
        else:
            dWs = dbs = [None] * len(parts)
        totals = [0.0] * len(parts)

        def work(i, r0, r1):
            totals[i] = self._decode_rows(top, tgt, dtop, r0, r1, R, grad, Wp, dWs[i], dbs[i])
        P.run(work, [(i, r0, r1) for i, (r0, r1) in enumerate(parts)])
        for dW, db in zip(dWs[1:], dbs[1:]):
            if grad:
                dWs[0] += dW
                dbs[0] += db
        return sum(totals) / R, dtop

    def _decode_rows(self, top, tgt, dtop, r0, r1, R, grad, Wp, dW, db):
        """Rows [r0, r1) of the decoder: the summed loss; dtop rows and dW, db (+=).
        Wp: W^T packed by cells.pack (empty: BLAS)."""
        V, dt = self.cfg.vocab_size, self.dtype
        W, b = self.params["decoder.weight"], self.params["decoder.bias"]
        block = max(1, min(r1 - r0, LOGITS_BYTES // (V * dt.itemsize)))
        logits = np.empty((block, V), dt)                               # (block, V)
        total = 0.0
        for a in range(r0, r1, block):
            z = min(r1, a + block)
            lg = logits[:z - a]
            _ops.linear_forward(top[a:z], W, Wp, b, lg)
            # softmax_xent overwrites lg with d(mean loss)/d(logits) when scale != 0
            total += _ops.softmax_xent(lg, tgt[a:z], 1.0 / R if grad else 0.0)
            if grad:
                _ops.linear_backward(lg, top[a:z], W, dtop[a:z], dW, db, own=Wp.size > 0)
        return total

    def _dropout(self, a, p, rng, masks, T, N):
        """a (R, D) times a fresh mask for dropout site len(masks), kept for backward."""
        if p <= 0:
            return a
        mask = draw_mask(rng, len(masks), T, N, a.shape[1], p, self.dtype)
        masks.append(mask)
        return a * mask

    def _backward(self, dtop, ids, caches, masks, T, N, table=False):
        cfg, dt, g = self.cfg, self.dtype, self.grads
        R = T * N
        d = dtop
        for k in reversed(range(cfg.layers)):
            if masks:
                d = d * masks[k + 1]
            dy = np.ascontiguousarray(d.reshape(T, N, cfg.hidden))
            D = cfg.embed if k == 0 else cfg.hidden
            # a table input's gradient is the embedding's, added into directly
            dx = g["encoder.weight"] if k == 0 and table else np.zeros((T, N, D), dt)
            h_scratch = np.zeros((N, cfg.hidden), dt)
            W = self.layer_weights(k, g)
            if cfg.cell == "lstm":
                cells.lstm_backward(dy, None, None, caches[k], dx, h_scratch,
                                    np.zeros_like(h_scratch), *W, workspace=self._bws)
            elif cfg.cell == "gru":
                cells.gru_backward(dy, None, caches[k], dx, h_scratch, *W, workspace=self._bws)
            else:
                cells.rnn_backward(dy, None, caches[k], dx, h_scratch, *W, workspace=self._bws)
            if k == 0 and table:
                return
            d = dx.reshape(R, D)
        if masks:
            d = d * masks[0]
        _ops.embedding_backward(ids, np.ascontiguousarray(d), g["encoder.weight"])

    # ---- public API -------------------------------------------------------------------

    def loss_and_grad(self, x, y, state=None, reset=None):
        """loss (mean nats/char, no dropout), grads (dict like params), final state.
        reset: as in forward_backward."""
        self.grad_flat.fill(0)
        loss, state = self.forward_backward(x, y, state, rng=None, grad=True, reset=reset)
        return loss, {k: v.copy() for k, v in self.grads.items()}, state

    def loss(self, x, y, state=None, reset=None):
        """Mean cross-entropy (nats/char) without gradients or dropout, and the final state.
        reset: as in forward_backward."""
        return self.forward_backward(x, y, state, rng=None, grad=False, reset=reset)
