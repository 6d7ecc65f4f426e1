"""Classifiers as users meet them: `charrnn train --task classify`, `charrnn classify`,
`charrnn eval` and `charrnn runs` on a classifier run, and the Python API."""
import json
import os
import signal

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.data.pairs import read_pairs, split_pairs
from charrnn.errors import CheckpointError, CorpusError, ConfigError
from charrnn.training.loop import Interrupted, train

TINY = ["--task", "classify", "--hidden", "16", "--embed", "8", "--batch-size", "16",
        "--max-minutes", "0", "--threads", "1"]


def two_alphabets(path, n=240, seed=0):
    """Latin and Greek strings of 2-8 letters: a classifier learns them in seconds."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        label, letters = ("latin", "abcdefghij") if i % 2 else ("greek", "αβγδεζηθικ")
        lines.append(label + "\t" + "".join(rng.choice(list(letters), rng.integers(2, 9))))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHARRNN_RUNS", raising=False)
    return CliRunner()


@pytest.fixture
def pairs(tmp_path):
    return two_alphabets(tmp_path / "pairs.tsv")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cls")
    tsv = two_alphabets(d / "pairs.tsv")
    r = CliRunner().invoke(main, ["train", str(tsv), "--out", str(d / "run"), "--max-steps",
                                  "60", *TINY], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "run"


def invoke(runner, *args, **kw):
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


def one_line(r):
    assert r.exit_code == 1, (r.exit_code, r.output)
    assert r.output.startswith("Error: ") and r.output.count("\n") == 1, r.output
    return r.output


# ---- the TSV reader ----------------------------------------------------------------------

@pytest.mark.parametrize("text,line,what", [
    ("a\tx\nno tab here\n", 2, "no tab"),
    ("a\tx\n\tx\n", 2, "empty label"),
    ("a\tx\nb\tx\n\nc\t\n", 4, "empty text"),
])
def test_tsv_errors_name_the_line(tmp_path, text, line, what):
    p = tmp_path / "bad.tsv"
    p.write_text(text)
    with pytest.raises(CorpusError, match=f"bad.tsv, line {line}: {what}"):
        read_pairs(p)


def test_tsv_bad_encoding_and_first_tab(tmp_path):
    p = tmp_path / "bad.tsv"
    p.write_bytes(b"a\tok\r\nb\t\xff\xfe\n")
    with pytest.raises(CorpusError, match="line 2: not valid utf-8"):
        read_pairs(p)
    p.write_bytes(b"a\tone\ttwo\r\n\nb\tz")
    got = read_pairs(p)
    assert got.left == ["a", "b"] and got.right == ["one\ttwo", "z"] and got.lines == [1, 3]


def test_split_is_whole_stratified_and_seeded():
    keys = ["a"] * 50 + ["b"] * 10
    tr, va = split_pairs(keys, 0.1, 7)
    assert sorted([*tr, *va]) == list(range(60))
    assert sum(keys[i] == "a" for i in va) == 5 and sum(keys[i] == "b" for i in va) == 1
    assert np.array_equal(va, split_pairs(keys, 0.1, 7)[1])
    assert not np.array_equal(va, split_pairs(keys, 0.1, 8)[1])


def test_cli_train_errors_are_one_line(runner, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("en\thello\nfr bonjour\n")
    assert "bad.tsv, line 2: no tab" in one_line(invoke(runner, "train", bad, *TINY))
    assert not (tmp_path / "charrnn-runs").exists() or not any((tmp_path / "charrnn-runs").iterdir())
    one = tmp_path / "one.tsv"
    one.write_text("en\thello\nen\tworld\n")
    assert "two labels" in one_line(invoke(runner, "train", one, *TINY))
    assert "needs FILE" in one_line(invoke(runner, "train", "--task", "classify"))
    assert "--dropout does not apply" in one_line(
        invoke(runner, "train", one, *TINY, "--dropout", "0.2"))


# ---- train, classify, eval, runs -----------------------------------------------------------

def test_train_learns_and_writes_a_run(trained):
    assert {"model.safetensors", "best.safetensors", "state.safetensors",
            "metrics.jsonl"} <= {p.name for p in trained.iterdir()}
    lines = [json.loads(l) for l in (trained / "metrics.jsonl").read_text().splitlines()]
    accs = [l["val_accuracy"] for l in lines if "val_accuracy" in l]
    assert accs and accs[-1] >= 0.95
    assert lines[-1]["final"] and lines[-1]["stopped_by"] == "max-steps"


def test_classify_top_json_and_stdin(runner, trained):
    r = invoke(runner, "classify", trained, "abcd", "γδεζ", "--top", "2")
    assert r.exit_code == 0, r.output
    rows = [l.split("\t") for l in r.output.splitlines()]
    assert [row[0] for row in rows] == ["latin", "greek"]
    assert [row[2] for row in rows] == ["greek", "latin"] and rows[0][-1] == "abcd"
    assert abs(float(rows[0][1]) + float(rows[0][3]) - 1) < 1e-3
    r = invoke(runner, "classify", trained, "--json", input="hij\n\nθικ\n")
    got = [json.loads(l) for l in r.output.splitlines()]
    assert [g["text"] for g in got] == ["hij", "θικ"]
    assert [g["top"][0]["label"] for g in got] == ["latin", "greek"]


def test_eval_reports_accuracy(runner, trained, tmp_path):
    test = two_alphabets(tmp_path / "test.tsv", n=40, seed=1)
    r = invoke(runner, "eval", trained, test)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("accuracy 1.0000 (40 of 40), loss ")
    assert "greek" in r.output and "20 of     20" in r.output


def test_python_api(trained):
    clf = charrnn.load_classifier(trained)
    assert clf.labels == ["greek", "latin"]
    assert clf.predict(["abc", "αβγ"]) == ["latin", "greek"] and clf.predict("abc") == "latin"
    p = clf.predict_proba(["abc", "αβγ", "a"])
    assert p.shape == (3, 2) and np.allclose(p.sum(1), 1)
    assert clf.top("abc", 2)[0][0] == "latin"


def test_wrong_kind_is_one_line(runner, trained, tmp_path):
    assert "is a classifier" in one_line(invoke(runner, "sample", trained, "--length", "5"))
    assert "is a classifier run" in one_line(invoke(runner, "report", trained, "-o",
                                                    tmp_path / "r.html"))
    with pytest.raises(CheckpointError, match="is a classifier"):
        charrnn.load(trained)
    lm = tmp_path / "lm"
    text = tmp_path / "t.txt"
    text.write_text("hello world, " * 200)
    r = invoke(runner, "train", text, "--out", lm, "--max-steps", "2", "--hidden", "8",
               "--embed", "4", "--seq-len", "8", "--batch-size", "2", "--max-minutes", "0", "-q")
    assert r.exit_code == 0, r.output
    assert "language model" in one_line(invoke(runner, "classify", lm, "x"))


def test_runs_lists_the_task(runner, trained):
    r = invoke(runner, "runs", trained.parent)
    head, row = r.output.splitlines()[:2]
    assert "task" in head and "val acc" in head
    assert "classify" in row and "BiGRU 1x16" in row and "finished" in row
    got = json.loads(invoke(runner, "runs", trained.parent, "--json").output)
    assert got[0]["task"] == "classify" and got[0]["val_accuracy"] >= 0.95


# ---- resume --------------------------------------------------------------------------------

OPTS = dict(task="classify", hidden=12, embed=6, batch_size=16, max_minutes=0, max_steps=40,
            eval_every=7, seed=3)


def _interrupt_after(step):
    def progress(record):
        if record["step"] == step:
            os.kill(os.getpid(), signal.SIGINT)
    return progress


def _losses(run):
    return [l["train_loss"] for l in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "lr" in l]


def run_twice(tsv, tmp_path, opts, stop=17):
    """(whole, cut): a run straight through, and one Ctrl-C'd after step `stop` and
    resumed; the two must have made the same 40 steps, with the same losses."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(str(tsv), out=str(whole), threads=1, quiet=True, **opts)
    with pytest.raises(Interrupted):
        train(str(tsv), out=str(cut), threads=1, quiet=True, progress=_interrupt_after(stop),
              **opts)
    train(out=str(cut), resume=True, threads=1, quiet=True, **opts)
    assert _losses(cut) == _losses(whole) and len(_losses(whole)) == 40
    return whole, cut


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, pairs):
    whole, cut = run_twice(pairs, tmp_path, OPTS)
    a = charrnn.load_classifier(whole, best=False).model.flat
    b = charrnn.load_classifier(cut, best=False).model.flat
    assert np.array_equal(a, b)


