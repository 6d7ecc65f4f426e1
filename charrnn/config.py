"""The options of a training run: TrainConfig, one field per `charrnn train` option.

None means "auto": charrnn.defaults fills it in from the corpus and the budget when the
run starts, and the run's saved config holds the values it picked.
"""
import math
from dataclasses import asdict, dataclass
from typing import Optional

from . import optim
from .data import check_errors
from .errors import ConfigError
from .model import ModelConfig


@dataclass
class TrainConfig:
    # None: chosen from the corpus and the budget when the run starts (charrnn.defaults;
    # at 1 MB and 5 minutes: 2x256, embed 64, dropout 0.1, 32 x 64, lr decay 0.85, 500)
    # model (see ModelConfig)
    cell: str = "gru"          # in a fixed time budget it beats the LSTM (cheaper steps)
    hidden: Optional[int] = None
    layers: Optional[int] = None
    embed: Optional[int] = None
    dropout: Optional[float] = None
    forget_bias: float = 1.0   # LSTM only: added to the forget gate's input bias at init
    # data
    encoding: str = "utf-8"
    encoding_errors: str = "strict"   # or replace / ignore (Python's codec handlers)
    seq_len: Optional[int] = None     # truncated BPTT window
    batch_size: Optional[int] = None  # parallel streams
    val_frac: Optional[float] = None   # the last 10% is held out (nanoGPT's Tiny
                                       # Shakespeare split); none when too short
    # optimisation
    optimizer: str = "adam"
    lr: float = 3e-3
    lr_decay: Optional[float] = None  # lr multiplier per epoch, applied smoothly every step
    anneal: float = 0.2        # last fraction of a budgeted run: lr falls linearly to 10%
    grad_clip: float = 5.0     # global L2 norm; 0 disables
    seed: int = 1337
    # schedule
    eval_every: Optional[int] = None   # steps between validations (and checkpoints)
    patience: Optional[int] = None     # stop after this many evaluations without a new
                                       # best validation loss; 0: never
    max_steps: int = 0         # 0: no limit
    max_epochs: Optional[float] = None  # 0: no limit
    max_minutes: float = 5.0   # wall-clock budget across resumes; 0: no limit

    def validate(self):
        auto = {"dropout": 0.0, "lr_decay": 1.0, "patience": 0, "max_epochs": 0,
                "val_frac": 0.1}
        d = {k: (auto.get(k, 1) if v is None else v) for k, v in asdict(self).items()}
        ModelConfig(self.cell, d["hidden"], d["layers"], d["embed"], d["dropout"], 1,
                    self.encoding).validate()
        checks = [
            (d["seq_len"] >= 1, "--seq-len must be at least 1"),
            (d["batch_size"] >= 1, "--batch-size must be at least 1"),
            (0 <= d["val_frac"] < 1, "--val-frac must be in [0, 1) (0: no validation)"),
            (self.lr > 0 and math.isfinite(self.lr), "--lr must be a positive number"),
            (0 < d["lr_decay"] <= 1, "--lr-decay must be in (0, 1]"),
            (0 <= self.anneal < 1, "--anneal must be in [0, 1)"),
            (self.grad_clip >= 0, "--grad-clip must be >= 0 (0 disables clipping)"),
            (d["eval_every"] >= 1, "--eval-every must be at least 1"),
            (d["patience"] >= 0, "--patience must be >= 0 (0: no early stopping)"),
            (self.max_steps >= 0, "--max-steps must be >= 0 (0: no limit)"),
            (d["max_epochs"] >= 0, "--max-epochs must be >= 0 (0: no limit)"),
            (self.max_minutes >= 0, "--max-minutes must be >= 0 (0: no limit)"),
            (self.optimizer in optim.OPTIMIZERS, f"--optimizer must be one of {', '.join(optim.OPTIMIZERS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        check_errors(self.encoding_errors)
        return self


# Options that may change on --resume without changing the run's results.
RESUME_OVERRIDABLE = {"eval_every", "patience", "max_steps", "max_epochs", "max_minutes"}
