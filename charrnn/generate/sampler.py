"""Generating text from a trained model.

    generate(params, config, vocab, prime="The ", length=500, temperature=0.8, seed=1)
    for piece in stream(params, config, vocab, temperature=0.8): print(piece, end="")

The per-character loop (embedding -> L stacked cells -> decoder -> temperature / top-k /
top-p -> draw) runs in compiled code with the GIL released (kernels/_sample.pyx); Python
only turns each chunk of ids into text and looks for stop strings.

Options, all validated up front (ConfigError with a one-line message):
- temperature T >= 0: the logits are divided by T before the softmax. 0 is greedy: always
  the most likely character (the first one on a tie); top_k and top_p then change nothing.
- top_k K >= 1: only the K characters with the largest logits can be drawn.
- top_p P in (0, 1]: nucleus sampling, only the smallest set of most likely characters
  whose probability (after top-k) reaches P. A tiny P is greedy; 1 is off.
- seed: an int in [0, 2**64). The same seed, model and options give the same text on
  every machine. None: a fresh seed from the OS's entropy.
- prime: the text the model reads first; the output starts with it. Every character must
  be in the model's vocabulary (else ConfigError listing the others).
  An empty prime starts the model on "\\n" if the vocabulary has it, else on vocab[0],
  as if the text so far ended a line; that start character is not part of the output.
  A model trained on documents (config end_marker) starts on its end marker instead,
  as each of its documents did (charrnn.generate.items samples whole ones).
- length: how many characters are generated after the prime (for byte-level models,
  bytes), at most: a stop string ends a sample earlier.
- stop: a string or several; a sample ends right after it first emits one of them (an
  occurrence may begin in the prime but must end in the generated text).
- temperature may also be a list (generate, stream_batch): a sheet of one sample per
  temperature, all made together as one batch (stream j draws as sample j would).
- no_repeat N >= 2: no character N-gram that already occurs in a sample's generated text
  (the prime excluded) is completed again: those characters get probability 0 before
  top-k / top-p and the draw (kernels/loopctl.h, a rolling hash of the last N-1
  characters and a hash set per stream). If every character is banned, the step draws
  unrestricted. None: off.
- precision: "fp32" (default) or "bf16" (charrnn.nn.precision.SAMPLE_PRECISIONS): bf16
  rounds the weight matrices to bfloat16 once, here, and the products read those
  (biases, states, gate math and the draw stay float32). Faster for large models; the
  text is fp32's until the first draw the rounding changes, and differs from there on.
  Reproducible with a seed; the bf16 products give the same bits on every ISA tier and
  CPU (their sums have one fixed order), the rest of the step is fp32's.
- num_samples K: K independent samples generated together, one matrix product per layer
  and step for all of them. Sample j draws from random stream j of the seed (xoshiro256**
  jumped j times), so the samples differ but are reproducible.

Byte-level models (config encoding "bytes") generate bytes; they are decoded with an
incremental UTF-8 decoder (invalid sequences become U+FFFD), so a character whose bytes
arrive in different chunks still comes out whole.
"""
from __future__ import annotations

import codecs

import numpy as np

from charrnn import _sample
from charrnn.nn.precision import SAMPLE_DEFAULT, sample_precision
from charrnn.nn.shapes import expected_shapes
from charrnn.data.text import BYTES, encode_text, normalize_encoding
from charrnn.errors import ConfigError
from charrnn.generate.options import (_check_params, _check_vocab, _count, _no_repeat,
                                      _options, _seed, _stops, _temperatures)

CHUNK = 256                # characters per call into the compiled loop
START = "\n"               # the first input of an empty prime, if in the vocabulary
TABLE_LIMIT = 1 << 24      # floats: above this the layer-0 table (V, G*H) is not built
_INT_MAX = 2**31 - 1       # BLAS takes 32-bit sizes


