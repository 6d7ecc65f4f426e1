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
the hooks are calls on comm (charrnn.training.distributed), all no-ops for one process.
The steps themselves are charrnn.training.trainer's.
"""
import os
import signal
import threading
from dataclasses import fields, replace
from pathlib import Path

from charrnn.nn import cells, precision
from charrnn.data import corpus as data
from charrnn.data import sources
from charrnn.data.several import FileSet
from charrnn.training import distributed as dist
from charrnn.training import finetune
from charrnn.training.options import RESUME_OVERRIDABLE, TASK_OPTIONS, TrainConfig
from charrnn.training.progress import Output
from charrnn.training.run_start import open_run, remove_if_unused
from charrnn.io.rundir import STATE_FILE, RunLock
from charrnn.errors import CharRNNError, ConfigError
from charrnn.training.schedule import anneal_factor
from charrnn.training.trainer import Interrupted, Trainer
from charrnn.training.classify_run import ClassifierTrainer
from charrnn.training.classify_run import check_options as check_classify_options
from charrnn.training.seq2seq_run import Seq2SeqTrainer
from charrnn.training.seq2seq_run import check_options as check_seq2seq_options


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


def train(corpus=None, *, out=None, resume=False, init=None, threads=None, quiet=False,
          log=None, progress=None, distributed=None, **options):
    """Train a model; returns a summary dict. What `charrnn train` calls.

    corpus: a text file (default: the bundled Tiny Shakespeare), "-" (standard input), or
    several files: a folder (its files, recursively, in sorted path order), a pattern
    ("notes/*.md") or a list of paths, joined into one text (charrnn.data.several); with
    docs="lines" or "files" the text is read as documents. out: the run directory
    (default: charrnn-runs/<corpus>-<time>; $CHARRNN_RUNS changes the root). resume:
    continue the run in `out` (or, without `out`, the newest run). init: fine-tune from
    the weights of another run (its directory: best.safetensors, else model.safetensors;
    or a .safetensors file), keeping its architecture (charrnn.training.finetune); a
    resumed run continues from its own checkpoint. options: the fields of TrainConfig.
    threads: BLAS threads (default: all cores). log: a function taking
    one line of text (default: stderr, silent when quiet). progress: a function called
    after every step with that step's metrics dict (as written to metrics.jsonl).
    distributed: data-parallel over MPI (None: when an MPI launcher started more than one
    rank; see charrnn.training.distributed). Then log, progress and files are rank 0's only.
    """
    if log is None:
        log = (lambda s: None) if quiet else Output().line   # a closed stderr stops no run
    unknown = set(options) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    if threads is not None and threads < 1:
        raise ConfigError("--threads must be at least 1")
    comm = dist.connect(distributed)
    if options.get("task") in ("classify", "seq2seq") and not resume:
        _check_classify(corpus, init, comm, options["task"])
        (check_classify_options if options["task"] == "classify" else
         check_seq2seq_options)(options)
    for k, tasks in TASK_OPTIONS.items():
        if options.get(k) is not None and options.get("task") not in tasks and not resume:
            raise ConfigError(f"--{k.replace('_', '-')} is for --task {' or '.join(tasks)}")
    if not comm.is_root:
        quiet, log, progress = True, (lambda s: None), None
    try:
        corpus = sources.resolve(corpus)   # one file, or a FileSet of several
        base = None
        if init is not None and not resume:   # a bad RUN stops here: no directory made yet
            base = finetune.load_base(init)
            options = finetune.base_options(options, base, log)
        made = {}   # whether rank 0 created the directory (decided by its mkdir)

        def start():
            run_dir, saved, made["created"] = open_run(corpus, out, resume)
            return run_dir, saved
        run_dir, saved = dist.open_run_on_root(comm, start)
        try:
            if saved is not None:
                finetune.check_resume(init, saved.meta, run_dir)
            return _train_in(comm, run_dir, saved, corpus, options, threads, quiet, log,
                             progress, base)
        except BaseException:
            if saved is None and comm.is_root:
                remove_if_unused(run_dir, made["created"])
            raise
    except (CharRNNError, Interrupted) as e:
        raise e if comm.is_root else dist.mark_quiet(e)


def _train_in(comm, run_dir, saved, corpus, options, threads, quiet, log, progress, base):
    from threadpoolctl import threadpool_limits

    if saved is not None:
        meta = saved.meta
        cfg_dict = dict(meta["train_config"])
        cfg_dict.setdefault("precision", "fp32")   # a run from before --precision: float32
        for k, v in options.items():
            if k in RESUME_OVERRIDABLE:
                if k != "eval_every" and v != cfg_dict.get(k) and meta.get("anneal_steps"):
                    # a new budget mid-anneal: a new window, from the lr where it is
                    meta["anneal_from"] = anneal_factor(meta["anneal_steps"], meta["step"])
                    meta["anneal_steps"] = None
                cfg_dict[k] = v
            elif v != cfg_dict.get(k):
                log(f"charrnn: note: --{k.replace('_', '-')} ignored on --resume (the run uses {cfg_dict.get(k)!r})")
        cfg = TrainConfig(**cfg_dict).validate()
        corpus = corpus if corpus is not None else sources.recorded(meta)   # open_run checked it
    else:
        cfg = TrainConfig(**options).validate()
        corpus = corpus if isinstance(corpus, FileSet) or cfg.task != "lm" else str(
            corpus if corpus is not None else data.bundled_corpus())
    # auto becomes what this machine runs, recorded with the run; bf16 where it cannot run
    # (a resumed bf16 run included) is a ConfigError here, before any work
    cfg = replace(cfg, precision=precision.resolve(cfg.precision, resumed=saved is not None))

    threads = threads or comm.threads_default()   # one process: all cores
    split = threads > 1 and os.environ.get("CHARRNN_THREADING", "split") == "split"
    # Either our threads split every kernel pass (BLAS single-threaded), or BLAS threads
    # each GEMM (then BLAS does every GEMM: charrnn's own sgemm is single-threaded);
    # see bench/ for which is faster.
    gemm = "blas" if threads > 1 and not split else cells.current_gemm_backend()
    if comm.size > 1:
        log(f"charrnn: {threads} thread{'s' * (threads > 1)} per rank")
    trainer = None
    try:
        with dist.RootLock(comm, RunLock, run_dir), \
                threadpool_limits(limits=1 if split else threads), \
                cells.gemm_backend(gemm), _Signals() as sig:
            if cfg.task in ("classify", "seq2seq"):
                _check_classify(corpus, init=None, comm=comm, task=cfg.task)
                trainer = (ClassifierTrainer if cfg.task == "classify" else Seq2SeqTrainer)(
                    cfg, corpus, run_dir, saved, log, quiet, progress)
            else:
                trainer = Trainer(cfg, corpus, run_dir, saved, log, quiet, progress, comm, base)
            if split:
                trainer.model.parallel = cells.Parallel(threads)
            try:
                return trainer.run(sig)
            finally:
                if trainer.model.parallel is not None:
                    trainer.model.parallel.close()
    except KeyboardInterrupt:   # a second Ctrl-C, in a step or while stopping after the first
        raise _interrupted_again(comm, run_dir, trainer) from None


def _check_classify(corpus, init, comm, task="classify"):
    """What --task classify or seq2seq cannot take, before any directory is made."""
    lines = "label<TAB>text" if task == "classify" else "source<TAB>target"
    if corpus is None:
        raise ConfigError(f"--task {task} needs FILE: a TSV file of {lines} lines")
    if isinstance(corpus, (FileSet, list, tuple)):
        raise ConfigError(f"--task {task} reads one TSV file ({lines} lines), not several")
    if sources.is_stream(corpus):
        raise ConfigError(f"--task {task} reads a TSV file, not a pipe or standard input "
                          "(a resumed run reads it again)")
    if init is not None:
        raise ConfigError(f"--init (fine-tuning) is for language models; not with --task {task}")
    if comm.size > 1:
        raise ConfigError(f"--task {task} trains in one process: run it without mpiexec")


def _interrupted_again(comm, run_dir, trainer):
    """Interrupted for a second Ctrl-C: what was last saved, and how to resume (if
    anything was: a new run without a checkpoint is removed)."""
    at = f" at step {trainer.step}" if trainer is not None else ""
    if not (Path(run_dir) / STATE_FILE).is_file():
        return Interrupted(signal.SIGINT, f"interrupted{at}, before the first checkpoint: "
                           "nothing was saved")
    saved = f" (step {trainer.saved_step})" if trainer is not None else ""
    return Interrupted(signal.SIGINT,
                       f"interrupted again{at}; the last checkpoint{saved} in {run_dir} is "
                       f"intact\nresume with: {dist.resume_command(comm.size, run_dir)}")