def test_resume_refuses_a_changed_file(tmp_path, pairs):
    run = tmp_path / "run"
    train(str(pairs), out=str(run), threads=1, quiet=True, **{**OPTS, "max_steps": 5})
    pairs.write_text(pairs.read_text() + "latin\tzzz\n")
    with pytest.raises(CorpusError, match="changed since the run started"):
        train(str(pairs), out=str(run), resume=True, threads=1, quiet=True, **OPTS)


def test_two_threads_run_the_directions_at_once(tmp_path, pairs):
    """--threads 2 sets the classifier's parallel attribute; the losses are the same."""
    one, two = tmp_path / "one", tmp_path / "two"
    train(str(pairs), out=str(one), threads=1, quiet=True, **{**OPTS, "max_steps": 10})
    train(str(pairs), out=str(two), threads=2, quiet=True, **{**OPTS, "max_steps": 10})
    assert np.allclose(_losses(one), _losses(two), atol=1e-5)


def test_lm_task_is_the_default_and_rejects_bad_task():
    from charrnn.training.options import TrainConfig
    assert TrainConfig().task == "lm"
    with pytest.raises(ConfigError, match="--task must be one of lm, classify"):
        TrainConfig(task="translate").validate()


def test_lm_runs_are_unchanged_by_the_task_option(tmp_path):
    """task="lm" (the default) is today's language model, step for step."""
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. " * 100)
    lm = dict(hidden=8, embed=4, seq_len=8, batch_size=2, max_minutes=0, max_steps=6,
              threads=1, quiet=True)
    train(str(text), out=str(tmp_path / "a"), **lm)
    train(str(text), out=str(tmp_path / "b"), task="lm", **lm)
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b") and len(_losses(tmp_path / "a")) == 6


