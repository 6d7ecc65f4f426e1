"""Which hidden units track something you can see in the text?

Karpathy's char-RNN post showed single LSTM cells that follow quotes, line length or
indentation. We look for them the simple way: for each visible property of the text
(a feature, one number per character) and each hidden unit (a column of
Probe.hidden, any layer), the Pearson correlation over a held-out passage; the unit
with the largest |r| per feature is "the unit for" that feature. A feature that does
not vary in the passage (no quotes in it, say) is skipped.

Features, one value per character t, computed from text[:t+1] only (what the model
has read so far):
    position in line   characters since the last newline
    inside quotes      1 between an opening " and its closing "
    inside brackets    1 inside (...) or [...] (nesting counted once)
    inside a word      1 on letters and apostrophes within a word
    upper-case line    1 while every letter of the line so far is upper case
                       (Tiny Shakespeare's speaker names: "ROMEO:")
"""
from dataclasses import dataclass

import numpy as np

MIN_SHARE = 0.02   # a 0/1 feature must be on (and off) for 2% of the passage


def features(text):
    """{name: (T,) float64} for the features above."""
    T = len(text)
    pos, quote, bracket, word, upper = (np.zeros(T) for _ in range(5))
    col, in_quote, depth, line_upper, line_letters = 0, False, 0, True, 0
    for t, ch in enumerate(text):
        if ch == "\n":
            col, line_upper, line_letters = 0, True, 0
        else:
            col += 1
        if ch == '"':
            in_quote = not in_quote
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        if ch.isalpha():
            line_letters += 1
            line_upper = line_upper and ch.isupper()
        pos[t] = col
        quote[t] = in_quote
        bracket[t] = depth > 0
        word[t] = ch.isalpha() or (ch == "'" and t > 0 and text[t - 1].isalpha())
        upper[t] = line_upper and line_letters > 0
    return {"position in line": pos, "inside quotes": quote, "inside brackets": bracket,
            "inside a word": word, "upper-case line": upper}


@dataclass
class Unit:
    feature: str     # what it tracks
    layer: int       # 0-based
    index: int       # unit within the layer
    r: float         # Pearson correlation with the feature over the passage


def correlations(hidden, feature):
    """(L, H) Pearson r of every unit of hidden (L, T, H) with feature (T,); 0 where a
    unit is constant."""
    f = feature - feature.mean()
    h = hidden.astype(np.float64) - hidden.mean(axis=1, keepdims=True)      # (L, T, H)
    num = np.einsum("lth,t->lh", h, f)
    den = np.sqrt((h * h).sum(axis=1) * (f @ f))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def interesting_units(text, hidden, limit=4):
    """The best unit for each feature that varies in text, strongest first, at most
    `limit`, never the same unit twice. hidden: (L, T, H) from Probe.hidden."""
    found, used = [], set()
    for name, f in features(text).items():
        binary = set(np.unique(f)) <= {0.0, 1.0}
        if f.std() == 0 or (binary and not MIN_SHARE <= f.mean() <= 1 - MIN_SHARE):
            continue
        r = correlations(hidden, f)
        for flat in np.argsort(-np.abs(r), axis=None):
            layer, index = np.unravel_index(flat, r.shape)
            if (layer, index) not in used:
                used.add((int(layer), int(index)))
                found.append(Unit(name, int(layer), int(index), float(r[layer, index])))
                break
    found.sort(key=lambda u: -abs(u.r))
    return found[:limit]
