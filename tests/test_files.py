"""charrnn.io.files: atomic writes leave the old file or the new one, whatever
fails or is killed, and no temp file behind."""
import errno
import os
import signal
import textwrap
import time

import numpy as np
import pytest

from charrnn.errors import RunDirError
from charrnn.io import checkpoint as ck
from charrnn.io import files
from conftest import save_small, assert_same_model, spawn


# ---------------------------------------------------------------- atomic writes

@pytest.mark.parametrize("fail_in", ["fsync", "replace", "write"])
def test_failed_write_keeps_previous_file_and_no_temp(tmp_path, monkeypatch, fail_in):
    path = tmp_path / "model.safetensors"
    old = save_small(path, seed=1)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if fail_in == "write":
        real_fdopen = os.fdopen

        class FullFile:
            def __init__(self, f):
                self.f = f

            def write(self, data):
                self.f.write(data[: len(data) // 2])
                disk_full()

            def __getattr__(self, name):
                return getattr(self.f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()
        monkeypatch.setattr(os, "fdopen",
                            lambda *a, **k: FullFile(real_fdopen(*a, **k)))
    else:
        monkeypatch.setattr(os, fail_in, disk_full)
    with pytest.raises(RunDirError, match="No space left on device.*previous file"):
        save_small(path, seed=2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.safetensors"]
    assert_same_model(ck.load_model(path), *old)


def test_unwritable_directory_and_interrupt(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    old = save_small(path, seed=1)
    real_open = os.open

    def denied(p, *args, **kwargs):
        if str(p).endswith(".charrnn-tmp"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_open(p, *args, **kwargs)
    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(RunDirError, match="cannot write .*Permission denied"):
        save_small(path, seed=2)
    monkeypatch.undo()

    def interrupt(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_small(path, seed=3)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.safetensors"]
    assert_same_model(ck.load_model(path), *old)


def test_missing_directory_is_a_run_dir_error(tmp_path):
    with pytest.raises(RunDirError, match="cannot write"):
        save_small(tmp_path / "nope" / "model.safetensors")


_SAVE_FOREVER = textwrap.dedent("""
    import sys
    import numpy as np
    from charrnn.io import checkpoint as ck
    from charrnn.nn.shapes import expected_shapes
    config = dict(cell="lstm", hidden=128, layers=2, embed=64, vocab_size=64)
    shapes = expected_shapes(config)
    vocab = [chr(32 + i) for i in range(64)]
    step = 0
    while True:
        params = {n: np.full(s, step, np.float32) for n, s in shapes.items()}
        ck.save_model(sys.argv[1], params, config, vocab, {"step": step})
        if step == 0:
            print("ready", flush=True)
        step += 1
""")


def test_sigkill_while_saving_always_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "model.safetensors"
    rng = np.random.default_rng(0)
    for _ in range(10):
        proc = spawn(_SAVE_FOREVER, path)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0, 0.05))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        loaded = ck.load_model(path)
        step = loaded.info["step"]
        assert all((p == step).all() for p in loaded.params.values())
    files.remove_stale_temps(tmp_path)   # temp files of the killed writers
    assert os.listdir(tmp_path) == ["model.safetensors"]
