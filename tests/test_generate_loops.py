"""Loop control in the compiled loop (Run.set_no_repeat, kernels/loopctl.h) and sheets of
temperatures (Run.set_temperatures).

- no N-gram of the generated text repeats, unless at that step every character would
  have repeated one (then the ban is lifted for the step): checked position by position;
- a ban that never bites (N longer than the text) changes nothing: the same text as
  without no_repeat, bit for bit, for the same seed;
- the record carries across chunks and set growth: stream() (line by line) equals
  generate() (256 at a time) over 3,000 characters;
- a temperature list is one batch whose sample j is what that temperature alone draws
  from random stream j (temperature 0: greedy).
"""
import pytest

from test_generate_beam import make


def assert_no_avoidable_repeat(text, N, vocab):
    seen = set()
    for i in range(N - 1, len(text)):
        gram, prefix = text[i - N + 1:i + 1], text[i - N + 1:i]
        if gram in seen:
            assert all(prefix + c in seen for c in vocab), (i, gram)
        seen.add(gram)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("N", [2, 3, 5])
@pytest.mark.parametrize("temperature", [0, 0.7])
def test_no_repeat_holds(cell, N, temperature):
    m = make(cell, V=6, H=12, seed=N)
    out = m.generate("ab", length=300, temperature=temperature, seed=3, no_repeat=N)
    assert out.startswith("ab") and len(out) == 302
    assert_no_avoidable_repeat(out[2:], N, m.vocab)


def test_greedy_loops_without_and_not_with():
    m = make("gru", V=8, H=12, seed=7)
    plain = m.generate("a", length=400, temperature=0)[1:]
    assert longest(plain) > 40             # a random greedy model falls into a cycle
    controlled = m.generate("a", length=400, temperature=0, no_repeat=12)[1:]
    assert longest(controlled) < 12


def longest(text):
    from charrnn.generate.loops import longest_repeat
    return longest_repeat(text).length


def test_a_ban_that_never_bites_changes_nothing():
    m = make("lstm", V=10, H=16, seed=2)
    for kw in (dict(temperature=0.8, top_k=5), dict(temperature=1.0, top_p=0.9), {}):
        a = m.generate("abc", length=50, seed=9, **kw)
        assert m.generate("abc", length=50, seed=9, no_repeat=60, **kw) == a
        assert m.generate("abc", length=50, seed=9, no_repeat=None, **kw) == a


def test_no_repeat_across_chunks_and_growth():
    m = make("gru", V=12, H=16, seed=4, scale=0.6)
    a = m.generate("a", length=3000, temperature=0.9, seed=5, no_repeat=4)
    b = "".join(m.stream("a", temperature=0.9, seed=5, length=3000, no_repeat=4))
    assert a == b
    assert_no_avoidable_repeat(a[1:], 4, m.vocab)


def test_no_repeat_in_a_batch_each_sample_on_its_own():
    m = make("rnn", V=5, H=8, seed=1)
    texts = m.generate("a", length=120, temperature=0.5, seed=2, num_samples=3,
                       no_repeat=3)
    assert len(set(texts)) == 3
    for t in texts:
        assert_no_avoidable_repeat(t[1:], 3, m.vocab)


def test_temperature_sheet_is_one_batch_of_the_single_temperatures():
    m = make("lstm", V=10, H=16, seed=6)
    temps = [0, 0.2, 0.5, 1.0]
    sheet = m.generate("ab", length=80, temperature=temps, seed=11)
    assert isinstance(sheet, list) and len(sheet) == 4
    assert sheet[0] == m.generate("ab", length=80, temperature=0)
    for j, t in enumerate(temps[1:], 1):
        assert sheet[j] == m.generate("ab", length=80, temperature=t, seed=11,
                                      num_samples=4)[j]
    assert m.generate("ab", length=20, temperature=[0.5], seed=1) == \
        [m.generate("ab", length=20, temperature=0.5, seed=1)]
    pieces = m.stream_batch("ab", length=80, temperature=temps, seed=11)
    got = ["", "", "", ""]
    for j, text in pieces:
        got[j] += text
    assert got == sheet
