"""Transducers decoded as one (charrnn.training.seq2seq_ensemble, `--ensemble`): teacher-
forced scores = the float64 specification's = the decoder's own scores of its outputs; an
ensemble of one = its member; an ensemble's choice = the best mean score among its
members' proposals, computed here by brute force; vocabularies that differ; errors; the
CLI as users meet it."""
import numpy as np
import pytest

from charrnn.errors import ConfigError, ShapeError
from charrnn.nn import reference_seq2seq as rs
from charrnn.nn.seq2seq import BOS, EOS
from charrnn.nn.seq2seq_decode import greedy, nbest_batch, score_targets
from charrnn.training.seq2seq import train_seq2seq
from charrnn.training.seq2seq_ensemble import Ensemble
from test_classify_cli import invoke, one_line
from test_seq2seq import CASES, batch, model, params64
from test_seq2seq_cli import TINY, reversals, runner, trained  # noqa: F401 (fixtures)


# ---- teacher-forced scores ---------------------------------------------------------------

@pytest.mark.parametrize("cell,attention", CASES)
@pytest.mark.parametrize("dt,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_scores_are_the_specifications_row_losses(cell, attention, dt, tol):
    m = model(cell, attention, dt)
    src, src_len, tgt, tgt_len = batch(np.random.default_rng(3), S=5, T=4)
    got = score_targets(m, src, src_len, tgt, tgt_len)
    p = params64(m)
    for n in range(src.shape[1]):
        g = {k: np.zeros_like(v) for k, v in p.items()}
        want = -rs.row_loss_and_grad(cell, attention, p, src[:src_len[n], n],
                                     tgt[:tgt_len[n] + 1, n], g)
        assert abs(got[n] - want) < tol * max(1, abs(want)), (n, got[n], want)


WORDS = ["ab", "cab", "bcab", "ccc", "a", "acbca", "bb"]


# ---- ensembles ----------------------------------------------------------------------------

PAIRS = [(s, " ".join(s[::-1].upper())) for s in
         ["ab", "ba", "abc", "cab", "bca", "ac", "ca", "cc", "bb", "abcb", "cba", "acb"]]
KINDS = [("gru", "luong", 60, 1), ("lstm", "bahdanau", 80, 2), ("gru", "bahdanau", 40, 3),
         ("lstm", "luong", 50, 5)]


@pytest.fixture(scope="module")
def members():
    # small, different, partly trained transducers: they disagree on some words
    return [train_seq2seq(PAIRS, tokens="words", cell=c, attention=a, embed=8, hidden=8,
                          decoder=16, attn=8, steps=s, batch_size=8, seed=seed)
            for c, a, s, seed in KINDS]


@pytest.mark.parametrize("k", range(len(KINDS)))
@pytest.mark.parametrize("max_len", [2, 12])
def test_scores_equal_what_decoding_gave_its_outputs(members, k, max_len):
    # finished outputs score their tokens and EOS; outputs cut at max_len (a finished
    # one has max_len - 1 tokens at most) their tokens only
    m = members[k].model
    src, src_len = members[k].encode_sources(WORDS)
    outs, scores = greedy(m, src, src_len, max_len)
    pairs = list(zip(range(len(WORDS)), outs, scores))
    pairs += [(n, o, s) for n, lst in enumerate(nbest_batch(m, src, src_len, 3, max_len, 3))
              for o, s in lst]
    done = [len(o) < max_len for _, o, _ in pairs]
    assert all(done) if max_len == 12 else not all(done)
    T = max(len(o) for _, o, _ in pairs) + 2
    tgt = np.zeros((T, len(pairs)), np.int64)
    for j, (_, o, _) in enumerate(pairs):
        tgt[:len(o) + 2, j] = [BOS, *o, EOS]
    cols = [n for n, _, _ in pairs]
    lens = [len(o) + d for (_, o, _), d in zip(pairs, done)]
    got = score_targets(m, src[:, cols], src_len[cols], tgt, lens)
    np.testing.assert_allclose(got, [s for _, _, s in pairs], atol=1e-4)
    # each source encoded once for all its outputs: the same scores
    np.testing.assert_allclose(score_targets(m, src, src_len, tgt, lens, of=cols), got,
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(ShapeError, match="of must be"):
        score_targets(m, src, src_len, tgt, lens, of=[len(WORDS)] * len(pairs))


@pytest.mark.parametrize("beam", [1, 3])
def test_an_ensemble_of_one_is_its_member(members, beam):
    m = members[0]
    e = Ensemble([m])
    assert e.transduce(WORDS, beam) == m.transduce(WORDS, beam)
    for mine, theirs in zip(e.nbest(WORDS, 3), m.nbest(WORDS, 3)):
        assert [o for o, _ in mine] == [o for o, _ in theirs]
        np.testing.assert_allclose([s for _, s in mine], [s for _, s in theirs], atol=1e-4)


@pytest.mark.parametrize("beam", [1, 2, 4])
def test_the_ensemble_picks_the_best_mean_score_of_all_proposals(members, beam):
    e = Ensemble(members)
    got = e.nbest(WORDS, 2, beam)
    disagree = 0
    for i, w in enumerate(WORDS):
        props = []
        for m in members:   # each member's proposals, best first, by its own search
            outs = [m.transduce([w], 1)[0]] if beam == 1 else [o for o, _ in m.nbest([w], beam)[0]]
            props += [o for o in outs if o not in props]
        disagree += len(props) > beam
        mean = [np.mean([-m.loss([(w, o)]) * (len(o.split()) + 1) for m in members])
                for o in props]
        best = sorted(range(len(props)), key=lambda j: -mean[j])[:2]
        assert [o for o, _ in got[i]] == [props[j] for j in best], w
        np.testing.assert_allclose([s for _, s in got[i]], [mean[j] for j in best], atol=1e-4)
    assert disagree, "the members never disagreed: the test would not see the re-ranking"
    assert e.transduce(WORDS, beam) == [lst[0][0] for lst in got]


@pytest.mark.parametrize("max_len", [2, None])
def test_own_search_scores_stand_in_for_teacher_forced_ones(members, max_len):
    # the members' own scores of their finished proposals are reused; those cut at
    # max_len (scored without EOS by the search) are scored again, with EOS
    e = Ensemble(members[:2])
    got = e.nbest(WORDS, 3, 3, max_len=max_len)
    flat = [(w, o, sc) for w, lst in zip(WORDS, got) for o, sc in lst]
    cut = [len(o.split()) == (max_len or e.max_len) for _, o, _ in flat]
    assert any(cut) if max_len == 2 else not any(cut)
    fresh = e.logprobs([w for w, _, _ in flat], [o for _, o, _ in flat]).mean(0)
    np.testing.assert_allclose([sc for _, _, sc in flat], fresh, atol=1e-4)
    known = np.full((2, len(flat)), np.nan)
    known[1, 0] = 123.0
    kept = e.logprobs([w for w, _, _ in flat], [o for _, o, _ in flat], known=known)
    assert kept[1, 0] == 123.0 and np.isnan(known[0, 0])   # kept; the argument not written
    np.testing.assert_allclose(kept[0], e.logprobs([w for w, _, _ in flat],
                                                   [o for _, o, _ in flat])[0])
    with pytest.raises(ConfigError, match="known must have shape"):
        e.logprobs(["ab"], ["B A"], known=np.zeros((3, 1)))


def test_threads_keep_the_result(members):
    e = Ensemble(members)
    assert e.nbest(WORDS * 40, 3, threads=2) == e.nbest(WORDS * 40, 3)
    twice = Ensemble([members[0], members[0]])   # one model, never in two threads at once
    assert twice.nbest(WORDS, 2, threads=2) == Ensemble([members[0]]).nbest(WORDS, 2)


def test_members_with_other_vocabularies(members):
    # trained without the letter c: it never writes C, so C's proposals score -inf for it
    other = train_seq2seq([p for p in PAIRS if "c" not in p[0]], tokens="words", embed=8,
                          hidden=8, decoder=16, attn=8, steps=30, batch_size=8, seed=4)
    assert "C" not in other.tgt_vocab
    e = Ensemble([members[0], other])
    lp = e.logprobs(["ab", "cab"], ["B A", "B A C"])
    assert np.isfinite(lp[:, 0]).all() and np.isfinite(lp[0, 1]) and lp[1, 1] == -np.inf
    out = e.nbest(["cab"], 4, 4)[0]
    finite = [o for o, s in out if np.isfinite(s)]
    assert finite and all("C" not in o.split() for o in finite)


def test_ensemble_errors(members):
    with pytest.raises(ConfigError, match="at least one"):
        Ensemble([])
    chars = train_seq2seq(PAIRS[:4], tokens="chars", embed=4, hidden=4, decoder=8, attn=4,
                          steps=2, batch_size=4)
    with pytest.raises(ConfigError, match="differ in kind"):
        Ensemble([members[0], chars])
    with pytest.raises(ConfigError, match="beam must be"):
        Ensemble(members).nbest(["ab"], 1, 0)


def test_score_reports_the_ensembles_error_rates(members):
    e = Ensemble(members)
    sources, targets = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    r = e.score(sources, targets, beam=2)
    assert r["members"] == len(members) and r["pairs"] == len(PAIRS) and r["unknown_targets"] == 0
    hyps = e.transduce(sources, 2)
    assert r["word_errors"] == sum(h != t for h, t in zip(hyps, targets))
    tokens = sum(len(t.split()) + 1 for t in targets)
    want = -np.mean([[-m.loss([p]) * (len(p[1].split()) + 1) for p in PAIRS] for m in members],
                    axis=0).sum() / tokens
    assert r["loss"] == pytest.approx(want, rel=1e-4)


# ---- on the command line ------------------------------------------------------------------

@pytest.fixture(scope="module")
def second(tmp_path_factory):
    from click.testing import CliRunner
    from charrnn.cli import main
    d = tmp_path_factory.mktemp("s2s-seed2")
    tsv = reversals(d / "rev.tsv")
    r = CliRunner().invoke(main, ["train", str(tsv), "--out", str(d / "run"), "--max-steps",
                                  "300", "--seed", "2", *TINY], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "run"


def test_cli_transduce_and_eval_an_ensemble(runner, trained, second, tmp_path):
    from charrnn.training.seq2seq import load_transducer
    ens = Ensemble([load_transducer(trained), load_transducer(second)])
    words = ["abc", "edcba", "bad", "cab"]
    r = invoke(runner, "transduce", trained, *words, "--ensemble", second, "--beam", "3")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [f"{w}\t{o}" for w, o in zip(words, ens.transduce(words, 3))]
    r = invoke(runner, "transduce", trained, "abc", "--ensemble", second, "--nbest", "2")
    lines = [l.split("\t") for l in r.output.splitlines()]
    assert [l[1] for l in lines] == [o for o, _ in ens.nbest(["abc"], 2)[0]]
    test = reversals(tmp_path / "test.tsv", n=40, seed=9)
    r = invoke(runner, "eval", trained, test, "--ensemble", second, "--beam", "2")
    assert r.exit_code == 0 and "an ensemble of 2 models" in r.output, r.output
    want = ens.evaluate(str(test), beam=2)
    assert f"word error rate {want['wer']:.4f}" in r.output


def test_cli_ensemble_errors_are_one_line(runner, trained, tmp_path):
    r = invoke(runner, "transduce", trained, "abc", "--ensemble", tmp_path / "nothing")
    assert "nothing" in one_line(r)
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcabc hello world\n" * 200)
    r = invoke(runner, "train", corpus, "--out", tmp_path / "lm", "--max-steps", "3",
               "--hidden", "8", "--max-minutes", "0", "--threads", "1")
    assert r.exit_code == 0, r.output
    r = invoke(runner, "transduce", trained, "abc", "--ensemble", tmp_path / "lm")
    assert "language model" in one_line(r)
    r = invoke(runner, "eval", tmp_path / "lm", corpus, "--ensemble", trained)
    assert r.exit_code == 2 and "--ensemble is for transducers" in r.output