def test_ctrl_c_saves_and_says_how_to_resume(tmp_path, pairs):
    """A real `charrnn train --task classify` process: SIGINT saves, exits 130, resumes."""
    from conftest import interrupt_training
    run = tmp_path / "run"
    code, err = interrupt_training([pairs, *TINY[:-4], "--max-minutes", "5", "--threads", "1"], run)
    assert code == 130, err
    assert "resume with: charrnn train --out" in err and "Traceback" not in err
    assert (run / "state.safetensors").is_file()
    steps = _losses(run)
    r = CliRunner().invoke(main, ["train", "--out", str(run), "--resume", "--max-steps",
                                  str(len(steps) + 5), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert len(_losses(run)) == len(steps) + 5 and _losses(run)[:len(steps)] == steps


def test_a_run_stopped_by_patience_is_finished():
    from charrnn.inspect.runs import _state
    assert _state([{"step": 9, "final": True, "stopped_by": "patience"}], None, {}) == \
        ("finished", "patience")
    assert _state([{"step": 9, "final": True, "stopped_by": "SIGINT"}], None, {})[0] == "interrupted"


def test_mean_pooling_trains_and_is_kept_by_the_run(runner, tmp_path, pairs):
    from charrnn.nn.classifier import POOLS
    from charrnn.training.options import POOLS as OPTION_POOLS
    assert OPTION_POOLS == POOLS
    run = tmp_path / "mean"
    r = invoke(runner, "train", pairs, "--out", run, "--max-steps", "60", "--pool", "mean", *TINY)
    assert r.exit_code == 0, r.output
    assert "mean-pooled" in r.output
    clf = charrnn.load_classifier(run, best=False)
    assert clf.model.cfg.pool == "mean"
    # the mean-pooled model reads the alphabets as the final-state one does
    r = invoke(runner, "classify", run, "abcab", "αβγαβ")
    assert [l.split("\t")[0] for l in r.output.splitlines()] == ["latin", "greek"], r.output
    one_line(invoke(runner, "train", pairs, "--pool", "mean", "--max-steps", "1", "--out",
                    tmp_path / "lm"))
    one_line(invoke(runner, "train", pairs, "--task", "seq2seq", "--pool", "mean",
                    "--out", tmp_path / "s2s"))
