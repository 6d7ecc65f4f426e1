"""Any text, any size: small corpora train with the defaults (train, sample and eval all
exit 0), text as people have it trains, early stopping, best weights by default."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.data.corpus import bundled_corpus
from charrnn.io import checkpoint as ckpt
from charrnn.cli import main
from charrnn.training.progress import epoch_text, fraction
from charrnn.training.loop import train

SHAKESPEARE = bundled_corpus().read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def scratch_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHARRNN_RUNS", raising=False)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def ok(r):
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    return r.output


def only_run():
    runs = list((__import__("pathlib").Path("charrnn-runs")).iterdir())
    assert len(runs) == 1
    return runs[0]


def test_300_characters_train_sample_and_eval_with_no_options(tmp_path):
    p = tmp_path / "poem.txt"
    p.write_text(SHAKESPEARE[:300])
    out = ok(cli("train", p))        # no options at all: the defaults end it quickly
    assert "without validation" in out and "auto for 300 training characters" in out
    assert "at most 100 epochs" in out and "no validation" in out
    run = only_run()
    meta = ckpt.load_state(run / "state.safetensors").meta
    assert meta["train_config"]["max_epochs"] == 100 and "hidden" in meta["auto"]
    assert meta["train_config"]["batch_size"] * (meta["train_config"]["seq_len"] + 1) <= 300
    text = ok(cli("sample", "--length", "50", "--seed", "1"))
    assert len(text.strip()) > 0
    assert ok(cli("eval", run, p)).startswith("loss ")


def test_5kb_with_defaults_validates_and_reports_copying(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text(SHAKESPEARE[5000:10000])
    out = ok(cli("train", p, "--max-minutes", "0.15"))   # a time cap only
    assert "auto for 4,500 training characters" in out
    assert "val loss" in out and "found verbatim in the training text" in out
    run = only_run()
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in rows if "val_loss" in r]
    assert len(vals) >= 2 and all(np.isfinite(r["val_loss"]) for r in vals)
    assert all(0 <= r["copied"] <= 200 for r in vals)
    assert ok(cli("sample", run, "--length", "30")).strip()
    assert "loss" in ok(cli("eval", run, p))


def test_two_distinct_characters(tmp_path):
    p = tmp_path / "ab.txt"
    p.write_text("ab" * 400 + "aab" * 100)
    ok(cli("train", p, "--max-minutes", "0.05"))
    assert sorted(charrnn.load(only_run()).vocab) == ["a", "b"]


def test_explicit_batch_size_too_large_is_still_the_clear_error(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(SHAKESPEARE[:3000])
    r = cli("train", p, "--batch-size", "5000")
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert "--batch-size 5000" in r.output and "characters" in r.output


def test_default_batch_shrinks_to_fit_and_says_so(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(SHAKESPEARE[:300])
    out = ok(cli("train", p, "--seq-len", "100", "--batch-size", "2", "--max-epochs", "1"))
    assert "cannot fill" not in out                      # 2 x 101 fits in 300: honoured
    out = ok(cli("train", p, "--seq-len", "100", "--max-epochs", "1", "--out", "r2"))
    cfg = ckpt.load_state(tmp_path / "r2" / "state.safetensors").meta["train_config"]
    assert cfg["seq_len"] == 100 and cfg["batch_size"] * 101 <= 300


def test_resumed_small_run_continues_with_the_same_choice(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(SHAKESPEARE[:2000])
    s = train(str(p), out="r", quiet=True, max_steps=6)
    first = ckpt.load_state(tmp_path / "r" / "state.safetensors").meta
    s2 = train(out="r", resume=True, quiet=True, max_steps=12)
    again = ckpt.load_state(tmp_path / "r" / "state.safetensors").meta
    assert s["steps"] == 6 and s2["steps"] == 12
    assert again["train_config"] == dict(first["train_config"], max_steps=12)
    assert again["auto"] == first["auto"]


def test_file_cut_mid_character_trains_and_says_so(tmp_path):
    p = tmp_path / "cut.txt"
    p.write_bytes(("naïve café " * 200).encode("utf-8") + "€".encode("utf-8")[:2])
    out = ok(cli("train", p, "--max-minutes", "0.05"))
    assert "incomplete final character (2 bytes) was dropped" in out
    assert "€" not in charrnn.load(only_run()).vocab


def test_invalid_bytes_error_or_encoding_errors(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"hello world " * 100 + b"\xff" + b" more text" * 50)
    r = cli("train", p)
    assert r.exit_code == 1 and "byte offset 1,200" in r.output
    assert "--encoding-errors replace" in r.output and r.output.count("\n") == 1
    ok(cli("train", p, "--encoding-errors", "replace", "--max-minutes", "0.05", "--out", "r"))
    assert "\ufffd" in charrnn.load(tmp_path / "r").vocab
    ok(cli("train", p, "--encoding-errors", "ignore", "--max-minutes", "0.05", "--out", "i"))
    assert "\ufffd" not in charrnn.load(tmp_path / "i").vocab
    r = cli("train", p, "--encoding-errors", "bogus")
    assert r.exit_code == 2 and "Invalid value for '--encoding-errors'" in r.output


def test_patience_stops_when_validation_stops_improving(tmp_path):
    # The model learns "abab..." well; the held-out "aabb..." gets worse as it does.
    p = tmp_path / "c.txt"
    p.write_text("ab" * 900 + "aabb" * 50)
    s = train(str(p), out="r", quiet=True, hidden=32, layers=1, embed=8, seq_len=16,
              batch_size=4, lr=1e-2, eval_every=5, patience=3, max_steps=2000,
              max_minutes=0)
    assert s["stopped_by"] == "patience" and s["steps"] < 2000
    vals = [json.loads(l)["val_loss"] for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
            if "val_loss" in json.loads(l)]
    assert min(vals[-3:]) >= min(vals[:-3])            # the last 3 did not improve
    best = ckpt.load_model(tmp_path / "r" / "best.safetensors").info
    assert best["val_loss"] == pytest.approx(min(vals), abs=1e-4)


def test_sample_and_eval_use_best_weights_unless_latest(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(SHAKESPEARE[:3000])
    for out, seed in (("r", 1), ("other", 2)):
        train(str(p), out=out, quiet=True, max_steps=4, seed=seed)
    # make best.safetensors differ from model.safetensors: another run's weights
    (tmp_path / "r" / "best.safetensors").write_bytes(
        (tmp_path / "other" / "model.safetensors").read_bytes())
    args = ("--length", "40", "--seed", "3")
    assert ok(cli("sample", "r", *args)) == ok(cli("sample", "other/model.safetensors", *args))
    assert ok(cli("sample", "r", "--best", *args)) == ok(cli("sample", "r", *args))
    assert ok(cli("sample", "r", "--latest", *args)) == ok(cli("sample", "r/model.safetensors", *args))
    assert ok(cli("eval", "r", p)) == ok(cli("eval", "other/model.safetensors", p))
    assert ok(cli("eval", "r", p, "--latest")) == ok(cli("eval", "r/model.safetensors", p))
    r = cli("sample", "r", "--latest", "--best")
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "--latest or --best" in r.output


def test_progress_fills_toward_the_nearest_limit():
    cfg = SimpleNamespace(max_minutes=5, max_steps=1000, max_epochs=0)
    assert fraction(cfg, 100, 0.5, 150) == (0.5, "2:30/5:00")         # time is nearer
    assert fraction(cfg, 900, 0.5, 150) == (0.9, "900/1000 steps")
    cfg = SimpleNamespace(max_minutes=0, max_steps=0, max_epochs=4)
    assert fraction(cfg, 7, 1.0, 9) == (0.25, "1.00/4 epochs")
    assert fraction(SimpleNamespace(max_minutes=0, max_steps=0, max_epochs=0), 1, 0, 1) == (None, None)
    assert epoch_text(0.0042) == "0.0042" and epoch_text(1.5) == "1.50"
