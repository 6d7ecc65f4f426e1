"""Fine-tuning: a run that starts from another run's weights (`charrnn train --init RUN`).

    base = load_base("runs/base")          the base checkpoint, read and checked before
                                           any run directory is made (a Base)
    options = base_options(options, base)  the run's options with the base's architecture;
                                           a conflicting explicit one is a ConfigError
    corpus = grown(corpus, base, saved, cache_dir)   the corpus in the merged vocabulary
    start_from(model, base)                the base's weights in a model over that vocabulary
    check_resume(init, meta, run_dir)      --init on --resume: only the run's own parent

Which checkpoint: RUN may be a run directory, whose best.safetensors is used (the
weights with the best validation loss: what `charrnn sample` and `charrnn eval` load),
else its model.safetensors (a run without validation writes no other); or a
.safetensors file, to choose (runs/base/model.safetensors: the latest weights).

The model: cell, layers, hidden size and embedding size are the base's (the weights
only fit that shape); dropout is the run's own (it shapes no weight), chosen as for any
run. The encoding must be of the same kind: a byte-level base reads the new text as
bytes too (the default then), a text base reads characters in any text encoding
(characters are code points whatever the file's codec).

The vocabulary: the base's characters plus the new text's, sorted (charrnn.data.merge).
A character the base knew keeps its embedding and decoder rows; a new one gets the rows
training would give it (uniform(-0.1, 0.1), decoder bias 0: charrnn.nn.network). So at
step 0 the model scores the base's characters exactly as the base did: only the softmax
gains the new characters' logits.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from charrnn.data.corpus import file_sha256
from charrnn.data.merge import merged_vocab, recode
from charrnn.data.text import BYTES, normalize_encoding, show_chars
from charrnn.errors import CheckpointError, ConfigError, plural
from charrnn.inspect.runs import header_json
from charrnn.io import checkpoint
from charrnn.io.rundir import BEST_FILE, MODEL_FILE, STATE_FILE

ARCHITECTURE = ("cell", "layers", "hidden", "embed")
VOCAB_ROWS = ("encoder.weight", "decoder.weight", "decoder.bias")   # one row per character


@dataclass
class Base:
    given: str             # RUN as the user wrote it
    checkpoint: Path       # the model file read
    sha256: str            # of that file's bytes (what `sha256sum` prints)
    params: dict
    config: dict
    vocab: list
    info: dict
    lr: Optional[float]    # the base run's learning rate, if its training state says

    def record(self):
        """What the fine-tuned run records as its parent (state meta, model info)."""
        return {"run": str(Path(self.given).resolve()), "checkpoint": str(self.checkpoint.resolve()),
                "sha256": self.sha256, "step": self.info.get("step"),
                "val_loss": self.info.get("val_loss")}


def load_base(init):
    """The checkpoint `charrnn train --init RUN` starts from -> Base. CheckpointError
    (one line, naming RUN) if it is missing, not a run, or damaged."""
    given = str(init)
    if not given.strip():
        raise ConfigError("--init is empty: name a run directory or a .safetensors file")
    p = Path(given)
    if p.is_dir():
        path = p / BEST_FILE if (p / BEST_FILE).is_file() else p / MODEL_FILE
        if not path.is_file():
            raise CheckpointError(f"--init {given} is not a charrnn run: it holds no "
                                  f"{BEST_FILE} or {MODEL_FILE}")
    elif p.is_file():
        if p.suffix != ".safetensors":
            raise CheckpointError(f"--init {given} is not a .safetensors checkpoint: pass "
                                  "a run directory or a .safetensors file")
        path = p
    else:
        raise CheckpointError(f"--init {given}: no such run directory or checkpoint")
    for _ in range(3):   # a base still training may replace the file between the reads
        before = file_sha256(path)
        try:
            ck = checkpoint.load_model(path)
        except CheckpointError as e:
            raise CheckpointError(f"--init {given}: {e}") from None
        digest = file_sha256(path)
        if digest == before:
            break
    else:
        raise CheckpointError(f"--init {given}: {path} kept changing while it was read "
                              "(is its run still training?); try again")
    state = header_json(path.parent / STATE_FILE, "meta") or {}
    lr = (state.get("train_config") or {}).get("lr")
    return Base(given, path, digest, ck.params, ck.config, ck.vocab, ck.info or {},
                lr if isinstance(lr, (int, float)) and lr > 0 else None)


def base_options(options, base, log):
    """The run's options with the base's architecture (and, for a byte-level base, its
    encoding). An explicit option equal to the base's is fine; one that differs is a
    ConfigError saying what to drop."""
    cfg, out = base.config, dict(options)
    for k in ARCHITECTURE:
        if k in options and options[k] != cfg[k]:
            raise ConfigError(
                f"--{k} {options[k]} conflicts with the base run {base.given} ({k} {cfg[k]}); "
                f"drop --{k} (a fine-tuned model keeps its base's shape) or train from "
                "scratch without --init")
        out[k] = cfg[k]
    base_bytes = cfg.get("encoding") == BYTES
    if "encoding" in options and (normalize_encoding(options["encoding"]) == BYTES) != base_bytes:
        what = ("a byte-level model: drop --encoding and the text is read as bytes too"
                if base_bytes else f"a model of characters ({cfg.get('encoding', 'utf-8')}): "
                "drop --encoding bytes, or pass the file's text encoding")
        raise ConfigError(f"--encoding {options['encoding']} conflicts with the base run "
                          f"{base.given}, {what}; or train from scratch without --init")
    if base_bytes:
        out["encoding"] = BYTES
    if "forget_bias" in options:
        log("charrnn: note: --forget-bias ignored with --init (the LSTM's biases are the "
            "base run's)")
    return out


def grown(corpus, base, saved, cache_dir):
    """The corpus in the vocabulary of the model it trains: for a new fine-tuning run
    the base's plus its own characters; on resume the run's recorded vocabulary (plus
    any new character, which the restore then refuses as a changed vocabulary)."""
    if base is not None:
        have = base.vocab
    elif saved is not None and saved.meta.get("parent"):
        have = saved.meta.get("vocab") or []
    else:
        return corpus
    return recode(corpus, merged_vocab(have, corpus.vocab), cache_dir)


def start_from(model, base):
    """Put the base's weights into `model` (its vocabulary a superset of the base's):
    every recurrent weight as it is, each known character's rows where that character
    now sits; a new character's rows stay as the model initialised them."""
    index = {c: i for i, c in enumerate(model.vocab)}
    rows = np.array([index[c] for c in base.vocab], dtype=np.intp)
    for name, p in model.params.items():
        src = base.params[name]
        if name in VOCAB_ROWS:
            p[rows] = src
        else:
            p[...] = src


