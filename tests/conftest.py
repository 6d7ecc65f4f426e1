"""What several test files share: the repository's root, small corpora, hand-made
checkpoint files, and a Python child process running the source tree.

Test files import the helpers by name (`from conftest import make_config`): pytest puts
tests/ on sys.path, as it does for tests/export_common.py."""
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import charrnn
from charrnn.errors import CheckpointError
from charrnn.io import checkpoint as ck
from charrnn.nn import cells, isa, shapes

REPO = Path(__file__).resolve().parents[1]
# Where the charrnn under test was imported from: the source tree built in place, or
# site-packages after `pip install .` (CI). Child processes get it first on their path,
# so they run the same charrnn, never a source tree without its compiled modules.
CHARRNN_PATH = str(Path(charrnn.__file__).resolve().parents[1])


def child_env(**extra):
    """os.environ for a child Python that must import the charrnn under test: that one
    first on its path, and not the current directory (`python -m`/`-c` would put a
    checkout's charrnn/, without its compiled modules, before an installed one)."""
    return dict(os.environ, PYTHONPATH=CHARRNN_PATH, PYTHONSAFEPATH="1", **extra)


@pytest.fixture
def corpus(tmp_path):
    """800 random words: enough text for a few steps of a tiny model (a test file with
    other needs defines its own `corpus`)."""
    p = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    words = ["the ", "cat ", "sat ", "on ", "mat.\n", "a ", "dog "]
    p.write_text("".join(rng.choice(words) for _ in range(800)))
    return p


# ---------------------------------------------------------------- kernel variants
# float32 kernels run on every ISA tier this CPU has (charrnn.nn.isa), each with both
# GEMMs (charrnn's own sgemm, SciPy's BLAS). float64 depends on neither: its gate math is
# compiled once, outside the tier table (kernels/dispatch.h holds float32 functions only),
# and its products always go to BLAS. So a float64 case runs once, not once per float32
# variant (test_kernels.py's test_float64_ignores_tier_and_backend holds that premise).
TIERS = isa.available()
GEMMS = ["own", "blas"]
F32_VARIANTS = [(t, b) for t in TIERS for b in GEMMS]


@pytest.fixture(params=[(np.float64, None, None)] + [(np.float32, t, b) for t, b in F32_VARIANTS],
                ids=lambda p: "float64" if p[1] is None else f"float32-{p[1]}-{p[2]}")
def dtype(request):
    """A kernel test's dtype: float64 once, float32 on every tier with both GEMMs."""
    dt, tier, backend = request.param
    if tier is None:
        yield dt
        return
    with isa.use(tier), cells.gemm_backend(backend):
        yield dt


@pytest.fixture(params=F32_VARIANTS, ids=lambda p: f"{p[0]}-{p[1]}")
def gemm(request):
    """A float32 test's tier and GEMM, every combination; yields the GEMM's name."""
    tier, backend = request.param
    with isa.use(tier), cells.gemm_backend(backend):
        assert isa.current() == tier and cells.current_gemm_backend() == backend
        yield backend


@pytest.fixture(params=TIERS)
def tier(request):
    """Every ISA tier, for a float32 test that picks its GEMM itself or uses none."""
    with isa.use(request.param):
        yield request.param


def spawn(script, *args):
    """`python -c script args...` with the charrnn under test, its stdout a text pipe."""
    env = child_env()
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                            stdout=subprocess.PIPE, text=True, env=env)


# ---------------------------------------------------------------- checkpoint files

def make_config(cell="lstm", layers=2, embed=3, hidden=5, vocab_size=7, **extra):
    return dict(cell=cell, hidden=hidden, layers=layers, embed=embed,
                vocab_size=vocab_size, **extra)


def make_params(config, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(dtype)
            for name, shape in shapes.expected_shapes(config).items()}


def vocab_of(n):
    return [chr(ord("a") + i) for i in range(n)]


def save_small(path, seed=0, info=None):
    """A valid little model; returns what load_model should give back."""
    config = make_config(dropout=0.25, encoding="utf-8")
    params = make_params(config, seed)
    vocab = ["\n", " ", "é", "a", "b", "\u4e2d", "Z"]
    info = {"step": 100 + seed, "val_loss": 1.25} if info is None else info
    ck.save_model(path, params, config, vocab, info)
    return params, config, vocab, info


def write_raw(path, tensors, config=None, vocab=None, info=None, **meta):
    """A model file built by hand, without checksum, so that each test can break one
    thing. Keywords set raw metadata strings; None removes an entry."""
    metadata = {"format": "charrnn", "format_version": "1"}
    if config is not None:
        metadata["config"] = json.dumps(config)
    if vocab is not None:
        metadata["vocab"] = json.dumps(vocab)
    if info is not None:
        metadata["info"] = json.dumps(info)
    metadata.update(meta)
    metadata = {k: v for k, v in metadata.items() if v is not None}
    safetensors.numpy.save_file(tensors, str(path), metadata=metadata)


def write_header(path, header, data=b""):
    """A file with exactly this header (a dict, or raw bytes) and data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    Path(path).write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def assert_same_model(loaded, params, config, vocab, info):
    assert list(loaded.params) == list(shapes.expected_shapes(config))
    for name, value in params.items():
        assert loaded.params[name].dtype == np.float32
        np.testing.assert_array_equal(loaded.params[name], value.astype(np.float32))
    assert (loaded.config, loaded.vocab, loaded.info) == (config, vocab, info)


def rejects(path, match=None):
    with pytest.raises(CheckpointError, match=match) as e:
        ck.load_model(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    return message


# ---------------------------------------------------------------- skips that hide failures
# CHARRNN_ALLOWED_SKIPS, when set, turns skips into a failed run: a test file that skips
# (a test, or the whole module) must be named in it (file names, comma-separated). .ci/run
# sets it empty: everything runs there. The wheel jobs (pyproject.toml, cibuildwheel) name
# the files that need the source tree or tools a wheel's user does not have.
_skipped = []


def _note_skip(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report)


def pytest_collectreport(report):
    _note_skip(report)


def pytest_runtest_logreport(report):
    _note_skip(report)


def pytest_sessionfinish(session, exitstatus):
    allowed = os.environ.get("CHARRNN_ALLOWED_SKIPS")
    if allowed is None:
        return
    names = allowed.replace(",", " ").split()
    bad = [r for r in _skipped if Path(r.nodeid.split("::")[0]).name not in names]
    if not bad:
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(bad)} skipped outside CHARRNN_ALLOWED_SKIPS={allowed!r}:"]
    for r in bad:
        reason = r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr)
        lines.append(f"  {r.nodeid or '(collection)'}: {reason}")
    for line in lines:
        tr.write_line(line, red=True) if tr else print(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def interrupt_training(args, run, settle=0.5, timeout=60):
    """Start `charrnn train ARGS --out RUN` as a real process, send it SIGINT once it has
    written its first metrics (and `settle` seconds more), and return (exit code, stderr)."""
    import signal
    import subprocess
    import sys
    import time
    p = subprocess.Popen([sys.executable, "-m", "charrnn.cli", "train", *map(str, args),
                          "--out", str(run)], stderr=subprocess.PIPE, text=True,
                         env=child_env())
    deadline = time.time() + timeout
    while time.time() < deadline and not (run / "metrics.jsonl").exists():
        time.sleep(0.05)
    time.sleep(settle)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=timeout)[1]
    return p.returncode, err
