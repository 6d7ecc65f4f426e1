"""Bad input, full disks, locks and kills: a clear one-line error, never a traceback,
never a lost run. (Corrupt checkpoint files: tests/test_checkpoint.py; kernels with bad
shapes: tests/test_kernels.py; the CLI's corpus and option errors: tests/test_cli.py.)"""
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.io import checkpoint as ckpt
from charrnn.cli import main
from charrnn.errors import RunDirError
from charrnn.training.loop import train

TINY = dict(hidden=16, layers=1, embed=8, seq_len=8, batch_size=4, eval_every=2,
            max_minutes=0, val_frac=0.1)
TINY_ARGS = ["--hidden", "16", "--layers", "1", "--embed", "8", "--seq-len", "8",
             "--batch-size", "4", "--max-minutes", "0", "--val-frac", "0.1"]


@pytest.fixture(autouse=True)
def scratch_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # default run directories land here
    monkeypatch.delenv("CHARRNN_RUNS", raising=False)


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text("It is a truth universally acknowledged, that a single man\n" * 40)
    return p


@pytest.fixture
def run(corpus, tmp_path):
    r = tmp_path / "run"
    train(str(corpus), out=str(r), quiet=True, max_steps=2, **TINY)
    return r


def cli(*args, cwd=None):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line_error(r, code=1):
    assert r.exit_code == code, r.output
    assert r.output.startswith("Error: ") and r.output.count("\n") == 1, r.output
    assert "Traceback" not in r.output
    return r.output


# ---- corpus -------------------------------------------------------------------------

def test_nul_bytes_are_ordinary_characters(tmp_path):
    p = tmp_path / "nul.txt"
    p.write_bytes(b"abc\x00def\x00ghi\n" * 60)
    s = train(str(p), out=str(tmp_path / "r"), quiet=True, max_steps=2, **TINY)
    assert np.isfinite(s["val_loss"])
    assert "\x00" in charrnn.load(tmp_path / "r").vocab


def test_batch_size_larger_than_corpus_allows(corpus, tmp_path):
    out = one_line_error(cli("train", corpus, "--batch-size", "5000", "--seq-len", "8"))
    assert "--batch-size" in out and "characters" in out
    assert not (tmp_path / "charrnn-runs").exists() or not any((tmp_path / "charrnn-runs").iterdir())


def test_failed_start_leaves_user_directory_alone(corpus, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    one_line_error(cli("train", corpus, "--out", mine, "--batch-size", "5000"))
    assert (mine / "notes.txt").read_text() == "keep me"


# ---- default run directories ----------------------------------------------------------

SAME_SECOND = "import time; time.strftime = lambda *a: '20250101-120000'; "


def _cli_process(cwd, *args, prelude=""):
    code = prelude + "import sys; from charrnn.cli import main; sys.exit(main())"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd)


def test_runs_started_in_the_same_second_get_their_own_directories(corpus, tmp_path):
    """Two `charrnn train FILE` processes whose clocks read the same second (forced: the
    child's strftime is fixed) both train, each in its own directory; neither removes
    the other's."""
    procs = [_cli_process(tmp_path, "train", corpus, "--quiet", "--max-steps", "2",
                          "--eval-every", "2", *TINY_ARGS, prelude=SAME_SECOND) for _ in range(2)]
    results = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
    runs = tmp_path / "charrnn-runs"
    assert sorted(p.name for p in runs.iterdir()) == ["corpus-20250101-120000",
                                                       "corpus-20250101-120000-2"]
    printed = sorted(out.split("\t")[0] for out, err in results)
    assert printed == sorted(str(Path("charrnn-runs") / p.name) for p in runs.iterdir())
    for d in runs.iterdir():
        assert ckpt.load_state(d / "state.safetensors").meta["step"] == 2


def test_back_to_back_runs_in_one_second(corpus, tmp_path, monkeypatch):
    from charrnn.io import rundir
    monkeypatch.setattr(rundir.time, "strftime", lambda *a: "20250101-120000")
    a = train(str(corpus), quiet=True, max_steps=2, **TINY)["run_dir"]
    b = train(str(corpus), quiet=True, max_steps=2, **TINY)["run_dir"]
    assert Path(a).name == "corpus-20250101-120000" and Path(b).name == "corpus-20250101-120000-2"
    assert (Path(a) / "state.safetensors").exists() and (Path(b) / "state.safetensors").exists()


