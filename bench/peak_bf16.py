"""bf16 against float32 on a CPU with AVX512_BF16: the arithmetic peaks and charrnn's GEMMs.

    PYTHONPATH=. python bench/peak_bf16.py --repeat 5

One core (threadpoolctl, and the loops are single-threaded):
  peak      a loop of VDPBF16PS alone (64 flops each) and of VFMADD231PS zmm alone (32
            flops each), 16 independent accumulators, and where the CPU has AMX a loop of
            TDPBF16PS on four accumulator tiles (16,384 flops each) (bench/peak_bf16.c,
            compiled here with $CC or cc): the bf16 and float32 ceilings of this core
  sgemm     charrnn's own GEMM on the avx512 tier, float32 (its AVX-512 micro-kernel) and
            bf16 (its AVX512_BF16 micro-kernel: inputs rounded to bf16, float32 sums; and
            where the CPU has AMX, the same packs on AMX tiles, kernels/gemm_amx_bf16.h), on
            bench/sgemm.py's training shapes and a 2048^3 square, B packed (untimed)
GFLOP/s are medians of --repeat timings, each a loop sized to ~0.2 s; a bf16 GEMM counts
the same 2*M*N*K flops as a float32 one.

On a CPU without AVX512_BF16 (with the OS saving ZMM state, as kernels/cpu.h checks) it
prints one line and exits 1: nothing here can run there.
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np
from threadpoolctl import threadpool_limits

from charrnn import _isa, _ops, _twins
from charrnn.nn import isa
from sgemm import shapes, timed

HERE = os.path.dirname(os.path.abspath(__file__))


def need_avx512_bf16():
    if not (_isa.cpu_bf16() and "avx512bf16" in _isa.cpu_features()):
        sys.exit("bench/peak_bf16.py: this CPU has no AVX512_BF16 (with AVX-512 state): "
                 "nothing to measure; run it on a Zen 4/5, Cooper Lake, Sapphire Rapids or "
                 "later x86 CPU")


def peak_loops(tmp):
    """The two loops of peak_bf16.c, compiled, as ctypes functions (n) -> float."""
    so = os.path.join(tmp, "peak_bf16.so")
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O2", "-shared", "-fPIC", os.path.join(HERE, "peak_bf16.c"), "-o", so],
                   check=True)
    lib = ctypes.CDLL(so)
    for name in ("peak_bf16", "peak_fma512", "peak_amx"):
        getattr(lib, name).argtypes = [ctypes.c_int64]
        getattr(lib, name).restype = ctypes.c_float
    return lib.peak_bf16, lib.peak_fma512, lib.peak_amx


def packed(B, trans_w, bf16):
    """B (K, N) packed as the cells pack weights (from W = B^T if trans_w), for the tier's
    float32 kernel or its native bf16 one."""
    K, N = B.shape
    W = np.ascontiguousarray(B.T) if trans_w else B
    if bf16:
        Bp = np.empty(_ops.sgemm_packed_size_bf16(K, N, True), np.float32)
        _ops.sgemm_pack_bf16(bool(trans_w), W, Bp, True)
    else:
        Bp = np.empty(_ops.sgemm_packed_size(K, N), np.float32)
        _ops.sgemm_pack(bool(trans_w), W, Bp)
    return Bp


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    need_avx512_bf16()
    isa.set_isa("avx512")
    with tempfile.TemporaryDirectory() as tmp:
        bf16_loop, fma_loop, amx_loop = peak_loops(tmp)
        n = 1 << 16
        bf16 = timed(lambda: bf16_loop(n), 16 * 64 * n, a.repeat)
        fp32 = timed(lambda: fma_loop(n), 16 * 32 * n, a.repeat)
        amx = _isa.amx()
        if amx:
            amx_peak = timed(lambda: amx_loop(n // 16), 4 * 16384 * (n // 16), a.repeat)
    print(f"Peak of one core: VDPBF16PS {bf16:.0f} GFLOP/s, VFMADD231PS zmm {fp32:.0f} GFLOP/s "
          f"(bf16 / fp32 {bf16 / fp32:.2f}x)"
          + (f"; AMX TDPBF16PS {amx_peak:.0f} GFLOP/s ({amx_peak / fp32:.1f}x fp32)" if amx
             else "; no AMX here") + "\n")
    print(f"charrnn's own GEMM on the avx512 tier: float32 tile {_isa.sgemm_tile()}, bf16 tile "
          f"{_isa.bf16_tile(True)}" + (", and AMX tiles (blocks of 32 x 32)" if amx else "")
          + "\n")
    amx_head = (" AMX GFLOP/s | AMX / fp32 | AMX % of its peak |" if amx else "")
    print("| Product | M | N | K | fp32 GFLOP/s | VDPBF16PS GFLOP/s | VDPBF16PS / fp32 "
          "| VDPBF16PS % of its peak |" + amx_head)
    print("|---|--:|--:|--:|--:|--:|--:|--:|" + ("--:|--:|--:|" if amx else ""))
    rng = np.random.default_rng(0)
    rows = list(shapes()) + [("square 2048", False, 2048, 2048, 2048, False)]
    with threadpool_limits(limits=1):
        for name, ta, M, N, K, trans_w in rows:
            A = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
            B = rng.standard_normal((K, N)).astype(np.float32)
            C = np.zeros((M, N), np.float32)
            flops = 2 * M * N * K
            rate = {}
            for prec in ("fp32", "bf16", "amx") if amx else ("fp32", "bf16"):
                Bp = packed(B, trans_w, prec != "fp32")
                _isa.set_amx(prec == "amx")
                rate[prec] = timed(lambda: _twins.sgemm(ta, A, B, Bp, True, C), flops, a.repeat)
            _isa.set_amx(True)
            cells = ""
            if amx:
                cells = (f" {rate['amx']:.0f} | {rate['amx'] / rate['fp32']:.2f}× "
                         f"| {100 * rate['amx'] / amx_peak:.0f}% |")
            print(f"| {name} | {M} | {N} | {K} | {rate['fp32']:.0f} | {rate['bf16']:.0f} "
                  f"| {rate['bf16'] / rate['fp32']:.2f}× | {100 * rate['bf16'] / bf16:.0f}% |"
                  + cells)
    print(f"\nCommand: `python bench/peak_bf16.py --repeat {a.repeat}`")


if __name__ == "__main__":
    main()
