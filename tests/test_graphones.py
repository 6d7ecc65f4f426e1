"""The joint-sequence (graphone) model that re-ranks a transducer's n best (issue 32):
the alignment kernel against brute-force enumeration of every cut, the n-gram model
against a plain-Python modified Kneser-Ney, JointModel, its file, and re-ranking."""
import itertools
import math
from collections import Counter

import numpy as np
import pytest

from charrnn import _align
from charrnn.errors import CheckpointError
from charrnn.io.joint_file import joint_path, load_joint, save_joint
from charrnn.nn.graphones import JointModel
from charrnn.nn.ngram import NGram


# ---- the alignment kernel ---------------------------------------------------------------

def cuts(l, m, both, max_x=2, max_y=2):
    """Every path from (0, 0) to (l, m): steps (a, b), a in 1..max_x source symbols, b in
    0..max_y target tokens, (2, 2) only with both."""
    if l == 0:
        return [[]] if m == 0 else []
    out = []
    for a in range(1, max_x + 1):
        for b in range(max_y + 1):
            if a <= l and b <= m and (both or (a, b) != (2, 2)):
                out += [[(a, b)] + rest for rest in cuts(l - a, m - b, both, max_x, max_y)]
    return out


def codes(x, y, path, nx, ny, max_x=2, max_y=2):
    i = j = 0
    for a, b in path:
        cx = x[i] if max_x == 1 else x[i] * nx + (x[i + 1] if a == 2 else 0)
        cy = 0 if b == 0 else y[j] if max_y == 1 else y[j] * ny + (y[j + 1] if b == 2 else 0)
        yield cx, cy
        i, j = i + a, j + b


def arrays(pairs):
    xs = np.concatenate([np.array(x, np.int32) for x, _ in pairs])
    ys = np.concatenate([np.array(y, np.int32) for _, y in pairs] + [np.zeros(0, np.int32)])
    xoff = np.cumsum([0] + [len(x) for x, _ in pairs]).astype(np.int64)
    yoff = np.cumsum([0] + [len(y) for _, y in pairs]).astype(np.int64)
    return xs, xoff, ys.astype(np.int32), yoff


PAIRS = [([1, 2, 3], [1, 2]), ([2], [3]), ([1, 1, 2, 3], [3, 2, 1, 1, 2]), ([3, 1], []),
         ([2, 2, 2, 2, 1], [1]), ([1], [1, 2, 3])]   # the last has no path: 3 tokens > 2


