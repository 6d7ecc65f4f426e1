"""charrnn export --format c of a classifier (--task classify): the file compiles as strict
C99, and its program gives the labels and probabilities `charrnn classify` gives."""
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.errors import ExportError
from charrnn.io import classifier_file
from charrnn.training.classify import train_classifier
from test_export_c import build

_CACHE = {}


def pairs(n=240, seed=0):
    """Which letter comes first in the word, "a" or "b" (or neither): a label that needs
    the whole string read, in either direction."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w = "".join(rng.choice(list("abcdef"), rng.integers(1, 9)))
        first = min((w.find(ch), ch) for ch in "ab" if ch in w)[1] if set(w) & set("ab") \
            else "none"
        out.append((first, w))
    return out


def classifier(cell, pool, layers=1):
    key = (cell, pool, layers)
    if key not in _CACHE:
        _CACHE[key] = train_classifier(pairs(), cell=cell, hidden=10, layers=layers, embed=6,
                                       pool=pool, steps=120, lr=0.02, seed=1)
    return _CACHE[key]


TEXTS = [w for _, w in pairs(30, seed=5)] + ["zz", "aé€b", "f"]


def labels_and_probs(exe, texts):
    """[[(label, p), ...] every label best first] of the program's --all for texts."""
    r = subprocess.run([str(exe), "--all"], input="\n".join(texts) + "\n", capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    out = []
    for line, text in zip(r.stdout.splitlines(), texts):
        parts = line.split("\t")
        assert parts[-1] == text
        out.append([(parts[i], float(parts[i + 1])) for i in range(0, len(parts) - 1, 2)])
    return out


@pytest.mark.parametrize("cell,pool,layers", [("lstm", "final", 1), ("gru", "mean", 1),
                                              ("rnn", "final", 2), ("gru", "final", 2),
                                              ("lstm", "mean", 2)])
def test_labels_and_probabilities_equal_charrnn_classify(cell, pool, layers, tmp_path):
    clf = classifier(cell, pool, layers)
    src = charrnn.export_c(clf, tmp_path / "c.c")
    got = labels_and_probs(build(src, tmp_path / "c", "-DCHARRNN_MAIN"), TEXTS)
    want = clf.top(TEXTS, len(clf.labels))
    assert [[lb for lb, _ in g] for g in got] == [[lb for lb, _ in w] for w in want]
    np.testing.assert_allclose([[p for _, p in g] for g in got],
                               [[p for _, p in w] for w in want], atol=2e-6)
    assert len({g[0][0] for g in got}) > 1                # a model that says something


def test_int8_and_the_library_api(tmp_path):
    clf = classifier("gru", "final")
    src = charrnn.export_c(clf, tmp_path / "model.c", int8=True, prefix="lang")
    (tmp_path / "main.c").write_text(r"""
#define LANG_MAX_SOURCE 4
#include "model.c"
#include <stdio.h>
int main(void)
{
    static lang_clf ws;
    int src[5] = {1, 2, 3, 4, 5};
    double p[LANG_CLASSES], s = 0;
    int i, k = lang_classify(&ws, src, 4, p);
    for (i = 0; i < LANG_CLASSES; i++) s += p[i];
    printf("%d %d %d %s %.9f\n", lang_classify(&ws, src, 0, NULL),
           lang_classify(&ws, src, 5, NULL), k == lang_classify(&ws, src, 4, NULL),
           lang_labels[k], s);
    return 0;
}
""")
    exe = build(tmp_path / "main.c", tmp_path / "lib", "-I", str(tmp_path))
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert out[:3] == ["-1", "-1", "1"] and out[3] in clf.labels
    assert abs(float(out[4]) - 1) < 1e-9
    text = "".join(clf.vocab[i - 1] for i in (1, 2, 3, 4))
    assert out[3] == clf.predict(text)
    assert "int8_t" in src.read_text()


def test_cli_exports_a_classifier_run_and_refuses_other_formats(tmp_path):
    clf = classifier("lstm", "final")
    path = tmp_path / "c.safetensors"
    classifier_file.save(path, clf.model.params, clf.model.config, clf.vocab, clf.labels)
    r = CliRunner().invoke(main, ["export", str(path), "--format", "c", "-o", str(tmp_path / "c.c")])
    assert r.exit_code == 0, r.output
    got = labels_and_probs(build(tmp_path / "c.c", tmp_path / "c", "-DCHARRNN_MAIN"), TEXTS)
    assert [g[0][0] for g in got] == charrnn.load_classifier(path).predict(TEXTS)
    charrnn.export_c(path, tmp_path / "d.c")              # a run path works in Python too
    assert (tmp_path / "d.c").read_text() == (tmp_path / "c.c").read_text()
    r = CliRunner().invoke(main, ["export", str(path), "--format", "html", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "exports to C or ONNX" in r.output and "Traceback" not in r.output
    with pytest.raises(ExportError, match="is a classifier: it exports to C or ONNX only"):
        charrnn.export_html(path, tmp_path / "x.html")
