"""A transducer's joint-sequence model, built at the end of `charrnn train --task seq2seq`
(issue 32): charrnn.nn.graphones trained on the run's training pairs (seconds), then its
weight beside the transducer's log-probability chosen on the held-out sources, where
beam search's n best are re-ranked by both (Rao et al. 2015's combination of an LSTM and
an n-gram model). On CMUdict it took the 30-minute model's test WER from 33.6% to 29.7%
with stress, 28.2% to 24.6% without (docs/seq2seq.md).

    joint = build_joint(transducer, train_pairs, held_pairs)   # pairs: (source, target)
    transducer.joint = joint                                   # transduce(beam > 1) uses it
"""
import os
import time

import numpy as np

from charrnn.nn.graphones import ORDER, JointModel, rerank
from charrnn.training.seq2seq_score import group_references

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0)   # tried on the held-out sources (0: off)
TUNE_BEAM = 8           # the n best that are re-ranked while tuning
TUNE_SOURCES = 2000     # held-out sources decoded to tune the weight (the first ones)
DEFAULT_WEIGHT = 0.5    # without held-out sources: CMUdict's held-out choice


def build_joint(transducer, train_pairs, held_pairs, order=ORDER, threads=None):
    """A JointModel of train_pairs ((source, target string), ...) whose .weight is the
    one of WEIGHTS that re-ranks the held-out sources' TUNE_BEAM best with the fewest
    word errors (ties: the smaller), and whose .info says how it was chosen."""
    threads = threads or os.cpu_count() or 1   # all cores, as charrnn transduce uses
    t0 = time.perf_counter()
    joint = JointModel.train([(s, transducer.split(t)) for s, t in train_pairs], order)
    info = {"order": order, "train_pairs": len(train_pairs), "graphones": len(joint.cells),
            "train_seconds": round(time.perf_counter() - t0, 1)}
    refs = group_references([s for s, _ in held_pairs], [t for _, t in held_pairs],
                            transducer.split)
    words = list(refs)[:TUNE_SOURCES]
    joint.weight = DEFAULT_WEIGHT
    if words:
        t0 = time.perf_counter()
        lists = transducer.nbest(words, TUNE_BEAM, TUNE_BEAM, threads=threads)
        scores = joint.ranking_scores([w for w, lst in zip(words, lists) for _ in lst],
                                      [transducer.split(o) for lst in lists for o, _ in lst])

        def wer(weight):   # what joint.pick would choose with this weight, scored once
            picked = rerank(lists, scores, weight)
            return 1 - sum(b >= 0 and transducer.split(lst[b][0]) in refs[w]
                           for w, lst, b in zip(words, lists, picked)) / len(words)
        errors = [wer(w) for w in WEIGHTS]
        joint.weight = WEIGHTS[int(np.argmin(errors))]
        info.update(tuned_on=len(words), beam=TUNE_BEAM, weight=joint.weight,
                    held_out_wer_without=round(wer(0.0), 4),
                    held_out_wer_with=round(min(errors), 4),
                    tune_seconds=round(time.perf_counter() - t0, 1))
    joint.info = info
    return joint
