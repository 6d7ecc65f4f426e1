"""Would bf16 weights speed up batch-1 sampling here? The products of one character,
float32 weights against bf16 weights, on this CPU (AVX2 is enough: bf16 -> float32 is a
16-bit shift), next to the sampler's whole time per character.

    PYTHONPATH=. python bench/gemv_bf16.py --configs B,C --repeat 7

Batch-1 sampling of an L-layer LSTM reads, per character, W_hh of every layer, W_ih of
every layer but the first (the first layer's input part is a table row) and the decoder:
(2L - 1) matrices (4H, H) and one (V, H), all of them, once, so the step streams its
weights from cache or memory (2x256: 3 MiB in float32; 2x512: 12 MiB). One core
(threadpoolctl); medians of --repeat timings of a loop of characters sized to ~0.3 s:

  BLAS sgemv      SciPy's sgemv (what the sampler calls at batch 1), float32 weights
  AVX2 fp32       bench/gemv_bf16.c, float32 weights: 4 rows at a time, FMA
  AVX2 bf16       the same loop on bf16 weights (RNE-rounded), expanded by a shift
  sampler         charrnn.load(run).generate(length=2000) in this process (the whole
                  step: products, gate math, softmax, the draw), models as bench/sample.py

The last column is (faster float32 products - bf16 products) / sampler time per char: what
bf16 weights would save of a character if the sampler's products became the bf16 loop.
The bf16 products are also checked against float64 on the rounded weights.
"""
import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.linalg import blas
from threadpoolctl import threadpool_limits

import sample

HERE = os.path.dirname(os.path.abspath(__file__))
V = 65                                            # Tiny Shakespeare's vocabulary


def bf16_bits(a):
    """float32 -> bfloat16 bits (uint16), round to nearest even (no NaN here)."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def timed(fn, repeat):
    """Median microseconds per call of fn, over loops sized to ~0.3 s."""
    fn()
    t0 = time.perf_counter()
    fn()
    n = max(1, int(0.3 / max(time.perf_counter() - t0, 1e-7)))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="B,C", help="bench/sample.py's configs (default: B,C)")
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    import charrnn
    tmp = tempfile.mkdtemp(prefix="charrnn-gemv-")
    so = os.path.join(tmp, "gemv_bf16.so")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC",
                    os.path.join(HERE, "gemv_bf16.c"), "-o", so], check=True)
    lib = ctypes.CDLL(so)
    P = ctypes.c_void_p
    for f in (lib.gemv_f32, lib.gemv_bf16):
        f.argtypes, f.restype = [ctypes.c_int64, ctypes.c_int64, P, P, P], None
    rng = np.random.default_rng(0)
    print("Products of one batch-1 character, microseconds (median), one core:\n")
    print("| Model | weights fp32 | BLAS sgemv | AVX2 fp32 | AVX2 bf16 | bf16 / faster fp32 "
          "| sampler µs/char | bf16 saves of a char |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for name in a.configs.split(","):
        cell, H, L = sample.CONFIGS[name]
        shapes = [(4 * H, H)] * (2 * L - 1) + [(V, H)]
        Ws = [(rng.uniform(-1, 1, s) / np.sqrt(H)).astype(np.float32) for s in shapes]
        Wb = [bf16_bits(W) for W in Ws]
        Wts = [W.T for W in Ws]
        x = rng.standard_normal(H).astype(np.float32)
        ys = [np.zeros(s[0], np.float32) for s in shapes]
        for W, B, y in zip(Ws, Wb, ys):                      # bf16 against float64
            y[:] = 0
            lib.gemv_bf16(W.shape[0], H, B.ctypes.data, x.ctypes.data, y.ctypes.data)
            Wr = (B.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
            want = Wr @ x.astype(np.float64)
            assert np.abs(y - want).max() <= 1e-5 * np.abs(Wr).sum(1).max(), name

        def blas_step():
            for Wt, y in zip(Wts, ys):            # W^T in Fortran order: no copy
                blas.sgemv(1.0, Wt, x, 1.0, y, trans=1, overwrite_y=1)

        def own(fn, mats):
            args = [(m.shape[0], m.ctypes.data, y.ctypes.data) for m, y in zip(mats, ys)]
            xp = x.ctypes.data
            return lambda: [fn(M, H, w, xp, yp) for M, w, yp in args]

        with threadpool_limits(limits=1):
            t_blas = timed(blas_step, a.repeat)
            t_f32 = timed(own(lib.gemv_f32, Ws), a.repeat)
            t_b16 = timed(own(lib.gemv_bf16, Wb), a.repeat)
            run = os.path.join(tmp, name)
            sample.make_run(run, name, [chr(32 + i) for i in range(V)])
            model = charrnn.load(run)
            model.generate(length=200, seed=1)
            per_char = []
            for i in range(a.repeat):
                t0 = time.perf_counter()
                n = len(model.generate(length=2000, temperature=1.0, seed=i + 1))
                per_char.append((time.perf_counter() - t0) / n * 1e6)
            t_char = statistics.median(per_char)
        mib = sum(W.nbytes for W in Ws) / 2**20
        fp32 = min(t_blas, t_f32)
        print(f"| LSTM {L}x{H} | {mib:.1f} MiB | {t_blas:.1f} | {t_f32:.1f} | {t_b16:.1f} "
              f"| {t_b16 / fp32:.2f}× | {t_char:.1f} | {100 * (fp32 - t_b16) / t_char:.0f}% |")
    print(f"\nCommand: `python bench/gemv_bf16.py {' '.join(sys.argv[1:])}`")


if __name__ == "__main__":
    main()
