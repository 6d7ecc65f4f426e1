"""Fine-tuning (`charrnn train --init`) against training from scratch on a small text.

    PYTHONPATH=. python bench/finetune.py                       # base 20 min, then 5 min each
    PYTHONPATH=. python bench/finetune.py --base-run runs/stdlib --minutes 5 --sizes 10k,100k

Data, made deterministically into --data (the same Python and package versions give
the same bytes; their sha256 are in the result):

    base.txt        the .py files matching --base-glob (default: the top level of the
                    running Python's standard library), sorted by path, UTF-8 ones only,
                    each followed by a blank line, cut at the last whole file before
                    --base-mb MB
    target.txt      the same of --target-glob (default: the sources of the installed
                    click package, a related text the base never saw)
    heldout.txt     the last --heldout characters of target.txt, held out FIRST: no
                    training slice overlaps it
    train-<N>.txt   the first N characters (each of --sizes) of the rest of target.txt

The base run is --base-run if given, else `charrnn train base.txt` with the automatic
defaults for --base-minutes. Then for each size two runs of --minutes each start at the
same time, each with --threads 1 (one per core, so both see the same contention):

    finetune    charrnn train train-<N>.txt --init BASE       (its automatic defaults)
    scratch     charrnn train train-<N>.txt                   (the automatic defaults)

Each run's best.safetensors is scored with charrnn.evaluate on heldout.txt after
dropping the characters either model lacks (a model trained on 10 kB may never have
seen some of them), so both are scored on the same characters; the number dropped is
reported. Prints a Markdown table and writes the session as JSON to --out (default
bench/results/finetune/).
"""
import argparse
import glob
import hashlib
import json
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from common import log, thread_env  # noqa: E402

STDLIB = sysconfig.get_paths()["stdlib"]
SITE = sysconfig.get_paths()["purelib"]


def concat(pattern, limit=None):
    """The UTF-8 .py files matching `pattern`, sorted, each followed by a blank line,
    up to the last whole file within `limit` bytes (None: all)."""
    parts, n = [], 0
    for f in sorted(glob.glob(pattern)):
        try:
            text = Path(f).read_bytes().decode("utf-8") + "\n\n"
        except (OSError, UnicodeDecodeError):
            continue
        size = len(text.encode("utf-8"))
        if limit is not None and n + size > limit:
            break
        parts.append(text)
        n += size
    if not parts:
        sys.exit(f"bench/finetune.py: no UTF-8 files match {pattern}")
    return "".join(parts)


def size(s):
    s = s.strip().lower()
    return int(float(s[:-1]) * 1000) if s.endswith("k") else int(s)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_data(a):
    a.data.mkdir(parents=True, exist_ok=True)
    base = a.data / "base.txt"
    base.write_text(concat(a.base_glob, int(a.base_mb * 2**20)), encoding="utf-8")
    target = concat(a.target_glob)
    (a.data / "target.txt").write_text(target, encoding="utf-8")
    sizes = sorted(a.sizes)
    if a.heldout + sizes[-1] > len(target):
        sys.exit(f"bench/finetune.py: the target text has {len(target):,} characters, fewer "
                 f"than --heldout {a.heldout:,} + the largest size {sizes[-1]:,}")
    held = a.data / "heldout.txt"
    held.write_text(target[len(target) - a.heldout:], encoding="utf-8")
    rest = target[:len(target) - a.heldout]
    slices = {}
    for n in sizes:
        slices[n] = a.data / f"train-{n}.txt"
        slices[n].write_text(rest[:n], encoding="utf-8")
    files = [base, a.data / "target.txt", held, *slices.values()]
    return base, held, slices, {p.name: sha256(p) for p in files}


def start(corpus, out, minutes, extra, threads):
    cmd = [sys.executable, "-m", "charrnn.cli", "train", str(corpus), "--out", str(out),
           "--threads", str(threads), "--max-minutes", str(minutes), *extra]
    logf = open(str(out) + ".log", "w")
    env = thread_env(threads, {"PYTHONPATH": str(ROOT)})
    return subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env), logf


def wait(procs):
    for p, f in procs:
        p.wait()
        f.close()
        if p.returncode:
            sys.exit(f"bench/finetune.py: a run failed; see {f.name}")


def summary(run):
    from charrnn.inspect.runs import read_run
    r = read_run(run)
    c = r.config
    return {"run": str(run), "best_val": r.best_val_loss, "steps": r.steps,
            "epochs": round(r.epochs, 2), "minutes": round(r.wall_minutes, 2),
            "stopped_by": r.stopped_by, "lr": c.get("lr"), "dropout": c.get("dropout"),
            "model": f"{r.cell} {r.layers}x{r.hidden} e{r.embed}", "vocab": r.vocab_size}


