"""charrnn train --init: fine-tuning from another run's weights (charrnn.training.finetune,
charrnn.data.merge): the merged vocabulary, the base's predictions kept at step 0,
conflicting options, the recorded parent, exact resume, bad bases."""
import hashlib
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.data import corpus as data
from charrnn.data import merge
from charrnn.errors import CheckpointError, ConfigError
from charrnn.io import checkpoint as ckpt
from charrnn.model import CharRNN
from charrnn.training import finetune
from charrnn.training.loop import Interrupted, train

BASE_WORDS = ["the ", "cat ", "sat ", "on ", "the ", "mat.\n", "a ", "dog ", "ran "]
NEW_WORDS = BASE_WORDS + ["Zed ", "saw ", "to!\n"]          # 'Z', 'w', '!' are new
SHAPE = dict(hidden=32, layers=1, embed=8)
RUN = dict(seq_len=16, batch_size=4, eval_every=10, max_minutes=0, val_frac=0.1)


def words(n, vocab, seed):
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(vocab) for _ in range(n))


def metrics(run):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A small GRU trained on one text (shared by the tests: they only read it)."""
    d = tmp_path_factory.mktemp("base")
    text = d / "base.txt"
    text.write_text(words(3000, BASE_WORDS, 0))
    train(str(text), out=str(d / "run"), quiet=True, threads=1, max_steps=300, lr=0.01,
          **SHAPE, **dict(RUN, batch_size=8, eval_every=50))
    return d / "run"


@pytest.fixture
def target(tmp_path):
    p = tmp_path / "target.txt"
    p.write_text(words(500, NEW_WORDS, 1))
    return p


# ---- the vocabulary ----------------------------------------------------------------------

def test_merged_vocabulary_is_sorted_and_never_drops_a_base_character():
    assert merge.merged_vocab(list("\nace"), list("\nbcz")) == list("\nabcez")
    assert merge.merged_vocab(list("abc"), list("b")) == list("abc")


@pytest.mark.parametrize("cached", [False, True])
def test_recode_maps_ids_through_the_merged_vocabulary(tmp_path, monkeypatch, cached):
    monkeypatch.setattr(merge, "CHUNK", 7)    # several chunks, one of them partial
    p = tmp_path / "t.txt"
    p.write_text("bad cab, dab!" * 5)
    c = data.load_corpus(p, cache_dir=tmp_path / "run" if cached else None)
    vocab = merge.merged_vocab(list("\n XYZabcdz"), c.vocab)
    r = merge.recode(c, vocab, tmp_path / "run" if cached else None)
    assert r.vocab == vocab and "".join(vocab[i] for i in r.ids) == p.read_text()
    if cached:   # the run's cache now holds the model's ids (resume and report read it)
        again = data.load_corpus(p, cache_dir=tmp_path / "run")
        assert again.vocab == vocab and np.array_equal(again.ids, r.ids)
        assert isinstance(again.ids, np.memmap)


def test_new_characters_get_fresh_rows_and_known_ones_keep_theirs(base, target):
    b = finetune.load_base(base)
    vocab = merge.merged_vocab(b.vocab, set(target.read_text()))
    assert set(vocab) - set(b.vocab) == {"Z", "w", "!"}
    config = dict(b.config, vocab_size=len(vocab))
    fresh = CharRNN(config, vocab, seed=5)
    model = CharRNN(config, vocab, seed=5)
    finetune.start_from(model, b)
    rows = [vocab.index(c) for c in b.vocab]
    new = [vocab.index(c) for c in "Zw!"]
    for name in finetune.VOCAB_ROWS:
        np.testing.assert_array_equal(model.params[name][rows], b.params[name])
        np.testing.assert_array_equal(model.params[name][new], fresh.params[name][new])
    assert np.all(model.params["decoder.bias"][new] == 0)
    assert np.abs(model.params["encoder.weight"][new]).max() <= 0.1
    for name in model.params:
        if name.startswith("rnn."):
            np.testing.assert_array_equal(model.params[name], b.params[name])


def _logits(model, text, rows=None):
    """The decoder's logits after each character of `text` (those of vocabulary rows
    `rows` only), from the top layer's hidden state."""
    rows = slice(None) if rows is None else rows
    W, b = model.params["decoder.weight"][rows], model.params["decoder.bias"][rows]
    return model.probe(text).hidden[-1].astype(np.float64) @ W.T.astype(np.float64) + b