def describe(base, vocab):
    """The log line of a fine-tuning run: which checkpoint, what the vocabulary gained."""
    c, known = base.config, set(base.vocab)
    new = [ch for ch in vocab if ch not in known]
    step = base.info.get("step")
    at = f", step {step:,}" if isinstance(step, int) else ""
    grew = (f"{plural(len(new), 'new character')} ({show_chars(new[:5])}"
            f"{', ...' if len(new) > 5 else ''}) added to its {len(base.vocab)}"
            if new else f"its {len(base.vocab)} characters, none new")
    return (f"charrnn: fine-tuning {base.checkpoint}{at}: its {c['layers']}x{c['hidden']} "
            f"{c['cell'].upper()}, embedding {c['embed']}; vocabulary: {grew}")


def check_resume(init, meta, run_dir):
    """--init together with --resume: the run continues from its own checkpoint, so
    --init may only name the run it was started from (then it changes nothing)."""
    if init is None:
        return
    parent = meta.get("parent")
    if not parent:
        raise ConfigError(
            f"--init {init} with --resume: {run_dir} was trained from scratch, and --resume "
            f"continues a run from its own checkpoint; drop --init to resume it, or start a "
            f"new run from {init} with another --out")
    if Path(str(init)).resolve() != Path(parent["run"]):
        raise ConfigError(
            f"--init {init} with --resume: {run_dir} was started from {parent['run']}, and "
            "--resume continues it from its own checkpoint; drop --init to resume it, or "
            f"start a new run from {init} with another --out")
