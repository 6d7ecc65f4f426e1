"""The encoder-decoder with attention: the specification against finite differences, the
compiled attention kernel and model against the specification (float64 tight, float32
loose, every ISA tier), masks, errors, and a toy task the training API must learn.
Decoding: tests/test_seq2seq_decode.py."""
import itertools

import numpy as np
import pytest

from charrnn import _attn
from charrnn.errors import ConfigError, ShapeError
from charrnn.nn import isa
from charrnn.nn import reference_seq2seq as rs
from charrnn.nn.seq2seq import BOS, Seq2Seq
from charrnn.nn.seq2seq_decode import beam_search
from charrnn.training.seq2seq import train_seq2seq

CASES = list(itertools.product(["lstm", "gru"], rs.ATTENTIONS))
SIZES = dict(embed=3, hidden=2, decoder=3, attn=4, src_vocab=5, tgt_vocab=6)


def batch(rng, S=4, T=3, N=3):
    src = rng.integers(0, 5, (S, N))
    tgt = rng.integers(0, 6, (T + 1, N))
    tgt[0] = BOS
    return src, np.array([S, 1, 3])[:N], tgt, np.array([2, T, 1])[:N]


def model(cell, attention, dtype=np.float64, seed=0, scale=0.8):
    m = Seq2Seq(dict(cell=cell, attention=attention, **SIZES), dtype=dtype)
    rng = np.random.default_rng(seed)
    for p in m.params.values():
        p[...] = rng.uniform(-scale, scale, p.shape)
    return m


def params64(m):
    return {k: v.astype(np.float64) for k, v in m.params.items()}


# ---- the specification ------------------------------------------------------------------

@pytest.mark.parametrize("cell,attention", CASES)
def test_reference_matches_finite_differences(cell, attention):
    m = model(cell, attention)
    p = params64(m)
    b = batch(np.random.default_rng(1))
    loss, g = rs.loss_and_grad(cell, attention, p, *b)
    rng = np.random.default_rng(2)
    for name in p:   # a few coordinates of every parameter
        for i in rng.choice(p[name].size, min(4, p[name].size), replace=False):
            old = p[name].flat[i]
            p[name].flat[i] = old + 1e-6
            up = rs.loss_and_grad(cell, attention, p, *b)[0]
            p[name].flat[i] = old - 1e-6
            down = rs.loss_and_grad(cell, attention, p, *b)[0]
            p[name].flat[i] = old
            assert abs((up - down) / 2e-6 - g[name].flat[i]) < 1e-7, (name, i)


# ---- the attention kernel ----------------------------------------------------------------

def kernel_step(kind, q, K, E, W_q, v, lengths, dctx, dt, own):
    """The compiled forward and backward of one step -> (ctx, alpha, grads dict)."""
    N, S, C = E.shape
    A = K.shape[2]
    c = lambda a: np.ascontiguousarray(a, dt)  # noqa: E731
    bah = kind == "bahdanau"
    e2, e1, e3 = np.empty((0, 0), dt), np.empty(0, dt), np.empty((0, 0, 0), dt)
    Wq, vv = (c(W_q), c(v)) if bah else (e2, e1)
    tanhs, qW = (np.empty((N, S, A), dt), np.empty((N, A), dt)) if bah else (e3, e2)
    alpha, ctx = np.empty((N, S), dt), np.empty((N, C), dt)
    k = _attn.KINDS[kind]
    _attn.step_forward(k, c(q), c(K), c(E), Wq, vv, lengths, own, alpha, ctx, tanhs, qW)
    g = dict(dq=np.zeros((N, q.shape[1]), dt), dK=np.zeros(K.shape, dt), dE=np.zeros(E.shape, dt),
             dW_q=np.zeros(W_q.shape, dt) if bah else e2, dv=np.zeros(A, dt) if bah else e1)
    _attn.step_backward(k, c(dctx), c(q), c(K), c(E), c(W_q.T) if bah else e2, vv, lengths,
                        alpha, tanhs, own, g["dq"], g["dK"], g["dE"], g["dW_q"], g["dv"],
                        np.empty((N, S), dt), qW)
    return ctx, alpha, g