def test_the_base_predicts_its_characters_unchanged_at_step_0(base, target):
    b = finetune.load_base(base)
    vocab = merge.merged_vocab(b.vocab, set(target.read_text()))
    model = CharRNN(dict(b.config, vocab_size=len(vocab)), vocab, seed=1)
    finetune.start_from(model, b)
    old = charrnn.load(b.checkpoint)
    text = "the cat sat on the mat.\na dog ran "
    rows = [vocab.index(c) for c in b.vocab]
    np.testing.assert_array_equal(_logits(model, text, rows), _logits(old, text))
    p_new, p_old = model.probe(text).probs[:, rows], old.probe(text).probs
    np.testing.assert_allclose(p_new / p_new.sum(1, keepdims=True), p_old, rtol=1e-5, atol=1e-7)


def test_a_fine_tuning_run_starts_from_the_base_weights(base, target, tmp_path):
    # a step at lr 1e-12 moves nothing visible: the run's model is the base's, grown
    train(str(target), out=str(tmp_path / "ft"), init=str(base), quiet=True, threads=1,
          max_steps=1, lr=1e-12, **RUN)
    b, ft = charrnn.load(base, best=True), charrnn.load(tmp_path / "ft")
    rows = [ft.vocab.index(c) for c in b.vocab]
    text = "a cat ran on the mat.\n"
    np.testing.assert_allclose(_logits(ft, text, rows), _logits(b, text), atol=1e-5)
    assert ft.vocab == sorted(set(b.vocab) | set(target.read_text()))


def test_fine_tuning_helps_on_a_related_text(base, tmp_path):
    # the same words in other proportions, one of them with a character new to the base
    related = tmp_path / "related.txt"
    related.write_text(words(500, ["the ", "cat ", "cat ", "sat ", "on ", "mat!\n", "ran "], 2))
    loss = {}
    for name, how in (("ft", dict(init=str(base))), ("fresh", SHAPE)):
        # one step at lr 1e-12: the model as the run starts it (step 0)
        train(str(related), out=str(tmp_path / name), quiet=True, threads=1, max_steps=1,
              lr=1e-12, **RUN, **how)
        loss[name] = charrnn.evaluate(charrnn.load(tmp_path / name), related)["loss"]
    assert loss["fresh"] > 0.9 * math.log(len(charrnn.load(tmp_path / "fresh").vocab))
    assert loss["ft"] < 0.5 * loss["fresh"], loss


# ---- options ---------------------------------------------------------------------------------

def test_the_first_log_line_states_the_fine_tuning_defaults(base, target, tmp_path):
    lines = []
    train(str(target), out=str(tmp_path / "ft"), init=str(base), log=lines.append, threads=1,
          max_steps=2, max_minutes=0)
    assert "fine-tuning" in lines[0] and "lr 0.00333 (a third of the base run's 0.01)" in lines[0]
    assert "patience 10" in lines[0] and "GRU" not in lines[0]   # the model is not auto
    step = ckpt.load_model(base / "best.safetensors").info["step"]
    assert lines[1].startswith(f"charrnn: fine-tuning {base / 'best.safetensors'}, step {step}")
    assert "1x32 GRU, embedding 8" in lines[1] and "3 new characters" in lines[1]
    saved = ckpt.load_state(tmp_path / "ft" / "state.safetensors").meta
    assert saved["train_config"]["lr"] == 0.00333 and saved["train_config"]["patience"] == 10
    assert "lr" in saved["auto"] and "hidden" not in saved["auto"]
    # an explicit --lr wins, and the line does not claim it
    lines.clear()
    train(str(target), out=str(tmp_path / "ft2"), init=str(base), log=lines.append, threads=1,
          max_steps=1, max_minutes=0, lr=0.01)
    assert "lr 0" not in lines[0]


