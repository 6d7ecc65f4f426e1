"""Sampling with bf16 weights (Sampler(precision="bf16"), charrnn sample --precision):
kernels/gemv_bf16.h, kernels/bf16_rows.h, the Net's bf16 copies.

- rounding: bit for bit PyTorch's float32 -> bfloat16 (an independent reader), ties to
  even, NaN and infinities kept;
- the product against float64 on the rounded weights (tight), every shape edge (tails of
  the 32-lane blocks, odd rows), and the same bits on every tier this CPU runs;
- the sampler, every cell, 1-2 layers, with and without the layer-0 table, every tier:
  greedy text equals the float64 reference's on bf16-rounded weights, and its logits
  are fp32's within bf16's tolerance (and not fp32's bits: the bf16 path is the one run);
- seeds: the same text twice; sample j of a batch is the batch-1 text of stream j;
- a trained model: bf16 and fp32 texts agree up to the first draw the rounding changes,
  and that draw is exactly where the uniform falls between the two precisions' choices;
- bad values: one-line errors (API and CLI).
"""
import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn import ConfigError, _sample
from charrnn.cli import main
from charrnn.generate import sampler as sample
from charrnn.io import checkpoint as ck
from charrnn.nn import isa

from test_sample import CELLS, Reference, make_model

WEIGHTS = ("weight_ih", "weight_hh")


@pytest.fixture(params=isa.available())
def tier(request):
    with isa.use(request.param):
        yield request.param


def as_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def rounded(params, table):
    """params with the matrices the bf16 sampler reads rounded to bf16: every W_ih, W_hh
    and the decoder; layer 0's W_ih not when the table (float64 -> float32, from the
    unrounded weights) replaces its product."""
    out = dict(params)
    for name, a in params.items():
        if name == "decoder.weight" or name.startswith(tuple(f"rnn.{w}" for w in WEIGHTS)):
            if not (table and name == "rnn.weight_ih_l0"):
                out[name] = as_f32(_sample.round_bf16(a))
    return out


# ---------------------------------------------------------------------------- rounding

def test_round_bf16_is_pytorchs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(5000).astype(np.float32) * 10.0 ** rng.integers(-30, 30, 5000),
                        # exact ties: the 16 dropped bits are 0x8000, odd and even kept parts
                        (np.arange(1000, dtype=np.uint32) << 16 | 0x8000).view(np.float32),
                        np.array([0.0, -0.0, np.inf, -np.inf, 3.4e38, 1e-40], np.float32)]
                       ).astype(np.float32)
    got = _sample.round_bf16(x)
    want = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(got, want)
    assert np.isnan(as_f32(_sample.round_bf16(np.array([np.nan], np.float32)))).all()


def test_rows_layout_holds_the_rounded_weights():
    """bf16_rows.h: blocks of 32 as pairs (k0 + j, k0 + 16 + j), then the tail as is."""
    rng = np.random.default_rng(2)
    for D in (1, 31, 32, 33, 64, 75):
        W = rng.standard_normal((3, D)).astype(np.float32)
        P, R = _sample.pack_bf16_rows(W), _sample.round_bf16(W)
        D32 = D - D % 32
        for k0 in range(0, D32, 32):
            block = P[:, k0:k0 + 32]
            assert np.array_equal(block[:, 0::2], R[:, k0:k0 + 16])
            assert np.array_equal(block[:, 1::2], R[:, k0 + 16:k0 + 32])
        assert np.array_equal(P[:, D32:], R[:, D32:])


# ---------------------------------------------------------------------------- product

SHAPES = [(1, 1), (3, 15), (4, 31), (5, 32), (7, 33), (2, 64), (9, 65), (13, 100),
          (65, 256), (96, 512)]


def gemv_every_tier(P, x, M):
    out = {}
    for name in isa.available():
        with isa.use(name):
            y = np.full(M, 0.25, np.float32)            # += : the bias already there
            _sample.gemv_bf16(P, x, y)
            out[name] = y
    return out


