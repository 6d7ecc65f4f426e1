"""Training speed: charrnn against PyTorch on the same model, data and optimiser.

    PYTHONPATH=. python bench/train.py                       # configs A-E, threads 1,2
    PYTHONPATH=. python bench/train.py --configs B --threads 2 --repeat 7
    PYTHONPATH=. python bench/train.py --isa avx2,avx512   # a row per ISA tier
    PYTHONPATH=. python bench/train.py --precision fp32,bf16   # a row per precision

Configs (embedding size = hidden size, Tiny Shakespeare, no dropout):

    A  LSTM 2x128, batch 50, seq 50        D  GRU  2x256, batch 32, seq 64
    B  LSTM 2x256, batch 32, seq 64        E  RNN  1x256 (tanh), batch 32, seq 64
    C  LSTM 3x512, batch 32, seq 64

Both sides run the same training step: the corpus cut into `batch` parallel contiguous
streams read in time-major (seq, batch) windows, hidden state carried (detached) from
window to window, mean cross-entropy, global gradient-norm clipping at 5, Adam with
lr 2e-3. Every measurement is a fresh process, with OMP/OPENBLAS/MKL_NUM_THREADS set
to the thread count:

- charrnn: charrnn.train(..., threads=t, quiet=True) for warm-up + steps steps; the
  speed is steps * batch * seq / (wall_time[warm-up + steps] - wall_time[warm-up])
  from the run's metrics.jsonl, so start-up, the warm-up steps and the final
  validation (its "final" record) are all excluded. The run holds out only a sliver
  (--val-frac below) so that untimed final validation stays short.
- PyTorch: nn.Embedding -> nn.LSTM/GRU/RNN(num_layers=L) -> nn.Linear, F.cross_entropy,
  clip_grad_norm_, torch.optim.Adam, torch.set_num_threads(t); the same windows of the
  same training part, timed with perf_counter over the same steps after the same
  warm-up (loss.item() every step, as charrnn logs every loss).

With no dropout on the embedding (these configs), charrnn's first layer multiplies the
embedding table (V rows) instead of the T*N rows gathered from it, and its backward sums
the gate gradients per character (charrnn/lookup.py); PyTorch's nn.Embedding -> nn.LSTM
multiplies every gathered row. Same model and data, the same sums in another order: the
difference is charrnn's algorithm, and it is part of what this benchmark measures.

charrnn and PyTorch measurements alternate (c, p, c, p, ...) --repeat times per config
and thread count; the table gives medians and the ratio of the medians, so both sides
saw the same machine conditions. Use --repeat 5 or more with 2 threads.

Also reported:
- charrnn GFLOP/s: an effective rate, 3 x forward FLOPs per character (forward: per layer 2*G*H*(D+H),
  G gates, D its input size; decoder 2*H*V) x characters per second, against the peak
  of a 2048x2048 float32 GEMM (best of 5) through SciPy's BLAS (charrnn._twins.gemm,
  threadpoolctl limited to each thread count) and through charrnn's own sgemm on the
  tier's micro-kernel (charrnn._twins.sgemm, which the float32 kernels use; t threads
  each take 1/t of the rows, as the kernels split their passes).
- peak RSS (VmHWM, read by the training process itself at exit) of each side.
- the host's steal per measurement (/proc/stat: CPU time a hypervisor gave to other
  guests; in the progress lines and the JSON, and a summary line under the table).

--isa runs every measurement once per ISA tier, both sides held to it: charrnn with
CHARRNN_ISA=tier (and OPENBLAS_CORETYPE=Haswell for what still goes through BLAS on the
avx2 tier), PyTorch with ONEDNN_MAX_CPU_ISA=AVX2 and MKL_ENABLE_INSTRUCTIONS=AVX2 on the
avx2 tier (oneDNN runs its LSTM, MKL its other matmuls: its GRU and RNN) and as it comes
on the others (scalar: PyTorch keeps its default; the row shows how far the portable C is).

--precision fp32,bf16 runs every measurement once per precision: charrnn with
--precision bf16 (an error where no native bf16 kernel runs, unless CHARRNN_BF16=portable
is set: then the portable kernel, slowly), PyTorch with its forward and loss under
torch.autocast("cpu", dtype=torch.bfloat16) (its mixed precision: bf16 matrix products,
float32 weights and optimiser). The GFLOP/s columns compare both with the float32 peak.

The Markdown output goes to stdout (progress to stderr), followed by the command line.
Run it on a quiet machine: anything else running skews both sides.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import common
from common import Steal, log, torch_version
from train_report import report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GATES = {"lstm": 4, "gru": 3, "rnn": 1}

# name: cell, hidden, layers, batch, seq, default timed steps (~10-20 s at 1 thread on a
# recent x86 core; about half that with 2 threads)
CONFIGS = {
    "A": ("lstm", 128, 2, 50, 50, 250),
    "B": ("lstm", 256, 2, 32, 64, 100),
    "C": ("lstm", 512, 3, 32, 64, 20),
    "D": ("gru", 256, 2, 32, 64, 80),
    "E": ("rnn", 256, 1, 32, 64, 500),
}
LR, CLIP = 2e-3, 5.0


def val_frac_for(batch, seq, n_chars):
    """A small held-out part (one or two windows): the final validation is not timed, so
    keep it short. Both sides then train on the same first (1 - val_frac) of the text."""
    need = batch * (seq + 1)
    return round(max(0.005, 1.5 * need / n_chars), 4)


def forward_flops_per_char(cell, H, L, V):
    G = GATES[cell]
    return sum(2 * G * H * (H + H) for _ in range(L)) + 2 * H * V   # embed = H


def peak_rss_mib():
    """Peak resident set size of this process, in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024


