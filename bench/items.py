"""Items from a list: a names list trained with --docs lines against the same list as one
stream (issue 30).

    python bench/items.py [--names FILE] [--minutes 3] [--items 200] [--temperature 0.8]
                          [--runs DIR] [--out bench/results/items]

The list: the Python standard library's function and method names, one per line
(written by this script from /usr/lib/python3.*'s sources unless --names is given).
Two runs train on it with the same budget, together, one thread each: `--docs lines`
(every name a document) and the plain stream. Then --items names come from each:

- documents: `CharRNN.items(n)`: from a zero state fed the end marker, until the model
  emits the end marker again;
- stream: n samples primed with a newline, each stopped at the next newline (what a
  user of a stream model does to get one line).

For each: well-formed (ended at its marker or newline within --length characters and
non-empty), a valid Python identifier (what a function name must be), novel (not in the
names list at all: neither trained on nor held out), and all three at once.
"""
import argparse
import ast
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import charrnn  # noqa: E402


def write_names(path):
    """Every function name defined in the standard library's sources (tests left out)."""
    root = Path(os.__file__).parent
    names = set()
    for p in sorted(root.rglob("*.py")):
        if {"test", "tests", "site-packages", "dist-packages"} & set(p.parts):
            continue
        try:
            tree = ast.parse(p.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        names.update(n.name for n in ast.walk(tree)
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    path.write_text("\n".join(sorted(names)) + "\n", encoding="utf-8")
    return len(names)


def train_both(names, runs, minutes):
    """The two runs at once (the same share of a loaded host), one thread each."""
    procs = {}
    for kind, extra in (("docs", ["--docs", "lines"]), ("stream", [])):
        out = runs / kind
        cmd = [sys.executable, "-m", "charrnn.cli", "train", str(names), "--out", str(out),
               "--max-minutes", str(minutes), "--threads", "1", "-q", *extra]
        procs[kind] = (out, subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}))
    for kind, (out, p) in procs.items():
        if p.wait() != 0:
            sys.exit(f"bench/items.py: training the {kind} run failed")
    return {kind: out for kind, (out, _) in procs.items()}


def judge(texts, complete, listed):
    rows = [(c and bool(t), t.isidentifier(), t not in listed) for t, c in zip(texts, complete)]
    n = len(rows)
    share = lambda k: sum(r[k] for r in rows) / n  # noqa: E731
    return {"items": n, "well_formed": share(0), "identifier": share(1), "novel": share(2),
            "all_three": sum(all(r) for r in rows) / n, "examples": texts[:12]}


def sample(run, kind, n, length, temperature, seed):
    model = charrnn.load(run, best=True)
    if kind == "docs":
        items = model.items(n, length=length, temperature=temperature, seed=seed)
        return list(items), list(items.complete)
    outs = model.generate("\n", length=length, temperature=temperature, seed=seed,
                          num_samples=n, stop="\n")
    outs = [outs] if isinstance(outs, str) else outs
    texts = [o[1:] for o in outs]                                 # without the prime
    return [t.rstrip("\n") for t in texts], [t.endswith("\n") for t in texts]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", type=Path)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--length", type=int, default=100)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shuffle", action="store_true",
                    help="train both on a shuffled copy of the list (seeded): the stream's "
                         "held-out part is then not the alphabet's end")
    ap.add_argument("--runs", type=Path, default=Path("bench-runs/items"))
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "items")
    a = ap.parse_args()
    a.runs.mkdir(parents=True, exist_ok=True)
    names = a.names
    if names is None:
        names = a.runs / "names.txt"
        print(f"{write_names(names):,} names in {names}")
    listed = set(names.read_text(encoding="utf-8").split("\n")) - {""}
    if a.shuffle:
        rng = random.Random(a.seed)
        order = sorted(listed)
        rng.shuffle(order)
        names = a.runs / "names-shuffled.txt"
        names.write_text("\n".join(order) + "\n", encoding="utf-8")
    runs = train_both(names, a.runs, a.minutes)
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d %H:%M"), "names": len(listed),
              "minutes": a.minutes, "temperature": a.temperature, "length": a.length,
              "shuffled": a.shuffle}
    for kind, run in runs.items():
        texts, complete = sample(run, kind, a.items, a.length, a.temperature, a.seed)
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").open()]
        final = [m for m in metrics if m.get("final")][-1]
        vals = [m["val_loss"] for m in metrics if "val_loss" in m]
        result[kind] = {**judge(texts, complete, listed), "steps": final["step"],
                        "minutes": round(final["wall_time"] / 60, 2),
                        "stopped_by": final.get("stopped_by"),
                        "best_val_loss": min(vals) if vals else None}
    print(f"\n| {a.items} items, temperature {a.temperature} | well-formed | identifier "
          "| novel | all three | steps | stopped by |\n|---|--:|--:|--:|--:|--:|--:|")
    for kind, label in (("docs", "`--docs lines`"), ("stream", "one stream")):
        r = result[kind]
        print(f"| {label} | {r['well_formed']:.1%} | {r['identifier']:.1%} | {r['novel']:.1%} "
              f"| {r['all_three']:.1%} | {r['steps']:,} | {r['stopped_by']} |")
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"{time.strftime('%Y-%m-%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
