"""A classifier's training run (`charrnn train pairs.tsv --task classify`): what
charrnn.training.loop.train runs instead of the language model's Trainer.
    ClassifierTrainer(cfg, path, run_dir, saved, log, quiet, progress)   .run(signals)
The run directory is a language model's (loop.py): model.safetensors, best.safetensors
(charrnn.io.classifier_file), state.safetensors (parameters, optimizer moments, step,
budget and patience bookkeeping), metrics.jsonl (train_loss per step; val_loss and
val_accuracy at each evaluation; a final line saying why the run stopped).

Data: label<TAB>text lines (charrnn.data.pairs); whole pairs held out, stratified by
label, chosen by the seed. Vocabulary: the training texts' characters (id 0: any other);
labels: every label of the file, sorted. Batches: epoch e shuffles the training pairs by
(seed, e), cuts the order into buckets of BUCKET batches, sorts each bucket by length,
cuts it into batches (little padding) and shuffles them. Step s is batch s % per_epoch
of epoch s // per_epoch: the step is the data cursor, so a resume reads what an
uninterrupted run would.
"""
import contextlib
import json
import math
import signal
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from charrnn.data.pairs import read_pairs, split_pairs
from charrnn.errors import ConfigError, CorpusError, DivergenceError, plural
from charrnn.io import checkpoint as ckpt
from charrnn.io import classifier_file
from charrnn.io.rundir import BEST_FILE, METRICS_FILE, MODEL_FILE, STATE_FILE
from charrnn.nn import optim, precision
from charrnn.nn.classifier import Classifier, pad_batch
from charrnn.training import auto as defaults
from charrnn.training.checkpointing import trim_metrics, unchanged_digest
from charrnn.training.options import stop_reason
from charrnn.training.progress import Bar
from charrnn.training.schedule import anneal_window, budget_end, plateau_window, scheduled_lr
from charrnn.training.trainer import Interrupted

BUCKET = 50          # batches per length bucket
EVAL_BATCH = 256     # rows per forward pass when scoring the held-out pairs


NOT_FOR_CLASSIFY = ("dropout", "seq_len", "lr_decay", "docs")   # options that do not apply


def check_options(options):
    """ConfigError for an option given that a classifier run does not use."""
    for k in NOT_FOR_CLASSIFY:
        if options.get(k) is not None and not (k == "docs" and options[k] == "none"):
            raise ConfigError(f"--{k.replace('_', '-')} does not apply to --task classify")


