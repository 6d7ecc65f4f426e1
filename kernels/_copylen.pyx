# cython: language_level=3
"""Longest substring of a short sample that occurs in a long text, in one pass.

The sample's suffix automaton (built in charrnn/copylen.py: S states over K symbols)
reads the text; after each text character, (state, length) is the longest suffix of the
text so far that is a substring of the sample. On a character with no transition it
follows suffix links (each one shortens the match), so the pass is O(len(text)) with a
table lookup per character. State carries over between calls: the text can come in
chunks.

    text  (n,)    uint8/16/32 corpus ids
    sym   (V,)    int32: symbol of each id in the sample, -1 if the sample lacks it
    trans (S, K)  int32: next state, -1 for none
    link  (S,)    int32: suffix link (-1 at the root, state 0)
    length (S,)   int32: longest string of each state
"""
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t

ctypedef fused id_t:
    uint8_t
    uint16_t
    uint32_t


def scan(const id_t[::1] text, const int32_t[::1] sym, const int32_t[:, ::1] trans,
         const int32_t[::1] link, const int32_t[::1] length, int state, int matched,
         int best, int stop_at):
    """-> (state, matched, best) after reading text; stops early once best >= stop_at."""
    cdef Py_ssize_t i, n = text.shape[0], V = sym.shape[0]
    cdef int S = trans.shape[0], K = trans.shape[1], s, c, nxt
    if link.shape[0] != S or length.shape[0] != S or not 0 <= state < S:
        raise ValueError("automaton arrays disagree")
    with nogil:
        for i in range(n):
            c = sym[text[i]] if <Py_ssize_t>text[i] < V else -1
            if c < 0:                      # a character the sample never has
                state, matched = 0, 0
                continue
            while True:
                nxt = trans[state, c]
                if nxt >= 0:
                    state, matched = nxt, matched + 1
                    break
                if state == 0:
                    matched = 0
                    break
                state = link[state]
                matched = length[state]
            if matched > best:
                best = matched
                if best >= stop_at:
                    break
    return state, matched, best
