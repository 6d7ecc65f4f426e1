"""charrnn export --format onnx, checked against onnxruntime and onnx's reference
evaluator (both in the test extra)."""
import json
import os
import sys

import numpy as np
import pytest
from click.testing import CliRunner

try:
    import onnx
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator
except ImportError as e:   # both are in the test extra; .ci/run insists on them
    if os.environ.get("CHARRNN_REQUIRE_TOOLS") == "1":
        raise
    pytest.skip(f"{e.name} not installed: pip install -e '.[test]'", allow_module_level=True)

import charrnn  # noqa: E402
from charrnn.cli import main  # noqa: E402
from export_common import HELD_OUT, charrnn_logits, ids, random_model, trained_run  # noqa: E402

TOL = 1e-4


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def feeds(model, tokens, state=None):
    """onnxruntime's inputs for tokens (T, B): zero state unless given as (h0, c0)."""
    L, H, B = model.cfg.layers, model.cfg.hidden, tokens.shape[1]
    f = {"tokens": tokens.astype(np.int64)}
    zero = np.zeros((L, B, H), np.float32)
    f["h0"] = zero if state is None else state[0]
    if model.cfg.cell == "lstm":
        f["c0"] = zero if state is None else state[1]
    return f


def held_out_batch(model, T=120, B=3):
    """(T, B): B streams from different places of the held-out text."""
    x = ids(model, HELD_OUT)
    starts = [0, len(x) // 3, 2 * len(x) // 3]
    return np.stack([x[s:s + T] for s in starts[:B]], axis=1)


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_onnxruntime_logits_and_state_match_charrnn(cell, layers, tmp_path):
    model = random_model(cell, layers)
    path = charrnn.export_onnx(model, tmp_path / "m.onnx")
    tokens = held_out_batch(model)
    want, final = charrnn_logits(model, tokens)
    got = session(path).run(None, feeds(model, tokens))
    assert got[0].shape == want.shape == (tokens.shape[0], 3, len(model.vocab))
    assert np.abs(got[0] - want).max() < TOL
    assert np.abs(got[1] - np.stack([s[0] for s in final])).max() < TOL
    if cell == "lstm":
        assert np.abs(got[2] - np.stack([s[1] for s in final])).max() < TOL
    # and the logits are not trivially alike: they spread over a few nats at each step
    assert got[0].std(axis=2).mean() > 0.5


def test_trained_model_on_held_out_text(tmp_path):
    model = charrnn.load(trained_run())
    path = charrnn.export_onnx(model, tmp_path / "m.onnx")
    tokens = held_out_batch(model, T=1000, B=2)
    want, _ = charrnn_logits(model, tokens)
    got = session(path).run(["logits"], feeds(model, tokens))[0]
    assert np.abs(got - want).max() < TOL
    # a trained model: its predictions beat a uniform guess by far on text it never saw
    z = got[:-1] - got[:-1].max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, tokens[1:, :, None], -1).mean()
    assert nll < 0.6 * np.log(len(model.vocab))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_state_carried_across_two_calls_equals_one_call(cell, tmp_path):
    model = random_model(cell, 2)
    s = session(charrnn.export_onnx(model, tmp_path / "m.onnx"))
    tokens = held_out_batch(model, T=80, B=2)
    whole = s.run(None, feeds(model, tokens))
    first = s.run(None, feeds(model, tokens[:37]))
    second = s.run(None, feeds(model, tokens[37:], tuple(first[1:]) + (None,)))
    assert np.abs(np.concatenate([first[0], second[0]]) - whole[0]).max() < 1e-5
    for a, b in zip(second[1:], whole[1:]):
        assert np.abs(a - b).max() < 1e-5


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_reference_evaluator_agrees(cell, tmp_path):
    model = random_model(cell, 2)
    path = charrnn.export_onnx(model, tmp_path / "m.onnx")
    tokens = held_out_batch(model, T=40, B=2)
    want, final = charrnn_logits(model, tokens)
    got = ReferenceEvaluator(str(path)).run(None, feeds(model, tokens))
    assert np.abs(got[0] - want).max() < TOL
    assert np.abs(got[1] - np.stack([s[0] for s in final])).max() < TOL


