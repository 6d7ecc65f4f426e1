"""charrnn.training.classify: train a classifier from (label, text) pairs and use it."""
import numpy as np
import pytest

from charrnn.errors import ConfigError, CorpusError
from charrnn.training.classify import train_classifier


def words(alphabet, n, rng):
    return ["".join(rng.choice(list(alphabet), rng.integers(1, 9))) for _ in range(n)]


def test_learns_which_alphabet_a_word_is_written_in():
    rng = np.random.default_rng(0)
    latin, greek = "abcdefghik", "αβγδεζηθικ"
    pairs = [("latin", w) for w in words(latin, 100, rng)] + [("greek", w) for w in words(greek, 100, rng)]
    clf = train_classifier(pairs, hidden=16, embed=8, steps=150, lr=0.02, seed=1)
    assert clf.labels == ["greek", "latin"]
    first, last = np.mean([l for _, l in clf.history[:10]]), np.mean([l for _, l in clf.history[-10:]])
    assert last < 0.1 < first
    test = words(latin, 50, np.random.default_rng(7)) + words(greek, 50, np.random.default_rng(8))
    want = ["latin"] * 50 + ["greek"] * 50
    assert np.mean([a == b for a, b in zip(clf.predict(test), want)]) > 0.95
    # an unseen character is the unknown id, not an error
    p = clf.predict_proba(["xyz", "ωω"])
    assert p.shape == (2, 2) and np.allclose(p.sum(axis=1), 1)


@pytest.mark.parametrize("pairs, message", [
    ([], "no (label, text) pairs"),
    ([("a", "x"), ("b", "")], "pair 1 is ('b', '')"),
    ([("a", "x"), "b"], "pair 1 is 'b'"),
    ([("a", "x"), ("a", "y")], "a classifier needs two or more"),
])
def test_bad_pairs_are_one_line_errors(pairs, message):
    with pytest.raises(CorpusError) as e:
        train_classifier(pairs, steps=1)
    assert message in str(e.value)


def test_bad_options_and_texts():
    with pytest.raises(ConfigError, match="steps must be a positive integer"):
        train_classifier([("a", "x"), ("b", "y")], steps=0)
    clf = train_classifier([("a", "x"), ("b", "y")], hidden=4, embed=2, steps=2)
    with pytest.raises(CorpusError, match="text 1 is ''"):
        clf.predict(["x", ""])
