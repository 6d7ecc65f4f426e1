"""ISA tiers: detection, CHARRNN_ISA, every module switching together, tiers agreeing."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from charrnn import _gru, _isa, _lstm, _ops, _rnn, _sample, _table, _twins
from charrnn.nn import cells, isa
from charrnn.nn import reference
from charrnn.errors import ConfigError

from test_reference import backward, forward, make_inputs, random_dout, zero_grads

MODULES = (_ops, _twins, _lstm, _gru, _rnn, _table, _sample)
TIERS = isa.available()
# On this architecture: a tier name the CPU can never run (the other architecture's).
FOREIGN = "neon" if "avx2" in isa.TIERS and _isa.isa_info(1)[1] else "avx2"


def run_python(code, **env):
    e = {k: v for k, v in os.environ.items() if k != isa.ENV}
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=e, cwd=os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, **env):
    code = "import sys; from charrnn.cli import main; sys.argv = ['charrnn'] + sys.argv[1:]; main()"
    e = {k: v for k, v in os.environ.items() if k != isa.ENV}
    e.update(env)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=e, cwd=os.path.dirname(os.path.abspath(__file__)))


def test_detection_is_consistent():
    assert TIERS[0] == "scalar"
    assert isa.best() == TIERS[-1]
    feats = set(_isa.cpu_features())
    for name in TIERS:
        i = isa.TIERS.index(name)
        assert _isa.isa_info(i) == (name, True, True)
    if "avx2" in TIERS:
        assert {"avx2", "fma", "os-ymm"} <= feats
    if "avx512" in TIERS:
        assert {"avx512f", "avx512bw", "avx512dq", "avx512vl", "os-zmm"} <= feats
    if "os-ymm" not in feats:   # registers the OS does not save are never used
        assert "avx2" not in TIERS and "avx512" not in TIERS


def test_default_is_the_best_tier_in_every_module():
    r = run_python("from charrnn.nn import cells, isa; import charrnn._ops as o, charrnn._lstm as l, "
                   "charrnn._gru as g, charrnn._rnn as r, charrnn._sample as s; "
                   "print(isa.current(), [m._current_isa() for m in (o, l, g, r, s)])")
    assert r.returncode == 0, r.stderr
    name, codes = r.stdout.split(" ", 1)
    assert name == isa.best()
    assert json.loads(codes) == [isa.TIERS.index(name)] * 5


@pytest.mark.parametrize("tier", TIERS)
def test_env_forces_the_tier_everywhere(tier):
    r = run_python("from charrnn.nn import cells, isa; import charrnn._ops as o, charrnn._lstm as l, "
                   "charrnn._gru as g, charrnn._rnn as r, charrnn._sample as s; "
                   "print(isa.current(), [m._current_isa() for m in (o, l, g, r, s)])",
                   CHARRNN_ISA=tier)
    assert r.returncode == 0, r.stderr
    name, codes = r.stdout.split(" ", 1)
    assert name == tier and json.loads(codes) == [isa.TIERS.index(tier)] * 5
    info = run_cli("info", "--json", CHARRNN_ISA=tier)
    assert info.returncode == 0, info.stderr
    d = json.loads(info.stdout)
    assert d["isa"] == tier and d["isa_available"] == TIERS
    assert ("own sgemm, " + tier) in d["float32_gemm"] or tier == "scalar"


@pytest.mark.parametrize("value,words", [(FOREIGN, "cannot run"), ("avx9000", "not a tier")])
def test_env_with_a_tier_that_cannot_run_is_a_one_line_error(value, words):
    for args in (["info"], ["train", "--max-steps", "1"]):
        r = run_cli(*args, CHARRNN_ISA=value)
        assert r.returncode == 1
        assert words in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match=words):
        with isa.use(value):
            pass
    assert isa.current() == isa.best()   # a refused switch changes nothing


def test_info_text_names_what_a_bug_report_needs():
    r = run_cli("info")
    assert r.returncode == 0, r.stderr
    for label in ("ISA tier", "CPU features", "float32 GEMM", "SciPy's BLAS", "threads",
                  "Python", "NumPy", "SciPy", "built with"):
        assert label in r.stdout
    assert f"ISA tier             {isa.best()}" in r.stdout


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("backend", ["own", "blas"])
def test_tiers_agree_within_float32_tolerance(cell, backend):
    """Every tier against the float64 reference (so that a CPU with the scalar tier alone
    still checks something), and every SIMD tier against scalar, more tightly: the tiers
    differ only in summation order and FMA contraction."""
    inp64 = make_inputs(cell, 9, 7, 21, 37, 5)
    dout64 = random_dout(cell, 9, 7, 37, 6)
    out, cache = forward(cell, inp64, impl=reference)
    g = zero_grads(inp64)
    backward(cell, dout64, cache, g, impl=reference)
    exact = {**out, **g}
    inp = {k: v.astype(np.float32) for k, v in inp64.items()}
    dout = {k: v.astype(np.float32) for k, v in dout64.items()}
    res = {}
    for tier in TIERS:
        with isa.use(tier), cells.gemm_backend(backend):
            out, cache = forward(cell, inp, impl=cells)
            g = zero_grads(inp)
            backward(cell, dout, cache, g, impl=cells)
            res[tier] = {**{k: v.copy() for k, v in out.items()}, **g}
    assert res and set(res["scalar"]) == set(exact)

    def err(v, want):
        return np.max(np.abs(v - want)) / max(np.max(np.abs(want)), 1e-30)
    for tier in TIERS:   # float32 rounding and the fast float32 math (test_kernels' TOL)
        for k, v in res[tier].items():
            assert err(v, exact[k]) <= 1e-4, (tier, k, err(v, exact[k]))
    for tier in TIERS[1:]:
        for k, v in res[tier].items():
            assert err(v, res["scalar"][k]) <= 2e-5, (tier, k, err(v, res["scalar"][k]))


def test_sgemm_tiles_per_tier():
    want = {"scalar": (4, 16), "avx2": (6, 16), "avx512": (8, 32), "neon": (8, 12)}
    for tier in TIERS:
        with isa.use(tier):
            assert _isa.sgemm_tile() == want[tier]
            assert _isa.sgemm_default() == (tier != "scalar")
            assert cells.current_gemm_backend() == ("blas" if tier == "scalar" else "own")


def test_a_pack_for_another_tile_width_is_refused():
    W = np.random.default_rng(0).standard_normal((40, 24)).astype(np.float32)
    Wp = np.empty(_ops.sgemm_packed_size(24, 40), np.float32)
    _ops.sgemm_pack(True, W, Wp)
    x = np.ones((5, 24), np.float32)
    out = np.empty((5, 40), np.float32)
    b = np.zeros(40, np.float32)
    _ops.linear_forward(x, W, Wp, b, out)
    np.testing.assert_allclose(out, x @ W.T, rtol=1e-5)
    bad = Wp.copy()
    bad.view(np.int32)[1] = _isa.sgemm_tile()[1] * 2   # the header's tile width
    with pytest.raises(ValueError, match="packed for this ISA tier"):
        _ops.linear_forward(x, W, bad, b, out)
    with pytest.raises(ValueError, match="packed for this ISA tier"):
        _twins.sgemm(False, x, np.ascontiguousarray(W.T), bad, False, out)
    # a pack made on one tier, used after a switch: valid if the tile width is the same
    nr = _isa.sgemm_tile()[1]
    for tier in TIERS:
        with isa.use(tier):
            if _isa.sgemm_tile()[1] == nr:
                _ops.linear_forward(x, W, Wp, b, out)
                np.testing.assert_allclose(out, x @ W.T, rtol=1e-5)
            else:
                with pytest.raises(ValueError, match="packed for this ISA tier"):
                    _ops.linear_forward(x, W, Wp, b, out)


def test_info_tells_scipys_blas_from_numpys():
    """NumPy 2's wheels ship an OpenBLAS named libscipy_openblas64_ too: `charrnn info`
    must report the one under scipy/ or scipy.libs/, the one the kernels call."""
    from charrnn.inspect.system import _in_scipy
    assert _in_scipy("/venv/lib/python3.11/site-packages/scipy.libs/libscipy_openblas-6cd.so")
    assert _in_scipy("/venv/lib/python3.11/site-packages/scipy/.dylibs/libopenblas.0.dylib")
    assert not _in_scipy("/venv/lib/python3.11/site-packages/numpy.libs/libscipy_openblas64_-3a.so")
    assert not _in_scipy("/venv/lib/python3.11/site-packages/numpy/.dylibs/libscipy_openblas64_.dylib")
