"""Documents (--docs lines|files): the laid-out stream, the end marker, shuffling, held-out
documents, the automatic window, sampling whole items (--items, --novel), the copy
measure of items, and exact resume; end to end through the command line too."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import charrnn
from charrnn.data import documents as D
from charrnn.data.corpus import load_corpus
from charrnn.data.documents import END, Documents, Known
from charrnn.data.text import decode_ids
from charrnn.errors import ConfigError, CorpusError
from conftest import child_env

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
         "judy", "mallory", "oscar", "peggy", "trent", "victor", "walter", "xena", "yan",
         "zed", "ursula"]
TINY = dict(hidden=16, layers=1, embed=8, seq_len=16, batch_size=4, eval_every=5,
            max_minutes=0, quiet=True)


def names_file(tmp_path, n=300, seed=0, name="names.txt"):
    rng = np.random.default_rng(seed)
    p = tmp_path / name
    p.write_text("".join(rng.choice(NAMES) + rng.choice(["", "a", "o", "ie"]) + "\n"
                         for _ in range(n)))
    return p


def text_of(docs, ids):
    return decode_ids(ids, docs.vocab)


def documents_of(docs, ids):
    """The documents of a laid-out stream, in order (it starts and ends with END)."""
    text = text_of(docs, ids)
    assert text[0] == END and text[-1] == END
    return text[1:-1].split(END)


# ---- the layout ---------------------------------------------------------------------------

def test_lines_layout_markers_empty_lines_and_crlf(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes(b"alice\r\nbob\n\n   \n\t\ncarol\r\nzed")      # no final newline
    docs = Documents(load_corpus(p), "lines", seed=1)
    assert len(docs) == 4 and docs.dropped == 3                    # "", "   ", "\t"
    assert "3 empty lines left out" in docs.describe(0)
    ids = docs.lay_out()
    assert sorted(documents_of(docs, ids)) == ["alice", "bob", "carol", "zed"]
    # the vocabulary: what the documents hold (no line break, no "\r") and END, sorted
    assert docs.vocab == sorted(set("alicebobcarolzed") | {END}) and docs.vocab[0] == END
    assert len(ids) == docs.stream_length == sum(map(len, "alice bob carol zed".split())) + 5
    # a final line break makes no empty line after it
    p.write_bytes(b"alice\nbob\n")
    assert Documents(load_corpus(p), "lines", 1).dropped == 0


def test_order_is_shuffled_by_the_seed_and_deterministic(tmp_path):
    p = tmp_path / "sorted.txt"
    p.write_text("".join(f"{c}{i}\n" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for i in range(8)))
    corpus = load_corpus(p)
    order = lambda seed: documents_of(d := Documents(corpus, "lines", seed), d.lay_out())
    a = order(7)
    assert a == order(7) and a != order(8) and sorted(a) == sorted(order(8))
    z = [i for i, name in enumerate(a) if name[0] == "Z"]
    assert max(z) - min(z) > 50            # the Z names are spread out, not in one place


def test_files_are_documents_without_the_joining_newline(tmp_path):
    from charrnn.data.several import expand, load_files
    root = tmp_path / "poems"
    root.mkdir()
    (root / "1.txt").write_text("roses\nare red")
    (root / "2.txt").write_text("violets\nare blue\n")
    (root / "3.txt").write_text(" \n\n")                           # whitespace: left out
    docs = Documents(load_files(expand(root)), "files", seed=3)
    assert sorted(documents_of(docs, docs.lay_out())) == ["roses\nare red",
                                                            "violets\nare blue\n"]
    assert docs.dropped == 1 and "\n" in docs.vocab


def test_a_text_holding_the_end_marker_is_refused_by_name(tmp_path):
    from charrnn.data.several import expand, load_files
    p = tmp_path / "t.txt"
    p.write_text("fine\nnot \x03 fine\n")
    with pytest.raises(CorpusError, match=r"t.txt contains '\\x03' \(U\+0003\), END OF TEXT, "
                                          r"at character 9: --docs") as e:
        Documents(load_corpus(p), "lines", 1)
    assert "\n" not in str(e.value)
    (tmp_path / "a.txt").write_text("first file\n")
    with pytest.raises(CorpusError, match=r"t.txt contains .* at character 9"):
        Documents(load_files(expand([tmp_path / "a.txt", p])), "files", 1)
    with pytest.raises(CorpusError, match=r"at byte 9"):
        Documents(load_corpus(p, encoding="bytes"), "lines", 1)
    load_corpus(p)        # without --docs it is an ordinary character, as ever


def test_layout_in_small_blocks_equals_one_block(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    lines = ["x" * int(n) for n in rng.integers(1, 40, 200)] + ["long" * 30]
    p = tmp_path / "t.txt"
    p.write_text("\n".join(lines) + "\n")
    whole = Documents(load_corpus(p), "lines", 5)
    ids, hashes = whole.lay_out(), whole.hashes()
    monkeypatch.setattr(D, "BLOCK", 16)       # many blocks, and documents longer than one
    small = Documents(load_corpus(p), "lines", 5)
    np.testing.assert_array_equal(small.lay_out(), ids)
    np.testing.assert_array_equal(small.hashes(), hashes)
    assert sorted(documents_of(whole, ids)) == sorted(lines)


def test_held_out_documents_are_whole_and_start_with_the_marker(tmp_path):
    from charrnn.training.options import TrainConfig
    from charrnn.training.run_start import prepare
    corpus = load_corpus(names_file(tmp_path, n=200))
    docs = Documents(corpus, "lines", 1)
    assert docs.held_out(0.1) == 20 and docs.held_out(0.001) == 1 and docs.held_out(0) == 0
    cfg = TrainConfig(docs="lines", val_frac=0.1, seq_len=8, batch_size=2, hidden=8,
                      layers=1, embed=4, max_minutes=0)
    cfg, train, held, choice = prepare(cfg, corpus, lambda s: None, docs=docs)
    ids = docs.lay_out()
    assert choice.val_chars == docs.held_out_chars(0.1)
    n_train = len(ids) - choice.val_chars
    assert ids[n_train - 1] == docs.end_id == held.ids[0]           # held out: END v1 ...
    val = documents_of(docs, np.asarray(held.ids))
    trained = documents_of(docs, ids[:n_train])
    assert len(val) == 20 and len(trained) == 180
    assert sorted(val + trained) == sorted(documents_of(docs, ids))  # whole documents
    # one document: nothing to hold out
    one = tmp_path / "one.txt"
    one.write_text("just one line of text, long enough to train on a little\n")
    assert Documents(load_corpus(one), "lines", 1).held_out(0.1) == 0


def test_the_automatic_window_holds_the_median_document():
    from charrnn.training import auto
    short = auto.choose(50_000, 30, 5, doc_len=9).values["seq_len"]
    mid = auto.choose(50_000, 30, 5, doc_len=100).values["seq_len"]
    long_ = auto.choose(50_000, 30, 5, doc_len=5000).values["seq_len"]
    given = auto.choose(50_000, 30, 5, {"seq_len": 32}, doc_len=5000).values["seq_len"]
    assert (short, mid, long_, given) == (auto.SEQ_LEN, 100, auto.DOC_SEQ_LEN, 32)
    assert auto.choose(50_000, 30, 5).values["seq_len"] == auto.SEQ_LEN   # no documents


def test_fingerprints_know_every_document_and_nothing_else(tmp_path):
    docs = Documents(load_corpus(names_file(tmp_path)), "lines", 1)
    known = Known(docs.hashes())
    ids = docs.lay_out()
    for name in set(documents_of(docs, ids)):           # training and held-out alike
        assert [ord(c) for c in name] in known
    assert [ord(c) for c in "alicexyz"] not in known and [] not in known
    path = tmp_path / "documents.npy"
    known.save(path)
    assert len(Known.load(path)) == len(known) == len(set(documents_of(docs, ids)))


def test_model_config_keeps_the_end_marker_and_old_checkpoints_load(tmp_path):
    from charrnn.io import checkpoint as ck
    from charrnn.model import CharRNN
    from charrnn.nn.network import ModelConfig
    from conftest import save_small
    save_small(tmp_path / "old.safetensors")                 # no end_marker in its config
    assert charrnn.load(tmp_path / "old.safetensors").cfg.end_marker == ""
    cfg = ModelConfig("gru", 8, 1, 4, 0.0, 3, "utf-8", END)
    m = CharRNN(cfg, [END, "a", "b"])
    ck.save_model(tmp_path / "new.safetensors", m.params, m.config, m.vocab)
    loaded = charrnn.load(tmp_path / "new.safetensors")
    assert loaded.cfg.end_marker == END and loaded.end_id == 0
    with pytest.raises(ConfigError, match="end marker"):
        CharRNN(cfg, ["a", "b", "c"])


# ---- the state is zeroed at every end marker ----------------------------------------------

def doc_model(end_marker=END, cell="gru"):
    from charrnn.model import CharRNN
    from charrnn.nn.network import ModelConfig
    vocab = [END, "a", "b", "c", "d"]
    return CharRNN(ModelConfig(cell, 6, 2, 4, 0.0, len(vocab), "utf-8", end_marker), vocab,
                   seed=4, dtype=np.float64)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_the_network_resets_at_its_end_marker_by_itself(cell):
    docs, plain = doc_model(cell=cell), doc_model("", cell=cell)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, (13, 3))
    ids[0, 0] = ids[5, 1] = ids[12, 2] = 0                          # END here and there
    x, y = ids[:-1], ids[1:]
    state = [tuple(rng.standard_normal(a.shape) for a in layer) for layer in plain.init_state(3)]
    l1, g1, s1 = docs.loss_and_grad(x, y, state)
    l2, g2, s2 = plain.loss_and_grad(x, y, state, reset=np.ascontiguousarray(x == 0))
    assert l1 == l2 and all(np.array_equal(g1[k], g2[k]) for k in g1)
    assert docs.loss(x, y, state)[0] == l1
    l3, _, _ = plain.loss_and_grad(x, y, state)
    assert l3 != l1                                                 # resets do change it


def test_a_document_reads_the_same_whatever_came_before():
    m = doc_model()
    a = m.probe("abcab" + END + "dacb")
    b = m.probe(END + "dacb")
    np.testing.assert_allclose(a.probs[-5:], b.probs, rtol=1e-12)
    # and scoring two documents at once is scoring each alone (from its END)
    ids = np.array([0, 1, 2, 0, 3, 4, 1, 0])
    both, _ = m.loss(ids[:-1, None], ids[1:, None])
    one, _ = m.loss(ids[:3, None], ids[1:4, None])
    two, _ = m.loss(ids[3:-1, None], ids[4:, None])
    assert np.isclose(both * 7, one * 3 + two * 4, rtol=1e-12)


# ---- training and sampling ----------------------------------------------------------------

@pytest.fixture(scope="module")
def names_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("names")
    run = tmp / "run"
    charrnn.train(names_file(tmp, n=400), out=run, docs="lines", max_steps=60,
                  **dict(TINY, hidden=32, embed=16, eval_every=30))
    return run


def test_a_docs_run_records_items_and_their_copy_measure(names_run):
    model = charrnn.load(names_run)
    assert model.cfg.end_marker == END and "\n" not in model.vocab
    assert (names_run / "documents.npy").is_file()
    samples = [json.loads(l) for l in open(names_run / "samples.jsonl")]
    evals = [json.loads(l) for l in open(names_run / "metrics.jsonl") if "val_loss" in l]
    assert len(samples) == 2 and len(evals) >= 2
    for s in samples:
        assert s["items"] == 8 and 0 <= s["copied_items"] <= 1 and "copied" not in s
        assert len(s["text"].split("\n")) == 8 and END not in s["text"]
    assert all("copied_items" in r for r in evals)


def test_items_are_whole_documents_made_as_one_batch(names_run):
    model = charrnn.load(names_run)
    items = model.items(12, temperature=0.8, seed=3)
    assert len(items) == 12 and items.draws == 12 and items.dropped == 0
    assert all(END not in t and "\n" not in t for t in items)
    assert items.known and items.copies == sum(
        [ord(c) for c in t] in charrnn.model.load_known(names_run) for t in items)
    assert model.items(12, temperature=0.8, seed=3).texts == items.texts   # seeded
    cut = model.items(12, temperature=0.8, seed=3, length=2)
    assert cut.cut == sum(len(t) >= 2 or not c for t, c in zip(items, items.complete))
    assert all(len(t) <= 2 for t in cut) and cut.complete.count(False) == cut.cut


def test_novel_drops_copies_and_draws_again_up_to_the_bound(names_run):
    model = charrnn.load(names_run)
    first = model.items(6, temperature=1.0, seed=11)
    # pretend the first draw's items were the training documents: novel drops them all
    seen = Known([D.text_hash([ord(c) for c in t]) for t in first])
    novel = model.items(6, temperature=1.0, seed=11, known=seen, novel=True)
    assert novel.dropped >= 6 and len(novel) == 6 and novel.draws == 6 + novel.dropped
    assert not any([ord(c) for c in t] in seen for t in novel)
    bounded = model.items(6, temperature=1.0, seed=11, known=seen, novel=True, max_draws=6)
    assert len(bounded) == 0 and bounded.dropped == bounded.draws == 6
    real = model.items(6, temperature=1.0, seed=11, novel=True)    # the run's documents
    known = charrnn.model.load_known(names_run)
    assert not any([ord(c) for c in t] in known for t in real)


def test_items_need_a_model_trained_on_documents(tmp_path, corpus):
    charrnn.train(corpus, out=tmp_path / "r", max_steps=2, **TINY)
    model = charrnn.load(tmp_path / "r")
    with pytest.raises(ConfigError, match="trained without documents.*--docs lines"):
        model.items(3)


def test_novel_needs_the_training_documents(names_run, tmp_path):
    import shutil
    shutil.copy(names_run / "best.safetensors", tmp_path / "alone.safetensors")
    model = charrnn.load(tmp_path / "alone.safetensors")
    with pytest.raises(CorpusError, match=f"{tmp_path.name} has no readable documents.npy"):
        model.items(3, novel=True)                    # looked for beside the checkpoint
    assert len(model.items(3)) == 3                   # without novel: not needed
    assert len(model.items(3, novel=True, known=names_run)) == 3
    model.source = None                               # a model built in Python
    with pytest.raises(ConfigError, match="novel items need the training documents"):
        model.items(3, novel=True)


def test_report_of_a_docs_run_passes_over_its_held_out_documents(names_run, tmp_path):
    from charrnn.inspect.report import build_report
    html = build_report(names_run)
    assert "the held-out documents" in html and "items found among the training documents" in html


@pytest.mark.parametrize("mode", ["lines", "files"])
def test_resume_equals_uninterrupted_with_documents(tmp_path, mode):
    from charrnn.io import checkpoint as ckpt
    from charrnn.training.loop import Interrupted
    from test_training import interrupt_at, metrics
    if mode == "lines":
        data = names_file(tmp_path)
    else:
        data = tmp_path / "poems"
        data.mkdir()
        for i in range(12):
            names_file(data, n=10, seed=i, name=f"{i:02d}.txt")
    opts = dict(TINY, docs=mode, max_steps=23, dropout=0.2, val_frac=0.2)
    charrnn.train(data, out=tmp_path / "a", **opts)
    with pytest.raises(Interrupted):
        charrnn.train(data, out=tmp_path / "b", progress=interrupt_at(13), **opts)
    charrnn.train(out=tmp_path / "b", resume=True, quiet=True)
    a = [(r["step"], r["train_loss"], r.get("val_loss")) for r in metrics(tmp_path / "a")
         if "final" not in r]
    b = [(r["step"], r["train_loss"], r.get("val_loss")) for r in metrics(tmp_path / "b")
         if "final" not in r]
    assert a == b and len(a) == 23 and sum(v is not None for *_, v in a) == 4
    pa = ckpt.load_model(tmp_path / "a" / "model.safetensors").params
    pb = ckpt.load_model(tmp_path / "b" / "model.safetensors").params
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])


# ---- the command line, end to end ---------------------------------------------------------

def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "charrnn.cli", *map(str, args)],
                          capture_output=True, text=True, env=child_env(), timeout=300, cwd=cwd)


def test_cli_trains_on_lines_then_samples_novel_items(tmp_path):
    run = tmp_path / "run"
    data = names_file(tmp_path, n=400)
    r = cli("train", data, "--docs", "lines", "--out", run, "--max-steps", "40",
            "--hidden", "32", "--layers", "1", "--embed", "16", "--eval-every", "20",
            "--max-minutes", "0")
    assert r.returncode == 0, r.stderr
    assert "400 documents (lines" in r.stderr and "40 held out for validation" in r.stderr
    assert "items of this sample found verbatim among the training documents" in r.stderr

    r = cli("sample", run, "--items", "20", "--temp", "0.8", "--seed", "1")
    assert r.returncode == 0, r.stderr
    items = r.stdout.splitlines()
    assert len(items) == 20 and END not in r.stdout
    assert "found verbatim among the training documents" in r.stderr

    r = cli("sample", run, "--items", "20", "--temp", "0.8", "--seed", "1", "--novel")
    assert r.returncode == 0, r.stderr
    novel = r.stdout.splitlines()
    known = set(data.read_text().split("\n")) - {""}
    assert len(novel) == 20 and not known & set(novel)
    said = re.search(r"--novel: (\d+) of (\d+) items drawn were found among the training "
                     r"documents and dropped", r.stderr)
    dropped, draws = int(said[1]), int(said[2])
    assert dropped >= sum(i in known for i in items) and draws == 20 + dropped

    r = cli("sample", run, "--items", "5", "--length", "1", "--seed", "1")
    assert r.returncode == 0 and "reached --length 1 before their end marker" in r.stderr


def test_cli_items_errors_are_one_line(tmp_path, corpus):
    run = tmp_path / "plain"
    assert cli("train", corpus, "--out", run, "--max-steps", "2", "--hidden", "8",
               "--layers", "1", "--embed", "4", "--max-minutes", "0", "-q").returncode == 0
    r = cli("sample", run, "--items", "3")
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0
    assert "trained without documents" in r.stderr and "--docs" in r.stderr
    r = cli("sample", run, "--novel")
    assert r.returncode == 2 and "give --items N" in r.stderr
    r = cli("sample", run, "--items", "3", "--prime", "ab")
    assert r.returncode == 2 and "--prime" in r.stderr
    p = tmp_path / "bad.txt"
    p.write_text("one\ntwo \x03\n")
    r = cli("train", p, "--docs", "lines", "--out", tmp_path / "b", "--max-minutes", "0")
    assert r.returncode == 1 and "END OF TEXT" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "b").exists()


def test_cli_trains_on_a_folder_of_files_as_documents(tmp_path):
    root = tmp_path / "recipes"
    root.mkdir()
    for i in range(10):
        (root / f"{i}.txt").write_text(f"recipe {i}\n" + "mix, stir, bake.\n" * (i % 3 + 1))
    run = tmp_path / "run"
    r = cli("train", root, "--docs", "files", "--out", run, "--max-steps", "6",
            "--hidden", "16", "--layers", "1", "--embed", "8", "--max-minutes", "0", "-q")
    assert r.returncode == 0, r.stderr
    r = cli("sample", run, "--items", "3", "--length", "40", "--seed", "2")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.count("--- item ") in (0, 3)          # headers when an item has a line break
    r = cli("runs", tmp_path)
    assert "recipes/ (10 files)" in r.stdout


def test_eval_scores_a_file_as_documents(names_run, tmp_path):
    held = tmp_path / "more.txt"
    held.write_text("alice\nbobo\r\nzedie\n\n")
    r = charrnn.evaluate(charrnn.load(names_run), held, docs="lines")
    assert r["chars"] == len("alice bobo zedie".split()) + sum(map(len, ["alice", "bobo", "zedie"]))
    with pytest.raises(ConfigError, match="trained on documents: pass --docs lines"):
        charrnn.evaluate(names_run, held)
    r = cli("eval", names_run, held, "--docs", "lines")
    assert r.returncode == 0 and r.stdout.startswith("loss ") and "over 17 characters" in r.stdout


def test_two_ranks_train_documents_as_one_process(tmp_path):
    """Each rank lays the documents out alike and its network resets at END by itself."""
    from test_distributed import assert_same_losses, launch, steps
    data = names_file(tmp_path)
    opts = dict(hidden=16, layers=1, embed=8, seq_len=16, batch_size=4, max_minutes=0,
                max_steps=8, eval_every=4, docs="lines", val_frac=0.1)
    charrnn.train(data, out=tmp_path / "one", quiet=True, threads=1, **opts)
    launch(2, data, tmp_path / "two", opts)
    assert_same_losses(steps(tmp_path / "one"), steps(tmp_path / "two"))
    assert (tmp_path / "two" / "documents.npy").is_file()