@pytest.mark.parametrize("both", [False, True])
def test_em_counts_are_the_posteriors_of_every_cut(both):
    nx = ny = 4
    rng = np.random.default_rng(0)
    table = rng.random((nx * nx, ny * ny))
    counts = np.zeros_like(table)
    ll, dead = _align.em_counts(*arrays(PAIRS), table, counts, nx, ny, 2, 2, many_to_many=both)
    want, want_ll = np.zeros_like(table), 0.0
    for x, y in PAIRS:
        probs = [(list(codes(x, y, p, nx, ny)), None) for p in cuts(len(x), len(y), both)]
        probs = [(c, math.prod(table[g] for g in c)) for c, _ in probs]
        z = sum(p for _, p in probs)
        if z == 0:
            continue
        want_ll += math.log(z)
        for c, p in probs:
            for g in c:
                want[g] += p / z
    assert dead == 1
    assert ll == pytest.approx(want_ll, rel=1e-12)
    np.testing.assert_allclose(counts, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("both", [False, True])
def test_viterbi_is_the_best_cut(both):
    nx = ny = 4
    rng = np.random.default_rng(1)
    logtable = np.log(rng.random((nx * nx, ny * ny)))
    gx, gy, goff, score = _align.viterbi(*arrays(PAIRS), logtable, nx, ny, 2, 2, many_to_many=both)
    for k, (x, y) in enumerate(PAIRS):
        scored = [(sum(logtable[g] for g in codes(x, y, p, nx, ny)), p)
                  for p in cuts(len(x), len(y), both)]
        if not scored:
            assert score[k] == -np.inf and goff[k] == goff[k + 1]
            continue
        best, path = max(scored, key=lambda t: t[0])
        assert score[k] == pytest.approx(best, rel=1e-12)
        got = list(zip(gx[goff[k]:goff[k + 1]], gy[goff[k]:goff[k + 1]]))
        assert got == list(codes(x, y, path, nx, ny))


@pytest.mark.parametrize("max_x,max_y", [(1, 2), (2, 1), (1, 1)])
def test_chunks_of_one_on_a_side(max_x, max_y):
    nx = ny = 4
    rng = np.random.default_rng(2)
    table = rng.random((nx ** max_x, ny ** max_y))
    counts = np.zeros_like(table)
    _align.em_counts(*arrays(PAIRS), table, counts, nx, ny, max_x, max_y)
    gx, gy, goff, score = _align.viterbi(*arrays(PAIRS), np.log(table), nx, ny, max_x, max_y)
    want = np.zeros_like(table)
    for k, (x, y) in enumerate(PAIRS):
        paths = [list(codes(x, y, p, nx, ny, max_x, max_y))
                 for p in cuts(len(x), len(y), False, max_x, max_y)]
        probs = [math.prod(table[g] for g in c) for c in paths]
        if not paths:
            assert score[k] == -np.inf
            continue
        for c, p in zip(paths, probs):
            for g in c:
                want[g] += p / sum(probs)
        got = [tuple(map(int, g)) for g in zip(gx[goff[k]:goff[k + 1]], gy[goff[k]:goff[k + 1]])]
        assert got in paths and score[k] == pytest.approx(math.log(max(probs)), rel=1e-12)
    np.testing.assert_allclose(counts, want, rtol=1e-12, atol=1e-15)


def test_kernel_refuses_bad_arrays():
    xs, xoff, ys, yoff = arrays(PAIRS[:2])
    table = np.ones((16, 16))
    with pytest.raises(ValueError, match="source symbols"):
        _align.viterbi(xs + 5, xoff, ys, yoff, table, 4, 4)
    with pytest.raises(ValueError, match="shape"):
        _align.viterbi(xs, xoff, ys, yoff, np.ones((4, 4)), 4, 4)
    with pytest.raises(ValueError, match="offsets"):
        _align.viterbi(xs, xoff + 1, ys, yoff, table, 4, 4)
    with pytest.raises(ValueError, match="int32"):
        _align.viterbi(xs.astype(np.int64), xoff, ys, yoff, table, 4, 4)


# ---- the n-gram model -------------------------------------------------------------------

def reference_kn(seqs, vocab, order):
    """p(w | h) of interpolated modified Kneser-Ney, from the definitions, one query at a time."""
    eos = vocab + 1
    grams = [Counter() for _ in range(order + 1)]
    for s in seqs:
        p = [0] * (order - 1) + list(s) + [eos]
        for i in range(order - 1, len(p)):
            for k in range(1, order + 1):
                grams[k][tuple(p[i - k + 1:i + 1])] += 1
    c = {order: grams[order]}
    for k in range(order - 1, 0, -1):
        c[k] = Counter(g[1:] for g in grams[k + 1])

    def discounts(k):
        n = [max(sum(1 for v in c[k].values() if v == i), 1) for i in (1, 2, 3, 4)]
        y = n[0] / (n[0] + 2 * n[1])
        d = [0, 1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]]
        return [min(max(v, lo), hi) for v, lo, hi in zip(d, (0, .05, .05, .05), (0, 1, 2, 3))]
    d = {k: discounts(k) for k in c}

    def p(k, h, w):
        if k == 0:
            return 1 / (vocab + 2)
        follow = {g[-1]: v for g, v in c[k].items() if g[:-1] == h}
        total = sum(follow.values())
        if not total:
            return p(k - 1, h[1:], w)
        dk = d[k]
        gamma = sum(dk[min(v, 3)] for v in follow.values()) / total
        return max(follow.get(w, 0) - dk[min(follow.get(w, 0), 3)], 0) / total + \
            gamma * p(k - 1, h[1:], w)
    return p


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_ngram_is_modified_kneser_ney(order):
    rng = np.random.default_rng(order)
    vocab = 5
    seqs = [list(rng.integers(1, vocab + 1, rng.integers(0, 7))) + [1, 2] * int(rng.random() < 0.3)
            for _ in range(60)]
    g = NGram.train(seqs, vocab, order)
    p = reference_kn(seqs, vocab, order)
    tests = [list(rng.integers(1, vocab + 1, rng.integers(0, 6))) for _ in range(20)] + [[9, 1]]
    got = g.token_logprobs(tests)
    at = 0
    for s in tests:
        padded = [0] * (order - 1) + s + [vocab + 1]
        for i in range(order - 1, len(padded)):
            w = padded[i] if padded[i] <= vocab + 1 else vocab + 2   # 9: unknown
            want = p(order, tuple(padded[i - order + 1:i]), w)
            assert got[at] == pytest.approx(math.log(want), rel=1e-10), (s, i)
            at += 1
    assert at == len(got)
    np.testing.assert_allclose(g.logprobs(tests),
                               [got[a:b].sum() for a, b in itertools.pairwise(
                                   np.cumsum([0] + [len(s) + 1 for s in tests]))], rtol=1e-12)


