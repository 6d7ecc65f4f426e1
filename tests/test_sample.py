"""The sampling engine (kernels/_sample.pyx, charrnn/sample.py) against the NumPy spec.

The reference here is independent of the engine: embedding rows, charrnn.reference's
cell forwards in float64 and the decoder in NumPy, with the state carried by hand; and a
plain-Python xoshiro256** for the random numbers. Checks:
- the RNG: known answers, Python reimplementation, stream jumps;
- pick(): the inverse CDF over a fine grid of u reproduces softmax / top-k / top-p;
- greedy decoding equals the reference's greedy decoding (3 cells x 1-2 layers, with and
  without the layer-0 table), and a sampled text is exactly what the reference picks
  with the same uniforms (teacher-forced, so float32 rounding cannot cascade);
- chi-square: first-character frequencies of many streams match the softmax;
- top-k / top-p limits, prime, stop strings, byte-level UTF-8, batches, option errors.
"""
import itertools

import numpy as np
import pytest
from scipy import stats

from charrnn.nn import shapes
from charrnn import ConfigError, _sample
from charrnn.nn import isa
from charrnn.generate import sampler as sample
from charrnn.nn import reference as ref

CELLS = ["lstm", "gru", "rnn"]
M64 = (1 << 64) - 1


# ---------------------------------------------------------------------------- models

def make_model(cell="lstm", H=8, L=1, V=10, E=6, seed=0, scale=0.8, vocab=None,
               encoding="utf-8"):
    """Random float32 params (scaled so the distribution is far from uniform)."""
    if vocab is None:
        vocab = list("abcdefghijklmnopqrstuvwxyz"[:V - 1]) + ["\n"]
    V = len(vocab)
    cfg = dict(cell=cell, hidden=H, layers=L, embed=E, vocab_size=V, encoding=encoding)
    rng = np.random.default_rng(seed)
    params = {name: (scale * rng.standard_normal(shape)).astype(np.float32)
              for name, shape in shapes.expected_shapes(cfg).items()}
    return params, cfg, vocab


def cycle_model(text, encoding="utf-8"):
    """A 1-layer RNN that, greedily, always emits the character after the input one in
    `text` (cyclically; the characters of text must be distinct): one-hot embedding,
    W_ih = 5 * (next-character permutation), no recurrence, decoder 10 * identity."""
    units = list(text.encode("utf-8")) if encoding == "bytes" else [ord(c) for c in text]
    assert len(set(units)) == len(units)
    vocab = sorted(chr(u) for u in units)
    V = len(vocab)
    cfg = dict(cell="rnn", hidden=V, layers=1, embed=V, vocab_size=V, encoding=encoding)
    p = {name: np.zeros(shape, np.float32)
         for name, shape in shapes.expected_shapes(cfg).items()}
    p["encoder.weight"][:] = np.eye(V)
    pos = {chr(u): i for i, u in enumerate(units)}
    for i, c in enumerate(vocab):
        nxt = chr(units[(pos[c] + 1) % len(units)])
        p["rnn.weight_ih_l0"][vocab.index(nxt), i] = 5.0
    p["decoder.weight"][:] = 10.0 * np.eye(V)
    return p, cfg, vocab


