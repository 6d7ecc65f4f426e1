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
    if xoff[0] != 0 or yoff[0] != 0 or xoff[len(xoff) - 1] != len(xs) \
            or yoff[len(yoff) - 1] != len(ys):
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


cdef struct Edge:
    int src, dst       # lattice cells i * w + j
    i64 cx, cy         # the graphone's table row and column


cdef int edges(Edge* e, const i32* x, const i32* y, int l, int m, int w, int nx, int ny,
               int max_x, int max_y, bint many_to_many) noexcept nogil:
    """Every step of the pair's lattice, from cell (i, j) to (i + a, j + b), in order of
    i, j, a, b: each step comes after every step into its start. Returns their count."""
    cdef int i, j, a, b, k = 0
    for i in range(l):
        for j in range(m + 1):
            for a in range(1, max_x + 1):
                if i + a > l:
                    break
                for b in range(max_y + 1):
                    if j + b > m or (a == 2 and b == 2 and not many_to_many):
                        break
                    e[k].src, e[k].dst = i * w + j, (i + a) * w + j + b
                    e[k].cx, e[k].cy = xcode(x, i, a, nx, max_x), ycode(y, j, b, ny, max_y)
                    k += 1
    return k


cdef class _Pairs:
    """The checked arrays of a batch of pairs, and scratch for one pair's lattice."""
    cdef const i32[::1] X
    cdef const i32[::1] Y
    cdef const i64[::1] XO
    cdef const i64[::1] YO
    cdef int n, w, cells, nx, ny, max_x, max_y
    cdef bint many
    cdef Edge* e
    cdef double* f
    cdef double* g

    def __cinit__(self, xs, xoff, ys, yoff, table, int nx, int ny, int max_x, int max_y,
                  bint many_to_many):
        n, lx, ly = _check(xs, xoff, ys, yoff, table, nx, ny, max_x, max_y)
        self.X, self.XO, self.YO = xs, xoff, yoff
        self.Y = ys if len(ys) else np.zeros(1, np.int32)   # a valid pointer all the same
        self.n, self.w, self.cells = n, ly + 1, (lx + 1) * (ly + 1)
        self.nx, self.ny, self.max_x, self.max_y, self.many = nx, ny, max_x, max_y, many_to_many
        self.e = <Edge*>malloc(sizeof(Edge) * self.cells * 6)
        self.f = <double*>malloc(sizeof(double) * self.cells)
        self.g = <double*>malloc(sizeof(double) * self.cells)
        if self.e == NULL or self.f == NULL or self.g == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.e)
        free(self.f)
        free(self.g)

    cdef int lattice(self, int k, int* l, int* m) noexcept nogil:
        """Pair k's edges into self.e (their count); l, m: its lengths."""
        l[0] = <int>(self.XO[k + 1] - self.XO[k])
        m[0] = <int>(self.YO[k + 1] - self.YO[k])
        return edges(self.e, &self.X[0] + self.XO[k], &self.Y[0] + self.YO[k], l[0], m[0],
                     self.w, self.nx, self.ny, self.max_x, self.max_y, self.many)


def em_counts(xs, xoff, ys, yoff, table, counts, int nx, int ny, int max_x=2, int max_y=2,
              bint many_to_many=False):
    """Adds to counts (table's shape, float64) every graphone's posterior count over all
    paths of every pair under the joint unigram `table` of probabilities. Returns
    (log-likelihood of the pairs that have a path, pairs without one). nx, ny: A + 1, B + 1;
    many_to_many: graphones of two symbols with two tokens too."""
    cdef _Pairs p = _Pairs(xs, xoff, ys, yoff, table, nx, ny, max_x, max_y, many_to_many)
    if not isinstance(counts, np.ndarray) or counts.dtype != np.float64 \
            or counts.shape != table.shape or not counts.flags.c_contiguous:
        raise ValueError("counts must be a C-contiguous float64 array of table's shape")
    cdef const double[:, ::1] P = table
    cdef double[:, ::1] C = counts
    cdef double* alpha = p.f     # alpha[c]: the paths' probability from (0, 0) to cell c
    cdef double* beta = p.g      # beta[c]: from cell c to (l, m)
    cdef double ll = 0.0, z, post
    cdef int dead = 0, k, t, count, l, m
    cdef Edge* e = p.e
    with nogil:
        for k in range(p.n):
            count = p.lattice(k, &l, &m)
            for t in range(p.cells):
                alpha[t] = 0.0
                beta[t] = 0.0
            alpha[0] = 1.0
            for t in range(count):
                alpha[e[t].dst] += alpha[e[t].src] * P[e[t].cx, e[t].cy]
            z = alpha[l * p.w + m]
            if not z > 0.0:
                dead += 1
                continue
            ll += log(z)
            beta[l * p.w + m] = 1.0
            for t in range(count - 1, -1, -1):   # every step out of a cell before it
                beta[e[t].src] += P[e[t].cx, e[t].cy] * beta[e[t].dst]
            for t in range(count):
                post = alpha[e[t].src] * P[e[t].cx, e[t].cy] * beta[e[t].dst] / z
                if post > 0.0:
                    C[e[t].cx, e[t].cy] += post
    return ll, dead


def viterbi(xs, xoff, ys, yoff, logtable, int nx, int ny, int max_x=2, int max_y=2,
            bint many_to_many=False):
    """Each pair's most probable path under `logtable` (log-probabilities; -inf: never).
    Returns (gx, gy, goff, score): the path's source and target chunk codes, pair k's at
    goff[k]:goff[k + 1] (empty where no path exists), and each path's log-probability
    (-inf where none)."""
    cdef _Pairs p = _Pairs(xs, xoff, ys, yoff, logtable, nx, ny, max_x, max_y, many_to_many)
    cdef const double[:, ::1] P = logtable
    gx_a = np.zeros(len(xs), np.int64)    # a path has at most one graphone per source symbol
    gy_a = np.zeros(len(xs), np.int64)
    goff_a = np.zeros(p.n + 1, np.int64)
    score_a = np.full(p.n, -np.inf)
    cdef i64[::1] GX = gx_a
    cdef i64[::1] GY = gy_a
    cdef i64[::1] GO = goff_a
    cdef double[::1] S = score_a
    cdef double* best = p.f
    cdef int* back = <int*>p.g      # the edge into each cell on its best path (cells <= doubles)
    cdef int k, t, c, count, l, m, steps, at
    cdef i64 out = 0
    cdef double v, ninf = -np.inf
    cdef Edge* e = p.e
    with nogil:
        for k in range(p.n):
            count = p.lattice(k, &l, &m)
            for t in range(p.cells):
                best[t] = ninf
                back[t] = -1
            best[0] = 0.0
            for t in range(count):
                if best[e[t].src] == ninf:
                    continue
                v = best[e[t].src] + P[e[t].cx, e[t].cy]
                if v > best[e[t].dst]:   # ties: the first path found
                    best[e[t].dst] = v
                    back[e[t].dst] = t
            GO[k] = out
            c = l * p.w + m
            if best[c] == ninf:
                GO[k + 1] = out
                continue
            S[k] = best[c]
            steps = 0                     # count the path's steps, then write them in order
            while c != 0:
                c = e[back[c]].src
                steps += 1
            at = <int>out + steps
            c = l * p.w + m
            while c != 0:
                t = back[c]
                at -= 1
                GX[at], GY[at] = e[t].cx, e[t].cy
                c = e[t].src
            out += steps
            GO[k + 1] = out
    return gx_a[:out].copy(), gy_a[:out].copy(), goff_a, score_a
