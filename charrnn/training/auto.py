"""Defaults that fit the corpus and the budget: a pure function of a few numbers.

    choose(n_chars, vocab_size, max_minutes, given) -> Choice

Inputs are the corpus length in characters, its vocabulary size, the time budget and
the options the user gave (`given`: name -> value; they always win). Nothing here
measures anything, so the same command on the same corpus picks the same model on
every machine. Speeds are those of a *nominal* machine (NOMINAL_FLOPS below): they only
turn a budget in minutes into "how many passes over the text a run can afford".

How the choice goes:
  held-out part  the last 10% of the corpus, unless that is under MIN_VAL_CHARS (an
                 explicit --val-frac: unless it holds under 2 characters): then the
                 run trains on everything, without validation;
  model size     the largest rung of LADDER with at most SIZE_PARAMS recurrent weights
                 times the square root of the smaller of (training characters / 1M)
                 and (minutes / 5): the model grows with the text until the budget
                 cannot train a larger one (2x256 for 1 MB or more in 5 minutes, 1x128
                 for 10 kB, 2x128 for 100 kB);
  dropout        from the passes the budget affords that model (EPOCHS_DROPOUT):
                 none for one pass or less, up to 0.3 for a hundred passes or more;
  lr decay       0.85 per epoch, or per million characters on smaller corpora (a
                 per-epoch decay would freeze a run on a 10 kB text within seconds);
  batch          32 streams, fewer when the training part is short (at least
                 MIN_WINDOWS windows per epoch), then batch and window shrink to what
                 fits (only those the user did not give);
  evaluations    every 500 steps, more often when the held-out part is small (an
                 evaluation then costs little); early stopping after 10 evaluations
                 without improvement when the run can see the text more than twice;
  epochs         without validation, at most 100 passes (nothing says when to stop);
  fine-tuning    (--init: the model is the base run's) lr a third of the base run's,
                 and early stopping whenever there is validation.
  documents      (--docs) whole documents are held out (charrnn.data.documents), and
                 the window grows from 64 to hold the median document and its end
                 marker, up to DOC_SEQ_LEN (128): a window longer than a document
                 teaches nothing more (the state is zeroed at each document's start),
                 a shorter one cuts the gradient inside most documents.
At 1 MB and 5 minutes this picks exactly the former fixed defaults (2x256 GRU,
embedding 64, dropout 0.1, 32 streams of 64, lr decay 0.85, evaluations every 500).
"""
import math
from dataclasses import dataclass, field

from charrnn.errors import plural
from charrnn.nn.shapes import GATES

# Fixed defaults that do not adapt.
SEQ_LEN = 64
BATCH_SIZE = 32
EVAL_EVERY = 500
LR_DECAY = 0.85
PATIENCE = 10
ANNEAL = 0.2                    # --anneal: the final fifth of a budget (see S2S_ANNEAL)
LR = 3e-3
GRAD_CLIP = 5.0                 # --grad-clip: the global gradient norm's limit (S2S_GRAD_CLIP)

# Fine-tuning (--init) starts a fresh Adam on trained weights: its first steps move every
# weight by about lr whatever the gradient, so the base's own lr would shake what the
# base learned before the moments settle. Transfer learning fine-tunes at a fraction of
# the pre-training lr (BERT: 2e-5..5e-5 after 1e-4, a fifth to a half); a third keeps a
# run quick to adapt within minutes. textgenrnn fine-tunes at its training lr (4e-3) but
# decays it linearly to zero over the few epochs it runs, as --anneal does at the end.
FINETUNE_LR = 1 / 3
FINETUNE_LR_TEXT = "a third"

# (layers, hidden, embed), smallest first.
LADDER = [(1, 64, 16), (1, 128, 32), (2, 128, 32), (2, 192, 48), (2, 256, 64),
          (2, 384, 64), (2, 512, 64), (3, 512, 64), (3, 768, 96)]
SIZE_PARAMS = 700_000           # recurrent weights at 1M characters and 5 minutes
UNBOUNDED_MINUTES = 60          # what a run without --max-minutes is sized for
NOMINAL_FLOPS = 40e9            # flop/s of the nominal machine (6 flops/param/char)
NOMINAL_OVERHEAD = 5e-6         # seconds per character beyond the matrix products
EPOCHS_DROPOUT = [(1.5, 0.0), (8, 0.1), (32, 0.2), (math.inf, 0.3)]
MIN_VAL_CHARS = 100             # a held-out part shorter than this is not worth scoring
MIN_WINDOWS = 8                 # windows per epoch the automatic batch leaves at least
VAL_COST = 0.1                  # an evaluation may cost this fraction of the training
                                # characters between evaluations (forward only, ~1/3)
