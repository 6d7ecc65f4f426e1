"""The README's promise: bad input is a one-line error and a non-zero exit, never a
traceback; no NumPy warning leaks into the output; a closed pipe or Ctrl-C ends a
command the way Unix tools end (real subprocesses, real pipes, real signals)."""
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import charrnn
from charrnn import ConfigError

from conftest import child_env

TINY = ["--hidden", "16", "--layers", "1", "--embed", "8", "--seq-len", "8",
        "--batch-size", "4", "--eval-every", "2", "--max-minutes", "0"]


def charrnn_cmd(*args, **kw):
    """`charrnn args...` as a child process on the source tree."""
    env = child_env(**kw.pop("env", {}))
    return [sys.executable, "-m", "charrnn.cli", *map(str, args)], env


def run(*args, **kw):
    cmd, env = charrnn_cmd(*args, env=kw.pop("env", {}))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, **kw)


def one_line_error(r, code=1):
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.fixture
def trained(tmp_path, corpus):
    r = run("train", corpus, "--out", tmp_path / "run", "--max-steps", "4", "-q", *TINY)
    assert r.returncode == 0, r.stderr
    return tmp_path / "run"


# ---- 7: tracebacks become one line ------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["--seed", "-5"], "--seed"),
    (["--max-minutes", "inf"], "--max-minutes"),
    (["--max-epochs", "inf"], "--max-epochs"),
])
def test_train_option_out_of_range_is_one_line(tmp_path, corpus, args, needle):
    r = run("train", corpus, "--out", tmp_path / "r", "--max-steps", "2", *TINY[:-2], *args)
    assert "Traceback" not in r.stderr and needle in r.stderr, r.stderr
    if r.returncode == 2:   # refused by Click (a usage error) ...
        assert f"Invalid value for '{needle}'" in r.stderr
    else:                   # ... or by TrainConfig: one line
        assert needle in one_line_error(r)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("options,needle", [
    ({"lr": "0.01"}, "--lr must be a number"),
    ({"seed": -5}, "--seed"),
    ({"hidden": 3.5}, "--hidden must be a whole number"),
    ({"hidden": True}, "--hidden must be a whole number"),
    ({"max_minutes": float("inf")}, "--max-minutes"),
    ({"max_epochs": float("inf")}, "--max-epochs"),
    ({"anneal": float("nan")}, "--anneal"),
    ({"cell": 3}, "--cell must be a string"),
])
def test_python_train_bad_option_types_raise_config_error(tmp_path, corpus, options, needle):
    with pytest.raises(ConfigError, match=needle):
        charrnn.train(corpus, out=tmp_path / "r", quiet=True, max_steps=1, **options)


def test_numpy_integers_are_accepted_as_options():
    charrnn.TrainConfig(hidden=np.int64(8), lr=np.float32(0.01), seed=np.uint64(3)).validate()


def test_python_evaluate_accepts_a_run_path(trained, corpus):
    by_path = charrnn.evaluate(str(trained), corpus)
    by_model = charrnn.evaluate(charrnn.load(trained, best=True), corpus)
    assert by_path == by_model and by_path["chars"] > 0
    with pytest.raises(ConfigError, match="expected a CharRNN"):
        charrnn.evaluate(42, corpus)


