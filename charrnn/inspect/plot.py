"""Loss curves of one or more runs: a PNG/SVG with matplotlib, or in the terminal.

Top panel: training loss (faint: every step; solid: smoothed) and validation loss
(markers, at each evaluation), nats/char. Bottom panel: the learning rate. The x axis
is steps, or characters seen (--x chars: steps x batch size x sequence length, the
fair axis for runs with different batch shapes). Both backends are the optional extra
`charrnn-fast[plot]` (matplotlib, plotext); neither is needed to train.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.inspect.runs import read_metrics, read_run

EXTRA = 'pip install "charrnn-fast[plot]"'


class PlotError(CharRNNError):
    """Nothing to plot, or no plotting library."""


@dataclass
class Series:
    name: str
    steps: np.ndarray       # (S,) step number of each training step
    chars: np.ndarray       # (S,) characters seen after it
    train: np.ndarray       # (S,) training loss of that step, nats/char
    lr: np.ndarray          # (S,)
    val_steps: np.ndarray   # (E,) steps with an evaluation
    val_chars: np.ndarray   # (E,)
    val: np.ndarray         # (E,) validation loss, nats/char

    def x(self, axis):
        return self.chars if axis == "chars" else self.steps

    def val_x(self, axis):
        return self.val_chars if axis == "chars" else self.val_steps


def load_series(run_dir):
    """The curves of one run directory (metrics.jsonl). PlotError if it has none."""
    run = read_run(run_dir)
    records = read_metrics(run_dir)
    per_step = run.chars_seen / run.steps if run.steps else 0
    steps = [r for r in records if "lr" in r and r.get("train_loss") is not None]
    if not steps:
        raise PlotError(f"{run_dir}: no training steps in metrics.jsonl yet")
    # a resumed run can repeat an evaluation step (its final line): keep the last
    vals = {r["step"]: r["val_loss"] for r in records if r.get("val_loss") is not None}
    s = np.array([r["step"] for r in steps], np.int64)
    v = np.array(sorted(vals), np.int64)
    return Series(name=run.name, steps=s, chars=s * per_step,
                  train=np.array([r["train_loss"] for r in steps], np.float64),
                  lr=np.array([r["lr"] for r in steps], np.float64),
                  val_steps=v, val_chars=v * per_step,
                  val=np.array([vals[k] for k in v.tolist()], np.float64))


def smooth(y, window=None):
    """Exponential moving average with bias correction (TensorBoard-style), window ~
    len(y)/50 steps: enough to see the trend through per-batch noise."""
    y = np.asarray(y, np.float64)
    if window is None:
        window = min(200.0, max(1.0, len(y) / 50))
    beta = 1.0 - 1.0 / window
    out, acc = np.empty_like(y), 0.0
    for i, v in enumerate(y):
        acc = beta * acc + (1 - beta) * v
        out[i] = acc / (1 - beta ** (i + 1))
    return out


def _x_label(axis):
    return "characters seen" if axis == "chars" else "step"


# ---- matplotlib ----------------------------------------------------------------------------

def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def save_plot(series, out, axis="steps"):
    """Write the figure to `out` (.png or .svg). PlotError without matplotlib."""
    out = Path(out)
    if out.suffix.lower() not in (".png", ".svg"):
        raise PlotError(f"{out}: the plot is written as .png or .svg")
    try:
        import matplotlib
        matplotlib.use("Agg")            # files only: never needs a display
        import matplotlib.pyplot as plt
        # SVG text stays text (searchable, small), not glyph outlines
        matplotlib.rcParams["svg.fonttype"] = "none"
    except ImportError:
        raise PlotError(f"matplotlib is not installed, so {out} cannot be written: "
                        f"{EXTRA}") from None
    fig, (ax, ax_lr) = plt.subplots(2, 1, sharex=True, figsize=(8, 5.6),
                                    gridspec_kw={"height_ratios": [3, 1]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, s in enumerate(series):
        c = colors[i % len(colors)]
        x = s.x(axis)
        ax.plot(x, s.train, color=c, alpha=0.18, linewidth=0.6)
        ax.plot(x, smooth(s.train), color=c, linewidth=1.4, label=f"{s.name} train")
        if len(s.val):
            best = int(np.argmin(s.val))
            ax.plot(s.val_x(axis), s.val, "o--", color=c, markersize=3.5, linewidth=1,
                    label=f"{s.name} val (best {s.val[best]:.3f})")
        ax_lr.plot(x, s.lr, color=c, linewidth=1.2)
    ax.set_ylabel("loss (nats/char)")
    lows = [np.percentile(s.train, 1) for s in series] + [s.val.min() for s in series if len(s.val)]
    highs = [np.percentile(s.train, 99) for s in series] + [s.val.max() for s in series if len(s.val)]
    lo, hi = min(lows), max(highs)
    if hi - lo < 1e-9 * max(1.0, abs(hi)):   # one step: a range to draw it in, not a point
        lo, hi = lo - 0.5, hi + 0.5
    ax.set_ylim(max(0.0, lo - 0.05 * (hi - lo)), hi + 0.05 * (hi - lo))  # no first-step spike
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("charrnn: " + ", ".join(s.name for s in series), fontsize=10)
    if axis == "steps" and _same_rate(series) and series[0].steps[-1]:
        rate = series[0].chars[-1] / series[0].steps[-1]
        top = ax.secondary_xaxis("top", functions=(lambda v: v * rate, lambda v: v / rate))
        top.xaxis.set_major_formatter(_short_numbers())
        top.set_xlabel("characters seen", fontsize=8)
        top.tick_params(labelsize=8)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel(_x_label(axis))
    if axis == "chars":
        ax_lr.xaxis.set_major_formatter(_short_numbers())
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _short_numbers():
    """Tick labels 250k, 1.5M rather than 250000, 1500000."""
    from matplotlib.ticker import FuncFormatter
    from charrnn.inspect.svgchart import fmt_tick
    return FuncFormatter(lambda v, _: fmt_tick(v))


def _same_rate(series):
    rates = {round(float(s.chars[-1] / s.steps[-1]), 6) for s in series if s.steps[-1]}
    return len(rates) == 1


# ---- terminal (plotext) ---------------------------------------------------------------------

def have_plotext():
    try:
        import plotext  # noqa: F401
    except ImportError:
        return False
    return True


def terminal_plot(series, axis="steps", width=None, height=None, color=None):
    """The figure as text for a terminal (a str). PlotError without plotext.

    Two plotext figures one above the other (loss, then learning rate), built
    separately: plotext 6's subplots do not share the height reliably."""
    try:
        import plotext as plt
    except ImportError:
        raise PlotError(f"no plotting library: {EXTRA} (matplotlib for PNG/SVG, "
                        f"plotext for the terminal)") from None
    import shutil
    cols, rows = shutil.get_terminal_size((100, 30))
    width, height = width or min(cols, 140), height or max(20, min(rows - 3, 44))
    if color is None:
        color = sys.stdout.isatty()
    palette = ["blue", "red", "green", "orange", "magenta", "cyan"]
    fig = plt.figure

    def panel(h, title, draw, x_label=None):
        fig.clear()
        fig.plot_size(width, h)
        fig.theme("simple" if color else "colorless")
        draw()
        fig.title(title)
        if x_label:
            fig.label(x_label)
        return fig.build().string(colorless=not color)

    def losses():
        for i, s in enumerate(series):
            c = palette[i % len(palette)]
            line = fig.signal(_thin(s.x(axis)), _thin(smooth(s.train)),
                              marker=plt.marker("braille", c))
            line.lines()
            line.label(f"{s.name} train")
            fig.draw(line)
            if len(s.val):
                dots = fig.signal(s.val_x(axis).tolist(), s.val.tolist(), marker=plt.marker("o", c))
                dots.label(f"{s.name} val (best {s.val.min():.3f})")
                fig.draw(dots)

    def rates():
        for i, s in enumerate(series):
            line = fig.signal(_thin(s.x(axis)), _thin(s.lr),
                              marker=plt.marker("braille", palette[i % len(palette)]))
            line.lines()
            fig.draw(line)

    top = max(10, int(height * 0.68))
    text = panel(top, "loss (nats/char)", losses) + "\n" + \
        panel(height - top, "learning rate", rates, _x_label(axis))
    fig.clear()
    return text