@pytest.mark.parametrize("args,needle", [
    (["--hidden", "64"], "--hidden 64 conflicts with the base run {base} (hidden 32); drop --hidden"),
    (["--cell", "lstm"], "--cell lstm conflicts with the base run {base} (cell gru)"),
    (["--layers", "2"], "--layers 2 conflicts"),
    (["--embed", "16"], "--embed 16 conflicts"),
    (["--encoding", "bytes"], "--encoding bytes conflicts with the base run {base}"),
])
def test_an_option_that_conflicts_with_the_base_is_a_one_line_error(base, target, tmp_path,
                                                                    args, needle):
    out = tmp_path / "ft"
    r = CliRunner().invoke(main, ["train", str(target), "--init", str(base), "--out", str(out),
                                  "--max-steps", "1", "--quiet", *args])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert needle.format(base=base) in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_options_equal_to_the_base_are_fine(base, target, tmp_path):
    r = CliRunner().invoke(main, ["train", str(target), "--init", str(base), "--out",
                                  str(tmp_path / "ft"), "--max-steps", "1", "--quiet",
                                  "--threads", "1", "--cell", "gru", "--hidden", "32",
                                  "--layers", "1", "--embed", "8", "--dropout", "0.05"])
    assert r.exit_code == 0, r.output
    config = charrnn.load(tmp_path / "ft").config
    assert (config["hidden"], config["dropout"]) == (32, 0.05)   # dropout is the run's own


def test_a_byte_level_base_reads_the_new_text_as_bytes(tmp_path, target):
    src = tmp_path / "b.txt"
    src.write_text(words(600, BASE_WORDS, 3))
    train(str(src), out=str(tmp_path / "bytes"), quiet=True, threads=1, max_steps=2,
          encoding="bytes", **SHAPE, **RUN)
    train(str(target), out=str(tmp_path / "ft"), init=str(tmp_path / "bytes"), quiet=True,
          threads=1, max_steps=1, **RUN)
    assert charrnn.load(tmp_path / "ft").cfg.encoding == "bytes"
    with pytest.raises(ConfigError, match="--encoding utf-8 conflicts .* a byte-level model"):
        train(str(target), out=str(tmp_path / "x"), init=str(tmp_path / "bytes"),
              encoding="utf-8", max_steps=1)


# ---- the parent, resume ---------------------------------------------------------------------

def test_the_parent_is_recorded_and_listed(base, target, tmp_path):
    root = tmp_path / "runs"
    train(str(target), out=str(root / "ft"), init=str(base), quiet=True, threads=1,
          max_steps=2, **RUN)
    train(str(target), out=str(root / "scratch"), quiet=True, threads=1, max_steps=2,
          **SHAPE, **RUN)
    best = base / "best.safetensors"
    parent = ckpt.load_state(root / "ft" / "state.safetensors").meta["parent"]
    assert parent["run"] == str(base.resolve()) and parent["checkpoint"] == str(best.resolve())
    assert parent["sha256"] == hashlib.sha256(best.read_bytes()).hexdigest()
    assert parent["step"] == ckpt.load_model(best).info["step"]
    assert ckpt.load_model(root / "ft" / "model.safetensors").info["parent"] == parent
    r = CliRunner().invoke(main, ["runs", str(root)])
    head, *rows = r.output.splitlines()
    assert head.split()[:4] == ["run", "corpus", "model", "from"]
    assert {row.split()[0]: row.split()[4] for row in rows} == {"ft": base.name, "scratch": "-"}
    assert [r.parent for r in charrnn.runs(root) if r.name == "ft"] == [parent]
    from charrnn.inspect.report import build_report
    page = build_report(root / "ft")
    assert "fine-tuned from <span" in page and f">{base.name}</span> at step" in page
    assert parent["sha256"] in page and "fine-tuned from" not in build_report(root / "scratch")


