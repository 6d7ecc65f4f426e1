"""The options of a training run: TrainConfig, one field per `charrnn train` option.

This is the one place where each option's default and its help text live: `charrnn
train --help`, the docs' CLI reference (generated from it) and the run's saved config
all read them from here. A field's metadata holds
    help   what the option does (the CLI adds the default, or the auto rule)
    auto   for an automatic option (default None): what charrnn.training.auto picks

None means "auto": charrnn.training.auto fills it in from the corpus and the budget when the
run starts, and the run's saved config holds the values it picked. Importing this
module loads no NumPy and no kernel, so the CLI can read it at start-up.
"""
import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from charrnn.nn.precision import PRECISIONS
from charrnn.nn.shapes import GATES
from charrnn.training import auto

CELLS = tuple(GATES)
OPTIMIZERS = ("adam", "rmsprop")
ENCODING_ERRORS = ("strict", "replace", "ignore")   # Python's codec error handlers
DOCS = ("none", "lines", "files")                  # charrnn.data.documents.MODES
# What a run learns: charrnn.training.loop._train_in picks the trainer by task (lm:
# trainer.Trainer, classify: classify_run.ClassifierTrainer, seq2seq:
# seq2seq_run.Seq2SeqTrainer).
TASKS = ("lm", "classify", "seq2seq")
POOLS = ("final", "mean")   # charrnn.nn.classifier.POOLS (not imported: the CLI loads no numpy)
TARGET_TOKENS = ("chars", "space")   # seq2seq targets: characters, or space-separated tokens
ATTENTIONS = ("luong", "bahdanau")   # charrnn.nn.reference_seq2seq.ATTENTIONS, likewise
# options that only some tasks read -> those tasks (charrnn.training.loop refuses them elsewhere)
TASK_OPTIONS = {"target_tokens": ("seq2seq",), "attention": ("seq2seq",),
                "decoder": ("seq2seq",), "label_smoothing": ("seq2seq",),
                "pool": ("classify",), "ema": ("classify", "seq2seq")}


def option(default, help, auto=None):
    """A TrainConfig field: its default, its help text, and for an automatic option
    (default None) the rule charrnn.training.auto follows."""
    return field(default=default, metadata={"help": help, "auto": auto})


