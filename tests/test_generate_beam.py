"""Beam search (charrnn.generate.beam, Run.beam in kernels/_sample.pyx) and the option
checks of beam, no-repeat and temperature sheets.

- K = 1 is greedy decoding, for the three cells;
- with K >= V^(length-1) beam search keeps every prefix, so it is exact: its N best equal
  a brute-force ranking of all V^length continuations, scored independently by the
  float64-accumulated probe (model.probe), to float32 tolerance;
- scores are the sums of the chosen characters' log-probabilities;
- no_repeat holds inside beam search too.
"""
import itertools

import numpy as np
import pytest

from charrnn import ConfigError
from charrnn.generate.loops import longest_repeat
from charrnn.model import CharRNN
from charrnn.nn import shapes


def make(cell="gru", H=8, L=1, V=3, E=4, seed=0, scale=1.5):
    vocab = list("abcdefghijklmnopqrstuvwxyz"[:V - 1]) + ["\n"]
    cfg = dict(cell=cell, hidden=H, layers=L, embed=E, vocab_size=V, encoding="utf-8")
    rng = np.random.default_rng(seed)
    p = {n: (scale * rng.standard_normal(s)).astype(np.float32)
         for n, s in shapes.expected_shapes(cfg).items()}
    return CharRNN(cfg, vocab, params=p)


def logprob(model, prime, cont):
    probs = model.probe(prime + cont).probs
    idx = {c: i for i, c in enumerate(model.vocab)}
    P = len(prime)
    return sum(np.log(probs[P - 1 + i, idx[c]]) for i, c in enumerate(cont))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_one_beam_is_greedy(cell):
    m = make(cell, V=6, L=2, seed=3)
    for prime in ("a", "abca\n"):
        assert m.generate(prime, length=40, beam=1) == m.generate(prime, length=40,
                                                                   temperature=0)


@pytest.mark.parametrize("cell,seed", [("lstm", 1), ("gru", 2), ("rnn", 4)])
def test_wide_beam_equals_brute_force(cell, seed):
    m = make(cell, V=3, seed=seed)
    T, prime = 4, "ab"
    ranked = sorted(("".join(s) for s in itertools.product(m.vocab, repeat=T)),
                    key=lambda s: -logprob(m, prime, s))
    beams = m.beam_search(prime, length=T, beam=3 ** (T - 1), num_results=5)
    assert [b.text for b in beams] == [prime + s for s in ranked[:5]]
    for b, s in zip(beams, ranked):
        assert b.logprob == pytest.approx(logprob(m, prime, s), abs=1e-4)
        assert b.score == pytest.approx(b.logprob / T)
        assert b.length == T


def test_beats_or_equals_greedy_and_is_sorted():
    m = make("lstm", V=8, H=16, seed=5)
    greedy = m.generate("a", length=30, temperature=0)
    beams = m.beam_search("a", length=30, beam=8, num_results=8)
    assert beams[0].logprob >= logprob(m, "a", greedy[1:]) - 1e-4
    assert [b.logprob for b in beams] == sorted((b.logprob for b in beams), reverse=True)
    assert len({b.text for b in beams}) == 8
    for b in beams[:3]:       # each score is the text's own log-probability
        assert b.logprob == pytest.approx(logprob(m, "a", b.text[1:]), abs=1e-3)


def test_more_beams_than_continuations():
    m = make(V=3)
    beams = m.beam_search("a", length=2, beam=16, num_results=16)
    assert len(beams) == 9 and len({b.text for b in beams}) == 9


def test_generate_beam_num_samples():
    m = make(V=5)
    texts = m.generate("ab", length=12, beam=4, num_samples=3)
    assert texts == [b.text for b in m.beam_search("ab", 12, beam=4, num_results=3)]


@pytest.mark.parametrize("N", [2, 3, 6])
def test_no_repeat_in_beam_search(N):
    m = make(V=4, seed=1)
    text = m.generate("a", length=40, beam=4, no_repeat=N)[1:]
    grams = [text[i:i + N] for i in range(len(text) - N + 1)]
    # 3 of 4 characters: at most 4**N distinct N-grams; below that none repeats
    if len(grams) <= 4 ** N // 2:
        assert len(set(grams)) == len(grams)


@pytest.mark.parametrize("bad,match", [
    (dict(beam=0), "beam must be a whole number >= 1"),
    (dict(beam=True), "beam must be"),
    (dict(beam=2, num_samples=3), "num_results 3 is more than the 2 beams"),
    (dict(beam=2, stop="x"), "beam search is deterministic"),
    (dict(no_repeat=1), "no_repeat must be a whole number >= 2"),
    (dict(no_repeat=2.5), "no_repeat must be"),
    (dict(temperature=[0.5, "x"]), "temperature must be a finite number"),
    (dict(temperature=[0.5, -1]), "temperature must be a finite number"),
    (dict(temperature=[]), "temperature list is empty"),
    (dict(temperature=[0.5, 1.0], num_samples=3), "num_samples 3 with 2 temperatures"),
])
def test_bad_values(bad, match):
    with pytest.raises(ConfigError, match=match):
        make().generate("a", length=5, **bad)


def test_longest_repeat_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(100):
        s = "".join(rng.choice(list("ab\n"), rng.integers(0, 25)))
        best = max((m for m in range(len(s)) for i in range(len(s) - m + 1)
                    if s.find(s[i:i + m], i + 1) >= 0), default=0)
        r = longest_repeat(s)
        assert r.length == best
        if best:
            assert s[r.first:r.first + best] == s[r.second:r.second + best] == r.text
            assert r.first < r.second
    assert longest_repeat("the state of the state of the").text == "the state of the"
    assert longest_repeat("").length == 0 and longest_repeat("ab").length == 0


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_beam_without_the_layer0_table(cell):
    """K > 1 runs on packed weights (charrnn's own sgemm): layer 0 from the table or from
    the packed W_ih0 gives the same beams."""
    from charrnn.generate.beam import beam_search
    from charrnn.generate.sampler import Sampler
    m = make(cell, V=7, H=16, L=2, seed=8)
    a = beam_search(Sampler(m.params, m.config, m.vocab), "ab", 30, beam=5, num_results=5)
    b = beam_search(Sampler(m.params, m.config, m.vocab, table_limit=0), "ab", 30, beam=5,
                    num_results=5)
    assert [x.text for x in a] == [x.text for x in b]
    # The table is folded in float64, the other path sums in float32; over 30 steps of a
    # random GRU the difference grows to ~2e-3 (teacher-forced K = 1 sampling and the
    # probe differ as much on these texts).
    assert [x.logprob for x in a] == pytest.approx([x.logprob for x in b], abs=5e-3)
