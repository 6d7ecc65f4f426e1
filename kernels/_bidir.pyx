"""The time gathers of a bidirectional layer over a padded batch (charrnn/nn/bidirectional.py).

Sizes: T time steps, N rows, C columns copied. A row's valid part is its first len[n]
steps; the layer runs each direction right-aligned (the row ends at step T-1) so the
cells' final state is every row's own final state. Every move between the padded,
left-aligned batch and those right-aligned direction buffers is one gather:

    dst[t, n, d0:d0+C] (= or +=) src[idx[t, n], n, c0:c0+C]    where idx[t, n] >= 0
    dst[t, n, d0:d0+C]  = 0                                     where idx[t, n] < 0 (unless add)

idx (T, N) int32 comes from charrnn.nn.bidirectional.Plan, built once per batch; every
index and column range is checked here before the GIL is released, so the loop cannot
read or write outside its arrays. Rows of one step are contiguous C-runs: memcpy/add.
"""
from cython cimport floating
from libc.stdint cimport int32_t
from libc.string cimport memcpy, memset


def gather(const floating[:, :, ::1] src, Py_ssize_t c0, const int32_t[:, ::1] idx,
           floating[:, :, ::1] dst, Py_ssize_t d0, Py_ssize_t C, bint add):
    """dst[t, n, d0:d0+C] = src[idx[t, n], n, c0:c0+C] (+= with add); zero (or left
    alone with add) where idx[t, n] < 0."""
    cdef Py_ssize_t t, n, j, s, T = idx.shape[0], N = idx.shape[1]
    cdef Py_ssize_t Ts = src.shape[0], bad = -1
    if src.shape[1] != N or dst.shape[0] != T or dst.shape[1] != N:
        raise ValueError(f"gather: src {tuple(src.shape)[:3]} / dst {tuple(dst.shape)[:3]} "
                         f"do not fit idx {(T, N)}")
    if C < 0 or c0 < 0 or d0 < 0 or c0 + C > src.shape[2] or d0 + C > dst.shape[2]:
        raise ValueError(f"gather: columns [{c0}, {c0 + C}) of src / [{d0}, {d0 + C}) of dst "
                         f"outside {src.shape[2]} / {dst.shape[2]}")
    if C == 0:
        return
    with nogil:
        for t in range(T):
            for n in range(N):
                if idx[t, n] >= Ts:
                    bad = t * N + n
    if bad >= 0:
        raise ValueError(f"gather: index {idx[bad // N, bad % N]} at {(bad // N, bad % N)} "
                         f"outside src's {Ts} steps")
    with nogil:
        for t in range(T):
            for n in range(N):
                s = idx[t, n]
                if s < 0:
                    if not add:
                        memset(&dst[t, n, d0], 0, C * sizeof(floating))
                elif add:
                    for j in range(C):
                        dst[t, n, d0 + j] += src[s, n, c0 + j]
                else:
                    memcpy(&dst[t, n, d0], &src[s, n, c0], C * sizeof(floating))
