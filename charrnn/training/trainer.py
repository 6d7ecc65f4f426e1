"""One training run, step by step: the Trainer that charrnn.training.loop.train drives.

    Trainer(cfg, corpus, run_dir, saved, ...)   corpus, options, model, optimizer,
                                                streams; restored from `saved` on resume
    .run(signals)   while no budget is spent: step -> record (metrics, bar) and, every
                    eval_every steps, evaluate + save; then finish (summary, messages)

Sizes: B streams of the global batch, of which this rank holds [lo, hi); T window.
What is saved and restored is charrnn.training.checkpointing's (composed: self.checkpoints).
Under MPI every rank runs this over its own streams; self.comm's hooks are no-ops for
one process.
"""
import json
import math
import os
import signal
import time
from pathlib import Path

from charrnn.data import sources
from charrnn.data.documents import END, Documents
from charrnn.data.several import FileSet
from charrnn.errors import DivergenceError, plural
from charrnn.io.rundir import METRICS_FILE, SAMPLES_FILE, STATE_FILE
from charrnn.model import CharRNN
from charrnn.nn import optim
from charrnn.nn.network import ModelConfig, StreamMasks
from charrnn.training import distributed as dist
from charrnn.training import finetune
from charrnn.training.checkpointing import Checkpoints
from charrnn.training.preview import Preview
from charrnn.training.options import stop_reason
from charrnn.training.progress import Bar
from charrnn.training.schedule import anneal_window, budget_end, scheduled_lr
from charrnn.training.run_start import check_corpus_unchanged, prepare


# Divergence: a NaN/Inf loss or gradient, or a mean loss above diverge_bound(V) (training
# or validation). A model that knows nothing (uniform over V characters) scores ln V, and
# an initialised model scores about that; training falls below it within a few steps (at
# lr 0.1, 30x the default, no GRU/LSTM/RNN tried went above 1.06 ln V after its first
# step). Three times ln V (at least ln V + 3 nats, for tiny vocabularies) is far worse
# than knowing nothing: the weights have blown up, though gradient clipping keeps the
# numbers finite. The warm-up is the first step (its loss is the initial model's); after
# it every step is checked, and every evaluation before its save, so the checkpoint
# kept is one whose validation loss was within the bound.
DIVERGE_AFTER = 1


