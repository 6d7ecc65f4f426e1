"""Everything in a training step that is not a recurrent cell: embedding, decoder,
softmax cross-entropy, optimizers, gradient norm, and packing weights for charrnn's own
sgemm. Compiled so that nothing in the step is per-element Python and every matmul goes
through the same BLAS as the cells.

Sizes: R rows (= T*N characters), V vocabulary, E embedding, H hidden.
Character ids are int32; every id is checked against V before the GIL is released.
ISA tier queries are in charrnn._isa, the tests' twins of C routines in charrnn._twins.
"""
from cython cimport floating
from libc.math cimport exp, log, sqrt
from libc.stdint cimport int32_t
from libc.string cimport memcpy

from _blas cimport (mm, cr_sgemm_tn, cr_sgemm_pack, cr_sgemm_packed_size,
                   cr_sgemm_bf16_packed_size, cr_sgemm_pack_bf16)
from _cellmath cimport (colsum_add, packed, mm_bias, softmax_xent_row_f32, cr_ftz_begin,
                       cr_ftz_end)

include "_dispatch.pxi"


cdef int _check_ids(const int32_t[::1] ids, Py_ssize_t V) except -1:
    cdef Py_ssize_t i, bad = -1
    with nogil:
        for i in range(ids.shape[0]):
            if ids[i] < 0 or ids[i] >= V:
                bad = i
                break
    if bad >= 0:
        raise ValueError(f"character id {ids[bad]} at position {bad} is outside the vocabulary (size {V})")
    return 0


def _need(bint ok, str what):
    if not ok:
        raise ValueError(f"shape mismatch: {what}")


# ---- embedding: out[r] = E[ids[r]] ---------------------------------------------------

def embedding_forward(const int32_t[::1] ids, const floating[:, ::1] E, floating[:, ::1] out):
    cdef Py_ssize_t r, R = ids.shape[0], D = E.shape[1]
    _need(out.shape[0] == R and out.shape[1] == D, "embedding out")
    _check_ids(ids, E.shape[0])
    with nogil:
        for r in range(R):
            memcpy(&out[r, 0], &E[ids[r], 0], D * sizeof(floating))


def embedding_backward(const int32_t[::1] ids, const floating[:, ::1] dout, floating[:, ::1] dE):
    """dE[ids[r]] += dout[r]"""
    cdef Py_ssize_t r, j, R = ids.shape[0], D = dE.shape[1]
    _need(dout.shape[0] == R and dout.shape[1] == D, "embedding dout")
    _check_ids(ids, dE.shape[0])
    with nogil:
        for r in range(R):
            for j in range(D):
                dE[ids[r], j] += dout[r, j]


# ---- decoder: logits = x W^T + b ---------------------------------------------------

def linear_forward(const floating[:, ::1] x, const floating[:, ::1] W, const floating[::1] Wp,
                   const floating[::1] b, floating[:, ::1] out):
    """out (R, V) = x (R, H) @ W (V, H)^T + b (V).
    Wp: W^T packed (sgemm_pack(True, W, Wp)) for charrnn's own sgemm, or empty: BLAS."""
    cdef Py_ssize_t R = x.shape[0], H = x.shape[1], V = W.shape[0]
    _need(W.shape[1] == H and b.shape[0] == V and out.shape[0] == R and out.shape[1] == V, "linear")
    cdef const floating *P = packed(Wp, H, V, "linear", "Wp")
    if R == 0:
        return
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()   # denormals cost 100x on Intel (cellmath.h)
        mm_bias(<int>R, <int>V, <int>H, &x[0, 0], <int>H, &W[0, 0], <int>H, P, &b[0],
                <floating *> NULL, &out[0, 0], <int>V)
        cr_ftz_end(fpmode)


