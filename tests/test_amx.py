"""bf16 products on Intel AMX tiles (kernels/gemm_amx_bf16.h): the avx512 tier's native
bf16 packs run on TDPBF16PS where the CPU has AMX-BF16 and Linux gave the process leave,
on the VDPBF16PS micro-kernel otherwise (CHARRNN_AMX=0, or charrnn._isa.set_amx(False)).

Where the CPU has AMX these check the path itself: against the micro-kernel and the
portable kernel on AMX's edges (row tiles of 16, blocks of 32 rows, chunks of 32 k, column
panels of 32), rows split between calls, bits independent of the thread count, and a bf16
training run on it that resumes exactly. Everywhere they check that AMX is off and says
so. test_bf16.py runs its GEMM and cell tests on both x86 paths, and the C harness
(test_c_harness.py) every bf16 edge case on both."""
import json
import subprocess
import sys

import numpy as np
import pytest

from charrnn import _isa, _ops, _twins
from charrnn.nn import isa

from conftest import child_env


def has_amx_bf16():
    """AMX-BF16 as the Linux kernel reports it (both CPU and kernel support)."""
    try:
        with open("/proc/cpuinfo") as f:
            return "amx_bf16" in f.read().split()
    except OSError:
        return False


AMX = _isa.amx()


def gemm(A, B, amx, trans_a=False, accumulate=False, C=None):
    K, N = B.shape
    Bp = np.empty(_ops.sgemm_packed_size_bf16(K, N, True), np.float32)
    _ops.sgemm_pack_bf16(False, B, Bp, True)
    M = A.shape[1] if trans_a else A.shape[0]
    C = np.zeros((M, N), np.float32) if C is None else C.copy()
    _isa.set_amx(amx)
    try:
        _twins.sgemm(trans_a, A, B, Bp, accumulate, C)
    finally:
        _isa.set_amx(True)
    return C


def test_amx_is_used_exactly_where_the_cpu_and_os_have_it():
    """On by default where /proc/cpuinfo lists amx_bf16 (and the tier is avx512); it can be
    turned off and on again; where the CPU lacks it, asking for it changes nothing."""
    if not (has_amx_bf16() and isa.current() == "avx512"):
        assert not _isa.amx() and not _isa.set_amx(True) and not _isa.cpu_amx()
        return
    assert _isa.amx() and _isa.cpu_amx()
    assert not _isa.set_amx(False) and not _isa.amx() and _isa.cpu_amx()
    assert _isa.set_amx(True) and _isa.amx()
    with isa.use("avx2"):            # no native bf16 kernel there, so no AMX either
        assert not _isa.amx()
    assert _isa.amx()


def no_amx_here():
    """True (having checked that the CPU really lacks it, or the tier cannot use it) where
    AMX does not run: the tests that need it have nothing more to check there. (CI allows
    no skips; test_bf16.py and the C harness test the other kernels on such CPUs.)"""
    if AMX:
        return False
    assert not has_amx_bf16() or isa.current() != "avx512"
    return True


