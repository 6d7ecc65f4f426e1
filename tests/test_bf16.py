"""bf16 products (mixed precision): charrnn's own GEMM with its inputs rounded to bfloat16
and float32 sums (kernels/sgemm_bf16.h), the cells and the network on it, and training
with --precision (charrnn.nn.precision).

The portable kernel runs on every tier of every CPU (CHARRNN_BF16=portable lets training
use it); a native one (x86 VDPBF16PS on the avx512 tier, arm64 BFDOT on the neon tier) only
where the CPU has bf16 dot products, and is then checked against the portable kernel as
well (on CPUs without them, the C harness runs the x86 one on SIMDe). Tolerances: against float64 on the inputs
rounded to bf16, float32 summation's; against float64 on the inputs themselves, bf16's
(each product within 2^-7 of its exact value). The C harness (test_c_harness.py) covers
the kernels' edges in C: every row and column remainder, K = 0, odd K, NaN, rounding."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import charrnn
from charrnn import _isa, _ops, _twins
from charrnn.errors import ConfigError
from charrnn.io import checkpoint as ckpt
from charrnn.nn import cells, isa, precision
from charrnn.nn import reference as ref
from charrnn.nn.network import ModelConfig, Network
from charrnn.training.loop import train

from conftest import CHARRNN_PATH, TIERS, child_env
from test_reference import make_inputs, random_dout

# "native": the tier's native path as it runs by default (on AMX tiles where the CPU has
# AMX-BF16); "vdpbf16ps": the same packs on the avx512 tier's micro-kernel, AMX turned off
# for the test (only where AMX runs, so that both x86 paths are tested there).
KINDS = (["portable"] + (["native"] if precision.native() else [])
         + (["vdpbf16ps"] if _isa.amx() else []))


@pytest.fixture(autouse=True)
def _amx_off_for_vdpbf16ps(request):
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("kind") != "vdpbf16ps":
        yield
        return
    _isa.set_amx(False)
    try:
        yield
    finally:
        _isa.set_amx(True)


def bf16(a):
    """a rounded to bfloat16 (nearest, ties to even), as float32; NaN stays NaN."""
    a = np.ascontiguousarray(a, np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(a), np.float32(np.nan), r)


def bf16_pack(B, kind, trans=False):
    """B (K, N) packed in bf16 for the kernel `kind` (from B^T if trans, as the cells
    pack W (N, K) for x W^T)."""
    K, N = B.shape
    native = kind != "portable"
    Bp = np.full(_ops.sgemm_packed_size_bf16(K, N, native), np.nan, np.float32)
    _ops.sgemm_pack_bf16(trans, np.ascontiguousarray(B.T) if trans else B, Bp, native)
    return Bp


def bf16_gemm(A, B, kind, trans_a=False, trans_b=False):
    """C = op(A) @ B on the bf16 GEMM (through the kernels' entry point, as the cells
    call it); A stored (K, M) if trans_a."""
    M = A.shape[1] if trans_a else A.shape[0]
    C = np.zeros((M, B.shape[1]), np.float32)
    _twins.sgemm(trans_a, A, B, bf16_pack(B, kind, trans_b), False, C)
    return C


# ---- the GEMM ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (3, 17, 0), (5, 16, 1), (7, 33, 2), (9, 12, 3),
                                   (13, 40, 31), (50, 48, 255), (97, 37, 513)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
def test_gemm_against_float64(tier, kind, M, N, K, trans_a, trans_b):
    """Tight against float64 on the rounded inputs; bf16's bound against the raw inputs,
    and far enough from them to show that the inputs really were rounded. (The native
    kernel is its tier's: on the others a native pack is refused.)"""
    rng = np.random.default_rng(M * 1000 + N * 10 + K)
    A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)
    if kind != "portable" and not precision.native():
        with pytest.raises(ValueError, match="no native bf16 kernel on this tier"):
            bf16_gemm(A, B, kind, trans_a, trans_b)
        return
    C = bf16_gemm(A, B, kind, trans_a, trans_b)
    opA = (A.T if trans_a else A).astype(np.float64)
    rounded = bf16(opA.astype(np.float32)).astype(np.float64) @ bf16(B).astype(np.float64)
    exact = opA @ B.astype(np.float64)
    mag = np.abs(opA) @ np.abs(B.astype(np.float64))       # sum_k |a b|, per element
    f32 = 2e-7 * np.sqrt(max(K, 1)) * mag + 1e-30           # float32 sums, k in order
    assert np.all(np.abs(C - rounded) <= f32)
    assert np.all(np.abs(C - exact) <= 2.0**-7 * mag + f32)
    if K >= 31:
        assert np.max(np.abs(C - exact) / (mag + 1e-30)) > 1e-4   # not float32 in disguise


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("K,N", [(0, 5), (1, 1), (2, 33), (3, 16), (17, 31), (32, 64),
                                 (33, 65), (130, 40), (577, 100)])
