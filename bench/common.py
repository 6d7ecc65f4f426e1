"""Helpers shared by the benchmark scripts in bench/."""
import os
import subprocess
import sys
import time


def torch_version():
    """PyTorch's version if it can be imported (in a subprocess: never in ours), else None."""
    p = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Steal:
    """Share of this machine's CPU time that its hypervisor gave to other guests while
    the block ran ("steal" in /proc/stat, Linux guests of KVM or Xen). A run with steal
    above a few percent is not a measurement of the code; zero steal does not make a run
    clean (a neighbour on the same physical cores or L3 slows it and records none). `pct` is None where
    /proc/stat is missing (not Linux)."""

    def __enter__(self):
        self.pct = None
        self._t0, self._s0 = time.monotonic(), _steal_ticks()
        return self

    def __exit__(self, *exc):
        s1 = _steal_ticks()
        wall = time.monotonic() - self._t0
        if self._s0 is not None and s1 is not None and wall > 0:
            ticks = os.sysconf("SC_CLK_TCK")
            self.pct = 100.0 * (s1 - self._s0) / ticks / (wall * (os.cpu_count() or 1))
        return False


def _steal_ticks():
    """Steal time of all CPUs, in clock ticks (the 8th value of /proc/stat's cpu line)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) if fields[0] == "cpu" and len(fields) > 8 else None
    except (OSError, ValueError):
        return None