class Sampler:
    """A model made ready for sampling: weights re-laid out for the compiled loop.

    Build it once and call generate()/stream() as often as needed (each call has its own
    state, so calls do not influence each other). params: name -> float array with the
    names and shapes of checkpoint.expected_shapes(config); config: cell, hidden, layers,
    embed, vocab_size, encoding; vocab: the V one-character strings.

    The layer-0 input projection emb @ W_ih0^T + bias depends on the character only, so
    it is precomputed as a (V, G*H) table unless that exceeds table_limit floats.
    float32 arrays of params may be used in place (not copied): build a new Sampler after
    changing the weights (e.g. after more training).
    """

    def __init__(self, params, config, vocab, *, table_limit: int = TABLE_LIMIT,
                 precision: str = SAMPLE_DEFAULT):
        self.precision = sample_precision(precision)
        shapes = expected_shapes(config)  # validates config; ConfigError if bad
        self.config = config
        self.cell = config["cell"]
        self.encoding = normalize_encoding(config.get("encoding", "utf-8"))
        self.vocab = _check_vocab(vocab, config["vocab_size"])
        p = _check_params(params, shapes)
        self._net = _sample.Net(self.cell, *_prepare(self.cell, config["layers"], p,
                                                     table_limit), precision=precision)
        self.bytes = self.encoding == BYTES
        # id -> code point (text models) or byte value (byte-level models)
        self._codes = np.array([ord(c) for c in self.vocab],
                               np.uint8 if self.bytes else np.uint32)
        self.end_marker = config.get("end_marker") or ""   # documents: what ends one
        start = self.end_marker or START
        self._start = self.vocab.index(start) if start in self.vocab else 0
        self._newline = self.vocab.index("\n") if "\n" in self.vocab else -1

    # -- public API --------------------------------------------------------------------

    def generate(self, prime="", length=500, temperature=1.0, top_k=None, top_p=None,
                 seed=None, num_samples=1, stop=(), no_repeat=None):
        """prime + up to `length` generated characters: a str, or a list of num_samples
        str if num_samples > 1 (or temperature is a list: one sample per temperature).
        See the module docstring for the options."""
        K = _batch(num_samples, temperature)
        single = K == 1 and not isinstance(temperature, (list, tuple, np.ndarray))
        texts = self._generate(prime, _count(length, "length"), temperature, top_k, top_p,
                               seed, K, stop, CHUNK, no_repeat)
        return texts[0] if single else texts

    def stream(self, prime="", temperature=1.0, top_k=None, top_p=None, seed=None,
               length=None, stop=(), no_repeat=None):
        """An iterator of str pieces (the prime first, then about a line at a time) of one
        sample; endless if length is None. Options are checked here, not at the first
        next()."""
        length = None if length is None else _count(length, "length")
        stops = _stops(stop)
        run, prime_text = self._start_run(prime, temperature, top_k, top_p, seed, 1,
                                          no_repeat)
        return self._stream(run, prime_text, length, stops, CHUNK)

    # -- internals ---------------------------------------------------------------------

    def _start_run(self, prime, temperature, top_k, top_p, seed, K, no_repeat=None):
        """Validate the options, create the compiled state and feed it the prime."""
        temps, temperature = _temperatures(temperature)
        temperature, top_k, top_p = _options(temperature, top_k, top_p)
        no_repeat = _no_repeat(no_repeat)
        if temps is not None and len(temps) != K:
            raise ConfigError(f"{len(temps)} temperatures for {K} samples")
        seed = _seed(seed)
        if K * max(self._net.sizes["L"] * self._net.sizes["H"],
                   self._net.sizes["G"] * self._net.sizes["H"], self._net.sizes["V"],
                   self._net.sizes["E"]) > _INT_MAX:
            raise ConfigError(f"num_samples {K} is too large for this model; use fewer")
        if not isinstance(prime, (str, bytes)) or (isinstance(prime, bytes) and not self.bytes):
            raise ConfigError(f"prime must be a str, not {type(prime).__name__}")
        ids = encode_text(prime, self.vocab, self.encoding, what="the prime text")
        if isinstance(prime, bytes):
            # Bytes are only accepted by byte-level models: shown as decoded text.
            prime_text = prime.decode("utf-8", "replace")
        else:
            prime_text = prime
        if len(ids) == 0:
            ids = np.array([self._start])
        run = _sample.Run(self._net, K, seed)
        V = len(self.vocab)
        run.set_options(temperature, None if top_k is None else min(top_k, V), top_p)
        if temps is not None:
            run.set_temperatures(temps)
        run.set_no_repeat(no_repeat)
        run.prime(np.ascontiguousarray(ids, dtype=np.int32))
        return run, prime_text

    def stream_batch(self, prime="", length=500, temperature=1.0, top_k=None, top_p=None,
                     seed=None, num_samples=1, stop=(), no_repeat=None):
        """An iterator of (j, str piece) while num_samples samples are made together:
        the same texts as generate(), piece by piece (each prime first), in memory
        bounded by one chunk per sample. Options are checked here."""
        K, length, stops = _batch(num_samples, temperature), _count(length, "length"), _stops(stop)
        run, prime_text = self._start_run(prime, temperature, top_k, top_p, seed, K,
                                          no_repeat)
        return self._pieces(run, prime_text, length, stops, K, CHUNK)

    def _generate(self, prime, length, temperature, top_k, top_p, seed, K, stop, chunk,
                  no_repeat=None):
        run, prime_text = self._start_run(prime, temperature, top_k, top_p, seed, K,
                                          no_repeat)
        pieces = [[] for _ in range(K)]
        for j, text in self._pieces(run, prime_text, length, _stops(stop), K, chunk):
            pieces[j].append(text)
        return ["".join(p) for p in pieces]

    def _pieces(self, run, prime_text, length, stops, K, chunk):
        outs = [_Output(self, prime_text, stops) for _ in range(K)]
        yield from ((j, prime_text) for j in range(K))
        live = list(range(K))
        ids = np.empty((K, min(chunk, length)), np.int32)
        remaining = length
        while remaining > 0 and live:
            n = run.run(ids, min(ids.shape[1], remaining))
            remaining -= n
            for j in list(live):
                text, stopped = outs[j].feed(ids[j, :n])
                yield j, text
                if stopped:
                    live.remove(j)
        for j in live:
            yield j, outs[j].finish()

    def _stream(self, run, prime_text, length, stops, chunk):
        out = _Output(self, prime_text, stops)
        if prime_text:
            yield prime_text
        ids = np.empty((1, chunk), np.int32)
        remaining = length
        while remaining is None or remaining > 0:
            n = chunk if remaining is None else min(chunk, remaining)
            n = run.run(ids, n, self._newline)
            if remaining is not None:
                remaining -= n
            text, stopped = out.feed(ids[0, :n])
            if text:
                yield text
            if stopped:
                return
        text = out.finish()
        if text:
            yield text

    def ids_to_text(self, ids) -> str:
        """Text of ids (all at once; byte-level models decode with errors="replace")."""
        out = _Output(self, "", ())
        return out.feed(np.asarray(ids))[0] + out.finish()


