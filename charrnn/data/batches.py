"""Train/validation split and the batches of truncated backpropagation through time.

    ids --split_train_val--> train = ids[:N - n_val], val = ids[N - n_val:] (last val_frac)
    train --Batches(B, T)--> B parallel contiguous streams (B, L), L = len // B;
                             window k: x = streams[:, kT : kT+T].T      (T, B)
                                       y = streams[:, kT+1 : kT+T+1].T  (T, B): x shifted

ids come from charrnn.data.corpus (load_corpus); the windows are views, never copies of the
corpus.
"""
import operator
from typing import NamedTuple

import numpy as np
from charrnn.errors import CheckpointError, ConfigError, CorpusError, plural


def _positive_int(value, option: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{option} must be a positive integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ConfigError(f"{option} must be a positive integer, got {value!r}") from None
    if value < 1:
        raise ConfigError(f"{option} must be a positive integer, got {value}")
    return value


def _check_val_frac(val_frac) -> float:
    try:
        val_frac = float(val_frac)
    except (TypeError, ValueError):
        raise ConfigError(f"--val-frac must be a number between 0 and 1, got {val_frac!r}") \
            from None
    if not 0.0 < val_frac < 1.0:  # also refuses NaN
        raise ConfigError(f"--val-frac must be strictly between 0 and 1 (e.g. 0.05), "
                          f"got {val_frac}")
    return val_frac


def split_train_val(ids: np.ndarray, val_frac: float):
    """(train, val) views: val is the last floor(len * val_frac) ids, train the rest.

    Contiguous rather than shuffled: a random split would let the model see the text
    around every validation character, and the streams need contiguous text anyway.
    """
    val_frac = _check_val_frac(val_frac)
    n_val = int(len(ids) * val_frac)
    return ids[:len(ids) - n_val], ids[len(ids) - n_val:]


class Batch(NamedTuple):
    x: np.ndarray  # (T, B) input ids
    y: np.ndarray  # (T, B) targets: the character after each input
    epoch: int     # which pass over the data this window belongs to
    index: int     # window number within the epoch; 0 means: reset the hidden state


class Batches:
    """Windows of seq_len characters over batch_size parallel streams, walked in order.

    The ids are cut into B contiguous streams of L = len // B characters (the remainder
    is dropped). Window k covers characters kT .. kT+T of every stream, so the hidden
    state at the end of window k is the right start for window k+1 (truncated BPTT).
    There are (L - 1) // T windows per epoch; a last partial window is dropped so every
    step has the same shape. Window k+1 starts where window k's targets end: its x[0] is
    window k's y[-1].

    The cursor (epoch, index) names the next window next() returns; state_dict() and
    load_state_dict() save and restore it so a resumed run sees the same batches.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, *,
                 dtype=np.int64, part: str = "the corpus"):
        self.batch_size = B = _positive_int(batch_size, "--batch-size")
        self.seq_len = T = _positive_int(seq_len, "--seq-len")
        need = B * (T + 1)
        if len(ids) < need:
            raise CorpusError(
                f"{part} has {len(ids):,} characters, but --batch-size {B} with --seq-len {T} "
                f"needs at least {need:,} ({plural(B, 'stream')} of seq_len + 1 = {T + 1}); use a "
                "smaller --batch-size or --seq-len, or a longer corpus")
        L = len(ids) // B
        self.streams = ids[:B * L].reshape(B, L)  # (B, L) a view: nothing is copied
        self.dtype = np.dtype(dtype)
        self.epoch = 0
        self.index = 0

    def __len__(self) -> int:
        """Windows per epoch."""
        return (self.streams.shape[1] - 1) // self.seq_len

    def window(self, k: int):
        """(x, y) of window k, each (T, B) C-contiguous; only this window is read."""
        k = operator.index(k)
        if not 0 <= k < len(self):
            raise IndexError(f"window {k} out of range: an epoch has {len(self)} windows")
        T = self.seq_len
        chunk = self.streams[:, k * T:k * T + T + 1]  # (B, T+1)
        # Separate copies (not two views of one buffer) so writing to x cannot change y.
        x = np.ascontiguousarray(chunk[:, :-1].T, dtype=self.dtype)  # (T, B)
        y = np.ascontiguousarray(chunk[:, 1:].T, dtype=self.dtype)   # (T, B)
        return x, y

    def __iter__(self):
        """(x, y) of every window of one epoch, in order; the cursor does not move."""
        for k in range(len(self)):
            yield self.window(k)

    def next(self) -> Batch:
        """The window at the cursor; then advance it (past the last: next epoch, window 0)."""
        x, y = self.window(self.index)
        batch = Batch(x, y, self.epoch, self.index)
        self.index += 1
        if self.index == len(self):
            self.epoch, self.index = self.epoch + 1, 0
        return batch

    def state_dict(self) -> dict:
        """The cursor plus the geometry it is only meaningful for (JSON-serialisable)."""
        return {"epoch": self.epoch, "index": self.index, "batch_size": self.batch_size,
                "seq_len": self.seq_len, "windows": len(self)}

    def load_state_dict(self, state: dict) -> None:
        try:
            epoch, index = int(state["epoch"]), int(state["index"])
            saved = (int(state["batch_size"]), int(state["seq_len"]), int(state["windows"]))
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"the saved batch cursor is damaged: {state!r}; start a new "
                                  "run") from None
        here = (self.batch_size, self.seq_len, len(self))
        if saved != here:
            raise CheckpointError(
                f"the run was saved with batch_size={saved[0]}, seq_len={saved[1]} and "
                f"{saved[2]} windows per epoch, but now has batch_size={here[0]}, "
                f"seq_len={here[1]} and {here[2]}; resume with the same options and corpus, "
                "or start a new run")
        if epoch < 0 or not 0 <= index < len(self):
            raise CheckpointError(f"the saved batch cursor (epoch {epoch}, window {index}) is "
                                  f"out of range; start a new run")
        self.epoch, self.index = epoch, index


def make_batches(ids: np.ndarray, *, batch_size: int, seq_len: int, val_frac: float,
                 dtype=np.int64):
    """(train, val) Batches over the split of ids, with messages that name the options."""
    batch_size = _positive_int(batch_size, "--batch-size")
    seq_len = _positive_int(seq_len, "--seq-len")
    val_frac = _check_val_frac(val_frac)
    train_ids, val_ids = split_train_val(ids, val_frac)
    train = Batches(train_ids, batch_size, seq_len, dtype=dtype,
                    part=f"the training part (all but the last {val_frac:g} of the corpus's "
                         f"{len(ids):,} characters)")
    need = batch_size * (seq_len + 1)
    if len(val_ids) < need:
        # The smallest val_frac that gives one window, if the training part can spare it.
        frac = -(-need * 100 // len(ids)) / 100  # need / len, rounded up to 0.01
        fix = (f"raise --val-frac to at least {frac:g}, or use a smaller --batch-size or "
               "--seq-len" if (1 - frac) * len(ids) >= need and frac < 1 else
               "use a smaller --batch-size or --seq-len, or a longer corpus")
        raise CorpusError(
            f"the validation part (the last {val_frac:g} of the corpus) has {len(val_ids):,} "
            f"characters, too few for one window: --batch-size {batch_size} with --seq-len "
            f"{seq_len} needs {need:,}; {fix}")
    val = Batches(val_ids, batch_size, seq_len, dtype=dtype, part="the validation part")
    return train, val
