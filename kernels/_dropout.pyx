"""Dropout masks that depend on where an element is, not on who draws it.

A data-parallel run splits the batch's streams over ranks; for its losses to equal a
single process's, each stream's masks must be the same whichever rank holds it. So a
mask element is a pure function of (seed, step, global stream index, site, t, d),
computed by Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and
Shaw, "Parallel random numbers: as easy as 1, 2, 3" (SC 2011):

    key     = (seed & 0xffffffff, seed >> 32)                    (64-bit seed)
    counter = (e // 4, stream, step & 0xffffffff, site | (step >> 32) << 8)
    u       = philox4x32_10(counter, key)[e % 4]                 e = t*D + d
    mask    = 1/(1-p) if u >= floor(p * 2^32) else 0              (inverted dropout)

site: 0 the embedding output, k + 1 the output of layer k. Distinct (stream, step,
site) give disjoint counters, so no two mask elements of a run share a random word.
"""
from cython cimport floating
import numpy as np

from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef extern from "philox.h" nogil:
    int PHILOX_LANES
    void philox_block(uint32_t c[4], uint32_t k0, uint32_t k1)
    void philox_row(uint32_t b0, int64_t nblocks, uint32_t c1, uint32_t c2, uint32_t c3,
                    uint32_t k0, uint32_t k1, uint32_t* words)


def philox4x32_10(counter, key):
    """Python twin of the generator, for known-answer tests: 4 words -> 4 words."""
    cdef uint32_t c[4]
    for i in range(4):
        c[i] = counter[i]
    philox_block(c, key[0], key[1])
    return (c[0], c[1], c[2], c[3])


def dropout_mask(floating[:, :, ::1] out, uint64_t seed, uint64_t step, int64_t stream0,
                 uint32_t site, double p):
    """out (T, n, D) := the masks of streams stream0 .. stream0 + n - 1 at this step and
    site: 0 or 1/(1-p). Row (t, j) belongs to global stream stream0 + j."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if stream0 < 0 or stream0 + out.shape[1] > 0xffffffff:
        raise ValueError(f"stream indices {stream0}.. do not fit in 32 bits")
    if out.shape[0] * out.shape[2] >= (<int64_t>1 << 34):
        raise ValueError("a stream's (T, D) block is too large for one counter range")
    cdef Py_ssize_t T = out.shape[0], n = out.shape[1], D = out.shape[2], j, t, d, skip
    cdef int64_t first, nblocks
    cdef uint64_t thr = <uint64_t>(p * 4294967296.0)
    cdef uint32_t k0 = <uint32_t>seed, k1 = <uint32_t>(seed >> 32)
    cdef uint32_t c2 = <uint32_t>step, c3 = site | (<uint32_t>(step >> 32) << 8)
    cdef floating keep = 1.0 / (1.0 - p)
    # the words of one row (t, j): whole lane groups of 4-word blocks
    group = 4 * PHILOX_LANES
    words_arr = np.empty((D + 8) // group * group + 2 * group, np.uint32)
    cdef uint32_t[::1] words = words_arr
    cdef uint32_t* w
    with nogil:
        for t in range(T):
            # elements t*D .. t*D + D - 1 of a stream lie in blocks first .. first + nblocks - 1
            first = (<int64_t>t * D) >> 2
            nblocks = ((<int64_t>t * D + D - 1) >> 2) - first + 1
            skip = <Py_ssize_t>(t * D - 4 * first)      # words of block `first` before t*D
            for j in range(n):
                philox_row(<uint32_t>first, nblocks, <uint32_t>(stream0 + j), c2, c3, k0, k1,
                           &words[0])
                w = &words[skip]
                for d in range(D):
                    out[t, j, d] = keep if w[d] >= thr else 0
