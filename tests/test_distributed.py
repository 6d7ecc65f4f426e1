"""Data-parallel training over MPI (2 and 3 ranks under the mpich wheel's mpiexec): the
same per-step losses, parameters and carried state as one process, resume across rank
counts, a killed rank, Ctrl-C on mpiexec, and the messages when MPI is missing or the
batch does not split."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from charrnn.io import checkpoint as ckpt
from charrnn.training.distributed import launcher, stream_block
from charrnn.errors import ConfigError
from charrnn.training.loop import train

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no MPI wheel on Windows")

PROC = Path("/proc")   # Linux's process table: how a test finds the rank processes

# fp32: these tests hold the ranks to float32 summation order. In bf16 (--precision auto
# picks it on CPUs with AMX) those differences move some inputs across a bf16 rounding
# boundary, and the ranks agree to bf16's rounding instead (test_ranks_in_bf16_agree_...).
TINY = dict(hidden=16, layers=2, embed=8, seq_len=8, batch_size=4, max_minutes=0,
            val_frac=0.1, precision="fp32")


def mpiexec():
    """The launcher next to this Python (the mpich wheel's), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    assert found, 'mpiexec not found: pip install ".[test]" installs the mpich wheel'
    return found


def cli_args(opts):
    args = []
    for k, v in opts.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


def launch(n, corpus, run, opts, *extra, wait=True):
    cmd = [mpiexec(), "-n", str(n), sys.executable, "-m", "charrnn.cli", "train"]
    cmd += ([str(corpus)] if corpus else []) + ["--out", str(run), "--quiet", "--threads", "1"]
    cmd += cli_args(opts) + list(extra)
    # cwd away from the source tree, so the installed charrnn (with kernels) is imported
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=run.parent, start_new_session=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out, err


def steps(run):
    """[(step, train loss, val loss or None)] of metrics.jsonl, without the final line."""
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["train_loss"], r.get("val_loss")) for r in lines if not r.get("final")]


def _last_step(run):
    """The newest step in metrics.jsonl, read while the run writes it (0: none yet)."""
    text = (run / "metrics.jsonl").read_text() if (run / "metrics.jsonl").exists() else ""
    whole = text[:text.rfind("\n") + 1].splitlines()          # complete lines only
    return max((json.loads(l)["step"] for l in whole), default=0)


def assert_same_losses(a, b):
    assert [s for s, _, _ in a] == [s for s, _, _ in b]
    for (step, ta, va), (_, tb, vb) in zip(a, b):
        assert abs(ta - tb) <= 1e-5 * abs(ta) + 1e-5, (step, ta, tb)   # 5 decimals logged
        assert (va is None) == (vb is None), step
        if va is not None:
            assert abs(va - vb) <= 1e-5 * abs(va) + 1e-5, (step, va, vb)


