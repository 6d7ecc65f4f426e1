"""Helpers shared by the benchmark scripts in bench/."""
import subprocess
import sys


def torch_version():
    """PyTorch's version if it can be imported (in a subprocess: never in ours), else None."""
    p = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def log(msg):
    print(msg, file=sys.stderr, flush=True)