# ---- children: each prints one JSON line ------------------------------------------------

def child_charrnn(a):
    import tempfile
    import charrnn

    cell, H, L, B, T, _ = CONFIGS[a.config]
    total = a.warmup + a.steps
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-") as tmp:
        out = os.path.join(tmp, "run")
        charrnn.train(a.corpus, out=out, cell=cell, hidden=H, layers=L, embed=H,
                      batch_size=B, seq_len=T, lr=LR, grad_clip=CLIP, dropout=0,
                      val_frac=a.val_frac, max_steps=total, eval_every=10**9,
                      max_minutes=0, threads=a.threads, quiet=True, precision=a.precision)
        with open(os.path.join(out, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
    wall = {r["step"]: r["wall_time"] for r in records if not r.get("final")}
    seconds = wall[total] - wall[a.warmup]     # cumulative seconds at the end of each step
    return {"chars_per_sec": a.steps * B * T / seconds, "seconds": seconds,
            "rss_mib": peak_rss_mib()}


def child_torch(a):
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cell, H, L, B, T, _ = CONFIGS[a.config]
    with open(a.corpus, encoding="utf-8") as f:
        text = f.read()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = np.fromiter((index[c] for c in text), np.int64, len(text))
    ids = ids[:len(ids) - int(len(ids) * a.val_frac)]          # the training part
    n = len(ids) // B
    streams = ids[:B * n].reshape(B, n)                         # (B, n) contiguous streams
    windows = (n - 1) // T
    V = len(vocab)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(V, H)
            self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](H, H, num_layers=L)
            self.decoder = nn.Linear(H, V)

        def forward(self, x, h):                                # x (T, B)
            y, h = self.rnn(self.encoder(x), h)                 # (T, B, H)
            return self.decoder(y), h                           # (T, B, V)

    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    state = None

    def step(k):
        nonlocal state
        k %= windows
        chunk = streams[:, k * T:k * T + T + 1]                 # (B, T+1)
        x = torch.from_numpy(np.ascontiguousarray(chunk[:, :-1].T))    # (T, B)
        y = torch.from_numpy(np.ascontiguousarray(chunk[:, 1:].T))
        if k == 0:
            state = None                                         # new epoch: fresh state
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            logits, h = model(x, state)
            loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        state = tuple(s.detach() for s in h) if isinstance(h, tuple) else h.detach()
        return loss.item()

    for k in range(a.warmup):
        step(k)
    t0 = time.perf_counter()
    for k in range(a.warmup, a.warmup + a.steps):
        step(k)
    seconds = time.perf_counter() - t0
    return {"chars_per_sec": a.steps * B * T / seconds, "seconds": seconds,
            "rss_mib": peak_rss_mib()}


def child_peak(a):
    """sgemm GFLOP/s per thread count through charrnn's own BLAS entry, plus versions."""
    import platform
    import numpy as np
    import scipy
    from threadpoolctl import threadpool_info, threadpool_limits
    import charrnn
    from charrnn import _isa, _ops, _twins
    from charrnn.nn import cells, isa  # noqa: F401  (importing cells applies CHARRNN_ISA)

    n = a.gemm_size
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n), np.float32)
    Bm = rng.standard_normal((n, n), np.float32)
    C = np.zeros((n, n), np.float32)
    peaks = {}
    for t in a.thread_list:
        with threadpool_limits(limits=t):
            _twins.gemm(False, False, 1.0, A, Bm, 0.0, C)        # warm-up
            best = math.inf
            for _ in range(5):
                t0 = time.perf_counter()
                _twins.gemm(False, False, 1.0, A, Bm, 0.0, C)
                best = min(best, time.perf_counter() - t0)
        peaks[str(t)] = 2 * n**3 / best / 1e9
    own = {}
    if _isa.sgemm_default():
        # charrnn's own sgemm (what the float32 kernels use): single-threaded by
        # design, so t threads each take n / t rows, as the kernels split their passes
        from concurrent.futures import ThreadPoolExecutor
        Bp = np.empty(_ops.sgemm_packed_size(n, n), np.float32)
        _ops.sgemm_pack(False, Bm, Bp)
        for t in a.thread_list:
            cuts = [n * i // t for i in range(t + 1)]
            parts = list(zip(cuts[:-1], cuts[1:]))
            with ThreadPoolExecutor(t) as pool:
                def run():
                    list(pool.map(lambda r: _twins.sgemm(False, A[r[0]:r[1]], Bm, Bp, False, C[r[0]:r[1]]), parts))
                run()
                best = math.inf
                for _ in range(5):
                    t0 = time.perf_counter()
                    run()
                    best = min(best, time.perf_counter() - t0)
            own[str(t)] = 2 * n**3 / best / 1e9
    blas = [f"{_owner(i['filepath'])}: {i.get('internal_api')} {i.get('version')} "
            f"{i.get('architecture', '')}".rstrip()
            for i in threadpool_info() if i.get("user_api") == "blas"]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"peak_gflops": peaks, "own_peak_gflops": own, "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "charrnn": charrnn.__version__,
            "charrnn_path": os.path.dirname(charrnn.__file__), "blas": sorted(set(blas)),
            "isa": isa.current(), "tile": list(_isa.sgemm_tile())}


