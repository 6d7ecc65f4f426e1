"""The run directory: its file names, the lock, atomic writes, finding and opening runs.

    model.safetensors   latest weights (PyTorch names; what `charrnn sample` loads)
    best.safetensors    weights with the best validation loss so far
    state.safetensors   everything needed to continue exactly (charrnn.io.checkpoint)
    metrics.jsonl       one JSON line per step
    corpus.npy/.json    the encoded corpus, memory-mapped (reused on --resume)
    documents.npy       with --docs: a fingerprint of every document (sample --novel)
    charrnn.lock        held while a `charrnn train` runs in the directory

Every file is written through atomic_write (temp file in the same directory, fsync,
os.replace, fsync of the directory), so a process killed at any instant leaves the
previous file in place. Temp files of killed writers are removed when a run takes the
lock. What goes into the files is charrnn.io.checkpoint's business; where they are and who
may write them is this module's.
"""
import errno
import os
import time
from pathlib import Path

from charrnn.errors import CheckpointError, RunDirError
from charrnn.io.files import reason, remove_stale_temps

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
REPORT_FILE = "report.html"        # written by `charrnn report`
CORPUS_FILES = ("corpus.npy", "corpus.json")   # the encoded corpus (charrnn.data.corpus)
DOCUMENTS_FILE = "documents.npy"   # --docs: the documents' fingerprints (--novel)
# every file a run directory may hold: a directory with anything else is not a run
RUN_FILES = (MODEL_FILE, BEST_FILE, STATE_FILE, METRICS_FILE, SAMPLES_FILE, LOCK_FILE,
             REPORT_FILE, DOCUMENTS_FILE, *CORPUS_FILES)


# --------------------------------------------------------------------------- finding runs

def runs_root():
    return Path(os.environ.get(RUNS_ENV, "charrnn-runs"))


def default_run_dir(corpus_path):
    """The default name of a new run: <root>/<corpus stem>-<YYYYmmdd-HHMMSS> (not created;
    make_default_run_dir creates one that no other process can share)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return runs_root() / f"{Path(corpus_path).stem}-{stamp}"


def make_default_run_dir(corpus_path):
    """Create a new default run directory and return it: <stem>-<time>, or <stem>-<time>-2,
    -3, ... when that name is taken (two runs started in the same second). os.mkdir
    either creates the directory or fails, so two processes never get the same one."""
    base = default_run_dir(corpus_path)
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"cannot find a free run directory name like {base}: choose one with --out")


def latest_run(root=None):
    """The run directory under root whose model.safetensors is newest, or None."""
    root = Path(root) if root is not None else runs_root()
    if not root.is_dir():
        return None
    runs = [p for p in root.iterdir() if (p / MODEL_FILE).is_file()]
    return max(runs, key=lambda p: (p / MODEL_FILE).stat().st_mtime, default=None)


def find_checkpoint(path, best=False):
    """The model file to load for `path`: a .safetensors file itself, or in a run
    directory its model.safetensors (best.safetensors if best). -> Path."""
    p = Path(path)
    if p.is_dir():
        name = BEST_FILE if best else MODEL_FILE
        if (p / name).is_file():
            return p / name
        if best and (p / MODEL_FILE).is_file():
            raise CheckpointError(f"no {BEST_FILE} in {p}: it is written after the "
                                  f"first validation; use {MODEL_FILE} instead (--latest)")
        raise CheckpointError(f"no checkpoint in {p}: run `charrnn train` first")
    if p.is_file():
        if p.suffix != ".safetensors":
            raise CheckpointError(f"{p} is not a .safetensors checkpoint: pass a run "
                                  f"directory or a .safetensors file")
        return p
    raise CheckpointError(f"no such checkpoint or run directory: {p}")


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
                              f"{reason(e)}") from e
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
                              f"{reason(e)}") from e
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
