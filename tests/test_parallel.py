"""charrnn.cells.Parallel: the threads a kernel pass is split over."""
import os
import resource
import subprocess
import sys

import pytest

_SMALL_STACK_SCRIPT = r"""
import threading
import numpy as np
from charrnn.nn import cells
from charrnn.nn import isa
from charrnn.nn import reference as ref

reset = threading.Event()

def work():
    reset.wait()               # the default is back to RLIMIT_STACK's before Parallel runs
    # a whole LSTM pass split over 2 threads: the weight gradients run the sgemm's
    # transposed path, whose copies of A and B on the stack are the largest frame
    rng = np.random.default_rng(0)
    T, N, H = 20, 12, 64
    p = ref.init_params("lstm", H, H, rng, np.float32)
    w = [p[k] for k in ("W_ih", "W_hh", "b_ih", "b_hh")]
    x = rng.standard_normal((T, N, H)).astype(np.float32)
    h0 = np.zeros((N, H), np.float32)
    par = cells.Parallel(2)
    y, hT, cT, cache = cells.lstm_forward(x, h0, h0, *w, parallel=par)
    g = [np.zeros_like(a) for a in (x, h0, h0, *w)]
    cells.lstm_backward(np.ones_like(y), None, None, cache, *g)
    par.close()
    print("ok", isa.current(), float(np.abs(g[3]).sum()) > 0)

# the caller gets a big stack (as a process's main thread has on musl); every other
# thread gets the 128 KiB default of RLIMIT_STACK, as musl gives its threads
threading.stack_size(8 << 20)
t = threading.Thread(target=work)
t.start()                      # the size in force at start() is the one the thread gets
threading.stack_size(0)
reset.set()
t.join()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs RLIMIT_STACK (POSIX)")
def test_parallel_workers_survive_a_musl_sized_default_stack(tmp_path):
    """musl starts threads with 128 KiB of stack, less than the sgemm's stack copies plus
    Python's frames: Parallel must start its workers with a stack of their own. Here
    glibc's default thread stack is held to 128 KiB through RLIMIT_STACK."""
    def limit():
        resource.setrlimit(resource.RLIMIT_STACK, (128 << 10, resource.getrlimit(resource.RLIMIT_STACK)[1]))

    # cwd: not the checkout, whose charrnn/ (without built extensions, after a plain
    # `pip install .`) would shadow the installed package
    p = subprocess.run([sys.executable, "-c", _SMALL_STACK_SCRIPT], capture_output=True,
                       text=True, preexec_fn=limit, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr[-2000:]}"
    assert p.stdout.split()[0] == "ok" and p.stdout.split()[-1] == "True"
