"""Helpers shared by the benchmark scripts in bench/: child processes, PyTorch's
version, host steal."""
import json
import os
import shlex
import subprocess
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def torch_version():
    """PyTorch's version if it can be imported (in a subprocess: never in ours), else None."""
    p = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def thread_env(threads, extra=None):
    """This process's environment with the BLAS/OpenMP thread counts set to `threads`
    (unless None), plus `extra`."""
    env = dict(os.environ)
    if threads is not None:
        env.update({var: str(threads) for var in THREAD_VARS})
    env.update(extra or {})
    return env


def run_child(script, kind, env, **args):
    """Run `python script --child kind --key value ...` as a fresh process (a measurement
    never shares a process, its thread pools or its allocator with another) and return
    the JSON object on the last line of its stdout. Exits with the child's stderr if it
    fails."""
    cmd = [sys.executable, os.path.abspath(script), "--child", kind]
    for k, v in args.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"bench/{os.path.basename(script)}: {kind} child failed "
                 f"({shlex.join(cmd)}):\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def emit(result, out):
    """Print a bench's result as JSON, and write it to `out` (a path) too when given."""
    import json
    from pathlib import Path
    print(json.dumps(result, indent=1))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1) + "\n")


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
