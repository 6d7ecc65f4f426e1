"""A transducer's training run (`charrnn train pairs.tsv --task seq2seq`): what
charrnn.training.loop.train runs for that task.

    Seq2SeqTrainer(cfg, path, run_dir, saved, log, quiet, progress)   .run(signals)

It is the classifier's run (charrnn.training.classify_run.ClassifierTrainer: the
schedule, bucketed batches with the step as the data cursor, checkpoints, exact resume,
patience, Ctrl-C, the progress bar) with its own data, model and evaluation:

- data: source<TAB>target lines (charrnn.data.pairs, names source and target); targets
  are characters (--target-tokens chars) or space-separated tokens (space). Whole
  *sources* are held out (all the lines of a source go to the same side, so no
  pronunciation of a held-out word is trained on), chosen by the seed.
- model: charrnn.nn.seq2seq.Seq2Seq: a --layers x --hidden bidirectional encoder over
  the source characters (embedding --embed), a decoder of --decoder units (2 x --hidden
  unless given) with --attention (Luong unless given; Bahdanau's layer has --hidden
  units). Source vocabulary: the training sources' characters (id 0: any other); target
  vocabulary: every target token of the file (BOS, EOS first).
- evaluation: the loss per target token (EOS included) over up to EVAL_PAIRS held-out
  pairs (a sample fixed by the seed; all of them when there are fewer), and the token
  error rate of greedy decoding on up to EVAL_SAMPLE held-out sources (the
  first ones, in file order: the same sample at every evaluation), as val_ter.
- the model file: charrnn.training.seq2seq.Transducer.save (load_transducer reads it).
"""
from dataclasses import asdict
from pathlib import Path

import numpy as np

from charrnn.data.pairs import read_pairs, split_pairs
from charrnn.errors import ConfigError, CorpusError, plural
from charrnn.nn.classifier import pad_batch
from charrnn.nn.network import StreamMasks
from charrnn.nn.seq2seq import BOS, EOS, Seq2Seq
from charrnn.training import auto as defaults
from charrnn.training.checkpointing import trim_metrics, unchanged_digest
from charrnn.training.classify_run import EVAL_BATCH, ClassifierTrainer
from charrnn.training.seq2seq import Transducer
from charrnn.training.seq2seq_score import error_rates, group_references

EVAL_SAMPLE = 200   # held-out sources decoded at each evaluation for val_ter
JOINT_SECONDS = 9e-5   # per training pair: building and tuning the joint model after the
# loop (CMUdict: 10.4 s for 116,646 pairs with the 30-minute model), kept out of --max-minutes
EVAL_PAIRS = 2000   # held-out pairs whose loss each evaluation measures (a seeded sample):
# all 12,000 of CMUdict's took a fifth of a run's time, and patience needs no more
TOKENS = {"chars": "chars", "space": "words"}   # --target-tokens -> Transducer.tokens


def joint_reserve(n_train, max_minutes):
    """Seconds of --max-minutes kept for the joint model: JOINT_SECONDS a training pair,
    at most a tenth of the budget (a tiny budget still trains), none without a budget."""
    return min(JOINT_SECONDS * n_train, 6.0 * max_minutes) if max_minutes else 0.0


def split_by_source(sources, val_frac, seed):
    """(train, held out) index arrays of the pairs, holding out whole sources."""
    distinct = sorted(set(sources))
    _, held = split_pairs([0] * len(distinct), val_frac, seed)
    out = {distinct[i] for i in held}
    mask = np.array([s in out for s in sources], bool)
    return np.flatnonzero(~mask), np.flatnonzero(mask)