class Reference:
    """The model in float64 NumPy: embedding -> charrnn.reference cells -> decoder."""

    def __init__(self, params, cfg, vocab):
        self.p = {k: v.astype(np.float64) for k, v in params.items()}
        self.cfg, self.vocab = cfg, vocab
        self.index = {c: i for i, c in enumerate(vocab)}

    def zero_state(self):
        H = self.cfg["hidden"]
        return [(np.zeros((1, H)), np.zeros((1, H))) for _ in range(self.cfg["layers"])]

    def run(self, ids, state):
        """Feed ids (teacher forcing): (logits (T, V) after each id, new state)."""
        p, cell = self.p, self.cfg["cell"]
        x = p["encoder.weight"][np.asarray(ids)][:, None, :]               # (T, 1, E)
        new = []
        for k, (h0, c0) in enumerate(state):
            W = [p[f"rnn.{n}_l{k}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            if cell == "lstm":
                x, hT, cT, _ = ref.lstm_forward(x, h0, c0, *W)
            else:
                x, hT, _ = getattr(ref, f"{cell}_forward")(x, h0, *W)
                cT = c0
            new.append((hT, cT))
        return x[:, 0, :] @ p["decoder.weight"].T + p["decoder.bias"], new

    def ids(self, text):
        return [self.index[c] for c in text]

    def greedy(self, prime, length):
        start = prime if prime else ("\n" if "\n" in self.index else self.vocab[0])
        logits, state = self.run(self.ids(start), self.zero_state())
        out = []
        for _ in range(length):
            i = int(np.argmax(logits[-1]))
            out.append(self.vocab[i])
            logits, state = self.run([i], state)
        return prime + "".join(out)

    def teacher_forced_logits(self, prime, generated):
        """Logits (len(generated), V) that predicted each generated character."""
        start = prime if prime else ("\n" if "\n" in self.index else self.vocab[0])
        ids = self.ids(start) + self.ids(generated)
        logits, _ = self.run(ids[:-1], self.zero_state())
        return logits[len(start) - 1:]


def filtered_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """The distribution the engine draws from, in float64 (ties: smaller id first)."""
    z = np.asarray(logits, np.float64)
    w = np.exp((z - z.max()) / temperature)
    order = sorted(range(len(z)), key=lambda i: (-z[i], i))
    keep = order[:top_k] if top_k else order
    if top_p is not None:
        mass = np.cumsum(w[keep]) / w[keep].sum()
        keep = keep[:int(np.searchsorted(mass, top_p)) + 1]
    out = np.zeros_like(w)
    out[keep] = w[keep]
    return out / out.sum()


# ---------------------------------------------------------------------------- RNG

def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


class Xoshiro:
    """xoshiro256** in plain Python, written from the paper's definition."""

    def __init__(self, seed):
        s, x = [], seed
        for _ in range(4):
            x, z = splitmix64(x)
            s.append(z)
        self.s = s

    def copy(self):
        other = Xoshiro.__new__(Xoshiro)
        other.s = list(self.s)
        return other

    @staticmethod
    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def next(self):
        s = self.s
        out = (self.rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self.rotl(s[3], 45)
        return out

    def jump(self):
        poly = (0x180EC6D33CFD0ABA, 0xD5A61266F0C9392C, 0xA9582618E03FC9AA, 0x39ABDC4529B1661C)
        acc = [0, 0, 0, 0]
        for word in poly:
            for b in range(64):
                if word >> b & 1:
                    acc = [a ^ s for a, s in zip(acc, self.s)]
                self.next()
        self.s = acc

    def uniform(self):
        return (self.next() >> 11) / 2.0**53


def test_splitmix64_known_answer():
    # First outputs of splitmix64 from state 0 (the published test vector).
    x, a = splitmix64(0)
    _, b = splitmix64(x)
    assert (a, b) == (0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4)


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**64 - 1])
def test_rng_matches_python_xoshiro(seed):
    states = _sample.rng_seed(seed, 3)
    py = Xoshiro(seed)
    for j in range(3):
        assert [int(v) for v in states[j]] == py.s, f"stream {j}"
        expect = py.copy()
        u = _sample.rng_uniform(states[j].copy(), 50)
        assert u.tolist() == [expect.uniform() for _ in range(50)]
        py.jump()


def test_rng_uniforms_are_uniform():
    u = _sample.rng_uniform(_sample.rng_seed(7, 1)[0].copy(), 200_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    assert stats.chisquare(counts).pvalue > 1e-4


# ---------------------------------------------------------------------------- pick()

@pytest.mark.parametrize("temperature, top_k, top_p", [
    (1.0, None, None), (0.5, None, None), (2.0, 3, None), (1.0, None, 0.7),
    (0.8, 4, 0.9), (1.0, 1, None), (1.0, None, 1e-9), (1.0, 100, 1.0)])
def test_pick_inverse_cdf_reproduces_the_distribution(temperature, top_k, top_p):
    # Over an even grid of u the picks must come in the exact proportions of the
    # distribution (up to one grid cell per boundary and float32 weights).
    rng = np.random.default_rng(3)
    logits = (2 * rng.standard_normal(9)).astype(np.float32)
    logits[5] = logits[2]  # a tie: broken towards the smaller id
    N = 20_000
    picks = [_sample.pick(logits, temperature, top_k, top_p, (i + 0.5) / N) for i in range(N)]
    freq = np.bincount(picks, minlength=9) / N
    np.testing.assert_allclose(freq, filtered_probs(logits, temperature, top_k, top_p),
                               atol=2.0 / N)


def test_pick_greedy_is_first_argmax():
    logits = np.array([0.5, 2.0, -1.0, 2.0], np.float32)
    assert _sample.pick(logits, 0.0, None, None, 0.99) == 1
    assert _sample.pick(logits, 1.0, 1, None, 0.99) == 1
    # A tie stays a tie at any temperature > 0; otherwise a tiny T is greedy (1/T is
    # capped, so no 0 * inf = NaN).
    assert _sample.pick(logits, 1e-40, None, None, 0.99) == 3
    logits[3] = 1.999
    assert _sample.pick(logits, 1e-40, None, None, 0.99) == 1


# ---------------------------------------------------------------------------- greedy

@pytest.fixture(params=isa.available())
def tier(request):
    """The engine's gate math and weights run on every ISA tier this CPU has."""
    with isa.use(request.param):
        yield request.param


@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("table", [True, False])
def test_greedy_equals_reference(cell, L, table, tier):
    params, cfg, vocab = make_model(cell, H=12, L=L, V=11, E=5, seed=L)
    s = sample.Sampler(params, cfg, vocab, table_limit=sample.TABLE_LIMIT if table else 0)
    assert s._net.has_table == table
    model = Reference(params, cfg, vocab)
    for prime in ["", "bad"]:
        out = s.generate(prime=prime, length=60, temperature=0)
        assert out == model.greedy(prime, 60)
    # Longer: every character is the reference's argmax given what came before
    # (teacher-forced, up to float32 rounding between near-equal logits).
    out = s.generate(prime="ab", length=400, temperature=0)
    logits = model.teacher_forced_logits("ab", out[2:])
    chosen = logits[np.arange(400), model.ids(out[2:])]
    assert np.all(chosen >= logits.max(axis=1) - 1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_state_after_prime_matches_reference(cell, tier):
    params, cfg, vocab = make_model(cell, H=9, L=2, V=8, E=4, seed=4)
    s = sample.Sampler(params, cfg, vocab)
    model = Reference(params, cfg, vocab)
    prime = "abcabgda"
    run = _sample.Run(s._net, 3, 0)
    run.prime(np.array(model.ids(prime), np.int32))
    _, state = model.run(model.ids(prime[:-1]), model.zero_state())
    h, c = run.state()
    for k in range(2):
        for n in range(3):  # the prime's state is copied to every stream
            np.testing.assert_allclose(h[k, n], state[k][0][0], atol=1e-5)
            if cell == "lstm":
                np.testing.assert_allclose(c[k, n], state[k][1][0], atol=1e-5)
    out = np.empty((3, 1), np.int32)
    run.run(out, 1)
    logits, _ = model.run(model.ids(prime), model.zero_state())
    np.testing.assert_allclose(run.last_logits(), np.repeat(logits[-1:], 3, 0), atol=1e-5)


# ---------------------------------------------------------------------------- sampling

@pytest.mark.parametrize("cell", CELLS)
def test_sampled_text_is_what_the_reference_draws(cell, tier):
    # The engine's rule: with u from stream 0 of the seed, the first id whose cumulative
    # weight exceeds u * total. Recomputed here from the float64 reference (fed the
    # generated text) and the Python xoshiro; 1e-5 slack for float32 logits.
    params, cfg, vocab = make_model(cell, H=10, L=2, V=9, E=4, seed=8)
    model = Reference(params, cfg, vocab)
    T, n = 0.9, 300
    out = sample.generate(params, cfg, vocab, prime="ab", length=n, temperature=T, seed=99)
    assert out.startswith("ab") and len(out) == 2 + n
    logits = model.teacher_forced_logits("ab", out[2:])
    rng = Xoshiro(99)
    for t, c in enumerate(out[2:]):
        cdf = np.cumsum(filtered_probs(logits[t], T))
        u, i = rng.uniform(), model.index[c]
        lo = cdf[i - 1] if i else 0.0
        assert lo - 1e-5 <= u < cdf[i] + 1e-5, f"step {t}"


def chi_square_pvalue(counts, probs):
    expected = probs * counts.sum()
    keep = expected > 0
    assert counts[~keep].sum() == 0, "drew a character of probability 0"
    counts, expected = counts[keep], expected[keep]
    big = expected >= 5           # pool the rare ones so the test is valid
    if (~big).any():
        counts = np.append(counts[big], counts[~big].sum())
        expected = np.append(expected[big], expected[~big].sum())
    return stats.chisquare(counts, expected).pvalue


@pytest.mark.parametrize("cell, temperature, top_k, top_p", [
    ("lstm", 1.0, None, None), ("gru", 0.7, None, None), ("rnn", 1.3, 4, None),
    ("lstm", 1.0, None, 0.8), ("gru", 1.0, 5, 0.9)])
def test_first_character_frequencies_match_softmax(cell, temperature, top_k, top_p):
    params, cfg, vocab = make_model(cell, H=8, L=2, V=8, E=4, seed=11, scale=1.0)
    model = Reference(params, cfg, vocab)
    K = 20_000
    outs = sample.generate(params, cfg, vocab, prime="cab", length=1, num_samples=K,
                           seed=5, temperature=temperature, top_k=top_k, top_p=top_p)
    counts = np.bincount([model.index[o[3]] for o in outs], minlength=len(vocab))
    logits, _ = model.run(model.ids("cab"), model.zero_state())
    probs = filtered_probs(logits[-1], temperature, top_k, top_p)
    assert chi_square_pvalue(counts, probs) > 1e-4


def test_top_k_never_leaves_the_top_k():
    params, cfg, vocab = make_model("lstm", H=10, L=2, V=12, E=5, seed=2, scale=0.6)
    model = Reference(params, cfg, vocab)
    for k in (1, 3):
        out = sample.generate(params, cfg, vocab, prime="a", length=500, top_k=k, seed=k)
        logits = model.teacher_forced_logits("a", out[1:])
        kth = np.sort(logits, axis=1)[:, -k]
        chosen = logits[np.arange(500), model.ids(out[1:])]
        assert np.all(chosen >= kth - 1e-5)


def test_tiny_top_p_is_greedy():
    params, cfg, vocab = make_model("gru", H=10, L=2, V=12, seed=6)
    s = sample.Sampler(params, cfg, vocab)
    greedy = s.generate(prime="ab", length=200, temperature=0)
    assert s.generate(prime="ab", length=200, top_p=1e-9, seed=1) == greedy
    assert s.generate(prime="ab", length=200, top_k=1, seed=2) == greedy


# ---------------------------------------------------------------------------- seeds, batches

def test_seeds():
    s = sample.Sampler(*make_model("lstm", V=20, seed=1))
    a = s.generate(length=200, seed=42)
    assert s.generate(length=200, seed=42) == a
    assert s.generate(length=200, seed=43) != a
    assert s.generate(length=200) != s.generate(length=200)  # fresh OS entropy each time


def test_num_samples():
    s = sample.Sampler(*make_model("lstm", H=16, L=2, V=20, seed=1))
    batch = s.generate(prime="ab", length=150, seed=3, num_samples=8)
    assert isinstance(batch, list) and len(batch) == 8
    assert len(set(batch)) == 8 and all(b.startswith("ab") and len(b) == 152 for b in batch)
    assert s.generate(prime="ab", length=150, seed=3, num_samples=8) == batch
    assert isinstance(s.generate(length=5, num_samples=1), str)
    # Sample j draws from stream j of the seed whatever the batch size, so sample 0 is
    # the single sample and batches of different sizes share their first samples. (The
    # GEMM rows round differently from a GEMV by ~1e-7, which could only flip a
    # character whose uniform lands that close to a boundary.)
    assert batch[0] == s.generate(prime="ab", length=150, seed=3)
    assert s.generate(prime="ab", length=150, seed=3, num_samples=3) == batch[:3]


def test_chunking_does_not_change_the_text(monkeypatch):
    params, cfg, vocab = make_model("rnn", V=20, seed=3)
    a = sample.generate(params, cfg, vocab, prime="ab", length=300, seed=5, num_samples=2)
    monkeypatch.setattr(sample, "CHUNK", 7)
    assert sample.generate(params, cfg, vocab, prime="ab", length=300, seed=5,
                           num_samples=2) == a
    assert "".join(sample.stream(params, cfg, vocab, prime="ab", length=300,
                                 seed=5)) == a[0]


# ---------------------------------------------------------------------------- prime

def test_prime_and_empty_prime():
    params, cfg, vocab = make_model("lstm", V=10, seed=4)
    assert "\n" in vocab
    s = sample.Sampler(params, cfg, vocab)
    model = Reference(params, cfg, vocab)
    out = s.generate(prime="dig", length=30, seed=1)
    assert out.startswith("dig") and len(out) == 33
    # Empty prime: starts on "\n", which is not part of the output.
    empty = s.generate(length=30, seed=1)
    assert len(empty) == 30 and s.generate(prime="\n", length=30, seed=1) == "\n" + empty
    assert s.generate(length=30, temperature=0) == model.greedy("", 30)
    # Without "\n" in the vocabulary: starts on vocab[0].
    params, cfg, vocab = make_model("gru", vocab=list("xyzw"), seed=4)
    s = sample.Sampler(params, cfg, vocab)
    assert "x" + s.generate(length=20, seed=2) == s.generate(prime="x", length=20, seed=2)


def test_unknown_prime_characters():
    params, cfg, vocab = make_model(V=6)
    with pytest.raises(ConfigError, match=r"prime text.*'Q'.*'z'"):
        sample.generate(params, cfg, vocab, prime="abQz")
    with pytest.raises(ConfigError, match="'Q'"):
        sample.stream(params, cfg, vocab, prime="Q")  # checked at the call


# ---------------------------------------------------------------------------- stop, stream

def test_stop_strings(monkeypatch):
    p, cfg, vocab = cycle_model("abcdefg\n")
    s = sample.Sampler(p, cfg, vocab)
    assert s.generate(length=20, temperature=0) == "abcdefg\nabcdefg\nabcd"
    assert s.generate(length=20, temperature=0, stop="de") == "abcde"
    assert s.generate(length=20, temperature=0, stop=["fg", "cd"]) == "abcd"
    assert s.generate(length=20, temperature=0, stop=["xyz"]) == s.generate(length=20,
                                                                              temperature=0)
    # An occurrence may begin in the prime but must end in the generated text.
    assert s.generate(prime="abcd", length=20, temperature=0, stop="de") == "abcde"
    assert s.generate(prime="dea", length=20, temperature=0, stop="de") == "deabcde"
    # ... and is found across chunk boundaries, in generate and stream.
    monkeypatch.setattr(sample, "CHUNK", 2)
    assert s.generate(length=20, temperature=0, stop="cdef") == "abcdef"
    assert list(s.stream(prime="g", temperature=0, stop="cdef")) == ["g", "\n", "ab", "cd",
                                                                     "ef"]


def test_stop_strings_in_a_batch():
    params, cfg, vocab = make_model("lstm", V=8, seed=9)
    outs = sample.generate(params, cfg, vocab, prime="ab", length=200, num_samples=16,
                           seed=1, stop=["c", "\n"])
    full = sample.generate(params, cfg, vocab, prime="ab", length=200, num_samples=16,
                           seed=1)
    for o, f in zip(outs, full):
        gen = f[2:]
        cut = min((gen.find(x) for x in "c\n" if x in gen), default=None)
        assert o == (f if cut is None else f[:2 + cut + 1])


def test_stream_lines_and_unbounded():
    params, cfg, vocab = make_model("lstm", V=6, seed=2)
    s = sample.Sampler(params, cfg, vocab)
    pieces = list(s.stream(prime="ab", length=500, seed=3))
    assert pieces[0] == "ab" and "".join(pieces) == s.generate(prime="ab", length=500, seed=3)
    assert all(p.count("\n") <= 1 and ("\n" not in p or p.endswith("\n")) for p in pieces)
    endless = s.stream(seed=3)  # length None: as long as you read
    text = "".join(itertools.islice(endless, 3000))
    assert len(text) > 3000


# ---------------------------------------------------------------------------- bytes

def test_byte_level_model_decodes_utf8_across_chunks(monkeypatch):
    text = "é€😀"  # 2 + 3 + 4 distinct bytes
    p, cfg, vocab = cycle_model(text, encoding="bytes")
    s = sample.Sampler(p, cfg, vocab)
    # Empty prime starts on vocab[0] = byte 0x80, the last byte of 😀: "é" comes next.
    assert s.generate(length=27, temperature=0) == text * 3
    assert s.generate(prime="€", length=13, temperature=0) == "€😀é€😀"
    assert s.generate(prime="€", length=2, temperature=0) == "€\ufffd"  # cut mid-😀
    monkeypatch.setattr(sample, "CHUNK", 2)   # every character split between chunks
    assert s.generate(length=27, temperature=0) == text * 3
    pieces = list(s.stream(prime="€", length=13, temperature=0))
    assert "".join(pieces) == "€😀é€😀" and len(pieces) > 3
    with pytest.raises(ConfigError, match="prime text"):
        s.generate(prime="a")


# ---------------------------------------------------------------------------- errors

BAD_OPTIONS = [
    dict(temperature=-0.1), dict(temperature=float("nan")), dict(temperature=float("inf")),
    dict(temperature="1"), dict(temperature=None),
    dict(top_k=0), dict(top_k=-3), dict(top_k=2.5), dict(top_k=True),
    dict(top_p=0), dict(top_p=-0.5), dict(top_p=1.01), dict(top_p=float("nan")),
    dict(top_p="0.9"),
    dict(length=0), dict(length=-1), dict(length=2.0), dict(length=None),
    dict(num_samples=0), dict(num_samples=-1), dict(num_samples=1.5),
    dict(seed=-1), dict(seed=2**64), dict(seed=1.5), dict(seed="7"),
    dict(stop=""), dict(stop=[""]), dict(stop=[3]), dict(stop=5),
    dict(prime=5), dict(prime=None), dict(prime=b"ab"),
]


@pytest.mark.parametrize("opts", BAD_OPTIONS, ids=lambda o: repr(o))
def test_invalid_options(opts):
    params, cfg, vocab = make_model(V=6)
    with pytest.raises(ConfigError) as e:
        sample.generate(params, cfg, vocab, **opts)
    assert "\n" not in str(e.value)
    if "num_samples" not in opts and opts.get("length", 0) is not None:
        with pytest.raises(ConfigError):
            sample.stream(params, cfg, vocab, **opts)  # checked at the call, not at next()


def test_invalid_models():
    params, cfg, vocab = make_model(V=6)
    with pytest.raises(ConfigError, match="vocab has 5"):
        sample.Sampler(params, cfg, vocab[:-1])
    with pytest.raises(ConfigError, match="missing decoder.bias"):
        sample.Sampler({k: v for k, v in params.items() if k != "decoder.bias"}, cfg, vocab)
    bad = dict(params, **{"decoder.bias": np.zeros(7, np.float32)})
    with pytest.raises(ConfigError, match="decoder.bias"):
        sample.Sampler(bad, cfg, vocab)
    with pytest.raises(ConfigError, match="cell"):
        sample.Sampler(params, dict(cfg, cell="transformer"), vocab)
