"""Micro-benchmark: one forward+backward over a whole sequence, per cell and size.

    python bench/kernels.py                 # N=32, T=64, H in 128 256 512, 1 thread
    python bench/kernels.py --threads 2 --repeat 7

Times the compiled kernels (charrnn.cells, float32 and float64) against the NumPy
reference (charrnn.reference, run in float32 so both sides do the same arithmetic).
Input size D = H. Reports the median of --repeat runs and GFLOP/s of the matmul work
(forward 2*T*N*(D+H)*G*H flops; backward twice that).
"""
import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from charrnn.nn import cells
from charrnn.nn import reference as ref

GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def make(cell, T, N, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    p = ref.init_params(cell, H, H, rng, dtype)
    x = rng.standard_normal((T, N, H)).astype(dtype)
    h0 = np.zeros((N, H), dtype)
    dy = rng.standard_normal((T, N, H)).astype(dtype)
    return p, x, h0, dy


def step(impl, cell, p, x, h0, dy, grads, ws=None):
    w = (p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"])
    g = (grads["W_ih"], grads["W_hh"], grads["b_ih"], grads["b_hh"])
    kw = {} if ws is None else {"workspace": ws}
    if cell == "lstm":
        y, hT, cT, cache = getattr(impl, "lstm_forward")(x, h0, h0, *w, **kw)
        impl.lstm_backward(dy, None, None, cache, grads["x"], grads["h0"], grads["c0"], *g)
    else:
        y, hT, cache = getattr(impl, f"{cell}_forward")(x, h0, *w, **kw)
        getattr(impl, f"{cell}_backward")(dy, None, cache, grads["x"], grads["h0"], *g)


def time_it(fn, repeat):
    fn()  # warm-up: first-touch page faults, BLAS thread start
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", default="lstm,gru,rnn")
    ap.add_argument("--hidden", default="128,256,512")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-reference", action="store_true", help="skip the (slow) NumPy reference")
    args = ap.parse_args()
    T, N = args.seq, args.batch
    print(f"forward+backward per sequence, N={N} T={T} D=H, {args.threads} thread(s), "
          f"median of {args.repeat}")
    print(f"{'cell':5} {'H':>4} | {'kernel f32':>11} {'GFLOP/s':>8} | {'kernel f64':>11} | "
          f"{'NumPy f32':>10} | {'speedup f32':>11}")
    with threadpool_limits(limits=args.threads):
        for cell in args.cells.split(","):
            for H in map(int, args.hidden.split(",")):
                flops = 3 * 2 * T * N * (H + H) * GATES[cell] * H
                res = {}
                for dtype in (np.float32, np.float64):
                    p, x, h0, dy = make(cell, T, N, H, dtype)
                    grads = {k: np.zeros_like(v) for k, v in p.items()}
                    grads.update(x=np.zeros_like(x), h0=np.zeros_like(h0), c0=np.zeros_like(h0))
                    ws = cells.Workspace()
                    res[dtype] = time_it(lambda: step(cells, cell, p, x, h0, dy, grads, ws), args.repeat)
                    if dtype == np.float32 and not args.no_reference:
                        res["ref"] = time_it(lambda: step(ref, cell, p, x, h0, dy, grads),
                                             max(1, args.repeat // 2))
                k32 = res[np.float32]
                refs = f"{res['ref'] * 1e3:8.2f}ms" if "ref" in res else f"{'-':>10}"
                speed = f"{res['ref'] / k32:10.2f}x" if "ref" in res else f"{'-':>11}"
                print(f"{cell:5} {H:4d} | {k32 * 1e3:9.2f}ms {flops / k32 / 1e9:8.1f} | "
                      f"{res[np.float64] * 1e3:9.2f}ms | {refs} | {speed}", flush=True)


if __name__ == "__main__":
    main()