class Seq2SeqTrainer(ClassifierTrainer):
    TASK = "seq2seq"
    METRIC = ("val_ter", "token error rate")
    SHOWN = "val TER"
    USE = "transduce"
    USE_TAIL = " --beam 8   (re-ranked by the joint model; without --beam: greedy, faster)"

    def __init__(self, cfg, path, run_dir, saved, log, quiet, progress):
        self.run_dir, self.log, self.quiet, self.progress = Path(run_dir), log, quiet, progress
        self.path = str(Path(path).resolve())
        pairs = read_pairs(path, cfg.encoding, cfg.encoding_errors, names=("source", "target"))
        split = list if cfg.target_tokens == "chars" else str.split
        for t, line in zip(pairs.right, pairs.lines):
            if not split(t):
                raise CorpusError(f"{path}, line {line}: the target has no tokens (only "
                                  "spaces); each line must be source<TAB>target")
        self.sha256 = unchanged_digest(path, saved)
        given = {k: v for k, v in asdict(cfg).items() if k in defaults.AUTO and v is not None}
        n = len(pairs.left)

        def held_out(frac):
            return len(split_by_source(pairs.left, frac, cfg.seed)[1])
        longest = max(map(len, pairs.left))
        choice = defaults.choose_seq2seq(n, longest, cfg.max_minutes, given, held_out)
        self.cfg = cfg = type(cfg)(**{**asdict(cfg), **choice.values})
        tr, va = split_by_source(pairs.left, cfg.val_frac, cfg.seed) if cfg.val_frac else (
            np.arange(n), np.arange(0))
        self.auto = choice.auto if saved is None else saved.meta.get("auto", [])
        self.vocab = sorted({c for i in tr for c in pairs.left[i]})        # sources
        self.labels = sorted({tok for t in pairs.right for tok in split(t)})  # targets
        longest_target = max(len(split(t)) for t in pairs.right)
        mcfg = dict(cell=cfg.cell, attention=cfg.attention, embed=cfg.embed,
                    hidden=cfg.hidden, decoder=cfg.decoder or 2 * cfg.hidden,
                    attn=cfg.hidden, layers=cfg.layers,
                    dropout=cfg.dropout,
                    src_vocab=len(self.vocab) + 1, tgt_vocab=len(self.labels) + 2)
        self.transducer = Transducer(Seq2Seq(mcfg, seed=cfg.seed), self.vocab, self.labels,
                                     TOKENS[cfg.target_tokens], 2 * longest_target + 2)
        self.model = self.transducer.model
        self.model.parallel = None
        self.model.precision = cfg.precision   # "fp32" or "bf16" (the loop resolved auto)
        index = {c: i + 1 for i, c in enumerate(self.vocab)}
        code = {tok: i + 2 for i, tok in enumerate(self.labels)}

        def enc(rows):
            return ([np.array([index.get(c, 0) for c in pairs.left[i]], np.int32) for i in rows],
                    [np.array([BOS] + [code[t] for t in split(pairs.right[i])] + [EOS], np.int32)
                     for i in rows])
        self.train_x, self.train_t = enc(tr)
        self.val_x, self.val_t = enc(va)
        self.pairs = [[(pairs.left[i], pairs.right[i]) for i in rows] for rows in (tr, va)]
        self.joint_reserve = joint_reserve(len(tr), cfg.max_minutes)
        self.val_refs = dict(list(group_references(
            [pairs.left[i] for i in va], [pairs.right[i] for i in va], split).items())[:EVAL_SAMPLE])
        sample = np.random.default_rng([cfg.seed, 0x5A]).permutation(len(va))[:EVAL_PAIRS]
        self.val_order = sample[np.argsort([len(self.val_x[i]) for i in sample], kind="stable")]
        self._start(len(tr), saved)
        if saved is None:
            for note in choice.notes:
                log(f"charrnn: note: {note}")
            held = (f"{len(va):,} held out (whole sources)" if len(va) else "none held out")
            log(f"charrnn: {path}: {n:,} pairs, {len(set(pairs.left)):,} distinct sources, "
                f"{len(self.labels)} target tokens, {len(tr):,} pairs for training, {held}")
            if choice.auto:
                log(f"charrnn: auto for {len(tr):,} training pairs: "
                    f"{defaults.describe_classifier(choice, cfg.cell)} (options you pass win)")
        self.metrics_path = self.run_dir / "metrics.jsonl"
        trim_metrics(self.metrics_path, self.saved_step)

    def batch(self, step):
        """(src (S, N), src_len (N,), tgt (T+1, N), tgt_len (N,)) of step `step`."""
        rows = self._rows(step)
        src, src_len = pad_batch([self.train_x[i] for i in rows])
        tgt, lens = pad_batch([self.train_t[i] for i in rows])
        return src, src_len, tgt, lens - 1

    def forward_backward(self, b):
        # dropout masks keyed by (seed, step): nothing to carry or save for exact resume
        rng = StreamMasks(self.cfg.seed + 1, self.step) if self.cfg.dropout else None
        return self.model.forward_backward(*b, rng=rng, smoothing=self.cfg.label_smoothing)

    def _describe(self):
        c = self.cfg
        return (f"charrnn: training a transducer: {c.layers}x{c.hidden} bidirectional "
                f"{c.cell.upper()} encoder, {self.model.cfg.decoder}-unit decoder with "
                f"{c.attention.capitalize()} attention "
                f"({self.model.flat.size:,} parameters, {len(self.vocab)} source characters, "
                f"{len(self.labels)} target tokens), "
                + (f"label smoothing {c.label_smoothing:g}, " if c.label_smoothing else "")
                + (f"weights averaged (--ema {c.ema:g}), " if c.ema else "")
                + f"{plural(self.per_epoch, 'step')} per epoch")

    def evaluate(self):
        """(mean loss per target token in nats, token error rate of greedy decoding on
        the sample), or (None, None) without held-out pairs."""
        if not len(self.val_x):
            return None, None
        order = self.val_order
        total = count = 0.0
        for lo in range(0, len(order), EVAL_BATCH):
            rows = order[lo:lo + EVAL_BATCH]
            src, src_len = pad_batch([self.val_x[i] for i in rows])
            tgt, lens = pad_batch([self.val_t[i] for i in rows])
            k = float((lens - 1).sum())
            total += float(self.model.loss(src, src_len, tgt, lens - 1)) * k
            count += k
        words = list(self.val_refs)
        hyps = dict(zip(words, map(self.transducer.split, self.transducer.transduce(words))))
        return total / count, error_rates(self.val_refs, hyps)["ter"]

    def _write_model(self, path, info):
        self.transducer.save(path, info)

    def _plan(self, elapsed):   # the time budget holds the joint model's build too
        return super()._plan(elapsed + self.joint_reserve)

    def _done(self, elapsed):
        return super()._done(elapsed + self.joint_reserve)

    def run(self, sig):
        summary = super().run(sig)
        from charrnn.io.joint_file import NAME
        if not (self.run_dir / NAME).is_file():   # a finished run from before joint models
            self._build_joint()
        return summary

    def _finish(self, stop):
        self._build_joint()   # the model changed: its joint model's weight must follow
        return super()._finish(stop)

    def _build_joint(self):
        """The joint model, built on the training pairs, its weight tuned with the run's
        best model on the held-out ones (charrnn.training.seq2seq_joint)."""
        from charrnn.io.joint_file import NAME, save_joint
        from charrnn.training.seq2seq import load_transducer
        from charrnn.training.seq2seq_joint import build_joint
        best = load_transducer(self.run_dir, best=len(self.val_x) > 0, joint=False)
        joint = build_joint(best, *self.pairs)
        save_joint(joint, self.run_dir / NAME)
        i = joint.info
        tuned = (f"weight {joint.weight:g}: held-out WER {100 * i['held_out_wer_without']:.1f}% "
                 f"-> {100 * i['held_out_wer_with']:.1f}% at --beam {i['beam']}"
                 if "weight" in i else f"weight {joint.weight:g} (no held-out pairs to tune it)")
        self.log(f"charrnn: joint graphone model ({i['graphones']:,} graphones, order "
                 f"{i['order']}, {i['train_seconds']:g} s) in {NAME}; it re-ranks beam "
                 f"search's outputs, {tuned}")


def check_options(options):
    """ConfigError for an option a seq2seq run does not use."""
    for k in ("seq_len", "lr_decay", "docs"):
        if options.get(k) is not None and not (k == "docs" and options[k] == "none"):
            raise ConfigError(f"--{k.replace('_', '-')} does not apply to --task seq2seq")
