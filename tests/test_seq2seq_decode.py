"""Decoding the encoder-decoder (charrnn.nn.seq2seq_decode, kernels/_decode.pyx): the
compiled greedy loop = the float64 specification's greedy decoding token for token,
greedy = beam 1, beam search = a reference beam search and, wide enough, exhaustive
search; a batch of sources = each alone; ties; the kernel's shape errors; decoding scores
as training does."""
import itertools

import numpy as np
import pytest

from charrnn import _attn
from charrnn.errors import ConfigError
from charrnn.nn import isa
from charrnn.nn import reference_bidir as rb
from charrnn.nn import reference_seq2seq as rs
from charrnn.nn.seq2seq import BOS, EOS, Seq2Seq
from charrnn.nn.seq2seq_decode import beam_search, beam_search_batch, greedy, nbest_batch
from test_seq2seq import CASES, SIZES, batch, model, params64


# ---- decoding ----------------------------------------------------------------------------

def reference_decoder(m, src):
    """(start, step) of one source (ids (l,)) by the float64 specification: step(prev,
    state) -> (state, lp (Vt,) with lp[BOS] = -inf); a state is (cell state, ctx)."""
    cell, attention, p = m.cfg.cell, m.cfg.attention, params64(m)
    enc = {k[4:]: v for k, v in p.items() if k.startswith("enc.")}
    e = rb.forward(cell, p["src_embed"][src][:, None, :], np.array([len(src)]), enc)[0][:, 0]
    K, Hd = e @ p["attn.W_k"], p["dec.weight_hh"].shape[1]

    def step(prev, state):
        cs, ctx = state
        cs, _ = rs._cell_step(cell, np.concatenate([p["tgt_embed"][prev], ctx]), cs, p)
        ctx = rs.attend_forward(attention, cs[0][None], K[None], e[None], [len(src)],
                                p.get("attn.W_q"), p.get("attn.v"))[0][0]
        z = p["out.weight"] @ np.concatenate([cs[0], ctx]) + p["out.bias"]
        lp = z - z.max() - np.log(np.exp(z - z.max()).sum())
        lp[BOS] = -np.inf
        return (cs, ctx), lp
    start = (tuple(np.zeros(Hd) for _ in range(2 if cell == "lstm" else 1)), np.zeros(e.shape[1]))
    return start, step


def reference_greedy(m, src, max_len):
    """Greedy decoding of one source, step by step: (tokens, score)."""
    state, step = reference_decoder(m, src)
    prev, out, score = BOS, [], 0.0
    for _ in range(max_len):
        state, lp = step(prev, state)
        prev = int(lp.argmax())
        score += lp[prev]
        if prev == EOS:
            break
        out.append(prev)
    return out, score


def reference_beam(m, src, beam, max_len):
    """Beam search of one source as seq2seq_decode's docstring states it, hypothesis by
    hypothesis: (tokens, score)."""
    start, step = reference_decoder(m, src)
    live, finished = [(0.0, [], start)], []          # (score, tokens, state)
    for s in range(max_len):
        cands = []
        for b, (score, toks, state) in enumerate(live):
            new, lp = step(toks[-1] if toks else BOS, state)
            cands += [(score + lp[t], b * len(lp) + t, toks, t, new) for t in range(len(lp))]
        cands.sort(key=lambda c: (-c[0], c[1]))          # stable: flat index breaks ties
        keep = []
        for score, _, toks, t, new in cands[:beam]:
            if not np.isfinite(score):
                continue
            if t == EOS or s == max_len - 1:
                finished.append((score, toks if t == EOS else toks + [t]))
            else:
                keep.append((score, toks + [t], new))
        if not keep or (finished and max(f[0] for f in finished) >= keep[0][0]):
            break
        live = keep
    best = max(range(len(finished)), key=lambda i: (finished[i][0], -i))
    return finished[best][1], finished[best][0]


def reference_score(m, src, seq):
    """The summed log-probability of target ids seq (EOS included if it ends so)."""
    p = params64(m)
    g = {k: np.zeros_like(v) for k, v in p.items()}
    return -rs.row_loss_and_grad(m.cfg.cell, m.cfg.attention, p, np.asarray(src),
                                 np.array([BOS] + list(seq)), g)


def random_sources(rng, n, longest=6):
    from charrnn.nn.classifier import pad_batch
    srcs = [rng.integers(0, 5, rng.integers(1, longest + 1)) for _ in range(n)]
    return srcs, *pad_batch([list(s) for s in srcs])


