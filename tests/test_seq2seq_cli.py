"""Transducers as users meet them: `charrnn train --task seq2seq`, `charrnn transduce`,
`charrnn eval` and `charrnn runs` on a seq2seq run, the Python API, and the metrics."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.errors import CheckpointError, ConfigError, CorpusError
from charrnn.training.loop import train
from charrnn.training.seq2seq import train_seq2seq
from charrnn.training.seq2seq_run import split_by_source
from charrnn.training.seq2seq_score import edit_distance, error_rates, group_references

from test_classify_cli import _losses, invoke, one_line, run_twice, two_alphabets

TINY = ["--task", "seq2seq", "--target-tokens", "space", "--hidden", "32", "--embed", "16",
        "--batch-size", "16", "--max-minutes", "0", "--threads", "1"]


def reversals(path, n=300, seed=0):
    """abc -> C B A: short strings reversed, as space-separated capitals."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        s = "".join(rng.choice(list("abcde"), rng.integers(2, 6)))
        lines.append(s + "\t" + " ".join(s[::-1].upper()))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHARRNN_RUNS", raising=False)
    return CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("s2s")
    tsv = reversals(d / "rev.tsv")
    r = CliRunner().invoke(main, ["train", str(tsv), "--out", str(d / "run"), "--max-steps",
                                  "300", *TINY], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "run"


# ---- metrics -------------------------------------------------------------------------------

def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["A"]) == 1 and edit_distance(["A", "B"], ["A", "B"]) == 0
    assert edit_distance("K AE1 T".split(), "K AH0 T S".split()) == 2


def test_error_rates_take_any_reference():
    refs = group_references(["read", "read", "cat"], ["R EH1 D", "R IY1 D", "K AE1 T"], str.split)
    assert refs == {"read": [["R", "EH1", "D"], ["R", "IY1", "D"]], "cat": [["K", "AE1", "T"]]}
    r = error_rates(refs, {"read": ["R", "IY1", "D"], "cat": ["K", "AE1"]})
    assert (r["words"], r["word_errors"], r["wer"]) == (2, 1, 0.5)
    assert (r["token_errors"], r["tokens"]) == (1, 6) and r["ter"] == pytest.approx(1 / 6)
    r = error_rates(refs, {"read": ["R", "EY1", "D"], "cat": ["K", "AE1", "T"]})
    assert r["word_errors"] == 1 and r["token_errors"] == 1   # nearest reference: 1 edit


def test_split_holds_out_whole_sources():
    sources = ["a", "a", "b", "c", "c", "d"] * 10 + [f"w{i}" for i in range(40)]
    tr, va = split_by_source(sources, 0.2, 1)
    assert sorted([*tr, *va]) == list(range(len(sources)))
    assert not {sources[i] for i in tr} & {sources[i] for i in va}
    assert np.array_equal(va, split_by_source(sources, 0.2, 1)[1])


# ---- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("text,message", [
    ("cat\tK AE1 T\ndog D AO1 G\n", "bad.tsv, line 2: no tab; each line must be source<TAB>target"),
    ("cat\tK AE1 T\n\n\tD AO1 G\n", "bad.tsv, line 3: empty source"),
    ("cat\tK AE1 T\ndog\t\n", "bad.tsv, line 2: empty target"),
    ("cat\tK AE1 T\ndog\t   \n", "bad.tsv, line 2: the target has no tokens"),
])
def test_cli_train_errors_are_one_line(runner, tmp_path, text, message):
    bad = tmp_path / "bad.tsv"
    bad.write_text(text)
    assert message in one_line(invoke(runner, "train", bad, *TINY))
    assert not (tmp_path / "charrnn-runs").exists() or not any((tmp_path / "charrnn-runs").iterdir())


def test_options_that_do_not_apply(runner, tmp_path):
    tsv = reversals(tmp_path / "r.tsv", n=20)
    assert "--seq-len does not apply to --task seq2seq" in one_line(
        invoke(runner, "train", tsv, *TINY, "--seq-len", "20"))
    r = invoke(runner, "train", tsv, *TINY, "--dropout", "1.5")
    assert r.exit_code == 2 and "'--dropout': 1.5 is not in the range" in r.output
    assert "needs FILE: a TSV file of source<TAB>target" in one_line(
        invoke(runner, "train", "--task", "seq2seq"))
    assert "--target-tokens is for --task seq2seq" in one_line(
        invoke(runner, "train", tsv, "--target-tokens", "space", "--max-steps", "1"))


