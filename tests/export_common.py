"""Shared by tests/test_export_*.py: a small model trained once per test session, the
held-out text it never saw, and charrnn's own float32 logits to compare exports with."""
import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

import charrnn
from charrnn.nn import cells
from charrnn.model import CharRNN

CORPUS = Path(__file__).resolve().parent.parent / "data" / "tinyshakespeare.txt"
TEXT = CORPUS.read_text(encoding="utf-8")[:300_000]
HELD_OUT = TEXT[-30_000:]          # the validation part (last 10%) of the training text


@functools.lru_cache(maxsize=None)
def trained_run(cell="gru", hidden=128, layers=1, steps=300):
    """A run directory of a small model trained on the first 300k characters of Tiny
    Shakespeare (1 thread, about 10 s; validation loss about 2.05 nats/char, against 4.2
    for a uniform guess); the last 10% is held out (HELD_OUT). 1x128 GRU: the size the
    README gives for a 256 KB-flash microcontroller."""
    root = Path(tempfile.mkdtemp(prefix="charrnn-export-test-"))
    atexit.register(shutil.rmtree, root, True)
    corpus = root / "shakespeare.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    run = root / f"{cell}-{layers}x{hidden}"
    charrnn.train(str(corpus), out=str(run), quiet=True, threads=1, cell=cell, hidden=hidden,
                  layers=layers, embed=64, max_steps=steps, max_minutes=0, eval_every=steps,
                  val_frac=0.1, seq_len=64, batch_size=32)
    return run


def random_model(cell, layers, hidden=24, embed=16, scale=1.5, seed=0):
    """A model over Tiny Shakespeare's characters with PyTorch's random init scaled up, so
    that gates saturate often and the state matters. (Much more, e.g. 2x for the tanh RNN,
    makes the recurrence chaotic: any two float32 implementations then drift apart by
    ~1e-4 over 1000 steps, however exact each is.)"""
    vocab = sorted(set(TEXT))
    m = CharRNN(dict(cell=cell, hidden=hidden, layers=layers, embed=embed,
                     vocab_size=len(vocab)), vocab, seed=seed)
    for p in m.params.values():
        p *= scale
    m.params["decoder.weight"] *= 10      # logits spread over a few nats, as a trained model's
    return m


def ids(model, text):
    index = {c: i for i, c in enumerate(model.vocab)}
    return np.array([index[c] for c in text], np.int64)


def charrnn_logits(model, tokens, state=None):
    """charrnn's float32 forward through its own kernels: logits (T, B, V) and the final
    state (list per layer of (h,) or (h, c), each (B, H))."""
    p, cfg = model.params, model.cfg
    T, B = tokens.shape
    state = model.init_state(B) if state is None else state
    x = np.ascontiguousarray(p["encoder.weight"][tokens], np.float32)        # (T, B, E)
    forward = getattr(cells, f"{cfg.cell}_forward")
    final = []
    for k in range(cfg.layers):
        out = forward(x, *state[k], *model.layer_weights(k))
        x, fin = out[0], out[1:-1]
        final.append(tuple(np.array(a) for a in fin))
    return x @ p["decoder.weight"].T + p["decoder.bias"], final
