"""The models a server holds: loaded from runs, named, and reloaded when training saves.

    served = ServedModel.from_source("charrnn-runs/shakespeare-...")   # or a CharRNN
    served.newer()        # True when the run's checkpoint changed on disk (--watch)
    served.kind           # "lm", "seq2seq" (a Transducer) or "classifier" (a TextClassifier)

A model's id is its run directory's name (a .safetensors file: the file's stem), or the
key given to charrnn.serve.app({"name": model}). Watching compares the checkpoint's
(mtime, size); charrnn writes checkpoints atomically (a rename), so a reader never sees
half a file: a changed file is loaded whole, then swapped in between steps.
"""
from __future__ import annotations

import os
from pathlib import Path

from charrnn.errors import CharRNNError
from charrnn.model import load

BEST = "best.safetensors"
LATEST = "model.safetensors"


def _load(path, latest):
    """(kind, model) of a run directory or a model file of any of the three kinds."""
    from charrnn.classifier import load_classifier, run_kind
    kind = run_kind(str(path), best=not latest)
    if kind == "seq2seq":
        from charrnn.training.seq2seq import load_transducer
        return kind, load_transducer(str(path), best=not latest)
    if kind == "classifier":
        return kind, load_classifier(str(path), best=not latest)
    return "lm", load(str(path), best=not latest)


def _kind(model):
    from charrnn.classifier import TextClassifier
    from charrnn.training.seq2seq import Transducer
    if isinstance(model, Transducer):
        return "seq2seq"
    return "classifier" if isinstance(model, TextClassifier) else "lm"


class ServedModel:
    """One model id: where it comes from (a path, or None) and the weights in use."""

    def __init__(self, name, model, path=None, latest=False):
        self.name, self.model, self.path, self.latest = name, model, path, latest
        self.kind = _kind(model)
        self.version = 0
        self.stamp = self._stamp()

    @classmethod
    def from_source(cls, source, name=None, latest=False):
        if not isinstance(source, (str, os.PathLike)):   # a model object of any kind
            return cls(name or "model", source)
        path = Path(source)
        _, model = _load(path, latest)
        if name is None:
            name = path.stem if path.suffix == ".safetensors" else path.resolve().name
        return cls(name, model, path, latest)

    def checkpoint(self):
        """The file the weights come from (None for a model given as an object)."""
        if self.path is None:
            return None
        if self.path.is_dir():
            for f in ((LATEST,) if self.latest else (BEST, LATEST)):
                if (self.path / f).exists():
                    return self.path / f
            return None
        return self.path

    def _stamp(self):
        f = self.checkpoint()
        try:
            st = os.stat(f) if f is not None else None
        except OSError:
            return None
        return None if st is None else (st.st_mtime_ns, st.st_size)

    def newer(self):
        """A changed checkpoint, loaded (a CharRNN), or None. A file that fails to load
        (mid-write by a non-atomic writer) is retried at the next call."""
        stamp = self._stamp()
        if stamp is None or stamp == self.stamp:
            return None
        try:
            kind, model = _load(self.path, self.latest)
        except (CharRNNError, OSError, ValueError):
            return None
        if kind != self.kind:    # another kind of model now: keep serving the old one
            return None
        self.stamp, self.model = stamp, model
        self.version += 1
        return model

    def describe(self):
        m = self.model
        common = {"kind": self.kind, "checkpoint": str(self.checkpoint() or ""),
                  "version": self.version}
        if self.kind == "seq2seq":
            c = m.model.config
            about = {"cell": c["cell"], "layers": c["layers"], "hidden": c["hidden"],
                     "tokens": m.tokens, "source_characters": len(m.src_vocab),
                     "target_tokens": len(m.tgt_vocab), "joint": m.joint is not None,
                     "endpoint": "/v1/transduce"}
        elif self.kind == "classifier":
            about = {"labels": list(m.labels), "characters": len(m.vocab),
                     "endpoint": "/v1/classify"}
        else:
            c = m.config
            about = {"cell": c["cell"], "layers": c["layers"], "hidden": c["hidden"],
                     "vocab_size": c["vocab_size"], "encoding": c.get("encoding", "utf-8"),
                     "endpoint": "/v1/completions"}
        return {"id": self.name, "object": "model", "created": int(self.stamp[0] // 10**9)
                if self.stamp else 0, "owned_by": "charrnn", "charrnn": {**about, **common}}


def unique_names(sources):
    """Model ids for several runs: their names, made unique with -2, -3 ..."""
    out, seen = [], {}
    for s in sources:
        p = Path(s)
        base = p.stem if p.suffix == ".safetensors" else p.resolve().name
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out