def test_attention_and_decoder_options(runner, tmp_path):
    tsv = reversals(tmp_path / "r.tsv", n=60)
    r = invoke(runner, "train", tsv, *TINY, "--attention", "bahdanau", "--decoder", "20",
               "--max-steps", "3", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert "20-unit decoder with Bahdanau attention" in r.output
    m = charrnn.load_transducer(tmp_path / "run", best=False).model
    assert (m.cfg.attention, m.cfg.decoder, m.cfg.attn) == ("bahdanau", 20, 32)
    assert m.params["attn.W_q"].shape == (20, 32)
    plain = tmp_path / "plain.txt"
    plain.write_text("some text to model " * 50)
    assert "--attention is for --task seq2seq" in one_line(
        invoke(runner, "train", plain, "--attention", "bahdanau", "--max-steps", "1"))
    assert "--decoder is for --task seq2seq" in one_line(
        invoke(runner, "train", tsv, "--task", "classify", "--decoder", "8"))
    r = invoke(runner, "train", tsv, *TINY, "--decoder", "-1", "--max-steps", "1")
    assert r.exit_code == 2 and "'--decoder': -1 is not in the range x>=0" in r.output
    with pytest.raises(ConfigError, match=r"--decoder must be >= 0 \(0: twice --hidden\)"):
        charrnn.TrainConfig(task="seq2seq", decoder=-1).validate()
    assert not (tmp_path / "runs").exists()
    r = invoke(runner, "train", tsv, *TINY, "--max-steps", "1", "--out", tmp_path / "auto")
    assert r.exit_code == 0, r.output
    assert charrnn.load_transducer(tmp_path / "auto", best=False).model.cfg.decoder == 64


def test_label_smoothing_option(runner, tmp_path):
    tsv = reversals(tmp_path / "r.tsv", n=60)
    runs = {}
    for eps in ("0", "0.3"):
        r = invoke(runner, "train", tsv, *TINY, "--label-smoothing", eps, "--max-steps", "3",
                   "--out", tmp_path / eps)
        assert r.exit_code == 0, r.output
        assert ("label smoothing 0.3" in r.output) == (eps == "0.3")
        runs[eps] = charrnn.load_transducer(tmp_path / eps, best=False).model.flat.copy()
    assert not np.array_equal(runs["0"], runs["0.3"])   # the gradients differ
    r = invoke(runner, "train", tsv, *TINY, "--label-smoothing", "1", "--max-steps", "1")
    assert r.exit_code == 2 and "'--label-smoothing': 1.0 is not in the range 0<=x<1" in r.output
    with pytest.raises(ConfigError, match=r"--label-smoothing must be in \[0, 1\)"):
        charrnn.TrainConfig(task="seq2seq", label_smoothing=-0.1).validate()
    assert "--label-smoothing is for --task seq2seq" in one_line(
        invoke(runner, "train", tsv, "--task", "classify", "--label-smoothing", "0.1"))
    with pytest.raises(ConfigError, match="label_smoothing must be a number in"):
        train_seq2seq([("ab", "B A")], label_smoothing=1.5)


# ---- train, transduce, eval, runs ----------------------------------------------------------

def test_train_learns_and_writes_a_run(trained):
    assert {"model.safetensors", "best.safetensors", "state.safetensors",
            "metrics.jsonl"} <= {p.name for p in trained.iterdir()}
    lines = [json.loads(l) for l in (trained / "metrics.jsonl").read_text().splitlines()]
    ters = [l["val_ter"] for l in lines if "val_ter" in l]
    assert ters and ters[-1] <= 0.05 and all("val_loss" in l for l in lines if "val_ter" in l)
    assert lines[-1]["final"] and lines[-1]["stopped_by"] == "max-steps"


def test_transduce_n_best(runner, trained):
    r = invoke(runner, "transduce", trained, "abc", "deab", "--nbest", "3")
    assert r.exit_code == 0, r.output
    rows = [l.split("\t") for l in r.output.splitlines()]
    assert [t for t, _, _ in rows] == ["abc"] * 3 + ["deab"] * 3
    assert rows[0][1] == "C B A" and rows[3][1] == "B A E D"    # the best leads
    for lo in (0, 3):
        lps = [float(lp) for _, _, lp in rows[lo:lo + 3]]
        assert lps == sorted(lps, reverse=True) and lps[0] < 0
        assert len({o for _, o, _ in rows[lo:lo + 3]}) == 3
    r = invoke(runner, "transduce", trained, "abc", "--nbest", "2", "--beam", "5", "--json")
    d = json.loads(r.output)
    assert d["text"] == "abc" and [o["output"] for o in d["outputs"]][0] == "C B A"
    assert len(d["outputs"]) == 2 and d["outputs"][0]["logprob"] >= d["outputs"][1]["logprob"]
    t = charrnn.load_transducer(trained)
    assert [o for o, _ in t.nbest(["abc"], 2, beam=5)[0]] == [o["output"] for o in d["outputs"]]
    r = invoke(runner, "transduce", trained, "abc", "--nbest", "0")
    assert r.exit_code == 2 and "'--nbest': 0 is not in the range" in r.output


def test_transduce_greedy_beam_json_and_stdin(runner, trained):
    r = invoke(runner, "transduce", trained, "abc", "deab")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == ["abc\tC B A", "deab\tB A E D"]
    r = invoke(runner, "transduce", trained, "abc", "deab", "--beam", "4", "--json")
    got = [json.loads(l) for l in r.output.splitlines()]
    assert got == [{"text": "abc", "output": "C B A"}, {"text": "deab", "output": "B A E D"}]
    r = invoke(runner, "transduce", trained, input="ab\n\ncde\n")
    assert r.output.splitlines() == ["ab\tB A", "cde\tE D C"]


def test_threads_decode_batches_at_once_with_the_same_outputs(runner, trained, tmp_path,
                                                              monkeypatch):
    import threading
    from charrnn.training import seq2seq
    rng = np.random.default_rng(9)
    texts = ["".join(rng.choice(list("abcde"), rng.integers(1, 7))) for _ in range(700)]
    t = charrnn.load_transducer(trained)
    want = t.transduce(texts)
    # 3 batches of 256, each call waiting until all 3 have started: they run at once, on
    # 3 threads (a thread that took two batches in turn would time the barrier out)
    idents, real, barrier = set(), seq2seq.greedy, threading.Barrier(3, timeout=60)
    with monkeypatch.context() as patch:
        patch.setattr(seq2seq, "greedy", lambda *a: (barrier.wait(), idents.add(
            threading.get_ident()), real(*a))[-1])
        assert t.transduce(texts, threads=3) == want and len(idents) == 3
    assert t.nbest(texts[:600], 2, threads=2) == t.nbest(texts[:600], 2)
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        t.transduce(texts, threads=0)
    lines = "".join(x + "\n" for x in texts)
    one = invoke(runner, "transduce", trained, "--threads", "1", input=lines)
    two = invoke(runner, "transduce", trained, "--threads", "2", "--beam", "1", input=lines)
    assert one.exit_code == 0 and one.output == two.output
    assert one.output.splitlines() == [f"{x}\t{y}" for x, y in zip(texts, want)]
    r = invoke(runner, "transduce", trained, "abc", "--threads", "0")
    assert r.exit_code == 2 and "'--threads': 0 is not in the range x>=1" in r.output
    test = tmp_path / "t.tsv"
    test.write_text("".join(f"{x}\t{' '.join(x[::-1].upper())}\n" for x in texts))
    assert invoke(runner, "eval", trained, test, "--threads", "2").output == \
        invoke(runner, "eval", trained, test, "--threads", "1").output


def test_eval_reports_wer_ter_and_loss(runner, trained, tmp_path):
    test = tmp_path / "test.tsv"
    # "ab" twice: its second reference is wrong, but one match is enough
    test.write_text("abc\tC B A\nab\tB A\nab\tA A\nbcd\tD C B X\n")
    r = invoke(runner, "eval", trained, test)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("word error rate 0.3333 (1 of 3 words wrong), token error "
                               "rate 0.1111 (1 edit over 9 tokens), loss ")
    assert "(4 pairs)" in r.output and "1 target with tokens the model does not know" in r.output
    r = invoke(runner, "eval", trained, test, "--beam", "3")
    assert r.output.startswith("word error rate 0.3333")


def test_python_api(trained, tmp_path):
    t = charrnn.load_transducer(trained)
    assert t.transduce(["abc"]) == ["C B A"] and t.transduce(["abc"], beam=3) == ["C B A"]
    assert t.info["step"] == 300 and t.tokens == "words"
    tsv = reversals(tmp_path / "r.tsv", n=60, seed=5)
    s = charrnn.train(str(tsv), out=str(tmp_path / "api"), task="seq2seq", hidden=8, embed=4,
                      max_steps=3, max_minutes=0, threads=1, quiet=True)
    assert s["task"] == "seq2seq" and s["steps"] == 3


def test_wrong_kind_is_one_line(runner, trained, tmp_path):
    assert "is a transducer" in one_line(invoke(runner, "sample", trained, "--length", "5"))
    assert "is a transducer run" in one_line(invoke(runner, "classify", trained, "x"))
    with pytest.raises(CheckpointError, match="is a transducer"):
        charrnn.load(trained)
    lm = tmp_path / "lm"
    text = tmp_path / "t.txt"
    text.write_text("hello world, " * 200)
    r = invoke(runner, "train", text, "--out", lm, "--max-steps", "2", "--hidden", "8",
               "--embed", "4", "--seq-len", "8", "--batch-size", "2", "--max-minutes", "0", "-q")
    assert r.exit_code == 0, r.output
    assert "is a language model" in one_line(invoke(runner, "transduce", lm, "x"))
    cls = tmp_path / "cls"
    tsv = two_alphabets(tmp_path / "c.tsv", n=40)
    r = invoke(runner, "train", tsv, "--out", cls, "--task", "classify", "--max-steps", "2",
               "--hidden", "8", "--embed", "4", "--max-minutes", "0", "-q")
    assert r.exit_code == 0, r.output
    assert "is a classifier" in one_line(invoke(runner, "transduce", cls, "x", "--latest"))


def test_runs_lists_the_task(runner, trained):
    r = invoke(runner, "runs", trained.parent)
    head, row = r.output.splitlines()[:2]
    assert "task" in head and "val TER" in head
    assert "seq2seq" in row and "GRU 1x32" in row and "finished" in row
    got = json.loads(invoke(runner, "runs", trained.parent, "--json").output)
    assert got[0]["task"] == "seq2seq" and got[0]["val_ter"] <= 0.05


# ---- resume --------------------------------------------------------------------------------

OPTS = dict(task="seq2seq", target_tokens="space", hidden=12, embed=6, batch_size=16,
            max_minutes=0, max_steps=40, eval_every=7, seed=3)


@pytest.mark.parametrize("dropout", [None, 0.3])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, dropout):
    tsv = reversals(tmp_path / "r.tsv", n=200)
    whole, cut = run_twice(tsv, tmp_path, dict(OPTS, dropout=dropout))
    a = charrnn.load_transducer(whole, best=False).model
    b = charrnn.load_transducer(cut, best=False).model
    assert np.array_equal(a.flat, b.flat)
    assert a.cfg.dropout == (dropout or 0.0)


