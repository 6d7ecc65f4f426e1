"""The classifier a user holds: a trained charrnn.nn.classifier.Classifier with its
vocabulary and labels, loaded from a run of `charrnn train --task classify`.

    clf = charrnn.load_classifier("charrnn-runs/names-...")   # best.safetensors
    clf.predict(["Müller", "Rossi"])            # -> ["de", "it"]
    clf.predict_proba(["Müller"])               # -> (1, C) array, columns: clf.labels
    clf.top("Müller", 3)                        # -> [("de", 0.91), ("nl", 0.05), ...]
    clf.evaluate("test.tsv")                    # -> accuracy, loss, per-label counts

Texts are encoded character by character: vocab[i] has id i + 1, and id 0 stands for
any character not seen in training. Predictions run in batches of `batch` texts,
sorted by length so that little padding is computed.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.data.pairs import read_pairs
from charrnn.errors import CheckpointError, CorpusError
from charrnn.io import classifier_file, rundir
from charrnn.nn.classifier import Classifier, pad_batch

UNKNOWN = 0   # the id of a character not in the vocabulary


@dataclass
class TextClassifier:
    model: Classifier
    vocab: list          # characters; vocab[i] has id i + 1
    labels: list         # class i is labels[i]
    history: list = field(default_factory=list)   # (step, training loss), when trained here
    info: dict = None    # what the checkpoint says (step, val_loss, ...), when loaded
    source: Path = None  # the run directory it was loaded from

    def encode(self, texts):
        """(ids (T, N) int32, lengths (N,)) of a list of non-empty strings."""
        index = {c: i + 1 for i, c in enumerate(self.vocab)}
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t:
                raise CorpusError(f"text {i} is {t!r}: every text must be a non-empty string")
        return pad_batch([[index.get(c, UNKNOWN) for c in t] for t in texts])

    def predict_proba(self, texts, batch=256):
        """(N, C) float64 class probabilities; columns in the order of self.labels."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        for i, t in enumerate(texts):   # before sorting: the message names the text's index
            if not isinstance(t, str) or not t:
                raise CorpusError(f"text {i} is {t!r}: every text must be a non-empty string")
        out = np.empty((len(texts), len(self.labels)))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for lo in range(0, len(texts), batch):
            rows = order[lo:lo + batch]
            out[rows] = self.model.predict_proba(*self.encode([texts[i] for i in rows]))
        return out

    def predict(self, texts):
        """The most probable label of each text (one text: its label)."""
        one = isinstance(texts, str)
        labels = [self.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]
        return labels[0] if one else labels

    def top(self, texts, n=1):
        """The n most probable (label, probability) of each text, best first (one text:
        its list)."""
        one = isinstance(texts, str)
        p = self.predict_proba(texts)
        best = np.argsort(-p, axis=1, kind="stable")[:, :n]
        out = [[(self.labels[j], float(p[i, j])) for j in row] for i, row in enumerate(best)]
        return out[0] if one else out

    def score(self, labels, texts, batch=256):
        """dict(pairs, accuracy, loss (mean nats), per_label {label: [correct, count]});
        a label the model does not know counts as wrong (and as loss, ln of nothing:
        left out of the mean, counted in `unknown_labels`)."""
        p = self.predict_proba(texts, batch)
        known = {x: i for i, x in enumerate(self.labels)}
        per, losses, correct = {}, [], 0
        for row, label in zip(p, labels):
            hit = known.get(label) == int(row.argmax())
            correct += hit
            c = per.setdefault(label, [0, 0])
            c[0] += hit
            c[1] += 1
            if label in known:
                losses.append(-np.log(max(row[known[label]], 1e-300)))
        n = len(labels)
        return {"pairs": n, "accuracy": correct / n if n else None,
                "loss": float(np.mean(losses)) if losses else None,
                "unknown_labels": n - len(losses), "per_label": per}

    def evaluate(self, path, encoding="utf-8", errors="strict"):
        """score() on a label<TAB>text file (charrnn.data.pairs.read_pairs)."""
        pairs = read_pairs(path, encoding, errors)
        return self.score(pairs.left, pairs.right)


def load_classifier(path, best=True):
    """A TextClassifier from a run directory (best.safetensors, or model.safetensors
    when not best) or a classifier .safetensors file. CheckpointError, one line, if it is
    not one (a language model's run names the commands that fit)."""
    found = rundir.find_checkpoint(path, best=best)
    if classifier_file.kind(found) == "lm":
        raise CheckpointError(f"{path} is a language model run, not a classifier: use "
                              "charrnn sample / eval (train one with --task classify)")
    if classifier_file.kind(found) == "seq2seq":
        raise CheckpointError(f"{path} is a transducer run (--task seq2seq), not a "
                              "classifier: use charrnn transduce / eval")
    ck = classifier_file.load(found)
    clf = TextClassifier(Classifier(ck.config, params=ck.params), ck.vocab, ck.labels,
                         info=ck.info, source=found.parent)
    return clf


def run_kind(path, best=True):
    """"classifier", "seq2seq" or "lm": what the model file of a run directory (or a
    file) is; CheckpointError if there is none."""
    kind = classifier_file.kind(rundir.find_checkpoint(path, best=best))
    return kind if kind in ("classifier", "seq2seq") else "lm"