def linear_backward(const floating[:, ::1] dout, const floating[:, ::1] x, const floating[:, ::1] W,
                    floating[:, ::1] dx, floating[:, ::1] dW, floating[::1] db, bint own=False):
    """dx (R, H) = dout @ W (assigned); dW (V, H) += dout^T @ x; db (V) += column sums.
    own: on charrnn's own sgemm (float32; ignored for float64: BLAS)."""
    cdef Py_ssize_t R = x.shape[0], H = x.shape[1], V = W.shape[0]
    _need(dout.shape[0] == R and dout.shape[1] == V and W.shape[1] == H and dx.shape[0] == R
          and dx.shape[1] == H and dW.shape[0] == V and dW.shape[1] == H and db.shape[0] == V,
          "linear backward")
    own = own and floating is float
    cdef bint done = False
    if R == 0:
        return
    cdef unsigned int fpmode
    with nogil:
        fpmode = cr_ftz_begin()   # denormals cost 100x on Intel (cellmath.h)
        mm(own, False, False, <int>R, <int>H, <int>V, &dout[0, 0], <int>V, &W[0, 0], <int>H,
           NULL, False, &dx[0, 0], <int>H)
        if floating is float:
            if own:   # the bias sums ride along with dout's copies (sgemm.h)
                cr_sgemm_tn(V, R, &dout[0, 0], V, H, &x[0, 0], H, &dW[0, 0], H,
                            0, NULL, 0, NULL, 0, &db[0], NULL)
                done = True
        if not done:
            mm(own, True, False, <int>V, <int>H, <int>R, &dout[0, 0], <int>V, &x[0, 0], <int>H,
               NULL, True, &dW[0, 0], <int>H)
            colsum_add(&db[0], &dout[0, 0], R, V, V, <floating *> NULL)
        cr_ftz_end(fpmode)


# ---- softmax cross-entropy ---------------------------------------------------------

def softmax_xent(floating[:, ::1] logits, const int32_t[::1] targets, double scale):
    """Sum over rows of -log softmax(logits)[target], in float64.

    If scale != 0, logits is overwritten with its gradient times scale:
    (softmax - onehot(target)) * scale -- scale = 1/R gives the gradient of the mean.
    """
    cdef Py_ssize_t R = logits.shape[0], V = logits.shape[1], r, j
    _need(targets.shape[0] == R, "targets")
    _check_ids(targets, V)
    cdef double total = 0, s, lse
    cdef floating m, e
    cdef floating *row
    with nogil:
        if floating is float:   # vectorised row by row (cellmath.h)
            for r in range(R):
                total += softmax_xent_row_f32(&logits[r, 0], V, targets[r], <float> scale)
        else:                   # float64, libm: the gradient checks' path
            for r in range(R):
                row = &logits[r, 0]
                m = row[0]
                for j in range(1, V):
                    if row[j] > m:
                        m = row[j]
                s = 0
                if scale != 0:
                    for j in range(V):
                        e = exp(row[j] - m)
                        row[j] = e
                        s += e
                else:
                    for j in range(V):
                        s += exp(row[j] - m)
                lse = log(s)
                if scale != 0:
                    # loss uses the raw logit, already overwritten: log p_target = log(e_t / s)
                    total += lse - log(<double> row[targets[r]])
                    for j in range(V):
                        row[j] = <floating> (row[j] / s * scale)
                    row[targets[r]] -= <floating> scale
                else:
                    total += lse + m - logits[r, targets[r]]
    return total


# ---- optimizers, over the flat parameter buffer ------------------------------------

def sum_squares(const float[::1] g):
    """sum g[i]^2 in double: eight running sums (element i in sum i % 8), added in order at
    the end. One running sum waits on its own add for every element; eight keep the
    adder busy (the clipping norm of a 1M-parameter model: ~4 ms -> ~0.5 ms a step)."""
    cdef double s[8]
    cdef double t
    cdef Py_ssize_t i, j, n = g.shape[0], n8 = n - n % 8
    with nogil:
        for j in range(8):
            s[j] = 0
        for i in range(0, n8, 8):
            for j in range(8):
                s[j] += <double> g[i + j] * g[i + j]
        for i in range(n8, n):
            s[i - n8] += <double> g[i] * g[i]
        t = 0
        for j in range(8):
            t += s[j]
    return t


def adam_update(float[::1] p, const float[::1] g, float[::1] m, float[::1] v,
                double lr, double beta1, double beta2, double eps, long step, double gscale):
    """Adam (Kingma & Ba) with bias correction; g is multiplied by gscale (clipping) first."""
    cdef Py_ssize_t i, n = p.shape[0]
    _need(g.shape[0] == n and m.shape[0] == n and v.shape[0] == n, "adam buffers")
    if step < 1:
        raise ValueError("adam step must be >= 1")
    cdef float b1 = beta1, b2 = beta2, c1 = 1 - beta1, c2 = 1 - beta2, gs = gscale, ep = eps
    cdef float a = lr * sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
    cdef float gi
    with nogil:
        for i in range(n):
            gi = g[i] * gs
            m[i] = b1 * m[i] + c1 * gi
            v[i] = b2 * v[i] + c2 * gi * gi
            p[i] -= a * m[i] / (sqrt(v[i]) + ep)


