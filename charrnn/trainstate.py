"""What a training run saves and restores: the checkpoint half of charrnn.training.

The trainer (training._Trainer) inherits these methods. A state file holds every bit of
state the next step reads (parameters, optimizer moments and step count, the carried
hidden state of every stream, the data cursor, the budget and patience bookkeeping), so
a resumed run continues exactly; model.safetensors and best.safetensors hold only the
weights, for sampling and for PyTorch. Under MPI, rank 0 writes, after gathering every
rank's streams; on resume each rank takes its own block of them back.
"""
import json
import math
from dataclasses import asdict

from . import checkpoint as ckpt
from . import distributed as dist
from .errors import CheckpointError, RunDirError
from .rundir import atomic_write_bytes


class Checkpointing:
    """Saving, restoring and log trimming for training._Trainer (uses its attributes:
    model, opt, state, comm, cfg, corpus, train_batches, run_dir and the counters)."""


    def _state_arrays(self, hidden):
        """hidden: the carried state of all streams, gathered (per layer (h,) or (h, c))."""
        a = {f"param.{k}": v for k, v in self.model.params.items()}
        a.update({f"opt.{k}": v for k, v in self.opt.state.items()})
        for k, layer in enumerate(hidden):
            for name, s in zip("hc", layer):
                a[f"hidden.l{k}.{name}"] = s
        return a

    def _restore(self, saved):
        arrays, meta = saved.arrays, saved.meta
        if meta.get("vocab") != self.corpus.vocab:
            raise CheckpointError(f"cannot resume: the vocabulary of {self.corpus_path} changed "
                                  "since the run started; start a new run")
        try:
            if self.comm.is_root:   # the other ranks get these from rank 0's broadcast
                for k, v in self.model.params.items():
                    v[...] = arrays[f"param.{k}"]
                for k, v in self.opt.state.items():
                    v[...] = arrays[f"opt.{k}"]
            for k, layer in enumerate(self.state):
                for name, s in zip("hc", layer):
                    full = arrays[f"hidden.l{k}.{name}"]              # (B, H): all streams
                    if full.shape[0] != self.cfg.batch_size:
                        raise ValueError(f"hidden state of {full.shape[0]} streams")
                    s[...] = full[self.lo:self.hi]
            self.opt.t = int(meta["opt_t"])
            self.step = int(meta["step"])
            self.elapsed_before = float(meta["elapsed"])
            self.anneal_steps = meta.get("anneal_steps")
            self.best_val = float(meta["best_val"])
            self.last_val = meta.get("last_val")
            self.bad_evals = int(meta.get("bad_evals", 0))
            self.best_step = int(meta.get("best_step", 0))
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"cannot resume: training state is incomplete or damaged ({e})") from None
        self.train_batches.load_state_dict(meta["cursor"])
        self.saved_step = self.step

    def _meta(self, elapsed):
        return {
            "step": self.step, "opt_t": self.opt.t, "elapsed": elapsed,
            "anneal_steps": self.anneal_steps,
            "best_val": self.best_val, "last_val": self.last_val, "bad_evals": self.bad_evals,
            "best_step": self.best_step,
            "cursor": self.train_batches.state_dict(),
            "train_config": asdict(self.cfg), "auto": self.auto, "corpus": self.corpus_path,
            "vocab": self.corpus.vocab,
        }

    def save(self, elapsed, improved):
        hidden = [tuple(self.comm.gather_rows(s) for s in layer) for layer in self.state]
        try:
            self.comm.run_on_root(lambda: self._save(elapsed, improved, hidden))
        except RunDirError as e:
            raise RunDirError(
                f"{e}; training stopped at step {self.step}, the checkpoint of step "
                f"{self.saved_step} in {self.run_dir} is intact: fix this, then run "
                f"`charrnn train --out {self.run_dir} --resume`") from None
        self.saved_step = self.step
        # what rank 0 saved is what every rank continues from
        self.comm.sync_arrays([self.model.flat, *self.opt.state.values()])
        dist.notify_saved(self.step, self.comm.size, self.run_dir)

    def _save(self, elapsed, improved, hidden):
        """State first: it alone is enough to resume; then the exported weights."""
        ckpt.save_state(self.run_dir / ckpt.STATE_FILE, self._state_arrays(hidden),
                        self._meta(elapsed))
        info = {"step": self.step, "epoch": self._epoch_float(), "val_loss": self.last_val,
                "best_val_loss": self.best_val if math.isfinite(self.best_val) else None}
        args = (self.model.params, self.model.config, self.model.vocab, info)
        ckpt.save_model(self.run_dir / ckpt.MODEL_FILE, *args)
        if improved:
            ckpt.save_model(self.run_dir / ckpt.BEST_FILE, *args)

    def _trim_log(self, path):
        """On resume, drop lines past the saved step (written by the run that died)."""
        if not self.comm.is_root or not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= self.saved_step:
                    keep.append(line)
            except (ValueError, KeyError, TypeError):
                pass
        atomic_write_bytes(path, "".join(l + "\n" for l in keep).encode())
