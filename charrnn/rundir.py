"""The run directory: its file names, the lock, atomic writes, finding and opening runs.

    model.safetensors   latest weights (PyTorch names; what `charrnn sample` loads)
    best.safetensors    weights with the best validation loss so far
    state.safetensors   everything needed to continue exactly (charrnn.checkpoint)
    metrics.jsonl       one JSON line per step
    corpus.npy/.json    the encoded corpus, memory-mapped (reused on --resume)
    charrnn.lock        held while a `charrnn train` runs in the directory

Every file is written through atomic_write (temp file in the same directory, fsync,
os.replace, fsync of the directory), so a process killed at any instant leaves the
previous file in place. Temp files of killed writers are removed when a run takes the
lock. What goes into the files is charrnn.checkpoint's business; where they are and who
may write them is this module's.
"""
import errno
import os
import re
import secrets
import time
from pathlib import Path

from .errors import RunDirError

try:
    import fcntl
except ImportError:  # Windows: RunLock only records the pid there (see RunLock)
    fcntl = None

RUNS_ENV = "CHARRNN_RUNS"          # root of the default run directories
MODEL_FILE = "model.safetensors"   # latest model in a run directory
BEST_FILE = "best.safetensors"     # model with the best validation loss so far
STATE_FILE = "state.safetensors"   # training state, to resume
METRICS_FILE = "metrics.jsonl"     # one JSON line per step
SAMPLES_FILE = "samples.jsonl"     # the sample written at each evaluation
LOCK_FILE = "charrnn.lock"         # held by the `charrnn train` using the directory
_TMP_SUFFIX = ".charrnn-tmp"       # temp files: .<name>.<pid>.<random>.charrnn-tmp


# --------------------------------------------------------------------------- finding runs

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
    runs = [p for p in root.iterdir() if (p / MODEL_FILE).is_file()]
    return max(runs, key=lambda p: (p / MODEL_FILE).stat().st_mtime, default=None)


def open_run(corpus, out, resume):
    """-> (run directory, saved TrainingState or None), refusing to overwrite a run."""
    from . import checkpoint, data
    from .errors import CheckpointError

    if resume:
        run_dir = Path(out) if out is not None else latest_run()
        if run_dir is None:
            raise RunDirError(f"--resume: no run found under {runs_root()}; pass --out DIR")
        state_path = run_dir / STATE_FILE
        if not state_path.is_file():
            raise RunDirError(f"--resume: {run_dir} holds no training state ({STATE_FILE}); "
                              "start a new run instead")
        saved = checkpoint.load_state(state_path)
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
    if run_dir.is_dir() and any((run_dir / f).exists() for f in (STATE_FILE, MODEL_FILE)):
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


def remove_if_unused(run_dir):
    """A run that failed before its first checkpoint leaves no directory behind (only
    one that this run created, and only the files a run writes)."""
    if (run_dir / STATE_FILE).exists():
        return
    for name in ("corpus.npy", "corpus.json", METRICS_FILE, SAMPLES_FILE, LOCK_FILE):
        try:
            (run_dir / name).unlink()
        except OSError:
            pass
    try:
        run_dir.rmdir()   # fails, harmlessly, if anything else is in it
    except OSError:
        pass


# --------------------------------------------------------------------------- atomic writes

def atomic_write_bytes(path, data):
    """Replace `path` by `data` atomically (see atomic_write)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path, write):
    """Replace `path` by what write(f) writes to the binary file f, so that a crash at
    any instant leaves either the old or the new file: write a temp file in the same
    directory, fsync it, os.replace it over `path`, fsync the directory. Raises
    RunDirError (the old file intact, the temp file removed) if any step fails, e.g. a
    full disk or a read-only directory."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}."
                                  f"{secrets.token_hex(4)}{_TMP_SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
    except OSError as e:
        raise RunDirError(f"cannot write {path}: {_reason(e)}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # KeyboardInterrupt too: never leave the temp file
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise RunDirError(f"cannot write {path}: {_reason(e)} "
                              f"(the previous file is unchanged)") from e
        raise
    _fsync_dir(directory, path)


def _fsync_dir(directory, path):
    # On POSIX the rename itself is durable only once the directory is synced.
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        # Some file systems cannot sync a directory; the write itself succeeded.
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES,
                           errno.EPERM):
            raise RunDirError(f"wrote {path} but could not sync {directory}: "
                              f"{_reason(e)}") from e


def _reason(e):
    return e.strerror or str(e)


def remove_stale_temps(directory):
    """Delete temp files left by atomic_write_bytes in processes that were killed
    (their pid, part of the name, no longer runs). Returns the names removed."""
    removed = []
    pattern = re.compile(r"\..+\.([0-9]+)\.[0-9a-f]+" + re.escape(_TMP_SUFFIX))
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m and not _pid_alive(int(m.group(1))):
            try:
                os.unlink(os.path.join(directory, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):
        return True   # exists but not ours (EPERM), or cannot tell: keep the file
    return True


# --------------------------------------------------------------------------- lock

class RunLock:
    """Exclusive lock on a run directory for the life of one `charrnn train`.

        with RunLock(run_dir):
            ...train, writing checkpoints into run_dir...

    flock(LOCK_EX | LOCK_NB) on run_dir/charrnn.lock, which holds the owner's pid. The
    OS drops the lock when its process dies, so a lock file left by a killed process
    never blocks. The file is never deleted: unlinking a flock file lets two processes
    lock two different inodes. Also clears temp files of dead writers. On systems
    without fcntl (Windows) it only records the pid and excludes nothing.
    """

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd = None

    def acquire(self):
        if self._fd is not None:
            raise RunDirError(f"{self.run_dir} is already locked by this RunLock")
        if not self.run_dir.is_dir():
            raise RunDirError(f"run directory {self.run_dir} does not exist")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise RunDirError(f"cannot lock run directory {self.run_dir}: "
                              f"{_reason(e)}") from e
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as e:
            owner = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise RunDirError(f"{self.run_dir} is in use by another charrnn train "
                                  f"(pid {owner}); wait for it to finish or use "
                                  f"another run directory") from None
            raise RunDirError(f"cannot lock run directory {self.run_dir}: "
                              f"{_reason(e)}") from e
        self._fd = fd
        remove_stale_temps(self.run_dir)
        return self

    def release(self):
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)   # before unlocking, so no one reads a stale pid
        except OSError:
            pass
        os.close(fd)              # closing the last descriptor releases the flock

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_pid(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return "unknown"
    return text if text.isdigit() else "unknown"
