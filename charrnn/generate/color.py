"""--color: each generated character coloured by how likely the model found it.

    c = Colorer(model, prime)          # reads the prime first
    sys.stdout.write(c.feed(chunk))    # each chunk of the continuation, with ANSI colours

The probability is the model's own (temperature 1) of the character that came, as the
HTML report colours its passages, whatever temperature drew it: a cold sample still
shows where the model was unsure. It comes from the probe (charrnn.nn.probe) reading the
printed text chunk by chunk with its state carried, so the colours cost one more
forward pass and leave the sampled text untouched. Byte-level models colour a character
by the product of its bytes' probabilities.
"""
import numpy as np

# (lower bound of the probability, 256-colour code); below the last: red
BANDS = ((0.8, None), (0.5, 40), (0.25, 178), (0.1, 208), (0.0, 196))
RESET = "\x1b[0m"


def legend():
    parts = []
    hi = 1.0
    for lo, code in BANDS:
        label = f"p >= {lo:g}" if lo else f"p < {hi:g}"
        parts.append(label if code is None else f"\x1b[38;5;{code}m{label}{RESET}")
        hi = lo
    return "colour = the model's probability of each character: " + ", ".join(parts)


def band(p):
    for lo, code in BANDS:
        if p >= lo:
            return code
    return BANDS[-1][1]


class Colorer:
    def __init__(self, model, prime):
        self.model = model
        self.bytes = model.cfg.encoding == "bytes"
        start = prime if prime else ("\n" if "\n" in model.vocab else model.vocab[0])
        p = model.probe(start)
        self.state, self.last = p.state, p.probs[-1]

    def probs(self, text):
        """Probability of each character of text, continuing from what was read."""
        p = self.model.probe(text, state=self.state)
        rows = np.vstack([self.last[None, :], p.probs[:-1]])
        per_id = rows[np.arange(len(p.ids)), p.ids]
        self.state, self.last = p.state, p.probs[-1]
        if not self.bytes:
            return per_id
        out, i = [], 0
        for ch in text:
            n = len(ch.encode("utf-8", "surrogatepass"))
            out.append(float(np.prod(per_id[i:i + n])))
            i += n
        return np.array(out)

    def feed(self, text):
        """text with an ANSI colour escape before each change of band."""
        if not text:
            return text
        try:
            probs = self.probs(text)
        except Exception:   # e.g. U+FFFD from an invalid byte sequence: print uncoloured
            return text
        out, cur = [], None
        for ch, p in zip(text, probs):
            code = None if ch == "\n" else band(p)
            if code != cur:
                out.append(RESET if code is None else f"\x1b[38;5;{code}m")
                cur = code
            out.append(ch)
        if cur is not None:
            out.append(RESET)
        return "".join(out)
