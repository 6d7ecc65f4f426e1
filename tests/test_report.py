"""`charrnn report`: one valid, self-contained HTML file whose numbers are the run's
metrics and the model's own probabilities."""
import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.data.batches import split_train_val
from charrnn.training.loop import train
from charrnn.inspect.hidden_units import correlations, features

VOID = {"meta", "br", "hr", "img", "input", "link", "source", "wbr", "col", "area", "base"}
SVG_EMPTY = {"line", "rect", "circle", "polyline", "path"}


class Page(HTMLParser):
    """Checks nesting (every tag closed, in order) and collects what the tests read."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.urls = [], [], []
        self.spans, self.tables, self.h3, self.text_blocks = [], [], [], []
        self._cell = self._row = self._h3 = self._span = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href", "xlink:href", "action"):
            if k in a:
                self.urls.append(a[k])
        if "style" in a and "url(" in a["style"] and "url(#" not in a["style"]:
            self.urls.append(a["style"])
        if tag == "div" and "data-start" in a:
            self.text_blocks.append(int(a["data-start"]))
        if tag == "span" and "data-p" in a:
            self._span = {"p": float(a["data-p"]), "top": a["data-top"], "text": ""}
            self.spans.append(self._span)
        if tag == "table":
            self.tables.append([])
        if tag == "tr":
            self._row = []
            self.tables[-1].append(self._row)
        if tag in ("td", "th"):
            self._cell = ""
        if tag == "h3":
            self._h3 = ""
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag not in SVG_EMPTY | VOID:
            self.errors.append(f"self-closed <{tag}/>")

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag in ("td", "th"):
            self._row.append(self._cell)
            self._cell = None
        if tag == "h3":
            self.h3.append(self._h3)
            self._h3 = None
        if tag == "span":
            self._span = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._h3 is not None:
            self._h3 += data
        if self._span is not None:
            self._span["text"] += data


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    text = ""
    rng = np.random.default_rng(0)
    for i in range(400):
        name = rng.choice(["ROMEO", "JULIET", "NURSE"])
        text += f'{name}:\nI said "{rng.choice(["yes", "no", "soon"])}" (and meant it), {i}.\n\n'
    corpus = d / "play.txt"
    corpus.write_text(text)
    run = d / "run"
    train(str(corpus), out=str(run), quiet=True, cell="lstm", hidden=24, layers=2, embed=8,
          seq_len=16, batch_size=8, lr=1e-2, eval_every=30, max_steps=75, max_minutes=0, val_frac=0.2)
    return run


def parse(path):
    html = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    page.close()
    return html, page


def test_report_is_valid_self_contained_html(run, tmp_path):
    r = CliRunner().invoke(main, ["report", str(run), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    html, page = parse(tmp_path / "r.html")
    assert html.startswith("<!DOCTYPE html>") and page.errors == [] and page.stack == []
    assert page.urls == []                                 # nothing to fetch
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert html.count("<svg") == 2 and len(page.spans) == 1500


def test_report_numbers_are_the_metrics(run, tmp_path):
    from charrnn.inspect.report import write_report
    html, page = parse(write_report(run, tmp_path / "r.html"))
    metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    vals = {m["step"]: m for m in metrics if "val_loss" in m}
    evals = next(t for t in page.tables if t[0][0] == "step")
    assert [int(row[0]) for row in evals[1:]] == sorted(vals) == [30, 60, 75]
    for step, epoch, nats, bpc in evals[1:]:
        m = vals[int(step)]
        assert float(nats) == m["val_loss"] and float(epoch) == round(m["epoch"], 2)
        assert float(bpc) == pytest.approx(m["val_loss"] / math.log(2), abs=1e-4)
    best = min(m["val_loss"] for m in vals.values())
    assert f"<b>{best:.4f}</b><span>best val loss, nats/char</span>" in html
    samples = [json.loads(l) for l in (run / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [30, 60, 75]
    for s in samples:
        assert f'step {s["step"]:,} &middot;' in html
        assert html.count(s["text"].replace("&", "&amp;").replace("<", "&lt;")
                          .replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#x27;")) >= 1
    config = {row[0]: row[1] for t in page.tables if t[0] == ["option", "value"] for row in t[1:]}
    assert config["hidden"] == "24" and config["cell"] == "lstm" and config["eval_every"] == "30"


def test_report_probabilities_are_the_models(run, tmp_path):
    from charrnn.inspect.report import write_report
    html, page = parse(write_report(run, tmp_path / "r.html"))
    model = charrnn.load(run, best=True)
    ids = np.load(run / "corpus.npy")
    held_out = split_train_val(ids, 0.2)[1]
    text = "".join(model.vocab[i] for i in held_out[:20000])
    p = model.probe(text)
    (start,) = page.text_blocks
    shown = "".join("\n" if s["text"] == "↵" else s["text"] for s in page.spans)
    assert shown == text[start:start + len(shown)] and len(shown) == 1500
    got = np.array([s["p"] for s in page.spans])
    want = p.target_probs[start - 1:start - 1 + len(shown)]
    np.testing.assert_allclose(got, want, atol=5e-7)      # printed with 6 decimals
    assert got.std() > 0.05                                # a trained model, not uniform
    for i in (0, 17, 600):                                 # the hover text: top 5 at that point
        top = p.top(start + i - 1)
        lines = page.spans[i]["top"].splitlines()
        assert lines[1] == "model's top 5:" and len(lines) == 7
        for line, (c, q) in zip(lines[2:], top):
            assert line.split()[-1] == f"{q:.4f}"
    # the hidden units: their r is the correlation of that unit with that feature
    assert page.h3[0] == "Every evaluation" and len(page.h3) >= 3
    feats = features(p.text)
    for title in page.h3[1:]:
        m = re.fullmatch(r"(.+): layer (\d+), unit (\d+) \(r = ([+-][0-9.]+)\)", title)
        assert m, title
        r = correlations(p.hidden, feats[m[1]])[int(m[2]) - 1, int(m[3])]
        assert f"{r:+.2f}" == m[4]


def test_report_on_a_given_text_and_bad_input(run, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text('ROMEO:\nI said "no" (and meant it), 3.\n\n' * 40)
    r = CliRunner().invoke(main, ["report", str(run), "--text", str(text), "--chars", "200",
                                  "-o", str(tmp_path / "t.html")])
    assert r.exit_code == 0, r.output
    _, page = parse(tmp_path / "t.html")
    assert len(page.spans) == 200
    text.write_text("a text with characters it never saw: Zebra ~\n" * 10)
    r = CliRunner().invoke(main, ["report", str(run), "--text", str(text)])
    assert r.exit_code == 1 and "never saw" in r.output and r.output.count("\n") == 1
    (tmp_path / "empty-run").mkdir()
    (tmp_path / "empty-run" / "metrics.jsonl").write_text("")
    r = CliRunner().invoke(main, ["report", str(tmp_path / "empty-run")])
    assert r.exit_code == 1 and "no model to report on yet" in r.output
    assert "Traceback" not in r.output


def test_report_bounds_the_probabilities_it_computes(run, tmp_path, monkeypatch):
    import charrnn.inspect.report as report
    V = len(charrnn.load(run).vocab)
    monkeypatch.setattr(report, "PROBS_BUDGET", 500 * V)     # as for a huge vocabulary
    _, page = parse(report.write_report(run, tmp_path / "r.html"))
    assert 100 < len(page.spans) < 500


# ---- every valid run has a report (issue 27, item 13) -------------------------------------

SMALL = dict(hidden=8, layers=1, embed=4, seq_len=8, batch_size=2, max_minutes=0,
             max_steps=4, eval_every=2)


def test_report_of_a_run_trained_without_validation(tmp_path):
    text = tmp_path / "short.txt"
    text.write_text("hello world, the cat sat. " * 20)   # too short to hold anything out
    summary = train(str(text), out=str(tmp_path / "r"), quiet=True, **SMALL)
    assert summary["val_loss"] is None
    r = CliRunner().invoke(main, ["report", str(tmp_path / "r"), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "r.html").read_text()
    assert "Samples during training" in html and "no held-out part" in html
    assert "What the model expects" in html   # the passage, from the training text


def test_report_of_a_byte_level_run_on_non_ascii_text(tmp_path):
    text = tmp_path / "fr.txt"
    text.write_text("Le café était très amusé, où êtes-vous? Ça va. " * 300, encoding="utf-8")
    train(str(text), out=str(tmp_path / "r"), quiet=True, encoding="bytes", **SMALL)
    r = CliRunner().invoke(main, ["report", str(tmp_path / "r"), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    assert "held-out" in (tmp_path / "r.html").read_text()