class _Output:
    """Turns one stream's chunks of ids into text and finds where a stop string ends."""

    def __init__(self, sampler, prime_text, stops):
        self.codes = sampler._codes
        self.decoder = (codecs.getincrementaldecoder("utf-8")("replace") if sampler.bytes
                        else None)
        self.stops = stops
        self.keep = max((len(s) for s in stops), default=1) - 1
        # The last characters already out: a stop string may begin there.
        self.tail = prime_text[len(prime_text) - self.keep:] if self.keep else ""

    def feed(self, ids):
        """(text of ids, True if it ends with the first stop string)."""
        vals = self.codes[ids]
        if self.decoder is not None:
            text = self.decoder.decode(vals.tobytes())
        else:
            # code points -> str in one call (UTF-32 is the code points themselves)
            text = vals.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
        return self._cut(text)

    def finish(self):
        """Whatever the decoder still holds (an incomplete UTF-8 sequence -> U+FFFD)."""
        if self.decoder is None:
            return ""
        return self._cut(self.decoder.decode(b"", final=True))[0]

    def _cut(self, text):
        if not self.stops or not text:
            return text, False
        s = self.tail + text
        t = len(self.tail)
        end = None
        for stop in self.stops:
            # Only occurrences that end inside the new text.
            i = s.find(stop, max(0, t - len(stop) + 1))
            if i >= 0 and (end is None or i + len(stop) < end):
                end = i + len(stop)
        if end is not None:
            return text[:end - t], True
        self.tail = s[len(s) - self.keep:] if self.keep else ""
        return text, False