def test_resume_of_a_fine_tuning_run_is_exact_and_keeps_its_parent(base, target, tmp_path):
    import shutil
    import os
    import signal

    def interrupt_at(step):
        def progress(record):
            if record["step"] == step:
                os.kill(os.getpid(), signal.SIGINT)
        return progress
    own = tmp_path / "base"                      # a copy, removed before the resume
    shutil.copytree(base, own)
    opts = dict(RUN, max_steps=23, dropout=0.2, threads=1, quiet=True)
    train(str(target), out=str(tmp_path / "a"), init=str(own), **opts)
    with pytest.raises(Interrupted):
        train(str(target), out=str(tmp_path / "b"), init=str(own), progress=interrupt_at(14),
              **opts)
    shutil.rmtree(own)                           # resume never reads the base again
    train(str(target), out=str(tmp_path / "b"), resume=True, quiet=True, threads=1)
    key = lambda run: [(r["step"], r["train_loss"], r["lr"]) for r in metrics(run)
                       if "final" not in r]
    assert key(tmp_path / "a") == key(tmp_path / "b") and len(key(tmp_path / "a")) == 23
    pa = ckpt.load_model(tmp_path / "a" / "model.safetensors")
    pb = ckpt.load_model(tmp_path / "b" / "model.safetensors")
    for k in pa.params:
        np.testing.assert_array_equal(pa.params[k], pb.params[k])
    assert pb.info["parent"]["run"] == str(own.resolve())
    meta = ckpt.load_state(tmp_path / "b" / "state.safetensors").meta
    assert meta["parent"] == ckpt.load_state(tmp_path / "a" / "state.safetensors").meta["parent"]


def test_init_with_resume_names_only_the_run_it_started_from(base, target, tmp_path):
    opts = dict(RUN, max_steps=2, threads=1, quiet=True)
    train(str(target), out=str(tmp_path / "ft"), init=str(base), **opts)
    train(str(target), out=str(tmp_path / "scratch"), **SHAPE, **opts)
    # the same parent: accepted, and the run continues from its own checkpoint
    train(str(target), out=str(tmp_path / "ft"), init=str(base), resume=True, quiet=True,
          max_steps=3)
    assert metrics(tmp_path / "ft")[-1]["step"] == 3
    with pytest.raises(ConfigError, match="was trained from scratch, and --resume continues"):
        train(str(target), out=str(tmp_path / "scratch"), init=str(base), resume=True,
              max_steps=3)
    with pytest.raises(ConfigError, match=f"was started from {base.resolve()}"):
        train(str(target), out=str(tmp_path / "ft"), init=str(tmp_path / "scratch"),
              resume=True, max_steps=4)
    r = CliRunner().invoke(main, ["train", str(target), "--out", str(tmp_path / "scratch"),
                                  "--resume", "--init", str(base)])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output


def _damaged(tmp_path):
    run = tmp_path / "damaged"
    run.mkdir()
    (run / "best.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    return run


@pytest.mark.parametrize("make,needle", [
    (lambda t: t / "missing", "no such run directory or checkpoint"),
    (lambda t: (t / "empty").mkdir() or t / "empty", "is not a charrnn run: it holds no"),
    (lambda t: (t / "x.txt").write_text("hi") and t / "x.txt", "is not a .safetensors checkpoint"),
    (_damaged, "cannot load"),
])
def test_a_bad_base_is_a_one_line_error_before_training(tmp_path, target, make, needle):
    bad = make(tmp_path)
    out = tmp_path / "ft"
    r = CliRunner().invoke(main, ["train", str(target), "--init", str(bad), "--out", str(out)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert f"--init {bad}" in r.output and needle in r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()
    with pytest.raises(CheckpointError):
        finetune.load_base(bad)


def test_resume_after_the_text_was_touched_re_encodes_it_in_the_merged_vocabulary(
        base, target, tmp_path):
    import os
    run = tmp_path / "ft"
    train(str(target), out=str(run), init=str(base), quiet=True, threads=1, max_steps=2, **RUN)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))   # same text, new mtime
    train(str(target), out=str(run), resume=True, quiet=True, threads=1, max_steps=4)
    vocab = json.loads((run / "corpus.json").read_text())["vocab"]
    assert vocab == charrnn.load(run).vocab and metrics(run)[-1]["step"] == 4
    ids = np.load(run / "corpus.npy")
    assert "".join(vocab[i] for i in ids) == target.read_text()