class ClassifierTrainer:
    """The run; charrnn.training.seq2seq_run.Seq2SeqTrainer reuses it (its schedule,
    loop, checkpoints and resume) through the hooks below marked "task"."""
    TASK = "classify"
    METRIC = ("val_accuracy", "accuracy")   # task: the held-out figure besides the loss

    def _start(self, n_train, saved):
        """The training state at step 0 over n_train pairs (self.train_x, self.model and
        self.cfg set), or as `saved` (a resume) left it."""
        cfg = self.cfg
        self.train_len = np.array([len(x) for x in self.train_x])
        self.per_epoch = math.ceil(n_train / cfg.batch_size)
        self._plan_epoch = (None, None)
        self.opt = optim.make(cfg.optimizer, self.model.flat.size)
        # --ema: what evaluations score and model files hold (the last weights go on training)
        self.average = optim.WeightAverage(cfg.ema, self.model.flat) if cfg.ema else None
        self.step, self.elapsed_before, self.best_val, self.best_step = 0, 0.0, math.inf, 0
        self.anneal_steps = self.anneal_from = self.last_val = self.last_acc = None
        self.bad_evals = self.saved_step = 0
        self.step_time, self.rate, self.eval_cost, self.train_loss = None, None, 0.0, None
        if saved is not None:
            self._restore(saved)

    def __init__(self, cfg, path, run_dir, saved, log, quiet, progress):
        self.run_dir, self.log, self.quiet, self.progress = Path(run_dir), log, quiet, progress
        self.path = str(Path(path).resolve())
        pairs = read_pairs(path, cfg.encoding, cfg.encoding_errors)
        self.sha256 = unchanged_digest(path, saved)
        self.labels = sorted(set(pairs.left))
        if len(self.labels) < 2:
            raise CorpusError(f"{path}: every line has label {self.labels[0]!r}; a classifier "
                              "needs two labels or more")
        given = {k: v for k, v in asdict(cfg).items() if k in defaults.AUTO and v is not None}
        n = len(pairs.left)
        split = {}

        def held_out(frac):
            split[frac] = split_pairs(pairs.left, frac, cfg.seed)
            return len(split[frac][1])
        longest = max(map(len, pairs.right))
        choice = defaults.choose_classifier(n, longest, cfg.max_minutes, given, held_out)
        self.cfg = cfg = type(cfg)(**{**asdict(cfg), **choice.values})
        tr, va = split_pairs(pairs.left, cfg.val_frac, cfg.seed) if cfg.val_frac else (
            np.arange(n), np.arange(0))
        self.auto = choice.auto if saved is None else saved.meta.get("auto", [])
        self.vocab = sorted({c for i in tr for c in pairs.right[i]})
        index = {c: i + 1 for i, c in enumerate(self.vocab)}
        code = {x: i for i, x in enumerate(self.labels)}

        def enc(rows):
            return ([np.array([index.get(c, 0) for c in pairs.right[i]], np.int32) for i in rows],
                    np.array([code[pairs.left[i]] for i in rows], np.int32))
        self.train_x, self.train_y = enc(tr)
        self.val_x, self.val_y = enc(va)
        mcfg = dict(cell=cfg.cell, hidden=cfg.hidden, layers=cfg.layers, embed=cfg.embed,
                    vocab_size=len(self.vocab) + 1, classes=len(self.labels), pool=cfg.pool)
        self.model = Classifier(mcfg, seed=cfg.seed, forget_bias=cfg.forget_bias)
        self.model.precision = cfg.precision   # "fp32" or "bf16" (the loop resolved auto)
        self._start(len(tr), saved)
        if saved is None:
            for note in choice.notes:
                log(f"charrnn: note: {note}")
            held = (f"{len(va):,} held out (whole pairs, stratified by label)" if len(va)
                    else "none held out")
            log(f"charrnn: {path}: {n:,} pairs, {len(self.labels)} labels, {len(tr):,} for "
                f"training, {held}")
            if choice.auto:
                log(f"charrnn: auto for {len(tr):,} training pairs: "
                    f"{defaults.describe_classifier(choice, cfg.cell)} (options you pass win)")
        self.metrics_path = self.run_dir / METRICS_FILE
        trim_metrics(self.metrics_path, self.saved_step)

    # ---- data ---------------------------------------------------------------------------

    def epoch(self):
        return self.step / self.per_epoch

    def _rows(self, step):
        """The training pairs (indices) of step `step` (0-based), as the docstring says."""
        e, k = divmod(step, self.per_epoch)
        if self._plan_epoch[0] != e:
            B = self.cfg.batch_size
            rng = np.random.default_rng([self.cfg.seed, 0xC1A55, e])
            order = rng.permutation(len(self.train_x))
            batches = []
            for lo in range(0, len(order), B * BUCKET):
                chunk = order[lo:lo + B * BUCKET]
                chunk = chunk[np.argsort(self.train_len[chunk], kind="stable")]
                batches += [chunk[i:i + B] for i in range(0, len(chunk), B)]
            self._plan_epoch = (e, [batches[i] for i in rng.permutation(len(batches))])
        return self._plan_epoch[1][k]

    def batch(self, step):
        """task: (ids (T, N), lengths (N,), labels (N,)) of step `step`: the arguments
        of model.forward_backward."""
        rows = self._rows(step)
        ids, lengths = pad_batch([self.train_x[i] for i in rows])
        return ids, lengths, self.train_y[rows]

    # ---- schedule (as the language model's Trainer) -------------------------------------

    def lr(self):
        return scheduled_lr(self.cfg, self.epoch(), self.step, self.anneal_steps,
                            self.anneal_from)

    def _plan(self, elapsed):
        """Fix the anneal window (charrnn.training.schedule): near the budget's end, or
        on a plateau of the validation loss (restarting the patience count; -> a note)."""
        if self.anneal_steps is None:
            c = self.cfg
            end = budget_end(c, self.step, self.per_epoch, elapsed, self.step_time,
                             self.eval_cost)
            self.anneal_steps = anneal_window(c, self.step, end, self.anneal_from)
            if self.anneal_steps is None and self.anneal_from is None:
                self.anneal_steps = plateau_window(c, self.step, end, self.bad_evals)
                if self.anneal_steps is not None:
                    self.bad_evals = 0
                    return (f"no better validation loss in {max(2, c.patience // 2)} "
                            f"evaluations: annealing the lr to a tenth by step "
                            f"{self.anneal_steps[1]}")
        return None

    def _done(self, elapsed):
        return stop_reason(self.cfg, self.step, self.epoch(), elapsed + self.eval_cost,
                           self.bad_evals)

    # ---- the run ------------------------------------------------------------------------

    def run(self, sig):
        cfg, model = self.cfg, self.model
        self.log(self._describe())
        self.log(f"charrnn: run directory {self.run_dir}")
        if cfg.precision == "bf16":
            self.log(precision.log_line())
        bar = Bar(cfg, self.step, self.quiet)
        write = bar.write if not self.quiet else self.log
        t0 = time.perf_counter()
        self.elapsed = lambda: self.elapsed_before + time.perf_counter() - t0
        first, stop = self.step, None
        with open(self.metrics_path, "a") as metrics:
            try:
                while True:
                    stop = self._done(self.elapsed())
                    if stop and self.step == first > 0:
                        self.log(f"charrnn: {self.run_dir} already finished at step "
                                 f"{self.step} (stopped by {stop}): nothing to do")
                        return self._summary(stop)
                    if stop or sig.received is not None:
                        break
                    note = self._plan(self.elapsed())
                    if note:
                        write(f"step {self.step}: {note}")
                    record = self._step()
                    if self.step % cfg.eval_every == 0:
                        self._evaluate_and_save(record, write)
                    self._line(metrics, record)
                    if self.progress is not None:
                        self.progress(record)
                    shown = {"loss": f"{record['train_loss']:.3f}"}
                    if len(self.val_x):
                        shown[self.SHOWN] = "-" if self.last_acc is None else f"{self.last_acc:.3f}"
                    shown["pairs/s"] = f"{self.rate:.0f}"
                    bar.update(self.step, self.epoch(), self.elapsed(), shown)
                signame = signal.Signals(sig.received).name if sig.received else None
                final = {"step": self.step, "epoch": round(self.epoch(), 4),
                         "wall_time": round(self.elapsed(), 2), "final": True,
                         "stopped_by": stop or signame}
                if sig.received is not None:   # saved as it is: no evaluation, so the
                    if self.step > self.saved_step:   # patience count resumes exactly
                        self._save(improved=not len(self.val_x))
                elif self.step > self.saved_step or self.last_val is None and len(self.val_x):
                    self._evaluate_and_save(final, write)
                self._line(metrics, final)
            finally:
                bar.close()
        if sig.received is not None:
            raise Interrupted(sig.received, f"interrupted at step {self.step}; checkpoint "
                              f"saved in {self.run_dir}\nresume with: charrnn train --out "
                              f"{self.run_dir} --resume")
        return self._finish(stop)

    SHOWN = "val acc"   # task: the bar's name for the metric
    USE = "classify"    # task: the command that uses the run
    USE_TAIL = ""       # task: what to add to that command

    def _describe(self):
        """task: the first log line."""
        c = self.cfg
        return (f"charrnn: training a {c.layers}x{c.hidden} bidirectional {c.cell.upper()} "
                f"classifier{', mean-pooled' * (c.pool == 'mean')} ({self.model.flat.size:,} parameters, vocabulary "
                f"{len(self.vocab)}, {len(self.labels)} labels), "
                + (f"weights averaged (--ema {c.ema:g}), " if c.ema else "") +
                f"{plural(self.per_epoch, 'step')} per epoch")

    def _step(self):
        cfg, model = self.cfg, self.model
        t0 = time.perf_counter()
        b = self.batch(self.step)
        model.grad_flat.fill(0)
        loss = float(self.forward_backward(b))
        norm, gscale = optim.clip_scale(model.grad_flat, cfg.grad_clip)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            kept = (f"the last good checkpoint (step {self.saved_step}) is in {self.run_dir}"
                    if (self.run_dir / STATE_FILE).exists() else "nothing was saved")
            raise DivergenceError(f"training diverged at step {self.step + 1}: loss {loss}, "
                                  f"gradient norm {norm}; {kept}. Try a lower --lr")
        lr = self.lr()
        self.opt.step(model.flat, model.grad_flat, lr, gscale, parallel=model.parallel)
        if self.average is not None:
            self.average.update(model.flat, self.opt.t, model.parallel)
        self.step += 1
        dt = time.perf_counter() - t0
        self.step_time = dt if self.step_time is None else 0.95 * self.step_time + 0.05 * dt
        r = len(b[1]) / dt
        self.rate = r if self.rate is None else 0.9 * self.rate + 0.1 * r
        self.train_loss = loss
        return {"step": self.step, "epoch": round(self.epoch(), 4), "train_loss": round(loss, 5),
                "lr": lr, "grad_norm": round(norm, 4), "pairs_per_sec": round(self.rate, 1),
                "wall_time": round(self.elapsed(), 2)}

    def forward_backward(self, b):   # task: loss and gradients of a training batch
        return self.model.forward_backward(*b)

    @staticmethod
    def _line(metrics, record):
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()

    def evaluate(self):
        """(mean loss in nats, accuracy) over the held-out pairs, or (None, None)."""
        if not len(self.val_x):
            return None, None
        order = np.argsort([len(x) for x in self.val_x], kind="stable")
        loss, hits = 0.0, 0
        for lo in range(0, len(order), EVAL_BATCH):
            rows = order[lo:lo + EVAL_BATCH]
            p = self.model.predict_proba(*pad_batch([self.val_x[i] for i in rows]))
            y = self.val_y[rows]
            loss -= float(np.log(np.maximum(p[np.arange(len(y)), y], 1e-300)).sum())
            hits += int((p.argmax(axis=1) == y).sum())
        return loss / len(order), hits / len(order)

    def _evaluate_and_save(self, record, write):
        t0 = time.perf_counter()
        with self._weights():
            val, acc = self.evaluate()
        improved = val is None or val < self.best_val
        if val is not None:
            self.last_val, self.last_acc = val, acc
            record.update({"val_loss": round(val, 5), self.METRIC[0]: round(acc, 5)})
            if improved:
                self.best_val, self.best_step, self.bad_evals = val, self.step, 0
            else:
                self.bad_evals += 1
        self._save(improved)
        head = f"step {self.step} (epoch {self.epoch():.2f}): "
        write(head + (f"train loss {self.train_loss or float('nan'):.4f} (no validation)"
                      if val is None else f"val loss {val:.4f}, {self.METRIC[1]} {acc:.4f}"
                      + (" (best)" if improved else
                         f" (best loss {self.best_val:.4f} at step {self.best_step})")))
        self.eval_cost = time.perf_counter() - t0

    # ---- checkpoints --------------------------------------------------------------------

    def _save(self, improved):
        arrays = {f"param.{k}": v for k, v in self.model.params.items()}
        arrays.update({f"opt.{k}": v for k, v in self.opt.state.items()})
        if self.average is not None:
            arrays["ema.avg"] = self.average.state["avg"]
        ckpt.save_state(self.run_dir / STATE_FILE, arrays, {
            "task": self.TASK, "step": self.step, "opt_t": self.opt.t,
            "elapsed": self.elapsed(), "anneal_steps": self.anneal_steps,
            "anneal_from": self.anneal_from, "best_val": self.best_val,
            "last_val": self.last_val, "last_acc": self.last_acc,
            "bad_evals": self.bad_evals, "best_step": self.best_step,
            "train_config": asdict(self.cfg), "auto": self.auto, "corpus": self.path,
            "pairs_sha256": self.sha256, "vocab": self.vocab, "labels": self.labels})
        info = {"step": self.step, "epoch": round(self.epoch(), 4), "val_loss": self.last_val,
                self.METRIC[0]: self.last_acc,
                "best_val_loss": self.best_val if math.isfinite(self.best_val) else None}
        with self._weights():
            self._write_model(self.run_dir / MODEL_FILE, info)
            if improved:
                self._write_model(self.run_dir / BEST_FILE, info)
        self.saved_step = self.step

    def _weights(self):
        """Context: the model holds the weights a user gets (--ema's average) inside."""
        return (contextlib.nullcontext() if self.average is None
                else self.average.applied(self.model.flat))

    def _write_model(self, path, info):
        """task: the model file a user loads."""
        classifier_file.save(path, self.model.params, self.model.config, self.vocab,
                             self.labels, info)

    def _restore(self, saved):
        from charrnn.errors import CheckpointError
        a, m = saved.arrays, saved.meta
        if m.get("vocab") != self.vocab or m.get("labels") != self.labels:
            raise CheckpointError("cannot resume: the run's vocabulary or labels differ")
        try:
            for k, v in self.model.params.items():
                v[...] = a[f"param.{k}"]
            for k, v in self.opt.state.items():
                v[...] = a[f"opt.{k}"]
            if self.average is not None:
                self.average.state["avg"][...] = a["ema.avg"]
            self.opt.t, self.step = int(m["opt_t"]), int(m["step"])
            self.elapsed_before, self.best_val = float(m["elapsed"]), float(m["best_val"])
            self.anneal_steps, self.anneal_from = m.get("anneal_steps"), m.get("anneal_from")
            self.last_val, self.last_acc = m.get("last_val"), m.get("last_acc")
            self.bad_evals, self.best_step = int(m["bad_evals"]), int(m["best_step"])
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"cannot resume: training state is incomplete ({e})") from None
        self.saved_step = self.step

    # ---- the end ------------------------------------------------------------------------

    def _summary(self, stop):
        return {"run_dir": str(self.run_dir), "task": self.TASK, "steps": self.step,
                "epochs": round(self.epoch(), 3), "train_loss": self.train_loss,
                "val_loss": self.last_val, self.METRIC[0]: self.last_acc,
                "best_val_loss": self.best_val, "minutes": round(self.elapsed() / 60, 2),
                "pairs_per_sec": self.rate, "stopped_by": stop, "rank": 0, "ranks": 1}

    def _finish(self, stop):
        s = self._summary(stop)
        done = f"charrnn: done after {plural(self.step, 'step')} ({s['epochs']} epochs, {s['minutes']} min): "
        if self.last_val is None:
            self.log(done + f"train loss {self.train_loss or float('nan'):.4f} (no validation)")
        else:
            self.log(done + f"val loss {self.last_val:.4f}, {self.METRIC[1]} {self.last_acc:.4f}; best "
                     f"loss {self.best_val:.4f} at step {self.best_step} (best.safetensors)")
        if stop == "patience":
            self.log(f"charrnn: stopped early: no better validation loss in "
                     f"{plural(self.cfg.patience, 'evaluation')} (--patience)")
        self.log(f"charrnn: {self.USE} with: charrnn {self.USE} {self.run_dir} TEXT{self.USE_TAIL}")
        return s
