"""Fixed defaults vs adaptive defaults: best validation loss on corpora of 10 kB to 24 MB.

    python bench/defaults.py [--minutes 5] [--corpora DIR] [--only 10k,100k,1m,24mb]

For each corpus (made by bench/corpora.py: slices of Tiny Shakespeare, the bundled
corpus, the running Python's stdlib sources) two runs start AT THE SAME TIME, each with
--threads 1 (one per core), so both see the same contention on a shared machine:

    fixed     the former fixed defaults, passed explicitly: 2x256 GRU, embedding 64,
              dropout 0.1, 32 streams of 64, lr decay 0.85/epoch, evaluations every 500
              steps, no early stopping
    adaptive  no model, batch or schedule options: charrnn.defaults picks them

Both have the same budget (--max-minutes) and seed. Prints a Markdown table: best
validation loss (nats/char; the held-out last 10%, its first 262,144 characters on the
big corpus), steps, epochs, median chars/s, what stopped the run, and the longest piece
of the last preview sample found in the training text.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import log  # noqa: E402

FIXED = ["--hidden", "256", "--layers", "2", "--embed", "64", "--dropout", "0.1",
         "--batch-size", "32", "--seq-len", "64", "--lr-decay", "0.85", "--eval-every", "500",
         "--patience", "0", "--max-epochs", "0"]
CORPORA = {"10k": "shakespeare-10k.txt", "100k": "shakespeare-100k.txt",
           "1m": "shakespeare-1m.txt", "24mb": "stdlib-24mb.txt"}


def start(corpus, out, minutes, extra):
    args = [sys.executable, "-c", "import sys; from charrnn.cli import main; sys.exit(main())",
            "train", str(corpus), "--out", str(out), "--threads", "1",
            "--max-minutes", str(minutes), *extra]
    logf = open(str(out) + ".log", "w")
    return subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, cwd=out.parent), logf


def summary(run):
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    rates = [r["chars_per_sec"] for r in rows if "chars_per_sec" in r]
    copied = [r["copied"] for r in rows if "copied" in r]
    st = json.loads(subprocess.run(
        [sys.executable, "-c", "import json,sys; from charrnn.io import checkpoint as c; "
         "m=c.load_state(sys.argv[1]).meta; print(json.dumps({'cfg': m['train_config'], "
         "'auto': m.get('auto', [])}))", str(run / "state.safetensors")],
        capture_output=True, text=True, check=True).stdout)
    cfg = st["cfg"]
    log_text = Path(str(run) + ".log").read_text(errors="replace")
    stop = "patience" if "stopped early" in log_text else "budget"
    return {"best": min(vals) if vals else None, "steps": rows[-1]["step"],
            "epochs": rows[-1]["epoch"], "rate": statistics.median(rates) if rates else 0,
            "copied": copied[-1] if copied else None, "stop": stop,
            "model": f"{cfg['layers']}x{cfg['hidden']} d{cfg['dropout']:g} "
                     f"b{cfg['batch_size']} e{cfg['eval_every']}"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--corpora", type=Path, default=Path(tempfile.gettempdir()) / "charrnn-bench-corpora")
    ap.add_argument("--runs", type=Path, default=None)
    ap.add_argument("--only", default=",".join(CORPORA))
    a = ap.parse_args()
    if not all((a.corpora / f).exists() for f in CORPORA.values()):
        subprocess.run([sys.executable, str(HERE / "corpora.py"), str(a.corpora)], check=True)
    runs = a.runs or Path(tempfile.mkdtemp(prefix="charrnn-bench-defaults-"))
    runs.mkdir(parents=True, exist_ok=True)
    results = []
    for key in a.only.split(","):
        corpus = a.corpora / CORPORA[key]
        log(f"{time.strftime('%H:%M:%S')} {corpus.name}: fixed and adaptive, {a.minutes:g} min each, together")
        procs = [start(corpus, runs / f"{key}-{kind}", a.minutes, extra)
                 for kind, extra in (("fixed", FIXED), ("adaptive", []))]
        for p, f in procs:
            p.wait()
            f.close()
            if p.returncode:
                sys.exit(f"a run failed; see {f.name}")
        fixed, adaptive = summary(runs / f"{key}-fixed"), summary(runs / f"{key}-adaptive")
        results.append((corpus, fixed, adaptive))
        log(f"  fixed {fixed}\n  adaptive {adaptive}")
    print(f"\n{a.minutes:g} minutes per run; each pair ran at the same time, --threads 1 each\n")
    print("| corpus | characters | fixed: best val | adaptive: model | adaptive: best val | "
          "difference | fixed steps / epochs / chars/s | adaptive steps / epochs / chars/s "
          "| adaptive stopped by | longest copy fixed / adaptive |")
    print("|---|--:|--:|---|--:|--:|--:|--:|---|--:|")
    for corpus, f, ad in results:
        n = len(corpus.read_text(encoding="utf-8"))
        fmt = lambda r: f"{r['steps']:,} / {r['epochs']:.2f} / {r['rate']:,.0f}"
        print(f"| {corpus.name} | {n:,} | {f['best']:.4f} | {ad['model']} | {ad['best']:.4f} | "
              f"{ad['best'] - f['best']:+.4f} | {fmt(f)} | {fmt(ad)} | {ad['stop']} | "
              f"{f['copied']} / {ad['copied']} |")


if __name__ == "__main__":
    main()
