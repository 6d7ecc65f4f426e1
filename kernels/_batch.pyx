"""Continuous batching: rows that join and leave between steps, each with its own options.

Sizes: N rows in use out of a fixed capacity R, L layers, H hidden, E embedding,
V vocabulary, G gates, GH = G*H, A <= 5 top alternatives per character.

The network step is _sample.pyx's (the same Net from _sample_net.pxi, the same cells,
the same sampling.h): one GEMM per layer per step for all N rows (a GEMV when N = 1,
as Run does for one stream). What serving adds:

    join    a request takes row N: its state is zeroed, its prompt fed alone (as
            Run.prime does), its generator seeded as stream j of its seed (xoshiro256**
            jumped j times, exactly Run's stream j), its temperature / top-k / top-p set
    step    T steps of every row, the GIL released; per row and step the chosen id,
            and when asked the log-probability of it and of the A likeliest characters
            under the model's own distribution (softmax of the logits, temperature 1)
    leave   row i goes; the last row moves into its place (rows stay packed 0..N-1, so
            one product covers them all). Python mirrors the move.

So a request with seed S, stream 0, gets the ids that `Run(net, 1, S)` gives for the
same prompt and options, whatever other rows share its steps (tests/test_serve.py).

State: S (R, L*H) [h_0 | ... | h_{L-1}] per row; C (L, R, H) LSTM cell states.
Not thread-safe: one thread drives a Batch (the server's scheduler thread).
"""
import numpy as np

from libc.math cimport expf, logf
from libc.stdint cimport int32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from _blas cimport gemm, gemv
from _cellmath cimport (cr_ftz_begin, cr_ftz_end, fill_bias_f32,
                        lstm_fwd_step_f32, gru_fwd_step_f32, rnn_fwd_step_f32)

include "_dispatch.pxi"


include "_sampling.pxi"   # cr_rng_seed, cr_rng_uniform, cr_argmax, cr_pick


include "_sample_net.pxi"   # Net: the model, read-only here

TOP_MAX = 5                 # alternatives per character at most (OpenAI's limit too)
STREAM_MAX = 1024           # stream index j at most (seeding jumps j times)


# Below this many rows: one GEMV per row. SciPy's OpenBLAS sgemm costs ~0.45 ms for a
# 2x256 GRU step whatever the rows (it packs the weights each call), one GEMV per row
# 0.046 ms: rows by GEMV win up to ~12 rows (bench/serve.py's notes, AMD EPYC Zen 3).
cdef Py_ssize_t gemv_rows = 12


def set_gemv_rows(Py_ssize_t n):
    """Batches of fewer than n rows multiply row by row (GEMV), as Run does for one
    stream; n or more rows, one GEMM. Returns the previous value."""
    global gemv_rows
    old, gemv_rows = gemv_rows, max(1, n)
    return old


cdef inline void _mm(Py_ssize_t K, Py_ssize_t M, Py_ssize_t D, const float *X, Py_ssize_t ldx,
                     const float *W, float *out) noexcept nogil:
    """out (K, M) += X (K, D; row stride ldx) @ W^T, W (M, D) row-major (as _sample.pyx)."""
    cdef Py_ssize_t n
    if K == 1:
        gemv(False, <int>M, <int>D, <float>1, W, <int>D, X, <float>1, out)
    elif K < gemv_rows:
        for n in range(K):
            gemv(False, <int>M, <int>D, <float>1, W, <int>D, X + n * ldx, <float>1, out + n * M)
    else:
        gemm(False, True, <int>K, <int>M, <int>D, <float>1, X, <int>ldx, W, <int>D,
             <float>1, out, <int>M)


