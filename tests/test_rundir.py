"""charrnn.io.rundir: finding a run's checkpoint, and the lock that keeps two
trainings out of one run directory."""
import os
import signal
import textwrap

import pytest

from charrnn.errors import CheckpointError, RunDirError
from charrnn.io import rundir
from conftest import save_small, spawn


# ---------------------------------------------------------------- finding checkpoints

def test_find_checkpoint(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint in .*run `charrnn train`"):
        rundir.find_checkpoint(run)
    save_small(run / "model.safetensors")
    assert rundir.find_checkpoint(run) == run / "model.safetensors"
    with pytest.raises(CheckpointError, match="no best.safetensors"):
        rundir.find_checkpoint(run, best=True)
    save_small(run / "best.safetensors")
    assert rundir.find_checkpoint(str(run), best=True) == run / "best.safetensors"
    assert rundir.find_checkpoint(run / "best.safetensors") == run / "best.safetensors"
    (tmp_path / "input.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a .safetensors checkpoint"):
        rundir.find_checkpoint(tmp_path / "input.txt")
    with pytest.raises(CheckpointError, match="no such checkpoint or run directory"):
        rundir.find_checkpoint(tmp_path / "missing")


# ---------------------------------------------------------------- run lock

_HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from charrnn.io.rundir import RunLock
    with RunLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_run_lock_excludes_other_processes_until_holder_dies(tmp_path):
    proc = spawn(_HOLD_LOCK, tmp_path)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=rf"{tmp_path} is in use by another "
                                              rf"charrnn train \(pid {proc.pid}\)"):
            rundir.RunLock(tmp_path).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert (tmp_path / rundir.LOCK_FILE).read_text().strip() == str(proc.pid)   # stale
    with rundir.RunLock(tmp_path) as lock:
        assert lock.path.read_text().strip() == str(os.getpid())


def test_run_lock_in_one_process(tmp_path):
    (tmp_path / ".model.safetensors.999999999.0badcafe.charrnn-tmp").write_bytes(b"x")
    with rundir.RunLock(tmp_path):
        assert sorted(os.listdir(tmp_path)) == [rundir.LOCK_FILE]   # dead writer's temp
        with pytest.raises(RunDirError, match="in use by another charrnn train"):
            rundir.RunLock(tmp_path).acquire()
    with rundir.RunLock(tmp_path):   # released on exit
        pass
    with pytest.raises(RunDirError, match="does not exist"):
        rundir.RunLock(tmp_path / "missing").acquire()