def test_ngram_sums_to_one_after_any_history():
    rng = np.random.default_rng(7)
    vocab = 6
    seqs = [list(rng.integers(1, vocab + 1, rng.integers(1, 9))) for _ in range(200)]
    g = NGram.train(seqs, vocab, 3)
    for h in ([], [1], [2, 3], [6, 6, 6], [5, 4, 3, 2]):
        # every token, EOS (scored after h itself) and one unknown token
        total = sum(math.exp(g.token_logprobs([h + [w]])[len(h)]) for w in range(1, vocab + 1))
        total += math.exp(g.token_logprobs([h])[len(h)])
        total += math.exp(g.token_logprobs([h + [99]])[len(h)])
        assert total == pytest.approx(1.0, abs=1e-12), h


# ---- the joint model, its file, re-ranking ----------------------------------------------

WORDS = [("cat", "K AE T"), ("cab", "K AE B"), ("bat", "B AE T"), ("tab", "T AE B"),
         ("bake", "B EY K"), ("cake", "K EY K"), ("take", "T EY K"), ("tact", "T AE K T"),
         ("phat", "F AE T"), ("phab", "F AE B"), ("act", "AE K T"), ("back", "B AE K")]


def joint():
    return JointModel.train([(w, p.split()) for w, p in WORDS], order=3)


def test_joint_model_prefers_the_right_pronunciation():
    j = joint()
    lp = j.logprobs(["cat", "cat", "phab", "phab", "cake"],
                    [["K", "AE", "T"], ["K", "EY", "T"], ["F", "AE", "B"], ["P", "AE", "B"],
                     ["K", "EY", "K"]])
    assert lp[0] > lp[1] and np.isfinite(lp[1])   # (a, EY): never seen, yet cut
    assert lp[2] > lp[3]
    assert lp[3] == -np.inf and np.isfinite(lp[4])   # P: a token never seen
    assert j.logprobs(["a"], [["AE", "K", "T"]])[0] == -np.inf   # 3 tokens, 1 letter
    assert j.logprobs(["cat!"], [["K", "AE", "T"]])[0] == -np.inf   # "!": never seen
    # graphones of 1-2 letters with 0-2 phonemes, never 2 with 2
    xc, yc = np.divmod(j.cells, j.table.shape[1])
    assert np.all(xc >= j.nx) and not np.any((xc % j.nx > 0) & (yc % j.ny > 0) & (yc >= j.ny))


def test_pick_reranks_by_the_weighted_sum():
    j = joint()
    lists = [[("K EY T", -0.5), ("K AE T", -0.7)], [], [("B AE T", -0.1)],
             [("K AE T X", -0.1), ("K AE T", -0.2)], [("Q", -0.3), ("K", -0.2)]]
    sources = ["cat", "x", "bat", "cat", "?"]
    j.weight = 0.0
    assert j.pick(sources, lists, str.split) == ["K EY T", "", "B AE T", "K AE T X", "K"]
    j.weight = 1.0
    # X: a token never seen, so no cut; "?": never seen, so neither candidate has one
    assert j.pick(sources, lists, str.split) == ["K AE T", "", "B AE T", "K AE T", "K"]


def test_joint_file_round_trip(tmp_path):
    j = joint()
    j.weight, j.info = 0.7, {"note": "x"}
    path = tmp_path / "g2p.joint.safetensors"
    save_joint(j, path)
    k = load_joint(path)
    assert k.weight == 0.7 and k.info == {"note": "x"}
    srcs, tgts = [w for w, _ in WORDS] + ["cab"], [p.split() for _, p in WORDS] + [["K"]]
    np.testing.assert_array_equal(k.logprobs(srcs, tgts), j.logprobs(srcs, tgts))
    assert joint_path(tmp_path / "run" / "best.safetensors") == tmp_path / "run" / "joint.safetensors"
    assert joint_path(tmp_path / "g2p.safetensors") == path
    (tmp_path / "bad.safetensors").write_bytes(b"\x10" + b"\0" * 7 + b'{"a": 1}' * 2)
    with pytest.raises(CheckpointError, match="cannot load"):
        load_joint(tmp_path / "bad.safetensors")


def test_large_alphabets_cut_in_smaller_chunks(monkeypatch):
    from charrnn.nn import graphones
    assert graphones.chunk_sizes(27, 70) == (2, 2)                   # CMUdict: 3.6M cells
    assert graphones.chunk_sizes(200, 40) == (1, 2)                  # 200 * 40^2 = 320k
    assert graphones.chunk_sizes(40, 200) == (2, 1)
    assert graphones.chunk_sizes(5000, 5000) == (1, 1)
    monkeypatch.setattr(graphones, "MAX_TABLE", 9 * 7 * 7)   # 8 letters, 6 phonemes: (1, 2) fits
    j = JointModel.train([(w, p.split()) for w, p in WORDS], order=3)
    assert (j.max_x, j.max_y) == (1, 2)
    lp = j.logprobs(["cat", "cat"], [["K", "AE", "T"], ["K", "EY", "T"]])
    assert np.isfinite(lp[0]) and lp[0] > lp[1]