def test_dropout_changes_training_not_evaluation(tmp_path):
    tsv = reversals(tmp_path / "r.tsv", n=200)
    runs = {p: tmp_path / f"d{p}" for p in (0.0, 0.3)}
    for p, out in runs.items():
        train(str(tsv), out=str(out), threads=1, quiet=True, **dict(OPTS, dropout=p))
    assert _losses(runs[0.0])[0] != _losses(runs[0.3])[0]   # masks at the very first step
    t = charrnn.load_transducer(runs[0.3], best=False)
    src, src_len = t.encode_sources(["abc", "de"])
    tgt, tgt_len = t.encode_targets(["C B A", "E D"])
    assert t.model.loss(src, src_len, tgt, tgt_len) == t.model.loss(src, src_len, tgt, tgt_len)


def test_resume_refuses_a_changed_file(tmp_path):
    tsv = reversals(tmp_path / "r.tsv", n=60)
    run = tmp_path / "run"
    train(str(tsv), out=str(run), threads=1, quiet=True, **{**OPTS, "max_steps": 3})
    tsv.write_text(tsv.read_text() + "zz\tZ Z\n")
    with pytest.raises(CorpusError, match="changed since the run started"):
        train(str(tsv), out=str(run), resume=True, threads=1, quiet=True, **OPTS)


