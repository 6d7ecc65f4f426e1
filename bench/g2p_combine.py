"""A neural transducer and a joint-sequence n-gram model as one score (issue 32): does
combining charrnn's n-best with Phonetisaurus's move CMUdict's WER, as Rao et al. 2015
found for an LSTM and an n-gram FST (25.8% and 24.7% alone, 21.3% together)?

    pip install phonetisaurus==0.3.0        # benchmark-only: never a charrnn dependency
    python bench/g2p_combine.py --test test.tsv --model DIR/train/model.fst \
        --run RUN [RUN ...] [--beam 8] [--pt-nbest 20] [--own-candidates] [--out NAME.json]
    python bench/g2p_combine.py --test test.tsv --joint trainval.tsv [--order 6] --run RUN

--model is the FST bench/g2p_phonetisaurus.py trained (its --work DIR/train/model.fst).
Candidates per word: the union of the runs' --beam best (an ensemble's members
proposing, as charrnn transduce --ensemble does) and Phonetisaurus's --pt-nbest best
(--own-candidates: the runs' only). --joint: charrnn's own joint model
(charrnn.nn.graphones) instead of Phonetisaurus, trained on that file, scoring the
runs' candidates only; bench/g2p_joint.py measures it as charrnn train builds it.
Each candidate is scored by the runs (mean teacher-forced log-probability, exact) and by
Phonetisaurus: minus its cost where it is in its n-best, else minus (its worst listed
cost + FLOOR). The output maximises neural + lam * phonetisaurus. lam is chosen by
two-fold cross-validation over the test words (halves by an md5 of the word: each half
scored with the lam best on the other), so no figure is tuned on the words it scores;
the table over every lam is reported too.
"""
import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit  # noqa: E402
from g2p_eval import read_refs  # noqa: E402

LAMBDAS = (0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0)
FLOOR = 3.0


