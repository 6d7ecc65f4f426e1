"""Where a training run starts: its directory (new, or the saved state of one to
resume), and its options filled in for the corpus, which is split for the run.

    open_run(corpus, out, resume) -> (run directory, saved TrainingState or None,
                                      whether this call created the directory)
    prepare(cfg, corpus, log)     -> (cfg with every option set, training Batches,
                                      HeldOut or None, the automatic choice)
    remove_if_unused(run_dir, created)  undo a run that failed before its first checkpoint
"""
import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from charrnn.data import corpus as data
from charrnn.data import sources
from charrnn.data.batches import Batches
from charrnn.data.heldout import HeldOut
from charrnn.data.several import FileSet, load_files
from charrnn.errors import CheckpointError, RunDirError
from charrnn.io import checkpoint
from charrnn.io.files import TMP_SUFFIX
from charrnn.training import auto as defaults
from charrnn.training import finetune
from charrnn.io.rundir import (DOCUMENTS_FILE, LOCK_FILE, METRICS_FILE, MODEL_FILE, SAMPLES_FILE, STATE_FILE,
                               RUN_FILES, RunLock, latest_run, make_default_run_dir,
                               runs_root)


def open_run(corpus, out, resume):
    """-> (run directory, saved TrainingState or None, created), refusing to overwrite a
    run. created: this call made the directory (only then may a failed start remove it)."""
    if out is not None and not str(out).strip():
        raise RunDirError("--out is empty: name the run directory (or leave --out out)")
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
        if corpus is not None and not sources.same_source(corpus, saved.meta, run_dir):
            raise RunDirError(f"--resume: {run_dir} was trained on {saved.meta['corpus']}, "
                              f"not {sources.display_name(corpus)}")   # moved: same text is fine
        return run_dir, saved, False
    several = isinstance(corpus, FileSet)
    if corpus is not None and not several and not sources.is_stream(corpus):
        p = Path(corpus)
        if not p.exists():
            raise data.CorpusError(f"no such file: {p}")
    try:
        if out is None:   # a fresh name, made by this process alone
            name = ("stdin" if not several and sources.is_stream(corpus) else
                    corpus.stem if several else corpus or "tinyshakespeare")
            return _writable(make_default_run_dir(name)), None, True
        run_dir = Path(out)
        if run_dir.exists() and not run_dir.is_dir():
            raise RunDirError(f"--out {run_dir} exists and is not a directory")
        if run_dir.is_dir() and any((run_dir / f).exists() for f in (STATE_FILE, MODEL_FILE)):
            raise RunDirError(f"{run_dir} already holds a run: pass --resume to continue it, "
                              "or choose another --out")
        if run_dir.is_dir():
            others = sorted(p.name for p in run_dir.iterdir() if not _run_file(p.name))
            if others:
                raise RunDirError(
                    f"--out {run_dir} is a directory that is not a charrnn run (it holds "
                    f"{', '.join(others[:3])}{', ...' if len(others) > 3 else ''}): "
                    "choose a new or empty directory")
        try:
            run_dir.mkdir(parents=True)
            created = True
        except FileExistsError:
            created = False   # it was there (or another process made it just now)
        return _writable(run_dir), None, created
    except OSError as e:
        raise RunDirError(f"cannot write to run directory {e.filename or out}: "
                          f"{e.strerror or e}") from None


def _run_file(name):
    """A file a charrnn run writes into its directory (or its temp files)."""
    return (name in RUN_FILES or name.endswith(TMP_SUFFIX) or name.startswith(".write-test")
            or name in ("corpus.npy.tmp", "corpus.json.tmp", sources.SPOOL_FILE,
                        DOCUMENTS_FILE + ".tmp"))


def _writable(run_dir):
    probe = run_dir / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise RunDirError(f"cannot write to run directory {run_dir}: {e.strerror or e}") from None
    return run_dir


def remove_if_unused(run_dir, created):
    """A run that failed before its first checkpoint leaves nothing behind: the files a
    run writes, and the directory itself if this process created it (`created`), never
    one it found. Nothing is removed while another process holds the directory's lock (a
    second `charrnn train --out` of the same directory may be using it)."""
    if (run_dir / STATE_FILE).exists():
        return
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except RunDirError:
        return   # in use by another process: its files, not ours to remove
    try:
        if (run_dir / STATE_FILE).exists():
            return
        for name in ("corpus.npy", "corpus.json", sources.SPOOL_FILE, METRICS_FILE,
                     SAMPLES_FILE, DOCUMENTS_FILE, LOCK_FILE):
            try:
                (run_dir / name).unlink()
            except OSError:
                pass
    finally:
        lock.release()
    if not created:
        return
    try:
        run_dir.rmdir()   # fails, harmlessly, if anything else is in it
    except OSError:
        pass