def test_greedy_300_from_onnxruntime_equals_charrnn_sample(tmp_path):
    run = trained_run()
    model = charrnn.load(run)
    path = tmp_path / "m.onnx"
    r = CliRunner().invoke(main, ["export", str(run), "--format", "onnx", "-o", str(path)])
    assert r.exit_code == 0, r.output
    s = session(path)
    prime = "ROMEO:\nWhat say you"
    # prime in one call, then one character per call with the state carried
    logits, *state = s.run(None, feeds(model, ids(model, prime)[:, None]))
    out = []
    for _ in range(300):
        nxt = int(np.argmax(logits[-1, 0]))
        out.append(model.vocab[nxt])
        logits, *state = s.run(None, feeds(model, np.array([[nxt]]), tuple(state) + (None,)))
    r = CliRunner().invoke(main, ["sample", str(run), "--temp", "0", "--length", "300",
                                  "--prime", prime])
    assert r.exit_code == 0
    assert r.output == prime + "".join(out) + "\n"
    assert len(set(out)) > 5                      # real text, not one character repeated


def test_model_file_is_pinned_checked_and_self_describing(tmp_path):
    model = random_model("lstm", 2)
    m = onnx.load(str(charrnn.export_onnx(model, tmp_path / "m.onnx")))
    onnx.checker.check_model(m, full_check=True)
    assert m.ir_version == 8
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)]
    assert [n.op_type for n in m.graph.node].count("LSTM") == 2
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta["vocab"]) == model.vocab
    assert json.loads(meta["config"]) == model.config
    assert meta["charrnn_version"] == charrnn.__version__
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(m.graph.input) + list(m.graph.output)}
    V = len(model.vocab)
    assert dims == {"tokens": ["T", "B"], "h0": [2, "B", 24], "c0": [2, "B", 24],
                    "logits": ["T", "B", V], "hn": [2, "B", 24], "cn": [2, "B", 24]}
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64


def test_gru_node_uses_pytorch_reset_semantics(tmp_path):
    m = onnx.load(str(charrnn.export_onnx(random_model("gru", 1), tmp_path / "m.onnx")))
    gru = [n for n in m.graph.node if n.op_type == "GRU"][0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gru.attribute}
    assert attrs["linear_before_reset"] == 1


# ---- bad input ------------------------------------------------------------------------

def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_without_onnx_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)       # import onnx -> ImportError
    with pytest.raises(charrnn.ExportError, match=r'pip install "charrnn-fast\[onnx\]"'):
        charrnn.export_onnx(random_model("gru", 1), tmp_path / "m.onnx")
    r = cli("export", trained_run(), "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert 'pip install "charrnn-fast[onnx]"' in r.output
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("fmt", ["onnx", "c"])
def test_a_directory_that_is_not_a_run(tmp_path, fmt):
    (tmp_path / "notes.txt").write_text("hello")
    r = cli("export", tmp_path, "--format", fmt, "-o", tmp_path / "m.out")
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert r.output.startswith("Error: no checkpoint in ")


def test_unknown_format_is_a_usage_error(tmp_path):
    r = cli("export", trained_run(), "--format", "tflite", "-o", tmp_path / "m")
    assert r.exit_code == 2 and "'tflite' is not one of 'onnx', 'c', 'html', 'web'" in r.output


def test_int8_is_not_for_onnx(tmp_path):
    r = cli("export", trained_run(), "--format", "onnx", "--int8", "-o", tmp_path / "m")
    assert r.exit_code == 2 and "--int8 applies to --format c, html and web, not onnx" in r.output


@pytest.mark.parametrize("fmt", ["onnx", "c"])
@pytest.mark.parametrize("where", ["missing-dir", "under-a-file", "a-directory"])
def test_unwritable_output(tmp_path, fmt, where):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    out = {"missing-dir": tmp_path / "nope" / "m.out", "under-a-file": tmp_path / "file" / "m.out",
           "a-directory": tmp_path / "dir"}[where]
    r = cli("export", trained_run(), "--format", fmt, "-o", out)
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert r.output.startswith(f"Error: cannot write {out}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]
    assert list((tmp_path / "dir").iterdir()) == []


def test_export_has_help_with_an_example():
    r = cli("export", "--help")
    assert r.exit_code == 0 and "Example" in r.output and "--int8" in r.output


def test_without_run_it_exports_the_newest_run(tmp_path, monkeypatch):
    rd = trained_run()
    monkeypatch.setenv("CHARRNN_RUNS", str(rd.parent))
    r = CliRunner().invoke(main, ["export", "--format", "onnx", "-o", str(tmp_path / "m.onnx")])
    assert r.exit_code == 0, r.output
    assert f"using {rd}" in r.output
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["config"]) == charrnn.load(rd).config
