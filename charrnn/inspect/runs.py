"""Runs on disk: what each run directory holds, read without loading any weights.

    for r in charrnn.runs():            # the runs under charrnn-runs/ ($CHARRNN_RUNS)
        print(r.name, r.state, r.best_val_loss)

A run's state is one of
    running      a `charrnn train` holds the directory's lock (checked with the OS:
                 /proc/locks on Linux, else whether the pid in the lock file is alive)
    finished     the last line of metrics.jsonl is the "final" line of a run that
                 stopped at its budget (stopped_by max-steps, max-epochs, max-minutes)
                 or early (patience)
    interrupted  anything else: stopped by Ctrl-C/SIGTERM (resumable), or killed,
                 crashed or diverged before it could write a final line

Only the safetensors *headers* are read (a few kB), so listing a hundred runs of big
models is instant; metrics.jsonl is read whole (one short line per step).
"""
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from charrnn.io import safetensors_file as stfile
from charrnn.errors import RunDirError
from charrnn.io.rundir import (LOCK_FILE, METRICS_FILE, MODEL_FILE, SAMPLES_FILE, STATE_FILE,
                               runs_root)

BUDGETS = ("max-steps", "max-epochs", "max-minutes")
STOPS = (*BUDGETS, "patience")   # a run that stopped on its own: finished
STATES = ("running", "finished", "interrupted")


