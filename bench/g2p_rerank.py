"""Two re-ranking levers for CMUdict G2P that were measured and not adopted (issue 32):
a right-to-left model as the second member of an ensemble, and a phoneme-to-grapheme
"channel" model that scores how well a candidate pronunciation explains the spelling.

    python bench/g2p_rerank.py data --trainval trainval.tsv --out DIR
        writes DIR/rtl.tsv (targets reversed: train it as usual, --target-tokens space)
        and DIR/p2g.tsv (each phoneme as one character, then the word: train it with
        --target-tokens chars), and DIR/phonemes.json (that mapping)
    python bench/g2p_rerank.py score --test test.tsv --fwd RUN [--rtl RUN] [--p2g RUN] \
        --phonemes DIR/phonemes.json [--beam 4]

score: every model (fwd and rtl) proposes its --beam best outputs (rtl's read back in
order); each proposal's score is the mean of the fwd and rtl models' log-probabilities
of it (charrnn.training.seq2seq_ensemble.Ensemble.logprobs; rtl scores the reversed
tokens) plus lambda times the p2g model's log-probability of the word given it (the
noisy channel's log P(x | y)); the best proposal is the output. WER with and without
stress for lambda in LAMBDAS, and the oracle WER of the proposals. One JSON line.
"""
import argparse
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from g2p_eval import read_refs  # noqa: E402

LAMBDAS = (0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5)


def data(a):
    rows = [line.rstrip("\n").split("\t") for line in open(a.trainval, encoding="utf-8")]
    phonemes = sorted({p for _, pron in rows for p in pron.split()})
    code = {p: chr(0x100 + i) for i, p in enumerate(phonemes)}   # one character each
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "rtl.tsv"), "w", encoding="utf-8") as f:
        f.writelines(f"{w}\t{' '.join(p.split()[::-1])}\n" for w, p in rows)
    with open(os.path.join(a.out, "p2g.tsv"), "w", encoding="utf-8") as f:
        f.writelines(f"{''.join(code[x] for x in p.split())}\t{w}\n" for w, p in rows)
    json.dump(code, open(os.path.join(a.out, "phonemes.json"), "w"))


def score(a):
    from charrnn.training.seq2seq import load_transducer
    from charrnn.training.seq2seq_ensemble import Ensemble
    refs = read_refs(a.test)
    words = list(refs)
    flip = lambda o: " ".join(o.split()[::-1])   # noqa: E731
    models = [(load_transducer(p), False) for p in a.fwd] + [(load_transducer(p), True)
                                                             for p in a.rtl]
    props = [{} for _ in words]
    for t, rev in models:
        for ps, lst in zip(props, t.nbest(words, a.beam, a.beam, threads=a.threads)):
            for o, _ in lst:
                ps.setdefault(flip(o) if rev else o, None)
    src = [w for w, ps in zip(words, props) for _ in ps]
    outs = [o for ps in props for o in ps]
    base = np.mean([Ensemble([t]).logprobs(src, [flip(o) for o in outs] if rev else outs)[0]
                    for t, rev in models], 0)
    chan = np.zeros_like(base)
    if a.p2g:
        code = json.load(open(a.phonemes))
        some = [i for i, o in enumerate(outs) if o]   # an empty output explains nothing
        chan[:] = -np.inf
        chan[some] = Ensemble([load_transducer(a.p2g)]).logprobs(
            ["".join(code[x] for x in outs[i].split()) for i in some], [src[i] for i in some])[0]
    strip = lambda toks: [re.sub(r"\d", "", t) for t in toks]   # noqa: E731
    hit = sum(any(o.split() in refs[w] for o in ps) for w, ps in zip(words, props))
    res = {"fwd": a.fwd, "rtl": a.rtl, "p2g": a.p2g, "beam": a.beam, "words": len(words),
           "proposals_per_word": round(len(outs) / len(words), 2),
           "oracle_wer": round(1 - hit / len(words), 4), "wer_and_wer_no_stress": {}}
    for lam in LAMBDAS if a.p2g else (0,):
        s, at, err, err_ns = base + (lam * chan if lam else 0), 0, 0, 0
        for w, ps in zip(words, props):
            j = at + int(np.argmax(s[at:at + len(ps)]))
            at += len(ps)
            hyp = outs[j].split()
            err += not any(r == hyp for r in refs[w])
            err_ns += not any(strip(r) == strip(hyp) for r in refs[w])
        res["wer_and_wer_no_stress"][f"lambda={lam}"] = [round(err / len(words), 4),
                                                          round(err_ns / len(words), 4)]
    print(json.dumps(res))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("--trainval", required=True)
    d.add_argument("--out", required=True)
    s = sub.add_parser("score")
    s.add_argument("--test", required=True)
    s.add_argument("--fwd", nargs="*", default=[])
    s.add_argument("--rtl", nargs="*", default=[])
    s.add_argument("--p2g")
    s.add_argument("--phonemes")
    s.add_argument("--beam", type=int, default=4)
    s.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    if a.cmd == "score" and a.p2g and not a.phonemes:
        p.error("--p2g needs --phonemes (the mapping `data` wrote)")
    data(a) if a.cmd == "data" else score(a)


if __name__ == "__main__":
    main()