def test_pack_layout(tier, kind, K, N):
    """The packed bytes, read back by the layout sgemm_bf16.h documents (a header, then
    column panels of NR, each ceil(K/2) rows of NR pairs, zeros past K and N), from B and
    from B^T alike: every edge of the blocked copy (K odd, k blocks of 16, N past NR)."""
    if kind != "portable" and not precision.native():
        return
    B = np.random.default_rng(K * 100 + N).standard_normal((K, N)).astype(np.float32)
    Bp = bf16_pack(B, kind)
    np.testing.assert_array_equal(Bp.view(np.uint32), bf16_pack(B, kind, True).view(np.uint32))
    hdr = Bp[:16].view(np.int32)
    NR = int(hdr[1])
    assert list(hdr[2:5]) == [K, N, kind != "portable"]
    KP, panels = (K + 1) // 2, -(-N // NR)
    bits = bf16(B).view(np.uint32) >> 16                      # (K, N) bf16 bit patterns
    full = np.zeros((2 * KP, panels * NR), np.uint32)
    full[:K, :N] = bits
    want = (full[0::2] | (full[1::2] << 16)).reshape(KP, panels, NR).transpose(1, 0, 2)
    np.testing.assert_array_equal(Bp[16:].view(np.uint32), want.ravel())


@pytest.mark.parametrize("kind", KINDS)
def test_rounding_of_both_operands_is_nearest_even(kind):
    """Through the whole path (packing B, copying A into the tiles): times the identity,
    each operand comes back rounded to bf16, ties to even, NaN still NaN (Arm's BFDOT
    also flushes subnormal inputs to zero)."""
    one = np.float32(1.0)
    specials = np.array([1 + 2.0**-8, 1 + 3 * 2.0**-8, -(1 + 3 * 2.0**-8), 1 + 2.0**-8 + 2.0**-20,
                         3.0e38, 1e-40, 0.1, -7.3], np.float32)
    n = len(specials)
    X = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    X[0] = specials
    eye = np.eye(n, dtype=np.float32)
    want = bf16(X)
    if kind != "portable":
        want[np.abs(want) < np.finfo(np.float32).tiny] = 0
    assert want[0, 0] == one and want[0, 1] == np.float32(1 + 2.0**-6)   # ties: to even
    np.testing.assert_array_equal(bf16_gemm(eye, X, kind), want)        # B rounded
    np.testing.assert_array_equal(bf16_gemm(X, eye, kind), want)        # A rounded
    X[2, 3] = np.nan
    C = bf16_gemm(X, eye, kind)
    assert np.isnan(C[2, 3]) and np.isnan(C).sum() == n   # its row of A: every column
    C = bf16_gemm(eye, X, kind)
    assert np.isnan(C[:, 3]).all() and np.isnan(C).sum() == n   # its column of B


def test_portable_kernel_gives_the_same_bits_on_every_tier():
    """Exact products and float32 adds in k order: no tier's vector width or FMA changes
    a bit of the portable kernel's results."""
    rng = np.random.default_rng(5)
    A = rng.standard_normal((37, 300)).astype(np.float32)
    B = rng.standard_normal((300, 45)).astype(np.float32)
    results = []
    for t in TIERS:
        with isa.use(t):
            results.append(bf16_gemm(A, B, "portable"))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_native_kernel_agrees_with_the_portable_one():
    """Within float32 summation's bound of it (they round differently); where there is
    no native kernel, asking for one is refused."""
    rng = np.random.default_rng(6)
    A = rng.standard_normal((37, 300)).astype(np.float32)
    B = rng.standard_normal((300, 45)).astype(np.float32)
    if not precision.native():
        with pytest.raises(ValueError, match="no native bf16 kernel on this tier and CPU"):
            bf16_gemm(A, B, "native")
        return
    mag = np.abs(A) @ np.abs(B)
    diff = np.abs(bf16_gemm(A, B, "native") - bf16_gemm(A, B, "portable"))
    assert np.all(diff <= 1e-6 * np.sqrt(300) * mag) and diff.max() > 0