@pytest.mark.parametrize("M", [1, 15, 16, 17, 31, 32, 33, 95, 96, 97, 130])
@pytest.mark.parametrize("N,K", [(1, 1), (31, 31), (32, 32), (33, 33), (64, 257), (100, 600)])
def test_amx_agrees_with_the_micro_kernel_and_the_portable_one(M, N, K):
    """Each product exact and summed in float32, so the paths differ by rounding only:
    within float32 summation's bound of float64 on the rounded inputs, and of each other.
    accumulate and A stored transposed too."""
    if no_amx_here():
        return
    rng = np.random.default_rng(M * 7 + N * 3 + K)
    A = rng.uniform(-1, 1, (M, K)).astype(np.float32)
    B = rng.uniform(-1, 1, (K, N)).astype(np.float32)
    C0 = rng.uniform(-1, 1, (M, N)).astype(np.float32)
    r = lambda a: a.astype(np.float32).view(np.uint32).astype(np.uint64)   # noqa: E731
    bf = lambda a: ((r(a) + 0x7FFF + ((r(a) >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)  # noqa: E731
    rounded = bf(A).astype(np.float64) @ bf(B).astype(np.float64)
    mag = np.abs(A).astype(np.float64) @ np.abs(B).astype(np.float64)
    bound = 2e-7 * np.sqrt(K) * mag + 1e-30
    on, off = gemm(A, B, True), gemm(A, B, False)
    assert np.all(np.abs(on - rounded) <= bound)
    assert np.all(np.abs(on - off) <= 2 * bound)
    at = gemm(np.ascontiguousarray(A.T), B, True, trans_a=True)
    np.testing.assert_array_equal(at, on)               # the same copy into the tiles
    acc = gemm(A, B, True, accumulate=True, C=C0)
    assert np.all(np.abs(acc - (rounded + C0)) <= bound + 2e-7 * np.abs(C0) + 1e-7)


def test_rows_split_between_calls_give_the_same_bits():
    """A row's result does not depend on which tile row it sits in, or on the other rows:
    what lets the training threads split the rows without changing a bit."""
    if no_amx_here():
        return
    rng = np.random.default_rng(3)
    A = rng.standard_normal((70, 300)).astype(np.float32)
    B = rng.standard_normal((300, 90)).astype(np.float32)
    whole = gemm(A, B, True)
    for lo, hi in [(0, 1), (0, 17), (17, 50), (33, 70), (69, 70)]:
        np.testing.assert_array_equal(gemm(A[lo:hi], B, True), whole[lo:hi])


CLI = "import sys; from charrnn.cli import main; sys.argv = ['charrnn'] + sys.argv[1:]; main()"


def test_bad_charrnn_amx_is_a_one_line_error(tmp_path):
    p = subprocess.run([sys.executable, "-c", CLI, "info"], capture_output=True,
                       text=True, env=child_env(CHARRNN_AMX="yes"), cwd=tmp_path)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().splitlines() == [
        "Error: CHARRNN_AMX=yes: use 0 (bf16 products on the VDPBF16PS kernel) or 1 (on AMX "
        "where the CPU has it: the default)"]


def info(tmp_path, **env):
    return subprocess.run([sys.executable, "-c", CLI, "info"], capture_output=True,
                          text=True, env=child_env(**env), cwd=tmp_path, check=True).stdout


def line(out, key):
    return next(ln for ln in out.splitlines() if ln.startswith(key))[len(key):].strip()


def test_info_names_the_path_and_auto_follows_it(tmp_path):
    """charrnn info says where bf16 products run; with AMX off on an Intel CPU, auto keeps
    float32 (VDPBF16PS is slower than float32 on Intel cores) and says why."""
    on, off = info(tmp_path), info(tmp_path, CHARRNN_AMX="0")
    if no_amx_here():
        assert "AMX" not in line(on, "bf16 GEMM") and on == off
        return
    assert "AMX tiles, TDPBF16PS" in line(on, "bf16 GEMM") and line(on, "--precision auto") == "bf16"
    assert line(on, "bf16 dot products") == line(off, "bf16 dot products") == "yes (AVX512_BF16, AMX-BF16)"
    assert "BF16 kernel, 8x32" in line(off, "bf16 GEMM")
    assert line(off, "--precision auto") == ("fp32 (VDPBF16PS is slower than float32 on Intel "
                                             "CPUs, and AMX is turned off: CHARRNN_AMX=0)")


TINY = dict(hidden=32, layers=2, embed=8, seq_len=16, batch_size=16, eval_every=10,
            max_minutes=0, val_frac=0.1, cell="lstm", max_steps=30)


def losses(run_dir):
    return [(r["step"], r["train_loss"]) for r in map(json.loads, (run_dir / "metrics.jsonl")
                                                      .read_text().splitlines())
            if "final" not in r]


def test_a_bf16_run_on_amx_learns_and_resumes_exactly(corpus, tmp_path):
    """Where the CPU has AMX, auto picks bf16 on it: the loss falls, 2 threads learn as 1
    does, and a run stopped and resumed gives the straight run's losses. (Not the same
    bits at 1 and 2 threads: the decoder's gradient is summed per thread, then added, as
    in float32.) Elsewhere auto picks no AMX (test_bf16.py covers the other kernels)."""
    from charrnn.training.loop import Interrupted, train
    from test_training import interrupt_at
    lines = []
    train(str(corpus), out=str(tmp_path / "a"), quiet=True, threads=1, log=lines.append, **TINY)
    if no_amx_here():
        assert not any("AMX" in ln for ln in lines)
        return
    assert any("precision bf16" in ln and "AMX tiles" in ln for ln in lines), lines
    a = losses(tmp_path / "a")
    assert len(a) == 30 and a[-1][1] < a[0][1] - 0.2
    train(str(corpus), out=str(tmp_path / "two"), quiet=True, threads=2, **TINY)
    two = losses(tmp_path / "two")
    assert len(two) == 30 and max(abs(x[1] - y[1]) for x, y in zip(two, a)) < 1e-2
    with pytest.raises(Interrupted):
        train(str(corpus), out=str(tmp_path / "b"), quiet=True, threads=1,
              progress=interrupt_at(17), **TINY)
    train(str(corpus), out=str(tmp_path / "b"), resume=True, threads=1, quiet=True)
    assert losses(tmp_path / "b") == a
