"""The training progress bar: it fills toward whichever limit ends the run first.

A run stops at --max-minutes, --max-steps or --max-epochs, whichever comes first, so
the bar shows the largest of elapsed/minutes, step/max_steps and epoch/max_epochs, as
a percentage, and names that limit ("3:00/5:00", "417/2000 steps", "2.10/5 epochs").
The epoch is shown as a fraction (ep 0.004 on a 300 MB corpus), so a large corpus
shows how far the run gets through it. Without any limit it counts steps.
"""
import math
import sys


def _mmss(seconds):
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def fraction(cfg, step, epoch, elapsed):
    """(fraction done toward the nearest limit, label of that limit), or (None, None)."""
    best = (None, None)
    for limit, done, label in (
            (cfg.max_minutes * 60, elapsed,
             lambda: f"{_mmss(elapsed)}/{_mmss(cfg.max_minutes * 60)}"),
            (cfg.max_steps, step, lambda: f"{step}/{cfg.max_steps} steps"),
            (cfg.max_epochs, epoch, lambda: f"{epoch:.2f}/{cfg.max_epochs:g} epochs")):
        if limit:
            f = min(1.0, done / limit)
            if best[0] is None or f > best[0]:
                best = (f, label())
    return best


def epoch_text(epoch):
    """2 decimals, or 2 significant digits below 0.1: a large corpus shows movement."""
    if epoch >= 0.1 or epoch == 0:
        return f"{epoch:.2f}"
    return f"{epoch:.{1 - math.floor(math.log10(epoch))}f}"


class Output:
    """The stream the log and the bar write to (stderr), which may go away: piped into
    `head`, a closed stream must not stop a run. After the first failed write the
    stream counts as closed and later lines are dropped (the run directory's files
    keep everything); its descriptor is pointed at /dev/null, so that the
    interpreter's last flush is silent too."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.closed = False

    def write(self, text):
        if self.closed:
            return len(text)
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError, OSError):
            self.closed = True
            _to_devnull(self.stream)
        return len(text)

    def flush(self):
        self.write("")

    def line(self, text):
        self.write(text + "\n")

    @property
    def encoding(self):   # tqdm draws its Unicode bar only on a stream that says UTF-8
        return getattr(self.stream, "encoding", None)

    def isatty(self):
        try:
            return not self.closed and self.stream.isatty()
        except (ValueError, OSError):
            return False


def _to_devnull(stream):
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


class Bar:
    """On a terminal, tqdm's bar redrawn in place; into a file or a pipe no bar at all
    (no \\r frames in a log): the evaluation lines, one per evaluation, say how far
    the run is. .write(line) prints a line either way."""

    def __init__(self, cfg, step, quiet, out=None):
        from tqdm import tqdm
        self.cfg = cfg
        out = out if out is not None else Output()
        limited = bool(cfg.max_minutes or cfg.max_steps or cfg.max_epochs)
        fmt = ("{percentage:3.0f}%|{bar}| {desc}" if limited else
               "{n_fmt} steps [{elapsed}] {desc}")
        self.bar = tqdm(total=100 if limited else None, initial=0 if limited else step,
                        file=out, disable=quiet or not out.isatty(), dynamic_ncols=True,
                        leave=True, mininterval=0.5, bar_format=fmt)
        self.limited = limited
        self.write = (lambda s: self.bar.write(s, file=out)) if not self.bar.disable else out.line

    def update(self, step, epoch, elapsed, post):
        if self.bar.disable:
            return
        frac, label = fraction(self.cfg, step, epoch, elapsed)
        text = f"step {step}, epoch {epoch_text(epoch)}, " + ", ".join(
            f"{k} {v}" for k, v in post.items())
        self.bar.set_description_str(text if label is None else f"{label}, {text}",
                                     refresh=False)
        if self.limited:
            self.bar.update(round(100 * frac, 2) - self.bar.n)
        else:
            self.bar.update(1)

    def close(self):
        self.bar.close()