def test_a_bf16_pack_is_refused_where_it_cannot_run():
    """A pack names its kernel: a native pack where no native kernel runs, or a pack of
    another shape, is refused at the boundary, never misread."""
    W = np.ones((4, 6), np.float32)
    Bp = bf16_pack(W, "portable")
    C = np.zeros((2, 6), np.float32)
    with pytest.raises(ValueError, match="packed for this ISA tier"):
        _twins.sgemm(False, np.ones((2, 5), np.float32), np.ones((5, 6), np.float32), Bp, False, C)
    if not precision.native():
        with pytest.raises(ValueError, match="no native bf16 kernel"):
            _ops.sgemm_packed_size_bf16(4, 6, True)
        Bp[4] = np.array([1], np.int32).view(np.float32)[0]   # relabel it "native"
        with pytest.raises(ValueError, match="packed for this ISA tier"):
            _twins.sgemm(False, np.ones((2, 4), np.float32), W, Bp, False, C)


# ---- the cells --------------------------------------------------------------------------

def run_cell(cell, inp, dout, ws_precision):
    """Forward and backward of the compiled cell, float32, with a workspace of the given
    precision; -> outputs and gradients, keyed like the reference's."""
    f = {k: v.astype(np.float32) for k, v in inp.items()}
    ws, bws = cells.Workspace(ws_precision), cells.Workspace(ws_precision)
    w = (f["W_ih"], f["W_hh"], f["b_ih"], f["b_hh"])
    g = {k: np.zeros_like(v) for k, v in f.items()}
    dw = (g["W_ih"], g["W_hh"], g["b_ih"], g["b_hh"])
    d = {k: v.astype(np.float32) for k, v in dout.items()}
    if cell == "lstm":
        y, hT, cT, cache = cells.lstm_forward(f["x"], f["h0"], f["c0"], *w, workspace=ws)
        cells.lstm_backward(d["y"], d["hT"], d["cT"], cache, g["x"], g["h0"], g["c0"], *dw,
                            workspace=bws)
        out = dict(y=y, hT=hT, cT=cT)
    else:
        fwd = cells.gru_forward if cell == "gru" else cells.rnn_forward
        bwd = cells.gru_backward if cell == "gru" else cells.rnn_backward
        y, hT, cache = fwd(f["x"], f["h0"], *w, workspace=ws)
        bwd(d["y"], d["hT"], cache, g["x"], g["h0"], *dw, workspace=bws)
        out = dict(y=y, hT=hT)
    return {**out, **{"d" + k: v for k, v in g.items()}}, ws


def run_reference(cell, inp, dout):
    w = (inp["W_ih"], inp["W_hh"], inp["b_ih"], inp["b_hh"])
    g = {k: np.zeros_like(v) for k, v in inp.items()}
    dw = (g["W_ih"], g["W_hh"], g["b_ih"], g["b_hh"])
    if cell == "lstm":
        y, hT, cT, cache = ref.lstm_forward(inp["x"], inp["h0"], inp["c0"], *w)
        ref.lstm_backward(dout["y"], dout["hT"], dout["cT"], cache, g["x"], g["h0"], g["c0"], *dw)
        out = dict(y=y, hT=hT, cT=cT)
    else:
        fwd = ref.gru_forward if cell == "gru" else ref.rnn_forward
        bwd = ref.gru_backward if cell == "gru" else ref.rnn_backward
        y, hT, cache = fwd(inp["x"], inp["h0"], *w)
        bwd(dout["y"], dout["hT"], cache, g["x"], g["h0"], *dw)
        out = dict(y=y, hT=hT)
    return {**out, **{"d" + k: v for k, v in g.items()}}


