"""charrnn.inspect.verbatim (and the compiled charrnn._copylen): longest substring of a sample found in the training text."""
import numpy as np
from hypothesis import given, settings, strategies as st

from charrnn.inspect import verbatim
from charrnn.inspect.verbatim import copied


def brute(sample, text):
    s, t = "".join(map(chr, sample)), "".join(map(chr, text))
    best = 0
    for i in range(len(s)):
        while i + best < len(s) and s[i:i + best + 1] in t:
            best += 1
    return best


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=40),
       st.lists(st.integers(0, 4), min_size=1, max_size=200))
def test_matches_brute_force(sample, text):
    assert copied(sample, np.array(text, np.uint8), 5) == brute(sample, text)


def test_all_id_widths_and_characters_the_sample_lacks():
    text = np.array([7, 1, 2, 3, 9, 1, 2, 3, 4, 60_000], np.uint32)
    for dtype in (np.uint16, np.uint32, np.int64):
        assert copied([1, 2, 3, 4, 5], text.astype(dtype), 70_000) == 4
    assert copied([0, 8], np.array([5, 6], np.uint8), 10) == 0


def test_a_copied_sample_is_found_whole():
    rng = np.random.default_rng(0)
    text = rng.integers(0, 50, 100_000).astype(np.uint8)
    assert copied(text[70_000:70_200], text, 50) == 200


def test_memory_mapped_text_is_read_in_blocks_from_the_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 30, 50_000).astype(np.uint16)
    path = tmp_path / "ids.npy"
    np.save(path, ids)
    mm = np.load(path, mmap_mode="r")
    sample = np.concatenate([ids[10_000:10_037], [29, 29, 29], ids[40_000:40_050]])
    monkeypatch.setattr(verbatim, "BLOCK", 999)    # matches cross block boundaries
    for view in (mm, mm[:45_000], mm[5:45_000], mm[10_001:]):
        assert verbatim._file_position(view) is not None
        assert copied(sample, view, 30) == brute(list(sample), list(np.asarray(view)))


def test_empty_inputs():
    assert copied([], np.array([1, 2], np.uint8), 3) == 0
    assert copied([1], np.array([], np.uint8), 3) == 0