def rmsprop_update(float[::1] p, const float[::1] g, float[::1] v,
                   double lr, double alpha, double eps, double gscale):
    """RMSprop (Hinton): v = alpha v + (1 - alpha) g^2; p -= lr g / (sqrt(v) + eps)."""
    cdef Py_ssize_t i, n = p.shape[0]
    _need(g.shape[0] == n and v.shape[0] == n, "rmsprop buffers")
    cdef float al = alpha, c = 1 - alpha, gs = gscale, ep = eps, lrf = lr, gi
    with nogil:
        for i in range(n):
            gi = g[i] * gs
            v[i] = al * v[i] + c * gi * gi
            p[i] -= lrf * gi / (sqrt(v[i]) + ep)


def ema_update(float[::1] avg, const float[::1] p, double decay):
    """avg = decay avg + (1 - decay) p, as avg += (1 - decay) (p - avg): a weight that
    stops moving is reached exactly, and avg == p stays bit-for-bit equal to p."""
    cdef Py_ssize_t i, n = avg.shape[0]
    _need(p.shape[0] == n, "moving-average buffers")
    cdef float c = 1 - decay
    with nogil:
        for i in range(n):
            avg[i] += c * (p[i] - avg[i])


# ---- charrnn's own sgemm (sgemm.h): weight packing --------------------------------

def sgemm_packed_size(Py_ssize_t K, Py_ssize_t N):
    """Floats of a packed (K, N) matrix."""
    if K < 0 or N < 0:
        raise ValueError("sgemm_packed_size: negative size")
    return cr_sgemm_packed_size(K, N)


def sgemm_pack(bint trans, const float[:, ::1] W, float[::1] out):
    """out := B packed for the sgemm, where B = W^T if trans else W."""
    cdef Py_ssize_t K = W.shape[1] if trans else W.shape[0]
    cdef Py_ssize_t N = W.shape[0] if trans else W.shape[1]
    if <size_t>out.shape[0] != cr_sgemm_packed_size(K, N):
        raise ValueError(f"sgemm_pack: out has {out.shape[0]} floats, needs {cr_sgemm_packed_size(K, N)}")
    cdef const float *pW = &W[0, 0] if K > 0 and N > 0 else NULL   # then nothing is read
    with nogil:
        cr_sgemm_pack(trans, K, N, pW, W.shape[1], &out[0])


# ---- bf16 products (sgemm_bf16.h): weights rounded and packed in bf16 ------------------

def sgemm_packed_size_bf16(Py_ssize_t K, Py_ssize_t N, bint native=False):
    """Floats of a (K, N) matrix packed in bf16 for the current tier's portable kernel, or
    its native one (ValueError if it has none on this CPU: charrnn._isa.bf16_native)."""
    if K < 0 or N < 0:
        raise ValueError("sgemm_packed_size_bf16: negative size")
    cdef size_t n = cr_sgemm_bf16_packed_size(K, N, native)
    if n == 0:
        raise ValueError("sgemm_packed_size_bf16: no native bf16 kernel on this tier and CPU")
    return n


def sgemm_pack_bf16(bint trans, const float[:, ::1] W, float[::1] out, bint native=False):
    """out := B rounded to bf16 (nearest even) and packed for the bf16 products, where
    B = W^T if trans else W; for the portable kernel, or the native one if native. Any
    product whose packed B is out then runs in bf16 (inputs rounded, float32 sums)."""
    cdef Py_ssize_t K = W.shape[1] if trans else W.shape[0]
    cdef Py_ssize_t N = W.shape[0] if trans else W.shape[1]
    cdef size_t n = sgemm_packed_size_bf16(K, N, native)
    if <size_t>out.shape[0] != n:
        raise ValueError(f"sgemm_pack_bf16: out has {out.shape[0]} floats, needs {n}")
    cdef const float *pW = &W[0, 0] if K > 0 and N > 0 else NULL   # then nothing is read
    with nogil:
        cr_sgemm_pack_bf16(trans, K, N, pW, W.shape[1], &out[0], native)