MIN_EVAL_EVERY = 10
DOC_SEQ_LEN = 128               # the longest automatic window with --docs
NO_VAL_MAX_EPOCHS = 100

# The options chosen here: those whose TrainConfig default is None (tested).
AUTO = ("hidden", "layers", "embed", "dropout", "lr", "lr_decay", "batch_size", "seq_len",
        "val_frac", "eval_every", "patience", "max_epochs", "anneal", "grad_clip",
        "label_smoothing")
VAL_FRAC = 0.1


@dataclass
class Choice:
    values: dict                 # option name -> value, for every name in AUTO
    auto: list                   # the names the user did not give
    val_chars: int               # held-out characters (0: no validation)
    notes: list = field(default_factory=list)   # one line each, for the log
    base_lr: float = None        # fine-tuning: the base run's lr (None: from scratch)


def params(cell, layers, hidden, embed, vocab_size):
    """Parameter count of a model (PyTorch's layout: two bias vectors per layer)."""
    g = GATES[cell]
    rec = sum(g * hidden * ((embed if k == 0 else hidden) + hidden + 2) for k in range(layers))
    return vocab_size * embed + rec + vocab_size * (hidden + 1)


def nominal_chars_per_sec(n_params):
    return 1.0 / (6.0 * n_params / NOMINAL_FLOPS + NOMINAL_OVERHEAD)


def budget_minutes(max_minutes):
    return max_minutes if max_minutes else UNBOUNDED_MINUTES


def _size(cell, n_train, vocab_size, minutes):
    cap = SIZE_PARAMS * math.sqrt(min(n_train / 1e6, minutes / 5.0))
    best = LADDER[0]
    for rung in LADDER:
        if params(cell, *rung, vocab_size) - vocab_size * (rung[2] + rung[1] + 1) <= cap:
            best = rung   # the cap counts the recurrent weights: V should not shrink it
    return best


def _dropout(epochs):
    for limit, p in EPOCHS_DROPOUT:
        if epochs < limit:
            return p
    return EPOCHS_DROPOUT[-1][1]