@dataclass
class Run:
    path: Path
    name: str                              # directory name (relative to the root listed)
    state: str                             # one of STATES
    stopped_by: Optional[str] = None       # max-steps/... or SIGINT/SIGTERM, if recorded
    pid: Optional[int] = None              # of the trainer, while running
    corpus: Optional[str] = None           # the text file it trains on (several: a label)
    corpus_name: Optional[str] = None      # short: the file's name, "notes/ (12 files)"
    cell: Optional[str] = None
    layers: Optional[int] = None
    hidden: Optional[int] = None
    embed: Optional[int] = None
    vocab_size: Optional[int] = None
    steps: int = 0
    epochs: float = 0.0
    chars_seen: int = 0                    # steps * batch size * sequence length
    train_loss: Optional[float] = None     # of the last step
    val_loss: Optional[float] = None       # of the last evaluation, nats/char
    best_val_loss: Optional[float] = None  # nats/char
    wall_minutes: float = 0.0
    updated: float = 0.0                   # time of the last write (seconds since epoch)
    parent: Optional[dict] = None          # fine-tuned (--init): run, checkpoint, sha256, step
    task: str = "lm"                       # lm, classify or seq2seq (--task)
    val_accuracy: Optional[float] = None   # classify: of the last evaluation
    val_ter: Optional[float] = None        # seq2seq: token error rate, last evaluation
    config: dict = field(default_factory=dict, repr=False)   # the training options

    @property
    def best_val_bpc(self):
        if self.task != "lm":   # a classifier's loss is per text, not per character
            return None
        return None if self.best_val_loss is None else self.best_val_loss / math.log(2)

    @property
    def model(self):
        """'GRU 2x256' (or '?')."""
        if self.cell is None:
            return "?"
        bi = "Bi" if self.task == "classify" else ""
        return f"{bi}{self.cell.upper()} {self.layers}x{self.hidden}"

    @property
    def parent_name(self):
        """The run it was fine-tuned from, short: its directory's name ('base'), or
        'base/model.safetensors' when a file was named; None for a run from scratch."""
        if not self.parent or not self.parent.get("run"):
            return None
        run = Path(self.parent["run"])
        return f"{run.parent.name}/{run.name}" if run.suffix == ".safetensors" else run.name

    def to_json(self):
        d = asdict(self)
        d["path"] = str(self.path)
        d["best_val_bpc"] = self.best_val_bpc
        d["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.updated))
        return d


def is_run_dir(path):
    p = Path(path)
    return p.is_dir() and any((p / f).is_file() for f in
                              (METRICS_FILE, STATE_FILE, MODEL_FILE))


def runs(root=None):
    """The runs under root (default: charrnn-runs/ or $CHARRNN_RUNS), oldest first; root
    may also be one run directory. [] if there are none (or root does not exist)."""
    root = Path(root) if root is not None else runs_root()
    if is_run_dir(root):
        return [read_run(root)]
    if not root.is_dir():
        return []
    found = [read_run(p) for p in sorted(root.iterdir()) if is_run_dir(p)]
    return sorted(found, key=lambda r: r.updated)


def read_run(path):
    """A Run for one run directory. RunDirError if it is not one."""
    p = Path(path)
    if not is_run_dir(p):
        raise RunDirError(f"{p} is not a run directory (no {METRICS_FILE}, "
                          f"{STATE_FILE} or {MODEL_FILE} in it)")
    records = read_jsonl(p / METRICS_FILE)
    state_meta = header_json(p / STATE_FILE, "meta") or {}
    model_config = header_json(p / MODEL_FILE, "config") or {}
    info = header_json(p / MODEL_FILE, "info") or {}
    tcfg = state_meta.get("train_config") or {}
    corpus = state_meta.get("corpus")
    run = Run(path=p, name=p.name, state="interrupted", config=tcfg, corpus=corpus,
              parent=state_meta.get("parent") or info.get("parent"),
              corpus_name=state_meta.get("corpus_name") or (Path(corpus).name if corpus
                                                            else None))
    for key in ("cell", "layers", "hidden", "embed", "vocab_size"):
        setattr(run, key, model_config.get(key, tcfg.get(key)))
    run.task = tcfg.get("task") or "lm"
    accs = [r["val_accuracy"] for r in records if r.get("val_accuracy") is not None]
    run.val_accuracy = accs[-1] if accs else info.get("val_accuracy")
    ters = [r["val_ter"] for r in records if r.get("val_ter") is not None]
    run.val_ter = ters[-1] if ters else info.get("val_ter")
    steps = [r for r in records if "train_loss" in r and "lr" in r]
    vals = [r["val_loss"] for r in records if r.get("val_loss") is not None]
    last = records[-1] if records else {}
    run.steps = int(last.get("step", info.get("step", 0)))
    run.epochs = float(last.get("epoch", info.get("epoch", 0.0)))
    run.train_loss = steps[-1]["train_loss"] if steps else None
    run.val_loss = vals[-1] if vals else info.get("val_loss")
    run.best_val_loss = min(vals) if vals else info.get("best_val_loss")
    run.wall_minutes = float(last.get("wall_time", 0.0)) / 60
    if tcfg.get("batch_size") and tcfg.get("seq_len") and run.task == "lm":
        run.chars_seen = run.steps * tcfg["batch_size"] * tcfg["seq_len"]
    run.updated = max((q.stat().st_mtime for q in (p / METRICS_FILE, p / STATE_FILE, p)
                       if q.exists()), default=0.0)
    run.pid = lock_owner(p)
    run.state, run.stopped_by = _state(records, run.pid, tcfg)
    return run


def _state(records, pid, tcfg):
    """-> (state, stopped_by) from the lock and the last metrics line."""
    if pid is not None:
        return "running", None
    last = records[-1] if records else {}
    if not last.get("final"):
        return "interrupted", None          # killed, crashed or diverged mid-run
    why = last.get("stopped_by")
    if why is None:
        # A run from before charrnn recorded why it stopped: did it reach a budget?
        why = _budget_reached(last, tcfg)
    return ("finished" if why in STOPS else "interrupted"), why


def _budget_reached(last, tcfg):
    if tcfg.get("max_steps") and last.get("step", 0) >= tcfg["max_steps"]:
        return "max-steps"
    if tcfg.get("max_epochs") and last.get("epoch", 0) >= tcfg["max_epochs"] - 1e-3:
        return "max-epochs"
    # the trainer stops one evaluation early rather than overrun: allow 10%
    if tcfg.get("max_minutes") and last.get("wall_time", 0) >= 0.9 * 60 * tcfg["max_minutes"]:
        return "max-minutes"
    return None


def read_jsonl(path):
    """The JSON objects of a .jsonl file; [] if absent. A line being written by a
    running trainer (or cut by a crash) is skipped, not an error."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise RunDirError(f"cannot read {path}: {e.strerror or e}") from None
    out = []
    for line in text.splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and isinstance(r.get("step"), int):
            out.append(r)
    return out


def read_metrics(path):
    """metrics.jsonl of a run directory: a list of dicts, one per line."""
    return read_jsonl(Path(path) / METRICS_FILE)


def read_samples(path):
    """samples.jsonl of a run directory: [{step, epoch, val_loss, temperature, text}]."""
    return read_jsonl(Path(path) / SAMPLES_FILE)


def header_json(path, key):
    """One JSON value of a charrnn safetensors file's metadata, reading only its header
    (bounded and checked by charrnn.io.safetensors_file); None if absent or unreadable."""
    try:
        with open(path, "rb") as f:
            header, _ = stfile.read_header(f, os.fstat(f.fileno()).st_size)
        return json.loads(header.get("__metadata__", {})[key])
    except (OSError, stfile.Corrupt, KeyError, ValueError, TypeError):
        return None


# ---- is a trainer running? ---------------------------------------------------------------

def lock_owner(run_dir):
    """The pid of the `charrnn train` holding run_dir's lock, or None.

    RunLock writes its pid into charrnn.lock and truncates the file on release; a
    killed trainer leaves its pid behind, and the pid may since belong to another
    process, so a pid alone proves nothing: on Linux the kernel's table of flocks
    (/proc/locks) says whether that file is really locked."""
    path = Path(run_dir) / LOCK_FILE
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
        inode = path.stat().st_ino
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    held = _flock_held(inode)
    if held is None:
        held = _pid_alive(pid)
    return pid if held else None


def _flock_held(inode):
    """True/False: whether /proc/locks lists a FLOCK on this inode; None if unknown."""
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 00:2f:123456 0 EOF" ("->" marks waiters)
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue
        if parts[5].rsplit(":", 1)[-1] == str(inode):
            return True
    return False


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


# ---- the table `charrnn runs` prints ------------------------------------------------------

def format_table(found):
    """The runs as an aligned text table (one header line, one line per run). A
    "from" column names the run each was fine-tuned from, when any was; "task" and
    "val acc" columns appear when any run is a classifier (--task classify), "val TER"
    when any is a transducer (--task seq2seq)."""
    head = ["run", "corpus", "model", "steps", "epochs", "best val", "bits/char",
            "state", "updated"]
    parents = any(r.parent_name for r in found)
    tasks = any(r.task != "lm" for r in found)
    ters = any(r.task == "seq2seq" for r in found)
    if parents:
        head.insert(3, "from")
    if tasks:
        head.insert(2, "task")
        head.insert(head.index("bits/char") + 1, "val acc")
    if ters:
        head.insert(head.index("val acc") + 1, "val TER")
    rows = [head]
    for r in found:
        row = [
            r.name, r.corpus_name or "?", r.model, f"{r.steps:,}",
            f"{r.epochs:.2f}",
            "-" if r.best_val_loss is None else f"{r.best_val_loss:.4f}",
            "-" if r.best_val_bpc is None else f"{r.best_val_bpc:.3f}",
            r.state + (f" (pid {r.pid})" if r.state == "running" else ""),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r.updated)),
        ]
        if parents:
            row.insert(3, r.parent_name or "-")
        if tasks:
            row.insert(2, r.task)
            row.insert(head.index("val acc"),
                       "-" if r.val_accuracy is None else f"{r.val_accuracy:.4f}")
        if ters:
            row.insert(head.index("val TER"), "-" if r.val_ter is None else f"{r.val_ter:.4f}")
        rows.append(row)
    right = {i for i, h in enumerate(head) if h in ("steps", "epochs", "best val",
                                                    "bits/char", "val acc", "val TER")}
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    return "\n".join(lines)
