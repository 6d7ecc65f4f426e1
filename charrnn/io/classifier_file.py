"""A classifier's model file: one safetensors file, its tensors in PyTorch's names
(charrnn.nn.classifier: encoder, rnn (bidirectional), decoder), metadata

    format          "charrnn-classifier"
    format_version  "1"
    config          JSON: charrnn.nn.classifier.ClassifierConfig (cell, hidden, ...)
    vocab           JSON list of the characters; character vocab[i] has id i + 1 (id 0:
                    any character not seen in training)
    labels          JSON list of the label strings; class i is labels[i]
    info            JSON object: step, val_loss, val_accuracy, ...
    sha256          checksum of all else

    kind(path) -> "lm", "classifier" or None      (reads the header only)
"""
from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np

from charrnn.errors import CheckpointError, ConfigError
from charrnn.io import safetensors_file as stfile
from charrnn.io.safetensors_file import Corrupt
from charrnn.nn.classifier import ClassifierConfig, expected_shapes

FORMAT = "charrnn-classifier"
FORMAT_VERSION = 1
_KEYS = {"format", "format_version", "config", "vocab", "labels", "info", "sha256"}


class ClassifierCheckpoint(NamedTuple):
    params: dict
    config: dict
    vocab: list
    labels: list
    info: dict | None


def save(path, params, config, vocab, labels, info=None):
    where = f"cannot save {path}"
    try:
        cfg = ClassifierConfig(**config).validate()
    except (TypeError, ConfigError) as e:
        raise CheckpointError(f"{where}: {e}") from None
    if len(vocab) + 1 != cfg.vocab_size or len(labels) != cfg.classes:
        raise CheckpointError(f"{where}: {len(vocab)} characters and {len(labels)} labels do "
                              f"not fit vocab_size {cfg.vocab_size} and {cfg.classes} classes")
    tensors = {}
    for name, shape in expected_shapes(cfg).items():
        a = np.ascontiguousarray(params[name], dtype="<f4")
        if a.shape != shape or not np.isfinite(a).all():
            raise CheckpointError(f"{where}: {name} is {list(a.shape)} or not finite")
        tensors[name] = a
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
            "config": json.dumps(config), "vocab": json.dumps(list(vocab)),
            "labels": json.dumps(list(labels))}
    if info is not None:
        meta["info"] = json.dumps(info)
    stfile.write(path, tensors, meta)


def load(path):
    """-> ClassifierCheckpoint; CheckpointError (one line) for anything wrong."""
    try:
        return _load(path)
    except Corrupt as e:
        raise CheckpointError(f"cannot load {path}: {e}") from None
    except (ValueError, TypeError, KeyError, ConfigError) as e:
        raise CheckpointError(f"cannot load {path}: bad classifier metadata ({e})") from None


def _check(meta):
    found = meta.get("format")
    if found != FORMAT:
        raise Corrupt("a language model, not a classifier: use charrnn sample / eval "
                      "(train a classifier with --task classify)" if found == "charrnn"
                      else f"not a charrnn classifier (format {found!r})")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise Corrupt(f"classifier format version {meta.get('format_version')!r}; this "
                      f"charrnn reads {FORMAT_VERSION}")
    extra = set(meta) - _KEYS
    if extra:
        raise Corrupt(f"unexpected metadata {sorted(extra)}")


def _load(path):
    tensors, meta = stfile.read(path, _check)
    config = json.loads(meta["config"])
    cfg = ClassifierConfig(**config).validate()
    vocab, labels = json.loads(meta["vocab"]), json.loads(meta["labels"])
    if (not all(isinstance(c, str) and len(c) == 1 for c in vocab)
            or len(vocab) + 1 != cfg.vocab_size or len(labels) != cfg.classes
            or not all(isinstance(x, str) for x in labels)):
        raise Corrupt("vocab or labels do not fit the config")
    shapes = expected_shapes(cfg)
    if set(tensors) != set(shapes):
        raise Corrupt("its tensors do not fit its config")
    params = {}
    for name, shape in shapes.items():
        a, _ = tensors[name]
        if a.shape != shape or not np.isfinite(a).all():
            raise Corrupt(f"{name} has shape {list(a.shape)} (wants {list(shape)}) or NaN/Inf")
        params[name] = a.astype(np.float32)
    info = json.loads(meta["info"]) if "info" in meta else None
    return ClassifierCheckpoint(params, config, vocab, labels, info)


def kind(path):
    """"classifier", "lm", "seq2seq" (charrnn.training.seq2seq's transducer) or None
    (not a readable charrnn model file): the header only."""
    try:
        with open(path, "rb") as f:
            import os
            header, _ = stfile.read_header(f, os.fstat(f.fileno()).st_size)
    except (OSError, Corrupt):
        return None
    fmt = (header.get("__metadata__") or {}).get("format")
    return {"charrnn": "lm", FORMAT: "classifier", "charrnn-seq2seq": "seq2seq"}.get(fmt)
