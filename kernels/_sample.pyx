"""The sampling engine: the per-character generation loop, in C with the GIL released.

Sizes: K streams generated together (num_samples), L layers, H hidden, E embedding,
V vocabulary, G gates (lstm 4, gru 3, rnn 1), GH = G*H.

One step advances every stream n by one character; all K rows go through each matmul
together (one GEMM, or a GEMV when K = 1):

    layer 0   a = table[id_n] + h_0 W_hh0^T            table (V, GH) = emb W_ih0^T + bias,
              precomputed: the input part depends on the character only
              (without a table: a = emb[id_n] W_ih0^T + bias + h_0 W_hh0^T)
    layer k   lstm/rnn: a = [h_{k-1} | h_k] [W_ih | W_hh]^T + (b_ih + b_hh)    one GEMM
              gru:      gx = h_{k-1} W_ih^T + bx,  gh = h_k W_hh^T + bh     two GEMMs
    cells     the fused step functions of cellmath.h, one row at a time
    decoder   logits = h_{L-1} W_dec^T + b_dec                             (K, V)
    pick      greedy, or temperature / top-k / top-p and one uniform from the stream's own
              xoshiro256** generator (sampling.h)

For the GRU the biases are split so that b_hr, b_hz ride with the input part
(bx = b_ih + [b_hr, b_hz, 0]) and only b_hn stays with the recurrent part
(bh = [0, 0, b_hn]), because PyTorch's n gate multiplies (h W_hn^T + b_hn) by r.
charrnn.sample prepares all of these arrays; Net only checks shapes and keeps pointers.

State: S (K, L*H) holds [h_0 | h_1 | ... | h_{L-1}] of each stream, so that layer k's
fused input [h_{k-1}(t) | h_k(t-1)] is one contiguous slice of a row (row stride L*H);
C (L, K, H) holds the LSTM cell states. Everything is float32, except, with a Net of
precision bf16, the weight matrices the products read: bf16 copies (gemv_bf16.h), one
matrix-vector product per stream, sums in float32, the same bits on every ISA tier.
"""
import numpy as np

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset
from libc.math cimport INFINITY

from _blas cimport gemm, gemv, cr_sgemm, cr_sgemm_pack, cr_sgemm_packed_size
from _cellmath cimport (cr_ftz_begin, cr_ftz_end, fill_bias_f32,
                        lstm_fwd_step_f32, gru_fwd_step_f32, rnn_fwd_step_f32)

include "_dispatch.pxi"

cdef extern from "cellmath.h" nogil:
    void cr_gemv_bf16(Py_ssize_t M, Py_ssize_t D, const uint16_t *W, const float *x,
                      float *y)


include "_sampling.pxi"   # cr_rng_seed, cr_rng_uniform, cr_argmax, cr_pick


cdef extern from "loopctl.h" nogil:
    uint64_t CR_NR_B
    uint64_t cr_mix64(uint64_t z)
    int cr_set_put(uint64_t *keys, Py_ssize_t cap, uint64_t k)
    Py_ssize_t cr_nr_banned(const uint64_t *keys, Py_ssize_t cap, int64_t len, uint64_t pref,
                            Py_ssize_t N, Py_ssize_t V, uint8_t *banned)
    void cr_nr_push(uint64_t *keys, Py_ssize_t cap, int64_t *count, int64_t *len,
                    uint64_t *pref, int32_t *ring, Py_ssize_t N, uint64_t Bpow, int32_t id)
    Py_ssize_t cr_beam_select(const float *logits, Py_ssize_t K, Py_ssize_t V,
                              const double *score, const uint8_t *banned, double *new_score,
                              int32_t *parent, int32_t *id, double *lse, double *hs,
                              Py_ssize_t *hc)
    void cr_gather_rows(void *rows, size_t rowbytes, Py_ssize_t K, const int32_t *parent,
                        void *scratch)


include "_sample_net.pxi"   # the model: Net, its weights checked at the boundary


