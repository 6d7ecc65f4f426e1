"""Training a text classifier from (label, text) pairs, in Python (issue 32's first step).

    from charrnn.training.classify import train_classifier
    clf = train_classifier([("en", "hello"), ("el", "γεια"), ...], steps=300)
    clf.predict(["world", "κόσμε"])          # -> ["en", "el"]
    clf.predict_proba(["world"])             # -> (1, C) array, columns in clf.labels order

The model is charrnn.nn.classifier.Classifier (float32, trained with charrnn.nn.optim's
Adam and global-norm clipping): characters -> bidirectional stack -> pooled -> softmax.
The vocabulary is the training texts' characters, sorted, after id 0, which stands for
any character not seen in training; labels are the distinct labels, sorted. Each step
draws batch_size pairs at random (seeded) and pads them to the longest.
Runs with checkpoints, validation and resume: charrnn.training.classify_run
(`charrnn train --task classify`); see docs/classify.md.
"""
import numpy as np

from charrnn.classifier import TextClassifier
from charrnn.errors import ConfigError, CorpusError
from charrnn.nn import optim
from charrnn.nn.classifier import Classifier

__all__ = ["TextClassifier", "train_classifier"]


def train_classifier(pairs, cell="lstm", hidden=64, layers=1, embed=32, pool="final",
                     steps=300, batch_size=32, lr=0.01, grad_clip=5.0, seed=0):
    """A TextClassifier trained on `pairs`, a list of (label, text): label any hashable,
    sortable value (str, int), text a non-empty string."""
    pairs = list(pairs)
    if not pairs:
        raise CorpusError("no (label, text) pairs to train on")
    for i, p in enumerate(pairs):
        if not (isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], str) and p[1]):
            raise CorpusError(f"pair {i} is {p!r}: expected (label, non-empty text)")
    labels = sorted({label for label, _ in pairs})
    if len(labels) < 2:
        raise CorpusError(f"every pair has label {labels[0]!r}: a classifier needs two or more")
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    vocab = sorted({c for _, text in pairs for c in text})
    cfg = dict(cell=cell, hidden=hidden, layers=layers, embed=embed,
               vocab_size=len(vocab) + 1, classes=len(labels), pool=pool)
    clf = TextClassifier(Classifier(cfg, seed=seed), vocab, labels)
    ids_of = {label: i for i, label in enumerate(labels)}
    y = np.array([ids_of[label] for label, _ in pairs])
    texts = [text for _, text in pairs]
    model, opt = clf.model, optim.Adam(clf.model.flat.size)
    rng = np.random.default_rng(seed)
    for step in range(1, steps + 1):
        pick = rng.integers(0, len(pairs), min(batch_size, len(pairs)))
        model.grad_flat.fill(0)
        loss = model.forward_backward(*clf.encode([texts[i] for i in pick]), y[pick])
        _, gscale = optim.clip_scale(model.grad_flat, grad_clip)
        opt.step(model.flat, model.grad_flat, lr, gscale)
        clf.history.append((step, float(loss)))
    return clf
