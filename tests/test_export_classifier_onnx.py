"""charrnn export --format onnx of a classifier (--task classify): onnxruntime, fed the
texts as the graph's documentation says (ids of the vocabulary, 0 for an unseen
character, lengths), gives the probabilities `charrnn classify` gives, for the three
cells, both poolings, one and two layers, over ragged batches."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.io import classifier_file
from test_export_classifier_c import TEXTS, classifier

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def feed(clf, texts, pad=7):
    """The graph's inputs for texts: ids (T, B) int64, padded with a junk id, lengths."""
    index = {c: i + 1 for i, c in enumerate(clf.vocab)}
    T = max(map(len, texts))
    ids = np.full((T, len(texts)), pad % (len(clf.vocab) + 1), np.int64)
    for b, t in enumerate(texts):
        ids[:len(t), b] = [index.get(c, 0) for c in t]
    return {"ids": ids, "lengths": np.array([len(t) for t in texts], np.int32)}


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("pool", ["final", "mean"])
@pytest.mark.parametrize("layers", [1, 2])
def test_onnxruntime_gives_charrnn_classifys_probabilities(tmp_path, cell, pool, layers):
    clf = classifier(cell, pool, layers)
    path = charrnn.export_onnx(clf, tmp_path / "clf.onnx")
    s = session(path)
    probs, logits = s.run(["probabilities", "logits"], feed(clf, TEXTS))
    want = clf.predict_proba(TEXTS)
    np.testing.assert_allclose(probs, want, atol=2e-6)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    # one text at a time, and another padding value: the same
    one, = s.run(["probabilities"], feed(clf, TEXTS[3:4], pad=3))
    np.testing.assert_allclose(one[0], want[3], atol=2e-6)
    meta = s.get_modelmeta().custom_metadata_map
    assert json.loads(meta["labels"]) == clf.labels and json.loads(meta["vocab"]) == clf.vocab
    assert json.loads(meta["config"])["pool"] == pool


def test_cli_and_a_run_path(tmp_path):
    clf = classifier("gru", "final")
    path = tmp_path / "c.safetensors"
    classifier_file.save(path, clf.model.params, clf.model.config, clf.vocab, clf.labels)
    r = CliRunner().invoke(main, ["export", str(path), "--format", "onnx", "-o",
                                  str(tmp_path / "c.onnx")])
    assert r.exit_code == 0, r.output
    charrnn.export_onnx(path, tmp_path / "d.onnx")
    for f in ("c.onnx", "d.onnx"):
        probs, = session(tmp_path / f).run(["probabilities"], feed(clf, TEXTS))
        np.testing.assert_allclose(probs, charrnn.load_classifier(path).predict_proba(TEXTS),
                                   atol=2e-6)
    r = CliRunner().invoke(main, ["export", str(path), "--format", "onnx", "--int8", "-o",
                                  str(tmp_path / "e.onnx")])
    assert r.exit_code == 2 and "--int8 applies to" in r.output