def max_rel(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


BF16_TOL = 2e-2   # bf16 keeps 8 significant bits (2^-8 = 4e-3 a rounding); seen <= 6e-3
F32_TOL = 1e-4    # test_kernels.py's


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("size", [(1, 1, 2, 3), (5, 3, 4, 6), (20, 13, 33, 40)])
def test_cells_in_bf16_match_the_reference(cell, size, gemm, kind, monkeypatch):
    """Forward and backward within bf16's tolerance of the float64 reference, on every
    tier with either float32 GEMM selected (bf16 always runs on the own GEMM: the
    backend changes no bit); float32 on the same inputs stays within float32's. The
    native kernel where the CPU has one (on its tier; the others then use the portable)."""
    if kind == "portable":
        monkeypatch.setenv(precision.ENV, "portable")
    else:
        monkeypatch.delenv(precision.ENV, raising=False)
        if not precision.native():       # a tier without it: bf16 is refused there
            with pytest.raises(ConfigError, match="bf16 products: "):
                run_cell(cell, make_inputs(cell, *size, seed=3),
                         random_dout(cell, *size[:2], size[3], seed=4), "bf16")
            return
    T, N, D, H = size
    inp = make_inputs(cell, T, N, D, H, seed=3)
    dout = random_dout(cell, T, N, H, seed=4)
    want = run_reference(cell, inp, dout)
    got, ws = run_cell(cell, inp, dout, "bf16")
    f32, ws32 = run_cell(cell, inp, dout, "fp32")
    errs = {k: max_rel(got[k], want[k]) for k in want}
    assert max(errs.values()) <= BF16_TOL, errs
    assert max(max_rel(f32[k], want[k]) for k in want) <= F32_TOL
    assert max(max_rel(got[k], f32[k]) for k in got) > F32_TOL   # really bf16 products
    other = "blas" if gemm == "own" else "own"
    with cells.gemm_backend(other):
        again, _ = run_cell(cell, inp, dout, "bf16")
    for k in got:
        np.testing.assert_array_equal(again[k], got[k], err_msg=k)
    # the packs in the workspace are bf16's: a pair of k in each float
    if gemm == "own":
        assert ws._bufs["Wpf_hh"].size < ws32._bufs["Wpf_hh"].size


def test_float32_is_unchanged_by_bf16():
    """Workspaces default to fp32, and a network switched to bf16 and back gives the bits
    of one that never was: the float32 path is the one it always was."""
    assert cells.Workspace().precision == "fp32"
    vocab = [chr(97 + i) for i in range(11)]
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 11, (9, 4)), rng.integers(0, 11, (9, 4))
    for cell in ("lstm", "gru", "rnn"):
        cfg = ModelConfig(cell=cell, hidden=20, layers=2, embed=6, vocab_size=11)
        a = Network(cfg, vocab, seed=1)
        b = Network(cfg, vocab, seed=1)
        assert a.precision == "fp32"
        la, ga, _ = a.loss_and_grad(x, y)
        with pytest.MonkeyPatch.context() as m:
            m.setenv(precision.ENV, "portable")
            b.precision = "bf16"
            l16, g16, _ = b.loss_and_grad(x, y)
        b.precision = "fp32"
        lb, gb, _ = b.loss_and_grad(x, y)
        assert la == lb and l16 != la
        for k in ga:
            np.testing.assert_array_equal(ga[k], gb[k], err_msg=k)


def test_network_precision_checks_its_value_and_dtype():
    cfg = ModelConfig(cell="gru", hidden=4, layers=1, embed=3, vocab_size=5)
    with pytest.raises(ConfigError, match="fp32' or 'bf16"):
        Network(cfg, list("abcde")).precision = "fp16"
    with pytest.raises(ConfigError, match="float32 network"):
        Network(cfg, list("abcde"), dtype=np.float64).precision = "bf16"


def test_bf16_without_a_native_kernel_is_refused_unless_portable_is_asked(monkeypatch):
    monkeypatch.delenv(precision.ENV, raising=False)
    if precision.native():
        assert precision.resolve("auto") == "bf16" and precision.resolve("bf16") == "bf16"
        return
    assert precision.resolve("auto") == "fp32" and precision.path() is None
    with pytest.raises(ConfigError, match="--precision bf16: .*CHARRNN_BF16=portable"):
        precision.resolve("bf16")
    # a network set to bf16 where it cannot run fails at its first pass, as clearly
    net = Network(ModelConfig(cell="rnn", hidden=4, layers=1, embed=3, vocab_size=5), list("abcde"))
    net.precision = "bf16"
    with pytest.raises(ConfigError, match="bf16 products: "):
        net.loss(np.zeros((2, 2), int), np.zeros((2, 2), int))
    monkeypatch.setenv(precision.ENV, "portable")
    assert precision.resolve("bf16") == "bf16" and precision.resolve("auto") == "fp32"
    monkeypatch.setenv(precision.ENV, "yes")
    with pytest.raises(ConfigError, match="CHARRNN_BF16=yes: not a choice"):
        precision.resolve("bf16")