def test_failed_start_never_removes_a_directory_another_process_uses(corpus, tmp_path):
    """A start that fails in a directory it created leaves it alone while another
    `charrnn train` holds the directory's lock."""
    from charrnn.io.rundir import RunLock
    from charrnn.training.run_start import open_run, remove_if_unused
    run_dir, saved, created = open_run(str(corpus), str(tmp_path / "new"), False)
    assert created and saved is None
    with RunLock(run_dir):                       # the other process
        (run_dir / "corpus.npy").write_bytes(b"theirs")
        remove_if_unused(run_dir, True)
    assert (run_dir / "corpus.npy").read_bytes() == b"theirs"
    assert open_run(str(corpus), str(run_dir), False)[2] is False   # it existed: not ours
    remove_if_unused(run_dir, False)             # unused now: emptied, but not removed
    assert run_dir.is_dir() and not any(run_dir.iterdir())
    remove_if_unused(run_dir, True)
    assert not run_dir.exists()


def test_out_onto_a_directory_that_is_not_a_run_is_refused(corpus, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.jsonl").write_text("my own metrics\n")
    (mine / "samples.jsonl").write_text("my own samples\n")
    (mine / "notes.txt").write_text("keep me")
    out = one_line_error(cli("train", corpus, "--out", mine, "--max-steps", "1", *TINY_ARGS))
    assert "not a charrnn run" in out and "notes.txt" in out
    assert (mine / "metrics.jsonl").read_text() == "my own metrics\n"
    assert (mine / "samples.jsonl").read_text() == "my own samples\n"
    assert sorted(p.name for p in mine.iterdir()) == ["metrics.jsonl", "notes.txt", "samples.jsonl"]
    empty = tmp_path / "empty"
    empty.mkdir()                                # an empty directory is fine
    assert train(str(corpus), out=str(empty), quiet=True, max_steps=1, **TINY)["steps"] == 1


def test_empty_out_is_refused(corpus, tmp_path):
    out = one_line_error(cli("train", corpus, "--out", "", "--max-steps", "1", *TINY_ARGS))
    assert "--out is empty" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt"]   # nothing written here
    with pytest.raises(RunDirError, match="--out is empty"):
        train(str(corpus), out="", quiet=True, max_steps=1, **TINY)


# ---- sampling options -------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["--temp", "-1"], "--temp"), (["--top-p", "0"], "--top-p"), (["--top-p", "1.5"], "--top-p"),
    (["--top-k", "0"], "--top-k"), (["--length", "0"], "--length"),
    (["--num-samples", "0"], "--num-samples"), (["--temp", "nan"], "--temp"),
])
def test_sample_bad_options_are_usage_errors(run, args, needle):
    r = cli("sample", run, *args)
    assert r.exit_code == 2 and needle in r.output


def test_sample_unknown_prime_characters_are_listed(run):
    out = one_line_error(cli("sample", run, "--prime", "Zq§", "--length", "5"))
    assert "'Z'" in out and "'q'" in out and "'§'" in out


# ---- checkpoints, through the CLI ---------------------------------------------------

def corruptions(model_bytes, tmp_path):
    import json
    import struct
    n = struct.unpack("<Q", model_bytes[:8])[0]
    header = json.loads(model_bytes[8:8 + n])
    header["__metadata__"]["format_version"] = "99"
    bumped = json.dumps(header).encode()
    from safetensors.numpy import save
    return {
        "truncated-header": model_bytes[:20],
        "truncated-data": model_bytes[:-7],
        "random": np.random.default_rng(0).bytes(4096),
        "empty": b"",
        "foreign": save({"weight": np.zeros((3, 3), np.float32)}, metadata={"framework": "x"}),
        "version-99": struct.pack("<Q", len(bumped)) + bumped + model_bytes[8 + n:],
        "huge-shape": model_bytes[:8] + model_bytes[8:8 + n].replace(b'"shape":[', b'"shape":[99999999999,', 1) + model_bytes[8 + n:],
    }


