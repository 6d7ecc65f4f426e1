# cython: language_level=3
"""Many-to-many alignment of a source string and a target sequence into graphones (issue 32).

A graphone is a chunk of 1..max_x source symbols with a chunk of 0..max_y target tokens
(a source chunk may stand for nothing: the silent e of "cake"; two symbols with two
tokens only with many_to_many, as Phonetisaurus's aligner restricts); a pair (x, y) is a path
of graphones through the lattice of (i, j) = (source read, target written). With a joint
unigram table p(graphone), `em_counts` adds each graphone's expected count over all
paths of every pair (forward-backward: one EM step, Jiang and Bisani & Ney's
joint-sequence models start so), and `viterbi` writes each pair's best path.

Codes: source symbols are 1..A, target tokens 1..B (0 is "none"). A source chunk's code
is x1 * (A + 1) + x2 with x2 = 0 for a chunk of one (x1 where max_x is 1); a target
chunk's y1 * (B + 1) + y2 (y1 where max_y is 1), 0 for the empty chunk. So the table is dense, (A + 1)^max_x by (B + 1)^max_y, and no
hashing runs inside the loops. Every array is checked before the GIL is released.
"""
import numpy as np

from libc.math cimport log
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc

ctypedef int32_t i32
ctypedef int64_t i64


def _check(xs, xoff, ys, yoff, table, int nx, int ny, int max_x, int max_y):
    """The arrays' dtypes, offsets and symbol ranges; returns (pairs, longest x, longest y)."""
    if max_x not in (1, 2) or max_y not in (1, 2):
        raise ValueError("max_x and max_y must be 1 or 2")
    for name, a, dt in (("xs", xs, np.int32), ("ys", ys, np.int32), ("xoff", xoff, np.int64),
                        ("yoff", yoff, np.int64)):
        if not isinstance(a, np.ndarray) or a.dtype != dt or a.ndim != 1:
            raise ValueError(f"{name} must be a 1-d {np.dtype(dt).name} array")
    if len(xoff) != len(yoff) or len(xoff) < 1:
        raise ValueError("xoff and yoff must have the same length, at least 1")
    if xoff[0] != 0 or yoff[0] != 0 or xoff[-1] != len(xs) or yoff[-1] != len(ys):
        raise ValueError("offsets must start at 0 and end at the arrays' lengths")
    if len(xoff) > 1 and (np.any(np.diff(xoff) < 1) or np.any(np.diff(yoff) < 0)):
        raise ValueError("every source must have a symbol; offsets must not decrease")
    if len(xs) and (xs.min() < 1 or xs.max() >= nx):
        raise ValueError(f"source symbols must be in 1..{nx - 1}")
    if len(ys) and (ys.min() < 1 or ys.max() >= ny):
        raise ValueError(f"target tokens must be in 1..{ny - 1}")
    shape = (nx ** max_x, ny ** max_y)
    if not isinstance(table, np.ndarray) or table.dtype != np.float64 or table.shape != shape \
            or not table.flags.c_contiguous:
        raise ValueError(f"table must be a C-contiguous float64 array of shape {shape}")
    n = len(xoff) - 1
    lx = int(np.diff(xoff).max()) if n else 0
    ly = int(np.diff(yoff).max()) if n else 0
    return n, lx, ly


cdef inline i64 xcode(const i32* x, int i, int a, int nx, int max_x) nogil:
    if max_x == 1:          # chunks of one: the symbol is the code
        return x[i]
    return x[i] * nx + (x[i + 1] if a == 2 else 0)


cdef inline i64 ycode(const i32* y, int j, int b, int ny, int max_y) nogil:
    if b == 0:
        return 0
    if max_y == 1:
        return y[j]
    return y[j] * ny + (y[j + 1] if b == 2 else 0)