def diverge_bound(vocab_size):
    return max(3 * math.log(vocab_size), math.log(vocab_size) + 3)


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; the loop saved and stopped. .signum says which; the
    message says where the checkpoint is and how to resume."""

    def __init__(self, signum, message):
        super().__init__(message)
        self.signum = signum


class Trainer:
    def __init__(self, cfg, corpus, run_dir, saved, log, quiet, progress, comm, base=None):
        self.run_dir, self.log, self.quiet = Path(run_dir), log, quiet
        self.comm = comm
        self.corpus_path = sources.display_name(corpus)
        # several files: which ones, exactly (resume reads them again), and a short name
        self.sources = ({"files": corpus.resolved(), "corpus_name": corpus.name}
                        if isinstance(corpus, FileSet) else {})
        # rank 0 writes the encoded corpus into the run directory; the others then read it
        def load(cache):
            if saved is not None and comm.is_root:   # a refused resume rewrites nothing
                check_corpus_unchanged(corpus, run_dir, cfg.encoding, cfg.encoding_errors)
            text = sources.load_run_corpus(corpus, encoding=cfg.encoding,
                                           errors=cfg.encoding_errors, cache_dir=cache,
                                           resumed=saved is not None, log=log)
            return finetune.grown(text, base, saved, cache)   # --init: the merged vocabulary
        self.corpus = dist.load_corpus_root_first(comm, load, run_dir)
        if saved is None and isinstance(corpus, FileSet):
            for note in corpus.notes:
                log(f"charrnn: note: {corpus.label}: {note}")
        # documents (--docs): their order, shuffled by the seed (the same on every rank)
        # (fine-tuned: every character of the base's vocabulary stays in the model's)
        keep = (base.vocab if base is not None else
                saved.meta.get("vocab") or () if saved is not None and saved.meta.get("parent")
                else ())
        docs = (Documents(self.corpus, cfg.docs, cfg.seed, keep) if cfg.docs != "none"
                else None)
        # the auto options from the corpus and the budget (the same on every rank)
        self.cfg, self.train_batches, self.heldout, choice = prepare(
            cfg, self.corpus, log, resumed=saved is not None, docs=docs, base=base)
        self.auto = choice.auto if saved is None else saved.meta.get("auto", [])
        cfg = self.cfg
        self.lo, self.hi = dist.stream_block(cfg.batch_size, comm.rank, comm.size)   # our streams
        if comm.size > 1:
            log(f"charrnn: data-parallel over {comm.describe()}: {self.hi - self.lo} "
                f"of the {plural(cfg.batch_size, 'stream')} per rank")
        vocab = self.corpus.vocab if docs is None else docs.vocab
        mcfg = ModelConfig(cfg.cell, cfg.hidden, cfg.layers, cfg.embed, cfg.dropout,
                           len(vocab), self.corpus.encoding, END if docs else "")
        self.model = CharRNN(mcfg, vocab, seed=cfg.seed, forget_bias=cfg.forget_bias)
        self.model.precision = cfg.precision   # "fp32" or "bf16" (loop resolved auto)
        self.parent = None if base is None else base.record()   # restored on resume
        if base is not None:
            finetune.start_from(self.model, base)
        # what each evaluation shows (documents: their fingerprints into the run directory)
        self.preview = (Preview.for_run(self.model, self.corpus, docs, choice.val_chars,
                                        self.run_dir) if comm.is_root else None)
        self.opt = optim.make(cfg.optimizer, self.model.flat.size)
        self.buf = dist.attach_tail(self.model) if comm.size > 1 else None   # the step's message
        self.state = self.model.init_state(self.hi - self.lo)
        self.step, self.elapsed_before, self.best_val = 0, 0.0, math.inf
        self.anneal_steps = None   # (first, last, from) of the final lr decay, once fixed
        self.anneal_from = None    # the anneal's factor when a resume changed the budget
        self.last_val = None
        self.bad_evals = 0         # evaluations since the best one (for --patience)
        self.best_step = 0
        self.saved_step = 0
        # running figures of this process's steps (not saved: remeasured on resume)
        self.step_time, self.rate, self.eval_cost, self.train_loss = None, None, 0.0, None
        self.checkpoints = Checkpoints(self)
        if saved is not None:
            self.checkpoints.restore(saved)
        # rank 0's parameters and optimizer state, at the start and on resume
        comm.sync_arrays([self.model.flat, *self.opt.state.values()])
        self.progress = progress
        self.metrics_path = self.run_dir / METRICS_FILE
        self.samples_path = self.run_dir / SAMPLES_FILE
        for path in (self.metrics_path, self.samples_path):
            self.checkpoints.trim_log(path)

    # ---- schedule ----------------------------------------------------------------------

    def epoch(self):
        return self.step / len(self.train_batches)

    def lr(self):
        """lr * lr_decay^epoch, times the anneal factor once annealing has started."""
        return scheduled_lr(self.cfg, self.epoch(), self.step, self.anneal_steps,
                            self.anneal_from)

    def _plan(self, elapsed, step_time, eval_cost):
        """Fix the anneal window [start, end) once the run is (1 - anneal) done.

        The end is the step at which the first budget runs out: --max-steps and
        --max-epochs are exact; --max-minutes is estimated from the measured speed. Once
        fixed, the window is saved with the run, so a resumed run anneals identically."""
        if self.anneal_steps is None:
            end = budget_end(self.cfg, self.step, len(self.train_batches), elapsed,
                             step_time, eval_cost)
            self.anneal_steps = anneal_window(self.cfg, self.step, end, self.anneal_from)

    def _done(self, elapsed, eval_cost):
        return stop_reason(self.cfg, self.step, self.epoch(), elapsed + eval_cost,
                           self.bad_evals)

    # ---- the run: step, record, evaluate and save, finish -----------------------------

    def run(self, sig):
        cfg, model = self.cfg, self.model
        self.log(f"charrnn: training a {cfg.layers}x{cfg.hidden} {cfg.cell.upper()} "
                 f"({model.flat.size:,} parameters, vocabulary {len(model.vocab)}) on "
                 f"{self.corpus_path}: {len(self.corpus.ids):,} characters, "
                 f"{plural(len(self.train_batches), 'step')} per epoch")
        self.log(f"charrnn: run directory {self.run_dir}")
        if cfg.precision == "bf16":
            from charrnn.nn import precision
            self.log(precision.log_line())
        bar = Bar(cfg, self.step, self.quiet)
        write = bar.write if not self.quiet else self.log
        t_start = time.perf_counter()
        self.elapsed = lambda: self.elapsed_before + time.perf_counter() - t_start
        stop, first = None, self.step
        metrics = open(self.metrics_path if self.comm.is_root else os.devnull, "a")
        try:
            while True:
                # time, speed and signals as rank 0 saw them (one process: as they are)
                now = self.comm.clock(self.elapsed(), self.step_time, self.eval_cost)
                stop = self._done(now[0], now[2])
                if stop and self.step == first > 0:   # resumed, but already done: no new record
                    return self._already_done(stop)
                if stop or self.comm.interrupted(sig):
                    break
                self._plan(*now)
                record = self._step(sig)
                saving = self.step % cfg.eval_every == 0
                if saving:   # it writes the step's line before the checkpoint
                    self.eval_cost = self._evaluate_and_save(record, write, metrics)
                self._record(record, metrics, bar, written=saving)
            self._last_record(stop, sig, metrics, write)
        finally:
            metrics.close()
            bar.close()
        return self._finish(stop, sig)

    def _step(self, sig):
        """One step of truncated BPTT on this rank's streams, the gradients summed over
        the ranks, clipped and applied. -> the step's metrics record."""
        cfg, model = self.cfg, self.model
        t0 = time.perf_counter()
        batch = self.train_batches.next()
        if batch.index == 0:
            self.state = model.init_state(self.hi - self.lo)   # new epoch: fresh state
        model.grad_flat.fill(0)
        # dropout masks keyed by (seed, step, stream): nothing to carry or save
        masks = StreamMasks(cfg.seed + 1, self.step, self.lo) if cfg.dropout > 0 else None
        x, y = batch.x[:, self.lo:self.hi], batch.y[:, self.lo:self.hi]        # (T, hi - lo)
        loss, new_state = model.forward_backward(x, y, self.state, rng=masks)
        # sum the gradients (and the flags) over the ranks: the global mean loss
        loss = self.comm.step(self.buf, loss, sig.received is not None,
                              (self.elapsed(), self.step_time, self.eval_cost))
        norm, gscale = optim.clip_scale(model.grad_flat, cfg.grad_clip, self.comm.grad_scale)
        if not (math.isfinite(loss) and math.isfinite(norm)) or (
                self.step >= DIVERGE_AFTER and loss > diverge_bound(len(model.vocab))):
            self._diverged(self.step + 1, f"loss {loss}, gradient norm {norm}")
        lr = self.lr()
        self.opt.step(model.flat, model.grad_flat, lr, gscale, parallel=model.parallel)
        self.state = new_state
        self.step += 1
        dt = time.perf_counter() - t0
        chars = cfg.batch_size * cfg.seq_len
        self.step_time = dt if self.step_time is None else 0.95 * self.step_time + 0.05 * dt
        self.rate = chars / dt if self.rate is None else 0.9 * self.rate + 0.1 * chars / dt
        self.train_loss = loss
        record = {"step": self.step, "epoch": round(self.epoch(), 4),
                  "train_loss": round(loss, 5), "lr": lr, "grad_norm": round(norm, 4),
                  "chars_per_sec": round(self.rate), "wall_time": round(self.elapsed(), 2)}
        if self.comm.size > 1:
            record["allreduce_ms"] = round(self.comm.allreduce_seconds * 1e3, 3)
        return record

    @staticmethod
    def _write_line(record, metrics):
        """Flushed at once: every line up to a checkpoint is in the file before the
        checkpoint is (a kill -9 then loses none; resume trims the lines past it)."""
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()

    def _diverged(self, step, what):
        if (self.run_dir / STATE_FILE).exists():
            kept = f"the last good checkpoint (step {self.saved_step}) is in {self.run_dir}"
        else:
            kept = "no checkpoint had been saved yet (nothing to resume)"
        raise DivergenceError(f"training diverged at step {step}: {what}; {kept}. "
                              "Try a lower --lr or --grad-clip")

    def _record(self, record, metrics, bar, written=False):
        """The step's line in metrics.jsonl, the progress callback and the bar."""
        if not written:
            self._write_line(record, metrics)
        if self.progress is not None:
            self.progress(record)
        shown = {"loss": f"{record['train_loss']:.3f}"}
        if self.heldout is not None:
            shown["val"] = "-" if self.last_val is None else f"{self.last_val:.3f}"
        shown["chars/s"] = f"{self.rate / 1000:.1f}k"
        bar.update(self.step, self.epoch(), self.elapsed(), shown)

    def _last_record(self, stop, sig, metrics, write):
        """The last line says why the run stopped: a budget ("max-steps", ...), or the
        signal; a run killed or diverged has none (`charrnn runs` reads it)."""
        signame = signal.Signals(sig.received).name if sig.received else "SIGINT"
        record = {"step": self.step, "epoch": round(self.epoch(), 4),
                  "train_loss": None if self.train_loss is None else round(self.train_loss, 5),
                  "wall_time": round(self.elapsed(), 2),
                  "final": True, "stopped_by": stop or signame}
        if self.step > self.saved_step or self.last_val is None:
            self._evaluate_and_save(record, write)
        else:
            del record["train_loss"]   # this step's line (written before) already has it
        metrics.write(json.dumps(record) + "\n")

    def _summary(self, stop):
        return {"run_dir": str(self.run_dir), "steps": self.step,
                "epochs": round(self.epoch(), 3), "train_loss": self.train_loss,
                "val_loss": self.last_val, "best_val_loss": self.best_val,
                "minutes": round(self.elapsed() / 60, 2), "chars_per_sec": self.rate,
                "stopped_by": stop, "rank": self.comm.rank, "ranks": self.comm.size}

    def _already_done(self, stop):
        """--resume of a run that had already stopped: say so, change nothing."""
        how = ("a larger --patience (or 0: none)" if stop == "patience" else
               f"a larger --{stop} (or 0: no limit)")
        self.log(f"charrnn: {self.run_dir} already finished at step {self.step} (stopped by "
                 f"{stop}): nothing to do; to train on, resume with {how}")
        return self._summary(stop)

    def _finish(self, stop, sig):
        """The summary dict, or Interrupted; the closing lines of the log."""
        log, train_loss = self.log, self.train_loss
        summary = self._summary(stop)
        if self.comm.interrupted(sig):
            raise Interrupted(sig.received or signal.SIGINT,
                              f"interrupted at step {self.step}; checkpoint saved in {self.run_dir}\n"
                              f"resume with: {dist.resume_command(self.comm.size, self.run_dir)}")
        done = (f"charrnn: done after {plural(self.step, 'step')} ({summary['epochs']} epochs, "
                f"{summary['minutes']} min): ")
        if self.last_val is None:
            log(done + f"train loss {train_loss or float('nan'):.4f} (no validation)")
        else:
            log(done + f"val loss {self.last_val:.4f} nats/char "
                f"({self.last_val / math.log(2):.3f} bits/char), best {self.best_val:.4f} "
                f"at step {self.best_step} (best.safetensors)")
        if stop == "patience":
            log(f"charrnn: stopped early: no better validation loss in "
                f"{plural(self.cfg.patience, 'evaluation')} (--patience)")
        log(f"charrnn: sample with: charrnn sample {self.run_dir}")
        return summary

    # ---- evaluation ---------------------------------------------------------------------

    def evaluate(self):
        """Mean val loss per held-out character (no dropout); None without validation.
        Every rank scores the whole held-out part (the same weights: the same number)."""
        return None if self.heldout is None else self.heldout.mean_loss(self.model)

    def _evaluate_and_save(self, record, write, metrics=None):
        """Validate (if there is a held-out part), make a sample and measure how much of it
        is copied from the training text, write the step's metrics line (if `metrics`),
        save, then show them. Without validation every save is the best."""
        t0 = time.perf_counter()
        val = self.evaluate()
        if val is not None and not val <= diverge_bound(len(self.model.vocab)):
            self._diverged(self.step, f"validation loss {val}")   # before saving these weights
        improved = val is None or val < self.best_val
        if val is not None:
            self.last_val = val
            record["val_loss"] = round(val, 5)
            record["val_bpc"] = round(val / math.log(2), 4)
            if improved:
                self.best_val, self.best_step, self.bad_evals = val, self.step, 0
            else:
                self.bad_evals += 1
        try:
            shown = self.preview.make(self.step) if self.comm.is_root else None
        except ImportError:
            shown = None
        if shown is not None:
            text, copy, said = shown
            record.update(copy)
            # kept for `charrnn report` (watch the model learn); quiet runs too
            line = {"step": self.step, "epoch": round(self.epoch(), 4),
                    "val_loss": record.get("val_loss"), "temperature": 0.8, "text": text,
                    **copy}
            try:
                with open(self.samples_path, "a") as f:
                    f.write(json.dumps(line) + "\n")
            except OSError:
                pass   # a lost sample is not worth stopping the run (checkpoints are saved)
        if metrics is not None:
            self._write_line(record, metrics)
        self.checkpoints.save(self.elapsed(), improved)
        head = f"step {self.step} (epoch {self.epoch():.2f}): "
        if val is None:
            write(head + f"train loss {record.get('train_loss') or float('nan'):.4f} (no validation)")
        else:
            write(head + f"val loss {val:.4f} nats/char = {val / math.log(2):.3f} bits/char"
                  + (" (best)" if improved else f" (best {self.best_val:.4f} at step {self.best_step})"))
        if shown is not None and not self.quiet:
            write("  | " + text.replace("\n", "\n  | "))
            write("  " + said)
        return time.perf_counter() - t0
