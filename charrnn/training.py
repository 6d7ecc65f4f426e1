"""The training loop: truncated BPTT over parallel streams, crash-safe and resumable.

A run directory holds everything about one run:

    model.safetensors   latest weights (PyTorch names; `charrnn sample --latest`)
    best.safetensors    weights with the best validation loss so far (what `charrnn
                        sample` and `charrnn eval` load; every save without validation)
    state.safetensors   everything needed to continue exactly: weights, optimizer
                        moments, step, data cursor, carried hidden state, RNG state
    metrics.jsonl       one JSON line per step (val_loss on evaluation steps); the last
                        line ("final") says why the run stopped ("stopped_by")
    samples.jsonl       the sample generated at each evaluation (step, val_loss, text)
    corpus.npy/.json    the encoded corpus, memory-mapped (reused on --resume)
    charrnn.lock        held while a `charrnn train` runs in the directory

Every file is written atomically, so killing the process at any instant leaves the
previous checkpoint loadable. A resumed run produces the same per-step losses as an
uninterrupted one (same seed, same thread count): the state file is written as a
whole at a step boundary and holds every bit of state the next step reads.

Under `mpiexec -n N` the same loop runs on every rank over its block of the streams;
the hooks are calls on self.comm (charrnn.distributed), all no-ops for one process.
"""
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path

from . import cells, data, optim
from . import distributed as dist
from . import heldout
from .config import RESUME_OVERRIDABLE, TrainConfig  # noqa: F401
from .rundir import (METRICS_FILE, RUNS_ENV, SAMPLES_FILE, RunLock, atomic_write_bytes,  # noqa: F401
                     default_run_dir, latest_run, open_run, remove_if_unused, runs_root)