def test_report_and_quiet_summary(runner, trained, tmp_path):
    assert "is a transducer run" in one_line(invoke(runner, "report", trained, "-o",
                                                    tmp_path / "r.html"))
    tsv = reversals(tmp_path / "r.tsv", n=300)
    r = invoke(runner, "train", tsv, *TINY, "--max-steps", "3", "--out", tmp_path / "q", "-q")
    assert r.exit_code == 0 and "\tval_loss=" in r.output and "\tval_ter=" in r.output


def test_ctrl_c_saves_and_says_how_to_resume(tmp_path):
    """A real `charrnn train --task seq2seq` process: SIGINT saves, exits 130, resumes."""
    from conftest import interrupt_training
    tsv = reversals(tmp_path / "r.tsv", n=300)
    run = tmp_path / "run"
    code, err = interrupt_training([tsv, *TINY[:-4], "--max-minutes", "5", "--threads", "1"], run)
    assert code == 130, err
    assert "resume with: charrnn train --out" in err and "Traceback" not in err
    steps = _losses(run)
    r = CliRunner().invoke(main, ["train", "--out", str(run), "--resume", "--max-steps",
                                  str(len(steps) + 5), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert len(_losses(run)) == len(steps) + 5 and _losses(run)[:len(steps)] == steps