@pytest.mark.parametrize("kind", ["truncated-header", "truncated-data", "random", "empty",
                                  "foreign", "version-99", "huge-shape"])
@pytest.mark.parametrize("command", ["sample", "eval"])
def test_corrupt_checkpoint_is_a_one_line_error(run, corpus, tmp_path, kind, command):
    bad = tmp_path / f"{kind}.safetensors"
    bad.write_bytes(corruptions((run / "model.safetensors").read_bytes(), tmp_path)[kind])
    args = ["sample", bad, "--length", "5"] if command == "sample" else ["eval", bad, corpus]
    out = one_line_error(cli(*args))
    assert "cannot load" in out and bad.name in out


def test_resume_from_corrupt_state_is_a_one_line_error(run):
    (run / "state.safetensors").write_bytes(b"\x00" * 100)
    out = one_line_error(cli("train", "--out", run, "--resume", "--max-steps", "3"))
    assert "state.safetensors" in out


# ---- run directory ------------------------------------------------------------------

def test_run_directory_not_writable(corpus, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = one_line_error(cli("train", corpus, "--out", blocker / "sub", *TINY_ARGS))
    assert "run directory" in out
    # root ignores permission bits, so simulate EACCES on creating the probe file
    real_open = os.open

    def deny(path, *a, **k):
        if str(path).startswith(str(tmp_path / "ro")):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **k)
    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", deny)
    monkeypatch.setattr("pathlib.Path.write_bytes",
                        lambda self, data: deny(self, os.O_WRONLY))
    out = one_line_error(cli("train", corpus, "--out", tmp_path / "ro", *TINY_ARGS))
    assert "Permission denied" in out


def test_disk_full_during_a_save_keeps_the_last_checkpoint(corpus, tmp_path, monkeypatch):
    run = tmp_path / "run"
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > 8:     # the first checkpoints succeed, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    r = cli("train", corpus, "--out", run, "--max-steps", "50", "--eval-every", "2", "-q", *TINY_ARGS)
    out = one_line_error(r)
    assert "No space left on device" in out and "--resume" in out
    monkeypatch.setattr(os, "fsync", real_fsync)
    saved = ckpt.load_state(run / "state.safetensors").meta["step"]
    assert saved >= 2
    charrnn.load(run)
    assert not [p for p in run.iterdir() if p.name.endswith(".charrnn-tmp")]
    s = train(out=str(run), resume=True, quiet=True, max_steps=saved + 2)
    assert s["steps"] == saved + 2


def test_disk_full_before_the_first_checkpoint_says_nothing_was_saved(corpus, tmp_path,
                                                                     monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", fsync)
    for out in ([], ["--out", tmp_path / "given"]):
        if out:
            (tmp_path / "given").mkdir()
        r = cli("train", corpus, *out, "--max-steps", "50", "--eval-every", "2", "-q", *TINY_ARGS)
        msg = one_line_error(r)
        assert "No space left on device" in msg and "before its first checkpoint" in msg
        assert "nothing to resume" in msg and "--resume" not in msg and "intact" not in msg
    assert not any((tmp_path / "charrnn-runs").iterdir())    # the run's own directory: removed
    assert [p.name for p in (tmp_path / "given").iterdir()] == []   # the user's: left, emptied


@pytest.mark.parametrize("appended", ["Zebras!\n", "a single man\n"])   # new / same vocabulary
def test_refused_resume_leaves_the_run_as_it_was(run, corpus, appended):
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with open(corpus, "a") as f:
        f.write(appended)
    msg = one_line_error(cli("train", corpus, "--out", run, "--resume"))
    assert "the corpus" in msg and "changed since the run started" in msg
    assert "text appended" in msg and "2,320 characters then, " in msg
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_resume_after_the_corpus_was_only_touched(run, corpus):
    st = corpus.stat()
    os.utime(corpus, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))   # same text, newer mtime
    assert train(str(corpus), out=str(run), resume=True, quiet=True, max_steps=3)["steps"] == 3