# ---- training ---------------------------------------------------------------------------

TINY = dict(hidden=24, layers=2, embed=8, seq_len=16, batch_size=8, eval_every=10,
            max_minutes=0, val_frac=0.1)


def metrics(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]


def saved_config(run_dir):
    return ckpt.load_state(run_dir / "state.safetensors").meta["train_config"]


def test_a_bf16_run_learns_records_its_precision_and_resumes_exactly(corpus, tmp_path,
                                                                     monkeypatch):
    """On the portable kernel: the loss falls; the run's config says bf16; a run stopped
    and resumed gives the same losses and weights, bit for bit, as one that was not, and
    --resume keeps bf16 (another --precision is ignored, with a note)."""
    from charrnn.training.loop import Interrupted
    from test_training import interrupt_at
    monkeypatch.setenv(precision.ENV, "portable")
    opts = dict(TINY, cell="lstm", dropout=0.1, max_steps=40, precision="bf16")
    lines = []
    train(str(corpus), out=str(tmp_path / "a"), quiet=True, log=lines.append, **opts)
    assert any("precision bf16" in line and "portable kernel" in line for line in lines)
    a = [(r["step"], r["train_loss"]) for r in metrics(tmp_path / "a") if "final" not in r]
    assert len(a) == 40 and np.mean([l for _, l in a[-5:]]) < np.mean([l for _, l in a[:5]]) - 0.15
    assert saved_config(tmp_path / "a")["precision"] == "bf16"
    with pytest.raises(Interrupted):
        train(str(corpus), out=str(tmp_path / "b"), quiet=True, progress=interrupt_at(27), **opts)
    notes = []
    train(str(corpus), out=str(tmp_path / "b"), resume=True, precision="fp32", quiet=True,
          log=notes.append)
    assert any("--precision ignored on --resume (the run uses 'bf16')" in n for n in notes)
    b = [(r["step"], r["train_loss"]) for r in metrics(tmp_path / "b") if "final" not in r]
    assert a == b
    pa = ckpt.load_model(tmp_path / "a" / "model.safetensors").params
    pb = ckpt.load_model(tmp_path / "b" / "model.safetensors").params
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    # and it differs from the same run in float32: the products were bf16
    train(str(corpus), out=str(tmp_path / "c"), quiet=True, **dict(opts, precision="fp32"))
    c = [(r["step"], r["train_loss"]) for r in metrics(tmp_path / "c") if "final" not in r]
    assert c[0] != a[0] and abs(c[-1][1] - a[-1][1]) < 0.2


def test_auto_records_what_it_picked_and_old_runs_resume_in_fp32(corpus, tmp_path,
                                                                  monkeypatch):
    monkeypatch.delenv(precision.ENV, raising=False)
    train(str(corpus), out=str(tmp_path / "a"), quiet=True, **dict(TINY, max_steps=3))
    assert saved_config(tmp_path / "a")["precision"] == precision.resolve("auto")
    # a run saved before --precision existed has none in its config: it resumes in fp32
    from charrnn.io.checkpoint import load_state, save_state
    state = load_state(tmp_path / "a" / "state.safetensors")
    del state.meta["train_config"]["precision"]
    save_state(tmp_path / "a" / "state.safetensors", state.arrays, state.meta)
    s = train(str(corpus), out=str(tmp_path / "a"), quiet=True, resume=True, max_steps=5)
    assert s["steps"] == 5 and saved_config(tmp_path / "a")["precision"] == "fp32"


def test_resuming_a_bf16_run_where_bf16_cannot_run_is_refused(corpus, tmp_path, monkeypatch):
    """(Where the CPU runs bf16 natively, on the scalar tier, which has no bf16 kernel.)"""
    monkeypatch.setenv(precision.ENV, "portable")
    train(str(corpus), out=str(tmp_path / "a"), quiet=True,
          **dict(TINY, max_steps=3, precision="bf16"))
    monkeypatch.delenv(precision.ENV)
    with isa.use("scalar" if precision.native() else isa.current()):
        with pytest.raises(ConfigError, match="cannot resume: this run trains in bf16"):
            train(str(corpus), out=str(tmp_path / "a"), quiet=True, resume=True, max_steps=5)


