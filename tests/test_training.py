"""The model, the training loop, checkpoints of a run, resume, and the Python API."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from charrnn.nn import shapes
import charrnn
from charrnn.io import checkpoint as ckpt
from charrnn.errors import DivergenceError, RunDirError, ShapeError
from charrnn.model import CharRNN
from charrnn.training.loop import train
from charrnn.training.options import TrainConfig

TINY = dict(hidden=16, layers=2, embed=8, seq_len=8, batch_size=4, eval_every=5,
            max_minutes=0, val_frac=0.1)


def metrics(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ---- model ----------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_loss_and_grad_matches_finite_differences(cell):
    cfg = dict(cell=cell, hidden=5, layers=2, embed=3, vocab_size=7)
    model = CharRNN(cfg, list("abcdefg"), dtype=np.float64, seed=1)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 7, (4, 3)), rng.integers(0, 7, (4, 3))
    state = [tuple(0.3 * rng.standard_normal((3, 5)) for _ in s) for s in model.init_state(3)]
    loss, grads, _ = model.loss_and_grad(x, y, state)
    assert set(grads) == set(model.params)
    eps = 1e-4
    for name, p in model.params.items():
        num = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            orig = p[idx]
            p[idx] = orig + eps
            plus, _ = model.loss(x, y, state)
            p[idx] = orig - eps
            minus, _ = model.loss(x, y, state)
            p[idx] = orig
            num[idx] = (plus - minus) / (2 * eps)
        err = np.max(np.abs(num - grads[name])) / max(np.max(np.abs(num)), 1e-12)
        assert err < 1e-6, (name, err)


def test_loss_matches_numpy_reference():
    """Embedding -> reference cells -> decoder -> log-softmax, all in NumPy float64."""
    from charrnn.nn import reference as ref
    cfg = dict(cell="lstm", hidden=6, layers=2, embed=4, vocab_size=5)
    model = CharRNN(cfg, list("abcde"), dtype=np.float64, seed=3)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 5, (7, 2)), rng.integers(0, 5, (7, 2))
    p = model.params
    h = p["encoder.weight"][x]
    for k in range(2):
        z = np.zeros((2, 6))
        h, _, _, _ = ref.lstm_forward(h, z, z, *model.layer_weights(k))
    logits = h @ p["decoder.weight"].T + p["decoder.bias"]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = -np.take_along_axis(logp, y[..., None], -1).mean()
    loss, _ = model.loss(x, y)
    assert abs(loss - want) < 1e-12


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_float32_model_matches_float64(cell):
    """The float32 training path (own sgemm where available, fused softmax) against the
    float64 one: same loss and gradients to float32 accuracy."""
    cfg = dict(cell=cell, hidden=40, layers=2, embed=24, vocab_size=30)
    m64 = CharRNN(cfg, [chr(65 + i) for i in range(30)], dtype=np.float64, seed=5)
    m32 = CharRNN(cfg, [chr(65 + i) for i in range(30)], dtype=np.float32, seed=5)
    m32.flat[:] = m64.flat
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 30, (12, 9)), rng.integers(0, 30, (12, 9))
    losses = []
    for m in (m64, m32):
        m.grad_flat[:] = 0
        loss, _ = m.forward_backward(x, y)
        losses.append(loss)
    assert abs(losses[0] - losses[1]) < 1e-5
    err = np.abs(m32.grad_flat - m64.grad_flat).max() / np.abs(m64.grad_flat).max()
    assert err < 1e-4


def test_model_rejects_bad_batches():
    model = CharRNN(dict(cell="gru", hidden=4, layers=1, embed=3, vocab_size=5), list("abcde"))
    with pytest.raises(ShapeError):
        model.loss(np.zeros(5, int), np.zeros(5, int))
    with pytest.raises(ShapeError):
        model.loss(np.zeros((3, 2), float), np.zeros((3, 2), int))
    with pytest.raises(ShapeError):
        model.loss(np.zeros((3, 2), int), np.zeros((3, 3), int))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.loss(np.full((3, 2), 5), np.zeros((3, 2), int))
    with pytest.raises(ShapeError):
        model.loss(np.zeros((3, 2), int), np.zeros((3, 2), int), state=[(np.zeros((3, 4)),)])


# ---- training -------------------------------------------------------------------------

def test_loss_decreases_on_learnable_corpus(tmp_path):
    p = tmp_path / "abc.txt"
    p.write_text("abcdefgh" * 500)
    s = train(str(p), out=str(tmp_path / "run"), quiet=True, cell="lstm", hidden=32,
              layers=1, embed=8, seq_len=16, batch_size=8, lr=1e-2, max_steps=200,
              eval_every=50, max_minutes=0, val_frac=0.1)
    first = metrics(tmp_path / "run")[0]["train_loss"]
    assert first > 1.9                       # about log(8): knows nothing yet
    assert s["val_loss"] < 0.05              # a cycle of 8 is fully predictable


def test_run_directory_contents_and_pytorch_names(corpus, tmp_path):
    run = tmp_path / "run"
    s = train(str(corpus), out=str(run), quiet=True, max_steps=7, **dict(TINY, cell="lstm"))
    assert s["steps"] == 7 and math.isfinite(s["val_loss"])
    for f in ["model.safetensors", "best.safetensors", "state.safetensors", "metrics.jsonl"]:
        assert (run / f).is_file(), f
    m = metrics(run)
    assert [r["step"] for r in m] == [1, 2, 3, 4, 5, 6, 7, 7]
    assert "val_loss" in m[4] and m[-1].get("final")
    for key in ["epoch", "train_loss", "lr", "grad_norm", "chars_per_sec", "wall_time"]:
        assert key in m[0]
    model = charrnn.load(run)
    assert model.config["cell"] == "lstm" and model.config["layers"] == 2
    assert list(model.params) == list(shapes.expected_shapes(model.config))
    assert model.params["rnn.weight_ih_l0"].shape == (64, 8)
    assert model.params["rnn.weight_ih_l1"].shape == (64, 16)
    assert model.params["decoder.weight"].shape == (len(model.vocab), 16)
    assert model.vocab == sorted(set(corpus.read_text()))


def interrupt_at(step):
    """A progress callback that sends this process SIGINT after `step`: an interruption
    exactly like Ctrl-C, at a known step."""
    def progress(record):
        if record["step"] == step:
            os.kill(os.getpid(), signal.SIGINT)
    return progress


@pytest.mark.parametrize("cell,dropout,optimizer", [("lstm", 0.0, "adam"), ("gru", 0.3, "rmsprop"),
                                                    ("rnn", 0.2, "adam")])
def test_resume_equals_uninterrupted(corpus, tmp_path, cell, dropout, optimizer):
    from charrnn.training.loop import Interrupted
    opts = dict(TINY, cell=cell, dropout=dropout, optimizer=optimizer, max_steps=23)
    train(str(corpus), out=str(tmp_path / "a"), quiet=True, **opts)
    with pytest.raises(Interrupted):
        train(str(corpus), out=str(tmp_path / "b"), quiet=True, progress=interrupt_at(19), **opts)
    train(str(corpus), out=str(tmp_path / "b"), quiet=True, resume=True)
    a = [(r["step"], r["train_loss"], r["lr"]) for r in metrics(tmp_path / "a") if "final" not in r]
    b = [(r["step"], r["train_loss"], r["lr"]) for r in metrics(tmp_path / "b") if "final" not in r]
    assert a == b and len(a) == 23
    assert a[-1][2] < 0.4 * a[0][2]          # the last 20% of the steps annealed the lr
    pa = ckpt.load_model(tmp_path / "a" / "model.safetensors").params
    pb = ckpt.load_model(tmp_path / "b" / "model.safetensors").params
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])


def test_lr_schedule_does_not_depend_on_eval_every(corpus, tmp_path):
    """A 60-step run with the default 5-minute budget too: evaluations that cost more
    than eval_every steps must not make the minutes budget look spent."""
    lrs = {}
    for every in (1, 30):
        run = tmp_path / f"e{every}"
        train(str(corpus), out=str(run), quiet=True, **dict(TINY, max_steps=60, max_minutes=5,
                                                             eval_every=every, lr_decay=1.0))
        lrs[every] = [r["lr"] for r in metrics(run) if "lr" in r]
    assert len(lrs[1]) == 60 and lrs[1] == lrs[30]
    assert set(lrs[1][:48]) == {lrs[1][0]} and lrs[1][-1] < 0.2 * lrs[1][0]   # the last 20%


class FakeTime:
    """perf_counter for charrnn.training.trainer: a step costs 1 s, an evaluation 10 s."""
    t = 0.0

    @classmethod
    def perf_counter(cls):
        return cls.t


@pytest.mark.parametrize("every", [5, 20])
def test_minutes_budget_anneal_ends_at_the_last_step(corpus, tmp_path, monkeypatch, every):
    """With a fake clock (1 s a step, 10 s an evaluation: more than 5 steps' worth) the
    anneal planned from the --max-minutes budget ends where the run ends, whatever
    --eval-every is: the lr reaches ~10% at the last step, not early."""
    from charrnn.training import trainer as trainer_mod
    monkeypatch.setattr(trainer_mod, "time", FakeTime)
    FakeTime.t = 0.0
    clip, ev = trainer_mod.optim.clip_scale, trainer_mod.Trainer.evaluate

    def step(*a, **k):       # called once inside each timed step
        FakeTime.t += 1.0
        return clip(*a, **k)

    def evaluate(self):
        FakeTime.t += 10.0
        return ev(self)
    monkeypatch.setattr(trainer_mod.optim, "clip_scale", step)
    monkeypatch.setattr(trainer_mod.Trainer, "evaluate", evaluate)
    run = tmp_path / "run"
    s = train(str(corpus), out=str(run), quiet=True,
              **dict(TINY, max_minutes=4, eval_every=every, lr_decay=1.0))
    lrs = [r["lr"] for r in metrics(run) if "lr" in r]
    n = s["steps"]
    assert s["stopped_by"] == "max-minutes" and len(lrs) == n
    # 240 s at 1 + 10/every s a step: 160 steps (every 20) or 80 (every 5)
    assert abs(n - 240 / (1 + 10 / every)) <= 3
    assert lrs[0] == lrs[int(0.75 * n)]                  # no anneal before the last 20%
    assert lrs[-1] < 0.2 * lrs[0]                        # ... and it falls to ~10% by the end
    assert lrs[int(0.85 * n)] > 0.4 * lrs[0]


def test_resume_with_a_larger_budget_continues(corpus, tmp_path):
    run = tmp_path / "run"
    train(str(corpus), out=str(run), quiet=True, max_steps=10, **TINY)
    s = train(str(corpus), out=str(run), quiet=True, max_steps=20, resume=True)
    assert s["steps"] == 20
    lrs = [r["lr"] for r in metrics(run) if "lr" in r]
    assert lrs[10] <= lrs[9]                 # the lr goes on from where it was (issue 27,
    assert lrs[-1] <= lrs[10]                # item 16), never back up to anneal again


def test_resume_crosses_epoch_boundary(tmp_path):
    from charrnn.training.loop import Interrupted
    p = tmp_path / "small.txt"
    p.write_text("to be or not to be, that is the question\n" * 12)
    opts = dict(TINY, batch_size=2, max_steps=70)
    s = train(str(p), out=str(tmp_path / "a"), quiet=True, **opts)
    assert s["epochs"] > 2
    with pytest.raises(Interrupted):
        train(str(p), out=str(tmp_path / "b"), quiet=True, progress=interrupt_at(31), **opts)
    train(str(p), out=str(tmp_path / "b"), quiet=True, resume=True)
    a = [r["train_loss"] for r in metrics(tmp_path / "a") if "final" not in r]
    b = [r["train_loss"] for r in metrics(tmp_path / "b") if "final" not in r]
    assert a == b


def test_existing_run_is_never_overwritten(corpus, tmp_path):
    run = tmp_path / "run"
    train(str(corpus), out=str(run), quiet=True, max_steps=2, **TINY)
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(RunDirError, match="--resume"):
        train(str(corpus), out=str(run), quiet=True, max_steps=2, **TINY)
    assert (run / "model.safetensors").read_bytes() == before


def test_resume_without_a_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_RUNS", str(tmp_path / "none"))
    with pytest.raises(RunDirError, match="no run found"):
        train(resume=True, quiet=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="no training state"):
        train(out=str(tmp_path / "empty"), resume=True, quiet=True)


@pytest.mark.parametrize("bad_lr", [float("nan"), 1e3])   # NaN weights; finite but blown up
def test_divergence_stops_with_step_and_keeps_the_checkpoint_before_it(corpus, tmp_path,
                                                                       monkeypatch, bad_lr):
    """Five good steps (a checkpoint after each), then an lr that wrecks the weights at
    step 6: training stops at step 6 and the checkpoint kept is step 5's, with step 5's
    validation loss, a sane one."""
    from charrnn.training import trainer as trainer_mod
    good_lr = trainer_mod.Trainer.lr
    monkeypatch.setattr(trainer_mod.Trainer, "lr",
                        lambda self: bad_lr if self.step >= 5 else good_lr(self))
    run = tmp_path / "run"
    with pytest.raises(DivergenceError,
                       match=r"diverged at step 6: .*last good checkpoint \(step 5\)"):
        train(str(corpus), out=str(run), quiet=True, max_steps=50, **dict(TINY, eval_every=1))
    state = ckpt.load_state(run / "state.safetensors").meta
    step5 = [r for r in metrics(run) if r["step"] == 5]
    assert state["step"] == 5 and len(step5) == 1 and max(r["step"] for r in metrics(run)) == 5
    assert round(state["last_val"], 5) == step5[0]["val_loss"]
    assert state["last_val"] < math.log(len(charrnn.load(run).vocab)) * 1.2
    info = ckpt.load_model(run / "model.safetensors").info
    assert info["step"] == 5 and info["val_loss"] == state["last_val"]


def test_a_loss_far_above_the_uniform_baseline_is_divergence(corpus, tmp_path):
    """--lr 1e30 keeps every number finite (gradient clipping) but the loss at ~1e31
    nats/char: a divergence, not a success; nothing was saved, so nothing is offered."""
    from click.testing import CliRunner
    from charrnn.cli import main
    runs = tmp_path / "runs"
    r = CliRunner(env={"CHARRNN_RUNS": str(runs)}).invoke(
        main, ["train", str(corpus), "--lr", "1e30", "-q", "--hidden", "16", "--layers", "1",
               "--max-steps", "30", "--eval-every", "10", "--max-minutes", "0"])
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert "diverged at step 2: loss" in r.output and "nothing to resume" in r.output
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("option,value", [("forget_bias", math.inf), ("lr", math.inf),
                                          ("lr", math.nan), ("max_minutes", math.inf),
                                          ("anneal", math.nan), ("grad_clip", math.inf)])
def test_non_finite_float_options_are_refused(corpus, tmp_path, option, value):
    from click.testing import CliRunner
    from charrnn.cli import main
    from charrnn.errors import ConfigError
    flag = "--" + option.replace("_", "-")
    r = CliRunner().invoke(main, ["train", str(corpus), "--out", str(tmp_path / "r"), flag, str(value)])
    assert r.exit_code == 2 and "finite" in r.output and "Traceback" not in r.output, r.output
    with pytest.raises(ConfigError, match=f"{flag} must be a finite number"):
        TrainConfig(**{option: value}).validate()
    assert not (tmp_path / "r").exists()


def test_every_train_option_takes_its_help_and_default_from_train_config():
    """TrainConfig is the one source: the CLI adds no default and no help of its own."""
    from dataclasses import fields
    from charrnn.cli import main
    from charrnn.data.corpus import ERRORS
    from charrnn.nn import optim
    from charrnn.training.options import ENCODING_ERRORS, OPTIMIZERS, automatic, described
    from click.testing import CliRunner
    from unittest import mock
    options = {p.name: p for p in main.commands["train"].params}
    for f in fields(TrainConfig):
        assert options[f.name].help == described(f.name)
    # nothing given on the command line: the library gets no option, so its defaults apply
    with mock.patch("charrnn.training.loop.train", return_value={"rank": 1}) as fn:
        CliRunner().invoke(main, ["train", "--no-distributed"], catch_exceptions=False)
    assert fn.call_args.kwargs == dict(out=None, resume=False, init=None, threads=None,
                                       quiet=False, distributed=False)
    for f in fields(TrainConfig):
        assert f.metadata["help"] and (f.default is not None) == (f.metadata["auto"] is None)
    assert described("lr") == "Learning rate (auto: 0.003; a third of the base run's with --init)."
    assert described("patience").endswith("else 0 (off)).")
    from charrnn.training import auto
    assert set(automatic()) == {f.name for f in fields(TrainConfig) if f.default is None}
    assert set(auto.AUTO) == set(automatic())
    assert OPTIMIZERS == tuple(optim.OPTIMIZERS) and ENCODING_ERRORS == ERRORS


def test_evaluate_api(corpus, tmp_path):
    run = tmp_path / "run"
    train(str(corpus), out=str(run), quiet=True, max_steps=3, **TINY)
    model = charrnn.load(run)
    r = charrnn.evaluate(model, corpus)
    assert 0 < r["loss"] < 10 and r["bpc"] == pytest.approx(r["loss"] / math.log(2))
    assert r["chars"] == len(corpus.read_text()) - 1


# ---- processes: signals and kills -------------------------------------------------------

def _train_process(corpus, run, extra=()):
    code = ("import sys; from charrnn.cli import main; sys.exit(main())")
    args = [sys.executable, "-c", code, "train", str(corpus), "--out", str(run), "--quiet",
            "--hidden", "16", "--layers", "1", "--embed", "8", "--seq-len", "8",
            "--batch-size", "4", "--eval-every", "3", "--max-minutes", "0", "--val-frac", "0.1",
            *extra]
    # cwd away from the source tree: `python -c` puts the cwd first on sys.path, and the
    # source tree's charrnn/ (without compiled kernels) must not shadow the installed one
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=run.parent)


def _wait_for(path, timeout=60):
    t0 = time.time()
    while not path.exists():
        if time.time() - t0 > timeout:
            raise TimeoutError(path)
        time.sleep(0.02)


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_exits(corpus, tmp_path, signum, code):
    run = tmp_path / "run"
    proc = _train_process(corpus, run, ["--max-steps", "100000"])
    _wait_for(run / "model.safetensors")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    command = f"charrnn train --out {run} --resume"
    assert err.splitlines()[-1] == f"charrnn: resume with: {command}", err
    step = ckpt.load_state(run / "state.safetensors").meta["step"]
    assert step >= 3
    # the printed command, run as printed (plus a budget), continues from there
    argv = command.split()[1:] + ["--max-steps", str(step + 2), "--quiet"]
    r = subprocess.run([sys.executable, "-c", "import sys; from charrnn.cli import main; "
                        "sys.exit(main())", *argv], capture_output=True, text=True, cwd=run.parent)
    assert r.returncode == 0, r.stderr
    assert ckpt.load_state(run / "state.safetensors").meta["step"] == step + 2
    assert [m["step"] for m in metrics(run) if "final" not in m] == list(range(1, step + 3))


def _losses(run):
    return [(r["step"], r["train_loss"], r["lr"]) for r in metrics(run) if "final" not in r]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_exact_resume_after_a_signal_from_outside(corpus, tmp_path, signum):
    """SIGTERM (saves, exits 143) or kill -9 (at any instant: mid-step, mid-save, with
    metrics lines past the checkpoint) in a real process, then --resume: the same per-step
    losses and lrs as a run never interrupted, and each step logged once."""
    steps = ["--max-steps", "300", "--eval-every", "1", "--threads", "1"]
    whole = _train_process(corpus, tmp_path / "whole", steps)
    run = tmp_path / "run"
    proc = _train_process(corpus, run, steps)
    while True:
        try:
            if ckpt.load_state(run / "state.safetensors").meta["step"] >= 20:
                break
        except Exception:
            pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    assert proc.returncode == (143 if signum == signal.SIGTERM else -signal.SIGKILL)
    stopped = ckpt.load_state(run / "state.safetensors").meta["step"]
    assert 20 <= stopped < 300
    resumed = _train_process(corpus, run, steps + ["--resume"])
    assert resumed.wait(timeout=300) == 0 and whole.wait(timeout=300) == 0
    a, b = _losses(tmp_path / "whole"), _losses(run)
    assert len(a) == 300 and a == b


def test_decoder_in_row_blocks_equals_one_block(monkeypatch):
    """A huge vocabulary is decoded a few rows at a time: same loss and gradients."""
    import charrnn.nn.network as model_mod
    cfg = dict(cell="gru", hidden=6, layers=1, embed=4, vocab_size=11)
    model = CharRNN(cfg, list("abcdefghijk"), dtype=np.float64, seed=2)
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 11, (5, 3)), rng.integers(0, 11, (5, 3))
    loss, grads, _ = model.loss_and_grad(x, y)
    monkeypatch.setattr(model_mod, "LOGITS_BYTES", 11 * 8 * 4)   # 4 of the 15 rows at a time
    loss2, grads2, _ = model.loss_and_grad(x, y)
    assert abs(loss - loss2) < 1e-12
    for k in grads:
        np.testing.assert_allclose(grads2[k], grads[k], rtol=1e-12, atol=1e-15)


def test_huge_vocabulary_trains_in_bounded_memory(tmp_path):
    """100k distinct code points: the (rows, V) logits are never materialised at once."""
    rng = np.random.default_rng(0)
    cps = np.concatenate([np.arange(0x4E00, 0x4E00 + 20000), np.arange(0x20000, 0x20000 + 80000)])
    text = "".join(map(chr, rng.permutation(np.concatenate([cps, rng.choice(cps, 50000)]))))
    p = tmp_path / "huge.txt"
    p.write_text(text, encoding="utf-8")
    s = train(str(p), out=str(tmp_path / "run"), quiet=True, hidden=8, layers=1, embed=4,
              seq_len=16, batch_size=8, max_steps=2, eval_every=2, max_minutes=0, val_frac=0.02)
    assert math.isfinite(s["val_loss"])
    model = charrnn.load(tmp_path / "run")
    assert len(model.vocab) == 100000
    # full logits for one step would be 128 rows x 100k x 4 B = 51 MB: fine either way;
    # the point is that it trains and samples at all with V = 100k
    assert len(model.generate(length=20, seed=1)) == 20


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_training_a_large_corpus_stays_under_the_documented_memory(tmp_path):
    """docs/training.md: a 300 MB corpus trains under ~250 MiB resident. Here a 32 MB
    corpus (the README repeated, written in tmp) trains with the
    defaults for 3 steps and an evaluation in a child process, whose own peak RSS
    (VmHWM, read inside it) must stay under the same 250 MiB: the fixed part
    (Python, NumPy, the model) dominates at this size, so the bound is not scaled down;
    holding the decoded text or int64 ids in RAM (64-256 MB) breaks it."""
    base = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    p = tmp_path / "big.txt"
    with open(p, "w", encoding="utf-8") as f:
        for _ in range(32 * 2**20 // len(base.encode()) + 1):
            f.write(base)
    # VmHWM, the peak of this process's own memory map: ru_maxrss would also count the
    # parent's pages when the child was spawned with vfork (a pytest holding PyTorch)
    code = ("import sys\nfrom charrnn.cli import main\ntry:\n    main()\n"
            "except SystemExit as e:\n    code = e.code\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
            "print('maxrss', hwm.split()[1], file=sys.stderr)\n"
            "sys.exit(code)")
    r = subprocess.run([sys.executable, "-c", code, "train", str(p), "--out", str(tmp_path / "run"),
                        "--max-steps", "3", "--eval-every", "3", "--threads", "1", "-q"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    kib = int(r.stderr.split("maxrss")[-1])
    assert kib < 250 * 1024, f"peak {kib / 1024:.0f} MiB"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_threaded_model_matches_serial(cell):
    from charrnn.nn import cells
    cfg = dict(cell=cell, hidden=7, layers=2, embed=5, vocab_size=9, dropout=0.3)
    serial = CharRNN(cfg, list("abcdefghi"), dtype=np.float64, seed=4)
    threaded = CharRNN(cfg, list("abcdefghi"), dtype=np.float64, seed=4)
    threaded.parallel = cells.Parallel(3)
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 9, (6, 5)), rng.integers(0, 9, (6, 5))
    for model in (serial, threaded):
        model.grad_flat.fill(0)
        model.loss_value, model.state = model.forward_backward(
            x, y, rng=np.random.default_rng(6))                 # with dropout masks
    assert abs(serial.loss_value - threaded.loss_value) < 1e-12
    np.testing.assert_allclose(threaded.grad_flat, serial.grad_flat, rtol=1e-10, atol=1e-14)
    threaded.parallel.close()


def test_messages_say_1_step_not_1_steps(tmp_path, corpus):
    """Issue 27, item 18: plurals; every line of the log carries the charrnn: prefix."""
    from charrnn.errors import plural
    from charrnn.training import auto
    assert (plural(1, "step"), plural(2, "stream"), plural(1000, "step")) == \
        ("1 step", "2 streams", "1,000 steps")
    choice = auto.choose(200, 10, 5.0, {}, "gru")
    assert "1 streams" not in " ".join(choice.notes)
    lines = []
    charrnn.train(corpus, out=tmp_path / "r", log=lines.append, max_steps=1, max_minutes=0,
                  hidden=8, layers=1, embed=4, seq_len=8, batch_size=1, eval_every=1)
    text = "\n".join(lines)
    assert "1 steps" not in text and "1 streams" not in text and "done after 1 step " in text
    lines.clear()
    charrnn.train(out=tmp_path / "r", resume=True, log=lines.append, max_steps=2, hidden=9)
    notes = [l for l in lines if "note:" in l]
    assert notes and all(l.startswith("charrnn: note:") for l in notes)


def test_the_final_record_carries_rounded_numbers_of_its_own_step(tmp_path, corpus):
    """Issue 27, item 18: no unrounded training loss in the final line of metrics.jsonl."""
    charrnn.train(corpus, out=tmp_path / "r", quiet=True, max_steps=7, eval_every=5,
                  max_minutes=0, hidden=8, layers=1, embed=4, seq_len=8, batch_size=2)
    m = metrics(tmp_path / "r")
    final, last_step = m[-1], m[-2]
    assert final["final"] and final["step"] == last_step["step"] == 7
    assert final["train_loss"] == last_step["train_loss"] == round(final["train_loss"], 5)


@pytest.mark.parametrize("stopper", [{"max_steps": 6}, {"patience": 1}])
def test_resume_of_a_finished_run_says_so_and_changes_nothing(tmp_path, corpus, stopper):
    """Issue 27, item 16: no second final record, exit 0, the message says what to raise."""
    options = dict(max_minutes=0, hidden=8, layers=1, embed=4, seq_len=8, batch_size=2,
                   eval_every=1, lr=0.3 if "patience" in stopper else 3e-3)
    options.setdefault("max_steps", 200)
    options.update(stopper)
    first = charrnn.train(corpus, out=tmp_path / "r", quiet=True, **options)
    assert first["stopped_by"] == ("patience" if "patience" in stopper else "max-steps")
    before = (tmp_path / "r" / "metrics.jsonl").read_text()
    lines = []
    summary = charrnn.train(out=tmp_path / "r", resume=True, log=lines.append)
    assert (tmp_path / "r" / "metrics.jsonl").read_text() == before
    assert summary["steps"] == first["steps"] and summary["stopped_by"] == first["stopped_by"]
    assert any("already finished" in l and "nothing to do" in l for l in lines), lines


def test_raising_the_budget_mid_anneal_continues_the_lr(tmp_path, corpus):
    """Issue 27, item 16: the lr goes on from where the anneal left it (no jump back up)."""
    options = dict(max_minutes=0, hidden=8, layers=1, embed=4, seq_len=8, batch_size=2,
                   eval_every=5, anneal=0.5)
    charrnn.train(corpus, out=tmp_path / "r", quiet=True, max_steps=20, **options)
    charrnn.train(out=tmp_path / "r", resume=True, quiet=True, max_steps=40)
    lr = {r["step"]: r["lr"] for r in metrics(tmp_path / "r") if "lr" in r}
    assert lr[20] < 0.25 * lr[10]                 # annealing by step 20
    assert lr[21] <= lr[20] and lr[40] <= lr[21]  # and it goes on falling, no restart