def _train_process(corpus, run, *extra):
    args = [sys.executable, "-c", "import sys; from charrnn.cli import main; sys.exit(main())",
            "train", str(corpus), "--out", str(run), "--quiet", *TINY_ARGS, *extra]
    # cwd away from the source tree: `python -c` puts the cwd first on sys.path, and the
    # source tree's charrnn/ (without compiled kernels) must not shadow the installed one
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=run.parent)


def _wait_for_step_past(run, step, timeout=120):
    """Until the run's checkpoint is past `step`: the resumed trainer is running (its start
    takes longer than any fixed sleep on a loaded machine), so the next kill lands at a
    random moment of training, not always during start-up."""
    t0 = time.time()
    while True:
        try:
            if ckpt.load_state(run / "state.safetensors").meta["step"] > step:
                return
        except Exception:   # caught between the write and the rename: look again
            pass
        assert time.time() - t0 < timeout, f"the resumed run never got past step {step}"
        time.sleep(0.02)


def _wait_for(path, timeout=60):
    t0 = time.time()
    while not path.exists():
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.02)


def test_second_trainer_on_the_same_directory_refuses(corpus, tmp_path):
    run = tmp_path / "run"
    first = _train_process(corpus, run, "--max-steps", "100000", "--eval-every", "2")
    try:
        _wait_for(run / "state.safetensors")
        second = _train_process(corpus, run, "--resume", "--max-steps", "100000")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert "in use by another charrnn train" in err and str(first.pid) in err
        assert err.count("\n") == 1
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
    with pytest.raises(RunDirError):   # still a run: no silent overwrite
        train(str(corpus), out=str(run), quiet=True, max_steps=1, **TINY)


def test_twenty_sigkills_at_random_moments(corpus, tmp_path):
    """Kill -9 a training run 20 times at random instants (mostly mid-step or mid-save,
    as it checkpoints every step); each time the checkpoint loads and the run resumes."""
    run = tmp_path / "run"
    rng = np.random.default_rng(1)
    proc = _train_process(corpus, run, "--max-steps", "100000", "--eval-every", "1")
    _wait_for(run / "state.safetensors")
    steps = []
    for i in range(20):
        time.sleep(float(rng.uniform(0.05, 0.6)))
        proc.kill()
        proc.wait()
        charrnn.load(run)
        steps.append(ckpt.load_state(run / "state.safetensors").meta["step"])
        proc = _train_process(corpus, run, "--resume", "--max-steps", "100000", "--eval-every", "1")
        _wait_for_step_past(run, steps[-1])   # it resumed and saved again: kill at random
    proc.kill()
    proc.wait()
    assert steps == sorted(steps) and steps[-1] > steps[0]
    last = ckpt.load_state(run / "state.safetensors").meta["step"]
    s = train(out=str(run), resume=True, quiet=True, max_steps=last + 1)
    assert s["steps"] == last + 1


def test_sample_streams_and_exits_quietly_on_broken_pipe(run, tmp_path):
    """`charrnn sample --length 100000000 | head -c 100`: text arrives while it is being
    generated, and closing the pipe ends the process at once with exit 0, no traceback."""
    args = [sys.executable, "-c", "import sys; from charrnn.cli import main; sys.exit(main())",
            "sample", str(run), "--length", "100000000", "--seed", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    t0 = time.time()
    first = proc.stdout.read(100)          # would block until the end if nothing streamed
    assert len(first) == 100 and time.time() - t0 < 30
    proc.stdout.close()
    proc.wait(timeout=30)
    err = proc.stderr.read().decode()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_sample_cli_seeds(run):
    a = cli("sample", run, "--seed", "3", "--length", "60", "--temp", "1")
    b = cli("sample", run, "--seed", "3", "--length", "60", "--temp", "1")
    c = cli("sample", run, "--seed", "4", "--length", "60", "--temp", "1")
    assert a.exit_code == b.exit_code == c.exit_code == 0
    assert a.stdout == b.stdout and a.stdout != c.stdout
    k = cli("sample", run, "--num-samples", "3", "--length", "40", "--seed", "1")
    assert k.exit_code == 0 and len(k.stdout) >= 3 * 40