@pytest.mark.parametrize("M,D", SHAPES)
def test_gemv_bf16_against_float64_and_same_bits_every_tier(M, D):
    rng = np.random.default_rng(M * 1000 + D)
    W = rng.standard_normal((M, D)).astype(np.float32)
    x = rng.standard_normal(D).astype(np.float32)
    Wr = as_f32(_sample.round_bf16(W)).astype(np.float64)
    want = 0.25 + Wr @ x.astype(np.float64)
    bound = 1e-6 * (np.abs(Wr) @ np.abs(x.astype(np.float64)) + 0.25)   # ~ float32 sums
    got = gemv_every_tier(_sample.pack_bf16_rows(W), x, M)
    for name, y in got.items():
        assert np.all(np.abs(y - want) <= bound), name
        # and not fp32's product: the weights really were rounded
        assert D < 8 or not np.allclose(y, 0.25 + W.astype(np.float64) @ x, rtol=0, atol=bound.max())
    first = next(iter(got.values()))
    for name, y in got.items():
        assert np.array_equal(y.view(np.uint32), first.view(np.uint32)), name


def test_gemv_bf16_order_is_the_32_lanes():
    """A case where the order of the sums shows: lane 0 holds 1e8 and -1e8 (k = 0, 32),
    lane 1 holds 1 (k = 1). In lane order the big terms cancel in lane 0 and the 1
    survives; summed left to right in float32, 1e8 + 1 would lose it."""
    D = 64
    W = np.zeros((1, D), np.float32)
    W[0, 0], W[0, 32], W[0, 1] = 1.0, -1.0, 1.0
    x = np.zeros(D, np.float32)
    x[0], x[32], x[1] = 1e8, 1e8, 1.0
    for name, y in gemv_every_tier(_sample.pack_bf16_rows(W), x, 1).items():
        assert y[0] == 1.25, name


# ---------------------------------------------------------------------------- sampler

@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("table", [True, False])
def test_greedy_equals_reference_on_rounded_weights(cell, L, table, tier):
    # H = 40, E = 35: blocks of 32 and tails. Scaled to stay out of chaos (where float32
    # and float64 states part however exact each step is): the tanh RNN's spectral
    # radius ~ scale * sqrt(H) below 1, the gated cells' a little above.
    params, cfg, vocab = make_model(cell, H=40, L=L, V=11, E=35, seed=L,
                                    scale=0.1 if cell == "rnn" else 0.45)
    limit = sample.TABLE_LIMIT if table else 0
    s = sample.Sampler(params, cfg, vocab, table_limit=limit, precision="bf16")
    assert s._net.has_table == table and s._net.precision == "bf16"
    model = Reference(rounded(params, table), cfg, vocab)
    for prime in ["", "bad"]:
        assert s.generate(prime=prime, length=60, temperature=0) == model.greedy(prime, 60)
    out = s.generate(prime="ab", length=300, temperature=0)
    logits = model.teacher_forced_logits("ab", out[2:])
    chosen = logits[np.arange(300), model.ids(out[2:])]
    assert np.all(chosen >= logits.max(axis=1) - 1e-5)


def last_logits(s, text):
    """The logits s predicts after text (one greedy step)."""
    run = _sample.Run(s._net, 1, 0)
    run.set_options(0.0, None, None)
    run.prime(np.array([s.vocab.index(c) for c in text], np.int32))
    run.run(np.zeros((1, 1), np.int32), 1)
    return run.last_logits()[0]


@pytest.mark.parametrize("cell", CELLS)
def test_logits_within_bf16_of_fp32(cell, tier):
    params, cfg, vocab = make_model(cell, H=64, L=2, V=11, E=16, seed=3,
                                    scale=0.1 if cell == "rnn" else 0.3)   # not chaotic
    text = "abcabbacdefgh" * 3
    z32 = last_logits(sample.Sampler(params, cfg, vocab), text)
    z16 = last_logits(sample.Sampler(params, cfg, vocab, precision="bf16"), text)
    # fp32 on weights rounded beforehand: the same model, only the sums' order differs
    zr = last_logits(sample.Sampler(rounded(params, True), cfg, vocab), text)
    assert np.abs(z16 - zr).max() <= 1e-5 * np.abs(zr).max()
    # bf16 keeps 8 significant bits: each weight off by at most 2^-9 of itself; through
    # two layers and the decoder that stays within ~2% of the logits' scale
    scale = np.abs(z32).max()
    assert np.abs(z16 - z32).max() <= 0.02 * scale
    assert not np.array_equal(z16, z32)