@pytest.mark.parametrize("cell,attention", CASES)
@pytest.mark.parametrize("layers", [1, 2])
def test_greedy_matches_the_specification(cell, attention, layers):
    # the compiled loop over a padded batch = the specification's step-by-step greedy
    # decoding of each row alone, token for token
    m = Seq2Seq(dict(SIZES, cell=cell, attention=attention, layers=layers), dtype=np.float64)
    rng = np.random.default_rng(20 + layers)
    for p in m.params.values():
        p[...] = rng.uniform(-1.5, 1.5, p.shape)
    srcs, src, src_len = random_sources(rng, 10)
    ends = cuts = 0
    for shift, max_len in itertools.product((-2, 0, 2), (2, 7)):
        # EOS made less or more likely: outputs cut at max_len, and outputs ended by EOS
        m.params["out.bias"][EOS] += shift
        outs, scores = greedy(m, src, src_len, max_len)
        for s, out, score in zip(srcs, outs, scores):
            want, wscore = reference_greedy(m, s, max_len)
            assert out == want and abs(score - wscore) < 1e-9
            ends += len(out) < max_len
            cuts += len(out) == max_len
        m.params["out.bias"][EOS] -= shift
    assert ends and cuts   # some rows end with EOS, others are cut at max_len


@pytest.mark.parametrize("cell,attention", CASES)
def test_float32_greedy_on_every_tier(cell, attention):
    m = model(cell, attention, scale=1.5)
    srcs, src, src_len = random_sources(np.random.default_rng(21), 8)
    want, wscores = greedy(m, src, src_len, 6)
    m32 = model(cell, attention, np.float32, scale=1.5)
    from charrnn.nn import cells
    for tier in isa.available():
        with isa.use(tier):
            for backend in ("own", "blas"):
                with cells.gemm_backend(backend):
                    outs, scores = greedy(m32, src, src_len, 6)
                assert outs == want, (tier, backend)
                np.testing.assert_allclose(scores, wscores, atol=1e-4)


@pytest.mark.parametrize("cell,attention", CASES)
def test_greedy_is_beam_one(cell, attention):
    m = model(cell, attention, scale=1.5)
    srcs, src, src_len = random_sources(np.random.default_rng(9), 6)
    outs, scores = greedy(m, src, src_len, 6)
    for s, o, sc in zip(srcs, outs, scores):
        out, score = beam_search(m, s, 1, 6)
        assert out == o and abs(score - sc) < 1e-9
    # a padded batch decodes like its rows one at a time
    assert outs == [greedy(m, s.reshape(-1, 1), [len(s)], 6)[0][0] for s in srcs]


