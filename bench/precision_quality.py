"""What bf16 costs in quality: the same run, step for step, in fp32 and in bf16.

    PYTHONPATH=. python bench/precision_quality.py --steps 1500 --models B,default

Each model is trained for --steps steps on Tiny Shakespeare twice, with --precision fp32
and with --precision bf16 (charrnn.train, same seed, data, options and threads), each in
a fresh process, and the validation losses are compared:

    B        LSTM 2x256, embedding 256, batch 32 x 64, no dropout, Adam lr 2e-3 (the
             speed benchmark's config B, bench/train.py)
    default  `charrnn train`'s defaults (a GRU 2x256, sized by the corpus), with --steps
             steps instead of a time budget

Validation (held-out end of the text, the run's default split) every --eval-every steps
and at the end; bf16 runs validate in bf16, as their training steps run. It needs a CPU
where bf16 runs natively (charrnn info); elsewhere it exits with one line.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    "B": dict(cell="lstm", hidden=256, layers=2, embed=256, batch_size=32, seq_len=64,
              dropout=0.0, lr=2e-3),
    "default": {},
}


def child(model, precision, steps, eval_every, threads, out):
    """One run, in this process: its summary and validation curve as JSON on stdout."""
    import charrnn
    s = charrnn.train(os.path.join(REPO, "data", "tinyshakespeare.txt"), out=out,
                      precision=precision, max_steps=steps, max_minutes=0,
                      eval_every=eval_every, threads=threads, quiet=True, seed=1,
                      **MODELS[model])
    with open(os.path.join(out, "metrics.jsonl")) as f:
        curve = [(r["step"], r["val_loss"]) for r in map(json.loads, f) if "val_loss" in r]
    print(json.dumps({"summary": s, "curve": curve}))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--models", default="B,default")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        model, precision, out = a.child
        return child(model, precision, a.steps, a.eval_every, a.threads, out)
    from charrnn.nn import precision as prec
    if prec.path() != "native":
        sys.exit(f"bench/precision_quality.py: bf16 does not run natively here ({prec.why_not()})")
    results = []
    print("| Model | Steps | fp32 val loss | bf16 val loss | bf16 / fp32 | fp32 min | bf16 min |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for model in a.models.split(","):
        runs = {}
        for precision in ("fp32", "bf16"):
            with tempfile.TemporaryDirectory() as tmp:
                p = subprocess.run([sys.executable, __file__, "--steps", str(a.steps),
                                    "--eval-every", str(a.eval_every), "--threads",
                                    str(a.threads), "--child", model, precision,
                                    os.path.join(tmp, "run")],
                                   capture_output=True, text=True, check=True,
                                   env=dict(os.environ, PYTHONPATH=REPO))
            runs[precision] = json.loads(p.stdout.strip().splitlines()[-1])
        f, b = (runs[k]["summary"] for k in ("fp32", "bf16"))
        print(f"| {model} | {a.steps} | {f['val_loss']:.4f} | {b['val_loss']:.4f} "
              f"| {b['val_loss'] / f['val_loss']:.4f} | {f['minutes']:.2f} | {b['minutes']:.2f} |",
              flush=True)
        results.append({"model": model, "steps": a.steps, "runs": runs})
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"command": sys.argv, "threads": a.threads, "results": results}, fh,
                      indent=1)
    print(f"\nCommand: `python bench/precision_quality.py --steps {a.steps} --models {a.models}`")


if __name__ == "__main__":
    main()
