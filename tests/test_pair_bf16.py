"""bf16 (--precision) for classifiers and transducers: their cells' products (the
bidirectional encoder's, the decoder's) take bf16 inputs and sum in float32, as a language
model's do (test_bf16.py); attention, the output layer and the optimizer stay float32.

On the native kernel where the CPU has one (AMX or VDPBF16PS on x86, BFDOT on arm64),
else on the portable kernel (CHARRNN_BF16=portable), so that every CPU runs them."""
import json
import threading

import numpy as np
import pytest

from charrnn.nn import precision
from charrnn.nn.classifier import Classifier
from charrnn.nn.seq2seq import Seq2Seq
from charrnn.training.loop import train

from test_classify_cli import OPTS as CLASSIFY_OPTS, run_twice, two_alphabets
from test_seq2seq_cli import OPTS as SEQ2SEQ_OPTS, reversals


@pytest.fixture(autouse=True)
def bf16_runs_here(monkeypatch):
    if not precision.native():
        monkeypatch.setenv(precision.ENV, "portable")


def batch(rng, V, S, N):
    src = rng.integers(1, V, (S, N)).astype(np.int32)
    lengths = rng.integers(1, S + 1, N).astype(np.int64)
    return src, lengths


def seq2seq_pair(cell):
    m = Seq2Seq(dict(cell=cell, attention="luong", embed=8, hidden=24, decoder=40, attn=40,
                     layers=2, src_vocab=11, tgt_vocab=13), seed=1)
    rng = np.random.default_rng(2)
    src, sl = batch(rng, 11, 9, 7)
    tgt = rng.integers(2, 13, (8, 7)).astype(np.int32)
    tl = rng.integers(2, 8, 7).astype(np.int64)
    return m, (src, sl, tgt, tl)


def run(m, args, prec):
    m.precision = prec
    m.grad_flat.fill(0)
    loss = m.forward_backward(*args)
    return loss, m.grad_flat.copy()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_seq2seq_in_bf16_is_float32_to_bf16s_rounding(cell):
    """Loss and gradients within bf16's rounding of float32's, and not equal to them (the
    products really were bf16); back in fp32, float32's bits again."""
    m, args = seq2seq_pair(cell)
    l32, g32 = run(m, args, "fp32")
    l16, g16 = run(m, args, "bf16")
    assert abs(l16 - l32) <= 1e-2 * abs(l32) and l16 != l32
    assert np.linalg.norm(g16 - g32) <= 2e-2 * np.linalg.norm(g32)
    again, g = run(m, args, "fp32")
    assert again == l32 and np.array_equal(g, g32)


def test_classifier_in_bf16_is_float32_to_bf16s_rounding():
    m = Classifier(dict(cell="lstm", hidden=24, layers=2, embed=8, vocab_size=11, classes=5,
                        pool="mean"), seed=1)
    rng = np.random.default_rng(3)
    src, lengths = batch(rng, 11, 9, 7)
    labels = rng.integers(0, 5, 7).astype(np.int32)
    args = (src, lengths, labels)
    l32, g32 = run(m, args, "fp32")
    l16, g16 = run(m, args, "bf16")
    assert abs(l16 - l32) <= 1e-2 * abs(l32) and l16 != l32
    assert np.linalg.norm(g16 - g32) <= 2e-2 * np.linalg.norm(g32)


def test_a_bad_precision_or_dtype_is_refused():
    from charrnn.errors import ConfigError
    m = Seq2Seq(dict(cell="gru", embed=4, hidden=4, decoder=8, attn=8, src_vocab=5,
                     tgt_vocab=6), dtype=np.float64)
    with pytest.raises(ConfigError, match="bf16 products need a float32 network"):
        m.precision = "bf16"
    with pytest.raises(ConfigError, match="'fp32' or 'bf16', not 'fp16'"):
        Seq2Seq(dict(cell="gru", embed=4, hidden=4, decoder=8, attn=8, src_vocab=5,
                     tgt_vocab=6)).precision = "fp16"


def test_encoding_from_two_threads_at_once_in_bf16():
    """Decoding may encode in several threads at once: bf16's workspaces are per call, so
    each thread gets the serial result."""
    m, (src, sl, _, _) = seq2seq_pair("gru")
    m.precision = "bf16"
    want = m.encode(src, sl)[:2]
    got = [None, None]

    def work(i):
        for _ in range(20):
            got[i] = m.encode(src, sl)[:2]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g in got:
        for a, b in zip(g, want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("task", ["classify", "seq2seq"])
def test_a_bf16_pair_run_records_it_logs_it_and_resumes_exactly(tmp_path, task):
    if task == "classify":
        tsv, opts = two_alphabets(tmp_path / "p.tsv"), dict(CLASSIFY_OPTS, precision="bf16")
    else:
        tsv, opts = reversals(tmp_path / "r.tsv", n=200), dict(SEQ2SEQ_OPTS, precision="bf16")
    whole, _ = run_twice(tsv, tmp_path, opts)
    state = json.loads((whole / "metrics.jsonl").read_text().splitlines()[-1])
    assert state["final"]
    from charrnn.io import checkpoint as ckpt
    meta = ckpt.load_state(whole / "state.safetensors").meta
    assert meta["train_config"]["precision"] == "bf16"
    lines = []
    train(str(tsv), out=str(tmp_path / "log"), threads=1, quiet=True, log=lines.append,
          **dict(opts, max_steps=2))
    assert any(ln.startswith("charrnn: precision bf16: the matrix products' inputs in bf16")
               for ln in lines), lines
