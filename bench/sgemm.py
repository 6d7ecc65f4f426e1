"""charrnn's own AVX-512 sgemm against SciPy's BLAS on the shapes a training step runs.

    PYTHONPATH=. python bench/sgemm.py --repeat 5

Per cell size H (D = H, LSTM: G = 4H gates) and batch rows M:
  step fwd   h (M, H) @ W_hh^T          -> (M, 4H)   every time step, weights packed once
  step bwd   dG (M, 4H) @ W_hh          -> (M, H)    every time step
  seq xproj  x (T*N, H) @ W_ih^T        -> (T*N, 4H) once per sequence
  seq dx     dG (T*N, 4H) @ W_ih        -> (T*N, H)
  seq dW     dG^T (4H, T*N) @ x         -> (4H, H)   (transposed A, long K)
Both run single-threaded (threadpoolctl) on the same arrays; the table gives GFLOP/s
(median of --repeat timings, each a loop of calls sized to ~0.2 s) and the ratio.
The packing of W (once per pass in the kernels) is not timed.
"""
import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from charrnn import _isa, _ops, _twins
from charrnn.nn import isa


def shapes():
    # (name, trans_a, M, N, K, B from W^T (packed from W (N, K)) or W (K, N))
    for H, Ms in [(128, (50, 25)), (256, (32, 16)), (512, (32, 16))]:
        G = 4 * H
        for M in Ms:
            yield f"H={H} step fwd", False, M, G, H, True
            yield f"H={H} step bwd", False, M, H, G, False
    for H, R in [(128, 2500), (256, 2048), (512, 2048)]:
        G = 4 * H
        yield f"H={H} seq xproj", False, R, G, H, True
        yield f"H={H} seq dx", False, R, H, G, False
        yield f"H={H} seq dW", True, G, H, R, None


def timed(fn, flops, repeat):
    fn()
    t0 = time.perf_counter()
    fn()
    n = max(1, int(0.2 / max(time.perf_counter() - t0, 1e-6)))
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        rates.append(flops * n / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--isa", default="auto", help="ISA tier of the own sgemm (charrnn.isa)")
    a = ap.parse_args()
    isa.set_isa(a.isa)
    print(f"own sgemm on the {isa.current()} tier, tile {_isa.sgemm_tile()}\n")
    rng = np.random.default_rng(0)
    print("| Product | M | N | K | own sgemm GFLOP/s | SciPy BLAS GFLOP/s | own / BLAS |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    with threadpool_limits(limits=1):
        for name, ta, M, N, K, trans_w in shapes():
            A = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
            B = rng.standard_normal((K, N)).astype(np.float32)           # op(B), (K, N)
            if trans_w is None:                                        # data: used in place
                Bp, W, tb = np.empty(0, np.float32), B, False
            else:
                Bp = np.empty(_ops.sgemm_packed_size(K, N), np.float32)
                W = np.ascontiguousarray(B.T) if trans_w else B        # as the cells store it
                _ops.sgemm_pack(trans_w, W, Bp)
                tb = trans_w
            C1, C2 = np.zeros((M, N), np.float32), np.zeros((M, N), np.float32)
            flops = 2 * M * N * K
            own = timed(lambda: _twins.sgemm(ta, A, B, Bp, True, C1), flops, a.repeat)
            blas = timed(lambda: _twins.gemm(ta, tb, 1.0, A, W, 1.0, C2), flops, a.repeat)
            print(f"| {name} | {M} | {N} | {K} | {own:.0f} | {blas:.0f} | {own / blas:.2f}× |")
    print(f"\nCommand: `python bench/sgemm.py --repeat {a.repeat}`")


if __name__ == "__main__":
    main()