from .errors import CharRNNError, ConfigError, DivergenceError
from .model import CharRNN, ModelConfig, StreamMasks
from .trainstate import Checkpointing


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; the loop saved and stopped. .signum says which; the
    message says where the checkpoint is and how to resume."""

    def __init__(self, signum, message):
        super().__init__(message)
        self.signum = signum


class _Signals:
    """Turn SIGINT/SIGTERM into a flag the loop checks between steps (a second Ctrl-C
    still interrupts at once, but never while a checkpoint is being written)."""

    def __init__(self):
        self.received = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def train(corpus=None, *, out=None, resume=False, threads=None, quiet=False, log=None,
          progress=None, distributed=None, **options):
    """Train a model; returns a summary dict. What `charrnn train` calls.

    corpus: a text file (default: the bundled Tiny Shakespeare). out: the run directory
    (default: charrnn-runs/<corpus>-<time>; $CHARRNN_RUNS changes the root). resume:
    continue the run in `out` (or, without `out`, the newest run). options: the fields
    of TrainConfig. threads: BLAS threads (default: all cores). log: a function taking
    one line of text (default: stderr, silent when quiet). progress: a function called
    after every step with that step's metrics dict (as written to metrics.jsonl).
    distributed: data-parallel over MPI (None: when an MPI launcher started more than one
    rank; see charrnn.distributed). Then log, progress and files are rank 0's only.
    """
    if log is None:
        log = (lambda s: None) if quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    unknown = set(options) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    if threads is not None and threads < 1:
        raise ConfigError("--threads must be at least 1")
    comm = dist.connect(distributed)
    if not comm.is_root:
        quiet, log, progress = True, (lambda s: None), None
    try:
        created = out is None or not Path(out).exists()
        run_dir, saved = dist.open_run_on_root(comm, lambda: open_run(corpus, out, resume))
        try:
            return _train_in(comm, run_dir, saved, corpus, options, threads, quiet, log, progress)
        except BaseException:
            if created and saved is None and comm.is_root:
                remove_if_unused(run_dir)
            raise
    except (CharRNNError, Interrupted) as e:
        raise e if comm.is_root else dist.mark_quiet(e)


def _train_in(comm, run_dir, saved, corpus, options, threads, quiet, log, progress):
    from threadpoolctl import threadpool_limits

    if saved is not None:
        meta = saved.meta
        cfg_dict = dict(meta["train_config"])
        for k, v in options.items():
            if k in RESUME_OVERRIDABLE:
                if k != "eval_every" and v != cfg_dict.get(k):
                    meta["anneal_steps"] = None   # a new budget: plan the lr anneal anew
                cfg_dict[k] = v
            elif v != cfg_dict.get(k):
                log(f"note: --{k.replace('_', '-')} ignored on --resume (the run uses {cfg_dict.get(k)!r})")
        cfg = TrainConfig(**cfg_dict).validate()
        corpus = meta["corpus"]
    else:
        cfg = TrainConfig(**options).validate()
        corpus = str(corpus if corpus is not None else data.bundled_corpus())

    threads = threads or comm.threads_default()   # one process: all cores
    split = threads > 1 and os.environ.get("CHARRNN_THREADING", "split") == "split"
    # Either our threads split every kernel pass (BLAS single-threaded), or BLAS threads
    # each GEMM (then BLAS does every GEMM: charrnn's own sgemm is single-threaded);
    # see bench/ for which is faster.
    gemm = "blas" if threads > 1 and not split else cells.current_gemm_backend()
    if comm.size > 1:
        log(f"charrnn: {threads} thread{'s' * (threads > 1)} per rank")
    with dist.RootLock(comm, RunLock, run_dir), threadpool_limits(limits=1 if split else threads), \
            cells.gemm_backend(gemm), _Signals() as sig:
        trainer = _Trainer(cfg, corpus, run_dir, saved, log, quiet, progress, comm)
        if split:
            trainer.model.parallel = cells.Parallel(threads)
        try:
            return trainer.run(sig)
        finally:
            if trainer.model.parallel is not None:
                trainer.model.parallel.close()


class _Trainer(Checkpointing):
    def __init__(self, cfg, corpus, run_dir, saved, log, quiet, progress, comm):
        self.run_dir, self.log, self.quiet = Path(run_dir), log, quiet
        self.comm = comm
        self.corpus_path = str(Path(corpus).resolve())
        # rank 0 writes the encoded corpus into the run directory; the others then read it
        self.corpus = dist.load_corpus_root_first(
            comm, lambda cache: data.load_corpus(corpus, encoding=cfg.encoding, cache_dir=cache,
                                                 errors=cfg.encoding_errors),
            run_dir)
        # the auto options from the corpus and the budget (the same on every rank)
        self.cfg, self.train_batches, self.heldout, choice = heldout.prepare(
            cfg, self.corpus, log, resumed=saved is not None)
        self.auto = choice.auto if saved is None else saved.meta.get("auto", [])
        self.train_ids = self.corpus.ids[:len(self.corpus.ids) - choice.val_chars]
        cfg = self.cfg
        self.lo, self.hi = dist.stream_block(cfg.batch_size, comm.rank, comm.size)   # our streams
        if comm.size > 1:
            log(f"charrnn: data-parallel over {comm.describe()}: {self.hi - self.lo} "
                f"of the {cfg.batch_size} streams per rank")
        vocab = self.corpus.vocab
        mcfg = ModelConfig(cfg.cell, cfg.hidden, cfg.layers, cfg.embed, cfg.dropout,
                           len(vocab), self.corpus.encoding)
        self.model = CharRNN(mcfg, vocab, seed=cfg.seed, forget_bias=cfg.forget_bias)
        self.opt = optim.make(cfg.optimizer, self.model.flat.size)
        self.buf = dist.attach_tail(self.model) if comm.size > 1 else None   # the step's message
        self.state = self.model.init_state(self.hi - self.lo)
        self.step, self.elapsed_before, self.best_val = 0, 0.0, math.inf
        self.anneal_steps = None   # (first, last) step of the final lr decay, once fixed
        self.last_val = None
        self.bad_evals = 0         # evaluations since the best one (for --patience)
        self.best_step = 0
        self.saved_step = 0
        if saved is not None:
            self._restore(saved)
        # rank 0's parameters and optimizer state, at the start and on resume
        comm.sync_arrays([self.model.flat, *self.opt.state.values()])
        self.progress = progress
        self.metrics_path = self.run_dir / METRICS_FILE
        self.samples_path = self.run_dir / SAMPLES_FILE
        for path in (self.metrics_path, self.samples_path):
            self._trim_log(path)

    # ---- loop ------------------------------------------------------------------------

    def _epoch_float(self):
        return self.step / len(self.train_batches)

    def lr(self):
        """lr * lr_decay^epoch, times the anneal factor once annealing has started."""
        lr = self.cfg.lr * self.cfg.lr_decay ** self._epoch_float()
        if self.anneal_steps is not None:
            start, end = self.anneal_steps
            frac = min(1.0, (self.step - start) / max(1, end - start))
            lr *= 1.0 - 0.9 * frac
        return lr

    def _plan(self, elapsed, step_time, eval_cost):
        """Fix the anneal window [start, end) once the run is (1 - anneal) done.

        The end is the step at which the first budget runs out: --max-steps and
        --max-epochs are exact; --max-minutes is estimated from the measured speed. Once
        fixed, the window is saved with the run, so a resumed run anneals identically."""
        c = self.cfg
        if not c.anneal or self.anneal_steps is not None:
            return
        ends = []
        if c.max_steps:
            ends.append(c.max_steps)
        if c.max_epochs:
            ends.append(math.ceil(c.max_epochs * len(self.train_batches)))
        if c.max_minutes and step_time:
            left = c.max_minutes * 60 - elapsed - eval_cost
            evals = left / step_time / c.eval_every               # evaluations still to come
            ends.append(self.step + int(max(0.0, left - evals * eval_cost) / step_time))
        if not ends:
            return
        end = min(ends)
        if self.step >= (1 - c.anneal) * end:
            self.anneal_steps = (self.step, max(end, self.step + 1))

    def evaluate(self):
        """Mean val loss per held-out character (no dropout); None without validation.
        Every rank scores the whole held-out part (the same weights: the same number)."""
        return None if self.heldout is None else self.heldout.mean_loss(self.model)

    def sample_preview(self, length=200):
        from .sample import generate
        m = self.model
        return generate(m.params, m.config, m.vocab, prime="", length=length,
                        temperature=0.8, seed=self.step)

    def _done(self, elapsed, eval_cost):
        c = self.cfg
        if c.max_steps and self.step >= c.max_steps:
            return "max-steps"
        if c.max_epochs and self._epoch_float() >= c.max_epochs:
            return "max-epochs"
        if c.max_minutes and elapsed + eval_cost >= c.max_minutes * 60:
            return "max-minutes"
        if c.patience and self.bad_evals >= c.patience:
            return "patience"
        return None

    def run(self, sig):
        from .progress import Bar

        cfg, model, log = self.cfg, self.model, self.log
        chars_per_step = cfg.batch_size * cfg.seq_len
        spe = len(self.train_batches)
        log(f"charrnn: training a {cfg.layers}x{cfg.hidden} {cfg.cell.upper()} "
            f"({model.flat.size:,} parameters, vocabulary {len(model.vocab)}) on "
            f"{self.corpus_path}: {len(self.corpus.ids):,} characters, {spe} steps per epoch")
        log(f"charrnn: run directory {self.run_dir}")
        bar = Bar(cfg, self.step, self.quiet)
        write = bar.write if not self.quiet else log
        t_start = time.perf_counter()
        elapsed = lambda: self.elapsed_before + time.perf_counter() - t_start
        eval_cost, rate, train_loss, stop, step_time = 0.0, None, None, None, None
        metrics = open(self.metrics_path if self.comm.is_root else os.devnull, "a")
        try:
            while True:
                # time, speed and signals as rank 0 saw them (one process: as they are)
                now = self.comm.clock(elapsed(), step_time, eval_cost)
                stop = self._done(now[0], now[2])
                if stop or self.comm.interrupted(sig):
                    break
                self._plan(*now)
                t0 = time.perf_counter()
                batch = self.train_batches.next()
                if batch.index == 0:
                    self.state = model.init_state(self.hi - self.lo)   # new epoch: fresh state
                model.grad_flat.fill(0)
                # dropout masks keyed by (seed, step, stream): nothing to carry or save
                masks = StreamMasks(cfg.seed + 1, self.step, self.lo) if cfg.dropout > 0 else None
                x, y = batch.x[:, self.lo:self.hi], batch.y[:, self.lo:self.hi]
                loss, new_state = model.forward_backward(x, y, self.state, rng=masks)
                # sum the gradients (and the flags) over the ranks: the global mean loss
                loss = self.comm.step(self.buf, loss, sig.received is not None,
                                      (elapsed(), step_time, eval_cost))
                norm, gscale = optim.clip_scale(model.grad_flat, cfg.grad_clip, self.comm.grad_scale)
                if not (math.isfinite(loss) and math.isfinite(norm)):
                    raise DivergenceError(
                        f"training diverged at step {self.step + 1}: loss {loss}, gradient norm {norm}; "
                        f"the last good checkpoint (step {self.saved_step}) is in {self.run_dir}. "
                        "Try a lower --lr or --grad-clip")
                lr = self.lr()
                self.opt.step(model.flat, model.grad_flat, lr, gscale, parallel=model.parallel)
                self.state = new_state
                self.step += 1
                dt = time.perf_counter() - t0
                step_time = dt if step_time is None else 0.95 * step_time + 0.05 * dt
                rate = chars_per_step / dt if rate is None else 0.9 * rate + 0.1 * chars_per_step / dt
                train_loss = loss
                record = {"step": self.step, "epoch": round(self._epoch_float(), 4),
                          "train_loss": round(loss, 5), "lr": lr, "grad_norm": round(norm, 4),
                          "chars_per_sec": round(rate), "wall_time": round(elapsed(), 2)}
                if self.comm.size > 1:
                    record["allreduce_ms"] = round(self.comm.allreduce_seconds * 1e3, 3)
                if self.step % cfg.eval_every == 0:
                    eval_cost = self._evaluate_and_save(record, elapsed, write)
                metrics.write(json.dumps(record) + "\n")
                if self.progress is not None:
                    self.progress(record)
                bar.update(self.step, self._epoch_float(), elapsed(),
                           {"loss": f"{loss:.3f}",
                            **({} if self.heldout is None else {"val": "-" if self.last_val is None
                                                                else f"{self.last_val:.3f}"}),
                            "chars/s": f"{rate / 1000:.1f}k"})
            # The last line says why the run stopped: a budget ("max-steps", ...), or
            # the signal; a run killed or diverged has none (`charrnn runs` reads it).
            signame = signal.Signals(sig.received).name if sig.received else "SIGINT"
            record = {"step": self.step, "epoch": round(self._epoch_float(), 4),
                      "train_loss": train_loss, "wall_time": round(elapsed(), 2), "final": True,
                      "stopped_by": stop or signame}
            if self.step > self.saved_step or self.last_val is None:
                self._evaluate_and_save(record, elapsed, write)
            else:
                del record["train_loss"]   # this step's line (above) already has it
            metrics.write(json.dumps(record) + "\n")
        finally:
            metrics.close()
            bar.close()
        summary = {"run_dir": str(self.run_dir), "steps": self.step,
                   "epochs": round(self._epoch_float(), 3), "train_loss": train_loss,
                   "val_loss": self.last_val, "best_val_loss": self.best_val,
                   "minutes": round(elapsed() / 60, 2), "chars_per_sec": rate, "stopped_by": stop,
                   "rank": self.comm.rank, "ranks": self.comm.size}
        if self.comm.interrupted(sig):
            raise Interrupted(sig.received or signal.SIGINT,
                              f"interrupted at step {self.step}; checkpoint saved in {self.run_dir}\n"
                              f"resume with: {dist.resume_command(self.comm.size, self.run_dir)}")
        done = (f"charrnn: done after {self.step} steps ({summary['epochs']} epochs, "
                f"{summary['minutes']} min): ")
        if self.last_val is None:
            log(done + f"train loss {train_loss or float('nan'):.4f} (no validation)")
        else:
            log(done + f"val loss {self.last_val:.4f} nats/char "
                f"({self.last_val / math.log(2):.3f} bits/char), best {self.best_val:.4f} "
                f"at step {self.best_step} (best.safetensors)")
        if stop == "patience":
            log(f"charrnn: stopped early: no better validation loss in {cfg.patience} "
                "evaluations (--patience)")
        log(f"charrnn: sample with: charrnn sample {self.run_dir}")
        return summary

    def _evaluate_and_save(self, record, elapsed, write):
        """Validate (if there is a held-out part), save, show a sample and how much of it
        is copied from the training text. Without validation every save is the best."""
        t0 = time.perf_counter()
        val = self.evaluate()
        improved = val is None or val < self.best_val
        if val is not None:
            self.last_val = val
            record["val_loss"] = round(val, 5)
            record["val_bpc"] = round(val / math.log(2), 4)
            if improved:
                self.best_val, self.best_step, self.bad_evals = val, self.step, 0
            else:
                self.bad_evals += 1
        self.save(elapsed(), improved)
        head = f"step {self.step} (epoch {self._epoch_float():.2f}): "
        if val is None:
            write(head + f"train loss {record.get('train_loss') or float('nan'):.4f} (no validation)")
        else:
            write(head + f"val loss {val:.4f} nats/char = {val / math.log(2):.3f} bits/char"
                  + (" (best)" if improved else f" (best {self.best_val:.4f} at step {self.best_step})"))
        try:
            text = self.sample_preview() if self.comm.is_root else None
        except ImportError:
            text = None
        if text is not None:
            record["copied"] = self.copied(text)
            # kept for `charrnn report` (watch the model learn); quiet runs too
            line = {"step": self.step, "epoch": round(self._epoch_float(), 4),
                    "val_loss": record.get("val_loss"), "temperature": 0.8, "text": text,
                    "copied": record["copied"]}
            try:
                with open(self.samples_path, "a") as f:
                    f.write(json.dumps(line) + "\n")
            except OSError:
                pass   # a lost sample is not worth stopping the run (checkpoints are saved)
            if not self.quiet:
                write("  | " + text.replace("\n", "\n  | "))
                write(f"  longest piece of this sample found verbatim in the training text: "
                      f"{record['copied']} of {len(text)} characters")
        return time.perf_counter() - t0

    def copied(self, text):
        from .copylen import copied
        index = {c: i for i, c in enumerate(self.model.vocab)}
        ids = [index[c] for c in text if c in index]
        return copied(ids, self.train_ids, len(index))
