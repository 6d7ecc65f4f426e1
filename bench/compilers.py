"""Two builds of the same source against each other (a Clang build against a GCC build):
training speed per ISA tier, alternating fresh processes.

    git worktree add /tmp/clang-build HEAD && cd /tmp/clang-build \
        && CC=clang python setup.py build_ext --inplace && cd -
    python setup.py build_ext --inplace          # this checkout: the GCC build
    PYTHONPATH=. python bench/compilers.py --other /tmp/clang-build --isa scalar,avx2 \
        --configs A,B,D,E --threads 1 --repeat 5

Each measurement is bench/train.py's charrnn child (the same training step, warm-up
and timing; see its docstring) with PYTHONPATH pointing at one build's checkout and the
tier forced with CHARRNN_ISA (plus OPENBLAS_CORETYPE=Haswell on avx2, as train.py
does). The two builds alternate (this, other, this, other, ...) --repeat times per
tier, config and thread count; the table gives the medians and other / this.
"""
import argparse
import os
import statistics
import subprocess
import sys

from common import log
from train import CONFIGS, REPO, run_child, tier_env, val_frac_for


def build_info(tree):
    """(compiler that built the kernels, tiers this CPU runs) of the checkout `tree`."""
    code = ("from charrnn import _isa; from charrnn.nn import isa; import os; "
            "print(_isa.compiler()); print(','.join(isa.available())); "
            "print(os.path.dirname(_isa.__file__))")
    env = dict(os.environ, PYTHONPATH=tree)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd="/")
    if p.returncode != 0:
        sys.exit(f"bench/compilers.py: cannot import charrnn from {tree} (build it in place "
                 f"first: python setup.py build_ext --inplace):\n{p.stderr.strip()}")
    compiler, tiers, where = (line.strip() for line in p.stdout.split("\n")[:3])
    if os.path.realpath(where) != os.path.realpath(os.path.join(tree, "charrnn")):
        sys.exit(f"bench/compilers.py: PYTHONPATH={tree} imports charrnn from {where}, not "
                 f"from that checkout (an installed charrnn is in the way?)")
    return compiler, tiers.split(",")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other", required=True, help="checkout with the other build, in place")
    ap.add_argument("--configs", default="A,B,D,E", help="comma-separated (default: A,B,D,E)")
    ap.add_argument("--threads", default="1", help="thread counts (default: 1)")
    ap.add_argument("--repeat", type=int, default=5, help="measurements per build (default: 5)")
    ap.add_argument("--isa", help="comma-separated tiers (default: every tier this CPU runs)")
    ap.add_argument("--steps", type=int, help="timed steps (default: bench/train.py's per config)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--corpus", default=os.path.join(REPO, "data", "tinyshakespeare.txt"))
    a = ap.parse_args()

    trees = {"this": REPO, "other": os.path.abspath(a.other)}
    info = {k: build_info(t) for k, t in trees.items()}
    tiers = a.isa.split(",") if a.isa else [t for t in info["this"][1] if t in info["other"][1]]
    threads = [int(t) for t in a.threads.split(",")]
    with open(a.corpus, encoding="utf-8") as f:
        n_chars = len(f.read())
    rows = []
    for tier in tiers:
        for name in a.configs.upper().split(","):
            cell, H, L, B, T, default_steps = CONFIGS[name]
            for t in threads:
                speed = {"this": [], "other": []}
                for r in range(a.repeat):
                    for side, tree in trees.items():
                        env = dict(tier_env("charrnn", tier), PYTHONPATH=tree)
                        m = run_child("charrnn", t, env, threads=t, config=name,
                                      steps=a.steps or default_steps, warmup=a.warmup,
                                      corpus=a.corpus, val_frac=val_frac_for(B, T, n_chars))
                        speed[side].append(m["chars_per_sec"])
                        log(f"{tier} {name} threads={t} run {r + 1}/{a.repeat} {side:5} "
                            f"({info[side][0]}): {m['chars_per_sec']:9,.0f} chars/s")
                med = {s: statistics.median(v) for s, v in speed.items()}
                rows.append((tier, name, cell, H, L, t, med["this"], med["other"]))

    this_c, other_c = info["this"][0], info["other"][0]
    print(f"Training speed, chars/s (median of {a.repeat} alternating runs per build):\n")
    print(f"| Tier | Config | Model | Threads | {this_c} | {other_c} | {other_c} / {this_c} |")
    print("|---|---|---|--:|--:|--:|--:|")
    for tier, name, cell, H, L, t, x, y in rows:
        print(f"| {tier} | {name} | {cell.upper()} {L}×{H} | {t} | {x:,.0f} | {y:,.0f} "
              f"| {y / x:.3f} |")
    print(f"\nCommand: `python bench/compilers.py {' '.join(sys.argv[1:])}`")


if __name__ == "__main__":
    main()