def em_counts(xs, xoff, ys, yoff, table, counts, int nx, int ny, int max_x=2, int max_y=2,
              bint many_to_many=False):
    """Adds to counts (table's shape, float64) every graphone's posterior count over all
    paths of every pair under the joint unigram `table` of probabilities. Returns
    (log-likelihood of the pairs that have a path, pairs without one). nx, ny: A + 1, B + 1;
    many_to_many: graphones of two symbols with two tokens too."""
    cdef int n, lx, ly
    n, lx, ly = _check(xs, xoff, ys, yoff, table, nx, ny, max_x, max_y)
    if not isinstance(counts, np.ndarray) or counts.dtype != np.float64 \
            or counts.shape != table.shape or not counts.flags.c_contiguous:
        raise ValueError("counts must be a C-contiguous float64 array of table's shape")
    if len(ys) == 0:   # no target tokens at all: a pointer to something all the same
        ys = np.zeros(1, np.int32)
    cdef const i32[::1] X = xs
    cdef const i32[::1] Y = ys
    cdef const i64[::1] XO = xoff
    cdef const i64[::1] YO = yoff
    cdef const double[:, ::1] P = table
    cdef double[:, ::1] C = counts
    cdef int w = ly + 1
    cdef double* alpha = <double*>malloc(sizeof(double) * (lx + 1) * w)
    cdef double* beta = <double*>malloc(sizeof(double) * (lx + 1) * w)
    if alpha == NULL or beta == NULL:
        free(alpha)
        free(beta)
        raise MemoryError()
    cdef double ll = 0.0, z, post
    cdef int dead = 0, k, i, j, a, b, m, l
    cdef const i32* x
    cdef const i32* y
    with nogil:
        for k in range(n):
            x = &X[0] + XO[k]
            y = &Y[0] + YO[k]
            l = <int>(XO[k + 1] - XO[k])
            m = <int>(YO[k + 1] - YO[k])
            # alpha[i, j]: total probability of the paths from (0, 0) to (i, j)
            for i in range((l + 1) * w):
                alpha[i] = 0.0
                beta[i] = 0.0
            alpha[0] = 1.0
            for i in range(l + 1):
                for j in range(m + 1):
                    if alpha[i * w + j] == 0.0:
                        continue
                    for a in range(1, max_x + 1):
                        if i + a > l:
                            break
                        for b in range(0, max_y + 1):
                            if j + b > m or (a == 2 and b == 2 and not many_to_many):
                                break
                            alpha[(i + a) * w + j + b] += alpha[i * w + j] * \
                                P[xcode(x, i, a, nx, max_x), ycode(y, j, b, ny, max_y)]
            z = alpha[l * w + m]
            if not z > 0.0:
                dead += 1
                continue
            ll += log(z)
            # beta[i, j]: total probability of the paths from (i, j) to (l, m)
            beta[l * w + m] = 1.0
            for i in range(l, -1, -1):
                for j in range(m, -1, -1):
                    if i == l and j == m:
                        continue
                    for a in range(1, max_x + 1):
                        if i + a > l:
                            break
                        for b in range(0, max_y + 1):
                            if j + b > m or (a == 2 and b == 2 and not many_to_many):
                                break
                            beta[i * w + j] += P[xcode(x, i, a, nx, max_x), ycode(y, j, b, ny, max_y)] * \
                                beta[(i + a) * w + j + b]
            for i in range(l):
                for j in range(m + 1):
                    if alpha[i * w + j] == 0.0:
                        continue
                    for a in range(1, max_x + 1):
                        if i + a > l:
                            break
                        for b in range(0, max_y + 1):
                            if j + b > m or (a == 2 and b == 2 and not many_to_many):
                                break
                            post = alpha[i * w + j] * P[xcode(x, i, a, nx, max_x), ycode(y, j, b, ny, max_y)] \
                                * beta[(i + a) * w + j + b] / z
                            if post > 0.0:
                                C[xcode(x, i, a, nx, max_x), ycode(y, j, b, ny, max_y)] += post
    free(alpha)
    free(beta)
    return ll, dead


def viterbi(xs, xoff, ys, yoff, logtable, int nx, int ny, int max_x=2, int max_y=2,
            bint many_to_many=False):
    """Each pair's most probable path under `logtable` (log-probabilities; -inf: never).
    Returns (gx, gy, goff, score): the path's source and target chunk codes, pair k's at
    goff[k]:goff[k + 1] (empty where no path exists), and each path's log-probability
    (-inf where none)."""
    cdef int n, lx, ly
    n, lx, ly = _check(xs, xoff, ys, yoff, logtable, nx, ny, max_x, max_y)
    if len(ys) == 0:
        ys = np.zeros(1, np.int32)
    cdef const i32[::1] X = xs
    cdef const i32[::1] Y = ys
    cdef const i64[::1] XO = xoff
    cdef const i64[::1] YO = yoff
    cdef const double[:, ::1] P = logtable
    gx_a = np.zeros(len(xs), np.int64)    # a path has at most one graphone per source symbol
    gy_a = np.zeros(len(xs), np.int64)
    goff_a = np.zeros(n + 1, np.int64)
    score_a = np.full(n, -np.inf)
    cdef i64[::1] GX = gx_a
    cdef i64[::1] GY = gy_a
    cdef i64[::1] GO = goff_a
    cdef double[::1] S = score_a
    cdef int w = ly + 1
    cdef double* best = <double*>malloc(sizeof(double) * (lx + 1) * w)
    cdef int* back = <int*>malloc(sizeof(int) * (lx + 1) * w)   # a * 4 + b of the last step
    if best == NULL or back == NULL:
        free(best)
        free(back)
        raise MemoryError()
    cdef int k, i, j, a, b, m, l, steps, at, t
    cdef i64 out = 0
    cdef double v, ninf = -np.inf
    cdef const i32* x
    cdef const i32* y
    with nogil:
        for k in range(n):
            x = &X[0] + XO[k]
            y = &Y[0] + YO[k]
            l = <int>(XO[k + 1] - XO[k])
            m = <int>(YO[k + 1] - YO[k])
            for i in range((l + 1) * w):
                best[i] = ninf
                back[i] = -1
            best[0] = 0.0
            for i in range(l + 1):
                for j in range(m + 1):
                    if best[i * w + j] == ninf:
                        continue
                    for a in range(1, max_x + 1):
                        if i + a > l:
                            break
                        for b in range(0, max_y + 1):
                            if j + b > m or (a == 2 and b == 2 and not many_to_many):
                                break
                            v = best[i * w + j] + P[xcode(x, i, a, nx, max_x), ycode(y, j, b, ny, max_y)]
                            if v > best[(i + a) * w + j + b]:   # ties: the first path found
                                best[(i + a) * w + j + b] = v
                                back[(i + a) * w + j + b] = a * 4 + b
            GO[k] = out
            if best[l * w + m] == ninf:
                GO[k + 1] = out
                continue
            S[k] = best[l * w + m]
            steps = 0                     # count the path's steps, then write them in order
            i, j = l, m
            while i > 0 or j > 0:
                t = back[i * w + j]
                i -= t // 4
                j -= t % 4
                steps += 1
            at = <int>out + steps
            i, j = l, m
            while i > 0 or j > 0:
                t = back[i * w + j]
                a, b = t // 4, t % 4
                i -= a
                j -= b
                at -= 1
                GX[at] = xcode(x, i, a, nx, max_x)
                GY[at] = ycode(y, j, b, ny, max_y)
            out += steps
            GO[k + 1] = out
    free(best)
    free(back)
    return gx_a[:out].copy(), gy_a[:out].copy(), goff_a, score_a
