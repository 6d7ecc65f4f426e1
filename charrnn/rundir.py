"""Run directories: where a run lives, finding the newest, refusing to overwrite one, and
turning SIGINT/SIGTERM into a flag the training loop checks between steps."""
import os
import signal
import threading
import time
from pathlib import Path

from . import checkpoint as ckpt
from . import data
from .errors import CheckpointError, RunDirError

RUNS_ENV = "CHARRNN_RUNS"
METRICS_FILE = "metrics.jsonl"


def runs_root():
    return Path(os.environ.get(RUNS_ENV, "charrnn-runs"))


def default_run_dir(corpus_path):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return runs_root() / f"{Path(corpus_path).stem}-{stamp}"


def latest_run(root=None):
    """The run directory under root whose model.safetensors is newest, or None."""
    root = Path(root) if root is not None else runs_root()
    if not root.is_dir():
        return None
    runs = [p for p in root.iterdir() if (p / ckpt.MODEL_FILE).is_file()]
    return max(runs, key=lambda p: (p / ckpt.MODEL_FILE).stat().st_mtime, default=None)


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


def _remove_if_unused(run_dir):
    """A run that failed before its first checkpoint leaves no directory behind (only
    one that this run created, and only the files a run writes)."""
    if (run_dir / ckpt.STATE_FILE).exists():
        return
    for name in ("corpus.npy", "corpus.json", METRICS_FILE, ckpt.LOCK_FILE):
        try:
            (run_dir / name).unlink()
        except OSError:
            pass
    try:
        run_dir.rmdir()   # fails, harmlessly, if anything else is in it
    except OSError:
        pass


def _open_run(corpus, out, resume):
    """-> (run directory, saved TrainingState or None), refusing to overwrite a run."""
    if resume:
        run_dir = Path(out) if out is not None else latest_run()
        if run_dir is None:
            raise RunDirError(f"--resume: no run found under {runs_root()}; pass --out DIR")
        state_path = run_dir / ckpt.STATE_FILE
        if not state_path.is_file():
            raise RunDirError(f"--resume: {run_dir} holds no training state ({ckpt.STATE_FILE}); "
                              "start a new run instead")
        saved = ckpt.load_state(state_path)
        if "train_config" not in saved.meta or "corpus" not in saved.meta:
            raise CheckpointError(f"cannot resume from {state_path}: it lacks the run's options")
        if corpus is not None and Path(corpus).resolve() != Path(saved.meta["corpus"]).resolve():
            raise RunDirError(f"--resume: {run_dir} was trained on {saved.meta['corpus']}, not {corpus}")
        return run_dir, saved
    if corpus is not None:
        p = Path(corpus)
        if not p.exists():
            raise data.CorpusError(f"no such file: {p}")
    run_dir = Path(out) if out is not None else default_run_dir(corpus or "tinyshakespeare")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--out {run_dir} exists and is not a directory")
    if run_dir.is_dir() and any((run_dir / f).exists() for f in (ckpt.STATE_FILE, ckpt.MODEL_FILE)):
        raise RunDirError(f"{run_dir} already holds a run: pass --resume to continue it, "
                          "or choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise RunDirError(f"cannot write to run directory {run_dir}: {e.strerror or e}") from None
    return run_dir, None
