"""The joint graphone model's effect on CMUdict's test words (issue 32), the way `charrnn
train --task seq2seq` builds it: trained on the run's training pairs, its weight tuned on
the run's held-out sources (charrnn.training.seq2seq_joint.build_joint), never on test.

    python bench/g2p_joint.py RUN --test test.tsv [--build trainval.tsv] [--beams 4 8] \
        [--out NAME.json]

--build: (re)build RUN's joint.safetensors first, from the file RUN trained on (the split
is the run's own: its --val-frac and --seed); needed for runs trained before the joint
model existed. Then the test words are decoded greedily and with each --beams width,
with and without the joint model; WER and PER with and without stress, as g2p_eval.py.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit  # noqa: E402
from g2p_eval import rates, read_refs  # noqa: E402


def build(run, trainval):
    from charrnn.data.pairs import read_pairs
    from charrnn.io import checkpoint as ckpt
    from charrnn.io.joint_file import NAME, save_joint
    from charrnn.training.seq2seq import load_transducer
    from charrnn.training.seq2seq_joint import build_joint
    from charrnn.training.seq2seq_run import split_by_source
    cfg = ckpt.load_state(os.path.join(run, "state.safetensors")).meta["train_config"]
    pairs = read_pairs(trainval, "utf-8", "strict", names=("source", "target"))
    tr, va = split_by_source(pairs.left, cfg["val_frac"], cfg["seed"])
    joint = build_joint(load_transducer(run, joint=False),
                        *[[(pairs.left[i], pairs.right[i]) for i in rows] for rows in (tr, va)])
    save_joint(joint, os.path.join(run, NAME))
    return joint.info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--test", required=True)
    ap.add_argument("--build", metavar="TRAINVAL")
    ap.add_argument("--beams", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    from charrnn.training.seq2seq import load_transducer
    res = {"bench": "joint graphone model re-ranking (bench/g2p_joint.py)", "run": a.run,
           "test": a.test}
    if a.build:
        res["built"] = build(a.run, a.build)
    t = load_transducer(a.run)
    if t.joint is None:
        sys.exit(f"error: {a.run} has no joint model: pass --build TRAINVAL")
    res["joint"] = t.joint.info
    refs = read_refs(a.test)
    words = list(refs)
    joint, rows = t.joint, {}
    for beam in [1] + a.beams:
        for use in ((False,) if beam == 1 else (False, True)):
            t.joint = joint if use else None
            t0 = time.perf_counter()
            outs = t.transduce(words, beam, threads=a.threads)
            s = time.perf_counter() - t0
            r = rates(refs, {w: o.split() for w, o in zip(words, outs)})
            r["words_per_second"] = round(len(words) / s, 1)
            rows[f"beam {beam}" + (" + joint" if use else "")] = r
    res["results"] = rows
    emit(res, a.out)


if __name__ == "__main__":
    main()
