"""A transducer's joint-sequence model (charrnn.nn.graphones) on disk: one safetensors
file beside the transducer's, `joint.safetensors` in a run directory (`NAME.joint.safetensors`
beside a lone `NAME.safetensors`). Tensors: `cells` and `logp` (the graphone table),
`ngram.keys.K`, `ngram.logp.K` (K = 1..order) and `ngram.ctx.K`, `ngram.bow.K`
(K = 2..order); metadata

    format        "charrnn-joint"       version "1"
    src_vocab, tgt_vocab   JSON lists      max_x, max_y, order, vocab, unk_logp, weight
    info          JSON: how it was built and tuned (seconds, held-out WER before / after)
"""
import json
from pathlib import Path

import numpy as np

from charrnn.errors import CheckpointError
from charrnn.io import safetensors_file as sf
from charrnn.io.rundir import BEST_FILE, MODEL_FILE
from charrnn.nn.graphones import JointModel
from charrnn.nn.ngram import NGram

FORMAT, VERSION = "charrnn-joint", "1"
NAME = "joint.safetensors"


def joint_path(checkpoint):
    """Where the joint model of the transducer file `checkpoint` lives."""
    p = Path(checkpoint)
    if p.name in (BEST_FILE, MODEL_FILE):
        return p.parent / NAME
    return p.with_name(p.stem + ".joint.safetensors")


def save_joint(joint, path):
    """Write `joint` (with its .weight and .info) to path."""
    g = joint.ngram
    tensors = {"cells": joint.cells, "logp": joint.logp}
    for k in range(1, g.order + 1):
        tensors[f"ngram.keys.{k}"] = g.keys[k - 1].view(np.int64)
        tensors[f"ngram.logp.{k}"] = g.logp[k - 1]
        if k > 1:
            tensors[f"ngram.ctx.{k}"] = g.ctx[k - 2].view(np.int64)
            tensors[f"ngram.bow.{k}"] = g.logbow[k - 2]
    meta = {"format": FORMAT, "version": VERSION,
            "src_vocab": json.dumps(joint.src_vocab, ensure_ascii=False),
            "tgt_vocab": json.dumps(joint.tgt_vocab, ensure_ascii=False),
            "max_x": str(joint.max_x), "max_y": str(joint.max_y), "order": str(g.order),
            "vocab": str(g.vocab), "unk_logp": repr(g.unk_logp), "weight": repr(joint.weight),
            "info": json.dumps(joint.info or {})}
    sf.write(str(path), {k: np.ascontiguousarray(v) for k, v in tensors.items()}, meta)


def load_joint(path):
    """A JointModel from `path`; a one-line CheckpointError if it is not one."""
    try:
        t, meta = sf.read(str(path), lambda m: sf.check_format(m, FORMAT, VERSION, "joint"))
        order = int(meta["order"])
        arr = {k: a for k, (a, _) in t.items()}
        g = NGram(order, int(meta["vocab"]),
                  [arr[f"ngram.keys.{k}"].view(np.uint64) for k in range(1, order + 1)],
                  [arr[f"ngram.logp.{k}"] for k in range(1, order + 1)],
                  [arr[f"ngram.ctx.{k}"].view(np.uint64) for k in range(2, order + 1)],
                  [arr[f"ngram.bow.{k}"] for k in range(2, order + 1)], float(meta["unk_logp"]))
        j = JointModel(json.loads(meta["src_vocab"]), json.loads(meta["tgt_vocab"]),
                       int(meta["max_x"]), int(meta["max_y"]), arr["cells"], arr["logp"], g)
        j.weight = float(meta["weight"])
        j.info = json.loads(meta.get("info") or "{}")
    except sf.Corrupt as e:
        raise CheckpointError(f"cannot load {path}: {e}") from None
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"cannot load {path}: a joint model without {e}") from None
    return j
