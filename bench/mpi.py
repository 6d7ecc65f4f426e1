"""Data-parallel training on one machine: `mpiexec -n R` ranks of T threads against one
process with R*T threads, same model, data and optimizer (bench/train.py's configs).

    python bench/mpi.py                              # config B, 2 ranks x 1 vs 1 x 2
    python bench/mpi.py --configs A,B --ranks 2 --repeat 5

Each measurement is a fresh `charrnn train` (under the mpiexec next to this Python, the
mpich wheel's, for the ranks), warm-up steps then timed steps; chars/s is timed steps *
batch * seq over the wall time between them (metrics.jsonl, rank 0's clock). Step time
is split into the Allreduce (its time on rank 0, metrics' allreduce_ms, which includes
waiting for the slower rank) and the rest ("compute": forward, backward, clipping,
optimizer). The two setups alternate --repeat times; the table gives medians.

`--paper` prints instead, on paper, the Allreduce volume per step of configs A-C (P
float32 gradients + 5 flag slots) and the rank count R at which a bandwidth-optimal
(ring) Allreduce, 2 (R-1)/R * bytes through each rank's link, takes as long as a rank's
share of the compute, C1 / R (C1: one thread's step on the whole batch, README's 1-thread
figures): R = 1 + C1 * bandwidth / (2 * bytes). Latency terms are left out.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from common import log
from train import CONFIGS, GATES, val_frac_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LR, CLIP = 2e-3, 5.0


def params(cell, H, L, V):
    """P of a model with embed = H (charrnn's flat buffer)."""
    G = GATES[cell]
    return V * H + L * (G * H * (H + H) + 2 * G * H) + V * H + V


# 1-thread chars/s of configs A-C (README, Benchmarks)
ONE_THREAD = {"A": 104_515, "B": 26_563, "C": 5_198}


def paper(vocab):
    print("| Config | parameters P | Allreduce bytes/step | 1-thread step C1 | "
          "Allreduce = compute at, 10 Gbit/s | at 100 Gbit/s |")
    print("|---|--:|--:|--:|--:|--:|")
    for cfg in ("A", "B", "C"):
        cell, H, L, B, T, _ = CONFIGS[cfg]
        P = params(cell, H, L, vocab)
        nbytes = 4 * (P + 5)
        c1 = B * T / ONE_THREAD[cfg]
        at = [1 + c1 * gbit * 1e9 / 8 / (2 * nbytes) for gbit in (10, 100)]
        print(f"| {cfg} | {P:,} | {nbytes / 1e6:.2f} MB | {c1 * 1e3:.1f} ms | "
              f"{at[0]:.0f} ranks | {at[1]:.0f} ranks |")


def run_once(a, cfg, ranks, threads, corpus, vocab):
    cell, H, L, B, T, _ = CONFIGS[cfg]
    total = a.warmup + a.steps
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-mpi-") as tmp:
        out = os.path.join(tmp, "run")
        cmd = [sys.executable, "-m", "charrnn.cli", "train", corpus, "--out", out, "--quiet",
               "--cell", cell, "--hidden", str(H), "--layers", str(L), "--embed", str(H),
               "--batch-size", str(B), "--seq-len", str(T), "--lr", str(LR),
               "--grad-clip", str(CLIP), "--dropout", "0", "--val-frac",
               str(val_frac_for(B, T, a.n_chars)), "--max-steps", str(total),
               "--eval-every", str(10**9), "--max-minutes", "0", "--threads", str(threads)]
        if ranks > 1:
            cmd = [a.mpiexec, "-n", str(ranks)] + cmd
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        subprocess.run(cmd, check=True, cwd=tmp, env=env, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
    timed = [r for r in records if not r.get("final") and a.warmup < r["step"] <= total]
    wall = {r["step"]: r["wall_time"] for r in records if not r.get("final")}
    seconds = wall[total] - wall[a.warmup]
    step_ms = 1e3 * seconds / a.steps
    allreduce_ms = statistics.median(r.get("allreduce_ms", 0.0) for r in timed)
    return {"chars_per_sec": a.steps * B * T / seconds, "step_ms": step_ms,
            "allreduce_ms": allreduce_ms, "compute_ms": step_ms - allreduce_ms}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="B")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="threads per rank")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=0, help="timed steps (default: per config)")
    p.add_argument("--corpus", default=os.path.join(REPO, "data", "tinyshakespeare.txt"))
    p.add_argument("--paper", action="store_true", help="the on-paper Allreduce table only")
    a = p.parse_args()
    if a.paper:
        with open(a.corpus, encoding="utf-8") as f:
            return paper(len(set(f.read())))
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    a.mpiexec = here if os.path.exists(here) else shutil.which("mpiexec")
    if not a.mpiexec:
        sys.exit('bench/mpi.py: no mpiexec: pip install "charrnn-fast[mpi]"')
    with open(a.corpus, encoding="utf-8") as f:
        text = f.read()
    a.n_chars, vocab = len(text), len(set(text))
    R, t = a.ranks, a.threads
    rows = []
    for cfg in a.configs.split(","):
        cell, H, L, B, T, default_steps = CONFIGS[cfg]
        steps = a.steps or default_steps
        a_cfg = argparse.Namespace(**{**vars(a), "steps": steps})
        res = {"mpi": [], "one": []}
        for i in range(a.repeat):
            for kind in ("mpi", "one"):
                ranks, threads = (R, t) if kind == "mpi" else (1, R * t)
                r = run_once(a_cfg, cfg, ranks, threads, a.corpus, vocab)
                log(f"{cfg} {kind} #{i + 1}: {r['chars_per_sec']:,.0f} chars/s, step "
                    f"{r['step_ms']:.1f} ms (allreduce {r['allreduce_ms']:.2f} ms)")
                res[kind].append(r)
        for kind, label in (("mpi", f"mpiexec -n {R}, {t} thread{'s' * (t > 1)} each"),
                            ("one", f"1 process, {R * t} threads")):
            med = {k: statistics.median(r[k] for r in res[kind]) for k in res[kind][0]}
            rows.append((cfg, label, med))
    print("| Config | Setup | chars/s | step ms | compute ms | Allreduce ms |")
    print("|---|---|--:|--:|--:|--:|")
    for cfg, label, m in rows:
        print(f"| {cfg} | {label} | {m['chars_per_sec']:,.0f} | {m['step_ms']:.1f} | "
              f"{m['compute_ms']:.1f} | {m['allreduce_ms']:.2f} |")
    print()
    print(f"medians of {a.repeat}, alternating; command: python bench/mpi.py "
          + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