@dataclass
class TrainConfig:
    # ---- task
    task: str = option(
        "lm", "What to learn: lm, a character language model of FILE; classify, a "
        "classifier from FILE's lines, each a label, a tab and a text (see charrnn classify); "
        "seq2seq, a transducer from FILE's lines, each a source, a tab and a target (see "
        "charrnn transduce)")
    target_tokens: str = option(
        "chars", "With --task seq2seq: what a target is made of: chars, its characters; "
        "space, its space-separated tokens (phonemes such as K AE1 T)")
    attention: str = option(
        "luong", "With --task seq2seq: how the decoder weighs the source's characters: luong, "
        "h . (W e), the decoder state against each encoder output; bahdanau, v . tanh(W_q h "
        "+ W_k e), through a layer of --hidden units (slower per step)")
    decoder: int = option(0, "With --task seq2seq: decoder units, 0: twice --hidden")
    label_smoothing: Optional[float] = option(
        None, "With --task seq2seq: train against targets smoothed by this much: each "
        "step's target is (1 - it) on the right token plus it spread over all tokens "
        "(PyTorch's label_smoothing); validation losses stay plain cross-entropy",
        f"auto: {auto.S2S_LABEL_SMOOTHING}")
    ema: float = option(   # off: it gave nothing at the end of an annealed run (docs/seq2seq.md)
        0.0, "With --task seq2seq or classify: evaluate and save a moving average of the "
        "weights instead of the last ones: after each step it moves (1 - this) of the way "
        "to the new weights, or further early in a run, so that it spans about the last "
        "tenth of the steps so far; 0: off. It helps a run stopped before its lr has "
        "fallen; at the end of an annealed run it measured no better")
    pool: str = option(
        "final", "With --task classify: what the label layer reads: final, the last states "
        "of both directions; mean, the mean of the top layer's outputs over the text")
    # at 1 MB and 5 minutes the auto options come to: 2x256, embed 64, dropout 0.1,
    # 32 x 64, lr decay 0.85, evaluate every 500
    # ---- model (see charrnn.nn.network.ModelConfig)
    cell: str = option("gru", "Recurrent cell")   # in a fixed time budget it beats the LSTM
    hidden: Optional[int] = option(
        None, "Hidden units per layer",
        "auto: grows with the square root of the text and of the budget; in 5 minutes "
        "1x64 below ~9k characters, 1x128 to ~60k, 2x128 to ~300k, 2x192 to ~1M, 2x256 "
        "beyond; longer budgets allow larger")
    layers: Optional[int] = option(None, "Stacked layers", "auto: with --hidden (see there)")
    embed: Optional[int] = option(None, "Embedding size", "auto: with --hidden, 16..96; 64 for 2x256")
    dropout: Optional[float] = option(
        None, "Dropout probability",
        "auto: from the passes over the text the budget affords: 0 for one pass or less, "
        f"0.1 for a few (1 MB in 5 minutes), up to {auto.EPOCHS_DROPOUT[-1][1]} for a hundred "
        "or more")
    forget_bias: float = option(1.0, "LSTM forget-gate bias at init")
    # ---- data
    encoding: str = option("utf-8", "Text encoding: utf-8, latin-1 or any Python codec, or "
                           "'bytes' for a byte-level model")
    encoding_errors: str = option(
        "strict", "Invalid bytes in FILE: strict stops with an error naming the offset; "
        "replace puts U+FFFD, ignore leaves them out (a character cut off by the end of the "
        "file is always dropped)")
    docs: str = option(
        "none", "Read the text as documents: none, one stream; lines, every line that is "
        "not empty; files, every file. Each starts from a zero state and ends with an "
        "end marker (U+0003) the model learns to emit; sample them with "
        "charrnn sample --items")
    seq_len: Optional[int] = option(None, "Characters per BPTT window",
                                    f"auto: {auto.SEQ_LEN}, shorter only if the text cannot fill one window; "
                                    f"with --docs up to {auto.DOC_SEQ_LEN} to hold the median document")
    batch_size: Optional[int] = option(
        None, "Parallel streams",
        f"auto: {auto.BATCH_SIZE}, fewer for texts under ~17k characters ({auto.MIN_WINDOWS} "
        "windows per epoch at least), shrunk to fit")
    val_frac: Optional[float] = option(   # the last 10%: nanoGPT's Tiny Shakespeare split
        None, "Fraction at the end of the corpus held out for validation (with --docs: "
        "of the documents, whole ones, chosen by --seed)",
        f"auto: {auto.VAL_FRAC}; none (no validation) when that is under {auto.MIN_VAL_CHARS} "
        "characters")
    # ---- optimisation
    optimizer: str = option("adam", "Optimizer")
    lr: Optional[float] = option(
        None, "Learning rate",
        f"auto: {auto.LR}; {auto.FINETUNE_LR_TEXT} of the base run's with --init")
    lr_decay: Optional[float] = option(   # applied smoothly every step
        None, "Learning-rate factor per epoch",
        f"auto: {auto.LR_DECAY}, per million characters on smaller corpora")
    anneal: Optional[float] = option(
        None, "Final fraction of a run with a budget in which the learning rate falls "
        "linearly to 10%", f"auto: {auto.ANNEAL}; {auto.S2S_ANNEAL} for --task seq2seq")
    grad_clip: Optional[float] = option(
        None, "Global gradient-norm limit, 0 disables",
        f"auto: {auto.GRAD_CLIP}; {auto.S2S_GRAD_CLIP} for --task seq2seq")
    seed: int = option(1337, "Random seed")
    # ---- compute
    precision: str = option(
        "auto", "Precision of the matrix products: fp32, or bf16 (their inputs rounded to "
        "bfloat16, float32 sums; weights, optimizer state, gradients, gate math and cell "
        "state stay float32: about twice as fast where the CPU has AMX); auto: bf16 where "
        "charrnn's bf16 kernel for this CPU is faster than float32 (Intel AMX, AMD "
        "AVX512_BF16, arm64 FEAT_BF16) and passes a start-up check, else fp32. The run "
        "records the precision it used; --resume keeps it; sampling is fp32 unless "
        "charrnn sample --precision bf16. Classifiers and transducers: their cells' "
        "products")
    # ---- schedule
    eval_every: Optional[int] = option(
        None, "Steps between validations and checkpoints",
        f"auto: {auto.EVAL_EVERY}, more often for small held-out parts ({auto.MIN_EVAL_EVERY} "
        "at least)")
    patience: Optional[int] = option(
        None, "Stop after this many evaluations without a better validation loss, 0: never",
        f"auto: {auto.PATIENCE} when the budget allows more than 2 passes over the text or the "
        "run fine-tunes (--init), else 0 (off)")
    max_steps: int = option(0, "Stop after this many steps, 0: no limit")
    max_epochs: Optional[float] = option(
        None, "Stop after this many epochs, 0: no limit",
        f"auto: no limit; {auto.NO_VAL_MAX_EPOCHS} when the text is too short to validate")
    max_minutes: float = option(5.0, "Wall-clock budget in minutes across resumes, 0: none")

    def validate(self):
        from charrnn.data.corpus import check_errors
        from charrnn.errors import ConfigError
        from charrnn.nn.network import ModelConfig

        _check_types(self)
        auto = {"dropout": 0.0, "lr_decay": 1.0, "patience": 0, "max_epochs": 0,
                "val_frac": 0.1, "lr": 1.0, "anneal": 0.0, "grad_clip": 1.0,
                "label_smoothing": 0.0}
        d = {k: (auto.get(k, 1) if v is None else v) for k, v in asdict(self).items()}
        ModelConfig(self.cell, d["hidden"], d["layers"], d["embed"], d["dropout"], 1,
                    self.encoding).validate()
        checks = [
            (d["seq_len"] >= 1, "--seq-len must be at least 1"),
            (d["batch_size"] >= 1, "--batch-size must be at least 1"),
            (0 <= d["val_frac"] < 1, "--val-frac must be in [0, 1) (0: no validation)"),
            (d["lr"] > 0, "--lr must be a positive number"),
            (0 < d["lr_decay"] <= 1, "--lr-decay must be in (0, 1]"),
            (0 <= d["anneal"] < 1, "--anneal must be in [0, 1)"),
            (d["grad_clip"] >= 0, "--grad-clip must be >= 0 (0 disables clipping)"),
            (d["eval_every"] >= 1, "--eval-every must be at least 1"),
            (d["patience"] >= 0, "--patience must be >= 0 (0: no early stopping)"),
            (self.max_steps >= 0, "--max-steps must be >= 0 (0: no limit)"),
            (0 <= d["max_epochs"] < math.inf, "--max-epochs must be a number >= 0 (0: no limit)"),
            (0 <= self.max_minutes < math.inf, "--max-minutes must be a number >= 0 (0: no limit)"),
            (0 <= self.seed < 2**64, "--seed must be a whole number in [0, 2**64)"),
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.docs in DOCS, f"--docs must be one of {', '.join(DOCS)}"),
            (self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}"),
            (self.task in TASKS, f"--task must be one of {', '.join(TASKS)}"),
            (self.pool in POOLS, f"--pool must be one of {', '.join(POOLS)}"),
            (self.attention in ATTENTIONS, f"--attention must be one of {', '.join(ATTENTIONS)}"),
            (self.decoder >= 0, "--decoder must be >= 0 (0: twice --hidden)"),
            (0 <= d["label_smoothing"] < 1, "--label-smoothing must be in [0, 1)"),
            (0 <= d["ema"] < 1, "--ema must be in [0, 1) (0: off)"),
            (self.target_tokens in TARGET_TOKENS,
             f"--target-tokens must be one of {', '.join(TARGET_TOKENS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        check_errors(self.encoding_errors)
        return self


def _check_types(cfg):
    """Each option has the type its field declares (ints are floats too; a bool is
    neither), so a value from Python (`lr="0.01"`) is a ConfigError, not a TypeError
    deep in the run. Floats must be finite numbers (NaN passes no range check)."""
    from charrnn.errors import ConfigError
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        kind = str if f.type in (str, "str") else int if "int" in str(f.type) else float
        if v is None and f.default is None:
            continue
        ok = (isinstance(v, str) if kind is str else not isinstance(v, bool) and
              isinstance(v, numbers.Real if kind is float else numbers.Integral))
        if not ok:
            want = {str: "a string", int: "a whole number", float: "a number"}[kind]
            raise ConfigError(f"--{f.name.replace('_', '-')} must be {want}, not {v!r}")
        if kind is float and not math.isfinite(v):   # NaN passes every range check
            raise ConfigError(f"--{f.name.replace('_', '-')} must be a finite number, not {v}")


def described(name):
    """`--help` text of option `name`: its help, then its default or its auto rule."""
    f = {f.name: f for f in fields(TrainConfig)}[name]
    tail = f.metadata["auto"] if f.default is None else f"default: {f.default}"
    return f"{f.metadata['help']} ({tail})."


def automatic():
    """name -> auto rule, for every option whose default is chosen from the corpus."""
    return {f.name: f.metadata["auto"] for f in fields(TrainConfig) if f.default is None}


# Options that may change on --resume without changing the run's results.
RESUME_OVERRIDABLE = {"eval_every", "patience", "max_steps", "max_epochs", "max_minutes"}


def stop_reason(c, step, epochs, seconds, bad_evals):
    """Why a run with options c stops now, or None: a budget it reached ("max-steps",
    "max-epochs", "max-minutes": seconds counts the next evaluation's cost too) or early
    stopping ("patience", after bad_evals evaluations without a better loss)."""
    if c.max_steps and step >= c.max_steps:
        return "max-steps"
    if c.max_epochs and epochs >= c.max_epochs:
        return "max-epochs"
    if c.max_minutes and seconds >= c.max_minutes * 60:
        return "max-minutes"
    if c.patience and bad_evals >= c.patience:
        return "patience"
    return None