def check_corpus_unchanged(path, run_dir, encoding, errors):
    """On --resume, before anything is written: the corpus file must still hold the text
    the run encoded (corpus.npy), else the resume is refused and the run left as it was.
    A file only touched (same text) passes; without a usable encoded copy there is
    nothing to compare (the vocabulary check on restore still applies)."""
    try:
        meta = json.loads((Path(run_dir) / "corpus.json").read_text(encoding="utf-8"))
        old = np.load(Path(run_dir) / "corpus.npy", mmap_mode="r")
        files = path.files if isinstance(path, FileSet) else [path]
        now = [[st.st_size, st.st_mtime_ns] for st in (Path(f).stat() for f in files)]
    except (OSError, ValueError):
        return
    then = ([[f.get("size"), f.get("mtime_ns")] for f in meta.get("files") or []]
            if isinstance(path, FileSet) else [[meta.get("size"), meta.get("mtime_ns")]])
    if now == then:
        return
    new = (load_files(path, encoding=encoding, errors=errors) if isinstance(path, FileSet)
           else data.load_corpus(path, encoding=encoding, errors=errors))   # in memory
    if new.vocab == meta.get("vocab") and np.array_equal(new.ids, old):
        return
    # compare as code points: the two vocabularies may number the characters differently
    old_cp = np.array([ord(c) for c in meta.get("vocab", [])], dtype=np.int64)[old]
    new_cp = np.array([ord(c) for c in new.vocab], dtype=np.int64)[new.ids]
    name = path
    if isinstance(path, FileSet):   # the first file whose text differs
        was = [(f["start"], f["end"]) for f in meta["files"]]
        for f, (a, b), (_, c, d) in zip(path.files, was, new.parts):
            if not np.array_equal(old_cp[a:b], new_cp[c:d]):
                name, old_cp, new_cp = f"{f} (of {path.label})", old_cp[a:b], new_cp[c:d]
                break
    what = ("text appended: " if len(new_cp) > len(old_cp)
            and np.array_equal(new_cp[:len(old_cp)], old_cp) else "")
    raise data.CorpusError(
        f"cannot resume: the corpus {name} changed since the run started ({what}"
        f"{len(old_cp):,} characters then, {len(new_cp):,} now); the run is left as it "
        "was: restore the file, or start a new run on it")


def prepare(cfg, corpus, log, resumed=False, docs=None, base=None):
    """Fill in the automatic options for this corpus, then split it for the run.

    -> (cfg with every option set, training Batches, HeldOut or None, defaults.Choice).
    Explicit options are never changed; automatic batch and window shrink to fit a
    short training part (one line says so); a text too short to hold anything out
    trains without validation (one line says so). Nothing is logged before the split
    succeeds, so a refusal stays a one-line error. docs (charrnn.data.documents.
    Documents, for --docs): the stream of documents is split instead, whole documents
    held out, and the held-out part starts with the end marker before its first one.
    base: the finetune.Base of a run fine-tuned from it (--init), whose lr sets the
    automatic one."""
    ids = corpus.ids
    given = {k: v for k, v in asdict(cfg).items() if k in defaults.AUTO and v is not None}
    base_lr = None if base is None else base.lr or defaults.LR   # unknown: the default's
    if docs is None:
        choice = defaults.choose(len(ids), len(corpus.vocab), cfg.max_minutes, given, cfg.cell,
                                 base_lr=base_lr)
    else:
        choice = defaults.choose(docs.stream_length, len(docs.vocab), cfg.max_minutes, given,
                                 cfg.cell, base_lr=base_lr, held_out=docs.held_out_chars,
                                 doc_len=docs.median_length)
    cfg = replace(cfg, **choice.values)
    ids = ids if docs is None else docs.lay_out()
    n_train = len(ids) - choice.val_chars
    whose, what = ("corpus's", "corpus") if docs is None else ("documents'", "documents")
    part = (f"the training part (all but the last {cfg.val_frac:g} of the {whose} "
            f"{len(ids):,} characters)" if choice.val_chars else
            f"the {what} ({len(ids):,} characters, all for training)")
    train = Batches(ids[:n_train], cfg.batch_size, cfg.seq_len, dtype=np.int32, part=part)
    held = (HeldOut(ids[n_train - (docs is not None):], cfg.seq_len, cfg.batch_size)
            if choice.val_chars else None)
    if not resumed:
        if docs is not None:
            log(f"charrnn: {docs.describe(cfg.val_frac if choice.val_chars else 0)}")
        if corpus.dropped_tail:
            log(f"charrnn: note: {corpus.path} ends inside a character: its incomplete final "
                f"character ({corpus.dropped_tail} byte{'s' if corpus.dropped_tail > 1 else ''})"
                " was dropped")
        for note in choice.notes:
            log(f"charrnn: note: {note}")
        if choice.auto:
            minutes = f"{cfg.max_minutes:g}-minute budget" if cfg.max_minutes else "no time limit"
            tuned = "" if base is None else f", fine-tuning {base.given}"
            log(f"charrnn: auto for {len(ids) - choice.val_chars:,} training characters and "
                f"{minutes}{tuned}: {defaults.describe(choice, cfg.cell)} (options you pass win)")
        if base is not None:
            log(finetune.describe(base, corpus.vocab if docs is None else docs.vocab))
    return cfg, train, held, choice
