"""Score G2P models on a test TSV (issue 32): WER and PER with and without stress.

    python bench/g2p_eval.py RUN_OR_FILE [...] --test DIR/test.tsv [--beam 4] [--out F.json]
    python bench/g2p_eval.py RUN_A RUN_B --ensemble --test DIR/test.tsv

For each model: word and phoneme (token) error rates of greedy decoding and of beam
search (--beam), as `charrnn eval` computes them (charrnn.training.seq2seq_score: a word
is right when its output equals any of its reference pronunciations); the same with the
stress digits removed from outputs and references alike ("AH0" -> "AH": CMUdict's 69
symbols become 39 phonemes), since some published CMUdict figures are on phonemes
without stress; and the n-best oracle: the fraction of words none of whose --beam best
outputs is a reference (what a user choosing among the n best could reach).
--length-penalty A,B,...: also the beam's n best re-ranked by GNMT's length penalty (Wu
et al. 2016: log-probability / ((5 + length) / 6)^alpha, length counting the end), one
row per alpha: does length normalisation, which charrnn's beam search lacks, pay?
--ensemble: also all the models as one (charrnn.training.seq2seq_ensemble: each proposes
its best outputs, all score them), one more row, its oracle over the union of proposals.
A model (or an ensemble's first) with a joint graphone model (joint.safetensors) also
gets a beam{K}_joint row: beam search re-ranked by it, as charrnn transduce --beam K.
The test TSV is bench/g2p.py --tsv's test.tsv (source<TAB>pronunciation lines).
"""
import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from charrnn.training.seq2seq import load_transducer  # noqa: E402
from charrnn.training.seq2seq_ensemble import Ensemble  # noqa: E402
from charrnn.training.seq2seq_score import error_rates  # noqa: E402
from common import emit  # noqa: E402


def unstressed(tokens):
    return [re.sub(r"\d", "", t) for t in tokens]


def rates(refs, hyps):
    both = error_rates(refs, hyps)
    bare = error_rates({w: [unstressed(r) for r in rs] for w, rs in refs.items()},
                       {w: unstressed(h) for w, h in hyps.items()})
    return {"wer": round(both["wer"], 4), "per": round(both["ter"], 4),
            "wer_no_stress": round(bare["wer"], 4), "per_no_stress": round(bare["ter"], 4)}


def read_refs(path):
    """{word: [pronunciation (token list), ...]} of a bench/g2p.py --tsv file."""
    refs = {}
    for line in open(path, encoding="utf-8"):
        word, pron = line.rstrip("\n").split("\t")
        refs.setdefault(word, []).append(pron.split())
    return refs


def penalised(lst, alpha):
    """The output of the n-best list `lst` ((output, log-probability), ...) that GNMT's
    length penalty with `alpha` puts first."""
    return max(lst, key=lambda o: o[1] / ((5 + len(o[0].split()) + 1) / 6) ** alpha)[0]


def evaluate(path, refs, beam, alphas=(), threads=1):
    """path: a model, or a list of them (an ensemble)."""
    if isinstance(path, list):
        t = Ensemble([load_transducer(p) for p in path])
        row = {"model": "ensemble of " + ", ".join(map(str, path)),
               "parameters": sum(int(m.model.flat.size) for m in t.members),
               "info": [m.info for m in t.members]}
    else:
        t = load_transducer(path)
        row = {"model": str(path), "parameters": int(t.model.flat.size), "info": t.info}
    words = list(refs)
    t0 = time.perf_counter()
    row["greedy"] = rates(refs, dict(zip(words, map(str.split, t.transduce(words,
                                                                           threads=threads)))))
    row["greedy"]["seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    lists = t.nbest(words, beam, threads=threads)
    row[f"beam{beam}"] = rates(refs, {w: lst[0][0].split() for w, lst in zip(words, lists)})
    row[f"beam{beam}"]["seconds"] = round(time.perf_counter() - t0, 1)
    miss = sum(not any(o.split() in refs[w] for o, _ in lst) for w, lst in zip(words, lists))
    row[f"oracle_wer_{beam}_best"] = round(miss / len(words), 4)
    if getattr(t, "joint", None) is not None and beam > 1:   # charrnn.nn.graphones re-ranks
        t0 = time.perf_counter()
        outs = t.transduce(words, beam, threads=threads)
        row[f"beam{beam}_joint"] = rates(refs, dict(zip(words, map(str.split, outs))))
        row[f"beam{beam}_joint"].update(seconds=round(time.perf_counter() - t0, 1),
                                        weight=t.joint.weight)
    for a in alphas:
        row[f"beam{beam}_length_penalty_{a:g}"] = rates(
            refs, {w: penalised(lst, a).split() for w, lst in zip(words, lists)})
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--test", required=True)
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--length-penalty", default="",
                    help="comma-separated alphas: re-rank the n best (see above)")
    ap.add_argument("--ensemble", action="store_true", help="also the models as one")
    ap.add_argument("--threads", type=int, default=1, help="decoding threads")
    ap.add_argument("--out")
    a = ap.parse_args()
    refs = read_refs(a.test)
    alphas = [float(x) for x in a.length_penalty.split(",") if x]
    rows = [evaluate(m, refs, a.beam, alphas, a.threads) for m in a.models]
    if a.ensemble:
        rows.append(evaluate(a.models, refs, a.beam, alphas, a.threads))
    emit({"bench": "g2p test scores (bench/g2p_eval.py)", "test": a.test,
          "words": len(refs), "models": rows}, a.out)


if __name__ == "__main__":
    main()
