"""`charrnn report RUN`: one self-contained HTML page about a run.

    charrnn.inspect.report.write_report("charrnn-runs/tinyshakespeare-...", "report.html")

Sections: the run at a glance and its options; loss and learning-rate curves (inline
SVG) with a table of every evaluation; the sample written at each evaluation
(samples.jsonl); a held-out passage coloured by the probability the model gave each
character, with its five likeliest characters on hover; a few hidden units that track
something visible in the text (charrnn.inspect.hidden_units), drawn over the same passage.

The passage is the start of the run's held-out split (the last --val-frac of its
corpus, read from the run's corpus.npy, the ids it trained on), or a text file given
with `text=`. The model is best.safetensors when there is one (else model.safetensors).
"""
import math
import time
from html import escape
from pathlib import Path

import numpy as np

from charrnn.inspect import report_html as H
from charrnn.io.rundir import BEST_FILE, MODEL_FILE
from charrnn.errors import CharRNNError, CheckpointError
from charrnn.inspect.runs import read_metrics, read_run, read_samples
from charrnn.inspect.svgchart import PALETTE, Chart

PASSAGE_CHARS = 1500     # characters shown coloured by probability
UNIT_CHARS = 700         # characters shown per hidden unit
SCAN_CHARS = 20000       # characters over which units are correlated with features
MAX_SAMPLES = 40         # evaluations shown in the samples section (evenly spaced)
PROBS_BUDGET = 2 ** 25   # at most this many probabilities (256 MB) per report


class ReportError(CharRNNError):
    """The run has nothing to report yet, or the passage cannot be read."""