def _thin(a, n=2000):
    """At most n evenly spaced points: a terminal has a few hundred columns."""
    a = np.asarray(a)
    if len(a) > n:
        a = a[np.linspace(0, len(a) - 1, n).round().astype(int)]
    return a.tolist()


def follow(run_dirs, axis="steps", interval=2.0, out=None, echo=None, sleep=None):
    """Redraw the terminal plot every `interval` seconds until no run is running any
    more (or Ctrl-C); with `out`, rewrite that file each time too. echo takes the text
    of one frame (default: clear the terminal and print it)."""
    import time
    if echo is None:
        def echo(text):
            sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")   # home, clear screen
            sys.stdout.flush()
    sleep = sleep or time.sleep
    while True:
        runs = [read_run(d) for d in run_dirs]
        running = any(r.state == "running" for r in runs)
        try:
            series = [load_series(d) for d in run_dirs]
        except PlotError:
            if not running:
                raise
            echo("waiting for the first training steps...")   # a run just starting
            sleep(interval)
            continue
        if out is not None:
            save_plot(series, out, axis)
        lines = [f"{r.name}: {r.state}, step {r.steps:,}, epoch {r.epochs:.2f}, "
                 f"train loss {r.train_loss:.3f}" +
                 (f", best val {r.best_val_loss:.4f}" if r.best_val_loss is not None else "")
                 for r in runs]
        echo(terminal_plot(series, axis) + "\n" + "\n".join(lines))
        if not running:
            return
        sleep(interval)