def exhaustive_ranking(m, src, max_len):
    """Every output the decoders may produce, scored by the specification, best first
    (a stable sort: equal scores in the order of enumeration)."""
    Vt = m.cfg.tgt_vocab
    toks = [t for t in range(Vt) if t not in (BOS, EOS)]
    seqs = [list(p) + [EOS] for k in range(max_len) for p in itertools.product(toks, repeat=k)]
    seqs += [list(p) for p in itertools.product(toks, repeat=max_len)]
    ranked = [([t for t in q if t != EOS], reference_score(m, src, q)) for q in seqs]
    return sorted(ranked, key=lambda r: -r[1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("attention", rs.ATTENTIONS)
def test_wide_beam_is_exhaustive_search_and_its_n_best_the_ranking(cell, attention):
    sizes = dict(SIZES, tgt_vocab=4)   # BOS, EOS and two tokens: 15 outputs of <= 3
    m = Seq2Seq(dict(sizes, cell=cell, attention=attention), dtype=np.float64)
    rng = np.random.default_rng(10)
    for trial in range(4):
        for p in m.params.values():
            p[...] = rng.uniform(-1.5, 1.5, p.shape)
        src = rng.integers(0, 5, 3)
        want = exhaustive_ranking(m, src, 3)
        got, score = beam_search(m, src, 16, 3)          # a beam of 16 sees all 15
        assert got == want[0][0] and abs(score - want[0][1]) < 1e-9
        top = nbest_batch(m, src.reshape(-1, 1), [3], 16, 3, 6)[0]
        assert [o for o, _ in top] == [o for o, _ in want[:6]]
        np.testing.assert_allclose([sc for _, sc in top], [sc for _, sc in want[:6]], atol=1e-9)


@pytest.mark.parametrize("cell,attention", CASES)
def test_n_best_lists_are_sorted_distinct_and_led_by_the_best(cell, attention):
    m = model(cell, attention, scale=1.5)
    srcs, src, src_len = random_sources(np.random.default_rng(23), 6)
    best, best_scores = beam_search_batch(m, src, src_len, 5, 5)
    for n in (1, 3, 5):
        lists = nbest_batch(m, src, src_len, 5, 5, n)
        for s, lst, b, bs in zip(srcs, lists, best, best_scores):
            assert 1 <= len(lst) <= n and lst[0] == (b, bs)
            scores = [sc for _, sc in lst]
            assert scores == sorted(scores, reverse=True)
            assert len({tuple(o) for o, _ in lst}) == len(lst)
            for o, sc in lst:     # each score is its output's, as the specification says
                assert abs(sc - reference_score(m, s, o + ([EOS] if len(o) < 5 else []))) < 1e-9
    with pytest.raises(ConfigError, match="at most the beam"):
        nbest_batch(m, src, src_len, 2, 5, 3)


@pytest.mark.parametrize("cell,attention", CASES)
def test_beam_batch_equals_sources_alone_and_the_reference(cell, attention):
    m = model(cell, attention, scale=1.5)
    srcs, src, src_len = random_sources(np.random.default_rng(22), 7)
    for beam in (2, 3, 5):
        outs, scores = beam_search_batch(m, src, src_len, beam, 5)
        for s, o, sc in zip(srcs, outs, scores):
            alone = beam_search(m, s, beam, 5)
            assert (o, sc) == alone
            want, wscore = reference_beam(m, s, beam, 5)
            assert o == want and abs(sc - wscore) < 1e-9
            assert abs(sc - reference_score(m, s, o + ([EOS] if len(o) < 5 else []))) < 1e-9


def test_ties_go_to_the_first_candidate():
    # every token but BOS and EOS equally likely at every step: greedy takes the lowest
    # id, beam search keeps candidates in (score, hypothesis, token) order
    m = model("lstm", "luong")
    m.params["out.weight"][...] = 0
    m.params["out.bias"][...] = [0, -1, 0, 0, 0, 0]
    src = np.array([1, 2, 3])
    assert greedy(m, src.reshape(-1, 1), [3], 4)[0] == [[2, 2, 2, 2]]
    for beam in (2, 3, 7):
        got = beam_search(m, src, beam, 4)
        assert got == reference_beam(m, src, beam, 4)
        # a beam of 7 reaches EOS at the first step: nothing longer can score more
        assert got[0] == ([2, 2, 2, 2] if beam < 7 else [])
    m.params["out.bias"][EOS] = 0   # EOS ties too, and comes first: empty outputs
    assert greedy(m, src.reshape(-1, 1), [3], 4)[0] == [[]]
    assert beam_search(m, src, 3, 4)[0] == []


def test_decode_kernel_refuses_bad_shapes():
    from charrnn import _decode
    from charrnn.nn.seq2seq_decode import _output, _weights
    m = model("gru", "bahdanau")
    src, src_len, _, _ = m.check(*batch(np.random.default_rng(12))[:2])
    E, K, _ = m.encode(src, src_len)
    cell, (W_q, v) = _weights(m)
    N = E.shape[0]
    args = lambda K=K, E=E, lens=src_len, W_q=W_q, L=4: (  # noqa: E731
        _decode.CELLS["gru"], _attn.KINDS["bahdanau"], *cell, K, E, W_q, v, lens, False,
        *_output(m))
    outs = lambda L=4: (np.empty((N, L), np.int32), np.empty(N, np.int64), np.empty(N))  # noqa: E731
    for bad, msg in [(args(K=K[:, :, :2].copy()), "inconsistent shapes"),
                     (args(W_q=W_q[:2].copy()), "inconsistent shapes"),
                     (args(lens=np.array([9, 1, 1])), "lengths")]:
        with pytest.raises(ValueError, match=msg) as e:
            _decode.greedy(*bad, *outs())
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        _decode.greedy(*args(), *outs(0))
    nb = lambda n=1, L=4: (np.empty((N, n, L), np.int32), np.empty((N, n), np.int64),  # noqa: E731
                           np.empty((N, n)))
    with pytest.raises(ValueError, match="sources of beam"):
        _decode.beam(*args(), 2, *nb())          # 3 rows for 3 sources of beam 2
    with pytest.raises(ValueError, match="sources of beam"):
        _decode.beam(*args(), 1, *nb(2))         # 2 best of a beam of 1
    assert _decode.greedy(*args(), *outs()) >= 1


@pytest.mark.parametrize("cell,attention", CASES)
def test_decoding_steps_score_like_training(cell, attention):
    # step() (decoding, from Python) and the compiled loop (training) are one model: the
    # greedy output, fed back as the target, costs exactly minus its greedy score
    m = model(cell, attention, scale=1.5)
    src = np.array([[1], [3], [2]])
    outs, scores = greedy(m, src, [3], 8)
    seq = outs[0] + ([EOS] if len(outs[0]) < 8 else [])   # cut at max_len: no EOS
    loss = m.loss(src, [3], np.array([BOS] + seq).reshape(-1, 1), [len(seq)])
    assert abs(loss * len(seq) + scores[0]) < 1e-9
