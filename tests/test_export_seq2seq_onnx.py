"""charrnn export --format onnx of a transducer (--task seq2seq): encode.onnx and step.onnx
in onnxruntime, driven by a greedy loop written from the graphs' documentation (start at
BOS with zero state, never pick BOS, stop at EOS or max_len), give `charrnn transduce`'s
outputs and log-probabilities: both cells, both attentions, a two-layer encoder,
character targets, padded batches and rows alone."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.errors import ExportError
from charrnn.nn.seq2seq_decode import greedy
from test_export_seq2seq_c import TEXTS, export_saved, transducer

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def sessions(folder):
    return tuple(ort.InferenceSession(str(folder / f), providers=["CPUExecutionProvider"])
                 for f in ("encode.onnx", "step.onnx"))


def encode(enc, texts):
    meta = enc.get_modelmeta().custom_metadata_map
    index = {c: i + 1 for i, c in enumerate(json.loads(meta["src_vocab"]))}
    src = np.zeros((max(map(len, texts)), len(texts)), np.int64)
    for b, t in enumerate(texts):
        src[:len(t), b] = [index.get(ch, 0) for ch in t]
    src_len = np.array([len(t) for t in texts], np.int32)
    E, K = enc.run(["E", "K"], {"src": src, "src_len": src_len})
    return E, K, src_len, meta


def state(step, B, **given):
    """The step graph's state inputs, zeros unless given."""
    feeds = {}
    for i in step.get_inputs():
        if i.name in ("h", "c", "ctx"):
            feeds[i.name] = given.get(i.name, np.zeros((B, i.shape[1]), np.float32))
    return feeds


def run_greedy(enc, step, texts):
    E, K, src_len, meta = encode(enc, texts)
    vocab, sep = json.loads(meta["tgt_vocab"]), "" if meta["tokens"] == "chars" else " "
    B, max_len = len(texts), int(meta["max_len"])
    prev, st = np.zeros(B, np.int64), state(step, B)
    done, out, score = np.zeros(B, bool), [[] for _ in texts], np.zeros(B)
    names = [o.name for o in step.get_outputs()]
    for _ in range(max_len):
        res = dict(zip(names, step.run(None, {"prev": prev, **st, "E": E, "K": K,
                                               "src_len": src_len})))
        lp = res["logprobs"].astype(np.float64)
        lp[:, 0] = -np.inf                                   # BOS is never written
        tok = lp.argmax(1)
        for b in np.flatnonzero(~done):
            score[b] += lp[b, tok[b]]
            if tok[b] == 1:
                done[b] = True
            else:
                out[b].append(vocab[tok[b] - 2])
        if done.all():
            break
        prev = tok
        st = {k: res[k + "_next"] for k in st}
    return [sep.join(o) for o in out], score


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_a_greedy_loop_over_the_graphs_is_charrnn_transduce(cell, attention, tmp_path):
    tr = transducer(cell, attention)
    folder = charrnn.export_onnx(tr, tmp_path / "g2p")
    outs, scores = run_greedy(*sessions(tmp_path / "g2p"), TEXTS)
    assert outs == tr.transduce(TEXTS)
    src, src_len = tr.encode_sources(TEXTS)
    np.testing.assert_allclose(scores, greedy(tr.model, src, src_len, tr.max_len)[1], atol=1e-4)
    assert len(set(outs)) > 10 and folder == tmp_path / "g2p"


@pytest.mark.parametrize("tokens,layers_hidden", [("chars", 12), ("words", 16)])
def test_character_targets_and_rows_one_at_a_time(tokens, layers_hidden, tmp_path):
    tr = transducer("gru", "luong", tokens, layers_hidden)
    charrnn.export_onnx(tr, tmp_path / "m")
    enc, step = sessions(tmp_path / "m")
    assert run_greedy(enc, step, TEXTS)[0] == tr.transduce(TEXTS)
    for t in TEXTS[-4:]:                     # alone: no padding at all
        assert run_greedy(enc, step, [t])[0] == tr.transduce([t])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_two_layer_encoder(cell, tmp_path):
    from charrnn.nn.seq2seq import Seq2Seq
    from charrnn.training.seq2seq import Transducer
    base = transducer(cell, "bahdanau")
    m = Seq2Seq(dict(base.model.config, layers=2), seed=5)
    for name, p in m.params.items():   # random weights, large enough to matter
        p[...] = np.random.default_rng(len(name)).standard_normal(p.shape) * 0.5
    tr = Transducer(m, base.src_vocab, base.tgt_vocab, base.tokens, base.max_len)
    charrnn.export_onnx(tr, tmp_path / "m")
    outs, scores = run_greedy(*sessions(tmp_path / "m"), TEXTS)
    assert outs == tr.transduce(TEXTS)
    src, src_len = tr.encode_sources(TEXTS)
    np.testing.assert_allclose(scores, greedy(tr.model, src, src_len, tr.max_len)[1], atol=1e-4)


def test_cli_writes_the_folder_and_refuses_a_file(tmp_path):
    tr, r = export_saved(tmp_path, "onnx", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert run_greedy(*sessions(tmp_path / "out"), TEXTS[:8])[0] == tr.transduce(TEXTS[:8])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="it is a file; a transducer's ONNX export writes a folder"):
        charrnn.export_onnx(tr, tmp_path / "file")
    r = CliRunner().invoke(main, ["export", str(tmp_path / "t.safetensors"), "--format", "html",
                                  "-o", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and "exports to C or ONNX" in r.output


def test_the_export_pages_onnx_examples_run(tmp_path, capsys):
    """docs/export.md's Python for the two ONNX exports, run as written (paths aside)."""
    import re
    from pathlib import Path
    from test_export_classifier_c import classifier
    page = (Path(__file__).resolve().parent.parent / "docs" / "export.md").read_text("utf-8")

    def example(section):
        return re.search(r"```python\n(.*?)```", page[page.index(section):], re.S).group(1)
    tr = transducer()
    charrnn.export_onnx(tr, tmp_path / "g2p-onnx")
    exec(example("## Transducers (ONNX)").replace('"g2p-onnx/', f'"{tmp_path}/g2p-onnx/'), {})
    assert capsys.readouterr().out.strip() == tr.transduce(["charrnn"])[0]
    clf = classifier("gru", "final")
    charrnn.export_onnx(clf, tmp_path / "lang.onnx")
    exec(example("## Classifiers (ONNX)").replace('"lang.onnx"', f'"{tmp_path}/lang.onnx"'), {})
    assert capsys.readouterr().out.strip() == str(clf.predict(["Müller", "Rossi"]))