def write_report(run_dir, out=None, text=None, best=True, passage_chars=PASSAGE_CHARS,
                 scan_chars=SCAN_CHARS):
    """Write the report of run_dir to `out` (default run_dir/report.html) -> Path."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    html = build_report(run_dir, text=text, best=best, passage_chars=passage_chars,
                        scan_chars=scan_chars)
    try:
        out.write_text(html, encoding="utf-8")
    except OSError as e:
        raise ReportError(f"cannot write {out}: {e.strerror or e}") from None
    return out


def held_out_text(run_dir, model, limit):
    """(the first `limit` characters of the run's held-out split, its offset in the
    corpus, what it is). A run trained without validation shows the start of its
    training text instead. The text is bytes for a byte-level model (what it reads).
    ReportError if the run has no encoded corpus."""
    run = read_run(run_dir)
    if run.config.get("docs", "none") != "none":
        return _held_out_documents(run, run_dir, model, limit)
    try:
        ids = np.load(Path(run_dir) / "corpus.npy", mmap_mode="r")
    except (OSError, ValueError):
        raise ReportError(f"{run_dir} has no readable corpus.npy to take a held-out "
                          f"passage from; pass a text file (--text FILE)") from None
    val_frac = run.config.get("val_frac", 0.1) or 0.0
    n_val = int(len(ids) * val_frac) if 0 < val_frac < 1 else 0
    if n_val >= 2:
        offset, source = len(ids) - n_val, f"the held-out last {val_frac:.0%} of the corpus"
    else:
        offset, source = 0, "the start of the training text (the run has no held-out part)"
    piece = np.asarray(ids[offset:offset + limit], np.int64)
    if len(piece) < 2:
        raise ReportError(f"the corpus of {run_dir} is too short to show; pass --text FILE")
    if piece.max() >= len(model.vocab):
        raise ReportError(f"{run_dir}/corpus.npy does not match the model's vocabulary")
    return _text(model, piece), offset, source


def _text(model, ids):
    if model.cfg.encoding == "bytes":
        return bytes(ord(model.vocab[i]) for i in ids)
    return "".join(model.vocab[i] for i in ids)


def _held_out_documents(run, run_dir, model, limit):
    """held_out_text of a run trained with --docs: its held-out documents as it laid
    them out (charrnn.data.documents), END before each one."""
    from charrnn.data.documents import Documents
    from charrnn.data.sources import load_cache
    cfg = run.config
    try:
        corpus = load_cache(run_dir, cfg.get("encoding", "utf-8"),
                            cfg.get("encoding_errors", "strict"))
        docs = Documents(corpus, cfg["docs"], cfg["seed"])
    except (CharRNNError, KeyError) as e:
        raise ReportError(f"{run_dir}: its documents cannot be read ({e}); pass a text "
                          "file (--text FILE)") from None
    if docs.vocab != model.vocab:
        raise ReportError(f"{run_dir}/corpus.npy does not match the model's vocabulary")
    val_frac = cfg.get("val_frac") or 0.0
    ids = docs.lay_out()
    held = docs.held_out_chars(val_frac)
    if held:
        offset, source = len(ids) - held - 1, "the held-out documents"
    else:
        offset, source = 0, "the training documents (the run has no held-out part)"
    return _text(model, ids[offset:offset + limit]), offset, source


def build_report(run_dir, text=None, best=True, passage_chars=PASSAGE_CHARS,
                 scan_chars=SCAN_CHARS):
    """The report as a str of HTML."""
    from charrnn.model import load
    run = read_run(run_dir)
    which = BEST_FILE if best and (Path(run_dir) / BEST_FILE).is_file() else MODEL_FILE
    try:
        model = load(Path(run_dir) / which)
    except CheckpointError as e:
        if "is a classifier" in str(e):   # a model, but not one this report reads
            raise ReportError(f"{run_dir} is a classifier run (--task classify): the report "
                              "is for language models; see charrnn runs and charrnn eval") from None
        if "is a transducer" in str(e):
            raise ReportError(f"{run_dir} is a transducer run (--task seq2seq): the report "
                              "is for language models; see charrnn runs and charrnn eval") from None
        raise ReportError(f"{run_dir}: no model to report on yet ({e})") from None
    records = read_metrics(run_dir)
    # probe's probabilities are (T, V) float64: bound them for a huge vocabulary
    scan_chars = min(scan_chars, max(400, PROBS_BUDGET // len(model.vocab)))
    passage_chars = min(passage_chars, scan_chars - 1)
    if text is None:
        scan, offset, source = held_out_text(run_dir, model, max(scan_chars, passage_chars + 1))
    else:
        scan, offset, source = text[:max(scan_chars, passage_chars + 1)], 0, "the given text"
    p = model.probe(scan)
    body = [_header(run, which, records), _curves(records, run), _config(run)]
    body.append(_samples(read_samples(run_dir)))
    # a diverged model gives probabilities of 0 and constant units: the report shows
    # the inf loss and finds no tracking unit, without NumPy warnings in the output
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        body.append(_passage(p, passage_chars, source, offset))
        body.append(_units(p, min(UNIT_CHARS, passage_chars), source))
    body.append(f"<footer>charrnn report, written {time.strftime('%Y-%m-%d %H:%M')} from "
                f"{escape(str(Path(run_dir).resolve()))}</footer>")
    return H.page(f"charrnn report: {run.name}", "\n".join(body))


def _header(run, which, records):
    kpi = lambda v, label: f'<div class="kpi"><b>{v}</b><span>{escape(label)}</span></div>'
    best = "-" if run.best_val_loss is None else f"{run.best_val_loss:.4f}"
    bpc = "-" if run.best_val_bpc is None else f"{run.best_val_bpc:.3f}"
    rate = [r["chars_per_sec"] for r in records if "chars_per_sec" in r]
    state = f'<span class="state-{run.state}">{run.state}</span>'
    if run.stopped_by:
        state += f" ({escape(run.stopped_by)})"
    parent = ""
    if run.parent_name:   # fine-tuned (--init): from which run, and which of its steps
        step = run.parent.get("step")
        at = f" at step {step:,}" if isinstance(step, int) else ""
        parent = (f'fine-tuned from <span title="{escape(str(run.parent.get("checkpoint")))}'
                  f' sha256 {escape(str(run.parent.get("sha256")))}">'
                  f"{escape(run.parent_name)}</span>{at} &middot; ")
    out = [f"<h1>{escape(run.name)} <small>{escape(run.model)}</small></h1>",
           f'<p class="note">{state} &middot; corpus {escape(str(run.corpus))} &middot; {parent}'
           f"updated {time.strftime('%Y-%m-%d %H:%M', time.localtime(run.updated))} &middot; "
           f"model shown: {which}</p>",
           '<div class="kpis">',
           kpi(best, "best val loss, nats/char"), kpi(bpc, "best val, bits/char"),
           kpi(f"{run.steps:,}", "steps"), kpi(f"{run.epochs:.2f}", "epochs"),
           kpi(f"{run.chars_seen / 1e6:.1f}M", "characters seen"),
           kpi(f"{run.wall_minutes:.1f}", "minutes of training")]
    if rate:
        kpi_rate = f"{np.median(rate) / 1000:.1f}k"
        out.append(kpi(kpi_rate, "characters/s (median)"))
    out.append("</div>")
    return "\n".join(out)


def _config(run):
    out = []
    cfg = dict(run.config)
    if run.vocab_size:
        cfg["vocab_size"] = run.vocab_size
    rows = [(k, v) for k, v in cfg.items()]
    third = -(-len(rows) // 3)                  # three short tables side by side
    out.append("<h2>Configuration</h2>")
    out.append('<div class="cols">' + "".join(H.table(rows[i:i + third], ["option", "value"])
                                              for i in range(0, len(rows), third)) + "</div>")
    return "\n".join(out)


def _curves(records, run):
    from charrnn.inspect.plot import smooth
    steps = [r for r in records if "lr" in r and r.get("train_loss") is not None]
    evals = {}
    for r in records:
        if r.get("val_loss") is not None:
            evals[r["step"]] = r                   # a repeated step (resume): the last
    out = ["<h2>Loss curves</h2>"]
    if not steps:
        return out[0] + '<p class="note">No training steps recorded yet.</p>'
    x = np.array([r["step"] for r in steps], float)
    train = np.array([r["train_loss"] for r in steps], float)
    vs = sorted(evals)
    val = np.array([evals[s]["val_loss"] for s in vs], float)
    hi = float(max(np.percentile(train, 99.5), val.max() if len(val) else 0.0))
    lo = float(min(train.min(), val.min() if len(val) else train.min()))
    chart = Chart(640, 330, x_label="step", y_label="loss (nats/char)",
                  title="training and validation loss", y_range=(lo, hi))
    chart.line(x, np.minimum(train, hi), PALETTE[0], None, width=0.8, opacity=0.22)
    chart.line(x, smooth(train), PALETTE[0], "train (smoothed)", width=1.8)
    if len(val):
        chart.line(vs, val, PALETTE[1], None, width=1.2, dash="4 3")
        chart.points(vs, val, PALETTE[1], "validation",
                     titles=[f"step {s}: val {v:.4f} nats/char" for s, v in zip(vs, val)])
    lr = Chart(320, 330, x_label="step", y_label="learning rate", title="learning rate")
    lr.line(x, [r["lr"] for r in steps], PALETTE[2], None, width=1.6)
    out.append('<div class="charts">' + chart.svg() + lr.svg() + "</div>")
    if run.steps:
        per = run.chars_seen / run.steps
        out.append(f'<p class="note">One step = {per:,.0f} characters '
                   f"(batch size x sequence length); {run.chars_seen:,} characters seen in all. "
                   "Faint line: the loss of every step; hover a validation point for its value.</p>")
    rows = [(s, f"{evals[s].get('epoch', 0):.2f}", f"{evals[s]['val_loss']:.5f}",
             f"{evals[s]['val_loss'] / math.log(2):.4f}") for s in vs]
    if rows:
        out.append("<h3>Every evaluation</h3>")
        out.append('<div class="scroll evals">' +
                   H.table(rows, ["step", "epoch", "val loss (nats/char)", "bits/char"],
                           numeric={0, 1, 2, 3}) + "</div>")
    return "\n".join(out)


def _samples(samples):
    out = ["<h2>Samples during training</h2>",
           '<p class="note">What the model wrote (temperature 0.8) at each evaluation: '
           "watch it learn spelling, then words, then the shape of a play.</p>"]
    if not samples:
        return "\n".join(out + ['<p class="note">No samples recorded: this run has no '
                                "samples.jsonl (older charrnn versions did not keep them).</p>"])
    if len(samples) > MAX_SAMPLES:
        keep = np.unique(np.linspace(0, len(samples) - 1, MAX_SAMPLES).round().astype(int))
        samples = [samples[i] for i in keep]
    out.append('<div class="scroll samples" style="max-height:520px">')
    for s in samples:
        val = f" &middot; val {s['val_loss']:.4f}" if s.get("val_loss") is not None else ""
        if s.get("items"):       # documents: the share of items found among them
            val += (f" &middot; {round(s.get('copied_items', 0) * s['items'])} of "
                    f"{s['items']} items found among the training documents")
        elif s.get("copied") is not None:
            val += f" &middot; longest piece copied from the text: {s['copied']} characters"
        out.append(f'<div class="sample"><div class="head">step {s["step"]:,} &middot; epoch '
                   f'{s.get("epoch", 0):.2f}{val}</div><pre>{escape(s.get("text", ""))}</pre></div>')
    out.append("</div>")
    return "\n".join(out)


def _passage_start(text, limit):
    """Start the shown passage at a speech (after a blank line) or at least a line, so
    it reads as text; skip a little so the model has context."""
    for mark in ("\x03", "\n\n", "\n"):   # a document's start (--docs), a speech, a line
        i = text.find(mark, 40, max(41, len(text) - limit))
        if i >= 0:
            return i + len(mark)
    return 1


def _passage(p, limit, source, offset):
    start = _passage_start(p.text, limit)
    end = min(len(p.text), start + limit)
    chars = p.text[start:end].replace("\x03", "\n")   # documents (--docs): one a line
    tp = p.target_probs[start - 1:end - 1]       # P(text[t] | text[:t]) for t in [start, end)
    tops = [p.top(t - 1) for t in range(start, end)]
    loss = float(-np.log(tp).mean())
    where = (f"from character {offset + start:,} of the corpus, read from the start of "
             "that split" if offset else f"from character {start:,}, read from its start")
    out = ["<h2>What the model expects, character by character</h2>",
           f'<p class="note">{len(chars):,} characters of {escape(source)} ({where}). Each '
           "character is coloured by the probability the model gave it before seeing it; "
           "hover for the model's five likeliest characters at that point. "
           f"On this passage: {loss:.4f} nats/char ({loss / math.log(2):.3f} bits/char), "
           f"{np.mean(tp > 0.5):.0%} of characters with p &gt; 0.5.</p>",
           H.prob_scale(),
           H.probability_text(chars, tp, tops, start)]
    return "\n".join(out)


def _units(p, limit, source):
    from charrnn.inspect.hidden_units import interesting_units
    units = interesting_units(p.text, p.hidden)
    start = _passage_start(p.text, limit)
    chars = p.text[start:start + limit].replace("\x03", "\n")
    out = ["<h2>Hidden units that track the text</h2>",
           f'<p class="note">For each visible property of the text, the hidden unit whose '
           f"activation (h, after reading each character) correlates best with it over "
           f"the first {len(p.text):,} characters of {escape(source)} (Pearson r). "
           "Red: positive, blue: negative.</p>",
           H.activation_scale()]
    if not units:
        out.append('<p class="note">No feature varies enough in this text to look for units.</p>')
    for u in units:
        acts = p.hidden[u.layer, start:start + limit, u.index]
        out.append(f'<div class="unit"><h3>{escape(u.feature)}: layer {u.layer + 1}, unit '
                   f"{u.index} <small>(r = {u.r:+.2f})</small></h3>")
        out.append(H.activation_text(chars, acts) + "</div>")
    return "\n".join(out)
