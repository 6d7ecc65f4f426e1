"""--ema: a moving average of the weights, which the pair tasks' runs evaluate and save.

The average's arithmetic (charrnn.nn.optim.WeightAverage over charrnn._ops.ema_update)
against float64, then a run as users meet it: the model file holds the average of the
weights every step produced, the validation loss is the average's, the training state
keeps both so a resume is exact, and the options' errors are one line."""
import json

import numpy as np
import pytest

import charrnn
from charrnn import _ops
from charrnn.errors import ConfigError
from charrnn.io import checkpoint as ckpt
from charrnn.nn import optim
from charrnn.nn.parallel import Parallel
from charrnn.training.loop import train
from charrnn.training.seq2seq_run import split_by_source

from test_classify_cli import invoke, one_line, run_twice, two_alphabets
from test_seq2seq_cli import OPTS, TINY, reversals, runner  # noqa: F401 (a fixture)


def reference(weights, decay):
    """The average after weights[1:], from weights[0], in float64."""
    a = weights[0].astype(np.float64)
    for t, w in enumerate(weights[1:], start=1):
        d = min(decay, (1 + t) / (10 + t))
        a = d * a + (1 - d) * w
    return a


def test_update_is_the_moving_average_with_its_warm_up():
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal(1001).astype(np.float32) for _ in range(40)]
    p = ws[0].copy()
    avg = optim.WeightAverage(0.8, p)
    for t, w in enumerate(ws[1:], start=1):
        p[...] = w
        avg.update(p, t)
    want = reference(ws, 0.8)
    assert np.allclose(avg.state["avg"], want, rtol=0, atol=1e-5)
    # the warm-up matters: with the plain decay the first weights would still weigh 0.8^39
    assert not np.allclose(avg.state["avg"], 0.8 ** 39 * ws[0] + reference([ws[-1]] * 2, 0.8),
                           atol=1e-3)


def test_threads_take_slices_and_give_the_same_bits():
    rng = np.random.default_rng(1)
    p = rng.standard_normal(10_007).astype(np.float32)
    one, two = optim.WeightAverage(0.99, p), optim.WeightAverage(0.99, p)
    par = Parallel(2)
    try:
        for t in range(1, 30):
            p += rng.standard_normal(p.size).astype(np.float32)
            one.update(p, t)
            two.update(p, t, par)
    finally:
        par.close()
    assert np.array_equal(one.state["avg"], two.state["avg"])


def test_a_weight_that_stops_moving_is_reached_exactly():
    p = np.full(5, 3.25, np.float32)
    avg = optim.WeightAverage(0.999, p)
    for t in range(1, 100):
        avg.update(p, t)
    assert np.array_equal(avg.state["avg"], p)


def test_applied_swaps_the_average_in_and_back_even_after_an_error():
    p = np.arange(4, dtype=np.float32)
    avg = optim.WeightAverage(0.5, p)
    avg.state["avg"][...] = -1
    with avg.applied(p) as inside:
        assert inside is p and np.array_equal(p, [-1] * 4)
    assert np.array_equal(p, np.arange(4))
    with pytest.raises(RuntimeError):
        with avg.applied(p):
            raise RuntimeError("an evaluation failed")
    assert np.array_equal(p, np.arange(4))


def test_bad_decays_and_shapes():
    for d in (0, 1, -0.5, 1.5):
        with pytest.raises(ConfigError, match=r"decay must be in \(0, 1\)"):
            optim.WeightAverage(d, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="moving-average buffers"):
        _ops.ema_update(np.zeros(3, np.float32), np.zeros(4, np.float32), 0.5)


# ---- in a run ----------------------------------------------------------------------------