def _owner(path):
    """Which package ships a shared library: numpy, scipy... (from its directory)."""
    for part in reversed(os.path.normpath(path).split(os.sep)[:-1]):
        if part not in ("lib", "lib64", ".libs"):
            return part.removesuffix(".libs")
    return path


# ---- parent -------------------------------------------------------------------------

def tier_env(side, tier):
    """Environment variables that hold `side` to ISA tier `tier` (None: as it comes)."""
    if tier is None:
        return {}
    if side == "torch":
        # both of PyTorch's kernel libraries: oneDNN (its LSTM) and MKL (its BLAS, every
        # other matmul), which on an Intel CPU with AVX-512 otherwise runs AVX-512 kernels
        # (2048^2 sgemm on the 2026-12-03 Xeon: 102 GFLOP/s, 59 with MKL held to AVX2)
        return {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"} if tier == "avx2" else {}
    env = {"CHARRNN_ISA": tier}
    if tier == "avx2":
        env["OPENBLAS_CORETYPE"] = "Haswell"
    return env


def run_child(kind, env_threads, extra_env=None, **args):
    """Run `kind` in a fresh process (thread-count variables set to env_threads unless
    None, plus extra_env) and return its JSON result."""
    with Steal() as st:
        out = common.run_child(__file__, kind, common.thread_env(env_threads, extra_env), **args)
    out["steal_pct"] = st.pct
    return out




def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="A,B,C,D,E", help="comma-separated (default: A,B,C,D,E)")
    ap.add_argument("--threads", default="1,2", help="thread counts to measure (default: 1,2)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="measurements per side, config and thread count (default: 3; "
                         "use >= 5 with 2 threads)")
    ap.add_argument("--steps", type=int, default=None,
                    help="timed steps per measurement, after the warm-up (default per "
                         "config: " + ", ".join(f"{k} {v[5]}" for k, v in CONFIGS.items()) + ")")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    ap.add_argument("--no-torch", action="store_true", help="measure charrnn only")
    ap.add_argument("--corpus", default=os.path.join(REPO, "data", "tinyshakespeare.txt"),
                    help="training text (default: data/tinyshakespeare.txt)")
    ap.add_argument("--gemm-size", type=int, default=2048, help="sgemm size for the peak (default: 2048)")
    ap.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    ap.add_argument("--isa", help="comma-separated ISA tiers, a row each, both sides held to "
                    "the tier (default: charrnn's and PyTorch's own choice)")
    ap.add_argument("--precision", default="fp32", help="comma-separated fp32,bf16, a row each "
                    "(bf16: charrnn --precision bf16, PyTorch autocast bf16; default: fp32)")
    # internal: one measurement in this process
    ap.add_argument("--child", choices=["charrnn", "torch", "peak"], help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--val-frac", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        if a.child == "peak":
            a.thread_list = [int(t) for t in a.threads.split(",")]
        else:
            a.threads = int(a.threads)
        fn = {"charrnn": child_charrnn, "torch": child_torch, "peak": child_peak}[a.child]
        print(json.dumps(fn(a)))
        return

    configs = [c.strip().upper() for c in a.configs.split(",") if c.strip()]
    bad = [c for c in configs if c not in CONFIGS]
    if bad:
        ap.error(f"unknown config(s) {', '.join(bad)}; choose from {', '.join(CONFIGS)}")
    threads = [int(t) for t in a.threads.split(",")]
    precisions = [p.strip() for p in a.precision.split(",") if p.strip()]
    if not precisions or set(precisions) - {"fp32", "bf16"}:
        ap.error("--precision takes fp32, bf16 or fp32,bf16")
    if a.repeat < 1 or a.warmup < 1 or (a.steps is not None and a.steps < 1) or min(threads) < 1:
        ap.error("--repeat, --warmup, --steps and --threads must be at least 1")
    with open(a.corpus, encoding="utf-8") as f:
        text = f.read()
    n_chars, V = len(text), len(set(text))
    del text

    tv = None if a.no_torch else torch_version()
    if not a.no_torch and tv is None:
        log("note: `import torch` fails here; measuring charrnn only")
    tiers = [t.strip() for t in a.isa.split(",")] if a.isa else [None]
    envs, results = {}, []       # per tier: machine facts; one dict per (tier, config, threads)
    for tier in tiers:
        log(f"sgemm {a.gemm_size}^3 peak, threads {a.threads}, tier {tier or 'auto'} ...")
        envs[tier] = env = run_child("peak", None, tier_env("charrnn", tier),
                                     threads=",".join(map(str, threads)), gemm_size=a.gemm_size)
        peak = {int(k): v for k, v in env["peak_gflops"].items()}
        for name, prec in [(n, p) for n in configs for p in precisions]:
            cell, H, L, B, T, default_steps = CONFIGS[name]
            steps = a.steps or default_steps
            vf = val_frac_for(B, T, n_chars)
            flops = 3 * forward_flops_per_char(cell, H, L, V)
            for t in threads:
                runs = {"charrnn": [], "torch": []}
                for r in range(a.repeat):
                    for side in ("charrnn", "torch") if tv else ("charrnn",):
                        m = run_child(side, t, tier_env(side, tier), threads=t, config=name,
                                      steps=steps, warmup=a.warmup, corpus=a.corpus, val_frac=vf,
                                      precision=prec)
                        runs[side].append(m)
                        log(f"{env['isa']} {name} {prec} threads={t} run {r + 1}/{a.repeat} {side:7}: "
                            f"{m['chars_per_sec']:9,.0f} chars/s ({m['seconds']:.1f} s, "
                            f"RSS {m['rss_mib']:.0f} MiB{steal_note(m)})")
                med = {s: statistics.median(m["chars_per_sec"] for m in v) if v else None
                       for s, v in runs.items()}
                rss = {s: statistics.median(m["rss_mib"] for m in v) if v else None
                       for s, v in runs.items()}
                gflops = flops * med["charrnn"] / 1e9
                own = env.get("own_peak_gflops", {}).get(str(t))
                results.append({"isa": env["isa"], "config": name, "precision": prec,
                                "cell": cell, "hidden": H,
                                "layers": L, "batch": B, "seq": T, "threads": t, "steps": steps,
                                "warmup": a.warmup, "charrnn": med["charrnn"],
                                "torch": med["torch"],
                                "ratio": med["charrnn"] / med["torch"] if med["torch"] else None,
                                "gflops": gflops, "peak_gflops": peak[t], "own_peak_gflops": own,
                                "rss_charrnn": rss["charrnn"], "rss_torch": rss["torch"],
                                "runs": runs})

    print(report(results, envs, tv, a, threads))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": envs, "torch": tv, "command": sys.argv, "results": results},
                      f, indent=1)


def steal_note(m):
    return f", steal {m['steal_pct']:.0f}%" if m.get("steal_pct") is not None else ""


if __name__ == "__main__":
    main()
