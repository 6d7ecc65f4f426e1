"""Finding loops in generated text: the longest substring that occurs twice.

    r = longest_repeat("the state of the state of the")
    r.length, r.text, r.first, r.second        # 16, "the state of the", 0, 13

Binary search on the length m (a repeat of length m contains one of length m - 1): for
each m, the polynomial hashes of all windows of length m (mod 2^64, computed at once from
prefix sums in NumPy) are checked for a duplicate, and a duplicate's two windows are
compared as text, so a hash collision cannot make a false report. O(n log n) time.
Occurrences may overlap ("aaaa" repeats "aaa").
"""
from dataclasses import dataclass

import numpy as np

_B = np.uint64(0x100000001b3)
_BINV = np.uint64(pow(0x100000001b3, -1, 2**64))


@dataclass(frozen=True)
class Repeat:
    length: int   # characters of the longest repeated substring (0: none)
    text: str     # that substring
    first: int    # where it first occurs
    second: int   # where it occurs again


def longest_repeat(text):
    """The longest substring of `text` that occurs at least twice: a Repeat."""
    n = len(text)
    if n < 2:
        return Repeat(0, "", -1, -1)
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), "<u4").astype(np.uint64)
    with np.errstate(over="ignore"):
        inv = np.full(n, _BINV, np.uint64)
        inv[0] = 1
        inv = np.cumprod(inv, dtype=np.uint64)                   # B^-i
        pw = np.full(n, _B, np.uint64)
        pw[0] = 1
        pw = np.cumprod(pw, dtype=np.uint64)                     # B^i
        G = np.zeros(n + 1, np.uint64)
        G[1:] = np.cumsum((codes + np.uint64(1)) * inv, dtype=np.uint64)

    def dup(m):
        with np.errstate(over="ignore"):
            h = (G[m:] - G[:n - m + 1]) * pw[:n - m + 1]         # window i, shift-free
        order = np.argsort(h, kind="stable")
        same = np.nonzero(h[order[1:]] == h[order[:-1]])[0]
        for j in same:
            a, b = sorted((int(order[j]), int(order[j + 1])))
            if text[a:a + m] == text[b:b + m]:
                return a, b
        return None

    lo, hi, best = 0, n - 1, (-1, -1)      # a repeat of length lo exists, none above hi
    while lo < hi:
        m = (lo + hi + 1) // 2
        found = dup(m)
        if found:
            lo, best = m, found
        else:
            hi = m - 1
    if lo == 0:
        return Repeat(0, "", -1, -1)
    return Repeat(lo, text[best[0]:best[0] + lo], best[0], best[1])
