"""charrnn.nn.heap: with glibc's malloc told to keep freed memory, a step that allocates
and frees the same arrays stops faulting their pages in again (what the command line
sets for training, sampling and serving)."""
import subprocess
import sys

import pytest

STEPS = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from charrnn.nn.heap import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()      # idempotent
def step():   # ten 2 MiB arrays, freed together, as a training step's scratch
    return sum(float(a.sum()) for a in [np.ones(1 << 19, np.float32) for _ in range(10)])
step(); step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def faults(mode):
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_not_faulted_in_again():
    default, kept = faults("default"), faults("keep")
    # 20 steps x 20 MiB: ~100k 4 KiB pages faulted in again by default, none when kept
    assert default > 20 * 2000, default
    assert kept < default / 50, (kept, default)


def test_the_command_line_keeps_freed_memory(monkeypatch):
    from click.testing import CliRunner
    from charrnn.cli import main
    from charrnn.nn import heap
    called = []
    monkeypatch.setattr(heap, "keep_freed_memory", lambda: called.append(1) or True)
    assert CliRunner().invoke(main, ["info"]).exit_code == 0
    assert called == [1]