def phonetisaurus_nbest(model, words, n):
    """{word: [(pronunciation, cost), ...]} best first, by phonetisaurus-g2pfst."""
    import phonetisaurus
    env = {**os.environ, **phonetisaurus.guess_environment()}
    with tempfile.NamedTemporaryFile("w", suffix=".words", delete=False) as f:
        f.writelines(w + "\n" for w in words)
    out = subprocess.run(["phonetisaurus-g2pfst", f"--model={model}", f"--wordlist={f.name}",
                          f"--nbest={n}", f"--beam={max(4 * n, 50)}"],
                         env=env, capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    lists = {w: [] for w in words}
    for line in out.splitlines():   # word <TAB> cost <TAB> phonemes
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].strip():
            pron = " ".join(parts[2].split())
            if pron not in dict(lists[parts[0]]):
                lists[parts[0]].append((pron, float(parts[1])))
    return lists


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--test", required=True)
    ap.add_argument("--model", help="Phonetisaurus model.fst")
    ap.add_argument("--joint", metavar="TRAINVAL",
                    help="instead: charrnn's own joint model (charrnn.nn.graphones) trained "
                         "on this file; only the runs' proposals are ranked")
    ap.add_argument("--order", type=int, default=6, help="--joint's n-gram order")
    ap.add_argument("--run", nargs="+", required=True, help="charrnn transducer run(s)")
    ap.add_argument("--beam", type=int, default=8)
    ap.add_argument("--pt-nbest", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--own-candidates", action="store_true",
                    help="only the runs' proposals are ranked (Phonetisaurus only scores)")
    ap.add_argument("--out")
    a = ap.parse_args()
    from charrnn.training.seq2seq import load_transducer
    from charrnn.training.seq2seq_ensemble import Ensemble
    refs = read_refs(a.test)
    words = list(refs)
    if not (a.model or a.joint):
        ap.error("give --model (Phonetisaurus) or --joint")
    t0 = time.perf_counter()
    pt = phonetisaurus_nbest(a.model, words, a.pt_nbest) if not a.joint else None
    pt_s = time.perf_counter() - t0
    members = [load_transducer(r) for r in a.run]
    cands = [dict() for _ in words]             # candidate -> phonetisaurus score
    for m in members:
        for c, lst in zip(cands, m.nbest(words, a.beam, a.beam, threads=a.threads)):
            for o, _ in lst:
                c.setdefault(" ".join(o.split()), None)
    for w, c in zip(words, cands) if not a.joint else ():
        worst = max((cost for _, cost in pt[w]), default=0.0)
        for p, cost in ([] if a.own_candidates else pt[w]):
            c.setdefault(p, None)
        listed = dict(pt[w])
        for o in c:
            c[o] = -listed.get(o, worst + FLOOR)
    src = [w for w, c in zip(words, cands) for _ in c]
    outs = [o for c in cands for o in c]
    neural = Ensemble(members).logprobs(src, outs, threads=a.threads).mean(0)
    if a.joint:
        from charrnn.nn.graphones import JointModel
        pairs = [line.rstrip("\n").split("\t") for line in open(a.joint, encoding="utf-8")]
        t0 = time.perf_counter()
        joint = JointModel.train([(w, p.split()) for w, p in pairs], order=a.order)
        pt_s = time.perf_counter() - t0   # training, then scoring
        ptscore = joint.logprobs(src, [o.split() for o in outs])
        ptscore[~np.isfinite(ptscore)] = np.min(ptscore[np.isfinite(ptscore)]) - FLOOR
        pt = {w: [] for w in words}
    else:
        ptscore = np.array([s for c in cands for s in c.values()])
    strip = lambda toks: [re.sub(r"\d", "", t) for t in toks]   # noqa: E731
    half = np.array([int(hashlib.md5(w.encode()).hexdigest(), 16) % 2 for w in words])
    # right[l][i], right_ns[l][i]: word i right under LAMBDAS[l], with and without stress
    right = np.zeros((len(LAMBDAS), len(words)), bool)
    right_ns = np.zeros_like(right)
    bounds = np.cumsum([0] + [len(c) for c in cands])
    for l, lam in enumerate(LAMBDAS):
        s = neural + lam * ptscore
        for i, w in enumerate(words):
            lo, hi = bounds[i], bounds[i + 1]
            hyp = outs[lo + int(np.argmax(s[lo:hi]))].split()
            right[l, i] = any(r == hyp for r in refs[w])
            right_ns[l, i] = any(strip(r) == strip(hyp) for r in refs[w])

    def crossval(r):
        picked, hits = [], 0
        for h in (0, 1):
            best = int(np.argmax(r[:, half != h].mean(1)))   # tuned on the other half
            picked.append(LAMBDAS[best])
            hits += r[best, half == h].sum()
        return round(1 - hits / len(words), 4), picked
    oracle = np.mean([any(o.split() in refs[w] for o in c) for w, c in zip(words, cands)])
    pt_only = np.mean([bool(pt[w]) and pt[w][0][0].split() in refs[w] for w in words])
    emit({"bench": "charrnn + Phonetisaurus n-best combination (bench/g2p_combine.py)",
          "test": a.test, "words": len(words), "runs": a.run, "beam": a.beam,
          "pt_nbest": a.pt_nbest, "own_candidates": a.own_candidates or bool(a.joint),
          "scorer": f"charrnn.nn.graphones, order {a.order}" if a.joint else "phonetisaurus", "floor": FLOOR, "phonetisaurus_decode_seconds": round(pt_s, 1),
          "candidates_per_word": round(len(outs) / len(words), 2),
          "oracle_wer": round(1 - oracle, 4), "phonetisaurus_alone_wer": round(1 - pt_only, 4),
          "wer_by_lambda": {str(l): round(1 - right[i].mean(), 4) for i, l in enumerate(LAMBDAS)},
          "wer_no_stress_by_lambda": {str(l): round(1 - right_ns[i].mean(), 4)
                                      for i, l in enumerate(LAMBDAS)},
          "crossval_wer": crossval(right), "crossval_wer_no_stress": crossval(right_ns)}, a.out)


if __name__ == "__main__":
    main()