def _fit(n_train, batch, seq_len, given, notes):
    """Shrink the batch, then the window, to fit B streams of T + 1 in n_train; only
    those not given. What still does not fit is left for Batches to refuse clearly."""
    if batch * (seq_len + 1) <= n_train:
        return batch, seq_len
    b0, t0 = batch, seq_len
    if "batch_size" not in given:
        batch = max(1, n_train // (seq_len + 1))
    if batch * (seq_len + 1) > n_train and "seq_len" not in given:
        seq_len = max(1, n_train // batch - 1)
    if batch * (seq_len + 1) > n_train:
        return b0, t0     # cannot fit: the values as they were, for the clear refusal
    if (batch, seq_len) != (b0, t0):
        notes.append(f"the training part ({n_train:,} characters) cannot fill {plural(b0, 'stream')} "
                     f"of {t0 + 1}: using --batch-size {batch} --seq-len {seq_len}")
    return batch, seq_len


def choose(n_chars, vocab_size, max_minutes, given=None, cell="gru", base_lr=None,
           held_out=None, doc_len=None):
    """The defaults for a corpus of n_chars characters (vocab_size distinct) trained
    for max_minutes (0: no limit); `given` (option -> value) overrides any of them.
    base_lr: fine-tuning from a base run trained at this lr (None: from scratch).
    Documents (--docs): held_out(val_frac) is the characters held out (whole documents),
    doc_len the median document's length with its end marker."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    notes = []
    minutes = budget_minutes(max_minutes)
    val_frac = given.get("val_frac", VAL_FRAC)
    val_chars = int(n_chars * val_frac) if held_out is None else held_out(val_frac)
    least = 2 if "val_frac" in given else MIN_VAL_CHARS   # an explicit one: if it scores
    if val_frac == 0:      # no validation (what a run that could not validate records)
        val_chars = 0
    elif val_chars < least:
        notes.append(f"{n_chars:,} characters are too few to hold out {val_frac:g} for "
                     f"validation ({val_chars} characters, fewer than {least}): "
                     "training on all of them without validation")
        val_chars = 0
    if not val_chars:
        val_frac = 0.0
    n_train = n_chars - val_chars

    layers, hidden, embed = _size(cell, n_train, vocab_size, minutes)
    v = {"layers": layers, "hidden": hidden, "embed": embed, "val_frac": val_frac}
    v.update({k: given[k] for k in ("layers", "hidden", "embed") if k in given})
    n_params = params(cell, v["layers"], v["hidden"], v["embed"], vocab_size)
    epochs = nominal_chars_per_sec(n_params) * minutes * 60 / max(1, n_train)
    v["dropout"] = _dropout(epochs)
    v["lr_decay"] = round(LR_DECAY ** min(1.0, n_train / 1e6), 4)
    v["lr"] = LR if base_lr is None else float(f"{base_lr * FINETUNE_LR:.3g}")
    v["anneal"], v["grad_clip"], v["label_smoothing"] = ANNEAL, GRAD_CLIP, 0.0

    seq_len = given.get("seq_len", SEQ_LEN if doc_len is None else
                        min(DOC_SEQ_LEN, max(SEQ_LEN, doc_len)))
    batch = given.get("batch_size",
                      max(1, min(BATCH_SIZE, n_train // ((seq_len + 1) * MIN_WINDOWS))))
    v["batch_size"], v["seq_len"] = _fit(n_train, batch, seq_len, given, notes)

    if val_chars:
        from charrnn.data.heldout import MAX_SCORED
        scored = min(val_chars, MAX_SCORED)
        every = scored / (VAL_COST * v["batch_size"] * v["seq_len"])
        v["eval_every"] = int(min(EVAL_EVERY, max(MIN_EVAL_EVERY, _round_nice(every))))
        v["patience"] = PATIENCE if epochs > 2 or base_lr is not None else 0
        v["max_epochs"] = 0
    else:
        v["eval_every"] = EVAL_EVERY
        v["patience"] = 0
        v["max_epochs"] = NO_VAL_MAX_EPOCHS
    auto = [k for k in AUTO if k not in given]
    v.update({k: given[k] for k in AUTO if k in given})
    return Choice(v, auto, val_chars, notes, base_lr)


def _round_nice(x):
    """Down to 1, 2 or 5 times a power of ten (10, 20, 50, 100, ...)."""
    if x < 1:
        return 1
    p = 10 ** math.floor(math.log10(x))
    return max(m * p for m in (1, 2, 5) if m * p <= x)


def describe(choice, cell="gru"):
    """One line naming what was chosen automatically."""
    v, auto = choice.values, set(choice.auto)
    parts = []
    if auto & {"layers", "hidden", "embed"}:
        parts.append(f"{v['layers']}x{v['hidden']} {cell.upper()}, embedding {v['embed']}")
    if "lr" in auto and choice.base_lr is not None:   # from scratch: always LR, not news
        parts.append(f"lr {v['lr']:g} ({FINETUNE_LR_TEXT} of the base run's {choice.base_lr:g})")
    for k, label in (("dropout", "dropout {}"), ("lr_decay", "lr decay {}/epoch"),
                     ("batch_size", "batch {}"), ("seq_len", "window {}"),
                     ("eval_every", "evaluate every {}"),
                     ("patience", "patience {}"), ("max_epochs", "at most {} epochs")):
        if k in auto and not (k in ("patience", "max_epochs") and not v[k]):
            parts.append(label.format(plural(v[k], "step") if k == "eval_every" else v[k]))
    if "patience" in auto and not v["patience"] and choice.val_chars:
        parts.append("no early stopping")
    return ", ".join(parts)


# ---- classifiers (--task classify): pairs, not a stream -----------------------------
# A classifier reads each string once per epoch, both ways, and learns one label from
# it: the question is how many strings, not how many characters. Measured on 2 cores
# (bench/classify.py, words by language), a 1x64 bidirectional GRU reaches its plateau
# within minutes on ~10k strings; a wider one pays off only with more strings.
CLS_MIN_VAL = 20            # held-out pairs below this: no validation
CLS_BATCH = 32
CLS_LADDER = [(0, 1, 64, 32), (20_000, 1, 128, 32), (200_000, 2, 128, 48)]   # from n pairs


def choose_classifier(n_pairs, longest, max_minutes, given=None, held_out=None, size=None,
                      val_cap=None):
    """The automatic options of a classifier run on n_pairs pairs whose longest text has
    `longest` characters; held_out(val_frac) -> pairs held out (stratified, whole).
    size(n_train, max_minutes) -> (layers, hidden, embed, batch) replaces the ladder
    (transducers: choose_seq2seq); val_cap: hold out about this many pairs at most,
    unless val_frac is given."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    notes = []
    val_frac = given.get("val_frac", VAL_FRAC)
    if val_cap and "val_frac" not in given and n_pairs * val_frac > val_cap:
        val_frac = round(val_cap / n_pairs, 4)
    n_val = held_out(val_frac) if val_frac else 0
    least = 2 if "val_frac" in given else CLS_MIN_VAL
    if val_frac and n_val < least:
        notes.append(f"{n_pairs:,} pairs are too few to hold out {val_frac:g} for validation "
                     f"({n_val}, fewer than {least}): training on all of them without "
                     "validation")
        n_val = 0
    if not n_val:
        val_frac = 0.0
    n_train = n_pairs - n_val
    layers, hidden, embed, batch = (size or _classifier_size)(n_train, max_minutes)
    batch = given.get("batch_size", max(1, min(batch, n_train // 4)))
    per_epoch = math.ceil(n_train / batch)
    v = {"layers": layers, "hidden": hidden, "embed": embed, "val_frac": val_frac,
         "dropout": 0.0, "lr": LR, "lr_decay": 1.0, "batch_size": batch, "anneal": ANNEAL,
         "grad_clip": GRAD_CLIP, "label_smoothing": 0.0,
         "seq_len": longest}   # informative: the longest row a batch pads to
    if n_val:   # about once per epoch, within [MIN_EVAL_EVERY, EVAL_EVERY] steps
        v["eval_every"] = int(min(EVAL_EVERY, max(MIN_EVAL_EVERY, per_epoch)))
        v["patience"], v["max_epochs"] = PATIENCE, 0
    else:
        v["eval_every"] = int(min(EVAL_EVERY, max(MIN_EVAL_EVERY, per_epoch)))
        v["patience"], v["max_epochs"] = 0, NO_VAL_MAX_EPOCHS
    auto = [k for k in AUTO if k not in given]
    v.update({k: given[k] for k in AUTO if k in given})
    return Choice(v, auto, n_val, notes)


def _classifier_size(n_train, max_minutes):
    return (*[r[1:] for r in CLS_LADDER if n_train >= r[0]][-1], CLS_BATCH)


# ---- transducers (--task seq2seq) -----------------------------------------------------
# A transducer's decoder (2 x --hidden units) runs once per target token: a pair costs
# several times a classifier's. Measured on CMUdict (108k training pairs, 2 cores;
# bench/results/g2p/2026-12-05-amd-zen3-cli-curve-30min.json and -budget-runs.json): per
# epoch a 1x256 encoder with a 512-unit decoder is ahead of 1x128 / 256 (47.4% vs 51.9%
# word error after 2 epochs) at 3x the cost per pair. In 5 minutes only the small one
# gets several epochs. In half an hour (45 minutes on one thread, the same number of
# epochs) the small one stopped improving after 19 of its 38 epochs (40.6% test WER),
# while the large one, with dropout 0.25, improved for all 12 of its epochs (38.1%).
# A second encoder layer then paid more than the epochs it costs (43% more per pair):
# 45 minutes on one thread, 2x256 reached 35.4% test WER in 8 epochs, 1x256 39.3% in 11
# (bench/results/g2p/2026-12-05-amd-zen3-layers.json).
# So the large rungs come with a budget of 30 minutes or more, and encoders of 192 units
# or more train with S2S_DROPOUT (the small ones underfit with it: dropout 0.2 cost the
# 1x128 model 4.6 points of WER after 8 epochs).
S2S_LADDER = [(0, 1, 64, 32, 32), (20_000, 1, 128, 32, 32), (50_000, 1, 192, 48, 64),
              (100_000, 2, 256, 64, 64)]   # (from n pairs, layers, hidden, embed, batch)
S2S_BUDGET = [(0, 1), (30, 3)]             # (from minutes, the highest rung it allows)
S2S_DROPOUT, S2S_DROPOUT_FROM = 0.25, 192  # dropout of encoders of >= 192 units
S2S_ANNEAL = 0.9
# A transducer's gradient norm (median ~0.4) jumps now and then to 10-300, with or
# without dropout (up to 2,600 in a 1x128 run; a real gradient: finite differences
# agree), and clipped at 5.0 those steps still threw the model about: the 30-minute
# CMUdict run (2x256) had 91 such steps and ended at 42.0% test WER. Clipped at 1.0 the
# same run had none after its first hundred steps and reached at step 3,000 the
# validation loss the other had at 6,000 (bench/results/g2p/2026-12-05-amd-zen3-clip.json).
S2S_GRAD_CLIP = 1.0
# Held out: about as many pairs as an evaluation scores (seq2seq_run's EVAL_PAIRS for the
# loss, EVAL_SAMPLE sources decoded), with room; 10% of CMUdict's 120k pairs left 10k
# pairs out of training that no evaluation read.
S2S_VAL_PAIRS = 3000
# Label smoothing 0.1 (PyTorch's label_smoothing): the 30-minute model trained 16,427 steps
# (what the 30-minute run does) reached 33.3% test WER with it, 34.3% without (beam 4:
# 32.8% and 33.8%); a dropout of 0.4, or 0.25 between the encoder's layers too, did worse
# (35.4%, 36.5%) (bench/results/g2p/2026-12-05-amd-zen3-regularisation.json). The
# 5-minute model gained too: 37.5% / 10.1% PER against 38.2% / 10.6% (one run each; it
# also ran 10% more steps, 21,295 against 19,317, on a faster moment of the machine).
# A plain 30-minute run with it then scored 34.2% (16,691 steps): the WER gain is within
# what two runs differ by; it stays, as it never measured worse
# (bench/results/g2p/2026-12-05-amd-zen3-default-30min.json).
S2S_LABEL_SMOOTHING = 0.1


def seq2seq_size(n_train, max_minutes):
    """(layers, hidden, embed, batch) of a transducer on n_train pairs in max_minutes
    (0: no limit, sized as UNBOUNDED_MINUTES)."""
    minutes = max_minutes or UNBOUNDED_MINUTES
    top = [r for m, r in S2S_BUDGET if minutes >= m][-1]
    rung = min(top, [i for i, r in enumerate(S2S_LADDER) if n_train >= r[0]][-1])
    return S2S_LADDER[rung][1:]


def choose_seq2seq(n_pairs, longest, max_minutes, given=None, held_out=None):
    """choose_classifier with seq2seq_size's model and batch, about S2S_VAL_PAIRS held
    out at most, S2S_ANNEAL, S2S_DROPOUT for the larger encoders (given or chosen), and
    no patience with a time budget."""
    c = choose_classifier(n_pairs, longest, max_minutes, given, held_out, seq2seq_size,
                          S2S_VAL_PAIRS)
    dropout = S2S_DROPOUT if c.values["hidden"] >= S2S_DROPOUT_FROM else 0.0
    for k, v in (("anneal", S2S_ANNEAL), ("dropout", dropout), ("grad_clip", S2S_GRAD_CLIP),
                 ("label_smoothing", S2S_LABEL_SMOOTHING),
                 ("patience", 0 if max_minutes else c.values["patience"])):
        if k in c.auto:
            c.values[k] = v
    return c


def describe_classifier(choice, cell="gru"):
    v, auto = choice.values, set(choice.auto)
    parts = []
    if auto & {"layers", "hidden", "embed"}:
        parts.append(f"{v['layers']}x{v['hidden']} bidirectional {cell.upper()}, "
                     f"embedding {v['embed']}")
    for k, label in (("dropout", "dropout {}"), ("batch_size", "batch {}"), ("lr", "lr {}"),
                     ("anneal", "lr annealed over the last {:.0%} of the budget"),
                     ("grad_clip", "gradient norm clipped at {:g}"),
                     ("eval_every", "evaluate every {} steps"), ("patience", "patience {}"),
                     ("max_epochs", "at most {} epochs")):
        if k in auto and not (k in ("patience", "max_epochs", "dropout") and not v[k]) \
                and not (k == "anneal" and v[k] == ANNEAL) \
                and not (k == "grad_clip" and v[k] == GRAD_CLIP):
            parts.append(label.format(v[k]))
    return ", ".join(parts)
