"""What a training run saves and restores: the checkpoints of a Trainer.

charrnn.training.trainer.Trainer holds one Checkpoints (self.checkpoints). A state file holds every bit of
state the next step reads (parameters, optimizer moments and step count, the carried
hidden state of every stream, the data cursor, the budget and patience bookkeeping), so
a resumed run continues exactly; model.safetensors and best.safetensors hold only the
weights, for sampling and for PyTorch. Under MPI, rank 0 writes, after gathering every
rank's streams; on resume each rank takes its own block of them back.

For every run, the language model's and the pair tasks' (classify_run.py, seq2seq_run.py):
trim_metrics(path, saved_step) cuts a resumed run's metrics back to its checkpoint, and
unchanged_digest(path, saved) checks that a pairs file is the one the run started with.
"""
import json
import math
from dataclasses import asdict

from charrnn.data.corpus import file_sha256
from charrnn.io import checkpoint as ckpt
from charrnn.io.rundir import BEST_FILE, MODEL_FILE, STATE_FILE
from charrnn.training import distributed as dist
from charrnn.errors import CheckpointError, CorpusError, RunDirError
from charrnn.io.files import atomic_write_bytes


class Checkpoints:
    """Saving, restoring and log trimming for one charrnn.training.trainer.Trainer: it
    reads the trainer's model, optimizer, carried state, data cursor and counters, and
    on restore sets them."""

    def __init__(self, trainer):
        self.trainer = trainer


    def state_arrays(self, hidden):
        """hidden: the carried state of all streams, gathered (per layer (h,) or (h, c))."""
        t = self.trainer
        a = {f"param.{k}": v for k, v in t.model.params.items()}
        a.update({f"opt.{k}": v for k, v in t.opt.state.items()})
        for k, layer in enumerate(hidden):
            for name, s in zip("hc", layer):
                a[f"hidden.l{k}.{name}"] = s
        return a

    def restore(self, saved):
        t = self.trainer
        arrays, meta = saved.arrays, saved.meta
        if meta.get("vocab") != t.model.vocab:
            raise CheckpointError(f"cannot resume: the vocabulary of {t.corpus_path} changed "
                                  "since the run started; start a new run")
        try:
            if t.comm.is_root:   # the other ranks get these from rank 0's broadcast
                for k, v in t.model.params.items():
                    v[...] = arrays[f"param.{k}"]
                for k, v in t.opt.state.items():
                    v[...] = arrays[f"opt.{k}"]
            for k, layer in enumerate(t.state):
                for name, s in zip("hc", layer):
                    full = arrays[f"hidden.l{k}.{name}"]              # (B, H): all streams
                    if full.shape[0] != t.cfg.batch_size:
                        raise ValueError(f"hidden state of {full.shape[0]} streams")
                    s[...] = full[t.lo:t.hi]
            t.opt.t = int(meta["opt_t"])
            t.step = int(meta["step"])
            t.elapsed_before = float(meta["elapsed"])
            t.anneal_steps = meta.get("anneal_steps")
            t.anneal_from = meta.get("anneal_from")
            t.best_val = float(meta["best_val"])
            t.last_val = meta.get("last_val")
            t.bad_evals = int(meta.get("bad_evals", 0))
            t.best_step = int(meta.get("best_step", 0))
            t.parent = meta.get("parent")   # fine-tuned (--init): kept across resumes
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"cannot resume: training state is incomplete or damaged ({e})") from None
        t.train_batches.load_state_dict(meta["cursor"])
        t.saved_step = t.step

    def meta_of(self, elapsed):
        t = self.trainer
        return {
            "step": t.step, "opt_t": t.opt.t, "elapsed": elapsed,
            "anneal_steps": t.anneal_steps, "anneal_from": t.anneal_from,
            "best_val": t.best_val, "last_val": t.last_val, "bad_evals": t.bad_evals,
            "best_step": t.best_step,
            "cursor": t.train_batches.state_dict(),
            "train_config": asdict(t.cfg), "auto": t.auto, "corpus": t.corpus_path,
            **t.sources, "vocab": t.model.vocab, "parent": t.parent,
        }

    def save(self, elapsed, improved):
        t = self.trainer
        hidden = [tuple(t.comm.gather_rows(s) for s in layer) for layer in t.state]
        try:
            t.comm.run_on_root(lambda: self._save(elapsed, improved, hidden))
        except RunDirError as e:
            if not (t.run_dir / STATE_FILE).exists():   # the first save: nothing to resume
                raise RunDirError(
                    f"{e}; training stopped at step {t.step} before its first checkpoint, "
                    "so there is nothing to resume: fix this, then start the run again") from None
            raise RunDirError(
                f"{e}; training stopped at step {t.step}, the checkpoint of step "
                f"{t.saved_step} in {t.run_dir} is intact: fix this, then run "
                f"`charrnn train --out {t.run_dir} --resume`") from None
        t.saved_step = t.step
        # what rank 0 saved is what every rank continues from
        t.comm.sync_arrays([t.model.flat, *t.opt.state.values()])
        dist.notify_saved(t.step, t.comm.size, t.run_dir)

    def _save(self, elapsed, improved, hidden):
        """State first: it alone is enough to resume; then the exported weights."""
        t = self.trainer
        ckpt.save_state(t.run_dir / STATE_FILE, self.state_arrays(hidden),
                        self.meta_of(elapsed))
        info = {"step": t.step, "epoch": t.epoch(), "val_loss": t.last_val,
                "best_val_loss": t.best_val if math.isfinite(t.best_val) else None}
        if t.parent:
            info["parent"] = t.parent
        args = (t.model.params, t.model.config, t.model.vocab, info)
        ckpt.save_model(t.run_dir / MODEL_FILE, *args)
        if improved:
            ckpt.save_model(t.run_dir / BEST_FILE, *args)

    def trim_log(self, path):
        """On resume, drop lines past the saved step (written by the run that died)."""
        if self.trainer.comm.is_root:
            trim_metrics(path, self.trainer.saved_step)


def trim_metrics(path, saved_step):
    """Drop the lines of metrics file `path` past `saved_step` (a resumed run's log
    then goes on from its checkpoint), and lines that are not a step's record."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= saved_step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            pass
    atomic_write_bytes(path, "".join(l + "\n" for l in keep).encode())


def unchanged_digest(path, saved):
    """The SHA-256 of the pairs file; on resume (saved) a CorpusError if it is not the
    one the run started with."""
    digest = file_sha256(path)
    if saved is not None and saved.meta.get("pairs_sha256") != digest:
        raise CorpusError(f"cannot resume: {path} changed since the run started; the "
                          "run is left as it was: restore the file, or start a new run")
    return digest