cdef class Batch:
    """Up to `capacity` independent generations advanced together; see the module doc."""
    cdef Model m
    cdef readonly Net net
    cdef readonly Py_ssize_t capacity, rows
    cdef object _bufs
    cdef float *S          # (R, L*H)
    cdef float *C          # (L, R, H)
    cdef float *act        # (R, GH)
    cdef float *gh         # (R, GH)
    cdef float *xe         # (R, E)
    cdef float *tmp        # (2H)
    cdef float *logits     # (R, V)
    cdef float *w          # (V)
    cdef int32_t *order    # (V)
    cdef uint64_t *rng     # (R, 4)
    cdef int32_t *cur      # (R)
    cdef float *inv_temp   # (R)  0: greedy
    cdef int32_t *top_k    # (R)
    cdef double *top_p     # (R)
    cdef int32_t *n_top    # (R)  -1: no log-probabilities; else 0..TOP_MAX alternatives

    def __init__(self, Net net, Py_ssize_t capacity):
        cdef Py_ssize_t L = net.m.L, H = net.m.H, E = net.m.E, V = net.m.V, R = capacity
        cdef Py_ssize_t GH = net.m.G * H
        _need(R >= 1, "capacity >= 1")
        _need(R * max(L * H, GH, E, V) <= _INT_MAX, "capacity too large for BLAS")
        self.net, self.m, self.capacity, self.rows = net, net.m, R, 0
        f32 = np.float32
        b = step_buffers(net, R)
        b.update(inv_temp=np.zeros(R, f32), top_k=np.zeros(R, np.int32),
                 top_p=np.ones(R, np.float64), n_top=np.full(R, -1, np.int32))
        self._bufs = b
        self.S, self.C, self.act = _fptr(b["S"]), _fptr(b["C"]), _fptr(b["act"])
        self.gh, self.xe, self.tmp = _fptr(b["gh"]), _fptr(b["xe"]), _fptr(b["tmp"])
        self.logits, self.w, self.inv_temp = _fptr(b["logits"]), _fptr(b["w"]), _fptr(b["inv_temp"])
        cdef int32_t[::1] order = b["order"], cur = b["cur"], tk = b["top_k"], nt = b["n_top"]
        cdef uint64_t[:, ::1] rng = b["rng"]
        cdef double[::1] tp = b["top_p"]
        self.order, self.cur, self.top_k, self.n_top = &order[0], &cur[0], &tk[0], &nt[0]
        self.rng, self.top_p = &rng[0, 0], &tp[0]

    def join(self, const int32_t[::1] ids, seed, Py_ssize_t stream, double temperature,
             top_k, top_p, Py_ssize_t logprobs=-1):
        """Take row `rows` for a new generation and return its index: zero state, feed
        ids[:-1] alone, ids[-1] the next input (as Run.prime); the generator of stream
        `stream` of `seed`; the options as Run.set_options; logprobs -1 (none) or the
        number of alternatives 0..TOP_MAX to report per character."""
        cdef Py_ssize_t P = ids.shape[0], i, r = self.rows, L = self.m.L, H = self.m.H
        cdef Py_ssize_t V = self.m.V
        _need(r < self.capacity, "a free row (rows < capacity)")
        _need(P >= 1, "a prompt of at least one id")
        seed = int(seed)
        _need(0 <= seed < 2**64 and 0 <= stream <= STREAM_MAX, "seed, stream")
        _need(temperature >= 0 and -1 <= logprobs <= TOP_MAX, "temperature, logprobs")
        _need(top_k is None or top_k >= 1, "top_k >= 1")
        _need(top_p is None or 0 < top_p <= 1, "0 < top_p <= 1")
        for i in range(P):
            if ids[i] < 0 or ids[i] >= V:
                raise ValueError(f"character id {ids[i]} at position {i} is outside the "
                                 f"vocabulary (size {V})")
        states = np.zeros((stream + 1, 4), np.uint64)
        cdef uint64_t[:, ::1] st = states
        cr_rng_seed(&st[0, 0], stream + 1, <uint64_t> seed)
        memcpy(self.rng + 4 * r, &st[stream, 0], 4 * sizeof(uint64_t))
        self.inv_temp[r] = min(1.0 / temperature, _MAX_INV_TEMP) if temperature > 0 else 0
        self.top_k[r] = V if top_k is None else min(<Py_ssize_t> top_k, V)
        self.top_p[r] = 1.0 if top_p is None else top_p
        self.n_top[r] = logprobs
        cdef unsigned int fpmode
        with nogil:
            fpmode = cr_ftz_begin()
            memset(self.S + r * L * H, 0, L * H * sizeof(float))
            for i in range(L):
                memset(self.C + (i * self.capacity + r) * H, 0, H * sizeof(float))
            for i in range(P - 1):
                self.cur[r] = ids[i]
                self._forward(r, 1)
            self.cur[r] = ids[P - 1]
            cr_ftz_end(fpmode)
        self.rows = r + 1
        return r

    def leave(self, Py_ssize_t i):
        """Free row i: the last row moves into it. Returns the index that moved (the old
        last row, now i), or -1 if i was the last row."""
        cdef Py_ssize_t last = self.rows - 1, k, L = self.m.L, H = self.m.H, R = self.capacity
        _need(0 <= i <= last, "0 <= row < rows")
        self.rows = last
        if i == last:
            return -1
        memcpy(self.S + i * L * H, self.S + last * L * H, L * H * sizeof(float))
        for k in range(L):
            memcpy(self.C + (k * R + i) * H, self.C + (k * R + last) * H, H * sizeof(float))
        memcpy(self.rng + 4 * i, self.rng + 4 * last, 4 * sizeof(uint64_t))
        self.cur[i], self.inv_temp[i] = self.cur[last], self.inv_temp[last]
        self.top_k[i], self.top_p[i], self.n_top[i] = self.top_k[last], self.top_p[last], self.n_top[last]
        return last

    def step(self, int32_t[:, ::1] ids, float[:, ::1] lp, int32_t[:, :, ::1] top_ids,
             float[:, :, ::1] top_lp, Py_ssize_t T):
        """T steps of rows 0..rows-1, the GIL released: ids[r, t] the id row r chose at
        step t; for rows that asked, lp[r, t] its log-probability and top_ids/top_lp
        [r, t, :A] the A likeliest ids and theirs (largest first). Arrays (>= rows, >= T
        [, TOP_MAX])."""
        cdef Py_ssize_t N = self.rows, t, r
        _need(ids.shape[0] >= N and ids.shape[1] >= T and lp.shape[0] >= N
              and lp.shape[1] >= T and top_ids.shape[0] >= N and top_ids.shape[1] >= T
              and top_ids.shape[2] >= TOP_MAX and top_lp.shape[0] >= N
              and top_lp.shape[1] >= T and top_lp.shape[2] >= TOP_MAX, "step outputs")
        if N == 0 or T <= 0:
            return 0
        cdef unsigned int fpmode
        with nogil:
            fpmode = cr_ftz_begin()
            for t in range(T):
                self._forward(0, N)
                fill_bias_f32(self.logits, self.m.bd, NULL, N, self.m.V)
                _mm(N, self.m.V, self.m.H, self.S + (self.m.L - 1) * self.m.H,
                    self.m.L * self.m.H, self.m.Wd, self.logits)
                for r in range(N):
                    self._pick(r, &ids[r, t], &lp[r, t], &top_ids[r, t, 0], &top_lp[r, t, 0])
            cr_ftz_end(fpmode)
        return T

    # ---- GIL-free ------------------------------------------------------------------------

    cdef void _pick(self, Py_ssize_t r, int32_t *out, float *lp, int32_t *tid,
                    float *tlp) noexcept nogil:
        cdef Py_ssize_t i, j, a, V = self.m.V, A = self.n_top[r]
        cdef const float *z = self.logits + r * V
        cdef float m, lse
        cdef double total = 0
        if self.inv_temp[r] == 0:
            i = cr_argmax(z, V)
        else:
            i = cr_pick(z, V, self.inv_temp[r], self.top_k[r], self.top_p[r],
                        cr_rng_uniform(self.rng + 4 * r), self.w, self.order)
        out[0] = <int32_t> i
        self.cur[r] = <int32_t> i
        if A < 0:
            return
        # log-softmax at temperature 1: what the model itself gives each character
        m = z[0]
        for j in range(1, V):
            m = z[j] if z[j] > m else m
        for j in range(V):
            total += expf(z[j] - m)
        lse = m + logf(<float> total)
        lp[0] = z[i] - lse
        for a in range(A):           # the A largest logits, ties to the smaller id
            tid[a] = -1
        for j in range(V):
            a = A
            while a > 0 and (tid[a - 1] < 0 or z[j] > z[tid[a - 1]]):
                a -= 1
            if a < A:
                memmove_ids(tid, a, A)
                tid[a] = <int32_t> j
        for a in range(A):
            tlp[a] = z[tid[a]] - lse if tid[a] >= 0 else 0

    cdef void _forward(self, Py_ssize_t r0, Py_ssize_t K) noexcept nogil:
        """Advance rows r0..r0+K-1 by one step on their inputs cur[r0..] (Run._forward,
        on a window of the rows)."""
        cdef Py_ssize_t L = self.m.L, H = self.m.H, E = self.m.E, G = self.m.G
        cdef Py_ssize_t GH = G * H, LH = L * H, k, n
        cdef int kind = self.m.kind
        cdef float *A = self.act + r0 * GH
        cdef float *gh = self.gh + r0 * GH
        cdef float *xe = self.xe + r0 * E
        cdef float *S = self.S + r0 * LH
        cdef int32_t *cur = self.cur + r0
        cdef float *h
        cdef float *c
        for k in range(L):
            if k == 0:
                if self.m.table != NULL:
                    for n in range(K):
                        memcpy(A + n * GH, self.m.table + cur[n] * GH, GH * sizeof(float))
                else:
                    fill_bias_f32(A, self.m.bi[0], NULL, K, GH)
                    for n in range(K):
                        memcpy(xe + n * E, self.m.emb + cur[n] * E, E * sizeof(float))
                    _mm(K, GH, E, xe, E, self.m.Wi[0], A)
                if kind != GRU:
                    _mm(K, GH, H, S, LH, self.m.Wr[0], A)
            else:
                fill_bias_f32(A, self.m.bi[k], NULL, K, GH)
                if kind != GRU:
                    _mm(K, GH, 2 * H, S + (k - 1) * H, LH, self.m.Wi[k], A)
                else:
                    _mm(K, GH, H, S + (k - 1) * H, LH, self.m.Wi[k], A)
            if kind == GRU:
                fill_bias_f32(gh, self.m.br[k], NULL, K, GH)
                _mm(K, GH, H, S + k * H, LH, self.m.Wr[k], gh)
            for n in range(K):
                h = S + n * LH + k * H
                if kind == LSTM:
                    c = self.C + (k * self.capacity + r0 + n) * H
                    lstm_fwd_step_f32(A + n * GH, c, self.tmp, self.tmp + H, h, 1, H)
                    memcpy(c, self.tmp, H * sizeof(float))
                elif kind == GRU:
                    gru_fwd_step_f32(A + n * GH, gh + n * GH, self.tmp, h, self.tmp + H, 1, H)
                    memcpy(h, self.tmp + H, H * sizeof(float))
                else:
                    rnn_fwd_step_f32(A + n * GH, h, H)

    # ---- views for tests -------------------------------------------------------------------

    def state(self, Py_ssize_t r):
        """Copies of row r's (h (L, H), c (L, H) or None)."""
        _need(0 <= r < self.rows, "0 <= row < rows")
        L, H = self.m.L, self.m.H
        h = self._bufs["S"][r].reshape(L, H).copy()
        c = self._bufs["C"][:, r].copy() if self.m.kind == LSTM else None
        return h, c


cdef inline void memmove_ids(int32_t *tid, Py_ssize_t a, Py_ssize_t A) noexcept nogil:
    """Shift tid[a..A-2] one place right (the last falls off)."""
    cdef Py_ssize_t b = A - 1
    while b > a:
        tid[b] = tid[b - 1]
        b -= 1