def test_the_model_file_holds_the_average_of_every_step(tmp_path, monkeypatch):
    """A spy records the weights each update sees; the model file must be their average,
    the state file the last weights, and the reported validation loss the average's."""
    seen = []
    start, update = optim.WeightAverage.__init__, optim.WeightAverage.update

    def spy_start(self, decay, params):
        seen.append(params.copy())
        start(self, decay, params)

    def spy_update(self, params, t, parallel=None):
        assert t == len(seen)   # once per step, counted from 1
        seen.append(params.copy())
        update(self, params, t, parallel)
    monkeypatch.setattr(optim.WeightAverage, "__init__", spy_start)
    monkeypatch.setattr(optim.WeightAverage, "update", spy_update)
    tsv = reversals(tmp_path / "r.tsv", n=200)
    run = tmp_path / "run"
    train(str(tsv), out=str(run), threads=1, quiet=True, **dict(OPTS, ema=0.9, max_steps=25, val_frac=0.2))
    assert len(seen) == 26
    t = charrnn.load_transducer(run, best=False)
    assert np.allclose(t.model.flat, reference(seen, 0.9), rtol=0, atol=1e-5)
    state = ckpt.load_state(run / "state.safetensors")
    raw = np.concatenate([state.arrays[f"param.{k}"].ravel() for k in t.model.params])
    assert np.array_equal(raw, seen[-1]) and not np.allclose(raw, t.model.flat, atol=1e-4)
    assert np.array_equal(state.arrays["ema.avg"], t.model.flat)
    # the final record's validation loss is the loss of the file's (averaged) weights
    lines = (tsv.read_text()).splitlines()
    held = split_by_source([l.split("\t")[0] for l in lines], state.meta["train_config"]["val_frac"],
                           OPTS["seed"])[1]
    pairs = [tuple(lines[i].split("\t")) for i in held]
    final = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    t.model.precision = state.meta["train_config"]["precision"]   # validation ran in it
    assert final["val_loss"] == pytest.approx(t.loss(pairs), abs=1e-5)
    t.model.flat[...] = raw
    assert abs(final["val_loss"] - t.loss(pairs)) > 1e-4


@pytest.mark.parametrize("task", ["seq2seq", "classify"])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, task):
    tsv = reversals(tmp_path / "r.tsv", n=200) if task == "seq2seq" else \
        two_alphabets(tmp_path / "p.tsv")
    opts = dict(OPTS, ema=0.7, val_frac=0.2) if task == "seq2seq" else dict(
        task="classify", hidden=12, embed=6, batch_size=16, max_minutes=0, max_steps=40,
        eval_every=7, seed=3, ema=0.7, val_frac=0.2)
    whole, cut = run_twice(tsv, tmp_path, opts)
    load = charrnn.load_transducer if task == "seq2seq" else charrnn.load_classifier
    assert np.array_equal(load(whole, best=False).model.flat, load(cut, best=False).model.flat)
    vals = [{l["step"]: l["val_loss"] for l in map(json.loads, (r / "metrics.jsonl")
                                                      .read_text().splitlines()) if "val_loss" in l}
            for r in (whole, cut)]
    assert vals[0] == vals[1] and len(vals[0]) == 6   # steps 7, 14, ..., 35 and the end


def test_off_unless_given_and_said_when_on(runner, tmp_path):  # noqa: F811
    tsv = reversals(tmp_path / "r.tsv", n=60)
    cls = two_alphabets(tmp_path / "c.tsv")
    for name, args in (("s", [tsv, *TINY]), ("c", [cls, "--task", "classify", "--max-minutes", "0"])):
        r = invoke(runner, "train", *args, "--max-steps", "2", "--out", tmp_path / name)
        assert r.exit_code == 0 and "weights averaged" not in r.output, r.output
        st = ckpt.load_state(tmp_path / name / "state.safetensors")
        assert st.meta["train_config"]["ema"] == 0 and "ema.avg" not in st.arrays
        r = invoke(runner, "train", *args, "--max-steps", "2", "--ema", "0.99", "--out",
                   tmp_path / (name + "2"))
        assert r.exit_code == 0 and "weights averaged (--ema 0.99)" in r.output, r.output
        assert "ema.avg" in ckpt.load_state(tmp_path / (name + "2") / "state.safetensors").arrays


def test_option_errors_are_one_line(runner, tmp_path):  # noqa: F811
    tsv = reversals(tmp_path / "r.tsv", n=20)
    r = invoke(runner, "train", tsv, *TINY, "--ema", "1")
    assert r.exit_code == 2 and "'--ema': 1.0 is not in the range 0<=x<1" in r.output
    plain = tmp_path / "plain.txt"
    plain.write_text("some text to model " * 50)
    assert "--ema is for --task classify or seq2seq" in one_line(
        invoke(runner, "train", plain, "--ema", "0.9", "--max-steps", "1"))
    with pytest.raises(ConfigError, match=r"--ema must be in \[0, 1\) \(0: off\)"):
        charrnn.TrainConfig(task="seq2seq", ema=1.0).validate()