# Parameters and carried state after 12 steps, N ranks against one process: the same
# relative tolerance as the logged losses (1e-5), plus 1e-6 absolute, 8 float32 ulps at 1
# (the weights' scale), for the elements near zero, where one ulp of summation-order
# difference in a gradient is a large relative change. Largest differences seen (LSTM and
# GRU, 2 and 3 ranks, x86-64): 1.8e-7 in a parameter, 7.2e-7 in an LSTM cell state of
# magnitude ~2. The former rtol 1e-3 / atol 1e-5 passed gradients truncated to 15
# mantissa bits (3e-5 relative) before the Allreduce; this fails them.
CLOSE = dict(rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_two_and_three_ranks_equal_one_process(corpus, tmp_path, cell):
    """A batch of 6 streams over 1, 2 and 3 ranks: the same per-step losses, parameters and
    carried state. The ranks differ from one process only in the float32 summation order
    of the gradients (an Allreduce of per-rank sums instead of one sum over the batch)."""
    opts = dict(TINY, cell=cell, dropout=0.3, max_steps=12, eval_every=4, batch_size=6)
    train(str(corpus), out=str(tmp_path / "one"), quiet=True, threads=1, **opts)
    one = steps(tmp_path / "one")
    assert len(one) == 12 and sum(v is not None for _, _, v in one) == 3
    pa = ckpt.load_model(tmp_path / "one" / "model.safetensors").params
    sa = ckpt.load_state(tmp_path / "one" / "state.safetensors").arrays
    for n in (2, 3):
        run = tmp_path / f"ranks{n}"
        out, _ = launch(n, corpus, run, opts)
        assert out.count("val_loss=") == 1                  # rank 0 alone prints
        assert_same_losses(one, steps(run))
        pb = ckpt.load_model(run / "model.safetensors").params
        for k in pa:
            np.testing.assert_allclose(pb[k], pa[k], **CLOSE, err_msg=f"{n} ranks: {k}")
        # the carried hidden state of all 6 streams was gathered into the checkpoint
        sb = ckpt.load_state(run / "state.safetensors").arrays
        assert sb["hidden.l1.h"].shape == (6, 16)
        hidden = [k for k in sa if k.startswith("hidden.")]
        assert len(hidden) == (4 if cell == "lstm" else 2)      # h (and c) of both layers
        for k in hidden:
            np.testing.assert_allclose(sb[k], sa[k], **CLOSE, err_msg=f"{n} ranks: {k}")


def test_ranks_in_bf16_agree_to_bf16s_rounding(corpus, tmp_path, monkeypatch):
    """In bf16, 2 ranks and one process make the same steps, with losses and parameters
    within bf16's rounding of each other (a rounding of an input moves it by up to 2^-8):
    the ranks' float32 summation-order differences reach the products' inputs. On the
    native kernel where the CPU has one, else the portable one."""
    from charrnn.nn import precision
    if not precision.native():
        monkeypatch.setenv(precision.ENV, "portable")
    opts = dict(TINY, cell="lstm", dropout=0.3, max_steps=12, eval_every=4, batch_size=6,
                precision="bf16")
    train(str(corpus), out=str(tmp_path / "one"), quiet=True, threads=1, **opts)
    one = steps(tmp_path / "one")
    launch(2, corpus, tmp_path / "two", opts)
    two = steps(tmp_path / "two")
    assert [s for s, _, _ in one] == [s for s, _, _ in two] and len(one) == 12
    for (step, ta, va), (_, tb, vb) in zip(one, two):
        assert abs(ta - tb) <= 1e-3 * abs(ta), (step, ta, tb)
        assert (va is None) == (vb is None) and (va is None or abs(va - vb) <= 1e-3 * abs(va))
    pa = ckpt.load_model(tmp_path / "one" / "model.safetensors").params
    pb = ckpt.load_model(tmp_path / "two" / "model.safetensors").params
    for k in pa:
        np.testing.assert_allclose(pb[k], pa[k], rtol=1e-2, atol=1e-4, err_msg=k)
    assert ckpt.load_state(tmp_path / "two" / "state.safetensors").meta["train_config"][
        "precision"] == "bf16"


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)])
def test_resume_with_another_rank_count(corpus, tmp_path, first, then):
    # anneal 0: a run stopped by --max-steps and resumed with a larger one follows the
    # same lr schedule as one run to the end
    opts = dict(TINY, cell="gru", dropout=0.2, anneal=0, eval_every=4)
    train(str(corpus), out=str(tmp_path / "ref"), quiet=True, threads=1, max_steps=16, **opts)
    run = tmp_path / "run"
    for ranks, stop, resume in ((first, 8, ()), (then, 16, ("--resume",))):
        if ranks == 1:
            train(str(corpus), out=str(run), quiet=True, threads=1, max_steps=stop,
                  resume=bool(resume), **({} if resume else opts))
        else:
            launch(2, corpus, run, {} if resume else opts, "--max-steps", str(stop), *resume)
    assert_same_losses(steps(tmp_path / "ref"), steps(run))


