"""Classifier benchmark: words by language from Debian's word lists.

    apt-get install wamerican wngerman wfrench witalian wspanish
    python bench/classify.py [--minutes 3] [--cap 6000] [--threads 1]

Data: /usr/share/dict/{american-english,ngerman,french,italian,spanish}; label =
language, text = the word, lower-cased; only words of letters (no apostrophes: the
English list's "'s" forms would give English away); words found in two or more lists
are dropped altogether; then at most --cap words per language (a seeded sample, for
balance), split 80/20 train/test by a seeded shuffle (seed 0). Reported on the test part:

  (a) charrnn train --task classify with its automatic options and a --minutes budget
  (b) a multinomial naive Bayes on character 1-4-grams (with ^ and $ word boundaries),
      add-one smoothing, in NumPy (no budget: it counts once)
  (c) the same model in PyTorch (Embedding -> bidirectional GRU/LSTM over
      pack_padded_sequence -> [h_fwd; h_rev] -> Linear), started from charrnn's initial
      weights, fed charrnn's batches (the same split, order and buckets), Adam with the
      same lr, clipping and schedule (charrnn.training.schedule: the anneal over the
      last 20% of the budget, or from a plateau of the validation loss), evaluation
      once per epoch, best validation loss kept, patience: the same budget.

Both RNNs use --threads threads (BLAS/ATen). Results: bench/results/classify/<date>.json
and a table on stdout. Speeds depend on the machine and its load (noted in the JSON).
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LISTS = {"en": "american-english", "de": "ngerman", "fr": "french", "it": "italian",
         "es": "spanish"}
DICT = Path("/usr/share/dict")


def load_words(cap, seed=0):
    seen, per = {}, {}
    for lang, name in LISTS.items():
        words = set()
        for w in (DICT / name).read_text(encoding="utf-8").split("\n"):
            w = w.strip().lower()
            if w and w.isalpha():
                words.add(w)
        per[lang] = words
        for w in words:
            seen[w] = seen.get(w, 0) + 1
    rng = np.random.default_rng(seed)
    pairs = []
    for lang in LISTS:
        only = sorted(w for w in per[lang] if seen[w] == 1)
        pick = rng.permutation(len(only))[:cap]
        pairs += [(lang, only[i]) for i in sorted(pick)]
    order = rng.permutation(len(pairs))
    n_test = len(pairs) // 5
    test = [pairs[i] for i in order[:n_test]]
    train = [pairs[i] for i in order[n_test:]]
    dropped = sum(1 for c in seen.values() if c > 1)
    return train, test, dropped


# ---- (b) naive Bayes on character n-grams ------------------------------------------------

def ngrams(word, n_max=4):
    w = f"^{word}$"
    return [w[i:i + n] for n in range(1, n_max + 1) for i in range(len(w) - n + 1)]


def naive_bayes(train, test):
    t0 = time.perf_counter()
    labels = sorted({l for l, _ in train})
    li = {l: i for i, l in enumerate(labels)}
    feats = {}
    rows, cols = [], []
    for l, w in train:
        for g in ngrams(w):
            rows.append(li[l])
            cols.append(feats.setdefault(g, len(feats)))
    counts = np.zeros((len(labels), len(feats)))
    np.add.at(counts, (np.array(rows), np.array(cols)), 1)
    logp = np.log(counts + 1) - np.log(counts.sum(1, keepdims=True) + len(feats))   # add-one
    prior = np.log(np.bincount([li[l] for l, _ in train], minlength=len(labels)) / len(train))
    fit = time.perf_counter() - t0
    hits = 0
    for l, w in test:
        idx = [feats[g] for g in ngrams(w) if g in feats]   # unseen n-grams: no evidence
        hits += int(np.argmax(prior + logp[:, idx].sum(1)) == li[l])
    return {"accuracy": hits / len(test), "fit_seconds": round(fit, 2),
            "features": len(feats)}


# ---- (a) charrnn -------------------------------------------------------------------------

def run_charrnn(tsv, test, minutes, threads, out):
    import charrnn
    from charrnn.training.loop import train
    t0 = time.perf_counter()
    s = train(str(tsv), out=str(out), task="classify", max_minutes=minutes,
              threads=threads, quiet=True)
    wall = time.perf_counter() - t0
    clf = charrnn.load_classifier(out)
    r = clf.score([l for l, _ in test], [w for _, w in test])
    from charrnn.inspect.runs import read_run
    run = read_run(out)
    seen = s["steps"] * run.config["batch_size"]
    return {"accuracy": r["accuracy"], "test_loss": r["loss"], "steps": s["steps"],
            "epochs": s["epochs"], "stopped_by": s["stopped_by"],
            "pairs_per_sec": round(seen / wall, 1), "wall_seconds": round(wall, 1),
            "best_val_loss": s["best_val_loss"],
            "model": {k: run.config[k] for k in ("cell", "layers", "hidden", "embed",
                                                 "batch_size", "lr", "eval_every", "patience")}}


# ---- (c) the same model in PyTorch --------------------------------------------------------

def run_torch(tsv, test, minutes, threads, run_cfg, tmp):
    import torch
    from torch import nn
    from charrnn.nn.classifier import Classifier
    from charrnn.training.classify_run import ClassifierTrainer
    from charrnn.training import schedule
    from charrnn.training.options import TrainConfig

    torch.set_num_threads(threads)
    cfg = TrainConfig(task="classify", max_minutes=minutes, **{
        k: run_cfg[k] for k in ("cell", "layers", "hidden", "embed", "batch_size", "lr",
                                "eval_every", "patience")})
    tmp.mkdir(exist_ok=True)
    data = ClassifierTrainer(cfg, tsv, tmp, None, lambda s: None, True, None)   # its batches
    c = data.cfg
    ref = Classifier(data.model.config, seed=c.seed, forget_bias=c.forget_bias)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            rnn = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[c.cell]
            self.encoder = nn.Embedding(ref.cfg.vocab_size, c.embed)
            self.rnn = rnn(c.embed, c.hidden, c.layers, bidirectional=True)
            self.decoder = nn.Linear(2 * c.hidden, ref.cfg.classes)

        def forward(self, ids, lengths):
            x = self.encoder(ids)                                     # (T, N, E)
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
            _, h = self.rnn(packed)
            h = h[0] if isinstance(h, tuple) else h                   # (2L, N, H)
            return self.decoder(torch.cat([h[-2], h[-1]], 1))

    net = Net()
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ref.params.items()})
    opt = torch.optim.Adam(net.parameters(), lr=c.lr)
    lossf = nn.CrossEntropyLoss()

    def evaluate(xs, ys):
        net.eval()
        order = np.argsort([len(x) for x in xs], kind="stable")
        loss, hits = 0.0, 0
        with torch.no_grad():
            for lo in range(0, len(order), 256):
                rows = order[lo:lo + 256]
                from charrnn.nn.classifier import pad_batch
                ids, lens = pad_batch([xs[i] for i in rows])
                z = net(torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(lens))
                y = torch.from_numpy(np.asarray(ys)[rows].astype(np.int64))
                loss += float(nn.functional.cross_entropy(z, y, reduction="sum"))
                hits += int((z.argmax(1) == y).sum())
        net.train()
        return loss / len(order), hits / len(order)

    budget = minutes * 60
    best, best_state, bad, step, t0 = math.inf, None, 0, 0, time.perf_counter()
    step_time, eval_cost = None, 0.0
    window = None   # charrnn's anneal window, fixed as ClassifierTrainer._plan fixes it
    while True:
        el = time.perf_counter() - t0
        if el + eval_cost >= budget or (c.patience and bad >= c.patience):
            break
        if window is None:   # near the budget's end, or on a plateau (patience restarts)
            end = schedule.budget_end(c, step, data.per_epoch, el, step_time, eval_cost)
            window = schedule.anneal_window(c, step, end, None)
            if window is None:
                window = schedule.plateau_window(c, step, end, bad)
                bad = 0 if window is not None else bad
        lr = c.lr * (schedule.anneal_factor(window, step) if window is not None else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        s0 = time.perf_counter()
        ids, lens, y = data.batch(step)
        opt.zero_grad()
        loss = lossf(net(torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(lens)),
                     torch.from_numpy(y.astype(np.int64)))
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), c.grad_clip)
        opt.step()
        step += 1
        dt = time.perf_counter() - s0
        step_time = dt if step_time is None else 0.95 * step_time + 0.05 * dt
        if step % c.eval_every == 0:
            e0 = time.perf_counter()
            v, _ = evaluate(data.val_x, data.val_y)
            if v < best:
                best, bad = v, 0
                best_state = {k: t.clone() for k, t in net.state_dict().items()}
            else:
                bad += 1
            eval_cost = time.perf_counter() - e0
    wall = time.perf_counter() - t0
    if best_state is not None:
        net.load_state_dict(best_state)
    index = {ch: i + 1 for i, ch in enumerate(data.vocab)}
    code = {l: i for i, l in enumerate(data.labels)}
    xs = [np.array([index.get(ch, 0) for ch in w], np.int32) for _, w in test]
    loss, acc = evaluate(xs, [code[l] for l, _ in test])
    return {"accuracy": acc, "test_loss": loss, "steps": step,
            "epochs": round(step / data.per_epoch, 3),
            "pairs_per_sec": round(step * c.batch_size / wall, 1),
            "wall_seconds": round(wall, 1), "best_val_loss": best,
            "torch": torch.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--cap", type=int, default=6000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-torch", action="store_true")
    a = ap.parse_args()
    train, test, dropped = load_words(a.cap)
    work = Path(tempfile.mkdtemp(prefix="charrnn-bench-cls-"))
    tsv = work / "train.tsv"
    tsv.write_text("".join(f"{l}\t{w}\n" for l, w in train), encoding="utf-8")
    res = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "data": {"lists": LISTS, "train_pairs": len(train), "test_pairs": len(test),
                    "cap_per_language": a.cap, "dropped_in_several_lists": dropped},
           "minutes": a.minutes, "threads": a.threads, "load_average": os.getloadavg(),
           "cpu_count": os.cpu_count()}
    res["naive_bayes"] = naive_bayes(train, test)
    print(f"naive Bayes: {res['naive_bayes']['accuracy']:.4f}", file=sys.stderr)
    res["charrnn"] = run_charrnn(tsv, test, a.minutes, a.threads, work / "run")
    print(f"charrnn: {res['charrnn']['accuracy']:.4f}", file=sys.stderr)
    if not a.skip_torch:
        res["pytorch"] = run_torch(tsv, test, a.minutes, a.threads, res["charrnn"]["model"],
                                   work / "torch")
    out = Path(__file__).parent / "results" / "classify" / f"{res['date'][:10]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    rows = [("charrnn (bidirectional " + res["charrnn"]["model"]["cell"].upper() + ")",
             res["charrnn"]), ("PyTorch, same model and batches", res.get("pytorch")),
            ("naive Bayes, char 1-4-grams", res["naive_bayes"])]
    print(f"{'model':34} {'test accuracy':>13} {'pairs/s':>9} {'steps':>7}")
    for name, r in rows:
        if r:
            print(f"{name:34} {r['accuracy']:13.4f} {r.get('pairs_per_sec', '-'):>9} "
                  f"{r.get('steps', '-'):>7}")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