def test_why_not_names_the_cause():
    """Why bf16 cannot run: the tier (a CPU with bf16 dot products on a tier without a
    kernel for them), or the CPU."""
    with isa.use("scalar"):
        msg = precision.why_not()
    if _isa.cpu_bf16():
        assert msg.startswith("the scalar tier has no bf16 kernel (this CPU's ")
    else:
        assert msg.startswith("this CPU has no bf16 dot products (x86 AVX512_BF16")
    assert "\n" not in msg


def test_forced_bf16_on_a_tier_without_it_is_a_one_line_cli_error(corpus, tmp_path):
    """CHARRNN_ISA forcing a tier without a native bf16 kernel (AVX2 on x86, the scalar
    tier on arm64) and --precision bf16: exit 1, one line, no run directory left."""
    tier = "avx2" if "avx2" in TIERS else "scalar"
    env = {k: v for k, v in child_env(CHARRNN_ISA=tier).items() if k != precision.ENV}
    # the charrnn under test first, then whatever else the path had (arm64_python.sh's
    # dependencies live there)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [CHARRNN_PATH, os.environ.get("PYTHONPATH")] if p)
    r = subprocess.run([sys.executable, "-m", "charrnn.cli", "train", str(corpus), "--out",
                        str(tmp_path / "run"), "--precision", "bf16", "--max-steps", "2", "-q"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--precision bf16: " in lines[0], r.stderr
    assert not (tmp_path / "run").exists()
    r = subprocess.run([sys.executable, "-m", "charrnn.cli", "train", "--precision", "fp16"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "'fp16' is not one of 'auto', 'fp32', 'bf16'" in r.stderr


def test_info_says_whether_bf16_is_available_and_used(monkeypatch):
    monkeypatch.delenv(precision.ENV, raising=False)
    d = charrnn.info()
    assert d["bf16_cpu"].startswith("yes" if _isa.cpu_bf16() else "no")
    assert d["precision_auto"] == ("bf16" if precision.native() else "fp32")
    assert d["bf16_products"].startswith("inputs in bf16" if precision.native()
                                         else "not available: ")
    monkeypatch.setenv(precision.ENV, "portable")
    assert "the portable kernel, CHARRNN_BF16=portable, 4x16" in charrnn.info()["bf16_products"]
    from charrnn.inspect.system import format_info
    text = format_info(charrnn.info())
    assert "bf16 dot products" in text and "--precision auto" in text


# ---- the start-up check of a native kernel ---------------------------------------------

def test_the_startup_check_passes_agreeing_kernels_and_names_a_disagreement():
    portable = lambda A, B: precision._gemm(A, B, False)   # noqa: E731
    assert precision.check_agreement(portable, portable) is None

    def off_by_a_percent(A, B):
        C = portable(A, B)
        C[12, 39] *= 1.01      # one element of the last, partial tile
        return C
    assert "disagreed" in precision.check_agreement(off_by_a_percent, portable)
    nan = lambda A, B: np.full((A.shape[0], B.shape[1]), np.nan, np.float32)   # noqa: E731
    assert "disagreed" in precision.check_agreement(nan, portable)


def test_a_native_kernel_failing_the_startup_check_falls_back_to_fp32(monkeypatch):
    """As a CPU whose native kernel misbehaves would: auto takes fp32, a forced bf16 is a
    one-line error that says why."""
    from charrnn import _isa
    monkeypatch.delenv(precision.ENV, raising=False)
    monkeypatch.setattr(_isa, "bf16_native", lambda: True)
    monkeypatch.setattr(precision, "_checked", {})
    monkeypatch.setattr(precision, "_gemm", lambda A, B, native: (
        np.zeros((A.shape[0], B.shape[1]), np.float32) if native else
        (A.astype(np.float64) @ B).astype(np.float32)))
    assert not precision.native()
    assert precision.resolve("auto") == "fp32"
    with pytest.raises(ConfigError, match="disagreed with the portable one at start-up"):
        precision.resolve("bf16")
    # and a kernel that agrees is used
    monkeypatch.setattr(precision, "_checked", {})
    monkeypatch.setattr(precision, "_gemm", lambda A, B, native: (A.astype(np.float64) @ B).astype(np.float32))
    assert precision.native() and precision.resolve("auto") == "bf16"