@pytest.mark.parametrize("scale", [1e30, np.inf, np.nan])
def test_a_diverged_model_samples_and_probes_without_warnings(trained, scale):
    m = charrnn.load(trained)
    bad = charrnn.CharRNN(m.config, m.vocab,
                          params={k: v * np.float32(scale) for k, v in m.params.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bad.generate(length=10, seed=1)
        bad.generate(length=10, seed=1, num_samples=3)
        list(bad.stream(length=10, seed=1))
        assert np.isnan(bad.probe("t").loss)          # one character: nothing predicted
        bad.probe("the cat").loss


def test_plot_and_report_of_a_one_step_run_without_warnings(tmp_path, corpus):
    pytest.importorskip("matplotlib")
    from charrnn.inspect import plot as P
    from charrnn.inspect.report import write_report
    charrnn.train(corpus, out=tmp_path / "r", quiet=True, max_steps=1, max_minutes=0,
                  hidden=8, layers=1, embed=4, seq_len=8, batch_size=2)
    metrics = tmp_path / "r" / "metrics.jsonl"
    metrics.write_text(metrics.read_text().splitlines()[0] + "\n")   # one line: one point
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = P.load_series(tmp_path / "r")
        P.save_plot([s], tmp_path / "p.svg")
        write_report(tmp_path / "r", tmp_path / "r.html")


# ---- 8: a closed pipe does not stop a run -----------------------------------------------

def test_train_piped_into_head_keeps_training(tmp_path, corpus):
    """`charrnn train ... 2>&1 | head -3`: the reader leaves after three lines."""
    cmd, env = charrnn_cmd("train", corpus, "--out", tmp_path / "r", "--max-steps", "400",
                           *TINY)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for _ in range(3):
        p.stdout.readline()
    p.stdout.close()                                  # what `head` does when it has enough
    assert p.wait(timeout=120) == 0
    last = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1]
    assert '"step": 400' in last and '"stopped_by": "max-steps"' in last


def test_train_quiet_into_a_closed_stdout_finishes(tmp_path, corpus):
    cmd, env = charrnn_cmd("train", corpus, "--out", tmp_path / "r", "--max-steps", "4",
                           "-q", *TINY)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    assert p.wait(timeout=120) == 0, p.stderr.read()
    assert p.stderr.read() == b""
    assert '"final": true' in (tmp_path / "r" / "metrics.jsonl").read_text()


def test_progress_into_a_file_has_no_carriage_returns(tmp_path, corpus):
    """18: a redirected stderr gets one line per evaluation, not the bar's \\r frames."""
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        cmd, env = charrnn_cmd("train", corpus, "--out", tmp_path / "r", "--max-steps", "6",
                               *TINY)
        assert subprocess.run(cmd, env=env, stderr=f, timeout=120).returncode == 0
    text = log.read_text()
    assert "\r" not in text
    assert [l for l in text.splitlines() if l.startswith("step ")] == [
        l for l in text.splitlines() if l.startswith("step ") and "val loss" in l]
    assert sum(l.startswith("step ") for l in text.splitlines()) == 3


# ---- 9: Ctrl-C exits 130 on every command -----------------------------------------------

def _interrupt_library(monkeypatch, *names):
    def boom(*a, **k):
        raise KeyboardInterrupt
    for name in names:
        module, attr = name.rsplit(".", 1)
        monkeypatch.setattr(module + "." + attr, boom)


@pytest.mark.parametrize("args,target", [
    (["eval", "{run}", "{corpus}"], "charrnn.model.evaluate"),
    (["report", "{run}"], "charrnn.inspect.report.write_report"),
    (["export", "{run}", "--format", "c", "-o", "{tmp}/m.c"], "charrnn.export.export_c"),
    (["runs", "{tmp}"], "charrnn.inspect.runs.runs"),
    (["plot", "{run}"], "charrnn.inspect.plot.load_series"),
    (["info"], "charrnn.inspect.system.info"),
    (["sample", "{run}"], "charrnn.model.CharRNN.stream"),
])
def test_ctrl_c_exits_130_on_every_command(monkeypatch, trained, corpus, tmp_path, args, target):
    from click.testing import CliRunner
    from charrnn.cli import main
    _interrupt_library(monkeypatch, target)
    args = [a.format(run=trained, corpus=corpus, tmp=tmp_path) for a in args]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 130, (r.exit_code, r.output)
    assert "Aborted" not in r.output


def ctrl_c_reaches():
    """In the child: SIGINT's default disposition, as a terminal's foreground command has.
    A test suite started in the background by a non-interactive shell (`pytest &`)
    inherits SIGINT ignored, and Python keeps an inherited ignore: the command would
    then rightly never see the signal these tests send."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_during_eval_exits_130(tmp_path, trained):
    """A real SIGINT to a real `charrnn eval` busy scoring a few MB."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to see when the command has opened its file")
    big = tmp_path / "big.txt"
    big.write_text(("the cat sat on the mat. a dog " * 1000 + "\n") * 800)   # 24 MB
    cmd, env = charrnn_cmd("eval", trained, big)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=ctrl_c_reaches)
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None:   # inside the command, reading
        try:
            fds = os.listdir(f"/proc/{p.pid}/fd")
            if any(os.readlink(f"/proc/{p.pid}/fd/{fd}") == str(big) for fd in fds):
                break
        except OSError:
            pass
        time.sleep(0.01)
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "Aborted" not in err


def test_second_ctrl_c_during_training_prints_the_resume_command(tmp_path, corpus):
    run_dir = tmp_path / "r"
    cmd, env = charrnn_cmd("train", corpus, "--out", run_dir, "--hidden", "256",
                           "--layers", "2", "--seq-len", "32", "--batch-size", "8",
                           "--eval-every", "1", "--max-steps", "100000", "--max-minutes", "0")
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=ctrl_c_reaches)
    deadline = time.time() + 60
    while not (run_dir / "state.safetensors").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    time.sleep(0.005)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    command = f"charrnn train --out {run_dir} --resume"
    assert f"resume with: {command}" in err, err
    r = run("train", "--out", run_dir, "--resume", "--max-steps", "3", "-q")   # it resumes
    assert r.returncode == 0, r.stderr


def test_report_and_eval_of_a_diverged_run_without_warnings(trained, corpus, tmp_path):
    """Item 7: a model whose probabilities reach 0 (inf loss) is reported quietly."""
    from charrnn.io import checkpoint
    from charrnn.inspect.report import write_report
    for name in ("best.safetensors", "model.safetensors"):
        ck = checkpoint.load_model(trained / name)
        checkpoint.save_model(trained / name, {k: v * np.float32(1e30) for k, v in
                                               ck.params.items()}, ck.config, ck.vocab)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_report(trained, tmp_path / "r.html")
        assert charrnn.evaluate(trained, corpus)["loss"] > 1e6


def test_the_bar_on_a_terminal_keeps_its_unicode_blocks():
    """The stream wrapper of items 8 and 18 says the terminal's encoding, so tqdm draws
    its Unicode bar (not '###') on a UTF-8 terminal."""
    import io
    from charrnn.training.progress import Output
    tty = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    assert Output(tty).encoding == "utf-8"