cdef inline void _mm(Py_ssize_t K, Py_ssize_t M, Py_ssize_t D, const float *X, Py_ssize_t ldx,
                     const float *W, float *out, const float *Wp=NULL,
                     const uint16_t *W16=NULL) noexcept nogil:
    """out (K, M) += X (K, D; row stride ldx) @ W^T, W (M, D) row-major.

    W16: W in bf16 (precision bf16): one product per row of X on it, so a stream's
    sums do not depend on K or the tier. Wp: W^T packed for charrnn's own sgemm (beam
    search, K > 1), or NULL: BLAS. BLAS packs W again at every call, which costs more
    than the product itself for a few rows; the sampling path keeps BLAS (its texts stay
    bit for bit what they were)."""
    cdef Py_ssize_t n
    if W16 != NULL:
        for n in range(K):
            cr_gemv_bf16(M, D, W16, X + n * ldx, out + n * M)
    elif Wp != NULL and K > 1:
        cr_sgemm(False, K, M, D, X, ldx, Wp, -1, out, M, 1, NULL, NULL)
    elif K == 1:
        gemv(False, <int>M, <int>D, <float>1, W, <int>D, X, <float>1, out)
    else:
        gemm(False, True, <int>K, <int>M, <int>D, <float>1, X, <int>ldx, W, <int>D,
             <float>1, out, <int>M)