@pytest.mark.parametrize("kind", rs.ATTENTIONS)
@pytest.mark.parametrize("dt,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_attention_kernel_matches_reference_on_every_tier(kind, dt, tol):
    rng = np.random.default_rng(3)
    N, S, C, Hd = 4, 6, 5, 3
    A = 7 if kind == "bahdanau" else Hd
    lengths = np.array([6, 1, 3, 5], np.int64)
    q, E = rng.standard_normal((N, Hd)), rng.standard_normal((N, S, C))
    W_k, W_q, v = rng.standard_normal((C, A)), rng.standard_normal((Hd, A)), rng.standard_normal(A)
    dctx = rng.standard_normal((N, C))
    K = np.empty((N, S, A))
    _attn.keys_forward(E, W_k, lengths, False, K)
    ctx, alpha, cache = rs.attend_forward(kind, q, K, E, lengths, W_q, v)
    want = dict(dq=np.zeros_like(q), dK=np.zeros_like(K), dE=np.zeros_like(E),
                dW_q=np.zeros_like(W_q), dv=np.zeros_like(v))
    rs.attend_backward(dctx, cache, *want.values())
    for tier in isa.available():
        with isa.use(tier):
            for own in (False, True):
                got_ctx, got_alpha, got = kernel_step(kind, q, K, E, W_q, v, lengths, dctx, dt, own)
                np.testing.assert_allclose(got_ctx, ctx, atol=tol, rtol=tol)
                np.testing.assert_allclose(got_alpha, alpha, atol=tol, rtol=tol)
                for name, w in want.items():
                    if kind == "luong" and name in ("dW_q", "dv"):
                        continue
                    np.testing.assert_allclose(got[name], w, atol=tol * 10, rtol=tol * 10,
                                               err_msg=f"{tier} own={own} {name}")


@pytest.mark.parametrize("kind", rs.ATTENTIONS)
def test_attention_kernel_never_reads_padding(kind):
    rng = np.random.default_rng(4)
    N, S, C, Hd = 3, 5, 4, 3
    A = 6 if kind == "bahdanau" else Hd
    lengths = np.array([5, 2, 1], np.int64)
    q, E = rng.standard_normal((N, Hd)), rng.standard_normal((N, S, C))
    W_q, v, dctx = rng.standard_normal((Hd, A)), rng.standard_normal(A), rng.standard_normal((N, C))
    K = rng.standard_normal((N, S, A))
    clean = kernel_step(kind, q, K, E, W_q, v, lengths, dctx, np.float64, False)
    for n, l in enumerate(lengths):
        E[n, l:] = np.nan
        K[n, l:] = np.nan
    dirty = kernel_step(kind, q, K, E, W_q, v, lengths, dctx, np.float64, False)
    np.testing.assert_array_equal(dirty[0], clean[0])
    np.testing.assert_array_equal(dirty[1], clean[1])
    assert (dirty[1][1, 2:] == 0).all()
    for name in clean[2]:
        np.testing.assert_array_equal(dirty[2][name], clean[2][name])


def test_attention_kernel_refuses_bad_shapes_and_lengths():
    E, W_k = np.zeros((2, 3, 4)), np.zeros((4, 5))
    with pytest.raises(ValueError, match="lengths"):
        _attn.keys_forward(E, W_k, np.array([1, 4], np.int64), False, np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        _attn.keys_forward(E, W_k, np.array([1, 3], np.int64), False, np.zeros((2, 3, 4)))


# ---- the model ----------------------------------------------------------------------------

@pytest.mark.parametrize("cell,attention", CASES)
@pytest.mark.parametrize("dt,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_model_matches_reference(cell, attention, dt, tol):
    m = model(cell, attention, dt)
    b = batch(np.random.default_rng(5))
    loss, g = m.loss_and_grad(*b)
    want, wg = rs.loss_and_grad(cell, attention, params64(m), *b)
    assert abs(loss - want) < tol
    for name in wg:
        np.testing.assert_allclose(g[name], wg[name], atol=tol, rtol=tol, err_msg=name)


@pytest.mark.parametrize("cell,attention", CASES)
def test_padded_batch_equals_rows_one_at_a_time(cell, attention):
    m = model(cell, attention)
    src, src_len, tgt, tgt_len = batch(np.random.default_rng(6), S=5, T=4)
    loss, g = m.loss_and_grad(src, src_len, tgt, tgt_len)
    total, gsum = 0.0, {k: np.zeros_like(v) for k, v in g.items()}
    for n in range(src.shape[1]):
        ln, gn = m.loss_and_grad(src[:src_len[n], n:n + 1], src_len[n:n + 1],
                                 tgt[:tgt_len[n] + 1, n:n + 1], tgt_len[n:n + 1])
        total += ln * tgt_len[n]
        for k in gsum:
            gsum[k] += gn[k] * tgt_len[n]
    M = tgt_len.sum()
    assert abs(loss - total / M) < 1e-12
    for k in g:
        np.testing.assert_allclose(g[k], gsum[k] / M, atol=1e-12, err_msg=k)


def test_padding_ids_are_never_read():
    m = model("lstm", "luong")
    src, src_len, tgt, tgt_len = batch(np.random.default_rng(7), S=5, T=4)
    base = m.loss_and_grad(src, src_len, tgt, tgt_len)
    for n in range(src.shape[1]):   # out-of-vocabulary junk in the padding
        src[src_len[n]:, n] = 99
        tgt[tgt_len[n] + 1:, n] = -7
    again = m.loss_and_grad(src, src_len, tgt, tgt_len)
    assert base[0] == again[0]
    for k in base[1]:
        np.testing.assert_array_equal(base[1][k], again[1][k])


def test_bad_input_is_one_line_error():
    m = model("gru", "bahdanau")
    src, src_len, tgt, tgt_len = batch(np.random.default_rng(8))
    bad = [
        ((src, src_len, tgt, [2, 9, 1]), ShapeError, "lengths must be in"),
        ((src, [4, 0, 3], tgt, tgt_len), ShapeError, "lengths must be in"),
        ((src + 5, src_len, tgt, tgt_len), ShapeError, "outside the vocabulary"),
        ((src, src_len, tgt[:, :2], tgt_len), ShapeError, "tgt must be"),
        ((src.astype(float), src_len, tgt, tgt_len), ShapeError, "integer"),
    ]
    for args, err, msg in bad:
        with pytest.raises(err, match=msg) as e:
            m.loss(*args)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="attention"):
        Seq2Seq(dict(SIZES, attention="dot"))
    with pytest.raises(ConfigError, match="cell"):
        Seq2Seq(dict(SIZES, cell="rnn"))
    with pytest.raises(ConfigError, match="beam"):
        beam_search(m, [1, 2], 0, 3)


# ---- training ----------------------------------------------------------------------------

@pytest.mark.parametrize("cell,attention", [("lstm", "luong"), ("gru", "bahdanau")])
def test_learns_to_reverse_strings(cell, attention):
    rng = np.random.default_rng(0)

    def word():
        return "".join(rng.choice(list("abcdef"), rng.integers(1, 6)))
    train = [(w, w[::-1]) for w in (word() for _ in range(2000))]
    test = [word() for _ in range(100)]
    tr = train_seq2seq(train, cell=cell, attention=attention, embed=16, hidden=32, decoder=64,
                       attn=32, steps=500, lr=0.01)
    assert tr.history[-1][1] < 0.05
    acc = np.mean([o == w[::-1] for o, w in zip(tr.transduce(test), test)])
    assert acc >= 0.95
    acc = np.mean([o == w[::-1] for o, w in zip(tr.transduce(test[:20], beam=3), test[:20])])
    assert acc >= 0.95


def test_api_threads_keep_the_result_and_dropout_changes_it():
    pairs = [(w, w[::-1]) for w in ("abc", "bcad", "dd", "cab", "abcd", "ba", "c")]
    kw = dict(embed=8, hidden=6, decoder=12, attn=6, steps=30, batch_size=5, lr=0.01)
    one = train_seq2seq(pairs, **kw)
    two = train_seq2seq(pairs, threads=2, **kw)
    assert one.history == two.history and np.array_equal(one.model.flat, two.model.flat)
    assert two.model.parallel is None                # its threads were closed
    drop = train_seq2seq(pairs, dropout=0.3, **kw)
    assert drop.model.cfg.dropout == 0.3 and drop.history[0] != one.history[0]
    with pytest.raises(ConfigError, match="threads"):
        train_seq2seq(pairs, threads=0, **kw)


def test_space_separated_target_tokens():
    names = "zero one two three four five six seven eight nine".split()
    pairs = [(d, " ".join(names[int(c)].upper() for c in d))
             for d in (str(i) for i in range(200))]
    tr = train_seq2seq(pairs, tokens="words", embed=16, hidden=32, decoder=64, steps=400, lr=0.01)
    assert sorted(tr.tgt_vocab) == sorted(n.upper() for n in names)
    assert tr.transduce(["42", "7"]) == ["FOUR TWO", "SEVEN"]


# ---- the compiled decoder loop -----------------------------------------------------------

@pytest.mark.parametrize("cell,attention", CASES)
def test_decoder_loop_matches_reference_on_every_tier(cell, attention):
    from charrnn.nn import cells
    m = model(cell, attention, np.float32)
    b = batch(np.random.default_rng(11), S=5, T=4)
    want, wg = rs.loss_and_grad(cell, attention, params64(m), *b)
    for tier in isa.available():
        with isa.use(tier):
            for backend in ("own", "blas"):
                with cells.gemm_backend(backend):
                    loss, g = m.loss_and_grad(*b)
                assert abs(loss - want) < 1e-4, (tier, backend)
                for name in wg:
                    np.testing.assert_allclose(g[name], wg[name], atol=1e-4, rtol=1e-4,
                                               err_msg=f"{tier} {backend} {name}")


def test_decoder_kernel_refuses_bad_shapes():
    from charrnn import _decoder
    m = model("lstm", "luong")
    src, src_len, tgt, tgt_len = m.check(*batch(np.random.default_rng(12)))
    E, K, _ = m.encode(src, src_len)
    with pytest.raises(ValueError, match="decoder kernel: inconsistent shapes"):
        m._decode_forward(np.ascontiguousarray(tgt[:3]), E, K[:, :, :2].copy(), src_len)
    with pytest.raises(ValueError, match="lengths"):
        m._decode_forward(np.ascontiguousarray(tgt[:3]), E, K, np.array([9, 1, 1]))
    assert set(_decoder.CELLS) == {"lstm", "gru"}


def test_save_and_load(tmp_path):
    from charrnn.errors import CheckpointError
    from charrnn.training.seq2seq import load_transducer
    pairs = [("ab", "B A"), ("ba", "A B"), ("aab", "B A A")]
    tr = train_seq2seq(pairs, tokens="words", embed=4, hidden=4, decoder=6, steps=3)
    tr.save(tmp_path / "m.safetensors")
    back = load_transducer(tmp_path / "m.safetensors")
    assert back.tgt_vocab == tr.tgt_vocab and back.src_vocab == tr.src_vocab
    assert back.tokens == "words" and back.max_len == tr.max_len
    for k, v in tr.model.params.items():
        np.testing.assert_array_equal(back.model.params[k], v)
    assert back.transduce(["ab", "abba"], beam=2) == tr.transduce(["ab", "abba"], beam=2)
    (tmp_path / "junk.safetensors").write_bytes(b"nonsense")
    with pytest.raises(CheckpointError, match="cannot load") as e:
        load_transducer(tmp_path / "junk.safetensors")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("cell,attention", CASES)
def test_backward_twice_accumulates_double(cell, attention):
    m = model(cell, attention)
    b = batch(np.random.default_rng(13))
    m.grad_flat.fill(0)
    m.forward_backward(*b)
    once = m.grad_flat.copy()
    m.forward_backward(*b)
    # not bit-exact: a gradient summed from several steps or rows within one pass (an id's
    # embedding row, dW_q) adds the second pass's terms one by one onto the first's sum
    np.testing.assert_allclose(m.grad_flat, 2 * once, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("cell,attention", CASES)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_threads_give_the_serial_result_exactly(cell, attention, dt):
    # model.parallel (what --threads sets): the encoder's directions at once, the
    # decoder's rows and its weight gradients' gate rows cut over the threads.
    # float32 (training: the own sgemm) must give the serial loss and gradients bit for
    # bit, at sizes that are no multiple of any vector width (rows 7, units 5 and 6);
    # float64 runs on BLAS, whose kernels depend on the shape: there, 1e-12
    from charrnn.nn import cells
    sizes = dict(SIZES, hidden=5, decoder=6, attn=6, layers=2)
    rng = np.random.default_rng(21)
    S, T, N = 6, 5, 7
    src, tgt = rng.integers(0, 5, (S, N)), rng.integers(2, 6, (T + 1, N))
    tgt[0] = BOS
    b = (src, np.array([6, 1, 3, 6, 2, 5, 4]), tgt, np.array([2, 5, 1, 5, 3, 4, 1]))
    m = Seq2Seq(dict(cell=cell, attention=attention, **sizes), dtype=dt)
    want, wg = m.loss_and_grad(*b)
    for k in (2, 3):
        m.parallel = cells.Parallel(k)
        try:
            for _ in range(2):                    # the reused workspace too
                loss, g = m.loss_and_grad(*b)
                tol = 0 if dt == np.float32 else 1e-12
                assert abs(loss - want) <= tol, k
                for name in wg:
                    # Bahdanau's dW_q and dv: each range sums its rows, then the ranges
                    # are added, so the order of the float sums differs from serial
                    t = max(tol, 1e-5) if name in ("attn.W_q", "attn.v") else tol
                    np.testing.assert_allclose(g[name], wg[name], rtol=t, atol=t / 10,
                                               err_msg=f"{k} {name}")
        finally:
            m.parallel.close()
