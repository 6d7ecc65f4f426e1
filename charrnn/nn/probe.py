"""What a model sees while it reads a text: per-character predictions and activations.

    p = model.probe("ROMEO:\\nWhat light")
    p.probs        (T, V)    probs[t] = P(next character | text[:t+1])
    p.hidden       (L, T, H) h of every layer after reading text[t]
    p.cell         (L, T, H) the LSTM's c (None for GRU and RNN)
    p.target_probs (T-1,)    probability the model gave to the character that came next
    p.loss         mean -log(target_probs), nats/char (what evaluation measures)
    p.state        the state after the last character: probe(more, state=p.state)

T characters, V vocabulary, L layers, H hidden units. It is one forward pass over the
whole text with batch size 1, on the same float32 kernels as training (no dropout),
starting from a zero state unless one is given (and, for a model trained on
documents, at each of its end markers); tests check it against
charrnn/reference.py. This is the data behind Karpathy's pictures of char-RNNs: the
colour of each character is target_probs, the "neurons" are columns of hidden.
Memory: probs is T x V float64, so probe long texts of big vocabularies in pieces
(each from the last one's p.state).
"""
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from charrnn.nn import cells
from charrnn.data.text import encode_text
from charrnn.errors import ConfigError

_FORWARD = {"lstm": cells.lstm_forward, "gru": cells.gru_forward, "rnn": cells.rnn_forward}


@dataclass
class Probe:
    text: str
    ids: np.ndarray              # (T,) int64 token ids of text
    probs: np.ndarray            # (T, V) float64, rows sum to 1
    hidden: np.ndarray           # (L, T, H) float32
    cell: Optional[np.ndarray]   # (L, T, H) float32 for the LSTM, else None
    vocab: list
    state: list                  # per layer (h,) or (h, c), each (1, H): after text[-1]

    @property
    def target_probs(self):
        """(T-1,) P(text[t+1] | text[:t+1]): how well each next character was predicted."""
        return self.probs[np.arange(len(self.ids) - 1), self.ids[1:]]

    @property
    def loss(self):
        """Mean cross-entropy over the T-1 predicted characters, nats/char: nan for a
        one-character text (nothing predicted), inf if a character had probability 0."""
        p = self.target_probs
        if len(p) == 0:
            return math.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(-np.log(p).mean())

    def top(self, t, k=5):
        """The k likeliest next characters after text[:t+1]: [(char, prob)], best first."""
        order = np.argsort(-self.probs[t], kind="stable")[:k]
        return [(self.vocab[i], float(self.probs[t, i])) for i in order]


def probe(model, text, state=None):
    """A Probe of `model` (a CharRNN) reading `text` (str; bytes for byte-level models).

    state: the starting state for one stream (as model.init_state(1)); default zeros.
    Raises ConfigError for an empty text or characters outside the vocabulary.
    """
    cfg = model.cfg
    ids = encode_text(text, model.vocab, cfg.encoding, what="the probed text")
    if len(ids) < 1:
        raise ConfigError("the probed text is empty")
    T, dt = len(ids), model.dtype
    _, _, state = model._check_batch(ids.reshape(T, 1), None, state)
    inp = model.params["encoder.weight"][ids].reshape(T, 1, cfg.embed)    # (T, 1, E)
    reset = model.resets(ids.reshape(T, 1))   # documents: zero state at each end marker
    hidden, cell_states, final = [], [], []
    for k in range(cfg.layers):
        out = _FORWARD[cfg.cell](np.ascontiguousarray(inp, dt), *state[k],
                                 *model.layer_weights(k), reset=reset)
        y, cache = out[0], out[-1]                                        # y (T, 1, H)
        final.append(tuple(out[1:-1]))
        hidden.append(y[:, 0].copy())
        if cfg.cell == "lstm":
            cell_states.append(cache.saved[1][1:, 0].copy())              # cs (T+1, 1, H)
        inp = y
    top = hidden[-1]                                                      # (T, H)
    # The decoder in float64: a probability of 1e-6 should read as such, not as 0.
    logits = top.astype(np.float64) @ model.params["decoder.weight"].T.astype(np.float64)
    logits += model.params["decoder.bias"]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)                             # (T, V)
    shown = "".join(model.vocab[i] for i in ids)   # one character per id, even for bytes
    return Probe(shown, ids, probs, np.stack(hidden),
                 np.stack(cell_states) if cell_states else None, list(model.vocab), final)
