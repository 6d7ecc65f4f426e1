"""Where a training run starts: its directory (new, or the saved state of one to
resume), and its options filled in for the corpus, which is split for the run.

    open_run(corpus, out, resume) -> (run directory, saved TrainingState or None)
    prepare(cfg, corpus, log)     -> (cfg with every option set, training Batches,
                                      HeldOut or None, the automatic choice)
    remove_if_unused(run_dir)        undo a run that failed before its first checkpoint
"""
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from charrnn.data import corpus as data
from charrnn.data import sources
from charrnn.data.batches import Batches
from charrnn.data.heldout import HeldOut
from charrnn.errors import CheckpointError, RunDirError
from charrnn.io import checkpoint
from charrnn.training import auto as defaults
from charrnn.io.rundir import (LOCK_FILE, METRICS_FILE, MODEL_FILE, SAMPLES_FILE, STATE_FILE,
                               default_run_dir, latest_run, runs_root)


def open_run(corpus, out, resume):
    """-> (run directory, saved TrainingState or None), refusing to overwrite a run."""
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
        if (corpus is not None and sources.display_name(corpus) != saved.meta["corpus"]
                and not sources.same_text(corpus, run_dir)):   # moved: the same text is fine
            raise RunDirError(f"--resume: {run_dir} was trained on {saved.meta['corpus']}, not {corpus}")
        return run_dir, saved
    if corpus is not None and not sources.is_stream(corpus):
        p = Path(corpus)
        if not p.exists():
            raise data.CorpusError(f"no such file: {p}")
    run_dir = Path(out) if out is not None else default_run_dir(
        "stdin" if sources.is_stream(corpus) else corpus or "tinyshakespeare")
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
    for name in ("corpus.npy", "corpus.json", sources.SPOOL_FILE, METRICS_FILE, SAMPLES_FILE, LOCK_FILE):
        try:
            (run_dir / name).unlink()
        except OSError:
            pass
    try:
        run_dir.rmdir()   # fails, harmlessly, if anything else is in it
    except OSError:
        pass


def prepare(cfg, corpus, log, resumed=False):
    """Fill in the automatic options for this corpus, then split it for the run.

    -> (cfg with every option set, training Batches, HeldOut or None, defaults.Choice).
    Explicit options are never changed; automatic batch and window shrink to fit a
    short training part (one line says so); a text too short to hold anything out
    trains without validation (one line says so). Nothing is logged before the split
    succeeds, so a refusal stays a one-line error."""
    ids = corpus.ids
    given = {k: v for k, v in asdict(cfg).items() if k in defaults.AUTO and v is not None}
    choice = defaults.choose(len(ids), len(corpus.vocab), cfg.max_minutes, given, cfg.cell)
    cfg = replace(cfg, **choice.values)
    n_train = len(ids) - choice.val_chars
    part = (f"the training part (all but the last {cfg.val_frac:g} of the corpus's "
            f"{len(ids):,} characters)" if choice.val_chars else
            f"the corpus ({len(ids):,} characters, all for training)")
    train = Batches(ids[:n_train], cfg.batch_size, cfg.seq_len, dtype=np.int32, part=part)
    held = HeldOut(ids[n_train:], cfg.seq_len, cfg.batch_size) if choice.val_chars else None
    if not resumed:
        if corpus.dropped_tail:
            log(f"charrnn: note: {corpus.path} ends inside a character: its incomplete final "
                f"character ({corpus.dropped_tail} byte{'s' if corpus.dropped_tail > 1 else ''})"
                " was dropped")
        for note in choice.notes:
            log(f"charrnn: note: {note}")
        if choice.auto:
            minutes = f"{cfg.max_minutes:g}-minute budget" if cfg.max_minutes else "no time limit"
            log(f"charrnn: auto for {len(ids) - choice.val_chars:,} training characters and "
                f"{minutes}: {defaults.describe(choice, cfg.cell)} (options you pass win)")
    return cfg, train, held, choice