# ---- module-level API ------------------------------------------------------------------

def generate(params, config, vocab, prime="", length=500, temperature=1.0, top_k=None,
             top_p=None, seed=None, num_samples=1, stop=(), no_repeat=None,
             precision=SAMPLE_DEFAULT):
    """prime + up to `length` generated characters (a list of num_samples texts if
    num_samples > 1). Builds a Sampler each call: keep a Sampler to sample repeatedly."""
    return Sampler(params, config, vocab, precision=precision).generate(
        prime=prime, length=length, temperature=temperature, top_k=top_k, top_p=top_p,
        seed=seed, num_samples=num_samples, stop=stop, no_repeat=no_repeat)


def stream(params, config, vocab, prime="", temperature=1.0, top_k=None, top_p=None,
           seed=None, length=None, stop=(), no_repeat=None, precision=SAMPLE_DEFAULT):
    """Iterator of str pieces of one sample (the prime first); endless if length is None."""
    return Sampler(params, config, vocab, precision=precision).stream(
        prime=prime, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
        length=length, stop=stop, no_repeat=no_repeat)


def _batch(num_samples, temperature):
    """How many streams: num_samples, or one per temperature of a list (then num_samples
    must be 1 or that many)."""
    K = _count(num_samples, "num_samples")
    temps, _ = _temperatures(temperature)
    if temps is not None:
        if K not in (1, len(temps)):
            raise ConfigError(f"num_samples {K} with {len(temps)} temperatures: a "
                              f"temperature list makes one sample per temperature")
        K = len(temps)
    return K


# ---- weight layout for the compiled loop -----------------------------------------------

def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _prepare(cell, L, p, table_limit):
    # A diverged model's weights (inf, nan, past float32's range) give inf/nan here, as
    # the loop would compute them anyway: no NumPy RuntimeWarning in the user's output.
    with np.errstate(all="ignore"):
        return _fold(cell, L, p, table_limit)


def _fold(cell, L, p, table_limit):
    """(emb, table, layers, Wd, bd) for _sample.Net; see kernels/_sample.pyx.

    lstm/rnn: both biases are folded into one, and layers k >= 1 get one fused weight
    [W_ih | W_hh] (G*H, 2H) so that their two products are one GEMM. gru: b_hr and b_hz
    ride with the input bias, b_hn stays in the recurrent one (r multiplies it).
    """
    layers = []
    emb = _f32(p["encoder.weight"])                                    # (V, E)
    for k in range(L):
        W_ih, W_hh = p[f"rnn.weight_ih_l{k}"], p[f"rnn.weight_hh_l{k}"]
        b_ih = p[f"rnn.bias_ih_l{k}"].astype(np.float64)
        b_hh = p[f"rnn.bias_hh_l{k}"].astype(np.float64)
        if cell == "gru":
            H = W_hh.shape[1]
            bi = b_ih.copy()
            bi[:2 * H] += b_hh[:2 * H]                                 # r, z
            br = np.zeros_like(b_hh)
            br[2 * H:] = b_hh[2 * H:]                                  # n
            layers.append((_f32(W_ih), _f32(W_hh), _f32(bi), _f32(br)))
        else:
            bi = b_ih + b_hh
            if k == 0:
                layers.append((_f32(W_ih), _f32(W_hh), _f32(bi), None))
            else:
                layers.append((np.concatenate([_f32(W_ih), _f32(W_hh)], axis=1), None,
                               _f32(bi), None))
        if k == 0:
            W0, b0 = W_ih, bi
    table = None
    if emb.shape[0] * W0.shape[0] <= table_limit:
        # In float64, then rounded once: the table is as exact as float32 allows.
        table = _f32(p["encoder.weight"].astype(np.float64)
                     @ W0.astype(np.float64).T + b0)                  # (V, G*H)
    return emb, table, layers, _f32(p["decoder.weight"]), _f32(p["decoder.bias"])
