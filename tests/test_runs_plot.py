"""`charrnn runs` and `charrnn plot`: run states read from real runs, and both plot
backends (matplotlib files, plotext in the terminal) plus the fallbacks without them."""
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from charrnn.io import rundir
import charrnn
from charrnn.inspect import plot as P
from charrnn.cli import main
from charrnn.training.loop import Interrupted, train

TINY = dict(hidden=16, layers=1, embed=8, seq_len=8, batch_size=4, eval_every=4,
            max_minutes=0, val_frac=0.1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    p = tmp_path_factory.mktemp("corpus") / "poem.txt"
    p.write_text("Shall I compare thee to a summer's day?\nThou art more lovely.\n" * 30)
    return p


def metrics(run):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def root(corpus, tmp_path_factory):
    """Three runs as they really end: at their budget, by Ctrl-C, and by a crash."""
    root = tmp_path_factory.mktemp("runs")
    train(str(corpus), out=str(root / "done"), quiet=True, max_steps=10, **TINY)

    def interrupt(record):
        if record["step"] == 6:
            os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(Interrupted):
        train(str(corpus), out=str(root / "stopped"), quiet=True, max_steps=50,
              progress=interrupt, **TINY)

    def crash(record):
        if record["step"] == 9:
            raise RuntimeError("simulated crash")
    with pytest.raises(RuntimeError):
        train(str(corpus), out=str(root / "crashed"), quiet=True, max_steps=50,
              progress=crash, **TINY)
    return root


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ---- runs ------------------------------------------------------------------------------

def test_runs_states_and_numbers_come_from_the_run(root):
    found = {r.name: r for r in charrnn.runs(root)}
    assert set(found) == {"done", "stopped", "crashed"}
    done, stopped, crashed = found["done"], found["stopped"], found["crashed"]
    assert (done.state, done.stopped_by) == ("finished", "max-steps")
    assert (stopped.state, stopped.stopped_by) == ("interrupted", "SIGINT")
    assert (crashed.state, crashed.stopped_by) == ("interrupted", None)
    m = metrics(root / "done")
    vals = [r["val_loss"] for r in m if "val_loss" in r]
    assert done.best_val_loss == min(vals) and len(vals) == 3        # steps 4, 8, final 10
    assert done.best_val_bpc == pytest.approx(min(vals) / math.log(2))
    assert done.steps == 10 and done.epochs == m[-1]["epoch"]
    assert done.chars_seen == 10 * 4 * 8
    assert (done.cell, done.layers, done.hidden) == ("gru", 1, 16) and done.model == "GRU 1x16"
    assert done.corpus.endswith("poem.txt")
    assert crashed.steps == 9                 # the lines it wrote before dying
    assert stopped.steps == 6


def test_a_run_stopped_early_by_patience_is_finished(corpus, tmp_path):
    # a rising validation loss from the start: lr far too high for the model
    train(str(corpus), out=str(tmp_path / "early"), quiet=True, max_steps=400, patience=1,
          lr=0.5, grad_clip=0, **TINY)
    (run,) = charrnn.runs(tmp_path)
    assert run.stopped_by == "patience" and run.steps < 400
    assert run.state == "finished"


def test_runs_table_and_json(root):
    r = invoke("runs", root)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split()[:3] == ["run", "corpus", "model"] and len(lines) == 4
    done = next(l for l in lines if l.startswith("done"))
    best = charrnn.runs(root / "done")[0].best_val_loss
    assert "finished" in done and f"{best:.4f}" in done and "poem.txt" in done
    assert f"{best / math.log(2):.3f}" in done and "GRU 1x16" in done
    assert "interrupted" in next(l for l in lines if l.startswith("crashed"))
    j = invoke("runs", root, "--json")
    rows = {d["name"]: d for d in json.loads(j.output)}
    assert rows["done"]["best_val_loss"] == best and rows["stopped"]["stopped_by"] == "SIGINT"
    assert rows["done"]["state"] == "finished" and rows["done"]["steps"] == 10


def test_runs_on_an_empty_or_missing_root_says_so(tmp_path):
    for where in (tmp_path, tmp_path / "nothing-here"):
        r = invoke("runs", where)
        assert r.exit_code == 0 and "no runs under" in r.output and r.output.count("\n") == 1
        assert json.loads(invoke("runs", where, "--json").output) == []


def test_running_is_the_held_lock_not_a_stale_pid(root):
    run = root / "done"
    with rundir.RunLock(run):
        r = charrnn.runs(run)[0]
        assert r.state == "running" and r.pid == os.getpid()
        assert "running (pid" in invoke("runs", root).output
    assert charrnn.runs(run)[0].state == "finished"     # released: truncated
    # A killed trainer leaves its pid; that pid (here: a live process, us) proves nothing.
    (run / rundir.LOCK_FILE).write_text(f"{os.getpid()}\n")
    try:
        assert charrnn.runs(run)[0].state == "finished"
    finally:
        (run / rundir.LOCK_FILE).write_text("")


def test_a_real_trainer_is_running_then_interrupted(corpus, tmp_path):
    run = tmp_path / "live"
    args = [sys.executable, "-c", "import sys; from charrnn.cli import main; sys.exit(main())",
            "train", str(corpus), "--out", str(run), "--quiet", "--hidden", "16", "--layers", "1",
            "--embed", "8", "--seq-len", "8", "--batch-size", "4", "--eval-every", "3",
            "--max-minutes", "0", "--max-steps", "1000000", "--threads", "1"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        t0 = time.time()
        while not (run / "state.safetensors").exists():
            assert time.time() - t0 < 60 and proc.poll() is None, "trainer never started"
            time.sleep(0.05)
        r = charrnn.runs(run)[0]
        assert r.state == "running" and r.pid == proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 130
    r = charrnn.runs(run)[0]
    assert (r.state, r.stopped_by) == ("interrupted", "SIGINT")


# ---- plot ------------------------------------------------------------------------------

def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert data[-8:-4] == b"IEND"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_png_and_svg(root, tmp_path):
    r = invoke("plot", root / "done", root / "stopped", "-o", tmp_path / "loss.png")
    assert r.exit_code == 0, r.output
    assert png_size(tmp_path / "loss.png") == (800, 560)
    r = invoke("plot", root / "done", root / "stopped", "-o", tmp_path / "loss.svg", "--x", "chars")
    assert r.exit_code == 0, r.output
    svg = ET.parse(tmp_path / "loss.svg").getroot()
    assert svg.tag.endswith("svg")
    texts = " ".join(t.text or "" for t in svg.iter() if t.tag.endswith("text"))
    best = charrnn.runs(root / "done")[0].best_val_loss
    assert "done train" in texts and "stopped train" in texts      # overlaid, with a legend
    assert f"done val (best {best:.3f})" in texts and "characters seen" in texts


def test_plot_rejects_other_formats_and_empty_runs(root, tmp_path):
    r = invoke("plot", root / "done", "-o", tmp_path / "loss.jpg")
    assert r.exit_code == 2 and ".png or .svg" in r.output
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    r = invoke("plot", tmp_path / "empty")
    assert r.exit_code == 1 and "no training steps" in r.output and "Traceback" not in r.output


def test_plot_in_the_terminal(root):
    text = P.terminal_plot([P.load_series(root / "done")], width=100, height=30, color=False)
    lines = text.splitlines()
    assert len(lines) >= 28 and max(len(l) for l in lines) <= 100
    assert "loss (nats/char)" in text and "learning rate" in text and "done val" in text
    r = invoke("plot", root / "done")
    assert r.exit_code == 0 and "loss (nats/char)" in r.output


def test_plot_without_matplotlib_falls_back_to_the_terminal(root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # `import matplotlib` fails
    assert not P.have_matplotlib()
    r = invoke("plot", root / "done")
    assert r.exit_code == 0 and "loss (nats/char)" in r.output
    r = invoke("plot", root / "done", "-o", tmp_path / "loss.png")
    assert r.exit_code == 1 and not (tmp_path / "loss.png").exists()
    assert "loss (nats/char)" in r.output                      # drawn anyway
    assert 'matplotlib is not installed' in r.output and 'charrnn-fast[plot]' in r.output


def test_plot_with_neither_library_is_one_line(root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "plotext", None)
    for extra in ([], ["-o", tmp_path / "loss.svg"]):
        r = invoke("plot", root / "done", *extra)
        assert r.exit_code == 1, r.output
        assert r.output.count("\n") == 1 and 'pip install "charrnn-fast[plot]"' in r.output
        assert "Traceback" not in r.output


def test_follow_redraws_until_the_run_stops(root, tmp_path):
    run = root / "done"
    frames, lock = [], rundir.RunLock(run).acquire()

    def sleep(seconds):            # the "trainer" finishes during the first wait
        lock.release()
    try:
        P.follow([run], interval=0.01, out=tmp_path / "live.png", echo=frames.append, sleep=sleep)
    finally:
        lock.release()
    assert len(frames) == 2
    assert "done: running" in frames[0] and "done: finished" in frames[1]
    assert png_size(tmp_path / "live.png") == (800, 560)


# ---- what the trainer records for them ------------------------------------------------------

def test_final_line_says_why_and_samples_are_kept_across_resume(corpus, tmp_path):
    run = tmp_path / "run"
    train(str(corpus), out=str(run), quiet=True, max_steps=8, **TINY)
    m = metrics(run)
    assert m[-1] == {"step": 8, "epoch": m[-2]["epoch"], "wall_time": m[-1]["wall_time"],
                     "final": True, "stopped_by": "max-steps"}   # step 8's line has the losses
    samples = [json.loads(l) for l in (run / "samples.jsonl").read_text().splitlines()]
    val = {r["step"]: r["val_loss"] for r in m if "val_loss" in r}
    assert [s["step"] for s in samples] == [4, 8]                 # written by a --quiet run too
    assert all(s["val_loss"] == val[s["step"]] and len(s["text"]) == 200 for s in samples)
    train(str(corpus), out=str(run), quiet=True, max_steps=10, resume=True)
    samples = [json.loads(l) for l in (run / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [4, 8, 10]
    assert metrics(run)[-1]["stopped_by"] == "max-steps" and metrics(run)[-1]["step"] == 10
    assert charrnn.runs(run)[0].state == "finished"


def test_view_commands_have_help_with_an_example_and_reject_non_runs(tmp_path):
    for cmd in ("runs", "plot", "report"):
        h = invoke(cmd, "--help")
        assert h.exit_code == 0 and "Example" in h.output, cmd
    for cmd in ("plot", "report"):
        r = invoke(cmd, tmp_path)                      # a directory, but not a run
        assert r.exit_code == 1 and "is not a run directory" in r.output, cmd
        assert r.output.count("\n") == 1
    r = invoke("plot")
    assert r.exit_code == 2                            # RUN... is required