def score(runs, held, work, n):
    """Held-out loss of each run's best model, on the characters every model knows."""
    import charrnn
    models = {k: charrnn.load(run, best=True) for k, run in runs.items()}
    known = set.intersection(*(set(m.vocab) for m in models.values()))
    text = held.read_text(encoding="utf-8")
    common = "".join(ch for ch in text if ch in known)
    path = work / f"{held.stem}-common-{n}.txt"
    path.write_text(common, encoding="utf-8")
    out = {k: charrnn.evaluate(m, path)["loss"] for k, m in models.items()}
    return out, len(text) - len(common)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-run", type=Path, help="an existing base run (else one is trained)")
    ap.add_argument("--base-minutes", type=float, default=20)
    ap.add_argument("--base-glob", default=os.path.join(STDLIB, "*.py"))
    ap.add_argument("--base-mb", type=float, default=4)
    ap.add_argument("--target-glob", default=os.path.join(SITE, "click", "*.py"))
    ap.add_argument("--sizes", default="10k,100k", help="training slices, characters")
    ap.add_argument("--heldout", type=size, default=20_000, help="characters held out")
    ap.add_argument("--minutes", type=float, default=5, help="budget of each run")
    ap.add_argument("--threads", type=int, default=1, help="per run")
    ap.add_argument("--sequential", action="store_true",
                    help="one run at a time (default: the two runs of a size together)")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--runs", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "finetune")
    a = ap.parse_args()
    a.sizes = [size(s) for s in a.sizes.split(",")]
    work = a.runs or Path(tempfile.mkdtemp(prefix="charrnn-bench-finetune-"))
    work.mkdir(parents=True, exist_ok=True)
    a.data = a.data or work / "data"
    base_txt, held, slices, digests = make_data(a)
    log(f"data in {a.data}: base {base_txt.stat().st_size:,} bytes, held out "
        f"{a.heldout:,} characters of the target")

    base = a.base_run
    if base is None:
        base = work / "base"
        log(f"{time.strftime('%H:%M:%S')} training the base for {a.base_minutes:g} min")
        wait([start(base_txt, base, a.base_minutes, ["--quiet"], a.threads)])
    rows = []
    for n, corpus in slices.items():
        runs = {"finetune": work / f"{n}-finetune", "scratch": work / f"{n}-scratch"}
        extra = {"finetune": ["--init", str(base), "--quiet"], "scratch": ["--quiet"]}
        log(f"{time.strftime('%H:%M:%S')} {corpus.name}: fine-tuned and from scratch, "
            f"{a.minutes:g} min each")
        procs = []
        for k in runs:
            procs.append(start(corpus, runs[k], a.minutes, extra[k], a.threads))
            if a.sequential:
                wait(procs[-1:])
        wait([] if a.sequential else procs)
        loss, dropped = score(runs, held, work, n)
        row = {"size": n, "heldout_chars_dropped": dropped}
        for k, run in runs.items():
            row[k] = dict(summary(run), heldout_loss=loss[k])
        rows.append(row)
        log(f"  {json.dumps(row)}")

    from charrnn.inspect.runs import read_run
    b = read_run(base)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    session = {"machine": f"{cpu}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d %H:%M"),
               "python": platform.python_version(), "minutes": a.minutes,
               "threads": a.threads, "together": not a.sequential,
               "data": {"base_glob": a.base_glob, "base_mb": a.base_mb,
                        "target_glob": a.target_glob, "heldout": a.heldout, "sha256": digests},
               "base": {"run": str(base), "model": b.model, "best_val": b.best_val_loss,
                        "steps": b.steps, "minutes": round(b.wall_minutes, 2)},
               "rows": rows}
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"{time.strftime('%Y-%m-%d-%H%M%S')}.json"
    path.write_text(json.dumps(session, indent=1) + "\n", encoding="utf-8")

    print(f"\nbase: {b.model}, best val {b.best_val_loss} after {b.wall_minutes:.1f} min; "
          f"{a.minutes:g} minutes per run, --threads {a.threads}"
          f"{', each pair together' if not a.sequential else ''}\n")
    print("| training text | fine-tuned: held-out loss | from scratch: held-out loss | "
          "difference | fine-tuned steps / epochs / lr | scratch model / steps / epochs / lr "
          "| held-out characters dropped |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        f, s = r["finetune"], r["scratch"]
        print(f"| {r['size']:,} | {f['heldout_loss']:.4f} | {s['heldout_loss']:.4f} | "
              f"{f['heldout_loss'] - s['heldout_loss']:+.4f} | {f['steps']:,} / {f['epochs']} / "
              f"{f['lr']:g} | {s['model']} / {s['steps']:,} / {s['epochs']} / {s['lr']:g} | "
              f"{r['heldout_chars_dropped']} |")
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
