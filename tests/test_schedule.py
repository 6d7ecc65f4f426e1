"""The learning-rate schedule (charrnn.training.schedule): the final anneal, and the
anneal a classifier or transducer run starts when its validation loss stops improving."""
import json
from types import SimpleNamespace

import pytest

from charrnn.training import schedule
from charrnn.training.loop import train
from test_classify_cli import two_alphabets


def cfg(**kw):
    base = dict(lr=1e-2, lr_decay=1.0, anneal=0.2, patience=10, eval_every=100,
                max_steps=0, max_epochs=0, max_minutes=0)
    return SimpleNamespace(**{**base, **kw})


def test_anneal_falls_linearly_to_a_tenth_and_stays():
    w = (100, 200, 1.0)
    assert schedule.anneal_factor(w, 100) == 1.0
    assert schedule.anneal_factor(w, 150) == pytest.approx(0.55)
    assert schedule.anneal_factor(w, 200) == pytest.approx(0.1)
    assert schedule.anneal_factor(w, 10_000) == pytest.approx(0.1)
    assert schedule.scheduled_lr(cfg(), 0, 150, w, None) == pytest.approx(5.5e-3)


def test_budget_end_is_the_first_budget_to_run_out():
    assert schedule.budget_end(cfg(), 0, 50, 0, None, 0) is None
    assert schedule.budget_end(cfg(max_steps=300, max_epochs=4), 0, 50, 0, None, 0) == 200
    # 60 s left at 0.1 s a step plus a hundredth of a 10 s evaluation: 300 more steps
    assert schedule.budget_end(cfg(max_minutes=2), 100, 50, 50, 0.1, 10) == 400


def test_budget_anneal_starts_in_the_last_fifth():
    assert schedule.anneal_window(cfg(), 799, 1000, None) is None
    assert schedule.anneal_window(cfg(), 800, 1000, None) == (800, 1000, 1.0)
    assert schedule.anneal_window(cfg(anneal=0), 900, 1000, None) is None
    assert schedule.anneal_window(cfg(), 10, 1000, 0.4) == (10, 1000, 0.4)   # resumed mid-anneal


def test_plateau_starts_an_anneal_after_half_the_patience():
    c = cfg()
    assert schedule.plateau_window(c, 5000, None, 4) is None
    # a fifth of the steps so far, at least patience x eval_every = 1000 steps
    assert schedule.plateau_window(c, 5000, None, 5) == (5000, 6000, 1.0)
    assert schedule.plateau_window(c, 20_000, None, 7) == (20_000, 24_000, 1.0)
    assert schedule.plateau_window(c, 20_000, 21_000, 7) == (20_000, 21_000, 1.0)
    assert schedule.plateau_window(cfg(patience=2), 500, None, 1) is None
    assert schedule.plateau_window(cfg(patience=2), 500, None, 2) == (500, 700, 1.0)
    assert schedule.plateau_window(cfg(patience=0), 500, None, 99) is None
    assert schedule.plateau_window(cfg(anneal=0), 500, None, 99) is None


def test_a_classifier_run_anneals_on_a_plateau_before_patience_stops_it(tmp_path):
    """Labels that do not depend on the text: the validation loss cannot improve for
    long, so the lr falls to a tenth before patience ends the run."""
    tsv = two_alphabets(tmp_path / "pairs.tsv", n=200)
    lines = tsv.read_text(encoding="utf-8").splitlines()
    tsv.write_text("".join(("ab"[i % 3 == 0]) + "\t" + l.split("\t")[1] + "\n"
                           for i, l in enumerate(lines)), encoding="utf-8")
    run = tmp_path / "run"
    logged = []
    train(str(tsv), out=str(run), task="classify", hidden=8, embed=4, batch_size=16,
          lr=0.05, eval_every=2, patience=4, max_steps=400, max_minutes=0, threads=1,
          quiet=True, log=logged.append)
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if "lr" in r]
    final = rows[-1]
    assert final["stopped_by"] == "patience", final
    assert min(lrs) == pytest.approx(0.005) and lrs[0] == pytest.approx(0.05)
    # the lr only falls, from the step after an evaluation's (lrs[i] is step i + 1's;
    # the window starts at the evaluated step s, whose factor is 1), well before the end
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))
    start = next(i for i, x in enumerate(lrs) if x < 0.05)
    assert (start - 1) % 2 == 0 and start < len(lrs) - 4 * 2
    assert any("annealing the lr to a tenth" in l for l in logged), logged
