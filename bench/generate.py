"""Beam search speed and loop control, measured (issue 31).

    python bench/generate.py speed [--repeat 3] [--length 2000]
    python bench/generate.py loops RUN_DIR [--samples 20] [--length 2000]
    python bench/generate.py both RUN_DIR --out bench/results/generation/DATE-MACHINE.json

speed: characters per second of the best beam, beam search with K = 1, 4, 16 beams
against greedy sampling, on a random-weight model of the default size (GRU 2x256, embed
64, 65 characters; the speed does not depend on the weights), one BLAS thread, medians
of --repeat runs (the Sampler is built once, outside the timing).

loops: --samples samples of --length characters at temperature 0.5 (seeds 1..S) from a
trained run's best weights, with and without no_repeat=20: how many contain a repeated
substring of >= 40 characters, the mean longest repeat, and the mean loss of the samples
under the model (nats/char at temperature 1, the probe's loss: what the control costs
in likelihood); temperature 0.2, greedy and beam search (K = 4) likewise (one sample
each for the deterministic two). The run's validation loss is given for scale.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import charrnn  # noqa: E402
from charrnn.generate.beam import beam_search  # noqa: E402
from charrnn.generate.loops import longest_repeat  # noqa: E402
from charrnn.generate.sampler import Sampler  # noqa: E402
from charrnn.io import checkpoint, rundir  # noqa: E402
from charrnn.nn import shapes  # noqa: E402


def speed(repeat, length):
    vocab = list("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    cfg = dict(cell="gru", hidden=256, layers=2, embed=64, vocab_size=65, encoding="utf-8")
    rng = np.random.default_rng(0)
    params = {n: (0.1 * rng.standard_normal(s)).astype(np.float32)
              for n, s in shapes.expected_shapes(cfg).items()}
    s = Sampler(params, cfg, vocab)
    cases = [("greedy (temperature 0)", lambda: s.generate("The ", length, temperature=0)),
             ("sampling (temperature 1)", lambda: s.generate("The ", length, seed=1))]
    for K in (1, 4, 16):
        cases.append((f"beam K = {K}", lambda K=K: beam_search(s, "The ", length, beam=K)))
    cases.append(("beam K = 4, no_repeat 20",
                  lambda: beam_search(s, "The ", length, beam=4, no_repeat=20)))
    times = {name: [] for name, _ in cases}
    for _ in range(repeat):          # alternate the cases, so drift hits them alike
        for name, fn in cases:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    greedy = statistics.median(times[cases[0][0]])
    rows = []
    for name, _ in cases:
        med = statistics.median(times[name])
        rows.append([name, round(length / med), round(med / greedy, 2)])
    return dict(title=f"Beam search speed, GRU 2×256 (random weights), {length} characters, "
                      "1 thread",
                command=f"python bench/generate.py speed --repeat {repeat} --length {length}",
                columns=["Decoding", "chars/s (best beam)", "time / greedy"], rows=rows,
                formats={"chars/s (best beam)": "{:,}", "time / greedy": "{:.2f}×"})


def loops(run, samples, length):
    model = charrnn.load(run, best=True)
    info = checkpoint.load_model(rundir.find_checkpoint(run, best=True)).info
    val = info.get("best_val_loss", info.get("val_loss"))
    rows = []
    for control in (None, 20):
        kw = {} if control is None else dict(no_repeat=control)
        tail = "" if control is None else f", no_repeat {control}"
        for t in (0.5, 0.2):
            texts = model.generate("\n", length, temperature=t, seed=1, num_samples=samples,
                                   **kw)
            rows.append(_row(model, f"temperature {t}{tail}", [x[1:] for x in texts]))
        rows.append(_row(model, f"greedy{tail}",
                         [model.generate("\n", length, temperature=0, **kw)[1:]]))
        rows.append(_row(model, f"beam K = 4{tail}",
                         [model.generate("\n", length, beam=4, **kw)[1:]]))
    return dict(title=f"Loops in {length}-character samples of a briefly trained GRU 2×256 "
                      f"(Tiny Shakespeare, 2.5 min, validation loss {val:.3f} nats/char)",
                command=f"python bench/generate.py loops RUN --samples {samples} "
                        f"--length {length}",
                columns=["Decoding", "samples", "with a repeat >= 40 chars",
                         "mean longest repeat", "longest", "loss under the model (nats/char)"],
                rows=rows, formats={"mean longest repeat": "{:.1f}",
                                    "loss under the model (nats/char)": "{:.3f}"})


def _row(model, label, texts):
    reps = [longest_repeat(t).length for t in texts]
    loss = float(np.mean([model.probe(t).loss for t in texts]))
    return [label, len(texts), sum(r >= 40 for r in reps), float(np.mean(reps)), max(reps),
            loss]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["speed", "loops", "both"])
    ap.add_argument("run", nargs="?")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--length", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--machine", default="2-core AMD EPYC Zen 3, AVX2 (no AVX-512)")
    ap.add_argument("--out")
    a = ap.parse_args()
    tables = []
    if a.what in ("speed", "both"):
        tables.append(speed(a.repeat, a.length))
    if a.what in ("loops", "both"):
        tables.append(loops(a.run, a.samples, a.length))
    result = dict(machine=a.machine, date=time.strftime("%Y-%m-%d"),
                  method="One BLAS thread, a shared and noisy host (±10% between runs); "
                         f"Python {platform.python_version()}, ISA tier "
                         f"{charrnn.info()['isa']}, CPU {charrnn.info()['cpu']}.",
                  tables=tables)
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
