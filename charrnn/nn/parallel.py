"""How the kernels' passes run: buffers kept between calls (Workspace) and a pass split
over threads (Parallel), shared by charrnn.nn.cells, charrnn.nn.table and charrnn.nn.optim.
charrnn.nn.cells re-exports Workspace and Parallel, their public names."""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class Workspace:
    """Named buffers reused across calls while their shape and dtype stay the same; the
    packed weights among them. precision: the products of the passes run with this
    workspace, "fp32" or "bf16" (inputs rounded to bfloat16, float32 sums: float32
    arrays only; charrnn.nn.precision)."""

    def __init__(self, precision="fp32"):
        self._bufs = {}
        self.precision = precision

    @property
    def precision(self):
        return self._precision

    @precision.setter
    def precision(self, name):
        if name not in ("fp32", "bf16"):
            from charrnn.errors import ConfigError
            raise ConfigError(f"Workspace precision: 'fp32' or 'bf16', not {name!r}")
        self._precision = name

    def get(self, name, shape, dtype):
        a = self._bufs.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = np.empty(shape, dtype)
            self._bufs[name] = a
        return a


def set_precision(workspaces, name, dtype):
    """Set every workspace of a model to precision `name` (its setter's body: Network,
    Classifier, Seq2Seq). bf16 packs float32 weights only."""
    if name == "bf16" and np.dtype(dtype) != np.float32:
        from charrnn.errors import ConfigError
        raise ConfigError(f"bf16 products need a float32 network, not {np.dtype(dtype)}")
    for ws in workspaces:
        ws.precision = name


class Parallel:
    """Runs independent pieces of a kernel pass on `threads` threads. The kernels release
    the GIL, so plain Python threads run them truly in parallel."""

    # The sgemm keeps its copies of A and B on the stack (about 260 KiB, kernels/sgemm.h):
    # more than musl's default thread stack (128 KiB), so the workers get their own size.
    STACK_BYTES = 8 << 20

    def __init__(self, threads):
        self.threads = max(1, int(threads))
        self._pool = None
        if self.threads > 1:
            self._pool = ThreadPoolExecutor(self.threads - 1)
            self._start_workers()

    def _start_workers(self):
        """Start every worker now, with STACK_BYTES of stack: ThreadPoolExecutor starts
        them lazily, and threading.stack_size applies to threads started after it."""
        old = threading.stack_size()
        threading.stack_size(max(old, self.STACK_BYTES))
        try:
            n = self.threads - 1
            gate = threading.Barrier(n)       # n tasks held together need n threads
            for f in [self._pool.submit(gate.wait) for _ in range(n)]:
                f.result()
        finally:
            threading.stack_size(old)

    def split(self, n):
        """[(lo, hi), ...]: n items cut into `threads` nearly equal ranges (some may be
        empty when n < threads; the kernels accept empty ranges)."""
        k = self.threads
        cuts = [n * i // k for i in range(k + 1)]
        return list(zip(cuts[:-1], cuts[1:]))

    def run(self, fn, arg_lists):
        """fn(*args) for every args in arg_lists; the first runs on the calling thread."""
        futures = [self._pool.submit(fn, *a) for a in arg_lists[1:]]
        fn(*arg_lists[0])
        for f in futures:
            f.result()

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()


def serial(parallel):
    """True if parallel (a Parallel or None) runs everything on the calling thread."""
    return parallel is None or parallel.threads == 1


def each(parallel, fn, n, args_of):
    """fn(*args_of(lo, hi)) for [0, n) cut over the threads of parallel (or one call)."""
    if serial(parallel):
        fn(*args_of(0, n))
    else:
        parallel.run(fn, [args_of(lo, hi) for lo, hi in parallel.split(n)])


def empty(ws, name, shape, dtype):
    """Buffer `name` of workspace ws (a Workspace, or None: a fresh array)."""
    return np.empty(shape, dtype) if ws is None else ws.get(name, shape, dtype)