def _worker_of_rank(rank, run):
    """pid of the process that trains as `rank` (the child of the launcher's process)."""
    for d in PROC.iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            env = (d / "environ").read_bytes().split(b"\0")
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parent = (PROC / str(ppid) / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        mine = str(run).encode()
        if mine in cmd and mine in parent and f"PMI_RANK={rank}".encode() in env:
            return int(d.name)
    return None


@pytest.mark.skipif(not (PROC / "self" / "environ").exists(),
                    reason="finds the rank to kill in /proc, which this system does not have")
def test_killed_rank_ends_the_job_and_the_run_resumes(corpus, tmp_path):
    run = tmp_path / "run"
    proc = launch(2, corpus, run, dict(TINY, eval_every=2, max_steps=100000), wait=False)
    try:
        t0 = time.time()
        # past the first checkpoint (step 2) by a step: every rank has then told its
        # supervisor about it (a rank reports after the save, before its next step)
        while not (run / "state.safetensors").exists() or _last_step(run) < 3:
            assert time.time() - t0 < 60 and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        pid = _worker_of_rank(1, run)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        t_kill = time.time()
        out, err = proc.communicate(timeout=20)
        assert time.time() - t_kill < 10                    # the job ends within seconds
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    lines = [l for l in err.splitlines() if l.startswith("charrnn:")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"charrnn: rank 1 (pid {pid} on ")
    assert "SIGKILL" in lines[0] and "--resume" in lines[0]
    saved = ckpt.load_state(run / "state.safetensors").meta["step"]
    assert f"checkpoint of step {saved} " in lines[0] or f"checkpoint of step {saved - 2} " in lines[0]
    t0 = time.time()
    while _worker_of_rank(0, run) and time.time() - t0 < 5:   # no rank left behind
        time.sleep(0.05)
    assert not _worker_of_rank(0, run)
    launch(2, None, run, {}, "--resume", "--max-steps", str(saved + 3))
    assert steps(run)[-1][0] == saved + 3


def test_ctrl_c_on_mpiexec_saves_once(corpus, tmp_path):
    run = tmp_path / "run"
    proc = launch(2, corpus, run, dict(TINY, eval_every=3, max_steps=100000), wait=False)
    try:
        t0 = time.time()
        while not (run / "state.safetensors").exists():
            assert time.time() - t0 < 60 and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert err.count("interrupted at step") == 1, err
    step = int(err.split("interrupted at step ")[1].split(";")[0])
    assert ckpt.load_state(run / "state.safetensors").meta["step"] == step
    assert "mpiexec -n 2 charrnn train --out" in err


def _cli_without_mpi4py(tmp_path, *args, env=None):
    code = "import sys; sys.modules['mpi4py'] = None; from charrnn.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, "train", *args], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=60)


def test_missing_mpi4py_is_one_line_naming_the_extra(corpus, tmp_path):
    r = _cli_without_mpi4py(tmp_path, str(corpus), "--out", str(tmp_path / "a"), "--distributed")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and 'pip install "charrnn-fast[mpi]"' in r.stderr
    assert "--distributed needs mpi4py" in r.stderr
    env = dict(os.environ, PMI_RANK="0", PMI_SIZE="2")      # as if started by mpiexec -n 2
    r = _cli_without_mpi4py(tmp_path, str(corpus), "--out", str(tmp_path / "b"), env=env)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "MPI launcher (PMI_SIZE=2)" in r.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_batch_must_split_over_the_ranks():
    assert stream_block(8, 1, 2) == (4, 8)
    assert stream_block(6, 2, 3) == (4, 6)
    with pytest.raises(ConfigError, match=r"--batch-size 4 does not split over 3 ranks: "
                                          r"run 1, 2, 4 ranks"):
        stream_block(4, 0, 3)


def test_launcher_detection():
    assert launcher({}) is None
    assert launcher({"PMI_RANK": "1", "PMI_SIZE": "4"}) == ("PMI_SIZE", 4)
    assert launcher({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"}) == ("OMPI_COMM_WORLD_SIZE", 2)
    assert launcher({"PMIX_RANK": "0"}) == ("PMIX_RANK", None)