def test_seed_same_text_twice_and_batch_rows_are_streams():
    params, cfg, vocab = make_model("lstm", H=48, L=2, V=10, E=8, seed=4, scale=0.5)
    s = sample.Sampler(params, cfg, vocab, precision="bf16")
    a = s.generate(prime="ab", length=300, seed=7)
    assert a == s.generate(prime="ab", length=300, seed=7)
    assert a == sample.Sampler(params, cfg, vocab, precision="bf16").generate(
        prime="ab", length=300, seed=7)
    assert a != s.generate(prime="ab", length=300, seed=8)
    # bf16 products are one per stream: sample 0 of a batch is the batch-1 text
    assert s.generate(prime="ab", length=300, seed=7, num_samples=3)[0] == a
    # beam search of one beam is greedy decoding
    assert s.generate(prime="ab", length=50, temperature=0) == \
        charrnn.CharRNN(cfg, vocab, params=params).beam_search(
            "ab", 50, beam=1, precision="bf16")[0].text


# ---------------------------------------------------------------------------- trained model

def test_trained_model_texts_agree_until_a_draw_changes():
    """bf16 and fp32 give the same text until the first character whose draw the
    rounding changes; there the stream's uniform lies between the two precisions'
    cumulative probabilities, so each precision's own logits pick its own character."""
    from export_common import trained_run
    model = charrnn.load(trained_run())
    s32, s16 = model._sampler("fp32"), model._sampler("bf16")
    prime, T, n = "ROMEO:\n", 0.8, 400
    firsts = []
    for seed in range(1, 6):
        a = s32.generate(prime=prime, length=n, temperature=T, seed=seed)
        b = s16.generate(prime=prime, length=n, temperature=T, seed=seed)
        d = next((i for i in range(n) if a[len(prime) + i] != b[len(prime) + i]), n)
        firsts.append(d)
        if d == n:
            continue
        u = _sample.rng_uniform(_sample.rng_seed(seed, 1)[0].copy(), d + 1)[d]
        text = prime + a[len(prime):len(prime) + d]
        z32, z16 = last_logits(s32, text), last_logits(s16, text)
        assert model.vocab[_sample.pick(z32, T, None, None, u)] == a[len(prime) + d]
        assert model.vocab[_sample.pick(z16, T, None, None, u)] == b[len(prime) + d]
        assert np.abs(z16 - z32).max() <= 0.02 * np.abs(z32).max()
    # a draw changes only where u falls within the logits' difference of a boundary:
    # rare enough that texts share a prefix (20 seeds here: 9 to 400 characters, median 80)
    assert max(firsts) >= 30, firsts


# ---------------------------------------------------------------------------- errors, CLI

def test_bad_precision_is_a_one_line_error():
    params, cfg, vocab = make_model("gru", H=8)
    for bad in ("fp16", "BF16", None, 16):
        with pytest.raises(ConfigError, match="precision must be one of fp32, bf16") as e:
            sample.Sampler(params, cfg, vocab, precision=bad)
        assert "\n" not in str(e.value)
    m = charrnn.CharRNN(cfg, vocab, params=params)
    with pytest.raises(ConfigError, match="precision"):
        m.generate(length=5, precision="fp64")


def test_cli_precision(tmp_path):
    params, cfg, vocab = make_model("lstm", H=40, L=2, V=10, E=8, seed=5, scale=0.5)
    path = tmp_path / "m.safetensors"
    ck.save_model(str(path), params, cfg, vocab)

    def run(*args):
        return CliRunner().invoke(main, ["sample", str(path), "--length", "200", *args])

    a, b = run("--precision", "bf16", "--seed", "3"), run("--precision", "bf16", "--seed", "3")
    assert a.exit_code == 0 and a.output == b.output and len(a.output) > 150
    api = charrnn.load(str(path)).generate(length=200, seed=3, precision="bf16")
    assert a.output == api + "\n"
    fp32 = run("--seed", "3")
    assert fp32.exit_code == 0 and fp32.output == \
        charrnn.load(str(path)).generate(length=200, seed=3) + "\n"
    bad = run("--precision", "fp16")
    assert bad.exit_code == 2 and "'fp16' is not one of 'fp32', 'bf16'" in bad.output
    assert "--precision" in CliRunner().invoke(main, ["sample", "--help"]).output