cdef class Run:
    """The state of K streams of one generation: hidden state, scratch, RNGs, options.

    Run(net, K, seed): K streams, stream j drawing from xoshiro256** stream j of `seed`
    (0 <= seed < 2**64). Then set_options(), prime(ids) once, and run() for each chunk.
    Not thread-safe: one thread at a time per Run (the GIL is released inside run()).
    """
    cdef Model m
    cdef readonly Net net
    cdef readonly Py_ssize_t K
    cdef object _bufs
    cdef float *S          # (K, L*H)  hidden states [h_0 | ... | h_{L-1}]
    cdef float *C          # (L, K, H) LSTM cell states
    cdef float *act        # (K, GH)   pre-activations -> activations
    cdef float *gh         # (K, GH)   GRU recurrent part
    cdef float *xe         # (K, E)    gathered embeddings (no-table path)
    cdef float *tmp        # (2H)      per-row scratch of the step functions
    cdef float *logits     # (K, V)
    cdef float *w          # (V)       pick scratch
    cdef int32_t *order    # (V)       pick scratch
    cdef uint64_t *rng     # (K, 4)    one xoshiro256** state per stream
    cdef int32_t *cur      # (K)       the next input id of each stream
    cdef bint primed, greedy
    cdef float inv_temp
    cdef Py_ssize_t top_k
    cdef double top_p
    # per-stream temperatures (set_temperatures), else NULL: every stream uses inv_temp
    cdef float *inv_temps  # (K)
    cdef uint8_t *greedys  # (K)
    # no-repeat (set_no_repeat; see loopctl.h): nr_N = 0 is off
    cdef Py_ssize_t nr_N, nr_cap
    cdef uint64_t nr_Bpow
    cdef uint64_t *nr_keys  # (K, nr_cap) each stream's set of N-gram hashes
    cdef int64_t *nr_count  # (K) N-grams in each set
    cdef int64_t *nr_len    # (K) ids generated
    cdef uint64_t *nr_pref  # (K) hash of the last N-1 ids
    cdef int32_t *nr_ring   # (K, N-1) the last N-1 ids
    cdef uint64_t *nr_scratch  # (K, nr_cap) reordering scratch
    cdef uint8_t *banned    # (K, V)
    cdef float *zc          # (V) the allowed logits, compacted
    cdef int32_t *idc       # (V) their ids
    # beam search (beam()): scores of the K beams and scratch
    cdef double *bscore     # (K)
    cdef double *bnew       # (K)
    cdef double *blse       # (K)
    cdef double *bhs        # (K)
    cdef Py_ssize_t *bhc    # (K)
    cdef int32_t *bparent   # (K)
    cdef int32_t *bid       # (K)
    cdef float *bscratch    # (K, L*H) reordering scratch
    cdef const float **packed  # [2L+1] Wi[0..L), Wr[0..L), Wd packed for cr_sgemm, or NULL

    def __init__(self, Net net, Py_ssize_t K, seed):
        cdef Py_ssize_t L = net.m.L, H = net.m.H, E = net.m.E, V = net.m.V
        cdef Py_ssize_t GH = net.m.G * H
        _need(K >= 1, "K >= 1")
        _need(K * max(L * H, GH, E, V) <= _INT_MAX, "K too large for BLAS")
        seed = int(seed)
        _need(0 <= seed < 2**64, "seed in [0, 2**64)")
        self.net, self.m, self.K = net, net.m, K
        f32 = np.float32
        bufs = step_buffers(net, K)
        bufs.update(banned=np.zeros((K, V), np.uint8),
                    zc=np.zeros(V, f32), idc=np.zeros(V, np.int32),
                    bscore=np.zeros(K), bnew=np.zeros(K), blse=np.zeros(K),
                    bhs=np.zeros(K), bhc=np.zeros(K, np.intp), bparent=np.zeros(K, np.int32),
                    bid=np.zeros(K, np.int32), bscratch=np.zeros((K, max(L * H, 1)), f32))
        self._bufs = bufs
        self.S = _fptr(bufs["S"])
        self.C = _fptr(bufs["C"])
        self.act = _fptr(bufs["act"])
        self.gh = _fptr(bufs["gh"])
        self.xe = _fptr(bufs["xe"])
        self.tmp = _fptr(bufs["tmp"])
        self.logits = _fptr(bufs["logits"])
        self.w = _fptr(bufs["w"])
        cdef int32_t[::1] order = bufs["order"]
        cdef int32_t[::1] cur = bufs["cur"]
        cdef uint64_t[:, ::1] rng = bufs["rng"]
        self.order, self.cur, self.rng = &order[0], &cur[0], &rng[0, 0]
        cdef uint8_t[:, ::1] banned = bufs["banned"]
        cdef int32_t[::1] idc = bufs["idc"], bparent = bufs["bparent"], bid = bufs["bid"]
        cdef double[::1] bscore = bufs["bscore"], bnew = bufs["bnew"], blse = bufs["blse"]
        cdef double[::1] bhs = bufs["bhs"]
        cdef Py_ssize_t[::1] bhc = bufs["bhc"]
        self.banned, self.idc, self.zc = &banned[0, 0], &idc[0], _fptr(bufs["zc"])
        self.bscore, self.bnew, self.blse, self.bhs = &bscore[0], &bnew[0], &blse[0], &bhs[0]
        self.bhc, self.bparent, self.bid = &bhc[0], &bparent[0], &bid[0]
        self.bscratch = _fptr(bufs["bscratch"])
        self.inv_temps = NULL
        self.greedys = NULL
        self.nr_N = 0
        self.packed = NULL
        cr_rng_seed(self.rng, K, <uint64_t> seed)
        self.set_options(1.0, None, None)

    def set_options(self, double temperature, top_k, top_p):
        """temperature >= 0 (0: greedy), top_k None or >= 1, top_p None or in (0, 1].

        charrnn.sample validates these with friendly messages; this is the last check."""
        _need(temperature >= 0, "temperature >= 0")
        _need(top_k is None or top_k >= 1, "top_k >= 1")
        _need(top_p is None or 0 < top_p <= 1, "0 < top_p <= 1")
        self.greedy = temperature == 0
        self.inv_temp = min(1.0 / temperature, _MAX_INV_TEMP) if temperature > 0 else 0
        self.top_k = self.m.V if top_k is None else min(<Py_ssize_t> top_k, self.m.V)
        self.top_p = 1.0 if top_p is None else top_p

    def set_temperatures(self, temperatures):
        """One temperature per stream (K values >= 0; 0: that stream is greedy), for a
        sheet of samples at several temperatures made as one batch. Top-k and top-p stay
        those of set_options(). None: back to set_options()'s one temperature."""
        if temperatures is None:
            self.inv_temps = NULL
            self.greedys = NULL
            return
        t = np.ascontiguousarray(temperatures, np.float64)
        _need(t.shape == (self.K,) and bool(np.all(t >= 0)), "temperatures (K,) >= 0")
        with np.errstate(divide="ignore"):
            inv = np.where(t > 0, np.minimum(1.0 / np.where(t > 0, t, 1), _MAX_INV_TEMP), 0)
        self._bufs["inv_temps"] = inv.astype(np.float32)
        self._bufs["greedys"] = (t == 0).astype(np.uint8)
        cdef uint8_t[::1] g = self._bufs["greedys"]
        self.inv_temps = _fptr(self._bufs["inv_temps"])
        self.greedys = &g[0]

    def set_no_repeat(self, Py_ssize_t N):
        """Forbid every stream to complete a character N-gram (N >= 2) it already generated
        (loopctl.h); 0: off. Starts each stream's record afresh (the prime is not in it)."""
        _need(N == 0 or N >= 2, "no-repeat N >= 2 or 0")
        self.nr_N = N
        if N == 0:
            return
        K = self.K
        self._bufs.update(nr_count=np.zeros(K, np.int64), nr_len=np.zeros(K, np.int64),
                          nr_pref=np.zeros(K, np.uint64),
                          nr_ring=np.zeros((K, N - 1), np.int32))
        cdef int64_t[::1] count = self._bufs["nr_count"], ln = self._bufs["nr_len"]
        cdef uint64_t[::1] pref = self._bufs["nr_pref"]
        cdef int32_t[:, ::1] ring = self._bufs["nr_ring"]
        self.nr_count, self.nr_len, self.nr_pref = &count[0], &ln[0], &pref[0]
        self.nr_ring = &ring[0, 0]
        cdef uint64_t p = 1
        cdef Py_ssize_t i
        for i in range(N - 2):
            p *= CR_NR_B
        self.nr_Bpow = p
        self.nr_cap = 0
        self._nr_reserve(64)

    cdef int _nr_reserve(self, Py_ssize_t more) except -1:
        """Grow the N-gram sets (with the GIL, before a nogil loop) so that `more` further
        ids per stream keep them at most half full."""
        cdef Py_ssize_t need = 2 * (int(self._bufs["nr_len"].max()) + more), cap = 64
        cdef Py_ssize_t n, i
        if need <= self.nr_cap:
            return 0
        while cap < need:
            cap *= 2
        keys = np.zeros((self.K, cap), np.uint64)
        cdef uint64_t[:, ::1] kv = keys
        if self.nr_cap:
            old = self._bufs["nr_keys"]
            for n in range(self.K):
                for k in old[n][old[n] != 0]:
                    cr_set_put(&kv[n, 0], cap, <uint64_t> k)
        self._bufs["nr_keys"] = keys
        self._bufs["nr_scratch"] = np.zeros((self.K, cap), np.uint64)
        cdef uint64_t[:, ::1] sv = self._bufs["nr_scratch"]
        self.nr_keys, self.nr_cap, self.nr_scratch = &kv[0, 0], cap, &sv[0, 0]
        return 0

    def prime(self, const int32_t[::1] ids):
        """Reset to the zero state, feed ids[:-1] (stream 0, then copied to all K), and make
        ids[-1] every stream's next input: the next run() predicts what follows ids."""
        cdef Py_ssize_t P = ids.shape[0], i, n, L = self.m.L, H = self.m.H, V = self.m.V
        _need(P >= 1, "prime needs at least one id")
        for i in range(P):
            if ids[i] < 0 or ids[i] >= V:
                raise ValueError(f"character id {ids[i]} at position {i} is outside the "
                                 f"vocabulary (size {V})")
        cdef unsigned int fpmode
        with nogil:
            fpmode = cr_ftz_begin()
            memset(self.S, 0, self.K * L * H * sizeof(float))
            memset(self.C, 0, L * self.K * H * sizeof(float))
            for i in range(P - 1):
                self.cur[0] = ids[i]
                self._forward(1)
            for n in range(1, self.K):
                memcpy(self.S + n * L * H, self.S, L * H * sizeof(float))
                for i in range(L):
                    memcpy(self.C + (i * self.K + n) * H, self.C + i * self.K * H,
                           H * sizeof(float))
            for n in range(self.K):
                self.cur[n] = ids[P - 1]
                self.bscore[n] = 0 if n == 0 else -INFINITY   # identical beams: keep one
            cr_ftz_end(fpmode)
        self.primed = True
        if self.nr_N:
            self.set_no_repeat(self.nr_N)

    def run(self, int32_t[:, ::1] out, Py_ssize_t n, int break_id=-1):
        """Generate up to n characters per stream into out[:, :n] (out is (K, >= n)).

        If break_id >= 0 and K == 1, stop early right after emitting break_id (a newline,
        for streaming line by line). Returns the number of characters generated."""
        _need(self.primed, "prime() before run()")
        _need(out.shape[0] == self.K and 0 <= n <= out.shape[1], "out (K, >= n)")
        cdef Py_ssize_t t, done = 0, ldo = out.shape[1]
        cdef bint stop_on = break_id >= 0 and self.K == 1
        if n == 0:
            return 0
        cdef int32_t *o = &out[0, 0]
        cdef unsigned int fpmode
        if self.nr_N:
            self._nr_reserve(n)
        with nogil:
            fpmode = cr_ftz_begin()
            for t in range(n):
                self._forward(self.K)
                self._decode(self.K)
                self._pick(o + t, ldo)
                done = t + 1
                if stop_on and self.cur[0] == break_id:
                    break
            cr_ftz_end(fpmode)
        return done

    def beam(self, int32_t[:, ::1] ids, int32_t[:, ::1] parents, Py_ssize_t n):
        """n steps of beam search, the K streams being the K beams (the prime makes beam 0
        the only live one). Step t writes, best beam first, each beam's last id to
        ids[t, k] and the beam it extends (its index at step t-1) to parents[t, k]; the
        states are reordered to match. Scores (sum of log-probabilities) are
        beam_scores(). Uses no temperature and no random numbers; honours no-repeat."""
        _need(self.primed, "prime() before beam()")
        _need(ids.shape[1] == self.K and parents.shape[1] == self.K
              and 0 <= n <= ids.shape[0] and n <= parents.shape[0], "ids, parents (>= n, K)")
        if n == 0:
            return 0
        if self.nr_N:
            self._nr_reserve(n)
        self._pack()
        cdef Py_ssize_t t, k
        cdef unsigned int fpmode
        with nogil:
            fpmode = cr_ftz_begin()
            for t in range(n):
                self._forward(self.K)
                self._decode(self.K)
                self._beam_step(&ids[t, 0], &parents[t, 0])
            cr_ftz_end(fpmode)
        return n

    def _pack(self):
        """Pack every weight matrix once for charrnn's own sgemm (used by beam(), K > 1)."""
        cdef Py_ssize_t L = self.m.L, H = self.m.H, GH = self.m.G * self.m.H, k, D
        cdef const float *W
        cdef float[::1] buf
        if self.packed != NULL or self.K == 1 or self.m.Wd16 != NULL:
            return            # batch 1 and bf16 read the weights as they are
        keep = []
        ptrs = <const float **> calloc(2 * L + 1, sizeof(float *))
        if ptrs == NULL:
            raise MemoryError()
        for k in range(2 * L + 1):
            if k < L:
                W, n_out = self.m.Wi[k], GH
                D = self.m.E if k == 0 else (H if self.m.kind == GRU else 2 * H)
                if k == 0 and self.m.table != NULL:
                    W = NULL      # layer 0's input part comes from the table
            elif k < 2 * L:
                W, n_out, D = self.m.Wr[k - L], GH, H
            else:
                W, n_out, D = self.m.Wd, self.m.V, H
            if W == NULL:
                continue
            a = np.empty(cr_sgemm_packed_size(D, n_out), np.float32)
            buf = a
            cr_sgemm_pack(1, D, n_out, W, D, &buf[0])
            ptrs[k] = &buf[0]
            keep.append(a)
        self._bufs["packed"] = keep
        self.packed = ptrs

    cdef inline const float *_p(self, Py_ssize_t i) noexcept nogil:
        return NULL if self.packed == NULL else self.packed[i]

    def __dealloc__(self):
        free(self.packed)

    def beam_scores(self):
        """Copy of the K beams' scores: sums of natural-log probabilities (-inf: unused)."""
        return self._bufs["bscore"].copy()

    # ---- the step, GIL-free ------------------------------------------------------------

    cdef void _forward(self, Py_ssize_t K) noexcept nogil:
        """Advance streams 0..K-1 by one step on the inputs cur[0..K-1]."""
        cdef Py_ssize_t L = self.m.L, H = self.m.H, E = self.m.E, G = self.m.G
        cdef Py_ssize_t GH = G * H, LH = L * H, k, n
        cdef int kind = self.m.kind
        cdef float *A = self.act
        cdef float *h
        cdef float *c
        for k in range(L):
            if k == 0:
                if self.m.table != NULL:
                    for n in range(K):
                        memcpy(A + n * GH, self.m.table + self.cur[n] * GH, GH * sizeof(float))
                else:
                    fill_bias_f32(A, self.m.bi[0], NULL, K, GH)
                    for n in range(K):
                        memcpy(self.xe + n * E, self.m.emb + self.cur[n] * E, E * sizeof(float))
                    _mm(K, GH, E, self.xe, E, self.m.Wi[0], A, self._p(0), self.m.Wi16[0])
                if kind != GRU:
                    _mm(K, GH, H, self.S, LH, self.m.Wr[0], A, self._p(L), self.m.Wr16[0])
            else:
                fill_bias_f32(A, self.m.bi[k], NULL, K, GH)
                if kind != GRU:   # [h_{k-1} | h_k] @ [W_ih | W_hh]^T
                    _mm(K, GH, 2 * H, self.S + (k - 1) * H, LH, self.m.Wi[k], A, self._p(k),
                        self.m.Wi16[k])
                else:
                    _mm(K, GH, H, self.S + (k - 1) * H, LH, self.m.Wi[k], A, self._p(k),
                        self.m.Wi16[k])
            if kind == GRU:
                fill_bias_f32(self.gh, self.m.br[k], NULL, K, GH)
                _mm(K, GH, H, self.S + k * H, LH, self.m.Wr[k], self.gh, self._p(L + k),
                    self.m.Wr16[k])
            # Row by row: h_k sits at a stride of L*H in S, the step functions want (N, H).
            for n in range(K):
                h = self.S + n * LH + k * H
                if kind == LSTM:
                    c = self.C + (k * self.K + n) * H
                    lstm_fwd_step_f32(A + n * GH, c, self.tmp, self.tmp + H, h, 1, H)
                    memcpy(c, self.tmp, H * sizeof(float))
                elif kind == GRU:
                    gru_fwd_step_f32(A + n * GH, self.gh + n * GH, self.tmp, h, self.tmp + H,
                                     1, H)
                    memcpy(h, self.tmp + H, H * sizeof(float))
                else:
                    rnn_fwd_step_f32(A + n * GH, h, H)

    cdef void _decode(self, Py_ssize_t K) noexcept nogil:
        """logits[0..K-1] = h_{L-1} W_dec^T + b_dec."""
        cdef Py_ssize_t L = self.m.L, H = self.m.H, V = self.m.V
        fill_bias_f32(self.logits, self.m.bd, NULL, K, V)
        _mm(K, V, H, self.S + (L - 1) * H, L * H, self.m.Wd, self.logits, self._p(2 * L),
            self.m.Wd16)

    cdef void _pick(self, int32_t *out, Py_ssize_t ldo) noexcept nogil:
        """Choose every stream's next id from its logits: out[n * ldo] and cur[n].

        With no-repeat, the banned ids are left out (the others are compacted into zc,
        idc, so top-k / top-p / the draw see only allowed ids); if every id is banned
        the ban is lifted for that step."""
        cdef Py_ssize_t n, i, V = self.m.V, Vn, nb, j
        cdef const float *z
        cdef bint greedy = self.greedy, compact
        cdef float inv = self.inv_temp
        for n in range(self.K):
            z = self.logits + n * V
            Vn = V
            compact = False
            if self.nr_N:
                nb = cr_nr_banned(self.nr_keys + n * self.nr_cap, self.nr_cap,
                                  self.nr_len[n], self.nr_pref[n], self.nr_N, V, self.banned)
                if 0 < nb < V:
                    compact = True
                    Vn = 0
                    for j in range(V):
                        if not self.banned[j]:
                            self.zc[Vn] = z[j]
                            self.idc[Vn] = <int32_t> j
                            Vn += 1
                    z = self.zc
            if self.inv_temps != NULL:
                greedy = self.greedys[n]
                inv = self.inv_temps[n]
            if greedy:
                i = cr_argmax(z, Vn)
            else:
                i = cr_pick(z, Vn, inv, min(self.top_k, Vn), self.top_p,
                            cr_rng_uniform(self.rng + 4 * n), self.w, self.order)
            if compact:
                i = self.idc[i]
            out[n * ldo] = <int32_t> i
            self.cur[n] = <int32_t> i
            if self.nr_N:
                cr_nr_push(self.nr_keys + n * self.nr_cap, self.nr_cap, self.nr_count + n,
                           self.nr_len + n, self.nr_pref + n, self.nr_ring + n * (self.nr_N - 1),
                           self.nr_N, self.nr_Bpow, <int32_t> i)

    cdef void _beam_step(self, int32_t *ids, int32_t *parents) noexcept nogil:
        """Select the K best extensions of the K beams from the logits, reorder the states
        (and no-repeat records) to match and make the chosen ids the next inputs."""
        cdef Py_ssize_t K = self.K, V = self.m.V, L = self.m.L, H = self.m.H, n, i
        cdef const uint8_t *banned = NULL
        cdef Py_ssize_t found
        if self.nr_N:
            for n in range(K):
                cr_nr_banned(self.nr_keys + n * self.nr_cap, self.nr_cap, self.nr_len[n],
                             self.nr_pref[n], self.nr_N, V, self.banned + n * V)
            banned = self.banned
        found = cr_beam_select(self.logits, K, V, self.bscore, banned, self.bnew,
                               self.bparent, self.bid, self.blse, self.bhs, self.bhc)
        if found == 0 and banned != NULL:   # every extension banned: lift the ban
            found = cr_beam_select(self.logits, K, V, self.bscore, NULL, self.bnew,
                                   self.bparent, self.bid, self.blse, self.bhs, self.bhc)
        cr_gather_rows(self.S, L * H * sizeof(float), K, self.bparent, self.bscratch)
        if self.m.kind == LSTM:
            for i in range(L):
                cr_gather_rows(self.C + i * K * H, H * sizeof(float), K, self.bparent,
                               self.bscratch)
        if self.nr_N:
            cr_gather_rows(self.nr_keys, self.nr_cap * sizeof(uint64_t), K, self.bparent,
                           self.nr_scratch)
            cr_gather_rows(self.nr_count, sizeof(int64_t), K, self.bparent, self.nr_scratch)
            cr_gather_rows(self.nr_len, sizeof(int64_t), K, self.bparent, self.nr_scratch)
            cr_gather_rows(self.nr_pref, sizeof(uint64_t), K, self.bparent, self.nr_scratch)
            cr_gather_rows(self.nr_ring, (self.nr_N - 1) * sizeof(int32_t), K, self.bparent,
                           self.nr_scratch)
        for n in range(K):
            self.bscore[n] = self.bnew[n]
            ids[n] = self.bid[n]
            parents[n] = self.bparent[n]
            self.cur[n] = self.bid[n]
            if self.nr_N and n < found:
                cr_nr_push(self.nr_keys + n * self.nr_cap, self.nr_cap, self.nr_count + n,
                           self.nr_len + n, self.nr_pref + n, self.nr_ring + n * (self.nr_N - 1),
                           self.nr_N, self.nr_Bpow, self.bid[n])

    # ---- views for tests -----------------------------------------------------------------

    def state(self):
        """Copies of (h (L, K, H), c (L, K, H) or None for gru/rnn)."""
        L, H = self.m.L, self.m.H
        h = self._bufs["S"].reshape(self.K, L, H).transpose(1, 0, 2).copy()
        c = self._bufs["C"].copy() if self.m.kind == LSTM else None
        return h, c

    def last_logits(self):
        """Copy of the logits (K, V) of the last run() step."""
        return self._bufs["logits"].copy()

    def rng_states(self):
        """Copy of the K generator states (K, 4) uint64."""
        return self._bufs["rng"].copy()


include "_sample_twins.pxi"   # gemv_bf16, rng_seed, rng_uniform, pick: for tests
